//! `Store::sync_to` (`reel sync`): a fresh copy reads as its source at every version, a
//! follow-up copies only the new version's bytes, an interrupted sync leaves the copy at its
//! old version and the next one finishes it, maintenance on the source is followed, and a
//! copy that diverged is refused without a byte changed, and what the source deleted since
//! leaves the copy too (at once where no reader holds it, after the retention on an object
//! store).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{canonical, copy_dir, ids, orders, read_all_canonical, tiny_shape, write_history};
use reeldb::storage::LocalStorage;
use reeldb::sync::SYNC_FILE;
use reeldb::{Error, Expiry, MaintenancePlan, Store, SyncMode, WriterOptions};
use reeldb_testkit::{Fault, FaultyStorage};

fn writer_options() -> WriterOptions {
    WriterOptions::default()
        .tree_shape(tiny_shape())
        .min_overlay_rows(0)
}

/// Commits one more version to `store`: 20 upserts and a delete.
fn commit_one(store: &Store, round: u64) -> u64 {
    let mut w = store.writer_with(writer_options()).unwrap();
    let mut tx = w.begin();
    let lo = (round as i64 * 13) % 150;
    tx.upsert("orders", orders(&(lo..lo + 20).collect::<Vec<_>>(), round))
        .unwrap();
    tx.delete("orders", ids(&[lo + 30])).unwrap();
    tx.commit().unwrap()
}

/// A source store of four versions at `path`.
fn source(path: &Path) -> Store {
    let store = Store::create(path).unwrap();
    write_history(&store);
    store
}

/// Every store file's length (lock and lease files left out).
fn file_lengths(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    for sub in ["catalog", "packs", "overlays"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_name() != "LOCK" {
                out.insert(
                    Path::new(sub).join(e.file_name()),
                    e.metadata().unwrap().len(),
                );
            }
        }
    }
    out
}

/// The rows of "orders" in `snapshot`, canonical.
fn rows_of(snapshot: &reeldb::Snapshot) -> arrow::array::RecordBatch {
    let t = snapshot.table("orders").unwrap();
    canonical(
        &t.scan(&reeldb::ScanOptions::new())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap(),
    )
}

/// Every store file's bytes, to tell that nothing changed.
fn file_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    file_lengths(dir)
        .into_keys()
        .map(|p| (p.clone(), std::fs::read(dir.join(&p)).unwrap()))
        .collect()
}

#[test]
fn a_fresh_copy_reads_as_its_source_at_every_version_and_a_second_sync_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&dir.path().join("src"));
    let dst = dir.path().join("dst");
    let report = src.sync_to(&dst, &[], true).unwrap();
    assert_eq!(report.mode, SyncMode::Fresh);
    assert_eq!((report.from_version, report.to_version), (0, 4));
    assert!(report.verified.unwrap().is_intact());
    let copy = Store::open(&dst).unwrap();
    assert_eq!(read_all_canonical(&copy), read_all_canonical(&src));
    assert_eq!(file_lengths(&dst), file_lengths(&dir.path().join("src")));
    assert!(!dst.join(SYNC_FILE).exists());

    let again = src.sync_to(&dst, &[], false).unwrap();
    assert_eq!(again.mode, SyncMode::UpToDate);
    assert_eq!((again.files_written, again.bytes_copied), (0, 0));
}

#[test]
fn a_follow_up_sync_copies_the_new_versions_bytes_and_the_index_only() {
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("src");
    let src = source(&src_dir);
    let dst = dir.path().join("dst");
    src.sync_to(&dst, &[], false).unwrap();
    let before = file_lengths(&src_dir);
    let v = commit_one(&src, 5);
    let after = file_lengths(&src_dir);
    let grown: u64 = after
        .iter()
        .map(|(p, len)| len - before.get(p).copied().unwrap_or(0))
        .sum();
    let index_len = 64 * (v + 1);

    let report = src.sync_to(&dst, &[], true).unwrap();
    assert_eq!(report.mode, SyncMode::Append);
    assert_eq!((report.from_version, report.to_version), (4, 5));
    // Every byte the commit added, but versions.idx's new entry, which is written whole.
    assert_eq!(report.bytes_copied, grown - 64 + index_len);
    assert_eq!(report.verified.unwrap().versions.len(), 1);
    assert_eq!(
        read_all_canonical(&Store::open(&dst).unwrap()),
        read_all_canonical(&src)
    );
}

