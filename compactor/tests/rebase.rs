//! Rebasing spans of versions onto the next keyframe (the step keyframe thinning takes):
//! random frames over any keyframe of a run of thinned ones or over the next, showing random
//! rows of the span's batches, read back over the next keyframe alone exactly as they did,
//! no key twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use proptest::prelude::*;
use reeldb_compactor::{BFrame, Frame, Over, RowBatch, Span, rebase};
use reeldb_keyframe::builder::{self};
use reeldb_keyframe::storage::{LocalStorage, Storage};
use reeldb_keyframe::tree::{Source, Tree};
use reeldb_keyframe::{DecodedCache, PackReader, PackWriter, block};
use roaring::{RoaringBitmap, RoaringTreemap};

mod common;

use common::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn run(seed: u64, versions: usize, batch_rows: usize, thinned: usize) {
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let layout = layout();
    let mut packs = PackWriter::open(storage.clone(), &[]).unwrap();
    let source = Arc::new(Source {
        packs: PackReader::new(storage.clone()),
        cache: DecodedCache::default(),
    });
    let shape = shape();
    // A run of keyframes, each a random change of the one before; the last is `next`.
    let mut trees = Vec::new();
    let mut state = State::new();
    let mut tree = Tree::new(source.clone(), layout.clone(), None);
    for t in 0..=thinned {
        let mut after = state.clone();
        for k in 0..50i64 {
            match rng.next() % 6 {
                0 if t == 0 => {
                    after.insert(k, format!("m{k}"));
                }
                0 => {
                    after.insert(k, format!("b{k}-{}", rng.next() % 3));
                }
                1 if t > 0 => {
                    after.remove(&k);
                }
                _ => {}
            }
        }
        let root =
            builder::apply(&mut packs, &shape, &tree, &changes(&layout, &state, &after)).unwrap();
        tree = Tree::new(source.clone(), layout.clone(), root);
        trees.push(tree.clone());
        state = after;
    }
    let next = trees.pop().unwrap();
    // The span's batch rows: some equal to either keyframe's rows, some new.
    let mut batch_rows_all: Vec<(i64, String)> = Vec::new();
    for k in 0..50i64 {
        if rng.chance(40) {
            let v = match rng.next() % 3 {
                0 => format!("m{k}"),
                1 => format!("b{k}-{}", rng.next() % 3),
                _ => format!("r{k}-{}", rng.next() % 5),
            };
            batch_rows_all.push((k, v));
        }
    }
    let mut batches = Vec::new();
    for chunk in batch_rows_all.chunks(7) {
        let b = rows(&layout, chunk);
        let columns = block::store_columns(&mut packs, &layout, &b).unwrap();
        batches.push(RowBatch {
            rows: chunk.len() as u32,
            columns,
        });
    }
    packs.sync(false).unwrap();
    let thinned_rows: Vec<Vec<(i64, String)>> = trees.iter().map(tree_pairs).collect();
    let next_rows = tree_pairs(&next);

    // Random frames, each a valid state: its keyframe minus hidden rows plus live batch rows
    // whose keys are hidden there or absent from it, one per key.
    let mut owned: Vec<(Over, RoaringTreemap, RoaringBitmap)> = Vec::new();
    let mut states: Vec<State> = Vec::new();
    for _ in 0..versions {
        let over = match rng.next() as usize % (trees.len() + 1) {
            i if i < trees.len() => Over::Thinned(i),
            _ => Over::Next,
        };
        let base_rows = match over {
            Over::Thinned(i) => &thinned_rows[i],
            Over::Next => &next_rows,
        };
        let mut hidden = RoaringTreemap::new();
        let mut state = State::new();
        for (o, (k, v)) in base_rows.iter().enumerate() {
            if rng.chance(30) {
                hidden.insert(o as u64);
            } else {
                state.insert(*k, v.clone());
            }
        }
        let mut live = RoaringBitmap::new();
        for (id, (k, v)) in batch_rows_all.iter().enumerate() {
            if !state.contains_key(k) && rng.chance(50) {
                state.insert(*k, v.clone());
                live.insert(id as u32);
            }
        }
        owned.push((over, hidden, live));
        states.push(state);
    }
    let frames: Vec<Frame<'_>> = owned
        .iter()
        .map(|(over, hidden, live)| Frame {
            over: *over,
            hidden,
            live,
        })
        .collect();
    let thinned: Vec<&Tree> = trees.iter().collect();
    let span = Span {
        thinned: &thinned,
        next: &next,
        batches: &batches,
        frames: &frames,
    };
    let rebased = rebase(&span, &mut packs, batch_rows).unwrap();
    packs.sync(false).unwrap();
    let residual: Vec<(i64, String)> = rebased
        .residual
        .iter()
        .flat_map(|b| decode_all(&next, b))
        .collect();
    assert!(
        residual.windows(2).all(|w| w[0].0 <= w[1].0),
        "residual sorted by key"
    );
    let membership = &rebased.membership;
    let frames: Vec<BFrame> = (0..membership.frames)
        .map(|i| membership.frame(i))
        .collect();
    assert_eq!(frames.len(), states.len());
    for (i, (frame, want)) in frames.iter().zip(&states).enumerate() {
        let mut got = State::new();
        for (o, (k, v)) in next_rows.iter().enumerate() {
            if !frame.hidden.contains(o as u64) {
                assert!(got.insert(*k, v.clone()).is_none(), "v{i}: key {k} twice");
            }
        }
        for id in frame.live.iter() {
            let (k, v) = &residual[id as usize];
            assert!(got.insert(*k, v.clone()).is_none(), "v{i}: key {k} twice");
        }
        assert_eq!(&got, want, "version {i} of the span");
    }
    // A row version shown at consecutive versions is stored once, whichever copies (a
    // thinned keyframe's, a batch's) the frames showed it from.
    for pair in frames.windows(2) {
        for a in pair[0].live.iter() {
            for b in pair[1].live.iter().filter(|b| *b != a) {
                assert_ne!(residual[a as usize], residual[b as usize], "stored twice");
            }
        }
    }
    // Rows the next keyframe holds as they are never enter the residual.
    for (k, v) in &residual {
        assert_ne!(
            next_rows.iter().find(|(nk, _)| nk == k).map(|(_, nv)| nv),
            Some(v)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn every_rebased_version_reads_as_it_did(
        seed in any::<u64>(),
        versions in 1usize..10,
        batch_rows in 1usize..9,
        thinned in 1usize..5,
    ) {
        run(seed, versions, batch_rows, thinned);
    }
}
