//! Which storage operation fails, and how: the fault plan shared by [`crate::SimStorage`] and
//! [`crate::FaultyStorage`].

use std::path::Path;
use std::sync::Mutex;

use reeldb_keyframe::{Error, Result};

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `EIO`: the device failed.
    Eio,
    /// `ENOSPC`: the file system is full.
    Enospc,
}

impl Fault {
    /// The `std::io::Error` this fault raises.
    pub fn io_error(self) -> std::io::Error {
        match self {
            Fault::Eio => std::io::Error::from_raw_os_error(5),
            Fault::Enospc => std::io::Error::from_raw_os_error(28),
        }
    }
}

/// What an operation does, so a plan (and the simulated disk) can tell syncs from the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Reads, listings, lengths, existence checks.
    Read,
    /// Appends, creations, renames, removals, truncations, overwrites.
    Write,
    /// `fdatasync` of a file or `fsync` of a directory.
    Sync,
    /// Taking a lock.
    Lock,
}

/// A named point at which the process aborts, as a SIGKILL there would: just before the
/// `nth` (from 1) operation of `kind` on a path starting with `path`. Written and parsed as
/// `kind:path:nth`, e.g. `sync:catalog/versions.idx:1` (kind `write` or `sync`; an empty
/// path matches every file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillPoint {
    /// The kind of operation.
    pub kind: OpKind,
    /// The start of the paths it applies to.
    pub path: String,
    /// Which matching operation, counting from 1.
    pub nth: u64,
}

impl KillPoint {
    /// Parses `kind:path:nth`.
    pub fn parse(spec: &str) -> Option<KillPoint> {
        let (kind, rest) = spec.split_once(':')?;
        let (path, nth) = rest.rsplit_once(':')?;
        let kind = match kind {
            "write" => OpKind::Write,
            "sync" => OpKind::Sync,
            _ => return None,
        };
        Some(KillPoint {
            kind,
            path: path.to_string(),
            nth: nth.parse().ok().filter(|&n| n >= 1)?,
        })
    }

    fn matches(&self, kind: OpKind, path: &Path) -> bool {
        kind == self.kind && path.to_string_lossy().starts_with(&self.path)
    }
}

#[derive(Debug, Default)]
struct PlanState {
    ops: u64,
    fail_at: Option<(u64, Fault, bool)>,
    failures: u64,
    first_failed: Option<OpKind>,
    kill: Option<KillPoint>,
    kill_matches: u64,
}

/// Counts every storage operation and fails the chosen one (once), or it and every later one
/// (persistently).
#[derive(Debug, Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
}

impl FaultPlan {
    /// A plan that counts operations and fails none.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails operation number `op` (counting from 0 since the plan was made) with `fault`;
    /// when `persistent`, every later operation fails too.
    pub fn fail_at(&self, op: u64, fault: Fault, persistent: bool) {
        let mut s = self.lock();
        s.fail_at = Some((op, fault, persistent));
    }

    /// Aborts the process at `point` (see [`KillPoint`]): for kill-loop children.
    pub fn kill_at(&self, point: KillPoint) {
        let mut s = self.lock();
        s.kill = Some(point);
        s.kill_matches = 0;
    }

    /// Stops injecting faults (operations are still counted).
    pub fn heal(&self) {
        self.lock().fail_at = None;
    }

    /// Operations counted so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Faults injected so far.
    pub fn failures(&self) -> u64 {
        self.lock().failures
    }

    /// The kind of the first operation that failed, if any did.
    pub fn first_failed(&self) -> Option<OpKind> {
        self.lock().first_failed
    }

    /// Counts one operation on `path` and returns the injected error if this one must fail.
    pub fn check(&self, kind: OpKind, path: &Path) -> Result<()> {
        let mut s = self.lock();
        let op = s.ops;
        s.ops += 1;
        if let Some(nth) = s
            .kill
            .as_ref()
            .filter(|k| k.matches(kind, path))
            .map(|k| k.nth)
        {
            s.kill_matches += 1;
            if s.kill_matches == nth {
                // The point of a kill point: die here, with no unwinding and no destructors.
                std::process::abort();
            }
        }
        match s.fail_at {
            Some((at, fault, persistent)) if op == at || (persistent && op > at) => {
                s.failures += 1;
                s.first_failed.get_or_insert(kind);
                Err(Error::io(path, fault.io_error()))
            }
            _ => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PlanState> {
        // A panic while holding this lock can only come from a test assertion elsewhere; the
        // counters stay meaningful, so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kill_point_parses_from_kind_path_and_count() {
        assert_eq!(
            KillPoint::parse("sync:catalog/versions.idx:2"),
            Some(KillPoint {
                kind: OpKind::Sync,
                path: "catalog/versions.idx".into(),
                nth: 2
            })
        );
        assert_eq!(
            KillPoint::parse("write::1").map(|k| k.path),
            Some(String::new())
        );
        for bad in ["read:x:1", "sync:x:0", "sync:x", "sync:x:many"] {
            assert_eq!(KillPoint::parse(bad), None, "{bad}");
        }
    }
}
