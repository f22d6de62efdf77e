//! Maintenance: compaction, thinning, log cleaning and expiry ([`Maintenance`]), the policy
//! `reel compact` runs ([`MaintenancePlan`]), rewinding and verification.
//!
//! Maintenance runs beside live readers and beside a writer in another process that keeps
//! committing. It takes the maintenance lock (one maintenance at a time), reads the versions
//! committed so far, writes what it produces to packs of its own range
//! ([`PackRange::Maintenance`], so the writer never mistakes them for its own leftovers), and
//! publishes under the catalog lock (see `catalog::commit`): it appends the rewritten version
//! records, appends the latest version's record again listing the packs both processes
//! wrote, and swaps versions.idx atomically, copying unchanged every entry committed
//! meanwhile. The writer waits for at most that swap.
//!
//! Why this is safe beside a writer: compaction rewrites only closed generations, and
//! thinning only versions reading a keyframe older than the newest, so neither touches the
//! latest version's tables nor anything the writer builds on; node logs are deleted only for
//! closed generations (a later keyframe of their table, or no such table, in the latest
//! version read). Log cleaning copies every live record to new packs,
//! which the writer's deduplication index would not know of: it copies only while it holds
//! the writer lock, and beside an open writer it skips the copy and says so
//! ([`Cleaning::writer_open`]). Rewinding purges versions, so it needs the writer lock and
//! no maintenance running.

pub mod catalog;
pub mod clean;
pub mod compact;
pub mod expire;
pub mod retire;
pub mod rewind;
pub mod thin;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use reeldb_keyframe::pack::{PackRange, PackWriter};
use reeldb_keyframe::storage::LockGuard;

use crate::catalog::commit::CatalogWriter;
use crate::catalog::index::{IndexEntry, header_with};
use crate::catalog::records::{self, CatalogKind};
use crate::catalog::tail;
use crate::catalog::version::{self, VersionRecord};
use crate::error::{Error, Result};
use crate::store::Store;
use retire::{DEFAULT_RETENTION, Reclaimed};

pub use catalog::CatalogRewrite;
pub use clean::Cleaning;
pub use compact::Compaction;
pub use thin::{KeyframeThinning, THIN_RESIDUAL_BOUND, THIN_RESIDUAL_MIN_ROWS, Thinning};

/// The maintenance lock file: held by the one maintenance run (and by a rewind).
pub const MAINTENANCE_LOCK_FILE: &str = "MAINTENANCE";

/// The fraction of pack bytes no live version references past which `reel compact` copies
/// the live records to new packs.
pub const CLEAN_AT_GARBAGE: f64 = 0.25;

/// A maintenance run on a store: holds the maintenance lock until dropped.
#[derive(Debug)]
pub struct Maintenance {
    store: Store,
    _lock: Box<dyn LockGuard>,
    /// Appends to the maintenance range of packs.
    pub(crate) packs: PackWriter,
    /// True when no writer can commit during this run: the caller holds the writer.
    writer_quiet: bool,
    /// On an object store, the files retired so far (module `retire`); `None` on storage
    /// where readers publish leases, and files are deleted at once.
    retired: Option<retire::Retired>,
    /// How long retired files stay readable before a run deletes them.
    retention: std::time::Duration,
}

/// What `reel compact` (and Python's `Store.compact`) does, in this order: compact every
/// closed generation, thin keyframes as `thinning` chooses, clean the packs, rewrite the
/// catalog once half of it is dead, then (on an object store) delete the files retired at
/// least the retention ago. The default thins by [`KeyframeThinning::ResidualBound`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaintenancePlan {
    /// Which keyframes to keep.
    pub thinning: KeyframeThinning,
    /// The garbage fraction past which cleaning copies (see [`CLEAN_AT_GARBAGE`]).
    pub clean_at_garbage: f64,
}

impl Default for MaintenancePlan {
    fn default() -> Self {
        MaintenancePlan {
            thinning: KeyframeThinning::default(),
            clean_at_garbage: CLEAN_AT_GARBAGE,
        }
    }
}

/// The step of a [`MaintenancePlan`] a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceStep {
    /// Closed generations rewritten as B-frames.
    Compaction,
    /// Runs of thinned keyframes rebased.
    Thinning,
}

/// What a [`MaintenancePlan`] did, step by step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// The compaction.
    pub compaction: Compaction,
    /// The thinning (`None` when the plan's policy is [`KeyframeThinning::Off`]).
    pub thinning: Option<Thinning>,
    /// The cleaning.
    pub cleaning: Cleaning,
    /// The catalog rewrite.
    pub catalog: CatalogRewrite,
    /// On an object store, the retired files deleted once their retention passed.
    pub reclaimed: Reclaimed,
}

