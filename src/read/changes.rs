//! What changed: the rows that differ between two versions of a table ([`Store::changes`])
//! and every version at which one row changed ([`Store::history`]).
//!
//! When both versions read the same keyframe (one generation, or B-frames of one closed
//! generation), only the rows their overlays or B-frames touch are read: keyframe rows hidden
//! at one version and not the other, and overlay or residual rows live at one and not the
//! other. Otherwise two key-ordered scans are merged. Either way a key whose row reads the
//! same at both versions is not a change.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array, new_null_array,
};
use arrow::compute::{concat_batches, interleave, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_row::{RowConverter, Rows, SortField};
use reeldb_keyframe::tree::Access;
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::error::{Error, Result};
use crate::read::overlay_view::OverlayView;
use crate::read::snapshot::Table;
use crate::store::Store;
use crate::value::Key;

/// Output rows per batch of a change set.
const CHUNK_ROWS: usize = 8192;

/// How a row changed between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The key is absent at the older version and present at the newer one.
    Insert,
    /// The key is present at both with different values.
    Update,
    /// The key is present at the older version and absent at the newer one.
    Delete,
}

impl ChangeKind {
    /// `insert`, `update` or `delete`: the value of the `change` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        }
    }
}

/// How a change set was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffMethod {
    /// From the overlays' or B-frames' bitmaps over the keyframe both versions share: work
    /// proportional to the rows changed in the generation.
    Generation,
    /// By merging two key-ordered scans of the whole table.
    Merge,
}

/// The rows that differ between two versions of a table, in key order.
///
/// Columns: `change` (`insert`, `update` or `delete`), the key columns, then `old_<column>`
/// and `new_<column>` for every other column (null on the side where the key is absent).
#[derive(Debug, Clone)]
pub struct Changes {
    /// How they were computed.
    pub method: DiffMethod,
    /// The schema of `batches`.
    pub schema: SchemaRef,
    /// The changes, in key order.
    pub batches: Vec<RecordBatch>,
}

impl Changes {
    /// Number of changed keys.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// The schema of the changes of a table with `schema` and key columns `keys`.
pub fn changes_schema(schema: &Schema, keys: &[String]) -> SchemaRef {
    let mut fields = vec![Field::new("change", DataType::Utf8, false)];
    for k in keys {
        if let Ok(f) = schema.field_with_name(k) {
            fields.push(f.clone().with_nullable(false));
        }
    }
    for f in schema.fields() {
        if !keys.contains(f.name()) {
            fields.push(Field::new(
                format!("old_{}", f.name()),
                f.data_type().clone(),
                true,
            ));
            fields.push(Field::new(
                format!("new_{}", f.name()),
                f.data_type().clone(),
                true,
            ));
        }
    }
    Arc::new(Schema::new(fields))
}

/// The schema of a row's history for a table with `schema`: `version`, `change`, then every
/// column (null where the row is deleted).
pub fn history_schema(schema: &Schema) -> SchemaRef {
    let mut fields = vec![
        Field::new("version", DataType::UInt64, false),
        Field::new("change", DataType::Utf8, false),
    ];
    fields.extend(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true)),
    );
    Arc::new(Schema::new(fields))
}

impl Store {
    /// The rows of `table` that differ between versions `from` and `to` (see [`Changes`]).
    /// A table missing at one of them reads as empty there; missing at both is an error.
    pub fn changes(&self, table: &str, from: u64, to: u64) -> Result<Changes> {
        self.diff(table, from, to, false)
    }

    /// The same change set as [`Store::changes`], always by merging two full key-ordered
    /// scans: the fallback across generations, public so the two can be compared.
    pub fn changes_by_full_scan(&self, table: &str, from: u64, to: u64) -> Result<Changes> {
        self.diff(table, from, to, true)
    }

