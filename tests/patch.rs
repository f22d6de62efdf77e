//! Partial updates: `Transaction::patch` changes the columns it names of existing rows and
//! leaves the others as they were, at keyframes, overlays and B-frames alike; every kind of
//! bad patch is a typed error and commits nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use arrow::array::{Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use common::{orders, orders_schema, read_all_canonical, tiny_shape};
use reeldb::{Error, Store, WriterOptions};

fn store_with_orders(rows: i64) -> (tempfile::TempDir, Store, reeldb::Writer) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let options = WriterOptions::default()
        .tree_shape(tiny_shape())
        .keyframe_every(4);
    let mut w = store.writer_with(options).unwrap();
    let mut tx = w.begin();
    tx.create_table("orders", orders_schema(), &["id"]).unwrap();
    tx.upsert("orders", orders(&(0..rows).collect::<Vec<_>>(), 0))
        .unwrap();
    tx.commit().unwrap();
    (dir, store, w)
}

/// A patch of `amount` for `ids`.
fn amounts(ids: &[i64], amount: f64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Float64Array::from(vec![amount; ids.len()])),
        ],
    )
    .unwrap()
}

fn row(store: &Store, v: u64, id: i64) -> Option<RecordBatch> {
    store
        .snapshot(v)
        .unwrap()
        .table("orders")
        .unwrap()
        .get(id)
        .unwrap()
}

fn amount_of(b: &RecordBatch) -> f64 {
    b.column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .value(0)
}

#[test]
fn a_patch_changes_the_columns_it_names_and_keeps_the_others() {
    let (_dir, store, mut w) = store_with_orders(50);
    let mut tx = w.begin();
    tx.patch("orders", amounts(&[3, 7, 11], 99.5)).unwrap();
    let v = tx.commit().unwrap();
    for id in [3, 7, 11] {
        let before = row(&store, 1, id).unwrap();
        let after = row(&store, v, id).unwrap();
        assert_eq!(amount_of(&after), 99.5);
        // Every other column as it was.
        for c in [0, 1, 3] {
            assert_eq!(after.column(c), before.column(c), "column {c} of id {id}");
        }
    }
    // Rows it did not name are untouched, and earlier versions read as before.
    assert_eq!(row(&store, v, 4), row(&store, 1, 4));
    assert_eq!(amount_of(&row(&store, 1, 3).unwrap()), 4.5);
}

#[test]
fn patches_read_the_same_at_keyframes_overlays_and_b_frames() {
    let (_dir, store, mut w) = store_with_orders(200);
    // Patches over several generations: overlays, then keyframes every 4 commits.
    for round in 1..=12i64 {
        let ids: Vec<i64> = (0..20).map(|i| (i * 7 + round * 13) % 200).collect();
        let mut tx = w.begin();
        tx.patch("orders", amounts(&ids, round as f64)).unwrap();
        tx.commit().unwrap();
    }
    let truth = read_all_canonical(&store);
    w.compact(&mut |_, _| {}).unwrap();
    w.thin(100).unwrap();
    w.clean(0.0).unwrap();
    assert_eq!(read_all_canonical(&store), truth);
    // The last patch of each id is what the latest version holds.
    let latest = store.latest_version().unwrap();
    for round in 1..=12i64 {
        for id in (0..20).map(|i| (i * 7 + round * 13) % 200) {
            let later = (round + 1..=12).any(|r| (0..20).any(|i| (i * 7 + r * 13) % 200 == id));
            if !later {
                assert_eq!(amount_of(&row(&store, latest, id).unwrap()), round as f64);
            }
        }
    }
}

