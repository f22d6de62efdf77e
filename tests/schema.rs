//! Schema evolution and table lifecycle: each change is a version, versions before it read
//! with their own schema, no stored block is rewritten, and bad changes are refused with a
//! typed error that leaves the store unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use arrow::array::{Array, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::array_value_to_string;
use reeldb::{ColumnChange, Error, Filter, ScanOptions, Store, WriterOptions};

fn accounts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("balance", DataType::Int32, true),
        Field::new("rate", DataType::Float32, true),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn accounts(ids: &[i64], round: i32) -> RecordBatch {
    RecordBatch::try_new(
        accounts_schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Int32Array::from(
                ids.iter()
                    .map(|&i| i as i32 * 10 + round)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float32Array::from(
                ids.iter().map(|&i| i as f32 / 4.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                ids.iter().map(|&i| format!("a{i}")).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// A store whose `accounts` table has 0..n at version 1, with leaves of a few rows so that
/// later changes rewrite some leaves and reuse the others.
fn seeded(n: i64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let mut w = store
        .writer_with(WriterOptions::default().tree_shape(common::tiny_shape()))
        .unwrap();
    let mut tx = w.begin();
    tx.create_table("accounts", accounts_schema(), &["id"])
        .unwrap();
    tx.upsert("accounts", accounts(&(0..n).collect::<Vec<_>>(), 0))
        .unwrap();
    tx.commit().unwrap();
    (dir, store)
}

/// Bytes of the pack files of the store `seeded` made in `dir`.
fn pack_bytes(dir: &tempfile::TempDir) -> u64 {
    std::fs::read_dir(dir.path().join("s").join("packs"))
        .unwrap()
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum()
}

/// Every row of `table` at version `v`, in key order, as "name=value" lists, and the
/// column names.
fn rows(store: &Store, v: u64, table: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let t = store.snapshot(v).unwrap().table(table).unwrap();
    let names: Vec<String> = t
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    let mut out = Vec::new();
    for b in t.scan(&ScanOptions::new().in_key_order()).unwrap() {
        let b = b.unwrap();
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| array_value_to_string(c.as_ref(), r).unwrap())
                    .collect(),
            );
        }
    }
    (names, out)
}

#[test]
fn an_added_column_reads_as_its_default_in_rows_written_before_and_old_versions_lack_it() {
    let (_d, store) = seeded(40);
    let before = rows(&store, 1, "accounts");
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.add_column(
        "accounts",
        Field::new("tier", DataType::Utf8, true),
        Some("basic"),
    )
    .unwrap();
    let v2 = tx.commit().unwrap();
    // Rows in the new schema: one upserted (an overlay), others as they were.
    let mut tx = w.begin();
    let schema = store
        .snapshot(v2)
        .unwrap()
        .table("accounts")
        .unwrap()
        .schema();
    let row = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![5])),
            Arc::new(Int32Array::from(vec![Some(7)])),
            Arc::new(Float32Array::from(vec![Some(0.5)])),
            Arc::new(StringArray::from(vec!["five"])),
            Arc::new(StringArray::from(vec![Some("gold")])),
        ],
    )
    .unwrap();
    tx.upsert("accounts", row).unwrap();
    let v3 = tx.commit().unwrap();

    assert_eq!(rows(&store, 1, "accounts"), before);
    let (names, at2) = rows(&store, v2, "accounts");
    assert_eq!(names.last().unwrap(), "tier:Utf8");
    assert!(at2.iter().all(|r| r[4] == "basic"), "{at2:?}");
    let (_, at3) = rows(&store, v3, "accounts");
    assert_eq!(at3[5], vec!["5", "7", "0.5", "five", "gold"]);
    assert_eq!(at3[6][4], "basic");
    // Gets and filters see the default too.
    let t = store.snapshot(v3).unwrap().table("accounts").unwrap();
    let got = t.get(6).unwrap().unwrap();
    assert_eq!(
        array_value_to_string(got.column(4).as_ref(), 0).unwrap(),
        "basic"
    );
    let gold: usize = t
        .scan(&ScanOptions::new().filter(Filter::eq("tier", "gold")))
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(gold, 1);
    let basic: usize = t
        .scan(&ScanOptions::new().filter(Filter::eq("tier", "basic")))
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(basic, 39);
}

