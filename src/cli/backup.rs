//! `zonelog backup` and `zonelog verify`.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use tokio::sync::watch;
use zonelog::config::Config;
use zonelog::filter::Filter;

use super::signals::wait_for_signal;

pub(crate) async fn backup(cfg: &Config, once: bool) -> Result<ExitCode> {
    use std::io::IsTerminal as _;
    use zonelog::backup::{BackupStats, BarProgress, LogProgress, Progress};
    let backup = zonelog::backup::from_config(cfg).map_err(anyhow::Error::msg)?;
    backup.check_access().await.context("backup cannot start")?;
    let progress: Box<dyn Progress> = if std::io::stderr().is_terminal() {
        Box::new(BarProgress::new(backup.stats.clone()))
    } else {
        Box::new(LogProgress::new(backup.stats.clone()))
    };
    let started = std::time::Instant::now();
    let (stop, shutdown) = watch::channel(false);
    {
        let work = backup.run(progress.as_ref(), once, shutdown);
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r.context("backup failed")?,
            r = wait_for_signal() => {
                r?;
                tracing::info!("stopping at the next checkpoint");
                let _ = stop.send(true);
                work.await.context("backup failed")?;
            }
        }
    }
    drop(progress);
    let s = &backup.stats;
    let (source_requests, dest_requests) = backup.requests();
    println!(
        "backup: {} log objects, {} changes ({} copied, {} deleted, {} retained, {} skipped), {} set aside, {} in {:.1} s; S3 requests: {} source, {} destination",
        BackupStats::get(&s.log_objects),
        BackupStats::get(&s.changes),
        BackupStats::get(&s.copied),
        BackupStats::get(&s.deleted),
        BackupStats::get(&s.retained),
        BackupStats::get(&s.skipped),
        BackupStats::get(&s.set_aside),
        bytesize::ByteSize::b(BackupStats::get(&s.bytes)),
        started.elapsed().as_secs_f64(),
        source_requests,
        dest_requests,
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn verify(cfg: &Config, buckets: Vec<String>) -> Result<ExitCode> {
    use zonelog::config::DeletePolicy;
    let backup = zonelog::backup::from_config(cfg).map_err(anyhow::Error::msg)?;
    if backup.config().policy == DeletePolicy::Versions {
        bail!("verify compares current objects, but backup.policy = \"versions\" stores each change under KEY@ID; list the destination instead (docs/backup.md)");
    }
    let filter = Filter::new(&cfg.filter);
    let buckets = if buckets.is_empty() {
        let mut all = backup
            .source()
            .list_buckets()
            .await
            .context("verify cannot list the source buckets")?;
        all.retain(|b| filter.matches_bucket(b));
        if all.is_empty() {
            bail!("no source bucket matches [filter]; name the buckets to verify with --bucket, or set filter.buckets / filter.bucket_prefixes");
        }
        all
    } else {
        buckets
    };
    let mut differences = 0;
    for bucket in &buckets {
        let dest_bucket = backup.config().destination.bucket_for(bucket);
        let mut report = |key: &str, d: &zonelog::backup::verify::Difference| {
            println!("{bucket}\t{key:?}\t{d}");
        };
        let summary = zonelog::backup::verify::verify_bucket(
            backup.source(),
            backup.destination().as_ref(),
            backup.config().policy,
            &filter,
            bucket,
            &dest_bucket,
            &mut report,
        )
        .await
        .with_context(|| format!("verify {bucket}"))?;
        eprintln!(
            "{bucket} -> {dest_bucket}: {} objects compared, {} differences",
            summary.compared, summary.differences
        );
        differences += summary.differences;
    }
    Ok(if differences == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
