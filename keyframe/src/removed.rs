//! Rows a derived column chunk leaves out of the block it reads: a leaf whose rows are another
//! leaf's minus some deleted ones (and whose other changes left a column's values alone)
//! keeps that column's block as it is and names the rows to skip, instead of storing the
//! column again (design/ARCHITECTURE.md, "Derived column chunks").
//!
//! ```text
//! physical u32 (rows of the base block), count u32,
//! count LEB128 varints: the first removed row, then each gap minus one to the next
//! ```

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};

use crate::cache::Decoded;
use crate::error::{Error, Result};
use crate::format::{DecodeError, Decoder, Encoder, checksum};
use crate::node::RecordRef;
use crate::pack::pack_path;
use crate::tree::{Access, Tree};

/// The rows of a base block a derived chunk leaves out: sorted, distinct, each below
/// `physical`, fewer than `physical`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedRows {
    physical: u32,
    rows: Vec<u32>,
    /// xxh3-64 of the encoding: tells derived chunks of one block apart in the cache.
    fingerprint: u64,
}

impl RemovedRows {
    /// The set of `rows` (sorted, distinct, each below `physical`, not all of them) of a
    /// block of `physical` rows; `None` when they break those rules.
    pub fn new(physical: u32, rows: Vec<u32>) -> Option<Arc<Self>> {
        let sorted = rows.windows(2).all(|w| w[0] < w[1]);
        let below = rows.last().is_none_or(|&r| r < physical);
        if !sorted || !below || rows.len() >= physical as usize {
            return None;
        }
        let mut removed = RemovedRows {
            physical,
            rows,
            fingerprint: 0,
        };
        let mut e = Encoder::new();
        removed.encode(&mut e);
        removed.fingerprint = checksum(&e.finish());
        Some(Arc::new(removed))
    }

    /// Rows of the base block.
    pub fn physical(&self) -> usize {
        self.physical as usize
    }

    /// Rows the chunk reads: the base block's minus the removed ones.
    pub fn live(&self) -> usize {
        self.physical as usize - self.rows.len()
    }

