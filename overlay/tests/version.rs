//! Overlay versions against a model: at every version, the keyframe's rows minus the deletion
//! vector plus the live overlay rows are exactly the table's state, and a get that asks the
//! trie first and the keyframe second finds every key's current row.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use reeldb_keyframe::storage::{LocalStorage, Storage};
use reeldb_overlay::hamt::get;
use reeldb_overlay::{
    Change, NodeLog, NodeLogWriter, OverlayVersion, RowLocation, apply, key_hash,
};

const KEYFRAME_ROWS: u16 = 200;

fn key(k: u16) -> Vec<u8> {
    k.to_be_bytes().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn keyframe_minus_deletion_vector_plus_live_rows_is_the_state(
        commits in prop::collection::vec(
            prop::collection::btree_map(0u16..260, prop::option::of(1u32..1_000_000), 0..60),
            1..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let path = Path::new("gen.hamt");
        let mut log = NodeLogWriter::open(storage.clone(), path, None, key_hash).unwrap();
        // The keyframe: keys 0..200 at ordinals 0..200, value 0.
        let keyframe: BTreeMap<u16, u32> = (0..KEYFRAME_ROWS).map(|k| (k, 0)).collect();
        // Overlay rows of every batch, and where each batch's rows start.
        let mut rows: Vec<(u16, u32)> = Vec::new();
        let mut batch_start: Vec<u32> = Vec::new();
        let mut state = keyframe.clone();
        let mut version = OverlayVersion::default();
        let mut history = Vec::new();
        for (b, commit) in commits.iter().enumerate() {
            batch_start.push(rows.len() as u32);
            let mut changes = Vec::new();
            let keys: Vec<Vec<u8>> = commit.keys().map(|k| key(*k)).collect();
            for ((k, v), kb) in commit.iter().zip(&keys) {
                let row = v.map(|value| {
                    rows.push((*k, value));
                    RowLocation { batch: b as u32, row: (rows.len() as u32 - 1) - batch_start[b] }
                });
                let shadows = (*k < KEYFRAME_ROWS).then_some(u64::from(*k));
                changes.push(Change { key: kb, row, shadows });
                match v {
                    Some(value) => { state.insert(*k, *value); }
                    None => { state.remove(k); }
                }
            }
            let starts = batch_start.clone();
            let row_id = move |l: RowLocation| starts[l.batch as usize] + l.row;
            version = apply(&mut log, &version, changes, &row_id).unwrap();
            let refs = version.store(&mut log).unwrap();
            log.sync(false).unwrap();
            history.push((refs, state.clone(), batch_start.clone()));
        }
        let reader = NodeLog::new(storage, path, key_hash);
        for (refs, state, starts) in &history {
            let v = OverlayVersion::load(&reader, refs).unwrap();
            // Scan: keyframe rows not shadowed, plus live overlay rows.
            let mut visible: BTreeMap<u16, u32> = keyframe
                .iter()
                .filter(|(k, _)| !v.shadowed.contains(u64::from(**k)))
                .map(|(k, val)| (*k, *val))
                .collect();
            for id in v.live.iter() {
                let (k, val) = rows[id as usize];
                prop_assert!(visible.insert(k, val).is_none(), "key {} visible twice", k);
            }
            prop_assert_eq!(&visible, state);
            // Get: the trie first, then the keyframe.
            for k in 0..260u16 {
                let kb = key(k);
                let got = match get(&reader, v.root, key_hash(&kb), &kb).unwrap() {
                    Some(e) => e.row.map(|l| rows[(starts[l.batch as usize] + l.row) as usize].1),
                    None => keyframe.get(&k).copied(),
                };
                prop_assert_eq!(got, state.get(&k).copied(), "get {}", k);
            }
        }
    }
}
