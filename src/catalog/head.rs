//! Version heads: on an object store, one small object per version holding everything an
//! open of it reads from the catalog, so that an open costs a constant number of requests
//! however many versions the store holds.
//!
//! `catalog/heads/{u64::MAX - v:016x}` (written whole; the inverted number makes the newest
//! version's head the first name a listing returns) holds version v's index entry, its
//! version record and every table definition that record references, framed as in the
//! records files, plus the generation versions.idx had when it was written (see
//! `Storage::generation`). A head is a copy, never the commit point: it is written after the
//! version's index entry committed, and every change to a version's entry (maintenance, a
//! sync's replace) removes the version's head before the new index takes and writes it
//! again after. A head that is missing, damaged or of another format is passed over and the
//! version opened through versions.idx, as on a local disk. The newest head names the latest
//! version only while versions.idx still ends at its entry in its generation, which one
//! listing of what lies past that entry confirms (`Storage::ends_at`).
//!
//! ```text
//!  0 magic             "REELHEAD"
//!  8 format_version    u32
//! 12 records           u32  how many framed records follow (the version's, then its definitions)
//! 16 index_generation  u64
//! 24 entry             [64] the version's index entry, as in versions.idx
//! 88 per record: records_file u64, offset u64, framed_len u32, the framed record
//! .. checksum          u64  xxh3-64 of every byte before it
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use reeldb_keyframe::format::{Decoder, Encoder, FORMAT_VERSION, checksum};
use reeldb_keyframe::storage::Storage;

use super::index::{ENTRY_LEN, IndexEntry};
use super::records::{self, CatalogKind};
use super::version::{self, CatalogRef, VersionRecord};
use super::{CATALOG_DIR, records_path};
use crate::error::Result;

/// First bytes of a version head.
pub const HEAD_MAGIC: [u8; 8] = *b"REELHEAD";
/// Length of a head before its records.
const FIXED_LEN: usize = 24 + ENTRY_LEN as usize;

/// The directory of the version heads.
pub fn heads_dir() -> PathBuf {
    Path::new(CATALOG_DIR).join("heads")
}

/// Path of version `version`'s head.
pub fn head_path(version: u64) -> PathBuf {
    heads_dir().join(format!("{:016x}", u64::MAX - version))
}

/// The version a head's file name stands for.
pub fn version_of(name: &str) -> Option<u64> {
    if name.len() != 16 {
        return None;
    }
    u64::from_str_radix(name, 16).ok().map(|n| u64::MAX - n)
}

/// What a head gives an open: the version's entry, its record (definition references set to
/// its records file) and the payloads of the definitions it references.
#[derive(Debug)]
pub struct VersionHead {
    /// The version's index entry.
    pub entry: IndexEntry,
    /// The generation versions.idx had when the head was written.
    pub index_generation: u64,
    /// The version record.
    pub record: VersionRecord,
    /// Each table definition the record references, with its payload.
    pub defs: Vec<(CatalogRef, Vec<u8>)>,
}

