//! `reel create`, `reel commit` and `reel import`: tables created and rows written from files,
//! each command one version, whose number it prints.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use reeldb::{Error, Store, WriterOptions};

use crate::{files, say, schema};

/// `reel commit`'s arguments.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Store directory, or s3://, gs:// or az:// URL.
    store: PathBuf,
    /// TABLE=FILE: rows to insert or overwrite.
    #[arg(long)]
    upsert: Vec<String>,
    /// TABLE=FILE: keys (the key columns) of rows to delete.
    #[arg(long)]
    delete: Vec<String>,
    /// TABLE=FILE: the table's whole new state.
    #[arg(long)]
    replace: Vec<String>,
    /// TABLE=FILE: new values for some columns of existing rows: the key columns and any of
    /// the others; columns the file lacks keep their values, and a key the table lacks is an
    /// error (nothing is committed).
    #[arg(long)]
    patch: Vec<String>,
    /// KEY=VALUE metadata (repeatable).
    #[arg(long)]
    meta: Vec<String>,
    /// The source-stream position this version reflects (must grow).
    #[arg(long)]
    source_offset: Option<u64>,
    /// Skip fsync: faster, for rebuilds from the event stream; a crash may lose recent versions.
    #[arg(long)]
    no_sync: bool,
    /// Write every changed table as a new keyframe instead of an overlay.
    #[arg(long)]
    keyframe: bool,
    /// Add the columns an --upsert or --replace file has and its table lacks (nullable, the
    /// file's type) in this version, instead of refusing the file.
    #[arg(long)]
    evolve: bool,
}

/// `reel create`: a table with `key` and the schema of the file `schema_from`.
pub fn create(
    out: &mut dyn Write,
    store: &Path,
    table: &str,
    key: &[String],
    schema_from: &Path,
) -> Result<(), Error> {
    let store = crate::open_store(store)?;
    let schema = files::infer_schema(schema_from)?;
    let mut w = store.writer()?;
    let mut tx = w.begin();
    let keys: Vec<&str> = key.iter().map(String::as_str).collect();
    tx.create_table(table, schema, &keys)?;
    let v = tx.commit()?;
    say(out, format_args!("{v}"))
}

/// `arg` split at its first `=` into a non-empty name and value; `flag` names the option in
/// the error.
fn split_pair<'a>(arg: &'a str, flag: &str) -> Result<(&'a str, &'a str), Error> {
    arg.split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| Error::InvalidArgument(format!("--{flag} {arg:?}: expected NAME=VALUE")))
}

