//! Locks on the simulated disk, behaving like `flock`: held per guard, even within one
//! process; shared or exclusive, waited for or tried.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;

use reeldb_keyframe::storage::LockGuard;
use reeldb_keyframe::{Error, Result};

use super::SimStorage;
use crate::plan::OpKind;

/// Which locks are held, by path.
#[derive(Debug, Default)]
pub(super) struct Locks {
    exclusive: HashMap<PathBuf, bool>,
    shared: HashMap<PathBuf, usize>,
}

impl SimStorage {
    /// The lock table.
    fn locks(&self) -> MutexGuard<'_, Locks> {
        self.shared.locks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the lock `path` (creating the file if need be), `exclusive` or shared; waits
    /// for it to be free if `wait`, else fails with `Error::Locked`.
    pub(super) fn take_lock(
        &self,
        path: &Path,
        exclusive: bool,
        wait: bool,
    ) -> Result<Box<dyn LockGuard>> {
        {
            let mut disk = self.begin(OpKind::Lock, path)?;
            if disk.file(path).is_err() {
                disk.create(path)?;
            }
        }
        let mut locks = self.locks();
        loop {
            let held_ex = locks.exclusive.get(path).copied().unwrap_or(false);
            let held_sh = locks.shared.get(path).copied().unwrap_or(0) > 0;
            let free = !held_ex && (!exclusive || !held_sh);
            if free {
                break;
            }
            if !wait {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
            locks = self
                .shared
                .released
                .wait(locks)
                .unwrap_or_else(|e| e.into_inner());
        }
        if exclusive {
            locks.exclusive.insert(path.to_path_buf(), true);
        } else {
            *locks.shared.entry(path.to_path_buf()).or_default() += 1;
        }
        Ok(Box::new(SimLock {
            sim: self.clone(),
            path: path.to_path_buf(),
            exclusive,
        }))
    }
}

/// A held lock, released when dropped.
#[derive(Debug)]
struct SimLock {
    sim: SimStorage,
    path: PathBuf,
    exclusive: bool,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut locks = self.sim.locks();
        if self.exclusive {
            locks.exclusive.remove(&self.path);
        } else if let Some(n) = locks.shared.get_mut(&self.path) {
            *n = n.saturating_sub(1);
        }
        drop(locks);
        self.sim.shared.released.notify_all();
    }
}
