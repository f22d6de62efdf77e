//! The Store / Writer / Snapshot API, behaviour by behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use common::{id_column, ids, orders, orders_schema};
use rayon::prelude::*;
use reeldb::{Error, Filter, ScanOptions, Store, WriterOptions};

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    (dir, store)
}

fn scan_ids(store: &Store, version: u64) -> Vec<i64> {
    let t = store.snapshot(version).unwrap().table("orders").unwrap();
    let batches: Vec<RecordBatch> = t
        .scan(&ScanOptions::new())
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    id_column(&batches)
}

fn seeded(store: &Store, n: i64) -> u64 {
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("orders", orders_schema(), &["id"]).unwrap();
    tx.upsert("orders", orders(&(0..n).collect::<Vec<_>>(), 0))
        .unwrap();
    tx.commit().unwrap()
}

#[test]
fn versions_are_dense_from_one_and_every_version_stays_readable() {
    let (_d, store) = new_store();
    assert_eq!(seeded(&store, 100), 1);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[100, 101], 1)).unwrap();
    assert_eq!(tx.commit().unwrap(), 2);
    let mut tx = w.begin();
    tx.delete("orders", ids(&[0, 50])).unwrap();
    assert_eq!(tx.commit().unwrap(), 3);
    drop(w);
    let store = Store::open(store.path()).unwrap();
    assert_eq!(store.latest_version().unwrap(), 3);
    assert_eq!(scan_ids(&store, 1), (0..100).collect::<Vec<_>>());
    assert_eq!(scan_ids(&store, 2), (0..102).collect::<Vec<_>>());
    let v3: Vec<i64> = (0..102).filter(|i| *i != 0 && *i != 50).collect();
    assert_eq!(scan_ids(&store, 3), v3);
}

#[test]
fn an_upsert_overwrites_the_row_with_the_same_key() {
    let (_d, store) = new_store();
    seeded(&store, 10);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[3], 9)).unwrap();
    tx.commit().unwrap();
    let t = store.latest().unwrap().table("orders").unwrap();
    assert_eq!(t.num_rows(), 10);
    let row = t.get(3i64).unwrap().unwrap();
    assert_eq!(row, orders(&[3], 9));
    let old = store.snapshot(1).unwrap().table("orders").unwrap();
    assert_eq!(old.get(3i64).unwrap().unwrap(), orders(&[3], 0));
}

#[test]
fn replace_keeps_exactly_the_given_state() {
    let (_d, store) = new_store();
    seeded(&store, 50);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    let mut next: Vec<i64> = (10..60).collect();
    next.reverse();
    tx.replace("orders", vec![orders(&next, 0)]).unwrap();
    tx.commit().unwrap();
    assert_eq!(scan_ids(&store, 2), (10..60).collect::<Vec<_>>());
    let t = store.latest().unwrap().table("orders").unwrap();
    assert!(t.get(5i64).unwrap().is_none());
    assert_eq!(t.get(55i64).unwrap().unwrap(), orders(&[55], 0));
}

#[test]
fn projection_and_filters_return_only_matching_rows_and_columns() {
    let (_d, store) = new_store();
    seeded(&store, 30_000);
    let t = store.latest().unwrap().table("orders").unwrap();
    let opts = ScanOptions::new()
        .columns(&["amount", "id"])
        .filter(Filter::between("id", 100, 199));
    let batches: Vec<RecordBatch> = t.scan(&opts).unwrap().map(|b| b.unwrap()).collect();
    assert_eq!(batches[0].schema().field(0).name(), "amount");
    assert_eq!(batches[0].num_columns(), 2);
    assert_eq!(id_column(&batches), (100..200).collect::<Vec<_>>());
    let shipped = ScanOptions::new().filter(Filter::eq("status", "shipped"));
    let n: usize = t
        .scan(&shipped)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(n, (0..30_000).filter(|i| i % 3 == 2).count());
    let few = ScanOptions::new().filter(Filter::is_in("id", [7, 29_999, 40_000]));
    assert_eq!(
        id_column(
            &t.scan(&few)
                .unwrap()
                .map(|b| b.unwrap())
                .collect::<Vec<_>>()
        ),
        vec![7, 29_999]
    );
    let lt = ScanOptions::new()
        .columns(&["id"])
        .filter(Filter::lt("amount", 3.0));
    assert_eq!(
        id_column(&t.scan(&lt).unwrap().map(|b| b.unwrap()).collect::<Vec<_>>()),
        vec![0, 1]
    );
}

