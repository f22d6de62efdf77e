//! `ObjectStorage` as a specification, on object_store's in-memory store.

use super::*;
use futures::TryStreamExt;
use object_store::memory::InMemory;

fn storage() -> (Arc<InMemory>, ObjectStorage) {
    let memory = Arc::new(InMemory::new());
    let storage = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    (memory, storage)
}

/// A storage on the same store as [`storage`]'s reading through a cache in `dir`, as a
/// process of its own would open it.
fn cached(memory: &Arc<InMemory>, dir: &Path) -> ObjectStorage {
    ObjectStorage::new(memory.clone(), "stores/one")
        .unwrap()
        .with_cache(dir, 1 << 20)
        .unwrap()
}

/// Every object name under the store's prefix, sorted.
fn objects(memory: &InMemory) -> Vec<String> {
    let mut names: Vec<String> = futures::executor::block_on(
        memory
            .list(Some(&ObjectPath::from("stores/one")))
            .map_ok(|m| m.location.to_string())
            .try_collect::<Vec<_>>(),
    )
    .unwrap();
    names.sort();
    names
}

#[test]
fn each_sync_writes_one_new_segment_and_reads_span_them() {
    let (memory, s) = storage();
    let p = Path::new("packs/f.pack");
    let mut f = s.open_append(p).unwrap();
    assert_eq!(f.append(b"hello ").unwrap(), 0);
    f.sync().unwrap();
    assert_eq!(f.append(b"wor").unwrap(), 6);
    assert_eq!(f.append(b"ld").unwrap(), 9);
    assert_eq!(
        &s.read_at(p, 4, 5).unwrap()[..],
        b"o wor",
        "unsynced bytes are read through the same storage"
    );
    assert_eq!(
        &s.read_at(p, 7, 3).unwrap()[..],
        b"orl",
        "bytes wholly in the unsynced tail too"
    );
    f.sync().unwrap();
    assert_eq!(
        objects(&memory),
        vec![
            "stores/one/packs/f.pack/0000000000000000",
            "stores/one/packs/f.pack/0000000000000006",
        ]
    );
    drop(f);
    let other = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    assert_eq!(&other.map(p).unwrap()[..], b"hello world");
    assert_eq!(&other.read_at(p, 4, 5).unwrap()[..], b"o wor");
    assert_eq!(other.len(p).unwrap(), 11);
    assert!(
        other.read_at(p, 8, 5).is_err(),
        "reading past the end fails"
    );
    assert_eq!(other.list(Path::new("packs")).unwrap(), vec!["f.pack"]);
    assert_eq!(other.list(Path::new("")).unwrap(), vec!["packs"]);
    assert!(other.is_dir(Path::new("packs")).unwrap());
    assert!(!other.is_dir(p).unwrap());
    assert!(other.exists(p).unwrap());
    assert!(!other.exists(Path::new("packs/g.pack")).unwrap());
}

#[test]
fn a_kept_listing_serves_reads_until_the_file_is_cut_back_and_written_again() {
    let (memory, s) = storage();
    let p = Path::new("f");
    let mut f = s.open_append(p).unwrap();
    for part in [&b"abc"[..], b"def"] {
        f.append(part).unwrap();
        f.sync().unwrap();
    }
    drop(f);
    let reader = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    assert_eq!(&reader.read_at(p, 1, 4).unwrap()[..], b"bcde");
    let listed = reader.requests().lists;
    assert_eq!(&reader.read_at(p, 0, 6).unwrap()[..], b"abcdef");
    assert_eq!(
        reader.requests().lists,
        listed,
        "the kept listing covers it"
    );
    s.truncate(p, 3).unwrap();
    let mut f = s.open_append(p).unwrap();
    f.append(b"XY").unwrap();
    f.sync().unwrap();
    assert_eq!(&reader.read_at(p, 3, 2).unwrap()[..], b"XY");
    assert!(reader.read_at(p, 3, 3).is_err(), "past the new end");
    assert_eq!(&reader.read_at(p, 1, 4).unwrap()[..], b"bcXY");
}

