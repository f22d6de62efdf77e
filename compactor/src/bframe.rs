//! Planning a closed generation's B-frames and writing its residual.
//!
//! For one table, a closed generation is its keyframe (`prev`), the overlay versions after
//! it, and the next keyframe (`next`). Every key whose row differs anywhere in the generation
//! is followed version by version (the keys that differ between the two keyframes, and every
//! key a version's bitmaps changed: overlay rows that became or stopped being live, keyframe
//! ordinals newly shadowed). Over
//! each stretch of versions in which a key shows one row version:
//!
//! - if `next` holds that very row (equal content hash), the B-frames simply read it there;
//! - otherwise `next`'s row for the key (if any) is hidden at those versions, and the row
//!   version, if the key exists then, goes to the residual, live for that stretch.
//!
//! Every other row of `next` is live at every version of the generation. The residual is
//! written sorted by key (a key's versions oldest first), as row batches of column blocks.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use reeldb_keyframe::tree::{Access, Tree};
use reeldb_keyframe::{PackWriter, RecordRef, block};
use reeldb_overlay::OverlayVersion;
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::error::{Error, Result};
use crate::fingerprint::{KeyedRow, RowHasher, batch_columns, encoded_keys, tree_rows};

/// A batch of rows stored as one column block per column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowBatch {
    /// Rows in the batch.
    pub rows: u32,
    /// One block per column slot of the table's layout (`None`: a slot it leaves empty).
    pub columns: Vec<Option<RecordRef>>,
}

/// One table's closed generation.
#[derive(Debug, Clone, Copy)]
pub struct ClosedGeneration<'a> {
    /// The generation's keyframe.
    pub prev: &'a Tree,
    /// The next keyframe, which closed the generation.
    pub next: &'a Tree,
    /// The bitmaps of each version between the keyframes, oldest first.
    pub versions: &'a [OverlayVersion],
    /// The generation's overlay row batches (as the last version lists them).
    pub batches: &'a [RowBatch],
}

/// One version of a generation as a B-frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BFrame {
    /// Ordinals of the next keyframe's rows that are not part of this version.
    pub hidden: RoaringTreemap,
    /// Residual rows (by position in the residual) that are part of this version.
    pub live: RoaringBitmap,
}

/// A compacted generation: the residual and one B-frame per version, in the order of
/// [`ClosedGeneration::versions`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compacted {
    /// The residual's row batches, in key order.
    pub residual: Vec<RowBatch>,
    /// The first key of each residual batch (for lookups by key).
    pub first_keys: Vec<Vec<u8>>,
    /// One B-frame per version.
    pub frames: Vec<BFrame>,
}

/// Which row a key shows over a stretch of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    /// Its row in the previous keyframe (by ordinal).
    Prev(u64),
    /// A row of the batches (overlay rows, or a residual being rebased), by row id.
    Overlay(u32),
    /// Its row in the next keyframe (by ordinal): never hidden, never residual.
    Next(u64),
    /// No row: the key does not exist then.
    Absent,
}

/// Turns one key's history (what it shows from which version on) into hidden rows of the
/// next keyframe and residual rows: over each stretch of versions showing one row version,
/// the next keyframe's row serves if its content hash is that row version's; otherwise the
/// next keyframe's row is hidden for the stretch and the row version joins the residual.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_stretches<'k>(
    key: &'k [u8],
    start: Shown,
    changes: &[(usize, Shown)],
    versions: usize,
    final_row: Option<&KeyedRow>,
    hash_of: &dyn Fn(Shown) -> Option<u128>,
    frames: &mut [BFrame],
    residual: &mut Vec<ResidualRow<'k>>,
) {
    // Stretches of one row version: adjacent ones showing equal content are one (a row can
    // be shown from different copies, e.g. a keyframe's and a residual's, across versions).
    let mut stretches: Vec<(usize, usize, Shown, Option<u128>)> =
        Vec::with_capacity(changes.len() + 1);
    let (mut from, mut shown) = (0, start);
    let ends = changes.iter().copied().chain([(versions, Shown::Absent)]);
    for (at, next) in ends {
        if at > from {
            let hash = hash_of(shown);
            match stretches.last_mut() {
                Some(last) if last.1 == from && hash.is_some() && last.3 == hash => last.1 = at,
                _ => stretches.push((from, at, shown, hash)),
            }
        }
        from = at;
        shown = next;
    }
    for (from, to, shown, hash) in stretches {
        if let (Some(h), Some(f)) = (hash, final_row)
            && f.hash == h
        {
            continue;
        }
        if let Some(f) = final_row {
            for frame in &mut frames[from..to] {
                frame.hidden.insert(f.ordinal);
            }
        }
        if hash.is_some() {
            residual.push(ResidualRow {
                key,
                from,
                to,
                source: shown,
            });
        }
    }
}

/// A key's history through the generation: what it shows from which version on.
#[derive(Debug)]
struct History {
    start: Shown,
    changes: Vec<(usize, Shown)>,
}

