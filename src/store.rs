//! [`Store`]: opening and creating a store directory, finding versions (by number, time or
//! source offset) and listing them, and store-wide statistics.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use reeldb_keyframe::format::{
    Decoder, Encoder, FORMAT_VERSION, OLDEST_SUPPORTED_VERSION, checksum,
};
use reeldb_keyframe::storage::Storage;
use reeldb_keyframe::{DecodedCache, PackReader, Source};

use crate::catalog::index::{IndexEntry, IndexReader, NO_OFFSET};
use crate::catalog::records::{self, CatalogKind};
use crate::catalog::version::{self, CatalogRef, LoadedDef, TableDef, VersionRecord};
use crate::catalog::{self, CATALOG_DIR};
pub use crate::column_space::ColumnSpace;
use crate::column_space::ColumnSpaceTally;
use crate::error::{Error, Result};
use crate::lease::Leases;
use crate::location::{StorageOptions, first_request, locate};

/// The store descriptor file, written last when a store is created.
pub const STORE_FILE: &str = "STORE";
/// The writer's lock file.
pub const LOCK_FILE: &str = "LOCK";
const STORE_MAGIC: [u8; 8] = *b"REELSTOR";
/// Feature bit: the catalog was rewritten at least once, so index entries name records files
/// other than records.log (builds before it would read records at the wrong offsets).
pub const FEATURE_RECORDS_FILES: u32 = 1;
/// Feature bit: on an object store, a file was rewritten whole as a new generation of
/// segment objects (FORMAT.md, "On an object store"), which builds before it would not read.
pub const FEATURE_SEGMENT_GENERATIONS: u32 = 2;
/// Feature bit: on an object store, versions have heads (`catalog::head`) that every
/// writer, maintenance run and sync keeps in step with versions.idx; builds before it would
/// leave them stale.
pub const FEATURE_VERSION_HEADS: u32 = 4;
/// Feature bits this build understands; a store with any other bit set is refused.
const KNOWN_FEATURES: u32 =
    FEATURE_RECORDS_FILES | FEATURE_SEGMENT_GENERATIONS | FEATURE_VERSION_HEADS;

/// What kind of data a version is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionKind {
    /// Every table the commit changed was written as a keyframe.
    Keyframe,
    /// At least one table the commit changed was written as an overlay over its keyframe.
    Overlay,
    /// Compaction rewrote at least one of its tables as a B-frame over the next keyframe.
    BFrame,
}

impl VersionKind {
    /// Lower-case name, as `reel versions` prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            VersionKind::Keyframe => "keyframe",
            VersionKind::Overlay => "overlay",
            VersionKind::BFrame => "bframe",
        }
    }
}

/// Facts about one committed version.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    /// The version number (dense, from 1).
    pub version: u64,
    /// How it is stored.
    pub kind: VersionKind,
    /// When it was committed.
    pub committed_at: DateTime<Utc>,
    /// The source-stream position it reflects, if the commit gave one.
    pub source_offset: Option<u64>,
    /// User metadata.
    pub meta: BTreeMap<String, String>,
}

/// Store-wide sizes and sharing, from [`Store::stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    /// Committed versions.
    pub versions: u64,
    /// Bytes of every file in the store directory.
    pub bytes_on_disk: u64,
    /// Uncompressed bytes full copies of every table at every version would take.
    pub logical_bytes: u64,
    /// Distinct column blocks stored.
    pub blocks_stored: u64,
    /// Column blocks referenced, summed over versions and tables.
    pub blocks_referenced: u64,
    /// `logical_bytes / bytes_on_disk`.
    pub sharing_ratio: f64,
    /// Bytes of the overlay row batches' column blocks (each distinct block once).
    pub row_batch_bytes: u64,
    /// Bytes of the B-frame residuals' column blocks (each distinct block once).
    pub residual_bytes: u64,
    /// Bytes of the overlay node logs (deletion vectors and live rows).
    pub node_log_bytes: u64,
    /// Rows of the B-frame residuals (each distinct residual batch once).
    pub residual_rows: u64,
    /// Bytes of the B-frames' membership records, which say which versions see which rows
    /// (each distinct record once; the name is from when they were per-version bitmaps).
    pub bitmap_bytes: u64,
    /// Rows per table at the latest version.
    pub latest_rows: BTreeMap<String, u64>,
    /// Where the column blocks' bytes go: per table, column and encoding, each distinct
    /// block once, in table then column order.
    pub column_space: Vec<ColumnSpace>,
}

