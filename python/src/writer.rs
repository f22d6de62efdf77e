//! `reeldb.Writer`: stages upserts, deletes, replaces and schema changes and commits them as
//! one version.

use std::sync::{Mutex, PoisonError};

use arrow::array::RecordBatch;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use arrow::datatypes::Field;
use reeldb::ColumnChange;

use crate::convert;
use crate::errors::{IntoPy, ReelError};

/// One staged change to a table.
enum Change {
    Upsert(String, Vec<RecordBatch>),
    Patch(String, Vec<RecordBatch>),
    Delete(String, Vec<RecordBatch>),
    Replace(String, Vec<RecordBatch>),
    Alter(String, ColumnChange),
    DropTable(String),
    RenameTable(String, String),
}

/// The store's one writer (`Store.writer()`), holding the writer lock until `close` or the
/// end of its `with` block. Changes are staged by `upsert`, `patch`, `delete` and `replace` and
/// written by `commit` as one version, all or nothing; a `with` block left without a commit
/// discards what it staged.
#[pyclass(module = "reeldb", frozen)]
pub struct Writer {
    /// The Rust writer; None once closed.
    writer: Mutex<Option<reeldb::Writer>>,
    store: reeldb::Store,
    staged: Mutex<Vec<Change>>,
}

impl Writer {
    /// A Python writer over `writer`.
    pub fn new(store: reeldb::Store, writer: reeldb::Writer) -> Self {
        Writer {
            writer: Mutex::new(Some(writer)),
            store,
            staged: Mutex::new(Vec::new()),
        }
    }

    fn stage(&self, change: Change) -> PyResult<()> {
        self.check_open()?;
        self.staged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(change);
        Ok(())
    }

    fn check_open(&self) -> PyResult<()> {
        match &*self.writer.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(_) => Ok(()),
            None => Err(ReelError::new_err("the writer is closed")),
        }
    }

    /// The key columns of `table` at the latest version (for deletes given as a column).
    fn key_columns(&self, table: &str) -> PyResult<Vec<String>> {
        self.check_open()?;
        let snapshot = self.store.latest().py_err()?;
        Ok(snapshot.table(table).py_err()?.key_columns().to_vec())
    }
}

#[pymethods]
impl Writer {
    /// Stages `data` (Arrow data with the table's schema: a pyarrow Table or RecordBatch or
    /// RecordBatchReader, a polars DataFrame, anything with `__arrow_c_stream__`) to insert,
    /// or to overwrite the rows with the same keys.
    fn upsert(&self, table: String, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let batches = convert::read_batches(data)?;
        self.stage(Change::Upsert(table, batches))
    }

    /// Stages new values for some columns of existing rows: Arrow data holding the key
    /// columns and any of the others; columns it lacks keep their values. At commit, a key
    /// the table does not hold is a `KeyError` naming it, and nothing is committed.
    fn patch(&self, table: String, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let batches = convert::read_batches(data)?;
        self.stage(Change::Patch(table, batches))
    }

    /// Stages deleting the rows with `keys`: Arrow data holding the key columns, or for a
    /// single-column key a pyarrow Array or a list of values. Absent keys are ignored.
    fn delete(&self, table: String, keys: &Bound<'_, PyAny>) -> PyResult<()> {
        let key_columns = self.key_columns(&table)?;
        let batches = convert::read_keys(keys, &key_columns)?;
        self.stage(Change::Delete(table, batches))
    }

    /// Stages replacing the whole state of `table` with `data`; the store works out which
    /// rows changed.
    fn replace(&self, table: String, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let batches = convert::read_batches(data)?;
        self.stage(Change::Replace(table, batches))
    }