/// A residual row: where it comes from, its key, and the versions it is live at.
#[derive(Debug)]
pub(crate) struct ResidualRow<'k> {
    pub(crate) key: &'k [u8],
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) source: Shown,
}

/// Plans and writes the B-frames of `generation` (see the module docs), appending the
/// residual's blocks to `packs` in batches of at most `batch_rows` rows. Nothing the
/// generation already stores is changed.
pub fn compact(
    generation: &ClosedGeneration<'_>,
    packs: &mut PackWriter,
    batch_rows: usize,
) -> Result<Compacted> {
    let (prev, next) = (generation.prev, generation.next);
    let layout = next.layout().clone();
    let hasher = RowHasher::new(&layout)?;
    let prev_rows = tree_rows(prev, &hasher)?;
    let next_rows = tree_rows(next, &hasher)?;

    // Overlay rows, by generation row id: content hashes, decoded batches, keys.
    let mut overlay_hashes: Vec<u128> = Vec::new();
    let mut overlay_batches = Vec::with_capacity(generation.batches.len());
    for batch in generation.batches {
        let columns = batch_columns(next, batch)?;
        overlay_hashes.extend(hasher.hash(&columns)?);
        overlay_batches.push(RecordBatch::try_new(layout.schema.clone(), columns)?);
    }
    let mut overlay_keys: Vec<Vec<u8>> = Vec::with_capacity(overlay_hashes.len());
    for batch in &overlay_batches {
        let keys = encoded_keys(&layout, batch.columns())?;
        overlay_keys.extend(keys.iter().map(|k| k.as_ref().to_vec()));
    }
    let key_of_row = |id: u32| -> Result<&[u8]> {
        overlay_keys
            .get(id as usize)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::Inconsistent(format!("overlay row {id} is not in the batches")))
    };
    let key_of_ordinal = |o: u64| -> Result<&[u8]> {
        prev_rows
            .get(o as usize)
            .map(|r| r.key.as_slice())
            .ok_or_else(|| {
                Error::Inconsistent(format!(
                    "a version shadows ordinal {o} of a {}-row keyframe",
                    prev_rows.len()
                ))
            })
    };
    let ordinal_in_prev = |key: &[u8]| {
        prev_rows
            .binary_search_by(|r| r.key.as_slice().cmp(key))
            .ok()
            .map(|i| prev_rows[i].ordinal)
    };

    // Every key that differs anywhere in the generation, with what it shows when.
    let mut histories: HashMap<Vec<u8>, History> = HashMap::new();
    for (key, ordinal) in differing(&prev_rows, &next_rows) {
        let start = ordinal.map_or(Shown::Absent, Shown::Prev);
        histories.insert(
            key.to_vec(),
            History {
                start,
                changes: Vec::new(),
            },
        );
    }
    // What each version changed, read from its bitmaps against the version before: rows
    // that became live show their key's new row; rows that stopped being live, and keyframe
    // ordinals newly shadowed, without a new row of their key, are deletes.
    let mut before = OverlayVersion::default();
    for (i, version) in generation.versions.iter().enumerate() {
        let mut changed: HashMap<&[u8], Shown> = HashMap::new();
        for id in &version.live - &before.live {
            changed.insert(key_of_row(id)?, Shown::Overlay(id));
        }
        for id in &before.live - &version.live {
            changed.entry(key_of_row(id)?).or_insert(Shown::Absent);
        }
        for o in &version.shadowed - &before.shadowed {
            changed.entry(key_of_ordinal(o)?).or_insert(Shown::Absent);
        }
        for (key, shown) in changed {
            match histories.get_mut(key) {
                Some(h) => h.changes.push((i, shown)),
                None => {
                    let start = ordinal_in_prev(key).map_or(Shown::Absent, Shown::Prev);
                    histories.insert(
                        key.to_vec(),
                        History {
                            start,
                            changes: vec![(i, shown)],
                        },
                    );
                }
            }
        }
        before = version.clone();
    }

    // Walk every history's stretches.
    let versions = generation.versions.len();
    let mut frames = vec![BFrame::default(); versions];
    let mut residual: Vec<ResidualRow<'_>> = Vec::new();
    for (key, h) in &histories {
        let final_row = next_rows
            .binary_search_by(|r| r.key.as_slice().cmp(key))
            .ok()
            .map(|i| &next_rows[i]);
        plan_stretches(
            key,
            h.start,
            &h.changes,
            versions,
            final_row,
            &|s| match s {
                Shown::Prev(o) => Some(prev_rows[o as usize].hash),
                Shown::Overlay(id) => Some(overlay_hashes[id as usize]),
                Shown::Next(o) => Some(next_rows[o as usize].hash),
                Shown::Absent => None,
            },
            &mut frames,
            &mut residual,
        );
    }
    finish(prev, &overlay_batches, frames, residual, packs, batch_rows)
}

