//! The payloads of catalog records: a table definition and a version record, each in an
//! explicit little-endian layout (design/FORMAT.md, "Catalog payloads"). Every struct here
//! writes its fields in declaration order through [`Codec`]; decoding checks every tag and
//! refuses trailing bytes.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use reeldb_keyframe::format::{ContentHash, DecodeError, Decoder, Encoder};
use reeldb_keyframe::node::{ChildEntry, RecordRef};
use reeldb_keyframe::tree::{ColumnSlot, Root, TableLayout};

use crate::error::{Error, Result};

/// Fields written and read in a fixed little-endian layout.
pub trait Codec: Sized {
    /// Appends the value's bytes.
    fn put(&self, e: &mut Encoder);
    /// Reads a value written by [`Codec::put`].
    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError>;
}

/// Encodes a catalog payload.
pub fn encode<T: Codec>(value: &T) -> Vec<u8> {
    let mut e = Encoder::new();
    value.put(&mut e);
    e.finish()
}

/// Decodes a catalog payload read from `path` at `offset`; every byte must belong to it.
pub fn decode<T: Codec>(bytes: &[u8], path: &str, offset: u64) -> Result<T> {
    let corrupt = |e: DecodeError| Error::Corruption {
        path: path.to_string(),
        offset,
        reason: format!("undecodable record: {}", e.0),
    };
    let mut d = Decoder::new(bytes);
    let value = T::take(&mut d).map_err(corrupt)?;
    d.finish().map_err(corrupt)?;
    Ok(value)
}

fn put_str(e: &mut Encoder, s: &str) {
    e.bytes(s.as_bytes());
}

fn take_str(d: &mut Decoder<'_>) -> std::result::Result<String, DecodeError> {
    String::from_utf8(d.bytes()?.to_vec()).map_err(|_| DecodeError("string is not UTF-8".into()))
}

fn put_opt<T>(e: &mut Encoder, v: &Option<T>, put: impl FnOnce(&mut Encoder, &T)) {
    match v {
        Some(v) => {
            e.u8(1);
            put(e, v);
        }
        None => {
            e.u8(0);
        }
    }
}

fn take_opt<'a, T>(
    d: &mut Decoder<'a>,
    take: impl FnOnce(&mut Decoder<'a>) -> std::result::Result<T, DecodeError>,
) -> std::result::Result<Option<T>, DecodeError> {
    match d.u8()? {
        0 => Ok(None),
        1 => take(d).map(Some),
        t => Err(DecodeError(format!("bad option tag {t}"))),
    }
}

fn put_list<T>(e: &mut Encoder, items: &[T], mut put: impl FnMut(&mut Encoder, &T)) {
    e.u32(items.len() as u32);
    for item in items {
        put(e, item);
    }
}

fn take_list<'a, T>(
    d: &mut Decoder<'a>,
    mut take: impl FnMut(&mut Decoder<'a>) -> std::result::Result<T, DecodeError>,
) -> std::result::Result<Vec<T>, DecodeError> {
    let n = d.u32()? as usize;
    // Every element takes at least one byte: a corrupt count cannot allocate past the input.
    if n > d.remaining() {
        return Err(DecodeError(format!(
            "{n} elements in {} bytes",
            d.remaining()
        )));
    }
    (0..n).map(|_| take(d)).collect()
}

/// One column of a table definition: where it lives in leaves and row batches, and what rows
/// written before it existed read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// Its slot in leaves and row batches (kept for the column's life, across renames).
    pub slot: u16,
    /// How many times its type was widened.
    pub epoch: u16,
    /// The default, as a literal of the column's type; `None`: nulls.
    pub default: Option<String>,
}

/// A table's definition at some versions: written when the table is created and again at
/// every change to its name or columns, each version naming the one it reads with.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    /// The table's id, assigned at creation and never reused.
    pub id: u32,
    /// Table name.
    pub name: String,
    /// The Arrow schema as an IPC stream holding only the schema message.
    pub schema_ipc: Vec<u8>,
    /// Names of the primary-key columns, in key order.
    pub key_columns: Vec<String>,
    /// Slots allocated so far: a new column takes the next.
    pub slots: u16,
    /// One per schema column, in schema order.
    pub columns: Vec<ColumnDef>,
}

/// `schema` as an Arrow IPC stream holding only its schema message.
pub fn schema_to_ipc(schema: &Schema) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut out, schema)?;
        w.finish()?;
    }
    Ok(out)
}

