//! Rows as fingerprints: each row's memcomparable key, its ordinal in its keyframe and a
//! 128-bit hash of its whole content (xxh3-128 of its arrow-row encoding over every column),
//! so two versions of a row are compared without keeping either.

use arrow::array::ArrayRef;
use std::collections::VecDeque;

use arrow_row::RowConverter;
use rayon::prelude::*;
use reeldb_keyframe::tree::{Access, LeafEntry, TableLayout, Tree};

use crate::bframe::RowBatch;
use crate::error::Result;

/// One row of a keyframe, fingerprinted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRow {
    /// The memcomparable key.
    pub key: Vec<u8>,
    /// The row's ordinal in its keyframe.
    pub ordinal: u64,
    /// xxh3-128 of the row's full encoding.
    pub hash: u128,
}

/// Hashes whole rows of a table's layout.
#[derive(Debug)]
pub struct RowHasher {
    converter: RowConverter,
}

impl RowHasher {
    /// A hasher for rows of `layout`.
    pub fn new(layout: &TableLayout) -> Result<Self> {
        Ok(RowHasher {
            converter: layout.row_converter()?,
        })
    }

    /// The content hash of every row of `columns` (all of a table's columns, in order).
    pub fn hash(&self, columns: &[ArrayRef]) -> Result<Vec<u128>> {
        let rows = self.converter.convert_columns(columns)?;
        Ok(rows
            .iter()
            .map(|r| xxhash_rust::xxh3::xxh3_128(r.as_ref()))
            .collect())
    }
}

/// Every row of `tree`, fingerprinted, in key (and ordinal) order.
pub fn tree_rows(tree: &Tree, hasher: &RowHasher) -> Result<Vec<KeyedRow>> {
    rows_of_leaves(tree, &tree.leaves()?, hasher)
}

/// Every row of `leaves` (leaves of `tree`, in key order), fingerprinted, in key order: the
/// leaves decoded and hashed in parallel on rayon's pool.
pub fn rows_of_leaves(
    tree: &Tree,
    leaves: &[LeafEntry],
    hasher: &RowHasher,
) -> Result<Vec<KeyedRow>> {
    let parts = leaves
        .par_iter()
        .map(|leaf| leaf_rows(tree, leaf, hasher))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        out.extend(part);
    }
    Ok(out)
}

/// Every row of one leaf of `tree`, fingerprinted, in key order.
pub fn leaf_rows(tree: &Tree, leaf: &LeafEntry, hasher: &RowHasher) -> Result<Vec<KeyedRow>> {
    let layout = tree.layout();
    let all: Vec<usize> = (0..layout.schema.fields().len()).collect();
    let node = tree.read_leaf(&leaf.entry)?;
    let columns = tree.read_columns(&node, &all, Access::Streaming)?;
    let keys = encoded_keys(layout, &columns)?;
    Ok(hasher
        .hash(&columns)?
        .into_iter()
        .enumerate()
        .map(|(i, hash)| KeyedRow {
            key: keys.row(i).as_ref().to_vec(),
            ordinal: leaf.ordinal + i as u64,
            hash,
        })
        .collect())
}

/// Every row of a tree, fingerprinted, in key order, a few leaves decoded at a time: for
/// passes over several keyframes at once.
#[derive(Debug)]
pub struct RowStream<'t> {
    tree: &'t Tree,
    hasher: &'t RowHasher,
    leaves: std::vec::IntoIter<LeafEntry>,
    rows: VecDeque<KeyedRow>,
}

impl<'t> RowStream<'t> {
    /// A stream over `tree`'s rows, positioned at its first.
    pub fn new(tree: &'t Tree, hasher: &'t RowHasher) -> Result<Self> {
        let mut stream = RowStream {
            tree,
            hasher,
            leaves: tree.leaves()?.into_iter(),
            rows: VecDeque::new(),
        };
        stream.fill()?;
        Ok(stream)
    }

    /// The row the stream is at (`None` past the last).
    pub fn peek(&self) -> Option<&KeyedRow> {
        self.rows.front()
    }

    /// Takes the row the stream is at and moves on to the next (decoding the next leaf when
    /// this one is done).
    pub fn advance(&mut self) -> Result<KeyedRow> {
        let row = self.rows.pop_front().ok_or_else(|| {
            crate::error::Error::Inconsistent("a row stream advanced past its end".into())
        })?;
        self.fill()?;
        Ok(row)
    }

    /// Decodes leaves until a row is buffered or none is left: a few at a time, in
    /// parallel (one per rayon thread), so a pass over several keyframes uses every core.
    fn fill(&mut self) -> Result<()> {
        while self.rows.is_empty() {
            let window: Vec<LeafEntry> = self
                .leaves
                .by_ref()
                .take(rayon::current_num_threads().max(1))
                .collect();
            if window.is_empty() {
                return Ok(());
            }
            self.rows
                .extend(rows_of_leaves(self.tree, &window, self.hasher)?);
        }
        Ok(())
    }
}

/// The memcomparable keys of rows given as all of a table's columns.
pub(crate) fn encoded_keys(layout: &TableLayout, columns: &[ArrayRef]) -> Result<arrow_row::Rows> {
    let keys: Vec<ArrayRef> = layout
        .key
        .columns()
        .iter()
        .map(|&c| columns[c].clone())
        .collect();
    Ok(layout.key.encode_columns(&keys)?)
}

/// Every column of a stored row batch, decoded for one streaming pass.
pub(crate) fn batch_columns(tree: &Tree, batch: &RowBatch) -> Result<Vec<ArrayRef>> {
    let all: Vec<usize> = (0..tree.layout().schema.fields().len()).collect();
    Ok(tree.read_batch_columns(&batch.columns, batch.rows as usize, &all, Access::Streaming)?)
}
