//! Capture sources: where changes come from.

pub mod notify;
pub mod rgw;
