//! Reader leases: the versions this process's snapshots hold, published where maintenance
//! (rewind, and later expiry and garbage collection) looks before it purges anything.
//!
//! A process with live snapshots owns one lease file, `leases/<pid>-<nonce>.lease`, locked
//! exclusively for as long as the process holds it: a process that dies releases its lock,
//! and maintenance then treats its lease as stale and removes it. Pinning a version that this
//! process does not pin yet happens under a shared lock on `leases/GATE`: the pin is
//! published, then the version is checked still to exist. Maintenance holds the gate
//! exclusively while it reads the leases and purges, so every version a reader uses was
//! either seen pinned by maintenance or already gone when the reader checked.
//!
//! On storage whose locks outlive their process (an object store) nothing is published:
//! readers there write nothing; maintenance there retires files for a retention period
//! instead of deleting them (`maintenance::retire`), and a rewind there sees only the pins
//! of its own handle (`maintenance::rewind`).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use reeldb_keyframe::format::{Decoder, Encoder, checksum};
use reeldb_keyframe::storage::{LockGuard, Storage};

use crate::error::{Error, Result};

/// Directory of the lease files and the gate.
pub const LEASE_DIR: &str = "leases";
const GATE: &str = "leases/GATE";
const LEASE_MAGIC: [u8; 8] = *b"REELLEAS";
const LEASE_SUFFIX: &str = ".lease";
const NEW_SUFFIX: &str = ".new";

/// This process's leases on one store.
pub(crate) struct Leases {
    storage: Arc<dyn Storage>,
    /// False on storage whose locks outlive their process (object stores): pins are then
    /// counted here only and nothing is written, since a lease there could not tell a live
    /// reader from a dead one (maintenance retires files there instead: `maintenance::retire`;
    /// a rewind there purges versions other processes may hold: `maintenance::rewind`).
    publishing: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The lease file and the lock that keeps it live, once something was pinned.
    file: Option<(PathBuf, Box<dyn LockGuard>)>,
    /// Pinned versions and how many handles pin each.
    pinned: BTreeMap<u64, usize>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").finish_non_exhaustive()
    }
}

/// A version held by a reader. The pin is released when the last clone is dropped.
#[derive(Debug)]
pub(crate) struct Pin {
    leases: Arc<Leases>,
    version: u64,
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.leases.release(self.version);
    }
}

fn gate(storage: &dyn Storage, shared: bool) -> Result<Box<dyn LockGuard>> {
    storage.create_dir_all(Path::new(LEASE_DIR))?;
    Ok(if shared {
        storage.lock_shared(Path::new(GATE))?
    } else {
        storage.lock_exclusive(Path::new(GATE))?
    })
}

fn encode(pinned: &BTreeMap<u64, usize>) -> Vec<u8> {
    let mut e = Encoder::new();
    e.raw(&LEASE_MAGIC).u64(pinned.len() as u64);
    for v in pinned.keys() {
        e.u64(*v);
    }
    let mut out = e.finish();
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<BTreeSet<u64>> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if checksum(body).to_le_bytes() != sum {
        return None;
    }
    let mut d = Decoder::new(body);
    if d.fixed::<8>().ok()? != LEASE_MAGIC {
        return None;
    }
    let n = d.u64().ok()?;
    let mut out = BTreeSet::new();
    for _ in 0..n {
        out.insert(d.u64().ok()?);
    }
    d.finish().ok()?;
    Some(out)
}

/// A name no other live lease has: the process id and a random nonce.
fn fresh_name() -> String {
    let nonce = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{}-{nonce:016x}", std::process::id())
}

