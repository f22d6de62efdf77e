//! Rewinds of a store on an object store (`ObjectStorage` over object_store's in-memory
//! store): the versions above purged and refilled as on a local disk, a reader in another
//! process holding a purged version reading it whole for the retention and never another
//! version's rows or definitions, and node logs a refill writes again kept from reclaim.
#![cfg(feature = "object-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::in_memory::{both_stores, commit_rounds, objects_under, open, rows_at};
use common::{canonical, orders};
use reeldb::object_storage::ObjectStorage;
use reeldb::object_storage::object_store::memory::InMemory;
use reeldb::{Error, Store};

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
