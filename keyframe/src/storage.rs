//! The one storage trait all file I/O goes through, and its local-filesystem implementation.
//!
//! Files are append-only while a writer holds the store lock and immutable to readers below the
//! lengths a committed version records; nothing a reader may map is ever truncated below that.
//! Tests wrap [`Storage`] to inject faults and simulate crashes; `object_storage::ObjectStorage`
//! (feature `object-store`) implements it on object stores.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, Result};

/// An open file that only grows, written by the single writer.
pub trait AppendFile: Send + Debug {
    /// Appends `data` at the end and returns the offset where it starts.
    fn append(&mut self, data: &[u8]) -> Result<u64>;
    /// Makes every appended byte (and the file's length) durable.
    fn sync(&mut self) -> Result<()>;
    /// The current length, including unsynced appends.
    fn len(&self) -> u64;
    /// True when nothing has been written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A held lock; dropping it releases the lock.
pub trait LockGuard: Send + Debug {
    /// Fails with [`Error::LockLost`] when the lock may no longer be held: on an object
    /// store a lock is a lease that can expire. A local lock is held until dropped.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// File operations on a store directory. Every path is relative to the store root.
pub trait Storage: Send + Sync + Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> Result<()>;
    /// True when `path` exists.
    fn exists(&self, path: &Path) -> Result<bool>;
    /// True when `path` is a directory.
    fn is_dir(&self, path: &Path) -> Result<bool>;
    /// The file's current length.
    fn len(&self, path: &Path) -> Result<u64>;
    /// Reads `len` bytes at `offset`; fails if the file is shorter.
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Bytes>;
    /// A read-only view of the whole file as it is now (memory-mapped where possible).
    fn map(&self, path: &Path) -> Result<Bytes>;
    /// Opens `path` for appending, creating it if missing.
    fn open_append(&self, path: &Path) -> Result<Box<dyn AppendFile>>;
    /// Writes a whole small file atomically: temporary file, sync, rename, directory sync.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()>;
    /// Cuts a file back to `len` bytes (only the writer does this, and only above committed data).
    fn truncate(&self, path: &Path, len: u64) -> Result<()>;
    /// Deletes a file.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Names of the entries of a directory (files and directories), sorted.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// Makes the directory's entries (creations, renames, deletions) durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Takes an exclusive lock on `path` without waiting; [`Error::Locked`] if it is held.
    fn try_lock(&self, path: &Path) -> Result<Box<dyn LockGuard>>;
    /// Takes a shared lock on `path` (created if missing), waiting while an exclusive lock is
    /// held. A lock held by a process that dies is released with it.
    fn lock_shared(&self, path: &Path) -> Result<Box<dyn LockGuard>>;
    /// Takes an exclusive lock on `path` (created if missing), waiting while any other lock
    /// is held.
    fn lock_exclusive(&self, path: &Path) -> Result<Box<dyn LockGuard>>;
    /// Replaces the contents of `path` in place (creating it), without syncing: for small
    /// files whose loss in a crash does not matter, such as reader leases.
    fn overwrite(&self, path: &Path, data: &[u8]) -> Result<()>;
    /// Renames `from` to `to`, replacing `to` (not synced).
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Writes `data` at `offset` of the existing file `path` over bytes that already hold
    /// exactly `data`, then syncs the file. It changes nothing a reader sees (a crash part-way
    /// leaves the same bytes); it makes those bytes durable again after a failed sync may have
    /// dropped them from the write-back cache while leaving them visible ("fsyncgate").
    fn rewrite_in_place(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()>;
    /// True when a lock outlives a process that dies holding it, as on an object store
    /// (where a lock is an object). Such locks cannot tell live readers from dead ones, so
    /// the `reeldb` crate's readers publish no leases there, and what it purges it retires
    /// for a retention period (or, for a rewind, leaves to the checks of what is read).
    fn locks_outlive_their_process(&self) -> bool {
        false
    }
    /// Reads at least `need` and at most `len` bytes of `path` from `offset`: all `len`
    /// unless stopping earlier saves a request (on an object store, at the end of the
    /// segment holding the last byte needed, when the rest lies in other segments). How a
    /// window of a pack is read ([`Storage::read_window`]).
    fn read_at_least(&self, path: &Path, offset: u64, need: usize, len: usize) -> Result<Bytes> {
        let _ = need;
        self.read_at(path, offset, len)
    }
    /// The size of the aligned windows in which readers of records in large files (packs)
    /// should read them, or `None` to map such a file whole. A local disk maps (its page
    /// cache reads what is touched); an object store reads windows, as a whole-file get of a
    /// large pack fetches far more than a point read needs.
    fn read_window(&self) -> Option<u64> {
        None
    }
    /// At least the first `need` bytes of `path`, a file only ever appended to whose
    /// records each reference checks (a pack, a node log): as [`Storage::map`], except
    /// that the storage may answer from what it learned of the file earlier, in this
    /// process or, through a local cache, in another, without asking its backing store.
    /// What it returns may then be stale (the file removed and written again since), so a
    /// caller whose check of a record fails calls [`Storage::forget`] and reads once more.
    fn map_prefix(&self, path: &Path, need: u64) -> Result<Bytes> {
        let _ = need;
        self.map(path)
    }
    /// Forgets what this storage learned of `path` (here and in a local cache), so the
    /// next read of it asks the backing store. Nothing to forget on a local disk.
    fn forget(&self, path: &Path) {
        let _ = path;
    }
    /// The bytes of `path`, a file written whole ([`Storage::write_atomic`],
    /// [`Storage::overwrite`]) and never appended to, or `None` when there is no such file:
    /// how a small file is read in one request, with no listing. Where files are kept as
    /// several objects only the first is read, so a file written otherwise may come back
    /// cut short: callers read only files that carry their own length or checksum.
    fn read_small(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.map(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
    /// The first name directly in `dir` in byte order, `None` when there is none (or no
    /// `dir`): on an object store one listing request however many names `dir` holds.
    fn first_name(&self, dir: &Path) -> Result<Option<String>> {
        if !self.exists(dir)? {
            return Ok(None);
        }
        Ok(self.list(dir)?.into_iter().next())
    }
    /// A number naming what `path` holds now: it changes when the file is written whole
    /// again as new objects, never as it is appended to (0 where a rewrite replaces the
    /// file in place).
    fn generation(&self, _path: &Path) -> Result<u64> {
        Ok(0)
    }
    /// Whether `path`, in generation `generation` (see [`Storage::generation`]), still
    /// ends at `len`: false once bytes were appended past `len` (synced or not, through
    /// this storage) or the file was written whole again. On an object store one listing
    /// request of what lies past `len`, however long the file (a file of generation 0 past
    /// 4 GiB is listed whole); it does not tell a file cut back below `len` (the engine
    /// never cuts committed entries off versions.idx, the one file it asks this of: a
    /// rewind writes it whole, as a new generation).
    fn ends_at(&self, path: &Path, len: u64, generation: u64) -> Result<bool> {
        Ok(self.generation(path)? == generation && self.len(path)? == len)
    }
}

/// [`Storage`] on a local directory, reading through memory maps.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Storage rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage { root: root.into() }
    }

    /// The directory this storage lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &Path) -> PathBuf {
        self.root.join(path)
    }

