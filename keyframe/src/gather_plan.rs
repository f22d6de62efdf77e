//! Choosing how a column of a row batch is stored: as a block of its values, or gathered from
//! a keyframe ([`crate::gather`]) when most of its rows hold the values of rows the keyframe
//! has and picks into the keyframe leaves' blocks take fewer bytes. B-frame residuals gather
//! from the next keyframe (`reeldb-compactor`), overlay batches from their generation's
//! keyframe (`reeldb`); both find where each row's key lies in the keyframe and read the
//! keyframe's values there, and this module compares them, plans the gathered block and
//! stores it.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::kernels::cmp::distinct;

use crate::error::Result;
use crate::format::content_hash;
use crate::gather::{Gathered, Pick};
use crate::node::{LeafNode, RecordRef};
use crate::pack::PackWriter;
use crate::record::RecordKind;
use crate::tree::TableLayout;

/// Where a batch row's value may come from in the keyframe: the leaf (told apart by any
/// number in key order, with its node) and the row's position among the leaf's rows.
#[derive(Debug, Clone, Copy)]
pub struct KeyframePlace<'n> {
    /// The leaf's number; leaves' numbers ascend in key order.
    pub leaf: usize,
    /// The leaf node.
    pub node: &'n LeafNode,
    /// The row's position among the leaf's (logical) rows.
    pub position: u32,
}

/// How one column of a batch is to be stored.
#[derive(Debug)]
pub enum ColumnPlan {
    /// As a block of its values (the block's bytes).
    Plain(Vec<u8>),
    /// Gathered, with the bytes of its own block, whose reference in the gathered block is a
    /// placeholder until [`ColumnPlan::store`] stores them.
    Gathered(Gathered, Option<Vec<u8>>),
}

impl ColumnPlan {
    /// Stores the column's block(s) in `packs` and returns the reference the batch's slot
    /// holds.
    pub fn store(self, packs: &mut PackWriter) -> Result<RecordRef> {
        match self {
            ColumnPlan::Plain(raw) => packs.put(RecordKind::ColumnBlock, &raw, content_hash(&raw)),
            ColumnPlan::Gathered(mut g, own) => {
                if let (Some((own_ref, _)), Some(raw)) = (&mut g.own, own) {
                    *own_ref = packs.put(RecordKind::ColumnBlock, &raw, content_hash(&raw))?;
                }
                let raw = g.encode();
                packs.put(RecordKind::ColumnBlock, &raw, content_hash(&raw))
            }
        }
    }
}

/// Stores each column's plan in `packs`, in column order, and returns their references laid
/// out in `layout`'s slots: a row batch as overlays and residuals keep it.
pub fn store_plans(
    packs: &mut PackWriter,
    layout: &TableLayout,
    plans: Vec<ColumnPlan>,
) -> Result<Vec<Option<RecordRef>>> {
    let refs = plans
        .into_iter()
        .map(|plan| plan.store(packs))
        .collect::<Result<Vec<_>>>()?;
    Ok(layout.to_slots(&refs))
}

