//! The listings an [`ObjectStorage`] keeps of the files it read or wrote, and how it brings
//! one up to date: by one listing of what sorts from the file's last known segment on, so
//! that a file's length costs a page of names, not a page per thousand segments (versions.idx
//! and records.log gain a segment per commit).
//!
//! A kept listing is *current* while no lock was taken since it was listed or confirmed;
//! reads of bytes a current listing covers need no request beyond their gets. Taking a lock
//! makes every kept listing not current (another process may have changed the files while
//! none was held), and the next use confirms it.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;

use super::requests::Request;
use super::segments::{Segment, current_in, end_of, parse_name};
use super::{ObjectStorage, lock, past_end};
use crate::error::Result;

/// What is kept of a file's listing.
#[derive(Debug, Clone)]
pub(super) struct Kept {
    /// Its segments, in order.
    pub(super) segments: Vec<Segment>,
    /// Whether they were listed or confirmed since the last lock was taken.
    pub(super) current: bool,
}

impl ObjectStorage {
    /// The segments of `path` (its newest generation's), in order, checked to run back to
    /// back from 0: the kept listing confirmed and extended by what was appended since, or
    /// a new listing when there is none or it cannot be confirmed.
    pub(super) fn segments(&self, path: &Path) -> Result<Vec<Segment>> {
        let kept = lock(&self.listed).get(path).map(|k| k.segments.clone());
        let segments = match kept {
            Some(kept) => match self.confirm(path, &kept)? {
                Some(segments) => segments,
                None => current_in(path, &self.children(path)?)?,
            },
            None => current_in(path, &self.children(path)?)?,
        };
        self.keep(path, segments.clone());
        Ok(segments)
    }

    /// Reads `range` of `path`'s segments, by the current listing when it covers the range
    /// (segments never change; a file cut back or removed meanwhile loses some, and a read
    /// that then fails is retried once on a new listing), else after bringing it up to date.
    pub(super) fn read_listed(&self, path: &Path, range: std::ops::Range<u64>) -> Result<Bytes> {
        if let Some(segments) = self.current_listing(path, range.end) {
            match self.read_segments(path, &segments, range.clone()) {
                Ok(bytes) => return Ok(bytes),
                Err(_) => self.forget_listing(path),
            }
        }
        let segments = self.segments(path)?;
        if end_of(&segments) < range.end {
            return Err(past_end(path));
        }
        self.read_segments(path, &segments, range)
    }

    /// [`Storage::read_at_least`](crate::storage::Storage::read_at_least): `len` bytes of
    /// `path` from `offset`, cut at the end of the segment holding the last of the first
    /// `need` (the segments after it would each cost a get of their own).
    pub(super) fn read_to_segment_end(
        &self,
        path: &Path,
        offset: u64,
        need: usize,
        len: usize,
    ) -> Result<Bytes> {
        use crate::storage::Storage;
        let (need_end, end) = (offset + need as u64, offset + len as u64);
        if self.tail(path).is_some() || need == 0 {
            return self.read_at(path, offset, len);
        }
        let segments = match self.current_listing(path, need_end) {
            Some(segments) => segments,
            None => self.segments(path)?,
        };
        let stop = segments
            .iter()
            .find(|s| s.start < need_end && need_end <= s.start + s.len)
            .map_or(end, |s| s.start + s.len);
        self.read_listed(path, offset..stop.clamp(need_end, end))
    }

    /// The current listing of `path` when it covers its first `end` bytes.
    fn current_listing(&self, path: &Path, end: u64) -> Option<Vec<Segment>> {
        lock(&self.listed)
            .get(path)
            .filter(|k| k.current && end_of(&k.segments) >= end)
            .map(|k| k.segments.clone())
    }

    /// Keeps `segments` as the current listing of `path`.
    pub(super) fn keep(&self, path: &Path, segments: Vec<Segment>) {
        let kept = Kept {
            segments,
            current: true,
        };
        lock(&self.listed).insert(path.to_path_buf(), kept);
    }

    /// Makes every kept listing not current, and forgets every tail with nothing unsynced
    /// that no append file holds: what another process may have changed while no lock was
    /// held (see the module docs).
    pub(super) fn forget_settled(&self) {
        lock(&self.listed)
            .values_mut()
            .for_each(|k| k.current = false);
        lock(&self.tails)
            .retain(|_, tail| Arc::strong_count(tail) > 1 || !lock(tail).bytes.is_empty());
    }

    /// Forgets what was listed of `path`.
    pub(super) fn forget_listing(&self, path: &Path) {
        lock(&self.listed).remove(path);
    }

    /// `kept`, the segments of `path` as listed before, with those appended since, when one
    /// listing of the names from its last segment on shows the file is still what `kept`
    /// says followed by more of the same generation; `None` when it shows anything else (the
    /// last segment gone or replaced, a newer generation, a gap) or when that listing could
    /// not tell: a file of one segment, or a segment of generation 0 starting at 4 GiB or
    /// later, whose name sorts after those of newer generations.
    ///
    /// Segments before the last are taken as they were: a file is cut back from its end and
    /// rewritten whole as a new generation, so none of them changes while the last stays.
    /// (What this cannot see: the last segment deleted and created again with the same bytes
    /// by a process that also rewrote earlier ones. Its ETag, an MD5 of the bytes on S3,
    /// would not tell; the engine never writes a segment it cut back again with the same
    /// bytes, as every index entry and version record carries its version.)
    fn confirm(&self, path: &Path, kept: &[Segment]) -> Result<Option<Vec<Segment>>> {
        let Some(last) = kept.last() else {
            return Ok(None);
        };
        if last.start == 0 || (last.generation == 0 && last.start >= 1 << 32) {
            return Ok(None);
        }
        // Nothing is named as a segment starting one byte before the last would be: the
        // listing starts right before the last segment's name.
        let (store, prefix, after) = (
            self.store.clone(),
            self.key(path)?,
            self.segment_key(path, last.generation, last.start - 1)?,
        );
        let within = prefix.clone();
        let later: Vec<_> = self.run(Request::List, path, async move {
            store
                .list_with_offset(Some(&prefix), &after)
                .try_collect()
                .await
        })?;
        self.counts.listed(later.len() as u64);
        let mut found = later.iter().filter_map(|meta| {
            let mut parts = meta.location.prefix_match(&within)?;
            let name = parts.next()?;
            if parts.next().is_some() {
                return None;
            }
            let (generation, start) = parse_name(name.as_ref())?;
            Some(Segment {
                generation,
                start,
                len: meta.size,
                e_tag: meta.e_tag.as_deref().map(Arc::from),
            })
        });
        if !found.next().is_some_and(|first| same_object(&first, last)) {
            return Ok(None);
        }
        let mut segments = kept.to_vec();
        for s in found {
            if s.generation != last.generation || s.start != end_of(&segments) {
                return Ok(None);
            }
            segments.push(s);
        }
        Ok(Some(segments))
    }
}

/// Whether `a` and `b` name the same object: generation, start and length, and ETag when
/// both are known (a put's ETag and a listing's may differ in their quotes).
fn same_object(a: &Segment, b: &Segment) -> bool {
    let tags = match (&a.e_tag, &b.e_tag) {
        (Some(x), Some(y)) => x.trim_matches('"') == y.trim_matches('"'),
        _ => true,
    };
    (a.generation, a.start, a.len) == (b.generation, b.start, b.len) && tags
}
