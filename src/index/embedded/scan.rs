//! Reading a shard's entries out of its blocks.

use std::path::Path;

use redb::{Database, ReadableDatabase as _};

use super::handle::EmbeddedIndex;
use super::keys::{check_block, entry_key};
use super::{backend, BLOCKS};
use crate::error::BoxError;
use crate::index::{EntryId, IndexError};

impl EmbeddedIndex {
    /// [`scan_range`] on a blocking thread, after the checks every read
    /// shares.
    /// Up to `limit` entries of a shard in `[from, to)`, each handed with
    /// its encoded record to `push`, which gathers them in `out`.
    pub(super) async fn scan_blocking<T: Send + 'static>(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
        out: T,
        push: impl FnMut(&mut T, EntryId, &[u8]) + Send + 'static,
    ) -> Result<T, IndexError> {
        self.check_shard(shard)?;
        if from >= to || limit == 0 {
            return Ok(out);
        }
        let db = self.db.get().map_err(|e| backend(&self.location, e))?;
        let location = self.location.clone();
        tokio::task::spawn_blocking(move || {
            scan_range(&db, &location, shard, (from, to, limit), out, push)
        })
        .await
        .map_err(|e| backend(&self.location, e))?
    }
}

/// See [`EmbeddedIndex::scan_blocking`].
fn scan_range<T>(
    db: &Database,
    location: &Path,
    shard: u32,
    (from, to, limit): (EntryId, EntryId, usize),
    mut out: T,
    mut push: impl FnMut(&mut T, EntryId, &[u8]),
) -> Result<T, IndexError> {
    let err = |e: BoxError| backend(location, e);
    let tx = db.begin_read().map_err(|e| err(e.into()))?;
    let table = tx.open_table(BLOCKS).map_err(|e| err(e.into()))?;
    let mut taken = 0;
    let mut emit = |out: &mut T, key: &[u8], value: &[u8]| -> Result<bool, IndexError> {
        let (_, block) = check_block(key, value, location)?;
        let start = block.search(from).unwrap_or_else(|at| at);
        for i in start..block.len() {
            let id = block.id(i);
            if id >= to || taken >= limit {
                return Ok(false);
            }
            push(out, id, block.record(i));
            taken += 1;
        }
        Ok(true)
    };
    // Blocks never overlap, so only the last block starting before `from`
    // can hold entries at or after it; the rest start inside the range.
    let (start, end) = (entry_key(shard, from), entry_key(shard, to));
    let floor = table
        .range(entry_key(shard, EntryId::MIN).as_slice()..start.as_slice())
        .map_err(|e| err(e.into()))?
        .next_back();
    if let Some(item) = floor {
        let (k, v) = item.map_err(|e| err(e.into()))?;
        if !emit(&mut out, k.value(), v.value())? {
            return Ok(out);
        }
    }
    for item in table
        .range(start.as_slice()..end.as_slice())
        .map_err(|e| err(e.into()))?
    {
        let (k, v) = item.map_err(|e| err(e.into()))?;
        if !emit(&mut out, k.value(), v.value())? {
            break;
        }
    }
    Ok(out)
}