    /// The removed rows, ascending.
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }

    /// A checksum of the set, to key cached reads of the derived chunk.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The base block's row that live row `live` reads (`live` < [`RemovedRows::live`]).
    pub fn physical_of(&self, live: usize) -> usize {
        // The answer is live + k, k being the number of removed rows before it: the first
        // k with rows[k] - k > live (rows[k] - k never decreases, so a binary search).
        let (mut lo, mut hi) = (0usize, self.rows.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.rows[mid] as usize - mid <= live {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        live + lo
    }

    /// True for the rows of `physical_rows` (a range of the base block) a read keeps.
    pub fn keep_mask(&self, physical_rows: std::ops::Range<usize>) -> BooleanArray {
        // Set as runs of kept rows between the removed ones, not a bool per row.
        let mut keep = arrow::array::BooleanBufferBuilder::new(physical_rows.len());
        let from = self
            .rows
            .partition_point(|&r| (r as usize) < physical_rows.start);
        let mut at = physical_rows.start;
        for &r in &self.rows[from..] {
            let r = r as usize;
            if r >= physical_rows.end {
                break;
            }
            keep.append_n(r - at, true);
            keep.append(false);
            at = r + 1;
        }
        keep.append_n(physical_rows.end - at, true);
        BooleanArray::new(keep.finish(), None)
    }

    /// Appends the encoding.
    pub fn encode(&self, e: &mut Encoder) {
        e.u32(self.physical).u32(self.rows.len() as u32);
        let mut next = 0u32;
        for &r in &self.rows {
            e.varint(u64::from(r - next));
            next = r + 1;
        }
    }

    /// Reads an encoding, checking the set's rules.
    pub fn decode(d: &mut Decoder<'_>) -> Result<Arc<Self>, DecodeError> {
        let physical = d.u32()?;
        let count = d.u32()?;
        if count >= physical || count as usize > d.remaining() {
            return Err(DecodeError(format!(
                "{count} removed rows of a {physical}-row block"
            )));
        }
        let mut rows = Vec::with_capacity(count as usize);
        let mut next = 0u64;
        for _ in 0..count {
            let gap = d.varint35()?;
            let row = next + gap;
            if row >= u64::from(physical) {
                return Err(DecodeError(format!(
                    "removed row {row} of a {physical}-row block"
                )));
            }
            rows.push(row as u32);
            next = row + 1;
        }
        RemovedRows::new(physical, rows).ok_or_else(|| DecodeError("bad removed-row set".into()))
    }
}

/// The tag deriving the cache key of a derived chunk's rows from its block's hash and the
/// fingerprint of the rows it leaves out.
const REMOVED_TAG: u64 = u64::MAX - 1;

/// Fails unless a derived chunk of `block` leaving out `removed` reads `rows` rows.
pub(crate) fn check_live_rows(block: &RecordRef, removed: &RemovedRows, rows: usize) -> Result<()> {
    if removed.live() == rows {
        return Ok(());
    }
    Err(Error::corrupt(
        pack_path(block.pack),
        block.offset,
        format!(
            "derived chunk reads {} rows where the leaf says {rows}",
            removed.live()
        ),
    ))
}

impl Tree {
    /// The `rows` rows of a derived chunk of `block` (column `column`) that leaves out
    /// `removed`: the block decoded whole, then filtered. Cached reads cache the chunk's
    /// rows, not the block's.
    pub(crate) fn read_derived(
        &self,
        block: &RecordRef,
        removed: &RemovedRows,
        column: usize,
        rows: usize,
        access: Access,
    ) -> Result<ArrayRef> {
        check_live_rows(block, removed, rows)?;
        let t = self.layout().schema.field(column).data_type();
        let cache = &self.source().cache;
        let key = block.hash.derived(&[REMOVED_TAG, removed.fingerprint()]);
        if access == Access::Cached
            && let Some(Decoded::Column(a)) = cache.get(&key)
            && a.data_type() == t
            && a.len() == rows
        {
            return Ok(a);
        }
        let whole = self.read_whole_block(block, column, removed.physical(), Access::Streaming)?;
        let array = arrow::compute::filter(&whole, &removed.keep_mask(0..removed.physical()))?;
        if access == Access::Cached {
            cache.insert(key, Decoded::Column(array.clone()));
        }
        Ok(array)
    }

    /// Rows `want` of a derived chunk of `block` leaving out `removed`: the block rows they
    /// map to, read as [`Tree::read_block_rows`] reads any block's, the removed ones between
    /// them filtered out.
    pub(crate) fn read_derived_rows(
        &self,
        block: &RecordRef,
        removed: &RemovedRows,
        column: usize,
        rows: usize,
        want: std::ops::Range<usize>,
    ) -> Result<ArrayRef> {
        check_live_rows(block, removed, rows)?;
        if want.is_empty() || want.end > rows {
            return self.read_block_rows(block, None, column, removed.physical(), 0..0);
        }
        let first = removed.physical_of(want.start);
        let end = removed.physical_of(want.end - 1) + 1;
        let held = self.read_block_rows(block, None, column, removed.physical(), first..end)?;
        if end - first == want.len() {
            return Ok(held);
        }
        Ok(arrow::compute::filter(
            &held,
            &removed.keep_mask(first..end),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_impossible_set_is_refused() {
        assert!(RemovedRows::new(3, vec![2, 1]).is_none());
        assert!(RemovedRows::new(3, vec![3]).is_none());
        assert!(RemovedRows::new(2, vec![0, 1]).is_none());
        assert!(RemovedRows::new(3, vec![0, 2]).is_some());
    }

    proptest! {
        #[test]
        fn the_set_round_trips_and_maps_live_rows_past_the_removed_ones(
            keep in prop::collection::vec(any::<bool>(), 1..300),
        ) {
            prop_assume!(keep.iter().any(|k| *k));
            let removed: Vec<u32> = (0..keep.len() as u32).filter(|&i| !keep[i as usize]).collect();
            let set = RemovedRows::new(keep.len() as u32, removed).unwrap();
            let mut e = Encoder::new();
            set.encode(&mut e);
            let bytes = e.finish();
            let mut d = Decoder::new(&bytes);
            prop_assert_eq!(&RemovedRows::decode(&mut d).unwrap(), &set);
            d.finish().unwrap();
            for cut in 0..bytes.len() {
                prop_assert!(RemovedRows::decode(&mut Decoder::new(&bytes[..cut])).is_err());
            }
            let live: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
            prop_assert_eq!(set.live(), live.len());
            for (l, &p) in live.iter().enumerate() {
                prop_assert_eq!(set.physical_of(l), p);
            }
            let mask = set.keep_mask(0..keep.len());
            prop_assert_eq!(mask.values().iter().collect::<Vec<_>>(), keep.clone());
            let mid = keep.len() / 2;
            let part = set.keep_mask(mid..keep.len());
            prop_assert_eq!(part.values().iter().collect::<Vec<_>>(), keep[mid..].to_vec());
        }
    }
}
