//! Version heads on an object store (`catalog::head`, FORMAT.md "Version heads"): an open
//! reads a constant number of objects however many versions there are; a head is only ever
//! a copy, so a missing, damaged or stale one leaves the version to be opened through
//! versions.idx, reading the same rows; maintenance and sync keep heads in step; verify names
//! damaged heads and fails a version whose head copies another entry.
#![cfg(feature = "object-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{canonical, orders};
use reeldb::object_storage::object_store::memory::InMemory;
use reeldb::object_storage::object_store::path::Path as ObjectPath;
use reeldb::object_storage::object_store::{ObjectStoreExt, PutPayload};
use reeldb::object_storage::{ObjectStorage, Requests};
use reeldb::{Error, ScanOptions, Store};

fn storage(memory: &Arc<InMemory>) -> ObjectStorage {
    ObjectStorage::new(memory.clone(), "s").unwrap()
}

fn shown() -> &'static Path {
    Path::new("memory:///s")
}

/// Commits versions `rounds` to `store`: upserts of 20 keys and a delete each.
fn commit(store: &Store, rounds: std::ops::Range<u64>) {
    commit_with(store, rounds, reeldb::WriterOptions::default());
}

/// [`commit`] by a writer with `options` (and a tiny tree shape).
fn commit_with(store: &Store, rounds: std::ops::Range<u64>, options: reeldb::WriterOptions) {
    let mut w = store
        .writer_with(options.tree_shape(common::tiny_shape()))
        .unwrap();
    for round in rounds {
        let mut tx = w.begin();
        if round == 1 {
            tx.create_table("orders", common::orders_schema(), &["id"])
                .unwrap();
        }
        let lo = (round as i64 * 13) % 150;
        tx.upsert("orders", orders(&(lo..lo + 20).collect::<Vec<_>>(), round))
            .unwrap();
        tx.delete("orders", common::ids(&[lo + 21])).unwrap();
        tx.commit().unwrap();
    }
}

