//! `reel alter`, `reel drop`, `reel rename` and `reel schema`: a table's schema and
//! lifecycle, each change a version; and the columns a committed file has that its table
//! lacks (`reel commit --evolve`).

use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::datatypes::{Field, SchemaRef};
use clap::Args;
use reeldb::writer::schema_change::{parse_type, type_name};
use reeldb::{ColumnChange, Error, Transaction};

use crate::{At, InfoFormat, open_at, say};

/// `reel alter`'s arguments.
#[derive(Debug, Args)]
pub struct AlterArgs {
    /// Store directory, or s3://, gs:// or az:// URL.
    store: PathBuf,
    /// Table name.
    table: String,
    /// NAME:TYPE[=DEFAULT]: add a nullable column; rows written before read as DEFAULT (a
    /// literal of TYPE), or as nulls without one (repeatable).
    #[arg(long)]
    add_column: Vec<String>,
    /// NAME: drop a column that is not part of the key (repeatable).
    #[arg(long)]
    drop_column: Vec<String>,
    /// OLD=NEW: rename a column (repeatable).
    #[arg(long)]
    rename_column: Vec<String>,
    /// NAME:TYPE: widen a column's type: a wider integer of the same signedness, float32 to
    /// float64, utf8 to large_utf8, a larger decimal precision (repeatable).
    #[arg(long)]
    widen: Vec<String>,
}

/// The column changes `args` asks for, in the order adds, drops, renames, widenings.
fn changes(args: &AlterArgs) -> Result<Vec<ColumnChange>, Error> {
    let mut out = Vec::new();
    for spec in &args.add_column {
        let (name, rest) = spec
            .split_once(':')
            .ok_or_else(|| bad_spec(spec, "NAME:TYPE"))?;
        let (ty, default) = match rest.split_once('=') {
            Some((ty, d)) => (ty, Some(d.to_string())),
            None => (rest, None),
        };
        out.push(ColumnChange::Add {
            field: Field::new(name.trim(), parse_type(ty)?, true),
            default,
        });
    }
    out.extend(
        args.drop_column
            .iter()
            .map(|c| ColumnChange::Drop(c.trim().to_string())),
    );
    for spec in &args.rename_column {
        let (from, to) = spec
            .split_once('=')
            .ok_or_else(|| bad_spec(spec, "OLD=NEW"))?;
        out.push(ColumnChange::Rename {
            from: from.trim().to_string(),
            to: to.trim().to_string(),
        });
    }
    for spec in &args.widen {
        let (column, ty) = spec
            .split_once(':')
            .ok_or_else(|| bad_spec(spec, "NAME:TYPE"))?;
        out.push(ColumnChange::Widen {
            column: column.trim().to_string(),
            to: parse_type(ty)?,
        });
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to change: give --add-column, --drop-column, --rename-column or --widen"
                .into(),
        ));
    }
    Ok(out)
}

fn bad_spec(spec: &str, form: &str) -> Error {
    Error::InvalidArgument(format!("{spec:?} is not of the form {form}"))
}

/// `reel alter`: every change in one version, whose number it prints.
pub fn alter(out: &mut dyn Write, args: AlterArgs) -> Result<(), Error> {
    let changes = changes(&args)?;
    let store = crate::open_store(&args.store)?;
    let mut w = store.writer()?;
    let mut tx = w.begin();
    for change in changes {
        tx.alter(&args.table, change)?;
    }
    let v = tx.commit()?;
    say(out, format_args!("{v}"))
}

/// `reel drop` and `reel rename`: one version, whose number it prints.
pub fn lifecycle(
    out: &mut dyn Write,
    store: &Path,
    change: impl FnOnce(&mut Transaction<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let store = crate::open_store(store)?;
    let mut w = store.writer()?;
    let mut tx = w.begin();
    change(&mut tx)?;
    let v = tx.commit()?;
    say(out, format_args!("{v}"))
}

/// `reel schema`: a table's columns and key at a version.
pub fn schema(
    out: &mut dyn Write,
    store: &Path,
    table: &str,
    at: &At,
    format: InfoFormat,
) -> Result<(), Error> {
    let snap = open_at(&crate::open_store(store)?, at)?;
    let t = snap.table(table)?;
    let schema = t.schema();
    match format {
        InfoFormat::Json => {
            let fields: Vec<serde_json::Value> = schema
                .fields()
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "name": f.name(),
                        "type": type_name(f.data_type()),
                        "nullable": f.is_nullable(),
                    })
                })
                .collect();
            let v = serde_json::json!({"fields": fields, "key": t.key_columns()});
            say(out, format_args!("{v}"))
        }
        InfoFormat::Table => {
            for f in schema.fields() {
                let key = t.key_columns().iter().position(|k| k == f.name());
                say(
                    out,
                    format_args!(
                        "{}\t{}\t{}{}",
                        f.name(),
                        type_name(f.data_type()),
                        if f.is_nullable() { "null" } else { "not null" },
                        key.map_or(String::new(), |i| format!("\tkey {}", i + 1))
                    ),
                )?;
            }
            Ok(())
        }
    }
}

/// The columns of `file` that `table` (whose schema is `schema`) lacks, as nullable fields
/// of the file's types; dictionary-encoded columns as their value types.
pub fn extra_columns(file: &Path, schema: &SchemaRef) -> Result<Vec<Field>, Error> {
    let file_schema = crate::files::infer_schema(file)?;
    Ok(file_schema
        .fields()
        .iter()
        .filter(|f| schema.field_with_name(f.name()).is_err())
        .map(|f| {
            let t = match f.data_type() {
                arrow::datatypes::DataType::Dictionary(_, v) => v.as_ref().clone(),
                t => t.clone(),
            };
            Field::new(f.name(), t, true)
        })
        .collect())
}

/// The error for a file carrying the columns `extra` (at least one) that its table lacks,
/// when `--evolve` is not given.
pub fn unknown_columns(store: &Path, table: &str, file: &str, extra: &[Field]) -> Error {
    let names: Vec<&str> = extra.iter().map(|f| f.name().as_str()).collect();
    let example = extra.first().map_or(String::new(), |f| {
        format!("{}:{}", f.name(), type_name(f.data_type()))
    });
    Error::SchemaMismatch {
        table: table.to_string(),
        reason: format!(
            "{file} has column(s) {} that the table lacks; add them first (`reel alter {} {table} \
             --add-column {example}`) or commit with --evolve to add them in this version",
            names.join(", "),
            store.display(),
        ),
    }
}