/// A one-value array of `data_type` holding the literal `text`, by Arrow cast from a string
/// (so "42" is an integer, "2024-01-31" a date); `None` when it does not cast.
pub fn literal(text: &str, data_type: &DataType) -> Option<ArrayRef> {
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let array: ArrayRef = Arc::new(StringArray::from(vec![text]));
    arrow::compute::cast_with_options(&array, data_type, &options)
        .ok()
        .filter(|a| a.null_count() == 0)
}

impl TableDef {
    /// The definition of a new table `id` with `schema`, keyed on `key_columns`, column i in
    /// slot i.
    pub fn new(id: u32, name: &str, schema: &Schema, key_columns: &[String]) -> Result<Self> {
        let n = schema.fields().len();
        let slots = u16::try_from(n).map_err(|_| {
            Error::InvalidArgument(format!("table {name}: {n} columns, at most {}", u16::MAX))
        })?;
        Ok(TableDef {
            id,
            name: name.to_string(),
            schema_ipc: schema_to_ipc(schema)?,
            key_columns: key_columns.to_vec(),
            slots,
            columns: (0..slots)
                .map(|slot| ColumnDef {
                    slot,
                    epoch: 0,
                    default: None,
                })
                .collect(),
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
        .map_err(|reason| self.corrupt(offset, format!("undecodable schema: {reason}")))
    }

    fn corrupt(&self, offset: u64, reason: String) -> Error {
        Error::Corruption {
            path: super::RECORDS_LABEL.to_string(),
            offset,
            reason: format!("table {}: {reason}", self.name),
        }
    }

    /// What the keyframe layer needs to read and write the table under this definition;
    /// `offset` as for [`TableDef::schema`].
    pub fn layout(&self, offset: u64) -> Result<TableLayout> {
        let schema = self.schema(offset)?;
        if self.columns.len() != schema.fields().len() {
            return Err(self.corrupt(
                offset,
                format!(
                    "{} column slots for {} columns",
                    self.columns.len(),
                    schema.fields().len()
                ),
            ));
        }
        let keys = crate::store::key_indices(&schema, &self.key_columns, &self.name)
            .map_err(|e| self.corrupt(offset, e.to_string()))?;
        let columns = self
            .columns
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| {
                let default = match &c.default {
                    Some(text) => Some(literal(text, f.data_type()).ok_or_else(|| {
                        self.corrupt(
                            offset,
                            format!("default {text:?} of {} is no {}", f.name(), f.data_type()),
                        )
                    })?),
                    None => None,
                };
                Ok(ColumnSlot {
                    slot: usize::from(c.slot),
                    epoch: c.epoch,
                    default,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        TableLayout::with_slots(schema, &keys, columns, usize::from(self.slots))
            .map_err(|e| self.corrupt(offset, e.to_string()))
    }
}

impl Codec for TableDef {
    fn put(&self, e: &mut Encoder) {
        e.u32(self.id);
        put_str(e, &self.name);
        e.bytes(&self.schema_ipc);
        put_list(e, &self.key_columns, |e, k| put_str(e, k));
        e.u16(self.slots);
        put_list(e, &self.columns, |e, c| {
            e.u16(c.slot).u16(c.epoch);
            put_opt(e, &c.default, |e, d| put_str(e, d));
        });
    }

    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(TableDef {
            id: d.u32()?,
            name: take_str(d)?,
            schema_ipc: d.bytes()?.to_vec(),
            key_columns: take_list(d, take_str)?,
            slots: d.u16()?,
            columns: take_list(d, |d| {
                Ok(ColumnDef {
                    slot: d.u16()?,
                    epoch: d.u16()?,
                    default: take_opt(d, take_str)?,
                })
            })?,
        })
    }
}

/// Where a catalog record is: in which records file, at what offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CatalogRef {
    /// The records file (see [`super::records_path`]). Not stored: a reference lies in the
    /// same file as the version record holding it, so reading that record sets it.
    pub file: u64,
    /// Offset of the framed record.
    pub offset: u64,
    /// Framed length.
    pub len: u32,
}

/// The root of a table's keyframe, as stored in a version record.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct TableEntry {
    /// The table's id (stable across renames; file names use it).
    pub id: u32,
    /// Table name at this version.
    pub name: String,
    /// The definition this version reads the table with.
    pub def: CatalogRef,
    /// Column slots of that definition (for block counts without reading it).
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
/// keyframe's rows minus those hidden at frame `frame` of the span's membership, plus the
/// residual's rows live there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BFrameRecord {
    /// The generation's residual, sorted by key, shared by all its B-frames.
    pub residual: Vec<BatchRecord>,
    /// The first key of each residual batch.
    pub first_keys: Vec<Vec<u8>>,
    /// The span's membership record (shared by every B-frame of the span): each residual
    /// row's and each hidden keyframe row's stretches of frames.
    pub membership: BlockRecord,
    /// This version's frame in the span.
    pub frame: u32,
    /// Keyframe rows hidden at this version.
    pub hidden_count: u64,
    /// Residual rows live at this version.
    pub live_count: u64,
}

/// A block of an overlay row batch.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Rows in the batch.
    pub rows: u32,
    /// One block per column slot of the definition it was written under (`None`: a
    /// dropped column's slot).
    pub columns: Vec<Option<BlockRecord>>,
}

impl BatchRecord {
    /// A batch of `rows` rows whose slots hold `blocks`.
    pub fn new(rows: u32, blocks: &[Option<RecordRef>]) -> Self {
        BatchRecord {
            rows,
            columns: blocks
                .iter()
                .map(|b| b.as_ref().map(BlockRecord::from))
                .collect(),
        }
    }

