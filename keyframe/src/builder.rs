//! Writing keyframes. Leaf boundaries are content-defined on the key: a leaf ends after a key
//! whose hash meets a condition (once the leaf has its minimum size) or at the maximum size.
//! Because the rule depends only on the keys since the last boundary, an update touches only
//! the leaves its changes fall in (plus neighbours until the boundaries re-align); every other
//! leaf is reused as it is, and re-cut leaves that come out equal dedup by content hash. A
//! re-cut leaf whose rows are an old leaf's minus some, none inserted, keeps the blocks of
//! the columns no update changed, as derived chunks naming the rows they leave out.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{concat, interleave_record_batch};
use arrow_row::Rows;
use rayon::prelude::*;

use crate::block;
use crate::error::Result;
use crate::format::content_hash;
use crate::node::{ChildEntry, ColumnChunk, InternalNode, LeafNode};
use crate::pack::PackWriter;
use crate::record::RecordKind;
use crate::tree::{Access, Root, TableLayout, Tree};
use crate::zonemap;

/// Sizes that shape the tree. Changing them changes where boundaries fall (and so dedup
/// against trees written with other shapes), never what is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeShape {
    /// A leaf never ends before this many rows (except the last).
    pub min_leaf_rows: usize,
    /// After the minimum, a leaf ends after a key whose hash has these low bits all zero.
    pub leaf_boundary_mask: u64,
    /// A leaf always ends at this many rows.
    pub max_leaf_rows: usize,
    /// Internal nodes: minimum children.
    pub min_fanout: usize,
    /// Internal nodes: boundary mask on the hash of a child's first key.
    pub fanout_mask: u64,
    /// Internal nodes: maximum children.
    pub max_fanout: usize,
}

impl Default for TreeShape {
    fn default() -> Self {
        TreeShape {
            min_leaf_rows: 2048,
            leaf_boundary_mask: (1 << 13) - 1,
            max_leaf_rows: 1 << 16,
            min_fanout: 8,
            fanout_mask: (1 << 5) - 1,
            max_fanout: 512,
        }
    }
}

/// The changes a commit makes to one table, sorted by key.
#[derive(Debug)]
pub struct SortedChanges {
    /// Rows to insert or overwrite, sorted by key, keys unique.
    pub upserts: RecordBatch,
    /// Encoded keys of `upserts`, row for row.
    pub upsert_keys: Rows,
    /// Encoded keys to delete, sorted, unique, none of them among the upserts' keys.
    pub deletes: Vec<Vec<u8>>,
}

/// One change: the upsert row at an index, or a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert or overwrite with row `i` of [`SortedChanges::upserts`].
    Upsert(usize),
    /// Delete the key.
    Delete,
}

impl SortedChanges {
    /// Upserts and deletes merged into one key-ordered list of (encoded key, change).
    pub fn ops(&self) -> Vec<(&[u8], Op)> {
        let n = self.upsert_keys.num_rows();
        let mut ops = Vec::with_capacity(n + self.deletes.len());
        let (mut i, mut j) = (0, 0);
        while i < n || j < self.deletes.len() {
            let take_upsert = j >= self.deletes.len()
                || (i < n && self.upsert_keys.row(i).data() < self.deletes[j].as_slice());
            if take_upsert {
                ops.push((self.upsert_keys.row(i).data(), Op::Upsert(i)));
                i += 1;
            } else {
                ops.push((self.deletes[j].as_slice(), Op::Delete));
                j += 1;
            }
        }
        ops
    }
}

fn key_hash(key: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, seed)
}