#[test]
fn a_dropped_column_is_gone_from_later_versions_and_still_read_by_earlier_ones() {
    let (_d, store) = seeded(30);
    let before = rows(&store, 1, "accounts");
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.drop_column("accounts", "rate").unwrap();
    let v2 = tx.commit().unwrap();
    let mut tx = w.begin();
    let schema = store
        .snapshot(v2)
        .unwrap()
        .table("accounts")
        .unwrap()
        .schema();
    let batch = accounts(&[3, 31], 9);
    let batch = RecordBatch::try_new(
        schema,
        vec![
            batch.column(0).clone(),
            batch.column(1).clone(),
            batch.column(3).clone(),
        ],
    )
    .unwrap();
    tx.upsert("accounts", batch).unwrap();
    tx.keyframe();
    let v3 = tx.commit().unwrap();
    assert_eq!(rows(&store, 1, "accounts"), before);
    let (names, at3) = rows(&store, v3, "accounts");
    assert_eq!(names, vec!["id:Int64", "balance:Int32", "name:Utf8"]);
    assert_eq!(at3.len(), 31);
    assert_eq!(at3[3], vec!["3", "39", "a3"]);
    assert_eq!(at3[4], vec!["4", "40", "a4"]);
    // Version 1 still reads the dropped column, from leaves written before and after.
    assert_eq!(rows(&store, 1, "accounts"), before);
}

#[test]
fn a_renamed_column_keeps_its_values_under_the_new_name_only_from_the_rename_on() {
    let (_d, store) = seeded(20);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.rename_column("accounts", "balance", "cents").unwrap();
    tx.rename_column("accounts", "id", "account_id").unwrap();
    let v2 = tx.commit().unwrap();
    let (names1, rows1) = rows(&store, 1, "accounts");
    let (names2, rows2) = rows(&store, v2, "accounts");
    assert_eq!(names1[1], "balance:Int32");
    assert_eq!(names2[0], "account_id:Int64");
    assert_eq!(names2[1], "cents:Int32");
    assert_eq!(rows1, rows2);
    let t = store.snapshot(v2).unwrap().table("accounts").unwrap();
    assert_eq!(t.key_columns(), ["account_id".to_string()]);
    assert!(t.get(3).unwrap().is_some());
}

#[test]
fn a_widened_column_reads_every_old_value_exactly_and_filters_across_both_widths() {
    let (_d, store) = seeded(50);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.widen_column("accounts", "balance", DataType::Int64)
        .unwrap();
    tx.widen_column("accounts", "rate", DataType::Float64)
        .unwrap();
    tx.widen_column("accounts", "name", DataType::LargeUtf8)
        .unwrap();
    let v2 = tx.commit().unwrap();
    // A value only the wide type holds, in a rewritten leaf.
    let schema = store
        .snapshot(v2)
        .unwrap()
        .table("accounts")
        .unwrap()
        .schema();
    let big = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![10])),
            Arc::new(Int64Array::from(vec![Some(5_000_000_000)])),
            Arc::new(arrow::array::Float64Array::from(vec![Some(0.1)])),
            Arc::new(arrow::array::LargeStringArray::from(vec![Some("ten")])),
        ],
    )
    .unwrap();
    let mut tx = w.begin();
    tx.upsert("accounts", big).unwrap();
    tx.keyframe();
    let v3 = tx.commit().unwrap();
    let (names, at2) = rows(&store, v2, "accounts");
    assert_eq!(
        names,
        vec![
            "id:Int64",
            "balance:Int64",
            "rate:Float64",
            "name:LargeUtf8"
        ]
    );
    let (_, at1) = rows(&store, 1, "accounts");
    assert_eq!(at1, at2, "widening changes no value");
    let t = store.snapshot(v3).unwrap().table("accounts").unwrap();
    let count = |f: Filter| -> usize {
        t.scan(&ScanOptions::new().filter(f))
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum()
    };
    // Zone maps of the narrow leaves are not compared with wide values.
    assert_eq!(count(Filter::gt("balance", 4_000_000_000i64)), 1);
    // Ids 0..=10 had balances up to 100; id 10's is now five billion.
    assert_eq!(count(Filter::le("balance", 100i64)), 10);
    // Version 1 still reads int32.
    let old = store.snapshot(1).unwrap().table("accounts").unwrap();
    assert_eq!(old.schema().field(1).data_type(), &DataType::Int32);
    let got = old.get(10).unwrap().unwrap();
    assert_eq!(
        got.column(1)
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .value(0),
        100
    );
}

