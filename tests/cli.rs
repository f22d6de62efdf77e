//! The `reel` command line, end to end: the contract later checks use. Building and reading a
//! store, bad input, the demo, readers beside a writer, SQL, and export and import; schema
//! changes and maintenance have their own files (`cli_schema.rs`, `cli_maintenance.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cli::{fails, ok, seeded, write_arrow};
use common::{ids, orders};

#[test]
fn a_store_is_built_and_queried_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    let first = dir.path().join("first.arrow");
    write_arrow(&first, &orders(&[1, 2, 3, 4], 0));
    ok(&["init", s]);
    assert_eq!(
        ok(&[
            "create",
            s,
            "orders",
            "--key",
            "id",
            "--schema-from",
            first.to_str().unwrap()
        ]),
        "1\n"
    );
    let up = format!("orders={}", first.display());
    assert_eq!(
        ok(&[
            "commit",
            s,
            "--upsert",
            &up,
            "--source-offset",
            "10",
            "--meta",
            "label=load"
        ]),
        "2\n"
    );

    let csv = dir.path().join("more.csv");
    std::fs::write(
        &csv,
        "id,status,amount,note\n5,paid,7.5,\n2,shipped,1.25,hello\n",
    )
    .unwrap();
    let del = dir.path().join("gone.ndjson");
    std::fs::write(&del, "{\"id\": 1}\n{\"id\": 3}\n").unwrap();
    let v = ok(&[
        "commit",
        s,
        "--upsert",
        &format!("orders={}", csv.display()),
        "--delete",
        &format!("orders={}", del.display()),
        "--source-offset",
        "20",
        "--no-sync",
    ]);
    assert_eq!(v, "3\n");

    let scan = ok(&[
        "scan",
        s,
        "orders",
        "--format",
        "csv",
        "--columns",
        "id,status",
    ]);
    assert_eq!(scan, "id,status\n2,shipped\n4,paid\n5,paid\n");
    let old = ok(&[
        "scan",
        s,
        "orders",
        "--version",
        "2",
        "--format",
        "csv",
        "--columns",
        "id",
    ]);
    assert_eq!(old, "id\n1\n2\n3\n4\n");
    let at = ok(&[
        "scan",
        s,
        "orders",
        "--at-offset",
        "15",
        "--format",
        "csv",
        "--columns",
        "id",
        "--where",
        "id >= 3",
    ]);
    assert_eq!(at, "id\n3\n4\n");
    let json = ok(&[
        "scan",
        s,
        "orders",
        "--format",
        "json",
        "--where",
        "status = 'paid'",
        "--columns",
        "id,amount",
    ]);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{"id": 4, "amount": 6.0}, {"id": 5, "amount": 7.5}])
    );
    let out_file = dir.path().join("out.arrow");
    ok(&[
        "scan",
        s,
        "orders",
        "--format",
        "arrow",
        "--output",
        out_file.to_str().unwrap(),
    ]);
    let r = arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&out_file).unwrap(), None)
        .unwrap();
    assert_eq!(r.map(|b| b.unwrap().num_rows()).sum::<usize>(), 3);

    let got = ok(&["get", s, "orders", "2", "--format", "csv"]);
    assert_eq!(got, "id,status,amount,note\n2,shipped,1.25,hello\n");
    let missing = fails(&["get", s, "orders", "1"]);
    assert!(missing.contains("no row with key"), "{missing}");
    ok(&["get", s, "orders", "1", "--version", "2"]);

    let versions: serde_json::Value =
        serde_json::from_str(&ok(&["versions", s, "--format", "json"])).unwrap();
    let list = versions.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[1]["version"], 2);
    assert_eq!(list[1]["kind"], "keyframe");
    assert_eq!(list[1]["source_offset"], 10);
    assert_eq!(list[0]["source_offset"], serde_json::Value::Null);
    assert_eq!(list[1]["meta"]["label"], "load");
    assert!(
        chrono::DateTime::parse_from_rfc3339(list[2]["committed_at"].as_str().unwrap()).is_ok()
    );
    let when = list[1]["committed_at"].as_str().unwrap().to_string();
    let as_of = ok(&[
        "scan",
        s,
        "orders",
        "--as-of",
        &when,
        "--format",
        "csv",
        "--columns",
        "id",
    ]);
    assert_eq!(as_of, old);
    // A date (midnight UTC) as SQL and Python take it: a day before any commit.
    let too_early = fails(&["scan", s, "orders", "--as-of", "2000-01-01"]);
    assert!(too_early.contains("2000-01-01"), "{too_early}");
    let bad = fails(&["scan", s, "orders", "--as-of", "yesterday"]);
    assert!(bad.contains("YYYY-MM-DD"), "{bad}");
    assert!(ok(&["versions", s]).contains("keyframe"));

    let stats: serde_json::Value =
        serde_json::from_str(&ok(&["stats", s, "--format", "json"])).unwrap();
    assert_eq!(stats["versions"], 3);
    assert!(stats["bytes_on_disk"].as_u64().unwrap() > 0);
    assert!(stats["logical_bytes"].as_u64().unwrap() > 0);
    assert!(ok(&["stats", s]).contains("sharing_ratio"));
    // Where the bytes go: every column of the table, each with an encoding and its bytes.
    let space = stats["column_space"].as_array().unwrap();
    let id = space
        .iter()
        .find(|c| c["table"] == "orders" && c["column"] == "id")
        .unwrap();
    assert!(["delta", "frame-of-reference"].contains(&id["encoding"].as_str().unwrap()));
    assert!(id["bytes"].as_u64().unwrap() > 0 && id["blocks"].as_u64().unwrap() > 0);
    let blocks: u64 = space.iter().map(|c| c["blocks"].as_u64().unwrap()).sum();
    assert_eq!(blocks, stats["blocks_stored"].as_u64().unwrap());
    assert!(ok(&["stats", s]).contains("orders.id"));
    assert!(ok(&["tables", s]).contains("orders\t3 rows"));
}

