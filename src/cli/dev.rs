//! `zonelog dev workload`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::wiring::{load_config, rgw_client};

pub(crate) async fn workload_command(
    config: PathBuf,
    bucket: String,
    objects: usize,
    concurrency: usize,
    stride: usize,
    content: String,
) -> Result<ExitCode> {
    let cfg = load_config(&config)?;
    let (client, _) = rgw_client(&cfg)?;
    let shape = WorkloadShape {
        objects,
        concurrency,
        stride: stride.max(1),
        content,
    };
    workload(&client.s3("source"), &bucket, &shape).await?;
    Ok(ExitCode::SUCCESS)
}

struct WorkloadShape {
    objects: usize,
    concurrency: usize,
    stride: usize,
    content: String,
}

async fn workload(s3: &zonelog::s3::S3, bucket: &str, shape: &WorkloadShape) -> Result<()> {
    use futures::StreamExt as _;
    let WorkloadShape {
        objects,
        concurrency,
        stride,
        ref content,
    } = *shape;
    s3.create_bucket(bucket).await?;
    let plain = zonelog::s3::ObjectInfo::default();
    let started = std::time::Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(0..objects)
        .map(|n| {
            let plain = &plain;
            async move {
                let n = n * stride;
                let key = format!("demo/{n:06}.txt");
                let body = bytes::Bytes::from(format!("{content} {n}\n"));
                s3.put_bytes(bucket, &key, plain, body).await?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    // A few overwrites and deletes, so the log shows more than puts.
    for n in 0..objects.min(3) {
        let key = format!("demo/{n:06}.txt");
        s3.put_bytes(
            bucket,
            &key,
            &plain,
            bytes::Bytes::from_static(b"changed\n"),
        )
        .await?;
        s3.delete(bucket, &key).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "workload: {objects} puts, {} overwrites, {} deletes in {bucket} ({:.0} puts/s)",
        objects.min(3),
        objects.min(3),
        objects as f64 / secs
    );
    Ok(())
}
