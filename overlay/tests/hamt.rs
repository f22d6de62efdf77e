//! The persistent HAMT, behaviour by behaviour: every committed root keeps answering as the
//! model did when it was committed; commits write only their paths; damage is detected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use reeldb_keyframe::storage::{LocalStorage, Storage};
use reeldb_overlay::hamt::{diff, for_each, get};
use reeldb_overlay::{
    Edit, Entry, Error, KeyHasher, NodeLog, NodeLogWriter, NodeRef, Outcome, RowLocation, key_hash,
    update,
};

/// Only 256 distinct hashes: deep shared prefixes and many full collisions.
fn weak_hash(key: &[u8]) -> u64 {
    key_hash(key) & 0xFF
}

/// Every key collides.
fn constant_hash(_key: &[u8]) -> u64 {
    0x0123_4567_89AB_CDEF
}

fn entry(hasher: KeyHasher, key: u16, row: Option<u32>, shadows: Option<u64>) -> Entry {
    let key = key.to_be_bytes().to_vec();
    Entry {
        hash: hasher(&key),
        key,
        row: row.map(|r| RowLocation {
            batch: r / 100,
            row: r % 100,
        }),
        shadows,
    }
}

fn open_log(dir: &Path, hasher: KeyHasher) -> (Arc<dyn Storage>, NodeLogWriter) {
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir));
    let w = NodeLogWriter::open(storage.clone(), Path::new("g1.hamt"), None, hasher).unwrap();
    (storage, w)
}

type Model = BTreeMap<u16, (Option<u32>, Option<u64>)>;

fn check(log: &NodeLog, root: Option<NodeRef>, model: &Model, hasher: KeyHasher) {
    for k in 0..300u16 {
        let want = model.get(&k).map(|(r, s)| entry(hasher, k, *r, *s));
        let key = k.to_be_bytes();
        assert_eq!(get(log, root, hasher(&key), &key).unwrap(), want, "key {k}");
    }
    let mut all = Vec::new();
    for_each(log, root, &mut |e| all.push(e)).unwrap();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let want: Vec<Entry> = model
        .iter()
        .map(|(k, (r, s))| entry(hasher, *k, *r, *s))
        .collect();
    assert_eq!(all, want);
}

/// Commits `changes` (a later change to a key overrides an earlier one) and checks each
/// outcome against the model.
fn commit(
    w: &mut NodeLogWriter,
    root: Option<NodeRef>,
    changes: &[(u16, Option<u32>, Option<u64>)],
    hasher: KeyHasher,
    model: &mut Model,
) -> Option<NodeRef> {
    let last: BTreeMap<u16, (Option<u32>, Option<u64>)> =
        changes.iter().map(|&(k, r, s)| (k, (r, s))).collect();
    let entries: Vec<Entry> = last
        .iter()
        .map(|(k, (r, s))| entry(hasher, *k, *r, *s))
        .collect();
    let edits: Vec<Edit<'_>> = entries
        .iter()
        .map(|e| Edit {
            hash: e.hash,
            key: &e.key,
            row: e.row,
            shadows: e.shadows,
            only_if_present: false,
        })
        .collect();
    let updated = update(w, root, &edits).unwrap();
    for ((k, (r, s)), outcome) in last.iter().zip(&updated.outcomes) {
        let before = model.get(k).map(|(r0, s0)| entry(hasher, *k, *r0, *s0));
        let want = match before {
            Some(e) => Outcome::Replaced(e),
            None => Outcome::Added,
        };
        assert_eq!(*outcome, want, "outcome for key {k}");
        model.insert(*k, (*r, *s));
    }
    w.sync(false).unwrap();
    updated.root
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn every_committed_root_answers_as_the_model_did(
        commits in prop::collection::vec(
            prop::collection::vec((0u16..300, prop::option::of(0u32..10_000), prop::option::of(0u64..1_000_000)), 0..80),
            1..10),
        which in 0usize..3,
    ) {
        let hasher: KeyHasher = [key_hash as KeyHasher, weak_hash, constant_hash][which];
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut w) = open_log(dir.path(), hasher);
        let mut model = Model::new();
        let mut history = Vec::new();
        let mut root = None;
        for changes in &commits {
            root = commit(&mut w, root, changes, hasher, &mut model);
            history.push((root, model.clone()));
        }
        // A fresh reader, as another process would open the log.
        let log = NodeLog::new(storage, Path::new("g1.hamt"), hasher);
        for (root, model) in &history {
            check(&log, *root, model, hasher);
        }
        // Between any two versions, the diff is exactly what the later one changed.
        let empty = (None, Model::new());
        for (i, (new_root, new_model)) in history.iter().enumerate() {
            for (old_root, old_model) in std::iter::once(&empty).chain(&history[..i]) {
                let mut got = Vec::new();
                diff(&log, *old_root, *new_root, &mut |e| got.push(e)).unwrap();
                got.sort_by(|a, b| a.key.cmp(&b.key));
                let want: Vec<Entry> = new_model
                    .iter()
                    .filter(|(k, v)| old_model.get(k) != Some(v))
                    .map(|(k, (r, s))| entry(hasher, *k, *r, *s))
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}

#[test]
fn a_one_key_commit_writes_only_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w) = open_log(dir.path(), key_hash);
    let mut model = Model::new();
    let big: Vec<(u16, Option<u32>, Option<u64>)> = (0..20_000u16)
        .map(|k| (k, Some(u32::from(k)), None))
        .collect();
    let root = commit(&mut w, None, &big, key_hash, &mut model);
    let before = w.len();
    let root2 = commit(&mut w, root, &[(7, None, Some(7))], key_hash, &mut model);
    let written = w.len() - before;
    // 20,000 entries make a trie about four levels deep: four nodes on the path.
    assert!(written < 6 * 1024, "a one-key commit wrote {written} bytes");
    assert_ne!(root, root2);
    check(w.reader(), root2, &model, key_hash);
}

