//! The keyframe crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the keyframe layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory concerned, relative to the store root.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Bytes on disk do not verify: a checksum, magic number, length or structure is wrong.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The file concerned, relative to the store root.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What failed to verify.
        reason: String,
    },
    /// Another process (or handle) holds the lock.
    #[error("{path} is locked by another writer")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A held lock was lost: on an object store, its lease expired unrenewed, or another
    /// process took it over or deleted it. Its holder must stop writing.
    #[error("the lock {path} was lost (its lease expired, or another process took it over)")]
    LockLost {
        /// The lock.
        path: PathBuf,
    },
    /// A file or object that must be created was created by someone else first: on an
    /// object store, another writer appended to the same file at the same offset.
    #[error("{path} was written by another writer first")]
    Conflict {
        /// The file concerned, relative to the store root.
        path: PathBuf,
    },
    /// The storage cannot do what was asked (an object store cannot rewrite a file written
    /// in several segments, or cut one back inside a segment).
    #[error("{what} is not supported by this storage ({path})")]
    Unsupported {
        /// The file concerned, relative to the store root.
        path: PathBuf,
        /// What was asked.
        what: String,
    },
    /// An Arrow operation failed (encoding, decoding or a compute kernel).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A column type the keyframe layer cannot store or use as a key.
    #[error("unsupported data type for column {column}: {data_type}")]
    UnsupportedType {
        /// Column name.
        column: String,
        /// The offending type, as Arrow prints it.
        data_type: String,
    },
    /// Something exceeds a limit of the on-disk format.
    #[error("{what} is {size}, over the format's limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A table layout contradicts itself (two columns in one slot, a default of another
    /// type): the caller built it wrong.
    #[error("bad table layout: {0}")]
    BadLayout(String),
    /// A predicate names a column that is not in the table.
    #[error("unknown column {0}")]
    UnknownColumn(String),
    /// A value cannot be compared with a column (e.g. a string against an int column).
    #[error("value {value} does not fit column {column}: {reason}")]
    BadValue {
        /// Column name.
        column: String,
        /// The value, as printed.
        value: String,
        /// Why it does not fit.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True for an [`Error::Io`] saying the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// Builds an [`Error::Corrupt`] for `path` at `offset`.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}