/// `reel commit`: upserts, deletes, patches and replaces from files, metadata and a source
/// offset.
pub fn commit(out: &mut dyn Write, args: CommitArgs) -> Result<(), Error> {
    let store = crate::open_store(&args.store)?;
    let mut w = store.writer_with(WriterOptions::default().sync(!args.no_sync))?;
    let latest = store.latest().ok();
    // Each table's schema as this commit leaves it (--evolve adds columns).
    let mut schemas: BTreeMap<String, arrow::datatypes::SchemaRef> = BTreeMap::new();
    let mut tx = w.begin();
    let mut schema_of = |tx: &mut reeldb::Transaction<'_>,
                         table: &str,
                         file: &str|
     -> Result<arrow::datatypes::SchemaRef, Error> {
        let current = match schemas.get(table) {
            Some(s) => s.clone(),
            None => {
                let snap = latest.as_ref().ok_or_else(|| Error::UnknownTable {
                    table: table.to_string(),
                    version: 0,
                })?;
                snap.table(table)?.schema()
            }
        };
        let extra = schema::extra_columns(Path::new(file), &current)?;
        if extra.is_empty() {
            return Ok(current);
        }
        if !args.evolve {
            return Err(schema::unknown_columns(&args.store, table, file, &extra));
        }
        let mut fields: Vec<arrow::datatypes::Field> = current
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for f in extra {
            tx.add_column(table, f.clone(), None)?;
            fields.push(f);
        }
        let evolved = std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
            fields,
            current.metadata().clone(),
        ));
        schemas.insert(table.to_string(), evolved.clone());
        Ok(evolved)
    };
    // Every file's schema first: --evolve adds columns before any rows are written, and each
    // file is read with its table's final schema (columns it lacks read as nulls).
    let mut schema_at = BTreeMap::new();
    for a in args.upsert.iter().chain(&args.replace) {
        let (table, file) = split_pair(a, "upsert or replace")?;
        schema_at.insert(table.to_string(), schema_of(&mut tx, table, file)?);
    }
    for a in &args.upsert {
        let (table, file) = split_pair(a, "upsert")?;
        for b in files::read_as(Path::new(file), &schema_at[table])? {
            tx.upsert(table, b)?;
        }
    }
    for a in &args.delete {
        let (table, file) = split_pair(a, "delete")?;
        let t = latest
            .as_ref()
            .ok_or_else(|| Error::UnknownTable {
                table: table.to_string(),
                version: 0,
            })?
            .table(table)?;
        let schema = t.schema();
        let key_idx: Vec<usize> = t
            .key_columns()
            .iter()
            .map(|k| schema.index_of(k))
            .collect::<Result<_, _>>()?;
        let key_schema = std::sync::Arc::new(schema.project(&key_idx)?);
        for b in files::read_as(Path::new(file), &key_schema)? {
            tx.delete(table, b)?;
        }
    }
    for a in &args.patch {
        let (table, file) = split_pair(a, "patch")?;
        let current = match schema_at.get(table) {
            Some(s) => s.clone(),
            None => latest
                .as_ref()
                .ok_or_else(|| Error::UnknownTable {
                    table: table.to_string(),
                    version: 0,
                })?
                .table(table)?
                .schema(),
        };
        // The file's columns, each read as the table's column of that name.
        let mut fields = Vec::new();
        for f in files::infer_schema(Path::new(file))?.fields() {
            let column = current
                .field_with_name(f.name())
                .map_err(|_| Error::UnknownColumn {
                    table: table.to_string(),
                    column: f.name().clone(),
                })?;
            fields.push(column.clone());
        }
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
        for b in files::read_as(Path::new(file), &schema)? {
            tx.patch(table, b)?;
        }
    }
    for a in &args.replace {
        let (table, file) = split_pair(a, "replace")?;
        let batches = files::read_as(Path::new(file), &schema_at[table])?;
        tx.replace(table, batches)?;
    }
    for m in &args.meta {
        let (k, v) = split_pair(m, "meta")?;
        tx.meta(k, v);
    }
    if let Some(o) = args.source_offset {
        tx.source_offset(o);
    }
    if args.keyframe {
        tx.keyframe();
    }
    let v = tx.commit()?;
    say(out, format_args!("{v}"))
}

/// `reel import`: `file` as the whole new state of `table`, creating it with `key` (and the
/// file's schema, key columns made non-nullable) when it does not exist.
pub fn import(
    out: &mut dyn Write,
    store: &Store,
    table: &str,
    file: &Path,
    key: &[String],
) -> Result<(), Error> {
    let existing = match store.latest() {
        Ok(snap) => match snap.table(table) {
            Ok(t) => Some(t.schema()),
            Err(Error::UnknownTable { .. }) => None,
            Err(e) => return Err(e),
        },
        Err(Error::Empty) => None,
        Err(e) => return Err(e),
    };
    let mut w = store.writer()?;
    let mut tx = w.begin();
    let schema = match existing {
        Some(schema) => {
            if !key.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "table {table} exists: its key cannot be set again"
                )));
            }
            schema
        }
        None => {
            if key.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "table {table} does not exist: give its key columns with --key to create it"
                )));
            }
            let inferred = files::infer_schema(file)?;
            // Key columns cannot hold nulls; the file's schema may not say so.
            let fields: Vec<arrow::datatypes::Field> = inferred
                .fields()
                .iter()
                .map(|f| {
                    let nullable = f.is_nullable() && !key.contains(f.name());
                    f.as_ref().clone().with_nullable(nullable)
                })
                .collect();
            let schema = std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
                fields,
                inferred.metadata().clone(),
            ));
            let keys: Vec<&str> = key.iter().map(String::as_str).collect();
            tx.create_table(table, schema.clone(), &keys)?;
            schema
        }
    };
    let batches = files::read_as(file, &schema)?;
    tx.replace(table, batches)?;
    let v = tx.commit()?;
    say(out, format_args!("{v}"))
}
