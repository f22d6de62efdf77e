//! `Store::verify` reads everything a version references. A healthy store is intact at every
//! version; damage anywhere is reported against the versions that reach it, and the version
//! verify names as the newest intact one reads back exactly as written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use common::{build_history, read_all};
use reeldb::{Store, VerifyReport};

fn verify_all(store: &Store) -> VerifyReport {
    let latest = store.latest_version().unwrap();
    store.verify(1..=latest, &mut |_| {}).unwrap()
}

/// Flips every `step`-th byte of `file` in turn and checks what verify says each time.
fn flip_and_verify(path: &Path, file: &Path, step: usize, truth: &[Vec<RecordBatch>]) -> usize {
    let pristine = std::fs::read(file).unwrap();
    let mut flips = 0;
    for at in (0..pristine.len()).step_by(step) {
        let mut bad = pristine.clone();
        bad[at] ^= 0x10;
        std::fs::write(file, &bad).unwrap();
        flips += 1;
        let store = Store::open(path).unwrap();
        let report = verify_all(&store);
        assert!(
            !report.is_intact(),
            "a flip at byte {at} of {} went unreported",
            file.display()
        );
        if let Some(v) = report.newest_intact {
            let t = store.snapshot(v).unwrap().table("orders").unwrap();
            let got: Vec<RecordBatch> = t
                .scan(&reeldb::ScanOptions::new())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(got, truth[v as usize - 1], "v{v} was called intact");
        }
    }
    std::fs::write(file, &pristine).unwrap();
    flips
}

#[test]
fn a_healthy_store_is_intact_at_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    build_history(&path);
    let store = Store::open(&path).unwrap();
    let report = verify_all(&store);
    assert!(report.is_intact(), "{:?}", report.versions);
    assert_eq!(report.newest_intact, Some(4));
    assert_eq!(report.versions.len(), 4);
    assert!(
        report.leaves_checked > 10,
        "tiny leaves: the keyframe has many"
    );
}

#[test]
fn verify_refuses_versions_the_store_does_not_have() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    build_history(&path);
    let store = Store::open(&path).unwrap();
    #[allow(clippy::reversed_empty_ranges)]
    for bad in [0..=2, 3..=5, 3..=2] {
        assert!(matches!(
            store.verify(bad, &mut |_| {}),
            Err(reeldb::Error::UnknownVersion { .. })
        ));
    }
}

#[test]
fn damage_to_a_pack_is_reported_and_the_newest_intact_version_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = build_history(&path);
    let flips = flip_and_verify(&path, &path.join("packs/00000001.pack"), 29, &truth);
    assert!(flips > 50);
}

#[test]
fn damage_to_a_node_log_is_reported_and_the_newest_intact_version_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = build_history(&path);
    let logs: Vec<PathBuf> = std::fs::read_dir(path.join("overlays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!logs.is_empty());
    for log in logs {
        flip_and_verify(&path, &log, 7, &truth);
    }
}

#[test]
fn damage_to_the_catalog_is_reported_against_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = build_history(&path);
    let records = path.join("catalog/records.log");
    let pristine = std::fs::read(&records).unwrap();
    // The last bytes belong to the newest version's record.
    let mut bad = pristine.clone();
    let at = bad.len() - 3;
    bad[at] ^= 0x01;
    std::fs::write(&records, &bad).unwrap();
    let store = Store::open(&path).unwrap();
    let report = verify_all(&store);
    assert!(report.versions[3].problem.is_some());
    assert_eq!(report.newest_intact, Some(3));
    assert!(read_all(&store).is_err());
    let t = store.snapshot(3).unwrap().table("orders").unwrap();
    let got: Vec<RecordBatch> = t
        .scan(&reeldb::ScanOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, truth[2]);
}