#[test]
fn a_parallel_scan_returns_the_same_rows_as_a_serial_one() {
    let (_d, store) = new_store();
    seeded(&store, 50_000);
    let t = store.latest().unwrap().table("orders").unwrap();
    let opts = ScanOptions::new().filter(Filter::ge("id", 1_000));
    let mut par = id_column(
        &t.par_scan(&opts)
            .unwrap()
            .map(|b| b.unwrap())
            .collect::<Vec<_>>(),
    );
    par.sort_unstable();
    assert_eq!(par, (1_000..50_000).collect::<Vec<_>>());
}

#[test]
fn a_read_ahead_scan_returns_the_serial_scans_batches_in_the_same_order() {
    let (_d, store) = new_store();
    let keyframe = seeded(&store, 50_000);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.upsert(
        "orders",
        orders(&(0..60_000).step_by(7).collect::<Vec<_>>(), 1),
    )
    .unwrap();
    let gone: Vec<i64> = (0..50_000).filter(|i| i % 11 == 1 && i % 7 != 0).collect();
    tx.delete("orders", ids(&gone)).unwrap();
    let overlay = tx.commit().unwrap();
    let serial = ScanOptions::new()
        .columns(&["id", "status"])
        .filter(Filter::ge("id", 1_000));
    for version in [keyframe, overlay] {
        let t = store.snapshot(version).unwrap().table("orders").unwrap();
        let scan = |opts: &ScanOptions| -> Vec<RecordBatch> {
            t.scan(opts).unwrap().map(|b| b.unwrap()).collect()
        };
        let expected = scan(&serial);
        assert!(expected.len() > 2, "the case needs several leaves");
        assert_eq!(scan(&serial.clone().in_parallel()), expected);
        // Joined across leaf boundaries: the same rows in the same order, every batch but
        // the last at least the size asked.
        for opts in [
            serial.clone().in_batches_of(20_000),
            serial.clone().in_parallel().in_batches_of(20_000),
        ] {
            let joined = scan(&opts);
            assert!(joined.len() < expected.len());
            assert!(
                joined[..joined.len() - 1]
                    .iter()
                    .all(|b| b.num_rows() >= 20_000)
            );
            let schema = expected[0].schema();
            assert_eq!(
                arrow::compute::concat_batches(&schema, &joined).unwrap(),
                arrow::compute::concat_batches(&schema, &expected).unwrap()
            );
        }
    }
}

#[test]
fn filters_on_unprojected_string_columns_match_the_same_rows_as_on_projected_ones() {
    let (_d, store) = new_store();
    let keyframe = seeded(&store, 20_000);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.upsert(
        "orders",
        orders(&(0..25_000).step_by(7).collect::<Vec<_>>(), 3),
    )
    .unwrap();
    let overlay = tx.commit().unwrap();
    let filters = [
        Filter::eq("status", "shipped"),
        Filter::lt("status", "p"),
        Filter::between("status", "a", "o"),
        Filter::is_in("status", ["new", "shipped", "absent"]),
    ];
    for version in [keyframe, overlay] {
        let t = store.snapshot(version).unwrap().table("orders").unwrap();
        for f in &filters {
            // Filtered alone, the column is read as a dictionary; projected, as values.
            let alone = ScanOptions::new().columns(&["id"]).filter(f.clone());
            let projected = ScanOptions::new()
                .columns(&["id", "status"])
                .filter(f.clone());
            let ids = |o: &ScanOptions| -> Vec<i64> {
                let mut v = id_column(&t.scan(o).unwrap().map(|b| b.unwrap()).collect::<Vec<_>>());
                v.sort_unstable();
                v
            };
            let want = ids(&projected);
            assert!(!want.is_empty(), "{f:?} matches something");
            assert_eq!(ids(&alone), want, "{f:?} at v{version}");
            assert_eq!(
                ids(&alone.clone().in_key_order()),
                want,
                "{f:?} in key order"
            );
        }
    }
}

