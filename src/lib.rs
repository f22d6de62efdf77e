//! # ReelDB
//!
//! An embedded store of versioned analytical state. One trusted writer commits snapshots of
//! an application's state (tables of aggregates folded from an event stream); readers open any
//! version, by number, commit time or source-stream offset, and scan, filter, get and
//! range-scan it as Arrow record batches.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use reeldb::{Filter, ScanOptions, Store};
//!
//! # fn main() -> Result<(), reeldb::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::create(dir.path().join("store"))?;
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("status", DataType::Utf8, true),
//!     Field::new("amount", DataType::Float64, true),
//! ]));
//! let rows = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(Int64Array::from(vec![1, 2, 3])),
//!     Arc::new(StringArray::from(vec!["new", "paid", "new"])),
//!     Arc::new(Float64Array::from(vec![10.0, 20.0, 30.0])),
//! ])?;
//!
//! let mut writer = store.writer()?;
//! let mut tx = writer.begin();
//! tx.create_table("orders", schema.clone(), &["id"])?;
//! tx.upsert("orders", rows)?;
//! tx.source_offset(100);
//! let v1 = tx.commit()?;
//!
//! let mut tx = writer.begin();
//! tx.delete("orders", RecordBatch::try_new(
//!     Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
//!     vec![Arc::new(Int64Array::from(vec![2]))],
//! )?)?;
//! let v2 = tx.commit()?;
//!
//! // Any version stays readable.
//! let old = store.snapshot(v1)?.table("orders")?;
//! assert_eq!(old.num_rows(), 3);
//! assert!(old.get(2)?.is_some());
//! let new = store.snapshot(v2)?.table("orders")?;
//! assert!(new.get(2)?.is_none());
//!
//! let news: usize = new
//!     .scan(&ScanOptions::new().columns(&["id"]).filter(Filter::eq("status", "new")))?
//!     .map(|b| b.map(|b| b.num_rows()))
//!     .sum::<Result<usize, _>>()?;
//! assert_eq!(news, 2);
//! assert_eq!(store.latest_source_offset()?, Some(100));
//! # Ok(())
//! # }
//! ```

// Below both sides: the catalog, the store handle, leases, errors, values.
pub mod catalog;
mod column_space;
pub mod error;
pub mod lease;
mod location;
pub mod store;
pub mod sync;
pub mod timestamp;
pub mod value;
// The read side (snapshots, overlay views, changes, filters) and the write side (the writer,
// overlay commits, schema changes); maintenance and SQL above them.
pub mod maintenance;
pub mod read;
#[cfg(feature = "sql")]
pub mod sql;
pub mod writer;

pub use error::{Error, Result};
pub use location::{DEFAULT_CACHE_SIZE, StorageOptions};
pub use maintenance::expire::Expiry;
pub use maintenance::retire::{DEFAULT_RETENTION, Reclaimed};
pub use maintenance::rewind::Rewound;
pub use maintenance::verify::{VerifyReport, VersionCheck};
pub use maintenance::{
    CatalogRewrite, Cleaning, Compaction, KeyframeThinning, Maintenance, MaintenancePlan,
    MaintenanceReport, MaintenanceStep, THIN_RESIDUAL_BOUND, THIN_RESIDUAL_MIN_ROWS, Thinning,
};
pub use read::changes::{ChangeKind, Changes, DiffMethod};
pub use read::filter::Filter;
pub use read::snapshot::{
    ColumnZone, DEFAULT_BATCH_ROWS, Range, Scan, ScanOptions, Snapshot, Table,
};
pub use reeldb_keyframe::TreeShape;
/// Storage on object stores (feature `object-store`): [`object_storage::ObjectStorage`].
#[cfg(feature = "object-store")]
pub use reeldb_keyframe::object_storage;
/// The storage trait all file I/O goes through, and its local-filesystem implementation.
pub use reeldb_keyframe::storage;
pub use store::{ColumnSpace, Store, StoreStats, VersionInfo, VersionKind};
pub use sync::{SyncMode, SyncOptions, SyncReport};
pub use timestamp::parse_timestamp;
pub use value::{Key, Value};
pub use writer::schema_change::ColumnChange;
pub use writer::{KeyframePolicy, Transaction, Writer, WriterOptions};

/// The README's examples, compiled and run as doc tests (they include SQL).
#[cfg(all(doctest, feature = "sql"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
