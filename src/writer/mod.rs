//! [`Writer`] and [`Transaction`]: the single writer, validation of what a commit writes, and
//! the commit protocol.
//!
//! A commit (1) appends new blocks and nodes to the packs and syncs them, then, holding the
//! catalog lock (see `catalog::commit`), (2) appends new table definitions and the version
//! record to `records.log` and syncs it, and (3) appends the version's index entry and syncs
//! it: that append is the commit point. A failure before it leaves the store unchanged (the
//! catalog files are cut back; pack and node-log bytes stay, unreferenced); a failure to sync
//! poisons the writer.
//!
//! Maintenance in another process may replace the index between two commits, moving the
//! latest version's record (it lists the packs maintenance wrote). So under the lock the
//! writer reads the latest entry afresh, and a moved record is read again for its
//! maintenance packs, which the new version lists too.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::array_value_to_string;
use reeldb_keyframe::builder::{self, SortedChanges};
use reeldb_keyframe::pack::PackRange;
use reeldb_keyframe::storage::LockGuard;
use reeldb_keyframe::tree::{TableLayout, Tree};
use reeldb_keyframe::{PackWriter, RecordRef, Root, TreeShape};
use reeldb_overlay::NodeLogWriter;

use crate::catalog::commit::CatalogLock;
use crate::catalog::index::{ENTRY_LEN, IndexEntry, NO_OFFSET};
use crate::catalog::records::{self, CatalogKind, RECORDS_HEADER_LEN};
use crate::catalog::tail;
use crate::catalog::version::{self, CatalogRef, RootRecord, TableDef, TableEntry, VersionRecord};
use crate::catalog::{index_path, records_path};
use crate::error::{Error, Result, lock_error};
use crate::overlay_commit::{fold_into_keyframe, write_overlay};
use crate::snapshot::Table;
use crate::store::{LOCK_FILE, Store, key_indices};
use crate::value::Key;

mod alter;
mod maintain;

/// Options for a [`Writer`].
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub(crate) sync: bool,
    max_pack_len: Option<u64>,
    shape: TreeShape,
    keyframe_every: u32,
    keyframe_fraction: f64,
    keyframe_touching: f64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            sync: true,
            max_pack_len: None,
            shape: TreeShape::default(),
            keyframe_every: 20,
            keyframe_fraction: 0.25,
            keyframe_touching: 0.1,
        }
    }
}

impl WriterOptions {
    /// Whether commits are made durable (fsync of data, catalog and directories) before they
    /// return. Default `true`. `false` trades durability for speed, for rebuilding a store from
    /// the event stream: a crash may then lose recent versions (never corrupt older ones
    /// silently: what cannot be verified is refused on read).
    #[must_use]
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Leaf and node sizes for the trees this writer builds (tests use tiny leaves to get
    /// deep trees from few rows). Readers need no setting: any shape reads the same.
    #[must_use]
    pub fn tree_shape(mut self, shape: TreeShape) -> Self {
        self.shape = shape;
        self
    }

    /// A table's change is written as a new keyframe on every `n`-th commit to the table
    /// since its last keyframe, and as an overlay over that keyframe otherwise (default 20;
    /// 1 makes every commit a keyframe).
    #[must_use]
    pub fn keyframe_every(mut self, n: u32) -> Self {
        self.keyframe_every = n.max(1);
        self
    }

    /// A table's change is written as a keyframe once its overlay would hold more keys than
    /// this fraction of the keyframe's rows (default 0.25).
    #[must_use]
    pub fn keyframe_fraction(mut self, fraction: f64) -> Self {
        self.keyframe_fraction = fraction.max(0.0);
        self
    }

    /// Right after a keyframe, a change that touches at most this fraction of the keyframe's
    /// leaves is written as a new keyframe rather than starting an overlay (default 0.1):
    /// changes clustered in a few key ranges (the newest entities, say) cost a keyframe only
    /// the leaves they touch, since every other leaf is shared. 0 turns this off.
    #[must_use]
    pub fn keyframe_touching(mut self, fraction: f64) -> Self {
        self.keyframe_touching = fraction.max(0.0);
        self
    }

    /// Seals a pack file once it passes this many bytes (default 1 GiB).
    #[must_use]
    pub fn max_pack_len(mut self, len: u64) -> Self {
        self.max_pack_len = Some(len);
        self
    }
}

/// The store's single writer. Holds the writer lock until dropped.
#[derive(Debug)]
pub struct Writer {
    store: Store,
    _lock: Box<dyn LockGuard>,
    pub(crate) packs: PackWriter,
    head: Option<(IndexEntry, VersionRecord)>,
    pub(crate) options: WriterOptions,
    poisoned: bool,
    /// Node logs of the generations this writer has appended to.
    logs: HashMap<PathBuf, NodeLogWriter>,
}

impl Writer {
    pub(crate) fn open(store: Store, options: WriterOptions) -> Result<Writer> {
        let storage = store.inner.storage.clone();
        let lock = storage
            .try_lock(Path::new(LOCK_FILE))
            .map_err(|e| lock_error(e, &store.path().display().to_string()))?;
        let (head, packs) = settle(&store, &options)?;
        let mut writer = Writer {
            store,
            _lock: lock,
            packs,
            head,
            options,
            poisoned: false,
            logs: HashMap::new(),
        };
        writer.remember_latest()?;
        Ok(writer)
    }

