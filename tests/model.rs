//! Model-based property test: random sequences of creates, upserts, deletes, patches and replaces over
//! several tables, with the store reopened, compacted and rewound at random points; every
//! version's scan, get and range (both directions) must equal an in-memory model (a BTreeMap
//! per table per version).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;

use arrow::array::RecordBatch;
use common::{ids, orders_salted, orders_schema, tiny_shape};
use proptest::prelude::*;
use reeldb::{Error, Expiry, ScanOptions, Store, WriterOptions};

const TABLES: [&str; 2] = ["a", "b"];

/// What a commit does to one table.
#[derive(Debug, Clone)]
enum Edit {
    /// Upsert these (key, salt) rows (keys may repeat: the commit must then fail) and delete
    /// these keys.
    Change {
        upserts: Vec<(i64, u64)>,
        deletes: Vec<i64>,
    },
    /// Replace the whole table with these rows.
    Replace(Vec<(i64, u64)>),
    /// Set the amount of these keys, leaving their other columns (keys absent or repeated:
    /// the commit must fail).
    Patch(Vec<(i64, u32)>),
}

#[derive(Debug, Clone)]
enum Step {
    /// Edits to some tables; `true` forces keyframes.
    Commit(Vec<(usize, Edit)>, bool),
    Reopen,
    /// Rewrite every closed generation as B-frames; checks every version right after.
    Compact,
    /// Rewind to the version this many below the latest (clamped at 1).
    Rewind(u64),
    /// Expire all but the newest this-many-plus-one versions.
    Expire(u64),
    /// Copy what live versions use into new packs and retire the old ones.
    Clean,
    /// Compact, then keep one keyframe per this many versions.
    Thin(u64),
}

/// A table's rows by key: the salt its columns derive from, and the amount a patch set, if
/// one did since the row was last written whole.
type State = BTreeMap<i64, (u64, Option<u32>)>;

fn rows() -> impl Strategy<Value = Vec<(i64, u64)>> {
    prop::collection::vec((0i64..400, 0u64..1_000), 0..120)
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => (rows(), prop::collection::vec(0i64..400, 0..40))
            .prop_map(|(upserts, deletes)| Edit::Change { upserts, deletes }),
        1 => rows().prop_map(Edit::Replace),
        2 => prop::collection::vec((0i64..400, 0u32..1_000), 0..30).prop_map(Edit::Patch),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (prop::collection::btree_map(0usize..TABLES.len(), edit(), 1..=2), prop::bool::weighted(0.1))
            .prop_map(|(m, k)| Step::Commit(m.into_iter().collect(), k)),
        1 => Just(Step::Reopen),
        2 => Just(Step::Compact),
        1 => (0u64..4).prop_map(Step::Rewind),
    ]
}

/// Steps whose commits are all valid (unique keys, no key both upserted and deleted), so
/// histories grow long enough for generations to close.
fn valid_step() -> impl Strategy<Value = Step> {
    let change = (rows(), prop::collection::vec(0i64..400, 0..40)).prop_map(|(rows, deletes)| {
        let upserts: BTreeMap<i64, u64> = rows.into_iter().collect();
        let deletes = deletes
            .into_iter()
            .filter(|k| !upserts.contains_key(k))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Edit::Change {
            upserts: upserts.into_iter().collect(),
            deletes,
        }
    });
    let edit = prop_oneof![6 => change, 1 => patch_of_present()];
    prop_oneof![
        8 => prop::collection::btree_map(0usize..TABLES.len(), edit, 1..=2)
            .prop_map(|m| Step::Commit(m.into_iter().collect(), false)),
        1 => Just(Step::Reopen),
        2 => Just(Step::Compact),
        1 => (0u64..4).prop_map(Step::Rewind),
        1 => (2u64..8).prop_map(Step::Expire),
        1 => Just(Step::Clean),
        1 => (2u64..8).prop_map(Step::Thin),
    ]
}

/// A patch of a few keys, each once: present ones change, and a commit naming an absent one
/// fails, as it must, changing nothing.
fn patch_of_present() -> impl Strategy<Value = Edit> {
    prop::collection::btree_map(0i64..400, 0u32..1_000, 1..4)
        .prop_map(|m| Edit::Patch(m.into_iter().collect()))
}

/// Checks every version: expired ones refuse to open, the others equal the model.
fn check_all(store: &Store, history: &[[State; 2]], expired: &[bool], probes: &[i64]) {
    for (i, states) in history.iter().enumerate() {
        let v = i as u64 + 1;
        if expired[i] {
            assert!(matches!(store.snapshot(v), Err(Error::Expired { version }) if version == v));
        } else {
            check_version(store, v, states, probes);
        }
    }
}

fn batch(rows: &[(i64, u64)]) -> RecordBatch {
    let (k, s): (Vec<i64>, Vec<u64>) = rows.iter().copied().unzip();
    orders_salted(&k, &s)
}

