//! A local read-through cache of segment objects: bounded, checksummed, shared by the
//! processes that name the same directory.
//!
//! A segment is cached whole, under a name derived from what makes it unique: the object
//! store, the object's key, its ETag and its size (a segment is never modified, but a file
//! cut back and written again may reuse a name: its ETag differs). Each cache file is the
//! segment's bytes followed by a 16-byte trailer, the bytes' length and their xxh3-64, both
//! u64 little-endian; a file whose trailer does not match is deleted and the segment fetched
//! again, so a damaged cache costs a request, never a wrong byte. Files are written to a
//! temporary name and renamed, so another process never reads half of one, and never
//! written in place, so a hit is mapped rather than copied. The same directory holds the
//! listings module `remembered` keeps, as entries of their own.
//!
//! The cache holds at most its limit of bytes, as this process counts them: past it, the
//! files used longest ago (by modification time, which a hit refreshes) are deleted until
//! nine tenths of the limit remain. Processes sharing a directory each keep it near the
//! limit. Failing to write the cache only loses the saving: reads never fail because of it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;

use super::lock;
use crate::error::{Error, Result};
use crate::format::checksum;
use crate::storage::{LocalStorage, Storage};

/// Length of a cache file's trailer: the segment's length and checksum.
const TRAILER_LEN: usize = 16;

/// The cache of one directory (see the module docs).
#[derive(Debug)]
pub(super) struct SegmentCache {
    dir: PathBuf,
    limit: u64,
    /// Bytes in the directory as this process counts them: scanned at the first insert.
    used: Mutex<Option<u64>>,
}

impl SegmentCache {
    /// A cache in `dir` (created if missing) holding at most `limit` bytes.
    pub(super) fn new(dir: &Path, limit: u64) -> Result<SegmentCache> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(SegmentCache {
            dir: dir.to_path_buf(),
            limit,
            used: Mutex::new(None),
        })
    }

    /// The largest segment worth caching: a tenth of the limit.
    pub(super) fn largest(&self) -> u64 {
        self.limit / 10
    }

    /// The name of the cache file of the segment `identity` names.
    fn name(identity: &str) -> String {
        let name = xxhash_rust::xxh3::xxh3_128(identity.as_bytes());
        format!("{name:032x}.seg")
    }

    /// The cache file of the segment `identity` names.
    fn file(&self, identity: &str) -> PathBuf {
        self.dir.join(Self::name(identity))
    }

    /// The segment `identity` names, if cached and intact (a damaged file is deleted). The
    /// file is mapped, not copied: cache files are replaced by renames and removed, never
    /// written in place, so a map stays whole.
    pub(super) fn get(&self, identity: &str) -> Option<Bytes> {
        let name = Self::name(identity);
        let path = self.dir.join(&name);
        let bytes = LocalStorage::new(&self.dir).map(Path::new(&name)).ok()?;
        let body_len = bytes.len().checked_sub(TRAILER_LEN);
        let intact = body_len.is_some_and(|n| {
            let trailer = &bytes[n..];
            trailer[..8] == (n as u64).to_le_bytes()
                && trailer[8..] == checksum(&bytes[..n]).to_le_bytes()
        });
        if !intact {
            let _ = fs::remove_file(&path);
            return None;
        }
        let bytes = bytes.slice(..body_len.unwrap_or(0));
        // A hit makes the file the most recently used; failing to mark it only makes it
        // an earlier candidate for eviction.
        if let Ok(file) = fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(bytes)
    }

    /// Drops the entry `identity` names, if there is one.
    pub(super) fn remove(&self, identity: &str) {
        let _ = fs::remove_file(self.file(identity));
    }

    /// Caches `bytes` as the segment `identity` names, then evicts past the limit.
    pub(super) fn put(&self, identity: &str, bytes: &[u8]) {
        let path = self.file(identity);
        // A name no other process or thread writes: a file created anew, never one a
        // rename already put in place (and perhaps mapped) written over.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let temporary = path.with_extension(format!(
            "tmp{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| -> std::io::Result<()> {
            let mut file = fs::File::create_new(&temporary)?;
            file.write_all(bytes)?;
            file.write_all(&(bytes.len() as u64).to_le_bytes())?;
            file.write_all(&checksum(bytes).to_le_bytes())?;
            fs::rename(&temporary, &path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
            return;
        }
        let mut used = lock(&self.used);
        let now = match *used {
            Some(n) => n + (bytes.len() + TRAILER_LEN) as u64,
            None => self.files().iter().map(|f| f.2).sum(),
        };
        *used = Some(match now > self.limit {
            true => self.evict(),
            false => now,
        });
    }

    /// The cache files: path, modification time and size.
    fn files(&self) -> Vec<(PathBuf, SystemTime, u64)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let e = e.ok()?;
                let meta = e.metadata().ok()?;
                (meta.is_file() && e.path().extension()? == "seg").then(|| {
                    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    (e.path(), modified, meta.len())
                })
            })
            .collect()
    }

    /// Deletes the files used longest ago until nine tenths of the limit remain; the bytes
    /// left.
    fn evict(&self) -> u64 {
        let mut files = self.files();
        files.sort_by_key(|f| f.1);
        let mut used: u64 = files.iter().map(|f| f.2).sum();
        for (path, _, size) in files {
            if used <= self.limit / 10 * 9 {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                used -= size;
            }
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_segment_reads_back_and_a_damaged_one_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SegmentCache::new(dir.path(), 1 << 20).unwrap();
        assert!(cache.get("s3/a/0@e1").is_none());
        cache.put("s3/a/0@e1", b"segment bytes");
        assert_eq!(&cache.get("s3/a/0@e1").unwrap()[..], b"segment bytes");
        assert!(
            cache.get("s3/a/0@e2").is_none(),
            "another ETag is another segment"
        );
        let file = cache.file("s3/a/0@e1");
        let mut bytes = fs::read(&file).unwrap();
        bytes[3] ^= 1;
        fs::write(&file, bytes).unwrap();
        assert!(cache.get("s3/a/0@e1").is_none());
        assert!(!file.exists(), "the damaged file is deleted");
    }

    #[test]
    fn past_its_limit_the_cache_drops_the_segments_used_longest_ago() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SegmentCache::new(dir.path(), 10_000).unwrap();
        let block = vec![7u8; 2_000];
        for i in 0..4 {
            cache.put(&format!("seg{i}"), &block);
            // Modification times must differ for the order to be defined.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(cache.get("seg0").is_some(), "a hit makes seg0 the newest");
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put("seg4", &block);
        cache.put("seg5", &block);
        let kept: Vec<bool> = (0..6)
            .map(|i| cache.file(&format!("seg{i}")).exists())
            .collect();
        assert_eq!(kept, [true, false, false, true, true, true]);
        let used: u64 = cache.files().iter().map(|f| f.2).sum();
        assert!(used <= 10_000, "{used}");
    }
}
