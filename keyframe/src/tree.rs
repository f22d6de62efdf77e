//! Reading a keyframe's B-tree: leaves in key order with their row ordinals, point lookups by
//! descent, and the leaves a key range touches.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, make_comparator};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, SchemaRef};

use crate::block;
use crate::cache::{Decoded, DecodedCache};
use crate::error::{Error, Result};
use crate::key::KeyCodec;
use crate::node::{ChildEntry, ColumnChunk, InternalNode, LeafNode, RecordRef};
use crate::pack::{PackReader, pack_path};
use crate::record::RecordKind;
use crate::removed::RemovedRows;
pub use crate::search::{equal_range, search_key};
use crate::zonemap::ZoneMap;

/// What the keyframe layer needs to know about a table: its schema at one version, its key,
/// and where each column lives in a leaf or row batch.
///
/// Leaves and row batches hold one block per column *slot*. A column keeps its slot for its
/// whole life, whatever it is renamed to; a column added later gets the next slot, and a
/// dropped column's slot is left empty in everything written after the drop. So data written
/// under one schema reads under another without being rewritten: a slot a leaf lacks reads
/// as the column's default (or nulls), a slot the layout does not know is ignored, and a
/// block written before (or after) its column's type was widened decodes by its own width
/// and is cast (see [`crate::encoding::decode_rows`]).
#[derive(Debug)]
pub struct TableLayout {
    /// The table's schema.
    pub schema: SchemaRef,
    /// Its primary-key codec.
    pub key: KeyCodec,
    /// Where each schema column lives, in schema order.
    pub columns: Vec<ColumnSlot>,
    /// How many slots a leaf or row batch written with this layout has.
    pub slots: usize,
}

/// Where one column of a [`TableLayout`] lives and what it reads as where it is missing.
#[derive(Debug, Clone)]
pub struct ColumnSlot {
    /// Its slot in leaves and row batches.
    pub slot: usize,
    /// Its type epoch: how many times its type was widened.
    pub epoch: u16,
    /// What rows written before the column existed read as: a one-value array of the
    /// column's type, or `None` for nulls.
    pub default: Option<ArrayRef>,
}

impl TableLayout {
    /// A layout for `schema` keyed on the columns at `key_columns`, column i in slot i.
    pub fn new(schema: SchemaRef, key_columns: &[usize]) -> Result<Self> {
        let columns = (0..schema.fields().len())
            .map(|slot| ColumnSlot {
                slot,
                epoch: 0,
                default: None,
            })
            .collect();
        let slots = schema.fields().len();
        Self::with_slots(schema, key_columns, columns, slots)
    }

    /// A layout for `schema` keyed on the columns at `key_columns`, whose columns live in
    /// `columns` (one per schema column, distinct slots below `slots`).
    pub fn with_slots(
        schema: SchemaRef,
        key_columns: &[usize],
        columns: Vec<ColumnSlot>,
        slots: usize,
    ) -> Result<Self> {
        let limit = u64::from(u16::MAX);
        if slots as u64 > limit {
            return Err(Error::TooLarge {
                what: "the number of column slots".into(),
                size: slots as u64,
                limit,
            });
        }
        for f in schema.fields() {
            block::check_storable(f.name(), f.data_type())?;
        }
        let bad = Error::BadLayout;
        if columns.len() != schema.fields().len() {
            return Err(bad(format!(
                "{} column slots for {} columns",
                columns.len(),
                schema.fields().len()
            )));
        }
        let mut seen = vec![false; slots];
        for (c, (col, field)) in columns.iter().zip(schema.fields()).enumerate() {
            match seen.get_mut(col.slot) {
                Some(s) if !*s => *s = true,
                _ => return Err(bad(format!("column {c} has slot {} of {slots}", col.slot))),
            }
            if let Some(d) = &col.default
                && (d.len() != 1 || d.data_type() != field.data_type())
            {
                return Err(bad(format!(
                    "default of column {} is not one {}",
                    field.name(),
                    field.data_type()
                )));
            }
        }
        let key = KeyCodec::new(&schema, key_columns)?;
        Ok(TableLayout {
            schema,
            key,
            columns,
            slots,
        })
    }

    /// A converter of whole rows (every column, in order) to arrow-row bytes: equal rows
    /// give equal bytes, so rows compare or hash by their encoding.
    pub fn row_converter(&self) -> Result<arrow_row::RowConverter> {
        let fields = self
            .schema
            .fields()
            .iter()
            .map(|f| arrow_row::SortField::new(f.data_type().clone()))
            .collect();
        Ok(arrow_row::RowConverter::new(fields)?)
    }

