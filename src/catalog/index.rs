//! `versions.idx`: a 64-byte header, then one 64-byte entry per version, version v at offset
//! 64 * v.
//!
//! ```text
//! header: magic "REELVIDX", format_version u32, then zeros to 64 bytes
//! entry:
//!  0 version          u64
//!  8 committed_at     i64  microseconds since the Unix epoch, strictly increasing
//! 16 source_offset    u64  latest source offset at or before this version (u64::MAX: none yet)
//! 24 record_offset    u64  of the version record in records.log
//! 32 record_len       u32  framed length of that record
//! 36 flags            u32  bit 0: this version itself recorded a source offset
//! 40 record_checksum  u64  xxh3-64 of the framed record
//! 48 records_file     u64  the records file holding the record (0: records.log)
//! 56 entry_checksum   u64  xxh3-64 of bytes 0..56
//! ```

use std::path::PathBuf;

use reeldb_keyframe::format::{Decoder, Encoder, FORMAT_VERSION, checksum};
use reeldb_keyframe::storage::Storage;

use crate::error::{Error, Result};

/// Length of the header and of each entry.
pub const ENTRY_LEN: u64 = 64;
/// First bytes of the index file.
pub const INDEX_MAGIC: [u8; 8] = *b"REELVIDX";
/// `source_offset` value meaning no offset recorded yet.
pub const NO_OFFSET: u64 = u64::MAX;
const FLAG_OWN_OFFSET: u32 = 1;
const FLAG_EXPIRED: u32 = 2;

/// One version's index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The version number.
    pub version: u64,
    /// Commit time, microseconds since the Unix epoch.
    pub committed_at: i64,
    /// Latest source offset at or before this version ([`NO_OFFSET`] when none).
    pub carried_offset: u64,
    /// True when this version recorded a source offset itself.
    pub own_offset: bool,
    /// Where the version record starts in records.log.
    pub record_offset: u64,
    /// Framed length of the version record.
    pub record_len: u32,
    /// Checksum of the framed version record.
    pub record_checksum: u64,
    /// True once the version was expired: it can no longer be opened.
    pub expired: bool,
    /// The records file holding the version record (see `catalog::records_path`). An
    /// expired version whose record a catalog rewrite dropped has `record_len` 0.
    pub records_file: u64,
}

impl IndexEntry {
    /// The 64 bytes of the entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u64(self.version)
            .u64(self.committed_at as u64)
            .u64(self.carried_offset)
            .u64(self.record_offset)
            .u32(self.record_len)
            .u32(
                if self.own_offset { FLAG_OWN_OFFSET } else { 0 }
                    | if self.expired { FLAG_EXPIRED } else { 0 },
            )
            .u64(self.record_checksum)
            .u64(self.records_file);
        let mut out = e.finish();
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses and verifies an entry, which must be for `version`.
    pub fn decode(buf: &[u8], version: u64) -> std::result::Result<Self, String> {
        if buf.len() != ENTRY_LEN as usize {
            return Err(format!("entry is {} bytes", buf.len()));
        }
        let mut d = Decoder::new(buf);
        let field = |r: std::result::Result<u64, _>| {
            r.map_err(|e: reeldb_keyframe::format::DecodeError| e.0)
        };
        let v = field(d.u64())?;
        let committed_at = field(d.u64())? as i64;
        let carried_offset = field(d.u64())?;
        let record_offset = field(d.u64())?;
        let record_len = d.u32().map_err(|e| e.0)?;
        let flags = d.u32().map_err(|e| e.0)?;
        let record_checksum = field(d.u64())?;
        let records_file = field(d.u64())?;
        let sum = field(d.u64())?;
        if checksum(&buf[..56]) != sum {
            return Err("entry checksum mismatch".into());
        }
        if v != version {
            return Err(format!("entry holds version {v}, expected {version}"));
        }
        if flags & !(FLAG_OWN_OFFSET | FLAG_EXPIRED) != 0 {
            return Err(format!("unknown entry flags {flags:#x}"));
        }
        Ok(IndexEntry {
            version: v,
            committed_at,
            carried_offset,
            own_offset: flags & FLAG_OWN_OFFSET != 0,
            expired: flags & FLAG_EXPIRED != 0,
            record_offset,
            record_len,
            record_checksum,
            records_file,
        })
    }
}

/// The bytes of an empty index file.
pub fn header() -> Vec<u8> {
    header_with(0)
}

/// The index header of a store rewound `rewinds` times.
pub fn header_with(rewinds: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.raw(&INDEX_MAGIC).u32(FORMAT_VERSION).u64(rewinds);
    let mut h = e.finish();
    h.resize(ENTRY_LEN as usize, 0);
    h
}

/// Reads the index file of a store.
#[derive(Debug)]
pub struct IndexReader<'a> {
    storage: &'a dyn Storage,
    path: PathBuf,
}

impl<'a> IndexReader<'a> {
    /// A reader over the version index of the store in `storage`.
    pub fn new(storage: &'a dyn Storage) -> Self {
        IndexReader {
            storage,
            path: super::index_path(),
        }
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corruption {
            path: self.path.display().to_string(),
            offset,
            reason: reason.into(),
        }
    }

