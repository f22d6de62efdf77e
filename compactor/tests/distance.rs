//! The distance between two keyframes: the keys whose rows differ, counted the same whether
//! the keyframes share many leaves or none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use proptest::prelude::*;
use reeldb_compactor::changed_keys;
use reeldb_compactor::fingerprint::RowHasher;
use reeldb_keyframe::builder;
use reeldb_keyframe::storage::{LocalStorage, Storage};
use reeldb_keyframe::tree::{Source, Tree};
use reeldb_keyframe::{DecodedCache, PackReader, PackWriter};

mod common;

use common::*;

/// Builds `a` from nothing and `b` as a change of `a`, and counts their distance.
fn distance(a: &State, b: &State) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let layout = layout();
    let mut packs = PackWriter::open(storage.clone(), &[]).unwrap();
    let source = Arc::new(Source {
        packs: PackReader::new(storage),
        cache: DecodedCache::default(),
    });
    let empty = Tree::new(source.clone(), layout.clone(), None);
    let root = builder::apply(
        &mut packs,
        &shape(),
        &empty,
        &changes(&layout, &State::new(), a),
    )
    .unwrap();
    let ta = Tree::new(source.clone(), layout.clone(), root);
    let root = builder::apply(&mut packs, &shape(), &ta, &changes(&layout, a, b)).unwrap();
    let tb = Tree::new(source, layout.clone(), root);
    packs.sync(false).unwrap();
    let hasher = RowHasher::new(&layout).unwrap();
    let d = changed_keys(&ta, &tb, &hasher).unwrap();
    assert_eq!(d, changed_keys(&tb, &ta, &hasher).unwrap(), "symmetric");
    d
}

fn expected(a: &State, b: &State) -> u64 {
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(k) != b.get(k)).count() as u64
}

#[test]
fn identical_keyframes_are_zero_apart() {
    let a: State = (0..100).map(|k| (k, format!("v{k}"))).collect();
    assert_eq!(distance(&a, &a), 0);
}

#[test]
fn one_update_in_a_large_table_counts_one() {
    let a: State = (0..500).map(|k| (k, format!("v{k}"))).collect();
    let mut b = a.clone();
    b.insert(250, "changed".into());
    assert_eq!(distance(&a, &b), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn the_distance_counts_inserts_updates_and_deletes(
        base in proptest::collection::btree_map(0i64..200, "[a-c]{1,3}", 0..120),
        edits in proptest::collection::vec((0i64..200, proptest::option::of("[a-c]{1,3}")), 0..40),
    ) {
        let mut after = base.clone();
        for (k, v) in edits {
            match v {
                Some(v) => { after.insert(k, v); }
                None => { after.remove(&k); }
            }
        }
        prop_assert_eq!(distance(&base, &after), expected(&base, &after));
    }
}
