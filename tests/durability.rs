//! Corruption is detected, never returned as data; torn commits vanish; a failed commit leaves
//! the store as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use common::{build_history as build, ids, orders, read_all, tiny_shape};
use reeldb::storage::LocalStorage;
use reeldb::{Error, Store, WriterOptions};
use reeldb_testkit::{Fault, FaultPlan, FaultyStorage};

#[test]
fn every_flipped_byte_of_a_pack_is_detected_and_never_read_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = build(&path);
    let pack = path.join("packs/00000001.pack");
    let pristine = std::fs::read(&pack).unwrap();
    let (mut flips, mut detected, mut caught_by_verify) = (0, 0, 0);
    for at in (0..pristine.len()).step_by(11) {
        let mut bad = pristine.clone();
        bad[at] ^= 0x20;
        std::fs::write(&pack, &bad).unwrap();
        flips += 1;
        // A fresh handle each time, so no mapping of the old bytes is reused.
        // Reads verify what they decode (a column block's header and mini-blocks), so a flip
        // in a block's framing (its record checksum, a reserved byte) reads back correctly;
        // verify checks every byte of every record.
        match Store::open(&path).and_then(|s| read_all(&s)) {
            Ok(got) => {
                assert_eq!(got, truth, "a flip at byte {at} changed what was read");
                let store = Store::open(&path).unwrap();
                let latest = store.latest_version().unwrap();
                let report = store.verify(1..=latest, &mut |_| ()).unwrap();
                assert!(!report.is_intact(), "verify missed a flip at byte {at}");
                caught_by_verify += 1;
            }
            Err(Error::Corruption { .. }) => detected += 1,
            Err(e) => panic!("a flip at byte {at} gave an unexpected error: {e}"),
        }
    }
    std::fs::write(&pack, &pristine).unwrap();
    assert_eq!(
        detected + caught_by_verify,
        flips,
        "every record in the pack is referenced, so every flip must be caught"
    );
    assert!(
        caught_by_verify * 10 < flips,
        "only block framing escapes reads: {caught_by_verify} of {flips}"
    );
}

/// Every version's rows by key range (which walks the overlay tries), or the first error.
fn range_all(store: &Store) -> Result<Vec<Vec<RecordBatch>>, Error> {
    let latest = store.latest_version()?;
    (1..=latest)
        .map(|v| {
            let t = store.snapshot(v)?.table("orders")?;
            t.range::<reeldb::Key, _>(..)?
                .collect::<Result<Vec<_>, _>>()
        })
        .collect()
}