    /// Stages adding column `name` of `type` (a pyarrow DataType or a type name such as
    /// `"int64"`) as the table's last column. Rows written before read as `default` (a
    /// literal of the type, as text), or as nulls; a column that is not `nullable` needs a
    /// default. Earlier versions keep their schema; nothing is rewritten.
    #[pyo3(signature = (table, name, r#type, default = None, nullable = true))]
    fn add_column(
        &self,
        table: String,
        name: &str,
        r#type: &Bound<'_, PyAny>,
        default: Option<String>,
        nullable: bool,
    ) -> PyResult<()> {
        let field = Field::new(name, convert::data_type(r#type)?, nullable);
        self.stage(Change::Alter(table, ColumnChange::Add { field, default }))
    }

    /// Stages dropping column `name` (not a key column).
    fn drop_column(&self, table: String, name: String) -> PyResult<()> {
        self.stage(Change::Alter(table, ColumnChange::Drop(name)))
    }

    /// Stages renaming column `old` to `new`.
    fn rename_column(&self, table: String, old: String, new: String) -> PyResult<()> {
        self.stage(Change::Alter(
            table,
            ColumnChange::Rename { from: old, to: new },
        ))
    }

    /// Stages widening column `name` to `type` (a wider integer of the same signedness,
    /// float64, large_utf8, a larger decimal precision).
    fn widen_column(&self, table: String, name: String, r#type: &Bound<'_, PyAny>) -> PyResult<()> {
        let to = convert::data_type(r#type)?;
        self.stage(Change::Alter(
            table,
            ColumnChange::Widen { column: name, to },
        ))
    }

    /// Stages dropping `table`; earlier versions still read it.
    fn drop_table(&self, table: String) -> PyResult<()> {
        self.stage(Change::DropTable(table))
    }

    /// Stages renaming `table` to `new`; earlier versions read it under its old name.
    fn rename_table(&self, table: String, new: String) -> PyResult<()> {
        self.stage(Change::RenameTable(table, new))
    }

    /// Writes everything staged as one new version and returns its number. `source_offset`
    /// records the event-stream position the version reflects (it must grow), `meta` is a
    /// dict of text labels, and `keyframe` forces a keyframe for the changed tables. On any
    /// error nothing is written and the staged changes are dropped.
    #[pyo3(signature = (source_offset = None, meta = None, keyframe = false))]
    fn commit(
        &self,
        py: Python<'_>,
        source_offset: Option<u64>,
        meta: Option<std::collections::BTreeMap<String, String>>,
        keyframe: bool,
    ) -> PyResult<u64> {
        let staged =
            std::mem::take(&mut *self.staged.lock().unwrap_or_else(PoisonError::into_inner));
        let mut guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let writer = guard
            .as_mut()
            .ok_or_else(|| ReelError::new_err("the writer is closed"))?;
        py.detach(|| {
            let mut tx = writer.begin();
            for change in staged {
                match change {
                    Change::Upsert(table, batches) => {
                        for b in batches {
                            tx.upsert(&table, b)?;
                        }
                    }
                    Change::Patch(table, batches) => {
                        for b in batches {
                            tx.patch(&table, b)?;
                        }
                    }
                    Change::Delete(table, batches) => {
                        for b in batches {
                            tx.delete(&table, b)?;
                        }
                    }
                    Change::Replace(table, batches) => {
                        tx.replace(&table, batches)?;
                    }
                    Change::Alter(table, change) => {
                        tx.alter(&table, change)?;
                    }
                    Change::DropTable(table) => {
                        tx.drop_table(&table)?;
                    }
                    Change::RenameTable(from, to) => {
                        tx.rename_table(&from, &to)?;
                    }
                }
            }
            if let Some(offset) = source_offset {
                tx.source_offset(offset);
            }
            for (k, v) in meta.iter().flatten() {
                tx.meta(k, v);
            }
            if keyframe {
                tx.keyframe();
            }
            tx.commit()
        })
        .py_err()
    }

    /// Drops the staged changes without writing them.
    fn rollback(&self) {
        self.staged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Releases the writer lock; the staged changes are dropped.
    fn close(&self) {
        self.rollback();
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    /// The latest committed version, as this writer sees it.
    #[getter]
    fn version(&self) -> PyResult<u64> {
        match &*self.writer.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(w) => Ok(w.version()),
            None => Err(PyValueError::new_err("the writer is closed")),
        }
    }
}
