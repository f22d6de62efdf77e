//! A store on an object store (`ObjectStorage` over object_store's in-memory store): commits,
//! reads at every version from another handle, verification, one writer at a time, readers
//! that write nothing, rewinds beside a reader of what they purge, maintenance that
//! retires what it no longer needs for a retention period before deleting it, and commits
//! whose listings do not grow with the number of versions.
#![cfg(feature = "object-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{canonical, orders, read_all_canonical, write_history};
use reeldb::object_storage::ObjectStorage;
use reeldb::object_storage::object_store::memory::InMemory;
use reeldb::{Error, Store};

/// A handle on the store under `prefix` of `memory`, as a process of its own would open it.
fn open(memory: &Arc<InMemory>, prefix: &str) -> Store {
    Store::open_in(
        Arc::new(ObjectStorage::new(memory.clone(), prefix).unwrap()),
        Path::new(&format!("memory:///{prefix}")),
    )
    .unwrap()
}

/// A store of four versions (a keyframe, then overlays of upserts and a delete each) on
/// `memory` under `prefix`, and a local store written the same way.
fn both_stores(memory: &Arc<InMemory>, prefix: &str, local: &Path) -> (Store, Store) {
    let remote = Store::create_in(
        Arc::new(ObjectStorage::new(memory.clone(), prefix).unwrap()),
        Path::new(&format!("memory:///{prefix}")),
    )
    .unwrap();
    let local = Store::create(local).unwrap();
    write_history(&remote);
    write_history(&local);
    (remote, local)
}

#[test]
fn every_version_committed_to_an_object_store_reads_as_on_a_local_disk() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (_, local) = both_stores(&memory, "warehouse/orders", &dir.path().join("s"));
    let reopened = open(&memory, "warehouse/orders");
    assert_eq!(reopened.latest_version().unwrap(), 4);
    assert_eq!(read_all_canonical(&reopened), read_all_canonical(&local));
    let t = reopened.snapshot(2).unwrap().table("orders").unwrap();
    let row = t
        .get(45i64)
        .unwrap()
        .expect("key 45 was upserted at version 2");
    let local_row = local
        .snapshot(2)
        .unwrap()
        .table("orders")
        .unwrap()
        .get(45i64)
        .unwrap()
        .unwrap();
    assert_eq!(canonical(&[row]), canonical(&[local_row]));
    assert!(t.get(1i64).unwrap().is_none(), "key 1 was deleted at 2");
    let report = reopened.verify(1..=4, &mut |_| {}).unwrap();
    assert!(report.is_intact(), "{report:?}");
}

/// The names of the objects under `prefix` of `memory`, sorted.
fn objects_under(memory: &InMemory, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    use reeldb::object_storage::object_store::ObjectStore;
    let prefix = reeldb::object_storage::object_store::path::Path::from(prefix);
    let mut names: Vec<String> = futures::executor::block_on(
        memory
            .list(Some(&prefix))
            .map_ok(|m| m.location.to_string())
            .try_collect::<Vec<_>>(),
    )
    .unwrap();
    names.sort();
    names
}

#[test]
fn each_commit_adds_its_index_entry_as_a_segment_of_its_own() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    both_stores(&memory, "s", &dir.path().join("s"));
    let entries: Vec<String> = (0..=4u64)
        .map(|v| format!("s/catalog/versions.idx/{:016x}", 64 * v))
        .collect();
    assert_eq!(objects_under(&memory, "s/catalog/versions.idx"), entries);
}

#[test]
fn a_second_writer_on_the_same_object_store_is_refused_while_the_first_is_open() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (remote, _) = both_stores(&memory, "s", &dir.path().join("s"));
    let held = remote.writer().unwrap();
    let other = open(&memory, "s");
    assert!(matches!(other.writer(), Err(Error::WriterLocked(_))));
    drop(held);
    let mut w = other.writer().unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[1000], 9)).unwrap();
    assert_eq!(tx.commit().unwrap(), 5);
}

/// Deletes the store's writer lock object under `prefix`, as an operator would by hand.
fn delete_writer_lock(memory: &InMemory, prefix: &str) {
    use reeldb::object_storage::object_store::ObjectStoreExt;
    let key = reeldb::object_storage::object_store::path::Path::from(format!("{prefix}/LOCK/lock"));
    futures::executor::block_on(memory.delete(&key)).unwrap();
}

