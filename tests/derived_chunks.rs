//! Column blocks used again instead of stored again: a keyframe whose leaves only lost rows,
//! or had other columns updated, keeps the blocks of the columns whose values did not change
//! (derived chunks), and a compacted residual picks the values its rows share with the next
//! keyframe from that keyframe's blocks (gathered columns). Every version still reads
//! exactly as committed, through compaction, thinning, cleaning and reopening.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use reeldb::{KeyframeThinning, MaintenancePlan, ScanOptions, Store};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, false),
    ]))
}

/// The model: id -> (status, note).
type Model = BTreeMap<i64, (String, String)>;

fn batch(model: &Model, ids: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| model[i].0.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| model[i].1.clone()),
            )),
        ],
    )
    .unwrap()
}

fn note(i: i64) -> String {
    // Wide and varied, so storing the column again would show in the store's size.
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{x:016x}-{:016x}-note-{i}", x.rotate_left(17))
}

fn ids_batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap()
}

fn note_bytes(store: &Store) -> u64 {
    store
        .stats()
        .unwrap()
        .column_space
        .iter()
        .filter(|c| c.column == "note")
        .map(|c| c.bytes)
        .sum()
}

/// Every row of `version`, as (id, status, note), by scan, by get and by range.
fn check(store: &Store, version: u64, model: &Model) {
    let t = store.snapshot(version).unwrap().table("t").unwrap();
    let mut scanned = Model::new();
    for b in t.scan(&ScanOptions::new().in_key_order()).unwrap() {
        let b = b.unwrap();
        let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let st = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let nt = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        for r in 0..b.num_rows() {
            scanned.insert(id.value(r), (st.value(r).into(), nt.value(r).into()));
        }
    }
    assert_eq!(&scanned, model, "scan of version {version}");
    for k in (0..4_200).step_by(7) {
        let got = t.get(k).unwrap();
        match model.get(&k) {
            Some(_) => assert_eq!(got.unwrap(), batch(model, &[k]), "get {k} at {version}"),
            None => assert!(got.is_none(), "get {k} at {version}"),
        }
    }
    let ranged: usize = t
        .range(1_000i64..3_000)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(
        ranged,
        model.range(1_000..3_000).count(),
        "range at {version}"
    );
}

/// A store holding table "t" with 4,000 rows (version 1), its writer, the model and the
/// history so far.
fn seeded(path: &std::path::Path) -> (Store, reeldb::Writer, Model, Vec<(u64, Model)>) {
    let store = Store::create(path).unwrap();
    let mut w = store.writer().unwrap();
    let model: Model = (0..4_000)
        .map(|i| (i, (format!("s{}", i % 5), note(i))))
        .collect();
    let mut tx = w.begin();
    tx.create_table("t", schema(), &["id"]).unwrap();
    let all: Vec<i64> = model.keys().copied().collect();
    tx.upsert("t", batch(&model, &all)).unwrap();
    let history = vec![(tx.commit().unwrap(), model.clone())];
    (store, w, model, history)
}

/// Round `round`'s changes to the model: the keys it deletes (a few, spread over every
/// leaf) and those whose status it changes (where `changes` says), their notes left alone.
fn change(model: &mut Model, round: i64, changes: impl Fn(i64) -> bool) -> (Vec<i64>, Vec<i64>) {
    let gone: Vec<i64> = model.keys().copied().filter(|k| k % 97 == round).collect();
    for k in &gone {
        model.remove(k);
    }
    let changed: Vec<i64> = model.keys().copied().filter(|k| changes(*k)).collect();
    for k in &changed {
        model.get_mut(k).unwrap().0 = format!("r{round}");
    }
    (gone, changed)
}

#[test]
fn keyframes_that_only_delete_or_update_other_columns_keep_the_note_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let (store, mut w, mut model, mut history) = seeded(&path);
    let first_notes = note_bytes(&store);

    for round in 1..=8i64 {
        let mut tx = w.begin();
        // A few deletes spread over every leaf, and a status change of other rows.
        let (gone, changed) = change(&mut model, round, |k| k % 13 == round);
        tx.delete("t", ids_batch(&gone)).unwrap();
        tx.upsert("t", batch(&model, &changed)).unwrap();
        tx.keyframe();
        history.push((tx.commit().unwrap(), model.clone()));
    }
    // Eight keyframes, yet the note column is stored about once.
    let notes = note_bytes(&store);
    assert!(
        notes < first_notes + first_notes / 4,
        "note column {notes} bytes after eight keyframes, {first_notes} after the first"
    );
    for (v, m) in &history {
        check(&store, *v, m);
    }

    // A keyframe that inserts rows stores the leaves it inserts into again, and reads right.
    let mut tx = w.begin();
    let fresh: Vec<i64> = (4_000..4_100).collect();
    for &k in &fresh {
        model.insert(k, ("new".into(), note(k)));
    }
    tx.upsert("t", batch(&model, &fresh)).unwrap();
    tx.keyframe();
    history.push((tx.commit().unwrap(), model.clone()));
    drop(w);

    // Compaction and thinning to one keyframe, cleaning, verification and a reopen.
    let plan = MaintenancePlan {
        thinning: KeyframeThinning::Every(u64::MAX),
        clean_at_garbage: 0.0,
    };
    let report = store
        .maintenance()
        .unwrap()
        .run(&plan, &mut |_, _, _| {})
        .unwrap();
    assert!(
        report.thinning.unwrap().runs > 0,
        "thinning rebased something"
    );
    verified(&store);
    drop(store);
    let store = Store::open(&path).unwrap();
    for (v, m) in &history {
        check(&store, *v, m);
    }
    verified(&store);
}

fn verified(store: &Store) {
    let latest = store.latest_version().unwrap();
    let report = store.verify(1..=latest, &mut |_| {}).unwrap();
    for c in &report.versions {
        assert!(
            c.problem.is_none(),
            "version {}: {:?}",
            c.version,
            c.problem
        );
    }
}

#[test]
fn compacted_residual_rows_pick_their_unchanged_columns_from_the_next_keyframe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let (store, mut w, mut model, mut history) = seeded(&path);
    let first_notes = note_bytes(&store);

    // Two generations of overlays, each closed by a keyframe; each round deletes a few rows
    // and changes the status of others (their notes stay).
    for round in 1..=12i64 {
        let mut tx = w.begin();
        let (gone, changed) = change(&mut model, round, |k| k % 11 == round % 11);
        tx.delete("t", ids_batch(&gone)).unwrap();
        tx.upsert("t", batch(&model, &changed)).unwrap();
        if round % 6 == 0 {
            tx.keyframe();
        }
        history.push((tx.commit().unwrap(), model.clone()));
    }
    for (v, m) in &history {
        check(&store, *v, m);
    }
    drop(w);

    let plan = MaintenancePlan {
        thinning: KeyframeThinning::Off,
        clean_at_garbage: 0.0,
    };
    let report = store
        .maintenance()
        .unwrap()
        .run(&plan, &mut |_, _, _| {})
        .unwrap();
    assert!(report.compaction.generations > 0, "{report:?}");
    assert!(report.cleaning.copied, "{report:?}");
    // The residual holds about 4,000 earlier row versions; their notes are picks.
    let notes = note_bytes(&store);
    assert!(
        notes < first_notes + first_notes / 3,
        "note column {notes} bytes after compaction, {first_notes} for one copy"
    );
    for (v, m) in &history {
        check(&store, *v, m);
    }
    verified(&store);
    drop(store);
    let store = Store::open(&path).unwrap();
    for (v, m) in &history {
        check(&store, *v, m);
    }
    verified(&store);
}
