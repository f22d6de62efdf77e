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
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use reeldb_keyframe::tree::{Access, Tree};
use reeldb_keyframe::{PackWriter, RecordRef, block};
use reeldb_overlay::OverlayVersion;
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::error::{Error, Result};
use crate::fingerprint::{KeyedRow, RowHasher, batch_columns, encoded_keys, tree_rows};
use crate::gather::NextKeyframe;
use crate::membership::Membership;

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

/// One version of a generation as a B-frame: its bitmaps, as [`Membership::frame`] computes
/// them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BFrame {
    /// Ordinals of the next keyframe's rows that are not part of this version.
    pub hidden: RoaringTreemap,
    /// Residual rows (by position in the residual) that are part of this version.
    pub live: RoaringBitmap,
}

/// A compacted generation (or rebased span): the residual, and which of its rows and of the
/// next keyframe's each version sees, with one frame per version in the order of
/// [`ClosedGeneration::versions`] (or [`crate::Span::frames`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compacted {
    /// The residual's row batches, in key order.
    pub residual: Vec<RowBatch>,
    /// The first key of each residual batch (for lookups by key).
    pub first_keys: Vec<Vec<u8>>,
    /// Every version's hidden and live rows, as births and deaths.
    pub membership: Membership,
}

/// Which row a key shows over a stretch of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    /// Its row in an earlier keyframe (by index among the sources given to [`finish`], and
    /// ordinal): the generation's own keyframe in compaction, a thinned one in a rebase.
    Keyframe(usize, u64),
    /// A row of the batches (overlay rows, or a residual being rebased), by row id.
    Overlay(u32),
    /// Its row in the next keyframe (by ordinal): never hidden, never residual.
    Next(u64),
    /// No row: the key does not exist then.
    Absent,
}

/// Turns one key's history (what it shows from which version on) into hidden stretches of
/// the next keyframe's row and residual rows: over each stretch of versions showing one row
/// version, the next keyframe's row serves if its content hash is that row version's;
/// otherwise the next keyframe's row is hidden for the stretch and the row version joins the
/// residual.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_stretches<'k>(
    key: &'k [u8],
    start: Shown,
    changes: &[(usize, Shown)],
    versions: usize,
    final_row: Option<(u64, u128)>,
    hash_of: &dyn Fn(Shown) -> Option<u128>,
    hidden: &mut Vec<(u64, u32, u32)>,
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
        if let (Some(h), Some((_, f))) = (hash, final_row)
            && f == h
        {
            continue;
        }
        if let Some((ordinal, _)) = final_row {
            hidden.push((ordinal, from as u32, to as u32));
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

/// A key's history through the generation: what it shows from which version on, and its
/// row (ordinal and content hash) in the next keyframe.
#[derive(Debug)]
struct History<'k> {
    key: &'k [u8],
    start: Shown,
    changes: Vec<(usize, Shown)>,
    final_row: Option<(u64, u128)>,
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
    compact_with(generation, packs, batch_rows, &mut Fingerprints::default())
}

/// Fingerprinted keyframes kept from one generation's compaction for the next: a
/// generation's next keyframe is the previous keyframe of the one after it. Holds the last
/// two keyframes fingerprinted.
#[derive(Debug, Default)]
pub struct Fingerprints {
    /// (root node, schema read with, rows), newest last.
    kept: Vec<(
        reeldb_keyframe::format::ContentHash,
        arrow::datatypes::SchemaRef,
        Arc<Vec<KeyedRow>>,
    )>,
}

impl Fingerprints {
    /// Every row of `tree`, fingerprinted (see [`tree_rows`]), from this cache if it holds it.
    pub fn rows(&mut self, tree: &Tree, hasher: &RowHasher) -> Result<Arc<Vec<KeyedRow>>> {
        let Some(root) = tree.root() else {
            return Ok(Arc::new(Vec::new()));
        };
        let (hash, schema) = (root.entry.node.hash, &tree.layout().schema);
        if let Some((_, _, rows)) = self.kept.iter().find(|(h, s, _)| *h == hash && s == schema) {
            return Ok(rows.clone());
        }
        let rows = Arc::new(tree_rows(tree, hasher)?);
        self.kept.push((hash, schema.clone(), rows.clone()));
        if self.kept.len() > 2 {
            self.kept.remove(0);
        }
        Ok(rows)
    }
}

