//! Writing a table's change as an overlay (its upserted rows as one batch sorted by key in
//! the packs, columns gathered from the keyframe where they hold its values; its version
//! delta in the generation's node log), and folding an overlay into the changes that make
//! the next keyframe.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Mutex;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use reeldb_keyframe::PackWriter;
use reeldb_keyframe::builder::{Op, SortedChanges};
use reeldb_keyframe::tree::{Access, Tree};
use reeldb_overlay::{Change, NodeLogWriter, OverlayVersion, RowLocation, apply};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::catalog::version::{BatchRecord, OverlayRecord, TableEntry};
use crate::catalog::{OVERLAY_DIR, overlay_log_path};
use crate::error::Result;
use crate::read::overlay_view::{OverlayView, deltas_of, starts_of};
use crate::store::Store;
use crate::writer::overlay_gather::store_overlay_batch;

/// Each key with a live overlay row, and that row (hashed with xxh3: the keys are the one
/// trusted writer's, and SipHash was a tenth of an overlay commit's time).
type LiveKeys = HashMap<Vec<u8>, u32, Xxh3DefaultBuilder>;

/// What a writer knows of a generation's latest overlay version: its bitmaps, and each key's
/// live overlay row (by generation row id), so a commit finds the row each change replaces
/// without searching the generation's batches. Built from the overlay's deltas and batches,
/// it is a function of them alone, so it is valid for exactly the [`OverlayRecord`] it
/// describes: a writer that drops parks it in its store handle
/// ([`park_generations`]) and the next writer of that handle takes it up when the overlay it
/// appends to is that record, instead of reading every batch's keys again.
#[derive(Debug, Default)]
pub(crate) struct GenerationState {
    /// The bitmaps of the version `describes` names.
    version: OverlayVersion,
    live_keys: LiveKeys,
    /// The overlay `version` and `live_keys` describe; `None` until built, or after an
    /// abandoned commit changed them.
    describes: Option<OverlayRecord>,
}

/// The state parked in a store handle, by node log path.
pub(crate) type ParkedGenerations = Mutex<HashMap<PathBuf, GenerationState>>;

/// What the writer keeps of a generation it appends to: the node log and the state of its
/// latest version.
#[derive(Debug)]
pub(crate) struct GenerationWriter {
    log: NodeLogWriter,
    state: GenerationState,
}

impl GenerationWriter {
    /// Forgets what an abandoned commit appended or changed.
    pub(crate) fn abort(&mut self) {
        self.log.abort();
        self.state.describes = None;
    }

    /// Makes the state describe the overlay `prev`: kept when it already does, else read
    /// from its deltas and rebuilt from the live rows of every batch.
    fn catch_up(&mut self, tree: &Tree, prev: Option<&OverlayRecord>) -> Result<()> {
        let state = &mut self.state;
        if prev.is_some() && state.describes.as_ref() == prev {
            return Ok(());
        }
        state.live_keys.clear();
        state.version = match prev {
            Some(o) => OverlayVersion::load(self.log.reader(), &deltas_of(o), o.rows())?,
            None => OverlayVersion::default(),
        };
        let version = &state.version;
        if let Some(o) = prev {
            let layout = tree.layout();
            let starts = starts_of(&o.batches);
            for (batch, start) in o.batches.iter().zip(starts) {
                if version.live.range_cardinality(start..start + batch.rows) == 0 {
                    continue;
                }
                let keys = tree.read_batch_columns(
                    &batch.blocks(),
                    batch.rows as usize,
                    layout.key.columns(),
                    Access::Streaming,
                )?;
                let keys = layout.key.encode_columns(&keys)?;
                for id in version.live.range(start..start + batch.rows) {
                    state
                        .live_keys
                        .insert(keys.row((id - start) as usize).as_ref().to_vec(), id);
                }
            }
        }
        state.describes = prev.cloned();
        Ok(())
    }
}