/// Writes a new version of the tree `old` with `changes` applied and returns its root
/// (`None` when the table ends up empty). Only new content is appended to `packs`.
pub fn apply(
    packs: &mut PackWriter,
    shape: &TreeShape,
    old: &Tree,
    changes: &SortedChanges,
) -> Result<Option<Root>> {
    let layout = old.layout().clone();
    let ops = changes.ops();
    let leaves = old.leaves()?;
    let mut chunker = Chunker::new(*shape, layout.clone());
    let mut out: Vec<ChildEntry> = Vec::with_capacity(leaves.len() + 1);
    let mut pos = 0usize;
    if leaves.is_empty() {
        let merged = merge_leaf(None, &ops, changes, &layout)?;
        if let Some(m) = merged {
            chunker.push(packs, m, None, &mut out)?;
        }
    }
    for (i, leaf) in leaves.iter().enumerate() {
        let end = match leaves.get(i + 1) {
            Some(next) => {
                pos + ops[pos..].partition_point(|(k, _)| *k < next.entry.first_key.as_slice())
            }
            None => ops.len(),
        };
        let leaf_ops = &ops[pos..end];
        pos = end;
        if leaf_ops.is_empty() && chunker.is_empty() {
            out.push(leaf.entry.clone());
            continue;
        }
        let node = old.read_leaf(&leaf.entry)?;
        let batch = old.read_batch(&node, Access::Streaming)?;
        if let Some(m) = merge_leaf(Some(batch.clone()), leaf_ops, changes, &layout)? {
            let old_leaf = Arc::new(OldLeaf { node, batch });
            chunker.push(packs, m, Some(old_leaf), &mut out)?;
        }
    }
    chunker.finish(packs, &mut out)?;
    build_internal(packs, shape, out)
}

/// Where a row of a merged leaf came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The old leaf's row at this position, unchanged.
    Kept(u32),
    /// An upsert overwriting the old leaf's row at this position.
    Updated(u32),
    /// An upsert of a key the old leaf lacks.
    Inserted,
}

/// A leaf's rows after a commit's changes.
struct Merged {
    batch: RecordBatch,
    /// The hash of each row's key.
    hashes: Vec<u64>,
    /// Where each row came from.
    origins: Vec<Origin>,
}

/// A leaf of the old tree that changes, decoded.
pub(crate) struct OldLeaf {
    pub(crate) node: Arc<LeafNode>,
    pub(crate) batch: RecordBatch,
}

/// Applies `ops` (all within the leaf's key range) to a leaf's rows; returns the merged rows,
/// or `None` when no row remains.
fn merge_leaf(
    leaf: Option<RecordBatch>,
    ops: &[(&[u8], Op)],
    changes: &SortedChanges,
    layout: &TableLayout,
) -> Result<Option<Merged>> {
    let leaf_keys = match &leaf {
        Some(b) => Some(layout.key.encode_batch(b)?),
        None => None,
    };
    let n = leaf_keys.as_ref().map_or(0, |k| k.num_rows());
    // (source, row): source 0 is the leaf, 1 the upserts.
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(n + ops.len());
    let mut hashes = Vec::with_capacity(n + ops.len());
    let mut origins = Vec::with_capacity(n + ops.len());
    let (mut i, mut j) = (0usize, 0usize);
    while i < n || j < ops.len() {
        let lk = leaf_keys.as_ref().filter(|_| i < n).map(|k| k.row(i));
        let order = match (lk, ops.get(j)) {
            (Some(l), Some((k, _))) => l.as_ref().cmp(k),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some(l) = lk {
                    hashes.push(key_hash(l.as_ref(), 0));
                }
                picks.push((0, i));
                origins.push(Origin::Kept(i as u32));
                i += 1;
            }
            ord => {
                let (k, op) = ops[j];
                if let Op::Upsert(u) = op {
                    picks.push((1, u));
                    hashes.push(key_hash(k, 0));
                    origins.push(match ord {
                        std::cmp::Ordering::Equal => Origin::Updated(i as u32),
                        _ => Origin::Inserted,
                    });
                }
                if ord == std::cmp::Ordering::Equal {
                    i += 1;
                }
                j += 1;
            }
        }
    }
    if picks.is_empty() {
        return Ok(None);
    }
    let empty;
    let leaf_batch = match &leaf {
        Some(b) => b,
        None => {
            empty = RecordBatch::new_empty(layout.schema.clone());
            &empty
        }
    };
    let batch = interleave_record_batch(&[leaf_batch, &changes.upserts], &picks)?;
    Ok(Some(Merged {
        batch,
        hashes,
        origins,
    }))
}

