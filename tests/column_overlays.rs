//! Column-level overlays: an overlay commit stores the columns its updates changed, and reads
//! the others from its generation's keyframe (a gathered column); every version reads
//! exactly as committed, through gets, scans, compaction, cleaning and verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use reeldb::{Store, WriterOptions};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// The wide `note` of row `id` in `round`: 40 characters no compressor shortens much.
fn note(id: i64, round: u64) -> Option<String> {
    (id % 11 != 0).then(|| {
        let x = (id as u64 ^ round.wrapping_mul(0x9e37_79b9)).wrapping_mul(0x2545_f491_4f6c_dd1d);
        format!("{:016x}-{:016x}-{round:05}", x, x.rotate_left(17))
    })
}

fn rows(ids: &[i64], amount_round: u64, note_round: impl Fn(i64) -> u64) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Float64Array::from_iter_values(
                ids.iter().map(|&i| i as f64 + amount_round as f64 * 0.25),
            )),
            Arc::new(StringArray::from_iter(
                ids.iter().map(|&i| note(i, note_round(i))),
            )),
        ],
    )
    .unwrap()
}

/// Batches of [`schema`] as one batch in key order.
fn canonical(batches: &[RecordBatch]) -> RecordBatch {
    let all = arrow::compute::concat_batches(&schema(), batches).unwrap();
    let order = arrow::compute::sort_to_indices(all.column(0), None, None).unwrap();
    arrow::compute::take_record_batch(&all, &order).unwrap()
}

/// Bytes of the store's `note` blocks stored gathered, and in every encoding.
fn note_bytes(store: &Store) -> (u64, u64) {
    let stats = store.stats().unwrap();
    let note = stats.column_space.iter().filter(|c| c.column == "note");
    let gathered = note
        .clone()
        .filter(|c| c.encoding == "gathered")
        .map(|c| c.bytes)
        .sum();
    (gathered, note.map(|c| c.bytes).sum())
}

fn everything(store: &Store) -> Vec<(RecordBatch, Vec<Option<RecordBatch>>)> {
    (1..=store.latest_version().unwrap())
        .map(|v| {
            let t = store.snapshot(v).unwrap().table("t").unwrap();
            let scan = t
                .scan(&reeldb::ScanOptions::new())
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let gets = (0..4000).step_by(37).map(|id| t.get(id).unwrap()).collect();
            (canonical(&scan), gets)
        })
        .collect()
}

/// A new store at `path` whose table `t` holds ids 0 to 3,999 (round 0) as its first
/// keyframe, and its writer, cutting a keyframe every `every` commits.
fn first_keyframe(path: &std::path::Path, every: u32) -> (Store, reeldb::Writer) {
    let store = Store::create(path).unwrap();
    let mut w = store
        .writer_with(WriterOptions::default().keyframe_every(every))
        .unwrap();
    let ids: Vec<i64> = (0..4000).collect();
    let mut tx = w.begin();
    tx.create_table("t", schema(), &["id"]).unwrap();
    tx.upsert("t", rows(&ids, 0, |_| 0)).unwrap();
    tx.commit().unwrap();
    (store, w)
}

#[test]
fn an_update_of_a_narrow_column_stores_the_wide_one_as_picks_into_the_keyframe() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = first_keyframe(&dir.path().join("s"), 100);
    let (_, keyframe_note) = note_bytes(&store);

    // Every 10th row's amount changes; its note is written again, unchanged.
    let updated: Vec<i64> = (0..4000).step_by(10).collect();
    let mut tx = w.begin();
    tx.upsert("t", rows(&updated, 1, |_| 0)).unwrap();
    let v2 = tx.commit().unwrap();
    assert_eq!(
        store.snapshot(v2).unwrap().info().kind,
        reeldb::VersionKind::Overlay
    );
    let (gathered, all_note) = note_bytes(&store);
    assert!(gathered > 0, "the overlay's note column is gathered");
    // 400 notes of 40 bytes would take about 16 KB; their picks take under 2.
    assert!(
        all_note - keyframe_note < 2_000,
        "{} bytes of note for 400 unchanged notes",
        all_note - keyframe_note
    );
    let t = store.snapshot(v2).unwrap().table("t").unwrap();
    for id in [0i64, 10, 11, 3990, 5] {
        let want = rows(&[id], u64::from(id % 10 == 0), |_| 0);
        assert_eq!(t.get(id).unwrap().unwrap(), want, "row {id}");
    }
}

#[test]
fn rows_whose_wide_column_changed_keep_their_own_values_at_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let (store, mut w) = first_keyframe(&path, 4);
    let ids: Vec<i64> = (0..4000).collect();
    // Each round updates 300 rows (new keys among them) and deletes a few; a quarter of the
    // updates change the note too, and patches change only amounts.
    let mut model: std::collections::BTreeMap<i64, RecordBatch> =
        ids.iter().map(|&i| (i, rows(&[i], 0, |_| 0))).collect();
    for round in 1..=10u64 {
        let updated: Vec<i64> = (0..300)
            .map(|k| (k * 13 + round as i64 * 7) % 4100)
            .collect();
        let mut updated = updated;
        updated.sort_unstable();
        updated.dedup();
        let note_round = |i: i64| if i % 4 == 0 { round } else { 0 };
        let deleted: Vec<i64> = vec![(round as i64 * 97) % 4000 + 1];
        updated.retain(|i| !deleted.contains(i));
        let mut tx = w.begin();
        tx.upsert("t", rows(&updated, round, note_round)).unwrap();
        tx.delete(
            "t",
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
                vec![Arc::new(Int64Array::from(deleted.clone()))],
            )
            .unwrap(),
        )
        .unwrap();
        tx.commit().unwrap();
        for &i in &updated {
            model.insert(i, rows(&[i], round, note_round));
        }
        for i in &deleted {
            model.remove(i);
        }
    }
    let latest = store.snapshot(store.latest_version().unwrap()).unwrap();
    let scan = latest
        .table("t")
        .unwrap()
        .scan(&reeldb::ScanOptions::new())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let want: Vec<RecordBatch> = model.values().cloned().collect();
    assert_eq!(canonical(&scan), canonical(&want));
    assert!(note_bytes(&store).0 > 0, "some overlay gathered its notes");

    // Compaction, cleaning and a reopen change what no version reads.
    let truth = everything(&store);
    w.compact(&mut |_, _| {}).unwrap();
    w.clean(0.0).unwrap();
    drop(w);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(everything(&reopened), truth);
    let report = reopened
        .verify(1..=reopened.latest_version().unwrap(), &mut |_| {})
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.versions);
}
