//! `zonelog dev workload`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt as _;

use super::wiring::{load_config, rgw_client};

pub(crate) async fn workload_command(
    config: PathBuf,
    bucket: String,
    shape: WorkloadShape,
) -> Result<ExitCode> {
    let cfg = load_config(&config)?;
    let (client, _) = rgw_client(&cfg)?;
    workload(&client.s3("source"), &bucket, &shape).await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) struct WorkloadShape {
    pub objects: usize,
    pub concurrency: usize,
    pub stride: usize,
    pub content: String,
    pub buckets: usize,
    pub rate: Option<f64>,
}

impl WorkloadShape {
    fn bucket_of(&self, base: &str, n: usize) -> String {
        if self.buckets <= 1 {
            base.to_string()
        } else {
            format!("{base}-{:05}", n % self.buckets)
        }
    }
}

async fn workload(s3: &zonelog::s3::S3, bucket: &str, shape: &WorkloadShape) -> Result<()> {
    let WorkloadShape {
        objects,
        concurrency,
        stride,
        ref content,
        buckets,
        rate,
    } = *shape;
    let made: Vec<Result<()>> = futures::stream::iter(0..buckets)
        .map(|i| async move { Ok(s3.create_bucket(&shape.bucket_of(bucket, i)).await?) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    made.into_iter().collect::<Result<Vec<()>>>()?;
    let plain = zonelog::s3::ObjectInfo::default();
    let started = Instant::now();
    let pace = rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let results: Vec<Result<()>> = futures::stream::iter(0..objects)
        .map(|n| {
            let plain = &plain;
            async move {
                if let Some(pace) = pace {
                    tokio::time::sleep_until((started + pace * n as u32).into()).await;
                }
                let target = shape.bucket_of(bucket, n);
                let n = n * stride;
                let key = format!("demo/{n:06}.txt");
                let body = bytes::Bytes::from(format!("{content} {n}\n"));
                s3.put_bytes(&target, &key, plain, body).await?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    // A few overwrites and deletes, so the log shows more than puts.
    for n in 0..objects.min(3) {
        let target = shape.bucket_of(bucket, n);
        let key = format!("demo/{n:06}.txt");
        s3.put_bytes(
            &target,
            &key,
            &plain,
            bytes::Bytes::from_static(b"changed\n"),
        )
        .await?;
        s3.delete(&target, &key).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let place = if buckets <= 1 {
        bucket.to_string()
    } else {
        format!("{buckets} buckets {bucket}-NNNNN")
    };
    println!(
        "workload: {objects} puts, {} overwrites, {} deletes in {place} ({:.0} puts/s)",
        objects.min(3),
        objects.min(3),
        objects as f64 / secs
    );
    Ok(())
}