#[test]
fn an_interrupted_sync_leaves_the_copy_at_its_old_version_and_the_next_sync_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&dir.path().join("src"));
    let base = dir.path().join("base");
    src.sync_to(&base, &[], false).unwrap();
    let old = read_all_canonical(&src);
    commit_one(&src, 5);
    commit_one(&src, 6);
    let new = read_all_canonical(&src);
    let mut failed_at = 0u64;
    loop {
        let work = dir.path().join(format!("dst-{failed_at}"));
        copy_dir(&base, &work);
        let faulty = FaultyStorage::new(LocalStorage::new(&work));
        faulty.plan().fail_at(failed_at, Fault::Eio, true);
        let result = src.sync_into(Arc::new(faulty), &work, false);
        let copy = Store::open(&work).unwrap();
        match result {
            Ok(_) => {
                assert_eq!(read_all_canonical(&copy), new);
                break;
            }
            Err(_) => {
                // The copy reads at its old version, or whole at the new one.
                let now = read_all_canonical(&copy);
                assert!(now == old || now == new, "fault at op {failed_at}");
                if work.join(SYNC_FILE).exists() {
                    assert!(matches!(copy.writer(), Err(Error::SyncUnfinished)));
                    assert!(matches!(copy.maintenance(), Err(Error::SyncUnfinished)));
                }
                let finished = src.sync_to(&work, &[], true).unwrap();
                assert!(finished.verified.unwrap().is_intact());
                assert_eq!(read_all_canonical(&Store::open(&work).unwrap()), new);
                assert!(!work.join(SYNC_FILE).exists());
                commit_one(&Store::open(&work).unwrap(), 9);
            }
        }
        failed_at += 1;
    }
    assert!(
        failed_at > 5,
        "the sync failed at only {failed_at} operations"
    );
}

#[test]
fn an_interrupted_first_copy_is_no_store_until_the_next_sync_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&dir.path().join("src"));
    let mut failed_at = 0u64;
    loop {
        let work = dir.path().join(format!("dst-{failed_at}"));
        let faulty = FaultyStorage::new(LocalStorage::new(&work));
        faulty.plan().fail_at(failed_at, Fault::Eio, true);
        match src.sync_into(Arc::new(faulty), &work, false) {
            Ok(_) => break,
            Err(_) => {
                if !work.join("STORE").exists() {
                    assert!(matches!(Store::open(&work), Err(Error::NotAStore(_))));
                }
                let finished = src.sync_to(&work, &[], true).unwrap();
                // Fresh, or up to date when only the SYNC file's removal failed.
                assert_ne!(finished.mode, SyncMode::Append);
                assert!(finished.verified.unwrap().is_intact());
                assert_eq!(
                    read_all_canonical(&Store::open(&work).unwrap()),
                    read_all_canonical(&src)
                );
            }
        }
        failed_at += 1;
    }
}

#[test]
fn a_copy_of_a_source_maintained_since_takes_the_rewritten_versions() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&dir.path().join("src"));
    let dst = dir.path().join("dst");
    src.sync_to(&dst, &[], false).unwrap();
    for round in 5..9 {
        commit_one(&src, round);
    }
    let mut maintenance = src.maintenance().unwrap();
    maintenance
        .run(&MaintenancePlan::default(), &mut |_, _, _| {})
        .unwrap();
    maintenance.expire(Expiry::Before(3), &[]).unwrap();
    drop(maintenance);
    let report = src.sync_to(&dst, &[], true).unwrap();
    assert_eq!(report.mode, SyncMode::Replace);
    assert!(report.verified.unwrap().is_intact());
    let copy = Store::open(&dst).unwrap();
    for v in 3..=src.latest_version().unwrap() {
        let scan = |s: &Store| rows_of(&s.snapshot(v).unwrap());
        assert_eq!(scan(&copy), scan(&src), "version {v}");
    }
    assert!(matches!(
        copy.snapshot(1),
        Err(Error::Expired { version: 1 })
    ));
    // What the source's maintenance deleted, the copy no longer holds either.
    assert!(report.files_removed > 0);
    assert_eq!(report.files_kept, 0);
    assert_eq!(data_files(&dst), data_files(&src_dir(&dir)));
}

