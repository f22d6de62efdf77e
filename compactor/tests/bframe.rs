//! B-frames against a model: for random generations (overlay commits of upserts, deletes,
//! re-inserts and writes that restore a row's old content, then a next keyframe with changes
//! of its own), every version read back as "the next keyframe minus its hidden rows plus its
//! live residual rows" is exactly the state the overlay version held, no key twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use reeldb_compactor::{BFrame, ClosedGeneration, Membership, RowBatch, compact};
use reeldb_keyframe::builder::{self};
use reeldb_keyframe::storage::{LocalStorage, Storage};
use reeldb_keyframe::tree::{Source, Tree};
use reeldb_keyframe::{DecodedCache, PackReader, PackWriter, block};
use reeldb_overlay::{Change, OverlayVersion, apply};

mod common;

use common::*;

/// One overlay commit: key -> new value, or None to delete.
type Commit = BTreeMap<i64, Option<u8>>;

fn commit_strategy() -> impl Strategy<Value = Commit> {
    prop::collection::btree_map(0i64..60, prop::option::of(0u8..4), 0..12)
}

fn run(commits: Vec<Commit>, last: Commit, batch_rows: usize) -> reeldb_compactor::Compacted {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let layout = layout();
    let mut packs = PackWriter::open(storage.clone(), &[]).unwrap();
    let source = Arc::new(Source {
        packs: PackReader::new(storage.clone()),
        cache: DecodedCache::default(),
    });
    // The previous keyframe: even keys below 40.
    let base: State = (0..40)
        .step_by(2)
        .map(|k| (k, format!("base{k}")))
        .collect();
    let empty = Tree::new(source.clone(), layout.clone(), None);
    let prev_root = builder::apply(
        &mut packs,
        &shape(),
        &empty,
        &changes(&layout, &State::new(), &base),
    )
    .unwrap();
    packs.sync(false).unwrap();
    let prev = Tree::new(source.clone(), layout.clone(), prev_root);
    let prev_keys: Vec<i64> = base.keys().copied().collect();

    // The overlay versions.
    let mut version = OverlayVersion::default();
    let (mut state, mut states, mut versions) = (base.clone(), Vec::new(), Vec::new());
    let mut batches: Vec<RowBatch> = Vec::new();
    let mut latest: HashMap<i64, u32> = HashMap::new();
    let mut total = 0u32;
    for (i, commit) in commits.iter().enumerate() {
        // A value 0 restores the base content: equal rows must be recognised as equal.
        let value = |k: i64, v: u8| {
            if v == 0 {
                format!("base{k}")
            } else {
                format!("v{i}-{k}-{v}")
            }
        };
        let upserts: Vec<(i64, String)> = commit
            .iter()
            .filter_map(|(k, v)| v.map(|v| (*k, value(*k, v))))
            .collect();
        let batch = rows(&layout, &upserts);
        if !upserts.is_empty() {
            let columns = block::store_columns(&mut packs, &layout, &batch).unwrap();
            batches.push(RowBatch {
                rows: upserts.len() as u32,
                columns,
            });
        }
        let mut edits = Vec::new();
        for (k, v) in commit {
            let row = v.map(|_| {
                total += 1;
                total - 1
            });
            let replaces = match row {
                Some(r) => latest.insert(*k, r),
                None => latest.remove(k),
            };
            edits.push(Change {
                row,
                replaces,
                shadows: prev_keys.binary_search(k).ok().map(|o| o as u64),
            });
        }
        version = apply(&version, edits).0;
        for (k, v) in commit {
            match v {
                Some(v) => state.insert(*k, value(*k, *v)),
                None => state.remove(k),
            };
        }
        states.push(state.clone());
        versions.push(version.clone());
    }
    packs.sync(false).unwrap();

    // The next keyframe: the last state plus changes of its own.
    let mut final_state = state.clone();
    for (k, v) in &last {
        match v {
            Some(v) => final_state.insert(*k, format!("next{k}-{v}")),
            None => final_state.remove(k),
        };
    }
    let next_root = builder::apply(
        &mut packs,
        &shape(),
        &prev,
        &changes(&layout, &base, &final_state),
    )
    .unwrap();
    packs.sync(false).unwrap();
    let next = Tree::new(source, layout.clone(), next_root);

    let generation = ClosedGeneration {
        prev: &prev,
        next: &next,
        versions: &versions,
        batches: &batches,
    };
    let compacted = compact(&generation, &mut packs, batch_rows).unwrap();
    packs.sync(false).unwrap();
    let membership = &compacted.membership;
    assert_eq!(membership.frames as usize, states.len());
    assert_eq!(
        Membership::decode(&membership.encode()).as_ref(),
        Ok(membership),
        "the membership round-trips"
    );
    let frames: Vec<BFrame> = (0..membership.frames)
        .map(|i| membership.frame(i))
        .collect();
    let counts: Vec<(u64, u64)> = frames
        .iter()
        .map(|f| (f.hidden.len(), f.live.len()))
        .collect();
    assert_eq!(membership.counts(), counts);
    let next_rows = tree_pairs(&next);
    let residual: Vec<(i64, String)> = compacted
        .residual
        .iter()
        .flat_map(|b| decode_all(&next, b))
        .collect();
    // The residual is sorted by key and its batches' first keys are right.
    assert!(residual.windows(2).all(|w| w[0].0 <= w[1].0));
    let mut at = 0usize;
    for (b, first) in compacted.residual.iter().zip(&compacted.first_keys) {
        assert_eq!(first, &encode_keys(&layout, &[residual[at].0])[0]);
        at += b.rows as usize;
    }
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
        assert_eq!(&got, want, "version {i} of the generation");
    }
    compacted
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn every_b_frame_reads_back_as_its_overlay_version(
        commits in prop::collection::vec(commit_strategy(), 1..8),
        last in commit_strategy(),
        batch_rows in 1usize..9,
    ) {
        run(commits, last, batch_rows);
    }
}

#[test]
fn a_generation_whose_rows_all_survive_needs_no_residual() {
    // Each key written once and never again: the next keyframe holds every row as written.
    let commits: Vec<Commit> = (0..3)
        .map(|i| (0..5).map(|k| (40 + i * 5 + k, Some(1))).collect())
        .collect();
    let compacted = run(commits, Commit::new(), 4);
    assert!(compacted.residual.is_empty());
    // Each version hides the rows written after it, and nothing else.
    let hidden: Vec<u64> = compacted.membership.counts().iter().map(|c| c.0).collect();
    assert_eq!(hidden, vec![10, 5, 0]);
}

#[test]
fn a_row_restored_to_its_old_content_is_read_from_the_next_keyframe() {
    // Key 2 is changed, then restored to its base content: the next keyframe's row serves
    // the versions before the change and after the restore; only the changed row is residual.
    let commits: Vec<Commit> = vec![
        [(2, Some(1))].into_iter().collect(),
        [(2, Some(0))].into_iter().collect(),
        Commit::new(),
    ];
    let compacted = run(commits, Commit::new(), 4);
    assert_eq!(compacted.residual.iter().map(|b| b.rows).sum::<u32>(), 1);
    let live: Vec<u64> = compacted.membership.counts().iter().map(|c| c.1).collect();
    assert_eq!(live, vec![1, 0, 0]);
}
