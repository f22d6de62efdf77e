//! Overlay versions against a model: at every version, its deltas read back and folded, the
//! keyframe's rows minus the deletion vector plus the live overlay rows are exactly the
//! table's state, and a get that takes the
//! key's live overlay row, else its keyframe row unless shadowed, finds every key's current
//! row.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use reeldb_keyframe::storage::{LocalStorage, Storage};
use reeldb_overlay::{Change, NodeLog, NodeLogWriter, OverlayVersion, apply};

const KEYFRAME_ROWS: u16 = 200;

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
        let path = Path::new("gen.olog");
        let mut log = NodeLogWriter::open(storage.clone(), path, None).unwrap();
        // The keyframe: keys 0..200 at ordinals 0..200, value 0.
        let keyframe: BTreeMap<u16, u32> = (0..KEYFRAME_ROWS).map(|k| (k, 0)).collect();
        // Overlay rows of every batch, by generation row id, and each key's latest row.
        let mut rows: Vec<(u16, u32)> = Vec::new();
        let mut latest: HashMap<u16, u32> = HashMap::new();
        let mut state = keyframe.clone();
        let mut version = OverlayVersion::default();
        let mut history = Vec::new();
        let mut deltas = Vec::new();
        for commit in &commits {
            let mut changes = Vec::new();
            for (k, v) in commit {
                let row = v.map(|value| {
                    rows.push((*k, value));
                    rows.len() as u32 - 1
                });
                let replaces = match row {
                    Some(r) => latest.insert(*k, r),
                    None => latest.remove(k),
                };
                let shadows = (*k < KEYFRAME_ROWS).then_some(u64::from(*k));
                changes.push(Change { row, replaces, shadows });
                match v {
                    Some(value) => { state.insert(*k, *value); }
                    None => { state.remove(k); }
                }
            }
            let (next, delta) = apply(&version, changes);
            version = next;
            deltas.push(delta.store(&mut log).unwrap());
            log.sync(false).unwrap();
            history.push((deltas.clone(), rows.len() as u32, state.clone()));
        }
        let reader = NodeLog::new(storage, path);
        for (deltas, rows_then, state) in &history {
            let v = OverlayVersion::load(&reader, deltas, *rows_then).unwrap();
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
            prop_assert!(v.live.max().is_none_or(|m| m < *rows_then));
            // Get: a live overlay row of the key, else the keyframe's unless shadowed.
            for k in 0..260u16 {
                let live = rows
                    .iter()
                    .enumerate()
                    .find(|(id, (rk, _))| *rk == k && v.live.contains(*id as u32))
                    .map(|(_, (_, val))| *val);
                let got = live.or_else(|| {
                    keyframe
                        .get(&k)
                        .filter(|_| !v.shadowed.contains(u64::from(k)))
                        .copied()
                });
                prop_assert_eq!(got, state.get(&k).copied(), "get {}", k);
            }
        }
    }
}