/// Rows as the model holds them: salted rows with the patched amounts laid over.
fn model_batch(rows: &[(i64, (u64, Option<u32>))]) -> RecordBatch {
    let salted: Vec<(i64, u64)> = rows.iter().map(|(k, (s, _))| (*k, *s)).collect();
    let b = batch(&salted);
    let amounts = b
        .column(2)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    let patched: arrow::array::Float64Array = rows
        .iter()
        .zip(amounts.iter())
        .map(|((_, (_, p)), a)| p.map(f64::from).or(a))
        .collect();
    let mut columns = b.columns().to_vec();
    columns[2] = std::sync::Arc::new(patched);
    RecordBatch::try_new(b.schema(), columns).unwrap()
}

/// A patch of `amount` for these keys.
fn amount_patch(rows: &[(i64, u32)]) -> RecordBatch {
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            std::sync::Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| f64::from(r.1)),
            )),
        ],
    )
    .unwrap()
}

/// Applies an edit to the model; `None` when the store must refuse it.
fn apply(state: &State, edit: &Edit) -> Option<State> {
    let mut next = state.clone();
    match edit {
        Edit::Change { upserts, deletes } => {
            let mut seen = std::collections::BTreeSet::new();
            for (k, s) in upserts {
                if !seen.insert(*k) {
                    return None;
                }
                next.insert(*k, (*s, None));
            }
            for k in deletes {
                if seen.contains(k) {
                    return None;
                }
                next.remove(k);
            }
        }
        Edit::Replace(rows) => {
            next.clear();
            for (k, s) in rows {
                if next.insert(*k, (*s, None)).is_some() {
                    return None;
                }
            }
        }
        Edit::Patch(rows) => {
            let mut seen = std::collections::BTreeSet::new();
            for (k, amount) in rows {
                if !seen.insert(*k) {
                    return None;
                }
                let (salt, _) = *state.get(k)?;
                next.insert(*k, (salt, Some(*amount)));
            }
        }
    }
    Some(next)
}

fn expected(state: &State, keys: impl Iterator<Item = i64>) -> RecordBatch {
    let rows: Vec<(i64, (u64, Option<u32>))> = keys
        .filter_map(|k| state.get(&k).map(|s| (k, *s)))
        .collect();
    model_batch(&rows)
}

fn sorted_by_id(batch: RecordBatch) -> RecordBatch {
    let order = arrow::compute::sort_to_indices(batch.column(0), None, None).unwrap();
    arrow::compute::take_record_batch(&batch, &order).unwrap()
}

fn concat(batches: Vec<RecordBatch>) -> RecordBatch {
    arrow::compute::concat_batches(&orders_schema(), &batches).unwrap()
}

fn check_version(store: &Store, version: u64, states: &[State; 2], probes: &[i64]) {
    let snap = store.snapshot(version).unwrap();
    for (t, name) in TABLES.iter().enumerate() {
        let table = snap.table(name).unwrap();
        let state = &states[t];
        assert_eq!(
            table.num_rows(),
            state.len() as u64,
            "v{version} {name} rows"
        );
        // Full scans promise no order at overlay versions: compare in key order.
        let scanned = sorted_by_id(concat(
            table
                .scan(&ScanOptions::new())
                .unwrap()
                .map(|b| b.unwrap())
                .collect(),
        ));
        assert_eq!(
            scanned,
            expected(state, state.keys().copied()),
            "v{version} {name} scan"
        );
        let ordered = concat(
            table
                .scan(&ScanOptions::new().in_key_order())
                .unwrap()
                .map(|b| b.unwrap())
                .collect(),
        );
        assert_eq!(
            ordered,
            expected(state, state.keys().copied()),
            "v{version} {name} ordered scan"
        );
        for &k in probes {
            let got = table.get(k).unwrap();
            let want = state.get(&k).map(|s| model_batch(&[(k, *s)]));
            assert_eq!(got, want, "v{version} {name} get {k}");
        }
        let (lo, hi) = (probes[0].min(probes[1]), probes[0].max(probes[1]));
        for (bounds, label) in [
            ((Bound::Included(lo), Bound::Excluded(hi)), "[lo,hi)"),
            ((Bound::Excluded(lo), Bound::Included(hi)), "(lo,hi]"),
            ((Bound::Unbounded, Bound::Included(hi)), "(..,hi]"),
            ((Bound::Included(lo), Bound::Unbounded), "[lo,..)"),
        ] {
            let keys: Vec<i64> = state.range(bounds).map(|(k, _)| *k).collect();
            let fwd = concat(table.range(bounds).unwrap().map(|b| b.unwrap()).collect());
            assert_eq!(
                fwd,
                expected(state, keys.iter().copied()),
                "v{version} {name} range {label}"
            );
            let back = concat(
                table
                    .range(bounds)
                    .unwrap()
                    .rev()
                    .map(|b| b.unwrap())
                    .collect(),
            );
            assert_eq!(
                back,
                expected(state, keys.iter().rev().copied()),
                "v{version} {name} range rev {label}"
            );
        }
    }
}

