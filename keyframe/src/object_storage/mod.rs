//! [`Storage`] on an object store (the `object_store` crate: S3, Google Cloud Storage, Azure,
//! in-memory), with every object written once. Feature `object-store`.
//!
//! A store file `F` is a folder of *segment objects* `F/OFFSET`, OFFSET being where the
//! segment starts in the file as 16 lowercase hex digits. Segments run back to back from
//! offset 0 and the file's bytes are theirs in order; a gap or an overlap is
//! [`Error::Corrupt`]. What is appended to a file is kept in memory, per file, by the
//! `ObjectStorage` (and its clones): reads through it see those bytes, and so does the next
//! append file it opens on that path, as a local disk's page cache shows appended bytes. Each
//! [`AppendFile::sync`] writes them as one new segment, created only if no object has that
//! name (`PutMode::Create`); only then do other handles see them. So no segment is ever
//! modified, and of two appenders that reach the same offset of a file only the first writes
//! it: the other gets [`Error::Conflict`] and has changed nothing. Bytes never synced are
//! lost with the process; a writer that does not sync (`WriterOptions::sync(false)` in the
//! `reeldb` crate) therefore leaves nothing other processes can read.
//!
//! What object stores lack is emulated, and the limits are stated where they apply:
//! - [`Storage::write_atomic`] and [`Storage::overwrite`] replace a file of one segment (of
//!   generation 0, as long as the new bytes) by writing that segment again (an object
//!   store's put is atomic), and any other file by a new generation of segments (module
//!   `segments`): its first segment,
//!   created only if absent, is the file from then on, and the older objects are deleted.
//!   An appender that listed the file before must list it again to append to the new
//!   generation: taking a lock forgets every tail with nothing unsynced that no append file
//!   holds and makes every kept listing one to confirm before use (module `listings`), so
//!   appends made under a lock (the engine's catalog appends and rewrites both hold the
//!   catalog lock) go to the file as it is.
//! - [`Storage::truncate`] deletes the segments at or past the new length, which must be a
//!   segment boundary (the engine cuts files back only to the lengths a commit synced).
//! - Locks are objects `P/lock` holding a lease their holder renews (module `lock`): a
//!   process that dies holding one leaves it to expire after the lease's length
//!   ([`ObjectStorage::with_lock_ttl`], [`DEFAULT_LOCK_TTL`]), and [`LockGuard::check`]
//!   tells a holder whose lease lapsed. Waiting locks ([`Storage::lock_shared`],
//!   [`Storage::lock_exclusive`]) are exclusive and give up with [`Error::Locked`] after
//!   twice the lease's length.
//! - Directories are not objects: [`Storage::create_dir_all`] and [`Storage::sync_dir`] do
//!   nothing, and a directory exists while something is stored under it.
//! - [`Storage::map`] reads the whole file (every segment). [`Storage::map_prefix`], for
//!   packs and node logs, may answer through a local cache from the segments remembered
//!   there, with no request (module `remembered`).
//!
//! The object store's calls are async; they run on a small tokio runtime this storage owns,
//! and every [`Storage`] call waits for its own.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use lock::DEFAULT_LOCK_TTL;
use lock::LOCK_OBJECT;
pub use object_store;
pub use requests::Requests;

use crate::error::{Error, Result};
use crate::storage::{AppendFile, LockGuard, Storage};
use cache::SegmentCache;
use listings::Kept;
use requests::{Counts, Request};
use segments::{Listing, Segment, all_in, current_in, end_of, name_of};

mod cache;
mod listings;
mod lock;
mod probes;
mod remembered;
mod requests;
mod segment_reads;
mod segments;

/// The windows packs are read in by default ([`Storage::read_window`],
/// [`ObjectStorage::with_read_window`]): 1 MiB, object_store's own
/// distance for coalescing ranged gets (`OBJECT_STORE_COALESCE_DEFAULT`), where one more
/// request costs about what its bytes would.
pub const READ_WINDOW: u64 = 1 << 20;

/// [`Storage`] on an object store (see the module docs).
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    runtime: Arc<Runtime>,
    /// Per file being appended to through this storage: its bytes not yet synced.
    tails: Arc<Mutex<HashMap<PathBuf, Arc<Mutex<Tail>>>>>,
    /// Per file, its segments as last listed (or synced) here (module `listings`).
    listed: Arc<Mutex<HashMap<PathBuf, Kept>>>,
    /// The requests made so far, by this storage and its clones.
    counts: Arc<Counts>,
    /// How long a lock's lease lasts.
    lock_ttl: Duration,
    /// The local cache of segments, if one was given.
    cache: Option<Arc<SegmentCache>>,
    /// The size of the windows packs are read in ([`Storage::read_window`]).
    read_window: u64,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectStorage({} at {:?})", self.store, self.prefix)
    }
}

