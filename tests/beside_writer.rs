//! Maintenance beside a live writer (the Rust API; `reel compact` is in beside_writer_cli.rs):
//! compaction, thinning, expiry and cleaning run while another handle keeps committing; every
//! run and every commit succeeds, every version reads exactly as the model says, and what
//! cannot run beside a writer (the pack copy of log cleaning, a rewind) says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::beside::{Model, commit_round, expected, options, scan};
use reeldb::{Error, Expiry, Store};

#[test]
fn maintenance_in_one_thread_and_commits_in_another_interleave_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let other = Store::open(dir.path().join("s")).unwrap();
    // The writer opens first: a log cleaning that found no writer open would take the writer
    // lock for its copy.
    let mut w = store.writer_with(options()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let maintainer = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !done.load(Ordering::SeqCst) {
                let mut m = other.maintenance().unwrap();
                m.compact(&mut |_, _| {}).unwrap();
                m.thin(8).unwrap();
                m.expire(Expiry::KeepLast(100), &[]).unwrap();
                let c = m.clean(0.0).unwrap();
                assert!(c.writer_open && !c.copied);
                runs += 1;
            }
            runs
        })
    };
    let mut model = Model::new();
    let mut models = Vec::new();
    for round in 0..120 {
        commit_round(&mut w, &mut model, round);
        models.push(model.clone());
    }
    done.store(true, Ordering::SeqCst);
    assert!(maintainer.join().unwrap() > 0);
    drop(w);
    for (i, m) in models.iter().enumerate() {
        let v = i as u64 + 1;
        match store.snapshot(v) {
            Ok(_) => assert_eq!(scan(&store, v), expected(m), "v{v}"),
            // Expiry ran beside the writer: it takes only versions 100 below the latest.
            Err(Error::Expired { .. }) => assert!(v + 100 <= 120, "v{v} expired"),
            Err(e) => panic!("v{v}: {e}"),
        }
    }
    // Versions 21 and up are never expired (see above).
    assert!(store.verify(21..=120, &mut |_| {}).unwrap().is_intact());
}

#[test]
fn log_cleaning_skips_its_copy_beside_an_open_writer_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    let mut model = Model::new();
    for round in 0..12 {
        commit_round(&mut w, &mut model, round);
    }
    let before = store.stats().unwrap().bytes_on_disk;
    let c = store.maintenance().unwrap().clean(0.0).unwrap();
    assert!(c.writer_open);
    assert!(!c.copied);
    assert_eq!(store.stats().unwrap().bytes_on_disk, before);
    drop(w);
    let c = store.maintenance().unwrap().clean(0.0).unwrap();
    assert!(!c.writer_open);
    assert!(c.copied);
    assert_eq!(scan(&store, 12), expected(&model));
    // A writer opening after the copy goes on over the new packs.
    let mut w = store.writer_with(options()).unwrap();
    commit_round(&mut w, &mut model, 12);
    assert_eq!(scan(&store, 13), expected(&model));
}

#[test]
fn one_maintenance_at_a_time_and_no_rewind_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    let mut model = Model::new();
    for round in 0..3 {
        commit_round(&mut w, &mut model, round);
    }
    let running = store.maintenance().unwrap();
    assert!(matches!(
        store.maintenance(),
        Err(Error::MaintenanceLocked(_))
    ));
    let rewind = w.rewind(1).unwrap_err();
    assert!(matches!(rewind, Error::MaintenanceLocked(_)), "{rewind}");
    assert_eq!(
        store.latest_version().unwrap(),
        3,
        "the rewind changed nothing"
    );
    drop(running);
    // A rewind needs the writer lock, and its error says so.
    let err = store.rewind(1).unwrap_err();
    assert!(matches!(err, Error::WriterLocked(_)), "{err}");
    assert!(err.to_string().contains("rewind"), "{err}");
    assert_eq!(w.rewind(1).unwrap().to, 1);
}

#[test]
fn thinning_beside_a_writer_leaves_the_latest_version_it_builds_on_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    let mut model = Model::new();
    let mut models = Vec::new();
    for round in 0..14 {
        commit_round(&mut w, &mut model, round);
        models.push(model.clone());
    }
    w.compact(&mut |_, _| {}).unwrap();
    // Rewound into a compacted generation, the latest version reads a B-frame.
    let bframe = store
        .versions()
        .unwrap()
        .iter()
        .filter(|v| v.kind == reeldb::VersionKind::BFrame)
        .map(|v| v.version)
        .max()
        .unwrap();
    w.rewind(bframe).unwrap();
    models.truncate(bframe as usize);
    let mut model = models[bframe as usize - 1].clone();
    let other = Store::open(dir.path().join("s")).unwrap();
    other.maintenance().unwrap().thin(1000).unwrap();
    let v = commit_round(&mut w, &mut model, 40);
    models.push(model.clone());
    assert_eq!(v, bframe + 1);
    // Two keyframes after the rewind, numbered below the purged version the B-frames' next
    // keyframe was written at; thinning beside the writer, which commits on.
    for round in 41..43 {
        let mut tx = w.begin();
        tx.upsert("orders", common::orders(&[round], round as u64))
            .unwrap();
        tx.keyframe();
        tx.commit().unwrap();
        model.insert(round, round as u64);
        models.push(model.clone());
    }
    other.maintenance().unwrap().thin(10).unwrap();
    commit_round(&mut w, &mut model, 43);
    models.push(model);
    for (i, m) in models.iter().enumerate() {
        assert_eq!(scan(&store, i as u64 + 1), expected(m), "v{}", i + 1);
    }
}
