//! [`SimStorage`]: an in-memory disk that tracks what is visible apart from what is durable,
//! and yields the images a power loss could leave.
//!
//! The model, stricter than any real file system:
//! - An append or overwrite is visible at once and durable only after `sync` of its file.
//!   A sync that fails loses the file's unsynced writes for good (as Linux marks the pages
//!   clean after a writeback error: "fsyncgate"); they stay visible until the power goes.
//! - A creation, rename or removal is visible at once and durable only after `sync_dir` of the
//!   directory holding the name (a rename, of the directory holding its target).
//! - A power-loss image ([`SimStorage::power_loss_image`]) keeps the durable state, a random
//!   prefix of the unsynced namespace operations (file systems journal them in order) and, per
//!   file, a random ordered subset of its unsynced writes, the last one torn: cut short, or
//!   with its tail zero-filled where it extended the file (where it overwrote bytes, they keep
//!   their old value). Bytes between the old end and a later applied write read as zeros.
//! - A crash ([`SimStorage::crash_after`]) freezes the disk after a number of mutating steps:
//!   every later operation fails, as if the process died there.
//!
//! `write_atomic`, `truncate` and `overwrite` are carried out as the steps `LocalStorage`
//! takes (create, write, sync, rename, sync of the directory), so a crash can fall between
//! them. Locks behave like `flock`: held per guard, even within one process.

mod disk;
mod image;
mod lock;
mod storage;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use reeldb_keyframe::{Error, Result};

use crate::plan::{FaultPlan, OpKind};
use disk::{Disk, Entry, Inode, Observer};
use lock::Locks;

/// What clones of a [`SimStorage`] share: the disk, the fault plan and the locks.
#[derive(Debug)]
struct Shared {
    disk: Mutex<Disk>,
    plan: FaultPlan,
    locks: Mutex<Locks>,
    released: Condvar,
}

/// An in-memory disk with power-loss semantics; see the module documentation. Clones share
/// the same disk.
#[derive(Debug, Clone)]
pub struct SimStorage {
    shared: Arc<Shared>,
}

impl Default for SimStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl SimStorage {
    /// An empty disk holding only the root directory.
    pub fn new() -> Self {
        Self::from_disk(Disk::empty())
    }

    /// A storage over `disk`, with a fresh fault plan and no locks held.
    fn from_disk(disk: Disk) -> Self {
        SimStorage {
            shared: Arc::new(Shared {
                disk: Mutex::new(disk),
                plan: FaultPlan::new(),
                locks: Mutex::new(Locks::default()),
                released: Condvar::new(),
            }),
        }
    }

    /// The disk, locked.
    fn disk(&self) -> MutexGuard<'_, Disk> {
        // Only a panicking test assertion can poison this lock; the disk stays consistent
        // because every mutation completes under it.
        self.shared.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault plan: every operation is counted there, and the one it names fails. A failed
    /// sync loses the file's unsynced writes (see the module documentation).
    pub fn plan(&self) -> &FaultPlan {
        &self.shared.plan
    }

    /// Mutating steps taken so far (each a possible crash point).
    pub fn steps(&self) -> u64 {
        self.disk().steps
    }

    /// Lets `steps` more mutating steps happen, then freezes the disk: that step and every
    /// later operation fail, as if the process died just before it.
    pub fn crash_after(&self, steps: u64) {
        let mut disk = self.disk();
        disk.crash_at = Some(disk.steps + steps);
    }

    /// Calls `observer` with a frozen copy of the disk before every mutating step from now on
    /// (so with every crash point); the copy is independent of this disk.
    pub fn observe(&self, observer: impl Fn(SimStorage) + Send + Sync + 'static) {
        self.disk().observer = Some(Observer(Arc::new(observer)));
    }

    /// The disk as it stands now, independent of this one (pending writes included).
    pub fn snapshot(&self) -> SimStorage {
        Self::from_disk(self.disk().frozen())
    }

    /// True once a planned crash has happened.
    pub fn is_crashed(&self) -> bool {
        self.disk().crashed
    }

    /// Limits the bytes the disk holds; writes past it fail with ENOSPC. `None` lifts it.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.disk().capacity = bytes;
    }

    /// Unsynced writes and namespace operations: what a power loss may drop.
    pub fn unsynced(&self) -> usize {
        let disk = self.disk();
        disk.pending_ns.len() + disk.files.values().map(|f| f.pending.len()).sum::<usize>()
    }

    /// A hash of everything visible (names and contents), to recognise identical images.
    pub fn digest(&self) -> u128 {
        let disk = self.disk();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (path, entry) in &disk.visible {
            h.update(path.as_os_str().as_encoded_bytes());
            match entry {
                Entry::Dir => h.update(&[0xFF]),
                Entry::File(ino) => {
                    let data = &disk.files[ino].visible;
                    h.update(&(data.len() as u64).to_le_bytes());
                    h.update(data);
                }
            }
        }
        h.digest128()
    }

    /// Every file the namespace shows, in path order.
    pub fn files(&self) -> Vec<PathBuf> {
        let disk = self.disk();
        disk.visible
            .iter()
            .filter(|(_, e)| matches!(e, Entry::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// What `path` holds as the next read would see it, if it is a file.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.disk();
        match disk.visible.get(path) {
            Some(Entry::File(ino)) => Some(disk.files[ino].visible.clone()),
            _ => None,
        }
    }

    /// Replaces what the file `path` holds with `data`, visible and durable at once, as damage
    /// on the medium would: no step is counted and no pending write survives. Panics if `path`
    /// is not a file (a test names the files it damages from [`Self::files`]).
    pub fn damage(&self, path: &Path, data: Vec<u8>) {
        let mut disk = self.disk();
        let Some(Entry::File(ino)) = disk.visible.get(path).copied() else {
            panic!("{} is not a file of the simulated disk", path.display());
        };
        let file = disk.files.entry(ino).or_default();
        file.visible = data.clone();
        file.durable = data;
        file.pending.clear();
    }

    /// Counts an operation against the fault plan and the crash state.
    fn begin(&self, kind: OpKind, path: &Path) -> Result<MutexGuard<'_, Disk>> {
        let disk = self.disk();
        disk.alive(path)?;
        self.shared.plan.check(kind, path)?;
        Ok(disk)
    }

    /// Like [`Self::begin`] for a sync: a failed sync still takes effect (it loses writes).
    fn begin_sync(&self, path: &Path) -> Result<(MutexGuard<'_, Disk>, Option<Error>)> {
        let disk = self.disk();
        disk.alive(path)?;
        let failed = self.shared.plan.check(OpKind::Sync, path).err();
        Ok((disk, failed))
    }

    /// Syncs file `ino` (named `path`), counted against the plan; a failed sync loses its
    /// writes.
    fn sync_inode(&self, path: &Path, ino: Inode) -> Result<()> {
        let (mut disk, failed) = self.begin_sync(path)?;
        disk.sync_file(path, ino, failed.is_some())?;
        failed.map_or(Ok(()), Err)
    }
}
