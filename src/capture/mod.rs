//! Capture sources: where changes come from.

pub mod rgw;
