//! `zonelog completions` and `zonelog man`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::Cli;

/// `zonelog completions SHELL` (`Some`) and `zonelog man` (`None`):
/// generated from the command definitions, so they follow the CLI.
pub(crate) fn print_cli_docs(shell: Option<clap_complete::Shell>) -> Result<ExitCode> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut text = Vec::new();
    match shell {
        Some(shell) => clap_complete::generate(shell, &mut cmd, "zonelog", &mut text),
        None => clap_mangen::Man::new(cmd).render(&mut text)?,
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&text)
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