/// The bytes of the head of the version `entry` commits, for versions.idx of generation
/// `index_generation`: its record and definitions taken from `known` (framed records of the
/// entry's records file, by offset) where there, else read from `storage`; each checked.
pub fn encode(
    storage: &dyn Storage,
    entry: &IndexEntry,
    index_generation: u64,
    known: &HashMap<u64, Vec<u8>>,
) -> Result<Vec<u8>> {
    let path = records_path(entry.records_file);
    let framed_at = |offset: u64, len: u32| -> Result<Vec<u8>> {
        match known.get(&offset) {
            Some(bytes) if bytes.len() == len as usize => Ok(bytes.clone()),
            _ => Ok(super::read_exact(storage, &path, offset, len as usize)?.to_vec()),
        }
    };
    let record = framed_at(entry.record_offset, entry.record_len)?;
    let payload = records::unframe(
        &record,
        &path,
        entry.record_offset,
        CatalogKind::Version,
        Some(entry.record_checksum),
    )?;
    let rec: VersionRecord =
        version::decode(&payload, &path.display().to_string(), entry.record_offset)?;
    let refs: BTreeSet<(u64, u32)> = rec
        .tables
        .iter()
        .map(|t| (t.def.offset, t.def.len))
        .collect();
    let mut framed = vec![(entry.record_offset, record)];
    for (offset, len) in refs {
        let def = framed_at(offset, len)?;
        records::unframe(&def, &path, offset, CatalogKind::TableDef, None)?;
        framed.push((offset, def));
    }
    let mut e = Encoder::new();
    e.raw(&HEAD_MAGIC)
        .u32(FORMAT_VERSION)
        .u32(framed.len() as u32)
        .u64(index_generation)
        .raw(&entry.encode());
    for (offset, bytes) in &framed {
        // A framed record is at most MAX_RECORD_LEN bytes, far below 4 GiB.
        e.u64(entry.records_file).u64(*offset).bytes(bytes);
    }
    let mut out = e.finish();
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// The framed records of `head`, the bytes of a version head, by their offset in records
/// file `records_file`: what [`encode`] may take from the head of the version before
/// instead of reading them again. None from a head that fails its checksum, whose offsets
/// could be wrong ([`encode`] checks each record's own frame).
pub fn framed_records(head: &[u8], records_file: u64) -> HashMap<u64, Vec<u8>> {
    let mut out = HashMap::new();
    if head.len() < FIXED_LEN + 8 || head[..8] != HEAD_MAGIC {
        return out;
    }
    let body = head.len() - 8;
    if checksum(&head[..body]).to_le_bytes() != head[body..] {
        return out;
    }
    let mut d = Decoder::new(&head[FIXED_LEN..head.len() - 8]);
    while let (Ok(file), Ok(offset), Ok(framed)) = (d.u64(), d.u64(), d.bytes()) {
        if file == records_file {
            out.insert(offset, framed.to_vec());
        }
    }
    out
}

/// The framed records of `appended`, bytes appended to a records file at `at` (whole frames
/// back to back), by offset: what [`encode`] may take instead of reading them back.
pub fn appended_records(appended: &[u8], at: u64) -> HashMap<u64, Vec<u8>> {
    let mut out = HashMap::new();
    let mut i = 0usize;
    while appended.len() - i >= 20 {
        let n = u32::from_le_bytes([
            appended[i + 8],
            appended[i + 9],
            appended[i + 10],
            appended[i + 11],
        ]) as usize;
        let end = i + 20 + n;
        if end > appended.len() {
            break;
        }
        out.insert(at + i as u64, appended[i..end].to_vec());
        i = end;
    }
    out
}

/// Decodes the head `bytes` of version `version`; `None` when they are not an intact head
/// of this format for it (a head is a copy: the caller then reads versions.idx).
pub fn decode(bytes: &[u8], version: u64) -> Option<VersionHead> {
    if bytes.len() < FIXED_LEN + 8 || bytes[..8] != HEAD_MAGIC {
        return None;
    }
    let body = bytes.len() - 8;
    if checksum(&bytes[..body]).to_le_bytes() != bytes[body..] {
        return None;
    }
    let mut d = Decoder::new(&bytes[8..body]);
    if d.u32().ok()? != FORMAT_VERSION {
        return None;
    }
    let count = d.u32().ok()?;
    let index_generation = d.u64().ok()?;
    let entry = IndexEntry::decode(&bytes[24..FIXED_LEN], version).ok()?;
    if entry.expired {
        return None;
    }
    let mut d = Decoder::new(&bytes[FIXED_LEN..body]);
    let path = records_path(entry.records_file);
    let mut record = None;
    let mut defs = Vec::new();
    for i in 0..count {
        let (file, offset) = (d.u64().ok()?, d.u64().ok()?);
        let framed = d.bytes().ok()?;
        let len = u32::try_from(framed.len()).ok()?;
        if file != entry.records_file {
            return None;
        }
        if i == 0 {
            if (offset, len) != (entry.record_offset, entry.record_len) {
                return None;
            }
            let payload = records::unframe(
                framed,
                &path,
                offset,
                CatalogKind::Version,
                Some(entry.record_checksum),
            )
            .ok()?;
            let mut rec: VersionRecord =
                version::decode(&payload, &path.display().to_string(), offset).ok()?;
            for t in &mut rec.tables {
                t.def.file = file;
            }
            record = Some(rec);
        } else {
            let payload =
                records::unframe(framed, &path, offset, CatalogKind::TableDef, None).ok()?;
            defs.push((CatalogRef { file, offset, len }, payload));
        }
    }
    d.finish().ok()?;
    let record = record.filter(|r| r.version == version)?;
    // Every definition the record references, and nothing else.
    let wanted: HashSet<CatalogRef> = record.tables.iter().map(|t| t.def).collect();
    let given: HashSet<CatalogRef> = defs.iter().map(|(r, _)| *r).collect();
    if wanted != given || given.len() != defs.len() {
        return None;
    }
    Some(VersionHead {
        entry,
        index_generation,
        record,
        defs,
    })
}

/// Writes the head of the version `entry` commits (see [`encode`]); returns its bytes.
pub fn write(
    storage: &dyn Storage,
    entry: &IndexEntry,
    index_generation: u64,
    known: &HashMap<u64, Vec<u8>>,
) -> Result<Vec<u8>> {
    let bytes = encode(storage, entry, index_generation, known)?;
    storage.write_atomic(&head_path(entry.version), &bytes)?;
    Ok(bytes)
}

/// Reads version `version`'s head: `None` when it has none, or none intact.
pub fn read(storage: &dyn Storage, version: u64) -> Result<Option<VersionHead>> {
    Ok(storage
        .read_small(&head_path(version))?
        .and_then(|bytes| decode(&bytes, version)))
}

/// The newest version with a head, if any.
pub fn newest(storage: &dyn Storage) -> Result<Option<u64>> {
    Ok(storage
        .first_name(&heads_dir())?
        .and_then(|name| version_of(&name)))
}

/// Removes the heads of those of `versions` that have one (one listing of the heads, then
/// a removal of each).
pub fn remove_each(storage: &dyn Storage, versions: &[u64]) -> Result<()> {
    if versions.is_empty() || !storage.exists(&heads_dir())? {
        return Ok(());
    }
    let present: HashSet<u64> = storage
        .list(&heads_dir())?
        .iter()
        .filter_map(|name| version_of(name))
        .collect();
    for v in versions.iter().filter(|v| present.contains(v)) {
        storage.remove(&head_path(*v))?;
    }
    Ok(())
}

/// Removes the head of every version above `version` (one listing of the heads, then a
/// removal of each).
pub fn remove_above(storage: &dyn Storage, version: u64) -> Result<()> {
    if !storage.exists(&heads_dir())? {
        return Ok(());
    }
    for v in storage
        .list(&heads_dir())?
        .iter()
        .filter_map(|name| version_of(name))
        .filter(|&v| v > version)
    {
        storage.remove(&head_path(v))?;
    }
    Ok(())
}

/// The versions whose entries differ between the index files `old` and `new` (or that only
/// `old` holds): those whose heads an index replacing `old` by `new` must remove first.
pub fn changed(old: &[u8], new: &[u8]) -> Vec<u64> {
    let entries = |index: &[u8]| index.len() as u64 / ENTRY_LEN;
    let (o, n) = (entries(old), entries(new));
    (1..o)
        .filter(|&v| {
            let at = (v * ENTRY_LEN) as usize..((v + 1) * ENTRY_LEN) as usize;
            v >= n || old[at.clone()] != new[at]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_have_heads_that_sort_first() {
        let names: Vec<String> = [1u64, 2, 10, 300]
            .iter()
            .map(|&v| {
                head_path(v)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names.iter().rev().cloned().collect::<Vec<_>>());
        for (name, v) in names.iter().zip([1u64, 2, 10, 300]) {
            assert_eq!(version_of(name), Some(v));
        }
        assert_eq!(version_of("records.log"), None);
    }

    #[test]
    fn changed_names_versions_whose_entries_differ_or_are_dropped() {
        let entry = |v: u64, at: i64| IndexEntry {
            version: v,
            committed_at: at,
            carried_offset: super::super::index::NO_OFFSET,
            own_offset: false,
            record_offset: 16,
            record_len: 40,
            record_checksum: 7,
            expired: false,
            records_file: 0,
        };
        let index = |entries: &[IndexEntry]| {
            let mut out = super::super::index::header();
            for e in entries {
                out.extend_from_slice(&e.encode());
            }
            out
        };
        let old = index(&[entry(1, 10), entry(2, 20), entry(3, 30)]);
        let new = index(&[entry(1, 10), entry(2, 21)]);
        assert_eq!(changed(&old, &new), vec![2, 3]);
        assert_eq!(changed(&new, &old), vec![2]);
        assert!(changed(&old, &old).is_empty());
        assert!(changed(&[], &old).is_empty());
    }

    #[test]
    fn records_are_taken_only_from_an_intact_head() {
        let def = records::frame(CatalogKind::TableDef, b"definition");
        let mut e = Encoder::new();
        e.raw(&HEAD_MAGIC).u32(FORMAT_VERSION).u32(1).u64(0);
        e.raw(&[0; ENTRY_LEN as usize]).u64(3).u64(40).bytes(&def);
        let mut head = e.finish();
        let sum = checksum(&head);
        head.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(framed_records(&head, 3).get(&40), Some(&def));
        assert!(framed_records(&head, 4).is_empty(), "another records file");
        head[FIXED_LEN + 9] ^= 1;
        assert!(framed_records(&head, 3).is_empty(), "a damaged offset");
    }

    #[test]
    fn appended_frames_are_found_at_their_offsets() {
        let a = records::frame(CatalogKind::TableDef, b"definition");
        let b = records::frame(CatalogKind::Version, b"record");
        let appended = [a.clone(), b.clone()].concat();
        let found = appended_records(&appended, 100);
        assert_eq!(found.len(), 2);
        assert_eq!(found[&100], a);
        assert_eq!(found[&(100 + a.len() as u64)], b);
    }
}