impl Leases {
    pub(crate) fn new(storage: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(Leases {
            publishing: !storage.locks_outlive_their_process(),
            storage,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the map consistent (every update is one
        // insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pins `version`, then runs `check`, which must confirm the version still exists (and
    /// return what the caller needs of it); if `check` fails, the pin is released.
    pub(crate) fn pin<T>(
        self: &Arc<Self>,
        version: u64,
        check: impl FnOnce() -> Result<T>,
    ) -> Result<(Arc<Pin>, T)> {
        let mut state = self.state();
        let first = !state.pinned.contains_key(&version) && self.publishing;
        let _gate = if first {
            Some(gate(self.storage.as_ref(), true)?)
        } else {
            None
        };
        let count = state.pinned.get(&version).map_or(1, |c| c + 1);
        state.pinned.insert(version, count);
        if first && let Err(e) = self.publish(&mut state) {
            // Undone before the lock is released: no other thread may take an unpublished
            // version for pinned.
            state.pinned.remove(&version);
            return Err(e);
        }
        let pin = Arc::new(Pin {
            leases: self.clone(),
            version,
        });
        drop(state);
        let value = check()?;
        Ok((pin, value))
    }

    /// The versions this handle's snapshots pin above `version`: what a purge must not take
    /// from this process, even where nothing is published.
    pub(crate) fn pinned_above(&self, version: u64) -> Vec<u64> {
        self.state()
            .pinned
            .range(version + 1..)
            .map(|(v, _)| *v)
            .collect()
    }

    fn release(&self, version: u64) {
        let mut state = self.state();
        let Some(count) = state.pinned.get_mut(&version) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            state.pinned.remove(&version);
            if !self.publishing {
                return;
            }
            // Failing to publish leaves the version listed: maintenance is only more careful
            // than it needs to be until the next publish or this process's exit.
            if let Ok(_gate) = gate(self.storage.as_ref(), true) {
                let _ = self.publish(&mut state);
            }
        }
    }

    /// Writes the pinned versions to this process's lease file, creating and locking it first
    /// (under a temporary name, so maintenance never sees an unlocked lease).
    fn publish(&self, state: &mut State) -> Result<()> {
        let bytes = encode(&state.pinned);
        if let Some((path, _)) = &state.file {
            return Ok(self.storage.overwrite(path, &bytes)?);
        }
        let name = fresh_name();
        let new = Path::new(LEASE_DIR).join(format!("{name}{NEW_SUFFIX}"));
        let lease = Path::new(LEASE_DIR).join(format!("{name}{LEASE_SUFFIX}"));
        let lock = self.storage.try_lock(&new)?;
        self.storage.overwrite(&new, &bytes)?;
        self.storage.rename(&new, &lease)?;
        state.file = Some((lease, lock));
        Ok(())
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some((path, lock)) = state.file.take() {
            // Removed before the lock is released, so nobody sees it unlocked; if removal
            // fails, the next maintenance finds it unlocked and removes it.
            let _ = self.storage.remove(&path);
            drop(lock);
        }
    }
}

/// Maintenance's view of the readers: held with the gate locked exclusively, so no reader
/// pins a new version until it is dropped.
pub(crate) struct ReaderCensus {
    _gate: Box<dyn LockGuard>,
    /// Every version some live reader pins.
    pub pinned: BTreeSet<u64>,
}

impl ReaderCensus {
    /// Locks the gate, reads every live lease and removes the leases of processes that died.
    pub(crate) fn take(storage: &dyn Storage) -> Result<Self> {
        let gate = gate(storage, false)?;
        let mut pinned = BTreeSet::new();
        for name in storage.list(Path::new(LEASE_DIR))? {
            let is_lease = name.ends_with(LEASE_SUFFIX);
            if !is_lease && !name.ends_with(NEW_SUFFIX) {
                continue;
            }
            let path = Path::new(LEASE_DIR).join(&name);
            match storage.try_lock(&path) {
                // Nobody holds it: its process is gone (a lease is created locked and
                // published under the gate, which this census holds).
                Ok(lock) => {
                    storage.remove(&path)?;
                    drop(lock);
                }
                Err(reeldb_keyframe::Error::Locked { .. }) if is_lease => {
                    // Its owner may drop it (removing the file) at any moment: gone is empty.
                    let read = storage
                        .len(&path)
                        .and_then(|len| storage.read_at(&path, 0, len as usize));
                    let bytes = match read {
                        Ok(b) => b,
                        Err(e) if e.is_not_found() => continue,
                        Err(e) => return Err(e.into()),
                    };
                    let versions = decode(&bytes).ok_or_else(|| Error::Corruption {
                        path: path.display().to_string(),
                        offset: 0,
                        reason: "unreadable reader lease".into(),
                    })?;
                    pinned.extend(versions);
                }
                Err(reeldb_keyframe::Error::Locked { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(ReaderCensus {
            _gate: gate,
            pinned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_reads_back_and_damage_is_noticed() {
        let pinned: BTreeMap<u64, usize> = [(3, 1), (9, 2)].into_iter().collect();
        let bytes = encode(&pinned);
        assert_eq!(decode(&bytes), Some([3, 9].into_iter().collect()));
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert_eq!(decode(&bad), None, "flip at {at}");
        }
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
    }
}