/// Column `c` of a batch of `layout` (`column`, whose block of values takes `plain_len`
/// bytes) gathered from the keyframe where that takes fewer bytes. `candidates` are the rows
/// whose key the keyframe holds, with where in it, in row order; `theirs` holds the
/// keyframe's values at those places, one per candidate. A candidate picks from the
/// keyframe when its value equals the keyframe's under Arrow's total order (which tells apart
/// every two values that read differently); `None` as [`plan_gathered`], or when the type has
/// no such comparison.
pub fn plan_against_keyframe<'n>(
    layout: &TableLayout,
    c: usize,
    column: &ArrayRef,
    candidates: &[(u32, KeyframePlace<'n>)],
    theirs: &dyn Array,
    plain_len: usize,
) -> Result<Option<ColumnPlan>> {
    let rows = UInt32Array::from_iter_values(candidates.iter().map(|(r, _)| *r));
    let mine = arrow::compute::take(column.as_ref(), &rows, None)?;
    let Ok(differ) = distinct(&mine, &theirs) else {
        return Ok(None);
    };
    let mut same = vec![None; column.len()];
    for (i, (r, place)) in candidates.iter().enumerate() {
        if differ.is_valid(i) && !differ.value(i) {
            same[*r as usize] = Some(*place);
        }
    }
    plan_gathered(layout, c, column, &same, plain_len)
}

/// Column `c` of a batch of `layout` (`column`, whose block of values takes `plain_len`
/// bytes) gathered from the keyframe where that takes fewer bytes: `same[r]` is where row
/// `r`'s value lies in the keyframe, for the rows that hold the keyframe's value. `None`
/// when a block of the values is as small, when fewer than half the rows hold the
/// keyframe's value, or when a leaf's block of the column was written under an older type
/// epoch (its values read differently).
fn plan_gathered(
    layout: &TableLayout,
    c: usize,
    column: &ArrayRef,
    same: &[Option<KeyframePlace<'_>>],
    plain_len: usize,
) -> Result<Option<ColumnPlan>> {
    let based = same.iter().filter(|s| s.is_some()).count();
    if based * 2 < column.len() {
        return Ok(None);
    }
    // Each base: the leaf's block of the column and its rows (a derived chunk's block holds
    // rows it leaves out, so positions map to the block's rows).
    let mut bases: Vec<(RecordRef, u32)> = Vec::new();
    let mut base_of: BTreeMap<usize, u32> = BTreeMap::new();
    let (mut picks, mut own_rows) = (Vec::with_capacity(column.len()), Vec::new());
    for (r, s) in same.iter().enumerate() {
        let Some(place) = s else {
            picks.push(Pick::Own(own_rows.len() as u32));
            own_rows.push(r as u32);
            continue;
        };
        let Some(chunk) = layout.chunk(place.node, c) else {
            return Ok(None);
        };
        if chunk.epoch != layout.columns[c].epoch {
            return Ok(None);
        }
        let b = match base_of.get(&place.leaf) {
            Some(b) => *b,
            None => {
                let physical = chunk
                    .removed
                    .as_ref()
                    .map_or(place.node.rows, |rm| rm.physical() as u32);
                bases.push((chunk.block, physical));
                base_of.insert(place.leaf, bases.len() as u32 - 1);
                bases.len() as u32 - 1
            }
        };
        let p = chunk
            .removed
            .as_ref()
            .map_or(place.position as usize, |rm| {
                rm.physical_of(place.position as usize)
            });
        picks.push(Pick::Base(b, p as u32));
    }
    // Picks never go back, as the encoding needs: true when rows and leaves are both in key
    // order, checked here whatever the caller.
    let mut last = (0u32, 0u32);
    for pick in &picks {
        if let Pick::Base(b, r) = *pick {
            if (b, r) < last {
                return Ok(None);
            }
            last = (b, r);
        }
    }
    let own = match own_rows.is_empty() {
        true => None,
        false => {
            let values = arrow::compute::take(
                column.as_ref(),
                &UInt32Array::from_iter_values(own_rows.iter().copied()),
                None,
            )?;
            Some(crate::block::encode(&values)?)
        }
    };
    // A placeholder own reference (any will do: the encoding's length does not change).
    let Some(&(placeholder, _)) = bases.first() else {
        return Ok(None);
    };
    let g = Gathered {
        own: own.as_ref().map(|_| (placeholder, own_rows.len() as u32)),
        bases,
        picks,
    };
    // Bytes beyond what a block of the values costs: the gathered payload, and the own block
    // with its record framing.
    let cost = g.encode().len() + own.as_ref().map_or(0, |o| o.len() + 40);
    if cost >= plain_len {
        return Ok(None);
    }
    Ok(Some(ColumnPlan::Gathered(g, own)))
}
