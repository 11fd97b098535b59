//! The entry key: time-ordered, unique, and sortable both as bytes and as text.

use std::fmt;
use std::str::FromStr;

/// Identifies one entry in the index.
///
/// Ordering is by the change's source time, then by `seq`. `seq` makes keys
/// unique when many changes share a nanosecond: its high 32 bits are the
/// writer session (a number the backend hands out once per open, never
/// reused), the low 32 bits a counter within that session. So two writers —
/// or one writer before and after a restart — can never mint the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    /// The change's source time, nanoseconds since the epoch.
    pub time_ns: u64,
    /// Writer session (high 32 bits) and counter in it (low 32 bits).
    pub seq: u64,
}

/// Length of [`EntryId::to_bytes`].
pub const ENTRY_ID_BYTES: usize = 16;
/// Length of the text form: 20 decimal digits, `-`, 16 hex digits.
pub const ENTRY_ID_TEXT_LEN: usize = 37;

impl EntryId {
    /// The smallest key.
    pub const MIN: EntryId = EntryId { time_ns: 0, seq: 0 };
    /// The largest key.
    pub const MAX: EntryId = EntryId {
        time_ns: u64::MAX,
        seq: u64::MAX,
    };

    /// The key of a change at `time_ns` with this `seq`.
    pub fn new(time_ns: u64, seq: u64) -> Self {
        EntryId { time_ns, seq }
    }

    /// The first possible key at a time: `[at(t1), at(t2))` covers exactly
    /// the changes with `t1 <= time < t2`.
    pub fn at(time_ns: u64) -> Self {
        EntryId { time_ns, seq: 0 }
    }

    /// Big-endian so that byte order equals key order in any ordered store.
    pub fn to_bytes(self) -> [u8; ENTRY_ID_BYTES] {
        let mut out = [0u8; ENTRY_ID_BYTES];
        out[..8].copy_from_slice(&self.time_ns.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// The key [`EntryId::to_bytes`] gave; `None` if `bytes` is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENTRY_ID_BYTES {
            return None;
        }
        let time_ns = u64::from_be_bytes(bytes[..8].try_into().ok()?);
        let seq = u64::from_be_bytes(bytes[8..].try_into().ok()?);
        Some(EntryId { time_ns, seq })
    }

    /// The smallest key greater than this one.
    pub fn successor(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(EntryId { seq, ..self }),
            None => self.time_ns.checked_add(1).map(EntryId::at),
        }
    }
}

/// Fixed width, so that text order equals key order (RADOS omap keys and the
/// `id` field of log records use it).
impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}-{:016x}", self.time_ns, self.seq)
    }
}

/// Text that is not an entry id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry id {0:?} is not of the form <20 digits>-<16 hex digits>")]
pub struct BadEntryId(pub String);

impl FromStr for EntryId {
    type Err = BadEntryId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEntryId(s.to_string());
        if s.len() != ENTRY_ID_TEXT_LEN || s.as_bytes()[20] != b'-' {
            return Err(bad());
        }
        let (time, seq) = (&s[..20], &s[21..]);
        if !time.bytes().all(|b| b.is_ascii_digit()) || !seq.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad());
        }
        Ok(EntryId {
            time_ns: time.parse().map_err(|_| bad())?,
            seq: u64::from_str_radix(seq, 16).map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn byte_and_text_order_equal_key_order(a in any::<(u64, u64)>(), b in any::<(u64, u64)>()) {
            let (a, b) = (EntryId::new(a.0, a.1), EntryId::new(b.0, b.1));
            prop_assert_eq!(a.cmp(&b), a.to_bytes().cmp(&b.to_bytes()));
            prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
            prop_assert_eq!(EntryId::from_bytes(&a.to_bytes()), Some(a));
            prop_assert_eq!(a.to_string().parse::<EntryId>(), Ok(a));
        }
    }

    #[test]
    fn text_form_is_fixed_width() {
        assert_eq!(
            EntryId::new(1_764_000_000_123_456_789, 0x1_0000_002a).to_string(),
            "01764000000123456789-000000010000002a"
        );
        assert!("1764-2a".parse::<EntryId>().is_err());
        assert!("0176400000012345678x-000000010000002a"
            .parse::<EntryId>()
            .is_err());
    }

    #[test]
    fn successor_is_next_key() {
        assert_eq!(EntryId::new(5, 1).successor(), Some(EntryId::new(5, 2)));
        assert_eq!(
            EntryId::new(5, u64::MAX).successor(),
            Some(EntryId::new(6, 0))
        );
        assert_eq!(EntryId::MAX.successor(), None);
    }
}
