//! Capture sources: where changes come from.

pub mod leased;
pub mod notify;
pub mod rgw;