/// The source store's directory in `dir`, as `source` was given it.
fn src_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("src")
}

/// The packs, node logs and records files of the store at `dir`.
fn data_files(dir: &Path) -> Vec<PathBuf> {
    file_lengths(dir)
        .into_keys()
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".pack") || name.ends_with(".olog") || name.starts_with("records")
        })
        .collect()
}

/// `src` with four more versions, compacted and cleaned: node logs and packs deleted.
fn commit_and_maintain(src: &Store) {
    for round in 5..9 {
        commit_one(src, round);
    }
    let mut maintenance = src.maintenance().unwrap();
    let report = maintenance
        .run(&MaintenancePlan::default(), &mut |_, _, _| {})
        .unwrap();
    assert!(report.compaction.node_logs_removed > 0, "{report:?}");
}

#[test]
fn a_local_copy_keeps_what_its_source_deleted_while_a_reader_holds_a_version_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&src_dir(&dir));
    let dst = dir.path().join("dst");
    src.sync_to(&dst, &[], false).unwrap();
    let before = data_files(&dst);
    commit_and_maintain(&src);
    let copy = Store::open(&dst).unwrap();
    let held = copy.snapshot(4).unwrap();
    let held_rows = rows_of(&held);

    let report = src.sync_to(&dst, &[], false).unwrap();
    assert_eq!(report.mode, SyncMode::Replace);
    assert_eq!(report.files_removed, 0);
    assert!(report.files_kept > 0, "{report:?}");
    assert!(before.iter().all(|p| dst.join(p).exists()), "all kept");
    assert_eq!(
        rows_of(&held),
        held_rows,
        "the reader reads its version whole"
    );

    drop(held);
    let report = src.sync_to(&dst, &[], false).unwrap();
    assert_eq!(report.mode, SyncMode::UpToDate);
    assert_eq!(report.files_kept, 0);
    assert!(report.files_removed > 0, "{report:?}");
    assert_eq!(data_files(&dst), data_files(&src_dir(&dir)));
    let copy = Store::open(&dst).unwrap();
    for v in 1..=src.latest_version().unwrap() {
        assert_eq!(
            rows_of(&copy.snapshot(v).unwrap()),
            rows_of(&src.snapshot(v).unwrap())
        );
    }
    assert!(
        copy.verify(1..=src.latest_version().unwrap(), &mut |_| {})
            .unwrap()
            .is_intact()
    );
}

#[test]
fn a_copy_committed_to_or_maintained_or_of_a_rewound_source_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&dir.path().join("src"));
    let dst = dir.path().join("dst");
    src.sync_to(&dst, &[], false).unwrap();
    commit_one(&Store::open(&dst).unwrap(), 5);
    let before = file_bytes(&dst);
    let err = src.sync_to(&dst, &[], false).unwrap_err();
    assert!(matches!(err, Error::SyncDiverged { .. }), "{err}");
    assert_eq!(file_bytes(&dst), before);

    // A copy maintained since holds records of its own past the source's.
    let maintained = dir.path().join("maintained");
    src.sync_to(&maintained, &[], false).unwrap();
    let mut maintenance = Store::open(&maintained).unwrap().maintenance().unwrap();
    maintenance.expire(Expiry::Before(2), &[]).unwrap();
    drop(maintenance);
    commit_one(&src, 7);
    let before = file_bytes(&maintained);
    let err = src.sync_to(&maintained, &[], false).unwrap_err();
    assert!(matches!(err, Error::SyncDiverged { .. }), "{err}");
    assert_eq!(file_bytes(&maintained), before);

    let dst2 = dir.path().join("dst2");
    src.sync_to(&dst2, &[], false).unwrap();
    src.rewind(2).unwrap();
    commit_one(&src, 6);
    let before = file_bytes(&dst2);
    let err = src.sync_to(&dst2, &[], false).unwrap_err();
    assert!(matches!(err, Error::SyncDiverged { .. }), "{err}");
    assert_eq!(file_bytes(&dst2), before);
}

