//! The `meta` table at open: the layout check, the writer session, and the
//! per-shard counts rebuilt from the blocks.

use std::path::Path;

use redb::{Database, ReadableDatabase as _, ReadableTable as _};
use serde::{Deserialize, Serialize};

use super::handle::ShardCounter;
use super::keys::check_block;
use super::{
    backend, backend_msg, BLOCKS, LATEST, LEASES, MARKERS, META, META_LAYOUT, META_SESSION,
    STORE_FORMAT,
};
use crate::error::BoxError;
use crate::index::{IndexError, IndexLayout};

#[derive(Serialize, Deserialize)]
struct StoredLayout {
    format: u32,
    #[serde(flatten)]
    layout: IndexLayout,
}

/// Checks or records the layout and hands out this open's writer session.
pub(super) fn init_meta(
    db: &Database,
    location: &Path,
    layout: IndexLayout,
) -> Result<u64, IndexError> {
    let err = |e: BoxError| backend(location, e);
    let tx = db.begin_write().map_err(|e| err(e.into()))?;
    let session;
    {
        let mut meta = tx.open_table(META).map_err(|e| err(e.into()))?;
        let stored = meta
            .get(META_LAYOUT)
            .map_err(|e| err(e.into()))?
            .map(|v| v.value().to_vec());
        match stored {
            Some(bytes) => {
                let stored: StoredLayout = serde_json::from_slice(&bytes).map_err(|e| {
                    IndexError::Corrupt(format!("{}: layout record: {e}", location.display()))
                })?;
                if stored.format != STORE_FORMAT {
                    return Err(backend_msg(
                        location,
                        format!(
                            "the index was written in store format {} and this zonelog reads \
                             format {STORE_FORMAT}; drain it with the zonelog that wrote it, \
                             or point the index at a new location",
                            stored.format
                        ),
                    ));
                }
                if stored.layout != layout {
                    return Err(IndexError::LayoutMismatch {
                        location: location.display().to_string(),
                        stored: stored.layout.describe(),
                        requested: layout.describe(),
                    });
                }
            }
            None => {
                let bytes = serde_json::to_vec(&StoredLayout {
                    format: STORE_FORMAT,
                    layout,
                })
                .map_err(|e| err(e.into()))?;
                meta.insert(META_LAYOUT, bytes.as_slice())
                    .map_err(|e| err(e.into()))?;
            }
        }
        session = read_u64(&meta, META_SESSION, location)? + 1;
        meta.insert(META_SESSION, session.to_le_bytes().as_slice())
            .map_err(|e| err(e.into()))?;
        tx.open_table(BLOCKS).map_err(|e| err(e.into()))?;
        tx.open_table(LATEST).map_err(|e| err(e.into()))?;
        tx.open_table(MARKERS).map_err(|e| err(e.into()))?;
        tx.open_table(LEASES).map_err(|e| err(e.into()))?;
    }
    tx.commit().map_err(|e| err(e.into()))?;
    Ok(session)
}

pub(super) fn read_u64(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    name: &str,
    location: &Path,
) -> Result<u64, IndexError> {
    match table.get(name).map_err(|e| backend(location, e))? {
        None => Ok(0),
        Some(v) => {
            let bytes: [u8; 8] = v.value().try_into().map_err(|_| {
                IndexError::Corrupt(format!(
                    "{}: meta {name} is not 8 bytes",
                    location.display()
                ))
            })?;
            Ok(u64::from_le_bytes(bytes))
        }
    }
}

/// Entry and byte counts per shard, rebuilt at open so that stats never
/// cost a scan later.
pub(super) fn count_entries(
    db: &Database,
    location: &Path,
    shards: u32,
) -> Result<Vec<ShardCounter>, IndexError> {
    let err = |e: BoxError| backend(location, e);
    let mut counters = vec![ShardCounter::default(); shards as usize];
    let tx = db.begin_read().map_err(|e| err(e.into()))?;
    let blocks = tx.open_table(BLOCKS).map_err(|e| err(e.into()))?;
    for item in blocks.iter().map_err(|e| err(e.into()))? {
        let (k, v) = item.map_err(|e| err(e.into()))?;
        let (shard, block) = check_block(k.value(), v.value(), location)?;
        let c = counters
            .get_mut(shard as usize)
            .ok_or_else(|| IndexError::Corrupt(format!("block in shard {shard}")))?;
        c.entries += block.len() as u64;
        c.bytes += (k.value().len() + v.value().len()) as u64;
    }
    Ok(counters)
}