#[test]
fn a_writer_that_lost_the_store_to_another_gets_writer_conflict_and_commits_nothing() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    both_stores(&memory, "s", &dir.path().join("s"));
    let short_lease = ObjectStorage::new(memory.clone(), "s")
        .unwrap()
        .with_lock_ttl(std::time::Duration::from_secs(1));
    let stalled_store = Store::open_in(Arc::new(short_lease), Path::new("memory:///s")).unwrap();
    let mut stalled = stalled_store.writer().unwrap();
    // The stalled writer's lock object goes (as a lapsed lease would): another writer takes
    // the store and commits version 5.
    delete_writer_lock(&memory, "s");
    let other = open(&memory, "s");
    let mut w = other.writer().unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[1000], 9)).unwrap();
    assert_eq!(tx.commit().unwrap(), 5);
    let before = read_all_canonical(&open(&memory, "s"));
    // The stalled writer's next renewal (a quarter of its lease on) finds the lock taken.
    std::thread::sleep(std::time::Duration::from_millis(600));

    let mut tx = stalled.begin();
    tx.upsert("orders", orders(&[2000], 9)).unwrap();
    let e = tx.commit().unwrap_err();
    assert!(matches!(e, Error::WriterConflict { version: 5, .. }), "{e}");
    let mut tx = stalled.begin();
    tx.upsert("orders", orders(&[2001], 9)).unwrap();
    assert!(matches!(tx.commit(), Err(Error::Poisoned)));

    let after = open(&memory, "s");
    assert_eq!(after.latest_version().unwrap(), 5);
    assert_eq!(
        read_all_canonical(&after),
        before,
        "the other writer's store, unchanged"
    );
    let report = after.verify(1..=5, &mut |_| {}).unwrap();
    assert!(report.is_intact(), "{report:?}");
    // The other writer goes on.
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[1001], 9)).unwrap();
    assert_eq!(tx.commit().unwrap(), 6);
}

#[test]
fn a_writer_whose_lease_lapsed_commits_nothing_even_when_no_one_took_over() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    both_stores(&memory, "s", &dir.path().join("s"));
    let storage = ObjectStorage::new(memory.clone(), "s")
        .unwrap()
        .with_lock_ttl(std::time::Duration::from_secs(1));
    let store = Store::open_in(Arc::new(storage), Path::new("memory:///s")).unwrap();
    let mut w = store.writer().unwrap();
    delete_writer_lock(&memory, "s");
    // The next renewal (a quarter of the lease on) finds the object gone.
    std::thread::sleep(std::time::Duration::from_millis(800));
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[2000], 9)).unwrap();
    let e = tx.commit().unwrap_err();
    assert!(matches!(e, Error::WriterConflict { version: 5, .. }), "{e}");
    assert_eq!(open(&memory, "s").latest_version().unwrap(), 4);
}

#[test]
fn stores_under_two_prefixes_of_one_bucket_are_apart() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    both_stores(&memory, "a", &dir.path().join("a"));
    let b = Store::create_in(
        Arc::new(ObjectStorage::new(memory.clone(), "b").unwrap()),
        Path::new("memory:///b"),
    )
    .unwrap();
    assert_eq!(b.latest_version().unwrap(), 0);
    assert_eq!(open(&memory, "a").latest_version().unwrap(), 4);
}

#[test]
fn readers_of_an_object_store_write_nothing_not_even_to_verify() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    both_stores(&memory, "s", &dir.path().join("s"));
    let before = objects_under(&memory, "s");
    let storage = ObjectStorage::new(memory.clone(), "s").unwrap();
    let reader = Store::open_in(Arc::new(storage.clone()), Path::new("memory:///s")).unwrap();
    let snapshots: Vec<_> = (1..=4).map(|v| reader.snapshot(v).unwrap()).collect();
    for s in &snapshots {
        s.table("orders").unwrap().get(45i64).unwrap();
    }
    read_all_canonical(&reader);
    let report = reader.verify(1..=4, &mut |_| {}).unwrap();
    assert!(report.is_intact(), "{report:?}");
    let asked = storage.requests();
    assert_eq!(asked.writes(), 0, "{asked:?}");
    assert!(asked.gets > 0, "{asked:?}");
    assert_eq!(
        objects_under(&memory, "s"),
        before,
        "no lease, no lock, no file"
    );
}

/// Two versions of other rows than `write_history`'s third and fourth: what a store
/// rewound to version 2 is refilled with.
fn refill(store: &Store) {
    let mut w = store
        .writer_with(
            reeldb::WriterOptions::default()
                .tree_shape(common::tiny_shape())
                .min_overlay_rows(0),
        )
        .unwrap();
    for round in [7u64, 8] {
        let mut tx = w.begin();
        let lo = round as i64 * 11;
        tx.upsert("orders", orders(&(lo..lo + 40).collect::<Vec<_>>(), round))
            .unwrap();
        tx.delete("orders", common::ids(&[lo - 1])).unwrap();
        tx.commit().unwrap();
    }
}

