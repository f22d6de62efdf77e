//! Verifying an overlay version's deltas: an honest version passes and folds to its bitmaps;
//! an ordinal past the keyframe's rows, a row past the generation's rows, an ordinal shadowed
//! twice, a row retired twice and a damaged blob are caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use reeldb_keyframe::storage::{LocalStorage, Storage};
use reeldb_overlay::verify::{Bounds, verify};
use reeldb_overlay::{
    Change, Error, NodeLog, NodeLogWriter, NodeRef, OverlayVersion, VersionDelta, apply,
};

/// Two commits over a 100-row keyframe. The first: keys 0..40 updated (rows 0..40), keys
/// 40..50 deleted, keys 100..110 new (rows 40..50). The second: keys 0..10 updated again
/// (rows 50..60).
fn two_commits() -> Vec<(OverlayVersion, VersionDelta)> {
    let first = (0u32..50).chain(100..110).map(|k| Change {
        row: match k {
            0..40 => Some(k),
            40..50 => None,
            _ => Some(k - 60),
        },
        replaces: None,
        shadows: (k < 100).then_some(u64::from(k)),
    });
    let (v1, d1) = apply(&OverlayVersion::default(), first);
    let second = (0u32..10).map(|k| Change {
        row: Some(50 + k),
        replaces: Some(k),
        shadows: Some(u64::from(k)),
    });
    let (v2, d2) = apply(&v1, second);
    vec![(v1, d1), (v2, d2)]
}

fn stored(dir: &Path, deltas: &[&VersionDelta]) -> (NodeLog, Vec<NodeRef>) {
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir));
    let mut log = NodeLogWriter::open(storage.clone(), Path::new("g.olog"), None).unwrap();
    let refs = deltas.iter().map(|d| d.store(&mut log).unwrap()).collect();
    log.sync(false).unwrap();
    (NodeLog::new(storage, Path::new("g.olog")), refs)
}

const BOUNDS: Bounds = Bounds {
    batch_rows: 60,
    keyframe_rows: 100,
};

#[test]
fn an_honest_version_verifies_and_folds_to_its_bitmaps() {
    let dir = tempfile::tempdir().unwrap();
    let commits = two_commits();
    let (log, refs) = stored(dir.path(), &[&commits[0].1, &commits[1].1]);
    let got = verify(&log, &refs, BOUNDS).unwrap();
    assert_eq!(got, commits[1].0);
    assert_eq!((got.shadowed.len(), got.live.len()), (50, 50));
    // The second commit shadows nothing new: its keys' ordinals were shadowed by the first.
    assert!(commits[1].1.shadowed.is_empty());
    assert_eq!(commits[1].1.retired.len(), 10);
}

#[test]
fn an_ordinal_past_the_keyframe_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut commits = two_commits();
    commits[1].1.shadowed.insert(100);
    let (log, refs) = stored(dir.path(), &[&commits[0].1, &commits[1].1]);
    let err = verify(&log, &refs, BOUNDS).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { offset, .. } if *offset == refs[1].offset),
        "{err}"
    );
}

#[test]
fn a_row_past_the_generation_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut commits = two_commits();
    commits[1].1.retired.insert(60);
    let (log, refs) = stored(dir.path(), &[&commits[0].1, &commits[1].1]);
    assert!(verify(&log, &refs, BOUNDS).is_err());
}

#[test]
fn an_ordinal_shadowed_twice_or_a_row_retired_twice_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut commits = two_commits();
    commits[1].1.shadowed.insert(3);
    let (log, refs) = stored(dir.path(), &[&commits[0].1, &commits[1].1]);
    let err = verify(&log, &refs, BOUNDS).unwrap_err();
    assert!(err.to_string().contains("again"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let commits = two_commits();
    let (log, refs) = stored(dir.path(), &[&commits[1].1, &commits[1].1]);
    let err = verify(&log, &refs, BOUNDS).unwrap_err();
    assert!(err.to_string().contains("again"), "{err}");
}

#[test]
fn a_damaged_blob_is_caught_by_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let commits = two_commits();
    let (_, refs) = stored(dir.path(), &[&commits[0].1, &commits[1].1]);
    let path = dir.path().join("g.olog");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[refs[1].offset as usize + 10] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let log = NodeLog::new(storage, Path::new("g.olog"));
    let err = verify(&log, &refs, BOUNDS).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}