    /// Reloads the latest version from disk and cuts every file back to it (after a rewind).
    pub(crate) fn reload(&mut self) -> Result<()> {
        let (head, packs) = settle(&self.store, &self.options)?;
        self.head = head;
        self.packs = packs;
        self.logs.clear();
        self.remember_latest()
    }

    /// After maintenance (compaction, thinning, cleaning, rewind, expiry) failed part-way:
    /// forgets cached maps of files the cut-back may remove, reloads the files as the index
    /// now describes them (cutting off what nothing references), or poisons the writer if
    /// that fails too; returns `e`.
    pub(crate) fn recover<T>(&mut self, e: Error) -> Result<T> {
        self.store.forget_positions();
        if self.reload().is_err() {
            self.poison();
        }
        Err(e)
    }

    /// Marks the writer unusable after a durability failure.
    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Fails if a durability failure made the writer unusable.
    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    /// The latest version's index entry and record, if any.
    pub(crate) fn head(&self) -> Option<&(IndexEntry, VersionRecord)> {
        self.head.as_ref()
    }

    /// The store this writer writes.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Teaches the pack writer every record the latest version references, so equal content
    /// written again is stored once.
    fn remember_latest(&mut self) -> Result<()> {
        let Some((_, rec)) = &self.head else {
            return Ok(());
        };
        let mut refs: Vec<RecordRef> = Vec::new();
        for t in &rec.tables {
            let batches = t
                .overlay
                .iter()
                .flat_map(|o| &o.batches)
                .chain(t.bframe.iter().flat_map(|b| &b.residual));
            refs.extend(batches.flat_map(|b| b.present().map(|(_, c)| RecordRef::from(c))));
            let layout = self.store.load_def(t.def)?.layout.clone();
            let tree = Tree::new(
                self.store.inner.source.clone(),
                layout,
                t.root.as_ref().map(Root::from),
            );
            tree.for_each_record(&mut |r| refs.push(*r))?;
        }
        for r in refs {
            self.packs.remember(r);
        }
        Ok(())
    }

    /// The latest committed version (0 before the first commit).
    pub fn version(&self) -> u64 {
        self.head.as_ref().map_or(0, |(e, _)| e.version)
    }

    /// Starts a commit.
    pub fn begin(&mut self) -> Transaction<'_> {
        Transaction {
            writer: self,
            definitions: Definitions::default(),
            changes: BTreeMap::new(),
            meta: Vec::new(),
            source_offset: None,
            keyframe: false,
        }
    }

    /// The layout of table `name` as the transaction with `pending` definitions sees it.
    fn table_layout(&self, name: &str, pending: &Definitions) -> Result<Arc<TableLayout>> {
        if let Some(p) = pending.creates.iter().find(|p| p.name == name) {
            return Ok(p.layout.clone());
        }
        if let Some(a) = pending.altered.iter().find(|a| a.name == name) {
            return Ok(a.layout.clone());
        }
        Ok(self
            .store
            .load_def(self.head_entry(name, pending)?.def)?
            .layout
            .clone())
    }

    /// Table `name`'s entry at the latest version, unless `pending` drops or renames it.
    fn head_entry(&self, name: &str, pending: &Definitions) -> Result<&TableEntry> {
        let gone = pending.dropped.iter().any(|d| d == name)
            || pending
                .altered
                .iter()
                .any(|a| a.from == name && a.name != name);
        self.head
            .as_ref()
            .and_then(|(_, r)| r.tables.iter().find(|t| t.name == name))
            .filter(|_| !gone)
            .ok_or_else(|| Error::UnknownTable {
                table: name.to_string(),
                version: self.version(),
            })
    }

    /// Forgets what a failed commit appended to the packs and node logs (the catalog step
    /// cuts its own files back).
    fn abort_commit(&mut self) {
        self.packs.abort();
        for log in self.logs.values_mut() {
            log.abort();
        }
    }
}

