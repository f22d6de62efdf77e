//! `reeldb.Snapshot`: one version, read. Scans and ranges stream as pyarrow
//! RecordBatchReaders; gets, SQL results and schemas come back as pyarrow objects.

use std::collections::HashMap;
use std::ops::Bound as KeyBound;
use std::sync::{Mutex, PoisonError};

use arrow::pyarrow::ToPyArrow;
use pyo3::prelude::*;
#[cfg(feature = "sql")]
use reeldb::sql::SqlSession;
use reeldb::{Filter, Key, ScanOptions};

use crate::convert::{self, Batches};
use crate::errors::IntoPy;

/// A read handle on one version (`Store.snapshot()`); it keeps that version readable while
/// it lives, even if the version is expired meanwhile.
#[pyclass(module = "reeldb", frozen)]
pub struct Snapshot {
    /// The store, for SQL sessions over this version.
    #[cfg_attr(not(feature = "sql"), allow(dead_code))]
    store: reeldb::Store,
    snapshot: reeldb::Snapshot,
    /// The SQL session over this version, made on the first query.
    #[cfg(feature = "sql")]
    sql: Mutex<Option<SqlSession>>,
    /// Each table's schema as pyarrow's, made on its first `get`.
    schemas: Mutex<HashMap<String, Py<PyAny>>>,
}

impl Snapshot {
    /// A handle on `snapshot` of `store`.
    pub fn new(store: reeldb::Store, snapshot: reeldb::Snapshot) -> Self {
        Snapshot {
            store,
            snapshot,
            #[cfg(feature = "sql")]
            sql: Mutex::new(None),
            schemas: Mutex::new(HashMap::new()),
        }
    }
}

