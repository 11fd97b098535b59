//! `zonelog logs ls` and `zonelog logs cat`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use zonelog::logs::LogReader;

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
    let logs = LogReader::new(target(&cfg)?);
    let objects = logs
        .list(None, None)
        .await
        .with_context(|| format!("cannot list {}", logs.target().describe()))?;
    for object in objects {
        let name = object.key.clone();
        if !range.overlaps(&object.name)
            || filter.as_ref().is_some_and(|f| !name.contains(f.as_str()))
        {
            continue;
        }
        if !cat {
            println!("{name}\t{}", object.size.unwrap_or_default());
            continue;
        }
        // Streamed: a log object of any size passes through bounded buffers.
        let opened = logs
            .open(&object)
            .await
            .with_context(|| format!("cannot read {name}"))?;
        tokio::task::spawn_blocking(move || -> Result<()> {
            opened
                .write_lines(&mut std::io::stdout().lock())
                .with_context(|| format!("cannot decode {name}"))
        })
        .await??;
    }
    Ok(ExitCode::SUCCESS)
}