#[test]
fn a_copy_keeps_a_file_its_damaged_source_lacks_but_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&src_dir(&dir));
    let dst = dir.path().join("dst");
    src.sync_to(&dst, &[], false).unwrap();
    // The source loses a pack its versions read (a disk fault, a stray `rm`).
    let pack = data_files(&src_dir(&dir))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    std::fs::remove_file(src_dir(&dir).join(&pack)).unwrap();

    let report = src.sync_to(&dst, &[], false).unwrap();
    assert_eq!(report.mode, SyncMode::UpToDate);
    assert_eq!((report.files_removed, report.files_kept), (0, 1));
    assert!(report.leftovers_error.is_none());
    assert!(dst.join(&pack).exists(), "the copy's bytes are kept");
    let copy = Store::open(&dst).unwrap();
    assert!(copy.verify(1..=4, &mut |_| {}).unwrap().is_intact());
}

#[test]
fn a_failure_disposing_of_leftovers_keeps_them_and_is_reported_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&src_dir(&dir));
    let base = dir.path().join("base");
    src.sync_to(&base, &[], false).unwrap();
    commit_and_maintain(&src);
    let new = read_all_canonical(&src);
    let (mut failed_at, mut reported) = (0u64, 0);
    loop {
        let work = dir.path().join(format!("dst-{failed_at}"));
        copy_dir(&base, &work);
        let faulty = FaultyStorage::new(LocalStorage::new(&work));
        faulty.plan().fail_at(failed_at, Fault::Eio, true);
        let result = src.sync_into(Arc::new(faulty), &work, false);
        failed_at += 1;
        let Ok(report) = result else {
            continue; // before the commit point: the loop above checks those
        };
        // The copy is synced whatever became of its leftovers.
        assert_eq!(read_all_canonical(&Store::open(&work).unwrap()), new);
        if report.leftovers_error.is_none() {
            assert!(report.files_removed > 0, "{report:?}");
            break;
        }
        reported += 1;
        assert!(report.files_kept > 0, "{report:?}");
        let again = src.sync_to(&work, &[], true).unwrap();
        assert!(again.leftovers_error.is_none());
        assert!(again.verified.unwrap().is_intact());
        assert_eq!(data_files(&work), data_files(&src_dir(&dir)));
    }
    assert!(reported > 0, "no operation after the commit point failed");
}

#[test]
fn a_destination_holding_other_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&dir.path().join("src"));
    let dst = dir.path().join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::write(dst.join("notes.txt"), b"mine").unwrap();
    assert!(matches!(
        src.sync_to(&dst, &[], false),
        Err(Error::AlreadyExists(_))
    ));
    assert_eq!(std::fs::read(dst.join("notes.txt")).unwrap(), b"mine");
    assert!(!dst.join("catalog").exists());
}

/// The same syncs into an object store, counting its requests.
#[cfg(feature = "object-store")]
mod object_store {
    use super::*;
    use reeldb::object_storage::ObjectStorage;
    use reeldb::object_storage::object_store::ObjectStoreExt;
    use reeldb::object_storage::object_store::memory::InMemory;

    #[test]
    fn a_follow_up_sync_to_an_object_store_puts_one_object_per_file_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(&dir.path().join("src"));
        let memory = Arc::new(InMemory::new());
        let dst = || Arc::new(ObjectStorage::new(memory.clone(), "mirror").unwrap());
        let name = Path::new("memory:///mirror");
        let first = dst();
        let report = src.sync_into(first.clone(), name, true).unwrap();
        assert_eq!(report.mode, SyncMode::Fresh);
        assert!(report.verified.unwrap().is_intact());
        let copy = Store::open_in(dst(), name).unwrap();
        assert_eq!(read_all_canonical(&copy), read_all_canonical(&src));