    /// Column `column`'s chunk in `leaf`, if the leaf holds its slot.
    pub fn chunk<'a>(&self, leaf: &'a LeafNode, column: usize) -> Option<&'a ColumnChunk> {
        leaf.columns.get(self.columns[column].slot)?.as_ref()
    }

    /// Column `column`'s zone map in `leaf`, when the leaf holds its slot and wrote it under
    /// the column's current type (a zone map compares only in the type it was computed in).
    pub fn zone<'a>(&self, leaf: &'a LeafNode, column: usize) -> Option<&'a ZoneMap> {
        self.chunk(leaf, column)
            .filter(|c| c.epoch == self.columns[column].epoch)
            .map(|c| &c.zone)
    }

    /// Column `column`'s block in a row batch whose slots are `blocks`.
    pub fn block_of(&self, blocks: &[Option<RecordRef>], column: usize) -> Option<RecordRef> {
        *blocks.get(self.columns[column].slot)?
    }

    /// What column `column` reads as in `rows` rows that lack its slot: its default, or nulls.
    pub fn fill(&self, column: usize, rows: usize) -> Result<ArrayRef> {
        let t = self.schema.field(column).data_type();
        Ok(match &self.columns[column].default {
            Some(d) => {
                let picks = arrow::array::UInt32Array::from(vec![0u32; rows]);
                arrow::compute::take(d.as_ref(), &picks, None)?
            }
            None => arrow::array::new_null_array(t, rows),
        })
    }

    /// `columns` (one array per schema column, in schema order) laid out in slots, as a leaf
    /// or row batch written with this layout holds them.
    pub fn to_slots<T: Clone>(&self, columns: &[T]) -> Vec<Option<T>> {
        let mut slots = vec![None; self.slots];
        for (c, value) in self.columns.iter().zip(columns) {
            slots[c.slot] = Some(value.clone());
        }
        slots
    }
}

/// The root of a keyframe tree: the summary of the whole tree and its height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Summary of the tree (first key, root node, rows, bytes, leaves).
    pub entry: ChildEntry,
    /// 0 when the root node is a leaf, else the root's level.
    pub height: u8,
}

/// A leaf's summary and the ordinal of its first row within the keyframe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafEntry {
    /// The leaf's summary from its parent.
    pub entry: ChildEntry,
    /// Row ordinal of the leaf's first row.
    pub ordinal: u64,
}

/// Where a tree's records come from: the packs, through a cache of decoded records.
#[derive(Debug)]
pub struct Source {
    /// The pack files.
    pub packs: PackReader,
    /// Decoded nodes and blocks.
    pub cache: DecodedCache,
}

/// Whether a read of column blocks goes through the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Point lookups and range scans: reuse and keep decoded blocks.
    Cached,
    /// Full scans: decode directly, leave the cache to the blocks that are reused.
    Streaming,
}

/// A read handle on one keyframe tree.
#[derive(Debug, Clone)]
pub struct Tree {
    source: Arc<Source>,
    layout: Arc<TableLayout>,
    root: Option<Root>,
}

impl Tree {
    /// The same tree read with another layout of its table (its schema at another version).
    pub fn with_layout(&self, layout: Arc<TableLayout>) -> Tree {
        Tree::new(self.source.clone(), layout, self.root.clone())
    }

    /// A handle on the tree at `root` (`None` for an empty table).
    pub fn new(source: Arc<Source>, layout: Arc<TableLayout>, root: Option<Root>) -> Self {
        Tree {
            source,
            layout,
            root,
        }
    }

    /// The table layout.
    pub fn layout(&self) -> &Arc<TableLayout> {
        &self.layout
    }

    /// The root, if the table has rows.
    pub fn root(&self) -> Option<&Root> {
        self.root.as_ref()
    }

    /// Number of rows.
    pub fn rows(&self) -> u64 {
        self.root.as_ref().map_or(0, |r| r.entry.rows)
    }

    /// The source the tree reads from.
    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    /// Reads an internal node at `level` and checks it against its entry.
    pub(crate) fn internal(&self, e: &ChildEntry, level: u8) -> Result<Arc<InternalNode>> {
        self.read_internal(e, level)
    }

