//! [`Snapshot`] (one version of the whole store) and [`Table`] (one table at that version):
//! full scans with projection and a pushed-down filter, parallel scans, point gets and
//! key-range scans in either direction.

use std::collections::{HashMap, VecDeque};
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use rayon::prelude::*;
use reeldb_keyframe::Root;
use reeldb_keyframe::tree::{Access, TableLayout, Tree, search_key};

use crate::catalog::overlay_log_path;
use crate::catalog::version::{TableEntry, VersionRecord};
use crate::error::{Error, Result};
use crate::lease::Pin;
use crate::read::filter::Filter;
use crate::read::overlay_view::OverlayView;
use crate::read::scan_plan::{ScanPlan, Unit};
use crate::store::{Store, VersionInfo, info_of};
use crate::value::Key;

use super::range::Part;

pub use super::range::Range;

/// A key's row in the keyframe, found by a get.
struct KeyframeRow {
    /// The leaf holding it.
    leaf: Arc<reeldb_keyframe::node::LeafNode>,
    /// The leaf's key columns, decoded whole.
    keys: Vec<ArrayRef>,
    /// Its row in the leaf.
    row: usize,
    /// Its ordinal in the keyframe.
    ordinal: u64,
}

/// One committed version of the store. Cheap to clone; reads never block the writer.
#[derive(Debug, Clone)]
pub struct Snapshot {
    store: Store,
    record: Arc<VersionRecord>,
    /// Keeps the version from being purged while this snapshot or anything read from it lives.
    pin: Arc<Pin>,
    /// Tables already opened, so repeated calls (a get each, say) share one overlay view,
    /// whose bitmaps and decoded keys load once.
    tables: Arc<Mutex<HashMap<String, Table>>>,
}

impl Snapshot {
    pub(crate) fn new(store: Store, record: VersionRecord, pin: Arc<Pin>) -> Self {
        Snapshot {
            store,
            record: Arc::new(record),
            pin,
            tables: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The version number.
    pub fn version(&self) -> u64 {
        self.record.version
    }

    /// Time, source offset and metadata of the version.
    pub fn info(&self) -> VersionInfo {
        info_of(&self.record)
    }

    /// Names of the tables at this version, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.record.tables.iter().map(|t| t.name.clone()).collect()
    }

    /// The table `name` at this version.
    pub fn table(&self, name: &str) -> Result<Table> {
        if let Ok(tables) = self.tables.lock()
            && let Some(t) = tables.get(name)
        {
            return Ok(t.clone());
        }
        let table = self.open_table(name)?;
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(name.to_string(), table.clone());
        }
        Ok(table)
    }

    fn open_table(&self, name: &str) -> Result<Table> {
        let entry = self
            .record
            .tables
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::UnknownTable {
                table: name.to_string(),
                version: self.version(),
            })?;
        let def = self.store.load_def(entry.def)?;
        let tree = Tree::new(
            self.store.inner.source.clone(),
            def.layout.clone(),
            entry.root.as_ref().map(Root::from),
        );
        let overlay = match (&entry.overlay, &entry.bframe) {
            (Some(rec), _) => {
                let path = overlay_log_path(entry.id, entry.keyframe_at);
                Some(Arc::new(OverlayView::load(
                    self.store.node_log(&path),
                    rec,
                )?))
            }
            (None, Some(rec)) => Some(Arc::new(OverlayView::bframe(
                self.store.inner.source.clone(),
                rec,
            )?)),
            (None, None) => None,
        };
        Ok(Table {
            pin: self.pin.clone(),
            entry: entry.clone(),
            key_columns: def.def.key_columns.clone(),
            tree,
            overlay,
        })
    }
}

