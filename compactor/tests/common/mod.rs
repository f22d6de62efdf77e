//! Shared helpers for the compactor's tests: a two-column table (k Int64 key, v Utf8) in
//! tiny leaves, its rows as (key, value) pairs, and the changes between two states.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use reeldb_compactor::RowBatch;
use reeldb_keyframe::TreeShape;
use reeldb_keyframe::builder::SortedChanges;
use reeldb_keyframe::tree::{Access, TableLayout, Tree};

/// A table's rows by key.
pub type State = BTreeMap<i64, String>;

/// Tiny leaves and fan-outs, so a few dozen rows make several leaves.
pub fn shape() -> TreeShape {
    TreeShape {
        min_leaf_rows: 3,
        leaf_boundary_mask: 7,
        max_leaf_rows: 10,
        min_fanout: 2,
        fanout_mask: 3,
        max_fanout: 5,
    }
}

/// The layout of the test table.
pub fn layout() -> Arc<TableLayout> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Utf8, false),
    ]));
    Arc::new(TableLayout::new(schema, &[0]).unwrap())
}

/// The rows as a batch of the test table.
pub fn rows(layout: &TableLayout, state: &[(i64, String)]) -> RecordBatch {
    RecordBatch::try_new(
        layout.schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(state.iter().map(|(k, _)| *k))),
            Arc::new(StringArray::from_iter_values(
                state.iter().map(|(_, v)| v.as_str()),
            )),
        ],
    )
    .unwrap()
}

/// Encoded keys.
pub fn encode_keys(layout: &TableLayout, keys: &[i64]) -> Vec<Vec<u8>> {
    let col: ArrayRef = Arc::new(Int64Array::from(keys.to_vec()));
    let rows = layout.key.encode_columns(&[col]).unwrap();
    rows.iter().map(|r| r.as_ref().to_vec()).collect()
}

/// The changes that turn `from` into `to`.
pub fn changes(layout: &TableLayout, from: &State, to: &State) -> SortedChanges {
    let upserts: Vec<(i64, String)> = to
        .iter()
        .filter(|(k, v)| from.get(k) != Some(v))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let deletes: Vec<i64> = from
        .keys()
        .filter(|k| !to.contains_key(k))
        .copied()
        .collect();
    let upserts = rows(layout, &upserts);
    SortedChanges {
        upsert_keys: layout.key.encode_batch(&upserts).unwrap(),
        upserts,
        deletes: encode_keys(layout, &deletes),
    }
}

/// The rows of a row batch.
pub fn decode_all(tree: &Tree, batch: &RowBatch) -> Vec<(i64, String)> {
    let cols: Vec<ArrayRef> = tree
        .read_batch_columns(
            &batch.columns,
            batch.rows as usize,
            &[0, 1],
            Access::Streaming,
        )
        .unwrap();
    pairs(&cols)
}

/// The rows of two decoded columns.
pub fn pairs(cols: &[ArrayRef]) -> Vec<(i64, String)> {
    let k = cols[0].as_any().downcast_ref::<Int64Array>().unwrap();
    let v = cols[1].as_any().downcast_ref::<StringArray>().unwrap();
    (0..k.len())
        .map(|i| (k.value(i), v.value(i).to_string()))
        .collect()
}

/// Every row of a tree, in key order.
pub fn tree_pairs(tree: &Tree) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for leaf in tree.leaves().unwrap() {
        let node = tree.read_leaf(&leaf.entry).unwrap();
        out.extend(pairs(
            &tree
                .read_columns(&node, &[0, 1], Access::Streaming)
                .unwrap(),
        ));
    }
    out
}