    fn read_internal(&self, e: &ChildEntry, level: u8) -> Result<Arc<InternalNode>> {
        let node = match self.source.cache.get(&e.node.hash) {
            Some(Decoded::Internal(n)) => n,
            _ => {
                let raw = self.source.packs.read(&e.node, RecordKind::Internal)?;
                let node = InternalNode::decode(&raw)
                    .map_err(|d| Error::corrupt(pack_path(e.node.pack), e.node.offset, d.0))?;
                let node = Arc::new(node);
                self.source
                    .cache
                    .insert(e.node.hash, Decoded::Internal(node.clone()));
                node
            }
        };
        let rows: u64 = node.children.iter().map(|c| c.rows).sum();
        if node.level != level || node.children[0].first_key != e.first_key || rows != e.rows {
            return Err(Error::corrupt(
                pack_path(e.node.pack),
                e.node.offset,
                format!(
                    "internal node (level {}, {rows} rows) does not match its parent's entry \
                     (level {level}, {} rows)",
                    node.level, e.rows
                ),
            ));
        }
        Ok(node)
    }

    /// Reads a leaf node and checks it against its entry.
    pub fn read_leaf(&self, e: &ChildEntry) -> Result<Arc<LeafNode>> {
        let leaf = match self.source.cache.get(&e.node.hash) {
            Some(Decoded::Leaf(l)) => l,
            _ => {
                let raw = self.source.packs.read(&e.node, RecordKind::Leaf)?;
                let leaf = LeafNode::decode(&raw)
                    .map_err(|d| Error::corrupt(pack_path(e.node.pack), e.node.offset, d.0))?;
                let leaf = Arc::new(leaf);
                self.source
                    .cache
                    .insert(e.node.hash, Decoded::Leaf(leaf.clone()));
                leaf
            }
        };
        if u64::from(leaf.rows) != e.rows || leaf.first_key != e.first_key {
            return Err(Error::corrupt(
                pack_path(e.node.pack),
                e.node.offset,
                "leaf does not match its parent's entry",
            ));
        }
        for &c in self.layout.key.columns() {
            if self.layout.chunk(&leaf, c).is_none() {
                return Err(Error::corrupt(
                    pack_path(e.node.pack),
                    e.node.offset,
                    format!("leaf lacks key column {c}'s slot"),
                ));
            }
        }
        Ok(leaf)
    }