#[test]
fn replace_from_parquet_computes_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = seeded(dir.path(), &[1, 2, 3]);
    let s = s.as_str();
    let pq = dir.path().join("state.parquet");
    let batch = orders(&[2, 3, 9], 1);
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&pq).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    assert_eq!(
        ok(&[
            "commit",
            s,
            "--replace",
            &format!("orders={}", pq.display())
        ]),
        "3\n"
    );
    assert_eq!(
        ok(&["scan", s, "orders", "--format", "csv", "--columns", "id"]),
        "id\n2\n3\n9\n"
    );
}

#[test]
fn bad_input_exits_one_with_a_one_line_message_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (s, first) = seeded(dir.path(), &[1, 2]);
    let s = s.as_str();

    let keys_only = dir.path().join("keys.arrow");
    write_arrow(&keys_only, &ids(&[1]));
    fails(&[
        "commit",
        s,
        "--upsert",
        &format!("orders={}", keys_only.display()),
    ]);
    let dup = dir.path().join("dup.csv");
    std::fs::write(&dup, "id,status,amount,note\n7,new,1,\n7,paid,2,\n").unwrap();
    assert!(
        fails(&[
            "commit",
            s,
            "--upsert",
            &format!("orders={}", dup.display())
        ])
        .contains("duplicate key (7)")
    );
    let null_key = dir.path().join("null.ndjson");
    std::fs::write(&null_key, "{\"id\": null, \"status\": \"new\"}\n").unwrap();
    assert!(
        fails(&[
            "commit",
            s,
            "--upsert",
            &format!("orders={}", null_key.display())
        ])
        .contains("null")
    );
    fails(&[
        "commit",
        s,
        "--upsert",
        &format!("nope={}", first.display()),
    ]);
    fails(&["commit", s, "--upsert", "orders=/no/such/file.arrow"]);
    fails(&["commit", s, "--upsert", "orders=file.xlsx"]);
    fails(&["scan", s, "orders", "--version", "9"]);
    fails(&["scan", s, "orders", "--where", "id ~ 3"]);
    fails(&["scan", s, "nope"]);
    fails(&["get", s, "orders", "x"]);
    fails(&["versions", dir.path().join("missing").to_str().unwrap()]);
    fails(&["init", s]);
    ok(&["commit", s, "--source-offset", "5"]);
    assert!(fails(&["commit", s, "--source-offset", "5"]).contains("does not grow"));
    {
        let store = reeldb::Store::open(s).unwrap();
        let _held = store.writer().unwrap();
        assert!(fails(&["commit", s]).contains("another writer"));
    }
    let versions: serde_json::Value =
        serde_json::from_str(&ok(&["versions", s, "--format", "json"])).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 3);
    assert_eq!(
        ok(&["scan", s, "orders", "--format", "csv", "--columns", "id"]),
        "id\n1\n2\n"
    );
}

