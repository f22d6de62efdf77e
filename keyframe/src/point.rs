//! Point reads of a keyframe: a few rows of a leaf or row batch, decoding and verifying only
//! the mini-blocks they fall in (what gets and small range reads use), with each block's
//! [`PointIndex`] cached so later reads find its bytes and verified header at once.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};

use crate::cache::Decoded;
use crate::encoding::PointIndex;
use crate::error::{Error, Result};
use crate::node::{LeafNode, RecordRef};
use crate::pack::pack_path;
use crate::removed::RemovedRows;
use crate::tree::Tree;

impl Tree {
    /// Decodes rows `want` of the column block `block` (which holds `rows` values of column
    /// `column`), reading and verifying only the mini-blocks they fall in. What a point read
    /// of a few rows uses: the block's verified header is cached (a small [`PointIndex`],
    /// which also remembers the mini-blocks whose checksums matched, so each is hashed once),
    /// and a string or binary mini-block, decompressed whole to read any of its rows, is
    /// cached decoded. The block itself is not decoded whole.
    pub fn read_block_rows(
        &self,
        block: &RecordRef,
        removed: Option<&RemovedRows>,
        column: usize,
        rows: usize,
        want: std::ops::Range<usize>,
    ) -> Result<ArrayRef> {
        if let Some(removed) = removed {
            return self.read_derived_rows(block, removed, column, rows, want);
        }
        let t = self.layout().schema.field(column).data_type();
        let cache = &self.source().cache;
        if let Some(Decoded::Column(a)) = cache.get(&block.hash)
            && a.data_type() == t
            && a.len() == rows
            && want.end <= rows
        {
            return Ok(a.slice(want.start, want.len()));
        }
        let index = match self.point_source(block, rows)? {
            PointSource::Plain(index) => index,
            PointSource::Gathered(raw) => {
                return self.read_gathered_rows(block, &raw, column, rows, want);
            }
        };
        self.read_plain_block_rows(block, &index, column, rows, want)
    }

    /// What a point read of the column block `block` (`rows` values) reads from: its cached
    /// [`PointIndex`] (which holds the block's bytes), else the block read from its pack and,
    /// unless it is gathered, indexed and cached.
    pub(crate) fn point_source(&self, block: &RecordRef, rows: usize) -> Result<PointSource> {
        let cache = &self.source().cache;
        // Keyed by place as well as content: the index remembers which mini-blocks' checksums
        // matched, which holds for the bytes at this place, not for another copy of them.
        let index_key = block
            .hash
            .derived(&[POINT_INDEX_TAG, u64::from(block.pack), block.offset]);
        if let Some(Decoded::Opaque(any, _)) = cache.get(&index_key)
            && let Ok(index) = any.downcast::<PointIndex>()
        {
            return Ok(PointSource::Plain(index));
        }
        let raw = self.source().packs.read_block(block)?;
        if crate::gather::is_gathered(&raw) {
            return Ok(PointSource::Gathered(raw));
        }
        let corrupt = |reason| Error::corrupt(pack_path(block.pack), block.offset, reason);
        let index = Arc::new(PointIndex::new(&raw, rows).map_err(corrupt)?);
        cache.insert(
            index_key,
            Decoded::Opaque(index.clone(), index.memory_size()),
        );
        Ok(PointSource::Plain(index))
    }

    /// Rows `want` of the mini-block column block `block` (indexed by `index`; `rows` values
    /// of column `column`): what [`Tree::read_block_rows`] does for all but gathered blocks.
    pub(crate) fn read_plain_block_rows(
        &self,
        block: &RecordRef,
        index: &PointIndex,
        column: usize,
        rows: usize,
        want: std::ops::Range<usize>,
    ) -> Result<ArrayRef> {
        let t = self.layout().schema.field(column).data_type();
        let cache = &self.source().cache;
        let corrupt = |reason| Error::corrupt(pack_path(block.pack), block.offset, reason);
        if index.rows() != rows {
            return Err(corrupt(format!(
                "column block holds {} rows where the leaf says {rows}",
                index.rows()
            )));
        }
        // Rows within one mini-block of a string or binary block (a get's row): that
        // mini-block, decompressed whole anyway, is decoded whole once and cached, so later
        // reads of its rows do not decompress it again. Fixed-width rows decode alone.
        if index.whole_minis()
            && let Some((i, held)) = index.mini_of(want.start)
            && want.end <= held.end
            && !want.is_empty()
        {
            let key = block.hash.derived(&[i as u64]);
            let mini = match cache.get(&key) {
                Some(Decoded::Column(a)) if a.data_type() == t && a.len() == held.len() => a,
                _ => {
                    let a = index.decode(t, held.clone()).map_err(corrupt)?;
                    cache.insert(key, Decoded::Column(a.clone()));
                    a
                }
            };
            return Ok(mini.slice(want.start - held.start, want.len()));
        }
        index.decode(t, want).map_err(corrupt)
    }

