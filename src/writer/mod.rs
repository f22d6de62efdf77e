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

use crate::catalog::commit::CatalogWriter;
use crate::catalog::index::{ENTRY_LEN, IndexEntry, NO_OFFSET};
use crate::catalog::records::{self, CatalogKind, RECORDS_HEADER_LEN};
use crate::catalog::tail;
use crate::catalog::version::{self, CatalogRef, RootRecord, TableDef, TableEntry, VersionRecord};
use crate::catalog::{index_path, records_path};
use crate::error::{Error, Result, lock_error};
use crate::read::snapshot::Table;
use crate::store::{LOCK_FILE, Store, key_indices};
use crate::value::Key;
use crate::writer::overlay_commit::{GenerationWriter, fold_into_keyframe, write_overlay};

mod alter;
mod commit;
mod maintain;
pub(crate) mod overlay_commit;
mod overlay_gather;
mod patch;
pub mod schema_change;
mod settle;
mod validate;

use commit::write_version;
pub(crate) use settle::settle;
use validate::{check_nulls, conform, prepare, stored_schema};

/// When a table's change is written as a new keyframe rather than an overlay: the writer's
/// keyframe policy (see ARCHITECTURE.md, "The keyframe policy"). A change becomes a keyframe
/// when any bound is passed:
///
/// - **read cost**: the overlay would hold more rows (shadowed keyframe rows or live overlay
///   rows, whichever is more, plus the change's) than `fraction` of the keyframe's rows and
///   than `min_overlay_rows` (or the keyframe's rows, if fewer). A scan of an overlay
///   version reads the keyframe and the live overlay rows, so this bounds the rows it reads
///   at `1 + fraction` times a keyframe's, except that a small table's overlay may grow to
///   its own size (at most `min_overlay_rows`), whose reading costs microseconds, before a
///   keyframe, a whole copy of it, is cut;
/// - **depth**: `every` commits to the table since its keyframe (a get searches each
///   commit's batch, newest first, so this bounds a get's work);
/// - **bytes**: right after a keyframe, the change touches at most `touching` of its leaves,
///   so a keyframe costs only those leaves (every other leaf is shared by content) and is
///   the cheaper form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyframePolicy {
    /// Overlay commits before a keyframe is forced (1: every commit is a keyframe).
    pub every: u32,
    /// The read-cost bound, as a fraction of the keyframe's rows.
    pub fraction: f64,
    /// Overlay rows the read-cost bound always allows, up to the keyframe's own rows.
    pub min_overlay_rows: u64,
    /// The fraction of leaves a change may touch and still be written as a keyframe right
    /// after one (0: never).
    pub touching: f64,
}

impl Default for KeyframePolicy {
    fn default() -> Self {
        KeyframePolicy {
            every: 20,
            fraction: 0.25,
            min_overlay_rows: 4096,
            touching: 0.1,
        }
    }
}

/// Options for a [`Writer`].
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub(crate) sync: bool,
    max_pack_len: Option<u64>,
    shape: TreeShape,
    policy: KeyframePolicy,
    table_policies: HashMap<String, KeyframePolicy>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            sync: true,
            max_pack_len: None,
            shape: TreeShape::default(),
            policy: KeyframePolicy::default(),
            table_policies: HashMap::new(),
        }
    }
}

/// `policy` with `every` at least 1 and no negative fraction.
fn sane(policy: KeyframePolicy) -> KeyframePolicy {
    KeyframePolicy {
        every: policy.every.max(1),
        fraction: policy.fraction.max(0.0),
        min_overlay_rows: policy.min_overlay_rows,
        touching: policy.touching.max(0.0),
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
        self.policy.every = n.max(1);
        self
    }

    /// A table's change is written as a keyframe once its overlay would hold more keys than
    /// this fraction of the keyframe's rows (default 0.25) and than the policy's
    /// `min_overlay_rows` (default 4,096).
    #[must_use]
    pub fn keyframe_fraction(mut self, fraction: f64) -> Self {
        self.policy.fraction = fraction.max(0.0);
        self
    }

    /// Overlay rows the read-cost bound always allows (default 4,096; see
    /// [`KeyframePolicy`]).
    #[must_use]
    pub fn min_overlay_rows(mut self, rows: u64) -> Self {
        self.policy.min_overlay_rows = rows;
        self
    }

    /// Right after a keyframe, a change that touches at most this fraction of the keyframe's
    /// leaves is written as a new keyframe rather than starting an overlay (default 0.1):
    /// changes clustered in a few key ranges (the newest entities, say) cost a keyframe only
    /// the leaves they touch, since every other leaf is shared. 0 turns this off.
    #[must_use]
    pub fn keyframe_touching(mut self, fraction: f64) -> Self {
        self.policy.touching = fraction.max(0.0);
        self
    }

    /// The keyframe policy of every table without one of its own (the three settings above
    /// at once).
    #[must_use]
    pub fn keyframe_policy(mut self, policy: KeyframePolicy) -> Self {
        self.policy = sane(policy);
        self
    }

    /// The keyframe policy of table `table` (by its name when a change is written): a hot
    /// table of a few thousand rows and a large slowly-changing one want different bounds.
    #[must_use]
    pub fn table_keyframe_policy(mut self, table: &str, policy: KeyframePolicy) -> Self {
        self.table_policies.insert(table.to_string(), sane(policy));
        self
    }

    /// The policy table `table` is written by.
    pub fn policy_of(&self, table: &str) -> KeyframePolicy {
        self.table_policies
            .get(table)
            .copied()
            .unwrap_or(self.policy)
    }

    /// Seals a pack file once it passes this many bytes (default 1 GiB).
    #[must_use]
    pub fn max_pack_len(mut self, len: u64) -> Self {
        self.max_pack_len = Some(len);
        self
    }
}

