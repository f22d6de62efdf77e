//! Telling damage from a torn commit at the end of the catalog.
//!
//! A commit syncs its version record before it appends its index entry, and the writer
//! starts a version only once the one before it was acknowledged. So records.log holds proof
//! of what was acknowledged, and two kinds of damage that look like an unfinished commit are
//! told apart by it:
//!
//! - **A damaged last index entry.** A torn append is cut short, or its first bytes followed
//!   by zeros where the write did not land; a damaged acknowledged entry differs from the
//!   entry its version record implies in a few bits. So a full-length last entry that fails
//!   its checksum is compared with the entry rebuilt from every record of that version in
//!   records.log: within [`MAX_FLIPPED_BITS`] bits of one, and not that entry's first bytes
//!   followed by zeros, it is damage ([`damaged_last_entry`]).
//! - **An index cut short.** Version records past the last indexed version's record, of two
//!   or more later versions, prove every one of them but the newest was acknowledged: the
//!   commit of version v + 1 began only after v's entry was synced ([`lost_after`]). One
//!   such record alone is what a crash between a commit's record and its entry leaves.
//!
//! What stays undetectable by construction: a cut that removes exactly the last acknowledged
//! entry (one record past the index is also what a crash leaves), a last entry damaged in
//! more than [`MAX_FLIPPED_BITS`] bits, and any loss whose proof was damaged too. A rewind
//! purges versions whose records stay in records.log until the writer cuts them off, so it
//! first appends a rewind marker ([`rewind_marker`]): records before the marker numbered
//! above its target prove nothing. Nor do records past the index of a store `reel sync` is
//! copying into (its `SYNC` file is there): [`lost_after`] refuses to judge such a store
//! ([`crate::Error::SyncUnfinished`]).

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use reeldb_keyframe::format::{Decoder, Encoder, checksum};
use reeldb_keyframe::storage::Storage;

use super::index::{ENTRY_LEN, IndexEntry, IndexReader, NO_OFFSET};
use super::records::{self, CatalogKind, RECORDS_HEADER_LEN};
use super::{records_path, version};
use crate::error::{Error, Result};

/// A last index entry that fails its checksum yet lies within this many bits of the entry
/// a record of its version implies is damage, not a torn write.
pub const MAX_FLIPPED_BITS: u32 = 8;

/// The framed rewind marker of a rewind to `to`, the store's `rewinds`-th.
pub fn rewind_marker(to: u64, rewinds: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.u64(to).u64(rewinds);
    records::frame(CatalogKind::Rewind, &e.finish())
}

/// The target of a rewind marker's payload.
fn marker_target(payload: &[u8]) -> Option<u64> {
    Decoder::new(payload).u64().ok()
}

/// The versions numbered above `latest` whose records lie past `from` in records file `file`,
/// less those a later rewind marker purged.
fn versions_past(
    storage: &dyn Storage,
    file: u64,
    from: u64,
    latest: u64,
) -> Result<BTreeSet<u64>> {
    let path = records_path(file);
    let mut seen = BTreeSet::new();
    for f in records::walk(storage, &path, from)? {
        if f.kind == CatalogKind::Rewind as u8 {
            if let Some(to) = marker_target(f.payload()) {
                seen.retain(|&v| v <= to);
            }
        } else if f.kind == CatalogKind::Version as u8
            && let Ok(rec) = version::decode::<version::VersionRecord>(
                f.payload(),
                &path.display().to_string(),
                f.offset,
            )
            && rec.version > latest
        {
            seen.insert(rec.version);
        }
    }
    Ok(seen)
}

/// The acknowledged versions missing from the index, if records.log proves any: versions
/// `latest + 1 ..= newest - 1` where `newest` is the newest version with a record past the
/// latest version's (`head`). Call it holding the catalog lock, so no commit is under way.
pub fn lost_after(
    storage: &dyn Storage,
    head: Option<&IndexEntry>,
) -> Result<Option<RangeInclusive<u64>>> {
    // Records past the index of a store a sync is copying into prove nothing.
    crate::sync::refuse_unfinished(storage)?;
    let (file, from, latest) = match head {
        Some(e) => (
            e.records_file,
            e.record_offset + u64::from(e.record_len),
            e.version,
        ),
        // No version indexed: the proof, if any, is in the newest records file there is (a
        // catalog rewrite may have retired records.log).
        None => (newest_records_file(storage)?, RECORDS_HEADER_LEN, 0),
    };
    let newest = versions_past(storage, file, from, latest)?.last().copied();
    Ok(newest
        .filter(|&n| n >= latest + 2)
        .map(|n| latest + 1..=n - 1))
}

