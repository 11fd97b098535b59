//! Probes: which of RGW's logs changed since the last look, seen from
//! RADOS instead of asked of RGW (issue 18; the sources read are in
//! docs/notes/issue-18-change-detection.md).
//!
//! Every write to an object raises its user version, and reads leave it
//! alone. A data-log shard is one object in the zone's log pool: with omap
//! storage its omap holds the entries; with a FIFO (the default since
//! Pacific) it is the FIFO's meta object, and the entries are pushed into
//! part objects `<oid_prefix>.<n>`. A bucket-index shard is one object
//! `.dir.<bucket id>[.<gen>].<shard>` in the index pool, and every bilog
//! entry is an omap write to it. So "unchanged version" means "no new
//! entry"; a changed version may also be a stats update or a trim, which
//! only costs a read.
//!
//! Nothing is lost by trusting an unchanged version: a version is recorded
//! before the log is read over REST, so what is written after it changes
//! the version again, and a log whose read failed is forgotten so that the
//! next look reads it again.

pub mod bilog;
pub mod datalog;
pub mod decode;

pub use bilog::BilogProbe;
pub use datalog::{DatalogProbe, ProbeError, Sweep};

use std::sync::Arc;

use crate::config::RgwRadosConfig;
use crate::rados::{Cluster, IoCtx, RadosError};

/// The connection to the zone's cluster that probes read through; each
/// capture (a new lease term) takes fresh probes from it, which start by
/// reading everything once.
pub struct ProbeSource {
    log_pool: Arc<IoCtx>,
    index_pool: Arc<IoCtx>,
    datalog_prefix: String,
}

/// Why the probes could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProbeSetupError {
    #[error("connecting to the Ceph cluster of {conf} as client.{user}")]
    Connect {
        conf: String,
        user: String,
        #[source]
        source: RadosError,
    },
    #[error("opening pool {pool:?} ({field})")]
    Pool {
        pool: String,
        field: &'static str,
        #[source]
        source: RadosError,
    },
}

impl ProbeSource {
    /// Connects and opens both pools (blocking: run it off the async
    /// threads). A pool that does not exist is an error here, at start,
    /// not a silent fallback later.
    pub fn connect(config: &RgwRadosConfig) -> Result<Self, ProbeSetupError> {
        let cluster = Cluster::connect(
            &config.ceph_conf,
            &config.user,
            config.keyring.as_deref(),
            config.op_timeout,
        )
        .map_err(|source| ProbeSetupError::Connect {
            conf: config.ceph_conf.display().to_string(),
            user: config.user.clone(),
            source,
        })?;
        let open = |pool: &str, field| {
            IoCtx::new(&cluster, pool, "")
                .map(Arc::new)
                .map_err(|source| ProbeSetupError::Pool {
                    pool: pool.to_string(),
                    field,
                    source,
                })
        };
        Ok(ProbeSource {
            log_pool: open(&config.log_pool, "sources.rgw.rados.log_pool")?,
            index_pool: open(&config.index_pool, "sources.rgw.rados.index_pool")?,
            datalog_prefix: config.datalog_prefix.clone(),
        })
    }

    /// Fresh probes of the data log and of the bucket indexes.
    pub fn probes(&self) -> (Arc<DatalogProbe>, Arc<BilogProbe>) {
        (
            Arc::new(DatalogProbe::new(
                self.log_pool.clone(),
                self.datalog_prefix.clone(),
            )),
            Arc::new(BilogProbe::new(self.index_pool.clone())),
        )
    }
}