#[test]
fn two_appenders_at_the_same_offset_conflict_and_the_loser_writes_nothing() {
    let (memory, one) = storage();
    let two = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    let p = Path::new("catalog/versions.idx");
    let (mut a, mut b) = (one.open_append(p).unwrap(), two.open_append(p).unwrap());
    a.append(b"first").unwrap();
    b.append(b"second").unwrap();
    a.sync().unwrap();
    assert!(matches!(b.sync(), Err(Error::Conflict { .. })));
    drop((a, b));
    assert_eq!(&one.map(p).unwrap()[..], b"first");
}

#[test]
fn unsynced_bytes_outlive_their_append_file_in_its_storage_only() {
    let (memory, s) = storage();
    let p = Path::new("f");
    let mut f = s.open_append(p).unwrap();
    f.append(b"header").unwrap();
    drop(f);
    let mut f = s.open_append(p).unwrap();
    assert_eq!(f.append(b" body").unwrap(), 6);
    assert_eq!(&s.map(p).unwrap()[..], b"header body");
    let other = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    assert!(!other.exists(p).unwrap(), "nothing was synced");
    f.sync().unwrap();
    assert_eq!(&other.map(p).unwrap()[..], b"header body");
}

#[test]
fn truncation_deletes_whole_segments_only() {
    let (_, s) = storage();
    let p = Path::new("f");
    let mut f = s.open_append(p).unwrap();
    for part in [&b"abc"[..], b"def", b"gh"] {
        f.append(part).unwrap();
        f.sync().unwrap();
    }
    drop(f);
    assert!(matches!(s.truncate(p, 4), Err(Error::Unsupported { .. })));
    s.truncate(p, 3).unwrap();
    assert_eq!(&s.map(p).unwrap()[..], b"abc");
}

#[test]
fn a_small_file_is_replaced_in_place_and_a_segmented_or_resized_one_by_a_new_generation() {
    let (memory, s) = storage();
    s.write_atomic(Path::new("x"), b"one").unwrap();
    s.write_atomic(Path::new("x"), b"two").unwrap();
    assert_eq!(&s.map(Path::new("x")).unwrap()[..], b"two");
    assert_eq!(objects(&memory), vec!["stores/one/x/0000000000000000"]);
    assert_eq!(s.generation(Path::new("x")).unwrap(), 0);
    // Other bytes of another length: a new generation, which `ends_at` tells apart.
    assert!(s.ends_at(Path::new("x"), 3, 0).unwrap());
    s.write_atomic(Path::new("x"), b"four").unwrap();
    assert!(!s.ends_at(Path::new("x"), 3, 0).unwrap());
    assert_eq!(
        objects(&memory),
        vec!["stores/one/x/00000001-0000000000000000"]
    );
    let mut f = s.open_append(Path::new("x")).unwrap();
    f.append(b" more").unwrap();
    f.sync().unwrap();
    drop(f);
    assert!(!s.ends_at(Path::new("x"), 4, 1).unwrap());
    assert!(s.ends_at(Path::new("x"), 9, 1).unwrap());
    s.write_atomic(Path::new("x"), b"three").unwrap();
    assert_eq!(&s.map(Path::new("x")).unwrap()[..], b"three");
    assert_eq!(
        objects(&memory),
        vec!["stores/one/x/00000002-0000000000000000"]
    );
    assert_eq!(s.generation(Path::new("x")).unwrap(), 2);
    assert_eq!(
        s.read_small(Path::new("x")).unwrap(),
        None,
        "not generation 0"
    );
    assert_eq!(
        s.read_small(Path::new("missing")).unwrap(),
        None,
        "no such file"
    );
    s.write_atomic(Path::new("w"), b"w").unwrap();
    assert_eq!(s.first_name(Path::new("")).unwrap().as_deref(), Some("w"));
    assert_eq!(s.first_name(Path::new("none")).unwrap(), None);
    s.remove(Path::new("w")).unwrap();
    append_segments(&s, Path::new("x"), &[b" more"]);
    s.rename(Path::new("x"), Path::new("y")).unwrap();
    assert!(!s.exists(Path::new("x")).unwrap());
    assert_eq!(&s.map(Path::new("y")).unwrap()[..], b"three more");
}

#[test]
fn a_lock_is_exclusive_until_released_and_is_not_a_file() {
    let (memory, s) = storage();
    let other = ObjectStorage::new(memory, "stores/one").unwrap();
    let held = s.try_lock(Path::new("LOCK")).unwrap();
    assert!(matches!(
        other.try_lock(Path::new("LOCK")),
        Err(Error::Locked { .. })
    ));
    assert!(!s.exists(Path::new("LOCK")).unwrap());
    assert!(s.list(Path::new("")).unwrap().contains(&"LOCK".to_string()));
    drop(held);
    assert!(other.try_lock(Path::new("LOCK")).is_ok());
}