/// Cuts a stream of sorted rows into leaves at content-defined boundaries.
struct Chunker {
    shape: TreeShape,
    layout: Arc<TableLayout>,
    pending: Vec<Pending>,
    count: usize,
}

/// Rows waiting for the next boundary: a slice of one merged leaf.
struct Pending {
    batch: RecordBatch,
    origins: Vec<Origin>,
    old: Option<Arc<OldLeaf>>,
}

impl Chunker {
    fn new(shape: TreeShape, layout: Arc<TableLayout>) -> Self {
        Chunker {
            shape,
            layout,
            pending: Vec::new(),
            count: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Takes the rows of one merged leaf (`old`: the leaf of the old tree they came from).
    fn push(
        &mut self,
        packs: &mut PackWriter,
        merged: Merged,
        old: Option<Arc<OldLeaf>>,
        out: &mut Vec<ChildEntry>,
    ) -> Result<()> {
        let Merged {
            batch,
            hashes,
            origins,
        } = merged;
        let part = |start: usize, end: usize| Pending {
            batch: batch.slice(start, end - start),
            origins: origins[start..end].to_vec(),
            old: old.clone(),
        };
        let mut start = 0;
        for (r, h) in hashes.iter().enumerate() {
            self.count += 1;
            let cut = (self.count >= self.shape.min_leaf_rows
                && h & self.shape.leaf_boundary_mask == 0)
                || self.count >= self.shape.max_leaf_rows;
            if cut {
                self.pending.push(part(start, r + 1));
                start = r + 1;
                self.emit(packs, out)?;
            }
        }
        if start < batch.num_rows() {
            self.pending.push(part(start, batch.num_rows()));
        }
        Ok(())
    }

    fn finish(&mut self, packs: &mut PackWriter, out: &mut Vec<ChildEntry>) -> Result<()> {
        if self.count > 0 {
            self.emit(packs, out)?;
        }
        Ok(())
    }

    fn emit(&mut self, packs: &mut PackWriter, out: &mut Vec<ChildEntry>) -> Result<()> {
        let parts = std::mem::take(&mut self.pending);
        self.count = 0;
        let ncols = self.layout.schema.fields().len();
        let columns: Vec<ArrayRef> = (0..ncols)
            .map(|c| {
                let arrays: Vec<&dyn arrow::array::Array> =
                    parts.iter().map(|p| p.batch.column(c).as_ref()).collect();
                concat(&arrays)
            })
            .collect::<std::result::Result<_, _>>()?;
        // Rows all from one old leaf, none inserted, may keep that leaf's blocks.
        let old = parts.first().and_then(|p| p.old.clone()).filter(|old| {
            parts.iter().all(|p| {
                p.old.as_ref().is_some_and(|o| Arc::ptr_eq(o, old))
                    && !p.origins.contains(&Origin::Inserted)
            })
        });
        let derived = match &old {
            Some(old) => {
                let origins: Vec<Origin> = parts
                    .iter()
                    .flat_map(|p| p.origins.iter().copied())
                    .collect();
                crate::derive::derive_chunks(&self.layout, old, &origins, &columns)?
            }
            None => vec![None; ncols],
        };
        let entry = write_leaf(packs, &self.layout, columns, derived)?;
        out.push(entry);
        Ok(())
    }
}

/// Encodes, hashes and stores the blocks of one leaf and the leaf node itself; a column with
/// a `derived` chunk keeps it instead of being stored.
fn write_leaf(
    packs: &mut PackWriter,
    layout: &TableLayout,
    columns: Vec<ArrayRef>,
    derived: Vec<Option<ColumnChunk>>,
) -> Result<ChildEntry> {
    let rows = columns.first().map_or(0, |c| c.len());
    let encoded: Vec<Option<(Vec<u8>, zonemap::ZoneMap)>> = columns
        .par_iter()
        .zip(&derived)
        .map(|(c, d)| match d {
            Some(_) => Ok(None),
            None => Ok(Some((block::encode(c)?, zonemap::compute(c)?))),
        })
        .collect::<Result<_>>()?;
    let mut chunks = Vec::with_capacity(encoded.len());
    for ((encoded, derived), col) in encoded.into_iter().zip(derived).zip(&layout.columns) {
        let Some((raw, zone)) = encoded else {
            // `encoded` is `None` exactly where `derived` is `Some`.
            chunks.extend(derived);
            continue;
        };
        let hash = content_hash(&raw);
        let block = packs.put(RecordKind::ColumnBlock, &raw, hash)?;
        chunks.push(ColumnChunk {
            block,
            raw_len: raw.len() as u32,
            epoch: col.epoch,
            zone,
            removed: None,
        });
    }
    let key_cols: Vec<ArrayRef> = layout
        .key
        .columns()
        .iter()
        .map(|&c| columns[c].clone())
        .collect();
    let ends: Vec<ArrayRef> = key_cols
        .iter()
        .map(|k| concat(&[k.slice(0, 1).as_ref(), k.slice(rows - 1, 1).as_ref()]))
        .collect::<std::result::Result<_, _>>()?;
    let end_keys = layout.key.encode_columns(&ends)?;
    let leaf = LeafNode {
        rows: rows as u32,
        first_key: end_keys.row(0).as_ref().to_vec(),
        last_key: end_keys.row(1).as_ref().to_vec(),
        columns: layout.to_slots(&chunks),
    };
    let raw = leaf.encode();
    let node = packs.put(RecordKind::Leaf, &raw, content_hash(&raw))?;
    Ok(ChildEntry {
        first_key: leaf.first_key.clone(),
        node,
        rows: rows as u64,
        raw_bytes: leaf.raw_bytes(),
        leaves: 1,
    })
}

/// Builds the internal levels over `level0` (leaf entries in key order), content-defined on
/// the children's first keys, and returns the root.
fn build_internal(
    packs: &mut PackWriter,
    shape: &TreeShape,
    mut entries: Vec<ChildEntry>,
) -> Result<Option<Root>> {
    let mut height = 0u8;
    loop {
        if entries.len() <= 1 {
            return Ok(entries.pop().map(|entry| Root { entry, height }));
        }
        height += 1;
        let mut next = Vec::new();
        let mut group: Vec<ChildEntry> = Vec::new();
        let n = entries.len();
        for (i, e) in entries.into_iter().enumerate() {
            let h = key_hash(&e.first_key, u64::from(height));
            group.push(e);
            let cut = (group.len() >= shape.min_fanout && h & shape.fanout_mask == 0)
                || group.len() >= shape.max_fanout
                || i + 1 == n;
            if cut {
                next.push(write_internal(packs, height, std::mem::take(&mut group))?);
            }
        }
        entries = next;
    }
}

fn write_internal(
    packs: &mut PackWriter,
    level: u8,
    children: Vec<ChildEntry>,
) -> Result<ChildEntry> {
    let node = InternalNode { level, children };
    let raw = node.encode();
    let r = packs.put(RecordKind::Internal, &raw, content_hash(&raw))?;
    let c = &node.children;
    Ok(ChildEntry {
        first_key: c[0].first_key.clone(),
        node: r,
        rows: c.iter().map(|x| x.rows).sum(),
        raw_bytes: c.iter().map(|x| x.raw_bytes).sum(),
        leaves: c.iter().map(|x| x.leaves).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::DecodedCache;
    use crate::pack::PackReader;
    use crate::storage::{LocalStorage, Storage};
    use crate::tree::Source;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use proptest::prelude::*;

    fn shape() -> TreeShape {
        TreeShape {
            min_leaf_rows: 3,
            leaf_boundary_mask: 7,
            max_leaf_rows: 10,
            min_fanout: 2,
            fanout_mask: 3,
            max_fanout: 5,
        }
    }

    fn batch(keys: &[i64], salt: u8) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(keys.to_vec())),
                Arc::new(StringArray::from_iter_values(
                    keys.iter().map(|k| format!("{k}/{salt}")),
                )),
            ],
        )
        .unwrap()
    }

