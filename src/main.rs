//! The `zonelog` command line. Library errors are typed; here they get the
//! context a person needs (which file, which endpoint) through anyhow.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use zonelog::capture::rgw::admin::SignedClient;
use zonelog::capture::rgw::RgwAdmin;
use zonelog::config::Config;

#[derive(Parser)]
#[command(
    name = "zonelog",
    version,
    about = "A complete, ordered log of every object change in an S3 / Ceph RGW zone"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Talk to a Ceph RGW zone.
    Rgw {
        #[command(subcommand)]
        command: RgwCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the config and print the effective values (secrets redacted).
    Check {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum RgwCommand {
    /// Check that the configured RGW answers, the keys work and the user has
    /// the admin caps capture needs; show the zone's logs and matching buckets.
    Probe {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZONELOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(path: &std::path::Path) -> Result<Config> {
    Config::load(path).with_context(|| format!("invalid configuration {}", path.display()))
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            let cfg = load_config(&config)?;
            println!("# {}: valid", config.display());
            print!("{}", cfg.to_redacted_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Rgw {
            command: RgwCommand::Probe { config },
        } => {
            let cfg = load_config(&config)?;
            let rgw = cfg
                .sources
                .rgw
                .as_ref()
                .context("the config has no [sources.rgw] section")?;
            let client = SignedClient::new(
                rgw.endpoint.clone(),
                &rgw.access_key,
                rgw.secret_key.clone(),
                &rgw.region,
            )?;
            let admin = RgwAdmin::new(client);
            let filter = zonelog::filter::Filter::new(&cfg.filter);
            let shards = admin.datalog_shard_count().await?;
            println!("rgw {}: data log has {shards} shards", rgw.endpoint);
            let buckets = admin.list_buckets().await?;
            let matching: Vec<&String> = buckets
                .iter()
                .filter(|b| filter.matches_bucket(b))
                .collect();
            println!(
                "{} buckets, {} match the filter",
                buckets.len(),
                matching.len()
            );
            for bucket in matching {
                let info = admin.bucket_instance(bucket).await?;
                println!(
                    "  {bucket}: instance {} ({} index shards)",
                    info.instance_id, info.num_shards
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