#[test]
fn a_store_url_this_build_cannot_open_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    // Run where a relative `s3:` directory would land if the URL were taken as a path.
    for args in [
        vec!["init", "s3://bucket/prefix"],
        vec!["versions", "s3://bucket/prefix"],
        vec!["scan", "hdfs://namenode/store", "orders"],
        vec!["init", "file://otherhost/srv/store"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_reel"))
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "reel {args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(args[1]), "the error names the URL: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A file:// URL names a local directory.
    let store = dir.path().join("local");
    let url = format!("file://{}", store.display());
    ok(&["init", &url]);
    assert_eq!(
        ok(&["versions", store.to_str().unwrap(), "--format", "json"]),
        "[]\n"
    );
}

#[test]
fn the_demo_runs_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let out = ok(&[
        "demo",
        d.to_str().unwrap(),
        "--orders",
        "5000",
        "--batches",
        "5",
        "--events",
        "2000",
    ]);
    assert!(out.contains("folded 15000 events into 6 versions"), "{out}");
    assert!(out.contains("history of order 5001"), "{out}");
    let versions: serde_json::Value =
        serde_json::from_str(&ok(&["versions", d.to_str().unwrap(), "--format", "json"])).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 6);
}

#[test]
fn reader_processes_see_whole_versions_while_the_writer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = reeldb::Store::create(&path).unwrap();
    let mut w = store
        .writer_with(reeldb::WriterOptions::default().tree_shape(common::tiny_shape()))
        .unwrap();
    let mut tx = w.begin();
    tx.create_table("orders", common::orders_schema(), &["id"])
        .unwrap();
    tx.upsert("orders", orders(&(0..100).collect::<Vec<_>>(), 0))
        .unwrap();
    tx.commit().unwrap();
    let s = path.to_str().unwrap().to_string();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..15 {
            let out = ok(&["scan", &s, "orders", "--format", "csv", "--columns", "id"]);
            let ids: Vec<i64> = out.lines().skip(1).map(|l| l.parse().unwrap()).collect();
            // Version v holds exactly the ids 0..99+v: anything else is a torn read.
            assert_eq!(ids, (0..ids.len() as i64).collect::<Vec<_>>());
            seen.push(ids.len());
        }
        seen
    });
    for v in 2..60i64 {
        let mut tx = w.begin();
        tx.upsert("orders", orders(&[98 + v], 0)).unwrap();
        tx.commit().unwrap();
    }
    let seen = reader.join().unwrap();
    assert!(seen.iter().all(|&n| (100..=158).contains(&n)), "{seen:?}");
}