    /// Checks the header.
    pub fn check_header(&self) -> Result<()> {
        super::check_header(self.storage, &self.path, &INDEX_MAGIC, 20..64)
    }

    /// How many times the store was rewound: readers drop what they cache by file position
    /// when it changes, since a rewind lets positions be written again.
    pub fn rewinds(&self) -> Result<u64> {
        let b = super::read_exact(self.storage, &self.path, 12, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads the entry of `version`.
    pub fn entry(&self, version: u64) -> Result<IndexEntry> {
        let at = ENTRY_LEN * version;
        let buf = super::read_exact(self.storage, &self.path, at, ENTRY_LEN as usize)?;
        IndexEntry::decode(&buf, version).map_err(|r| self.corrupt(at, r))
    }

    /// The entries of versions `1..=latest`, read in one go.
    pub fn entries(&self, latest: u64) -> Result<Vec<IndexEntry>> {
        if latest == 0 {
            return Ok(Vec::new());
        }
        let len = usize::try_from(ENTRY_LEN * latest)
            .map_err(|_| self.corrupt(ENTRY_LEN, format!("{latest} entries do not fit memory")))?;
        let buf = super::read_exact(self.storage, &self.path, ENTRY_LEN, len)?;
        let mut out = Vec::with_capacity(latest as usize);
        for (i, chunk) in buf.chunks_exact(ENTRY_LEN as usize).enumerate() {
            let v = i as u64 + 1;
            out.push(IndexEntry::decode(chunk, v).map_err(|r| self.corrupt(ENTRY_LEN * v, r))?);
        }
        Ok(out)
    }

    /// The latest committed version and its entry, or `None` before the first commit.
    ///
    /// Only the very last entry may be incomplete (a commit in progress, or torn by a crash);
    /// it is then ignored, unless records.log proves it an acknowledged entry damaged in place
    /// (see `catalog::tail`), which is corruption. Any damage before it is corruption. An I/O
    /// error is returned as such: taking it for a torn entry would make a writer cut off a
    /// committed version.
    pub fn latest(&self) -> Result<Option<IndexEntry>> {
        let len = self.storage.len(&self.path)?;
        let n = (len / ENTRY_LEN).saturating_sub(1);
        if n == 0 {
            return Ok(None);
        }
        match self.entry(n) {
            Ok(e) => Ok(Some(e)),
            // A rewind (or a writer cutting back a torn tail) shortened the index since its
            // length was measured: the latest entry is an earlier one now.
            Err(Error::Corruption { .. }) if self.storage.len(&self.path)? < len => self.latest(),
            Err(Error::Corruption { .. }) => {
                let at = ENTRY_LEN * n;
                let bytes = super::read_exact(self.storage, &self.path, at, ENTRY_LEN as usize)?;
                if super::tail::damaged_last_entry(self.storage, n, &bytes)? {
                    return Err(self.corrupt(
                        at,
                        format!(
                            "the entry of version {n} is damaged, yet records.log shows version \
                             {n} was committed; `reel rewind --to {}` drops it",
                            n - 1
                        ),
                    ));
                }
                match n {
                    1 => Ok(None),
                    _ => self.entry(n - 1).map(Some),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// What [`Self::latest`] ignores at the end of the index, described: a partial entry, or a
    /// last entry that fails to verify and that records.log does not prove acknowledged (see
    /// `catalog::tail`): an unfinished commit (a crash, or a commit under way), or damage
    /// nothing on disk can tell from one.
    pub fn ignored_tail(&self) -> Result<Option<String>> {
        let len = self.storage.len(&self.path)?;
        let n = (len / ENTRY_LEN).saturating_sub(1);
        let partial = len % ENTRY_LEN;
        if len >= ENTRY_LEN && partial != 0 {
            return Ok(Some(format!(
                "{}: a partial entry of {partial} bytes at offset {}",
                self.path.display(),
                len - partial
            )));
        }
        if n == 0 {
            return Ok(None);
        }
        match self.entry(n) {
            Ok(_) => Ok(None),
            Err(e @ Error::Corruption { .. }) => Ok(Some(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// The last version whose `key(entry)` is at most `target`, by binary search over versions
    /// `1..=latest` (`key` must not decrease with the version).
    pub fn last_at_or_before(
        &self,
        latest: u64,
        target: u64,
        key: impl Fn(&IndexEntry) -> u64,
    ) -> Result<Option<IndexEntry>> {
        let (mut lo, mut hi) = (1u64, latest + 1);
        let mut found = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.entry(mid)?;
            if key(&e) <= target {
                found = Some(e);
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_refuses_damage() {
        let e = IndexEntry {
            version: 7,
            committed_at: 1_700_000_000_000_000,
            carried_offset: 42,
            own_offset: true,
            record_offset: 4096,
            record_len: 300,
            record_checksum: 99,
            expired: true,
            records_file: 3,
        };
        let bytes = e.encode();
        assert_eq!(bytes.len(), ENTRY_LEN as usize);
        assert_eq!(IndexEntry::decode(&bytes, 7), Ok(e));
        assert!(IndexEntry::decode(&bytes, 8).is_err());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(IndexEntry::decode(&bad, 7).is_err(), "byte {i}");
        }
    }
}