fn run(
    steps: Vec<Step>,
    probes: Vec<i64>,
    keyframe_every: u32,
    keyframe_fraction: f64,
    keyframe_touching: f64,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    let options = WriterOptions::default()
        .sync(false)
        .tree_shape(tiny_shape())
        .max_pack_len(64 << 10)
        .keyframe_every(keyframe_every)
        .keyframe_fraction(keyframe_fraction)
        .keyframe_touching(keyframe_touching);
    let mut writer = store.writer_with(options.clone()).unwrap();
    let mut tx = writer.begin();
    for name in TABLES {
        tx.create_table(name, orders_schema(), &["id"]).unwrap();
    }
    tx.commit().unwrap();
    let mut history: Vec<[State; 2]> = vec![[State::new(), State::new()]];
    let mut expired = vec![false];
    for step in steps {
        match step {
            Step::Reopen => {
                drop(writer);
                store = Store::open(store.path()).unwrap();
                writer = store.writer_with(options.clone()).unwrap();
            }
            Step::Compact => {
                writer.compact(&mut |_, _| {}).unwrap();
                check_all(&store, &history, &expired, &probes);
            }
            Step::Rewind(back) => {
                let to = (history.len() as u64).saturating_sub(back).max(1);
                match writer.rewind(to) {
                    Ok(_) => {
                        history.truncate(to as usize);
                        expired.truncate(to as usize);
                    }
                    Err(Error::Expired { .. }) => assert!(expired[to as usize - 1]),
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            Step::Thin(every) => {
                writer.compact(&mut |_, _| {}).unwrap();
                writer.thin(every).unwrap();
                check_all(&store, &history, &expired, &probes);
            }
            Step::Clean => {
                writer.clean(0.0).unwrap();
                check_all(&store, &history, &expired, &probes);
            }
            Step::Expire(keep) => {
                let before = expired.clone();
                for v in writer.expire(Expiry::KeepLast(keep), &[]).unwrap() {
                    assert!(!expired[v as usize - 1], "v{v} expired twice");
                    expired[v as usize - 1] = true;
                }
                let latest = history.len() as u64;
                for (i, e) in expired.iter().enumerate() {
                    let v = i as u64 + 1;
                    assert_eq!(*e, before[i] || (v + keep <= latest && v < latest), "v{v}");
                }
            }
            Step::Commit(edits, force_keyframe) => {
                let current = history.last().unwrap().clone();
                let mut next = current.clone();
                let mut valid = true;
                let mut tx = writer.begin();
                if force_keyframe {
                    tx.keyframe();
                }
                for (t, e) in &edits {
                    match apply(&current[*t], e) {
                        Some(s) => next[*t] = s,
                        None => valid = false,
                    }
                    match e {
                        Edit::Change { upserts, deletes } => {
                            tx.upsert(TABLES[*t], batch(upserts)).unwrap();
                            tx.delete(TABLES[*t], ids(deletes)).unwrap();
                        }
                        Edit::Replace(rows) => {
                            tx.replace(TABLES[*t], vec![batch(rows)]).unwrap();
                        }
                        Edit::Patch(rows) => {
                            tx.patch(TABLES[*t], amount_patch(rows)).unwrap();
                        }
                    }
                }
                match tx.commit() {
                    Ok(v) => {
                        assert!(valid, "the store accepted an invalid commit: {edits:?}");
                        assert_eq!(v, history.len() as u64 + 1);
                        history.push(next);
                        expired.push(false);
                    }
                    Err(Error::DuplicateKey { .. } | Error::KeyNotFound { .. }) => {
                        assert!(!valid, "refused a valid commit")
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        }
    }
    drop(writer);
    let reopened = Store::open(store.path()).unwrap();
    assert_eq!(reopened.latest_version().unwrap(), history.len() as u64);
    check_all(&reopened, &history, &expired, &probes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn every_version_matches_the_model(
        steps in prop::collection::vec(step(), 1..14),
        probes in prop::collection::vec(-5i64..405, 2..8),
        keyframe_every in 1u32..6,
        keyframe_fraction in prop::sample::select(vec![0.05, 0.5, 100.0]),
        keyframe_touching in prop::sample::select(vec![0.0, 0.1, 1.0]),
    ) {
        run(steps, probes, keyframe_every, keyframe_fraction, keyframe_touching);
    }

    /// A policy that makes overlays and closes generations often, so compaction always has
    /// work: every closed generation becomes B-frames, and rewinds land inside them.
    #[test]
    fn compacted_and_rewound_versions_match_the_model(
        steps in prop::collection::vec(valid_step(), 6..24),
        probes in prop::collection::vec(-5i64..405, 2..8),
        keyframe_every in 2u32..5,
    ) {
        run(steps, probes, keyframe_every, 100.0, 0.0);
    }
}
