//! SQL through DataFusion and the change queries, checked against the model of the
//! reliability workload: keyframes, overlays and B-frames across four generations, an expiry
//! and a rewind. Every version's aggregates, filters and joins in SQL, and `reel_changes`
//! between every pair of versions, equal what the model says.
#![cfg(feature = "sql")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
use common::workload::{Model, apply, workload, writer_options};
use reeldb::sql::SqlSession;
use reeldb::{DiffMethod, Error, Store, VersionKind};

/// The workload run on a real store in `dir`, and its model.
fn workload_store(dir: &std::path::Path) -> (Store, Model) {
    let store = Store::create(dir.join("store")).unwrap();
    let mut writer = store.writer_with(writer_options()).unwrap();
    let mut model = Model::default();
    for op in workload() {
        apply(&mut writer, &op).unwrap();
        model = model.after(&op);
    }
    (store, model)
}

/// The versions that can still be read, with the rows the model says they hold.
fn readable(model: &Model) -> Vec<(u64, &BTreeMap<i64, u64>)> {
    (1..=model.latest())
        .filter(|v| !model.expired.contains(v))
        .map(|v| (v, &model.history[v as usize - 1].rows))
        .collect()
}

/// `amount` of row `id` written with `salt` (see `common::orders_salted`).
fn amount(id: i64, salt: u64) -> f64 {
    id as f64 * 1.5 + salt as f64
}

fn status(id: i64, salt: u64) -> &'static str {
    ["new", "paid", "shipped"][((id as u64 + salt) % 3) as usize]
}

fn one_row(batches: &[RecordBatch]) -> RecordBatch {
    let all = arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap();
    assert_eq!(all.num_rows(), 1, "one row expected");
    all
}

fn int(b: &RecordBatch, c: usize) -> i64 {
    b.column(c).as_primitive::<Int64Type>().value(0)
}

fn float(b: &RecordBatch, c: usize) -> f64 {
    b.column(c).as_primitive::<Float64Type>().value(0)
}

#[test]
fn aggregates_and_filters_at_every_version_equal_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = workload_store(dir.path());
    let kinds: Vec<VersionKind> = store.versions().unwrap().iter().map(|v| v.kind).collect();
    assert!(kinds.contains(&VersionKind::BFrame) && kinds.contains(&VersionKind::Overlay));
    let session = SqlSession::open(&store, None).unwrap();
    for (v, rows) in readable(&model) {
        let got = one_row(
            &session
                .query(&format!(
                    "SELECT count(*), sum(amount), min(id), max(id) FROM orders VERSION AS OF {v}"
                ))
                .unwrap(),
        );
        assert_eq!(int(&got, 0), rows.len() as i64, "count at v{v}");
        let sum: f64 = rows.iter().map(|(&i, &s)| amount(i, s)).sum();
        assert!((float(&got, 1) - sum).abs() < 1e-6, "sum at v{v}");
        assert_eq!(int(&got, 2), *rows.keys().next().unwrap(), "min at v{v}");
        assert_eq!(int(&got, 3), *rows.keys().last().unwrap(), "max at v{v}");

        // Pushed-down filters (a string equality, a range, an IN list) with one DataFusion
        // keeps (a modulo).
        let got = one_row(
            &session
                .query(&format!(
                    "SELECT count(*) FROM orders VERSION AS OF {v} WHERE status = 'paid' \
                     AND amount > 40 AND id IN (3, 5, 8, 13, 21, 34, 55, 89, 121, 125) \
                     OR (id % 17 = 0 AND id BETWEEN 10 AND 100)"
                ))
                .unwrap(),
        );
        let want = rows
            .iter()
            .filter(|&(&i, &s)| {
                (status(i, s) == "paid"
                    && amount(i, s) > 40.0
                    && [3, 5, 8, 13, 21, 34, 55, 89, 121, 125].contains(&i))
                    || (i % 17 == 0 && (10..=100).contains(&i))
            })
            .count();
        assert_eq!(int(&got, 0), want as i64, "filtered count at v{v}");

        // GROUP BY, and the session's own version when no clause is given.
        let at_v = SqlSession::open(&store, Some(v)).unwrap();
        let groups = at_v
            .query("SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status")
            .unwrap();
        let mut want: BTreeMap<&str, i64> = BTreeMap::new();
        for (&i, &s) in rows.iter() {
            *want.entry(status(i, s)).or_default() += 1;
        }
        let mut seen = BTreeMap::new();
        for b in &groups {
            for r in 0..b.num_rows() {
                seen.insert(
                    b.column(0).as_string::<i32>().value(r).to_string(),
                    b.column(1).as_primitive::<Int64Type>().value(r),
                );
            }
        }
        let want: BTreeMap<String, i64> =
            want.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
        assert_eq!(seen, want, "groups at v{v}");
    }
}

