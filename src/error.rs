//! The reeldb crate's one error type.

/// Everything a ReelDB operation can fail with. Every variant names what it concerns; a failed
/// operation leaves the store as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Storage and encoding errors from the keyframe layer (its corruption errors become
    /// [`Error::Corruption`]).
    #[error(transparent)]
    Keyframe(reeldb_keyframe::Error),
    /// Overlay node-log errors from the overlay layer (its corruption errors become
    /// [`Error::Corruption`]).
    #[error(transparent)]
    Overlay(reeldb_overlay::Error),
    /// Compaction errors from the compactor layer (its corruption errors become
    /// [`Error::Corruption`]).
    #[error(transparent)]
    Compactor(reeldb_compactor::Error),
    /// An Arrow operation failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The directory holds no store.
    #[error("no ReelDB store at {0}")]
    NotAStore(String),
    /// A store was named by a URL this build cannot open: an object-store or other remote
    /// scheme (`s3://`, `gs://`, `az://`, `https://`, ...), or a `file://` URL naming another
    /// host. Nothing was created or read.
    #[error("cannot open a store at {url}: {reason}")]
    UnsupportedUrl {
        /// The URL as given.
        url: String,
        /// Why it cannot be opened, and what to give instead.
        reason: String,
    },
    /// A remote store's first request failed: the bucket is missing, the credentials are
    /// wrong, or the endpoint does not answer (after the retries the storage options allow).
    /// Nothing was written.
    #[error("cannot reach the store at {url}: {reason}")]
    StorageUnreachable {
        /// The store's URL.
        url: String,
        /// What the object store answered, or why it did not.
        reason: String,
    },
    /// The directory already holds a store (or other files).
    #[error("{0} already exists and is not empty")]
    AlreadyExists(String),
    /// The store was written by an incompatible format version.
    #[error(
        "store format version {found} is not supported: this build reads format {oldest}..={current}. \
         To move the data over, export every table with the release that wrote it \
         (`reel export`), then `reel init` a new store and `reel import` it with this one"
    )]
    UnsupportedFormat {
        /// Version found on disk.
        found: u32,
        /// Oldest version this build reads.
        oldest: u32,
        /// Version this build writes.
        current: u32,
    },
    /// No table of that name exists at the version read.
    #[error("unknown table {table} at version {version}")]
    UnknownTable {
        /// The table name.
        table: String,
        /// The version looked at (0 before any commit).
        version: u64,
    },
    /// The table already exists.
    #[error("table {0} already exists")]
    TableExists(String),
    /// No such version.
    #[error("unknown version {version} (the store has versions 1..={latest})")]
    UnknownVersion {
        /// The version asked for.
        version: u64,
        /// The latest committed version (0 if none).
        latest: u64,
    },
    /// No version was committed at or before the time or source offset asked for.
    #[error("no version at or before {0}")]
    NoVersionBefore(String),
    /// The store has no committed version yet.
    #[error("the store has no versions yet")]
    Empty,
    /// The table has no column of that name.
    #[error("table {table} has no column {column}")]
    UnknownColumn {
        /// The table.
        table: String,
        /// The column asked for.
        column: String,
    },
    /// A column of that name already exists.
    #[error("table {table} already has a column {column}")]
    ColumnExists {
        /// The table.
        table: String,
        /// The column name.
        column: String,
    },
    /// A schema change to a key column that keys cannot take.
    #[error(
        "column {column} is part of table {table}'s key and cannot be {change};          the key is fixed when the table is created"
    )]
    KeyColumnChange {
        /// The table.
        table: String,
        /// The key column.
        column: String,
        /// What was asked: "dropped" or "retyped".
        change: String,
    },
    /// A type change that is not a widening.
    #[error(
        "column {column} of table {table} cannot change from {from} to {to}: only widenings          (a wider integer of the same signedness, float32 to float64, utf8 to large_utf8,          binary to large_binary, a larger decimal precision) keep every stored value"
    )]
    NotAWidening {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its type.
        from: String,
        /// The type asked for.
        to: String,
    },
    /// A column default that is not a value of the column's type.
    #[error("default {value:?} of column {column} in table {table} is not a {data_type}")]
    BadDefault {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The default given.
        value: String,
        /// The column's type.
        data_type: String,
    },
    /// A batch does not match the table's schema.
    #[error("schema mismatch for table {table}: {reason}")]
    SchemaMismatch {
        /// The table.
        table: String,
        /// What differs.
        reason: String,
    },
    /// A key column holds a null, or a non-nullable column holds one.
    #[error("null in column {column} of table {table} (row {row})")]
    NullValue {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Row index within the offending input.
        row: usize,
    },
    /// A patch names a key the table does not hold.
    #[error("key {key} is not in table {table}: a patch only changes existing rows")]
    KeyNotFound {
        /// The table.
        table: String,
        /// The key, printed.
        key: String,
    },
    /// The same key occurs twice among the rows one commit writes to a table.
    #[error("duplicate key {key} in one commit to table {table}")]
    DuplicateKey {
        /// The table.
        table: String,
        /// The key, printed.
        key: String,
    },
    /// Another writer holds the store's lock.
    #[error("another writer holds the lock on {0}")]
    WriterLocked(String),
    /// This writer lost the store's lock before its commit point (on an object store, its
    /// lease lapsed unrenewed, or another writer took it over): nothing of the commit is
    /// visible, and another writer may have committed since. The writer is unusable.
    #[error(
        "the commit of version {version} to {store} was abandoned: this writer lost the \
         store's lock (its lease lapsed, or another writer took it over), and nothing of the \
         commit is visible; open a new writer"
    )]
    WriterConflict {
        /// The store.
        store: String,
        /// The version the commit would have been.
        version: u64,
    },
    /// A sync's destination is not a copy of an earlier state of its source.
    #[error(
        "cannot sync into {store}: {reason}; sync into an empty destination instead (or \
         delete this copy first)"
    )]
    SyncDiverged {
        /// The destination.
        store: String,
        /// How it differs from the source.
        reason: String,
    },
    /// A sync into this store was interrupted: records past its index are the unfinished
    /// copy's, so nothing that would cut the catalog back (a writer, maintenance, a rewind)
    /// or judge it (verification) may run until a sync finishes.
    #[error(
        "an unfinished `reel sync` was copying into this store (its SYNC file is there): run \
         the same sync again to finish it"
    )]
    SyncUnfinished,
    /// Another maintenance run (compact, thin, clean, expire) or a rewind holds the store's
    /// maintenance lock.
    #[error(
        "maintenance is already running on {0} (another compact, thin, clean or expire, or a \
         rewind); retry when it ends"
    )]
    MaintenanceLocked(String),
    /// An earlier failure to make data durable, or a lost lock ([`Error::WriterConflict`]),
    /// left this writer unusable; open a new one.
    #[error("writer poisoned by an earlier durability failure or a lost lock; reopen the store")]
    Poisoned,
    /// A source offset that does not grow.
    #[error("source offset {offered} does not grow past {last} (version {version})")]
    SourceOffsetRegressed {
        /// The offset offered.
        offered: u64,
        /// The last recorded offset.
        last: u64,
        /// The version that recorded it.
        version: u64,
    },
    /// A malformed argument (column list, filter expression, key value ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The version was expired and can no longer be opened.
    #[error("version {version} was expired")]
    Expired {
        /// The version asked for.
        version: u64,
    },
    /// A rewind would purge versions that live readers hold.
    #[error("versions {versions:?} are held by live readers; retry when they are done")]
    VersionsInUse {
        /// The held versions it would purge.
        versions: Vec<u64>,
    },
    /// A SQL query failed to parse, plan or run (DataFusion's message).
    #[error("sql: {0}")]
    Sql(String),
    /// An invariant of the code itself was broken: a bug, not bad input or damage on disk.
    #[error("internal error (a bug in ReelDB, please report it): {0}")]
    Internal(String),
    /// Bytes on disk that fail to verify, in any file of any layer: a checksum, a structural
    /// check, a file cut short or missing. The one variant for damage.
    #[error("corrupt {path} at offset {offset}: {reason}")]
    Corruption {
        /// The file, relative to the store root.
        path: String,
        /// Offset of the bad entry, record, node or block.
        offset: u64,
        /// What failed.
        reason: String,
    },
}

