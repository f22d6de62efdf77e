//! Helpers for the tests of stores on object_store's in-memory store (feature
//! `object-store`): handles as another process would open them, a store written beside a
//! local one, the objects under a prefix, and versions read back.

use std::path::Path;
use std::sync::Arc;

use reeldb::Store;
use reeldb::object_storage::ObjectStorage;
use reeldb::object_storage::object_store::memory::InMemory;

use super::{canonical, orders, write_history};

/// A handle on the store under `prefix` of `memory`, as a process of its own would open it.
pub fn open(memory: &Arc<InMemory>, prefix: &str) -> Store {
    Store::open_in(
        Arc::new(ObjectStorage::new(memory.clone(), prefix).unwrap()),
        Path::new(&format!("memory:///{prefix}")),
    )
    .unwrap()
}

/// A store of four versions (a keyframe, then overlays of upserts and a delete each) on
/// `memory` under `prefix`, and a local store written the same way.
pub fn both_stores(memory: &Arc<InMemory>, prefix: &str, local: &Path) -> (Store, Store) {
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

/// The names of the objects under `prefix` of `memory`, sorted.
pub fn objects_under(memory: &InMemory, prefix: &str) -> Vec<String> {
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

/// Version `v` of "orders" in `store`, canonical.
pub fn rows_at(store: &Store, v: u64) -> arrow::array::RecordBatch {
    let t = store.snapshot(v).unwrap().table("orders").unwrap();
    canonical(
        &t.scan(&reeldb::ScanOptions::new())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap(),
    )
}

/// Commits rounds `rounds` to `store`, a keyframe every third version, so that generations
/// close and compaction has work.
pub fn commit_rounds(store: &Store, rounds: std::ops::Range<u64>) {
    let mut w = store
        .writer_with(
            reeldb::WriterOptions::default()
                .tree_shape(super::tiny_shape())
                .min_overlay_rows(0)
                .keyframe_every(3),
        )
        .unwrap();
    for round in rounds {
        let mut tx = w.begin();
        let lo = (round as i64 * 17) % 170;
        tx.upsert("orders", orders(&(lo..lo + 25).collect::<Vec<_>>(), round))
            .unwrap();
        tx.delete("orders", super::ids(&[lo + 27])).unwrap();
        tx.commit().unwrap();
    }
}