    /// Its slots' blocks, as the keyframe layer reads them.
    pub fn blocks(&self) -> Vec<Option<RecordRef>> {
        self.columns
            .iter()
            .map(|b| b.as_ref().map(RecordRef::from))
            .collect()
    }

    /// The blocks it holds, with their slots.
    pub fn present(&self) -> impl Iterator<Item = (usize, &BlockRecord)> {
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(slot, b)| b.as_ref().map(|b| (slot, b)))
    }
}

/// A table's overlay at one version (see the overlay crate).
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayRecord {
    /// Committed length of the generation's node log.
    pub log_len: u64,
    /// The version delta of each overlay commit of the generation up to this version, oldest
    /// first: offset and checksum in the node log.
    pub deltas: Vec<(u64, u64)>,
    /// Keyframe rows shadowed (the deletion vector's cardinality).
    pub shadowed: u64,
    /// Overlay rows live (the live bitmap's cardinality).
    pub live: u64,
    /// Every row batch of the generation so far, in commit order.
    pub batches: Vec<BatchRecord>,
}

impl OverlayRecord {
    /// Overlay commits to the table since its keyframe.
    pub fn commits(&self) -> u32 {
        self.deltas.len() as u32
    }

    /// Rows of all its batches.
    pub fn rows(&self) -> u32 {
        self.batches.iter().map(|b| b.rows).sum()
    }
}

/// Everything a version is.
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// The id the next created table gets: above every id ever assigned up to this version,
    /// dropped tables' included.
    pub next_table_id: u32,
    /// Every table, sorted by name.
    pub tables: Vec<TableEntry>,
    /// Committed length of every pack file.
    pub packs: Vec<(u32, u64)>,
    /// Column blocks stored in packs so far (each distinct block once).
    pub blocks_stored: u64,
    /// Bytes of records appended to packs so far.
    pub pack_bytes_appended: u64,
}

/// A decoded table definition and the layout (schema and key codec) built from it.
#[derive(Debug)]
pub struct LoadedDef {
    /// The definition.
    pub def: TableDef,
    /// What the keyframe layer needs to read and write the table.
    pub layout: Arc<reeldb_keyframe::TableLayout>,
}

impl Codec for CatalogRef {
    fn put(&self, e: &mut Encoder) {
        e.u64(self.offset).u32(self.len);
    }

    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(CatalogRef {
            file: 0,
            offset: d.u64()?,
            len: d.u32()?,
        })
    }
}

impl Codec for RootRecord {
    fn put(&self, e: &mut Encoder) {
        e.u32(self.pack)
            .u64(self.offset)
            .u32(self.len)
            .raw(&self.hash)
            .bytes(&self.first_key)
            .u64(self.rows)
            .u64(self.raw_bytes)
            .u64(self.leaves)
            .u8(self.height);
    }

    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(RootRecord {
            pack: d.u32()?,
            offset: d.u64()?,
            len: d.u32()?,
            hash: d.fixed::<16>()?,
            first_key: d.bytes()?.to_vec(),
            rows: d.u64()?,
            raw_bytes: d.u64()?,
            leaves: d.u64()?,
            height: d.u8()?,
        })
    }
}

