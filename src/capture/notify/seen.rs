//! The bounded memory of recently accepted notifications, kept as source
//! markers in the index so that it survives a restart.
//!
//! A redelivery happens when a sender did not see our 200 (zonelog stopped
//! after the commit, a timeout, a lost connection) and retries — seconds to
//! minutes later. So the set remembers the last N accepted events, not all
//! of them: a ring of slots, each one index marker holding up to
//! [`PER_SLOT`] 128-bit event hashes behind a generation number. New hashes
//! go into the newest slot; when it is full the oldest slot is overwritten.
//! The changed slots are written in the same atomic batch as the records
//! they describe, so "stored" and "remembered as stored" cannot disagree
//! after a crash. No marker is ever deleted, so the index needs no new
//! operation, and the space is fixed: `slots × 64 KiB`.

use std::collections::HashSet;

use crate::index::SourceMarker;

pub const SEEN_PREFIX: &str = "notify/seen/";
/// Hashes per slot: 8 + 4000 × 16 bytes stays under the index's 64 KiB
/// marker limit.
pub const PER_SLOT: usize = 4000;
const HEADER: usize = 8;

#[derive(Debug, Clone, Default)]
struct Slot {
    generation: u64,
    keys: Vec<u128>,
}

#[derive(Debug)]
pub struct SeenSet {
    slots: Vec<Slot>,
    current: usize,
    members: HashSet<u128>,
}

/// Slots rewritten by one batch; applied to the set only once the batch is
/// durable.
#[derive(Debug, Default)]
pub struct Staged {
    slots: Vec<(usize, Slot)>,
    current: usize,
    pub markers: Vec<SourceMarker>,
}

#[derive(Debug, thiserror::Error)]
#[error("index marker {name} is not a notify seen-set slot: {reason}")]
pub struct CorruptSlot {
    pub name: String,
    pub reason: String,
}

fn slot_name(i: usize) -> String {
    format!("{SEEN_PREFIX}{i:05}")
}

impl SeenSet {
    /// Room for at least `capacity` events (and never fewer than 4 slots,
    /// so one batch never overwrites a slot it has just filled).
    pub fn new(capacity: usize) -> Self {
        let slots = capacity.div_ceil(PER_SLOT).max(4);
        SeenSet {
            slots: vec![Slot::default(); slots],
            current: 0,
            members: HashSet::new(),
        }
    }

    /// The most keys one [`stage`](Self::stage) call may take.
    pub fn max_batch(&self) -> usize {
        (self.slots.len() - 2) * PER_SLOT
    }

