//! Checking a keyframe tree end to end: every node and column block read and its checksum
//! verified, every block decoded to its leaf's row count, zone maps recomputed, and keys in
//! strictly increasing order within and across leaves, agreeing with each leaf's first and
//! last key. Leaves already checked (by content hash) are not read again, so verifying many
//! versions that share most leaves costs little more than verifying one.

use std::collections::HashSet;

use crate::format::ContentHash;
use crate::pack::pack_path;
use crate::tree::{Access, Tree};
use crate::zonemap;
use crate::{Error, Result};

/// What a verification has already checked, shared across trees and versions.
#[derive(Debug, Default)]
pub struct Checked {
    leaves: HashSet<ContentHash>,
}

impl Checked {
    /// Nothing checked yet.
    pub fn new() -> Self {
        Checked::default()
    }

    /// Number of distinct leaves checked so far.
    pub fn leaves(&self) -> usize {
        self.leaves.len()
    }
}

impl Tree {
    /// Reads and checks everything the tree references (see the module docs). Returns the
    /// first problem found as a corruption error naming the file and offset.
    pub fn verify(&self, checked: &mut Checked) -> Result<()> {
        let all: Vec<usize> = (0..self.layout().schema.fields().len()).collect();
        let mut previous_last: Option<Vec<u8>> = None;
        let mut rows = 0u64;
        // `leaves` reads every internal node and checks it against its parent's entry.
        for leaf in self.leaves()? {
            let node = self.read_leaf(&leaf.entry)?;
            let at = |reason: String| {
                Error::corrupt(
                    pack_path(leaf.entry.node.pack),
                    leaf.entry.node.offset,
                    reason,
                )
            };
            if node.first_key > node.last_key {
                return Err(at("leaf's first key is above its last key".into()));
            }
            if let Some(prev) = &previous_last
                && node.first_key <= *prev
            {
                return Err(at(
                    "leaf does not start above the previous leaf's last key".into()
                ));
            }
            if leaf.ordinal != rows {
                return Err(at(format!(
                    "leaf starts at ordinal {} after {rows} rows",
                    leaf.ordinal
                )));
            }
            rows += u64::from(node.rows);
            previous_last = Some(node.last_key.clone());
            if checked.leaves.contains(&leaf.entry.node.hash) {
                continue;
            }
            // Every byte of each block, framing included (reads check only what they decode).
            // Slots this layout does not read (dropped columns, columns added by later
            // schemas) included.
            for chunk in node.columns.iter().flatten() {
                self.verify_block(&chunk.block)?;
            }
            let columns = self.read_columns(&node, &all, Access::Streaming)?;
            for (c, array) in columns.iter().enumerate() {
                let layout = self.layout();
                let (Some(zone), Some(chunk)) = (layout.zone(&node, c), layout.chunk(&node, c))
                else {
                    continue;
                };
                if zonemap::compute(array)? != *zone {
                    return Err(Error::corrupt(
                        pack_path(chunk.block.pack),
                        chunk.block.offset,
                        format!("zone map of column {c} does not match its block"),
                    ));
                }
            }
            let key_columns: Vec<_> = self
                .layout()
                .key
                .columns()
                .iter()
                .map(|&c| columns[c].clone())
                .collect();
            let keys = self.layout().key.encode_columns(&key_columns)?;
            if keys.num_rows() == 0
                || keys.row(0).as_ref() != node.first_key.as_slice()
                || keys.row(keys.num_rows() - 1).as_ref() != node.last_key.as_slice()
            {
                return Err(at("leaf's first or last key does not match its rows".into()));
            }
            for i in 1..keys.num_rows() {
                if keys.row(i - 1) >= keys.row(i) {
                    return Err(at(format!("keys out of order at row {i}")));
                }
            }
            // Remembered only once every check passed: a damaged leaf fails every tree using it.
            checked.leaves.insert(leaf.entry.node.hash);
        }
        if rows != self.rows() {
            let root = self.root().map(|r| &r.entry.node);
            return Err(Error::corrupt(
                root.map_or_else(|| pack_path(0), |r| pack_path(r.pack)),
                root.map_or(0, |r| r.offset),
                format!("tree holds {rows} rows, its root says {}", self.rows()),
            ));
        }
        Ok(())
    }
}
