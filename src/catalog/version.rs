//! The payloads of catalog records, encoded with postcard (serde): a table definition and a
//! version record. Field order is the encoding order; see design/FORMAT.md.

use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use reeldb_keyframe::format::ContentHash;
use reeldb_keyframe::node::{ChildEntry, RecordRef};
use reeldb_keyframe::tree::Root;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A table's definition, written once when the table is created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableDef {
    /// Table name.
    pub name: String,
    /// The Arrow schema as an IPC stream holding only the schema message.
    pub schema_ipc: Vec<u8>,
    /// Names of the primary-key columns, in key order.
    pub key_columns: Vec<String>,
}

impl TableDef {
    /// A definition for `schema` keyed on `key_columns`.
    pub fn new(name: &str, schema: &Schema, key_columns: &[String]) -> Result<Self> {
        let mut schema_ipc = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut schema_ipc, schema)?;
            w.finish()?;
        }
        Ok(TableDef {
            name: name.to_string(),
            schema_ipc,
            key_columns: key_columns.to_vec(),
        })
    }

    /// The schema.
    pub fn schema(&self) -> Result<SchemaRef> {
        let r = StreamReader::try_new(Cursor::new(&self.schema_ipc), None)?;
        Ok(r.schema())
    }
}

/// Where a catalog record is in records.log.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct CatalogRef {
    /// Offset of the framed record.
    pub offset: u64,
    /// Framed length.
    pub len: u32,
}

/// The root of a table's keyframe, as stored in a version record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RootRecord {
    /// Pack of the root node.
    pub pack: u32,
    /// Offset of the root node.
    pub offset: u64,
    /// Framed length of the root node.
    pub len: u32,
    /// Content hash of the root node.
    pub hash: [u8; 16],
    /// Encoded key of the table's first row.
    pub first_key: Vec<u8>,
    /// Rows in the table.
    pub rows: u64,
    /// Uncompressed bytes of the table's column blocks.
    pub raw_bytes: u64,
    /// Number of leaves.
    pub leaves: u64,
    /// 0 when the root is a leaf, else its level.
    pub height: u8,
}

impl From<&Root> for RootRecord {
    fn from(r: &Root) -> Self {
        RootRecord {
            pack: r.entry.node.pack,
            offset: r.entry.node.offset,
            len: r.entry.node.len,
            hash: r.entry.node.hash.0,
            first_key: r.entry.first_key.clone(),
            rows: r.entry.rows,
            raw_bytes: r.entry.raw_bytes,
            leaves: r.entry.leaves,
            height: r.height,
        }
    }
}

impl From<&RootRecord> for Root {
    fn from(r: &RootRecord) -> Self {
        Root {
            entry: ChildEntry {
                first_key: r.first_key.clone(),
                node: RecordRef {
                    pack: r.pack,
                    offset: r.offset,
                    len: r.len,
                    hash: ContentHash(r.hash),
                },
                rows: r.rows,
                raw_bytes: r.raw_bytes,
                leaves: r.leaves,
            },
            height: r.height,
        }
    }
}

/// One table's state at a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    /// Table name.
    pub name: String,
    /// Its definition record.
    pub def: CatalogRef,
    /// Number of columns (for block counts without reading the definition).
    pub columns: u32,
    /// Root of its keyframe (`None` when empty).
    pub root: Option<RootRecord>,
    /// The version that last changed the table.
    pub changed_at: u64,
}

/// Everything a version is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionRecord {
    /// The version number.
    pub version: u64,
    /// Commit time, microseconds since the Unix epoch.
    pub committed_at: i64,
    /// The source-stream position this version reflects.
    pub source_offset: Option<u64>,
    /// User metadata.
    pub meta: Vec<(String, String)>,
    /// Every table, sorted by name.
    pub tables: Vec<TableEntry>,
    /// Committed length of every pack file.
    pub packs: Vec<(u32, u64)>,
    /// Column blocks stored in packs so far (each distinct block once).
    pub blocks_stored: u64,
    /// Bytes of records appended to packs so far.
    pub pack_bytes_appended: u64,
}

/// Encodes a catalog payload.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::InvalidArgument(format!("catalog encode: {e}")))
}

/// Decodes a catalog payload read from `path` at `offset`.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], path: &str, offset: u64) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::CorruptCatalog {
        path: path.to_string(),
        offset,
        reason: format!("undecodable record: {e}"),
    })
}

/// Shared, decoded table definition with its schema.
#[derive(Debug)]
pub struct LoadedDef {
    /// The definition.
    pub def: TableDef,
    /// Its schema.
    pub schema: SchemaRef,
    /// What the keyframe layer needs to read and write the table.
    pub layout: Arc<reeldb_keyframe::TableLayout>,
}

/// Shorthand.
pub type LoadedDefRef = Arc<LoadedDef>;
