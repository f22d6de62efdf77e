//! `reeldb` for Python: the native module `reeldb._reeldb`. It converts and nothing more: every
//! call goes to the `reeldb` crate, Arrow data crosses the boundary through the Arrow C stream
//! interface (PyCapsule protocol) without copies, and long calls release the GIL.

mod convert;
mod errors;
mod snapshot;
mod store;
mod writer;

use pyo3::prelude::*;

/// The native module; `reeldb/__init__.py` re-exports it.
#[pymodule]
fn _reeldb(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(store::open, m)?)?;
    m.add_class::<store::Database>()?;
    m.add_class::<snapshot::Snapshot>()?;
    m.add_class::<writer::Writer>()?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
