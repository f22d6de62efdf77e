//! The reads that let an open skip listing a file (`Storage::read_small`,
//! `Storage::first_name`, `Storage::generation`, `Storage::ends_at` on an object store):
//! a file's first segment got by name, the first name under a folder, and whether anything
//! sorts past a given length of a file.

use std::path::Path;

use bytes::Bytes;
use object_store::ObjectStoreExt;

use super::requests::Request;
use super::{ObjectStorage, lock};
use crate::error::{Error, Result};
use crate::storage::Storage;

impl ObjectStorage {
    pub(super) fn read_first_segment(&self, path: &Path) -> Result<Option<Bytes>> {
        if self.tail(path).is_some() {
            return self.map(path).map(Some);
        }
        let (store, key) = (self.store.clone(), self.segment_key(path, 0, 0)?);
        let got = self.run(Request::Get, path, async move {
            match store.get(&key).await {
                Ok(got) => Ok(Some(got.bytes().await?)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        if let Some(bytes) = &got {
            self.counts.read(bytes.len() as u64);
        }
        Ok(got)
    }

    pub(super) fn first_listed(&self, dir: &Path) -> Result<Option<String>> {
        use futures::StreamExt;
        let key = self.key(dir)?;
        let store = self.store.clone();
        let first = self.run(Request::List, dir, async move {
            let prefix = (!key.as_ref().is_empty()).then_some(key);
            store.list(prefix.as_ref()).next().await.transpose()
        })?;
        self.counts.listed(u64::from(first.is_some()));
        let within = self.key(dir)?;
        Ok(first.and_then(|meta| {
            let name = meta.location.prefix_match(&within)?.next()?;
            Some(name.as_ref().to_string())
        }))
    }

    pub(super) fn current_generation(&self, path: &Path) -> Result<u64> {
        if let Some(tail) = self.tail(path) {
            return Ok(u64::from(lock(&tail).generation));
        }
        Ok(self
            .segments(path)?
            .last()
            .map_or(0, |s| u64::from(s.generation)))
    }

    pub(super) fn nothing_past(&self, path: &Path, len: u64, generation: u64) -> Result<bool> {
        use futures::StreamExt;
        let generation = u32::try_from(generation)
            .map_err(|_| Error::io(path, std::io::Error::other("a generation past 32 bits")))?;
        if len == 0 {
            return Ok(
                self.current_generation(path)? == u64::from(generation) && self.len(path)? == 0
            );
        }
        // Bytes appended through this storage and not synced yet are the file's here too.
        if let Some(tail) = self.tail(path) {
            let tail = lock(&tail);
            if tail.generation != generation || tail.start + tail.bytes.len() as u64 > len {
                return Ok(false);
            }
        }
        // A generation-0 segment starting at 4 GiB or later sorts after generation 1's
        // names (its ninth digit against their `-`): the file is listed whole.
        if generation == 0 && len > 1 << 32 {
            return Ok(self.current_generation(path)? == 0 && self.len(path)? == len);
        }
        // Below that, names sort by generation, then start: what sorts after the name a
        // segment starting at `len - 1` would have is a segment starting at `len` or later,
        // or one of a newer generation.
        let (store, prefix, after) = (
            self.store.clone(),
            self.key(path)?,
            self.segment_key(path, generation, len.saturating_sub(1))?,
        );
        let later = self.run(Request::List, path, async move {
            store
                .list_with_offset(Some(&prefix), &after)
                .next()
                .await
                .transpose()
        })?;
        self.counts.listed(u64::from(later.is_some()));
        Ok(later.is_none())
    }
}
