//! The two table shapes issue 10 measures beside the peer harness, as written and after the
//! default `reel compact`, against one zstd Parquet file per version (their total bytes, the
//! baseline, in the same run):
//!
//! - **small hot table**: 3,000 aggregates keyed by a string id, 8 columns (two constant per
//!   row, three counters that grow, a small-cardinality string, a date, a float); each of
//!   365 versions updates 25-30% of the rows in 3 to 5 columns, deletes ~2% and inserts ~2%;
//! - **large slowly-changing table**: 50,000 rows keyed by two strings, 9 columns of which 6
//!   change; each of 365 versions updates ~2% of the rows and inserts ~0.1%, deleting nothing.
//!
//! Reported per shape: bytes as written and after compaction, as ratios to the Parquet
//! baseline, the floor (one Parquet copy of the first version plus each version's changed
//! rows as Parquet), the median commit and the compaction time.
//!
//! `cargo bench --no-default-features --bench shapes` (`REELDB_BENCH_VERSIONS` shortens both
//! histories; `REELDB_SHAPES=hot` or `=slow` runs one). For sweeps of the keyframe policy and
//! the compaction plan: `REELDB_KEYFRAME_EVERY`, `REELDB_KEYFRAME_FRACTION` (the writer's
//! options), `REELDB_THIN_EVERY` (count-based thinning, 0: none), `REELDB_THIN_BOUND` and
//! `REELDB_THIN_MIN_ROWS` (the default policy's residual bound and its floor); the header
//! names the values used. Also reported: how many versions wrote a keyframe, a full scan of
//! the latest version against a scan of the same rows from a fresh keyframe of them, and
//! after compaction the slowest version's full scan against the latest's.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use reeldb::{
    KeyframeThinning, MaintenancePlan, ScanOptions, Store, VersionKind, Writer, WriterOptions,
};
use support::{Rng, dir_bytes, median, parquet_bytes};

/// One row: its key strings and its eight or nine value columns, as numbers and strings.
#[derive(Clone, Debug)]
struct Row {
    strings: Vec<String>,
    ints: Vec<i64>,
    date: i32,
    float: f64,
}

/// A shape: its schema, key, how many key strings and ints a row has, and how a version
/// changes the state.
trait Shape {
    fn name(&self) -> &'static str;
    fn schema(&self) -> SchemaRef;
    fn key(&self) -> Vec<&'static str>;
    fn initial(&mut self) -> BTreeMap<Vec<String>, Row>;
    /// Changes `state` for version `v`: returns the keys upserted and the keys deleted.
    fn step(
        &mut self,
        v: i32,
        state: &mut BTreeMap<Vec<String>, Row>,
    ) -> (Vec<Vec<String>>, Vec<Vec<String>>);
}

fn batch(schema: &SchemaRef, rows: &[(&Vec<String>, &Row)], key_strings: usize) -> RecordBatch {
    let mut columns: Vec<ArrayRef> = Vec::new();
    let strings = rows.first().map_or(key_strings, |(_, r)| r.strings.len());
    for i in 0..strings {
        columns.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, r)| r.strings[i].as_str()),
        )));
    }
    let ints = schema
        .fields()
        .iter()
        .filter(|f| f.data_type() == &DataType::Int64)
        .count();
    for i in 0..ints {
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, r)| r.ints[i]),
        )));
    }
    columns.push(Arc::new(Date32Array::from_iter_values(
        rows.iter().map(|(_, r)| r.date),
    )));
    columns.push(Arc::new(Float64Array::from_iter_values(
        rows.iter().map(|(_, r)| r.float),
    )));
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

/// 3,000 aggregates, a quarter of them changing every version.
struct Hot {
    rng: Rng,
    next: u64,
}

const STATUSES: [&str; 5] = ["new", "active", "idle", "flagged", "closed"];

impl Hot {
    fn row(&mut self) -> (Vec<String>, Row) {
        self.next += 1;
        let id = format!("agg-{:06}", self.next);
        let region = ["eu", "us", "apac"][self.rng.below(3) as usize].to_string();
        let status = STATUSES[self.rng.below(5) as usize].to_string();
        (
            vec![id.clone()],
            Row {
                strings: vec![id, region, status],
                ints: vec![self.rng.below(1_000_000) as i64, 0, 0, 0],
                date: 20_000,
                float: 0.0,
            },
        )
    }
}

