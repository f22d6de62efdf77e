//! A store on an object store (`ObjectStorage` over object_store's in-memory store): commits,
//! reads at every version from another handle, verification, one writer at a time, readers
//! that write nothing, maintenance that retires what it no longer needs for a retention
//! period before deleting it, reads through a local cache, and commits whose listings do not
//! grow with the number of versions. Rewinds: `object_storage_rewind.rs`.
#![cfg(feature = "object-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::in_memory::{both_stores, commit_rounds, objects_under, open, rows_at};
use common::{canonical, orders, read_all_canonical};
use reeldb::object_storage::ObjectStorage;
use reeldb::object_storage::object_store::memory::InMemory;
use reeldb::{Error, Store};
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
