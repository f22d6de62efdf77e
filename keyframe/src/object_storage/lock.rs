//! Locks on an object store: a lock object `P/lock` holding a lease that its holder renews,
//! so that a lock whose holder died expires instead of staying held for ever.
//!
//! A lock is taken by creating its object only if absent (`PutMode::Create`). While held, a
//! task on the storage's runtime rewrites it every quarter of the lease's length, only if it
//! is still the holder's (`PutMode::Update` on the ETag it last wrote; each rewrite counts a
//! renewal, so the bytes and the ETag change). A lock object whose last write (the store's
//! `last_modified`) is older than its lease's length by this machine's clock has expired:
//! another process takes it over by the same conditional update, so of two that try, one
//! wins. The holder trusts its lock only until half the lease's length after it sent its
//! last successful renewal ([`LockGuard::check`]): machines' clocks may disagree by up to
//! half a lease (30 s by default: [`DEFAULT_LOCK_TTL`]) before a lock could be held twice.
//! A holder that finds its object gone or rewritten has lost the lock for good.
//!
//! The object's bytes are in FORMAT.md ("On an object store").

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::requests::Request;
use super::{ObjectStorage, lock};
use crate::error::{Error, Result};
use crate::format::{Decoder, Encoder, checksum};
use crate::storage::LockGuard;

/// How long a lock's lease lasts unless the storage is told otherwise
/// ([`ObjectStorage::with_lock_ttl`]).
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(60);

/// The name of a lock object under the path it locks.
pub(super) const LOCK_OBJECT: &str = "lock";

/// The first bytes of a lock object.
const LOCK_MAGIC: [u8; 8] = *b"REELLOCK";

/// A lock object's contents: who holds it, how often they renewed it, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    /// A random number the holder chose.
    holder: u64,
    /// Renewals so far.
    renewals: u64,
    /// The lease's length in milliseconds.
    ttl_ms: u64,
}

impl Lease {
    fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.raw(&LOCK_MAGIC)
            .u64(self.holder)
            .u64(self.renewals)
            .u64(self.ttl_ms);
        let mut out = e.finish();
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// The lease in `bytes`, or `None` if they are not one (an empty lock object of an
    /// earlier release, or damage).
    fn decode(bytes: &[u8]) -> Option<Lease> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if checksum(body).to_le_bytes() != sum {
            return None;
        }
        let mut d = Decoder::new(body);
        if d.fixed::<8>().ok()? != LOCK_MAGIC {
            return None;
        }
        let lease = Lease {
            holder: d.u64().ok()?,
            renewals: d.u64().ok()?,
            ttl_ms: d.u64().ok()?,
        };
        d.finish().ok()?;
        Some(lease)
    }
}

/// A random number for a new holder.
fn fresh_holder() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Milliseconds since the Unix epoch by this machine's clock.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What the holder knows of its lock: the version it last wrote and when it sent that write.
#[derive(Debug)]
struct Held {
    version: UpdateVersion,
    renewed: Instant,
    renewals: u64,
    /// The object was gone or rewritten by someone else at a renewal.
    lost: bool,
}