/// The latest committed version, with the catalog files cut back to it (under the catalog
/// lock) and the writer's pack files unfinished commits created removed; bytes past
/// committed lengths in kept packs stay, unreferenced (readers may map them), and new records
/// go to a new pack. The caller holds the writer lock.
pub(crate) fn settle(
    store: &Store,
    options: &WriterOptions,
) -> Result<(Option<(IndexEntry, VersionRecord)>, PackWriter)> {
    let storage = store.inner.storage.clone();
    let catalog = CatalogLock::take(&storage)?;
    // A rewind by another handle may have freed positions this handle has cached.
    store.notice_rewinds()?;
    let head = match store.latest_entry()? {
        Some(e) => Some((e, store.read_record(&e)?)),
        None => None,
    };
    // Cutting the files back to the head must not cut off versions records.log proves were
    // acknowledged (an index cut short by damage).
    if let Some(lost) = tail::lost_after(storage.as_ref(), head.as_ref().map(|(e, _)| e))? {
        return Err(tail::lost_error(&lost));
    }
    let index_len = ENTRY_LEN * (head.as_ref().map_or(0, |(e, _)| e.version) + 1);
    if storage.len(&index_path())? > index_len {
        storage.truncate(&index_path(), index_len)?;
    }
    let records_len = head.as_ref().map_or(RECORDS_HEADER_LEN, |(e, _)| {
        e.record_offset + u64::from(e.record_len)
    });
    let records = records_path(head.as_ref().map_or(0, |(e, _)| e.records_file));
    if !storage.exists(&records)? {
        // Rewound to nothing after a catalog rewrite retired records.log: it starts afresh.
        storage.write_atomic(&records, &records::header())?;
    } else if storage.len(&records)? > records_len {
        storage.truncate(&records, records_len)?;
    }
    if let Some((entry, _)) = &head {
        persist_head(storage.as_ref(), entry)?;
    }
    drop(catalog);
    let committed = head.as_ref().map_or(Vec::new(), |(_, r)| r.packs.clone());
    let mut packs = PackWriter::open(storage, &committed)?;
    if let Some(len) = options.max_pack_len {
        packs.set_max_pack_len(len);
    }
    Ok((head, packs))
}

/// Makes the latest version's index entry and version record durable again, by writing their
/// bytes over themselves and syncing, and syncs the catalog directory. A writer whose sync
/// failed leaves them visible but perhaps only in the page cache, which Linux then marks
/// clean ("fsyncgate"): without this, versions committed on top of such a head could outlive
/// it in a power loss and leave a hole. Identical bytes, so a crash part-way changes nothing.
fn persist_head(storage: &dyn reeldb_keyframe::storage::Storage, entry: &IndexEntry) -> Result<()> {
    let entry_at = ENTRY_LEN * entry.version;
    let bytes = storage.read_at(&index_path(), entry_at, ENTRY_LEN as usize)?;
    storage.rewrite_in_place(&index_path(), entry_at, &bytes)?;
    let len = entry.record_len as usize;
    let path = records_path(entry.records_file);
    let record = storage.read_at(&path, entry.record_offset, len)?;
    storage.rewrite_in_place(&path, entry.record_offset, &record)?;
    storage.sync_dir(Path::new(crate::catalog::CATALOG_DIR))?;
    Ok(())
}

/// What a transaction does to table definitions, applied in this order: drops, then
/// schema changes and renames, then creations (so a name a drop or rename frees can be taken
/// again in the same commit).
#[derive(Debug, Default)]
struct Definitions {
    creates: Vec<PendingTable>,
    altered: Vec<AlteredTable>,
    /// Names at the latest version.
    dropped: Vec<String>,
}

/// A table whose name or columns the transaction changes.
#[derive(Debug)]
struct AlteredTable {
    /// Its name at the latest version.
    from: String,
    /// Its name after the transaction.
    name: String,
    def: TableDef,
    layout: Arc<TableLayout>,
}

/// A table created by the transaction.
#[derive(Debug)]
struct PendingTable {
    name: String,
    def: TableDef,
    layout: Arc<TableLayout>,
}

/// What a transaction does to one table.
#[derive(Debug)]
enum TableChange {
    Edits {
        upserts: Vec<RecordBatch>,
        deletes: Vec<RecordBatch>,
    },
    Replace(Vec<RecordBatch>),
}

/// One commit being assembled. Nothing reaches the store until [`Transaction::commit`];
/// dropping the transaction discards it.
#[derive(Debug)]
pub struct Transaction<'w> {
    writer: &'w mut Writer,
    definitions: Definitions,
    changes: BTreeMap<String, TableChange>,
    meta: Vec<(String, String)>,
    source_offset: Option<u64>,
    keyframe: bool,
}

fn same_fields(table: &str, want: &SchemaRef, got: &SchemaRef) -> Result<()> {
    let mismatch = |reason: String| Error::SchemaMismatch {
        table: table.to_string(),
        reason,
    };
    if want.fields().len() != got.fields().len() {
        return Err(mismatch(format!(
            "expected {} columns ({}), got {} ({})",
            want.fields().len(),
            names(want),
            got.fields().len(),
            names(got)
        )));
    }
    for (w, g) in want.fields().iter().zip(got.fields()) {
        if w.name() != g.name() || w.data_type() != g.data_type() {
            return Err(mismatch(format!(
                "expected column {}: {}, got {}: {}",
                w.name(),
                w.data_type(),
                g.name(),
                g.data_type()
            )));
        }
    }
    Ok(())
}

/// True when `a` and `b` are layouts of one logical type: strings as offsets, large offsets
/// or views, the same for binaries, and any type dictionary-encoded or not. Inputs in another layout than the table's are cast
/// (polars and DataFusion hand over views).
fn same_logical_type(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    if let Dictionary(_, values) = a {
        // Dictionary-encoded input (pyarrow categoricals, Parquet dictionary pages, Arrow IPC
        // dictionaries) is stored as its value type.
        return values.as_ref() == b || same_logical_type(values, b);
    }
    let strings = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let binaries = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView);
    (strings(a) && strings(b)) || (binaries(a) && binaries(b))
}