#[test]
fn every_flipped_byte_of_a_node_log_is_detected_and_never_read_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = build(&path);
    let store = Store::open(&path).unwrap();
    assert!(
        store
            .versions()
            .unwrap()
            .iter()
            .any(|v| v.kind == reeldb::VersionKind::Overlay)
    );
    let ranged = range_all(&store).unwrap();
    drop(store);
    let logs: Vec<PathBuf> = std::fs::read_dir(path.join("overlays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!logs.is_empty());
    let (mut flips, mut detected) = (0, 0);
    for log in logs {
        let pristine = std::fs::read(&log).unwrap();
        for at in (0..pristine.len()).step_by(5) {
            let mut bad = pristine.clone();
            bad[at] ^= 0x08;
            std::fs::write(&log, &bad).unwrap();
            flips += 1;
            let read = Store::open(&path).and_then(|s| Ok((read_all(&s)?, range_all(&s)?)));
            match read {
                Ok((scanned, by_range)) => {
                    assert_eq!(scanned, truth, "a flip at byte {at} changed a scan");
                    assert_eq!(by_range, ranged, "a flip at byte {at} changed a range");
                }
                Err(Error::Corruption { .. }) => detected += 1,
                Err(e) => panic!("a flip at byte {at} gave an unexpected error: {e}"),
            }
        }
        std::fs::write(&log, &pristine).unwrap();
    }
    assert_eq!(
        detected, flips,
        "every node and bitmap is referenced, so every flip must be caught"
    );
}

#[test]
fn a_torn_index_entry_is_ignored_and_cut_off_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = build(&path);
    let idx = path.join("catalog/versions.idx");
    let good = std::fs::read(&idx).unwrap();
    for tail in [
        vec![0u8; 17],
        vec![0xAB; 64],
        good[good.len() - 64..good.len() - 10].to_vec(),
    ] {
        let mut torn = good.clone();
        torn.extend_from_slice(&tail);
        std::fs::write(&idx, &torn).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.latest_version().unwrap(), 4);
        assert_eq!(read_all(&store).unwrap(), truth);
        let report = store.verify(1..=4, &mut |_| {}).unwrap();
        assert!(report.is_intact());
        assert!(
            report.ignored_index_tail.is_some(),
            "verify notes the ignored tail"
        );
        let mut w = store.writer().unwrap();
        assert_eq!(
            std::fs::read(&idx).unwrap(),
            good,
            "the writer cuts the torn tail off"
        );
        let mut tx = w.begin();
        tx.delete("orders", ids(&[150])).unwrap();
        assert_eq!(tx.commit().unwrap(), 5);
        drop(w);
        let report = store.verify(1..=5, &mut |_| {}).unwrap();
        assert_eq!(report.ignored_index_tail, None);
        std::fs::write(&idx, &good).unwrap();
        // Undo version 5 for the next round: its records are garbage past version 4's tail.
        Store::open(&path).unwrap().writer().unwrap();
    }
}

#[test]
fn damage_to_an_index_entry_before_the_last_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    build(&path);
    let idx = path.join("catalog/versions.idx");
    let mut bytes = std::fs::read(&idx).unwrap();
    bytes[64 * 2 + 3] ^= 1;
    std::fs::write(&idx, &bytes).unwrap();
    let store = Store::open(&path).unwrap();
    assert!(matches!(store.snapshot(2), Err(Error::Corruption { .. })));
    assert_eq!(store.latest_version().unwrap(), 4);
    assert!(store.snapshot(4).is_ok());
}

#[test]
fn a_keyframe_commit_that_fails_at_any_write_leaves_the_store_as_it_was() {
    // 200 new rows: more than a quarter of the table, so the commit writes a keyframe.
    fail_at_every_write(reeldb::VersionKind::Keyframe, |tx| {
        tx.upsert("orders", orders(&(500..700).collect::<Vec<_>>(), 9))
            .unwrap();
        tx.delete("orders", ids(&[10, 11])).unwrap();
    });
}

#[test]
fn an_overlay_commit_that_fails_at_any_write_leaves_the_store_as_it_was() {
    // A few rows: the commit is an overlay (its row batch and its version delta).
    fail_at_every_write(reeldb::VersionKind::Overlay, |tx| {
        tx.upsert("orders", orders(&[5, 150, 900], 9)).unwrap();
        tx.delete("orders", ids(&[10, 11])).unwrap();
    });
}

