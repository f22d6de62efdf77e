//! The figures the SQL issue asks for, in one run, on the workload of the earlier issues
//! (1,000,000 rows, 100 versions of uniform 1% / 0.2% / 0.1% changes, default policy, then
//! `compact`):
//!
//! 1. `SELECT status, count(*), sum(amount) FROM t VERSION AS OF v GROUP BY status` through
//!    ReelDB's DataFusion table at a keyframe, an overlay and a B-frame version, against the
//!    same query in DataFusion over a Parquet file of that version's state and over an
//!    in-memory table of it (same session settings); ratios to the in-memory time.
//! 2. `reel_changes` between adjacent versions (overlays of the open generation, B-frames of a
//!    closed one) against the full-scan diff of the same two versions (`changes_by_full_scan`,
//!    two key-ordered scans merged); ratio.
//!
//! `cargo bench --bench sql` (`REELDB_BENCH_ROWS` shrinks it).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use reeldb::sql::SqlSession;
use reeldb::{Store, VersionKind};
use support::*;

const VERSIONS: u64 = 100;

fn query(table: &str, version: Option<u64>) -> String {
    let clause = version.map_or(String::new(), |v| format!(" VERSION AS OF {v}"));
    format!(
        "SELECT status, count(*) AS n, sum(amount) AS total FROM {table}{clause} GROUP BY status"
    )
}

/// The query's result as status -> (count, sum), for comparing engines.
fn groups(batches: &[RecordBatch]) -> std::collections::BTreeMap<String, (i64, f64)> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int64Type};
    let mut out = std::collections::BTreeMap::new();
    for b in batches {
        // DataFusion reads Parquet strings as views; compare as plain strings.
        let status = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        for r in 0..b.num_rows() {
            out.insert(
                status.as_string::<i32>().value(r).to_string(),
                (
                    b.column(1).as_primitive::<Int64Type>().value(r),
                    b.column(2).as_primitive::<Float64Type>().value(r),
                ),
            );
        }
    }
    out
}

fn same(
    a: &std::collections::BTreeMap<String, (i64, f64)>,
    b: &std::collections::BTreeMap<String, (i64, f64)>,
) {
    assert_eq!(a.len(), b.len());
    for (k, (n, s)) in a {
        let (m, t) = b[k];
        assert_eq!(*n, m, "count of {k}");
        assert!((s - t).abs() <= 1e-6 * s.abs().max(1.0), "sum of {k}");
    }
}

fn write_parquet(path: &std::path::Path, state: &RecordBatch) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, state.schema(), Some(props)).unwrap();
    w.write(state).unwrap();
    w.close().unwrap();
}

fn kind_of(store: &Store, v: u64) -> (VersionKind, &'static str) {
    let kind = store.versions().unwrap()[v as usize - 1].kind;
    (kind, kind.as_str())
}

/// One row of the Q1 table: ReelDB at `v` against DataFusion over Parquet and in memory.
fn q1_figures(store: &Store, dir: &std::path::Path, v: u64, state: &RecordBatch) -> String {
    let session = SqlSession::open(store, None).unwrap();
    let reel = || session.query(&query("t", Some(v))).unwrap();
    let parquet_path = dir.join(format!("v{v}.parquet"));
    write_parquet(&parquet_path, state);
    let on_parquet = SessionContext::new();
    let memory = SessionContext::new();
    let parts = memory.state().config().target_partitions();
    let chunks = slices(state, 16 * 1024);
    let per = chunks.len().div_ceil(parts);
    let partitions: Vec<Vec<RecordBatch>> = chunks.chunks(per).map(|c| c.to_vec()).collect();
    memory
        .register_table(
            "t",
            Arc::new(MemTable::try_new(state.schema(), partitions).unwrap()),
        )
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(on_parquet.register_parquet(
        "t",
        parquet_path.to_str().unwrap(),
        ParquetReadOptions::default(),
    ))
    .unwrap();
    let run = |ctx: &SessionContext| {
        rt.block_on(async {
            ctx.sql(&query("t", None))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap()
        })
    };
    let want = groups(&run(&memory));
    same(&groups(&reel()), &want);
    same(&groups(&run(&on_parquet)), &want);
    let t_reel = time(15, reel);
    let t_parquet = time(15, || run(&on_parquet));
    let t_mem = time(15, || run(&memory));
    format!(
        "| v{v} | {} | {:.2} | {:.2} | {:.2} | {:.2}x | {:.2}x | {:.2}x |",
        kind_of(store, v).1,
        t_reel * 1e3,
        t_parquet * 1e3,
        t_mem * 1e3,
        t_reel / t_mem,
        t_parquet / t_mem,
        t_reel / t_parquet
    )
}

