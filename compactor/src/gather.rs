//! Storing a residual batch's columns: each column as a block of its values, or, where that
//! is smaller, gathered from the next keyframe ([`reeldb_keyframe::gather`]): most residual
//! rows are earlier versions of keys the next keyframe holds, and a column their update did
//! not change holds the keyframe's values, so a pick into the keyframe leaf's block (about a
//! byte a row) replaces the value.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow_row::Rows;
use rayon::prelude::*;
use reeldb_keyframe::gather_plan::{ColumnPlan, KeyframePlace, plan_against_keyframe, store_plans};
use reeldb_keyframe::tree::{Access, LeafEntry, Tree};
use reeldb_keyframe::{LeafNode, PackWriter, RecordRef, block};

use crate::error::Result;

/// One decoded leaf of the next keyframe: its node, rows and encoded keys.
struct Leaf {
    node: Arc<LeafNode>,
    rows: RecordBatch,
    keys: Rows,
}

/// The next keyframe, read a leaf at a time in key order as residual batches need it.
pub(crate) struct NextKeyframe<'t> {
    tree: &'t Tree,
    leaves: Vec<LeafEntry>,
    decoded: BTreeMap<usize, Leaf>,
}

impl<'t> NextKeyframe<'t> {
    /// The keyframe `tree`, which the residual's B-frames read over.
    pub(crate) fn new(tree: &'t Tree) -> Result<Self> {
        Ok(NextKeyframe {
            tree,
            leaves: tree.leaves()?,
            decoded: BTreeMap::new(),
        })
    }

    /// Stores the columns of `batch` (rows of the keyframe's layout whose encoded keys,
    /// ascending, are `keys`) and returns their blocks laid out in the layout's slots: each
    /// column gathered where that takes fewer bytes than its block, else its block. Batches
    /// come in key order, so leaves before this batch's are dropped.
    pub(crate) fn store_batch(
        &mut self,
        packs: &mut PackWriter,
        batch: &RecordBatch,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<RecordRef>>> {
        let layout = self.tree.layout().clone();
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return Ok(block::store_columns(packs, &layout, batch)?);
        };
        if self.leaves.is_empty() {
            return Ok(block::store_columns(packs, &layout, batch)?);
        }
        let leaf_of = |key: &[u8]| {
            self.leaves
                .partition_point(|l| l.entry.first_key.as_slice() <= key)
                .saturating_sub(1)
        };
        let (lo, hi) = (leaf_of(first), leaf_of(last));
        self.decoded.retain(|l, _| *l >= lo);
        for l in lo..=hi {
            if !self.decoded.contains_key(&l) {
                let node = self.tree.read_leaf(&self.leaves[l].entry)?;
                let rows = self.tree.read_batch(&node, Access::Streaming)?;
                let keys = layout.key.encode_batch(&rows)?;
                self.decoded.insert(l, Leaf { node, rows, keys });
            }
        }
        // Each row's leaf and position in the keyframe, if the keyframe holds its key.
        let found: Vec<Option<(usize, u32)>> = keys
            .iter()
            .map(|key| {
                let l = leaf_of(key);
                let leaf = self.decoded.get(&l)?;
                let (mut a, mut b) = (0usize, leaf.keys.num_rows());
                while a < b {
                    let mid = a + (b - a) / 2;
                    if leaf.keys.row(mid).as_ref() < *key {
                        a = mid + 1;
                    } else {
                        b = mid;
                    }
                }
                (a < leaf.keys.num_rows() && leaf.keys.row(a).as_ref() == *key)
                    .then_some((l, a as u32))
            })
            .collect();
        let found = Found::new(&found, self.decoded.keys().copied().collect());
        let candidates: Vec<(u32, KeyframePlace<'_>)> = found
            .with_base
            .iter()
            .map(|&(r, (l, p))| {
                let place = KeyframePlace {
                    leaf: l,
                    node: &self.decoded[&l].node,
                    position: p,
                };
                (r, place)
            })
            .collect();
        // Each column's bytes worked out in parallel, then stored in column order.
        let plans = batch
            .columns()
            .par_iter()
            .enumerate()
            .map(|(c, column)| {
                let plain = block::encode(column)?;
                let plain_len = plain.len();
                Ok(
                    match self.plan_gather(c, column, &found, &candidates, plain_len)? {
                        Some(plan) => plan,
                        None => ColumnPlan::Plain(plain),
                    },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(store_plans(packs, &layout, plans)?)
    }

    /// Column `c` of a batch (`column`; `found`: its rows' places in the keyframe, and as
    /// `candidates`) gathered from the keyframe's blocks, if that takes fewer than
    /// `plain_len` bytes: the gathered block, whose own block's reference is a placeholder
    /// until the bytes beside it are stored.
    fn plan_gather(
        &self,
        c: usize,
        column: &ArrayRef,
        found: &Found,
        candidates: &[(u32, KeyframePlace<'_>)],
        plain_len: usize,
    ) -> Result<Option<ColumnPlan>> {
        // Fewer than half the rows from the keyframe: picks would not pay for themselves.
        if found.with_base.len() * 2 < column.len() {
            return Ok(None);
        }
        let sources: Vec<&dyn Array> = found
            .leaves
            .iter()
            .map(|l| self.decoded[l].rows.column(c).as_ref())
            .collect();
        let theirs = arrow::compute::interleave(&sources, &found.at)?;
        let layout = self.tree.layout();
        Ok(plan_against_keyframe(
            layout, c, column, candidates, &theirs, plain_len,
        )?)
    }
}

/// The rows of a residual batch whose key the keyframe holds, worked out once for all its
/// columns.
struct Found {
    /// (row, (leaf, position in the leaf)), in row order.
    with_base: Vec<(u32, (usize, u32))>,
    /// The decoded leaves, in key order.
    leaves: Vec<usize>,
    /// Each such row's (index into `leaves`, position), for `interleave`.
    at: Vec<(usize, usize)>,
}

impl Found {
    /// From each row's place in the keyframe (`found`), the keyframe's decoded leaves being
    /// `leaves`.
    fn new(found: &[Option<(usize, u32)>], leaves: Vec<usize>) -> Self {
        let with_base: Vec<(u32, (usize, u32))> = found
            .iter()
            .enumerate()
            .filter_map(|(r, f)| f.map(|f| (r as u32, f)))
            .collect();
        // Every found row's leaf is decoded (`found` looks keys up in decoded leaves only).
        let at = with_base
            .iter()
            .map(|(_, (l, p))| (leaves.binary_search(l).unwrap_or(0), *p as usize))
            .collect();
        Found {
            with_base,
            leaves,
            at,
        }
    }
}