#[test]
fn two_versions_of_one_table_join_in_one_query() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = workload_store(dir.path());
    let session = SqlSession::open(&store, None).unwrap();
    let versions = readable(&model);
    for pair in versions.windows(5).step_by(3) {
        let ((a, ra), (b, rb)) = (pair[0], pair[4]);
        let got = one_row(
            &session
                .query(&format!(
                    "SELECT count(*) FROM orders VERSION AS OF {a} x \
                     JOIN orders VERSION AS OF {b} y ON x.id = y.id WHERE x.amount <> y.amount"
                ))
                .unwrap(),
        );
        let updated = ra
            .iter()
            .filter(|(i, s)| rb.get(i).is_some_and(|t| t != *s))
            .count();
        assert_eq!(int(&got, 0), updated as i64, "v{a} joined with v{b}");
    }
}

#[test]
fn timestamp_as_of_reads_the_last_version_committed_by_then() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = workload_store(dir.path());
    let session = SqlSession::open(&store, None).unwrap();
    for info in store.versions().unwrap().iter().step_by(5) {
        let at = info
            .committed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let by_time = session
            .query(&format!(
                "SELECT sum(amount) FROM orders TIMESTAMP AS OF '{at}'"
            ))
            .unwrap();
        let by_version = session
            .query(&format!(
                "SELECT sum(amount) FROM orders VERSION AS OF {}",
                info.version
            ))
            .unwrap();
        assert_eq!(by_time, by_version, "{at}");
    }
}

/// What the model says changed between two states: key -> (old salt, new salt).
fn model_changes(
    a: &BTreeMap<i64, u64>,
    b: &BTreeMap<i64, u64>,
) -> BTreeMap<i64, (Option<u64>, Option<u64>)> {
    let mut out = BTreeMap::new();
    for (&k, &s) in a {
        match b.get(&k) {
            Some(&t) if t == s => {}
            other => {
                out.insert(k, (Some(s), other.copied()));
            }
        }
    }
    for (&k, &t) in b {
        if !a.contains_key(&k) {
            out.insert(k, (None, Some(t)));
        }
    }
    out
}

/// The change set as key -> (kind, old amount, new amount), checking it is in key order.
fn change_rows(batches: &[RecordBatch]) -> Vec<(i64, String, Option<f64>, Option<f64>)> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let col = |name: &str| b.column(schema.index_of(name).unwrap()).clone();
        let (kind, id) = (col("change"), col("id"));
        let (old, new) = (col("old_amount"), col("new_amount"));
        let (old, new) = (
            old.as_primitive::<Float64Type>(),
            new.as_primitive::<Float64Type>(),
        );
        for r in 0..b.num_rows() {
            let opt = |a: &arrow::array::Float64Array| (!a.is_null(r)).then(|| a.value(r));
            out.push((
                id.as_primitive::<Int64Type>().value(r),
                kind.as_string::<i32>().value(r).to_string(),
                opt(old),
                opt(new),
            ));
        }
    }
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "key order");
    out
}

#[test]
fn changes_between_every_pair_of_versions_equal_the_model_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = workload_store(dir.path());
    let versions = readable(&model);
    let mut by_method: BTreeMap<&str, usize> = BTreeMap::new();
    for &(a, ra) in &versions {
        for &(b, rb) in &versions {
            let changes = store.changes("orders", a, b).unwrap();
            *by_method
                .entry(match changes.method {
                    DiffMethod::Generation => "generation",
                    DiffMethod::Merge => "merge",
                })
                .or_default() += 1;
            let want: Vec<(i64, String, Option<f64>, Option<f64>)> = model_changes(ra, rb)
                .into_iter()
                .map(|(k, (s, t))| {
                    let kind = match (s, t) {
                        (None, _) => "insert",
                        (_, None) => "delete",
                        _ => "update",
                    };
                    (
                        k,
                        kind.to_string(),
                        s.map(|s| amount(k, s)),
                        t.map(|t| amount(k, t)),
                    )
                })
                .collect();
            assert_eq!(change_rows(&changes.batches), want, "v{a} -> v{b}");
            if a.abs_diff(b) <= 2 {
                let full = store.changes_by_full_scan("orders", a, b).unwrap();
                assert_eq!(full.method, DiffMethod::Merge);
                assert_eq!(full.batches, changes.batches, "full scan v{a} -> v{b}");
            }
        }
    }
    // Both ways were exercised: versions sharing a keyframe (overlays, and B-frames of a
    // closed generation) and versions in different generations.
    assert!(by_method["generation"] > 100, "{by_method:?}");
    assert!(by_method["merge"] > 100, "{by_method:?}");
}

#[test]
fn changes_of_adjacent_overlay_versions_read_only_what_the_overlays_touch() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = workload_store(dir.path());
    let infos = store.versions().unwrap();
    let pairs: Vec<(u64, u64)> = infos
        .windows(2)
        .filter(|w| w[0].kind == VersionKind::Overlay && w[1].kind == VersionKind::Overlay)
        .map(|w| (w[0].version, w[1].version))
        .collect();
    assert!(!pairs.is_empty());
    for (a, b) in pairs {
        let c = store.changes("orders", a, b).unwrap();
        assert_eq!(c.method, DiffMethod::Generation, "v{a} -> v{b}");
        // A round upserts 7 keys, patches 1 and deletes 1.
        assert!(c.num_rows() <= 9, "v{a} -> v{b}: {}", c.num_rows());
    }
}