impl Error {
    /// True when the error reports bytes on disk that fail to verify (a checksum, a structural
    /// check or a format header): damage, as opposed to a bad request or an I/O failure.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corruption { .. } | Error::UnsupportedFormat { .. }
        )
    }
}

/// A lower crate's corruption error, lifted.
fn corruption(path: &std::path::Path, offset: u64, reason: String) -> Error {
    Error::Corruption {
        path: path.display().to_string(),
        offset,
        reason,
    }
}

impl From<reeldb_keyframe::Error> for Error {
    fn from(e: reeldb_keyframe::Error) -> Self {
        match e {
            reeldb_keyframe::Error::Corrupt {
                path,
                offset,
                reason,
            } => corruption(&path, offset, reason),
            other => Error::Keyframe(other),
        }
    }
}

impl From<reeldb_overlay::Error> for Error {
    fn from(e: reeldb_overlay::Error) -> Self {
        match e {
            reeldb_overlay::Error::Corrupt {
                path,
                offset,
                reason,
            } => corruption(&path, offset, reason),
            reeldb_overlay::Error::Keyframe(e) => match Error::from(e) {
                Error::Keyframe(e) => Error::Overlay(reeldb_overlay::Error::Keyframe(e)),
                lifted => lifted,
            },
            other => Error::Overlay(other),
        }
    }
}