/// `column` in the layout `want` when it holds the same logical type in another layout
/// ([`same_logical_type`]); otherwise as it is, for the schema check to judge.
fn in_stored_layout(table: &str, column: &ArrayRef, want: &DataType) -> Result<ArrayRef> {
    if column.data_type() == want || !same_logical_type(column.data_type(), want) {
        return Ok(column.clone());
    }
    arrow::compute::cast(column, want).map_err(|e| Error::SchemaMismatch {
        table: table.to_string(),
        reason: format!("cannot store {} as {want}: {e}", column.data_type()),
    })
}

/// Checks `batch` against the table (column names and types, no nulls in key or
/// non-nullable columns) and returns it carrying the table's schema.
fn conform(table: &str, layout: &TableLayout, batch: &RecordBatch) -> Result<RecordBatch> {
    let needs_cast = batch.num_columns() == layout.schema.fields().len()
        && batch
            .columns()
            .iter()
            .zip(layout.schema.fields())
            .any(|(c, f)| c.data_type() != f.data_type());
    let batch = if needs_cast {
        let columns = batch
            .columns()
            .iter()
            .zip(layout.schema.fields())
            .map(|(c, f)| in_stored_layout(table, c, f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?
    } else {
        batch.clone()
    };
    let batch = &batch;
    same_fields(table, &layout.schema, &batch.schema())?;
    let mut must_be_valid: Vec<usize> = layout.key.columns().to_vec();
    must_be_valid.extend(
        layout
            .schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.is_nullable())
            .map(|(i, _)| i),
    );
    check_nulls(table, batch, &must_be_valid)?;
    RecordBatch::try_new(layout.schema.clone(), batch.columns().to_vec()).map_err(|e| {
        Error::SchemaMismatch {
            table: table.to_string(),
            reason: e.to_string(),
        }
    })
}

/// `schema` as a table stores it: a dictionary-encoded column as its value type (blocks
/// choose their own dictionaries; [`same_logical_type`] lets dictionary input in).
fn stored_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Dictionary(..)))
    {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, values) => {
                f.as_ref().clone().with_data_type(values.as_ref().clone())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn names(s: &SchemaRef) -> String {
    s.fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Transaction<'_> {
    /// Creates a table with `schema`, keyed on `key_columns` (in key order). Key columns may be
    /// ints of any width, strings, binary, dates or timestamps, and never hold nulls.
    pub fn create_table(
        &mut self,
        name: &str,
        schema: SchemaRef,
        key_columns: &[&str],
    ) -> Result<&mut Self> {
        if name.is_empty() || name.chars().any(|c| c.is_control()) {
            return Err(Error::InvalidArgument(format!("bad table name {name:?}")));
        }
        let exists = self.layout(name).is_ok();
        if exists {
            return Err(Error::TableExists(name.to_string()));
        }
        let schema = stored_schema(&schema);
        let keys: Vec<String> = key_columns.iter().map(|k| k.to_string()).collect();
        let idx = key_indices(&schema, &keys, name)?;
        let mut seen = idx.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != idx.len() {
            return Err(Error::SchemaMismatch {
                table: name.to_string(),
                reason: "a key column is named twice".into(),
            });
        }
        let layout = Arc::new(TableLayout::new(schema.clone(), &idx).map_err(|e| {
            Error::SchemaMismatch {
                table: name.to_string(),
                reason: e.to_string(),
            }
        })?);
        self.definitions.creates.push(PendingTable {
            name: name.to_string(),
            // The id is assigned at commit, in creation order.
            def: TableDef::new(0, name, &schema, &keys)?,
            layout,
        });
        Ok(self)
    }

    fn layout(&self, table: &str) -> Result<Arc<TableLayout>> {
        self.writer.table_layout(table, &self.definitions)
    }

    fn edits(&mut self, table: &str) -> Result<(&mut Vec<RecordBatch>, &mut Vec<RecordBatch>)> {
        let entry = self
            .changes
            .entry(table.to_string())
            .or_insert(TableChange::Edits {
                upserts: Vec::new(),
                deletes: Vec::new(),
            });
        match entry {
            TableChange::Edits { upserts, deletes } => Ok((upserts, deletes)),
            TableChange::Replace(_) => Err(Error::InvalidArgument(format!(
                "table {table} is replaced in this commit; it cannot also take upserts or deletes"
            ))),
        }
    }

    /// Inserts rows, or overwrites the rows with the same keys. `batch` has the table's schema.
    pub fn upsert(&mut self, table: &str, batch: RecordBatch) -> Result<&mut Self> {
        let layout = self.layout(table)?;
        let batch = conform(table, &layout, &batch)?;
        self.edits(table)?.0.push(batch);
        Ok(self)
    }

    /// Deletes the rows with the keys in `keys`: a batch holding (at least) the key columns.
    /// Keys that are not in the table are ignored, as SQL's DELETE ignores them.
    pub fn delete(&mut self, table: &str, keys: RecordBatch) -> Result<&mut Self> {
        let layout = self.layout(table)?;
        let mut cols = Vec::new();
        for &c in layout.key.columns() {
            let f = layout.schema.field(c);
            let col = keys
                .column_by_name(f.name())
                .ok_or_else(|| Error::SchemaMismatch {
                    table: table.to_string(),
                    reason: format!("delete keys lack key column {}", f.name()),
                })?;
            let col = &in_stored_layout(table, col, f.data_type())?;
            if col.data_type() != f.data_type() {
                return Err(Error::SchemaMismatch {
                    table: table.to_string(),
                    reason: format!(
                        "key column {} is {}, expected {}",
                        f.name(),
                        col.data_type(),
                        f.data_type()
                    ),
                });
            }
            cols.push(col.clone());
        }
        let schema = Arc::new(layout.schema.project(layout.key.columns())?);
        let loose = RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
            cols.clone(),
        )?;
        check_nulls(table, &loose, &(0..cols.len()).collect::<Vec<_>>())?;
        let batch = RecordBatch::try_new(schema, cols)?;
        self.edits(table)?.1.push(batch);
        Ok(self)
    }

    /// Replaces the whole state of the table with `batches`; the store works out which rows
    /// changed. Cannot be combined with upserts or deletes to the same table in one commit.
    pub fn replace(&mut self, table: &str, batches: Vec<RecordBatch>) -> Result<&mut Self> {
        let layout = self.layout(table)?;
        let batches = batches
            .iter()
            .map(|b| conform(table, &layout, b))
            .collect::<Result<Vec<_>>>()?;
        if self.changes.contains_key(table) {
            return Err(Error::InvalidArgument(format!(
                "table {table} already has changes in this commit; replace cannot be combined with them"
            )));
        }
        self.changes
            .insert(table.to_string(), TableChange::Replace(batches));
        Ok(self)
    }

    /// Adds a metadata entry (for example a label).
    pub fn meta(&mut self, key: &str, value: &str) -> &mut Self {
        self.meta.retain(|(k, _)| k != key);
        self.meta.push((key.to_string(), value.to_string()));
        self
    }

    /// Writes every table this commit changes as a new keyframe, whatever the policy says.
    pub fn keyframe(&mut self) -> &mut Self {
        self.keyframe = true;
        self
    }

    /// Records the position in the source event stream this version reflects. It must be
    /// greater than any offset recorded before.
    pub fn source_offset(&mut self, offset: u64) -> &mut Self {
        self.source_offset = Some(offset);
        self
    }

    /// Validates and writes everything, all or nothing, and returns the new version.
    pub fn commit(self) -> Result<u64> {
        let Transaction {
            writer,
            definitions,
            changes,
            mut meta,
            source_offset,
            keyframe,
        } = self;
        if writer.poisoned {
            return Err(Error::Poisoned);
        }
        meta.sort();
        if source_offset == Some(NO_OFFSET) {
            return Err(Error::InvalidArgument(format!(
                "source offset {NO_OFFSET} is reserved (it means \"no offset\")"
            )));
        }
        let prev = writer.head.as_ref().map(|(e, _)| *e);
        if let (Some(off), Some(p)) = (source_offset, prev)
            && p.carried_offset != NO_OFFSET
            && off <= p.carried_offset
        {
            let version = last_offset_version(writer, p)?;
            return Err(Error::SourceOffsetRegressed {
                offered: off,
                last: p.carried_offset,
                version,
            });
        }
        // Validate and sort every change before writing anything.
        let mut prepared = Vec::new();
        for (name, change) in changes {
            let layout = writer.table_layout(&name, &definitions)?;
            // Only a replace reads the table as it stands (under its name at the latest
            // version, with its schema after this commit), to diff against it.
            let created = definitions.creates.iter().any(|p| p.name == name);
            let current = match (&change, &writer.head) {
                (TableChange::Replace(_), Some((_, rec))) if !created => {
                    let from = definitions
                        .altered
                        .iter()
                        .find(|a| a.name == name)
                        .map_or(name.as_str(), |a| a.from.as_str());
                    let table = writer.store.snapshot(rec.version)?.table(from)?;
                    Some(table.read_as(layout.clone()))
                }
                _ => None,
            };
            let sorted = prepare(&name, &layout, current.as_ref(), change)?;
            prepared.push((name, layout, sorted));
        }
        let result = write_version(writer, definitions, prepared, meta, source_offset, keyframe);
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                let durability = matches!(
                    &e,
                    Error::Keyframe(reeldb_keyframe::Error::Io { .. })
                        | Error::Overlay(reeldb_overlay::Error::Keyframe(
                            reeldb_keyframe::Error::Io { .. }
                        ))
                );
                writer.abort_commit();
                if durability {
                    writer.poisoned = true;
                }
                Err(e)
            }
        }
    }
}