#[test]
fn a_patch_sees_the_tables_schema_after_an_alter_in_the_same_commit() {
    let (_dir, store, mut w) = store_with_orders(10);
    let mut tx = w.begin();
    tx.add_column(
        "orders",
        Field::new("tier", DataType::Utf8, true),
        Some("basic"),
    )
    .unwrap();
    let tiers = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("tier", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(StringArray::from(vec!["gold"])),
        ],
    )
    .unwrap();
    tx.patch("orders", tiers).unwrap();
    let v = tx.commit().unwrap();
    let t = store.snapshot(v).unwrap().table("orders").unwrap();
    let tier = |id: i64| {
        let r = t.get(id).unwrap().unwrap();
        let c = r.column_by_name("tier").unwrap().clone();
        c.as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0)
            .to_string()
    };
    assert_eq!(
        (tier(2), tier(3)),
        ("gold".to_string(), "basic".to_string())
    );
}

/// Commits `patch` and expects it refused with an error `is` accepts; the store is unchanged.
fn refused(
    patch: impl FnOnce(&mut reeldb::Transaction<'_>) -> reeldb::Result<()>,
    is: fn(&Error) -> bool,
) {
    let (_dir, store, mut w) = store_with_orders(20);
    let before = read_all_canonical(&store);
    let mut tx = w.begin();
    let outcome = patch(&mut tx).and_then(|_| tx.commit().map(|_| ()));
    match outcome {
        Err(e) => assert!(is(&e), "unexpected error {e:?}"),
        Ok(()) => panic!("the patch was committed"),
    }
    assert_eq!(store.latest_version().unwrap(), 1);
    assert_eq!(read_all_canonical(&store), before);
    // The writer goes on.
    let mut tx = w.begin();
    tx.patch("orders", amounts(&[1], 1.0)).unwrap();
    assert_eq!(tx.commit().unwrap(), 2);
}

#[test]
fn a_patch_of_an_absent_key_is_refused_naming_the_key() {
    refused(
        |tx| tx.patch("orders", amounts(&[5, 404], 1.0)).map(|_| ()),
        |e| matches!(e, Error::KeyNotFound { table, key } if table == "orders" && key.contains("404")),
    );
}

#[test]
fn a_patch_naming_an_unknown_column_is_refused() {
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("colour", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["red"])),
        ],
    )
    .unwrap();
    refused(
        |tx| tx.patch("orders", bad).map(|_| ()),
        |e| matches!(e, Error::UnknownColumn { column, .. } if column == "colour"),
    );
}

#[test]
fn a_patch_without_the_key_is_refused() {
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "amount",
            DataType::Float64,
            true,
        )])),
        vec![Arc::new(Float64Array::from(vec![1.0]))],
    )
    .unwrap();
    refused(
        |tx| tx.patch("orders", bad).map(|_| ()),
        |e| matches!(e, Error::SchemaMismatch { reason, .. } if reason.contains("key column id")),
    );
}

#[test]
fn a_patch_of_a_type_that_does_not_cast_is_refused() {
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("amount", DataType::Int32, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int32Array::from(vec![7])),
        ],
    )
    .unwrap();
    refused(
        |tx| tx.patch("orders", bad).map(|_| ()),
        |e| matches!(e, Error::SchemaMismatch { reason, .. } if reason.contains("amount")),
    );
}

#[test]
fn a_patch_nulling_a_non_nullable_column_is_refused() {
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("status", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec![None::<&str>])),
        ],
    )
    .unwrap();
    refused(
        |tx| tx.patch("orders", bad).map(|_| ()),
        |e| matches!(e, Error::NullValue { column, .. } if column == "status"),
    );
}

#[test]
fn a_key_patched_and_upserted_in_one_commit_is_a_duplicate() {
    refused(
        |tx| {
            tx.patch("orders", amounts(&[3], 1.0))?;
            tx.upsert("orders", orders(&[3], 9))?;
            Ok(())
        },
        |e| matches!(e, Error::DuplicateKey { .. }),
    );
}

#[test]
fn a_patch_of_an_unknown_table_is_refused() {
    refused(
        |tx| tx.patch("nope", amounts(&[1], 1.0)).map(|_| ()),
        |e| matches!(e, Error::UnknownTable { .. }),
    );
}