fn fail_at_every_write(kind: reeldb::VersionKind, change: impl Fn(&mut reeldb::Transaction<'_>)) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("s");
    let truth = build(&path);
    let mut failures = 0;
    for budget in 0..400 {
        let (store, plan) = failing_store(&path);
        let mut w = store
            .writer_with(
                WriterOptions::default()
                    .tree_shape(tiny_shape())
                    .min_overlay_rows(0),
            )
            .unwrap();
        fail_after(&plan, budget);
        let mut tx = w.begin();
        change(&mut tx);
        let result = tx.commit();
        drop(w);
        let reopened = Store::open(&path).unwrap();
        match result {
            Err(e) => {
                failures += 1;
                assert!(matches!(e, Error::Keyframe(_) | Error::Overlay(_)), "{e}");
                assert_eq!(reopened.latest_version().unwrap(), 4, "budget {budget}");
                assert_eq!(read_all(&reopened).unwrap(), truth, "budget {budget}");
                // The next writer repairs whatever the failed commit left and commits.
                let mut w = reopened.writer().unwrap();
                let mut tx = w.begin();
                tx.delete("orders", ids(&[12])).unwrap();
                assert_eq!(tx.commit().unwrap(), 5);
                drop(w);
                // Put the store back to four versions for the next round.
                let idx = path.join("catalog/versions.idx");
                let bytes = std::fs::read(&idx).unwrap();
                std::fs::write(&idx, &bytes[..64 * 5]).unwrap();
                Store::open(&path).unwrap().writer().unwrap();
            }
            Ok(v) => {
                assert_eq!(v, 5);
                assert_eq!(reopened.versions().unwrap()[4].kind, kind);
                assert!(failures > 3, "the commit should need several writes");
                break;
            }
        }
    }
}

/// The store at `path` on local storage whose operations fail as the returned plan says
/// (nothing fails until [`fail_after`] is called).
fn failing_store(path: &Path) -> (Store, Arc<FaultPlan>) {
    let storage = FaultyStorage::new(LocalStorage::new(path));
    let plan = storage.plan().clone();
    (Store::open_in(Arc::new(storage), path).unwrap(), plan)
}

/// Lets `n` more storage operations succeed, then fails the next one with EIO (the writer can
/// still clean up after it; `tests/io_faults.rs` also fails every later operation).
fn fail_after(plan: &FaultPlan, n: i64) {
    plan.fail_at(plan.ops() + n as u64, Fault::Eio, false);
}

/// The small history plus a forced keyframe, so its overlay generation is closed.
fn closed_history(path: &Path) -> Vec<RecordBatch> {
    build(path);
    let store = Store::open(path).unwrap();
    let mut w = store
        .writer_with(WriterOptions::default().tree_shape(tiny_shape()))
        .unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[700], 5)).unwrap();
    tx.keyframe();
    tx.commit().unwrap();
    drop(w);
    common::read_all_canonical(&store)
}

#[test]
fn a_compaction_that_fails_at_any_write_leaves_every_version_readable_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    let truth = closed_history(&pristine);
    let mut failures = 0;
    for budget in 0..600 {
        let path = dir.path().join(format!("s{budget}"));
        common::copy_dir(&pristine, &path);
        let (store, plan) = failing_store(&path);
        let mut w = store.writer().unwrap();
        fail_after(&plan, budget);
        let result = w.compact(&mut |_, _| {});
        drop(w);
        drop(store);
        let reopened = Store::open(&path).unwrap();
        assert_eq!(
            common::read_all_canonical(&reopened),
            truth,
            "budget {budget}: {result:?}"
        );
        let report = reopened.verify(1..=5, &mut |_| {}).unwrap();
        assert!(report.is_intact(), "budget {budget}: {:?}", report.versions);
        match result {
            Err(_) => {
                failures += 1;
                // A later compaction finishes the job.
                let mut w = reopened.writer().unwrap();
                w.compact(&mut |_, _| {}).unwrap();
                drop(w);
                assert_eq!(common::read_all_canonical(&reopened), truth);
                assert!(
                    reopened
                        .versions()
                        .unwrap()
                        .iter()
                        .any(|v| v.kind == reeldb::VersionKind::BFrame)
                );
            }
            Ok(r) => {
                assert!(r.generations > 0);
                assert!(failures > 3, "compaction should need several writes");
                return;
            }
        }
    }
    panic!("compaction never succeeded within the budgets tried");
}