    fn diff(&self, table: &str, from: u64, to: u64, full_scan: bool) -> Result<Changes> {
        let (old, new) = (self.snapshot(from)?, self.snapshot(to)?);
        let (old, new) = match (old.table(table), new.table(table)) {
            (Err(Error::UnknownTable { .. }), Err(Error::UnknownTable { .. })) => {
                return Err(Error::InvalidArgument(format!(
                    "table {table} exists at neither version {from} nor version {to}"
                )));
            }
            (a, b) => (absent_as_none(a)?, absent_as_none(b)?),
        };
        // Across a schema change, the older version is read with the newer one's schema
        // (columns added since read as their defaults, dropped ones are left out), so a
        // change of schema alone changes no row.
        let old = match (old, &new) {
            (Some(o), Some(n)) if o.entry().id == n.entry().id && o.schema() != n.schema() => {
                Some(o.read_as(n.tree.layout().clone()))
            }
            (old, _) => old,
        };
        // At least one side exists: both absent returned above.
        let Some(shape) = new.as_ref().or(old.as_ref()) else {
            return Err(Error::InvalidArgument(format!(
                "table {table} exists at neither version {from} nor version {to}"
            )));
        };
        let (schema, keys) = (shape.schema(), shape.key_columns().to_vec());
        for t in [&old, &new].into_iter().flatten() {
            if t.schema() != schema || t.key_columns() != keys.as_slice() {
                return Err(Error::InvalidArgument(format!(
                    "table {table} has a different schema or key at versions {from} and {to}"
                )));
            }
        }
        let mut out = Output::new(&schema, &keys)?;
        let method = match (&old, &new) {
            (Some(a), Some(b)) if !full_scan && a.entry().root == b.entry().root => {
                let (olds, news) = generation_candidates(a, b)?;
                merge(
                    vec![Ok(olds)].into_iter(),
                    vec![Ok(news)].into_iter(),
                    &mut out,
                )?;
                DiffMethod::Generation
            }
            _ => {
                merge(ordered(old.as_ref())?, ordered(new.as_ref())?, &mut out)?;
                DiffMethod::Merge
            }
        };
        Ok(Changes {
            method,
            schema: out.schema.clone(),
            batches: out.finish()?,
        })
    }

    /// Every version at which the row with `key` in `table` changed (was inserted, updated or
    /// deleted), oldest first, with its values there (see [`history_schema`]). Versions
    /// expired or before the table existed are not looked at.
    pub fn history(&self, table: &str, key: impl Into<Key>) -> Result<RecordBatch> {
        let key = key.into();
        let mut schema: Option<SchemaRef> = None;
        let mut rows: Vec<(u64, ChangeKind, Option<RecordBatch>)> = Vec::new();
        let mut current: Option<RecordBatch> = None;
        let mut seen_changed_at: Option<u64> = None;
        for info in self.versions()? {
            let snap = self.snapshot(info.version)?;
            let row = match absent_as_none(snap.table(table))? {
                None => {
                    seen_changed_at = None;
                    None
                }
                Some(t) => {
                    // A version that left the table as it was leaves the row as it was.
                    if seen_changed_at == Some(t.changed_at()) {
                        continue;
                    }
                    seen_changed_at = Some(t.changed_at());
                    if schema.is_none() {
                        schema = Some(t.schema());
                    }
                    t.get(key.clone())?
                }
            };
            let kind = match (&current, &row) {
                (None, None) => continue,
                (Some(a), Some(b)) if a == b => continue,
                (None, Some(_)) => ChangeKind::Insert,
                (Some(_), Some(_)) => ChangeKind::Update,
                (Some(_), None) => ChangeKind::Delete,
            };
            rows.push((info.version, kind, row.clone()));
            current = row;
        }
        let Some(schema) = schema else {
            return Err(Error::UnknownTable {
                table: table.to_string(),
                version: self.latest_version()?,
            });
        };
        let out = history_schema(&schema);
        let nulls = nulls_row(&schema)?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
        ];
        let sources: Vec<&RecordBatch> = rows
            .iter()
            .map(|r| r.2.as_ref().unwrap_or(&nulls))
            .collect();
        for c in 0..schema.fields().len() {
            let arrays: Vec<&dyn Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
            let picks: Vec<(usize, usize)> = (0..arrays.len()).map(|i| (i, 0)).collect();
            columns.push(if arrays.is_empty() {
                new_null_array(schema.field(c).data_type(), 0)
            } else {
                interleave(&arrays, &picks)?
            });
        }
        Ok(RecordBatch::try_new(out, columns)?)
    }
}