/// One row per case of a table holding every column type ReelDB stores, nulls included.
fn every_type() -> arrow::array::RecordBatch {
    use arrow::array::*;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    let n = 5;
    let nulls = |i: usize| i % 3 != 1;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("i8", DataType::Int8, true),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("u8", DataType::UInt8, true),
        Field::new("u16", DataType::UInt16, true),
        Field::new("u32", DataType::UInt32, true),
        Field::new("u64", DataType::UInt64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("text", DataType::Utf8, true),
        Field::new("day", DataType::Date32, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("price", DataType::Decimal128(18, 4), true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| i as i64 * 7 - 10),
        )),
        Arc::new(Int8Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(i as i8 - 100)),
        )),
        Arc::new(Int16Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(i as i16 * -300)),
        )),
        Arc::new(Int32Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(i as i32 * 70_000)),
        )),
        Arc::new(UInt8Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(250 - i as u8)),
        )),
        Arc::new(UInt16Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(i as u16 * 9000)),
        )),
        Arc::new(UInt32Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(u32::MAX - i as u32)),
        )),
        Arc::new(UInt64Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(u64::MAX / (i as u64 + 1))),
        )),
        Arc::new(Float32Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(i as f32 / 3.0)),
        )),
        Arc::new(Float64Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(-(i as f64) / 7.0)),
        )),
        Arc::new(BooleanArray::from_iter(
            (0..n).map(|i| nulls(i).then_some(i % 2 == 0)),
        )),
        Arc::new(StringArray::from_iter(
            (0..n).map(|i| nulls(i).then(|| format!("é \"q\", {i}"))),
        )),
        Arc::new(Date32Array::from_iter(
            (0..n).map(|i| nulls(i).then_some(20_000 + i as i32)),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter(
                (0..n).map(|i| nulls(i).then_some(1_767_225_600_123_456 + i as i64)),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(
            Decimal128Array::from_iter((0..n).map(|i| nulls(i).then_some(i as i128 * 12_345_678)))
                .with_precision_and_scale(18, 4)
                .unwrap(),
        ),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

#[test]
fn export_then_import_round_trips_every_type_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let s = source.to_str().unwrap();
    let input = dir.path().join("input.arrow");
    let rows = every_type();
    write_arrow(&input, &rows);
    ok(&["init", s]);
    assert_eq!(
        ok(&[
            "import",
            s,
            "things",
            input.to_str().unwrap(),
            "--key",
            "id"
        ]),
        "1\n"
    );
    for ext in ["parquet", "arrow", "csv", "ndjson"] {
        let file = dir.path().join(format!("things.{ext}"));
        let said = ok(&["export", s, "things", "--output", file.to_str().unwrap()]);
        assert!(said.starts_with("5 rows of things at version 1"), "{said}");
        // Into a store of its own: created from the file where it carries the schema, else
        // from the original schema first.
        let target = dir.path().join(format!("target-{ext}"));
        let t = target.to_str().unwrap();
        ok(&["init", t]);
        if matches!(ext, "csv" | "ndjson") {
            ok(&[
                "create",
                t,
                "things",
                "--key",
                "id",
                "--schema-from",
                input.to_str().unwrap(),
            ]);
            assert_eq!(ok(&["import", t, "things", file.to_str().unwrap()]), "2\n");
        } else {
            assert_eq!(
                ok(&["import", t, "things", file.to_str().unwrap(), "--key", "id"]),
                "1\n"
            );
        }
        let store = reeldb::Store::open(&target).unwrap();
        let table = store.latest().unwrap().table("things").unwrap();
        let back: Vec<_> = table
            .scan(&reeldb::ScanOptions::new().in_key_order())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let back = arrow::compute::concat_batches(&table.schema(), &back).unwrap();
        assert_eq!(back.schema().fields().len(), rows.num_columns(), "{ext}");
        for (c, f) in rows.schema().fields().iter().enumerate() {
            assert_eq!(
                back.column(c).data_type(),
                f.data_type(),
                "{ext}: {}",
                f.name()
            );
            assert_eq!(
                back.column(c).to_data(),
                rows.column(c).to_data(),
                "{ext}: column {}",
                f.name()
            );
        }
    }
    // A file of another extension is refused and nothing is written.
    let bad = dir.path().join("things.xlsx");
    assert!(
        fails(&["export", s, "things", "--output", bad.to_str().unwrap()])
            .contains("unknown file type")
    );
    assert!(!bad.exists());
    // Importing into a missing table without a key is refused and commits nothing.
    assert!(fails(&["import", s, "other", input.to_str().unwrap()]).contains("--key"));
    assert!(ok(&["versions", s]).lines().count() <= 3);
}

#[cfg(feature = "sql")]
#[test]
fn sql_runs_one_query_in_each_format_or_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    common::build_history(&path);
    let s = path.to_str().unwrap();
    let q = "SELECT count(*) AS n FROM orders VERSION AS OF 1";
    assert!(ok(&["sql", s, q]).contains("| 200 |"));
    assert_eq!(ok(&["sql", s, q, "--format", "csv"]), "n\n200\n");
    assert_eq!(
        ok(&["sql", s, q, "--format", "json"]).trim(),
        r#"[{"n":200}]"#
    );
    assert_eq!(
        ok(&[
            "sql",
            s,
            "SELECT count(*) AS n FROM orders",
            "--version",
            "1",
            "--format",
            "csv"
        ]),
        "n\n200\n"
    );
    let out = dir.path().join("n.arrow");
    ok(&[
        "sql",
        s,
        q,
        "--format",
        "arrow",
        "--output",
        out.to_str().unwrap(),
    ]);
    let r =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&out).unwrap(), None).unwrap();
    assert_eq!(r.map(|b| b.unwrap().num_rows()).sum::<usize>(), 1);
    let err = fails(&["sql", s, "SELECT * FROM orders VERSION AS OF 99"]);
    assert!(
        err.contains("unknown version 99 (the store has versions 1..=4)"),
        "{err}"
    );

    // The shell: dot commands, a statement over two lines, an error that does not end it.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["sql", s])
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(
                b".tables\n.schema orders\n.versions\nSELECT count(*)\n  FROM orders;\n\
                  SELECT * FROM nope;\n.quit\n",
            )
            .unwrap();
    }
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success());
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(text.contains("orders\t"), "{text}");
    assert!(text.contains("id\tInt64 not null  (key)"), "{text}");
    assert!(text.contains("4\toverlay"), "{text}");
    assert!(text.contains("(1 rows)"), "{text}");
    assert!(
        text.contains("error: ")
            && text.contains("nope")
            && text.contains("tables at version 4: orders"),
        "{text}"
    );
}