/// The end of the last rewind marker past `from` in records file `file`, if there is one.
pub fn last_marker_end(storage: &dyn Storage, file: u64, from: u64) -> Result<Option<u64>> {
    Ok(records::walk(storage, &records_path(file), from)?
        .iter()
        .rfind(|f| f.kind == CatalogKind::Rewind as u8)
        .map(|f| f.offset + f.framed.len() as u64))
}

/// The highest-numbered records file in `catalog/` (0 when there is none but records.log).
fn newest_records_file(storage: &dyn Storage) -> Result<u64> {
    let dir = std::path::Path::new(super::CATALOG_DIR);
    Ok(storage
        .list(dir)?
        .iter()
        .filter_map(|n| super::records_file_of(n))
        .max()
        .unwrap_or(0))
}

/// True when `bytes`, the full-length last entry (of version `n`) that failed its checksum,
/// is an acknowledged entry damaged in place: within [`MAX_FLIPPED_BITS`] bits of the entry
/// some record of version `n` in records.log implies.
pub fn damaged_last_entry(storage: &dyn Storage, n: u64, bytes: &[u8]) -> Result<bool> {
    if bytes.len() != ENTRY_LEN as usize || bytes.iter().all(|&b| b == 0) {
        return Ok(false);
    }
    let prev = match n {
        0 | 1 => None,
        _ => IndexReader::new(storage).entry(n - 1).ok(),
    };
    let prev_carried = match n {
        0 | 1 => Some(NO_OFFSET),
        _ => prev.map(|e| e.carried_offset),
    };
    // The record lies in the records file the entry names, which is the one of the entry
    // before (a catalog rewrite moves every entry at once) unless that is damaged too.
    let named = u64::from_le_bytes(field(bytes, 48));
    let mut files: Vec<u64> = prev.map(|e| e.records_file).into_iter().collect();
    files.extend([named, 0]);
    files.dedup();
    let mut found = Vec::new();
    for file in files {
        let path = records_path(file);
        if storage.exists(&path)? {
            found.extend(
                records::walk(storage, &path, RECORDS_HEADER_LEN)?
                    .into_iter()
                    .map(|f| (file, f)),
            );
        }
    }
    let path = records_path(0);
    for (file, f) in found {
        if f.kind != CatalogKind::Version as u8 {
            continue;
        }
        let Ok(rec) = version::decode::<version::VersionRecord>(
            f.payload(),
            &path.display().to_string(),
            f.offset,
        ) else {
            continue;
        };
        if rec.version != n {
            continue;
        }
        let carried = match (rec.source_offset, prev_carried) {
            (Some(o), _) => o,
            (None, Some(c)) => c,
            // Without the entry before, the carried offset is unknown: compare the rest.
            (None, None) => u64::from_le_bytes(field(bytes, 16)),
        };
        let implied = IndexEntry {
            version: n,
            committed_at: rec.committed_at,
            carried_offset: carried,
            own_offset: rec.source_offset.is_some(),
            record_offset: f.offset,
            record_len: f.framed.len() as u32,
            record_checksum: checksum(&f.framed),
            expired: false,
            records_file: file,
        }
        .encode();
        let flipped: u32 = implied
            .iter()
            .zip(bytes)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        // A torn append is the entry's first bytes, then zeros where the write did not land.
        let torn = implied
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .is_some_and(|d| bytes[d..].iter().all(|&b| b == 0));
        if flipped <= MAX_FLIPPED_BITS && !torn {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The corruption of an index that lost the entries of acknowledged versions `lost`.
pub fn lost_error(lost: &std::ops::RangeInclusive<u64>) -> Error {
    Error::Corruption {
        path: super::index_path().display().to_string(),
        offset: ENTRY_LEN * lost.start(),
        reason: format!(
            "the index ends at version {}, but records.log shows versions {} to {} were \
             committed after it: their entries are lost; `reel rewind --to {}` accepts the loss",
            lost.start() - 1,
            lost.start(),
            lost.end(),
            lost.start() - 1
        ),
    }
}

fn field(bytes: &[u8], at: usize) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[at..at + 8]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewind_marker_names_its_target() {
        let m = rewind_marker(41, 3);
        let payload = &m[12..m.len() - 8];
        assert_eq!(marker_target(payload), Some(41));
    }
}
