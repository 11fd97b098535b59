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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