/// The bytes appended to a file and not yet written as a segment.
#[derive(Debug, Default)]
struct Tail {
    /// The generation of the file's segments (module `segments`).
    generation: u32,
    /// Where they start: the length of the file's segments.
    start: u64,
    bytes: Vec<u8>,
}

/// The tokio runtime the object store's calls run on; shut down without waiting when the
/// last storage sharing it goes (dropping a runtime the ordinary way panics inside another
/// runtime, as in an async SQL engine).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The error for a file `path` that does not exist.
fn not_found(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
    )
}

/// The error for a read past the end of `path`.
fn past_end(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end"),
    )
}

/// The error for a segment of `path` at `start` that is not the one listed: the file was cut
/// back and written again since (a read that gets it is retried on a new listing).
fn not_as_listed(path: &Path, start: u64) -> Error {
    Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("segment at {start} is not as listed"),
        ),
    )
}

impl ObjectStorage {
    /// Storage on `store`, every path under `prefix` (`""` for the store's root; parts are
    /// separated by `/`).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reeldb-object-store")
            .enable_all()
            .build()
            .map_err(|e| Error::io(prefix, e))?;
        Ok(ObjectStorage {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            runtime: Arc::new(Runtime(Some(runtime))),
            tails: Arc::new(Mutex::new(HashMap::new())),
            listed: Arc::new(Mutex::new(HashMap::new())),
            counts: Arc::new(Counts::default()),
            lock_ttl: DEFAULT_LOCK_TTL,
            cache: None,
            read_window: READ_WINDOW,
        })
    }

    /// The same storage reading through a local cache in `dir` of at most `limit` bytes
    /// (module `cache`): a segment read once is read from there afterwards, by this process
    /// and by any other that names the same directory. Segments larger than a tenth of the
    /// limit are not cached.
    pub fn with_cache(mut self, dir: &Path, limit: u64) -> Result<Self> {
        self.cache = Some(Arc::new(SegmentCache::new(dir, limit)?));
        Ok(self)
    }

    /// The same storage with locks whose leases last `ttl` (at least a second):
    /// a lock whose holder died is free again `ttl` after its last renewal.
    pub fn with_lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The same storage reading packs in windows of `window` bytes (at least 4 KiB) instead
    /// of [`READ_WINDOW`]: smaller ones read less for a point read, larger ones make fewer
    /// requests for a scan. A storage with a local cache ([`ObjectStorage::with_cache`])
    /// reads packs whole, as the cache holds whole segments.
    pub fn with_read_window(mut self, window: u64) -> Self {
        self.read_window = window.max(4 << 10);
        self
    }

    /// The requests made so far by this storage and its clones.
    pub fn requests(&self) -> Requests {
        self.counts.now()
    }

    /// Runs `work`, one request of `kind`, on the runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        kind: Request,
        path: &Path,
        work: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.run_many(kind, 1, path, work)
    }

    /// Runs `work`, `count` requests of `kind` at once, on the runtime and waits for it.
    fn run_many<T: Send + 'static>(
        &self,
        kind: Request,
        count: u64,
        path: &Path,
        work: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<T> {
        (0..count).for_each(|_| self.counts.request(kind));
        let Some(runtime) = &self.runtime.0 else {
            return Err(Error::io(path, std::io::Error::other("runtime shut down")));
        };
        match futures::executor::block_on(runtime.spawn(work)) {
            Ok(result) => result.map_err(|e| object_error(path, e)),
            Err(join) => Err(Error::io(path, std::io::Error::other(join))),
        }
    }

    /// The object path of store path `path` (relative to the store root).
    fn key(&self, path: &Path) -> Result<ObjectPath> {
        let mut parts: Vec<&str> = Vec::new();
        if !self.prefix.is_empty() {
            parts.push(&self.prefix);
        }
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_str().ok_or_else(|| {
                    Error::io(path, std::io::Error::other("a path that is not UTF-8"))
                })?),
                Component::CurDir => {}
                _ => {
                    return Err(Error::io(
                        path,
                        std::io::Error::other("not a path inside the store"),
                    ));
                }
            }
        }
        Ok(ObjectPath::from(parts.join("/")))
    }

    /// The object of the segment of `path` of generation `generation` starting at `start`.
    fn segment_key(&self, path: &Path, generation: u32, start: u64) -> Result<ObjectPath> {
        Ok(self.key(path)?.join(name_of(generation, start).as_str()))
    }

    /// The names directly under `path`: objects and common prefixes.
    fn children(&self, path: &Path) -> Result<Listing> {
        let key = self.key(path)?;
        let store = self.store.clone();
        let listed = self.run(Request::List, path, async move {
            let prefix = (!key.as_ref().is_empty()).then_some(key);
            store.list_with_delimiter(prefix.as_ref()).await
        })?;
        self.counts
            .listed((listed.objects.len() + listed.common_prefixes.len()) as u64);
        let objects = listed
            .objects
            .iter()
            .filter_map(|o| {
                let name = o.location.filename()?.to_string();
                Some((name, o.size, o.e_tag.as_deref().map(Arc::from)))
            })
            .collect();
        let folders = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        Ok(Listing { objects, folders })
    }

    /// Reads `range` of `path`: from `segments`, then from the unsynced tail where the
    /// range runs past them and the tail continues them.
    fn read_with_tail(
        &self,
        path: &Path,
        segments: &[Segment],
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        let stored = end_of(segments);
        if range.end <= stored {
            return self.read_segments(path, segments, range);
        }
        let tail = self.tail(path).ok_or_else(|| past_end(path))?;
        let tail = lock(&tail);
        if tail.start != stored || range.end > stored + tail.bytes.len() as u64 {
            return Err(past_end(path));
        }
        let from = range.start.min(stored);
        let mut out = BytesMut::from(&self.read_segments(path, segments, from..stored)?[..]);
        out.extend_from_slice(
            &tail.bytes[(range.start.max(stored) - stored) as usize..(range.end - stored) as usize],
        );
        Ok(out.freeze())
    }

    /// Deletes the segment objects `segments` of `path`, the last first (a failure part-way
    /// leaves a shorter file, never a gap).
    fn delete_segments<'a>(
        &self,
        path: &Path,
        segments: impl DoubleEndedIterator<Item = &'a Segment>,
    ) -> Result<()> {
        for s in segments.rev() {
            self.delete(path, self.segment_key(path, s.generation, s.start)?)?;
        }
        Ok(())
    }

    /// Deletes `segments`, every segment object of `path`: older generations' first, then
    /// the file's own, the last first, so that a failure part-way leaves a shorter file,
    /// never an older generation as the file.
    fn delete_every_segment(&self, path: &Path, mut segments: Vec<Segment>) -> Result<()> {
        let newest = segments.iter().map(|s| s.generation).max().unwrap_or(0);
        segments.sort_by_key(|s| (s.generation != newest, s.start));
        self.delete_segments(path, segments.iter())
    }

    /// The unsynced tail of `path`, if an append file of this storage has one.
    fn tail(&self, path: &Path) -> Option<Arc<Mutex<Tail>>> {
        lock(&self.tails).get(path).cloned()
    }

    /// Deletes one object.
    fn delete(&self, path: &Path, key: ObjectPath) -> Result<()> {
        let store = self.store.clone();
        self.run(
            Request::Delete,
            path,
            async move { store.delete(&key).await },
        )
    }

    /// Writes `data` as the whole of `path`: over its one segment at 0 when it has no other
    /// (and is of generation 0, and as long as `data`), else as the first segment of a new
    /// generation, created
    /// only if absent (of two rewriters, the second gets [`Error::Conflict`]); the older
    /// generations' objects are then deleted (those a failure leaves are ignored, and
    /// deleted by the next rewrite).
    fn replace_whole(&self, path: &Path, data: &[u8]) -> Result<()> {
        lock(&self.tails).remove(path);
        self.forget_listing(path);
        let listing = self.children(path)?;
        let current = current_in(path, &listing)?;
        // In place only over one segment of generation 0 as long as the new bytes (a
        // descriptor, a marker, a version head): a file whose length changes gets a new
        // generation, so that `ends_at` tells the rewrite from the file as it was.
        let generation = match current.last() {
            Some(s) if s.generation > 0 || s.start > 0 || s.len != data.len() as u64 => {
                s.generation + 1
            }
            _ => 0,
        };
        let (store, key) = (self.store.clone(), self.segment_key(path, generation, 0)?);
        let payload = PutPayload::from(data.to_vec());
        let mode = match generation {
            0 => PutMode::Overwrite,
            _ => PutMode::Create,
        };
        self.counts.written(data.len() as u64);
        self.run(Request::Put, path, async move {
            store.put_opts(&key, payload, PutOptions::from(mode)).await
        })?;
        if generation > 0 {
            let older = all_in(&listing);
            self.delete_segments(path, older.iter())?;
        }
        Ok(())
    }
}