    /// Opens (creating) a file that exists to be locked.
    fn lock_file(&self, path: &Path) -> Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.full(path))
            .map_err(|e| Error::io(path, e))
    }
}

#[derive(Debug)]
struct LocalAppendFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl AppendFile for LocalAppendFile {
    fn append(&mut self, data: &[u8]) -> Result<u64> {
        let at = self.len;
        self.file
            .write_all(data)
            .map_err(|e| Error::io(&self.path, e))?;
        self.len += data.len() as u64;
        Ok(at)
    }

    fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// A held `flock` lock, released when dropped.
#[derive(Debug)]
struct LocalLock {
    file: File,
}

impl LockGuard for LocalLock {}

impl Drop for LocalLock {
    /// Unlocks explicitly rather than by closing the file: a process spawned by another thread
    /// holds a copy of every descriptor from its fork until its exec, and a `flock` lock lasts
    /// until the last copy closes, so closing alone could leave the lock held a moment after
    /// the guard is gone (a writer reopened at once would find the store locked). Unlocking
    /// releases it through any copy. A failure leaves closing to release it.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// A memory map that owns its mapping, so it can back [`Bytes`].
struct Mapped(memmap2::Mmap);

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: a mapped file must not change under the map. ReelDB files are append-only and the
    // single writer never truncates or rewrites bytes below the length a readable version
    // records (committed, not purged, or purged but still pinned by a live reader's lease);
    // readers only touch bytes below the lengths of versions they pin, so their pages never
    // change or vanish. The files of an object store's local cache, also mapped through here,
    // are created under a name of their own, renamed into place and then never written:
    // evicting or replacing one unlinks it, which leaves a live map whole.
    unsafe { memmap2::Mmap::map(file) }
}

impl Storage for LocalStorage {
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        std::fs::create_dir_all(self.full(path)).map_err(|e| Error::io(path, e))
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        self.full(path).try_exists().map_err(|e| Error::io(path, e))
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        Ok(self.full(path).is_dir())
    }

