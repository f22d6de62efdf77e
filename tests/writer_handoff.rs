//! Writers opened one after another on one store handle: each leaves what it knows of the
//! open generations (its bitmaps and live overlay keys) to the next, which uses it only for
//! the overlay it describes; after a rewind, a failed commit or another handle's commits, the
//! next writer reads the generation again. Every version reads exactly as committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use common::{canonical, ids, orders, orders_schema};
use reeldb::{Store, WriterOptions};

/// The rows a model of the table holds, in key order.
fn model_rows(model: &BTreeMap<i64, u64>) -> RecordBatch {
    let batches: Vec<RecordBatch> = model.iter().map(|(&id, &r)| orders(&[id], r)).collect();
    canonical(&batches)
}

fn scan(store: &Store, v: u64) -> RecordBatch {
    let t = store.snapshot(v).unwrap().table("orders").unwrap();
    let batches = t
        .scan(&reeldb::ScanOptions::new())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    if batches.is_empty() {
        return RecordBatch::new_empty(orders_schema());
    }
    canonical(&batches)
}

fn options() -> WriterOptions {
    WriterOptions::default().keyframe_every(100)
}

/// One commit by a fresh writer of `store`: upserts `ids` in `round` and deletes `dead`.
fn commit(store: &Store, model: &mut BTreeMap<i64, u64>, round: u64, up: &[i64], dead: &[i64]) {
    let mut w = store.writer_with(options()).unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", orders(up, round)).unwrap();
    if !dead.is_empty() {
        tx.delete("orders", ids(dead)).unwrap();
    }
    tx.commit().unwrap();
    for &i in up {
        model.insert(i, round);
    }
    for i in dead {
        model.remove(i);
    }
}

#[test]
fn a_writer_per_commit_on_one_handle_reads_as_committed_through_rewinds_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let mut model: BTreeMap<i64, u64> = BTreeMap::new();
    {
        let mut w = store.writer_with(options()).unwrap();
        let mut tx = w.begin();
        tx.create_table("orders", orders_schema(), &["id"]).unwrap();
        let all: Vec<i64> = (0..500).collect();
        tx.upsert("orders", orders(&all, 0)).unwrap();
        tx.commit().unwrap();
        model.extend(all.iter().map(|&i| (i, 0)));
    }
    // The model at each version, from version 1.
    let mut models = vec![model.clone()];
    // Each round updates keys earlier overlays of the generation wrote (so the commit must
    // retire their live rows), inserts new keys and deletes some.
    for round in 1..=6u64 {
        let up: Vec<i64> = (0..40)
            .map(|k| k * 3 + (round as i64 % 2))
            .chain([600 + round as i64])
            .collect();
        let dead = [200 + round as i64 * 7, 599 + round as i64];
        commit(&store, &mut model, round, &up, &dead);
        models.push(model.clone());
    }
    for (v, want) in models.iter().enumerate() {
        assert_eq!(
            scan(&store, v as u64 + 1),
            model_rows(want),
            "version {}",
            v + 1
        );
    }

    // A commit that fails (a duplicate key) changes nothing; the next writer goes on.
    {
        let mut w = store.writer_with(options()).unwrap();
        let mut tx = w.begin();
        let failed = match tx.upsert("orders", orders(&[1, 1], 9)) {
            Err(_) => true,
            Ok(_) => tx.commit().is_err(),
        };
        assert!(failed);
    }
    commit(&store, &mut model, 7, &[1, 3, 5], &[]);
    models.push(model.clone());

    // Rewound to version 4, the store forgets versions 5 to 8; the next writer appends to
    // version 4's overlay, not to what the last writer left.
    store.rewind(4).unwrap();
    models.truncate(4);
    let mut model = models[3].clone();
    commit(&store, &mut model, 8, &[0, 1, 2, 3, 4, 5, 601], &[6]);
    models.push(model.clone());

    // Another handle's writer commits; this handle's next writer sees its commit.
    {
        let other = Store::open(&path).unwrap();
        commit(&other, &mut model, 9, &[2, 4, 602], &[1]);
        models.push(model.clone());
    }
    commit(&store, &mut model, 10, &[2, 3, 4, 602], &[0]);
    models.push(model.clone());

    let reopened = Store::open(&path).unwrap();
    for (v, want) in models.iter().enumerate() {
        let want = model_rows(want);
        assert_eq!(scan(&reopened, v as u64 + 1), want, "version {}", v + 1);
        assert_eq!(scan(&store, v as u64 + 1), want, "version {}", v + 1);
    }
}
