//! Pending changes in the index, page by page: what `/changes` serves and
//! `zonelog changes` prints.
//!
//! Every request is bounded, because the index can hold millions of
//! entries and `[http]` may face more than one client: a page ends after
//! `limit` matching records or after `SCAN_BUDGET` scanned entries,
//! whichever comes first, and then names where the next page starts with
//! a last line `{"next_after":"<id>"}` (a line without `v`, so no record).
//! A client that went away stops the scan within one chunk.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::index::{ChangeIndex, EntryId, IndexError, MergedReader};

/// Records per page unless the query asks for another number.
pub const DEFAULT_LIMIT: usize = 1000;
/// The most records one page may ask for.
pub const MAX_LIMIT: usize = 100_000;
/// Entries one page scans at most, matching or not.
pub const SCAN_BUDGET: u64 = 200_000;
/// Bytes sent at once.
const CHUNK_BYTES: usize = 64 * 1024;

/// Query of `/changes`: the filters of `zonelog changes`, and the page.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct ChangesQuery {
    pub from_ns: Option<u64>,
    pub to_ns: Option<u64>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    /// Go on after this entry id (the `next_after` of the page before).
    pub after: Option<String>,
    pub limit: Option<usize>,
}

/// A query that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BadQuery {
    #[error("limit {0} is outside 1..={MAX_LIMIT}")]
    Limit(usize),
    #[error("after: {0}")]
    After(#[from] crate::index::key::BadEntryId),
}

/// A checked query.
#[derive(Debug, Clone)]
pub struct Page {
    query: ChangesQuery,
    after: Option<EntryId>,
    limit: usize,
}

impl Page {
    pub fn new(query: ChangesQuery) -> Result<Page, BadQuery> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(BadQuery::Limit(limit));
        }
        let after = query.after.as_deref().map(str::parse).transpose()?;
        Ok(Page {
            query,
            after,
            limit,
        })
    }

    /// Streams the page's records as JSON lines to `out` in chunks, then
    /// the `next_after` line when the page was cut. Stops early, without
    /// error, when `out` is closed.
    pub async fn stream(
        &self,
        index: Arc<dyn ChangeIndex>,
        zone: &str,
        out: mpsc::Sender<Vec<u8>>,
    ) -> Result<(), IndexError> {
        let q = &self.query;
        let from = match self.after {
            Some(after) => after.max(EntryId::at(q.from_ns.unwrap_or(0))),
            None => EntryId::at(q.from_ns.unwrap_or(0)),
        };
        let to = q.to_ns.map_or(EntryId::MAX, EntryId::at);
        let mut reader = MergedReader::new(index, from, to, 1000);
        let (mut chunk, mut matched, mut scanned) = (Vec::new(), 0usize, 0u64);
        let mut cut_after = None;
        while let Some(entry) = reader.next().await? {
            if self.after.is_some_and(|after| entry.id <= after) {
                continue;
            }
            scanned += 1;
            let r = &entry.record;
            let wanted = q.bucket.as_ref().is_none_or(|b| *b == r.bucket)
                && q.prefix
                    .as_ref()
                    .is_none_or(|p| r.key.starts_with(p.as_str()));
            if wanted {
                crate::logs::format::encode_line(zone, &entry, &mut chunk);
                matched += 1;
            }
            if chunk.len() >= CHUNK_BYTES || scanned % 1000 == 0 {
                if out.is_closed() {
                    return Ok(());
                }
                if chunk.len() >= CHUNK_BYTES && out.send(std::mem::take(&mut chunk)).await.is_err()
                {
                    return Ok(());
                }
            }
            if matched >= self.limit || scanned >= SCAN_BUDGET {
                cut_after = Some(entry.id);
                break;
            }
        }
        if let Some(id) = cut_after {
            chunk.extend_from_slice(format!("{{\"next_after\":\"{id}\"}}\n").as_bytes());
        }
        if !chunk.is_empty() {
            let _ = out.send(chunk).await;
        }
        Ok(())
    }
}

/// The `next_after` of a page's last line, if the page was cut.
pub fn next_after(page: &[u8]) -> Option<String> {
    let last = page.split(|b| *b == b'\n').rev().find(|l| !l.is_empty())?;
    #[derive(serde::Deserialize)]
    struct Next {
        next_after: String,
    }
    serde_json::from_slice::<Next>(last)
        .ok()
        .map(|n| n.next_after)
}

/// Whether a line is the page's `next_after` line, not a record.
pub fn is_next_line(line: &[u8]) -> bool {
    line.starts_with(b"{\"next_after\":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_page_names_where_the_next_begins() {
        let page = b"{\"v\":2}\n{\"next_after\":\"00000000000000000005-0000000000000001\"}\n";
        assert_eq!(
            next_after(page).as_deref(),
            Some("00000000000000000005-0000000000000001")
        );
        assert!(next_after(b"{\"v\":2}\n").is_none());
        assert!(is_next_line(b"{\"next_after\":\"x\"}"));
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        let page = |limit, after: Option<&str>| {
            Page::new(ChangesQuery {
                limit,
                after: after.map(str::to_string),
                ..Default::default()
            })
        };
        assert!(page(Some(0), None).is_err());
        assert!(page(Some(MAX_LIMIT + 1), None).is_err());
        assert!(page(None, Some("nonsense")).is_err());
        assert!(page(Some(10), Some("00000000000000000005-0000000000000001")).is_ok());
    }
}
