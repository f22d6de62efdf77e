//! Block-level dedup: two keyframes that differ in one key range share every other block.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use reeldb_keyframe::builder::{self, SortedChanges};
use reeldb_keyframe::node::RecordRef;
use reeldb_keyframe::{
    DecodedCache, LocalStorage, PackReader, PackWriter, Source, TableLayout, Tree, TreeShape,
};

fn rows(ids: std::ops::Range<i64>, salt: f64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
        Field::new("s", DataType::Utf8, false),
    ]));
    let ids: Vec<i64> = ids.collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(Float64Array::from_iter_values(
                ids.iter().map(|&i| i as f64 + salt),
            )),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("row-{i}")),
            )),
        ],
    )
    .unwrap()
}

fn upserts(layout: &TableLayout, batch: RecordBatch) -> SortedChanges {
    let upsert_keys = layout.key.encode_batch(&batch).unwrap();
    SortedChanges {
        upserts: batch,
        upsert_keys,
        deletes: Vec::new(),
    }
}

fn blocks(tree: &Tree) -> Vec<(Vec<u8>, Vec<u8>, HashSet<RecordRef>)> {
    tree.leaves()
        .unwrap()
        .iter()
        .map(|l| {
            let leaf = tree.read_leaf(&l.entry).unwrap();
            let refs = leaf.columns.iter().flatten().map(|c| c.block).collect();
            (leaf.first_key.clone(), leaf.last_key.clone(), refs)
        })
        .collect()
}

#[test]
fn two_keyframes_differing_in_one_key_range_share_every_other_block() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(LocalStorage::new(dir.path()));
    let reader = Arc::new(Source {
        packs: PackReader::new(storage.clone()),
        cache: DecodedCache::default(),
    });
    let mut packs = PackWriter::open(storage, &[]).unwrap();
    let base = rows(0..200_000, 0.0);
    let layout = Arc::new(TableLayout::new(base.schema(), &[0]).unwrap());
    let shape = TreeShape::default();

    let empty = Tree::new(reader.clone(), layout.clone(), None);
    let first = builder::apply(&mut packs, &shape, &empty, &upserts(&layout, base)).unwrap();
    packs.sync(false).unwrap();
    let first = Tree::new(reader.clone(), layout.clone(), first);
    let (blocks_before, bytes_before) = packs.appended();

    // Change 100 rows in the middle of the key space.
    let change = upserts(&layout, rows(100_000..100_100, 0.5));
    let second = builder::apply(&mut packs, &shape, &first, &change).unwrap();
    packs.sync(false).unwrap();
    let second = Tree::new(reader, layout.clone(), second);
    let (blocks_after, bytes_after) = packs.appended();

    let old = blocks(&first);
    let new = blocks(&second);
    assert!(
        old.len() > 10,
        "the table should span many leaves, got {}",
        old.len()
    );
    let changed_key = |lo: i64, hi: i64| {
        let enc = |k: i64| {
            layout
                .key
                .encode_columns(&[Arc::new(Int64Array::from(vec![k]))])
                .unwrap()
                .row(0)
                .as_ref()
                .to_vec()
        };
        (enc(lo), enc(hi))
    };
    let (lo, hi) = changed_key(100_000, 100_099);
    let old_outside: Vec<_> = old.iter().filter(|(f, l, _)| *l < lo || *f > hi).collect();
    let new_outside: Vec<_> = new.iter().filter(|(f, l, _)| *l < lo || *f > hi).collect();
    assert_eq!(
        old_outside, new_outside,
        "leaves outside the changed range must be the same blocks"
    );
    assert_eq!(old.len(), new.len());

    // Only the touched leaf's changed column was written again (ids and strings dedup too).
    let new_blocks = blocks_after - blocks_before;
    assert_eq!(new_blocks, 1, "only the float column of one leaf differs");
    // What was written: that one block plus the leaf node and the nodes above it, never more
    // than the touched leaf's own size (the whole table is ~40x more).
    let leaf = second.find_leaf(&lo).unwrap().unwrap();
    let written = bytes_after - bytes_before;
    assert!(
        written < leaf.entry.raw_bytes,
        "wrote {written} bytes for a 100-row change in a leaf of {} bytes",
        leaf.entry.raw_bytes
    );

    assert!(leaf.ordinal <= 100_000 && 100_000 < leaf.ordinal + leaf.entry.rows);
    assert_eq!(second.rows(), 200_000);
    assert_eq!(first.rows(), 200_000);
}