/// One row of the changes table: `Store::changes` against the full-scan diff.
fn change_figures(store: &Store, a: u64, b: u64) -> String {
    let fast = store.changes("t", a, b).unwrap();
    let full = store.changes_by_full_scan("t", a, b).unwrap();
    assert_eq!(fast.batches, full.batches, "v{a} -> v{b}");
    let t_fast = time(9, || store.changes("t", a, b).unwrap());
    let t_full = time(3, || store.changes_by_full_scan("t", a, b).unwrap());
    format!(
        "| v{a} -> v{b} | {} -> {} ({:?}) | {} | {:.2} | {:.1} | {:.0}x |",
        kind_of(store, a).1,
        kind_of(store, b).1,
        fast.method,
        fast.num_rows(),
        t_fast * 1e3,
        t_full * 1e3,
        t_full / t_fast
    )
}

fn main() {
    let n = rows();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut generator = Workload::new(n, 42);
    let store = Store::create(&path).unwrap();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("t", schema(), &["id"]).unwrap();
    tx.upsert("t", generator.initial()).unwrap();
    tx.commit().unwrap();
    let mut states = std::collections::HashMap::new();
    for v in 2..=VERSIONS + 1 {
        let change = generator.step(Spread::Uniform);
        let mut tx = w.begin();
        tx.upsert("t", change.upserts).unwrap();
        tx.delete("t", change.deletes).unwrap();
        tx.commit().unwrap();
        states.insert(v, generator.initial());
    }
    let latest = VERSIONS + 1;
    let overlay_v = latest - 1;
    let mut q1_lines = Vec::new();
    let mut change_lines = Vec::new();
    // The open generation's last versions are overlays until the next keyframe closes it:
    // measured first, then again as B-frames after compaction.
    let (kind, _) = kind_of(&store, overlay_v);
    assert_eq!(kind, VersionKind::Overlay);
    q1_lines.push(q1_figures(
        &store,
        dir.path(),
        overlay_v,
        &states[&overlay_v],
    ));
    change_lines.push(change_figures(&store, overlay_v - 1, overlay_v));
    w.compact(&mut |_, _| {}).unwrap();
    w.clean(0.0).unwrap();
    drop(w);
    let keyframe_v = latest;
    assert_eq!(kind_of(&store, keyframe_v).0, VersionKind::Keyframe);
    for v in [keyframe_v, overlay_v, 50] {
        q1_lines.push(q1_figures(&store, dir.path(), v, &states[&v]));
    }
    change_lines.push(change_figures(&store, overlay_v - 1, overlay_v));
    change_lines.push(change_figures(&store, 81, 82));

    println!(
        "# ReelDB SQL figures ({n} rows, {VERSIONS} uniform versions, then compaction; {} DataFusion partitions)\n",
        SessionContext::new().state().config().target_partitions()
    );
    println!(
        "## Q1 `SELECT status, count(*), sum(amount) FROM t VERSION AS OF v GROUP BY status` (median ms)\n"
    );
    println!(
        "| version | kind | ReelDB | DataFusion over Parquet | DataFusion in memory | ReelDB / in memory | Parquet / in memory | ReelDB / Parquet |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for line in &q1_lines {
        println!("{line}");
    }
    println!("\n## reel_changes between adjacent versions vs the full-scan diff (median ms)\n");
    println!("| versions | kinds | changed keys | reel_changes | full-scan diff | speed-up |");
    println!("|---|---|---|---|---|---|");
    for line in &change_lines {
        println!("{line}");
    }
    let session = SqlSession::open(&store, None).unwrap();
    let sql_changes = || {
        session
            .query(&format!(
                "SELECT change, count(*) FROM reel_changes('t', {}, {overlay_v}) GROUP BY change",
                overlay_v - 1
            ))
            .unwrap()
    };
    println!(
        "\nthe same through SQL (`SELECT change, count(*) FROM reel_changes('t', {}, {overlay_v}) GROUP BY change`, B-frames): {:.2} ms",
        overlay_v - 1,
        time(9, sql_changes) * 1e3
    );
}