/// [`compact`], taking the keyframes' fingerprints from `fingerprints` where it holds them
/// (and leaving them there for the next generation).
pub fn compact_with(
    generation: &ClosedGeneration<'_>,
    packs: &mut PackWriter,
    batch_rows: usize,
    fingerprints: &mut Fingerprints,
) -> Result<Compacted> {
    let (prev, next) = (generation.prev, generation.next);
    let layout = next.layout().clone();
    let hasher = RowHasher::new(&layout)?;
    let prev_rows = fingerprints.rows(prev, &hasher)?;
    let next_rows = fingerprints.rows(next, &hasher)?;

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
    let row_of = |rows: &[KeyedRow], key: &[u8]| {
        rows.binary_search_by(|r| r.key.as_slice().cmp(key))
            .ok()
            .map(|i| (rows[i].ordinal, rows[i].hash))
    };

    // Every key that differs anywhere in the generation, with its rows in the two keyframes
    // and what it shows when: first the keys whose rows differ between the keyframes (found
    // by merging them), then any other key a version changes (found by search).
    let mut histories: Vec<History<'_>> = differing(&prev_rows, &next_rows)
        .into_iter()
        .map(|(key, prev, next)| History {
            key,
            start: prev.map_or(Shown::Absent, |(o, _)| Shown::Keyframe(0, o)),
            changes: Vec::new(),
            final_row: next,
        })
        .collect();
    let mut by_key: HashMap<&[u8], usize> = histories
        .iter()
        .enumerate()
        .map(|(i, h)| (h.key, i))
        .collect();
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
            let h = *by_key.entry(key).or_insert_with(|| {
                histories.push(History {
                    key,
                    start: row_of(&prev_rows, key)
                        .map_or(Shown::Absent, |(o, _)| Shown::Keyframe(0, o)),
                    changes: Vec::new(),
                    final_row: row_of(&next_rows, key),
                });
                histories.len() - 1
            });
            histories[h].changes.push((i, shown));
        }
        before = version.clone();
    }

    // Walk every history's stretches.
    let versions = generation.versions.len();
    let mut hidden = Vec::new();
    let mut residual: Vec<ResidualRow<'_>> = Vec::new();
    for h in &histories {
        plan_stretches(
            h.key,
            h.start,
            &h.changes,
            versions,
            h.final_row,
            &|s| match s {
                Shown::Keyframe(_, o) => Some(prev_rows[o as usize].hash),
                Shown::Overlay(id) => Some(overlay_hashes[id as usize]),
                Shown::Next(o) => Some(next_rows[o as usize].hash),
                Shown::Absent => None,
            },
            &mut hidden,
            &mut residual,
        );
    }
    finish(
        RowSources {
            keyframes: &[prev],
            next,
            batches: &overlay_batches,
        },
        versions,
        hidden,
        residual,
        packs,
        batch_rows,
    )
}

/// Where a residual's rows come from and what it is written over.
#[derive(Clone, Copy)]
pub(crate) struct RowSources<'a> {
    /// The keyframes [`Shown::Keyframe`] rows are read from.
    pub(crate) keyframes: &'a [&'a Tree],
    /// The keyframe the B-frames read over, which residual columns may be gathered from.
    pub(crate) next: &'a Tree,
    /// The decoded row batches [`Shown::Overlay`] rows are read from.
    pub(crate) batches: &'a [RecordBatch],
}