/// `Ok(None)` for a table that does not exist at the version.
fn absent_as_none(t: Result<Table>) -> Result<Option<Table>> {
    match t {
        Ok(t) => Ok(Some(t)),
        Err(Error::UnknownTable { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A one-row batch of nulls of `schema`'s columns (all made nullable).
fn nulls_row(schema: &SchemaRef) -> Result<RecordBatch> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let cols = schema
        .fields()
        .iter()
        .map(|f| new_null_array(f.data_type(), 1))
        .collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// The whole table in key order (nothing for a table that does not exist).
fn ordered(t: Option<&Table>) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>>>> {
    match t {
        Some(t) => Ok(Box::new(t.range::<Key, _>(..)?)),
        None => Ok(Box::new(std::iter::empty())),
    }
}

/// The hidden keyframe rows and the live overlay rows of a version (none at a keyframe).
fn bitmaps(
    view: Option<&OverlayView>,
) -> Result<(Cow<'_, RoaringTreemap>, Cow<'_, RoaringBitmap>)> {
    match view {
        Some(v) => {
            let (hidden, live) = v.hidden_and_live()?;
            Ok((Cow::Borrowed(hidden), Cow::Borrowed(live)))
        }
        None => Ok((
            Cow::Owned(RoaringTreemap::new()),
            Cow::Owned(RoaringBitmap::new()),
        )),
    }
}

/// True when the overlay row ids of the two views name the same rows: one's batches are a
/// prefix of the other's (overlays of one generation), or they are the same residual.
fn same_row_ids(a: Option<&OverlayView>, b: Option<&OverlayView>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            let n = a.batches.len().min(b.batches.len());
            a.is_bframe() == b.is_bframe() && a.batches[..n] == b.batches[..n]
        }
        // A keyframe version has no overlay rows.
        _ => true,
    }
}

/// The rows visible at `a` but not at `b` (old candidates) and at `b` but not at `a` (new
/// candidates), each sorted by key, for two versions over the same keyframe.
fn generation_candidates(a: &Table, b: &Table) -> Result<(RecordBatch, RecordBatch)> {
    let (va, vb) = (a.overlay.as_deref(), b.overlay.as_deref());
    let (hidden_a, live_a) = bitmaps(va)?;
    let (hidden_b, live_b) = bitmaps(vb)?;
    let (gone_a, gone_b) = if same_row_ids(va, vb) {
        (
            Cow::Owned(&*live_a - &*live_b),
            Cow::Owned(&*live_b - &*live_a),
        )
    } else {
        // Row ids of different residuals or logs: every live row is a candidate (the rows
        // that read the same at both versions drop out when compared).
        (live_a, live_b)
    };
    let old = gather(a, &(&*hidden_b - &*hidden_a), &gone_a)?;
    let new = gather(b, &(&*hidden_a - &*hidden_b), &gone_b)?;
    Ok((sort_by_key(a, old)?, sort_by_key(b, new)?))
}

/// The keyframe rows with `ordinals` and the overlay rows with ids `rows` of table `t`.
fn gather(t: &Table, ordinals: &RoaringTreemap, rows: &RoaringBitmap) -> Result<RecordBatch> {
    let schema = t.schema();
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    let mut parts = Vec::new();
    if !ordinals.is_empty() {
        // Leaves come in ordinal order, so one pass over the ordinals serves them all.
        let mut pending = ordinals.iter().peekable();
        for leaf in t.tree.leaves()? {
            let (first, end) = (leaf.ordinal, leaf.ordinal + leaf.entry.rows);
            let mut picks = Vec::new();
            while let Some(o) = pending.next_if(|&o| o < end) {
                // Ordinals below the first leaf's cannot occur; skip them if they do.
                if o >= first {
                    picks.push((o - first) as u32);
                }
            }
            if picks.is_empty() {
                continue;
            }
            let picks = UInt32Array::from(picks);
            let node = t.tree.read_leaf(&leaf.entry)?;
            let batch = t.tree.read_batch(&node, Access::Streaming)?;
            parts.push(take_record_batch(&batch, &picks)?);
        }
    }
    if let Some(o) = t.overlay.as_deref()
        && !rows.is_empty()
    {
        for (b, &start) in o.starts.iter().enumerate() {
            let end = start + o.batches[b].rows;
            if rows.range_cardinality(start..end) == 0 {
                continue;
            }
            let picks = UInt32Array::from_iter_values(rows.range(start..end).map(|id| id - start));
            let cols = o.batch_columns(&t.tree, b, &all, Access::Streaming)?;
            let batch = RecordBatch::try_new(schema.clone(), cols)?;
            parts.push(take_record_batch(&batch, &picks)?);
        }
    }
    Ok(concat_batches(&schema, &parts)?)
}

fn sort_by_key(t: &Table, batch: RecordBatch) -> Result<RecordBatch> {
    let keys = t.tree.layout().key.encode_batch(&batch)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_unstable_by(|&x, &y| keys.row(x as usize).cmp(&keys.row(y as usize)));
    Ok(take_record_batch(&batch, &UInt32Array::from(order))?)
}

/// One side of a merge: key-ordered batches, the current one with its encoded keys and
/// values, and the batches output rows still refer to.
struct Side<I> {
    batches: I,
    /// Batches the pending output rows refer to; the current batch is the last.
    held: Vec<RecordBatch>,
    keys: Option<Rows>,
    values: Option<Rows>,
    row: usize,
}

impl<I: Iterator<Item = Result<RecordBatch>>> Side<I> {
    fn new(batches: I) -> Self {
        Side {
            batches,
            held: Vec::new(),
            keys: None,
            values: None,
            row: 0,
        }
    }

    /// Loads batches until there is a current row or none is left.
    fn ready(&mut self, out: &Output) -> Result<()> {
        loop {
            if let Some(k) = &self.keys
                && self.row < k.num_rows()
            {
                return Ok(());
            }
            match self.batches.next() {
                None => {
                    self.keys = None;
                    self.values = None;
                    return Ok(());
                }
                Some(batch) => {
                    let batch = batch?;
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    self.keys = Some(out.key_rows(&batch)?);
                    self.values = Some(out.values.convert_columns(batch.columns())?);
                    self.held.push(batch);
                    self.row = 0;
                }
            }
        }
    }

    /// The current row's encoded key (`None` at the end).
    fn key(&self) -> Option<arrow_row::Row<'_>> {
        self.keys.as_ref().map(|k| k.row(self.row))
    }

    /// The current row's encoded values (`None` at the end).
    fn value(&self) -> Option<arrow_row::Row<'_>> {
        self.values.as_ref().map(|v| v.row(self.row))
    }

    /// Where the current row is among the held batches.
    fn at(&self) -> (usize, usize) {
        (self.held.len() - 1, self.row)
    }
}