fn rows_at(store: &Store, v: u64) -> arrow::array::RecordBatch {
    let t = store.snapshot(v).unwrap().table("orders").unwrap();
    let rows: Vec<_> = t
        .scan(&ScanOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    canonical(&rows)
}

fn latest_rows(store: &Store) -> (u64, arrow::array::RecordBatch) {
    let s = store.latest().unwrap();
    let t = s.table("orders").unwrap();
    let rows: Vec<_> = t
        .scan(&ScanOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (s.version(), canonical(&rows))
}

/// The requests a new handle makes to open the store and version `v` (`None`: the latest).
fn open_requests(memory: &Arc<InMemory>, v: Option<u64>) -> Requests {
    let storage = storage(memory);
    let store = Store::open_in(Arc::new(storage.clone()), shown()).unwrap();
    match v {
        Some(v) => assert_eq!(store.snapshot(v).unwrap().version(), v),
        None => {
            store.latest().unwrap();
        }
    }
    storage.requests()
}

fn head_object(v: u64) -> ObjectPath {
    ObjectPath::from(format!(
        "s/catalog/heads/{:016x}/0000000000000000",
        u64::MAX - v
    ))
}

fn put(memory: &InMemory, path: &ObjectPath, bytes: Vec<u8>) {
    futures::executor::block_on(memory.put(path, PutPayload::from(bytes))).unwrap();
}

fn delete(memory: &InMemory, path: &ObjectPath) {
    futures::executor::block_on(memory.delete(path)).unwrap();
}

#[test]
fn an_open_reads_the_same_few_objects_at_one_version_and_at_sixty() {
    let memory = Arc::new(InMemory::new());
    let store = Store::create_in(Arc::new(storage(&memory)), shown()).unwrap();
    commit(&store, 1..2);
    let at_one = [
        open_requests(&memory, None),
        open_requests(&memory, Some(1)),
    ];
    commit(&store, 2..61);
    let at_sixty = [
        open_requests(&memory, None),
        open_requests(&memory, Some(1)),
        open_requests(&memory, Some(30)),
    ];
    for asked in at_one.iter().chain(&at_sixty) {
        // The descriptor and the head; for the latest, a listing of the heads and one of
        // what versions.idx holds past the head's entry.
        assert_eq!(asked.gets, 2, "{asked:?}");
        assert!(asked.lists <= 2, "{asked:?}");
        assert_eq!(asked.writes(), 0, "{asked:?}");
    }
    assert_eq!(at_one[0].lists, at_sixty[0].lists);
    assert_eq!(at_one[1].lists, 0);
}

#[test]
fn versions_opened_through_heads_read_as_through_the_index() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let remote = Store::create_in(Arc::new(storage(&memory)), shown()).unwrap();
    let local = Store::create(dir.path().join("s")).unwrap();
    commit(&remote, 1..8);
    commit(&local, 1..8);
    let fresh = Store::open_in(Arc::new(storage(&memory)), shown()).unwrap();
    for v in 1..=7 {
        assert_eq!(rows_at(&fresh, v), rows_at(&local, v), "version {v}");
    }
    assert_eq!(latest_rows(&fresh), (7, rows_at(&local, 7)));
    assert_eq!(
        fresh.snapshot(7).unwrap().info().committed_at,
        local_info_time(&remote, 7)
    );
}

/// The commit time of version `v` as `Store::versions` reads it from versions.idx.
fn local_info_time(store: &Store, v: u64) -> chrono::DateTime<chrono::Utc> {
    store.versions().unwrap()[(v - 1) as usize].committed_at
}

#[test]
fn a_version_committed_without_its_head_is_still_the_latest() {
    // As if the writer died between its commit point and its head.
    let memory = Arc::new(InMemory::new());
    let store = Store::create_in(Arc::new(storage(&memory)), shown()).unwrap();
    commit(&store, 1..4);
    delete(&memory, &head_object(3));
    let fresh = Store::open_in(Arc::new(storage(&memory)), shown()).unwrap();
    let (v, rows) = latest_rows(&fresh);
    assert_eq!(v, 3);
    assert_eq!(rows, rows_at(&store, 3));
    assert_eq!(fresh.snapshot(3).unwrap().version(), 3);
}

#[test]
fn a_damaged_or_misplaced_head_is_passed_over() {
    let memory = Arc::new(InMemory::new());
    let store = Store::create_in(Arc::new(storage(&memory)), shown()).unwrap();
    commit(&store, 1..4);
    let expected = rows_at(&store, 2);
    let head_of_2 = futures::executor::block_on(async {
        memory.get(&head_object(2)).await.unwrap().bytes().await
    })
    .unwrap()
    .to_vec();
    let mut flipped = head_of_2.clone();
    flipped[100] ^= 0x40;
    // A flipped byte, a cut-off head, and version 2's head where version 3's belongs.
    for bad in [flipped, head_of_2[..head_of_2.len() - 3].to_vec()] {
        put(&memory, &head_object(2), bad);
        let fresh = Store::open_in(Arc::new(storage(&memory)), shown()).unwrap();
        assert_eq!(rows_at(&fresh, 2), expected);
    }
    put(&memory, &head_object(3), head_of_2);
    let fresh = Store::open_in(Arc::new(storage(&memory)), shown()).unwrap();
    assert_eq!(latest_rows(&fresh), (3, rows_at(&store, 3)));
}

#[test]
fn heads_follow_compaction_expiry_and_a_catalog_rewrite() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let remote = Store::create_in(Arc::new(storage(&memory)), shown()).unwrap();
    let local = Store::create(dir.path().join("s")).unwrap();
    for store in [&remote, &local] {
        // Generations that close, so that compaction has work.
        let options = reeldb::WriterOptions::default()
            .min_overlay_rows(0)
            .keyframe_every(3);
        commit_with(store, 1..11, options);
    }
    let mut maintenance = remote.maintenance().unwrap();
    maintenance.set_retention(std::time::Duration::ZERO);
    let report = maintenance
        .run(&reeldb::MaintenancePlan::default(), &mut |_, _, _| {})
        .unwrap();
    assert!(report.compaction.generations > 0, "{report:?}");
    maintenance.expire(reeldb::Expiry::Before(3), &[]).unwrap();
    assert!(maintenance.rewrite_catalog(0.0).unwrap().rewritten);
    // Past the retention what was retired is deleted: a stale head would now fail to read.
    maintenance.reclaim().unwrap();
    drop(maintenance);
    let fresh = Store::open_in(Arc::new(storage(&memory)), shown()).unwrap();
    for v in 3..=10 {
        assert_eq!(rows_at(&fresh, v), rows_at(&local, v), "version {v}");
        let asked = open_requests(&memory, Some(v));
        assert_eq!(
            asked.gets, 2,
            "version {v} opens through its head: {asked:?}"
        );
    }
    assert_eq!(latest_rows(&fresh), (10, rows_at(&local, 10)));
    assert_eq!(open_requests(&memory, None).gets, 2);
    for v in 1..3 {
        assert!(
            matches!(fresh.snapshot(v), Err(Error::Expired { version }) if version == v),
            "version {v}"
        );
    }
}