    /// The given rows of a leaf as a batch of the table schema, decoding only the
    /// mini-blocks they fall in.
    pub fn read_leaf_rows(
        &self,
        leaf: &LeafNode,
        want: std::ops::Range<usize>,
    ) -> Result<RecordBatch> {
        let cols = (0..self.layout().columns.len())
            .map(|c| self.read_leaf_column_rows(leaf, c, want.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.layout().schema.clone(), cols)?)
    }

    /// Row `row` of a leaf as a one-row batch of the table schema, given the leaf's key
    /// columns decoded whole (`keys`, in key order): a get's row, found by searching them.
    /// Its key is sliced from them; only its other columns' mini-blocks are read.
    pub fn read_leaf_row(
        &self,
        leaf: &LeafNode,
        keys: &[ArrayRef],
        row: usize,
    ) -> Result<RecordBatch> {
        let key_columns = self.layout().key.columns();
        let rows = leaf.rows as usize;
        if keys.len() != key_columns.len() || keys.iter().any(|k| k.len() != rows) || row >= rows {
            return Err(Error::BadLayout(format!(
                "row {row} asked with {} key columns of {} rows, of a leaf of {rows} rows and {} \
                 key columns",
                keys.len(),
                keys.first().map_or(0, |k| k.len()),
                key_columns.len()
            )));
        }
        let cols = (0..self.layout().columns.len())
            .map(|c| match key_columns.iter().position(|k| *k == c) {
                Some(k) => Ok(keys[k].slice(row, 1)),
                None => self.read_leaf_column_rows(leaf, c, row..row + 1),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.layout().schema.clone(), cols)?)
    }

    /// Rows `want` of column `c` of a leaf, decoding only the mini-blocks they fall in.
    fn read_leaf_column_rows(
        &self,
        leaf: &LeafNode,
        c: usize,
        want: std::ops::Range<usize>,
    ) -> Result<ArrayRef> {
        match self.layout().chunk(leaf, c) {
            Some(chunk) => self.read_block_rows(
                &chunk.block,
                chunk.removed.as_deref(),
                c,
                leaf.rows as usize,
                want,
            ),
            None => self.layout().fill(c, want.len()),
        }
    }

    /// Rows `want` of a row batch of `rows` rows (a leaf, an overlay or residual batch) whose
    /// slots hold the blocks `blocks`, as a batch of the table schema, decoding only the
    /// mini-blocks they fall in.
    pub fn read_rows(
        &self,
        blocks: &[Option<RecordRef>],
        rows: usize,
        want: std::ops::Range<usize>,
    ) -> Result<RecordBatch> {
        let cols = (0..self.layout().columns.len())
            .map(|c| match self.layout().block_of(blocks, c) {
                Some(block) => self.read_block_rows(&block, None, c, rows, want.clone()),
                None => self.layout().fill(c, want.len()),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.layout().schema.clone(), cols)?)
    }
}

/// What a point read of a column block reads from; see [`Tree::point_source`].
pub(crate) enum PointSource {
    /// A mini-block block's index, holding its bytes.
    Plain(Arc<PointIndex>),
    /// A gathered block's bytes.
    Gathered(bytes::Bytes),
}

/// The tag deriving the cache key of a column block's [`PointIndex`] from its hash and place
/// (a mini-block's decoded values are keyed by its hash and its number alone).
const POINT_INDEX_TAG: u64 = u64::MAX;