#[test]
fn a_gap_between_segments_is_corruption() {
    let (memory, s) = storage();
    futures::executor::block_on(memory.put(
        &ObjectPath::from("stores/one/f/0000000000000004"),
        PutPayload::from(b"late".to_vec()),
    ))
    .unwrap();
    assert!(matches!(s.len(Path::new("f")), Err(Error::Corrupt { .. })));
}

#[test]
fn a_segment_read_once_through_a_cache_is_read_from_it_by_the_next_process() {
    let (memory, s) = storage();
    let cache = tempfile::tempdir().unwrap();
    let cached = || cached(&memory, cache.path());
    let p = Path::new("packs/f.pack");
    let mut f = s.open_append(p).unwrap();
    f.append(b"first ").unwrap();
    f.sync().unwrap();
    f.append(b"second").unwrap();
    f.sync().unwrap();

    let cold = cached();
    assert_eq!(&cold.map(p).unwrap()[..], b"first second");
    assert_eq!((cold.requests().gets, cold.requests().cache_hits), (2, 0));
    let warm = cached();
    assert_eq!(&warm.map(p).unwrap()[..], b"first second");
    assert_eq!(&warm.read_at(p, 3, 6).unwrap()[..], b"st sec");
    let r = warm.requests();
    // `map` lists the file (to learn its length now), the read uses that listing, and
    // nothing is got.
    assert_eq!((r.lists, r.gets, r.cache_hits), (1, 0, 4));

    // A file cut back and written again reuses a segment's name: its new bytes are read.
    s.truncate(p, 6).unwrap();
    let mut f = s.open_append(p).unwrap();
    f.append(b"THIRD!").unwrap();
    f.sync().unwrap();
    assert_eq!(&cached().map(p).unwrap()[..], b"first THIRD!");
}

#[test]
fn an_append_only_file_mapped_through_a_warm_cache_is_not_listed_until_it_must_be() {
    let (memory, s) = storage();
    let cache = tempfile::tempdir().unwrap();
    let cached = || cached(&memory, cache.path());
    let p = Path::new("packs/f.pack");
    append_segments(&s, p, &[b"first ", b"second"]);
    assert_eq!(&cached().map_prefix(p, 12).unwrap()[..], b"first second");

    // Another process, through the same cache: no request at all.
    let warm = cached();
    assert_eq!(&warm.map_prefix(p, 12).unwrap()[..], b"first second");
    let r = warm.requests();
    assert_eq!((r.lists, r.gets, r.listings_remembered), (0, 0, 1), "{r:?}");

    // The file grew: asking for more than was remembered lists it, and remembers that.
    append_segments(&s, p, &[b" third"]);
    let grown = cached();
    assert_eq!(&grown.map_prefix(p, 18).unwrap()[..], b"first second third");
    assert_eq!(grown.requests().lists, 1);
    let next = cached();
    assert_eq!(next.map_prefix(p, 18).unwrap().len(), 18);
    assert_eq!(next.requests().lists, 0);

    // Removed and written again: what is remembered is stale until forgotten.
    s.remove(p).unwrap();
    append_segments(&s, p, &[b"other bytes entirely"]);
    let stale = cached();
    assert_eq!(&stale.map_prefix(p, 18).unwrap()[..], b"first second third");
    stale.forget(p);
    assert_eq!(
        &stale.map_prefix(p, 18).unwrap()[..],
        b"other bytes entirely"
    );
    assert_eq!(
        &cached().map_prefix(p, 18).unwrap()[..],
        b"other bytes entirely",
        "forgetting drops the remembered listing for every process"
    );
}

/// Appends `parts` to `path` through `s`, one segment each.
fn append_segments(s: &ObjectStorage, path: &Path, parts: &[&[u8]]) {
    let mut f = s.open_append(path).unwrap();
    for part in parts {
        f.append(part).unwrap();
        f.sync().unwrap();
    }
}