/// Locks a mutex, taking over one a panicking thread left: every holder leaves the map and
/// tails whole (each change is one insert, remove or extend).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The keyframe error for an object store's error on `path`.
fn object_error(path: &Path, e: object_store::Error) -> Error {
    use std::io::ErrorKind;
    match e {
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            Error::Conflict {
                path: path.to_path_buf(),
            }
        }
        object_store::Error::NotFound { .. } => {
            Error::io(path, std::io::Error::new(ErrorKind::NotFound, e))
        }
        other => Error::io(path, std::io::Error::other(other)),
    }
}

/// A file appended to through an [`ObjectStorage`]: each sync writes a segment.
struct ObjectAppendFile {
    storage: ObjectStorage,
    path: PathBuf,
    tail: Arc<Mutex<Tail>>,
}

impl fmt::Debug for ObjectAppendFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectAppendFile({})", self.path.display())
    }
}

impl AppendFile for ObjectAppendFile {
    fn append(&mut self, data: &[u8]) -> Result<u64> {
        let mut tail = lock(&self.tail);
        let at = tail.start + tail.bytes.len() as u64;
        tail.bytes.extend_from_slice(data);
        Ok(at)
    }

    fn sync(&mut self) -> Result<()> {
        let (generation, start, bytes) = {
            let tail = lock(&self.tail);
            if tail.bytes.is_empty() {
                return Ok(());
            }
            (tail.generation, tail.start, tail.bytes.clone())
        };
        let len = bytes.len() as u64;
        let (store, key) = (
            self.storage.store.clone(),
            self.storage.segment_key(&self.path, generation, start)?,
        );
        self.storage.counts.written(len);
        let put = self.storage.run(Request::Put, &self.path, async move {
            let opts = PutOptions::from(PutMode::Create);
            store.put_opts(&key, PutPayload::from(bytes), opts).await
        })?;
        if let Some(listed) = lock(&self.storage.listed).get_mut(&self.path)
            && end_of(&listed.segments) == start
        {
            listed.segments.push(Segment {
                generation,
                start,
                len,
                e_tag: put.e_tag.as_deref().map(Arc::from),
            });
        }
        let mut tail = lock(&self.tail);
        tail.start += len;
        tail.bytes.drain(..len as usize);
        Ok(())
    }

