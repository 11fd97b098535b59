//! The stored form of a record's details (format version 2 and later): one
//! block after the source, so a version 1 entry, written before details
//! existed, is still read (as a record without details).
//!
//! ```text
//! opt str sequence | opt str storage_class | opt str content_type
//! | opt str encryption | opt str checksum_algorithm | opt pairs tags
//! | opt pairs user_metadata | opt u64 version_epoch | opt str requester
//! | opt str source_ip | opt str request_id
//! pairs = u32 count + count × (str name, str value), names ascending
//! ```

use std::collections::BTreeMap;

use super::{put_opt_str, put_str, DecodeError, Reader};
use crate::record::ChangeDetails;

/// [`ChangeDetails`], borrowed from the stored bytes or from a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetailsView<'a> {
    pub sequence: Option<&'a str>,
    pub storage_class: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub encryption: Option<&'a str>,
    pub checksum_algorithm: Option<&'a str>,
    pub tags: Option<PairsView<'a>>,
    pub user_metadata: Option<PairsView<'a>>,
    pub version_epoch: Option<u64>,
    pub requester: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

/// A name → value map (tags, user metadata), in name order, either still
/// encoded (read from an index entry, checked once when viewed) or a
/// record's own map.
#[derive(Debug, Clone, Copy)]
pub enum PairsView<'a> {
    Encoded { count: u32, bytes: &'a [u8] },
    Map(&'a BTreeMap<String, String>),
}

impl<'a> PairsView<'a> {
    pub fn iter(&self) -> PairsIter<'a> {
        match *self {
            PairsView::Encoded { count, bytes } => PairsIter::Encoded {
                left: count,
                reader: Reader { bytes, at: 0 },
            },
            PairsView::Map(map) => PairsIter::Map(map.iter()),
        }
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl PartialEq for PairsView<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for PairsView<'_> {}

pub enum PairsIter<'a> {
    Encoded { left: u32, reader: Reader<'a> },
    Map(std::collections::btree_map::Iter<'a, String, String>),
}

impl<'a> Iterator for PairsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            PairsIter::Encoded { left, reader } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                // Checked when the entry was viewed (`view_pairs`), so
                // these reads cannot fail; stop rather than panic if they do.
                let name = reader.str().ok()?;
                let value = reader.str().ok()?;
                Some((name, value))
            }
            PairsIter::Map(iter) => iter.next().map(|(k, v)| (k.as_str(), v.as_str())),
        }
    }
}

impl<'a> DetailsView<'a> {
    pub fn of(d: &'a ChangeDetails) -> Self {
        DetailsView {
            sequence: d.sequence.as_deref(),
            storage_class: d.storage_class.as_deref(),
            content_type: d.content_type.as_deref(),
            encryption: d.encryption.as_deref(),
            checksum_algorithm: d.checksum_algorithm.as_deref(),
            tags: d.tags.as_ref().map(PairsView::Map),
            user_metadata: d.user_metadata.as_ref().map(PairsView::Map),
            version_epoch: d.version_epoch,
            requester: d.requester.as_deref(),
            source_ip: d.source_ip.as_deref(),
            request_id: d.request_id.as_deref(),
        }
    }

    pub fn to_details(&self) -> ChangeDetails {
        let owned = |s: Option<&str>| s.map(str::to_string);
        ChangeDetails {
            sequence: owned(self.sequence),
            storage_class: owned(self.storage_class),
            content_type: owned(self.content_type),
            encryption: owned(self.encryption),
            checksum_algorithm: owned(self.checksum_algorithm),
            tags: self.tags.map(|p| p.to_map()),
            user_metadata: self.user_metadata.map(|p| p.to_map()),
            version_epoch: self.version_epoch,
            requester: owned(self.requester),
            source_ip: owned(self.source_ip),
            request_id: owned(self.request_id),
        }
    }
}

pub(super) fn encode_details(d: &ChangeDetails, out: &mut Vec<u8>) {
    put_opt_str(out, d.sequence.as_deref());
    put_opt_str(out, d.storage_class.as_deref());
    put_opt_str(out, d.content_type.as_deref());
    put_opt_str(out, d.encryption.as_deref());
    put_opt_str(out, d.checksum_algorithm.as_deref());
    put_opt_pairs(out, d.tags.as_ref());
    put_opt_pairs(out, d.user_metadata.as_ref());
    match d.version_epoch {
        Some(epoch) => {
            out.push(1);
            out.extend_from_slice(&epoch.to_le_bytes());
        }
        None => out.push(0),
    }
    put_opt_str(out, d.requester.as_deref());
    put_opt_str(out, d.source_ip.as_deref());
    put_opt_str(out, d.request_id.as_deref());
}

pub(super) fn view_details<'a>(r: &mut Reader<'a>) -> Result<DetailsView<'a>, DecodeError> {
    Ok(DetailsView {
        sequence: r.opt_str()?,
        storage_class: r.opt_str()?,
        content_type: r.opt_str()?,
        encryption: r.opt_str()?,
        checksum_algorithm: r.opt_str()?,
        tags: view_opt_pairs(r)?,
        user_metadata: view_opt_pairs(r)?,
        version_epoch: if r.flag()? { Some(r.u64()?) } else { None },
        requester: r.opt_str()?,
        source_ip: r.opt_str()?,
        request_id: r.opt_str()?,
    })
}

fn put_opt_pairs(out: &mut Vec<u8>, pairs: Option<&BTreeMap<String, String>>) {
    match pairs {
        Some(pairs) => {
            out.push(1);
            out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
            for (name, value) in pairs {
                put_str(out, name);
                put_str(out, value);
            }
        }
        None => out.push(0),
    }
}

fn view_opt_pairs<'a>(r: &mut Reader<'a>) -> Result<Option<PairsView<'a>>, DecodeError> {
    if !r.flag()? {
        return Ok(None);
    }
    let count = r.u32()?;
    let start = r.at;
    let mut previous: Option<&str> = None;
    for _ in 0..count {
        let name = r.str()?;
        r.str()?;
        // Names ascending and unique: what a map encodes, and what lets
        // the view compare equal to the map it came from.
        if previous.is_some_and(|p| p >= name) {
            return Err(DecodeError(format!("pair names out of order at {name:?}")));
        }
        previous = Some(name);
    }
    Ok(Some(PairsView::Encoded {
        count,
        bytes: &r.bytes[start..r.at],
    }))
}
