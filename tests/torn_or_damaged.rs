//! Damage told apart from a torn commit: where records.log proves versions were acknowledged,
//! a damaged or shortened index is reported as corruption naming them, and no writer cuts
//! them off; what a crash during the last commit leaves is still taken for one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::beside::{build_store, commit_round, expected, options, scan};
use reeldb::{Error, Store};

const ENTRY: u64 = 64;

fn index(path: &Path) -> std::path::PathBuf {
    path.join("catalog").join("versions.idx")
}

fn files(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["catalog", "packs", "overlays"] {
        let Ok(entries) = std::fs::read_dir(path.join(dir)) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_name() != "LOCK" {
                out.push((
                    e.path().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_flipped_bit_in_the_last_entry_is_corruption_not_a_torn_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let models = build_store(&path, 6);
    let mut bytes = std::fs::read(index(&path)).unwrap();
    let last = (ENTRY * 6) as usize;
    bytes[last + 9] ^= 0x04;
    std::fs::write(index(&path), &bytes).unwrap();
    let before = files(&path);

    let store = Store::open(&path).unwrap();
    let err = store.latest_version().unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains("version 6"), "{err}");
    let err = store.writer().unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert_eq!(files(&path), before, "nothing was cut");

    // Giving the damaged version up is an explicit rewind; the store then goes on.
    assert_eq!(store.rewind(5).unwrap().to, 5);
    for (v, m) in models.iter().enumerate().take(5) {
        assert_eq!(scan(&store, v as u64 + 1), expected(m));
    }
    store.writer().unwrap();
}

#[test]
fn a_zeroed_last_entry_reads_as_the_torn_commit_a_crash_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let models = build_store(&path, 6);
    let mut bytes = std::fs::read(index(&path)).unwrap();
    let last = (ENTRY * 6) as usize;
    bytes[last..].fill(0);
    std::fs::write(index(&path), &bytes).unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.latest_version().unwrap(), 5);
    assert_eq!(scan(&store, 5), expected(&models[4]));
    drop(store.writer().unwrap());
    assert_eq!(std::fs::metadata(index(&path)).unwrap().len(), ENTRY * 6);
}

#[test]
fn an_index_cut_short_names_the_versions_records_log_proves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let models = build_store(&path, 8);
    // Versions 6, 7 and 8 lose their entries: 6 and 7 provably acknowledged, 8 not.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(index(&path))
        .unwrap();
    f.set_len(ENTRY * 6).unwrap();
    drop(f);
    let before = files(&path);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.latest_version().unwrap(), 5);
    let report = store.verify(1..=5, &mut |_| {}).unwrap();
    assert_eq!(report.lost_versions, Some((6, 7)));
    assert!(!report.is_intact());
    let err = store.writer().unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains("versions 6 to 7"), "{err}");
    assert_eq!(files(&path), before, "nothing was cut");
    // Maintenance would bury the proof under a new copy of the latest record: it refuses.
    let err = store.maintenance().unwrap().clean(0.0).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    // So does a catalog rewrite, which would leave the proof in the retired file.
    let err = store
        .maintenance()
        .unwrap()
        .rewrite_catalog(0.0)
        .unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let report = store.verify(1..=5, &mut |_| {}).unwrap();
    assert_eq!(
        report.lost_versions,
        Some((6, 7)),
        "the proof is still there"
    );

    // A rewind to the last indexed version accepts the loss; writing goes on from there.
    store.rewind(5).unwrap();
    let report = store.verify(1..=5, &mut |_| {}).unwrap();
    assert_eq!(report.lost_versions, None);
    let mut w = store.writer_with(options()).unwrap();
    let mut model = models[4].clone();
    assert_eq!(commit_round(&mut w, &mut model, 40), 6);
    assert_eq!(scan(&store, 6), expected(&model));
}

#[test]
fn a_rewind_leaves_no_proof_of_lost_versions_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let models = build_store(&path, 8);
    let store = Store::open(&path).unwrap();
    store.rewind(3).unwrap();
    assert_eq!(
        store.verify(1..=3, &mut |_| {}).unwrap().lost_versions,
        None
    );
    let mut w = store.writer_with(options()).unwrap();
    let mut model = models[2].clone();
    commit_round(&mut w, &mut model, 50);
    assert_eq!(scan(&store, 4), expected(&model));
    assert!(matches!(
        store.snapshot(5),
        Err(Error::UnknownVersion { .. })
    ));
}
