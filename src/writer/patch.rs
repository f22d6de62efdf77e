//! Partial updates (`Transaction::patch`): rows given as their key columns and any subset of
//! the others. At commit each patched key's row as the table stands (the writer's latest
//! version) is looked up, the given columns replace its values, and the result joins the
//! commit's upserts, so a patched key counts as written once (a key both patched and upserted
//! or deleted in one commit is a `DuplicateKey`). A key the table does not hold is
//! `KeyNotFound`, naming it, and nothing is committed. The patched rows join the upserts as
//! whole rows; an overlay commit then stores the columns whose values a row kept as picks
//! into the keyframe (`overlay_gather`), as it does for upserts.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::interleave;
use arrow::datatypes::{Field, Schema};
use reeldb_keyframe::tree::TableLayout;

use super::validate::{check_nulls, show_key, stored_column};
use crate::error::{Error, Result};
use crate::read::snapshot::Table;

/// Checks a patch against the table: every column is one of the table's, every key column
/// is there, each column holds the table's type (or the same logical type in another layout,
/// which is cast) and no nulls where the table takes none. Returns it with the table's types
/// and nullability, its columns in the order given.
pub(super) fn conform_patch(
    table: &str,
    layout: &TableLayout,
    batch: &RecordBatch,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, column) in schema.fields().iter().zip(batch.columns()) {
        let Some((at, want)) = layout
            .schema
            .fields()
            .iter()
            .enumerate()
            .find(|(_, t)| t.name() == f.name())
        else {
            return Err(Error::UnknownColumn {
                table: table.to_string(),
                column: f.name().clone(),
            });
        };
        if fields.iter().any(|g: &Field| g.name() == f.name()) {
            return Err(Error::SchemaMismatch {
                table: table.to_string(),
                reason: format!("the patch names column {} twice", f.name()),
            });
        }
        let column = stored_column(table, column, want, "patch column")?;
        let nullable = want.is_nullable() && !layout.key.columns().contains(&at);
        fields.push(want.as_ref().clone().with_nullable(nullable));
        columns.push(column);
    }
    for &k in layout.key.columns() {
        let name = layout.schema.field(k).name();
        if !fields.iter().any(|f| f.name() == name) {
            return Err(Error::SchemaMismatch {
                table: table.to_string(),
                reason: format!("the patch lacks key column {name}"),
            });
        }
    }
    let loose = RecordBatch::try_new(
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|f| f.clone().with_nullable(true))
                .collect::<Vec<_>>(),
        )),
        columns.clone(),
    )?;
    let must_be_valid: Vec<usize> = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_nullable())
        .map(|(i, _)| i)
        .collect();
    check_nulls(table, &loose, &must_be_valid)?;
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The whole rows `patches` make of the rows `current` holds (see the module docs), one
/// batch per patch, in the table's schema.
pub(super) fn resolve(
    table: &str,
    layout: &TableLayout,
    current: Option<&Table>,
    patches: &[RecordBatch],
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::with_capacity(patches.len());
    for patch in patches {
        if patch.num_rows() == 0 {
            continue;
        }
        let keys: Vec<ArrayRef> = layout
            .key
            .columns()
            .iter()
            .map(|&k| {
                // `conform_patch` checked every key column is there.
                let name = layout.schema.field(k).name();
                patch.column_by_name(name).cloned().ok_or_else(|| {
                    Error::Internal(format!("a conformed patch lacks key column {name}"))
                })
            })
            .collect::<Result<_>>()?;
        let encoded = layout.key.encode_columns(&keys)?;
        let mut rows: Vec<RecordBatch> = Vec::with_capacity(patch.num_rows());
        for i in 0..patch.num_rows() {
            let key = encoded.row(i);
            let probe: Vec<ArrayRef> = keys.iter().map(|k| k.slice(i, 1)).collect();
            let row = match current {
                Some(t) => t.get_encoded(key.as_ref(), &probe)?,
                None => None,
            };
            match row {
                Some(r) => rows.push(r),
                None => {
                    return Err(Error::KeyNotFound {
                        table: table.to_string(),
                        key: show_key(layout, key.as_ref()),
                    });
                }
            }
        }
        let picks: Vec<(usize, usize)> = (0..rows.len()).map(|i| (i, 0)).collect();
        let columns = layout
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(c, f)| match patch.column_by_name(f.name()) {
                Some(given) => Ok(given.clone()),
                None => {
                    let old: Vec<&dyn arrow::array::Array> =
                        rows.iter().map(|r| r.column(c).as_ref()).collect();
                    Ok(interleave(&old, &picks)?)
                }
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        out.push(RecordBatch::try_new(layout.schema.clone(), columns)?);
    }
    Ok(out)
}
