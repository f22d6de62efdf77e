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
//! unless hidden, else nothing), only at the frames where it can change: the first frame
//! over each keyframe, and the frames where one of its rows turns live or hidden or back
//! (found from each frame's difference to the frame before it). Stretches of versions
//! showing one row version are then treated exactly as in `bframe::compact`, so a row
//! version shown across several thinned keyframes' versions is stored once. The work is
//! linear, up to sorting, in the keyframes' rows plus the batches' rows plus the frames'
//! differences, however many keyframes the run thins and however many versions it spans.

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

/// A key whose row can show something other than its row in `next` at some version.
struct Followed {
    key: Vec<u8>,
    /// Its row in each keyframe.
    rows: RowsByKeyframe,
    /// Its rows in the batches: a range of the batch rows in key order.
    ids: std::ops::Range<usize>,
}

/// Where each frame differs from the frame before it, so a key's history is read off the
/// frames only where it can change: the frames that start a run over another keyframe, and
/// the batch rows and keyframe rows whose visibility toggles at each other frame. Sorted, so
/// a key finds its toggles by binary search.
struct FrameChanges {
    /// Frames over another keyframe than the frame before them (the first frame included).
    starts: Vec<usize>,
    /// (batch row, frame): the row is live at the frame and not before it, or the reverse.
    live: Vec<(u32, u32)>,
    /// (keyframe, ordinal, frame): likewise for the rows frames hide, between frames over
    /// the same keyframe.
    hidden: Vec<(usize, u64, u32)>,
}

impl FrameChanges {
    fn new(frames: &[Frame<'_>], index: impl Fn(Over) -> usize) -> Self {
        let mut changes = FrameChanges {
            starts: if frames.is_empty() { vec![] } else { vec![0] },
            live: Vec::new(),
            hidden: Vec::new(),
        };
        for (at, pair) in frames.windows(2).enumerate() {
            let (before, frame, at) = (&pair[0], &pair[1], at as u32 + 1);
            changes
                .live
                .extend((before.live ^ frame.live).iter().map(|id| (id, at)));
            if before.over == frame.over {
                let k = index(frame.over);
                let toggled = before.hidden ^ frame.hidden;
                changes.hidden.extend(toggled.iter().map(|o| (k, o, at)));
            } else {
                changes.starts.push(at as usize);
            }
        }
        changes.live.sort_unstable();
        changes.hidden.sort_unstable();
        changes
    }

    /// The frames at which batch row `id` becomes live or stops being live.
    fn live_toggles(&self, id: u32) -> impl Iterator<Item = usize> + '_ {
        let from = self.live.partition_point(|(r, _)| *r < id);
        self.live[from..]
            .iter()
            .take_while(move |(r, _)| *r == id)
            .map(|(_, at)| *at as usize)
    }

    /// The frames at which ordinal `o` of keyframe `k` becomes hidden or shown.
    fn hidden_toggles(&self, k: usize, o: u64) -> impl Iterator<Item = usize> + '_ {
        let from = self.hidden.partition_point(|(j, p, _)| (*j, *p) < (k, o));
        self.hidden[from..]
            .iter()
            .take_while(move |(j, p, _)| (*j, *p) == (k, o))
            .map(|(_, _, at)| *at as usize)
    }
}

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
    // The batches' rows in key order (a stable sort: one key's rows in row order).
    let mut by_key: Vec<u32> = (0..batch_keys.len() as u32).collect();
    by_key.sort_by(|a, b| batch_keys[*a as usize].cmp(&batch_keys[*b as usize]));

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

    // One merged pass over the keyframes and the batch rows in key order: the keys that can
    // show something other than their row in `next`, with their rows in every keyframe. A
    // keyframe's rows come in ordinal order, so the rows its frames hide are met in order.
    let mut followed: Vec<Followed> = Vec::new();
    let mut streams = keyframes
        .iter()
        .map(|t| RowStream::new(t, &hasher))
        .collect::<Result<Vec<_>>>()?;
    let mut hidden_ordinals: Vec<_> = hidden_any.iter().map(|h| h.iter().peekable()).collect();
    let (mut b, mut key) = (0, Vec::new());
    loop {
        let mut least = by_key.get(b).map(|id| batch_keys[*id as usize].as_slice());
        for s in &streams {
            if let Some(r) = s.peek()
                && least.is_none_or(|l| r.key.as_slice() < l)
            {
                least = Some(r.key.as_slice());
            }
        }
        let Some(least) = least else {
            break;
        };
        key.clear();
        key.extend_from_slice(least);
        let mut rows: RowsByKeyframe = vec![None; keyframes.len()];
        let mut hidden = false;
        for ((s, row), ordinals) in streams.iter_mut().zip(&mut rows).zip(&mut hidden_ordinals) {
            if s.peek().is_some_and(|r| r.key == key) {
                let r = s.advance()?;
                *row = Some((r.ordinal, r.hash));
                while ordinals.next_if(|o| *o < r.ordinal).is_some() {}
                hidden |= ordinals.peek() == Some(&r.ordinal);
            }
        }
        let first = b;
        while by_key
            .get(b)
            .is_some_and(|id| batch_keys[*id as usize] == key)
        {
            b += 1;
        }
        let final_hash = rows[last].map(|(_, h)| h);
        let differs = rows.iter().any(|r| r.map(|(_, h)| h) != final_hash);
        if differs || hidden || b > first {
            followed.push(Followed {
                key: key.clone(),
                rows,
                ids: first..b,
            });
        }
    }

    // Each followed key's history, read at the frames where it can change.
    let toggles = FrameChanges::new(span.frames, index);
    let versions = span.frames.len();
    let mut hidden = Vec::new();
    let mut residual = Vec::new();
    let mut at: Vec<usize> = Vec::new();
    for Followed { key, rows, ids } in &followed {
        let ids = &by_key[ids.clone()];
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
        at.clear();
        at.extend_from_slice(&toggles.starts);
        for id in ids {
            at.extend(toggles.live_toggles(*id));
        }
        for (k, row) in rows.iter().enumerate() {
            if let Some((o, _)) = row {
                at.extend(toggles.hidden_toggles(k, *o));
            }
        }
        at.sort_unstable();
        at.dedup();
        let mut start = None;
        let mut changes = Vec::new();
        for &i in &at {
            let s = shown_at(&span.frames[i])?;
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