impl Store {
    /// Takes the writer lock (failing at once with [`Error::WriterLocked`] if another writer,
    /// in this or any process, holds it) and returns the writer.
    pub fn writer(&self) -> Result<Writer> {
        self.writer_with(WriterOptions::default())
    }

    /// [`Store::writer`] with options.
    pub fn writer_with(&self, options: WriterOptions) -> Result<Writer> {
        Writer::open(self.clone(), options)
    }
}

/// The store's single writer. Holds the writer lock until dropped.
#[derive(Debug)]
pub struct Writer {
    store: Store,
    lock: Box<dyn LockGuard>,
    pub(crate) packs: PackWriter,
    head: Option<(IndexEntry, VersionRecord)>,
    pub(crate) options: WriterOptions,
    poisoned: bool,
    /// The generations this writer has appended overlays to, by node log.
    logs: HashMap<PathBuf, GenerationWriter>,
}

impl Drop for Writer {
    /// Leaves what the writer knows of each open generation to the store handle's next
    /// writer (`overlay_commit::park_generations`).
    fn drop(&mut self) {
        if !self.poisoned {
            overlay_commit::park_generations(
                &self.store.inner.parked_generations,
                &mut self.logs,
                self.head.as_ref().map(|(_, rec)| rec),
            );
        }
    }
}

impl Writer {
    pub(crate) fn open(store: Store, options: WriterOptions) -> Result<Writer> {
        let storage = store.inner.storage.clone();
        let lock = storage
            .try_lock(Path::new(LOCK_FILE))
            .map_err(|e| lock_error(e, &store.path().display().to_string()))?;
        if storage.locks_outlive_their_process() {
            // Its commits write version heads (a store an earlier build created lacks the bit).
            store.require_feature_locked(crate::store::FEATURE_VERSION_HEADS)?;
        }
        let (head, packs) = settle(&store, &options)?;
        let mut writer = Writer {
            store,
            lock,
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
        for generation in self.logs.values_mut() {
            generation.abort();
        }
    }
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
        /// Partial rows (see `patch`): key columns and some others, in the table's types.
        patches: Vec<RecordBatch>,
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

    #[allow(clippy::type_complexity)]
    fn edits(
        &mut self,
        table: &str,
    ) -> Result<(
        &mut Vec<RecordBatch>,
        &mut Vec<RecordBatch>,
        &mut Vec<RecordBatch>,
    )> {
        let entry = self
            .changes
            .entry(table.to_string())
            .or_insert(TableChange::Edits {
                upserts: Vec::new(),
                deletes: Vec::new(),
                patches: Vec::new(),
            });
        match entry {
            TableChange::Edits {
                upserts,
                deletes,
                patches,
            } => Ok((upserts, deletes, patches)),
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

    /// Changes some columns of existing rows: `batch` holds the table's key columns and any
    /// subset of its other columns; each row's columns not in `batch` keep their values. The
    /// rows are looked up in the table as it stands (the writer's latest version) when the
    /// transaction commits. A column the table lacks is [`Error::UnknownColumn`], a missing
    /// key column or a column of another type [`Error::SchemaMismatch`], a key the table does
    /// not hold [`Error::KeyNotFound`], a key also upserted, deleted or patched twice in the
    /// commit [`Error::DuplicateKey`]; on any of them nothing is committed.
    pub fn patch(&mut self, table: &str, batch: RecordBatch) -> Result<&mut Self> {
        let layout = self.layout(table)?;
        let batch = patch::conform_patch(table, &layout, &batch)?;
        self.edits(table)?.2.push(batch);
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
            cols.push(validate::stored_column(table, col, f, "key column")?);
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
            // A replace diffs against the table as it stands, and patches look their rows up
            // in it.
            let reads_current = match &change {
                TableChange::Replace(_) => true,
                TableChange::Edits { patches, .. } => !patches.is_empty(),
            };
            let current = match (reads_current, &writer.head) {
                (true, Some((_, rec))) if !created => {
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
                if e.lost_the_store() {
                    // What this writer wrote past the committed state may be the next
                    // writer's now: it must write nothing more, not even a cut-back.
                    writer.poisoned = true;
                    return Err(Error::WriterConflict {
                        store: writer.store.path().display().to_string(),
                        version: prev.map_or(1, |p| p.version + 1),
                    });
                }
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
