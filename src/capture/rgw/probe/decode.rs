//! Just enough of Ceph's binary encoding to read the two small structures
//! the data-log probe needs: a FIFO's meta object (`rados::cls::fifo::info`)
//! and the data log's generations object (`logback_generations`).
//!
//! Ceph encodes little-endian integers, strings as `u32` length + bytes, and
//! versioned structs as `ENCODE_START(v, compat)`: `u8 v`, `u8 compat`,
//! `u32 len`, then `len` bytes. Fields are only ever appended to a struct,
//! so a reader that takes the leading fields it knows and skips to the
//! block's end stays right on later releases (checked in ceph/ceph's
//! `cls_fifo_types.h` and `rgw_log_backing.h`, Pacific to Tentacle).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("{what}: ends after {at} bytes, {need} more expected")]
    Short {
        what: &'static str,
        at: usize,
        need: usize,
    },
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

/// A cursor over encoded bytes; every read names what it reads for errors.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Decoder { bytes, at: 0 }
    }

    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = &self.bytes[self.at..];
        if rest.len() < n {
            return Err(DecodeError::Short {
                what,
                at: self.at,
                need: n - rest.len(),
            });
        }
        self.at += n;
        Ok(&rest[..n])
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(what, 1)?[0])
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(what, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(what, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(self.u64(what)? as i64)
    }

    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let len = self.u32(what)? as usize;
        let bytes = self.take(what, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| DecodeError::Invalid {
            what,
            reason: e.to_string(),
        })
    }

    /// An `ENCODE_START` block: its version and a decoder over its body.
    /// The body may be cut short (a partial read of a large object); the
    /// caller reads only the leading fields it needs.
    pub fn block(&mut self, what: &'static str) -> Result<(u8, Decoder<'a>), DecodeError> {
        let version = self.u8(what)?;
        let _compat = self.u8(what)?;
        let len = self.u32(what)? as usize;
        let available = (self.bytes.len() - self.at).min(len);
        let body = Decoder::new(&self.bytes[self.at..self.at + available]);
        self.at += available;
        Ok((version, body))
    }
}

/// What the probe needs of a FIFO's meta object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoHead {
    /// Part objects are named `<oid_prefix>.<part number>`.
    pub oid_prefix: String,
    /// The part RGW pushes to; -1 before the first push.
    pub head_part_num: i64,
}

impl FifoHead {
    pub fn head_part_oid(&self) -> Option<String> {
        (self.head_part_num >= 0).then(|| format!("{}.{}", self.oid_prefix, self.head_part_num))
    }
}

/// Decodes the leading fields of `rados::cls::fifo::info`: `id`, `version`
/// (an objv block), `oid_prefix`, `params` (a block), `tail_part_num`,
/// `head_part_num`.
pub fn fifo_head(bytes: &[u8]) -> Result<FifoHead, DecodeError> {
    let (_, mut info) = Decoder::new(bytes).block("fifo info")?;
    let _id = info.string("fifo id")?;
    info.block("fifo objv")?;
    let oid_prefix = info.string("fifo oid_prefix")?;
    info.block("fifo params")?;
    let _tail = info.i64("fifo tail_part_num")?;
    let head_part_num = info.i64("fifo head_part_num")?;
    if oid_prefix.is_empty() {
        return Err(DecodeError::Invalid {
            what: "fifo oid_prefix",
            reason: "empty".into(),
        });
    }
    Ok(FifoHead {
        oid_prefix,
        head_part_num,
    })
}

/// How a data-log generation stores its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// cls_log entries in the omap of `data_log.N`.
    Omap,
    /// A cls_fifo queue: meta object `data_log.N`, parts beside it.
    Fifo,
}

/// The newest generation named by `data_loggenerations_metadata`: a
/// `flat_map<u64, logback_generation>` (`u32` count, then key + block of
/// `gen_id: u64`, `type: u8`, then a field that changed between releases
/// and that the block length lets us skip).
pub fn newest_generation(bytes: &[u8]) -> Result<(u64, LogKind), DecodeError> {
    let mut d = Decoder::new(bytes);
    let count = d.u32("generations count")?;
    let mut newest = None;
    for _ in 0..count {
        let _key = d.u64("generation key")?;
        let (_, mut g) = d.block("logback_generation")?;
        let gen_id = g.u64("gen_id")?;
        let kind = match g.u8("log type")? {
            0 => LogKind::Omap,
            1 => LogKind::Fifo,
            other => {
                return Err(DecodeError::Invalid {
                    what: "log type",
                    reason: format!("unknown type {other}"),
                })
            }
        };
        if newest.is_none_or(|(n, _)| gen_id >= n) {
            newest = Some((gen_id, kind));
        }
    }
    newest.ok_or(DecodeError::Invalid {
        what: "generations",
        reason: "none listed".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// `rados get data_log.12` on the Tentacle 20.2.4 dev zone.
    #[test]
    fn a_fifo_meta_object_from_tentacle() {
        let bytes = hex(
            "0101 9600 0000 0b00 0000 6461 7461 5f6c 6f67 2e31 3201 011c 0000 0010 0000 0042
             3955 664c 4149 7473 4a30 4e7a 596f 5a03 0000 0000 0000 0017 0000 0064 6174 615f
             6c6f 672e 3132 2e4f 6964 5479 486b 5736 6565 0101 1800 0000 0000 4000 0000 0000
             0080 0000 0000 0000 c67f 3f00 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000
             0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000",
        );
        let head = fifo_head(&bytes).expect("decodes");
        assert_eq!(head.oid_prefix, "data_log.12.OidTyHkW6ee");
        assert_eq!(head.head_part_num, 0);
        assert_eq!(
            head.head_part_oid().as_deref(),
            Some("data_log.12.OidTyHkW6ee.0")
        );
        // A read cut after head_part_num is still enough.
        assert_eq!(fifo_head(&bytes[..0x80]).expect("short read"), head);
        assert!(fifo_head(&bytes[..40]).is_err());
    }

    /// `rados get data_loggenerations_metadata` on the Tentacle dev zone.
    #[test]
    fn the_generations_object_from_tentacle() {
        let bytes = hex("0100 0000 0000 0000 0000 0000 0101 0a00 0000 0000 0000 0000 0000 0100");
        assert_eq!(newest_generation(&bytes), Ok((0, LogKind::Fifo)));
    }

    #[test]
    fn the_newest_generation_wins_and_later_fields_are_skipped() {
        let mut bytes = 2u32.to_le_bytes().to_vec();
        for (gen, kind, extra) in [
            (0u64, 1u8, vec![1u8, 9, 9, 9, 9, 9, 9, 9, 9]),
            (1, 0, vec![0]),
        ] {
            bytes.extend(gen.to_le_bytes());
            bytes.extend([1, 1]);
            bytes.extend((9 + extra.len() as u32).to_le_bytes());
            bytes.extend(gen.to_le_bytes());
            bytes.push(kind);
            bytes.extend(extra);
        }
        assert_eq!(newest_generation(&bytes), Ok((1, LogKind::Omap)));
        assert!(newest_generation(&bytes[..20]).is_err());
        assert!(newest_generation(&0u32.to_le_bytes()).is_err());
    }

    proptest::proptest! {
        /// Any bytes give a value or an error, never a panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = fifo_head(&bytes);
            let _ = newest_generation(&bytes);
        }
    }
}