    /// The set as committed in the index. Slots beyond the configured
    /// number (the capacity was lowered) are left alone and ignored.
    pub fn load(capacity: usize, markers: &[SourceMarker]) -> Result<Self, CorruptSlot> {
        let mut set = SeenSet::new(capacity);
        for m in markers {
            let corrupt = |reason: &str| CorruptSlot {
                name: m.name.clone(),
                reason: reason.to_string(),
            };
            let Some(index) = m
                .name
                .strip_prefix(SEEN_PREFIX)
                .and_then(|i| i.parse::<usize>().ok())
            else {
                continue;
            };
            if index >= set.slots.len() {
                continue;
            }
            if m.value.len() < HEADER || !(m.value.len() - HEADER).is_multiple_of(16) {
                return Err(corrupt("length is not 8 + 16 × n"));
            }
            let mut generation = [0u8; HEADER];
            generation.copy_from_slice(&m.value[..HEADER]);
            let keys: Vec<u128> = m.value[HEADER..]
                .chunks_exact(16)
                .map(|c| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(c);
                    u128::from_be_bytes(b)
                })
                .collect();
            set.slots[index] = Slot {
                generation: u64::from_be_bytes(generation),
                keys,
            };
        }
        set.current = set
            .slots
            .iter()
            .enumerate()
            .max_by_key(|(i, s)| (s.generation, std::cmp::Reverse(*i)))
            .map_or(0, |(i, _)| i);
        for slot in &set.slots {
            set.members.extend(slot.keys.iter().copied());
        }
        Ok(set)
    }

    pub fn contains(&self, key: u128) -> bool {
        self.members.contains(&key)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The slot markers that record `keys` (new, distinct keys) as seen.
    pub fn stage(&self, keys: &[u128]) -> Staged {
        let mut staged = Staged {
            current: self.current,
            ..Staged::default()
        };
        if keys.is_empty() {
            return staged;
        }
        let mut slot = self.slots[self.current].clone();
        let mut index = self.current;
        for key in keys {
            if slot.keys.len() >= PER_SLOT {
                let generation = slot.generation + 1;
                staged.slots.push((index, std::mem::take(&mut slot)));
                index = (index + 1) % self.slots.len();
                slot = Slot {
                    generation,
                    keys: Vec::new(),
                };
            }
            slot.keys.push(*key);
        }
        staged.slots.push((index, slot));
        staged.current = index;
        staged.markers = staged
            .slots
            .iter()
            .map(|(i, s)| {
                let mut value = Vec::with_capacity(HEADER + 16 * s.keys.len());
                value.extend_from_slice(&s.generation.to_be_bytes());
                for k in &s.keys {
                    value.extend_from_slice(&k.to_be_bytes());
                }
                SourceMarker {
                    name: slot_name(*i),
                    value,
                }
            })
            .collect();
        staged
    }

    /// Takes in what [`stage`](Self::stage) planned, after it was committed.
    pub fn apply(&mut self, staged: Staged) {
        for (i, slot) in staged.slots {
            let old = std::mem::replace(&mut self.slots[i], slot);
            for k in &old.keys {
                self.members.remove(k);
            }
            self.members.extend(self.slots[i].keys.iter().copied());
        }
        self.current = staged.current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(set: &mut SeenSet, store: &mut Vec<SourceMarker>, keys: &[u128]) {
        let staged = set.stage(keys);
        for m in &staged.markers {
            store.retain(|s| s.name != m.name);
            store.push(m.clone());
        }
        set.apply(staged);
    }

    #[test]
    fn remembers_across_reload_and_forgets_the_oldest() {
        let capacity = 4 * PER_SLOT;
        let mut set = SeenSet::new(capacity);
        let mut store = Vec::new();
        let first: Vec<u128> = (0..10).collect();
        commit(&mut set, &mut store, &first);
        assert!(set.contains(3));
        let reloaded = SeenSet::load(capacity, &store).unwrap();
        assert!(reloaded.contains(3) && !reloaded.contains(10));
        // Fill well past the capacity: the first keys fall out, the newest
        // stay, and the memory never exceeds the ring.
        let mut next = 10u128;
        for _ in 0..12 {
            let batch: Vec<u128> = (next..next + 1500).collect();
            next += 1500;
            commit(&mut set, &mut store, &batch);
            assert!(set.len() <= capacity);
        }
        assert!(!set.contains(3));
        assert!(set.contains(next - 1) && set.contains(next - 3000));
        let reloaded = SeenSet::load(capacity, &store).unwrap();
        assert_eq!(reloaded.len(), set.len());
        assert!(reloaded.contains(next - 1) && !reloaded.contains(3));
        assert_eq!(reloaded.current, set.current);
        assert!(store
            .iter()
            .all(|m| m.value.len() <= crate::index::MAX_MARKER_BYTES));
    }

    #[test]
    fn a_batch_of_the_maximum_size_fits() {
        let mut set = SeenSet::new(16_384);
        let mut store = Vec::new();
        let keys: Vec<u128> = (0..set.max_batch() as u128).collect();
        commit(&mut set, &mut store, &keys);
        assert_eq!(set.len(), keys.len());
    }

    #[test]
    fn corrupt_slots_are_reported() {
        let bad = SourceMarker {
            name: slot_name(1),
            value: vec![0; 9],
        };
        assert!(SeenSet::load(16_384, &[bad]).is_err());
    }
}
