//! Shared helpers for the integration tests: a small orders table and batch builders.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

#[cfg(feature = "object-store")]
pub mod in_memory;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// id int64 (key), status utf8, amount float64, note utf8 (nullable).
pub fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// Rows for `ids` whose values derive from the id and a `round` salt.
pub fn orders(ids: &[i64], round: u64) -> RecordBatch {
    let status: Vec<String> = ids
        .iter()
        .map(|&i| ["new", "paid", "shipped"][((i as u64 + round) % 3) as usize].to_string())
        .collect();
    let amount: Vec<f64> = ids
        .iter()
        .map(|&i| (i as f64) * 1.5 + round as f64)
        .collect();
    let note: Vec<Option<String>> = ids
        .iter()
        .map(|&i| (i % 7 != 0).then(|| format!("note-{i}-{round}")))
        .collect();
    RecordBatch::try_new(
        orders_schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(status)),
            Arc::new(Float64Array::from(amount)),
            Arc::new(StringArray::from(note)),
        ],
    )
    .unwrap()
}

/// A batch of just the `id` key column.
pub fn ids(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap()
}

/// All `id` values of a sequence of batches, in order.
pub fn id_column(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            (0..c.len()).map(move |i| c.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

/// Sums the `amount` column of a batch sequence (nulls skipped).
pub fn amount_sum(batches: &[RecordBatch]) -> f64 {
    batches
        .iter()
        .map(|b| {
            let c = b
                .column_by_name("amount")
                .unwrap()
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            c.iter().flatten().sum::<f64>()
        })
        .sum()
}

/// Rows for `ids` where each row's values derive from its id and its own salt.
pub fn orders_salted(ids: &[i64], salts: &[u64]) -> RecordBatch {
    let parts: Vec<RecordBatch> = ids
        .iter()
        .zip(salts)
        .map(|(&i, &s)| orders(&[i], s))
        .collect();
    arrow::compute::concat_batches(&orders_schema(), &parts).unwrap()
}

/// A tree shape with tiny leaves and nodes, so a few hundred rows make a deep tree.
pub fn tiny_shape() -> reeldb::TreeShape {
    reeldb::TreeShape {
        min_leaf_rows: 6,
        leaf_boundary_mask: 7,
        max_leaf_rows: 12,
        min_fanout: 2,
        fanout_mask: 3,
        max_fanout: 6,
    }
}

/// Every version's full contents (table "orders"), or the first error.
pub fn read_all(store: &reeldb::Store) -> Result<Vec<Vec<RecordBatch>>, reeldb::Error> {
    let latest = store.latest_version()?;
    (1..=latest)
        .map(|v| {
            let t = store.snapshot(v)?.table("orders")?;
            t.scan(&reeldb::ScanOptions::new())?
                .collect::<Result<Vec<_>, _>>()
        })
        .collect()
}

/// A store at `path` with four versions of "orders" in tiny leaves: a keyframe of 200 rows,
/// then three overlays of 30 upserts and a delete each. Returns every version's contents.
pub fn build_history(path: &std::path::Path) -> Vec<Vec<RecordBatch>> {
    let store = reeldb::Store::create(path).unwrap();
    write_history(&store);
    read_all(&store).unwrap()
}

/// Writes [`build_history`]'s four versions to `store`, which must be empty.
pub fn write_history(store: &reeldb::Store) {
    let mut w = store
        .writer_with(
            reeldb::WriterOptions::default()
                .tree_shape(tiny_shape())
                .min_overlay_rows(0),
        )
        .unwrap();
    let mut tx = w.begin();
    tx.create_table("orders", orders_schema(), &["id"]).unwrap();
    tx.upsert("orders", orders(&(0..200).collect::<Vec<_>>(), 0))
        .unwrap();
    tx.commit().unwrap();
    for round in 1..4u64 {
        let mut tx = w.begin();
        let lo = round as i64 * 40;
        tx.upsert("orders", orders(&(lo..lo + 30).collect::<Vec<_>>(), round))
            .unwrap();
        tx.delete("orders", ids(&[round as i64])).unwrap();
        tx.commit().unwrap();
    }
}

/// A version's rows as one batch sorted by id: how rows compare regardless of how a scan
/// split them into batches or ordered them.
pub fn canonical(batches: &[RecordBatch]) -> RecordBatch {
    let all = arrow::compute::concat_batches(&orders_schema(), batches).unwrap();
    let order = arrow::compute::sort_to_indices(all.column(0), None, None).unwrap();
    arrow::compute::take_record_batch(&all, &order).unwrap()
}

/// Every version's rows, canonical (see [`canonical`]).
pub fn read_all_canonical(store: &reeldb::Store) -> Vec<RecordBatch> {
    read_all(store)
        .unwrap()
        .iter()
        .map(|v| canonical(v))
        .collect()
}

/// Copies the directory tree `from` to `to` (a store, to start each case from one state).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// For child processes: a flag that turns true once the parent closes our stdin (how parents
/// here tell a child to finish and report).
pub fn stop_when_stdin_closes() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    stop
}

pub mod workload;

pub mod beside;

pub mod cli;
