//! A model workload for maintenance beside a live writer: one orders table, a round of
//! upserts and one delete per commit, and the rows each version must read.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use reeldb::{ScanOptions, Store, Writer, WriterOptions};

use super::{canonical, ids, orders, orders_schema, tiny_shape};

pub fn options() -> WriterOptions {
    WriterOptions::default()
        .tree_shape(tiny_shape())
        .keyframe_every(4)
        .max_pack_len(64 << 10)
}

/// The table's rows at one version: id -> the round that last wrote it.
pub type Model = BTreeMap<i64, u64>;

/// Commits round `round` (creating the table at round 0) and applies it to `model`.
pub fn commit_round(w: &mut Writer, model: &mut Model, round: u64) -> u64 {
    let mut tx = w.begin();
    if round == 0 {
        tx.create_table("orders", orders_schema(), &["id"]).unwrap();
        let all: Vec<i64> = (0..300).collect();
        tx.upsert("orders", orders(&all, 0)).unwrap();
        model.extend(all.iter().map(|&i| (i, 0)));
    } else {
        let lo = (round as i64 * 37) % 280;
        let up: Vec<i64> = (lo..lo + 20).collect();
        tx.upsert("orders", orders(&up, round)).unwrap();
        model.extend(up.iter().map(|&i| (i, round)));
        let gone = (lo + 90) % 300;
        tx.delete("orders", ids(&[gone])).unwrap();
        model.remove(&gone);
    }
    tx.commit().unwrap()
}

/// The rows `model` describes, canonical.
pub fn expected(model: &Model) -> RecordBatch {
    let mut by_round: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for (&id, &round) in model {
        by_round.entry(round).or_default().push(id);
    }
    let batches: Vec<RecordBatch> = by_round
        .iter()
        .map(|(&round, ids)| orders(ids, round))
        .collect();
    canonical(&batches)
}

pub fn scan(store: &Store, version: u64) -> RecordBatch {
    let t = store.snapshot(version).unwrap().table("orders").unwrap();
    let batches: Vec<RecordBatch> = t
        .scan(&ScanOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    canonical(&batches)
}

/// A store at `path` of `n` versions (rounds 0 to n - 1), and the rows each reads.
pub fn build_store(path: &std::path::Path, n: u64) -> Vec<Model> {
    let store = Store::create(path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    let mut model = Model::new();
    (0..n)
        .map(|round| {
            commit_round(&mut w, &mut model, round);
            model.clone()
        })
        .collect()
}