/// Takes the maintenance lock, failing at once with [`Error::MaintenanceLocked`].
pub(crate) fn maintenance_lock(store: &Store) -> Result<Box<dyn LockGuard>> {
    store
        .inner
        .storage
        .try_lock(Path::new(MAINTENANCE_LOCK_FILE))
        .map_err(|e| match e {
            reeldb_keyframe::Error::Locked { .. } => {
                Error::MaintenanceLocked(store.path().display().to_string())
            }
            other => Error::from(other),
        })
}

/// Takes the writer lock for a step that needs no writer open: `Ok(None)` when a writer
/// holds it.
pub(crate) fn try_writer_lock(store: &Store) -> Result<Option<Box<dyn LockGuard>>> {
    match store
        .inner
        .storage
        .try_lock(Path::new(crate::store::LOCK_FILE))
    {
        Ok(lock) => Ok(Some(lock)),
        Err(reeldb_keyframe::Error::Locked { .. }) => Ok(None),
        Err(e) => Err(Error::from(e)),
    }
}

impl Store {
    /// Starts maintenance (compaction, thinning, cleaning, expiry), failing at once with
    /// [`Error::MaintenanceLocked`] while another maintenance or a rewind runs. A writer may be
    /// open in this or another process and keep committing meanwhile.
    pub fn maintenance(&self) -> Result<Maintenance> {
        Maintenance::open(self.clone(), false)
    }
}

impl Maintenance {
    /// Opens a maintenance run; `writer_quiet` when the caller holds the writer and will not
    /// commit until the run ends.
    pub(crate) fn open(store: Store, writer_quiet: bool) -> Result<Maintenance> {
        crate::sync::refuse_unfinished(store.inner.storage.as_ref())?;
        let storage = store.inner.storage.clone();
        let lock = maintenance_lock(&store)?;
        let retired = match storage.locks_outlive_their_process() {
            // Index rewrites there make new generations of segments, which earlier builds
            // would not read.
            true => {
                store.require_feature_locked(crate::store::FEATURE_SEGMENT_GENERATIONS)?;
                store.require_feature_locked(crate::store::FEATURE_VERSION_HEADS)?;
                Some(retire::Retired::read(storage.as_ref())?)
            }
            false => None,
        };
        // A rewind (none can run while the lock is held) may have let positions this
        // handle caches be written again.
        store.notice_rewinds()?;
        let committed = match store.latest_entry()? {
            Some(e) => store.read_record(&e)?.packs,
            None => Vec::new(),
        };
        // Holding the maintenance lock, this run is its range's only appender: packs of the
        // range past the committed ones are a crashed run's, and are removed (on an object
        // store left, and numbered past: `PackWriter::open_in`).
        let packs = PackWriter::open_in(storage, &committed, PackRange::Maintenance)?;
        Ok(Maintenance {
            store,
            _lock: lock,
            packs,
            writer_quiet,
            retired,
            retention: DEFAULT_RETENTION,
        })
    }

    /// Sets how long files this run retires stay readable, and how long ago a file must
    /// have been retired for [`Maintenance::reclaim`] to delete it (on an object store, where
    /// readers hold no leases; see `retire`). Default [`DEFAULT_RETENTION`].
    pub fn set_retention(&mut self, retention: std::time::Duration) {
        self.retention = retention;
    }

    /// On an object store, deletes the files retired at least the retention ago (see
    /// `retire`); elsewhere nothing is retired, and this does nothing.
    pub fn reclaim(&mut self) -> Result<Reclaimed> {
        let storage = self.store.inner.storage.clone();
        match &mut self.retired {
            None => Ok(Reclaimed::default()),
            Some(retired) => {
                let (report, left) = retire::reclaim(storage.as_ref(), self.retention)?;
                *retired = left;
                Ok(report)
            }
        }
    }

    /// Deletes `paths` (files no live version reads and no reader the caller sees holds)
    /// and returns true; on an object store retires them instead (see `retire`) and returns
    /// false.
    pub(crate) fn delete_or_retire(&mut self, paths: &[std::path::PathBuf]) -> Result<bool> {
        let storage = self.store.inner.storage.clone();
        match &mut self.retired {
            Some(retired) => {
                retired.retire(storage.as_ref(), paths)?;
                Ok(false)
            }
            None => {
                for p in paths {
                    storage.remove(p)?;
                }
                Ok(true)
            }
        }
    }

