//! Listings of append-only files remembered in the local cache, so that a new handle
//! reading through a warm cache maps packs and node logs with no request at all.
//!
//! [`Storage::map_prefix`](crate::storage::Storage::map_prefix) is how readers map a file
//! that is only ever appended to and whose every record is checked against the reference
//! that names it (a pack's records by their content hash, a node log's frames by their
//! checksum). Through a local cache, the segments such a file was last listed with (names,
//! sizes and ETags) are kept there too, as a cache entry of their own; a later map, in any
//! process sharing the directory, reads those segments (from the cache, or by name when it
//! evicted one, checking the ETag) instead of listing the file, provided they cover the
//! bytes asked for. A file that grew past them is listed again, and its new listing kept.
//!
//! What is remembered may be stale: the file removed and written again since (a store
//! deleted and created again at the same prefix; a node log whose header was damaged,
//! started afresh). Its bytes then fail the reference's check, and the reader calls
//! [`Storage::forget`](crate::storage::Storage::forget), which drops what was remembered,
//! and reads again from a new listing: a stale listing costs a read, never a wrong byte.
//! A remembered segment that is gone, or whose object has another ETag, drops the listing
//! at once and the file is listed.
//!
//! An entry is `count` u32, then per segment `generation` u32, `start` u64, `len` u64 and
//! its ETag as a u32 length and bytes, little-endian, within the cache's own length and
//! checksum trailer.

use std::path::Path;

use bytes::Bytes;

use super::segments::{Segment, end_of};
use super::{ObjectStorage, lock};
use crate::error::Result;
use crate::format::{Decoder, Encoder};

impl ObjectStorage {
    /// [`Storage::map_prefix`](crate::storage::Storage::map_prefix) (see the module docs).
    pub(super) fn map_remembered(&self, path: &Path, need: u64) -> Result<Bytes> {
        use crate::storage::Storage;
        // Without a cache, or with unsynced bytes appended here, as `map`.
        let Some(cache) = self.cache.clone() else {
            return self.map(path);
        };
        if self.tail(path).is_some() {
            return self.map(path);
        }
        let identity = self.listing_identity(path)?;
        // A listing kept in memory first (segments of such a file never change), then one
        // remembered in the cache.
        for from_cache in [false, true] {
            let segments = match from_cache {
                false => lock(&self.listed).get(path).map(|k| k.segments.clone()),
                true => cache.get(&identity).and_then(|b| decode(&b)),
            };
            let Some(segments) = segments.filter(|s| end_of(s) >= need && need > 0) else {
                continue;
            };
            match self.read_segments(path, &segments, 0..end_of(&segments)) {
                Ok(bytes) => {
                    if from_cache {
                        self.counts.listing_remembered();
                    }
                    return Ok(bytes);
                }
                Err(_) => self.forget_remembered(path),
            }
        }
        let segments = self.segments(path)?;
        if segments.is_empty() {
            return Err(super::not_found(path));
        }
        let bytes = self.read_segments(path, &segments, 0..end_of(&segments))?;
        if segments.iter().all(|s| s.e_tag.is_some()) {
            cache.put(&identity, &encode(&segments));
        }
        Ok(bytes)
    }

    /// [`Storage::forget`](crate::storage::Storage::forget): drops the listing of `path`
    /// kept in memory and the one remembered in the cache.
    pub(super) fn forget_remembered(&self, path: &Path) {
        self.forget_listing(path);
        if let (Some(cache), Ok(identity)) = (&self.cache, self.listing_identity(path)) {
            cache.remove(&identity);
        }
    }

    /// The name of `path`'s remembered listing in the cache: the store and the file's key,
    /// marked apart from any segment's.
    fn listing_identity(&self, path: &Path) -> Result<String> {
        Ok(format!("listing\n{}\n{}", self.store, self.key(path)?))
    }
}

/// A remembered listing's bytes (see the module docs).
fn encode(segments: &[Segment]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.u32(segments.len() as u32);
    for s in segments {
        e.u32(s.generation).u64(s.start).u64(s.len);
        e.bytes(s.e_tag.as_deref().unwrap_or("").as_bytes());
    }
    e.finish()
}

/// The segments `bytes` remember, when they decode whole and run back to back from 0.
fn decode(bytes: &[u8]) -> Option<Vec<Segment>> {
    let mut d = Decoder::new(bytes);
    let count = d.u32().ok()?;
    let mut segments: Vec<Segment> = Vec::new();
    for _ in 0..count {
        let (generation, start, len) = (d.u32().ok()?, d.u64().ok()?, d.u64().ok()?);
        let e_tag = std::str::from_utf8(d.bytes().ok()?).ok()?;
        if start != end_of(&segments) || len == 0 || e_tag.is_empty() {
            return None;
        }
        segments.push(Segment {
            generation,
            start,
            len,
            e_tag: Some(e_tag.into()),
        });
    }
    d.finish().ok()?;
    Some(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_listing_reads_back_and_a_broken_one_is_refused() {
        let segments = vec![
            Segment {
                generation: 0,
                start: 0,
                len: 100,
                e_tag: Some("\"a\"".into()),
            },
            Segment {
                generation: 0,
                start: 100,
                len: 7,
                e_tag: Some("\"b\"".into()),
            },
        ];
        let bytes = encode(&segments);
        assert_eq!(decode(&bytes), Some(segments.clone()));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None, "cut short");
        let mut gap = segments.clone();
        gap[1].start = 101;
        assert_eq!(
            decode(&encode(&gap)),
            None,
            "segments must run back to back"
        );
    }
}