#[test]
fn a_rewind_on_an_object_store_purges_the_versions_above_and_the_store_refills_from_there() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (remote, local) = both_stores(&memory, "s", &dir.path().join("s"));
    // A reader in another process holds version 4, which the rewind purges: it publishes
    // nothing there, so the rewind cannot wait for it.
    let holder = open(&memory, "s");
    let held = holder.snapshot(4).unwrap();
    let held_rows = try_rows_of(&held, "orders").unwrap();

    let rewound = remote.rewind(2).unwrap();
    assert_eq!((rewound.to, rewound.purged), (2, 2));
    local.rewind(2).unwrap();
    let fresh = open(&memory, "s");
    assert_eq!(fresh.latest_version().unwrap(), 2);
    assert_eq!(fresh.latest().unwrap().version(), 2);
    for v in [3, 4] {
        assert!(
            matches!(fresh.snapshot(v), Err(Error::UnknownVersion { .. })),
            "version {v} is purged, its head with it"
        );
    }
    // Heads are named by u64::MAX - v: versions 1 and 2 are left.
    let heads = objects_under(&memory, "s/catalog/heads");
    let left: Vec<u64> = heads
        .iter()
        .filter_map(|o| o.rsplit('/').nth(1))
        .map(|name| u64::MAX - u64::from_str_radix(name, 16).unwrap())
        .collect();
    assert_eq!(left, [2, 1], "{heads:?}");

    refill(&remote);
    refill(&local);
    for reader in [open(&memory, "s"), holder.clone()] {
        assert_eq!(reader.latest_version().unwrap(), 4);
        for v in 1..=4 {
            assert_eq!(rows_at(&reader, v), rows_at(&local, v), "version {v}");
        }
    }
    assert_ne!(
        rows_at(&local, 4),
        held_rows,
        "version 4 holds other rows now"
    );
    // The reader of the purged version reads it as it was, or fails: never other rows.
    if let Ok(rows) = try_rows_of(&held, "orders") {
        assert_eq!(rows, held_rows);
    }
    assert!(
        open(&memory, "s")
            .verify(1..=4, &mut |_| {})
            .unwrap()
            .is_intact()
    );

    // Through the writer too.
    let mut w = remote.writer().unwrap();
    assert_eq!(w.rewind(3).unwrap().purged, 1);
    drop(w);
    let mut lw = local.writer().unwrap();
    lw.rewind(3).unwrap();
    drop(lw);
    assert_eq!(open(&memory, "s").latest_version().unwrap(), 3);
    assert_eq!(rows_at(&open(&memory, "s"), 3), rows_at(&local, 3));
}

/// A table "extra" of three Int64 columns, `first` and `second` after the key.
fn extra(first: &str, second: &str, ids: std::ops::Range<i64>) -> arrow::array::RecordBatch {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(first, DataType::Int64, false),
        Field::new(second, DataType::Int64, false),
    ]);
    let column = |f: fn(i64) -> i64| Arc::new(Int64Array::from_iter_values(ids.clone().map(f)));
    arrow::array::RecordBatch::try_new(
        Arc::new(schema),
        vec![column(|i| i), column(|i| i * 10), column(|i| i * 100)],
    )
    .unwrap()
}

/// The rows of `table` in `snapshot`, in one batch sorted by the first column, under the
/// names the table's definition gives them.
fn try_rows_of(
    snapshot: &reeldb::Snapshot,
    table: &str,
) -> Result<arrow::array::RecordBatch, Error> {
    let t = snapshot.table(table)?;
    let batches = t
        .scan(&reeldb::ScanOptions::new())?
        .collect::<Result<Vec<_>, _>>()?;
    let all = arrow::compute::concat_batches(&t.schema(), &batches).unwrap();
    let order = arrow::compute::sort_to_indices(all.column(0), None, None).unwrap();
    Ok(arrow::compute::take_record_batch(&all, &order).unwrap())
}

