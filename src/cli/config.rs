//! `zonelog config check`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::wiring::load_config;

pub(crate) fn check(config: PathBuf) -> Result<ExitCode> {
    let cfg = load_config(&config)?;
    println!("# {}: valid", config.display());
    print!("{}", cfg.to_redacted_toml());
    Ok(ExitCode::SUCCESS)
}
