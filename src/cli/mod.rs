//! The commands of the `zonelog` binary: the clap types (`args`), what
//! several commands share (`wiring`, `signals`), one module per command or
//! group of related commands, and `dispatch`, which runs the one asked for.

use std::process::ExitCode;

use anyhow::Result;

pub(crate) mod args;
mod backup;
mod changes;
mod config;
mod dev;
mod docs;
mod flush;
mod logs;
mod rgw;
mod run;
pub(crate) mod signals;
mod status;
mod target;
mod wiring;

use args::{Command, ConfigCommand, DevCommand, RgwCommand, TargetCommand};
use signals::{HeldStopSignals, StopSignals};
use wiring::load_config;

pub(crate) async fn dispatch(command: Command, held: Option<HeldStopSignals>) -> Result<ExitCode> {
    match command {
        Command::Run { config } => {
            // Watched before anything else: a SIGTERM while zonelog is
            // still starting stops it cleanly once it has started, rather
            // than killing it by the signal's default action.
            let stop = StopSignals::watch()?;
            drop(held);
            run::run(&load_config(&config)?, stop).await
        }
        Command::Flush { config } => flush::flush(config).await,
        Command::Changes {
            config,
            from,
            to,
            bucket,
            prefix,
            json,
        } => changes::changes_command(config, from, to, bucket, prefix, json).await,
        Command::Status { config, json } => status::status(config, json).await,
        Command::Config {
            command: ConfigCommand::Check { config },
        } => config::check(config),
        Command::Rgw {
            command: RgwCommand::Probe { config },
        } => rgw::probe(config).await,
        Command::Rgw {
            command: RgwCommand::SetupNotifications { config, dry_run },
        } => rgw::setup_notifications(&load_config(&config)?, dry_run).await,
        Command::Rgw {
            command: RgwCommand::RemoveNotifications { config, dry_run },
        } => rgw::remove_notifications(&load_config(&config)?, dry_run).await,
        Command::Logs { command } => logs::logs(command).await,
        Command::Completions { shell } => docs::print_cli_docs(Some(shell)),
        Command::Man => docs::print_cli_docs(None),
        Command::Backup { config, once } => backup::backup(&load_config(&config)?, once).await,
        Command::Verify { config, bucket } => backup::verify(&load_config(&config)?, bucket).await,
        Command::Target {
            command: TargetCommand::CreateBucket { config },
        } => target::create_bucket(config).await,
        Command::Dev {
            command:
                DevCommand::Workload {
                    config,
                    bucket,
                    objects,
                    concurrency,
                    stride,
                    content,
                    buckets,
                    rate,
                },
        } => {
            let shape = dev::WorkloadShape {
                objects,
                concurrency,
                stride: stride.max(1),
                content,
                buckets: buckets.max(1),
                rate,
            };
            dev::workload_command(config, bucket, shape).await
        }
    }
}