#[test]
fn every_flipped_byte_is_detected_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, mut w) = open_log(dir.path(), weak_hash);
    let mut model = Model::new();
    let changes: Vec<(u16, Option<u32>, Option<u64>)> = (0..120u16)
        .map(|k| (k * 2, Some(u32::from(k)), Some(u64::from(k))))
        .collect();
    let root = commit(&mut w, None, &changes, weak_hash, &mut model);
    let path = dir.path().join("g1.hamt");
    let pristine = std::fs::read(&path).unwrap();
    let mut detected = 0;
    for at in 16..pristine.len() {
        let mut bad = pristine.clone();
        bad[at] ^= 0x04;
        std::fs::write(&path, &bad).unwrap();
        let log = NodeLog::new(storage.clone(), Path::new("g1.hamt"), weak_hash);
        let mut all = Vec::new();
        match for_each(&log, root, &mut |e| all.push(e)) {
            Err(Error::Corrupt { .. }) => detected += 1,
            Err(e) => panic!("unexpected error {e}"),
            Ok(()) => panic!("flip at byte {at} went unnoticed by a full walk"),
        }
    }
    assert_eq!(detected, pristine.len() - 16);
}

#[test]
fn an_aborted_commit_leaves_its_nodes_unreferenced_and_the_committed_root_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, mut w) = open_log(dir.path(), key_hash);
    let mut model = Model::new();
    let root = commit(&mut w, None, &[(1, Some(1), None)], key_hash, &mut model);
    let committed = w.len();
    let e = entry(key_hash, 2, Some(2), None);
    let edit = Edit {
        hash: e.hash,
        key: &e.key,
        row: e.row,
        shadows: None,
        only_if_present: false,
    };
    update(&mut w, root, &[edit]).unwrap();
    w.sync(true).unwrap();
    w.abort();
    assert!(
        storage.len(Path::new("g1.hamt")).unwrap() > committed,
        "a log a reader may map is never cut back"
    );
    // Reopening at the committed length keeps the committed root readable.
    let w2 = NodeLogWriter::open(storage, Path::new("g1.hamt"), Some(committed), key_hash).unwrap();
    check(w2.reader(), root, &model, key_hash);
}

#[test]
fn an_edit_asking_for_a_present_key_changes_nothing_when_the_key_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w) = open_log(dir.path(), key_hash);
    let mut model = Model::new();
    let changes: Vec<(u16, Option<u32>, Option<u64>)> = (0..50u16)
        .map(|k| (k * 2, Some(u32::from(k)), None))
        .collect();
    let root = commit(&mut w, None, &changes, key_hash, &mut model);
    let before = w.len();
    let (present, absent) = (
        entry(key_hash, 4, None, None),
        entry(key_hash, 5, None, None),
    );
    fn edit(e: &Entry) -> Edit<'_> {
        Edit {
            hash: e.hash,
            key: &e.key,
            row: None,
            shadows: None,
            only_if_present: true,
        }
    }
    let updated = update(&mut w, root, &[edit(&absent)]).unwrap();
    assert_eq!(updated.outcomes, vec![Outcome::Skipped]);
    assert_eq!(updated.root, root);
    assert_eq!(w.len(), before, "a skipped edit wrote nothing");
    let updated = update(&mut w, root, &[edit(&present), edit(&absent)]).unwrap();
    assert_eq!(
        updated.outcomes,
        vec![
            Outcome::Replaced(entry(key_hash, 4, Some(2), None)),
            Outcome::Skipped
        ]
    );
    model.insert(4, (None, None));
    w.sync(false).unwrap();
    check(w.reader(), updated.root, &model, key_hash);
}

#[test]
fn an_update_naming_a_key_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w) = open_log(dir.path(), key_hash);
    let e = entry(key_hash, 1, Some(1), None);
    let edit = Edit {
        hash: e.hash,
        key: &e.key,
        row: e.row,
        shadows: None,
        only_if_present: false,
    };
    let err = update(&mut w, None, &[edit, edit]).unwrap_err();
    assert!(matches!(err, Error::DuplicateKey { .. }), "{err}");
}