#[test]
fn a_dictionary_scan_returns_the_same_rows_with_strings_as_dictionaries() {
    let (_d, store) = new_store();
    let keyframe = seeded(&store, 30_000);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.upsert(
        "orders",
        orders(&(0..40_000).step_by(9).collect::<Vec<_>>(), 2),
    )
    .unwrap();
    let overlay = tx.commit().unwrap();
    let plain = ScanOptions::new().filter(Filter::ge("id", 100));
    for version in [keyframe, overlay] {
        let t = store.snapshot(version).unwrap().table("orders").unwrap();
        for opts in [
            plain.clone(),
            plain.clone().in_key_order(),
            plain.clone().in_parallel(),
        ] {
            let expected: Vec<RecordBatch> = t.scan(&opts).unwrap().map(|b| b.unwrap()).collect();
            let scan = t.scan(&opts.clone().with_dictionaries()).unwrap();
            let schema = scan.schema();
            let got: Vec<RecordBatch> = scan.map(|b| b.unwrap()).collect();
            for (f, plain_f) in schema.fields().iter().zip(orders_schema().fields()) {
                match plain_f.data_type() {
                    DataType::Utf8 => assert!(matches!(f.data_type(), DataType::Dictionary(..))),
                    t => assert_eq!(f.data_type(), t),
                }
            }
            let back: Vec<RecordBatch> = got
                .iter()
                .map(|b| {
                    let cols = b
                        .columns()
                        .iter()
                        .zip(orders_schema().fields())
                        .map(|(c, f)| arrow::compute::cast(c, f.data_type()).unwrap())
                        .collect();
                    RecordBatch::try_new(orders_schema(), cols).unwrap()
                })
                .collect();
            assert_eq!(
                arrow::compute::concat_batches(&orders_schema(), &back).unwrap(),
                arrow::compute::concat_batches(&orders_schema(), &expected).unwrap(),
                "v{version}"
            );
        }
    }
}

#[test]
fn a_range_scan_runs_in_key_order_both_ways() {
    let (_d, store) = new_store();
    seeded(&store, 40_000);
    let t = store.latest().unwrap().table("orders").unwrap();
    let fwd: Vec<RecordBatch> = t
        .range(5_000i64..25_000)
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    assert_eq!(id_column(&fwd), (5_000..25_000).collect::<Vec<_>>());
    let back: Vec<RecordBatch> = t
        .range(5_000i64..=25_000)
        .unwrap()
        .rev()
        .map(|b| b.unwrap())
        .collect();
    assert_eq!(id_column(&back), (5_000..=25_000).rev().collect::<Vec<_>>());
    let tail: Vec<RecordBatch> = t.range(39_990i64..).unwrap().map(|b| b.unwrap()).collect();
    assert_eq!(id_column(&tail), (39_990..40_000).collect::<Vec<_>>());
    assert_eq!(t.range(50_000i64..).unwrap().count(), 0);
    let mut both = t.range(..10i64).unwrap();
    assert!(both.next().is_some());
    assert!(both.next_back().is_none() || both.next().is_none());
}

#[test]
fn versions_are_found_by_time_and_by_source_offset() {
    let (_d, store) = new_store();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("orders", orders_schema(), &["id"]).unwrap();
    tx.source_offset(10).meta("label", "first");
    tx.commit().unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[1], 0)).unwrap();
    tx.commit().unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[2], 0)).unwrap();
    tx.source_offset(30);
    tx.commit().unwrap();
    assert_eq!(
        store.snapshot_at_offset(9).unwrap_err().to_string(),
        "no version at or before source offset 9"
    );
    assert_eq!(store.snapshot_at_offset(10).unwrap().version(), 2);
    assert_eq!(store.snapshot_at_offset(29).unwrap().version(), 2);
    assert_eq!(store.snapshot_at_offset(1_000).unwrap().version(), 3);
    assert_eq!(store.latest_source_offset().unwrap(), Some(30));
    let infos = store.versions().unwrap();
    assert_eq!(
        infos[0].meta.get("label").map(String::as_str),
        Some("first")
    );
    assert!(
        infos
            .windows(2)
            .all(|w| w[0].committed_at < w[1].committed_at)
    );
    assert_eq!(
        store
            .snapshot_as_of(infos[1].committed_at)
            .unwrap()
            .version(),
        2
    );
    let before = infos[0].committed_at - chrono::Duration::seconds(1);
    assert!(matches!(
        store.snapshot_as_of(before),
        Err(Error::NoVersionBefore(_))
    ));
    let mut tx = w.begin();
    tx.source_offset(30);
    assert!(matches!(
        tx.commit(),
        Err(Error::SourceOffsetRegressed {
            offered: 30,
            last: 30,
            version: 3
        })
    ));
}

