//! What a reader needs of a table's overlay at one version: its trie, deletion vector and
//! live rows, and its row batches; and the masks and lookups scans, gets and ranges use.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use reeldb_keyframe::RecordRef;
use reeldb_keyframe::tree::{Access, Tree};
use reeldb_overlay::hamt::{for_each, get};
use reeldb_overlay::{Entry, NodeLog, NodeRef, OverlayRefs, OverlayVersion, RowLocation, key_hash};

use crate::catalog::version::{BatchRecord, OverlayRecord};
use crate::error::Result;

/// A table's overlay at one version, loaded.
#[derive(Debug)]
pub struct OverlayView {
    /// Trie root, deletion vector and live rows.
    pub version: OverlayVersion,
    /// The generation's node log.
    pub log: Arc<NodeLog>,
    /// The generation's row batches.
    pub batches: Vec<BatchRecord>,
    /// Generation row id of each batch's first row.
    pub starts: Vec<u32>,
}

fn node_ref(r: (u64, u64)) -> NodeRef {
    NodeRef {
        offset: r.0,
        checksum: r.1,
    }
}

/// The refs of an overlay record.
pub fn refs_of(rec: &OverlayRecord) -> OverlayRefs {
    OverlayRefs {
        root: rec.root.map(node_ref),
        shadowed: node_ref(rec.deletion_vector),
        live: node_ref(rec.live_rows),
        entries: rec.entries,
    }
}

/// Generation row id of each batch's first row.
pub fn starts_of(batches: &[BatchRecord]) -> Vec<u32> {
    let mut at = 0u32;
    batches
        .iter()
        .map(|b| {
            let s = at;
            at += b.rows;
            s
        })
        .collect()
}

impl OverlayView {
    /// Loads the overlay `rec` from `log`.
    pub fn load(log: Arc<NodeLog>, rec: &OverlayRecord) -> Result<Self> {
        let version = OverlayVersion::load(&log, &refs_of(rec))?;
        Ok(OverlayView {
            version,
            log,
            starts: starts_of(&rec.batches),
            batches: rec.batches.clone(),
        })
    }

    /// Generation row id of a location.
    pub fn row_id(&self, l: RowLocation) -> u32 {
        self.starts[l.batch as usize] + l.row
    }

    /// Keyframe rows shadowed at this version.
    pub fn shadowed(&self) -> u64 {
        self.version.shadowed.len()
    }

    /// Overlay rows live at this version.
    pub fn live(&self) -> u64 {
        self.version.live.len()
    }

    /// The trie's entry for an encoded key.
    pub fn entry(&self, key: &[u8]) -> Result<Option<Entry>> {
        Ok(get(&self.log, self.version.root, key_hash(key), key)?)
    }

    /// Every trie entry that holds a row and whose key is within the bounds, sorted by key.
    pub fn rows_in(
        &self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, RowLocation)>> {
        let mut out = Vec::new();
        for_each(&self.log, self.version.root, &mut |e| {
            if let Some(loc) = e.row
                && RangeBounds::<[u8]>::contains(&(lo, hi), e.key.as_slice())
            {
                out.push((e.key, loc));
            }
        })?;
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Decodes `columns` of batch `b`.
    pub fn batch_columns(
        &self,
        tree: &Tree,
        b: usize,
        columns: &[usize],
        access: Access,
    ) -> Result<Vec<ArrayRef>> {
        let batch = &self.batches[b];
        columns
            .iter()
            .map(|&c| {
                Ok(tree.read_block(
                    &RecordRef::from(&batch.columns[c]),
                    c,
                    batch.rows as usize,
                    access,
                )?)
            })
            .collect()
    }

    /// Which rows of batch `b` are live at this version; `None` when none is.
    pub fn live_mask(&self, b: usize) -> Option<BooleanArray> {
        let (start, rows) = (self.starts[b], self.batches[b].rows);
        let range = start..start + rows;
        if self.version.live.range_cardinality(range.clone()) == 0 {
            return None;
        }
        Some(BooleanArray::from_iter(
            (0..rows).map(|r| Some(self.version.live.contains(start + r))),
        ))
    }

    /// Which of the keyframe rows with ordinals `first..first + rows` are not shadowed:
    /// `None` when all are, `Some(None)` when none is shadowed.
    pub fn keyframe_mask(&self, first: u64, rows: u64) -> Option<Option<BooleanArray>> {
        let dv = &self.version.shadowed;
        let hidden = dv.range_cardinality(first..first + rows);
        if hidden == rows {
            return None;
        }
        if hidden == 0 {
            return Some(None);
        }
        let mut keep = vec![true; rows as usize];
        let mut it = dv.iter();
        it.advance_to(first);
        for o in it.take_while(|&o| o < first + rows) {
            keep[(o - first) as usize] = false;
        }
        Some(Some(BooleanArray::from(keep)))
    }

    /// The full row at a location, as a one-row batch of the table schema.
    pub fn row(&self, tree: &Tree, loc: RowLocation) -> Result<RecordBatch> {
        let all: Vec<usize> = (0..tree.layout().schema.fields().len()).collect();
        let cols = self.batch_columns(tree, loc.batch as usize, &all, Access::Cached)?;
        let cols: Vec<ArrayRef> = cols.iter().map(|c| c.slice(loc.row as usize, 1)).collect();
        Ok(RecordBatch::try_new(tree.layout().schema.clone(), cols)?)
    }
}
