//! What a copy holds that its source no longer has: files the source's maintenance deleted
//! (node logs of compacted generations, packs log cleaning replaced, records files a
//! catalog rewrite retired) after an earlier sync copied them. Each sync finds them by
//! listing the data files of both stores: the source's before it reads the index it copies,
//! the copy's before it copies anything. A file the copy held before this sync and the
//! source did not hold when it was listed is one the source deleted, and no version this
//! sync copies reads it: the engine never writes a deleted name again (a rewind aside,
//! which makes the copy diverged, so nothing is synced). A source missing a file its own
//! versions read (damaged, or listed short) must not cost the copy its bytes, so before
//! anything is disposed of, every file a live version reads is taken out ([`unread`]).
//!
//! After its commit point a sync disposes of them as the copy's own maintenance would. On
//! an object store, where readers hold no leases, it retires them (`maintenance::retire`)
//! and deletes what was retired at least the retention ago, so a reader of the copy that
//! opened a version before reads it whole for that long. On a local disk it deletes them
//! under the reader gate when no reader holds any version of the copy, and otherwise keeps
//! them for a later sync to find again. This runs after the commit point: a failure keeps
//! them, and the sync reports it (`SyncReport::leftovers_error`) rather than failing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reeldb_keyframe::pack::{PACK_DIR, pack_id_of};
use reeldb_keyframe::storage::Storage;

use crate::catalog::{CATALOG_DIR, OVERLAY_DIR, records_file_of};
use crate::error::Result;
use crate::lease::ReaderCensus;
use crate::maintenance::retire::{self, Retired};
use crate::maintenance::rewind::log_id;

/// The data files of the store on `storage`: its packs, node logs and records files.
pub(super) fn data_files(storage: &dyn Storage) -> Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    for dir in [CATALOG_DIR, OVERLAY_DIR, PACK_DIR] {
        let names = match storage.list(Path::new(dir)) {
            Ok(names) => names,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let is_data = |name: &str| match dir {
            CATALOG_DIR => records_file_of(name).is_some(),
            OVERLAY_DIR => log_id(name).is_some(),
            _ => pack_id_of(name).is_some(),
        };
        files.extend(
            names
                .into_iter()
                .filter(|n| is_data(n))
                .map(|n| Path::new(dir).join(n)),
        );
    }
    Ok(files)
}

/// `left` less every file a live version reads (`read`: the committed length of each, by
/// path); `read` is called only when `left` is not empty.
pub(super) fn unread<R>(
    left: &[PathBuf],
    read: impl FnOnce() -> Result<BTreeMap<PathBuf, R>>,
) -> Result<Vec<PathBuf>> {
    if left.is_empty() {
        return Ok(Vec::new());
    }
    let read = read()?;
    Ok(left
        .iter()
        .filter(|p| !read.contains_key(*p))
        .cloned()
        .collect())
}

/// What disposing of the leftovers did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Disposed {
    /// Files deleted from the copy.
    pub(super) deleted: usize,
    /// Files kept: retired within their retention, or held by a reader of the copy.
    pub(super) kept: usize,
}

/// Disposes of `left`, files the copy on `dst` holds that its source no longer has (see
/// the module docs); on an object store also deletes what earlier syncs retired at least
/// `retention` ago.
pub(super) fn dispose(
    dst: &dyn Storage,
    left: &[PathBuf],
    retention: Duration,
) -> Result<Disposed> {
    if dst.locks_outlive_their_process() {
        if !left.is_empty() {
            Retired::read(dst)?.retire(dst, left)?;
        }
        let (reclaimed, _) = retire::reclaim(dst, retention)?;
        return Ok(Disposed {
            deleted: reclaimed.files_deleted,
            kept: reclaimed.files_retained,
        });
    }
    if left.is_empty() {
        return Ok(Disposed::default());
    }
    // Readers open under the gate, so none starts reading an old version while it is held;
    // one that opens after reads the index this sync wrote, which reads none of `left`.
    let census = ReaderCensus::take(dst)?;
    if !census.pinned.is_empty() {
        return Ok(Disposed {
            deleted: 0,
            kept: left.len(),
        });
    }
    let (mut dirs, mut deleted) = (BTreeSet::new(), 0);
    for path in left {
        match dst.remove(path) {
            Ok(()) => deleted += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        dirs.insert(path.parent().unwrap_or(Path::new("")));
    }
    for dir in dirs {
        dst.sync_dir(dir)?;
    }
    drop(census);
    Ok(Disposed { deleted, kept: 0 })
}
