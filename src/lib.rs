//! zonelog: a complete, ordered, durable record of every object change in an
//! object-store zone. See DESIGN.md (shared) and docs/ for the architecture.
//!
//! Modules follow the data flow: `capture` → `filter` → `index` (+ `lease`)
//! → collector → log encoding → `target` → consumers (`backup`); `s3` is
//! the one S3 client under the target and the backup.

pub mod backup;
pub mod capture;
pub mod changes;
pub mod collector;
pub mod config;
pub mod error;
pub mod filter;
pub mod index;
pub mod lease;
pub mod logs;
pub mod ops;
pub mod rados;
pub mod record;
pub mod s3;
pub mod status;
pub mod target;
#[doc(hidden)]
pub mod testing;
