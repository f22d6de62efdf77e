//! Re-expressing versions over another keyframe: the step keyframe thinning takes. A span of
//! versions, each given as a frame over one of a run of keyframes being thinned or over the
//! keyframe after them (`next`), with live rows from the span's row batches, becomes one
//! B-frame per version over `next` alone, with one residual for the whole span. After it no
//! version reads a thinned keyframe.
//!
//! The keyframes are read once each, merged by key in one streaming pass: a key is followed
//! when its row differs between any of them (in content, or present in some only), when a
//! frame hides its row, or when the batches hold a row of it. What a followed key shows at
//! each version is read off the frames (a live batch row, else the frame's keyframe row
//! unless hidden, else nothing), and stretches of versions showing one row version are then
//! treated exactly as in `bframe::compact`, so a row version shown across several thinned
//! keyframes' versions is stored once. The work is linear in the keyframes' rows plus the
//! batches' rows plus the frames' bitmaps, however many keyframes the run thins.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use reeldb_keyframe::PackWriter;
use reeldb_keyframe::tree::Tree;
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::bframe::{Compacted, RowBatch, RowSources, Shown, finish, plan_stretches};
use crate::error::{Error, Result};
use crate::fingerprint::{RowHasher, RowStream, batch_columns, encoded_keys};

/// The keyframe a frame is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// The keyframe at this index of [`Span::thinned`].
    Thinned(usize),
    /// The keyframe every version will be over.
    Next,
}

/// One version of a span, as it is stored now.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The keyframe the frame is over.
    pub over: Over,
    /// Ordinals of its keyframe's rows it hides.
    pub hidden: &'a RoaringTreemap,
    /// Rows of the span's batches (numbered across them) it shows.
    pub live: &'a RoaringBitmap,
}

/// A span of versions to re-express over `next`.
#[derive(Debug, Clone, Copy)]
pub struct Span<'a> {
    /// The keyframes being thinned, oldest first.
    pub thinned: &'a [&'a Tree],
    /// The keyframe every version will be over.
    pub next: &'a Tree,
    /// The row batches the frames' live rows number across.
    pub batches: &'a [RowBatch],
    /// One frame per version, oldest first.
    pub frames: &'a [Frame<'a>],
}

/// A followed key's row (ordinal and content hash) in each keyframe of the span: the
/// thinned ones in order, then `next`.
type RowsByKeyframe = Vec<Option<(u64, u128)>>;

/// Re-expresses every version of `span` as a B-frame over `span.next` (see the module
/// docs), writing the span's new residual to `packs` in batches of at most `batch_rows`.
pub fn rebase(span: &Span<'_>, packs: &mut PackWriter, batch_rows: usize) -> Result<Compacted> {
    let next = span.next;
    let layout = next.layout().clone();
    let hasher = RowHasher::new(&layout)?;
    let (mut batch_hashes, mut batch_keys) = (Vec::new(), Vec::new());
    let mut batches = Vec::with_capacity(span.batches.len());
    for batch in span.batches {
        let columns = batch_columns(next, batch)?;
        batch_hashes.extend(hasher.hash(&columns)?);
        let keys = encoded_keys(&layout, &columns)?;
        batch_keys.extend(keys.iter().map(|k| k.as_ref().to_vec()));
        batches.push(RecordBatch::try_new(layout.schema.clone(), columns)?);
    }
    let mut rows_of: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
    for (id, key) in batch_keys.iter().enumerate() {
        rows_of.entry(key.clone()).or_default().push(id as u32);
    }

    // Every keyframe, the thinned ones then `next`, and the rows any frame hides in each.
    let keyframes: Vec<&Tree> = span.thinned.iter().copied().chain([next]).collect();
    let last = span.thinned.len();
    let index = |over: Over| match over {
        Over::Thinned(i) => i,
        Over::Next => last,
    };
    let mut hidden_any = vec![RoaringTreemap::new(); keyframes.len()];
    for f in span.frames {
        let i = index(f.over);
        let tree = keyframes.get(i).ok_or_else(|| {
            Error::Inconsistent(format!("a frame is over thinned keyframe {i} of {last}"))
        })?;
        if let Some(o) = f.hidden.max().filter(|o| *o >= tree.rows()) {
            return Err(Error::Inconsistent(format!(
                "a frame hides ordinal {o} of a {}-row keyframe",
                tree.rows()
            )));
        }
        if f.live.max().is_some_and(|m| m as usize >= batch_keys.len()) {
            return Err(Error::Inconsistent(
                "a frame shows a row the batches lack".into(),
            ));
        }
        hidden_any[i] |= f.hidden;
    }

    // One merged pass over the keyframes: the keys that can show something other than their
    // row in `next`, with their rows in every keyframe.
    let mut followed: HashMap<Vec<u8>, RowsByKeyframe> = HashMap::new();
    let mut streams = keyframes
        .iter()
        .map(|t| RowStream::new(t, &hasher))
        .collect::<Result<Vec<_>>>()?;
    loop {
        let mut least: Option<&[u8]> = None;
        for s in &streams {
            if let Some(r) = s.peek()
                && least.is_none_or(|l| r.key.as_slice() < l)
            {
                least = Some(r.key.as_slice());
            }
        }
        let Some(key) = least.map(<[u8]>::to_vec) else {
            break;
        };
        let mut rows: RowsByKeyframe = vec![None; keyframes.len()];
        for (i, s) in streams.iter_mut().enumerate() {
            if s.peek().is_some_and(|r| r.key == key) {
                let r = s.advance()?;
                rows[i] = Some((r.ordinal, r.hash));
            }
        }
        let final_hash = rows[last].map(|(_, h)| h);
        let differs = rows.iter().any(|r| r.map(|(_, h)| h) != final_hash);
        let hidden = rows
            .iter()
            .zip(&hidden_any)
            .any(|(r, h)| r.is_some_and(|(o, _)| h.contains(o)));
        if differs || hidden || rows_of.contains_key(&key) {
            followed.insert(key, rows);
        }
    }
    // Keys only the batches hold.
    for key in rows_of.keys() {
        if !followed.contains_key(key) {
            followed.insert(key.clone(), vec![None; keyframes.len()]);
        }
    }

    let versions = span.frames.len();
    let mut hidden = Vec::new();
    let mut residual = Vec::new();
    let no_rows: Vec<u32> = Vec::new();
    for (key, rows) in &followed {
        let ids = rows_of.get(key).unwrap_or(&no_rows);
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
            Ok(match (f.over, rows[index(f.over)]) {
                (_, Some((o, _))) if f.hidden.contains(o) => Shown::Absent,
                (Over::Thinned(i), Some((o, _))) => Shown::Keyframe(i, o),
                (Over::Next, Some((o, _))) => Shown::Next(o),
                (_, None) => Shown::Absent,
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
            rows[last],
            &|s| match s {
                Shown::Keyframe(i, _) => rows[i].map(|(_, h)| h),
                Shown::Overlay(id) => Some(batch_hashes[id as usize]),
                Shown::Next(_) => rows[last].map(|(_, h)| h),
                Shown::Absent => None,
            },
            &mut hidden,
            &mut residual,
        );
    }
    finish(
        RowSources {
            keyframes: span.thinned,
            next: span.next,
            batches: &batches,
        },
        versions,
        hidden,
        residual,
        packs,
        batch_rows,
    )
}