/// What a scan reads: which columns, and which rows.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Columns to return, in this order (`None`: every column).
    pub columns: Option<Vec<String>>,
    /// Rows to return: those matching every filter (none: every row). Pushed down: leaves
    /// whose zone maps rule any filter out are not read.
    pub filters: Vec<Filter>,
    /// Return rows in key order at every version (a merge of keyframe and overlay; without
    /// it, rows are in key order only at keyframe versions).
    pub key_order: bool,
    /// Decode a few leaves ahead on rayon's pool, in parallel, keeping the batches' order.
    /// Off by default, for callers that scan partitions on threads of their own
    /// (DataFusion); on for a lone scan that should use every core (Python, `reel`).
    pub parallel: bool,
    /// Join decoded batches (one per keyframe leaf or overlay batch, up to 64Ki rows each)
    /// into batches of at least this many rows, across leaf boundaries, at the cost of one
    /// copy; `None` (the default) returns them as decoded. The Python package and `reel`
    /// join to [`DEFAULT_BATCH_ROWS`].
    pub batch_rows: Option<usize>,
    /// Return string and binary output columns as `Dictionary(Int32, type)` arrays:
    /// dictionary-coded blocks hand over their codes and dictionary without building each
    /// value (what group-bys on low-cardinality strings want); other blocks are
    /// dictionary-encoded as they are read. Output columns a filter also tests stay values.
    /// (String columns only a filter reads are read as dictionaries whatever this says.)
    pub dictionaries: bool,
}

/// The batch size the Python package and `reel` ask scans for: 4Ki rows. Most keyframe
/// leaves hold more (2,048 rows plus a content-defined stretch of about 8,192), so they pass
/// through uncopied and only small batches (filtered, or thinned by hidden rows) are joined:
/// joining every batch to 64Ki rows, as before, copied every column once more and took a
/// tenth of a Python scan's time.
pub const DEFAULT_BATCH_ROWS: usize = 1 << 12;

impl ScanOptions {
    /// Every column, every row.
    pub fn new() -> Self {
        ScanOptions::default()
    }

    /// Only these columns.
    #[must_use]
    pub fn columns<S: AsRef<str>>(mut self, columns: &[S]) -> Self {
        self.columns = Some(columns.iter().map(|c| c.as_ref().to_string()).collect());
        self
    }

    /// Only rows matching `filter` (and every filter given before).
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filters.push(filter);
        self
    }

    /// Rows in key order at every version.
    #[must_use]
    pub fn in_key_order(mut self) -> Self {
        self.key_order = true;
        self
    }

    /// Decode leaves ahead in parallel on rayon's pool (see [`ScanOptions::parallel`]).
    #[must_use]
    pub fn in_parallel(mut self) -> Self {
        self.parallel = true;
        self
    }

    /// String and binary columns as dictionaries (see [`ScanOptions::dictionaries`]).
    #[must_use]
    pub fn with_dictionaries(mut self) -> Self {
        self.dictionaries = true;
        self
    }

    /// Batches of at least `rows` rows (see [`ScanOptions::batch_rows`]).
    #[must_use]
    pub fn in_batches_of(mut self, rows: usize) -> Self {
        self.batch_rows = Some(rows.max(1));
        self
    }
}

/// One table at one version.
#[derive(Debug, Clone)]
pub struct Table {
    pin: Arc<Pin>,
    entry: TableEntry,
    key_columns: Vec<String>,
    pub(crate) tree: Tree,
    pub(crate) overlay: Option<Arc<OverlayView>>,
}

/// What the zone maps of a table's keyframe say about one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnZone {
    /// Null values in the keyframe.
    pub null_count: u64,
    /// Encoded minimum and maximum of the non-null values (a single-column arrow-row
    /// encoding, see `reeldb_keyframe::zonemap`): `Some(None)` when every value is null,
    /// `None` when unknown.
    pub bounds: Option<Option<(Vec<u8>, Vec<u8>)>>,
}

impl Table {
    /// The same table read with `layout`: its data at this version under another version's
    /// schema (columns added since read as their defaults, dropped ones are left out,
    /// widened ones are cast). The key columns must be the same.
    pub(crate) fn read_as(&self, layout: Arc<TableLayout>) -> Table {
        let key_columns = layout
            .key
            .columns()
            .iter()
            .map(|&c| layout.schema.field(c).name().clone())
            .collect();
        Table {
            pin: self.pin.clone(),
            entry: self.entry.clone(),
            key_columns,
            tree: self.tree.with_layout(layout),
            overlay: self.overlay.clone(),
        }
    }