        commit_one(&src, 5);
        let second = dst();
        let report = src.sync_into(second.clone(), name, false).unwrap();
        assert_eq!(report.mode, SyncMode::Append);
        let requests = second.requests();
        // One put per file grown, the index, the SYNC and SYNCED files, the new version's
        // head and the two lock objects (whose bytes are not counted).
        assert_eq!(requests.puts, report.files_written as u64 + 5);
        let head = futures::executor::block_on(memory.head(
            &reeldb::object_storage::object_store::path::Path::from(format!(
                "mirror/catalog/heads/{:016x}/0000000000000000",
                u64::MAX - 5
            )),
        ))
        .unwrap();
        assert_eq!(
            requests.bytes_written,
            report.bytes_copied + 40 + 24 + head.size
        );
        let copy = Store::open_in(dst(), name).unwrap();
        assert_eq!(read_all_canonical(&copy), read_all_canonical(&src));

        let idle = dst();
        let report = src.sync_into(idle.clone(), name, false).unwrap();
        assert_eq!(report.mode, SyncMode::UpToDate);
        assert_eq!(idle.requests().bytes_written, 0);
    }

    /// The packs, node logs and records files of the store on `storage`.
    fn stored_data_files(storage: &ObjectStorage) -> Vec<PathBuf> {
        use reeldb::storage::Storage;
        let mut files = Vec::new();
        for dir in ["catalog", "packs", "overlays"] {
            for name in storage.list(Path::new(dir)).unwrap() {
                if name.ends_with(".pack") || name.ends_with(".olog") || name.starts_with("records")
                {
                    files.push(Path::new(dir).join(name));
                }
            }
        }
        files.sort();
        files
    }

    #[test]
    fn a_copy_on_an_object_store_retires_what_its_source_deleted_for_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(&src_dir(&dir));
        let memory = Arc::new(InMemory::new());
        let dst = || Arc::new(ObjectStorage::new(memory.clone(), "mirror").unwrap());
        let name = Path::new("memory:///mirror");
        src.sync_into(dst(), name, false).unwrap();
        let before = stored_data_files(&dst());
        commit_and_maintain(&src);
        // A reader on another machine opens version 4 of the copy before the next sync.
        let held = Store::open_in(dst(), name).unwrap().snapshot(4).unwrap();

        let report = src.sync_into(dst(), name, false).unwrap();
        assert_eq!(report.mode, SyncMode::Replace);
        assert_eq!(report.files_removed, 0);
        assert!(report.files_kept > 0, "{report:?}");
        let now = stored_data_files(&dst());
        assert!(
            before.iter().all(|p| now.contains(p)),
            "retired, not deleted"
        );
        assert_eq!(rows_of(&held), rows_of(&src.snapshot(4).unwrap()));

        // Past the retention (none here), the next sync deletes them.
        let options = reeldb::SyncOptions {
            verify: true,
            retention: std::time::Duration::ZERO,
        };
        let report = src.sync_into_with(dst(), name, &options).unwrap();
        assert_eq!(report.mode, SyncMode::UpToDate);
        assert!(report.files_removed > 0, "{report:?}");
        assert_eq!(report.files_kept, 0);
        assert!(report.verified.unwrap().is_intact());
        assert_eq!(stored_data_files(&dst()), data_files(&src_dir(&dir)));
        let copy = Store::open_in(dst(), name).unwrap();
        assert_eq!(read_all_canonical(&copy), read_all_canonical(&src));
    }

    #[test]
    fn an_object_store_syncs_back_to_a_local_copy_that_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let local = source(&dir.path().join("src"));
        let memory = Arc::new(InMemory::new());
        let name = Path::new("memory:///mirror");
        let remote_storage = || Arc::new(ObjectStorage::new(memory.clone(), "mirror").unwrap());
        local.sync_into(remote_storage(), name, false).unwrap();
        let remote = Store::open_in(remote_storage(), name).unwrap();
        let back = dir.path().join("back");
        let report = remote.sync_to(&back, &[], true).unwrap();
        assert!(report.verified.unwrap().is_intact());
        assert_eq!(
            read_all_canonical(&Store::open(&back).unwrap()),
            read_all_canonical(&local)
        );
    }
}