#[test]
fn a_dropped_table_is_gone_from_later_versions_and_a_renamed_one_answers_to_its_new_name() {
    let (_d, store) = seeded(10);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("other", accounts_schema(), &["id"])
        .unwrap();
    tx.upsert("other", accounts(&[1, 2], 0)).unwrap();
    let v2 = tx.commit().unwrap();
    let mut tx = w.begin();
    tx.drop_table("other").unwrap();
    tx.rename_table("accounts", "customers").unwrap();
    let v3 = tx.commit().unwrap();
    // The freed name can be taken again: a new table with a new id.
    let mut tx = w.begin();
    tx.create_table("accounts", accounts_schema(), &["id"])
        .unwrap();
    let v4 = tx.commit().unwrap();
    let at3 = store.snapshot(v3).unwrap();
    assert_eq!(at3.table_names(), vec!["customers".to_string()]);
    assert!(matches!(
        at3.table("other"),
        Err(Error::UnknownTable { .. })
    ));
    assert_eq!(
        rows(&store, v3, "customers").1,
        rows(&store, 1, "accounts").1
    );
    assert_eq!(rows(&store, v2, "other").1.len(), 2);
    let at4 = store.snapshot(v4).unwrap();
    assert_eq!(at4.table("accounts").unwrap().num_rows(), 0);
    assert_ne!(
        at4.table("accounts").unwrap().id(),
        at4.table("customers").unwrap().id()
    );
}

#[test]
fn bad_schema_changes_are_refused_by_name_and_write_nothing() {
    let (_d, store) = seeded(10);
    let mut w = store.writer().unwrap();
    let mut refused = |change: ColumnChange| -> Error {
        let mut tx = w.begin();
        tx.alter("accounts", change).unwrap_err()
    };
    assert!(matches!(
        refused(ColumnChange::Drop("nope".into())),
        Error::UnknownColumn { column, .. } if column == "nope"
    ));
    assert!(matches!(
        refused(ColumnChange::Add { field: Field::new("name", DataType::Utf8, true), default: None }),
        Error::ColumnExists { column, .. } if column == "name"
    ));
    assert!(matches!(
        refused(ColumnChange::Widen { column: "balance".into(), to: DataType::Int16 }),
        Error::NotAWidening { column, .. } if column == "balance"
    ));
    assert!(matches!(
        refused(ColumnChange::Add {
            field: Field::new("n", DataType::Int32, true),
            default: Some("lots".into())
        }),
        Error::BadDefault { value, .. } if value == "lots"
    ));
    assert!(matches!(
        refused(ColumnChange::Drop("id".into())),
        Error::KeyColumnChange { column, .. } if column == "id"
    ));
    assert!(matches!(
        refused(ColumnChange::Widen {
            column: "id".into(),
            to: DataType::Int64
        }),
        Error::KeyColumnChange { .. }
    ));
    assert!(matches!(
        refused(ColumnChange::Rename {
            from: "rate".into(),
            to: "name".into()
        }),
        Error::ColumnExists { .. }
    ));
    assert!(matches!(
        refused(ColumnChange::Add {
            field: Field::new("req", DataType::Int32, false),
            default: None
        }),
        Error::SchemaMismatch { .. }
    ));
    let mut tx = w.begin();
    assert!(matches!(
        tx.drop_column("nothing", "x"),
        Err(Error::UnknownTable { .. })
    ));
    tx.create_table("other", accounts_schema(), &["id"])
        .unwrap();
    assert!(matches!(
        tx.rename_table("accounts", "other"),
        Err(Error::TableExists(_))
    ));
    drop(tx);
    assert_eq!(w.version(), 1);
    assert_eq!(store.latest_version().unwrap(), 1);
    assert_eq!(
        rows(&store, 1, "accounts").0,
        vec!["id:Int64", "balance:Int32", "rate:Float32", "name:Utf8"]
    );
}