fn assert_unchanged(store: &Store, version: u64, rows: u64) {
    assert_eq!(store.latest_version().unwrap(), version);
    assert_eq!(
        store.latest().unwrap().table("orders").unwrap().num_rows(),
        rows
    );
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let (_d, store) = new_store();
    seeded(&store, 10);
    let mut w = store.writer().unwrap();

    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)])),
        vec![Arc::new(arrow::array::Int32Array::from(vec![1]))],
    )
    .unwrap();
    assert!(matches!(
        w.begin().upsert("orders", wrong),
        Err(Error::SchemaMismatch { .. })
    ));

    let mut tx = w.begin();
    tx.upsert("orders", orders(&[20, 21, 20], 0)).unwrap();
    let err = tx.commit().unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateKey { key, .. } if key == "(20)"),
        "{err}"
    );
    assert_unchanged(&store, 1, 10);

    let mut tx = w.begin();
    tx.upsert("orders", orders(&[30], 0)).unwrap();
    tx.delete("orders", ids(&[30])).unwrap();
    assert!(matches!(tx.commit(), Err(Error::DuplicateKey { .. })));
    assert_unchanged(&store, 1, 10);

    let null_key = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![Some(1), None]))],
    )
    .unwrap();
    assert!(matches!(
        w.begin().delete("orders", null_key),
        Err(Error::NullValue { row: 1, .. })
    ));
    let mut null_status = orders(&[40], 0).columns().to_vec();
    null_status[1] = Arc::new(arrow::array::StringArray::from(vec![None::<&str>]));
    let loose = Arc::new(Schema::new(
        orders_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let null_status = RecordBatch::try_new(loose, null_status).unwrap();
    assert!(matches!(
        w.begin().upsert("orders", null_status),
        Err(Error::NullValue { ref column, .. }) if column == "status"
    ));
    assert_unchanged(&store, 1, 10);

    assert!(matches!(
        w.begin().upsert("nope", orders(&[1], 0)),
        Err(Error::UnknownTable { .. })
    ));
    assert!(matches!(
        w.begin().create_table("orders", orders_schema(), &["id"]),
        Err(Error::TableExists(_))
    ));
    assert!(matches!(
        w.begin().create_table("t2", orders_schema(), &["amount"]),
        Err(Error::SchemaMismatch { .. })
    ));
    assert!(matches!(
        store.snapshot(2),
        Err(Error::UnknownVersion {
            version: 2,
            latest: 1
        })
    ));
    assert!(matches!(
        store.snapshot(0),
        Err(Error::UnknownVersion { .. })
    ));
    assert!(matches!(
        store.latest().unwrap().table("nope"),
        Err(Error::UnknownTable { .. })
    ));
    let t = store.latest().unwrap().table("orders").unwrap();
    assert!(t.get(("a", 1)).is_err());
    assert!(t.scan(&ScanOptions::new().columns(&["nope"])).is_err());
    assert!(
        t.scan(&ScanOptions::new().filter(Filter::eq("id", "x")))
            .is_err()
    );

    // The writer still works after all of that.
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[10], 0)).unwrap();
    assert_eq!(tx.commit().unwrap(), 2);
    assert_unchanged(&store, 2, 11);
}

#[test]
fn a_second_writer_is_refused_until_the_first_is_dropped() {
    let (_d, store) = new_store();
    let w = store.writer().unwrap();
    let again = Store::open(store.path()).unwrap();
    assert!(matches!(again.writer(), Err(Error::WriterLocked(_))));
    drop(w);
    assert!(again.writer().is_ok());
}