/// Parks the state of every generation `logs` holds that is still the latest of its table
/// in `head` (the writer's latest version) in the store handle's `parked`, dropping what
/// was parked for any other generation.
pub(crate) fn park_generations(
    parked: &ParkedGenerations,
    logs: &mut HashMap<PathBuf, GenerationWriter>,
    head: Option<&crate::catalog::version::VersionRecord>,
) {
    let current: HashMap<PathBuf, &OverlayRecord> = head
        .into_iter()
        .flat_map(|rec| &rec.tables)
        .filter_map(|t| Some((overlay_log_path(t.id, t.keyframe_at), t.overlay.as_ref()?)))
        .collect();
    // A panic while the map was held leaves it whole, and every entry is checked on use.
    let mut parked = parked.lock().unwrap_or_else(|e| e.into_inner());
    parked.retain(|path, _| current.contains_key(path));
    for (path, g) in logs.drain() {
        if current
            .get(&path)
            .is_some_and(|o| g.state.describes.as_ref() == Some(*o))
        {
            parked.insert(path, g.state);
        }
    }
}

/// Writes `changes` to table `t` (whose keyframe is `tree`) as its next overlay version.
pub(crate) fn write_overlay(
    packs: &mut PackWriter,
    generations: &mut HashMap<PathBuf, GenerationWriter>,
    store: &Store,
    t: &TableEntry,
    tree: &Tree,
    changes: &SortedChanges,
    durable: bool,
) -> Result<OverlayRecord> {
    let path = overlay_log_path(t.id, t.keyframe_at);
    let prev = t.overlay.as_ref();
    let generation = match generations.entry(path) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(v) => {
            let storage = store.inner.storage.clone();
            // The directory's own entry must be durable before any log in it is referenced (it
            // may have been created by a commit that crashed before syncing the root).
            storage.create_dir_all(std::path::Path::new(OVERLAY_DIR))?;
            if durable {
                storage.sync_dir(std::path::Path::new(""))?;
            }
            let log = match prev {
                Some(o) => NodeLogWriter::open(storage, v.key(), Some(o.log_len))?,
                // Where readers publish no leases (an object store), a log a rewind purged
                // may still be read by a reader of a purged version: kept, and appended
                // after. On a local disk no reader holds one, and it is started afresh.
                None if storage.locks_outlive_their_process() => {
                    NodeLogWriter::open_keeping(storage, v.key())?
                }
                None => NodeLogWriter::open(storage, v.key(), None)?,
            };
            // What an earlier writer of this handle left, if it still describes `prev`.
            let parked = store
                .inner
                .parked_generations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(v.key());
            v.insert(GenerationWriter {
                log,
                state: parked.unwrap_or_default(),
            })
        }
    };

    // The commit's changes in key order, with each key's keyframe ordinal found by one merge
    // over the keyframe's leaves (and below, its live overlay row by the writer's index).
    let ops = changes.ops();
    let keys: Vec<&[u8]> = ops.iter().map(|(k, _)| *k).collect();
    let probe = tree.layout().key.decode(&keys)?;
    let ordinals = tree.ordinals_of_sorted(&keys, &probe)?;

    // The commit's rows, a block per column or gathered from the keyframe.
    let mut batches = prev.map_or_else(Vec::new, |o| o.batches.clone());
    let first_row = prev.map_or(0, OverlayRecord::rows);
    let rows = changes.upserts.num_rows() as u32;
    if rows > 0 {
        let mut row_ordinals = vec![None; rows as usize];
        for ((_, op), o) in ops.iter().zip(&ordinals) {
            if let Op::Upsert(i) = op {
                row_ordinals[*i] = *o;
            }
        }
        let columns = store_overlay_batch(packs, tree, &changes.upserts, &row_ordinals)?;
        batches.push(BatchRecord::new(rows, &columns));
    }

    generation.catch_up(tree, prev)?;
    // From here the state describes the version being written, not `prev`.
    generation.state.describes = None;
    let mut edits = Vec::with_capacity(ops.len());
    for ((key, op), shadows) in ops.into_iter().zip(ordinals) {
        let row = match op {
            Op::Upsert(i) => Some(first_row + i as u32),
            Op::Delete => None,
        };
        let replaces = match row {
            Some(r) => generation.state.live_keys.insert(key.to_vec(), r),
            None => generation.state.live_keys.remove(key),
        };
        edits.push(Change {
            row,
            replaces,
            shadows,
        });
    }
    let (next, delta) = apply(&generation.state.version, edits);
    let at = delta.store(&mut generation.log)?;
    let log_len = generation.log.sync(durable)?;
    let mut deltas = prev.map_or_else(Vec::new, |o| o.deltas.clone());
    deltas.push((at.offset, at.checksum));
    let record = OverlayRecord {
        log_len,
        deltas,
        shadowed: next.shadowed.len(),
        live: next.live.len(),
        batches,
    };
    generation.state.version = next;
    generation.state.describes = Some(record.clone());
    Ok(record)
}