/// Sorts the residual rows by key (a key's versions oldest first), marks each live in the
/// frames of its stretch, and writes them: the end of compaction and of a rebase alike.
pub(crate) fn finish(
    prev: &Tree,
    batches: &[RecordBatch],
    mut frames: Vec<BFrame>,
    mut residual: Vec<ResidualRow<'_>>,
    packs: &mut PackWriter,
    batch_rows: usize,
) -> Result<Compacted> {
    residual.sort_unstable_by(|a, b| a.key.cmp(b.key).then(a.from.cmp(&b.from)));
    for (id, r) in residual.iter().enumerate() {
        for frame in &mut frames[r.from..r.to] {
            frame.live.insert(id as u32);
        }
    }
    let (residual_batches, first_keys) =
        write_residual(prev, batches, &residual, packs, batch_rows.max(1))?;
    Ok(Compacted {
        residual: residual_batches,
        first_keys,
        frames,
    })
}

/// The keys whose row differs between two keyframes (in content, or present in one only),
/// each with its ordinal in the previous keyframe if that has it.
pub(crate) fn differing<'r>(
    prev: &'r [KeyedRow],
    next: &'r [KeyedRow],
) -> Vec<(&'r [u8], Option<u64>)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        match (prev.get(i), next.get(j)) {
            (Some(p), Some(n)) if p.key == n.key => {
                if p.hash != n.hash {
                    out.push((p.key.as_slice(), Some(p.ordinal)));
                }
                i += 1;
                j += 1;
            }
            (Some(p), Some(n)) if p.key < n.key => {
                out.push((p.key.as_slice(), Some(p.ordinal)));
                i += 1;
            }
            (Some(p), None) => {
                out.push((p.key.as_slice(), Some(p.ordinal)));
                i += 1;
            }
            (_, Some(n)) => {
                out.push((n.key.as_slice(), None));
                j += 1;
            }
            (None, None) => return out,
        }
    }
}

/// Writes the residual rows, in order, as batches of at most `batch_rows` rows, gathering
/// each from the previous keyframe's leaves or the overlay's batches.
fn write_residual(
    prev: &Tree,
    overlay_batches: &[RecordBatch],
    rows: &[ResidualRow<'_>],
    packs: &mut PackWriter,
    batch_rows: usize,
) -> Result<(Vec<RowBatch>, Vec<Vec<u8>>)> {
    let layout = prev.layout();
    let all: Vec<usize> = (0..layout.schema.fields().len()).collect();
    // The previous keyframe's leaves that hold a residual row, decoded once each.
    let mut wanted: Vec<u64> = rows
        .iter()
        .filter_map(|r| match r.source {
            Shown::Prev(o) => Some(o),
            _ => None,
        })
        .collect();
    wanted.sort_unstable();
    let mut sources: Vec<RecordBatch> = overlay_batches.to_vec();
    let mut leaf_of: Vec<(u64, u64, usize)> = Vec::new();
    let mut w = 0;
    for leaf in prev.leaves()? {
        let end = leaf.ordinal + leaf.entry.rows;
        while w < wanted.len() && wanted[w] < leaf.ordinal {
            w += 1;
        }
        if w < wanted.len() && wanted[w] < end {
            let node = prev.read_leaf(&leaf.entry)?;
            let columns = prev.read_columns(&node, &all, Access::Streaming)?;
            leaf_of.push((leaf.ordinal, end, sources.len()));
            sources.push(RecordBatch::try_new(layout.schema.clone(), columns)?);
        }
    }
    let picks: Vec<(usize, usize)> = rows
        .iter()
        .map(|r| match r.source {
            Shown::Overlay(id) => locate_overlay(overlay_batches, id),
            Shown::Prev(o) => {
                let at = leaf_of.partition_point(|(first, _, _)| *first <= o);
                let (first, _, source) = leaf_of[at.saturating_sub(1)];
                Ok((source, (o - first) as usize))
            }
            Shown::Absent | Shown::Next(_) => Err(Error::Inconsistent(
                "the residual only holds rows the next keyframe lacks".into(),
            )),
        })
        .collect::<Result<_>>()?;
    let refs: Vec<&RecordBatch> = sources.iter().collect();
    let (mut batches, mut first_keys) = (Vec::new(), Vec::new());
    for (chunk, chunk_rows) in picks.chunks(batch_rows).zip(rows.chunks(batch_rows)) {
        let batch = interleave_record_batch(&refs, chunk)?;
        let columns = block::store_columns(packs, layout, &batch)?;
        batches.push(RowBatch {
            rows: batch.num_rows() as u32,
            columns,
        });
        first_keys.push(chunk_rows[0].key.to_vec());
    }
    Ok((batches, first_keys))
}

/// The batch and row of overlay row `id`.
fn locate_overlay(batches: &[RecordBatch], id: u32) -> Result<(usize, usize)> {
    let mut at = id as usize;
    for (b, batch) in batches.iter().enumerate() {
        if at < batch.num_rows() {
            return Ok((b, at));
        }
        at -= batch.num_rows();
    }
    Err(Error::Inconsistent(format!(
        "overlay row {id} is not in the batches"
    )))
}
