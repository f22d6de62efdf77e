//! Storing an overlay commit's rows column by column, so that an update stores the columns it
//! changed rather than the whole row: a non-key column whose values are mostly those of the
//! keyframe rows the commit's keys update is gathered from the generation's keyframe (picks
//! into its leaves' blocks, [`reeldb_keyframe::gather`]) where that takes fewer bytes, the
//! rows whose value changed (and new keys) keeping their own values beside the picks
//! (design/ARCHITECTURE.md, "Column-level overlays").

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use rayon::prelude::*;
use reeldb_keyframe::gather_plan::{ColumnPlan, KeyframePlace, plan_against_keyframe, store_plans};
use reeldb_keyframe::tree::{Access, Tree};
use reeldb_keyframe::{LeafNode, PackWriter, RecordRef, block};

use crate::error::Result;

/// A column whose block of values takes fewer bytes a row than this is stored as it is:
/// a pick costs one to two bytes a row, so gathering it would save little, and finding its
/// unchanged values means decoding the keyframe's blocks of it.
pub(crate) const GATHER_MIN_BYTES_PER_ROW: usize = 4;

/// Stores the columns of `batch` (an overlay commit's upserted rows, sorted by key, of the
/// keyframe `tree`'s layout; `ordinals[r]`: the keyframe row with row `r`'s key, if any) and
/// returns their blocks in the layout's slots: key columns and narrow columns as blocks of
/// their values, the others gathered from the keyframe where that is smaller.
pub(crate) fn store_overlay_batch(
    packs: &mut PackWriter,
    tree: &Tree,
    batch: &RecordBatch,
    ordinals: &[Option<u64>],
) -> Result<Vec<Option<RecordRef>>> {
    let layout = tree.layout().clone();
    let rows = batch.num_rows();
    let found = ordinals.iter().filter(|o| o.is_some()).count();
    if found * 2 < rows || rows == 0 {
        return Ok(block::store_columns(packs, &layout, batch)?);
    }
    // Each found row's leaf (a number into `nodes`) and position in it.
    let leaves = tree.leaves()?;
    let mut nodes: Vec<Arc<LeafNode>> = Vec::new();
    let mut last_leaf = None;
    let mut places: Vec<(u32, usize, u32)> = Vec::with_capacity(found);
    for (r, o) in ordinals.iter().enumerate() {
        let Some(o) = *o else { continue };
        let l = leaves.partition_point(|l| l.ordinal <= o).saturating_sub(1);
        let Some(leaf) = leaves.get(l) else { continue };
        if last_leaf != Some(l) {
            nodes.push(tree.read_leaf(&leaf.entry)?);
            last_leaf = Some(l);
        }
        places.push((r as u32, nodes.len() - 1, (o - leaf.ordinal) as u32));
    }
    let candidates: Vec<(u32, KeyframePlace<'_>)> = places
        .iter()
        .map(|&(r, n, p)| {
            let place = KeyframePlace {
                leaf: n,
                node: &nodes[n],
                position: p,
            };
            (r, place)
        })
        .collect();
    let at: Vec<(usize, usize)> = places.iter().map(|p| (p.1, p.2 as usize)).collect();
    let key_columns = layout.key.columns();
    let plans = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(c, column)| {
            let plain = block::encode(column)?;
            if key_columns.contains(&c) || plain.len() < GATHER_MIN_BYTES_PER_ROW * rows {
                return Ok(ColumnPlan::Plain(plain));
            }
            // The keyframe's values of the found rows, the leaves' blocks decoded through the
            // cache: the generation's next commits find them there.
            let decoded = nodes
                .par_iter()
                .map(|node| Ok(tree.read_columns(node, &[c], Access::Cached)?.remove(0)))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let sources: Vec<&dyn Array> = decoded.iter().map(|a| a.as_ref()).collect();
            let theirs = arrow::compute::interleave(&sources, &at)?;
            let plain_len = plain.len();
            Ok(
                plan_against_keyframe(&layout, c, column, &candidates, &theirs, plain_len)?
                    .unwrap_or(ColumnPlan::Plain(plain)),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(store_plans(packs, &layout, plans)?)
}