impl Shape for Hot {
    fn name(&self) -> &'static str {
        "small hot table"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("region", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("created_seq", DataType::Int64, false),
            Field::new("events", DataType::Int64, false),
            Field::new("amount_total", DataType::Int64, false),
            Field::new("errors", DataType::Int64, false),
            Field::new("last_seen", DataType::Date32, false),
            Field::new("score", DataType::Float64, false),
        ]))
    }

    fn key(&self) -> Vec<&'static str> {
        vec!["id"]
    }

    fn initial(&mut self) -> BTreeMap<Vec<String>, Row> {
        (0..3_000).map(|_| self.row()).collect()
    }

    fn step(
        &mut self,
        v: i32,
        state: &mut BTreeMap<Vec<String>, Row>,
    ) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
        let keys: Vec<Vec<String>> = state.keys().cloned().collect();
        let n = keys.len() as u64;
        let share = 25 + self.rng.below(6);
        let mut upserted = Vec::new();
        for k in &keys {
            if self.rng.below(100) >= share {
                continue;
            }
            let r = state.get_mut(k).unwrap();
            // Three to five of the six changing columns: counters, status, date, score.
            let columns = 3 + self.rng.below(3) as usize;
            let mut order = [0usize, 1, 2, 3, 4, 5];
            for i in (1..6).rev() {
                order.swap(i, self.rng.below(i as u64 + 1) as usize);
            }
            for &c in &order[..columns] {
                match c {
                    0 => r.ints[1] += 1 + self.rng.below(5) as i64,
                    1 => r.ints[2] += self.rng.below(10_000) as i64,
                    2 => r.ints[3] += self.rng.below(2) as i64,
                    3 => r.strings[2] = STATUSES[self.rng.below(5) as usize].to_string(),
                    4 => r.date = 20_000 + v,
                    _ => r.float = (self.rng.unit() * 1000.0).round() / 10.0,
                }
            }
            upserted.push(k.clone());
        }
        let mut deleted = Vec::new();
        for _ in 0..n / 50 {
            let k = keys[self.rng.below(n) as usize].clone();
            if state.remove(&k).is_some() {
                upserted.retain(|u| *u != k);
                deleted.push(k);
            }
        }
        for _ in 0..n / 50 {
            let (k, r) = self.row();
            state.insert(k.clone(), r);
            upserted.push(k);
        }
        (upserted, deleted)
    }
}

/// 50,000 rows keyed by (account, sku), ~2% updated every version in 6 of 9 columns.
struct Slow {
    rng: Rng,
    next: u64,
}

impl Slow {
    fn row(&mut self) -> (Vec<String>, Row) {
        self.next += 1;
        let account = format!("acct-{:05}", self.rng.below(5_000));
        let sku = format!("sku-{:07}", self.next);
        let category = format!("cat-{}", self.rng.below(40));
        let status = STATUSES[self.rng.below(5) as usize].to_string();
        (
            vec![account.clone(), sku.clone()],
            Row {
                strings: vec![account, sku, category, status],
                ints: vec![
                    self.rng.below(1000) as i64,
                    self.rng.below(100_000) as i64,
                    0,
                ],
                date: 19_000 + self.rng.below(1000) as i32,
                float: (self.rng.unit() * 10_000.0).round() / 100.0,
            },
        )
    }
}

