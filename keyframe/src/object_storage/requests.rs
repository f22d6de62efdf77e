//! What an [`ObjectStorage`](super::ObjectStorage) asks of its object store: running counts
//! by kind of request and bytes, and [`Requests`], a reading of them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of request an `ObjectStorage` makes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Request {
    List,
    Get,
    Put,
    Delete,
    Copy,
}

/// Running request counts, shared by a storage and its clones.
#[derive(Debug, Default)]
pub(super) struct Counts {
    lists: AtomicU64,
    names_listed: AtomicU64,
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    copies: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    cache_hits: AtomicU64,
    bytes_cached: AtomicU64,
    listings_remembered: AtomicU64,
}

impl Counts {
    /// Counts one request of `kind`.
    pub(super) fn request(&self, kind: Request) {
        let counter = match kind {
            Request::List => &self.lists,
            Request::Get => &self.gets,
            Request::Put => &self.puts,
            Request::Delete => &self.deletes,
            Request::Copy => &self.copies,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `names` objects and folders a listing returned.
    pub(super) fn listed(&self, names: u64) {
        self.names_listed.fetch_add(names, Ordering::Relaxed);
    }

    /// Counts `bytes` a get returned.
    pub(super) fn read(&self, bytes: u64) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a segment of `bytes` read from the local cache instead of the object store.
    pub(super) fn cache_hit(&self, bytes: u64) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
        self.bytes_cached.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a file mapped by a listing remembered in the local cache, not listed.
    pub(super) fn listing_remembered(&self) {
        self.listings_remembered.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `bytes` a put sent.
    pub(super) fn written(&self, bytes: u64) {
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counts now.
    pub(super) fn now(&self) -> Requests {
        Requests {
            lists: self.lists.load(Ordering::Relaxed),
            names_listed: self.names_listed.load(Ordering::Relaxed),
            gets: self.gets.load(Ordering::Relaxed),
            puts: self.puts.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
            copies: self.copies.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            bytes_cached: self.bytes_cached.load(Ordering::Relaxed),
            listings_remembered: self.listings_remembered.load(Ordering::Relaxed),
        }
    }
}

/// The requests an `ObjectStorage` (with its clones) made to its object store so far
/// (`ObjectStorage::requests`); a request retried by the object store counts once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// Listings (one call, however many pages the object store fetched for it).
    pub lists: u64,
    /// Objects and folders the listings returned (S3 returns at most 1,000 per request, so
    /// a listing of more pages through them).
    pub names_listed: u64,
    /// Ranged or whole gets.
    pub gets: u64,
    /// Puts: segments, whole small files and lock objects.
    pub puts: u64,
    /// Deletes.
    pub deletes: u64,
    /// Copies (renames).
    pub copies: u64,
    /// Bytes the gets returned.
    pub bytes_read: u64,
    /// Bytes the puts sent.
    pub bytes_written: u64,
    /// Segments read from the local cache (`ObjectStorage::with_cache`), no request made.
    pub cache_hits: u64,
    /// Bytes those segments held.
    pub bytes_cached: u64,
    /// Files mapped by the segments the local cache remembered of them, with no listing.
    pub listings_remembered: u64,
}

impl Requests {
    /// Requests that change the object store: puts, deletes and copies.
    pub fn writes(&self) -> u64 {
        self.puts + self.deletes + self.copies
    }

    /// What was requested between `earlier` and `self`.
    pub fn since(&self, earlier: &Requests) -> Requests {
        Requests {
            lists: self.lists - earlier.lists,
            names_listed: self.names_listed - earlier.names_listed,
            gets: self.gets - earlier.gets,
            puts: self.puts - earlier.puts,
            deletes: self.deletes - earlier.deletes,
            copies: self.copies - earlier.copies,
            bytes_read: self.bytes_read - earlier.bytes_read,
            bytes_written: self.bytes_written - earlier.bytes_written,
            cache_hits: self.cache_hits - earlier.cache_hits,
            bytes_cached: self.bytes_cached - earlier.bytes_cached,
            listings_remembered: self.listings_remembered - earlier.listings_remembered,
        }
    }
}