#[test]
fn a_sync_to_an_object_store_gives_every_version_a_head() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let local = Store::create(dir.path().join("s")).unwrap();
    commit(&local, 1..5);
    local
        .sync_into(Arc::new(storage(&memory)), shown(), false)
        .unwrap();
    for v in 1..=4 {
        assert_eq!(open_requests(&memory, Some(v)).gets, 2, "version {v}");
    }
    commit(&local, 5..7);
    local
        .sync_into(Arc::new(storage(&memory)), shown(), false)
        .unwrap();
    let fresh = Store::open_in(Arc::new(storage(&memory)), shown()).unwrap();
    assert_eq!(latest_rows(&fresh), (6, rows_at(&local, 6)));
    assert_eq!(open_requests(&memory, None).gets, 2);
    // A copy synced back to a disk holds no heads, and reads the same.
    let back = dir.path().join("back");
    fresh.sync_to(&back, &[], true).unwrap();
    assert!(!back.join("catalog/heads").exists());
    let copy = Store::open(&back).unwrap();
    assert_eq!(latest_rows(&copy), (6, rows_at(&local, 6)));
}

#[test]
fn a_commit_not_yet_synced_is_the_latest_for_its_own_process_only() {
    let memory = Arc::new(InMemory::new());
    let store = Store::create_in(Arc::new(storage(&memory)), shown()).unwrap();
    commit(&store, 1..3);
    commit_with(&store, 3..4, reeldb::WriterOptions::default().sync(false));
    // Its bytes wait in this process's storage: it reads them, as a page cache shows them.
    assert_eq!(store.latest().unwrap().version(), 3);
    let other = Store::open_in(Arc::new(storage(&memory)), shown()).unwrap();
    assert_eq!(other.latest().unwrap().version(), 2);
}

#[test]
fn verify_names_a_damaged_head_and_fails_a_version_whose_head_copies_another_entry() {
    let memory = Arc::new(InMemory::new());
    let store = Store::create_in(Arc::new(storage(&memory)), shown()).unwrap();
    commit(&store, 1..4);
    let head_of = |v: u64| {
        futures::executor::block_on(async {
            memory.get(&head_object(v)).await.unwrap().bytes().await
        })
        .unwrap()
        .to_vec()
    };
    let report = store.verify(1..=3, &mut |_| {}).unwrap();
    assert!(
        report.is_intact() && report.damaged_heads.is_empty(),
        "{report:?}"
    );

    let before = head_of(2);
    let mut flipped = before.clone();
    flipped[100] ^= 0x40;
    put(&memory, &head_object(2), flipped);
    let fresh = Store::open_in(Arc::new(storage(&memory)), shown()).unwrap();
    let report = fresh.verify(1..=3, &mut |_| {}).unwrap();
    assert_eq!(report.damaged_heads, vec![2]);
    assert!(report.is_intact(), "a damaged head costs speed, not rows");

    // A catalog rewrite moves every record (and writes the heads again); version 2's head
    // from before it is intact but copies an entry versions.idx no longer holds.
    put(&memory, &head_object(2), before.clone());
    let mut maintenance = store.maintenance().unwrap();
    assert!(maintenance.rewrite_catalog(0.0).unwrap().rewritten);
    drop(maintenance);
    assert_ne!(head_of(2), before);
    put(&memory, &head_object(2), before);
    let fresh = Store::open_in(Arc::new(storage(&memory)), shown()).unwrap();
    let report = fresh.verify(1..=3, &mut |_| {}).unwrap();
    assert!(!report.is_intact());
    let problem = report.versions[1]
        .problem
        .as_ref()
        .expect("version 2 fails");
    assert!(
        problem.to_string().contains("copies another index entry"),
        "{problem}"
    );
    assert!(report.versions[0].problem.is_none() && report.versions[2].problem.is_none());
}