/// Builds the change set: picks of old and new rows, turned into batches every
/// [`CHUNK_ROWS`].
struct Output {
    schema: SchemaRef,
    key_columns: Vec<usize>,
    key_encoder: RowConverter,
    values: RowConverter,
    /// The table columns that are not key columns.
    others: Vec<usize>,
    /// A row of nulls of the table's columns (what an absent side reads as).
    nulls: Vec<ArrayRef>,
    kinds: Vec<ChangeKind>,
    old: Vec<Option<(usize, usize)>>,
    new: Vec<Option<(usize, usize)>>,
    done: Vec<RecordBatch>,
}

impl Output {
    fn new(schema: &SchemaRef, keys: &[String]) -> Result<Self> {
        let key_columns: Vec<usize> = keys
            .iter()
            .map(|k| schema.index_of(k))
            .collect::<std::result::Result<_, _>>()?;
        let sort = |c: &usize| SortField::new(schema.field(*c).data_type().clone());
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        Ok(Output {
            schema: changes_schema(schema, keys),
            key_encoder: RowConverter::new(key_columns.iter().map(sort).collect())?,
            values: RowConverter::new(all.iter().map(sort).collect())?,
            others: all
                .iter()
                .copied()
                .filter(|c| !key_columns.contains(c))
                .collect(),
            key_columns,
            nulls: schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), 1))
                .collect(),
            kinds: Vec::new(),
            old: Vec::new(),
            new: Vec::new(),
            done: Vec::new(),
        })
    }

    fn key_rows(&self, batch: &RecordBatch) -> Result<Rows> {
        let cols: Vec<ArrayRef> = self
            .key_columns
            .iter()
            .map(|&c| batch.column(c).clone())
            .collect();
        Ok(self.key_encoder.convert_columns(&cols)?)
    }

    fn push(&mut self, kind: ChangeKind, old: Option<(usize, usize)>, new: Option<(usize, usize)>) {
        self.kinds.push(kind);
        self.old.push(old);
        self.new.push(new);
    }

    /// Turns the pending picks into a batch.
    fn flush(&mut self, old: &[RecordBatch], new: &[RecordBatch]) -> Result<()> {
        if self.kinds.is_empty() {
            return Ok(());
        }
        let column = |held: &[RecordBatch],
                      picks: &[Option<(usize, usize)>],
                      c: usize|
         -> Result<ArrayRef> {
            // Source 0 is the null row; held batch i is source i + 1.
            let mut sources: Vec<&dyn Array> = vec![self.nulls[c].as_ref()];
            sources.extend(held.iter().map(|b| b.column(c).as_ref()));
            let at: Vec<(usize, usize)> = picks
                .iter()
                .map(|p| p.map_or((0, 0), |(b, r)| (b + 1, r)))
                .collect();
            Ok(interleave(&sources, &at)?)
        };
        let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
            self.kinds.iter().map(ChangeKind::as_str),
        ))];
        for &c in &self.key_columns {
            // The key: from the old row, or from the new one where there is none.
            let mut sources: Vec<&dyn Array> = vec![self.nulls[c].as_ref()];
            sources.extend(old.iter().map(|b| b.column(c).as_ref()));
            sources.extend(new.iter().map(|b| b.column(c).as_ref()));
            let at: Vec<(usize, usize)> = self
                .old
                .iter()
                .zip(&self.new)
                .map(|(o, n)| match (o, n) {
                    (Some((b, r)), _) => (b + 1, *r),
                    (None, Some((b, r))) => (b + 1 + old.len(), *r),
                    (None, None) => (0, 0),
                })
                .collect();
            columns.push(interleave(&sources, &at)?);
        }
        for &c in &self.others {
            columns.push(column(old, &self.old, c)?);
            columns.push(column(new, &self.new, c)?);
        }
        self.done
            .push(RecordBatch::try_new(self.schema.clone(), columns)?);
        self.kinds.clear();
        self.old.clear();
        self.new.clear();
        Ok(())
    }

    fn finish(self) -> Result<Vec<RecordBatch>> {
        Ok(self.done)
    }
}

