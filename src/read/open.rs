//! Opening versions: `Store::latest`, `snapshot`, `snapshot_as_of` and `snapshot_at_offset`,
//! each one index entry (found directly, or by binary search over time or source offset) and
//! one record, the version pinned by this process's lease before it is read.

use chrono::{DateTime, Utc};

use crate::catalog::index::{ENTRY_LEN, IndexEntry, NO_OFFSET};
use crate::catalog::{self, head};
use crate::error::{Error, Result};
use crate::read::snapshot::Snapshot;
use crate::store::Store;

impl Store {
    fn entry(&self, version: u64) -> Result<IndexEntry> {
        let latest = self.latest_version()?;
        if version == 0 || version > latest {
            return Err(Error::UnknownVersion { version, latest });
        }
        match self.index().entry(version) {
            Err(e @ Error::Corruption { .. }) => {
                // A rewind, or a writer cutting back a torn tail, may have shortened the
                // index since `latest` was read: the version is then gone, not damaged.
                let now = self.latest_version()?;
                if version > now {
                    Err(Error::UnknownVersion {
                        version,
                        latest: now,
                    })
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    /// The latest version.
    pub fn latest(&self) -> Result<Snapshot> {
        if self.inner.heads
            && let Some(v) = head::newest(self.inner.storage.as_ref())?
            && let Some(h) = head::read(self.inner.storage.as_ref(), v)?
            // The newest head is the latest version's while versions.idx ends at its entry.
            && self.inner.storage.ends_at(
                &catalog::index_path(),
                ENTRY_LEN * (v + 1),
                h.index_generation,
            )?
        {
            return self.snapshot_of_head(h);
        }
        let e = self.latest_entry()?.ok_or(Error::Empty)?;
        self.snapshot_of(&e)
    }

    /// Version `version`. Costs the same for any version: one index entry, one record (on
    /// an object store, the version's head alone when it has one).
    pub fn snapshot(&self, version: u64) -> Result<Snapshot> {
        if self.inner.heads
            && let Some(h) = head::read(self.inner.storage.as_ref(), version)?
        {
            return self.snapshot_of_head(h);
        }
        let e = self.entry(version)?;
        self.snapshot_of(&e)
    }

    /// The snapshot a version head describes (see `catalog::head`): its definitions kept for
    /// the tables' opens. On an object store there are no leases to publish (a reader that
    /// opened a version reads it for the retention instead), so nothing is read again.
    fn snapshot_of_head(&self, h: head::VersionHead) -> Result<Snapshot> {
        for (r, payload) in &h.defs {
            self.keep_def(*r, payload)?;
        }
        let (pin, ()) = self.inner.leases.pin(h.entry.version, || Ok(()))?;
        Ok(Snapshot::new(self.clone(), h.record, pin))
    }

    /// The last version committed at or before `time`.
    pub fn snapshot_as_of(&self, time: DateTime<Utc>) -> Result<Snapshot> {
        let latest = self.latest_version()?;
        let target = time.timestamp_micros();
        let e = self
            .index()
            .last_at_or_before(latest, target as u64 ^ (1 << 63), |e| {
                (e.committed_at as u64) ^ (1 << 63)
            })?
            .ok_or_else(|| Error::NoVersionBefore(time.to_rfc3339()))?;
        self.snapshot_of(&e)
    }

    /// The last version whose source offset is at or before `offset` (versions without an
    /// offset of their own carry the one before them).
    pub fn snapshot_at_offset(&self, offset: u64) -> Result<Snapshot> {
        let latest = self.latest_version()?;
        // "No offset yet" sorts before every offset: key 0, offsets as offset + 1.
        let key = |e: &IndexEntry| {
            if e.carried_offset == NO_OFFSET {
                0
            } else {
                e.carried_offset + 1
            }
        };
        let e = self
            .index()
            .last_at_or_before(latest, offset.saturating_add(1), key)?
            .filter(|e| e.carried_offset != NO_OFFSET)
            .ok_or_else(|| Error::NoVersionBefore(format!("source offset {offset}")))?;
        self.snapshot_of(&e)
    }

    /// The snapshot of the version `e` describes, pinned by this process's lease: the pin is
    /// published first, then the entry is read again to confirm the version was not purged
    /// meanwhile (see `lease`).
    fn snapshot_of(&self, e: &IndexEntry) -> Result<Snapshot> {
        let (pin, fresh) = self.inner.leases.pin(e.version, || {
            self.notice_rewinds()?;
            let latest = self.latest_version()?;
            let gone = || Error::UnknownVersion {
                version: e.version,
                latest,
            };
            if e.version > latest {
                return Err(gone());
            }
            // The same version (compaction may have moved its record), not one a rewind
            // purged and a later commit numbered alike.
            let fresh = self.index().entry(e.version)?;
            if (fresh.committed_at, fresh.carried_offset) != (e.committed_at, e.carried_offset) {
                return Err(gone());
            }
            if fresh.expired {
                return Err(Error::Expired { version: e.version });
            }
            Ok(fresh)
        })?;
        let rec = self.read_record(&fresh)?;
        Ok(Snapshot::new(self.clone(), rec, pin))
    }
}
