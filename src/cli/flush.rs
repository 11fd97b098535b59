//! `zonelog flush`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::wiring::{collector, load_config, open_index};

pub(crate) async fn flush(config: PathBuf) -> Result<ExitCode> {
    let cfg = load_config(&config)?;
    let index = open_index(&cfg).await?;
    let collector = collector(&cfg, &index)?;
    let report = collector.round().await?;
    collector.release().await;
    if let Some(holder) = report.lease_holder {
        println!("another collector holds the control lease: {holder}");
        return Ok(ExitCode::FAILURE);
    }
    if report.windows.is_empty() {
        println!("nothing to write: no pending change before the cutoff");
    }
    for w in report.windows {
        println!(
            "window {}: {} changes, {} bytes -> {}{}",
            w.number,
            w.entries,
            w.bytes,
            w.object,
            if w.resumed {
                " (finished an earlier round's window)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
