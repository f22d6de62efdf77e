//! Re-expressing versions over another keyframe: the step keyframe thinning takes. A span of
//! versions, each given as a frame over the keyframe being thinned (`prev`) or over the next
//! one (`next`), with live rows from the span's row batches, becomes one B-frame per version
//! over `next` alone, with one residual for the whole span. After it no version reads `prev`.
//!
//! Every key whose row can differ between versions and `next` is followed: keys whose rows
//! differ between the two keyframes, keys with a row in the batches, and keys a frame hides.
//! What a key shows at each version is read off the frames (a live batch row, else the
//! frame's keyframe row unless hidden, else nothing), and stretches of versions showing one
//! row version are then treated exactly as in `bframe::compact`.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use reeldb_keyframe::PackWriter;
use reeldb_keyframe::tree::Tree;
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::bframe::{BFrame, Compacted, RowBatch, Shown, finish, plan_stretches};
use crate::error::{Error, Result};
use crate::fingerprint::{KeyedRow, RowHasher, batch_columns, encoded_keys, tree_rows};

/// One version of a span, as it is stored now.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// True when the frame is over `next` (else over `prev`).
    pub on_next: bool,
    /// Ordinals of its keyframe's rows it hides.
    pub hidden: &'a RoaringTreemap,
    /// Rows of the span's batches (numbered across them) it shows.
    pub live: &'a RoaringBitmap,
}

/// A span of versions to re-express over `next`.
#[derive(Debug, Clone, Copy)]
pub struct Span<'a> {
    /// The keyframe the earlier frames are over (the one being thinned).
    pub prev: &'a Tree,
    /// The keyframe every version will be over.
    pub next: &'a Tree,
    /// The row batches the frames' live rows number across.
    pub batches: &'a [RowBatch],
    /// One frame per version, oldest first.
    pub frames: &'a [Frame<'a>],
}

fn find<'r>(rows: &'r [KeyedRow], key: &[u8]) -> Option<&'r KeyedRow> {
    rows.binary_search_by(|r| r.key.as_slice().cmp(key))
        .ok()
        .map(|i| &rows[i])
}

/// Re-expresses every version of `span` as a B-frame over `span.next` (see the module
/// docs), writing the span's new residual to `packs` in batches of at most `batch_rows`.
pub fn rebase(span: &Span<'_>, packs: &mut PackWriter, batch_rows: usize) -> Result<Compacted> {
    let (prev, next) = (span.prev, span.next);
    let layout = next.layout().clone();
    let hasher = RowHasher::new(&layout)?;
    let prev_rows = tree_rows(prev, &hasher)?;
    let next_rows = tree_rows(next, &hasher)?;
    let (mut batch_hashes, mut batch_keys) = (Vec::new(), Vec::new());
    let mut batches = Vec::with_capacity(span.batches.len());
    for batch in span.batches {
        let columns = batch_columns(next, batch)?;
        batch_hashes.extend(hasher.hash(&columns)?);
        let keys = encoded_keys(&layout, &columns)?;
        batch_keys.extend(keys.iter().map(|k| k.as_ref().to_vec()));
        batches.push(RecordBatch::try_new(layout.schema.clone(), columns)?);
    }

    // Every key that may show something other than its row in `next`, with its batch rows.
    let mut rows_of: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
    for (id, key) in batch_keys.iter().enumerate() {
        rows_of.entry(key.clone()).or_default().push(id as u32);
    }
    for (key, _) in crate::bframe::differing(&prev_rows, &next_rows) {
        rows_of.entry(key.to_vec()).or_default();
    }
    for f in span.frames {
        let base = if f.on_next { &next_rows } else { &prev_rows };
        for o in f.hidden.iter() {
            let row = base.get(o as usize).ok_or_else(|| {
                Error::Inconsistent(format!(
                    "a frame hides ordinal {o} of a {}-row keyframe",
                    base.len()
                ))
            })?;
            rows_of.entry(row.key.clone()).or_default();
        }
        if f.live.max().is_some_and(|m| m as usize >= batch_keys.len()) {
            return Err(Error::Inconsistent(
                "a frame shows a row the batches lack".into(),
            ));
        }
    }

    let versions = span.frames.len();
    let mut frames = vec![BFrame::default(); versions];
    let mut residual = Vec::new();
    for (key, ids) in &rows_of {
        let (p, n) = (find(&prev_rows, key), find(&next_rows, key));
        let shown_at = |f: &Frame<'_>| -> Result<Shown> {
            let mut live = ids.iter().filter(|id| f.live.contains(**id));
            if let Some(id) = live.next() {
                if live.next().is_some() {
                    return Err(Error::Inconsistent(
                        "a frame shows two rows of one key".into(),
                    ));
                }
                return Ok(Shown::Overlay(*id));
            }
            let base = if f.on_next { n } else { p };
            Ok(match base {
                Some(r) if !f.hidden.contains(r.ordinal) => {
                    if f.on_next {
                        Shown::Next(r.ordinal)
                    } else {
                        Shown::Prev(r.ordinal)
                    }
                }
                _ => Shown::Absent,
            })
        };
        let mut start = None;
        let mut changes = Vec::new();
        for (i, f) in span.frames.iter().enumerate() {
            let s = shown_at(f)?;
            match start {
                None => start = Some(s),
                Some(_) if changes.last().map_or(start, |(_, c)| Some(*c)) == Some(s) => {}
                Some(_) => changes.push((i, s)),
            }
        }
        let Some(start) = start else { continue };
        plan_stretches(
            key,
            start,
            &changes,
            versions,
            n,
            &|s| match s {
                Shown::Prev(o) => Some(prev_rows[o as usize].hash),
                Shown::Overlay(id) => Some(batch_hashes[id as usize]),
                Shown::Next(o) => Some(next_rows[o as usize].hash),
                Shown::Absent => None,
            },
            &mut frames,
            &mut residual,
        );
    }
    finish(prev, &batches, frames, residual, packs, batch_rows)
}