impl Shape for Slow {
    fn name(&self) -> &'static str {
        "large slowly-changing table"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("account", DataType::Utf8, false),
            Field::new("sku", DataType::Utf8, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("quantity", DataType::Int64, false),
            Field::new("price_cents", DataType::Int64, false),
            Field::new("revisions", DataType::Int64, false),
            Field::new("updated", DataType::Date32, false),
            Field::new("discount", DataType::Float64, false),
        ]))
    }

    fn key(&self) -> Vec<&'static str> {
        vec!["account", "sku"]
    }

    fn initial(&mut self) -> BTreeMap<Vec<String>, Row> {
        (0..50_000).map(|_| self.row()).collect()
    }

    fn step(
        &mut self,
        v: i32,
        state: &mut BTreeMap<Vec<String>, Row>,
    ) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
        let keys: Vec<Vec<String>> = state.keys().cloned().collect();
        let n = keys.len() as u64;
        let mut upserted = Vec::new();
        for _ in 0..n / 50 {
            let k = &keys[self.rng.below(n) as usize];
            let r = state.get_mut(k).unwrap();
            // The six changing columns: status, quantity, price, revisions, date, discount.
            r.strings[3] = STATUSES[self.rng.below(5) as usize].to_string();
            r.ints[0] = self.rng.below(1000) as i64;
            r.ints[1] += self.rng.below(200) as i64 - 100;
            r.ints[2] += 1;
            r.date = 19_000 + 1000 + v;
            r.float = (self.rng.unit() * 10_000.0).round() / 100.0;
            upserted.push(k.clone());
        }
        for _ in 0..n / 1000 {
            let (k, r) = self.row();
            state.insert(k.clone(), r);
            upserted.push(k);
        }
        upserted.sort();
        upserted.dedup();
        (upserted, Vec::new())
    }
}

fn keys_batch(shape: &dyn Shape, keys: &[Vec<String>]) -> RecordBatch {
    let fields: Vec<Field> = shape
        .key()
        .iter()
        .map(|k| Field::new(*k, DataType::Utf8, false))
        .collect();
    let columns: Vec<ArrayRef> = (0..fields.len())
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| k[i].as_str()),
            )) as ArrayRef
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn commit(
    w: &mut Writer,
    shape: &dyn Shape,
    schema: &SchemaRef,
    state: &BTreeMap<Vec<String>, Row>,
    upserted: &[Vec<String>],
    deleted: &[Vec<String>],
    first: bool,
) -> f64 {
    let rows: Vec<(&Vec<String>, &Row)> = upserted.iter().map(|k| (k, &state[k])).collect();
    let t = Instant::now();
    let mut tx = w.begin();
    if first {
        tx.create_table("t", schema.clone(), &shape.key()).unwrap();
    }
    if !rows.is_empty() {
        tx.upsert("t", batch(schema, &rows, shape.key().len()))
            .unwrap();
    }
    if !deleted.is_empty() {
        tx.delete("t", keys_batch(shape, deleted)).unwrap();
    }
    tx.commit().unwrap();
    t.elapsed().as_secs_f64()
}