    /// The store maintained.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `plan`: compaction, thinning, then cleaning. `progress` is told the step, and the
    /// generations compacted and to compact, or the runs of keyframes rebased and to rebase.
    pub fn run(
        &mut self,
        plan: &MaintenancePlan,
        progress: &mut dyn FnMut(MaintenanceStep, usize, usize),
    ) -> Result<MaintenanceReport> {
        let compaction = self.compact(&mut |d, t| progress(MaintenanceStep::Compaction, d, t))?;
        let thinning = match plan.thinning {
            KeyframeThinning::Off => None,
            policy => Some(self.thin_with(policy, &mut |d, t| {
                progress(MaintenanceStep::Thinning, d, t)
            })?),
        };
        let cleaning = self.clean(plan.clean_at_garbage)?;
        let catalog = self.rewrite_catalog(catalog::REWRITE_AT_DEAD)?;
        let reclaimed = self.reclaim()?;
        Ok(MaintenanceReport {
            compaction,
            thinning,
            cleaning,
            catalog,
            reclaimed,
        })
    }

    /// Every committed version's index entry and record, oldest first: what this run works
    /// from. Versions the writer commits later are left as they are.
    pub(crate) fn committed(&self) -> Result<Vec<(IndexEntry, VersionRecord)>> {
        let latest = self.store.latest_version()?;
        let index = self.store.index();
        let mut out = Vec::with_capacity(latest as usize);
        for e in index.entries(latest)? {
            // An expired version whose record a catalog rewrite dropped reads as one with no
            // tables: maintenance leaves expired versions alone.
            let rec = match e.expired && e.record_len == 0 {
                true => VersionRecord {
                    version: e.version,
                    committed_at: e.committed_at,
                    ..VersionRecord::default()
                },
                false => self.store.read_record(&e)?,
            };
            out.push((e, rec));
        }
        Ok(out)
    }

    /// Publishes rewritten version records (the commit point, see the module docs): under the
    /// catalog lock, appends every record of `rewritten` and then the latest version's record
    /// again, each listing the packs as they now are (`packs`, or else the writer's packs the
    /// latest record lists and this run's), and swaps the index. `read` is the committed
    /// versions this run read; versions committed since keep their entries.
    pub(crate) fn publish(
        &mut self,
        read: &[(IndexEntry, VersionRecord)],
        mut rewritten: BTreeMap<u64, VersionRecord>,
        packs: Option<Vec<(u32, u64)>>,
    ) -> Result<()> {
        let ours = self.packs.sync(true)?;
        let storage = self.store.inner.storage.clone();
        let mut catalog = CatalogWriter::take(&storage)?;
        let index = self.store.index();
        let head = catalog.head().ok_or_else(|| {
            Error::Internal("the store lost its versions during maintenance".into())
        })?;
        // Appending the latest record again would bury the proof of versions the index lost.
        if let Some(lost) = tail::lost_after(storage.as_ref(), Some(&head))? {
            return Err(tail::lost_error(&lost));
        }
        let read_latest = read.last().map_or(0, |(e, _)| e.version);
        if head.version < read_latest {
            return Err(Error::Internal(format!(
                "versions.idx ends at version {} below version {read_latest}, read before",
                head.version
            )));
        }
        let on_disk = self.store.read_record(&head)?;
        let packs = match packs {
            Some(p) => p,
            None => {
                let mut p: Vec<(u32, u64)> = on_disk
                    .packs
                    .iter()
                    .copied()
                    .filter(|(id, _)| PackRange::Writer.contains(*id))
                    .collect();
                p.extend(ours);
                p.sort_unstable();
                p
            }
        };
        let head_rec = rewritten.remove(&head.version).unwrap_or(on_disk);
        rewritten.insert(head.version, head_rec);
        // Every rewritten record lists the packs as they now are: it may reference bytes
        // written after its version was committed (see `rewind`).
        let mut at = catalog.records_len();
        let mut moved: HashMap<u64, (u64, u32, u64)> = HashMap::new();
        let mut pending = Vec::new();
        for (v, rec) in &mut rewritten {
            rec.packs = packs.clone();
            let framed = records::frame(CatalogKind::Version, &version::encode(rec));
            let sum = reeldb_keyframe::format::checksum(&framed);
            moved.insert(*v, (at, framed.len() as u32, sum));
            at += framed.len() as u64;
            pending.extend_from_slice(&framed);
        }
        let mut bytes = header_with(index.rewinds()?);
        for e in index.entries(head.version)? {
            let e = match moved.get(&e.version) {
                Some(&(record_offset, record_len, record_checksum)) => IndexEntry {
                    record_offset,
                    record_len,
                    record_checksum,
                    records_file: catalog.records_file(),
                    ..e
                },
                None => e,
            };
            bytes.extend_from_slice(&e.encode());
        }
        catalog.replace_index(&pending, &bytes)
    }

    /// After a failed step: forgets the records this run appended to its packs since they
    /// were last synced, and returns `e`. (Records synced by a publication that then failed
    /// stay known: durable, unreferenced, and listed by the next publication if reused.)
    pub(crate) fn abandon<T>(&mut self, e: Error) -> Result<T> {
        self.packs.abort();
        Err(e)
    }
}
