//! `reeldb.open` and `reeldb.Store`: a store's versions, change queries and maintenance.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::Schema;
use arrow::pyarrow::FromPyArrow;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use reeldb::{Error, Expiry, KeyframeThinning, MaintenancePlan};

use crate::convert;
use crate::errors::IntoPy;
use crate::snapshot::Snapshot;
use crate::writer::Writer;

/// Opens the store at `path` (a local directory, or an `s3://`, `gs://` or `az://` prefix
/// in builds with object storage), creating an empty one there first when there is none and `create` is
/// true. `storage_options` configure an object store (`{"region": ..., "endpoint": ...}`,
/// over the `AWS_*` environment variables; `lock_ttl`, the writer lock's lease in seconds;
/// `cache_dir` and `cache_size`, a local cache of what is read; README, "Object storage").
#[pyfunction]
#[pyo3(signature = (path, create = true, storage_options = None))]
pub fn open(
    py: Python<'_>,
    path: PathBuf,
    create: bool,
    storage_options: Option<std::collections::BTreeMap<String, String>>,
) -> PyResult<Database> {
    let options: Vec<(String, String)> = storage_options.unwrap_or_default().into_iter().collect();
    let store = py
        .detach(|| match reeldb::Store::open_url(&path, &options) {
            Err(Error::NotAStore(_)) if create => reeldb::Store::create_url(&path, &options),
            other => other,
        })
        .py_err()?;
    Ok(Database { store })
}

