//! What a reader needs of what a table adds to its keyframe at one version, an overlay or a
//! B-frame: its hidden keyframe rows, its live rows and row batches, its key lookup; and the
//! masks and lookups scans, gets and ranges use.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use once_cell::sync::OnceCell;

use arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder, RecordBatch};
use reeldb_compactor::Membership;
use reeldb_keyframe::RecordRef;
use reeldb_keyframe::cache::Decoded;
use reeldb_keyframe::record::RecordKind;
use reeldb_keyframe::tree::{Access, Source, Tree};
use reeldb_overlay::{NodeLog, NodeRef, OverlayVersion, RowLocation};
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::catalog::version::{BFrameRecord, BatchRecord, OverlayRecord};
use crate::error::{Error, Result};

/// Sets bit `base + v - origin` of `mask` to `value` for every `v` of `bitmap` within `range`
/// (every such `base + v` is at least `origin`).
fn mark(
    mask: &mut BooleanBufferBuilder,
    bitmap: &RoaringBitmap,
    base: u64,
    origin: u64,
    range: impl RangeBounds<u32>,
    value: bool,
) {
    let mut it = bitmap.range(range);
    let mut chunk = [0u32; 256];
    loop {
        let got = it.next_many(&mut chunk);
        if got.is_empty() {
            break;
        }
        for &v in got.iter() {
            mask.set_bit((base + u64::from(v) - origin) as usize, value);
        }
    }
}

/// Which of the generation rows `start..start + rows` are in `live`; `None` when none is.
fn live_rows_mask(live: &RoaringBitmap, start: u32, rows: u32) -> Option<BooleanArray> {
    if live.range_cardinality(start..start + rows) == 0 {
        return None;
    }
    let mut keep = BooleanBufferBuilder::new(rows as usize);
    keep.append_n(rows as usize, false);
    mark(
        &mut keep,
        live,
        0,
        u64::from(start),
        start..start + rows,
        true,
    );
    Some(BooleanArray::new(keep.finish(), None))
}

/// Which of the ordinals `first..first + rows` are not in `shadowed`: `None` when all are,
/// `Some(None)` when none is.
fn unshadowed_mask(
    shadowed: &RoaringTreemap,
    first: u64,
    rows: u64,
) -> Option<Option<BooleanArray>> {
    let end = first + rows;
    let hidden = shadowed.range_cardinality(first..end);
    if hidden == rows {
        return None;
    }
    if hidden == 0 {
        return Some(None);
    }
    let mut keep = BooleanBufferBuilder::new(rows as usize);
    keep.append_n(rows as usize, true);
    // The treemap keeps one 32-bit bitmap per high half of the ordinals.
    for (high, part) in shadowed.bitmaps() {
        let base = u64::from(high) << 32;
        if base >= end || base + (1 << 32) <= first {
            continue;
        }
        // Both bounds lie within this part's 2^32 ordinals, so the casts are exact.
        let lo = (first.max(base) - base) as u32;
        let hi = ((end - base).min(1 << 32) - 1) as u32;
        mark(&mut keep, part, base, first, lo..=hi, false);
    }
    Some(Some(BooleanArray::new(keep.finish(), None)))
}

/// What a table adds to its keyframe at one version: an overlay (one row batch per commit,
/// each sorted by key; deletion vector; live overlay rows) or, once its generation was
/// compacted, a B-frame (hidden keyframe rows, live residual rows, the residual sorted by
/// key). Both read the same way: the keyframe minus the hidden rows plus the live rows of the
/// row batches. Bitmaps are read on first use, by one thread while any other asking waits.
#[derive(Debug)]
pub struct OverlayView {
    lookup: Lookup,
    shadowed: u64,
    live: u64,
    bitmaps: OnceCell<OverlayVersion>,
    /// Whether each batch has a row live at this version, from the bitmaps on first use (a
    /// get asks it of every batch it might search).
    batch_live: OnceCell<Vec<bool>>,
    /// A B-frame's span membership, read on first use (gets consult it directly; scans
    /// compute the version's bitmaps from it).
    membership: OnceCell<Arc<Membership>>,
    /// The row batches: the overlay's (one per commit) or the residual's.
    pub batches: Vec<BatchRecord>,
    /// Row id of each batch's first row.
    pub starts: Vec<u32>,
}

/// How keys are found.
#[derive(Debug)]
enum Lookup {
    /// An overlay: by binary search of each commit's batch (each sorted by key; their key
    /// ranges overlap), newest first; its bitmaps are blobs in the generation's node log.
    Runs {
        log: Arc<NodeLog>,
        deltas: Vec<NodeRef>,
    },
    /// A B-frame: by binary search of the residual, sorted by key; its bitmaps are one frame
    /// of its span's membership record.
    Residual {
        first_keys: Vec<Vec<u8>>,
        membership: RecordRef,
        frame: u32,
        source: Arc<Source>,
    },
}

