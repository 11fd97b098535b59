//! `zonelog status`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::wiring::{load_config, open_index, service_get};

pub(crate) async fn status(config: PathBuf, json: bool) -> Result<ExitCode> {
    let cfg = load_config(&config)?;
    let status = match service_get(&cfg, "/status").await? {
        Some(body) => serde_json::from_slice(&body).context("bad /status answer")?,
        None => {
            let index = open_index(&cfg).await?;
            zonelog::status::gather(
                &cfg.zone,
                index.index.as_ref(),
                index.leases.as_ref(),
                None,
                cfg.sources.rgw.is_some(),
            )
            .await
            .map_err(anyhow::Error::msg)?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", zonelog::status::render(&status));
    }
    Ok(ExitCode::SUCCESS)
}