#[derive(Debug)]
pub(crate) struct StoreInner {
    pub(crate) path: PathBuf,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) source: Arc<Source>,
    defs: RwLock<HashMap<CatalogRef, Arc<LoadedDef>>>,
    logs: RwLock<HashMap<PathBuf, Arc<reeldb_overlay::NodeLog>>>,
    pub(crate) leases: Arc<Leases>,
    /// The index header's rewind count when this handle last looked (see `forget_positions`);
    /// `None` until it first looks (an open through a version head does not).
    seen_rewinds: Mutex<Option<u64>>,
    /// Whether opens read version heads (`catalog::head`): on an object store whose
    /// descriptor has [`FEATURE_VERSION_HEADS`].
    pub(crate) heads: bool,
    /// What the last writer of this handle knew of each table's open generation, for the
    /// next writer (`writer::overlay_commit::GenerationState`).
    pub(crate) parked_generations: crate::writer::overlay_commit::ParkedGenerations,
}

/// An open store. Cheap to clone; any number of readers in any number of processes may read
/// while one writer commits.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<StoreInner>,
}

fn descriptor(features: u32) -> Vec<u8> {
    let mut e = Encoder::new();
    e.raw(&STORE_MAGIC).u32(FORMAT_VERSION).u32(features);
    let mut out = e.finish();
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The store descriptor `d` with feature bit `feature` set (`on`) or cleared.
pub(crate) fn with_feature(d: &[u8], feature: u32, on: bool) -> Result<Vec<u8>> {
    if d.len() < 16 {
        return Err(Error::Corruption {
            path: STORE_FILE.into(),
            offset: 0,
            reason: "bad store descriptor".into(),
        });
    }
    let features = u32::from_le_bytes([d[12], d[13], d[14], d[15]]);
    let mut out = descriptor(match on {
        true => features | feature,
        false => features & !feature,
    });
    // The format version is the descriptor's own.
    out[8..12].copy_from_slice(&d[8..12]);
    let sum = checksum(&out[..16]);
    out[16..24].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}

impl Store {
    /// Creates a new, empty store at `path` (the directory may exist but must be empty): a
    /// local directory, given as a path or a `file://` URL, or (feature `object-store`) an
    /// object store's prefix, `s3://bucket/prefix`, `gs://bucket/prefix` or
    /// `az://container/prefix`, configured from the environment (`AWS_*`, `GOOGLE_*`,
    /// `AZURE_*`; see [`Store::create_url`]); any other URL is an [`Error::UnsupportedUrl`]
    /// and creates nothing.
    pub fn create(path: impl AsRef<Path>) -> Result<Store> {
        Self::create_url(path, &[])
    }

    /// [`Store::create`] with storage options for an object store (`("region",
    /// "eu-west-1")`, `("endpoint", "http://127.0.0.1:9000")`, ...; the `location` module
    /// lists them), which win over the environment. A first request that fails (a missing
    /// bucket, wrong credentials, an endpoint that does not answer) is an
    /// [`Error::StorageUnreachable`] naming the URL; nothing is written.
    pub fn create_url(path: impl AsRef<Path>, options: &StorageOptions) -> Result<Store> {
        let located = locate(path.as_ref(), options)?;
        let created = Self::create_in(located.storage.clone(), &located.shown);
        first_request(&located, created)
    }

    /// Creates a new store on any [`Storage`] (used by tests to inject faults): its root
    /// directory is created if missing and must be empty.
    pub fn create_in(storage: Arc<dyn Storage>, path: &Path) -> Result<Store> {
        let root = Path::new("");
        storage.create_dir_all(root)?;
        if !storage.list(root)?.is_empty() {
            return Err(Error::AlreadyExists(path.display().to_string()));
        }
        storage.create_dir_all(Path::new(CATALOG_DIR))?;
        storage.create_dir_all(Path::new(reeldb_keyframe::pack::PACK_DIR))?;
        storage.write_atomic(&catalog::records_path(0), &records::header())?;
        storage.write_atomic(&catalog::index_path(), &catalog::index::header())?;
        // On an object store versions get heads from the first commit on.
        let features = match storage.locks_outlive_their_process() {
            true => FEATURE_VERSION_HEADS,
            false => 0,
        };
        storage.write_atomic(Path::new(STORE_FILE), &descriptor(features))?;
        Self::open_in(storage, path)
    }

    /// Opens the store at `path`: a local directory, given as a path or a `file://` URL, or
    /// (feature `object-store`) an object store's prefix (`s3://`, `gs://`, `az://`; see
    /// [`Store::create`]); any other URL is an [`Error::UnsupportedUrl`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_url(path, &[])
    }

    /// [`Store::open`] with storage options for an object store (see
    /// [`Store::create_url`]).
    pub fn open_url(path: impl AsRef<Path>, options: &StorageOptions) -> Result<Store> {
        let located = locate(path.as_ref(), options)?;
        let opened = Self::open_in(located.storage.clone(), &located.shown);
        first_request(&located, opened)
    }

    /// Opens a store on any [`Storage`].
    pub fn open_in(storage: Arc<dyn Storage>, path: &Path) -> Result<Store> {
        let shown = path.display().to_string();
        let Some(d) = storage.read_small(Path::new(STORE_FILE))? else {
            return Err(Error::NotAStore(shown));
        };
        let bad = || Error::Corruption {
            path: STORE_FILE.into(),
            offset: 0,
            reason: "bad store descriptor".into(),
        };
        let mut dec = Decoder::new(&d);
        let magic: [u8; 8] = dec.fixed().map_err(|_| bad())?;
        let format = dec.u32().map_err(|_| bad())?;
        let features = dec.u32().map_err(|_| bad())?;
        let sum = dec.u64().map_err(|_| bad())?;
        if magic != STORE_MAGIC || checksum(&d[..16]) != sum {
            return Err(bad());
        }
        if !(OLDEST_SUPPORTED_VERSION..=FORMAT_VERSION).contains(&format)
            || features & !KNOWN_FEATURES != 0
        {
            return Err(Error::UnsupportedFormat {
                found: format,
                oldest: OLDEST_SUPPORTED_VERSION,
                current: FORMAT_VERSION,
            });
        }
        let heads = features & FEATURE_VERSION_HEADS != 0 && storage.locks_outlive_their_process();
        // Through heads an open reads no more than a version's head: the catalog files are
        // checked as they are read (each record's frame and checksum, each entry's).
        let mut seen_rewinds = None;
        if !heads {
            IndexReader::new(storage.as_ref()).check_header()?;
            // The current records file's header: the one the latest entry names. When the
            // latest entry cannot be read (damage a rewind is meant to repair), or there is
            // none and records.log was retired, the later reads say what is wrong.
            match IndexReader::new(storage.as_ref()).latest() {
                Ok(Some(e)) => {
                    records::check_header(storage.as_ref(), &catalog::records_path(e.records_file))?
                }
                Ok(None) if storage.exists(&catalog::records_path(0))? => {
                    records::check_header(storage.as_ref(), &catalog::records_path(0))?
                }
                _ => {}
            }
            seen_rewinds = Some(IndexReader::new(storage.as_ref()).rewinds()?);
        }
        Ok(Store {
            inner: Arc::new(StoreInner {
                path: path.to_path_buf(),
                source: Arc::new(Source {
                    packs: PackReader::new(storage.clone()),
                    cache: DecodedCache::default(),
                }),
                leases: Leases::new(storage.clone()),
                seen_rewinds: Mutex::new(seen_rewinds),
                heads,
                parked_generations: Default::default(),
                storage,
                defs: RwLock::new(HashMap::new()),
                logs: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// Sets feature bit `feature` in the store descriptor (one atomic replacement), unless it
    /// is set: done before the first use of what the feature names, so that a build which
    /// does not know it refuses the store instead of misreading it.
    pub(crate) fn require_feature(&self, feature: u32) -> Result<()> {
        let storage = self.inner.storage.as_ref();
        let d = crate::catalog::read_exact(storage, Path::new(STORE_FILE), 12, 4)?;
        let features = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        if features & feature == 0 {
            storage.write_atomic(Path::new(STORE_FILE), &descriptor(features | feature))?;
        }
        Ok(())
    }

    /// [`Store::require_feature`] for a caller that does not hold the catalog lock: taken
    /// for the change, so that two processes setting different bits keep both.
    pub(crate) fn require_feature_locked(&self, feature: u32) -> Result<()> {
        let storage = self.inner.storage.as_ref();
        let d = crate::catalog::read_exact(storage, Path::new(STORE_FILE), 12, 4)?;
        if u32::from_le_bytes([d[0], d[1], d[2], d[3]]) & feature != 0 {
            return Ok(());
        }
        let _catalog = storage.lock_exclusive(&catalog::commit::lock_path())?;
        self.require_feature(feature)
    }

    /// The store's directory (for a store on other storage, the name it was opened under).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn index(&self) -> IndexReader<'_> {
        IndexReader::new(self.inner.storage.as_ref())
    }

    /// The latest committed version number (0 before the first commit).
    pub fn latest_version(&self) -> Result<u64> {
        Ok(self.index().latest()?.map_or(0, |e| e.version))
    }

    pub(crate) fn latest_entry(&self) -> Result<Option<IndexEntry>> {
        self.index().latest()
    }

    /// The version record `e` points at, its table definitions' references set to the records
    /// file it lies in. An expired version whose record a catalog rewrite dropped is
    /// [`Error::Expired`].
    pub(crate) fn read_record(&self, e: &IndexEntry) -> Result<VersionRecord> {
        if e.expired && e.record_len == 0 {
            return Err(Error::Expired { version: e.version });
        }
        let path = catalog::records_path(e.records_file);
        let payload = records::read(
            self.inner.storage.as_ref(),
            &path,
            e.record_offset,
            e.record_len,
            CatalogKind::Version,
            Some(e.record_checksum),
        )?;
        let mut rec: VersionRecord =
            version::decode(&payload, &path.display().to_string(), e.record_offset)?;
        for t in &mut rec.tables {
            t.def.file = e.records_file;
        }
        if rec.version != e.version {
            return Err(Error::Corruption {
                path: path.display().to_string(),
                offset: e.record_offset,
                reason: format!(
                    "record of version {} where {} was expected",
                    rec.version, e.version
                ),
            });
        }
        Ok(rec)
    }

    /// The source offset the latest version reflects: where a reducer resumes.
    pub fn latest_source_offset(&self) -> Result<Option<u64>> {
        Ok(self
            .latest_entry()?
            .and_then(|e| (e.carried_offset != NO_OFFSET).then_some(e.carried_offset)))
    }

    /// Drops every cache keyed by file position if the store was rewound since this handle
    /// last looked: a rewind cuts files back, so positions past the cut may hold new bytes.
    pub(crate) fn notice_rewinds(&self) -> Result<()> {
        let now = self.index().rewinds()?;
        // Under the lock, so no other thread takes the new count for seen before the caches
        // are cleared.
        let mut seen = self
            .inner
            .seen_rewinds
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.is_some_and(|seen| seen != now) {
            self.forget_positions();
        }
        *seen = Some(now);
        Ok(())
    }

    /// Drops the definition cache, the node logs and the pack maps.
    pub(crate) fn forget_positions(&self) {
        if let Ok(mut defs) = self.inner.defs.write() {
            defs.clear();
        }
        if let Ok(mut logs) = self.inner.logs.write() {
            logs.clear();
        }
        self.inner.source.packs.forget_maps();
    }

    /// Every committed version that has not been expired, oldest first.
    pub fn versions(&self) -> Result<Vec<VersionInfo>> {
        self.notice_rewinds()?;
        let latest = self.latest_version()?;
        let mut out = Vec::new();
        for v in 1..=latest {
            let e = self.index().entry(v)?;
            if !e.expired {
                out.push(info_of(&self.read_record(&e)?));
            }
        }
        Ok(out)
    }

    /// Sizes, logical bytes and block sharing over every unexpired version.
    pub fn stats(&self) -> Result<StoreStats> {
        self.notice_rewinds()?;
        let latest = self.latest_version()?;
        let (mut logical, mut referenced, mut stored) = (0u64, 0u64, 0u64);
        let mut batch_blocks: HashMap<(u32, u64), u64> = HashMap::new();
        let mut residual_blocks: HashMap<(u32, u64), u64> = HashMap::new();
        let mut bitmaps: HashMap<(u32, u64), u64> = HashMap::new();
        let mut residual_batches: HashMap<(u32, u64), u64> = HashMap::new();
        let mut latest_rows = BTreeMap::new();
        let mut column_space = ColumnSpaceTally::default();
        for v in 1..=latest {
            let e = self.index().entry(v)?;
            // An expired version is read by nothing: log cleaning may have retired what it
            // references, and a catalog rewrite its record.
            if e.expired {
                continue;
            }
            let rec = self.read_record(&e)?;
            column_space.add(self, &rec)?;
            for t in &rec.tables {
                let keyframe_rows = t.root.as_ref().map_or(0, |r| r.rows);
                let rows = match (&t.overlay, &t.bframe) {
                    (Some(o), _) => keyframe_rows - o.shadowed + o.live,
                    (None, Some(b)) => keyframe_rows - b.hidden_count + b.live_count,
                    (None, None) => keyframe_rows,
                };
                if let Some(r) = &t.root {
                    // At an overlay version, the keyframe's bytes per row times its rows.
                    logical += r.raw_bytes * rows / keyframe_rows.max(1);
                    referenced += r.leaves * u64::from(t.columns);
                }
                if let Some(o) = &t.overlay {
                    referenced += o.batches.len() as u64 * u64::from(t.columns);
                    for (_, b) in o.batches.iter().flat_map(|b| b.present()) {
                        batch_blocks.insert((b.pack, b.offset), u64::from(b.len));
                    }
                }
                if let Some(b) = &t.bframe {
                    referenced += b.residual.len() as u64 * u64::from(t.columns);
                    for (_, c) in b.residual.iter().flat_map(|b| b.present()) {
                        residual_blocks.insert((c.pack, c.offset), u64::from(c.len));
                    }
                    for batch in &b.residual {
                        if let Some((_, c)) = batch.present().next() {
                            residual_batches.insert((c.pack, c.offset), u64::from(batch.rows));
                        }
                    }
                    let m = &b.membership;
                    bitmaps.insert((m.pack, m.offset), u64::from(m.len));
                }
                if v == latest {
                    latest_rows.insert(t.name.clone(), rows);
                }
            }
            stored = rec.blocks_stored;
        }
        let bytes_on_disk = dir_bytes(self.inner.storage.as_ref(), Path::new(""))?;
        let overlays = Path::new(catalog::OVERLAY_DIR);
        let node_log_bytes = if self.inner.storage.exists(overlays)? {
            dir_bytes(self.inner.storage.as_ref(), overlays)?
        } else {
            0
        };
        Ok(StoreStats {
            versions: latest,
            bytes_on_disk,
            logical_bytes: logical,
            blocks_stored: stored,
            blocks_referenced: referenced,
            sharing_ratio: if bytes_on_disk == 0 {
                0.0
            } else {
                logical as f64 / bytes_on_disk as f64
            },
            latest_rows,
            row_batch_bytes: batch_blocks.values().sum(),
            residual_bytes: residual_blocks.values().sum(),
            bitmap_bytes: bitmaps.values().sum(),
            residual_rows: residual_batches.values().sum(),
            node_log_bytes,
            column_space: column_space.finish(),
        })
    }

    /// The shared reader of the overlay node log at `path`.
    pub(crate) fn node_log(&self, path: &Path) -> Arc<reeldb_overlay::NodeLog> {
        if let Ok(logs) = self.inner.logs.read()
            && let Some(l) = logs.get(path)
        {
            return l.clone();
        }
        let log = Arc::new(reeldb_overlay::NodeLog::new(
            self.inner.storage.clone(),
            path,
        ));
        if let Ok(mut logs) = self.inner.logs.write() {
            logs.entry(path.to_path_buf())
                .or_insert_with(|| log.clone());
        }
        log
    }

    pub(crate) fn load_def(&self, r: CatalogRef) -> Result<Arc<LoadedDef>> {
        if let Ok(defs) = self.inner.defs.read()
            && let Some(d) = defs.get(&r)
        {
            return Ok(d.clone());
        }
        let path = catalog::records_path(r.file);
        let payload = records::read(
            self.inner.storage.as_ref(),
            &path,
            r.offset,
            r.len,
            CatalogKind::TableDef,
            None,
        )?;
        self.keep_def(r, &payload)
    }

    /// Decodes the definition `payload`, read from `r`, and keeps it for [`Store::load_def`].
    pub(crate) fn keep_def(&self, r: CatalogRef, payload: &[u8]) -> Result<Arc<LoadedDef>> {
        let path = catalog::records_path(r.file);
        let def: TableDef = version::decode(payload, &path.display().to_string(), r.offset)?;
        let layout = Arc::new(def.layout(r.offset)?);
        let loaded = Arc::new(LoadedDef { def, layout });
        if let Ok(mut defs) = self.inner.defs.write() {
            defs.insert(r, loaded.clone());
        }
        Ok(loaded)
    }
}

/// Indices of the key columns named `keys` in `schema`.
pub(crate) fn key_indices(
    schema: &arrow::datatypes::Schema,
    keys: &[String],
    table: &str,
) -> Result<Vec<usize>> {
    if keys.is_empty() {
        return Err(Error::SchemaMismatch {
            table: table.to_string(),
            reason: "a table needs at least one key column".into(),
        });
    }
    keys.iter()
        .map(|k| {
            schema.index_of(k).map_err(|_| Error::SchemaMismatch {
                table: table.to_string(),
                reason: format!("key column {k} is not in the schema"),
            })
        })
        .collect()
}

pub(crate) fn info_of(rec: &VersionRecord) -> VersionInfo {
    VersionInfo {
        version: rec.version,
        kind: if rec.tables.iter().any(|t| t.bframe.is_some()) {
            VersionKind::BFrame
        } else if rec.kind == 1 {
            VersionKind::Overlay
        } else {
            VersionKind::Keyframe
        },
        committed_at: DateTime::from_timestamp_micros(rec.committed_at).unwrap_or_default(),
        source_offset: rec.source_offset,
        meta: rec.meta.iter().cloned().collect(),
    }
}

fn dir_bytes(storage: &dyn Storage, dir: &Path) -> Result<u64> {
    let mut total = 0;
    for name in storage.list(dir)? {
        let p = dir.join(&name);
        total += if storage.is_dir(&p)? {
            dir_bytes(storage, &p)?
        } else {
            storage.len(&p)?
        };
    }
    Ok(total)
}