#[test]
fn change_queries_run_in_sql() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = workload_store(dir.path());
    let session = SqlSession::open(&store, None).unwrap();
    let (a, b) = (5, model.latest());
    let got = session
        .query(&format!(
            "SELECT change, count(*) FROM reel_changes('orders', {a}, {b}) \
             GROUP BY change ORDER BY change"
        ))
        .unwrap();
    let want = model_changes(
        &model.history[a as usize - 1].rows,
        &model.history[b as usize - 1].rows,
    );
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for (s, t) in want.values() {
        let kind = match (s, t) {
            (None, _) => "insert",
            (_, None) => "delete",
            _ => "update",
        };
        *counts.entry(kind.to_string()).or_default() += 1;
    }
    let mut seen = BTreeMap::new();
    for batch in &got {
        for r in 0..batch.num_rows() {
            seen.insert(
                batch.column(0).as_string::<i32>().value(r).to_string(),
                batch.column(1).as_primitive::<Int64Type>().value(r),
            );
        }
    }
    assert_eq!(seen, counts);
}

#[test]
fn a_rows_history_lists_every_version_that_changed_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = workload_store(dir.path());
    let session = SqlSession::open(&store, None).unwrap();
    for key in [0i64, 37, 60, 121, 140] {
        let got = session
            .query(&format!(
                "SELECT version, change, amount FROM reel_history('orders', {key}) ORDER BY version"
            ))
            .unwrap();
        let mut rows = Vec::new();
        for b in &got {
            for r in 0..b.num_rows() {
                let amount = b.column(2).as_primitive::<Float64Type>();
                rows.push((
                    b.column(0).as_primitive::<UInt64Type>().value(r),
                    b.column(1).as_string::<i32>().value(r).to_string(),
                    (!amount.is_null(r)).then(|| amount.value(r)),
                ));
            }
        }
        let mut want = Vec::new();
        let mut last: Option<u64> = None;
        for (v, state) in readable(&model) {
            let now = state.get(&key).copied();
            if now != last {
                let kind = match (last, now) {
                    (None, _) => "insert",
                    (_, None) => "delete",
                    _ => "update",
                };
                want.push((v, kind.to_string(), now.map(|s| amount(key, s))));
            }
            last = now;
        }
        assert_eq!(rows, want, "history of {key}");
    }
}

#[test]
fn pushdown_shows_in_the_plan_and_a_limit_stops_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = workload_store(dir.path());
    let session = SqlSession::open(&store, None).unwrap();
    let plan = session
        .query("EXPLAIN SELECT id FROM orders WHERE id > 100 AND note IS NOT NULL")
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(text.contains("ReelScanExec: table=orders"), "{text}");
    assert!(text.contains("Gt"), "{text}");
    let limited = session.query("SELECT * FROM orders LIMIT 5").unwrap();
    assert_eq!(limited.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
}

fn sql_error(session: &SqlSession, query: &str) -> Error {
    session.query(query).expect_err(query)
}

#[test]
fn bad_versions_tables_and_clauses_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = workload_store(dir.path());
    let session = SqlSession::open(&store, None).unwrap();
    let latest = model.latest();

    let e = sql_error(&session, "SELECT * FROM orders VERSION AS OF 999");
    assert!(
        matches!(e, Error::UnknownVersion { version: 999, latest: l } if l == latest),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("1..={latest}")), "{e}");

    let e = sql_error(&session, "SELECT * FROM orders VERSION AS OF 1");
    assert!(matches!(e, Error::Expired { version: 1 }), "{e}");

    let e = sql_error(&session, "SELECT * FROM nope VERSION AS OF 5");
    assert!(
        e.to_string().contains("nope") && e.to_string().contains("orders"),
        "{e}"
    );

    let e = sql_error(&session, "SELECT * FROM orders TIMESTAMP AS OF 'yesterday'");
    assert!(e.to_string().contains("yesterday"), "{e}");

    let e = sql_error(
        &session,
        "SELECT * FROM orders TIMESTAMP AS OF '1990-01-01'",
    );
    assert!(matches!(e, Error::NoVersionBefore(_)), "{e}");

    let e = sql_error(&session, "SELECT * FROM reel_changes('orders', 5)");
    assert!(e.to_string().contains("reel_changes"), "{e}");

    let e = sql_error(&session, "SELECT * FROM reel_changes('nope', 5, 6)");
    assert!(e.to_string().contains("nope"), "{e}");

    assert!(matches!(
        SqlSession::open(&store, Some(latest + 1)),
        Err(Error::UnknownVersion { .. })
    ));
}
