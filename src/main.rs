//! The `zonelog` command line. Library errors are typed; here they get the
//! context a person needs (which file, which endpoint) through anyhow.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use zonelog::capture::rgw::admin::{encode_path, SignedClient};
use zonelog::capture::rgw::{RgwAdmin, RgwCapture};
use zonelog::collector::Collector;
use zonelog::config::{Config, IndexBackend, LogFormat};
use zonelog::filter::Filter;
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::rados::{RadosIndex, RadosOptions};
use zonelog::index::ChangeIndex;
use zonelog::lease::{process_holder_id, LeaseStore};
use zonelog::logfmt::{compression_of, decompressor};
use zonelog::target::Target;

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
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
enum LogsCommand {
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
struct TimeRange {
    /// Windows ending at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Windows starting before this time (RFC 3339).
    #[arg(long)]
    to: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl TimeRange {
    fn overlaps(&self, name: &str) -> bool {
        let Some((start, end)) = zonelog::collector::window_bounds(name) else {
            return self.from.is_none() && self.to.is_none();
        };
        self.from.is_none_or(|f| end >= f) && self.to.is_none_or(|t| start < t)
    }
}

#[derive(Subcommand)]
enum TargetCommand {
    /// Create the configured S3 target bucket if it does not exist.
    CreateBucket {
        #[arg(short, long, env = "ZONELOG_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DevCommand {
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
    },
}

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
    match runtime.block_on(dispatch(cli.command, held)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `zonelog completions SHELL` (`Some`) and `zonelog man` (`None`):
/// generated from the command definitions, so they follow the CLI.
fn print_cli_docs(shell: Option<clap_complete::Shell>) -> Result<ExitCode> {
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

fn init_logging(format: LogFormat, filter: tracing_subscriber::filter::Targets) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json()).try_init(),
    };
}

fn load_config(path: &Path) -> Result<Config> {
    let cfg =
        Config::load(path).with_context(|| format!("invalid configuration {}", path.display()))?;
    // ZONELOG_LOG overrides the configured filter for one run.
    let filter = match std::env::var("ZONELOG_LOG") {
        Ok(directives) => directives
            .parse()
            .with_context(|| format!("ZONELOG_LOG={directives:?} is not a log filter"))?,
        Err(_) => cfg.log.filter()?,
    };
    init_logging(cfg.log.format, filter);
    Ok(cfg)
}

/// The configured index and the lease store beside it (the same object
/// for both backends).
struct OpenIndex {
    index: Arc<dyn ChangeIndex>,
    leases: Arc<dyn LeaseStore>,
    location: String,
}

async fn open_index(cfg: &Config) -> Result<OpenIndex> {
    match cfg.index.backend {
        IndexBackend::Embedded => {
            let index =
                EmbeddedIndex::open(&cfg.index.path, cfg.index.layout()).with_context(|| {
                    format!("cannot open the index at {}", cfg.index.path.display())
                })?;
            let index = Arc::new(index);
            Ok(OpenIndex {
                location: index.location().display().to_string(),
                index: index.clone(),
                leases: index,
            })
        }
        IndexBackend::Rados => {
            let rados = cfg
                .index
                .rados
                .as_ref()
                .context("index.backend = \"rados\" needs an [index.rados] section")?;
            let options = RadosOptions {
                ceph_conf: rados.ceph_conf.clone(),
                user: rados.user.clone(),
                keyring: rados.keyring.clone(),
                pool: rados.pool.clone(),
                namespace: rados.namespace.clone(),
                zone: cfg.zone.clone(),
                op_timeout: rados.op_timeout,
            };
            let index = RadosIndex::open(options, cfg.index.layout())
                .await
                .with_context(|| {
                    format!(
                        "cannot open the RADOS index in pool {:?} (ceph.conf {})",
                        rados.pool,
                        rados.ceph_conf.display()
                    )
                })?;
            let index = Arc::new(index);
            Ok(OpenIndex {
                location: index.location().to_string(),
                index: index.clone(),
                leases: index,
            })
        }
    }
}

fn rgw_client(cfg: &Config) -> Result<(SignedClient, &zonelog::config::RgwSourceConfig)> {
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
    Ok((client, rgw))
}

fn target(cfg: &Config) -> Result<Target> {
    let target = cfg
        .target
        .as_ref()
        .context("the config has no [target] section")?;
    Ok(Target::from_config(target)?)
}

fn collector(cfg: &Config, index: &OpenIndex) -> Result<Collector> {
    Ok(Collector::new(
        index.index.clone(),
        index.leases.clone(),
        target(cfg)?,
        &cfg.zone,
        cfg.collector.clone(),
        process_holder_id(),
    ))
}

async fn dispatch(command: Command, held: Option<HeldStopSignals>) -> Result<ExitCode> {
    match command {
        Command::Run { config } => {
            // Watched before anything else: a SIGTERM while zonelog is
            // still starting stops it cleanly once it has started, rather
            // than killing it by the signal's default action.
            let stop = StopSignals::watch()?;
            drop(held);
            run(&load_config(&config)?, stop).await
        }
        Command::Flush { config } => {
            let cfg = load_config(&config)?;
            let index = open_index(&cfg).await?;
            let collector = collector(&cfg, &index)?;
            let report = collector.round().await?;
            collector.release().await;
            if let Some(holder) = report.lease_holder {
                println!("another collector holds the control lease: {holder}");
                return Ok(ExitCode::FAILURE);
            }
            if report.windows.is_empty() {
                println!("nothing to write: no pending change before the cutoff");
            }
            for w in report.windows {
                println!(
                    "window {}: {} changes, {} bytes -> {}{}",
                    w.number,
                    w.entries,
                    w.bytes,
                    w.object,
                    if w.resumed {
                        " (finished an earlier round's window)"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Changes {
            config,
            from,
            to,
            bucket,
            prefix,
            json,
        } => {
            let cfg = load_config(&config)?;
            let to_ns = |t: chrono::DateTime<chrono::FixedOffset>| {
                t.timestamp_nanos_opt()
                    .and_then(|n| u64::try_from(n).ok())
                    .context("time outside 1970..2262")
            };
            let query = zonelog::changes::ChangesQuery {
                from_ns: from.map(to_ns).transpose()?,
                to_ns: to.map(to_ns).transpose()?,
                bucket,
                prefix,
                ..Default::default()
            };
            changes(&cfg, query, json).await
        }
        Command::Status { config, json } => {
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
            let (client, rgw) = rgw_client(&cfg)?;
            let admin = RgwAdmin::new(client);
            let filter = Filter::new(&cfg.filter);
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
        Command::Rgw {
            command: RgwCommand::SetupNotifications { config, dry_run },
        } => setup_notifications(&load_config(&config)?, dry_run).await,
        Command::Rgw {
            command: RgwCommand::RemoveNotifications { config, dry_run },
        } => remove_notifications(&load_config(&config)?, dry_run).await,
        Command::Logs { command } => logs(command).await,
        Command::Completions { shell } => print_cli_docs(Some(shell)),
        Command::Man => print_cli_docs(None),
        Command::Backup { config, once } => backup(&load_config(&config)?, once).await,
        Command::Verify { config, bucket } => verify(&load_config(&config)?, bucket).await,
        Command::Target {
            command: TargetCommand::CreateBucket { config },
        } => {
            let cfg = load_config(&config)?;
            let t = cfg
                .target
                .as_ref()
                .context("the config has no [target] section")?;
            let (Some(endpoint), Some(bucket), Some(access), Some(secret)) =
                (&t.endpoint, &t.bucket, &t.access_key, &t.secret_key)
            else {
                println!("the target is a directory; nothing to create");
                return Ok(ExitCode::SUCCESS);
            };
            let s3 = zonelog::s3::S3::new("target", endpoint, &t.region, access, secret.expose());
            s3.create_bucket(bucket).await?;
            println!("bucket {bucket} is ready on {endpoint}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev {
            command:
                DevCommand::Workload {
                    config,
                    bucket,
                    objects,
                    concurrency,
                    stride,
                    content,
                },
        } => {
            let cfg = load_config(&config)?;
            let (client, _) = rgw_client(&cfg)?;
            let shape = WorkloadShape {
                objects,
                concurrency,
                stride: stride.max(1),
                content,
            };
            workload(&client.s3("source"), &bucket, &shape).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// GET from the running service on `http.listen`; `None` when nothing
/// listens there (then the caller opens the index itself).
async fn service_get(cfg: &Config, path_and_query: &str) -> Result<Option<bytes::Bytes>> {
    let url = format!("http://{}{path_and_query}", cfg.http.listen);
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = cfg.http.token.as_ref().filter(|t| !t.is_empty()) {
        request = request.bearer_auth(token.expose());
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Ok(Some(response.bytes().await?)),
        Ok(response) => bail!("{url} answered {}", response.status()),
        Err(e) if e.is_connect() => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot ask the running zonelog at {url}")),
    }
}

/// Every page of pending changes, from the running zonelog (which owns the
/// index) or, when none runs, from the index itself; the `next_after`
/// lines between pages are dropped.
async fn changes_pages(
    cfg: &Config,
    query: &zonelog::changes::ChangesQuery,
    url_query: &[String],
) -> Result<Vec<u8>> {
    let mut lines = Vec::new();
    let mut after: Option<String> = None;
    let mut local: Option<Arc<dyn ChangeIndex>> = None;
    loop {
        let mut page_query = url_query.to_vec();
        if let Some(a) = &after {
            page_query.push(format!("after={a}"));
        }
        let remote = match &local {
            None => service_get(cfg, &format!("/changes?{}", page_query.join("&"))).await?,
            Some(_) => None,
        };
        let page = match remote {
            Some(body) => body.to_vec(),
            None => {
                let index = match &local {
                    Some(index) => index.clone(),
                    None => local.insert(open_index(cfg).await?.index).clone(),
                };
                let page = zonelog::changes::Page::new(zonelog::changes::ChangesQuery {
                    after: after.clone(),
                    ..query.clone()
                })?;
                let (tx, mut rx) = tokio::sync::mpsc::channel(16);
                let zone = cfg.zone.clone();
                let reading = tokio::spawn(async move { page.stream(index, &zone, tx).await });
                let mut out = Vec::new();
                while let Some(chunk) = rx.recv().await {
                    out.extend_from_slice(&chunk);
                }
                reading.await??;
                out
            }
        };
        after = zonelog::changes::next_after(&page);
        for line in page.split_inclusive(|b| *b == b'\n') {
            if !zonelog::changes::is_next_line(line) {
                lines.extend_from_slice(line);
            }
        }
        if after.is_none() {
            return Ok(lines);
        }
    }
}

async fn changes(
    cfg: &Config,
    query: zonelog::changes::ChangesQuery,
    json: bool,
) -> Result<ExitCode> {
    let mut url_query = Vec::new();
    if let Some(f) = query.from_ns {
        url_query.push(format!("from_ns={f}"));
    }
    if let Some(t) = query.to_ns {
        url_query.push(format!("to_ns={t}"));
    }
    if let Some(b) = &query.bucket {
        url_query.push(format!("bucket={}", encode_path(b)));
    }
    if let Some(p) = &query.prefix {
        url_query.push(format!(
            "prefix={}",
            zonelog::capture::rgw::admin::encode_query(p)
        ));
    }
    let lines = changes_pages(cfg, &query, &url_query).await?;
    let mut out = std::io::stdout().lock();
    if json {
        out.write_all(&lines)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{:<30}  {:<13}  object", "time", "op")?;
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let r: zonelog::logfmt::LogRecord = serde_json::from_slice(line)?;
        let version = r
            .version_id
            .map(|v| format!("  (version {v})"))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<30}  {:<13}  {}/{}{version}",
            zonelog::record::format_time(&r.time),
            r.op.as_str(),
            r.bucket,
            r.key.escape_debug()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a source behind its lease (several instances on one RADOS index):
/// this instance runs a fresh one from `make` while it holds `lease`.
fn spawn_leased<C, F>(
    tasks: &mut tokio::task::JoinSet<()>,
    lease: &'static str,
    make: F,
    index: &OpenIndex,
    cfg: &Config,
    shutdown: watch::Receiver<bool>,
) where
    C: zonelog::capture::leased::Capture + 'static,
    F: Fn(Arc<dyn zonelog::index::ChangeIndex>) -> C + Send + Sync + 'static,
{
    let (shared, leases, ttl) = (
        index.index.clone(),
        index.leases.clone(),
        cfg.collector.lease_duration,
    );
    tasks.spawn(async move {
        zonelog::capture::leased::run_leased(
            lease,
            make,
            shared,
            leases,
            process_holder_id(),
            ttl,
            shutdown,
        )
        .await
    });
}

async fn run(cfg: &Config, mut stop_signals: StopSignals) -> Result<ExitCode> {
    let index = open_index(cfg).await?;
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut capture_counters = None;
    let mut notify_counters = None;
    if let Some(notify) = &cfg.sources.notify {
        if cfg.index.backend == IndexBackend::Rados {
            // The index is shared: one instance receives, the others keep
            // their socket bound and stand by.
            use zonelog::capture::notify::server::{bind, LeasedReceiver};
            let listener = Arc::new(bind(notify)?);
            let counters = Arc::new(zonelog::capture::notify::NotifyCounters::default());
            notify_counters = Some(counters.clone());
            let (filter, notify) = (Filter::new(&cfg.filter), notify.clone());
            let make = move |fenced| LeasedReceiver {
                listener: listener.clone(),
                config: notify.clone(),
                index: fenced,
                filter: filter.clone(),
                counters: counters.clone(),
            };
            spawn_leased(
                &mut tasks,
                zonelog::capture::leased::NOTIFY_LEASE,
                make,
                &index,
                cfg,
                shutdown.clone(),
            );
        } else {
            let server = zonelog::capture::notify::start(
                notify,
                index.index.clone(),
                Filter::new(&cfg.filter),
                shutdown.clone(),
            )
            .await?;
            tracing::info!(listen = %server.local_addr, "notify: receiving S3 event notifications on POST /v1/events");
            notify_counters = Some(server.counters.clone());
            tasks.spawn(async move {
                if let Err(e) = server.run().await {
                    tracing::error!(error = %e, "notify receiver failed");
                }
            });
        }
    }
    if let Some(rgw) = &cfg.sources.rgw {
        let (client, _) = rgw_client(cfg)?;
        let capture = RgwCapture::new(
            RgwAdmin::new(client.clone()),
            index.index.clone(),
            Filter::new(&cfg.filter),
            rgw.clone(),
        );
        let counters = capture.counters.clone();
        capture_counters = Some(counters.clone());
        let shutdown = shutdown.clone();
        if cfg.index.backend == IndexBackend::Rados {
            // The index is shared: one instance captures, the others stand by.
            let (filter, rgw) = (Filter::new(&cfg.filter), rgw.clone());
            let make = move |fenced| {
                let mut capture = RgwCapture::new(
                    RgwAdmin::new(client.clone()),
                    fenced,
                    filter.clone(),
                    rgw.clone(),
                );
                capture.counters = counters.clone();
                capture
            };
            spawn_leased(
                &mut tasks,
                zonelog::capture::leased::CAPTURE_LEASE,
                make,
                &index,
                cfg,
                shutdown,
            );
        } else {
            tasks.spawn(async move { capture.run(shutdown).await });
        }
    }
    let collector = match &cfg.target {
        Some(_) => Some(Arc::new(collector(cfg, &index)?)),
        None => None,
    };
    if let Some(collector) = collector.clone() {
        let shutdown = shutdown.clone();
        tasks.spawn(async move { collector.run(shutdown).await });
    }
    let observed = zonelog::ops::Observed {
        zone: cfg.zone.clone(),
        index: index.index.clone(),
        leases: index.leases.clone(),
        rgw_configured: cfg.sources.rgw.is_some(),
        capture: capture_counters,
        notify: notify_counters,
        collector: collector.as_ref().map(|c| c.counters.clone()),
    };
    let server = zonelog::ops::serve(
        cfg.http.listen,
        cfg.http.token.clone(),
        observed,
        shutdown.clone(),
    )
    .await?;
    tasks.spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "http server failed");
        }
    });
    tracing::info!(zone = %cfg.zone, index = %index.location, "zonelog running");
    stop_signals.wait().await?;
    tracing::info!("shutting down: finishing the batch in flight");
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    if let Some(collector) = collector {
        collector.release().await;
    }
    drop(index);
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The topic and notifications of [sources.notify], on the RGW the config
/// names; with that RGW's endpoint for messages.
fn notify_setup(
    cfg: &Config,
    command: &str,
) -> Result<(zonelog::capture::notify::setup::NotifySetup, url::Url)> {
    use zonelog::capture::notify::setup::NotifySetup;
    let notify = cfg
        .sources
        .notify
        .as_ref()
        .context("the config has no [sources.notify] section: nothing to point RGW at")?;
    let (endpoint, access, secret, region) = match (&notify.rgw, &cfg.sources.rgw) {
        (Some(r), _) => (&r.endpoint, &r.access_key, &r.secret_key, &r.region),
        (None, Some(r)) => (&r.endpoint, &r.access_key, &r.secret_key, &r.region),
        (None, None) => bail!(
            "set [sources.notify.rgw] (endpoint and the bucket owner's keys) or [sources.rgw]: {command} needs an RGW to talk to"
        ),
    };
    let push_endpoint = match &notify.push_endpoint {
        Some(url) => url.clone(),
        None if notify.listen.ip().is_unspecified() => bail!(
            "sources.notify.listen is {}, which RGW cannot connect to; set sources.notify.push_endpoint to the URL RGW should use",
            notify.listen
        ),
        None => url::Url::parse(&format!("http://{}/v1/events", notify.listen))
            .context("cannot build the push endpoint from sources.notify.listen")?,
    };
    let client = SignedClient::new(endpoint.clone(), access, secret.clone(), region)?;
    Ok((
        NotifySetup::new(client, &notify.topic, &push_endpoint, &notify.token),
        endpoint.clone(),
    ))
}

async fn setup_notifications(cfg: &Config, dry_run: bool) -> Result<ExitCode> {
    let (setup, endpoint) = notify_setup(cfg, "setup-notifications")?;
    let report = setup
        .run(&Filter::new(&cfg.filter), dry_run, &mut |line| {
            println!("{line}")
        })
        .await
        .with_context(|| format!("setup-notifications on {endpoint}"))?;
    if !report.failed.is_empty() {
        eprintln!(
            "error: {} bucket(s) could not be set up (see above); the keys must be the bucket owner's",
            report.failed.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove_notifications(cfg: &Config, dry_run: bool) -> Result<ExitCode> {
    let (setup, endpoint) = notify_setup(cfg, "remove-notifications")?;
    let report = setup
        .remove(dry_run, &mut |line| println!("{line}"))
        .await
        .with_context(|| format!("remove-notifications on {endpoint}"))?;
    if !report.failed.is_empty() {
        eprintln!(
            "error: {} bucket(s) still have the notification (see above); the keys must be the bucket owner's",
            report.failed.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn backup(cfg: &Config, once: bool) -> Result<ExitCode> {
    use std::io::IsTerminal as _;
    use zonelog::backup::{BackupStats, BarProgress, LogProgress, Progress};
    let backup = zonelog::backup::from_config(cfg).map_err(anyhow::Error::msg)?;
    backup.check_access().await.context("backup cannot start")?;
    let progress: Box<dyn Progress> = if std::io::stderr().is_terminal() {
        Box::new(BarProgress::new(backup.stats.clone()))
    } else {
        Box::new(LogProgress::new(backup.stats.clone()))
    };
    let started = std::time::Instant::now();
    let (stop, shutdown) = watch::channel(false);
    {
        let work = backup.run(progress.as_ref(), once, shutdown);
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r.context("backup failed")?,
            r = wait_for_signal() => {
                r?;
                tracing::info!("stopping at the next checkpoint");
                let _ = stop.send(true);
                work.await.context("backup failed")?;
            }
        }
    }
    drop(progress);
    let s = &backup.stats;
    let (source_requests, dest_requests) = backup.requests();
    println!(
        "backup: {} log objects, {} changes ({} copied, {} deleted, {} retained, {} skipped), {} set aside, {} in {:.1} s; S3 requests: {} source, {} destination",
        BackupStats::get(&s.log_objects),
        BackupStats::get(&s.changes),
        BackupStats::get(&s.copied),
        BackupStats::get(&s.deleted),
        BackupStats::get(&s.retained),
        BackupStats::get(&s.skipped),
        BackupStats::get(&s.set_aside),
        bytesize::ByteSize::b(BackupStats::get(&s.bytes)),
        started.elapsed().as_secs_f64(),
        source_requests,
        dest_requests,
    );
    Ok(ExitCode::SUCCESS)
}

async fn verify(cfg: &Config, buckets: Vec<String>) -> Result<ExitCode> {
    use zonelog::config::DeletePolicy;
    let backup = zonelog::backup::from_config(cfg).map_err(anyhow::Error::msg)?;
    if backup.config().policy == DeletePolicy::Versions {
        bail!("verify compares current objects, but backup.policy = \"versions\" stores each change under KEY@ID; list the destination instead (docs/backup.md)");
    }
    let filter = Filter::new(&cfg.filter);
    let buckets = if buckets.is_empty() {
        let mut all = backup
            .source()
            .list_buckets()
            .await
            .context("verify cannot list the source buckets")?;
        all.retain(|b| filter.matches_bucket(b));
        if all.is_empty() {
            bail!("no source bucket matches [filter]; name the buckets to verify with --bucket, or set filter.buckets / filter.bucket_prefixes");
        }
        all
    } else {
        buckets
    };
    let mut differences = 0;
    for bucket in &buckets {
        let dest_bucket = backup.config().destination.bucket_for(bucket);
        let mut report = |key: &str, d: &zonelog::backup::verify::Difference| {
            println!("{bucket}\t{key:?}\t{d}");
        };
        let summary = zonelog::backup::verify::verify_bucket(
            backup.source(),
            backup.destination().as_ref(),
            backup.config().policy,
            &filter,
            bucket,
            &dest_bucket,
            &mut report,
        )
        .await
        .with_context(|| format!("verify {bucket}"))?;
        eprintln!(
            "{bucket} -> {dest_bucket}: {} objects compared, {} differences",
            summary.compared, summary.differences
        );
        differences += summary.differences;
    }
    Ok(if differences == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn wait_for_signal() -> Result<()> {
    StopSignals::watch()?.wait().await
}

/// SIGTERM and SIGINT blocked on the calling thread while this lives.
struct HeldStopSignals(libc::sigset_t);

impl HeldStopSignals {
    fn hold() -> HeldStopSignals {
        // SAFETY: plain libc calls on a local, initialised signal set.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            HeldStopSignals(set)
        }
    }
}

impl Drop for HeldStopSignals {
    fn drop(&mut self) {
        // SAFETY: unblocks the set blocked in `hold`; a signal that came
        // meanwhile is delivered now, to the handler installed since.
        unsafe {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.0, std::ptr::null_mut());
        }
    }
}

/// SIGTERM and SIGINT, watched from the moment this is made: one that
/// arrives before `wait` is kept for it.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn watch() -> Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn wait(&mut self) -> Result<()> {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        Ok(())
    }
}

async fn logs(command: LogsCommand) -> Result<ExitCode> {
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
        let Some(compression) = compression_of(&name) else {
            continue;
        };
        if !range.overlaps(&name) || filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
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

struct WorkloadShape {
    objects: usize,
    concurrency: usize,
    stride: usize,
    content: String,
}

async fn workload(s3: &zonelog::s3::S3, bucket: &str, shape: &WorkloadShape) -> Result<()> {
    use futures::StreamExt as _;
    let WorkloadShape {
        objects,
        concurrency,
        stride,
        ref content,
    } = *shape;
    s3.create_bucket(bucket).await?;
    let plain = zonelog::s3::ObjectInfo::default();
    let started = std::time::Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(0..objects)
        .map(|n| {
            let plain = &plain;
            async move {
                let n = n * stride;
                let key = format!("demo/{n:06}.txt");
                let body = bytes::Bytes::from(format!("{content} {n}\n"));
                s3.put_bytes(bucket, &key, plain, body).await?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    // A few overwrites and deletes, so the log shows more than puts.
    for n in 0..objects.min(3) {
        let key = format!("demo/{n:06}.txt");
        s3.put_bytes(
            bucket,
            &key,
            &plain,
            bytes::Bytes::from_static(b"changed\n"),
        )
        .await?;
        s3.delete(bucket, &key).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "workload: {objects} puts, {} overwrites, {} deletes in {bucket} ({:.0} puts/s)",
        objects.min(3),
        objects.min(3),
        objects as f64 / secs
    );
    Ok(())
}
