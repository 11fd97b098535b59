//! The RGW pull source: tails the zone's data log and bucket-index logs.

pub mod admin;
mod api;
mod counters;
mod drain;
mod enrich;
mod full_sync;
mod generations;
mod lifecycle;
pub mod listing;
pub mod mapping;
mod poll;
pub mod probe;
mod probing;
mod source_trim;
mod start;
pub mod tail;
mod trims;

pub use api::{
    BilogEntry, BilogInfo, BilogPage, BucketInstance, DatalogEntry, DatalogInfo, DatalogPage,
    RgwAdmin,
};
pub use tail::{BucketShard, CaptureCounters, CaptureError, PollReport, RgwCapture};
pub use trims::datalog_shard_of;