fn last_offset_version(writer: &Writer, p: IndexEntry) -> Result<u64> {
    let mut v = p.version;
    while v > 0 {
        let e = writer.store.index().entry(v)?;
        if e.own_offset {
            return Ok(v);
        }
        v -= 1;
    }
    Ok(p.version)
}

fn write_version(
    writer: &mut Writer,
    definitions: Definitions,
    prepared: Vec<(String, Arc<TableLayout>, Option<SortedChanges>)>,
    meta: Vec<(String, String)>,
    source_offset: Option<u64>,
    force_keyframe: bool,
) -> Result<u64> {
    let prev = writer.head.as_ref().map(|(e, r)| (*e, r));
    let version = prev.map_or(1, |(e, _)| e.version + 1);
    let now = chrono::Utc::now().timestamp_micros();
    let committed_at = prev.map_or(now, |(e, _)| now.max(e.committed_at + 1));
    let mut tables: BTreeMap<String, TableEntry> = prev
        .map(|(_, r)| {
            r.tables
                .iter()
                .map(|t| (t.name.clone(), t.clone()))
                .collect()
        })
        .unwrap_or_default();
    let blocks_before = writer.packs.appended();
    // New definitions, framed, by table name: their offsets in records.log are known only
    // under the catalog lock, and filled in there.
    let mut new_defs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut next_table_id = prev.map_or(1, |(_, r)| r.next_table_id);
    for name in &definitions.dropped {
        tables.remove(name);
    }
    // Every renamed or altered entry is taken out before any is put back, so names swapped
    // within one commit cannot overwrite each other.
    let mut taken = Vec::with_capacity(definitions.altered.len());
    for a in &definitions.altered {
        taken.push(tables.remove(&a.from));
    }
    for (a, entry) in definitions.altered.iter().zip(taken) {
        let Some(mut entry) = entry else {
            return Err(Error::Internal(format!(
                "table {} to alter is not at the latest version",
                a.from
            )));
        };
        let framed = records::frame(CatalogKind::TableDef, &version::encode(&a.def));
        entry.def = CatalogRef {
            file: 0,
            offset: 0,
            len: framed.len() as u32,
        };
        new_defs.push((a.name.clone(), framed));
        entry.name = a.name.clone();
        entry.columns = u32::from(a.def.slots);
        entry.changed_at = version;
        tables.insert(a.name.clone(), entry);
    }
    for p in &definitions.creates {
        let id = next_table_id;
        next_table_id = id
            .checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("every table id has been used".into()))?;
        let mut def = p.def.clone();
        def.id = id;
        let framed = records::frame(CatalogKind::TableDef, &version::encode(&def));
        let def = CatalogRef {
            file: 0,
            offset: 0,
            len: framed.len() as u32,
        };
        new_defs.push((p.name.clone(), framed));
        tables.insert(
            p.name.clone(),
            TableEntry {
                id,
                name: p.name.clone(),
                def,
                columns: p.layout.schema.fields().len() as u32,
                root: None,
                changed_at: version,
                keyframe_at: version,
                overlay: None,
                bframe: None,
            },
        );
    }
    let durable = writer.options.sync;
    let mut kind = 0u8;
    for (name, layout, sorted) in prepared {
        let Some(sorted) = sorted else { continue };
        let Some(t) = tables.get_mut(&name) else {
            continue;
        };
        let tree = Tree::new(
            writer.store.inner.source.clone(),
            layout.clone(),
            t.root.as_ref().map(Root::from),
        );
        let changed = (sorted.upserts.num_rows() + sorted.deletes.len()) as f64;
        let as_keyframe = match &t.overlay {
            _ if force_keyframe => true,
            // A B-frame (the store was rewound into a compacted generation) is folded into
            // a keyframe by the next change.
            None if t.bframe.is_some() => true,
            None if t.root.is_none() => true,
            None => {
                writer.options.keyframe_every <= 1
                    || touched_fraction(&tree, &sorted)? <= writer.options.keyframe_touching
            }
            Some(o) => {
                o.commits + 1 >= writer.options.keyframe_every
                    || o.entries as f64 + changed
                        > writer.options.keyframe_fraction * tree.rows() as f64
            }
        };
        if as_keyframe {
            let sorted = fold_into_keyframe(&writer.store, t, &tree, sorted)?;
            let root = builder::apply(&mut writer.packs, &writer.options.shape, &tree, &sorted)?;
            t.root = root.as_ref().map(RootRecord::from);
            t.overlay = None;
            t.bframe = None;
            t.keyframe_at = version;
        } else {
            kind = 1;
            t.overlay = Some(write_overlay(
                &mut writer.packs,
                &mut writer.logs,
                writer.store.inner.storage.clone(),
                t,
                &tree,
                &sorted,
                durable,
            )?);
        }
        t.changed_at = version;
    }
    let packs = writer.packs.sync(durable)?;
    let blocks_after = writer.packs.appended();
    let (prev_blocks, prev_bytes) =
        prev.map_or((0, 0), |(_, r)| (r.blocks_stored, r.pack_bytes_appended));
    let carried_offset = match (source_offset, prev) {
        (Some(o), _) => o,
        (None, Some((e, _))) => e.carried_offset,
        (None, None) => NO_OFFSET,
    };
    let rec = VersionRecord {
        version,
        committed_at,
        source_offset,
        meta,
        kind,
        next_table_id,
        tables: tables.into_values().collect(),
        packs,
        blocks_stored: prev_blocks + (blocks_after.0 - blocks_before.0),
        pack_bytes_appended: prev_bytes + (blocks_after.1 - blocks_before.1),
    };
    let entry = IndexEntry {
        version,
        committed_at,
        carried_offset,
        own_offset: source_offset.is_some(),
        record_offset: 0,
        record_len: 0,
        record_checksum: 0,
        expired: false,
        records_file: 0,
    };
    let head = append_to_catalog(writer, new_defs, rec, entry, durable)?;
    writer.head = Some(head);
    Ok(version)
}