#[test]
fn a_file_of_several_segments_written_whole_is_a_new_generation_and_the_old_objects_go() {
    let (memory, s) = storage();
    let p = Path::new("catalog/versions.idx");
    append_segments(&s, p, &[b"head", b"e1", b"e2"]);
    let reader = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    assert_eq!(&reader.read_at(p, 0, 8).unwrap()[..], b"heade1e2");
    s.write_atomic(p, b"HEADE1").unwrap();
    assert_eq!(
        objects(&memory),
        vec!["stores/one/catalog/versions.idx/00000001-0000000000000000"]
    );
    assert_eq!(&reader.map(p).unwrap()[..], b"HEADE1");
    assert_eq!(reader.len(p).unwrap(), 6);
    s.write_atomic(p, b"again").unwrap();
    assert_eq!(&reader.map(p).unwrap()[..], b"again");
    assert_eq!(
        objects(&memory),
        vec!["stores/one/catalog/versions.idx/00000002-0000000000000000"]
    );
}

#[test]
fn a_generation_another_rewriter_made_is_the_file_and_the_next_rewrite_goes_above_it() {
    let (memory, s) = storage();
    let p = Path::new("f");
    append_segments(&s, p, &[b"ab", b"cd"]);
    futures::executor::block_on(memory.put(
        &ObjectPath::from("stores/one/f/00000001-0000000000000000"),
        PutPayload::from(b"theirs".to_vec()),
    ))
    .unwrap();
    assert_eq!(&s.map(p).unwrap()[..], b"theirs");
    s.write_atomic(p, b"mine").unwrap();
    assert_eq!(&s.map(p).unwrap()[..], b"mine");
    assert_eq!(
        objects(&memory),
        vec!["stores/one/f/00000002-0000000000000000"]
    );
}

#[test]
fn an_appender_that_listed_an_older_generation_appends_to_the_new_one_after_a_lock() {
    let (memory, writer) = storage();
    let p = Path::new("catalog/versions.idx");
    append_segments(&writer, p, &[b"head", b"e1"]);
    let rewriter = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    let lock = rewriter.lock_exclusive(Path::new("catalog/LOCK")).unwrap();
    rewriter.write_atomic(p, b"HEADE1").unwrap();
    drop(lock);
    let lock = writer.lock_exclusive(Path::new("catalog/LOCK")).unwrap();
    assert_eq!(writer.len(p).unwrap(), 6);
    append_segments(&writer, p, &[b"e2"]);
    drop(lock);
    let reader = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    assert_eq!(&reader.map(p).unwrap()[..], b"HEADE1e2");
    assert!(
        objects(&memory)
            .iter()
            .any(|o| o.ends_with("versions.idx/00000001-0000000000000006"))
    );
}

#[test]
fn removing_or_emptying_a_rewritten_file_deletes_every_generation() {
    let (memory, s) = storage();
    for p in [Path::new("a"), Path::new("b")] {
        append_segments(&s, p, &[b"12", b"34"]);
        s.write_atomic(p, b"whole").unwrap();
        append_segments(&s, p, &[b"+"]);
    }
    s.remove(Path::new("a")).unwrap();
    s.truncate(Path::new("b"), 0).unwrap();
    assert_eq!(objects(&memory), Vec::<String>::new());
    assert!(!s.exists(Path::new("a")).unwrap());
}

#[test]
fn a_kept_listing_is_brought_up_to_date_by_listing_only_from_its_last_segment_on() {
    let (memory, writer) = storage();
    let p = Path::new("catalog/versions.idx");
    let parts: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 4]).collect();
    append_segments(
        &writer,
        p,
        &parts.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    );
    let reader = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    assert_eq!(reader.len(p).unwrap(), 200);
    assert_eq!(reader.requests().names_listed, 50);

    append_segments(&writer, p, &[b"more", b"last"]);
    let before = reader.requests();
    assert_eq!(reader.len(p).unwrap(), 208);
    let asked = reader.requests().since(&before);
    assert_eq!(
        (asked.lists, asked.names_listed),
        (1, 3),
        "its last segment and the two appended"
    );
    assert_eq!(
        &reader.read_at(p, 196, 12).unwrap()[..],
        b"\x31\x31\x31\x31morelast"
    );
    assert_eq!(reader.requests().since(&before).lists, 1);
}

