//! Conversions between Python objects and ReelDB's Rust types: Arrow data in and out through
//! the C stream interface, keys and filter values, and reports as dicts.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ffi_stream::ArrowArrayStreamReader;
use arrow::pyarrow::{FromPyArrow, IntoPyArrow, Table as PyArrowTable};
use arrow::record_batch::RecordBatchReader;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyString, PyTuple};
use reeldb::{Key, Value, VersionInfo};

/// `batch` as a pyarrow RecordBatch of the pyarrow schema `schema` (its schema, exported once
/// by the caller): the columns cross as one struct array through the C data interface, so
/// pyarrow parses no schema and opens no stream for it, which is what
/// `RecordBatch::to_pyarrow` does and what made it most of a `get`'s time in Python.
/// pyarrow takes the array over (it marks the exported struct released), so dropping it
/// afterwards frees nothing twice; on an error before that, the drop releases it.
pub fn batch_to_pyarrow<'py>(
    py: Python<'py>,
    batch: RecordBatch,
    schema: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let data = arrow::array::Array::to_data(&arrow::array::StructArray::from(batch));
    let mut array = arrow::ffi::FFI_ArrowArray::new(&data);
    let class = py
        .import(pyo3::intern!(py, "pyarrow"))?
        .getattr(pyo3::intern!(py, "RecordBatch"))?;
    class.call_method1(
        pyo3::intern!(py, "_import_from_c"),
        (std::ptr::addr_of_mut!(array) as usize, schema),
    )
}

/// Every batch of `data`: anything exposing the Arrow PyCapsule stream protocol
/// (`__arrow_c_stream__`: pyarrow Table and RecordBatchReader, polars DataFrame, ...) or the
/// array protocol for one record batch (`__arrow_c_array__`). The buffers are imported, not
/// copied.
pub fn read_batches(data: &Bound<'_, PyAny>) -> PyResult<Vec<RecordBatch>> {
    let py = data.py();
    if data.hasattr(pyo3::intern!(py, "__arrow_c_stream__"))? {
        let reader = ArrowArrayStreamReader::from_pyarrow_bound(data)?;
        return reader
            .collect::<Result<Vec<_>, ArrowError>>()
            .map_err(|e| PyValueError::new_err(format!("reading Arrow data: {e}")));
    }
    if data.hasattr(pyo3::intern!(py, "__arrow_c_array__"))? {
        return Ok(vec![RecordBatch::from_pyarrow_bound(data)?]);
    }
    Err(PyTypeError::new_err(format!(
        "expected Arrow data (an object with __arrow_c_stream__, such as a pyarrow Table or \
         RecordBatchReader or a polars DataFrame), got {}",
        data.get_type().name()?
    )))
}

/// The keys to delete as Arrow data: `keys` itself when it is record-batch shaped, otherwise
/// (a pyarrow Array or ChunkedArray, or a sequence of values) the single key column
/// `key_column`, built by `pyarrow.table`.
pub fn read_keys(keys: &Bound<'_, PyAny>, key_columns: &[String]) -> PyResult<Vec<RecordBatch>> {
    let py = keys.py();
    let pyarrow = py.import("pyarrow")?;
    let is_column = keys.is_instance(&pyarrow.getattr("Array")?)?
        || keys.is_instance(&pyarrow.getattr("ChunkedArray")?)?
        || keys.is_instance_of::<pyo3::types::PyList>()
        || keys.is_instance_of::<PyTuple>();
    if !is_column {
        return read_batches(keys);
    }
    let [column] = key_columns else {
        return Err(PyTypeError::new_err(format!(
            "the table's key has {} columns ({}): pass the keys as Arrow data with those columns",
            key_columns.len(),
            key_columns.join(", ")
        )));
    };
    let columns = PyDict::new(py);
    columns.set_item(column, keys)?;
    read_batches(&pyarrow.call_method1("table", (columns,))?)
}

/// A Python scalar as a ReelDB value: None, bool, int, float, str, bytes, or a date or
/// datetime (as its ISO text, which ReelDB casts to the column's type).
pub fn value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(Value::Int(v));
        }
        return Ok(Value::UInt(obj.extract::<u64>()?));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract::<f64>()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::Str(obj.extract()?));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if obj.hasattr("isoformat")? {
        return Ok(Value::Str(obj.call_method0("isoformat")?.extract()?));
    }
    Err(PyTypeError::new_err(format!(
        "cannot use a {} as a key or filter value",
        obj.get_type().name()?
    )))
}

/// A key: one value, or a tuple of values for a composite key.
pub fn key(obj: &Bound<'_, PyAny>) -> PyResult<Key> {
    if let Ok(t) = obj.cast::<PyTuple>() {
        return Ok(Key(t.iter().map(|v| value(&v)).collect::<PyResult<_>>()?));
    }
    Ok(Key(vec![value(obj)?]))
}

/// Batches from Rust as a `pyarrow.Table`.
pub fn table(py: Python<'_>, schema: SchemaRef, batches: Vec<RecordBatch>) -> PyResult<Py<PyAny>> {
    let table =
        PyArrowTable::try_new(batches, schema).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(table.into_pyarrow(py)?.unbind())
}

/// A stream of batches from Rust as a `pyarrow.RecordBatchReader`, pulled lazily by its
/// consumer (pyarrow, polars or DuckDB) through the C stream interface.
pub fn reader(py: Python<'_>, reader: Box<dyn RecordBatchReader + Send>) -> PyResult<Py<PyAny>> {
    Ok(reader.into_pyarrow(py)?.unbind())
}

/// A fallible iterator of ReelDB batches as an Arrow `RecordBatchReader`.
pub struct Batches<I> {
    schema: SchemaRef,
    inner: I,
}

impl<I> Batches<I> {
    /// `inner`'s batches, each of `schema`.
    pub fn new(schema: SchemaRef, inner: I) -> Self {
        Batches { schema, inner }
    }
}

impl<I: Iterator<Item = reeldb::Result<RecordBatch>>> Iterator for Batches<I> {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner
            .next()
            .map(|r| r.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl<I: Iterator<Item = reeldb::Result<RecordBatch>>> RecordBatchReader for Batches<I> {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// A version's catalog record as a dict: version, kind, committed_at (an aware datetime in
/// UTC), source_offset and meta.
pub fn version_info<'py>(py: Python<'py>, info: &VersionInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", info.version)?;
    d.set_item("kind", info.kind.as_str())?;
    d.set_item("committed_at", info.committed_at)?;
    d.set_item("source_offset", info.source_offset)?;
    d.set_item("meta", info.meta.clone())?;
    Ok(d)
}

/// An Arrow type given as a pyarrow DataType or as its name (`"int64"`, `"utf8"`,
/// `"decimal128(12, 2)"`: see `reeldb::writer::schema_change::parse_type`).
pub fn data_type(obj: &Bound<'_, PyAny>) -> PyResult<arrow::datatypes::DataType> {
    if let Ok(name) = obj.extract::<String>() {
        return reeldb::writer::schema_change::parse_type(&name).map_err(crate::errors::to_py);
    }
    arrow::datatypes::DataType::from_pyarrow_bound(obj)
}
