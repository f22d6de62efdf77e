//! Writing a table's change as an overlay (its rows as a batch in the packs, its keys in the
//! generation's trie, with the deletion vector and live rows), and folding an overlay into
//! the changes that make the next keyframe.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use reeldb_keyframe::builder::{Op, SortedChanges};
use reeldb_keyframe::storage::Storage;
use reeldb_keyframe::tree::{Access, Tree};
use reeldb_keyframe::{PackWriter, block};
use reeldb_overlay::hamt::for_each;
use reeldb_overlay::{Change, NodeLogWriter, OverlayVersion, RowLocation, apply, key_hash};

use crate::catalog::version::{BatchRecord, OverlayRecord, TableEntry};
use crate::catalog::{OVERLAY_DIR, overlay_log_path};
use crate::error::Result;
use crate::read::overlay_view::{OverlayView, refs_of, starts_of};
use crate::store::Store;

/// Writes `changes` to table `t` (whose keyframe is `tree`) as its next overlay version.
pub(crate) fn write_overlay(
    packs: &mut PackWriter,
    logs: &mut HashMap<PathBuf, NodeLogWriter>,
    storage: Arc<dyn Storage>,
    t: &TableEntry,
    tree: &Tree,
    changes: &SortedChanges,
    durable: bool,
) -> Result<OverlayRecord> {
    let path = overlay_log_path(t.id, t.keyframe_at);
    let prev = t.overlay.as_ref();
    let log = match logs.entry(path) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(v) => {
            // The directory's own entry must be durable before any log in it is referenced (it
            // may have been created by a commit that crashed before syncing the root).
            storage.create_dir_all(std::path::Path::new(OVERLAY_DIR))?;
            if durable {
                storage.sync_dir(std::path::Path::new(""))?;
            }
            let log = NodeLogWriter::open(storage, v.key(), prev.map(|o| o.log_len), key_hash)?;
            v.insert(log)
        }
    };

    // The commit's rows, one block per column.
    let mut batches = prev.map_or_else(Vec::new, |o| o.batches.clone());
    let batch = batches.len() as u32;
    let rows = changes.upserts.num_rows() as u32;
    if rows > 0 {
        let columns = block::store_columns(packs, tree.layout(), &changes.upserts)?;
        batches.push(BatchRecord::new(rows, &columns));
    }

    let prev_version = match prev {
        Some(o) => OverlayVersion::load(log.reader(), &refs_of(o))?,
        None => OverlayVersion::default(),
    };
    // The commit's changes in key order, with each key's keyframe ordinal found by one merge
    // over the keyframe's leaves.
    let mut edits: Vec<Change<'_>> = changes
        .ops()
        .into_iter()
        .map(|(key, op)| Change {
            key,
            row: match op {
                Op::Upsert(i) => Some(RowLocation {
                    batch,
                    row: i as u32,
                }),
                Op::Delete => None,
            },
            shadows: None,
        })
        .collect();
    let keys: Vec<&[u8]> = edits.iter().map(|e| e.key).collect();
    let probe = tree.layout().key.decode(&keys)?;
    let ordinals = tree.ordinals_of_sorted(&keys, &probe)?;
    for (e, o) in edits.iter_mut().zip(ordinals) {
        e.shadows = o;
    }
    let starts = starts_of(&batches);
    let next = apply(log, &prev_version, edits, &|l| {
        starts[l.batch as usize] + l.row
    })?;
    let refs = next.store(log)?;
    let log_len = log.sync(durable)?;
    Ok(OverlayRecord {
        log_len,
        root: refs.root.map(|r| (r.offset, r.checksum)),
        deletion_vector: (refs.shadowed.offset, refs.shadowed.checksum),
        live_rows: (refs.live.offset, refs.live.checksum),
        entries: next.entries,
        shadowed: next.shadowed.len(),
        live: next.live.len(),
        commits: prev.map_or(0, |o| o.commits) + 1,
        batches,
    })
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
            let view =
                OverlayView::load(store.node_log(&overlay_log_path(t.id, t.keyframe_at)), o)?;
            if let Some((log, refs)) = view.trie() {
                for_each(log, refs.root, &mut |e| {
                    match e.row {
                        Some(loc) => ops.insert(e.key, Source::Overlay(loc)),
                        None if e.shadows.is_some() => ops.insert(e.key, Source::Delete),
                        None => None,
                    };
                })?;
            }
            view
        }
        (None, Some(b)) => {
            let view = OverlayView::bframe(store.inner.source.clone(), b)?;
            // Hidden keyframe rows are deleted unless a live residual row replaces them.
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
            view
        }
        (None, None) => return Ok(changes),
    };
    for i in 0..changes.upserts.num_rows() {
        ops.insert(
            changes.upsert_keys.row(i).as_ref().to_vec(),
            Source::Commit(i),
        );
    }
    for k in changes.deletes {
        ops.insert(k, Source::Delete);
    }
    let layout = tree.layout();
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