#[test]
fn changing_a_schema_writes_a_version_record_and_no_data() {
    let (d, store) = seeded(2000);
    let before = pack_bytes(&d);
    let mut w = store.writer().unwrap();
    for change in [
        ColumnChange::Add {
            field: Field::new("x", DataType::Int64, true),
            default: Some("0".into()),
        },
        ColumnChange::Drop("rate".into()),
        ColumnChange::Rename {
            from: "name".into(),
            to: "label".into(),
        },
        ColumnChange::Widen {
            column: "balance".into(),
            to: DataType::Int64,
        },
    ] {
        let mut tx = w.begin();
        tx.alter("accounts", change).unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(pack_bytes(&d), before);
}

#[test]
fn compaction_and_thinning_across_schema_changes_leave_every_version_reading_the_same() {
    let (_d, store) = seeded(60);
    let mut w = store
        .writer_with(
            WriterOptions::default()
                .tree_shape(common::tiny_shape())
                .keyframe_every(3),
        )
        .unwrap();
    let mut round = 1;
    let mut commit_rows = |w: &mut reeldb::Writer, ids: &[i64]| {
        let v = w.version();
        let schema = store
            .snapshot(v)
            .unwrap()
            .table("accounts")
            .unwrap()
            .schema();
        let base = accounts(ids, round);
        round += 1;
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let c = base
                    .column_by_name(f.name())
                    .cloned()
                    .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), ids.len()));
                arrow::compute::cast(&c, f.data_type()).unwrap()
            })
            .collect();
        let mut tx = w.begin();
        tx.upsert("accounts", RecordBatch::try_new(schema, columns).unwrap())
            .unwrap();
        tx.commit().unwrap();
    };
    for i in 0..4 {
        commit_rows(&mut w, &[i, 30 + i]);
    }
    let mut tx = w.begin();
    tx.add_column(
        "accounts",
        Field::new("tier", DataType::Int32, true),
        Some("1"),
    )
    .unwrap();
    tx.commit().unwrap();
    for i in 4..8 {
        commit_rows(&mut w, &[i, 40 + i]);
    }
    let mut tx = w.begin();
    tx.widen_column("accounts", "balance", DataType::Int64)
        .unwrap();
    tx.drop_column("accounts", "rate").unwrap();
    tx.commit().unwrap();
    for i in 8..14 {
        commit_rows(&mut w, &[i, 50 + i]);
    }
    let latest = w.version();
    let all = |store: &Store| {
        (1..=latest)
            .map(|v| rows(store, v, "accounts"))
            .collect::<Vec<_>>()
    };
    let before = all(&store);
    let report = w.compact(&mut |_, _| {}).unwrap();
    assert!(report.generations > 0, "{report:?}");
    assert_eq!(all(&store), before);
    w.thin(4).unwrap();
    assert_eq!(all(&store), before);
    w.clean(0.0).unwrap();
    assert_eq!(all(&store), before);
    assert!(store.verify(1..=latest, &mut |_| {}).unwrap().is_intact());
    for v in 1..latest {
        let changes = store.changes("accounts", v, v + 1).unwrap();
        assert!(changes.num_rows() <= 2, "v{v}: {}", changes.num_rows());
    }
}

#[test]
fn a_dropped_tables_space_is_reclaimed_once_no_kept_version_reads_it() {
    let (d, store) = seeded(10);
    let packs = || pack_bytes(&d);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("big", accounts_schema(), &["id"]).unwrap();
    tx.upsert("big", accounts(&(0..20_000).collect::<Vec<_>>(), 3))
        .unwrap();
    tx.commit().unwrap();
    let mut tx = w.begin();
    tx.drop_table("big").unwrap();
    let dropped_at = tx.commit().unwrap();
    let with_big = packs();
    // While a kept version reads it, cleaning keeps it.
    w.clean(0.0).unwrap();
    assert!(store.snapshot(2).unwrap().table("big").is_ok());
    w.expire(reeldb::Expiry::Before(dropped_at), &[]).unwrap();
    w.clean(0.0).unwrap();
    assert!(
        packs() * 4 < with_big,
        "{} bytes of packs left of {with_big}",
        packs()
    );
    assert_eq!(rows(&store, dropped_at, "accounts").1.len(), 10);
}

#[test]
fn two_tables_can_swap_names_in_one_commit() {
    let (_d, store) = seeded(5);
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("b", accounts_schema(), &["id"]).unwrap();
    tx.upsert("b", accounts(&[100], 0)).unwrap();
    tx.commit().unwrap();
    let mut tx = w.begin();
    tx.rename_table("b", "tmp").unwrap();
    tx.rename_table("accounts", "b").unwrap();
    tx.rename_table("tmp", "accounts").unwrap();
    let v = tx.commit().unwrap();
    assert_eq!(rows(&store, v, "accounts").1.len(), 1);
    assert_eq!(rows(&store, v, "b").1.len(), 5);
}