    /// The table's id: assigned when it was created, kept across renames, never reused.
    pub fn id(&self) -> u32 {
        self.entry.id
    }

    /// The table's catalog entry at this version.
    pub(crate) fn entry(&self) -> &TableEntry {
        &self.entry
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// The table's schema.
    pub fn schema(&self) -> SchemaRef {
        self.tree.layout().schema.clone()
    }

    /// Names of the primary-key columns, in key order.
    pub fn key_columns(&self) -> &[String] {
        &self.key_columns
    }

    /// Number of rows.
    pub fn num_rows(&self) -> u64 {
        match &self.overlay {
            Some(o) => self.tree.rows() - o.shadowed() + o.live(),
            None => self.tree.rows(),
        }
    }

    /// Keyframe leaves, then overlay batches.
    fn units(&self) -> Result<Vec<Unit>> {
        let mut units: Vec<Unit> = self.tree.leaves()?.into_iter().map(Unit::Leaf).collect();
        if let Some(o) = &self.overlay {
            units.extend((0..o.batches.len()).map(Unit::Batch));
        }
        Ok(units)
    }

    /// The version that last changed this table.
    pub fn changed_at(&self) -> u64 {
        self.entry.changed_at
    }

    /// Scans the table: every visible row that matches, in batches. Rows come in key order
    /// at a keyframe version; at an overlay version the overlay's rows come after the
    /// keyframe's (use [`Table::range`] for key order at any version).
    pub fn scan(&self, opts: &ScanOptions) -> Result<Scan> {
        let plan = ScanPlan::new(self.tree.layout(), opts)?;
        let source = if opts.key_order && self.overlay.is_some() {
            ScanSource::Ordered(Box::new(self.range::<Key, _>(..)?))
        } else {
            ScanSource::Units(self.units()?.into_iter())
        };
        Ok(self.scan_of(plan, source, opts))
    }

    /// A scan of this table reading `source` by `plan`.
    fn scan_of(&self, plan: ScanPlan, source: ScanSource, opts: &ScanOptions) -> Scan {
        Scan {
            _pin: self.pin.clone(),
            tree: self.tree.clone(),
            overlay: self.overlay.clone(),
            plan,
            source,
            read_ahead: opts.parallel.then(|| 4 * rayon::current_num_threads()),
            decoded: VecDeque::new(),
            batch_rows: opts.batch_rows,
            joining: Vec::new(),
        }
    }

    /// Scans the table with leaves decoded in parallel on rayon's pool. Batches come in no
    /// particular order.
    pub fn par_scan(
        &self,
        opts: &ScanOptions,
    ) -> Result<impl ParallelIterator<Item = Result<RecordBatch>> + use<>> {
        let plan = ScanPlan::new(self.tree.layout(), opts)?;
        let tree = self.tree.clone();
        let overlay = self.overlay.clone();
        let pin = self.pin.clone();
        Ok(self.units()?.into_par_iter().filter_map(move |u| {
            let _held = &pin;
            plan.unit(&tree, overlay.as_deref(), &u).transpose()
        }))
    }

    /// Splits a scan into at most `parts` scans over contiguous groups of keyframe leaves and
    /// overlay batches, for engines that scan partitions in parallel (DataFusion). Together
    /// they return exactly the rows of [`Table::scan`]; none is empty of work unless the table
    /// is.
    pub fn scan_partitions(&self, opts: &ScanOptions, parts: usize) -> Result<Vec<Scan>> {
        let plan = ScanPlan::new(self.tree.layout(), opts)?;
        let units = self.units()?;
        let per = units.len().div_ceil(parts.max(1)).max(1);
        let mut units = units.into_iter();
        let mut scans = Vec::new();
        loop {
            let group: Vec<Unit> = units.by_ref().take(per).collect();
            if group.is_empty() {
                return Ok(scans);
            }
            scans.push(self.scan_of(plan.clone(), ScanSource::Units(group.into_iter()), opts));
        }
    }

    /// Per-column null counts and encoded (memcomparable) minimum and maximum of the
    /// keyframe's rows, from its leaves' zone maps: `None` for a column whose bounds some leaf
    /// does not keep. Exact for the table at a keyframe version; an overlay or B-frame adds
    /// and hides rows the zone maps do not see.
    pub fn keyframe_zones(&self) -> Result<Vec<ColumnZone>> {
        let fields = self.tree.layout().schema.fields().len();
        let mut zones = vec![
            ColumnZone {
                null_count: 0,
                bounds: Some(None),
            };
            fields
        ];
        for leaf in self.tree.leaves()? {
            let node = self.tree.read_leaf(&leaf.entry)?;
            for (c, zone) in zones.iter_mut().enumerate() {
                // A leaf without the column's slot, or with a zone map of its type before a
                // widening, says nothing about its bounds.
                let Some(chunk) = self.tree.layout().zone(&node, c) else {
                    zone.bounds = None;
                    // A block from before a widening still counts its nulls; a missing slot
                    // is all nulls unless the column has a default.
                    zone.null_count += match self.tree.layout().chunk(&node, c) {
                        Some(present) => u64::from(present.zone.null_count),
                        None if self.tree.layout().columns[c].default.is_none() => {
                            u64::from(node.rows)
                        }
                        None => 0,
                    };
                    continue;
                };
                zone.null_count += u64::from(chunk.null_count);
                let non_null = u64::from(node.rows) > u64::from(chunk.null_count);
                zone.bounds = match (zone.bounds.take(), &chunk.bounds) {
                    (None, _) => None,
                    // Values the leaf kept no bounds for (too long, or a type without them).
                    (Some(_), None) if non_null => None,
                    (Some(known), None) => Some(known),
                    (Some(None), Some((lo, hi))) => Some(Some((lo.clone(), hi.clone()))),
                    (Some(Some((a, b))), Some((lo, hi))) => {
                        Some(Some((a.min(lo.clone()), b.max(hi.clone()))))
                    }
                };
            }
        }
        Ok(zones)
    }

    /// Whether the table is read at a keyframe version (no overlay or B-frame over it).
    pub fn at_keyframe(&self) -> bool {
        self.overlay.is_none()
    }

    /// The schema of what a scan with `opts` returns.
    pub fn scan_schema(&self, opts: &ScanOptions) -> Result<SchemaRef> {
        Ok(ScanPlan::new(self.tree.layout(), opts)?.output)
    }

    fn key_arrays(&self, key: &Key) -> Result<Vec<ArrayRef>> {
        let layout = self.tree.layout();
        let cols = layout.key.columns();
        if key.0.len() != cols.len() {
            return Err(Error::InvalidArgument(format!(
                "table {} has {} key columns ({}); got {} values",
                self.name(),
                cols.len(),
                self.key_columns.join(", "),
                key.0.len()
            )));
        }
        key.0
            .iter()
            .zip(cols)
            .map(|(v, &c)| {
                let f = layout.schema.field(c);
                if matches!(v, crate::value::Value::Null) {
                    return Err(Error::InvalidArgument(format!(
                        "key column {} cannot be null",
                        f.name()
                    )));
                }
                v.to_array(f.data_type(), f.name())
            })
            .collect()
    }

    fn encode_key(&self, key: &Key) -> Result<(Vec<u8>, Vec<ArrayRef>)> {
        let arrays = self.key_arrays(key)?;
        let rows = self.tree.layout().key.encode_columns(&arrays)?;
        Ok((rows.row(0).as_ref().to_vec(), arrays))
    }

    /// The row with `key`, as a one-row batch, or `None`.
    pub fn get(&self, key: impl Into<Key>) -> Result<Option<RecordBatch>> {
        let (encoded, probe) = self.encode_key(&key.into())?;
        self.get_encoded(&encoded, &probe)
    }

    /// The row with the memcomparable key `encoded`, whose key columns as one-row arrays are
    /// `probe`, as a one-row batch, or `None`.
    ///
    /// The keyframe is searched first: a key whose keyframe row is not hidden has no live
    /// row in the overlay or residual batches (a batch row for a key the keyframe holds
    /// always hides that row, or scans would see the key twice), so only the other keys,
    /// changed, deleted or new since the keyframe, search the batches.
    pub(crate) fn get_encoded(
        &self,
        encoded: &[u8],
        probe: &[ArrayRef],
    ) -> Result<Option<RecordBatch>> {
        if let Some(at) = self.keyframe_row(encoded, probe)? {
            let hidden = match &self.overlay {
                Some(o) => o.hides(at.ordinal)?,
                None => false,
            };
            if !hidden {
                return Ok(Some(self.tree.read_leaf_row(&at.leaf, &at.keys, at.row)?));
            }
        }
        if let Some(o) = &self.overlay
            && let Some(loc) = o.entry(&self.tree, encoded)?
        {
            return Ok(Some(o.row(&self.tree, loc)?));
        }
        Ok(None)
    }

    /// Where the keyframe holds the key `encoded` (key columns `probe`), if it does.
    fn keyframe_row(&self, encoded: &[u8], probe: &[ArrayRef]) -> Result<Option<KeyframeRow>> {
        let Some(leaf) = self.tree.find_leaf(encoded)? else {
            return Ok(None);
        };
        let node = self.tree.read_leaf(&leaf.entry)?;
        if encoded > node.last_key.as_slice() {
            return Ok(None);
        }
        let layout = self.tree.layout();
        let keys = self
            .tree
            .read_columns(&node, layout.key.columns(), Access::Cached)?;
        let Ok(row) = search_key(&keys, probe)? else {
            return Ok(None);
        };
        Ok(Some(KeyframeRow {
            leaf: node,
            keys,
            row,
            ordinal: leaf.ordinal + row as u64,
        }))
    }

    /// Rows whose keys fall in `range`, in key order; iterate from the back for descending
    /// order (each batch's rows are then in descending order too).
    pub fn range<K: Into<Key> + Clone, R: RangeBounds<K>>(&self, range: R) -> Result<Range> {
        let bound = |b: Bound<&K>| -> Result<Bound<(Vec<u8>, Vec<ArrayRef>)>> {
            Ok(match b {
                Bound::Included(k) => Bound::Included(self.encode_key(&k.clone().into())?),
                Bound::Excluded(k) => Bound::Excluded(self.encode_key(&k.clone().into())?),
                Bound::Unbounded => Bound::Unbounded,
            })
        };
        let lo = bound(range.start_bound())?;
        let hi = bound(range.end_bound())?;
        let as_bytes = |b: &Bound<(Vec<u8>, Vec<ArrayRef>)>| match b {
            Bound::Included((k, _)) => Bound::Included(k.clone()),
            Bound::Excluded((k, _)) => Bound::Excluded(k.clone()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let (lo_b, hi_b) = (as_bytes(&lo), as_bytes(&hi));
        let (lo_r, hi_r) = (
            lo_b.as_ref().map(|k| k.as_slice()),
            hi_b.as_ref().map(|k| k.as_slice()),
        );
        let mut parts: Vec<Part> = self
            .tree
            .leaves_in(lo_r, hi_r)?
            .into_iter()
            .map(|l| Part {
                leaf: Some(l),
                overlay: Vec::new(),
            })
            .collect();
        if let Some(o) = &self.overlay {
            let rows = o.rows_in(&self.tree, lo_r, hi_r)?;
            if parts.is_empty() && !rows.is_empty() {
                parts.push(Part {
                    leaf: None,
                    overlay: Vec::new(),
                });
            }
            // Each overlay row joins the part whose leaf's key interval holds its key.
            for (key, loc) in rows {
                let at = parts
                    .partition_point(|p| {
                        p.leaf
                            .as_ref()
                            .is_some_and(|l| l.entry.first_key.as_slice() <= key.as_slice())
                    })
                    .saturating_sub(1);
                parts[at].overlay.push(loc);
            }
        }
        Ok(Range {
            _pin: self.pin.clone(),
            tree: self.tree.clone(),
            overlay: self.overlay.clone(),
            lo: lo.map(|(_, a)| a),
            hi: hi.map(|(_, a)| a),
            front: 0,
            back: parts.len(),
            parts,
        })
    }
}

/// A full scan; see [`Table::scan`].
#[derive(Debug)]
pub struct Scan {
    _pin: Arc<Pin>,
    tree: Tree,
    overlay: Option<Arc<OverlayView>>,
    plan: ScanPlan,
    source: ScanSource,
    /// With [`ScanOptions::parallel`]: how many units to decode at once on rayon's pool.
    read_ahead: Option<usize>,
    /// Units decoded ahead, in order, not yet returned.
    decoded: VecDeque<Result<Option<RecordBatch>>>,
    /// With [`ScanOptions::batch_rows`]: the size batches are joined to.
    batch_rows: Option<usize>,
    /// Decoded batches waiting to be joined.
    joining: Vec<RecordBatch>,
}

/// Where a scan's rows come from.
#[derive(Debug)]
enum ScanSource {
    /// Keyframe leaves then overlay batches.
    Units(std::vec::IntoIter<Unit>),
    /// The merged key-ordered range over the whole table.
    Ordered(Box<Range>),
}

impl Scan {
    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.plan.output.clone()
    }
}

impl Scan {
    /// The waiting batches as one.
    fn join(&mut self) -> Result<RecordBatch> {
        let mut parts = std::mem::take(&mut self.joining);
        if parts.len() == 1 {
            // Checked: exactly one element.
            return Ok(parts.remove(0));
        }
        Ok(arrow::compute::concat_batches(&self.plan.output, &parts)?)
    }

    /// The next batch as decoded: one keyframe leaf or overlay batch.
    fn next_decoded(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            let step = match &mut self.source {
                ScanSource::Units(units) => match self.read_ahead {
                    Some(window) => {
                        if self.decoded.is_empty() {
                            let next: Vec<Unit> = units.by_ref().take(window).collect();
                            let (plan, tree) = (&self.plan, &self.tree);
                            let overlay = self.overlay.as_deref();
                            self.decoded = next
                                .par_iter()
                                .map(|unit| plan.unit(tree, overlay, unit))
                                .collect::<Vec<_>>()
                                .into();
                        }
                        self.decoded.pop_front()?
                    }
                    None => {
                        let unit = units.next()?;
                        self.plan.unit(&self.tree, self.overlay.as_deref(), &unit)
                    }
                },
                ScanSource::Ordered(range) => match range.next()? {
                    Ok(batch) => {
                        let cols = self
                            .plan
                            .read
                            .iter()
                            .map(|&c| batch.column(c).clone())
                            .collect();
                        self.plan.finish(cols, batch.num_rows(), None)
                    }
                    Err(e) => Err(e),
                },
            };
            match step {
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => continue,
                Err(e) => {
                    self.source = ScanSource::Units(Vec::new().into_iter());
                    self.decoded.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Iterator for Scan {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(target) = self.batch_rows else {
            return self.next_decoded();
        };
        let mut rows: usize = self.joining.iter().map(|b| b.num_rows()).sum();
        loop {
            match self.next_decoded() {
                Some(Ok(b)) => {
                    rows += b.num_rows();
                    self.joining.push(b);
                    if rows >= target {
                        return Some(self.join());
                    }
                }
                Some(Err(e)) => {
                    self.joining.clear();
                    return Some(Err(e));
                }
                None if self.joining.is_empty() => return None,
                None => return Some(self.join()),
            }
        }
    }
}