#[test]
fn a_kept_listing_of_a_file_cut_back_rewritten_or_removed_elsewhere_is_listed_again() {
    let (memory, writer) = storage();
    let p = Path::new("f");
    append_segments(&writer, p, &[b"ab", b"cd", b"ef"]);
    let reader = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    assert_eq!(&reader.map(p).unwrap()[..], b"abcdef");

    // Cut back below the last segment and appended again: same names, other objects.
    writer.truncate(p, 2).unwrap();
    append_segments(&writer, p, &[b"CD", b"EF"]);
    assert_eq!(&reader.map(p).unwrap()[..], b"abCDEF");

    // Rewritten whole: a newer generation.
    writer.write_atomic(p, b"whole").unwrap();
    assert_eq!(&reader.map(p).unwrap()[..], b"whole");
    append_segments(&writer, p, &[b"+1", b"+2"]);
    assert_eq!(&reader.map(p).unwrap()[..], b"whole+1+2");

    writer.remove(p).unwrap();
    assert!(!reader.exists(p).unwrap());
    assert!(reader.len(p).is_err());
}

#[test]
fn under_a_lock_a_kept_listing_is_confirmed_before_a_read_trusts_it() {
    let (memory, s) = storage();
    let p = Path::new("f");
    append_segments(&s, p, &[b"ab", b"cd"]);
    let other = ObjectStorage::new(memory.clone(), "stores/one").unwrap();
    assert_eq!(&other.read_at(p, 0, 4).unwrap()[..], b"abcd");
    s.truncate(p, 2).unwrap();
    append_segments(&s, p, &[b"CD"]);
    // Another process may have changed the file while no lock was held: under one, the
    // kept listing is confirmed before a read uses it.
    let _lock = other.lock_exclusive(Path::new("LOCK")).unwrap();
    let before = other.requests();
    assert_eq!(&other.read_at(p, 0, 4).unwrap()[..], b"abCD");
    assert_eq!(
        other.requests().since(&before).lists,
        2,
        "confirmed, then listed"
    );
}

#[test]
fn a_read_of_at_least_some_bytes_stops_at_the_end_of_the_segment_holding_them() {
    let (_, s) = storage();
    let p = Path::new("packs/f.pack");
    append_segments(&s, p, &[&[1u8; 100], &[2u8; 10], &[3u8; 10]]);
    let reader = ObjectStorage::new(s.store.clone(), "stores/one").unwrap();
    let before = reader.requests();
    let got = reader.read_at_least(p, 0, 50, 120).unwrap();
    assert_eq!(&got[..], &[1u8; 100][..]);
    assert_eq!(reader.requests().since(&before).gets, 1);
    let got = reader.read_at_least(p, 90, 15, 30).unwrap();
    assert_eq!(got.len(), 20, "to the end of the segment holding byte 104");
    assert_eq!(&got[10..], &[2u8; 10][..]);
    assert_eq!(reader.read_at_least(p, 0, 120, 120).unwrap().len(), 120);
}

#[test]
fn packs_past_the_committed_ones_stay_on_an_object_store_and_new_ones_are_numbered_above() {
    use crate::format::content_hash;
    use crate::pack::{PackWriter, pack_path};
    use crate::record::RecordKind;
    let (memory, s) = storage();
    let storage: Arc<dyn Storage> = Arc::new(s);
    let put = |w: &mut PackWriter, raw: &[u8]| {
        w.put(RecordKind::ColumnBlock, raw, content_hash(raw))
            .unwrap()
    };
    let mut w = PackWriter::open(storage.clone(), &[]).unwrap();
    put(&mut w, b"committed");
    let committed = w.sync(true).unwrap();
    // Two packs past it: what a rewind purged, or an unfinished commit left.
    for (id, raw) in [(2u32, b"purged one"), (3, b"purged two")] {
        let mut f = storage.open_append(&pack_path(id)).unwrap();
        f.append(raw).unwrap();
        f.sync().unwrap();
    }
    let before = objects(&memory);
    let w = PackWriter::open(storage.clone(), &committed).unwrap();
    assert_eq!(objects(&memory), before, "a reader may still read them");
    assert_eq!(w.next_pack_id(), 4, "their ids are never used again");
    let retired = crate::pack::retired(storage.as_ref(), &[(1, 100), (4, 100)]).unwrap();
    assert_eq!(
        retired,
        [2, 3],
        "once a newer pack is committed, cleaning retires them"
    );
}