/// Sorts the residual rows by key (a key's versions oldest first) and the hidden stretches
/// by ordinal (joining touching ones), records both as the span's membership over
/// `versions` frames, and writes the residual, gathering [`Shown::Keyframe`] rows from
/// `keyframes` and [`Shown::Overlay`] rows from `batches` (all of one table layout), its
/// columns gathered from `next` where that is smaller: the end of compaction and of a rebase
/// alike.
pub(crate) fn finish(
    sources: RowSources<'_>,
    versions: usize,
    mut hidden: Vec<(u64, u32, u32)>,
    mut residual: Vec<ResidualRow<'_>>,
    packs: &mut PackWriter,
    batch_rows: usize,
) -> Result<Compacted> {
    residual.sort_unstable_by(|a, b| a.key.cmp(b.key).then(a.from.cmp(&b.from)));
    hidden.sort_unstable();
    let mut joined: Vec<(u64, u32, u32)> = Vec::with_capacity(hidden.len());
    for (o, from, to) in hidden {
        match joined.last_mut() {
            Some(last) if last.0 == o && last.2 >= from => last.2 = last.2.max(to),
            _ => joined.push((o, from, to)),
        }
    }
    let membership = Membership {
        frames: versions as u32,
        live: residual
            .iter()
            .map(|r| (r.from as u32, r.to as u32))
            .collect(),
        hidden: joined,
    };
    let (residual_batches, first_keys) =
        write_residual(sources, &residual, packs, batch_rows.max(1))?;
    Ok(Compacted {
        residual: residual_batches,
        first_keys,
        membership,
    })
}

/// The keys whose row differs between two keyframes (in content, or present in one only),
/// in key order, each with its row (ordinal and content hash) in each keyframe that has it.
pub(crate) type Differing<'r> = (&'r [u8], Option<(u64, u128)>, Option<(u64, u128)>);

/// The keys whose row differs between `prev` and `next` (see [`Differing`]), found by one
/// merge of the two.
pub(crate) fn differing<'r>(prev: &'r [KeyedRow], next: &'r [KeyedRow]) -> Vec<Differing<'r>> {
    let row = |r: &KeyedRow| Some((r.ordinal, r.hash));
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        match (prev.get(i), next.get(j)) {
            (Some(p), Some(n)) if p.key == n.key => {
                if p.hash != n.hash {
                    out.push((p.key.as_slice(), row(p), row(n)));
                }
                i += 1;
                j += 1;
            }
            (Some(p), Some(n)) if p.key < n.key => {
                out.push((p.key.as_slice(), row(p), None));
                i += 1;
            }
            (Some(p), None) => {
                out.push((p.key.as_slice(), row(p), None));
                i += 1;
            }
            (_, Some(n)) => {
                out.push((n.key.as_slice(), None, row(n)));
                j += 1;
            }
            (None, None) => return out,
        }
    }
}