    fn len(&self, path: &Path) -> Result<u64> {
        std::fs::metadata(self.full(path))
            .map(|m| m.len())
            .map_err(|e| Error::io(path, e))
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let file = File::open(self.full(path)).map_err(|e| Error::io(path, e))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io(path, e))?;
        Ok(Bytes::from(buf))
    }

    fn map(&self, path: &Path) -> Result<Bytes> {
        let file = File::open(self.full(path)).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            return Ok(Bytes::new());
        }
        let map = map_file(&file).map_err(|e| Error::io(path, e))?;
        Ok(Bytes::from_owner(Mapped(map)))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.full(path))
            .map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Box::new(LocalAppendFile {
            path: path.to_path_buf(),
            file,
            len,
        }))
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        let full = self.full(path);
        let tmp = full.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(|e| Error::io(path, e))?;
        file.write_all(data).map_err(|e| Error::io(path, e))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        std::fs::rename(&tmp, &full).map_err(|e| Error::io(path, e))?;
        self.sync_dir(path.parent().unwrap_or(Path::new("")))
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .open(self.full(path))
            .map_err(|e| Error::io(path, e))?;
        file.set_len(len).map_err(|e| Error::io(path, e))?;
        file.sync_all().map_err(|e| Error::io(path, e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(self.full(path)).map_err(|e| Error::io(path, e))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.full(dir)).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let d = File::open(self.full(dir)).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))
    }

    fn try_lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let file = self.lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(LocalLock { file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
                path: path.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }

    fn lock_shared(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let file = self.lock_file(path)?;
        file.lock_shared().map_err(|e| Error::io(path, e))?;
        Ok(Box::new(LocalLock { file }))
    }

    fn lock_exclusive(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let file = self.lock_file(path)?;
        file.lock().map_err(|e| Error::io(path, e))?;
        Ok(Box::new(LocalLock { file }))
    }

    fn overwrite(&self, path: &Path, data: &[u8]) -> Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.full(path))
            .map_err(|e| Error::io(path, e))?;
        file.write_all(data).map_err(|e| Error::io(path, e))?;
        file.set_len(data.len() as u64)
            .map_err(|e| Error::io(path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(self.full(from), self.full(to)).map_err(|e| Error::io(from, e))
    }

    fn rewrite_in_place(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let file = OpenOptions::new()
            .write(true)
            .open(self.full(path))
            .map_err(|e| Error::io(path, e))?;
        file.write_all_at(data, offset)
            .map_err(|e| Error::io(path, e))?;
        file.sync_data().map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_read_back_and_truncation_cuts_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        let p = Path::new("f");
        let mut f = s.open_append(p).unwrap();
        assert_eq!(f.append(b"hello ").unwrap(), 0);
        assert_eq!(f.append(b"world").unwrap(), 6);
        f.sync().unwrap();
        assert_eq!(&s.read_at(p, 6, 5).unwrap()[..], b"world");
        assert_eq!(&s.map(p).unwrap()[..], b"hello world");
        s.truncate(p, 5).unwrap();
        assert_eq!(s.len(p).unwrap(), 5);
        assert!(s.read_at(p, 3, 5).is_err(), "reading past the end fails");
    }

    #[test]
    fn an_atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.write_atomic(Path::new("x"), b"one").unwrap();
        s.write_atomic(Path::new("x"), b"two!").unwrap();
        assert_eq!(&s.map(Path::new("x")).unwrap()[..], b"two!");
        assert_eq!(s.list(Path::new("")).unwrap(), vec!["x".to_string()]);
    }

    #[test]
    fn the_lock_is_exclusive_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        let held = s.try_lock(Path::new("LOCK")).unwrap();
        assert!(matches!(
            s.try_lock(Path::new("LOCK")),
            Err(Error::Locked { .. })
        ));
        drop(held);
        assert!(s.try_lock(Path::new("LOCK")).is_ok());
    }
}
