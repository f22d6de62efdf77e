//! What a reader needs of a table's overlay at one version: its trie, deletion vector and
//! live rows, and its row batches; and the masks and lookups scans, gets and ranges use.

use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use reeldb_keyframe::RecordRef;
use reeldb_keyframe::tree::{Access, Tree};
use reeldb_overlay::hamt::{for_each, get};
use reeldb_overlay::{Entry, NodeLog, NodeRef, OverlayRefs, OverlayVersion, RowLocation, key_hash};

use crate::catalog::version::{BatchRecord, OverlayRecord};
use crate::error::Result;

/// A table's overlay at one version. Its bitmaps are read on first use: gets need only
/// the trie.
#[derive(Debug)]
pub struct OverlayView {
    /// Trie root.
    pub root: Option<NodeRef>,
    refs: OverlayRefs,
    shadowed: u64,
    live: u64,
    bitmaps: OnceLock<OverlayVersion>,
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
        let refs = refs_of(rec);
        Ok(OverlayView {
            root: refs.root,
            refs,
            shadowed: rec.shadowed,
            live: rec.live,
            bitmaps: OnceLock::new(),
            log,
            starts: starts_of(&rec.batches),
            batches: rec.batches.clone(),
        })
    }

    /// The deletion vector and live rows, read from the log on first use.
    fn bitmaps(&self) -> Result<&OverlayVersion> {
        if let Some(v) = self.bitmaps.get() {
            return Ok(v);
        }
        let loaded = OverlayVersion::load(&self.log, &self.refs)?;
        Ok(self.bitmaps.get_or_init(|| loaded))
    }

    /// Generation row id of a location.
    pub fn row_id(&self, l: RowLocation) -> u32 {
        self.starts[l.batch as usize] + l.row
    }

    /// Keyframe rows shadowed at this version.
    pub fn shadowed(&self) -> u64 {
        self.shadowed
    }

    /// Overlay rows live at this version.
    pub fn live(&self) -> u64 {
        self.live
    }

    /// The trie's entry for an encoded key.
    pub fn entry(&self, key: &[u8]) -> Result<Option<Entry>> {
        Ok(get(&self.log, self.root, key_hash(key), key)?)
    }

    /// Every trie entry that holds a row and whose key is within the bounds, sorted by key.
    pub fn rows_in(
        &self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, RowLocation)>> {
        let mut out = Vec::new();
        for_each(&self.log, self.root, &mut |e| {
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
    pub fn live_mask(&self, b: usize) -> Result<Option<BooleanArray>> {
        let live = &self.bitmaps()?.live;
        let (start, rows) = (self.starts[b], self.batches[b].rows);
        if live.range_cardinality(start..start + rows) == 0 {
            return Ok(None);
        }
        let mut keep = vec![false; rows as usize];
        for id in live.range(start..start + rows) {
            keep[(id - start) as usize] = true;
        }
        Ok(Some(BooleanArray::from(keep)))
    }

    /// Which of the keyframe rows with ordinals `first..first + rows` are not shadowed:
    /// `None` when all are, `Some(None)` when none is shadowed.
    pub fn keyframe_mask(&self, first: u64, rows: u64) -> Result<Option<Option<BooleanArray>>> {
        if self.shadowed == 0 {
            return Ok(Some(None));
        }
        let dv = &self.bitmaps()?.shadowed;
        let hidden = dv.range_cardinality(first..first + rows);
        if hidden == rows {
            return Ok(None);
        }
        if hidden == 0 {
            return Ok(Some(None));
        }
        let mut keep = vec![true; rows as usize];
        let mut it = dv.iter();
        it.advance_to(first);
        for o in it.take_while(|&o| o < first + rows) {
            keep[(o - first) as usize] = false;
        }
        Ok(Some(Some(BooleanArray::from(keep))))
    }

    /// The full row at a location, as a one-row batch of the table schema.
    pub fn row(&self, tree: &Tree, loc: RowLocation) -> Result<RecordBatch> {
        let all: Vec<usize> = (0..tree.layout().schema.fields().len()).collect();
        let cols = self.batch_columns(tree, loc.batch as usize, &all, Access::Cached)?;
        let cols: Vec<ArrayRef> = cols.iter().map(|c| c.slice(loc.row as usize, 1)).collect();
        Ok(RecordBatch::try_new(tree.layout().schema.clone(), cols)?)
    }
}