/// Merges two key-ordered sides into `out`: keys on one side only are inserts or deletes,
/// keys on both whose rows differ are updates.
fn merge<A, B>(old: A, new: B, out: &mut Output) -> Result<()>
where
    A: Iterator<Item = Result<RecordBatch>>,
    B: Iterator<Item = Result<RecordBatch>>,
{
    let (mut old, mut new) = (Side::new(old), Side::new(new));
    loop {
        old.ready(out)?;
        new.ready(out)?;
        let order = match (old.key(), new.key()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => a.cmp(&b),
        };
        match order {
            std::cmp::Ordering::Less => {
                out.push(ChangeKind::Delete, Some(old.at()), None);
                old.row += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(ChangeKind::Insert, None, Some(new.at()));
                new.row += 1;
            }
            std::cmp::Ordering::Equal => {
                if old.value() != new.value() {
                    out.push(ChangeKind::Update, Some(old.at()), Some(new.at()));
                }
                old.row += 1;
                new.row += 1;
            }
        }
        if out.kinds.len() >= CHUNK_ROWS {
            out.flush(&old.held, &new.held)?;
            // Keep only the current batches, which later picks refer to as index 0.
            for side in [&mut old.held, &mut new.held] {
                if let Some(last) = side.pop() {
                    side.clear();
                    side.push(last);
                }
            }
        }
    }
    out.flush(&old.held, &new.held)
}
