//! Opening a generation's node log for its first commit: a sound log already at the name (one a
//! rewind purged, whose readers may still read it) keeps its frames and is appended after; a
//! log whose header is damaged is replaced; a missing one is created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use reeldb_keyframe::storage::{LocalStorage, Storage};
use reeldb_overlay::log::{LOG_HEADER_LEN, LOG_MAGIC};
use reeldb_overlay::{NodeLog, NodeLogWriter, NodeRef, VersionDelta};

/// A delta shadowing `ordinals`.
fn delta(ordinals: &[u64]) -> VersionDelta {
    let mut d = VersionDelta::default();
    d.shadowed.extend(ordinals.iter().copied());
    d
}

/// Stores `d` in `log` and syncs it, returning its reference.
fn commit(log: &mut NodeLogWriter, d: &VersionDelta) -> NodeRef {
    let r = d.store(log).unwrap();
    log.sync(true).unwrap();
    r
}

#[test]
fn a_first_commit_over_a_sound_log_left_at_its_name_appends_after_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let path = Path::new("t1-g3.olog");
    let purged = delta(&[1, 2, 3]);
    let old = commit(
        &mut NodeLogWriter::open(storage.clone(), path, None).unwrap(),
        &purged,
    );
    let old_len = storage.len(path).unwrap();

    let mut log = NodeLogWriter::open_keeping(storage.clone(), path).unwrap();
    let refilled = delta(&[7]);
    let new = commit(&mut log, &refilled);

    assert!(new.offset >= old_len, "appended after the kept frames");
    let reader = NodeLog::new(storage, path);
    assert_eq!(VersionDelta::load(&reader, old).unwrap(), purged);
    assert_eq!(VersionDelta::load(&reader, new).unwrap(), refilled);
}

#[test]
fn a_first_commit_over_a_log_with_a_damaged_header_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let path = Path::new("t1-g3.olog");
    let mut damaged = storage.open_append(path).unwrap();
    damaged
        .append(b"REELOLOX\x06\0\0\0\0\0\0\0 and a torn frame")
        .unwrap();
    damaged.sync().unwrap();
    drop(damaged);

    let mut log = NodeLogWriter::open_keeping(storage.clone(), path).unwrap();
    let d = delta(&[4, 5]);
    let r = commit(&mut log, &d);

    assert_eq!(r.offset, LOG_HEADER_LEN, "the log starts afresh");
    assert_eq!(storage.read_at(path, 0, 8).unwrap().as_ref(), LOG_MAGIC);
    let reader = NodeLog::new(storage, path);
    assert_eq!(VersionDelta::load(&reader, r).unwrap(), d);
}

#[test]
fn a_first_commit_with_no_log_at_its_name_creates_one() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let path = Path::new("t2-g1.olog");
    let d = delta(&[9]);
    let r = commit(
        &mut NodeLogWriter::open_keeping(storage.clone(), path).unwrap(),
        &d,
    );
    assert_eq!(r.offset, LOG_HEADER_LEN);
    assert_eq!(
        VersionDelta::load(&NodeLog::new(storage, path), r).unwrap(),
        d
    );
}