#[test]
fn commit_patch_changes_the_files_columns_and_refuses_an_absent_key() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = seeded(dir.path(), &[1, 2, 3]);
    let s = s.as_str();
    let before = ok(&["scan", s, "orders", "--format", "csv"]);
    let patch = dir.path().join("patch.csv");
    std::fs::write(&patch, "id,status\n2,cancelled\n").unwrap();
    ok(&[
        "commit",
        s,
        "--patch",
        &format!("orders={}", patch.display()),
    ]);
    let after = ok(&["scan", s, "orders", "--format", "csv"]);
    // Only row 2's status changed.
    let changed: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "{before}\n{after}");
    assert!(changed[0].0.starts_with("2,") && changed[0].1.starts_with("2,cancelled,"));
    assert_eq!(
        changed[0].0.split(',').skip(2).collect::<Vec<_>>(),
        changed[0].1.split(',').skip(2).collect::<Vec<_>>(),
        "the columns the file lacks keep their values"
    );
    let versions = ok(&["versions", s]);
    let absent = dir.path().join("absent.csv");
    std::fs::write(&absent, "id,status\n2,paid\n99,paid\n").unwrap();
    assert!(
        fails(&[
            "commit",
            s,
            "--patch",
            &format!("orders={}", absent.display())
        ])
        .contains("key (99) is not in table orders")
    );
    let unknown = dir.path().join("unknown.csv");
    std::fs::write(&unknown, "id,colour\n2,red\n").unwrap();
    assert!(
        fails(&[
            "commit",
            s,
            "--patch",
            &format!("orders={}", unknown.display())
        ])
        .contains("no column colour")
    );
    assert_eq!(ok(&["versions", s]), versions, "nothing committed");
}
