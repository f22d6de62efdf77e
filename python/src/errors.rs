//! ReelDB errors as Python exceptions: `ReelError` and, under it, `CorruptionError`,
//! `VersionNotFound`, `SchemaError` and `WriterBusy`. Each carries the Rust error's message.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use reeldb::Error;

create_exception!(
    reeldb,
    ReelError,
    PyException,
    "Any ReelDB failure; the message is the Rust error's."
);
create_exception!(
    reeldb,
    CorruptionError,
    ReelError,
    "Stored bytes failed a check: the store is damaged (see `verify` and `rewind`)."
);
create_exception!(
    reeldb,
    VersionNotFound,
    ReelError,
    "The version, time or source offset asked for names no readable version."
);
create_exception!(
    reeldb,
    SchemaError,
    ReelError,
    "Data or a schema change does not fit the table: wrong columns or types, null or \
     duplicate keys, an unknown or existing column, a change a key column cannot take."
);
create_exception!(
    reeldb,
    WriterBusy,
    ReelError,
    "Another writer holds the store's writer lock, or took it over from this one (on an \
     object store, whose locks are leases), or another maintenance run (or a rewind) holds \
     its maintenance lock."
);

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ReelError", py.get_type::<ReelError>())?;
    m.add("CorruptionError", py.get_type::<CorruptionError>())?;
    m.add("VersionNotFound", py.get_type::<VersionNotFound>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("WriterBusy", py.get_type::<WriterBusy>())?;
    Ok(())
}

/// The Python exception for `error`.
pub fn to_py(error: Error) -> PyErr {
    let message = error.to_string();
    if error.is_corruption() {
        return CorruptionError::new_err(message);
    }
    match error {
        Error::UnknownVersion { .. }
        | Error::NoVersionBefore(_)
        | Error::Empty
        | Error::Expired { .. } => VersionNotFound::new_err(message),
        Error::SchemaMismatch { .. }
        | Error::NullValue { .. }
        | Error::DuplicateKey { .. }
        | Error::UnknownColumn { .. }
        | Error::ColumnExists { .. }
        | Error::KeyColumnChange { .. }
        | Error::NotAWidening { .. }
        | Error::BadDefault { .. } => SchemaError::new_err(message),
        Error::WriterLocked(_) | Error::WriterConflict { .. } | Error::MaintenanceLocked(_) => {
            WriterBusy::new_err(message)
        }
        Error::KeyNotFound { .. } => pyo3::exceptions::PyKeyError::new_err(message),
        _ => ReelError::new_err(message),
    }
}

/// A `reeldb::Result` as a `PyResult`.
pub trait IntoPy<T> {
    /// The value, or the error as its Python exception.
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for reeldb::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
