//! Keys of the `blocks` table (shard ‖ first EntryId) and the check that a
//! stored block matches its key.

use std::path::Path;

use crate::index::block::Block;
use crate::index::{EntryId, IndexError};

pub(super) const ENTRY_KEY_BYTES: usize = 4 + crate::index::key::ENTRY_ID_BYTES;

pub(super) fn entry_key(shard: u32, id: EntryId) -> [u8; ENTRY_KEY_BYTES] {
    let mut key = [0u8; ENTRY_KEY_BYTES];
    key[..4].copy_from_slice(&shard.to_be_bytes());
    key[4..].copy_from_slice(&id.to_bytes());
    key
}

pub(super) fn split_entry_key(key: &[u8]) -> Option<(u32, EntryId)> {
    if key.len() != ENTRY_KEY_BYTES {
        return None;
    }
    let shard = u32::from_be_bytes(key[..4].try_into().ok()?);
    Some((shard, EntryId::from_bytes(&key[4..])?))
}

/// Parses a stored block and checks that its key names its first entry.
pub(super) fn check_block<'a>(
    key: &[u8],
    value: &'a [u8],
    location: &Path,
) -> Result<(u32, Block<'a>), IndexError> {
    let corrupt = |what: String| IndexError::Corrupt(format!("{}: {what}", location.display()));
    let (shard, first) =
        split_entry_key(key).ok_or_else(|| corrupt(format!("bad block key {key:02x?}")))?;
    let block = Block::parse(value).map_err(|e| corrupt(format!("block {shard}/{first}: {e}")))?;
    if block.first() != first {
        return Err(corrupt(format!(
            "block {shard}/{first} starts at {}",
            block.first()
        )));
    }
    Ok((shard, block))
}
