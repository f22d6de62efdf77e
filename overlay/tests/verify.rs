//! Verifying an overlay version: an honest version passes; bitmaps that disagree with the
//! trie, entries pointing outside the generation's rows and miscounted entries are caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use reeldb_keyframe::storage::{LocalStorage, Storage};
use reeldb_overlay::verify::{Bounds, verify};
use reeldb_overlay::{
    Change, Error, NodeLog, NodeLogWriter, OverlayRefs, OverlayVersion, RowLocation, apply,
    key_hash,
};

/// A one-commit overlay over a 100-row keyframe: keys 0..40 updated (batch 0, rows 0..40),
/// keys 40..50 deleted; keys 100..110, new, also in batch 0 (rows 40..50).
fn one_commit(dir: &Path) -> (Arc<dyn Storage>, NodeLogWriter, OverlayVersion) {
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir));
    let mut log =
        NodeLogWriter::open(storage.clone(), Path::new("g.hamt"), None, key_hash).unwrap();
    let keys: Vec<Vec<u8>> = (0u16..50)
        .chain(100..110)
        .map(|k| k.to_be_bytes().to_vec())
        .collect();
    let changes: Vec<Change<'_>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let n = u16::from_be_bytes([k[0], k[1]]);
            Change {
                key: k,
                row: (!(40..50).contains(&n)).then(|| RowLocation {
                    batch: 0,
                    row: if n < 40 {
                        u32::from(n)
                    } else {
                        u32::from(n) - 60
                    },
                }),
                shadows: (n < 100).then_some(i as u64),
            }
        })
        .collect();
    let version = apply(&mut log, &OverlayVersion::default(), changes, &|l| l.row).unwrap();
    (storage, log, version)
}

fn stored(log: &mut NodeLogWriter, v: &OverlayVersion) -> OverlayRefs {
    let refs = v.store(log).unwrap();
    log.sync(false).unwrap();
    refs
}

const BOUNDS: Bounds<'static> = Bounds {
    batch_rows: &[50],
    keyframe_rows: 100,
};

#[test]
fn an_honest_version_verifies_and_yields_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, mut log, version) = one_commit(dir.path());
    let refs = stored(&mut log, &version);
    let reader = NodeLog::new(storage, Path::new("g.hamt"), key_hash);
    assert_eq!(verify(&reader, &refs, BOUNDS).unwrap().len(), 60);
}

#[test]
fn a_deletion_vector_that_disagrees_with_the_trie_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut log, mut version) = one_commit(dir.path());
    version.shadowed.remove(7);
    let refs = stored(&mut log, &version);
    let err = verify(log.reader(), &refs, BOUNDS).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { offset, .. } if *offset == refs.shadowed.offset),
        "{err}"
    );
}

#[test]
fn live_rows_that_disagree_with_the_trie_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut log, mut version) = one_commit(dir.path());
    version.live.insert(49_999);
    let refs = stored(&mut log, &version);
    let err = verify(log.reader(), &refs, BOUNDS).unwrap_err();
    assert!(err.to_string().contains("live rows"), "{err}");
}

#[test]
fn entries_outside_the_generation_or_miscounted_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut log, version) = one_commit(dir.path());
    let refs = stored(&mut log, &version);
    let short_batch = Bounds {
        batch_rows: &[45],
        keyframe_rows: 100,
    };
    assert!(verify(log.reader(), &refs, short_batch).is_err());
    let small_keyframe = Bounds {
        batch_rows: &[50],
        keyframe_rows: 30,
    };
    assert!(verify(log.reader(), &refs, small_keyframe).is_err());
    let miscounted = OverlayRefs {
        entries: refs.entries + 1,
        ..refs
    };
    assert!(verify(log.reader(), &miscounted, BOUNDS).is_err());
}