impl Codec for BlockRecord {
    fn put(&self, e: &mut Encoder) {
        e.u32(self.pack)
            .u64(self.offset)
            .u32(self.len)
            .raw(&self.hash);
    }

    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(BlockRecord {
            pack: d.u32()?,
            offset: d.u64()?,
            len: d.u32()?,
            hash: d.fixed::<16>()?,
        })
    }
}

impl Codec for BatchRecord {
    fn put(&self, e: &mut Encoder) {
        e.u32(self.rows);
        put_list(e, &self.columns, |e, c| put_opt(e, c, |e, b| b.put(e)));
    }

    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(BatchRecord {
            rows: d.u32()?,
            columns: take_list(d, |d| take_opt(d, BlockRecord::take))?,
        })
    }
}

fn put_node_ref(e: &mut Encoder, r: &(u64, u64)) {
    e.u64(r.0).u64(r.1);
}

fn take_node_ref(d: &mut Decoder<'_>) -> std::result::Result<(u64, u64), DecodeError> {
    Ok((d.u64()?, d.u64()?))
}

impl Codec for OverlayRecord {
    fn put(&self, e: &mut Encoder) {
        e.u64(self.log_len);
        put_list(e, &self.deltas, put_node_ref);
        e.u64(self.shadowed).u64(self.live);
        put_list(e, &self.batches, |e, b| b.put(e));
    }

    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(OverlayRecord {
            log_len: d.u64()?,
            deltas: take_list(d, take_node_ref)?,
            shadowed: d.u64()?,
            live: d.u64()?,
            batches: take_list(d, BatchRecord::take)?,
        })
    }
}

impl Codec for BFrameRecord {
    fn put(&self, e: &mut Encoder) {
        put_list(e, &self.residual, |e, b| b.put(e));
        put_list(e, &self.first_keys, |e, k| {
            e.bytes(k);
        });
        self.membership.put(e);
        e.u32(self.frame)
            .u64(self.hidden_count)
            .u64(self.live_count);
    }

    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(BFrameRecord {
            residual: take_list(d, BatchRecord::take)?,
            first_keys: take_list(d, |d| Ok(d.bytes()?.to_vec()))?,
            membership: BlockRecord::take(d)?,
            frame: d.u32()?,
            hidden_count: d.u64()?,
            live_count: d.u64()?,
        })
    }
}

impl Codec for TableEntry {
    fn put(&self, e: &mut Encoder) {
        e.u32(self.id);
        put_str(e, &self.name);
        self.def.put(e);
        e.u32(self.columns);
        put_opt(e, &self.root, |e, r| r.put(e));
        e.u64(self.changed_at).u64(self.keyframe_at);
        put_opt(e, &self.overlay, |e, o| o.put(e));
        put_opt(e, &self.bframe, |e, b| b.put(e));
    }

    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(TableEntry {
            id: d.u32()?,
            name: take_str(d)?,
            def: CatalogRef::take(d)?,
            columns: d.u32()?,
            root: take_opt(d, RootRecord::take)?,
            changed_at: d.u64()?,
            keyframe_at: d.u64()?,
            overlay: take_opt(d, OverlayRecord::take)?,
            bframe: take_opt(d, BFrameRecord::take)?,
        })
    }
}

impl Codec for VersionRecord {
    fn put(&self, e: &mut Encoder) {
        e.u64(self.version).u64(self.committed_at as u64);
        put_opt(e, &self.source_offset, |e, o| {
            e.u64(*o);
        });
        put_list(e, &self.meta, |e, (k, v)| {
            put_str(e, k);
            put_str(e, v);
        });
        e.u8(self.kind).u32(self.next_table_id);
        put_list(e, &self.tables, |e, t| t.put(e));
        put_list(e, &self.packs, |e, (id, len)| {
            e.u32(*id).u64(*len);
        });
        e.u64(self.blocks_stored).u64(self.pack_bytes_appended);
    }

    fn take(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(VersionRecord {
            version: d.u64()?,
            committed_at: d.u64()? as i64,
            source_offset: take_opt(d, |d| d.u64())?,
            meta: take_list(d, |d| Ok((take_str(d)?, take_str(d)?)))?,
            kind: d.u8()?,
            next_table_id: d.u32()?,
            tables: take_list(d, TableEntry::take)?,
            packs: take_list(d, |d| Ok((d.u32()?, d.u64()?)))?,
            blocks_stored: d.u64()?,
            pack_bytes_appended: d.u64()?,
        })
    }
}