/// Commits rounds `rounds` to `store` in packs of one record each (so every version's blocks
/// lie in packs of their own), a keyframe on every second commit: round 0 creates "orders"
/// with 200 rows, each later round upserts 5 of them.
fn commit_in_small_packs(store: &Store, rounds: std::ops::Range<u64>) {
    let mut w = store
        .writer_with(
            reeldb::WriterOptions::default()
                .tree_shape(common::tiny_shape())
                .min_overlay_rows(0)
                .max_pack_len(1)
                .keyframe_every(2)
                .keyframe_touching(0.0),
        )
        .unwrap();
    for round in rounds {
        let mut tx = w.begin();
        if round == 0 {
            tx.create_table("orders", common::orders_schema(), &["id"])
                .unwrap();
        }
        let ids = match round {
            0 => 0..200,
            r => r as i64 * 7..r as i64 * 7 + 5,
        };
        tx.upsert("orders", orders(&ids.collect::<Vec<_>>(), round))
            .unwrap();
        tx.commit().unwrap();
    }
}

#[test]
fn a_reader_of_a_version_a_rewind_purged_reads_it_whole_for_the_retention() {
    // Versions 1 and 3 are keyframes, 2 and 4 overlays: version 4 is an overlay of the
    // generation begun at 3 (node log t1-g3). Rewound to 2, the refill begins that
    // generation again; rewound to 3, it writes that generation's first overlay again.
    for to in [2, 3] {
        let memory = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let remote = Store::create_in(
            Arc::new(ObjectStorage::new(memory.clone(), "s").unwrap()),
            Path::new("memory:///s"),
        )
        .unwrap();
        let local = Store::create(dir.path().join("s")).unwrap();
        commit_in_small_packs(&remote, 0..4);
        commit_in_small_packs(&local, 0..4);
        let log = "s/overlays/t1-g3.olog";
        assert!(!objects_under(&memory, log).is_empty(), "version 4's log");
        let truth = rows_at(&open(&memory, "s"), 4);
        // Another process opens version 4 and has read nothing of it when the rewind comes.
        let held = open(&memory, "s").snapshot(4).unwrap();

        remote.rewind(to).unwrap();
        local.rewind(to).unwrap();
        let segments = objects_under(&memory, log).len();
        assert!(segments > 0, "rewound to {to}: the purged log stays");
        commit_in_small_packs(&remote, 10..12);
        commit_in_small_packs(&local, 10..12);
        assert!(
            objects_under(&memory, log).len() > segments,
            "rewound to {to}: the refill writes version 4's generation's log again"
        );

        let fresh = open(&memory, "s");
        assert_eq!(
            fresh.latest_version().unwrap(),
            local.latest_version().unwrap()
        );
        for v in 1..=fresh.latest_version().unwrap() {
            assert_eq!(
                rows_at(&fresh, v),
                rows_at(&local, v),
                "rewound to {to}: v{v}"
            );
        }
        assert_ne!(rows_at(&fresh, 4), truth, "version 4 holds other rows now");
        assert_eq!(
            try_rows_of(&held, "orders")
                .map(|r| canonical(&[r]))
                .unwrap(),
            truth,
            "rewound to {to}: the purged version 4 reads whole"
        );
        let latest = fresh.latest_version().unwrap();
        assert!(fresh.verify(1..=latest, &mut |_| {}).unwrap().is_intact());
    }
}

#[test]
fn compaction_retires_a_node_log_a_rewind_left_that_nothing_writes_again() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (remote, _) = both_stores(&memory, "s", &dir.path().join("s"));
    // Versions 5 and 6 create table "extra" (id 2) and write an overlay on it: log t2-g5.
    let mut w = remote
        .writer_with(reeldb::WriterOptions::default().min_overlay_rows(0))
        .unwrap();
    let mut tx = w.begin();
    let rows = extra("a", "b", 0..50);
    tx.create_table("extra", rows.schema(), &["id"]).unwrap();
    tx.upsert("extra", rows).unwrap();
    tx.commit().unwrap();
    let mut tx = w.begin();
    tx.upsert("extra", extra("a", "b", 3..4)).unwrap();
    tx.commit().unwrap();
    drop(w);
    let log = "s/overlays/t2-g5.olog";
    assert!(!objects_under(&memory, log).is_empty());

    // Rewound to 4 and refilled past 5 with "orders" alone: no table 2 again.
    remote.rewind(4).unwrap();
    commit_rounds(&remote, 20..23);
    assert!(
        !objects_under(&memory, log).is_empty(),
        "left by the rewind"
    );
    let mut maintenance = remote.maintenance().unwrap();
    maintenance
        .run(&reeldb::MaintenancePlan::default(), &mut |_, _, _| {})
        .unwrap();
    maintenance.set_retention(std::time::Duration::ZERO);
    maintenance.reclaim().unwrap();
    drop(maintenance);
    assert!(
        objects_under(&memory, log).is_empty(),
        "retired, then deleted"
    );
    let fresh = open(&memory, "s");
    let latest = fresh.latest_version().unwrap();
    assert!(fresh.verify(1..=latest, &mut |_| {}).unwrap().is_intact());
}