/// The filters of `filter`: None, one expression, or a list of expressions ANDed together,
/// each as `reel scan --where` takes it (`col = v`, `<`, `<=`, `>`, `>=`, `col between a and
/// b`, `col in (a, b)`).
fn filters(filter: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Filter>> {
    let Some(filter) = filter else {
        return Ok(Vec::new());
    };
    let texts: Vec<String> = match filter.extract::<String>() {
        Ok(one) => vec![one],
        Err(_) => filter.extract()?,
    };
    texts.iter().map(|t| Filter::parse(t).py_err()).collect()
}

#[pymethods]
impl Snapshot {
    /// The version read.
    #[getter]
    fn version(&self) -> u64 {
        self.snapshot.version()
    }

    /// The version's catalog record as a dict (version, kind, committed_at, source_offset,
    /// meta).
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        convert::version_info(py, &self.snapshot.info())
    }

    /// The names of the tables at this version.
    fn tables(&self) -> Vec<String> {
        self.snapshot.table_names()
    }

    /// The schema of `table` as a pyarrow Schema.
    fn schema(&self, py: Python<'_>, table: &str) -> PyResult<Py<PyAny>> {
        let t = self.snapshot.table(table).py_err()?;
        Ok(t.schema().to_pyarrow(py)?.unbind())
    }

    /// The key columns of `table`.
    fn key_columns(&self, table: &str) -> PyResult<Vec<String>> {
        Ok(self.snapshot.table(table).py_err()?.key_columns().to_vec())
    }

    /// The number of rows of `table` at this version.
    fn count(&self, table: &str) -> PyResult<u64> {
        Ok(self.snapshot.table(table).py_err()?.num_rows())
    }

    /// Every row of `table` (only `columns`, if given) that passes `filter` (one expression
    /// or a list ANDed, e.g. `"region = 'r7'"`), as a pyarrow RecordBatchReader that decodes
    /// as it is read. Rows come in key order at a keyframe version; at other versions the
    /// overlay's rows come last (use `range` for key order at any version). With
    /// `dictionaries=True`, string and binary columns come as pyarrow dictionary arrays
    /// (dictionary-coded blocks hand over their codes without building each string: faster
    /// group-bys on low-cardinality columns; each batch has its own dictionary, so call
    /// `unify_dictionaries()` on the table before pyarrow's `group_by`). Batches decoded
    /// smaller than `batch_rows` rows are joined to at least that many (one copy).
    #[pyo3(signature = (table, columns = None, filter = None, dictionaries = false, batch_rows = reeldb::DEFAULT_BATCH_ROWS))]
    fn scan(
        &self,
        py: Python<'_>,
        table: &str,
        columns: Option<Vec<String>>,
        filter: Option<&Bound<'_, PyAny>>,
        dictionaries: bool,
        batch_rows: usize,
    ) -> PyResult<Py<PyAny>> {
        let t = self.snapshot.table(table).py_err()?;
        let mut options = ScanOptions::new().in_parallel().in_batches_of(batch_rows);
        if dictionaries {
            options = options.with_dictionaries();
        }
        if let Some(columns) = &columns {
            options = options.columns(columns);
        }
        for f in filters(filter)? {
            options = options.filter(f);
        }
        let scan = py.detach(|| t.scan(&options)).py_err()?;
        convert::reader(py, Box::new(Batches::new(scan.schema(), scan)))
    }

    /// The row of `table` with `key` (a value, or a tuple for a composite key) as a one-row
    /// pyarrow RecordBatch, or None.
    fn get(&self, py: Python<'_>, table: &str, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let key = convert::key(key)?;
        let t = self.snapshot.table(table).py_err()?;
        let Some(row) = py.detach(|| t.get(key)).py_err()? else {
            return Ok(py.None());
        };
        // The lock is never held while Python runs (a thread waiting on it would hold the
        // GIL the holder needs); a panic while it was held leaves the map whole, since
        // entries are only added.
        let cached = self
            .schemas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(table)
            .map(|s| s.clone_ref(py));
        let schema = match cached {
            Some(s) => s,
            None => {
                let s = row.schema().to_pyarrow(py)?.unbind();
                self.schemas
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(table.to_string(), s.clone_ref(py));
                s
            }
        };
        Ok(convert::batch_to_pyarrow(py, row, schema.bind(py))?.unbind())
    }

    /// The rows of `table` with keys from `lo` (inclusive) to `hi` (exclusive), in key order,
    /// or descending with `reverse`; None leaves that end open. A pyarrow RecordBatchReader.
    #[pyo3(signature = (table, lo = None, hi = None, reverse = false))]
    fn range(
        &self,
        py: Python<'_>,
        table: &str,
        lo: Option<&Bound<'_, PyAny>>,
        hi: Option<&Bound<'_, PyAny>>,
        reverse: bool,
    ) -> PyResult<Py<PyAny>> {
        let lo = match lo {
            Some(k) => KeyBound::Included(convert::key(k)?),
            None => KeyBound::Unbounded,
        };
        let hi = match hi {
            Some(k) => KeyBound::Excluded(convert::key(k)?),
            None => KeyBound::Unbounded,
        };
        let t = self.snapshot.table(table).py_err()?;
        let schema = t.schema();
        let range = py.detach(|| t.range::<Key, _>((lo, hi))).py_err()?;
        if reverse {
            convert::reader(py, Box::new(Batches::new(schema, range.rev())))
        } else {
            convert::reader(py, Box::new(Batches::new(schema, range)))
        }
    }

    #[cfg(feature = "sql")]
    /// Runs SQL (DataFusion) over this version and returns the result as a pyarrow Table.
    /// Tables read this version unless the query says `VERSION AS OF n` or `TIMESTAMP AS OF
    /// '...'`; `reel_changes('t', a, b)` and `reel_history('t', key)` are table functions.
    fn sql(&self, py: Python<'_>, query: &str) -> PyResult<Py<PyAny>> {
        let (schema, batches) = py
            .detach(|| {
                let mut session = self.sql.lock().unwrap_or_else(PoisonError::into_inner);
                let session = match session.as_mut() {
                    Some(s) => s,
                    None => session.insert(SqlSession::open(
                        &self.store,
                        Some(self.snapshot.version()),
                    )?),
                };
                session.query_with_schema(query)
            })
            .py_err()?;
        convert::table(py, schema, batches)
    }

    fn __repr__(&self) -> String {
        format!("reeldb.Snapshot(version={})", self.snapshot.version())
    }
}