fn run(shape: &mut dyn Shape, versions: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let schema = shape.schema();
    let key_strings = shape.key().len();
    let mut state = shape.initial();
    let all = |state: &BTreeMap<Vec<String>, Row>| -> RecordBatch {
        let rows: Vec<(&Vec<String>, &Row)> = state.iter().collect();
        batch(&schema, &rows, key_strings)
    };
    let mut w = store.writer_with(writer_options()).unwrap();
    let keys: Vec<Vec<String>> = state.keys().cloned().collect();
    let mut commits = vec![commit(&mut w, shape, &schema, &state, &keys, &[], true)];
    let first_copy = parquet_bytes(&schema, &all(&state));
    let (mut per_version, mut floor) = (first_copy, first_copy);
    // The changed keys' own bytes, every commit after the first: what a node log's bytes
    // per commit are held against.
    let mut changed_key_bytes = 0usize;
    for v in 1..versions {
        let (upserted, deleted) = shape.step(v as i32, &mut state);
        changed_key_bytes += upserted
            .iter()
            .chain(&deleted)
            .flatten()
            .map(String::len)
            .sum::<usize>();
        commits.push(commit(
            &mut w, shape, &schema, &state, &upserted, &deleted, false,
        ));
        per_version += parquet_bytes(&schema, &all(&state));
        let changed: Vec<(&Vec<String>, &Row)> = upserted.iter().map(|k| (k, &state[k])).collect();
        if !changed.is_empty() {
            floor += parquet_bytes(&schema, &batch(&schema, &changed, key_strings));
        }
    }
    drop(w);
    let keyframes = store
        .versions()
        .unwrap()
        .iter()
        .filter(|v| v.kind == VersionKind::Keyframe)
        .count();
    let scan_latest = scan_ms(&store);
    // The deepest overlay: the last version of the last generation that ended in a keyframe,
    // against that keyframe (one version later, about the same rows).
    let kinds: Vec<VersionKind> = store.versions().unwrap().iter().map(|v| v.kind).collect();
    let deepest = (1..kinds.len())
        .rev()
        .find(|&i| kinds[i - 1] == VersionKind::Overlay && kinds[i] == VersionKind::Keyframe)
        .map(|i| {
            let v = i as u64;
            (v, scan_ms_at(&store, v), scan_ms_at(&store, v + 1))
        });
    let written = dir_bytes(&path);
    let part = |d: &str| {
        let p = path.join(d);
        if p.exists() { dir_bytes(&p) } else { 0 }
    };
    let (packs, logs, catalog) = (part("packs"), part("overlays"), part("catalog"));
    let t = Instant::now();
    store
        .maintenance()
        .unwrap()
        .run(&plan(), &mut |_, _, _| {})
        .unwrap();
    let compact_s = t.elapsed().as_secs_f64();
    let compacted = dir_bytes(&path);
    let after = store.stats().unwrap();
    let keyframe_blocks = after
        .column_space
        .iter()
        .map(|c| c.bytes)
        .sum::<u64>()
        .saturating_sub(after.residual_bytes + after.row_batch_bytes);
    // After it, the oldest version but the first (a B-frame over a kept keyframe, as far from
    // it as thinning let it be) against the latest.
    let oldest = (scan_ms_at(&store, 2), scan_ms(&store));
    // And the slowest version to scan after it (each as `scan_ms_at` times it).
    let slowest = (1..=versions)
        .map(|v| (scan_ms_at(&store, v), v))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((0.0, 0));
    let ratio = |b: u64| b as f64 / per_version as f64;
    println!("\n## {} ({versions} versions)\n", shape.name());
    println!("| figure | bytes | / one Parquet file per version |\n|---|---|---|");
    println!("| one zstd Parquet file per version (baseline) | {per_version} | 1.00x |");
    println!(
        "| floor: v1 as Parquet + each version's changed rows as Parquet | {floor} | {:.3}x |",
        ratio(floor)
    );
    println!(
        "| ReelDB as written | {written} | **{:.3}x** |",
        ratio(written)
    );
    println!(
        "| of which packs / node logs / catalog | {packs} / {logs} / {catalog} | {:.3}x / {:.3}x / {:.3}x |",
        ratio(packs),
        ratio(logs),
        ratio(catalog)
    );
    println!(
        "| ReelDB after the default compaction | {compacted} | **{:.3}x** |",
        ratio(compacted)
    );
    println!(
        "| of which keyframe blocks / B-frame residuals / membership / overlay rows / node logs / catalog | {keyframe_blocks} / {} / {} / {} / {} / {} | {:.3}x / {:.3}x / {:.3}x / {:.3}x / {:.3}x / {:.3}x |",
        after.residual_bytes,
        after.bitmap_bytes,
        after.row_batch_bytes,
        after.node_log_bytes,
        part("catalog"),
        ratio(keyframe_blocks),
        ratio(after.residual_bytes),
        ratio(after.bitmap_bytes),
        ratio(after.row_batch_bytes),
        ratio(after.node_log_bytes),
        ratio(part("catalog")),
    );
    println!("\nafter the default compaction, column blocks by column and encoding:\n");
    println!("| column | encoding | blocks | bytes |\n|---|---|---|---|");
    for c in &after.column_space {
        println!(
            "| {} | {} | {} | {} |",
            c.column, c.encoding, c.blocks, c.bytes
        );
    }
    let later_commits = (versions - 1).max(1) as f64;
    println!(
        "\nnode logs per commit as written: {:.0} bytes; the changed keys' own bytes per commit: {:.0} ({:.2}x)",
        logs as f64 / later_commits,
        changed_key_bytes as f64 / later_commits,
        logs as f64 / changed_key_bytes.max(1) as f64
    );
    println!(
        "median commit {:.1} ms; compaction {:.1} s; {keyframes} of {versions} versions wrote a keyframe",
        median(&mut commits) * 1e3,
        compact_s
    );
    // The latest state written again as one keyframe, in a store of its own.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Store::create(fresh_dir.path().join("s")).unwrap();
    let mut fw = fresh.writer().unwrap();
    commit(&mut fw, shape, &schema, &state, &keys_of(&state), &[], true);
    drop(fw);
    let scan_fresh = scan_ms(&fresh);
    println!(
        "full scan of the latest version as written: {scan_latest:.2} ms; of a fresh keyframe of it: {scan_fresh:.2} ms ({:.2}x)",
        scan_latest / scan_fresh
    );
    if let Some((v, overlay, keyframe)) = deepest {
        println!(
            "full scan of the deepest overlay (v{v}, the end of a generation): {overlay:.2} ms; of the keyframe after it: {keyframe:.2} ms ({:.2}x)",
            overlay / keyframe
        );
    }
    println!(
        "after compaction, full scan of v2: {:.2} ms; of the latest version: {:.2} ms ({:.2}x)",
        oldest.0,
        oldest.1,
        oldest.0 / oldest.1
    );
    println!(
        "after compaction, the slowest full scan: v{} {:.2} ms ({:.2}x the latest version's)",
        slowest.1,
        slowest.0,
        slowest.0 / oldest.1
    );
}

