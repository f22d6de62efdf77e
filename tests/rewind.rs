//! Rewinding: versions above the target vanish atomically, the next commit follows the
//! target, nothing at or below it changes, and no live reader, in this process or another,
//! ever has a version purged under it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use arrow::array::RecordBatch;
use common::{ids, orders, orders_schema, read_all, tiny_shape};
use reeldb::{Error, ScanOptions, Store, VersionKind, WriterOptions};

fn options() -> WriterOptions {
    // Small packs, so purged versions own whole pack files whose ids new commits reuse.
    WriterOptions::default()
        .tree_shape(tiny_shape())
        .keyframe_every(3)
        .max_pack_len(4096)
}

/// Commit `round` of a deterministic history: 30 upserts around a moving window, a delete.
fn commit_round(w: &mut reeldb::Writer, round: u64) -> u64 {
    let mut tx = w.begin();
    if round == 0 {
        tx.create_table("orders", orders_schema(), &["id"]).unwrap();
        tx.upsert("orders", orders(&(0..200).collect::<Vec<_>>(), 0))
            .unwrap();
    } else {
        let lo = (round as i64 * 37) % 180;
        tx.upsert("orders", orders(&(lo..lo + 30).collect::<Vec<_>>(), round))
            .unwrap();
        tx.delete("orders", ids(&[round as i64 + 200, (lo + 40) % 200]))
            .unwrap();
    }
    tx.source_offset(1000 + round);
    tx.commit().unwrap()
}

/// A store with `n` versions (rounds 0..n) mixing keyframes and overlays.
fn history(path: &Path, n: u64) -> Vec<Vec<RecordBatch>> {
    let store = Store::create(path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..n {
        commit_round(&mut w, round);
    }
    drop(w);
    read_all(&store).unwrap()
}

fn scan(store: &Store, v: u64) -> Vec<RecordBatch> {
    let t = store.snapshot(v).unwrap().table("orders").unwrap();
    t.scan(&ScanOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn rewinding_to_any_version_then_refilling_gives_back_the_same_history() {
    let dir = tempfile::tempdir().unwrap();
    let truth = history(&dir.path().join("truth"), 9);
    let kinds: Vec<VersionKind> = Store::open(dir.path().join("truth"))
        .unwrap()
        .versions()
        .unwrap()
        .iter()
        .map(|v| v.kind)
        .collect();
    assert!(kinds.contains(&VersionKind::Overlay) && kinds.contains(&VersionKind::Keyframe));
    for to in 0..=9u64 {
        let path = dir.path().join(format!("s{to}"));
        history(&path, 9);
        let store = Store::open(&path).unwrap();
        let mut w = store.writer_with(options()).unwrap();
        let r = w.rewind(to).unwrap();
        assert_eq!((r.to, r.purged), (to, 9 - to));
        assert_eq!(r.source_offset, to.checked_sub(1).map(|round| 1000 + round));
        assert_eq!(store.latest_version().unwrap(), to);
        assert!(matches!(
            store.snapshot(to + 1),
            Err(Error::UnknownVersion { .. })
        ));
        for round in to..9 {
            assert_eq!(
                commit_round(&mut w, round),
                round + 1,
                "the next commit follows"
            );
        }
        drop(w);
        // A fresh handle and the handle that saw the rewind both read the refilled history.
        for s in [Store::open(&path).unwrap(), store] {
            assert_eq!(read_all(&s).unwrap(), truth, "rewound to {to} and refilled");
            let report = s.verify(1..=9, &mut |_| {}).unwrap();
            assert!(report.is_intact(), "{:?}", report.versions);
        }
    }
}

#[test]
fn a_rewind_is_refused_while_this_process_reads_a_version_it_would_purge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = history(&path, 6);
    let store = Store::open(&path).unwrap();
    let table = store.snapshot(5).unwrap().table("orders").unwrap();
    let range = table.range::<reeldb::Key, _>(..).unwrap();
    drop(table);
    // The snapshot and the table are gone; the open range still holds version 5.
    match store.rewind(3) {
        Err(Error::VersionsInUse { versions }) => assert_eq!(versions, vec![5]),
        other => panic!("expected VersionsInUse, got {other:?}"),
    }
    assert_eq!(
        read_all(&store).unwrap(),
        truth,
        "a refused rewind changes nothing"
    );
    let kept = store.snapshot(2).unwrap();
    drop(range);
    let r = store.rewind(3).unwrap();
    assert_eq!(r.purged, 3);
    assert_eq!(
        scan(&store, 2),
        truth[1],
        "a held version below the target stays readable"
    );
    drop(kept);
}

#[test]
fn a_lease_left_by_a_dead_process_does_not_hold_a_rewind_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    history(&path, 4);
    // Leave a lease as a reader killed while holding version 4 would: written, not locked.
    {
        let store = Store::open(&path).unwrap();
        let snap = store.snapshot(4).unwrap();
        let lease = std::fs::read_dir(path.join("leases"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "lease"))
            .unwrap();
        std::fs::copy(&lease, path.join("leases/4242-dead.lease")).unwrap();
        drop(snap);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.rewind(2).unwrap().purged, 2);
    assert!(
        !path.join("leases/4242-dead.lease").exists(),
        "stale leases are removed"
    );
}

#[test]
fn handles_opened_before_a_rewind_read_what_was_written_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    history(&path, 5);
    let early = Store::open(&path).unwrap();
    read_all(&early).unwrap();
    let writer_store = Store::open(&path).unwrap();
    let mut w = writer_store.writer_with(options()).unwrap();
    w.rewind(1).unwrap();
    // New content reuses the purged positions: a second table with another schema, whose
    // definition lands where a purged record was.
    let mut tx = w.begin();
    tx.create_table("other", common::ids(&[1]).schema(), &["id"])
        .unwrap();
    tx.upsert("other", common::ids(&[7, 8, 9])).unwrap();
    tx.upsert("orders", orders(&[500, 501], 9)).unwrap();
    let v2 = tx.commit().unwrap();
    assert_eq!(v2, 2);
    drop(w);
    let fresh = Store::open(&path).unwrap();
    assert_eq!(read_all(&early).unwrap(), read_all(&fresh).unwrap());
    let other = early.snapshot(2).unwrap().table("other").unwrap();
    assert_eq!(other.num_rows(), 3);
}

