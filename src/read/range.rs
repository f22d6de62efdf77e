//! [`Range`]: a key-range scan of one table at one version, in either direction, a keyframe
//! leaf at a time with the overlay rows within its key interval.

use std::ops::Bound;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{
    concat_batches, filter_record_batch, interleave_record_batch, take_record_batch,
};
use reeldb_keyframe::tree::{Access, LeafEntry, Tree, search_key};

use crate::error::{Error, Result};
use crate::lease::Pin;
use crate::read::overlay_view::OverlayView;
use reeldb_overlay::RowLocation;

/// A key-range scan; see [`Table::range`]. After an error it yields nothing more.
#[derive(Debug)]
pub struct Range {
    pub(super) _pin: Arc<Pin>,
    pub(super) tree: Tree,
    pub(super) overlay: Option<Arc<OverlayView>>,
    pub(super) lo: Bound<Vec<ArrayRef>>,
    pub(super) hi: Bound<Vec<ArrayRef>>,
    pub(super) parts: Vec<Part>,
    pub(super) front: usize,
    pub(super) back: usize,
}

/// One step of a range scan: a keyframe leaf and the overlay rows within its key interval.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) leaf: Option<LeafEntry>,
    /// Overlay rows in the range and the leaf's interval, in key order.
    pub(super) overlay: Vec<RowLocation>,
}

impl Range {
    /// The keyframe rows of a leaf within the bounds and not shadowed.
    fn keyframe_rows(&self, leaf: &LeafEntry) -> Result<Option<RecordBatch>> {
        let node = self.tree.read_leaf(&leaf.entry)?;
        let layout = self.tree.layout();
        let keys = self
            .tree
            .read_columns(&node, layout.key.columns(), Access::Cached)?;
        let n = node.rows as usize;
        let start = match &self.lo {
            Bound::Unbounded => 0,
            Bound::Included(p) => search_key(&keys, p)?.unwrap_or_else(|ins| ins),
            Bound::Excluded(p) => match search_key(&keys, p)? {
                Ok(at) => at + 1,
                Err(ins) => ins,
            },
        };
        let end = match &self.hi {
            Bound::Unbounded => n,
            Bound::Included(p) => match search_key(&keys, p)? {
                Ok(at) => at + 1,
                Err(ins) => ins,
            },
            Bound::Excluded(p) => search_key(&keys, p)?.unwrap_or_else(|ins| ins),
        };
        if start >= end {
            return Ok(None);
        }
        let keep = match &self.overlay {
            Some(o) => match o.keyframe_mask(leaf.ordinal + start as u64, (end - start) as u64)? {
                Some(mask) => mask,
                None => return Ok(None),
            },
            None => None,
        };
        let batch = self.tree.read_batch(&node, Access::Cached)?;
        let batch = batch.slice(start, end - start);
        Ok(Some(match keep {
            Some(mask) => filter_record_batch(&batch, &mask)?,
            None => batch,
        }))
    }

    /// The overlay rows at `locs`, in that order.
    fn overlay_rows(&self, locs: &[RowLocation]) -> Result<Option<RecordBatch>> {
        let Some(o) = &self.overlay else {
            return Ok(None);
        };
        if locs.is_empty() {
            return Ok(None);
        }
        let schema = self.tree.layout().schema.clone();
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        let mut sources: Vec<RecordBatch> = Vec::new();
        let mut slot: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
        let mut picks = Vec::with_capacity(locs.len());
        for l in locs {
            let at = match slot.get(&l.batch) {
                Some(&at) => at,
                None => {
                    let cols =
                        o.batch_columns(&self.tree, l.batch as usize, &all, Access::Cached)?;
                    sources.push(RecordBatch::try_new(schema.clone(), cols)?);
                    slot.insert(l.batch, sources.len() - 1);
                    sources.len() - 1
                }
            };
            picks.push((at, l.row as usize));
        }
        let refs: Vec<&RecordBatch> = sources.iter().collect();
        Ok(Some(interleave_record_batch(&refs, &picks)?))
    }

    /// The rows of part `i`, in key order.
    fn rows_of(&self, i: usize) -> Result<Option<RecordBatch>> {
        let part = &self.parts[i];
        let base = match &part.leaf {
            Some(leaf) => self.keyframe_rows(leaf)?,
            None => None,
        };
        let extra = self.overlay_rows(&part.overlay)?;
        let merged = match (base, extra) {
            (None, None) => return Ok(None),
            (Some(b), None) | (None, Some(b)) => b,
            (Some(a), Some(b)) => {
                let both = concat_batches(&a.schema(), [&a, &b])?;
                let keys = self.tree.layout().key.encode_batch(&both)?;
                let mut order: Vec<u32> = (0..both.num_rows() as u32).collect();
                order.sort_unstable_by(|&x, &y| keys.row(x as usize).cmp(&keys.row(y as usize)));
                take_record_batch(&both, &UInt32Array::from(order))?
            }
        };
        Ok((merged.num_rows() > 0).then_some(merged))
    }

    fn fail(&mut self, e: Error) -> Option<Result<RecordBatch>> {
        self.front = self.back;
        Some(Err(e))
    }
}

impl Iterator for Range {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.front < self.back {
            let i = self.front;
            self.front += 1;
            match self.rows_of(i) {
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => continue,
                Err(e) => return self.fail(e),
            }
        }
        None
    }
}

impl DoubleEndedIterator for Range {
    fn next_back(&mut self) -> Option<Self::Item> {
        while self.front < self.back {
            self.back -= 1;
            match self.rows_of(self.back) {
                Ok(Some(b)) => {
                    let rev = UInt32Array::from_iter_values((0..b.num_rows() as u32).rev());
                    return Some(take_record_batch(&b, &rev).map_err(Error::from));
                }
                Ok(None) => continue,
                Err(e) => return self.fail(e),
            }
        }
        None
    }
}
