//! How an [`ObjectStorage`] reads bytes of a file's segments: from the local cache where it
//! holds them, the rest by ranged gets issued at once.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use object_store::ObjectStoreExt;

use super::requests::Request;
use super::segments::Segment;
use super::{ObjectStorage, not_as_listed};
use crate::error::Result;

impl ObjectStorage {
    /// Reads `range` of `path`'s segments: those the local cache holds from there, the rest
    /// by one ranged get each, issued at once. A range within one segment comes back as
    /// the bytes got (no copy).
    pub(super) fn read_segments(
        &self,
        path: &Path,
        segments: &[Segment],
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        let mut pieces: Vec<Bytes> = Vec::new();
        // (piece, segment start, object, range within the segment)
        let mut wanted = Vec::new();
        for s in segments {
            let (from, to) = (range.start.max(s.start), range.end.min(s.start + s.len));
            if from >= to {
                continue;
            }
            let within = from - s.start..to - s.start;
            if let Some(whole) = self.read_cached(path, s)? {
                pieces.push(whole.slice(within.start as usize..within.end as usize));
                continue;
            }
            let key = self.segment_key(path, s.generation, s.start)?;
            wanted.push((pieces.len(), s.start, key, within));
            pieces.push(Bytes::new());
        }
        if !wanted.is_empty() {
            let store = self.store.clone();
            let gets: Vec<_> = wanted
                .iter()
                .map(|(_, _, key, within)| (key.clone(), within.clone()))
                .collect();
            let got = self.run_many(Request::Get, gets.len() as u64, path, async move {
                futures::future::try_join_all(gets.into_iter().map(|(key, within)| {
                    let store = store.clone();
                    async move { store.get_range(&key, within).await }
                }))
                .await
            })?;
            for ((i, start, _, within), bytes) in wanted.into_iter().zip(got) {
                if bytes.len() as u64 != within.end - within.start {
                    return Err(not_as_listed(path, start));
                }
                self.counts.read(bytes.len() as u64);
                pieces[i] = bytes;
            }
        }
        if pieces.len() == 1 {
            return Ok(pieces.swap_remove(0));
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        pieces.iter().for_each(|p| out.extend_from_slice(p));
        Ok(out.freeze())
    }

    /// The whole segment `s` of `path` through the local cache: from the cache, or got and
    /// cached; `None` when there is no cache or it does not take `s` (too large, or no ETag
    /// to tell its bytes from another segment's of the same name).
    pub(super) fn read_cached(&self, path: &Path, s: &Segment) -> Result<Option<Bytes>> {
        let (Some(cache), Some(e_tag)) = (&self.cache, &s.e_tag) else {
            return Ok(None);
        };
        if s.len > cache.largest() {
            return Ok(None);
        }
        let key = self.segment_key(path, s.generation, s.start)?;
        let identity = format!("{}\n{key}\n{e_tag}\n{}", self.store, s.len);
        if let Some(bytes) = cache.get(&identity).filter(|b| b.len() as u64 == s.len) {
            self.counts.cache_hit(s.len);
            return Ok(Some(bytes));
        }
        let store = self.store.clone();
        let (got_tag, got) = self.run(Request::Get, path, async move {
            let got = store.get(&key).await?;
            let e_tag = got.meta.e_tag.clone();
            Ok((e_tag, got.bytes().await?))
        })?;
        if got.len() as u64 != s.len || got_tag.as_deref() != Some(&**e_tag) {
            return Err(not_as_listed(path, s.start));
        }
        self.counts.read(s.len);
        cache.put(&identity, &got);
        Ok(Some(got))
    }
}