fn keys_of(state: &BTreeMap<Vec<String>, Row>) -> Vec<Vec<String>> {
    state.keys().cloned().collect()
}

/// The median of 5 full scans of the latest version, from a fresh handle each time.
fn scan_ms(store: &Store) -> f64 {
    scan_ms_at(store, store.latest_version().unwrap())
}

/// The median of 5 full scans of version `v`, from a fresh handle each time.
fn scan_ms_at(store: &Store, v: u64) -> f64 {
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let s = Store::open(store.path()).unwrap();
            let t = Instant::now();
            let table = s.snapshot(v).unwrap().table("t").unwrap();
            let rows: usize = table
                .scan(&ScanOptions::default())
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum();
            assert!(rows > 0);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(&mut times)
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The writer's options, with the sweep's overrides.
fn writer_options() -> WriterOptions {
    let mut o = WriterOptions::default();
    if let Some(n) = env_f64("REELDB_KEYFRAME_EVERY") {
        o = o.keyframe_every(n as u32);
    }
    if let Some(f) = env_f64("REELDB_KEYFRAME_FRACTION") {
        o = o.keyframe_fraction(f);
    }
    o
}

/// The compaction plan, with the sweep's overrides: `REELDB_THIN_EVERY` (count-based
/// thinning, 0: none), or `REELDB_THIN_BOUND` and `REELDB_THIN_MIN_ROWS` (the residual
/// bound's fraction and floor).
fn plan() -> MaintenancePlan {
    let bound = (
        env_f64("REELDB_THIN_BOUND"),
        env_f64("REELDB_THIN_MIN_ROWS"),
    );
    let thinning = match (env_f64("REELDB_THIN_EVERY"), bound) {
        (Some(n), _) if n < 1.0 => KeyframeThinning::Off,
        (Some(n), _) => KeyframeThinning::Every(n as u64),
        (None, (None, None)) => KeyframeThinning::default(),
        (None, (fraction, min_rows)) => KeyframeThinning::ResidualBound {
            fraction: fraction.unwrap_or(reeldb::THIN_RESIDUAL_BOUND),
            min_rows: min_rows.map_or(reeldb::THIN_RESIDUAL_MIN_ROWS, |m| m as u64),
        },
    };
    MaintenancePlan {
        thinning,
        ..MaintenancePlan::default()
    }
}

fn main() {
    let versions: u64 = std::env::var("REELDB_BENCH_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(365);
    let only = std::env::var("REELDB_SHAPES").ok();
    let wants = |s: &str| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == s));
    println!("# ReelDB storage by table shape, {versions} versions");
    println!(
        "\nwriter: {:?}; compaction plan: {:?}",
        writer_options(),
        plan()
    );
    if wants("hot") {
        run(
            &mut Hot {
                rng: Rng(11),
                next: 0,
            },
            versions,
        );
    }
    if wants("slow") {
        run(
            &mut Slow {
                rng: Rng(12),
                next: 0,
            },
            versions,
        );
    }
}
