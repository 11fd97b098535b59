//! What the commands share: the config (and logging set up from it), the
//! index, the RGW client, the target, the collector, and requests to the
//! running service.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use zonelog::capture::rgw::admin::SignedClient;
use zonelog::collector::Collector;
use zonelog::config::{Config, IndexBackend, LogFormat};
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::rados::{RadosIndex, RadosOptions};
use zonelog::index::ChangeIndex;
use zonelog::lease::{process_holder_id, LeaseStore};
use zonelog::target::Target;

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

pub(crate) fn load_config(path: &Path) -> Result<Config> {
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
pub(crate) struct OpenIndex {
    pub(crate) index: Arc<dyn ChangeIndex>,
    pub(crate) leases: Arc<dyn LeaseStore>,
    pub(crate) location: String,
}

pub(crate) async fn open_index(cfg: &Config) -> Result<OpenIndex> {
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

pub(crate) fn rgw_client(
    cfg: &Config,
) -> Result<(SignedClient, &zonelog::config::RgwSourceConfig)> {
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

pub(crate) fn target(cfg: &Config) -> Result<Target> {
    let target = cfg
        .target
        .as_ref()
        .context("the config has no [target] section")?;
    Ok(Target::from_config(target)?)
}

pub(crate) fn collector(cfg: &Config, index: &OpenIndex) -> Result<Collector> {
    Ok(Collector::new(
        index.index.clone(),
        index.leases.clone(),
        target(cfg)?,
        &cfg.zone,
        cfg.collector.clone(),
        process_holder_id(),
    ))
}

/// GET from the running service on `http.listen`; `None` when nothing
/// listens there (then the caller opens the index itself).
pub(crate) async fn service_get(
    cfg: &Config,
    path_and_query: &str,
) -> Result<Option<bytes::Bytes>> {
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