#[test]
fn a_reader_of_a_version_a_rewind_purged_never_reads_another_versions_definitions() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (remote, _) = both_stores(&memory, "s", &dir.path().join("s"));
    // Version 5 creates table "extra" (id, a, b); a reader in another process holds it.
    let create = |first: &str, second: &str| {
        let mut w = remote.writer().unwrap();
        let mut tx = w.begin();
        let rows = extra(first, second, 0..50);
        tx.create_table("extra", rows.schema(), &["id"]).unwrap();
        tx.upsert("extra", rows).unwrap();
        tx.commit().unwrap()
    };
    assert_eq!(create("a", "b"), 5);
    let holder = open(&memory, "s");
    let held = holder.snapshot(5).unwrap();
    // Rewound to 4, and version 5 created again with the two columns' names swapped: a
    // definition as long as the first, which must not take its place in the records file.
    remote.rewind(4).unwrap();
    assert_eq!(create("b", "a"), 5);
    let now = try_rows_of(&holder.snapshot(5).unwrap(), "extra").unwrap();
    assert_eq!(now, extra("b", "a", 0..50));
    // The holder's purged version 5 reads as it was, or fails: never as the new one.
    if let Ok(rows) = try_rows_of(&held, "extra") {
        assert_eq!(rows, extra("a", "b", 0..50));
    }
}

/// Commits rounds `rounds` to `store`, a keyframe every third version, so that generations
/// close and compaction has work.
fn commit_rounds(store: &Store, rounds: std::ops::Range<u64>) {
    let mut w = store
        .writer_with(
            reeldb::WriterOptions::default()
                .tree_shape(common::tiny_shape())
                .min_overlay_rows(0)
                .keyframe_every(3),
        )
        .unwrap();
    for round in rounds {
        let mut tx = w.begin();
        let lo = (round as i64 * 17) % 170;
        tx.upsert("orders", orders(&(lo..lo + 25).collect::<Vec<_>>(), round))
            .unwrap();
        tx.delete("orders", common::ids(&[lo + 27])).unwrap();
        tx.commit().unwrap();
    }
}

/// Version `v` of "orders" in `store`, canonical.
fn rows_at(store: &Store, v: u64) -> arrow::array::RecordBatch {
    let t = store.snapshot(v).unwrap().table("orders").unwrap();
    canonical(
        &t.scan(&reeldb::ScanOptions::new())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap(),
    )
}

#[test]
fn maintenance_on_an_object_store_keeps_what_it_retires_for_the_retention_then_deletes_it() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (remote, local) = both_stores(&memory, "s", &dir.path().join("s"));
    commit_rounds(&remote, 4..12);
    commit_rounds(&local, 4..12);
    let latest = remote.latest_version().unwrap();
    // A reader on another machine, with version 2 open before maintenance runs.
    let reader = open(&memory, "s");
    let held = reader.snapshot(2).unwrap();

    let mut maintenance = remote.maintenance().unwrap();
    let report = maintenance
        .run(&reeldb::MaintenancePlan::default(), &mut |_, _, _| {})
        .unwrap();
    maintenance.expire(reeldb::Expiry::Before(3), &[]).unwrap();
    let rewrite = maintenance.rewrite_catalog(0.0).unwrap();
    drop(maintenance);
    assert!(report.compaction.generations > 0, "{report:?}");
    assert_eq!(report.compaction.node_logs_removed, 0, "{report:?}");
    assert!(report.compaction.node_logs_held > 0, "{report:?}");
    assert!(rewrite.rewritten && rewrite.files_held > 0, "{rewrite:?}");
    let retired = objects_under(&memory, "s/retired");
    assert!(!retired.is_empty());

    // What the reader opened still reads, whole; every live version reads as locally.
    let scan = held
        .table("orders")
        .unwrap()
        .scan(&reeldb::ScanOptions::new());
    let rows: Vec<_> = scan.unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(canonical(&rows), rows_at(&local, 2));
    let fresh = open(&memory, "s");
    for v in 3..=latest {
        assert_eq!(rows_at(&fresh, v), rows_at(&local, v), "version {v}");
    }
    assert!(matches!(
        fresh.snapshot(2),
        Err(Error::Expired { version: 2 })
    ));

    // Within the retention nothing is deleted; past it (0 here) a run deletes it all.
    let files = || -> Vec<String> {
        let all = objects_under(&memory, "s");
        all.into_iter().filter(|o| !o.ends_with("/lock")).collect()
    };
    let before = files();
    let mut again = remote.maintenance().unwrap();
    let kept = again.reclaim().unwrap();
    assert_eq!(kept.files_deleted, 0);
    assert!(kept.files_retained > 0);
    assert_eq!(files(), before);
    again.set_retention(std::time::Duration::ZERO);
    let reclaimed = again.reclaim().unwrap();
    drop(again);
    assert_eq!(
        reclaimed.files_deleted, kept.files_retained,
        "{reclaimed:?}"
    );
    assert!(objects_under(&memory, "s/retired").is_empty());
    assert!(files().len() < before.len());
    let fresh = open(&memory, "s");
    for v in 3..=latest {
        assert_eq!(rows_at(&fresh, v), rows_at(&local, v), "version {v}");
    }
    assert!(fresh.verify(3..=latest, &mut |_| {}).unwrap().is_intact());
}