#[test]
fn readers_keep_the_version_they_opened_while_the_writer_commits() {
    let (_d, store) = new_store();
    seeded(&store, 1_000);
    let reader = Store::open(store.path()).unwrap();
    let snap = reader.latest().unwrap();
    let mut w = store
        .writer_with(WriterOptions::default().sync(false))
        .unwrap();
    for round in 1..5u64 {
        let mut tx = w.begin();
        tx.delete("orders", ids(&[round as i64])).unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(snap.table("orders").unwrap().num_rows(), 1_000);
    assert_eq!(
        reader.latest().unwrap().table("orders").unwrap().num_rows(),
        996
    );
    let t = snap.table("orders").unwrap();
    let batches: Vec<RecordBatch> = t
        .par_scan(&ScanOptions::new())
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1_000);
}

#[test]
fn an_empty_table_scans_to_nothing_and_gets_nothing() {
    let (_d, store) = new_store();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("orders", orders_schema(), &["id"]).unwrap();
    tx.commit().unwrap();
    let t = store.latest().unwrap().table("orders").unwrap();
    assert_eq!(t.num_rows(), 0);
    assert_eq!(t.scan(&ScanOptions::new()).unwrap().count(), 0);
    assert!(t.get(1i64).unwrap().is_none());
    assert_eq!(t.range(0i64..).unwrap().count(), 0);
    let mut tx = w.begin();
    tx.delete("orders", ids(&[1])).unwrap();
    tx.commit().unwrap();
    let t = store.latest().unwrap().table("orders").unwrap();
    assert_eq!(t.num_rows(), 0);
    assert_eq!(t.key_columns(), ["id"]);
    assert_eq!(t.name(), "orders");
}

#[test]
fn composite_string_and_int_keys_sort_and_get() {
    let (_d, store) = new_store();
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, false),
        Field::new("seq", DataType::UInt32, false),
        Field::new("v", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(arrow::array::StringArray::from(vec!["b", "a", "b", "a"])),
            Arc::new(arrow::array::UInt32Array::from(vec![1, 2, 0, 1])),
            Arc::new(Int64Array::from(vec![10, 20, 30, 40])),
        ],
    )
    .unwrap();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("ledger", schema, &["account", "seq"])
        .unwrap();
    tx.upsert("ledger", batch).unwrap();
    tx.commit().unwrap();
    let t = store.latest().unwrap().table("ledger").unwrap();
    let row = t.get(("b", 0u32)).unwrap().unwrap();
    let v = row
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(v, 30);
    assert!(t.get(("c", 0u32)).unwrap().is_none());
    let all: Vec<RecordBatch> = t
        .range(("a", 2u32)..("b", 1u32))
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let vs: Vec<i64> = all
        .iter()
        .flat_map(|b| {
            b.column(2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(vs, vec![20, 30]);
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().metadata().unwrap().len()).sum())
        .unwrap_or(0)
}

#[test]
fn a_one_key_commit_over_a_large_overlay_writes_what_it_changes_not_the_overlay_again() {
    let (_d, store) = new_store();
    seeded(&store, 100_000);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.upsert(
        "orders",
        orders(&(0..20_000).map(|i| i * 5).collect::<Vec<_>>(), 1),
    )
    .unwrap();
    tx.commit().unwrap();
    let versions = store.versions().unwrap();
    assert_eq!(versions.last().unwrap().kind, reeldb::VersionKind::Overlay);
    let overlays = store.path().join("overlays");
    let before = dir_bytes(&overlays);
    let mut tx = w.begin();
    tx.upsert("orders", orders(&[42], 2)).unwrap();
    tx.commit().unwrap();
    let written = dir_bytes(&overlays) - before;
    // One version delta: one ordinal shadowed, no row retired (key 42 had no overlay row).
    assert!(
        written < 256,
        "a one-key overlay commit wrote {written} node-log bytes (the overlay's: {before})"
    );
    assert!(
        before > 20 * written,
        "the first overlay's delta ({before} bytes) should dwarf one key's ({written})"
    );
    let t = store.latest().unwrap().table("orders").unwrap();
    assert_eq!(t.get(42i64).unwrap().unwrap(), orders(&[42], 2));
    assert_eq!(t.get(40i64).unwrap().unwrap(), orders(&[40], 1));
    assert_eq!(t.get(41i64).unwrap().unwrap(), orders(&[41], 0));
    assert_eq!(t.num_rows(), 100_000);
}

