//! `zonelog changes`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use zonelog::capture::rgw::admin::encode_path;
use zonelog::config::Config;
use zonelog::index::ChangeIndex;

use super::wiring::{load_config, open_index, service_get};

pub(crate) async fn changes_command(
    config: PathBuf,
    from: Option<chrono::DateTime<chrono::FixedOffset>>,
    to: Option<chrono::DateTime<chrono::FixedOffset>>,
    bucket: Option<String>,
    prefix: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let cfg = load_config(&config)?;
    let to_ns = |t: chrono::DateTime<chrono::FixedOffset>| {
        t.timestamp_nanos_opt()
            .and_then(|n| u64::try_from(n).ok())
            .context("time outside 1970..2262")
    };
    let query = zonelog::changes::ChangesQuery {
        from_ns: from.map(to_ns).transpose()?,
        to_ns: to.map(to_ns).transpose()?,
        bucket,
        prefix,
        ..Default::default()
    };
    changes(&cfg, query, json).await
}

/// Every page of pending changes, from the running zonelog (which owns the
/// index) or, when none runs, from the index itself; the `next_after`
/// lines between pages are dropped.
async fn changes_pages(
    cfg: &Config,
    query: &zonelog::changes::ChangesQuery,
    url_query: &[String],
) -> Result<Vec<u8>> {
    let mut lines = Vec::new();
    let mut after: Option<String> = None;
    let mut local: Option<Arc<dyn ChangeIndex>> = None;
    loop {
        let mut page_query = url_query.to_vec();
        if let Some(a) = &after {
            page_query.push(format!("after={a}"));
        }
        let remote = match &local {
            None => service_get(cfg, &format!("/changes?{}", page_query.join("&"))).await?,
            Some(_) => None,
        };
        let page = match remote {
            Some(body) => body.to_vec(),
            None => {
                let index = match &local {
                    Some(index) => index.clone(),
                    None => local.insert(open_index(cfg).await?.index).clone(),
                };
                let page = zonelog::changes::Page::new(zonelog::changes::ChangesQuery {
                    after: after.clone(),
                    ..query.clone()
                })?;
                let (tx, mut rx) = tokio::sync::mpsc::channel(16);
                let zone = cfg.zone.clone();
                let reading = tokio::spawn(async move { page.stream(index, &zone, tx).await });
                let mut out = Vec::new();
                while let Some(chunk) = rx.recv().await {
                    out.extend_from_slice(&chunk);
                }
                reading.await??;
                out
            }
        };
        after = zonelog::changes::next_after(&page);
        for line in page.split_inclusive(|b| *b == b'\n') {
            if !zonelog::changes::is_next_line(line) {
                lines.extend_from_slice(line);
            }
        }
        if after.is_none() {
            return Ok(lines);
        }
    }
}

async fn changes(
    cfg: &Config,
    query: zonelog::changes::ChangesQuery,
    json: bool,
) -> Result<ExitCode> {
    let mut url_query = Vec::new();
    if let Some(f) = query.from_ns {
        url_query.push(format!("from_ns={f}"));
    }
    if let Some(t) = query.to_ns {
        url_query.push(format!("to_ns={t}"));
    }
    if let Some(b) = &query.bucket {
        url_query.push(format!("bucket={}", encode_path(b)));
    }
    if let Some(p) = &query.prefix {
        url_query.push(format!(
            "prefix={}",
            zonelog::capture::rgw::admin::encode_query(p)
        ));
    }
    let lines = changes_pages(cfg, &query, &url_query).await?;
    let mut out = std::io::stdout().lock();
    if json {
        out.write_all(&lines)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{:<30}  {:<13}  object", "time", "op")?;
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let r: zonelog::logs::LogRecord = serde_json::from_slice(line)?;
        let version = r
            .version_id
            .map(|v| format!("  (version {v})"))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<30}  {:<13}  {}/{}{version}",
            zonelog::record::format_time(&r.time),
            r.op.as_str(),
            r.bucket,
            r.key.escape_debug()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
