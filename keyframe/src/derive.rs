//! Derived column chunks: which columns of a re-cut leaf can keep an old leaf's blocks,
//! naming the rows they leave out ([`crate::removed`]), instead of being stored again.

use arrow::array::{Array, ArrayRef};

use crate::builder::{OldLeaf, Origin};
use crate::error::Result;
use crate::node::ColumnChunk;
use crate::tree::TableLayout;
use crate::zonemap;

/// The most of a block's rows a derived chunk may leave out, as a fraction (1/4): past it, a
/// read would decode too many rows it throws away, and the column is stored again.
const MAX_REMOVED_SHARE: usize = 4;

/// For each column of a new leaf whose rows (`columns`, with their `origins`) all come from
/// the old leaf `old`, in order: the old leaf's chunk made to read just those rows
/// ([`ColumnChunk::removed`]), where no update changed the column's values and the block
/// would not lose more than a quarter of its rows; `None` where the column must be stored.
pub(crate) fn derive_chunks(
    layout: &TableLayout,
    old: &OldLeaf,
    origins: &[Origin],
    columns: &[ArrayRef],
) -> Result<Vec<Option<ColumnChunk>>> {
    let Some(live) = origins
        .iter()
        .map(|o| match o {
            Origin::Kept(p) | Origin::Updated(p) => Some(*p),
            Origin::Inserted => None,
        })
        .collect::<Option<Vec<u32>>>()
    else {
        return Ok(vec![None; columns.len()]);
    };
    let updated: Vec<(u32, u32)> = origins
        .iter()
        .enumerate()
        .filter_map(|(r, o)| match o {
            Origin::Updated(p) => Some((r as u32, *p)),
            _ => None,
        })
        .collect();
    let new_rows = arrow::array::UInt32Array::from_iter_values(updated.iter().map(|u| u.0));
    let old_rows = arrow::array::UInt32Array::from_iter_values(updated.iter().map(|u| u.1));
    let mut derived = Vec::with_capacity(columns.len());
    for (c, column) in columns.iter().enumerate() {
        let Some(chunk) = layout.chunk(&old.node, c) else {
            derived.push(None);
            continue;
        };
        if chunk.epoch != layout.columns[c].epoch
            || !same_values(column, &new_rows, old.batch.column(c), &old_rows)
        {
            derived.push(None);
            continue;
        }
        // The block's rows the old chunk read, then those the new leaf keeps.
        let physical = chunk
            .removed
            .as_ref()
            .map_or(old.node.rows, |r| r.physical() as u32);
        let old_live: Vec<u32> = match &chunk.removed {
            None => (0..physical).collect(),
            Some(r) => {
                let gone = r.rows();
                let mut j = 0;
                (0..physical)
                    .filter(|&p| {
                        if gone.get(j) == Some(&p) {
                            j += 1;
                            false
                        } else {
                            true
                        }
                    })
                    .collect()
            }
        };
        let mut kept = live.iter().map(|&p| old_live.get(p as usize).copied());
        let mut removed = Vec::new();
        let mut next = kept.next().flatten();
        for p in 0..physical {
            if next == Some(p) {
                next = kept.next().flatten();
            } else {
                removed.push(p);
            }
        }
        if removed.len() * MAX_REMOVED_SHARE > physical as usize {
            derived.push(None);
            continue;
        }
        let removed = if removed.is_empty() {
            None
        } else {
            match crate::removed::RemovedRows::new(physical, removed) {
                Some(r) => Some(r),
                None => {
                    derived.push(None);
                    continue;
                }
            }
        };
        if removed.as_ref().map_or(physical as usize, |r| r.live()) != column.len() {
            derived.push(None);
            continue;
        }
        derived.push(Some(ColumnChunk {
            block: chunk.block,
            raw_len: chunk.raw_len,
            epoch: chunk.epoch,
            zone: zonemap::compute(column)?,
            removed,
        }));
    }
    Ok(derived)
}

/// Whether rows `new_rows` of `new` hold exactly the values of rows `old_rows` of `old`:
/// equal under Arrow's total order, which tells apart every two values that read
/// differently (floats by their bits, nulls from values). A type the kernels cannot compare
/// counts as changed.
fn same_values(
    new: &ArrayRef,
    new_rows: &arrow::array::UInt32Array,
    old: &ArrayRef,
    old_rows: &arrow::array::UInt32Array,
) -> bool {
    if new_rows.is_empty() {
        return true;
    }
    let compare = || -> std::result::Result<bool, arrow::error::ArrowError> {
        let a = arrow::compute::take(new.as_ref(), new_rows, None)?;
        let b = arrow::compute::take(old.as_ref(), old_rows, None)?;
        let differ = arrow::compute::kernels::cmp::distinct(&a, &b)?;
        Ok(differ.true_count() == 0)
    };
    compare().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn values_that_read_differently_never_count_as_unchanged() {
        use arrow::array::Float64Array;
        let rows = arrow::array::UInt32Array::from(vec![0, 1, 2, 3]);
        let old: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(0.0),
            Some(f64::NAN),
            None,
            Some(1.5),
        ]));
        assert!(same_values(&old, &rows, &old, &rows));
        for changed in [
            Float64Array::from(vec![Some(-0.0), Some(f64::NAN), None, Some(1.5)]),
            Float64Array::from(vec![Some(0.0), Some(f64::NAN), Some(0.0), Some(1.5)]),
            Float64Array::from(vec![Some(0.0), Some(f64::NAN), None, None]),
        ] {
            let changed: ArrayRef = Arc::new(changed);
            assert!(!same_values(&changed, &rows, &old, &rows));
        }
    }
}