fn node_ref(r: (u64, u64)) -> NodeRef {
    NodeRef {
        offset: r.0,
        checksum: r.1,
    }
}

/// The version deltas an overlay record names, as node-log references.
pub fn deltas_of(rec: &OverlayRecord) -> Vec<NodeRef> {
    rec.deltas.iter().copied().map(node_ref).collect()
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

/// Reads and decodes the membership record `r` of a B-frame span with `residual_rows` rows
/// and at least `frame + 1` frames (a malformed or mismatched one is corruption at `r`),
/// through the store's cache of decoded records: every version of a span shares it.
pub(crate) fn load_membership(
    source: &Source,
    r: &RecordRef,
    residual_rows: u64,
    frame: u32,
) -> Result<Arc<Membership>> {
    let corrupt = |reason: String| {
        Error::Keyframe(reeldb_keyframe::Error::corrupt(
            reeldb_keyframe::pack::pack_path(r.pack),
            r.offset,
            reason,
        ))
    };
    let cached = match source.cache.get(&r.hash) {
        Some(Decoded::Opaque(any, _)) => any.downcast::<Membership>().ok(),
        _ => None,
    };
    let m = match cached {
        Some(m) => m,
        None => {
            let bytes = source.packs.read(r, RecordKind::Membership)?;
            let m = Arc::new(Membership::decode(&bytes).map_err(corrupt)?);
            let size = m.memory_size();
            source
                .cache
                .insert(r.hash, Decoded::Opaque(m.clone(), size));
            m
        }
    };
    if m.live.len() as u64 != residual_rows || frame >= m.frames {
        return Err(corrupt(format!(
            "a membership of {} residual rows and {} frames read as frame {frame} of {residual_rows} rows",
            m.live.len(),
            m.frames
        )));
    }
    Ok(m)
}

impl OverlayView {
    /// Loads the overlay `rec` from `log`.
    pub fn load(log: Arc<NodeLog>, rec: &OverlayRecord) -> Result<Self> {
        Ok(OverlayView {
            lookup: Lookup::Runs {
                log,
                deltas: deltas_of(rec),
            },
            shadowed: rec.shadowed,
            live: rec.live,
            bitmaps: OnceCell::new(),
            batch_live: OnceCell::new(),
            membership: OnceCell::new(),
            starts: starts_of(&rec.batches),
            batches: rec.batches.clone(),
        })
    }

    /// A view of the B-frame `rec`, whose bitmaps are records in `source`'s packs.
    pub fn bframe(source: Arc<Source>, rec: &BFrameRecord) -> Result<Self> {
        if rec.first_keys.len() != rec.residual.len() || rec.residual.iter().any(|b| b.rows == 0) {
            return Err(Error::Corruption {
                path: crate::catalog::RECORDS_LABEL.to_string(),
                offset: 0,
                reason: "a B-frame's residual batches and first keys disagree".into(),
            });
        }
        Ok(OverlayView {
            lookup: Lookup::Residual {
                first_keys: rec.first_keys.clone(),
                membership: RecordRef::from(&rec.membership),
                frame: rec.frame,
                source,
            },
            shadowed: rec.hidden_count,
            live: rec.live_count,
            bitmaps: OnceCell::new(),
            batch_live: OnceCell::new(),
            membership: OnceCell::new(),
            starts: starts_of(&rec.residual),
            batches: rec.residual.clone(),
        })
    }

    /// The first key of each residual batch, for a B-frame.
    pub fn residual_first_keys(&self) -> Option<&[Vec<u8>]> {
        match &self.lookup {
            Lookup::Residual { first_keys, .. } => Some(first_keys),
            Lookup::Runs { .. } => None,
        }
    }

    /// The node log and the version deltas, for an overlay; `None` for a B-frame.
    pub fn log(&self) -> Option<(&Arc<NodeLog>, &[NodeRef])> {
        match &self.lookup {
            Lookup::Runs { log, deltas } => Some((log, deltas)),
            Lookup::Residual { .. } => None,
        }
    }

    /// True for a B-frame (a residual sorted across its batches), false for an overlay.
    pub fn is_bframe(&self) -> bool {
        matches!(self.lookup, Lookup::Residual { .. })
    }

    /// The hidden keyframe rows and the live rows, read on first use.
    fn bitmaps(&self) -> Result<&OverlayVersion> {
        self.bitmaps.get_or_try_init(|| match &self.lookup {
            Lookup::Runs { log, deltas } => Ok(OverlayVersion::load(
                log,
                deltas,
                self.batches.iter().map(|b| b.rows).sum(),
            )?),
            Lookup::Residual { frame, .. } => {
                let frame = self.span_membership()?.frame(*frame);
                Ok::<_, Error>(OverlayVersion {
                    shadowed: frame.hidden,
                    live: frame.live,
                })
            }
        })
    }

    /// Whether batch `b` has a row live at this version (from the bitmaps, read on first use).
    fn batch_has_live(&self, b: usize) -> Result<bool> {
        let flags = self.batch_live.get_or_try_init(|| {
            let live = &self.bitmaps()?.live;
            Ok::<_, Error>(
                self.starts
                    .iter()
                    .zip(&self.batches)
                    .map(|(&start, batch)| live.range(start..start + batch.rows).next().is_some())
                    .collect(),
            )
        })?;
        Ok(flags[b])
    }

    /// The hidden keyframe ordinals and the live row ids.
    pub fn hidden_and_live(&self) -> Result<(&RoaringTreemap, &RoaringBitmap)> {
        let b = self.bitmaps()?;
        Ok((&b.shadowed, &b.live))
    }

    /// A B-frame's span membership, read on first use.
    fn span_membership(&self) -> Result<&Arc<Membership>> {
        self.membership.get_or_try_init(|| {
            let Lookup::Residual {
                membership,
                frame,
                source,
                ..
            } = &self.lookup
            else {
                return Err(Error::Internal("an overlay has no span membership".into()));
            };
            let rows = self.batches.iter().map(|b| u64::from(b.rows)).sum();
            load_membership(source, membership, rows, *frame)
        })
    }

    /// True when keyframe ordinal `o` is hidden at this version. A B-frame whose bitmaps no
    /// scan has computed yet answers from its span's membership (a binary search).
    pub fn hides(&self, o: u64) -> Result<bool> {
        if self.shadowed == 0 {
            return Ok(false);
        }
        match (&self.lookup, self.bitmaps.get()) {
            (Lookup::Residual { frame, .. }, None) => Ok(self.span_membership()?.hides(o, *frame)),
            _ => Ok(self.bitmaps()?.shadowed.contains(o)),
        }
    }

    /// True when batch row `id` is live at this version (as [`OverlayView::hides`], from the
    /// membership for a B-frame whose bitmaps are not computed).
    fn is_live(&self, id: u32) -> Result<bool> {
        match (&self.lookup, self.bitmaps.get()) {
            (Lookup::Residual { frame, .. }, None) => {
                Ok(self.span_membership()?.is_live(id, *frame))
            }
            _ => Ok(self.bitmaps()?.live.contains(id)),
        }
    }

    /// Row id of a location.
    pub fn row_id(&self, l: RowLocation) -> u32 {
        self.starts[l.batch as usize] + l.row
    }

    /// Keyframe rows hidden (shadowed) at this version.
    pub fn shadowed(&self) -> u64 {
        self.shadowed
    }

    /// Rows of the batches live at this version.
    pub fn live(&self) -> u64 {
        self.live
    }

    /// The live row of an encoded key at this version, if its row is in the batches; `None`
    /// when the keyframe decides (its row there, unless hidden: see [`OverlayView::hides`]).
    pub fn entry(&self, tree: &Tree, key: &[u8]) -> Result<Option<RowLocation>> {
        let candidates: Vec<usize> = match &self.lookup {
            // A key's row versions are adjacent and may straddle a batch boundary.
            Lookup::Residual { first_keys, .. } => {
                let last = first_keys.partition_point(|k| k.as_slice() <= key);
                let first = first_keys[..last].partition_point(|k| k.as_slice() < key);
                (first.saturating_sub(1)..last).collect()
            }
            // Recent commits first: a key changed often is found sooner.
            Lookup::Runs { .. } => (0..self.batches.len()).rev().collect(),
        };
        if candidates.is_empty() || self.live == 0 {
            return Ok(None);
        }
        // A B-frame whose bitmaps no scan computed answers from its span's membership.
        let live = match (&self.lookup, self.bitmaps.get()) {
            (Lookup::Residual { .. }, None) => None,
            _ => Some(&self.bitmaps()?.live),
        };
        // Searched by comparing the batch's key columns with the key decoded once, not by
        // encoding the batch's keys: a get touches a few of its rows.
        let layout = tree.layout();
        let probe = layout.key.decode(&[key])?;
        for b in candidates {
            if live.is_some() && !self.batch_has_live(b)? {
                continue;
            }
            let keys = self.batch_columns(tree, b, layout.key.columns(), Access::Cached)?;
            let (lo, equal) = reeldb_keyframe::tree::equal_range(&keys, &probe)?;
            for i in lo..lo + equal {
                let loc = RowLocation {
                    batch: b as u32,
                    row: i as u32,
                };
                let id = self.row_id(loc);
                let is_live = match live {
                    Some(l) => l.contains(id),
                    None => self.is_live(id)?,
                };
                if is_live {
                    return Ok(Some(loc));
                }
            }
        }
        Ok(None)
    }

    /// The encoded keys of batch `b`.
    fn batch_keys(&self, tree: &Tree, b: usize) -> Result<arrow_row::Rows> {
        let layout = tree.layout();
        let keys = self.batch_columns(tree, b, layout.key.columns(), Access::Cached)?;
        Ok(layout.key.encode_columns(&keys)?)
    }

    /// Every row of the batches that is live and whose key is within the bounds, sorted by
    /// key.
    pub fn rows_in(
        &self,
        tree: &Tree,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, RowLocation)>> {
        let mut out = Vec::new();
        let live = &self.bitmaps()?.live;
        for b in 0..self.batches.len() {
            // Skip batches without a live row, and residual batches wholly below or above the
            // range.
            if !self.batch_has_live(b)? {
                continue;
            }
            if let Lookup::Residual { first_keys, .. } = &self.lookup {
                let next_first = first_keys.get(b + 1).map(Vec::as_slice);
                let below = match (lo, next_first) {
                    (Bound::Included(l) | Bound::Excluded(l), Some(n)) => n < l,
                    _ => false,
                };
                let above = match hi {
                    Bound::Included(h) => first_keys[b].as_slice() > h,
                    Bound::Excluded(h) => first_keys[b].as_slice() >= h,
                    Bound::Unbounded => false,
                };
                if below || above {
                    continue;
                }
            }
            let keys = self.batch_keys(tree, b)?;
            for i in 0..keys.num_rows() {
                let loc = RowLocation {
                    batch: b as u32,
                    row: i as u32,
                };
                let key = keys.row(i);
                if RangeBounds::<[u8]>::contains(&(lo, hi), key.as_ref())
                    && live.contains(self.row_id(loc))
                {
                    out.push((key.as_ref().to_vec(), loc));
                }
            }
        }
        // An overlay's batches each hold their keys in order, but their ranges overlap.
        if !self.is_bframe() {
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
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
        Ok(tree.read_batch_columns(&batch.blocks(), batch.rows as usize, columns, access)?)
    }

    /// Which rows of batch `b` are live at this version; `None` when none is.
    pub fn live_mask(&self, b: usize) -> Result<Option<BooleanArray>> {
        Ok(live_rows_mask(
            &self.bitmaps()?.live,
            self.starts[b],
            self.batches[b].rows,
        ))
    }

    /// Which of the keyframe rows with ordinals `first..first + rows` are not hidden:
    /// `None` when all are, `Some(None)` when none is.
    pub fn keyframe_mask(&self, first: u64, rows: u64) -> Result<Option<Option<BooleanArray>>> {
        if self.shadowed == 0 {
            return Ok(Some(None));
        }
        Ok(unshadowed_mask(&self.bitmaps()?.shadowed, first, rows))
    }

    /// The full row at a location, as a one-row batch of the table schema.
    pub fn row(&self, tree: &Tree, loc: RowLocation) -> Result<RecordBatch> {
        let batch = &self.batches[loc.batch as usize];
        let row = loc.row as usize;
        Ok(tree.read_rows(&batch.blocks(), batch.rows as usize, row..row + 1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(mask: &BooleanArray) -> Vec<bool> {
        mask.iter().map(|b| b == Some(true)).collect()
    }

    #[test]
    fn the_unshadowed_mask_clears_exactly_the_shadowed_ordinals_across_bitmap_parts() {
        let edge = 1u64 << 32;
        let shadowed: RoaringTreemap = [5, edge - 2, edge, edge + 3].into_iter().collect();
        let mask = unshadowed_mask(&shadowed, edge - 4, 8).unwrap().unwrap();
        let want: Vec<bool> = (edge - 4..edge + 4)
            .map(|o| !shadowed.contains(o))
            .collect();
        assert_eq!(bits(&mask), want);
        assert!(
            unshadowed_mask(&shadowed, 0, 5).unwrap().is_none(),
            "none shadowed"
        );
        assert!(unshadowed_mask(&shadowed, 5, 1).is_none(), "all shadowed");
    }

    #[test]
    fn the_live_mask_sets_exactly_the_live_rows_of_a_batch() {
        let live: RoaringBitmap = [3, 10, 11, 19, 40].into_iter().collect();
        let mask = live_rows_mask(&live, 10, 10).unwrap();
        let want: Vec<bool> = (10..20).map(|r| live.contains(r)).collect();
        assert_eq!(bits(&mask), want);
        assert!(live_rows_mask(&live, 20, 10).is_none());
    }
}
