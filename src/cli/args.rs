//! The command line's clap types: every `///` on them is `--help` text and
//! the man page.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use zonelog::logs::LogObjectName;

/// `zonelog --version`: what is built in, for a bug report or a fleet check.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_GIT_COMMIT"),
    ")\n",
    "index backends: embedded (redb), rados (librados)\n",
    "capture sources: rgw (data and bucket-index logs), notify (S3 event notifications)\n",
    "log targets: s3, directory; log compression: zstd, gzip, none\n",
    "backup destinations: s3, directory",
);

#[derive(Parser)]
#[command(
    name = "zonelog",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BUILD_GIT_COMMIT"), ")"),
    long_version = LONG_VERSION,
    about = "A complete, ordered log of every object change in an S3 / Ceph RGW zone"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the configured capture sources and the collector until SIGINT or
    /// SIGTERM.
    Run {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
    },
    /// Run one collector round now and print the log objects it wrote.
    Flush {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
    },
    /// Pending changes of a time window, straight from the index, oldest
    /// first. Asks the running `zonelog run` (which owns the embedded index)
    /// over HTTP, or opens the index when none runs.
    Changes {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
        /// Changes at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Changes before this time (RFC 3339).
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Only changes of this bucket.
        #[arg(long)]
        bucket: Option<String>,
        /// Only keys with this prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// One JSON record per line (the log object format) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One screen for an operator: sources, index backlog, last window,
    /// lease holder. From the running service, or from the index.
    Status {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
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
    /// Copy what the log objects say changed to a second S3 system (or a
    /// directory), from the checkpoint stored there; follows new log
    /// objects until SIGINT/SIGTERM unless --once.
    Backup {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
        /// Catch up with the log objects written so far, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Compare source buckets with their backup (keys, sizes, etags) and
    /// print the differences; exit code 1 when there are any.
    Verify {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
        /// Only this source bucket (repeatable); default: every bucket of
        /// the source user that the filter matches.
        #[arg(long)]
        bucket: Vec<String>,
    },
    /// The log objects on the target.
    Logs {
        #[command(subcommand)]
        command: LogsCommand,
    },
    /// The collector's target.
    Target {
        #[command(subcommand)]
        command: TargetCommand,
    },
    /// Helpers for the dev zone and benchmarks.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Print the shell completion script for SHELL (the Debian package
    /// installs bash, zsh and fish ones).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), generated from this command line.
    Man,
}

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate the config and print the effective values (secrets redacted).
    Check {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum RgwCommand {
    /// Check that the configured RGW answers, the keys work and the user has
    /// the admin caps capture needs; show the zone's logs and matching buckets.
    Probe {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
    },
    /// Create (or update) a persistent topic pushing to [sources.notify]
    /// and a notification (ObjectCreated:*, ObjectRemoved:*) on every bucket
    /// of the user that matches the filter. Idempotent.
    SetupNotifications {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Undo setup-notifications: remove our notification from every bucket
    /// of the user that has one, then the topic. Idempotent.
    RemoveNotifications {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum LogsCommand {
    /// List log objects (name, size), oldest first; with --from/--to only
    /// those whose window overlaps that time range.
    Ls {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        range: TimeRange,
    },
    /// Print the records of log objects, decompressed (streamed), oldest
    /// first; with --from/--to only objects whose window overlaps that
    /// range, and with FILTER only those whose name contains it.
    Cat {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        range: TimeRange,
        filter: Option<String>,
    },
}

#[derive(clap::Args, Clone, Copy)]
pub(crate) struct TimeRange {
    /// Windows ending at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Windows starting before this time (RFC 3339).
    #[arg(long)]
    to: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl TimeRange {
    pub(crate) fn overlaps(&self, name: &LogObjectName) -> bool {
        let (start, end) = (name.start(), name.cutoff());
        self.from.is_none_or(|f| end >= f) && self.to.is_none_or(|t| start < t)
    }
}

#[derive(Subcommand)]
pub(crate) enum TargetCommand {
    /// Create the configured S3 target bucket if it does not exist.
    CreateBucket {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum DevCommand {
    /// Write a workload to the zone with the rgw source's keys: creates the
    /// bucket, puts OBJECTS objects, overwrites and deletes a few.
    Workload {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
        #[arg(long, default_value = "zonelog-demo")]
        bucket: String,
        #[arg(long, default_value_t = 20)]
        objects: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Object n is `demo/{n * stride}`: a later run with a stride
        /// changes a spread-out fraction of the keys of an earlier one.
        #[arg(long, default_value_t = 1)]
        stride: usize,
        /// Bodies are `{content} {n}`: a different word of the same length
        /// changes content but not size.
        #[arg(long, default_value = "object")]
        content: String,
        /// Spread the objects over this many buckets, `{bucket}-{i:05}`
        /// (object n goes to bucket n mod BUCKETS); 1: `{bucket}` alone.
        /// With `--objects 0`, only makes the buckets.
        #[arg(long, default_value_t = 1)]
        buckets: usize,
        /// At most this many puts per second (evenly paced); default: as
        /// fast as `--concurrency` allows.
        #[arg(long)]
        rate: Option<f64>,
    },
}
