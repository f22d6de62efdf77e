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

    /// The schema; `offset` is where this definition's record is in records.log (for the
    /// error, should the schema bytes not decode).
    pub fn schema(&self, offset: u64) -> Result<SchemaRef> {
        reeldb_keyframe::ipc::guarded(|| {
            reeldb_keyframe::ipc::check_stream(&self.schema_ipc)?;
            StreamReader::try_new(Cursor::new(&self.schema_ipc), None)
                .map(|r| r.schema())
                .map_err(|e| e.to_string())
        })
        .map_err(|reason| Error::CorruptCatalog {
            path: super::records_path().display().to_string(),
            offset,
            reason: format!("table {}: undecodable schema: {reason}", self.name),
        })
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
    /// Root of the generation's keyframe (`None` when it is empty).
    pub root: Option<RootRecord>,
    /// The version that last changed the table.
    pub changed_at: u64,
    /// The version that wrote the generation's keyframe (its generation number).
    pub keyframe_at: u64,
    /// The overlay over the keyframe at this version (`None`: the keyframe is the state).
    pub overlay: Option<OverlayRecord>,
    /// Set when compaction rewrote this version as a B-frame over the keyframe `root` (the
    /// next keyframe of its closed generation, written at `keyframe_at`); `overlay` is then
    /// `None`.
    pub bframe: Option<BFrameRecord>,
}

/// A version of a closed generation as a B-frame (see the compactor crate): the next
/// keyframe's rows minus `hidden`, plus the generation residual's rows in `live`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BFrameRecord {
    /// The generation's residual, sorted by key, shared by all its B-frames.
    pub residual: Vec<BatchRecord>,
    /// The first key of each residual batch.
    pub first_keys: Vec<Vec<u8>>,
    /// Keyframe ordinals hidden at this version: a RoaringTreemap in a bitmap record.
    pub hidden: BlockRecord,
    /// Cardinality of `hidden`.
    pub hidden_count: u64,
    /// Residual rows live at this version: a RoaringBitmap in a bitmap record.
    pub live: BlockRecord,
    /// Cardinality of `live`.
    pub live_count: u64,
}

/// A block of an overlay row batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockRecord {
    /// Pack of the column block.
    pub pack: u32,
    /// Offset of the column block.
    pub offset: u64,
    /// Framed length of the column block.
    pub len: u32,
    /// Content hash of the column block.
    pub hash: [u8; 16],
}

impl From<&BlockRecord> for RecordRef {
    fn from(b: &BlockRecord) -> Self {
        RecordRef {
            pack: b.pack,
            offset: b.offset,
            len: b.len,
            hash: ContentHash(b.hash),
        }
    }
}

impl From<&RecordRef> for BlockRecord {
    fn from(r: &RecordRef) -> Self {
        BlockRecord {
            pack: r.pack,
            offset: r.offset,
            len: r.len,
            hash: r.hash.0,
        }
    }
}

/// The rows one overlay commit upserted into a table: one block per column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BatchRecord {
    /// Rows in the batch.
    pub rows: u32,
    /// One block per table column, in schema order.
    pub columns: Vec<BlockRecord>,
}

/// A table's overlay at one version (see the overlay crate).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OverlayRecord {
    /// Committed length of the generation's node log.
    pub log_len: u64,
    /// Trie root: offset and checksum in the node log.
    pub root: Option<(u64, u64)>,
    /// Deletion-vector blob: offset and checksum.
    pub deletion_vector: (u64, u64),
    /// Live-rows blob: offset and checksum.
    pub live_rows: (u64, u64),
    /// Keys the trie holds.
    pub entries: u64,
    /// Keyframe rows shadowed (the deletion vector's cardinality).
    pub shadowed: u64,
    /// Overlay rows live (the live bitmap's cardinality).
    pub live: u64,
    /// Overlay commits to the table since its keyframe.
    pub commits: u32,
    /// Every row batch of the generation so far, in commit order.
    pub batches: Vec<BatchRecord>,
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
    /// 0 when every table this commit changed was written as a keyframe, 1 when any was
    /// written as an overlay.
    pub kind: u8,
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

/// A decoded table definition and the layout (schema and key codec) built from it.
#[derive(Debug)]
pub struct LoadedDef {
    /// The definition.
    pub def: TableDef,
    /// What the keyframe layer needs to read and write the table.
    pub layout: Arc<reeldb_keyframe::TableLayout>,
}