    fn changes(layout: &TableLayout, upserts: RecordBatch, deletes: &[i64]) -> SortedChanges {
        let upsert_keys = layout.key.encode_batch(&upserts).unwrap();
        let del = layout
            .key
            .encode_columns(&[Arc::new(Int64Array::from(deletes.to_vec()))])
            .unwrap();
        SortedChanges {
            upserts,
            upsert_keys,
            deletes: del.iter().map(|r| r.as_ref().to_vec()).collect(),
        }
    }

    #[test]
    fn every_row_has_its_key_order_position_as_ordinal() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let source = Arc::new(Source {
            packs: PackReader::new(storage.clone()),
            cache: DecodedCache::default(),
        });
        let mut packs = PackWriter::open(storage, &[]).unwrap();
        let keys: Vec<i64> = (0..500).map(|k| k * 3).collect();
        let layout = Arc::new(TableLayout::new(batch(&[], 0).schema(), &[0]).unwrap());
        let empty = Tree::new(source.clone(), layout.clone(), None);
        let root = apply(
            &mut packs,
            &shape(),
            &empty,
            &changes(&layout, batch(&keys, 0), &[]),
        )
        .unwrap();
        let tree = Tree::new(source, layout.clone(), root);
        assert!(tree.leaves().unwrap().len() > 20);
        for probe in [0i64, 1, 3, 299, 300, 1497, 1498, -5] {
            let arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![probe]))];
            let enc = layout.key.encode_columns(&arrays).unwrap();
            let want = (probe >= 0 && probe % 3 == 0 && probe < 1500).then_some((probe / 3) as u64);
            assert_eq!(
                tree.ordinal_of(enc.row(0).as_ref(), &arrays).unwrap(),
                want,
                "key {probe}"
            );
        }
    }

    /// Each leaf's first key and row count, and every row, in key order.
    fn shape_and_rows(tree: &Tree) -> (Vec<(Vec<u8>, u64)>, Vec<RecordBatch>) {
        let leaves = tree.leaves().unwrap();
        let bounds = leaves
            .iter()
            .map(|l| (l.entry.first_key.clone(), l.entry.rows))
            .collect();
        let rows = leaves
            .iter()
            .map(|l| {
                tree.read_batch(&tree.read_leaf(&l.entry).unwrap(), Access::Streaming)
                    .unwrap()
            })
            .collect();
        (bounds, rows)
    }

    fn store() -> (tempfile::TempDir, Arc<Source>, PackWriter) {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let source = Arc::new(Source {
            packs: PackReader::new(storage.clone()),
            cache: DecodedCache::default(),
        });
        let packs = PackWriter::open(storage, &[]).unwrap();
        (dir, source, packs)
    }

    /// A tree of one leaf holding keys 0..400, and a shape that keeps it one leaf.
    fn one_leaf_of_400_rows() -> (
        tempfile::TempDir,
        Arc<Source>,
        PackWriter,
        Arc<TableLayout>,
        TreeShape,
        Tree,
    ) {
        let (dir, source, mut packs) = store();
        let layout = Arc::new(TableLayout::new(batch(&[], 0).schema(), &[0]).unwrap());
        let empty = Tree::new(source.clone(), layout.clone(), None);
        let shape = TreeShape {
            min_leaf_rows: 100,
            max_leaf_rows: 1000,
            leaf_boundary_mask: u64::MAX,
            ..shape()
        };
        let keys: Vec<i64> = (0..400).collect();
        let root = apply(
            &mut packs,
            &shape,
            &empty,
            &changes(&layout, batch(&keys, 0), &[]),
        )
        .unwrap();
        let first = Tree::new(source.clone(), layout.clone(), root);
        (dir, source, packs, layout, shape, first)
    }

    #[test]
    fn a_leaf_losing_a_few_rows_keeps_its_unchanged_blocks_and_reads_the_rest() {
        let (_dir, source, mut packs, layout, shape, first) = one_leaf_of_400_rows();
        let keys: Vec<i64> = (0..400).collect();
        let old_leaf = first.read_leaf(&first.leaves().unwrap()[0].entry).unwrap();
        // Deletes, and an upsert that writes a key's value column with the value it has.
        let same = batch(&[7], 0);
        let second = apply(
            &mut packs,
            &shape,
            &first,
            &changes(&layout, same, &[3, 50, 399]),
        )
        .unwrap();
        let second = Tree::new(source.clone(), layout.clone(), second);
        let leaves = second.leaves().unwrap();
        assert_eq!(leaves.len(), 1);
        let leaf = second.read_leaf(&leaves[0].entry).unwrap();
        for c in 0..2 {
            let (new, old) = (
                layout.chunk(&leaf, c).unwrap(),
                layout.chunk(&old_leaf, c).unwrap(),
            );
            assert_eq!(new.block, old.block, "column {c} keeps its block");
            assert_eq!(new.removed.as_ref().unwrap().rows(), &[3, 50, 399]);
        }
        let want: Vec<i64> = keys
            .iter()
            .copied()
            .filter(|k| ![3, 50, 399].contains(k))
            .collect();
        let read = second.read_batch(&leaf, Access::Cached).unwrap();
        assert_eq!(read, batch(&want, 0));
        // Point reads of single rows map past the removed ones, with the key columns decoded
        // by the reader (a get's) or not.
        let leaf_keys = second
            .read_columns(&leaf, layout.key.columns(), Access::Cached)
            .unwrap();
        for (live, key) in want.iter().enumerate() {
            assert_eq!(
                second.read_leaf_rows(&leaf, live..live + 1).unwrap(),
                batch(&[*key], 0)
            );
            assert_eq!(
                second.read_leaf_row(&leaf, &leaf_keys, live).unwrap(),
                batch(&[*key], 0)
            );
        }
        // Keys of another length, or a row past the leaf, are the caller's error.
        assert!(second.read_leaf_row(&leaf, &leaf_keys, want.len()).is_err());
        let short = [leaf_keys[0].slice(0, 3)];
        assert!(second.read_leaf_row(&leaf, &short, 0).is_err());
        assert_eq!(
            second.read_leaf_rows(&leaf, 2..6).unwrap(),
            batch(&[2, 4, 5, 6], 0)
        );
        // A second round composes with the first: still the original blocks.
        let third = apply(
            &mut packs,
            &shape,
            &second,
            &changes(&layout, batch(&[], 0), &[4]),
        )
        .unwrap();
        let third = Tree::new(source.clone(), layout.clone(), third);
        let leaf3 = third.read_leaf(&third.leaves().unwrap()[0].entry).unwrap();
        assert_eq!(
            layout.chunk(&leaf3, 1).unwrap().block,
            layout.chunk(&old_leaf, 1).unwrap().block
        );
        assert_eq!(
            layout
                .chunk(&leaf3, 1)
                .unwrap()
                .removed
                .as_ref()
                .unwrap()
                .rows(),
            &[3, 4, 50, 399]
        );
        // An update that changes the value column stores that column again, not the key.
        let fourth = apply(
            &mut packs,
            &shape,
            &third,
            &changes(&layout, batch(&[8], 9), &[]),
        )
        .unwrap();
        let fourth = Tree::new(source, layout.clone(), fourth);
        let leaf4 = fourth
            .read_leaf(&fourth.leaves().unwrap()[0].entry)
            .unwrap();
        assert_eq!(
            layout.chunk(&leaf4, 0).unwrap().block,
            layout.chunk(&old_leaf, 0).unwrap().block
        );
        assert!(layout.chunk(&leaf4, 1).unwrap().removed.is_none());
        assert_ne!(
            layout.chunk(&leaf4, 1).unwrap().block,
            layout.chunk(&old_leaf, 1).unwrap().block
        );
        let rows = fourth.read_batch(&leaf4, Access::Streaming).unwrap();
        let v = rows
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(v.value(6), "8/9");
    }

    #[test]
    fn a_block_is_stored_again_once_it_would_lose_more_than_a_quarter_of_its_rows() {
        let (_dir, source, mut packs, layout, shape, first) = one_leaf_of_400_rows();
        let gone: Vec<i64> = (0..101).collect();
        let second = apply(
            &mut packs,
            &shape,
            &first,
            &changes(&layout, batch(&[], 0), &gone),
        )
        .unwrap();
        let second = Tree::new(source, layout.clone(), second);
        let leaf = second
            .read_leaf(&second.leaves().unwrap()[0].entry)
            .unwrap();
        assert!(leaf.columns.iter().flatten().all(|c| c.removed.is_none()));
        assert_eq!(
            second.read_batch(&leaf, Access::Streaming).unwrap(),
            batch(&(101..400).collect::<Vec<_>>(), 0)
        );
    }

    proptest! {
        /// The property that makes untouched key ranges dedup: applying changes to a tree
        /// cuts exactly the leaves a from-scratch build of the resulting rows cuts, holding
        /// the same rows (a leaf may read some columns from the old leaf's blocks, where a
        /// build from scratch stores them).
        #[test]
        fn incremental_application_equals_building_from_scratch(
            base in prop::collection::btree_set(0i64..600, 0..300),
            upserts in prop::collection::btree_set(0i64..600, 0..60),
            deletes in prop::collection::btree_set(0i64..600, 0..60),
            rounds in 1usize..4,
        ) {
            let deletes: Vec<i64> = deletes.difference(&upserts).copied().collect();
            let (_dir, source, mut packs) = store();
            let base_keys: Vec<i64> = base.iter().copied().collect();
            let layout = Arc::new(TableLayout::new(batch(&[], 0).schema(), &[0]).unwrap());
            let empty = Tree::new(source.clone(), layout.clone(), None);
            let first = apply(&mut packs, &shape(), &empty, &changes(&layout, batch(&base_keys, 0), &[])).unwrap();
            let mut tree = Tree::new(source.clone(), layout.clone(), first);
            let mut expected: std::collections::BTreeMap<i64, u8> = base.iter().map(|k| (*k, 0)).collect();
            // Each round applies a share of the changes, so derived leaves derive again.
            for round in 0..rounds {
                let up: Vec<i64> = upserts.iter().copied().filter(|k| *k as usize % rounds == round).collect();
                let del: Vec<i64> = deletes.iter().copied().filter(|k| *k as usize % rounds == round).collect();
                let salt = (round % 2) as u8;
                let root = apply(&mut packs, &shape(), &tree, &changes(&layout, batch(&up, salt), &del)).unwrap();
                tree = Tree::new(source.clone(), layout.clone(), root);
                for k in &del { expected.remove(k); }
                for k in &up { expected.insert(*k, salt); }
            }
            let parts: Vec<RecordBatch> = expected.iter().map(|(k, s)| batch(&[*k], *s)).collect();
            let all = arrow::compute::concat_batches(&batch(&[], 0).schema(), &parts).unwrap();
            let scratch = apply(&mut packs, &shape(), &empty, &changes(&layout, all, &[])).unwrap();
            let scratch = Tree::new(source.clone(), layout.clone(), scratch);
            prop_assert_eq!(shape_and_rows(&tree), shape_and_rows(&scratch));
            prop_assert_eq!(tree.rows(), expected.len() as u64);
        }
    }
}
