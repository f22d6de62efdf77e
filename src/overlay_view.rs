//! What a reader needs of a table's overlay at one version: its trie, deletion vector and
//! live rows, and its row batches; and the masks and lookups scans, gets and ranges use.

use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder, RecordBatch};
use reeldb_keyframe::RecordRef;
use reeldb_keyframe::tree::{Access, Tree};
use reeldb_overlay::hamt::{for_each, get};
use reeldb_overlay::{Entry, NodeLog, NodeRef, OverlayRefs, OverlayVersion, RowLocation, key_hash};
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::catalog::version::{BatchRecord, OverlayRecord};
use crate::error::Result;

/// Sets bit `base + v - origin` of `mask` to `value` for every `v` of `bitmap` within `range`
/// (every such `base + v` is at least `origin`).
fn mark(
    mask: &mut BooleanBufferBuilder,
    bitmap: &RoaringBitmap,
    base: u64,
    origin: u64,
    range: impl RangeBounds<u32>,
    value: bool,
) {
    let mut it = bitmap.range(range);
    let mut chunk = [0u32; 256];
    loop {
        let got = it.next_many(&mut chunk);
        if got.is_empty() {
            break;
        }
        for &v in got.iter() {
            mask.set_bit((base + u64::from(v) - origin) as usize, value);
        }
    }
}

/// Which of the generation rows `start..start + rows` are in `live`; `None` when none is.
fn live_rows_mask(live: &RoaringBitmap, start: u32, rows: u32) -> Option<BooleanArray> {
    if live.range_cardinality(start..start + rows) == 0 {
        return None;
    }
    let mut keep = BooleanBufferBuilder::new(rows as usize);
    keep.append_n(rows as usize, false);
    mark(
        &mut keep,
        live,
        0,
        u64::from(start),
        start..start + rows,
        true,
    );
    Some(BooleanArray::new(keep.finish(), None))
}

/// Which of the ordinals `first..first + rows` are not in `shadowed`: `None` when all are,
/// `Some(None)` when none is.
fn unshadowed_mask(
    shadowed: &RoaringTreemap,
    first: u64,
    rows: u64,
) -> Option<Option<BooleanArray>> {
    let end = first + rows;
    let hidden = shadowed.range_cardinality(first..end);
    if hidden == rows {
        return None;
    }
    if hidden == 0 {
        return Some(None);
    }
    let mut keep = BooleanBufferBuilder::new(rows as usize);
    keep.append_n(rows as usize, true);
    // The treemap keeps one 32-bit bitmap per high half of the ordinals.
    for (high, part) in shadowed.bitmaps() {
        let base = u64::from(high) << 32;
        if base >= end || base + (1 << 32) <= first {
            continue;
        }
        // Both bounds lie within this part's 2^32 ordinals, so the casts are exact.
        let lo = (first.max(base) - base) as u32;
        let hi = ((end - base).min(1 << 32) - 1) as u32;
        mark(&mut keep, part, base, first, lo..=hi, false);
    }
    Some(Some(BooleanArray::new(keep.finish(), None)))
}

/// A table's overlay at one version. Its bitmaps are read on first use: gets need only
/// the trie.
#[derive(Debug)]
pub struct OverlayView {
    /// Trie root.
    pub root: Option<NodeRef>,
    refs: OverlayRefs,
    shadowed: u64,
    live: u64,
    bitmaps: OnceLock<OverlayVersion>,
    /// The generation's node log.
    pub log: Arc<NodeLog>,
    /// The generation's row batches.
    pub batches: Vec<BatchRecord>,
    /// Generation row id of each batch's first row.
    pub starts: Vec<u32>,
}

fn node_ref(r: (u64, u64)) -> NodeRef {
    NodeRef {
        offset: r.0,
        checksum: r.1,
    }
}

/// The refs of an overlay record.
pub fn refs_of(rec: &OverlayRecord) -> OverlayRefs {
    OverlayRefs {
        root: rec.root.map(node_ref),
        shadowed: node_ref(rec.deletion_vector),
        live: node_ref(rec.live_rows),
        entries: rec.entries,
    }
}

/// Generation row id of each batch's first row.
pub fn starts_of(batches: &[BatchRecord]) -> Vec<u32> {
    let mut at = 0u32;
    batches
        .iter()
        .map(|b| {
            let s = at;
            at += b.rows;
            s
        })
        .collect()
}

impl OverlayView {
    /// Loads the overlay `rec` from `log`.
    pub fn load(log: Arc<NodeLog>, rec: &OverlayRecord) -> Result<Self> {
        let refs = refs_of(rec);
        Ok(OverlayView {
            root: refs.root,
            refs,
            shadowed: rec.shadowed,
            live: rec.live,
            bitmaps: OnceLock::new(),
            log,
            starts: starts_of(&rec.batches),
            batches: rec.batches.clone(),
        })
    }

