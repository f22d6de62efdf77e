//! [`FaultyStorage`]: any [`Storage`] with its operations counted and chosen ones failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use reeldb_keyframe::Result;
use reeldb_keyframe::storage::{AppendFile, LockGuard, Storage};

use crate::plan::{FaultPlan, OpKind};

/// Wraps a storage so that the operation its [`FaultPlan`] names fails with EIO or ENOSPC
/// (before reaching the inner storage, so a failed operation changes nothing).
#[derive(Debug, Clone)]
pub struct FaultyStorage<S> {
    inner: S,
    plan: Arc<FaultPlan>,
}

impl<S: Storage> FaultyStorage<S> {
    /// `inner` with a fresh plan that fails nothing yet.
    pub fn new(inner: S) -> Self {
        FaultyStorage {
            inner,
            plan: Arc::new(FaultPlan::new()),
        }
    }

    /// The plan: choose the failing operation, read the counts.
    pub fn plan(&self) -> &Arc<FaultPlan> {
        &self.plan
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn AppendFile>,
    path: PathBuf,
    plan: Arc<FaultPlan>,
}

impl AppendFile for FaultyFile {
    fn append(&mut self, data: &[u8]) -> Result<u64> {
        self.plan.check(OpKind::Write, &self.path)?;
        self.inner.append(data)
    }

    fn sync(&mut self) -> Result<()> {
        self.plan.check(OpKind::Sync, &self.path)?;
        self.inner.sync()
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        self.plan.check(OpKind::Write, path)?;
        self.inner.create_dir_all(path)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        self.plan.check(OpKind::Read, path)?;
        self.inner.exists(path)
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        self.plan.check(OpKind::Read, path)?;
        self.inner.is_dir(path)
    }

    fn len(&self, path: &Path) -> Result<u64> {
        self.plan.check(OpKind::Read, path)?;
        self.inner.len(path)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Bytes> {
        self.plan.check(OpKind::Read, path)?;
        self.inner.read_at(path, offset, len)
    }

    fn map(&self, path: &Path) -> Result<Bytes> {
        self.plan.check(OpKind::Read, path)?;
        self.inner.map(path)
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn AppendFile>> {
        self.plan.check(OpKind::Write, path)?;
        Ok(Box::new(FaultyFile {
            inner: self.inner.open_append(path)?,
            path: path.to_path_buf(),
            plan: self.plan.clone(),
        }))
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        self.plan.check(OpKind::Write, path)?;
        self.inner.write_atomic(path, data)
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        self.plan.check(OpKind::Write, path)?;
        self.inner.truncate(path, len)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.plan.check(OpKind::Write, path)?;
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.plan.check(OpKind::Read, dir)?;
        self.inner.list(dir)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.plan.check(OpKind::Sync, dir)?;
        self.inner.sync_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        self.plan.check(OpKind::Lock, path)?;
        self.inner.try_lock(path)
    }

    fn lock_shared(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        self.plan.check(OpKind::Lock, path)?;
        self.inner.lock_shared(path)
    }

    fn lock_exclusive(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        self.plan.check(OpKind::Lock, path)?;
        self.inner.lock_exclusive(path)
    }

    fn overwrite(&self, path: &Path, data: &[u8]) -> Result<()> {
        self.plan.check(OpKind::Write, path)?;
        self.inner.overwrite(path, data)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.plan.check(OpKind::Write, from)?;
        self.inner.rename(from, to)
    }

    fn rewrite_in_place(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        // A write and a sync: either may be the one that fails.
        self.plan.check(OpKind::Write, path)?;
        self.plan.check(OpKind::Sync, path)?;
        self.inner.rewrite_in_place(path, offset, data)
    }

    fn locks_outlive_their_process(&self) -> bool {
        self.inner.locks_outlive_their_process()
    }

    fn read_at_least(&self, path: &Path, offset: u64, need: usize, len: usize) -> Result<Bytes> {
        self.plan.check(OpKind::Read, path)?;
        self.inner.read_at_least(path, offset, need, len)
    }

    fn read_window(&self) -> Option<u64> {
        self.inner.read_window()
    }

    fn read_small(&self, path: &Path) -> Result<Option<Bytes>> {
        self.plan.check(OpKind::Read, path)?;
        self.inner.read_small(path)
    }

    fn first_name(&self, dir: &Path) -> Result<Option<String>> {
        self.plan.check(OpKind::Read, dir)?;
        self.inner.first_name(dir)
    }

    fn generation(&self, path: &Path) -> Result<u64> {
        self.plan.check(OpKind::Read, path)?;
        self.inner.generation(path)
    }

    fn ends_at(&self, path: &Path, len: u64, generation: u64) -> Result<bool> {
        self.plan.check(OpKind::Read, path)?;
        self.inner.ends_at(path, len, generation)
    }
}