/// Writes the residual rows, in order, as batches of at most `batch_rows` rows, gathering
/// each from a keyframe's leaves or the batches. Rows come in key order, so each keyframe's
/// leaves are wanted in order too: a leaf is decoded once, when a batch first needs it, and
/// dropped once a batch needs a later leaf of its keyframe, which bounds memory by a batch's
/// worth of leaves. Columns are gathered from `next` where that is smaller
/// ([`crate::gather`]), when `next` has the layout's schema and slots.
fn write_residual(
    sources: RowSources<'_>,
    rows: &[ResidualRow<'_>],
    packs: &mut PackWriter,
    batch_rows: usize,
) -> Result<(Vec<RowBatch>, Vec<Vec<u8>>)> {
    let RowSources {
        keyframes,
        next,
        batches,
    } = sources;
    let Some(layout) = keyframes.first().map(|t| t.layout().clone()) else {
        return match rows.is_empty() {
            true => Ok((Vec::new(), Vec::new())),
            false => Err(Error::Inconsistent(
                "residual rows without the keyframe that gives their layout".into(),
            )),
        };
    };
    let schema = layout.schema.clone();
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    let leaves = keyframes
        .iter()
        .map(|t| t.leaves())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut starts = Vec::with_capacity(batches.len());
    let mut total = 0usize;
    for b in batches {
        starts.push(total);
        total += b.num_rows();
    }
    let same_layout = next.layout().schema == layout.schema
        && next.layout().slots == layout.slots
        && next
            .layout()
            .columns
            .iter()
            .zip(&layout.columns)
            .all(|(a, b)| a.slot == b.slot && a.epoch == b.epoch);
    let mut next = match same_layout {
        true => Some(NextKeyframe::new(next)?),
        false => None,
    };
    // Decoded leaves, by keyframe and leaf index.
    let mut decoded: HashMap<(usize, usize), RecordBatch> = HashMap::new();
    let (mut out, mut first_keys) = (Vec::new(), Vec::new());
    for chunk in rows.chunks(batch_rows) {
        // Where each row comes from: a batch, or a leaf (numbered after the batches).
        let mut leaf_slots: Vec<(usize, usize)> = Vec::new();
        let mut picks = Vec::with_capacity(chunk.len());
        for r in chunk {
            picks.push(match r.source {
                Shown::Overlay(id) => {
                    let id = id as usize;
                    let b = starts.partition_point(|s| *s <= id).saturating_sub(1);
                    if id >= total {
                        return Err(Error::Inconsistent(format!(
                            "overlay row {id} is not in the batches"
                        )));
                    }
                    (b, id - starts[b])
                }
                Shown::Keyframe(k, o) => {
                    let tree_leaves = leaves.get(k).ok_or_else(|| {
                        Error::Inconsistent(format!(
                            "a residual row of keyframe {k} of {}",
                            keyframes.len()
                        ))
                    })?;
                    let l = tree_leaves
                        .partition_point(|e| e.ordinal <= o)
                        .saturating_sub(1);
                    let leaf = tree_leaves
                        .get(l)
                        .filter(|e| o < e.ordinal + e.entry.rows)
                        .ok_or_else(|| {
                            Error::Inconsistent(format!(
                                "a residual row is ordinal {o} of a keyframe without it"
                            ))
                        })?;
                    if let std::collections::hash_map::Entry::Vacant(slot) = decoded.entry((k, l)) {
                        let tree = keyframes[k];
                        let node = tree.read_leaf(&leaf.entry)?;
                        let columns = tree.read_columns(&node, &all, Access::Streaming)?;
                        slot.insert(RecordBatch::try_new(schema.clone(), columns)?);
                    }
                    let slot = match leaf_slots.iter().position(|s| *s == (k, l)) {
                        Some(s) => s,
                        None => {
                            leaf_slots.push((k, l));
                            leaf_slots.len() - 1
                        }
                    };
                    (batches.len() + slot, (o - leaf.ordinal) as usize)
                }
                Shown::Absent | Shown::Next(_) => {
                    return Err(Error::Inconsistent(
                        "the residual only holds rows the next keyframe lacks".into(),
                    ));
                }
            });
        }
        let mut refs: Vec<&RecordBatch> = batches.iter().collect();
        for s in &leaf_slots {
            // Every slot was decoded above, before it was listed.
            refs.push(&decoded[s]);
        }
        let batch = interleave_record_batch(&refs, &picks)?;
        let columns = match &mut next {
            Some(next) => {
                let keys: Vec<&[u8]> = chunk.iter().map(|r| r.key).collect();
                next.store_batch(packs, &batch, &keys)?
            }
            None => block::store_columns(packs, &layout, &batch)?,
        };
        out.push(RowBatch {
            rows: batch.num_rows() as u32,
            columns,
        });
        first_keys.push(chunk[0].key.to_vec());
        // Later batches need only these leaves or later ones of each keyframe.
        let mut newest: HashMap<usize, usize> = HashMap::new();
        for (k, l) in &leaf_slots {
            let n = newest.entry(*k).or_insert(*l);
            *n = (*n).max(*l);
        }
        decoded.retain(|(k, l), _| newest.get(k).is_none_or(|n| l >= n));
    }
    Ok((out, first_keys))
}