    /// The deletion vector and live rows, read from the log on first use.
    fn bitmaps(&self) -> Result<&OverlayVersion> {
        if let Some(v) = self.bitmaps.get() {
            return Ok(v);
        }
        let loaded = OverlayVersion::load(&self.log, &self.refs)?;
        Ok(self.bitmaps.get_or_init(|| loaded))
    }

    /// Where the version's trie root and bitmaps are in its log.
    pub fn refs(&self) -> &OverlayRefs {
        &self.refs
    }

    /// Generation row id of a location.
    pub fn row_id(&self, l: RowLocation) -> u32 {
        self.starts[l.batch as usize] + l.row
    }

    /// Keyframe rows shadowed at this version.
    pub fn shadowed(&self) -> u64 {
        self.shadowed
    }

    /// Overlay rows live at this version.
    pub fn live(&self) -> u64 {
        self.live
    }

    /// The trie's entry for an encoded key.
    pub fn entry(&self, key: &[u8]) -> Result<Option<Entry>> {
        Ok(get(&self.log, self.root, key_hash(key), key)?)
    }

    /// Every trie entry that holds a row and whose key is within the bounds, sorted by key.
    pub fn rows_in(
        &self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, RowLocation)>> {
        let mut out = Vec::new();
        for_each(&self.log, self.root, &mut |e| {
            if let Some(loc) = e.row
                && RangeBounds::<[u8]>::contains(&(lo, hi), e.key.as_slice())
            {
                out.push((e.key, loc));
            }
        })?;
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Decodes `columns` of batch `b`.
    pub fn batch_columns(
        &self,
        tree: &Tree,
        b: usize,
        columns: &[usize],
        access: Access,
    ) -> Result<Vec<ArrayRef>> {
        let batch = &self.batches[b];
        columns
            .iter()
            .map(|&c| {
                Ok(tree.read_block(
                    &RecordRef::from(&batch.columns[c]),
                    c,
                    batch.rows as usize,
                    access,
                )?)
            })
            .collect()
    }

    /// Which rows of batch `b` are live at this version; `None` when none is.
    pub fn live_mask(&self, b: usize) -> Result<Option<BooleanArray>> {
        Ok(live_rows_mask(
            &self.bitmaps()?.live,
            self.starts[b],
            self.batches[b].rows,
        ))
    }

    /// Which of the keyframe rows with ordinals `first..first + rows` are not shadowed:
    /// `None` when all are, `Some(None)` when none is shadowed.
    pub fn keyframe_mask(&self, first: u64, rows: u64) -> Result<Option<Option<BooleanArray>>> {
        if self.shadowed == 0 {
            return Ok(Some(None));
        }
        Ok(unshadowed_mask(&self.bitmaps()?.shadowed, first, rows))
    }

    /// The full row at a location, as a one-row batch of the table schema.
    pub fn row(&self, tree: &Tree, loc: RowLocation) -> Result<RecordBatch> {
        let all: Vec<usize> = (0..tree.layout().schema.fields().len()).collect();
        let cols = self.batch_columns(tree, loc.batch as usize, &all, Access::Cached)?;
        let cols: Vec<ArrayRef> = cols.iter().map(|c| c.slice(loc.row as usize, 1)).collect();
        Ok(RecordBatch::try_new(tree.layout().schema.clone(), cols)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(mask: &BooleanArray) -> Vec<bool> {
        mask.iter().map(|b| b == Some(true)).collect()
    }

    #[test]
    fn the_unshadowed_mask_clears_exactly_the_shadowed_ordinals_across_bitmap_parts() {
        let edge = 1u64 << 32;
        let shadowed: RoaringTreemap = [5, edge - 2, edge, edge + 3].into_iter().collect();
        let mask = unshadowed_mask(&shadowed, edge - 4, 8).unwrap().unwrap();
        let want: Vec<bool> = (edge - 4..edge + 4)
            .map(|o| !shadowed.contains(o))
            .collect();
        assert_eq!(bits(&mask), want);
        assert!(
            unshadowed_mask(&shadowed, 0, 5).unwrap().is_none(),
            "none shadowed"
        );
        assert!(unshadowed_mask(&shadowed, 5, 1).is_none(), "all shadowed");
    }

    #[test]
    fn the_live_mask_sets_exactly_the_live_rows_of_a_batch() {
        let live: RoaringBitmap = [3, 10, 11, 19, 40].into_iter().collect();
        let mask = live_rows_mask(&live, 10, 10).unwrap();
        let want: Vec<bool> = (10..20).map(|r| live.contains(r)).collect();
        assert_eq!(bits(&mask), want);
        assert!(live_rows_mask(&live, 20, 10).is_none());
    }
}