#[test]
fn a_store_is_created_only_in_a_missing_or_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    Store::create(dir.path().join("new")).unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    Store::create(dir.path().join("empty")).unwrap();
    // A second create on a store, or on any directory with something in it, is refused and
    // leaves what is there alone.
    for name in ["new", "busy"] {
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("keep.txt"), b"mine").unwrap();
        let before: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(matches!(Store::create(&path), Err(Error::AlreadyExists(_))));
        let after: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(before.len(), after.len(), "{name}");
    }
    assert!(Store::open(dir.path().join("new")).is_ok());
    assert!(matches!(
        Store::open(dir.path().join("busy")),
        Err(Error::NotAStore(_))
    ));
}

#[test]
fn strings_in_another_layout_are_stored_as_the_table_declares_them() {
    let (_dir, store) = new_store();
    seeded(&store, 3);
    // Polars and DataFusion hand strings over as views; large offsets are the same strings too.
    let batch = orders(&[1, 7], 5);
    let cast_strings = |to: &DataType| {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Utf8 => arrow::compute::cast(c, to).unwrap(),
                _ => c.clone(),
            })
            .collect();
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    };
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", cast_strings(&DataType::Utf8View))
        .unwrap();
    let v = tx.commit().unwrap();
    let mut tx = w.begin();
    tx.upsert("orders", cast_strings(&DataType::LargeUtf8))
        .unwrap();
    let v2 = tx.commit().unwrap();
    // Dictionary-encoded strings (pyarrow categoricals, Parquet dictionary pages) too.
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut tx = w.begin();
    tx.upsert("orders", cast_strings(&dictionary)).unwrap();
    let v3 = tx.commit().unwrap();
    for version in [v2, v3] {
        let t = store.snapshot(version).unwrap().table("orders").unwrap();
        assert_eq!(t.get(7i64).unwrap().unwrap(), orders(&[7], 5), "v{version}");
    }
    let t = store.snapshot(v).unwrap().table("orders").unwrap();
    let row = t.get(7i64).unwrap().unwrap();
    assert_eq!(row.schema(), orders_schema());
    assert_eq!(row, orders(&[7], 5));
    // A different logical type is still refused.
    let mut tx = w.begin();
    let err = tx
        .upsert("orders", cast_strings(&DataType::Binary))
        .unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
}

#[test]
fn a_store_of_an_older_format_is_refused_with_what_to_do() {
    let (dir, store) = new_store();
    seeded(&store, 10);
    drop(store);
    // Rewrite the descriptor as format 6 wrote it: magic, version 6, features, checksum.
    let path = dir.path().join("s").join("STORE");
    let mut d = std::fs::read(&path).unwrap();
    d[8..12].copy_from_slice(&6u32.to_le_bytes());
    let sum = reeldb_keyframe::format::checksum(&d[..16]);
    d[16..24].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&path, &d).unwrap();
    match Store::open(dir.path().join("s")) {
        Err(
            e @ Error::UnsupportedFormat {
                found: 6,
                current: 7,
                ..
            },
        ) => {
            let text = e.to_string();
            assert!(text.contains("version 6") && text.contains("7"), "{text}");
            assert!(
                text.contains("reel export") && text.contains("reel import"),
                "{text}"
            );
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}

#[test]
fn a_table_created_with_dictionary_columns_stores_their_value_type() {
    let (_dir, store) = new_store();
    let fields: Vec<Field> = orders_schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::Int8),
                Box::new(DataType::Utf8),
            )),
            _ => f.as_ref().clone(),
        })
        .collect();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("orders", Arc::new(Schema::new(fields)), &["id"])
        .unwrap();
    tx.upsert("orders", orders(&[1, 2, 3], 1)).unwrap();
    let v = tx.commit().unwrap();
    let t = store.snapshot(v).unwrap().table("orders").unwrap();
    assert_eq!(t.schema(), orders_schema());
    assert_eq!(t.get(2i64).unwrap().unwrap(), orders(&[2], 1));
}
