//! The `zonelog` command line. Library errors are typed; here they get the
//! context a person needs (which file, which endpoint) through anyhow.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};
use cli::signals::HeldStopSignals;

fn main() -> ExitCode {
    zonelog::ops::limit_malloc_arenas();
    let cli = Cli::parse();
    // `run` is stopped by SIGTERM at any moment, so the signals wait
    // (blocked) until its watcher is in place rather than killing it while
    // it starts. Threads started meanwhile keep them blocked; the main
    // thread takes them once the watcher is there.
    let held = matches!(cli.command, Command::Run { .. }).then(HeldStopSignals::hold);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(cli.command, held)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, as anyhow's `{:#}` prints
/// them, but without a cause whose text the line already ends with: a
/// backend error names its cause in its own text and keeps it as its
/// source too (`zonelog::error::BackendError`), and it is said once.
fn chain_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain_text;
    use zonelog::error::BackendError;
    use zonelog::index::IndexError;

    #[test]
    fn a_cause_is_printed_once() {
        let io = std::io::Error::other("No space left on device");
        let e = anyhow::Error::new(IndexError::Backend(BackendError::new("/x/index.redb", io)))
            .context("writing the batch");
        assert_eq!(format!("{e:#}").matches("No space").count(), 3);
        assert_eq!(
            chain_text(&e),
            "writing the batch: index backend error: /x/index.redb: No space left on device"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain_text(&plain), format!("{plain:#}"));
    }
}