/// A duration given as seconds or a timedelta, if given.
fn duration(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<Duration>> {
    value
        .map(|o| match o.extract::<Duration>() {
            Ok(d) => Ok(d),
            Err(_) => Duration::try_from_secs_f64(o.extract::<f64>()?)
                .map_err(|e| PyValueError::new_err(format!("{name}: {e}"))),
        })
        .transpose()
}

/// A ReelDB store (`reeldb.open(path)`).
#[pyclass(name = "Store", module = "reeldb", frozen)]
pub struct Database {
    store: reeldb::Store,
}

#[pymethods]
impl Database {
    /// The store's directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }

    /// The latest committed version (0 when there is none).
    #[getter]
    fn latest_version(&self) -> PyResult<u64> {
        self.store.latest_version().py_err()
    }

    /// Creates table `name` with `schema` (a pyarrow Schema, or anything with
    /// `__arrow_c_schema__`) keyed on the columns `key`, in a commit of its own; returns the
    /// new version.
    fn create_table(
        &self,
        py: Python<'_>,
        name: &str,
        schema: &Bound<'_, PyAny>,
        key: Vec<String>,
    ) -> PyResult<u64> {
        let schema = Arc::new(Schema::from_pyarrow_bound(schema)?);
        let store = self.store.clone();
        py.detach(|| {
            let mut writer = store.writer()?;
            let mut tx = writer.begin();
            let key: Vec<&str> = key.iter().map(String::as_str).collect();
            tx.create_table(name, schema, &key)?;
            tx.commit()
        })
        .py_err()
    }

    /// The store's writer: one per store at a time, across processes (`WriterBusy`
    /// otherwise). Use it as a context manager so the lock is released on exit.
    fn writer(&self, py: Python<'_>) -> PyResult<Writer> {
        let store = self.store.clone();
        let writer = py.detach(|| store.writer()).py_err()?;
        Ok(Writer::new(self.store.clone(), writer))
    }

    /// A read handle on one version: the latest by default, or the version numbered
    /// `version`, or the last committed at or before `as_of` (a datetime or ISO 8601 text),
    /// or the last whose source offset is at or before `at_offset`. Give at most one.
    #[pyo3(signature = (version = None, as_of = None, at_offset = None))]
    fn snapshot(
        &self,
        py: Python<'_>,
        version: Option<u64>,
        as_of: Option<&Bound<'_, PyAny>>,
        at_offset: Option<u64>,
    ) -> PyResult<Snapshot> {
        let as_of = as_of.map(as_of_time).transpose()?;
        let store = self.store.clone();
        let snapshot = py
            .detach(|| match (version, as_of, at_offset) {
                (None, None, None) => store.latest(),
                (Some(v), None, None) => store.snapshot(v),
                (None, Some(t), None) => store.snapshot_as_of(t),
                (None, None, Some(o)) => store.snapshot_at_offset(o),
                _ => Err(Error::InvalidArgument(
                    "give at most one of version, as_of and at_offset".into(),
                )),
            })
            .py_err()?;
        Ok(Snapshot::new(self.store.clone(), snapshot))
    }

    /// Every readable version, oldest first, as dicts (version, kind, committed_at,
    /// source_offset, meta).
    fn versions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let store = self.store.clone();
        let versions = py.detach(|| store.versions()).py_err()?;
        let list = PyList::empty(py);
        for info in &versions {
            list.append(convert::version_info(py, info)?)?;
        }
        Ok(list)
    }

    /// The rows of `table` that differ between versions `a` and `b`, in key order, as a
    /// pyarrow Table: `change` (insert, update or delete), the key columns, then `old_<c>` and
    /// `new_<c>` for every other column.
    fn changes(&self, py: Python<'_>, table: &str, a: u64, b: u64) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        let changes = py.detach(|| store.changes(table, a, b)).py_err()?;
        convert::table(py, changes.schema, changes.batches)
    }

    /// Every version at which the row with `key` (a value, or a tuple for a composite key)
    /// changed, with its values then, as a pyarrow Table.
    fn history(&self, py: Python<'_>, table: &str, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let key = convert::key(key)?;
        let store = self.store.clone();
        let history = py.detach(|| store.history(table, key)).py_err()?;
        convert::table(py, history.schema(), vec![history])
    }

    /// Rewrites every closed generation as B-frames, drops their node logs and reclaims the
    /// space of blocks no version uses (as `reel compact` does); beside live readers and beside
    /// a writer (then the packs are not copied: `writer_open` is True). Before reclaiming it
    /// thins keyframes: by default while a thinned version reads at most as many residual
    /// rows as its keyframe has; with `keyframe_every`, to one full keyframe per that many
    /// versions (always the newest; 0 keeps every keyframe), as `reel compact
    /// --keyframe-every` does. On an object store, what it no longer needs stays readable
    /// for `retention` (seconds or a timedelta; default an hour) and is deleted by a run
    /// after that (`files_deleted`, `files_retained`). Returns what it did as a dict.
    #[pyo3(signature = (keyframe_every = None, retention = None))]
    fn compact<'py>(
        &self,
        py: Python<'py>,
        keyframe_every: Option<u64>,
        retention: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let retention = duration(retention, "retention")?.unwrap_or(reeldb::DEFAULT_RETENTION);
        let store = self.store.clone();
        let (report, thinning, cleaning, catalog, reclaimed) = py
            .detach(|| -> reeldb::Result<_> {
                let thinning = match keyframe_every {
                    None => KeyframeThinning::default(),
                    Some(0) => KeyframeThinning::Off,
                    Some(n) => KeyframeThinning::Every(n),
                };
                let plan = MaintenancePlan {
                    thinning,
                    ..MaintenancePlan::default()
                };
                let mut maintenance = store.maintenance()?;
                maintenance.set_retention(retention);
                let r = maintenance.run(&plan, &mut |_, _, _| {})?;
                Ok((r.compaction, r.thinning, r.cleaning, r.catalog, r.reclaimed))
            })
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("generations", report.generations)?;
        d.set_item("versions", report.versions)?;
        d.set_item("residual_rows", report.residual_rows)?;
        d.set_item("mixed_schema_generations", report.mixed_schema_generations)?;
        d.set_item("node_logs_removed", report.node_logs_removed)?;
        d.set_item("bytes_reclaimed", report.bytes_reclaimed)?;
        d.set_item("node_logs_held", report.node_logs_held)?;
        if let Some(t) = thinning {
            d.set_item("keyframes_thinned", t.keyframes)?;
            d.set_item("thinning_runs", t.runs)?;
            d.set_item("versions_rebased", t.versions)?;
            d.set_item("rebased_residual_rows", t.residual_rows)?;
        }
        d.set_item("packs_copied", cleaning.copied)?;
        d.set_item("writer_open", cleaning.writer_open)?;
        d.set_item("catalog_rewritten", catalog.rewritten)?;
        d.set_item("catalog_bytes_after", catalog.bytes_after)?;
        d.set_item("pack_bytes_before", cleaning.bytes_before)?;
        d.set_item("pack_bytes_after", cleaning.bytes_after)?;
        d.set_item("files_deleted", reclaimed.files_deleted)?;
        d.set_item("files_retained", reclaimed.files_retained)?;
        Ok(d)
    }

    /// Expires versions: all but the newest `keep_last`, or every version `before` one, or
    /// every version older than `older_than` (seconds or a timedelta); give exactly one.
    /// The latest version and versions whose metadata has a key in `keep_meta` stay.
    /// Returns the versions expired.
    #[pyo3(signature = (keep_last = None, before = None, older_than = None, keep_meta = Vec::new()))]
    fn expire(
        &self,
        py: Python<'_>,
        keep_last: Option<u64>,
        before: Option<u64>,
        older_than: Option<&Bound<'_, PyAny>>,
        keep_meta: Vec<String>,
    ) -> PyResult<Vec<u64>> {
        let older_than = duration(older_than, "older_than")?;
        let expiry = match (keep_last, before, older_than) {
            (Some(n), None, None) => Expiry::KeepLast(n),
            (None, Some(v), None) => Expiry::Before(v),
            (None, None, Some(d)) => Expiry::OlderThan(d),
            _ => {
                return Err(PyValueError::new_err(
                    "give exactly one of keep_last, before and older_than",
                ));
            }
        };
        let store = self.store.clone();
        py.detach(|| {
            let keep: Vec<&str> = keep_meta.iter().map(String::as_str).collect();
            let mut maintenance = store.maintenance()?;
            let expired = maintenance.expire(expiry, &keep)?;
            maintenance.rewrite_catalog(reeldb::maintenance::catalog::REWRITE_AT_DEAD)?;
            Ok::<_, reeldb::Error>(expired)
        })
        .py_err()
    }

    /// Drops every version above `version`, all or nothing; returns a dict with `to`,
    /// `purged` and `source_offset` (where to refill from the event stream).
    fn rewind<'py>(&self, py: Python<'py>, version: u64) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store.clone();
        let rewound = py.detach(|| store.rewind(version)).py_err()?;
        let d = PyDict::new(py);
        d.set_item("to", rewound.to)?;
        d.set_item("purged", rewound.purged)?;
        d.set_item("source_offset", rewound.source_offset)?;
        Ok(d)
    }

    /// Checks every stored byte of versions `first..=last` (all by default). Returns a dict:
    /// `intact`, `newest_intact`, `versions` (one dict per version: `version` and `problem`,
    /// None when intact), `leaves_checked`, `ignored_index_tail`, `lost_versions` (a
    /// (first, last) pair of committed versions whose index entries are lost, or None) and
    /// `damaged_heads` (versions whose head, on an object store, is damaged: opens of them
    /// read the index instead).
    #[pyo3(signature = (first = 1, last = None))]
    fn verify<'py>(
        &self,
        py: Python<'py>,
        first: u64,
        last: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store.clone();
        let report = py
            .detach(|| {
                let last = match last {
                    Some(l) => l,
                    None => store.latest_version()?,
                };
                store.verify(first..=last, &mut |_| {})
            })
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("intact", report.is_intact())?;
        d.set_item("newest_intact", report.newest_intact)?;
        let versions = PyList::empty(py);
        for check in &report.versions {
            let c = PyDict::new(py);
            c.set_item("version", check.version)?;
            c.set_item("problem", check.problem.as_ref().map(|e| e.to_string()))?;
            versions.append(c)?;
        }
        d.set_item("versions", versions)?;
        d.set_item("leaves_checked", report.leaves_checked)?;
        d.set_item("ignored_index_tail", report.ignored_index_tail)?;
        d.set_item("damaged_heads", report.damaged_heads)?;
        d.set_item("lost_versions", report.lost_versions)?;
        Ok(d)
    }

    /// Copies this store at its latest version into `dst` (a directory or an object-store
    /// URL), copying only what `dst` lacks; run again to bring the copy up to date or to
    /// finish an interrupted one (README, "Replication"). `storage_options` configure `dst`.
    /// Returns a dict: `mode` ("fresh", "append", "replace" or "up-to-date"),
    /// `from_version`, `to_version`, `files_written`, `bytes_copied`, `resumed`,
    /// `files_removed` and `files_kept` (files of `dst` its source no longer has, deleted, or
    /// kept for `retention` on an object store, seconds or a timedelta, default an hour, or
    /// for readers of `dst`), `leftovers_error` (why they were kept, when disposing of them
    /// failed after the copy was made; else None), and with `verify`, `intact` (the versions
    /// copied verified whole).
    #[pyo3(signature = (dst, verify = false, storage_options = None, retention = None))]
    fn sync<'py>(
        &self,
        py: Python<'py>,
        dst: PathBuf,
        verify: bool,
        storage_options: Option<std::collections::BTreeMap<String, String>>,
        retention: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store.clone();
        let options: Vec<(String, String)> =
            storage_options.unwrap_or_default().into_iter().collect();
        let sync = reeldb::SyncOptions {
            verify,
            retention: duration(retention, "retention")?.unwrap_or(reeldb::DEFAULT_RETENTION),
        };
        let report = py
            .detach(|| store.sync_to_with(&dst, &options, &sync))
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("mode", report.mode.as_str())?;
        d.set_item("from_version", report.from_version)?;
        d.set_item("to_version", report.to_version)?;
        d.set_item("files_written", report.files_written)?;
        d.set_item("bytes_copied", report.bytes_copied)?;
        d.set_item("resumed", report.resumed)?;
        d.set_item("files_removed", report.files_removed)?;
        d.set_item("files_kept", report.files_kept)?;
        d.set_item(
            "leftovers_error",
            report.leftovers_error.as_ref().map(|e| e.to_string()),
        )?;
        if let Some(checked) = &report.verified {
            d.set_item("intact", checked.is_intact())?;
        }
        Ok(d)
    }

    /// Sizes and sharing as a dict: versions, bytes_on_disk, logical_bytes (full copies of
    /// every version), sharing_ratio, block counts, the overlay, residual and bitmap bytes,
    /// and latest_rows per table.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store.clone();
        let s = py.detach(|| store.stats()).py_err()?;
        let d = PyDict::new(py);
        d.set_item("versions", s.versions)?;
        d.set_item("bytes_on_disk", s.bytes_on_disk)?;
        d.set_item("logical_bytes", s.logical_bytes)?;
        d.set_item("sharing_ratio", s.sharing_ratio)?;
        d.set_item("blocks_stored", s.blocks_stored)?;
        d.set_item("blocks_referenced", s.blocks_referenced)?;
        d.set_item("row_batch_bytes", s.row_batch_bytes)?;
        d.set_item("residual_bytes", s.residual_bytes)?;
        d.set_item("node_log_bytes", s.node_log_bytes)?;
        d.set_item("residual_rows", s.residual_rows)?;
        d.set_item("bitmap_bytes", s.bitmap_bytes)?;
        d.set_item("latest_rows", s.latest_rows)?;
        let space = PyList::empty(py);
        for c in &s.column_space {
            let e = PyDict::new(py);
            e.set_item("table", &c.table)?;
            e.set_item("column", &c.column)?;
            e.set_item("encoding", c.encoding)?;
            e.set_item("blocks", c.blocks)?;
            e.set_item("bytes", c.bytes)?;
            space.append(e)?;
        }
        d.set_item("column_space", space)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("reeldb.Store({:?})", self.store.path())
    }
}

/// `as_of` as a UTC time: an aware datetime, or text `reel` accepts (RFC 3339, or
/// `YYYY-MM-DD HH:MM:SS` UTC, or a date).
fn as_of_time(as_of: &Bound<'_, PyAny>) -> PyResult<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = as_of.extract::<chrono::DateTime<chrono::Utc>>() {
        return Ok(t);
    }
    let text: String = as_of.extract()?;
    reeldb::parse_timestamp(&text).py_err()
}