impl ObjectStorage {
    /// Takes the lock of `path` if it is free or expired; [`Error::Locked`] if it is held.
    pub(super) fn create_lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let key = self.key(path)?.join(LOCK_OBJECT);
        // A lock object deleted between our create and our look at it is free again: try
        // the create once more.
        for _ in 0..3 {
            let lease = Lease {
                holder: fresh_holder(),
                renewals: 0,
                ttl_ms: u64::try_from(self.lock_ttl.as_millis()).unwrap_or(u64::MAX),
            };
            let sent = Instant::now();
            match self.put_lock(path, &key, &lease, PutMode::Create) {
                Ok(version) => return Ok(self.hold(path, key, lease, version, sent)),
                Err(Error::Conflict { .. }) => {}
                Err(e) => return self.landed_anyway(path, key, lease, sent, e),
            }
            let Some((current, version, written_ms)) = self.read_lock(path, &key)? else {
                continue;
            };
            let ttl_ms = current.map_or(lease.ttl_ms, |l| l.ttl_ms);
            let expired =
                written_ms.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)) < now_ms();
            if !expired {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
            let sent = Instant::now();
            match self.put_lock(path, &key, &lease, PutMode::Update(version)) {
                Ok(version) => return Ok(self.hold(path, key, lease, version, sent)),
                // Someone else took it over first, or it was released: look again.
                Err(Error::Conflict { .. }) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return self.landed_anyway(path, key, lease, sent, e),
            }
        }
        Err(Error::Locked {
            path: path.to_path_buf(),
        })
    }

    /// After a put of `lease` (sent at `sent`) failed with `e`: the lock, if the put was
    /// applied all the same (a request that timed out on its way back) and the object is
    /// ours; else `e`. Without this, such a put would leave the lock held by no one for a
    /// whole lease.
    fn landed_anyway(
        &self,
        path: &Path,
        key: ObjectPath,
        lease: Lease,
        sent: Instant,
        e: Error,
    ) -> Result<Box<dyn LockGuard>> {
        match self.read_lock(path, &key) {
            Ok(Some((Some(found), version, _))) if found == lease => {
                Ok(self.hold(path, key, lease, version, sent))
            }
            _ => Err(e),
        }
    }

    /// Takes the lock of `path`, waiting while it is held, up to twice the lease's length
    /// (long enough for the lock of a process that died to expire).
    pub(super) fn wait_for_lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let deadline = Instant::now() + self.lock_ttl * 2;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.create_lock(path) {
                Err(Error::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    /// Writes `lease` as the lock object `key` by `mode`; the version written.
    fn put_lock(
        &self,
        path: &Path,
        key: &ObjectPath,
        lease: &Lease,
        mode: PutMode,
    ) -> Result<UpdateVersion> {
        let (store, key) = (self.store.clone(), key.clone());
        let payload = PutPayload::from(lease.encode());
        let put = self.run(Request::Put, path, async move {
            store.put_opts(&key, payload, PutOptions::from(mode)).await
        })?;
        Ok(UpdateVersion {
            e_tag: put.e_tag,
            version: put.version,
        })
    }

    /// The lock object `key` (its lease, if it holds one), its version and when it was last
    /// written (milliseconds since the epoch); `None` if it is gone.
    fn read_lock(
        &self,
        path: &Path,
        key: &ObjectPath,
    ) -> Result<Option<(Option<Lease>, UpdateVersion, i64)>> {
        match self.run(Request::Get, path, fetch_lock(self.clone(), key.clone())) {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The guard of a lock just taken: it renews the lease until dropped.
    fn hold(
        &self,
        path: &Path,
        key: ObjectPath,
        lease: Lease,
        version: UpdateVersion,
        sent: Instant,
    ) -> Box<dyn LockGuard> {
        let held = Arc::new(Mutex::new(Held {
            version,
            renewed: sent,
            renewals: 0,
            lost: false,
        }));
        let renewing = self.runtime.0.as_ref().map(|runtime| {
            runtime.spawn(renew(
                self.clone(),
                key.clone(),
                lease,
                self.lock_ttl,
                held.clone(),
            ))
        });
        Box::new(ObjectLock {
            storage: self.clone(),
            path: path.to_path_buf(),
            key,
            ttl: self.lock_ttl,
            held,
            renewing,
        })
    }
}

/// Renews `lease` every quarter of `ttl` until the lock is lost (or the task is aborted).
async fn renew(
    storage: ObjectStorage,
    key: ObjectPath,
    lease: Lease,
    ttl: Duration,
    held: Arc<Mutex<Held>>,
) {
    loop {
        tokio::time::sleep(ttl / 4).await;
        let (version, renewals) = {
            let held = lock(&held);
            (held.version.clone(), held.renewals + 1)
        };
        let renewal = Lease { renewals, ..lease };
        let payload = PutPayload::from(renewal.encode());
        let sent = Instant::now();
        storage.counts.request(Request::Put);
        let put = match storage
            .store
            .put_opts(&key, payload, PutOptions::from(PutMode::Update(version)))
            .await
        {
            Ok(put) => Ok(UpdateVersion {
                e_tag: put.e_tag,
                version: put.version,
            }),
            // A renewal may have been applied though its answer was lost.
            Err(e)
                if !matches!(
                    e,
                    object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }
                ) =>
            {
                applied_anyway(&storage, &key, &renewal).await.ok_or(e)
            }
            Err(e) => Err(e),
        };
        let mut held = lock(&held);
        match put {
            Ok(version) => {
                held.version = version;
                held.renewed = sent;
                held.renewals = renewals;
            }
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => {
                held.lost = true;
                return;
            }
            // A failed request is tried again at the next renewal; if none succeeds for
            // half a lease, `check` reports the lock lost.
            Err(_) => {}
        }
    }
}

/// Gets the lock object `key`: its lease (if it holds one), its version and when it was last
/// written (milliseconds since the epoch).
async fn fetch_lock(
    storage: ObjectStorage,
    key: ObjectPath,
) -> object_store::Result<(Option<Lease>, UpdateVersion, i64)> {
    let got = storage.store.get(&key).await?;
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let written_ms = got.meta.last_modified.timestamp_millis();
    let bytes = got.bytes().await?;
    storage.counts.read(bytes.len() as u64);
    Ok((Lease::decode(&bytes), version, written_ms))
}

/// The version of the lock object `key` if it holds `renewal` (a renewal whose answer was
/// lost was applied all the same), else `None`.
async fn applied_anyway(
    storage: &ObjectStorage,
    key: &ObjectPath,
    renewal: &Lease,
) -> Option<UpdateVersion> {
    storage.counts.request(Request::Get);
    match fetch_lock(storage.clone(), key.clone()).await.ok()? {
        (Some(found), version, _) if found == *renewal => Some(version),
        _ => None,
    }
}

/// A held lock object: renewed while held, deleted when dropped.
struct ObjectLock {
    storage: ObjectStorage,
    path: PathBuf,
    key: ObjectPath,
    ttl: Duration,
    held: Arc<Mutex<Held>>,
    renewing: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for ObjectLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectLock({})", self.key)
    }
}

impl LockGuard for ObjectLock {
    /// Fails with [`Error::LockLost`] once the lock was found taken over or deleted, or when
    /// no renewal succeeded for half a lease (another process may take it over at a full
    /// lease, by a clock that may run up to half a lease ahead of ours).
    fn check(&self) -> Result<()> {
        let held = lock(&self.held);
        if held.lost || held.renewed.elapsed() >= self.ttl / 2 {
            return Err(Error::LockLost {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}

impl Drop for ObjectLock {
    /// Stops renewing, then deletes the object while the lock is still ours (a lock lost
    /// may be someone else's now). A failed delete leaves the lock to expire; a drop
    /// cannot report it.
    fn drop(&mut self) {
        if let Some(task) = self.renewing.take() {
            task.abort();
        }
        if self.check().is_ok() {
            let _ = self.storage.delete(&self.path, self.key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;
    use object_store::memory::InMemory;

    const TTL: Duration = Duration::from_secs(1);

    /// Two storages on one in-memory store, their locks' leases lasting [`TTL`].
    fn two_storages() -> (Arc<InMemory>, ObjectStorage, ObjectStorage) {
        let memory = Arc::new(InMemory::new());
        let make = || {
            ObjectStorage::new(memory.clone(), "s")
                .unwrap()
                .with_lock_ttl(TTL)
        };
        let (one, two) = (make(), make());
        (memory, one, two)
    }

    fn lock_key() -> ObjectPath {
        ObjectPath::from("s/LOCK/lock")
    }

    fn lease_in(memory: &InMemory) -> Option<Lease> {
        let got = futures::executor::block_on(async {
            memory.get(&lock_key()).await.ok()?.bytes().await.ok()
        })?;
        Lease::decode(&got)
    }

    #[test]
    fn a_lease_decodes_as_encoded_and_damage_is_no_lease() {
        let lease = Lease {
            holder: 7,
            renewals: 3,
            ttl_ms: 60_000,
        };
        let bytes = lease.encode();
        assert_eq!(bytes.len(), 40);
        assert_eq!(Lease::decode(&bytes), Some(lease));
        let mut damaged = bytes.clone();
        damaged[9] ^= 1;
        assert_eq!(Lease::decode(&damaged), None);
        assert_eq!(Lease::decode(&[]), None, "an earlier release's empty lock");
    }

    #[test]
    fn a_lock_whose_holder_died_is_taken_over_once_its_lease_ran_out() {
        let (memory, s, _) = two_storages();
        let dead = Lease {
            holder: 1,
            renewals: 0,
            ttl_ms: 1_000,
        };
        futures::executor::block_on(memory.put(&lock_key(), dead.encode().into())).unwrap();
        assert!(matches!(
            s.try_lock(Path::new("LOCK")),
            Err(Error::Locked { .. })
        ));
        std::thread::sleep(Duration::from_millis(1_100));
        let held = s.try_lock(Path::new("LOCK")).unwrap();
        held.check().unwrap();
        let now = lease_in(&memory).unwrap();
        assert_ne!(
            now.holder, dead.holder,
            "the lock object is the new holder's"
        );
    }

    #[test]
    fn an_empty_lock_object_of_an_earlier_release_expires_by_this_storages_lease() {
        let (memory, s, _) = two_storages();
        futures::executor::block_on(memory.put(&lock_key(), PutPayload::new())).unwrap();
        assert!(s.try_lock(Path::new("LOCK")).is_err());
        std::thread::sleep(Duration::from_millis(1_100));
        assert!(s.try_lock(Path::new("LOCK")).is_ok());
    }

    #[test]
    fn a_live_holder_renews_its_lease_so_the_lock_stays_held_past_it() {
        let (memory, s, other) = two_storages();
        let held = s.try_lock(Path::new("LOCK")).unwrap();
        std::thread::sleep(TTL * 3);
        assert!(matches!(
            other.try_lock(Path::new("LOCK")),
            Err(Error::Locked { .. })
        ));
        held.check().unwrap();
        assert!(lease_in(&memory).unwrap().renewals >= 2);
        drop(held);
        assert!(
            lease_in(&memory).is_none(),
            "released: the object is deleted"
        );
        assert!(other.try_lock(Path::new("LOCK")).is_ok());
    }

    #[test]
    fn a_holder_whose_lock_was_deleted_learns_it_lost_the_lock_and_leaves_the_next_ones() {
        let (memory, s, other) = two_storages();
        let held = s.try_lock(Path::new("LOCK")).unwrap();
        futures::executor::block_on(memory.delete(&lock_key())).unwrap();
        let next = other.try_lock(Path::new("LOCK")).unwrap();
        let deadline = Instant::now() + TTL * 2;
        while held.check().is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(matches!(held.check(), Err(Error::LockLost { .. })));
        drop(held);
        assert!(
            lease_in(&memory).is_some(),
            "the lost holder did not delete the next holder's lock"
        );
        next.check().unwrap();
    }
}
