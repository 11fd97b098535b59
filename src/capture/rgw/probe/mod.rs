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