/// The catalog step of a commit, under the catalog lock: places the new definitions and the
/// version record at the end of the current records file (filling in their offsets), lists
/// the packs maintenance wrote beside the writer's own, and appends the index entry.
fn append_to_catalog(
    writer: &Writer,
    new_defs: Vec<(String, Vec<u8>)>,
    mut rec: VersionRecord,
    mut entry: IndexEntry,
    durable: bool,
) -> Result<(IndexEntry, VersionRecord)> {
    let mut catalog = CatalogLock::take(&writer.store.inner.storage)?;
    let file = catalog.records_file();
    let latest = latest_on_disk(writer, catalog.head())?;
    rec.packs.extend(
        latest
            .packs
            .iter()
            .copied()
            .filter(|(id, _)| PackRange::Maintenance.contains(*id)),
    );
    rec.packs.sort_unstable();
    // Tables whose definition this commit does not write keep the latest version's (which
    // a catalog rewrite may have moved to another records file).
    for t in rec
        .tables
        .iter_mut()
        .filter(|t| !new_defs.iter().any(|(name, _)| *name == t.name))
    {
        t.def = latest
            .tables
            .iter()
            .find(|l| l.id == t.id)
            .map(|l| l.def)
            .ok_or_else(|| Error::Internal(format!("table {} has no definition", t.name)))?;
    }
    let base = catalog.records_len();
    let mut pending = Vec::new();
    for (name, framed) in new_defs {
        let t = rec
            .tables
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::Internal(format!("new definition of {name}, not a table")))?;
        t.def.file = file;
        t.def.offset = base + pending.len() as u64;
        pending.extend_from_slice(&framed);
    }
    let framed = records::frame(CatalogKind::Version, &version::encode(&rec));
    entry.records_file = file;
    entry.record_offset = base + pending.len() as u64;
    entry.record_len = framed.len() as u32;
    entry.record_checksum = reeldb_keyframe::format::checksum(&framed);
    pending.extend_from_slice(&framed);
    catalog.append_version(&pending, &entry, durable)?;
    Ok((entry, rec))
}