#[test]
fn a_rewind_past_compacted_generations_on_an_object_store_loses_no_refilled_log_to_reclaim() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (remote, local) = both_stores(&memory, "s", &dir.path().join("s"));
    commit_rounds(&remote, 4..12);
    commit_rounds(&local, 4..12);
    let mut maintenance = remote.maintenance().unwrap();
    let report = maintenance
        .run(&reeldb::MaintenancePlan::default(), &mut |_, _, _| {})
        .unwrap();
    let rewrite = maintenance.rewrite_catalog(0.0).unwrap();
    drop(maintenance);
    assert!(report.compaction.node_logs_held > 0, "{report:?}");
    assert!(rewrite.rewritten, "{rewrite:?}");
    let logs_before = objects_under(&memory, "s/overlays");

    // A rewind to 0 would start records.log afresh, which the rewrite retired: refused.
    let before = objects_under(&memory, "s");
    assert!(matches!(remote.rewind(0), Err(Error::InvalidArgument(_))));
    assert_eq!(objects_under(&memory, "s"), before, "nothing changed");

    // Rewound below the compacted generations and refilled, the keyframes land at the same
    // versions again: their new node logs have the retired ones' names.
    remote.rewind(4).unwrap();
    local.rewind(4).unwrap();
    commit_rounds(&remote, 20..28);
    commit_rounds(&local, 20..28);
    let reused: Vec<_> = objects_under(&memory, "s/overlays")
        .into_iter()
        .filter(|o| logs_before.contains(o))
        .collect();
    assert!(
        !reused.is_empty(),
        "the case needs a log name written again"
    );
    let mut again = remote.maintenance().unwrap();
    again.set_retention(std::time::Duration::ZERO);
    again.reclaim().unwrap();
    drop(again);
    let fresh = open(&memory, "s");
    let latest = local.latest_version().unwrap();
    assert_eq!(fresh.latest_version().unwrap(), latest);
    for v in 1..=latest {
        assert_eq!(rows_at(&fresh, v), rows_at(&local, v), "version {v}");
    }
    assert!(fresh.verify(1..=latest, &mut |_| {}).unwrap().is_intact());
}

/// Commits round `round` to `store`'s "orders" (ten rows upserted) as a keyframe, or as an
/// overlay when `keyframe` is false.
fn commit_one(store: &Store, keyframe: bool, round: u64) {
    let options = reeldb::WriterOptions::default().tree_shape(common::tiny_shape());
    let options = match keyframe {
        true => options.keyframe_every(1),
        false => options.min_overlay_rows(0).keyframe_touching(0.0),
    };
    let mut w = store.writer_with(options).unwrap();
    let mut tx = w.begin();
    let lo = round as i64 * 13 % 150;
    tx.upsert("orders", orders(&(lo..lo + 10).collect::<Vec<_>>(), round))
        .unwrap();
    tx.commit().unwrap();
}