/// Run as a child by the test below: holds a snapshot of a version until stdin closes.
#[test]
fn child_holds_a_snapshot() {
    let (Ok(path), Ok(version)) = (
        std::env::var("REELDB_HOLD_STORE"),
        std::env::var("REELDB_HOLD_VERSION"),
    ) else {
        return;
    };
    let store = Store::open(path).unwrap();
    let _snap = store.snapshot(version.parse().unwrap()).unwrap();
    // The harness prints on the same line ("test child_holds_a_snapshot ... "): a marker.
    println!("<holding>");
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

#[test]
fn a_reader_in_another_process_holds_a_rewind_back_until_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = history(&path, 5);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_snapshot",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("REELDB_HOLD_STORE", &path)
        .env("REELDB_HOLD_VERSION", "4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("<holding>")),
        "the child never got ready"
    );
    let store = Store::open(&path).unwrap();
    match store.rewind(2) {
        Err(Error::VersionsInUse { versions }) => assert_eq!(versions, vec![4]),
        other => panic!("expected VersionsInUse, got {other:?}"),
    }
    assert_eq!(read_all(&store).unwrap(), truth);
    // Rewinding above what the child holds is fine.
    assert_eq!(store.rewind(4).unwrap().purged, 1);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(store.rewind(2).unwrap().purged, 2);
    assert_eq!(read_all(&store).unwrap(), truth[..2].to_vec());
}

fn one_column(name: &str, values: &[i64]) -> RecordBatch {
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, false)]));
    RecordBatch::try_new(
        schema,
        vec![std::sync::Arc::new(arrow::array::Int64Array::from(
            values.to_vec(),
        ))],
    )
    .unwrap()
}

#[test]
fn a_writer_opened_on_an_old_handle_sees_tables_created_after_a_rewind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    history(&path, 2);
    let early = Store::open(&path).unwrap();
    // Version 3 creates table "b" keyed on "xx"; the early handle loads its definition.
    {
        let mut w = early.writer_with(options()).unwrap();
        let mut tx = w.begin();
        tx.create_table("b", one_column("xx", &[]).schema(), &["xx"])
            .unwrap();
        tx.upsert("b", one_column("xx", &[1])).unwrap();
        tx.commit().unwrap();
        let mut tx = w.begin();
        tx.upsert("b", one_column("xx", &[2])).unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(early.snapshot(4).unwrap().table("b").unwrap().num_rows(), 2);
    // Another handle rewinds and creates "b" again, keyed on "yy": its definition lands
    // where the purged one was.
    let other = Store::open(&path).unwrap();
    let mut w = other.writer_with(options()).unwrap();
    w.rewind(2).unwrap();
    let mut tx = w.begin();
    tx.create_table("b", one_column("yy", &[]).schema(), &["yy"])
        .unwrap();
    tx.commit().unwrap();
    drop(w);
    // The early handle's writer must use the new definition.
    let mut w = early.writer_with(options()).unwrap();
    let mut tx = w.begin();
    tx.upsert("b", one_column("yy", &[7])).unwrap();
    assert_eq!(tx.commit().unwrap(), 4);
    let t = early.snapshot(4).unwrap().table("b").unwrap();
    assert_eq!(t.key_columns(), ["yy".to_string()]);
    assert_eq!(t.num_rows(), 1);
}
