//! A bounded catalog: after an expiry, a catalog rewrite keeps only what live versions read
//! (a new records file), every live version reads as before, expired ones stay expired, and
//! writers, rewinds and readers go on across it, in this process or beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::beside::{Model, build_store, commit_round, expected, options, scan};
use reeldb::{Error, Expiry, Store};

fn records_files(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path.join("catalog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("records"))
        .collect();
    names.sort();
    names
}

fn records_bytes(path: &Path) -> u64 {
    records_files(path)
        .iter()
        .map(|n| {
            std::fs::metadata(path.join("catalog").join(n))
                .unwrap()
                .len()
        })
        .sum()
}

#[test]
fn expiring_all_but_ten_versions_shrinks_the_catalog_to_what_they_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let models = build_store(&path, 400);
    let store = Store::open(&path).unwrap();
    let before = records_bytes(&path);
    let when = store.versions().unwrap()[395].committed_at;

    let mut m = store.maintenance().unwrap();
    let expired = m.expire(Expiry::KeepLast(10), &[]).unwrap();
    assert_eq!(expired.len(), 390);
    let r = m.rewrite_catalog(0.5).unwrap();
    drop(m);
    assert!(r.rewritten);
    assert_eq!(r.files_deleted, 1);
    assert_eq!(records_files(&path), vec!["records-1.log".to_string()]);
    let after = records_bytes(&path);
    assert!(
        after * 100 <= before * 4,
        "records {after} bytes after, {before} before"
    );

    for v in 1..=400u64 {
        match store.snapshot(v) {
            Ok(_) => assert_eq!(scan(&store, v), expected(&models[v as usize - 1])),
            Err(Error::Expired { .. }) => assert!(v <= 390, "v{v}"),
            Err(e) => panic!("v{v}: {e}"),
        }
    }
    assert_eq!(store.versions().unwrap().len(), 10);
    assert_eq!(store.snapshot_as_of(when).unwrap().version(), 396);
    assert!(store.verify(391..=400, &mut |_| {}).unwrap().is_intact());

    // A writer opened afterwards goes on in the new records file, also after reopening.
    let mut w = store.writer_with(options()).unwrap();
    let mut model = models[399].clone();
    assert_eq!(commit_round(&mut w, &mut model, 400), 401);
    drop(w);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(scan(&reopened, 401), expected(&model));
    assert!(reopened.stats().unwrap().versions > 0);
}

#[test]
fn a_writer_open_beside_the_rewrite_commits_on_and_the_old_file_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let models = build_store(&path, 60);
    let store = Store::open(&path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    let mut model = models[59].clone();

    let other = Store::open(&path).unwrap();
    let mut m = other.maintenance().unwrap();
    m.expire(Expiry::KeepLast(5), &[]).unwrap();
    let r = m.rewrite_catalog(0.5).unwrap();
    drop(m);
    assert!(r.rewritten);
    assert_eq!(r.files_held, 1, "the writer may still read the old file");

    // The writer's latest record moved to the new file: its next commits land there.
    for round in 60..64 {
        commit_round(&mut w, &mut model, round);
    }
    assert_eq!(scan(&other, 64), expected(&model));
    drop(w);
    let r = other.maintenance().unwrap().rewrite_catalog(0.5).unwrap();
    assert_eq!(r.files_deleted, 1);
    assert_eq!(records_files(&path), vec!["records-1.log".to_string()]);
    assert_eq!(scan(&Store::open(&path).unwrap(), 64), expected(&model));
}

#[test]
fn rewinds_work_across_a_rewrite_down_to_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let models = build_store(&path, 30);
    let store = Store::open(&path).unwrap();
    let mut m = store.maintenance().unwrap();
    m.expire(Expiry::KeepLast(10), &[]).unwrap();
    assert!(m.rewrite_catalog(0.5).unwrap().rewritten);
    drop(m);

    store.rewind(25).unwrap();
    assert_eq!(scan(&store, 25), expected(&models[24]));
    assert!(matches!(store.rewind(15), Err(Error::Expired { .. })));
    store.rewind(0).unwrap();
    assert_eq!(store.latest_version().unwrap(), 0);
    let mut w = store.writer_with(options()).unwrap();
    let mut model = Model::new();
    commit_round(&mut w, &mut model, 0);
    commit_round(&mut w, &mut model, 1);
    assert_eq!(scan(&store, 2), expected(&model));
}
