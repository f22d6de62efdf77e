//! Validating what a transaction writes before anything is written: input batches checked
//! against a table's schema and conformed to its stored layout (`conform`), nulls in key and
//! non-nullable columns refused, keys sorted and checked unique, a replace diffed against the
//! table as it stands (`diff`), and each table's change sorted into key order (`prepare`).

use super::*;

pub(super) fn same_fields(table: &str, want: &SchemaRef, got: &SchemaRef) -> Result<()> {
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
pub(super) fn same_logical_type(a: &DataType, b: &DataType) -> bool {
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
pub(super) fn in_stored_layout(
    table: &str,
    column: &ArrayRef,
    want: &DataType,
) -> Result<ArrayRef> {
    if column.data_type() == want || !same_logical_type(column.data_type(), want) {
        return Ok(column.clone());
    }
    arrow::compute::cast(column, want).map_err(|e| Error::SchemaMismatch {
        table: table.to_string(),
        reason: format!("cannot store {} as {want}: {e}", column.data_type()),
    })
}

/// `column` as the table column `field` stores it: in its layout ([`in_stored_layout`]),
/// and of its type, else `SchemaMismatch` naming the column (`what`: whose column it is).
pub(super) fn stored_column(
    table: &str,
    column: &ArrayRef,
    field: &Field,
    what: &str,
) -> Result<ArrayRef> {
    let column = in_stored_layout(table, column, field.data_type())?;
    if column.data_type() != field.data_type() {
        return Err(Error::SchemaMismatch {
            table: table.to_string(),
            reason: format!(
                "{what} {} is {}, expected {}",
                field.name(),
                column.data_type(),
                field.data_type()
            ),
        });
    }
    Ok(column)
}

/// Checks `batch` against the table (column names and types, no nulls in key or
/// non-nullable columns) and returns it carrying the table's schema.
pub(super) fn conform(
    table: &str,
    layout: &TableLayout,
    batch: &RecordBatch,
) -> Result<RecordBatch> {
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
pub(super) fn stored_schema(schema: &SchemaRef) -> SchemaRef {
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

pub(super) fn names(s: &SchemaRef) -> String {
    s.fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Validates one table's change and sorts it into key order; `None` when it changes nothing.
/// `current` is the table as it stands (`None` for a table this commit creates).
pub(super) fn prepare(
    table: &str,
    layout: &TableLayout,
    current: Option<&Table>,
    change: TableChange,
) -> Result<Option<SortedChanges>> {
    match change {
        TableChange::Edits {
            mut upserts,
            deletes,
            patches,
        } => {
            upserts.extend(super::patch::resolve(table, layout, current, &patches)?);
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
pub(super) fn touched_fraction(tree: &Tree, changes: &SortedChanges) -> Result<f64> {
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

pub(super) fn bsearch_rows(
    rows: &arrow_row::Rows,
    key: &[u8],
) -> std::result::Result<usize, usize> {
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

pub(super) fn show_key(layout: &TableLayout, key: &[u8]) -> String {
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

pub(super) fn check_nulls(table: &str, batch: &RecordBatch, columns: &[usize]) -> Result<()> {
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
pub(super) fn sorted_unique(
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
pub(super) fn diff(
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