impl From<reeldb_compactor::Error> for Error {
    fn from(e: reeldb_compactor::Error) -> Self {
        match e {
            reeldb_compactor::Error::Keyframe(e) => match Error::from(e) {
                Error::Keyframe(e) => Error::Compactor(reeldb_compactor::Error::Keyframe(e)),
                lifted => lifted,
            },
            reeldb_compactor::Error::Overlay(e) => match Error::from(e) {
                Error::Overlay(e) => Error::Compactor(reeldb_compactor::Error::Overlay(e)),
                lifted => lifted,
            },
            other => Error::Compactor(other),
        }
    }
}

impl Error {
    /// The storage error underneath, whichever layer passed it up.
    pub(crate) fn storage_cause(&self) -> Option<&reeldb_keyframe::Error> {
        match self {
            Error::Keyframe(e)
            | Error::Overlay(reeldb_overlay::Error::Keyframe(e))
            | Error::Compactor(reeldb_compactor::Error::Keyframe(e))
            | Error::Compactor(reeldb_compactor::Error::Overlay(
                reeldb_overlay::Error::Keyframe(e),
            )) => Some(e),
            _ => None,
        }
    }

    /// True when the error says this process lost the store to another writer: its lock
    /// lapsed, another writer wrote where it meant to, or committed before it.
    pub(crate) fn lost_the_store(&self) -> bool {
        matches!(self, Error::WriterConflict { .. })
            || matches!(
                self.storage_cause(),
                Some(
                    reeldb_keyframe::Error::LockLost { .. }
                        | reeldb_keyframe::Error::Conflict { .. }
                )
            )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps the keyframe layer's lock error to the writer-level one.
pub(crate) fn lock_error(e: reeldb_keyframe::Error, store: &str) -> Error {
    match e {
        reeldb_keyframe::Error::Locked { .. } => Error::WriterLocked(store.to_string()),
        other => Error::from(other),
    }
}
