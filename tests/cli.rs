//! The `reel` command line, end to end: the contract later checks use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{ids, orders};

fn reel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = reel(args);
    assert!(
        out.status.success(),
        "reel {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = reel(args);
    assert_eq!(out.status.code(), Some(1), "reel {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one-line error expected: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn write_arrow(path: &Path, batch: &arrow::array::RecordBatch) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = arrow::ipc::writer::FileWriter::try_new(f, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
}

/// A store at `dir/s` with an `orders` table (version 1) holding `ids` (version 2); returns
/// the store path and the Arrow file the rows came from.
fn seeded(dir: &Path, ids: &[i64]) -> (String, std::path::PathBuf) {
    let s = dir.join("s").to_str().unwrap().to_string();
    let first = dir.join("first.arrow");
    write_arrow(&first, &orders(ids, 0));
    ok(&["init", &s]);
    let schema_from = first.to_str().unwrap();
    assert_eq!(
        ok(&[
            "create",
            &s,
            "orders",
            "--key",
            "id",
            "--schema-from",
            schema_from
        ]),
        "1\n"
    );
    assert_eq!(
        ok(&[
            "commit",
            &s,
            "--upsert",
            &format!("orders={}", first.display())
        ]),
        "2\n"
    );
    (s, first)
}

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
    assert!(ok(&["versions", s]).contains("keyframe"));

    let stats: serde_json::Value =
        serde_json::from_str(&ok(&["stats", s, "--format", "json"])).unwrap();
    assert_eq!(stats["versions"], 3);
    assert!(stats["bytes_on_disk"].as_u64().unwrap() > 0);
    assert!(stats["logical_bytes"].as_u64().unwrap() > 0);
    assert!(ok(&["stats", s]).contains("sharing_ratio"));
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

#[test]
fn verify_names_the_newest_intact_version_and_exits_2_on_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    common::build_history(&path);
    let s = path.to_str().unwrap();
    let out = ok(&["verify", s]);
    assert!(out.contains("4 versions checked, 0 damaged"), "{out}");
    assert!(out.contains("newest intact version: 4"), "{out}");
    assert!(ok(&["verify", s, "--version", "2"]).contains("newest intact version: 2"));

    // Damage the newest version's record: only v4 is affected.
    let records = path.join("catalog/records.log");
    let mut bytes = std::fs::read(&records).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x01;
    std::fs::write(&records, &bytes).unwrap();
    let out = reel(&["verify", s]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("v4: "), "{text}");
    assert!(text.contains("1 damaged"), "{text}");
    assert!(text.contains("newest intact version: 3"), "{text}");
}

#[test]
fn rewind_purges_later_versions_and_can_find_the_last_good_one_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    common::build_history(&path);
    let s = path.to_str().unwrap();
    let out = ok(&["rewind", s, "--to", "3"]);
    assert!(
        out.contains("rewound to v3: 1 versions purged; the next commit is v4"),
        "{out}"
    );
    let listed = ok(&["versions", s]);
    let last = listed.lines().last().unwrap().split_whitespace().next();
    assert_eq!(last, Some("3"), "{listed}");
    assert!(fails(&["rewind", s, "--to", "7"]).contains("version 7"));
    // Damage v3's record (the newest): --to-last-good verifies and lands on v2.
    let records = path.join("catalog/records.log");
    let mut bytes = std::fs::read(&records).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x01;
    std::fs::write(&records, &bytes).unwrap();
    let out = ok(&["rewind", s, "--to-last-good"]);
    assert!(out.contains("rewound to v2"), "{out}");
    assert!(ok(&["verify", s]).contains("newest intact version: 2"));
}

#[test]
fn compact_rewrites_closed_generations_and_versions_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = common::build_history(&path);
    {
        // Close the generation: a forced keyframe.
        let store = reeldb::Store::open(&path).unwrap();
        let mut w = store.writer().unwrap();
        let mut tx = w.begin();
        tx.upsert("orders", orders(&[999], 9)).unwrap();
        tx.keyframe();
        tx.commit().unwrap();
    }
    let s = path.to_str().unwrap();
    let out = ok(&["compact", s]);
    assert!(
        out.contains("2 generations (2 versions) rewritten as B-frames"),
        "{out}"
    );
    assert!(out.contains("2 node logs deleted"), "{out}");
    let listed = ok(&["versions", s]);
    assert_eq!(listed.matches("bframe").count(), 2, "{listed}");
    let store = reeldb::Store::open(&path).unwrap();
    let now = common::read_all_canonical(&store);
    let then: Vec<_> = truth.iter().map(|v| common::canonical(v)).collect();
    assert_eq!(now[..4], then[..]);
    assert!(ok(&["verify", s]).contains("0 damaged"));
    // Thinning to one keyframe per 100 versions leaves only the newest.
    let out = ok(&["compact", s, "--keyframe-every", "100"]);
    assert!(out.contains("keyframes thinned"), "{out}");
    let listed = ok(&["versions", s]);
    assert_eq!(listed.matches("keyframe").count(), 1, "{listed}");
    let now = common::read_all_canonical(&store);
    assert_eq!(now[..4], then[..]);
    assert!(ok(&["verify", s]).contains("0 damaged"));
}

#[test]
fn expire_retires_old_versions_and_refuses_a_bad_choice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    common::build_history(&path);
    let s = path.to_str().unwrap();
    assert!(ok(&["expire", s, "--keep-last", "2"]).contains("2 versions expired (v1 to v2)"));
    let err = fails(&["scan", s, "orders", "--version", "1"]);
    assert!(err.contains("version 1 was expired"), "{err}");
    assert!(fails(&["expire", s, "--older-than", "3 weeks"]).contains("bad duration"));
    assert!(ok(&["expire", s, "--older-than", "1d"]).contains("0 versions expired"));
}
