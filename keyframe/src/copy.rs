//! Copying trees and records into other packs, for log cleaning: every node is written again
//! with its children's new locations (a node's bytes hold them, so a moved child means a new
//! parent), column blocks and other leaf records are copied as they are. A memo keyed by
//! content hash copies what many versions share once.

use std::collections::HashMap;

use crate::Result;
use crate::format::{ContentHash, content_hash};
use crate::node::{ChildEntry, InternalNode, LeafNode, RecordRef};
use crate::pack::PackWriter;
use crate::record::RecordKind;
use crate::tree::{Root, Tree};

/// Where each record copied so far now is, by its old content hash.
#[derive(Debug, Default)]
pub struct Copies {
    moved: HashMap<ContentHash, RecordRef>,
}

impl Copies {
    /// Nothing copied yet.
    pub fn new() -> Self {
        Copies::default()
    }

    /// Records copied so far.
    pub fn len(&self) -> usize {
        self.moved.len()
    }

    /// True when nothing was copied.
    pub fn is_empty(&self) -> bool {
        self.moved.is_empty()
    }
}

impl Tree {
    /// Reads and verifies the record `r` of `kind` from the tree's packs.
    pub fn read_record(&self, r: &RecordRef, kind: RecordKind) -> Result<Vec<u8>> {
        self.source().packs.read(r, kind)
    }

    /// Copies a record that holds no references (a column block or a bitmap) into `packs`.
    pub fn copy_record(
        &self,
        r: &RecordRef,
        kind: RecordKind,
        packs: &mut PackWriter,
        copies: &mut Copies,
    ) -> Result<RecordRef> {
        if let Some(done) = copies.moved.get(&r.hash) {
            return Ok(*done);
        }
        let payload = self.source().packs.read(r, kind)?;
        let new = if kind == RecordKind::ColumnBlock && crate::gather::is_gathered(&payload) {
            // A gathered block names its base and own blocks by place: copied, it names
            // their copies, so its bytes (and content hash) change.
            let mut g = crate::gather::Gathered::decode(&payload).map_err(|d| {
                crate::Error::corrupt(crate::pack::pack_path(r.pack), r.offset, d.0)
            })?;
            for (base, _) in g.bases.iter_mut() {
                *base = self.copy_record(base, RecordKind::ColumnBlock, packs, copies)?;
            }
            if let Some((own, rows)) = g.own {
                g.own = Some((
                    self.copy_record(&own, RecordKind::ColumnBlock, packs, copies)?,
                    rows,
                ));
            }
            let bytes = g.encode();
            packs.put(kind, &bytes, content_hash(&bytes))?
        } else {
            packs.put(kind, &payload, r.hash)?
        };
        copies.moved.insert(r.hash, new);
        Ok(new)
    }

    /// Copies the whole tree into `packs` and returns its new root.
    pub fn copy_to(&self, packs: &mut PackWriter, copies: &mut Copies) -> Result<Option<Root>> {
        let Some(root) = self.root() else {
            return Ok(None);
        };
        let entry = self.copy_node(&root.entry, root.height, packs, copies)?;
        Ok(Some(Root {
            entry,
            height: root.height,
        }))
    }

    fn copy_node(
        &self,
        e: &ChildEntry,
        level: u8,
        packs: &mut PackWriter,
        copies: &mut Copies,
    ) -> Result<ChildEntry> {
        let moved = |node: RecordRef| ChildEntry { node, ..e.clone() };
        if let Some(done) = copies.moved.get(&e.node.hash) {
            return Ok(moved(*done));
        }
        let (kind, bytes) = if level == 0 {
            let leaf = self.read_leaf(e)?;
            let mut copy: LeafNode = (*leaf).clone();
            for c in copy.columns.iter_mut().flatten() {
                c.block = self.copy_record(&c.block, RecordKind::ColumnBlock, packs, copies)?;
            }
            (RecordKind::Leaf, copy.encode())
        } else {
            let node = self.internal(e, level)?;
            let mut copy: InternalNode = (*node).clone();
            for c in &mut copy.children {
                *c = self.copy_node(c, level - 1, packs, copies)?;
            }
            (RecordKind::Internal, copy.encode())
        };
        let new = packs.put(kind, &bytes, content_hash(&bytes))?;
        copies.moved.insert(e.node.hash, new);
        Ok(moved(new))
    }
}