#[test]
fn a_rewind_to_a_bare_keyframe_takes_back_its_logs_retirement_before_a_refill_appends_to_it() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (remote, local) = both_stores(&memory, "s", &dir.path().join("s"));
    // Version 5 a keyframe, 6 an overlay on it (log t1-g5); rewound to 5, 6 is a keyframe.
    for store in [&remote, &local] {
        commit_one(store, true, 5);
        commit_one(store, false, 6);
        store.rewind(5).unwrap();
        commit_one(store, true, 7);
    }
    let log = "s/overlays/t1-g5.olog";
    assert!(
        !objects_under(&memory, log).is_empty(),
        "left by the rewind"
    );
    // No version reads t1-g5 now, and its generation is closed: compaction retires it.
    // (Keyframes kept: thinned, version 5 would read 6's keyframe, and no refill would
    // write generation 5 again.)
    let mut maintenance = remote.maintenance().unwrap();
    let plan = reeldb::MaintenancePlan {
        thinning: reeldb::KeyframeThinning::Off,
        ..reeldb::MaintenancePlan::default()
    };
    maintenance.run(&plan, &mut |_, _, _| {}).unwrap();
    drop(maintenance);
    assert!(!objects_under(&memory, "s/retired").is_empty());

    // Rewound to 5 again, the refill's version 6 is an overlay on 5's keyframe: it appends
    // to t1-g5, which a reclaim past the retention must not then delete.
    for store in [&remote, &local] {
        store.rewind(5).unwrap();
        commit_one(store, false, 8);
    }
    let mut again = remote.maintenance().unwrap();
    again.set_retention(std::time::Duration::ZERO);
    again.reclaim().unwrap();
    drop(again);
    assert!(!objects_under(&memory, log).is_empty());
    let fresh = open(&memory, "s");
    assert_eq!(fresh.latest_version().unwrap(), 6);
    for v in 1..=6 {
        assert_eq!(rows_at(&fresh, v), rows_at(&local, v), "version {v}");
    }
    assert!(fresh.verify(1..=6, &mut |_| {}).unwrap().is_intact());
}

#[test]
fn a_writer_beside_maintenance_on_an_object_store_appends_to_the_rewritten_index() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (remote, local) = both_stores(&memory, "s", &dir.path().join("s"));
    let writer_handle = open(&memory, "s");
    let mut w = writer_handle.writer().unwrap();
    let commit = |w: &mut reeldb::Writer, round: u64| {
        let mut tx = w.begin();
        tx.upsert("orders", orders(&[round as i64 * 3], round))
            .unwrap();
        tx.commit().unwrap()
    };
    commit(&mut w, 5);
    // Another process expires versions: versions.idx is rewritten whole.
    let mut maintenance = remote.maintenance().unwrap();
    maintenance.expire(reeldb::Expiry::Before(3), &[]).unwrap();
    drop(maintenance);
    assert!(
        objects_under(&memory, "s/catalog/versions.idx")
            .iter()
            .all(|o| o.contains("/00000001-")),
        "{:?}",
        objects_under(&memory, "s/catalog/versions.idx")
    );
    let v = commit(&mut w, 6);
    drop(w);
    let fresh = open(&memory, "s");
    assert_eq!(fresh.latest_version().unwrap(), v);
    let mut lw = local.writer().unwrap();
    commit(&mut lw, 5);
    commit(&mut lw, 6);
    for version in 3..=v {
        assert_eq!(rows_at(&fresh, version), rows_at(&local, version));
    }
    assert!(fresh.verify(3..=v, &mut |_| {}).unwrap().is_intact());
}

#[test]
fn a_new_handle_reading_through_a_warm_cache_gets_no_data_object() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (_, local) = both_stores(&memory, "s", &dir.path().join("s"));
    let cache = tempfile::tempdir().unwrap();
    let read_through_cache = || {
        let storage = ObjectStorage::new(memory.clone(), "s")
            .unwrap()
            .with_cache(cache.path(), 64 << 20)
            .unwrap();
        let store = Store::open_in(Arc::new(storage.clone()), Path::new("memory:///s")).unwrap();
        (read_all_canonical(&store), storage.requests())
    };
    let (cold, cold_asked) = read_through_cache();
    let (warm, warm_asked) = read_through_cache();
    assert_eq!(cold, read_all_canonical(&local));
    assert_eq!(warm, cold);
    assert!(cold_asked.gets > 0, "{cold_asked:?}");
    // STORE and the four versions' heads are got at every open (small, and a head may be
    // written again in place, so never cached); nothing else is.
    let direct = 1 + 4;
    assert_eq!(warm_asked.gets, direct, "{warm_asked:?}");
    assert!(warm_asked.bytes_read < 8 << 10, "{warm_asked:?}");
    // Nor is a pack or node log listed: the cache remembers their segments. Only the latest
    // version is found by listing (its newest head, then versions.idx past it).
    // Nor is a pack or node log listed: the cache remembers their segments (a pack and two
    // node logs here), and the one listing left is the one that finds the versions.
    assert_eq!(warm_asked.listings_remembered, 3, "{warm_asked:?}");
    assert_eq!(cold_asked.lists, 1 + 3, "{cold_asked:?}");
    assert_eq!(warm_asked.lists, 1, "{warm_asked:?}");
    // The cold handle read some segments twice, the second time from the cache.
    assert_eq!(
        warm_asked.cache_hits,
        cold_asked.gets - direct + cold_asked.cache_hits,
        "{warm_asked:?}"
    );
}