/// The latest version's record as it is on disk now (`on_disk` is its index entry): this
/// writer's cached one, unless maintenance replaced the index since this writer's last
/// commit and moved it (listing the packs maintenance wrote, or rewritten into another
/// records file); the moved record has the same tables, definitions aside.
fn latest_on_disk(writer: &Writer, on_disk: Option<IndexEntry>) -> Result<VersionRecord> {
    match (on_disk, &writer.head) {
        (None, None) => Ok(VersionRecord::default()),
        (Some(d), Some((cached, rec))) if d.version == cached.version => {
            if d == *cached {
                return Ok(rec.clone());
            }
            let moved = writer.store.read_record(&d)?;
            let without_defs = |r: &VersionRecord| -> Vec<TableEntry> {
                r.tables
                    .iter()
                    .map(|t| TableEntry {
                        def: CatalogRef::default(),
                        ..t.clone()
                    })
                    .collect()
            };
            if without_defs(&moved) != without_defs(rec) {
                return Err(Error::Internal(format!(
                    "version {} changed its tables under the writer",
                    d.version
                )));
            }
            Ok(moved)
        }
        (d, _) => Err(Error::Internal(format!(
            "versions.idx ends at version {} where this writer's latest is {}",
            d.map_or(0, |e| e.version),
            writer.version()
        ))),
    }
}

/// Validates one table's change and sorts it into key order; `None` when it changes nothing.
/// `current` is the table as it stands (`None` for a table this commit creates).
fn prepare(
    table: &str,
    layout: &TableLayout,
    current: Option<&Table>,
    change: TableChange,
) -> Result<Option<SortedChanges>> {
    match change {
        TableChange::Edits { upserts, deletes } => {
            let (upserts, upsert_keys) = sorted_unique(table, layout, &upserts)?;
            let mut del: Vec<Vec<u8>> = Vec::new();
            for d in &deletes {
                let rows = layout.key.encode_columns(d.columns())?;
                del.extend(rows.iter().map(|r| r.as_ref().to_vec()));
            }
            del.sort_unstable();
            del.dedup();
            for k in &del {
                let hit = bsearch_rows(&upsert_keys, k);
                if hit.is_ok() {
                    return Err(Error::DuplicateKey {
                        table: table.to_string(),
                        key: show_key(layout, k),
                    });
                }
            }
            if upserts.num_rows() == 0 && del.is_empty() {
                return Ok(None);
            }
            Ok(Some(SortedChanges {
                upserts,
                upsert_keys,
                deletes: del,
            }))
        }
        TableChange::Replace(batches) => {
            let (state, keys) = sorted_unique(table, layout, &batches)?;
            let old: Box<dyn Iterator<Item = Result<RecordBatch>>> = match current {
                Some(t) => Box::new(t.range::<Key, _>(..)?),
                None => Box::new(std::iter::empty()),
            };
            diff(layout, old, &state, &keys)
        }
    }
}