/// Where a key's row comes from when an overlay is folded into a keyframe.
enum Source {
    Overlay(RowLocation),
    Commit(usize),
    Delete,
}

/// The changes that turn the keyframe `tree` into the table's state at `t` (an overlay or a
/// B-frame over it) with `changes` then applied: the input of the next keyframe.
pub(crate) fn fold_into_keyframe(
    store: &Store,
    t: &TableEntry,
    tree: &Tree,
    changes: SortedChanges,
) -> Result<SortedChanges> {
    let mut ops: BTreeMap<Vec<u8>, Source> = BTreeMap::new();
    let view = match (&t.overlay, &t.bframe) {
        (Some(o), _) => {
            OverlayView::load(store.node_log(&overlay_log_path(t.id, t.keyframe_at)), o)?
        }
        (None, Some(b)) => OverlayView::bframe(store.inner.source.clone(), b)?,
        (None, None) => return Ok(changes),
    };
    // Hidden keyframe rows are deleted unless a live overlay row replaces them.
    let (hidden, _) = view.hidden_and_live()?;
    let layout = tree.layout();
    for leaf in tree.leaves()? {
        let end = leaf.ordinal + leaf.entry.rows;
        if hidden.range_cardinality(leaf.ordinal..end) == 0 {
            continue;
        }
        let node = tree.read_leaf(&leaf.entry)?;
        let keys = tree.read_columns(&node, layout.key.columns(), Access::Streaming)?;
        let keys = layout.key.encode_columns(&keys)?;
        let mut it = hidden.iter();
        it.advance_to(leaf.ordinal);
        for o in it.take_while(|&o| o < end) {
            ops.insert(
                keys.row((o - leaf.ordinal) as usize).as_ref().to_vec(),
                Source::Delete,
            );
        }
    }
    for (key, loc) in view.rows_in(tree, Bound::Unbounded, Bound::Unbounded)? {
        ops.insert(key, Source::Overlay(loc));
    }
    for i in 0..changes.upserts.num_rows() {
        ops.insert(
            changes.upsert_keys.row(i).as_ref().to_vec(),
            Source::Commit(i),
        );
    }
    for k in changes.deletes {
        ops.insert(k, Source::Delete);
    }
    let all: Vec<usize> = (0..layout.schema.fields().len()).collect();
    let mut sources: Vec<RecordBatch> = (0..view.batches.len())
        .map(|b| {
            let cols = view.batch_columns(tree, b, &all, Access::Streaming)?;
            Ok(RecordBatch::try_new(layout.schema.clone(), cols)?)
        })
        .collect::<Result<_>>()?;
    let commit_source = sources.len();
    sources.push(changes.upserts);
    let mut picks = Vec::new();
    let mut deletes = Vec::new();
    for (key, src) in ops {
        match src {
            Source::Overlay(l) => picks.push((l.batch as usize, l.row as usize)),
            Source::Commit(i) => picks.push((commit_source, i)),
            Source::Delete => deletes.push(key),
        }
    }
    let refs: Vec<&RecordBatch> = sources.iter().collect();
    let upserts = interleave_record_batch(&refs, &picks)?;
    let upsert_keys = layout.key.encode_batch(&upserts)?;
    Ok(SortedChanges {
        upserts,
        upsert_keys,
        deletes,
    })
}