    /// Calls `f` with every record the tree references: its nodes and its column blocks,
    /// each node read and verified on the way.
    pub fn for_each_record(&self, f: &mut dyn FnMut(&RecordRef)) -> Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let mut stack = vec![(root.entry.clone(), root.height)];
        while let Some((e, level)) = stack.pop() {
            f(&e.node);
            if level == 0 {
                for c in self.read_leaf(&e)?.columns.iter().flatten() {
                    f(&c.block);
                }
            } else {
                let node = self.read_internal(&e, level)?;
                stack.extend(node.children.iter().map(|c| (c.clone(), level - 1)));
            }
        }
        Ok(())
    }

    /// Every leaf, in key order, with row ordinals.
    pub fn leaves(&self) -> Result<Vec<LeafEntry>> {
        self.leaves_in(Bound::Unbounded, Bound::Unbounded)
    }

    /// The leaves that may hold keys within the given bounds (encoded keys), in key order.
    pub fn leaves_in(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Vec<LeafEntry>> {
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            self.collect(&root.entry, root.height, 0, lo, hi, &mut out)?;
        }
        Ok(out)
    }

    fn collect(
        &self,
        e: &ChildEntry,
        level: u8,
        ordinal: u64,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        out: &mut Vec<LeafEntry>,
    ) -> Result<()> {
        if level == 0 {
            out.push(LeafEntry {
                entry: e.clone(),
                ordinal,
            });
            return Ok(());
        }
        let node = self.read_internal(e, level)?;
        let mut ord = ordinal;
        for (i, c) in node.children.iter().enumerate() {
            let next_first = node.children.get(i + 1).map(|n| n.first_key.as_slice());
            // The child covers [c.first_key, next_first); skip it when the range misses that.
            let below_lo = match (lo, next_first) {
                (Bound::Included(l), Some(nf)) | (Bound::Excluded(l), Some(nf)) => nf <= l,
                _ => false,
            };
            let above_hi = match hi {
                Bound::Included(h) => c.first_key.as_slice() > h,
                Bound::Excluded(h) => c.first_key.as_slice() >= h,
                Bound::Unbounded => false,
            };
            if !below_lo && !above_hi {
                self.collect(c, level - 1, ord, lo, hi, out)?;
            }
            ord += c.rows;
        }
        Ok(())
    }

    /// The leaf that would hold `key`, if any leaf's range covers it.
    pub fn find_leaf(&self, key: &[u8]) -> Result<Option<LeafEntry>> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        if key < root.entry.first_key.as_slice() {
            return Ok(None);
        }
        let (mut e, mut level, mut ordinal) = (root.entry.clone(), root.height, 0u64);
        while level > 0 {
            let node = self.read_internal(&e, level)?;
            let i = node
                .children
                .partition_point(|c| c.first_key.as_slice() <= key)
                .saturating_sub(1);
            ordinal += node.children[..i].iter().map(|c| c.rows).sum::<u64>();
            e = node.children[i].clone();
            level -= 1;
        }
        Ok(Some(LeafEntry { entry: e, ordinal }))
    }

    /// Decodes the given columns of a leaf.
    pub fn read_columns(
        &self,
        leaf: &LeafNode,
        columns: &[usize],
        access: Access,
    ) -> Result<Vec<ArrayRef>> {
        columns
            .iter()
            .map(|&c| match self.layout.chunk(leaf, c) {
                Some(chunk) => self.read_chunk(chunk, c, leaf.rows as usize, access),
                None => self.layout.fill(c, leaf.rows as usize),
            })
            .collect()
    }

    /// Decodes the given columns of a row batch of `rows` rows (an overlay or residual batch)
    /// whose slots hold the blocks `blocks`.
    pub fn read_batch_columns(
        &self,
        blocks: &[Option<RecordRef>],
        rows: usize,
        columns: &[usize],
        access: Access,
    ) -> Result<Vec<ArrayRef>> {
        columns
            .iter()
            .map(|&c| match self.layout.block_of(blocks, c) {
                Some(block) => self.read_block(&block, None, c, rows, access),
                None => self.layout.fill(c, rows),
            })
            .collect()
    }

    /// Decodes a leaf's chunk of column `column`, which reads `rows` values.
    pub fn read_chunk(
        &self,
        chunk: &ColumnChunk,
        column: usize,
        rows: usize,
        access: Access,
    ) -> Result<ArrayRef> {
        self.read_block(&chunk.block, chunk.removed.as_deref(), column, rows, access)
    }

    /// Decodes the column block `block` of column `column`, which reads `rows` values: all
    /// of the block's, or, for a derived chunk, those `removed` leaves (the block's other
    /// rows, in order).
    pub fn read_block(
        &self,
        block: &RecordRef,
        removed: Option<&RemovedRows>,
        column: usize,
        rows: usize,
        access: Access,
    ) -> Result<ArrayRef> {
        match removed {
            Some(removed) => self.read_derived(block, removed, column, rows, access),
            None => self.read_whole_block(block, column, rows, access),
        }
    }

    /// Decodes every row of the column block `block`, which holds `rows` values of column
    /// `column`.
    pub(crate) fn read_whole_block(
        &self,
        block: &RecordRef,
        column: usize,
        rows: usize,
        access: Access,
    ) -> Result<ArrayRef> {
        let t = self.layout.schema.field(column).data_type();
        if access == Access::Cached
            && let Some(Decoded::Column(a)) = self.source.cache.get(&block.hash)
            && a.data_type() == t
            && a.len() == rows
        {
            return Ok(a);
        }
        let raw = self.source.packs.read_block(block)?;
        let array = match crate::gather::is_gathered(&raw) {
            true => self.read_gathered(block, &raw, column, rows)?,
            false => self.decode_block(block, &raw, column, rows)?,
        };
        if access == Access::Cached {
            self.source
                .cache
                .insert(block.hash, Decoded::Column(array.clone()));
        }
        Ok(array)
    }

    /// Decodes the bytes `raw` of the mini-block column block `block` (`rows` values of
    /// column `column`).
    pub(crate) fn decode_block(
        &self,
        block: &RecordRef,
        raw: &bytes::Bytes,
        column: usize,
        rows: usize,
    ) -> Result<ArrayRef> {
        let t = self.layout.schema.field(column).data_type();
        block::decode(raw, t, rows)
            .map_err(|reason| Error::corrupt(pack_path(block.pack), block.offset, reason))
    }

    /// Decodes the string or binary column block `block` (`rows` values of column
    /// `column`) as a `Dictionary(Int32, type)` array, uncached (see
    /// [`crate::encoding::decode_dictionary`]).
    pub fn read_block_as_dictionary(
        &self,
        block: &RecordRef,
        removed: Option<&RemovedRows>,
        column: usize,
        rows: usize,
    ) -> Result<ArrayRef> {
        let t = self.layout.schema.field(column).data_type();
        let raw = self.source.packs.read_block(block)?;
        if crate::gather::is_gathered(&raw) {
            let values = self.read_block(block, removed, column, rows, Access::Streaming)?;
            let as_dictionary =
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(t.clone()));
            return Ok(arrow::compute::cast(&values, &as_dictionary)?);
        }
        let corrupt = |reason| Error::corrupt(pack_path(block.pack), block.offset, reason);
        let Some(removed) = removed else {
            return crate::encoding::decode_dictionary(&raw, t, rows).map_err(corrupt);
        };
        crate::removed::check_live_rows(block, removed, rows)?;
        let whole =
            crate::encoding::decode_dictionary(&raw, t, removed.physical()).map_err(corrupt)?;
        Ok(arrow::compute::filter(
            &whole,
            &removed.keep_mask(0..removed.physical()),
        )?)
    }

    /// Checks every byte of the column block record `block` against its record checksum,
    /// which reads leave to the block's own checksums of what they decode.
    /// A gathered block's own-values block is checked too (its base block belongs to a
    /// keyframe leaf, which the keyframe's verification checks).
    pub fn verify_block(&self, block: &RecordRef) -> Result<()> {
        let payload = self.source.packs.read(block, RecordKind::ColumnBlock)?;
        if crate::gather::is_gathered(&payload) {
            let g = crate::gather::Gathered::decode(&payload)
                .map_err(|d| Error::corrupt(pack_path(block.pack), block.offset, d.0))?;
            if let Some((own, _)) = g.own {
                self.source.packs.read(&own, RecordKind::ColumnBlock)?;
            }
        }
        Ok(())
    }

    /// The ordinals of sorted, distinct encoded keys (`probe` holds their key columns, row i
    /// for key i), by one merge over the leaves they fall in.
    pub fn ordinals_of_sorted(
        &self,
        keys: &[&[u8]],
        probe: &[ArrayRef],
    ) -> Result<Vec<Option<u64>>> {
        let mut out = vec![None; keys.len()];
        let Some(first) = keys.first() else {
            return Ok(out);
        };
        let last = keys[keys.len() - 1];
        let leaves = self.leaves_in(Bound::Included(first), Bound::Included(last))?;
        let key_cols = self.layout.key.columns();
        let mut i = 0usize;
        for (li, leaf) in leaves.iter().enumerate() {
            // Keys below this leaf's first key are in no leaf.
            i += keys[i..].partition_point(|k| *k < leaf.entry.first_key.as_slice());
            let end = match leaves.get(li + 1) {
                Some(next) => {
                    i + keys[i..].partition_point(|k| *k < next.entry.first_key.as_slice())
                }
                None => keys.len(),
            };
            if i == end {
                continue;
            }
            let node = self.read_leaf(&leaf.entry)?;
            let cols = self.read_columns(&node, key_cols, Access::Cached)?;
            let cmps = cols
                .iter()
                .zip(probe)
                .map(|(l, p)| make_comparator(l.as_ref(), p.as_ref(), SortOptions::default()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let compare = |row: usize, j: usize| {
                cmps.iter()
                    .map(|c| c(row, j))
                    .find(|o| *o != Ordering::Equal)
                    .unwrap_or(Ordering::Equal)
            };
            let mut from = 0usize;
            for (j, slot) in out.iter_mut().enumerate().take(end).skip(i) {
                // Leaf rows before `from` are below key j-1, so below key j too.
                let (mut lo, mut hi) = (from, node.rows as usize);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if compare(mid, j) == Ordering::Less {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                if lo < node.rows as usize && compare(lo, j) == Ordering::Equal {
                    *slot = Some(leaf.ordinal + lo as u64);
                }
                from = lo;
            }
            i = end;
        }
        Ok(out)
    }

    /// The ordinal of the row with encoded key `key` (whose key columns are `probe`, one
    /// row each), if the tree holds it.
    pub fn ordinal_of(&self, key: &[u8], probe: &[ArrayRef]) -> Result<Option<u64>> {
        let Some(leaf) = self.find_leaf(key)? else {
            return Ok(None);
        };
        let node = self.read_leaf(&leaf.entry)?;
        if key > node.last_key.as_slice() {
            return Ok(None);
        }
        let keys = self.read_columns(&node, self.layout.key.columns(), Access::Cached)?;
        Ok(search_key(&keys, probe)?
            .ok()
            .map(|row| leaf.ordinal + row as u64))
    }

    /// Decodes a whole leaf as a batch of the table schema.
    pub fn read_batch(&self, leaf: &LeafNode, access: Access) -> Result<RecordBatch> {
        let all: Vec<usize> = (0..self.layout.schema.fields().len()).collect();
        let cols = self.read_columns(leaf, &all, access)?;
        Ok(RecordBatch::try_new(self.layout.schema.clone(), cols)?)
    }
}