/// The fraction of `tree`'s leaves whose key intervals hold at least one of the changed keys.
fn touched_fraction(tree: &Tree, changes: &SortedChanges) -> Result<f64> {
    let leaves = tree.leaves()?;
    if leaves.is_empty() {
        return Ok(1.0);
    }
    let keys: Vec<&[u8]> = changes.ops().into_iter().map(|(k, _)| k).collect();
    // Leaf i covers [first_key(i), first_key(i + 1)); keys below the first leaf go to it.
    let mut touched = 0usize;
    let mut k = 0usize;
    for (i, _) in leaves.iter().enumerate() {
        let end = match leaves.get(i + 1) {
            Some(next) => {
                k + keys[k..].partition_point(|key| *key < next.entry.first_key.as_slice())
            }
            None => keys.len(),
        };
        if end > k {
            touched += 1;
        }
        k = end;
    }
    Ok(touched as f64 / leaves.len() as f64)
}

fn bsearch_rows(rows: &arrow_row::Rows, key: &[u8]) -> std::result::Result<usize, usize> {
    let (mut lo, mut hi) = (0, rows.num_rows());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match rows.row(mid).as_ref().cmp(key) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Ok(mid),
        }
    }
    Err(lo)
}

fn show_key(layout: &TableLayout, key: &[u8]) -> String {
    match layout.key.decode(&[key]) {
        Ok(cols) => {
            let parts: Vec<String> = cols
                .iter()
                .map(|c| array_value_to_string(c, 0).unwrap_or_else(|_| "?".into()))
                .collect();
            format!("({})", parts.join(", "))
        }
        Err(_) => format!("{key:?}"),
    }
}

fn check_nulls(table: &str, batch: &RecordBatch, columns: &[usize]) -> Result<()> {
    for &c in columns {
        let col = batch.column(c);
        if col.null_count() > 0 {
            let row = (0..col.len()).find(|&i| col.is_null(i)).unwrap_or(0);
            return Err(Error::NullValue {
                table: table.to_string(),
                column: batch.schema().field(c).name().clone(),
                row,
            });
        }
    }
    Ok(())
}

/// Concatenates conformed batches, checks for duplicate keys and sorts by key. Returns the
/// sorted rows and their encoded keys.
fn sorted_unique(
    table: &str,
    layout: &TableLayout,
    batches: &[RecordBatch],
) -> Result<(RecordBatch, arrow_row::Rows)> {
    let batch = concat_batches(&layout.schema, batches)?;
    let keys = layout.key.encode_batch(&batch)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_unstable_by(|&a, &b| keys.row(a as usize).cmp(&keys.row(b as usize)));
    for w in order.windows(2) {
        if keys.row(w[0] as usize) == keys.row(w[1] as usize) {
            return Err(Error::DuplicateKey {
                table: table.to_string(),
                key: show_key(layout, keys.row(w[0] as usize).as_ref()),
            });
        }
    }
    let sorted_already = order.iter().enumerate().all(|(i, &o)| i as u32 == o);
    if sorted_already {
        return Ok((batch, keys));
    }
    let sorted = take_record_batch(&batch, &UInt32Array::from(order))?;
    let keys = layout.key.encode_batch(&sorted)?;
    Ok((sorted, keys))
}

/// The changes that turn `old` (the current rows, in key order) into `state` (sorted, unique
/// keys): rows that are new or differ, and keys that are gone.
fn diff(
    layout: &TableLayout,
    old: impl Iterator<Item = Result<RecordBatch>>,
    state: &RecordBatch,
    keys: &arrow_row::Rows,
) -> Result<Option<SortedChanges>> {
    let whole = layout.row_converter()?;
    let new_rows = whole.convert_columns(state.columns())?;
    let mut changed: Vec<u32> = Vec::new();
    let mut deletes: Vec<Vec<u8>> = Vec::new();
    let mut j = 0usize;
    let n = state.num_rows();
    for batch in old {
        let batch = batch?;
        let old_keys = layout.key.encode_batch(&batch)?;
        let old_rows = whole.convert_columns(batch.columns())?;
        for i in 0..batch.num_rows() {
            let k = old_keys.row(i);
            while j < n && keys.row(j) < k {
                changed.push(j as u32);
                j += 1;
            }
            if j < n && keys.row(j) == k {
                if new_rows.row(j) != old_rows.row(i) {
                    changed.push(j as u32);
                }
                j += 1;
            } else {
                deletes.push(k.as_ref().to_vec());
            }
        }
    }
    changed.extend(j as u32..n as u32);
    if changed.is_empty() && deletes.is_empty() {
        return Ok(None);
    }
    let upserts = take_record_batch(state, &UInt32Array::from(changed))?;
    let upsert_keys = layout.key.encode_batch(&upserts)?;
    Ok(Some(SortedChanges {
        upserts,
        upsert_keys,
        deletes,
    }))
}