#[test]
fn a_rewind_that_fails_at_any_write_leaves_the_store_before_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    let truth = closed_history(&pristine);
    for budget in 0..200 {
        let path = dir.path().join(format!("s{budget}"));
        common::copy_dir(&pristine, &path);
        let (store, plan) = failing_store(&path);
        fail_after(&plan, budget);
        let result = store.rewind(2);
        drop(store);
        let reopened = Store::open(&path).unwrap();
        let now = common::read_all_canonical(&reopened);
        assert!(
            now == truth || now == truth[..2],
            "budget {budget}: {result:?} left {} versions",
            now.len()
        );
        // Whatever happened, the store takes commits again.
        let mut w = reopened.writer().unwrap();
        let mut tx = w.begin();
        tx.delete("orders", ids(&[12])).unwrap();
        assert_eq!(tx.commit().unwrap(), now.len() as u64 + 1);
        if result.is_ok() {
            assert_eq!(now.len(), 2);
            return;
        }
    }
    panic!("the rewind never succeeded within the budgets tried");
}

#[test]
fn a_writer_whose_rewind_failed_goes_on_committing_readable_versions() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    closed_history(&pristine);
    // Compacted, so a rewind to v3 appends v3's record again (v2's rewritten record lies
    // past it) before it swaps the index.
    Store::open(&pristine)
        .unwrap()
        .writer()
        .unwrap()
        .compact(&mut |_, _| {})
        .unwrap();
    for budget in 0..120 {
        let path = dir.path().join(format!("w{budget}"));
        common::copy_dir(&pristine, &path);
        let (store, plan) = failing_store(&path);
        let mut w = store
            .writer_with(WriterOptions::default().tree_shape(tiny_shape()))
            .unwrap();
        fail_after(&plan, budget);
        let result = w.rewind(3);
        plan.heal();
        let committed = {
            let mut tx = w.begin();
            tx.delete("orders", ids(&[12])).unwrap();
            tx.commit()
        };
        drop(w);
        let reopened = Store::open(&path).unwrap();
        if let Ok(v) = committed {
            assert_eq!(reopened.latest_version().unwrap(), v, "budget {budget}");
            assert!(reopened.snapshot(v).is_ok(), "budget {budget}: {result:?}");
        }
        let report = reopened
            .verify(1..=reopened.latest_version().unwrap(), &mut |_| {})
            .unwrap();
        assert!(report.is_intact(), "budget {budget}: {:?}", report.versions);
        if result.is_ok() {
            return;
        }
    }
    panic!("the rewind never succeeded within the budgets tried");
}

#[test]
fn a_clean_that_fails_at_any_write_leaves_every_version_readable_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    let truth = closed_history(&pristine);
    Store::open(&pristine)
        .unwrap()
        .writer()
        .unwrap()
        .compact(&mut |_, _| {})
        .unwrap();
    let mut failures = 0;
    for budget in 0..2000 {
        let path = dir.path().join(format!("c{budget}"));
        common::copy_dir(&pristine, &path);
        let (store, plan) = failing_store(&path);
        let mut w = store.writer().unwrap();
        fail_after(&plan, budget);
        let result = w.clean(0.0);
        drop(w);
        drop(store);
        let reopened = Store::open(&path).unwrap();
        assert_eq!(
            common::read_all_canonical(&reopened),
            truth,
            "budget {budget}: {result:?}"
        );
        let report = reopened.verify(1..=5, &mut |_| {}).unwrap();
        assert!(report.is_intact(), "budget {budget}: {:?}", report.versions);
        // Whatever happened, the store takes commits and cleans again.
        let mut w = reopened.writer().unwrap();
        let mut tx = w.begin();
        tx.delete("orders", ids(&[12])).unwrap();
        tx.commit().unwrap();
        w.clean(0.0).unwrap();
        drop(w);
        assert_eq!(common::read_all_canonical(&reopened)[..5], truth[..]);
        match result {
            Err(_) => failures += 1,
            Ok(c) => {
                assert!(c.copied && failures > 3, "{c:?} after {failures} failures");
                return;
            }
        }
    }
    panic!("the clean never succeeded within the budgets tried");
}
