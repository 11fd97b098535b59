//! `zonelog logs ls` and `zonelog logs cat`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use zonelog::logs::format::decompressor;
use zonelog::logs::LogObjectName;

use super::args::LogsCommand;
use super::wiring::{load_config, target};

pub(crate) async fn logs(command: LogsCommand) -> Result<ExitCode> {
    let (config, range, cat, filter) = match command {
        LogsCommand::Ls { config, range } => (config, range, false, None),
        LogsCommand::Cat {
            config,
            range,
            filter,
        } => (config, range, true, filter),
    };
    let cfg = load_config(&config)?;
    let target = target(&cfg)?;
    let objects = target
        .list(target.prefix(), None)
        .await
        .with_context(|| format!("cannot list {}", target.describe()))?;
    for listed in objects {
        let name = listed.key;
        let Ok(log_name) = LogObjectName::from_key(&name, target.prefix()) else {
            continue;
        };
        let compression = log_name.compression;
        if !range.overlaps(&log_name) || filter.as_ref().is_some_and(|f| !name.contains(f.as_str()))
        {
            continue;
        }
        if !cat {
            println!("{name}\t{}", listed.size);
            continue;
        }
        // Streamed: a log object of any size passes through bounded buffers.
        let stream = target
            .open_key(&name)
            .await
            .with_context(|| format!("cannot read {name}"))?;
        let reader = tokio_util::io::SyncIoBridge::new(stream);
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut decoded = decompressor(compression, reader)?;
            std::io::copy(&mut decoded, &mut std::io::stdout().lock())
                .with_context(|| format!("cannot decompress {name}"))?;
            Ok(())
        })
        .await??;
    }
    Ok(ExitCode::SUCCESS)
}