#[test]
fn a_store_created_again_where_a_cached_one_was_reads_its_own_rows_through_the_cache() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let through_cache = || {
        let storage = ObjectStorage::new(memory.clone(), "s")
            .unwrap()
            .with_cache(cache.path(), 64 << 20)
            .unwrap();
        Store::open_in(Arc::new(storage), Path::new("memory:///s")).unwrap()
    };
    let (_, local) = both_stores(&memory, "s", &dir.path().join("first"));
    assert_eq!(
        read_all_canonical(&through_cache()),
        read_all_canonical(&local)
    );
    // The store is deleted, and another, smaller one created under the same prefix: the
    // cache remembers the first one's pack and node logs under the same names.
    for name in objects_under(&memory, "s") {
        use reeldb::object_storage::object_store::ObjectStoreExt;
        let key = reeldb::object_storage::object_store::path::Path::from(name);
        futures::executor::block_on(memory.delete(&key)).unwrap();
    }
    let write_again = |store: &Store| {
        let mut w = store
            .writer_with(reeldb::WriterOptions::default().tree_shape(common::tiny_shape()))
            .unwrap();
        let mut tx = w.begin();
        tx.create_table("orders", common::orders_schema(), &["id"])
            .unwrap();
        tx.upsert("orders", orders(&(0..90).collect::<Vec<_>>(), 9))
            .unwrap();
        tx.commit().unwrap();
    };
    let again = Store::create_in(
        Arc::new(ObjectStorage::new(memory.clone(), "s").unwrap()),
        Path::new("memory:///s"),
    )
    .unwrap();
    write_again(&again);
    let local_again = Store::create(dir.path().join("again")).unwrap();
    write_again(&local_again);
    assert_eq!(
        read_all_canonical(&through_cache()),
        read_all_canonical(&local_again),
        "the stale listing fails the records' checks and the pack is listed again"
    );
}

#[test]
fn a_commit_lists_no_more_names_at_sixty_versions_than_at_six() {
    let memory = Arc::new(InMemory::new());
    let storage = ObjectStorage::new(memory.clone(), "s").unwrap();
    let store = Store::create_in(Arc::new(storage.clone()), Path::new("memory:///s")).unwrap();
    let mut w = store.writer().unwrap();
    let mut commit = |round: u64| {
        let before = storage.requests();
        let mut tx = w.begin();
        if round == 1 {
            tx.create_table("orders", common::orders_schema(), &["id"])
                .unwrap();
        }
        tx.upsert("orders", orders(&[round as i64 % 7], round))
            .unwrap();
        tx.commit().unwrap();
        storage.requests().since(&before)
    };
    let early: Vec<_> = (1..=6).map(&mut commit).collect();
    let late: Vec<_> = (7..=60).map(&mut commit).collect();
    let (early, late) = (early.last().unwrap(), late.last().unwrap());
    // Each catalog file gains a segment per commit; what a commit lists must not.
    assert_eq!(late.lists, early.lists);
    assert_eq!(
        late.names_listed, early.names_listed,
        "{early:?} / {late:?}"
    );
    assert_eq!(late.gets, early.gets);
}

#[test]
fn a_get_on_an_object_store_reads_a_few_windows_of_the_pack_not_the_pack() {
    let memory = Arc::new(InMemory::new());
    let store = Store::create_in(
        Arc::new(ObjectStorage::new(memory.clone(), "big").unwrap()),
        Path::new("memory:///big"),
    )
    .unwrap();
    let ids: Vec<i64> = (0..400_000).collect();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("orders", common::orders_schema(), &["id"])
        .unwrap();
    tx.upsert("orders", orders(&ids, 1)).unwrap();
    tx.commit().unwrap();
    drop(w);
    let pack_bytes = store.stats().unwrap().bytes_on_disk;

    let window = 64 << 10;
    let storage = ObjectStorage::new(memory.clone(), "big")
        .unwrap()
        .with_read_window(window);
    let reader = Store::open_in(Arc::new(storage.clone()), Path::new("memory:///big")).unwrap();
    let t = reader.latest().unwrap().table("orders").unwrap();
    let row = t.get(123_456i64).unwrap().expect("key 123456 was written");
    assert_eq!(row, orders(&[123_456], 1));
    let asked = storage.requests();
    assert!(pack_bytes > 16 * window, "{pack_bytes}");
    assert!(
        asked.bytes_read < pack_bytes / 4,
        "a get read {} of {pack_bytes} bytes: {asked:?}",
        asked.bytes_read
    );
}
