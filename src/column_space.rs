//! Where a store's column block bytes go: per table, column and encoding, each distinct
//! block once (`StoreStats::column_space`, `reel stats`), tallied over the version records
//! the statistics pass reads anyway.

use std::collections::{BTreeMap, HashMap, HashSet};

use reeldb_keyframe::RecordRef;
use reeldb_keyframe::tree::{Root, Tree};

use crate::catalog::version::VersionRecord;
use crate::error::Result;
use crate::store::Store;

/// The stored bytes of one column's blocks in one encoding (see [`StoreStats::column_space`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpace {
    /// Table name (at the latest version that has the table).
    pub table: String,
    /// Column name.
    pub column: String,
    /// The blocks' encoding, as `reeldb_keyframe::encoding::Encoding::name` gives it.
    pub encoding: &'static str,
    /// Distinct blocks.
    pub blocks: u64,
    /// Their bytes on disk, framing included.
    pub bytes: u64,
}

/// Encoding name -> (blocks, bytes).
type ByEncoding = BTreeMap<&'static str, (u64, u64)>;

/// The running tally; feed it every version record, oldest first.
#[derive(Debug, Default)]
pub(crate) struct ColumnSpaceTally {
    /// Trees already walked, by root node: versions of one generation share their keyframe.
    roots: HashSet<(u32, u64)>,
    leaves: HashSet<(u32, u64)>,
    blocks: HashSet<(u32, u64)>,
    /// Tables in order of first appearance, by name.
    tables: HashMap<u32, usize>,
    /// (table order, column slot) -> (table name, column name, bytes by encoding).
    space: BTreeMap<(usize, usize), (String, String, ByEncoding)>,
}

impl ColumnSpaceTally {
    /// Adds the blocks `rec` references that no earlier record did, reading each one's
    /// encoding from its verified header.
    pub(crate) fn add(&mut self, store: &Store, rec: &VersionRecord) -> Result<()> {
        for t in &rec.tables {
            let next = self.tables.len();
            let order = *self.tables.entry(t.id).or_insert(next);
            let layout = store.load_def(t.def)?.layout.clone();
            let mut blocks: Vec<(usize, RecordRef)> = Vec::new();
            if let Some(root) = &t.root
                && self.roots.insert((root.pack, root.offset))
            {
                let tree = Tree::new(
                    store.inner.source.clone(),
                    layout.clone(),
                    Some(Root::from(root)),
                );
                for leaf in tree.leaves()? {
                    let node = leaf.entry.node;
                    if self.leaves.insert((node.pack, node.offset)) {
                        let leaf = tree.read_leaf(&leaf.entry)?;
                        blocks.extend(
                            leaf.columns
                                .iter()
                                .enumerate()
                                .filter_map(|(slot, ch)| ch.as_ref().map(|ch| (slot, ch.block))),
                        );
                    }
                }
            }
            let batches = t
                .overlay
                .iter()
                .flat_map(|o| &o.batches)
                .chain(t.bframe.iter().flat_map(|f| &f.residual));
            for b in batches {
                blocks.extend(b.present().map(|(slot, r)| (slot, RecordRef::from(r))));
            }
            while let Some((c, block)) = blocks.pop() {
                if !self.blocks.insert((block.pack, block.offset)) {
                    continue;
                }
                let raw = store.inner.source.packs.read_block(&block)?;
                let corrupt = |reason: String| {
                    reeldb_keyframe::Error::corrupt(
                        reeldb_keyframe::pack::pack_path(block.pack),
                        block.offset,
                        reason,
                    )
                };
                let encoding = match reeldb_keyframe::gather::is_gathered(&raw) {
                    // Its own values are a block of their own; its bases are keyframe blocks,
                    // counted with their leaves.
                    true => {
                        let g = reeldb_keyframe::gather::Gathered::decode(&raw)
                            .map_err(|d| corrupt(d.0))?;
                        blocks.extend(g.own.map(|(own, _)| (c, own)));
                        "gathered"
                    }
                    false => reeldb_keyframe::encoding::encoding_of(&raw)
                        .map_err(corrupt)?
                        .name(),
                };
                let (_, _, by) = self.space.entry((order, c)).or_insert_with(|| {
                    let column = layout.columns.iter().position(|col| col.slot == c);
                    let name = match column {
                        Some(column) => layout.schema.field(column).name().clone(),
                        None => format!("(dropped column, slot {c})"),
                    };
                    (t.name.clone(), name, BTreeMap::new())
                });
                let e = by.entry(encoding).or_default();
                e.0 += 1;
                e.1 += u64::from(block.len);
            }
        }
        Ok(())
    }

    /// The tally, in table then column order.
    pub(crate) fn finish(self) -> Vec<ColumnSpace> {
        self.space
            .into_values()
            .flat_map(|(table, column, by)| {
                by.into_iter()
                    .map(move |(encoding, (blocks, bytes))| ColumnSpace {
                        table: table.clone(),
                        column: column.clone(),
                        encoding,
                        blocks,
                        bytes,
                    })
            })
            .collect()
    }
}