    fn len(&self) -> u64 {
        let tail = lock(&self.tail);
        tail.start + tail.bytes.len() as u64
    }
}

impl Storage for ObjectStorage {
    fn create_dir_all(&self, _path: &Path) -> Result<()> {
        Ok(())
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        if self.tail(path).is_some() {
            return Ok(true);
        }
        // A file listed before: confirming its listing is cheaper than listing it again.
        if lock(&self.listed).contains_key(path) && !self.segments(path)?.is_empty() {
            return Ok(true);
        }
        let Listing { objects, folders } = self.children(path)?;
        Ok(!folders.is_empty() || objects.iter().any(|(name, ..)| name != LOCK_OBJECT))
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        let Listing { objects, folders } = self.children(path)?;
        Ok(!folders.is_empty()
            || objects
                .iter()
                .any(|(name, ..)| name != LOCK_OBJECT && segments::parse_name(name).is_none()))
    }

    fn len(&self, path: &Path) -> Result<u64> {
        if let Some(tail) = self.tail(path) {
            let tail = lock(&tail);
            return Ok(tail.start + tail.bytes.len() as u64);
        }
        let segments = self.segments(path)?;
        match segments.is_empty() {
            true => Err(not_found(path)),
            false => Ok(end_of(&segments)),
        }
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Bytes> {
        let end = offset + len as u64;
        if self.tail(path).is_none() {
            return self.read_listed(path, offset..end);
        }
        let segments = self.segments(path)?;
        self.read_with_tail(path, &segments, offset..end)
    }

    fn map(&self, path: &Path) -> Result<Bytes> {
        let segments = self.segments(path)?;
        let stored = end_of(&segments);
        // The unsynced tail belongs to the file only while it continues the segments.
        let end = match self.tail(path) {
            Some(tail) => {
                let tail = lock(&tail);
                match tail.start == stored {
                    true => stored + tail.bytes.len() as u64,
                    false => stored,
                }
            }
            None if segments.is_empty() => return Err(not_found(path)),
            None => stored,
        };
        self.read_with_tail(path, &segments, 0..end)
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn AppendFile>> {
        let tail = match self.tail(path) {
            Some(tail) => tail,
            None => {
                let segments = self.segments(path)?;
                let tail = Arc::new(Mutex::new(Tail {
                    generation: segments.last().map_or(0, |s| s.generation),
                    start: end_of(&segments),
                    bytes: Vec::new(),
                }));
                lock(&self.tails)
                    .entry(path.to_path_buf())
                    .or_insert(tail)
                    .clone()
            }
        };
        Ok(Box::new(ObjectAppendFile {
            storage: self.clone(),
            path: path.to_path_buf(),
            tail,
        }))
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        self.replace_whole(path, data)
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        lock(&self.tails).remove(path);
        self.forget_listing(path);
        let listing = self.children(path)?;
        if len == 0 {
            return self.delete_every_segment(path, all_in(&listing));
        }
        let segments = current_in(path, &listing)?;
        if let Some(s) = segments
            .iter()
            .find(|s| s.start < len && len < s.start + s.len)
        {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!(
                    "cutting a file back to {len}, inside its segment at {}",
                    s.start
                ),
            });
        }
        self.delete_segments(path, segments.iter().filter(|s| s.start >= len))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let unsynced = lock(&self.tails).remove(path).is_some();
        self.forget_listing(path);
        let segments = all_in(&self.children(path)?);
        if segments.is_empty() && !unsynced {
            return Err(not_found(path));
        }
        self.delete_every_segment(path, segments)
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let Listing { objects, folders } = self.children(dir)?;
        let mut names: Vec<String> = folders;
        names.extend(
            objects
                .into_iter()
                .map(|(name, ..)| name)
                .filter(|name| name != LOCK_OBJECT),
        );
        for path in lock(&self.tails).keys() {
            if path.parent() == Some(dir)
                && let Some(name) = path.file_name().and_then(|n| n.to_str())
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn sync_dir(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let guard = self.create_lock(path)?;
        self.forget_settled();
        Ok(guard)
    }

    fn lock_shared(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let guard = self.wait_for_lock(path)?;
        self.forget_settled();
        Ok(guard)
    }

    fn lock_exclusive(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let guard = self.wait_for_lock(path)?;
        self.forget_settled();
        Ok(guard)
    }

    fn overwrite(&self, path: &Path, data: &[u8]) -> Result<()> {
        self.replace_whole(path, data)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        // Unsynced bytes of either stay with an append file of the old name, as on a disk.
        lock(&self.tails).retain(|path, _| path != from && path != to);
        self.forget_listing(from);
        self.forget_listing(to);
        let segments = self.segments(from)?;
        if segments.is_empty() {
            return Err(not_found(from));
        }
        self.delete_every_segment(to, all_in(&self.children(to)?))?;
        for s in &segments {
            let (store, source, target) = (
                self.store.clone(),
                self.segment_key(from, s.generation, s.start)?,
                self.segment_key(to, 0, s.start)?,
            );
            self.run(Request::Copy, from, async move {
                store.copy(&source, &target).await
            })?;
        }
        self.delete_every_segment(from, all_in(&self.children(from)?))
    }

    fn locks_outlive_their_process(&self) -> bool {
        true
    }

    fn read_at_least(&self, path: &Path, offset: u64, need: usize, len: usize) -> Result<Bytes> {
        self.read_to_segment_end(path, offset, need, len)
    }

    fn read_window(&self) -> Option<u64> {
        // Through a local cache a segment is got whole anyway, once: packs are read whole,
        // so each cached segment is read from the cache once, not once per window.
        self.cache.is_none().then_some(self.read_window)
    }

    fn map_prefix(&self, path: &Path, need: u64) -> Result<Bytes> {
        self.map_remembered(path, need)
    }

    fn forget(&self, path: &Path) {
        self.forget_remembered(path)
    }

    fn read_small(&self, path: &Path) -> Result<Option<Bytes>> {
        self.read_first_segment(path)
    }

    fn first_name(&self, dir: &Path) -> Result<Option<String>> {
        self.first_listed(dir)
    }

    fn generation(&self, path: &Path) -> Result<u64> {
        self.current_generation(path)
    }

    fn ends_at(&self, path: &Path, len: u64, generation: u64) -> Result<bool> {
        self.nothing_past(path, len, generation)
    }

    fn rewrite_in_place(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        // A written object is durable: there is nothing to write again, only to check.
        if self.read_at(path, offset, data.len())? == data {
            Ok(())
        } else {
            Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!("rewriting other bytes in place at {offset}"),
            })
        }
    }
}

#[cfg(test)]
mod tests;
