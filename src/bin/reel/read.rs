//! `reel tables`, `reel scan`, `reel get`, `reel export`, `reel versions` and `reel stats`:
//! reading a version's tables, and the store's history and sizes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use reeldb::{Error, Filter, Key, ScanOptions, Store, Value};

use crate::output::{self, RowFormat};
use crate::{At, InfoFormat, files, human, open_at, say};

/// `reel scan`'s arguments.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Store directory, or s3://, gs:// or az:// URL.
    store: PathBuf,
    /// Table name.
    table: String,
    #[command(flatten)]
    at: At,
    /// Columns to return, comma-separated.
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// A filter: 'col OP value' (OP: = < <= > >=), 'col between A and B' or 'col in (A, B)'.
    #[arg(long = "where")]
    filter: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: RowFormat,
    /// Write to this file instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// `reel tables`: each table at a version with its row count and key.
pub fn tables(out: &mut dyn Write, store: &Path, at: &At) -> Result<(), Error> {
    let snap = open_at(&crate::open_store(store)?, at)?;
    for name in snap.table_names() {
        let t = snap.table(&name)?;
        say(
            out,
            format_args!(
                "{name}\t{} rows\tkey ({})",
                t.num_rows(),
                t.key_columns().join(", ")
            ),
        )?;
    }
    Ok(())
}

/// `reel scan`: a table's rows at a version, projected and filtered, in key order.
pub fn scan(out: &mut dyn Write, args: ScanArgs) -> Result<(), Error> {
    let store = crate::open_store(&args.store)?;
    let snap = open_at(&store, &args.at)?;
    let t = snap.table(&args.table)?;
    let mut opts = ScanOptions::new()
        .in_key_order()
        .in_parallel()
        .in_batches_of(reeldb::DEFAULT_BATCH_ROWS);
    if let Some(cols) = &args.columns {
        opts = opts.columns(cols);
    }
    if let Some(f) = &args.filter {
        opts = opts.filter(Filter::parse(f)?);
    }
    let schema = t.scan_schema(&opts)?;
    let batches: Vec<_> = t.scan(&opts)?.collect::<Result<_, _>>()?;
    output::write_rows_to(out, args.output.as_deref(), &schema, &batches, args.format)
}

/// `reel get`: the row of `table` whose key is `key` (one value per key column,
/// comma-separated); an error when there is none.
pub fn get(
    out: &mut dyn Write,
    store: &Path,
    table: &str,
    key: &str,
    at: &At,
    format: RowFormat,
) -> Result<(), Error> {
    let snap = open_at(&crate::open_store(store)?, at)?;
    let t = snap.table(table)?;
    let key = Key(key
        .split(',')
        .map(|v| Value::Str(v.trim().to_string()))
        .collect());
    match t.get(key.clone())? {
        Some(row) => output::write_rows(out, &row.schema(), &[row], format),
        None => Err(Error::InvalidArgument(format!(
            "no row with key {key} in {table} at version {}",
            snap.version()
        ))),
    }
}

/// `reel export`: a table at a version written to `output`, its format by extension.
pub fn export(
    out: &mut dyn Write,
    store: &Path,
    table: &str,
    at: &At,
    output: &Path,
) -> Result<(), Error> {
    let snap = open_at(&crate::open_store(store)?, at)?;
    let t = snap.table(table)?;
    let scan = t.scan(
        &ScanOptions::new()
            .in_key_order()
            .in_parallel()
            .in_batches_of(reeldb::DEFAULT_BATCH_ROWS),
    )?;
    let rows = files::write_file(output, &t.schema(), scan)?;
    say(
        out,
        format_args!(
            "{rows} rows of {table} at version {} written to {}",
            snap.version(),
            output.display()
        ),
    )
}

/// `reel versions`: every version with its kind, commit time, source offset and metadata.
pub fn versions(out: &mut dyn Write, store: &Store, format: InfoFormat) -> Result<(), Error> {
    let infos = store.versions()?;
    match format {
        InfoFormat::Json => {
            let list: Vec<serde_json::Value> = infos
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "version": i.version,
                        "kind": i.kind.as_str(),
                        "committed_at": i.committed_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        "source_offset": i.source_offset,
                        "meta": i.meta,
                    })
                })
                .collect();
            say(out, format_args!("{}", serde_json::Value::Array(list)))
        }
        InfoFormat::Table => {
            say(
                out,
                format_args!(
                    "{:>8}  {:<9} {:<27} {:>13}  meta",
                    "version", "kind", "committed_at", "source_offset"
                ),
            )?;
            for i in &infos {
                let meta: Vec<String> = i.meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
                say(
                    out,
                    format_args!(
                        "{:>8}  {:<9} {:<27} {:>13}  {}",
                        i.version,
                        i.kind.as_str(),
                        i.committed_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        i.source_offset.map_or("-".to_string(), |o| o.to_string()),
                        meta.join(" ")
                    ),
                )?;
            }
            Ok(())
        }
    }
}

/// `reel stats`: sizes on disk, logical bytes, block sharing, rows per table and the bytes
/// of each column by encoding.
pub fn stats(out: &mut dyn Write, store: &Store, format: InfoFormat) -> Result<(), Error> {
    let s = store.stats()?;
    match format {
        InfoFormat::Json => {
            let v = serde_json::json!({
                "versions": s.versions,
                "bytes_on_disk": s.bytes_on_disk,
                "logical_bytes": s.logical_bytes,
                "blocks_stored": s.blocks_stored,
                "blocks_referenced": s.blocks_referenced,
                "sharing_ratio": s.sharing_ratio,
                "row_batch_bytes": s.row_batch_bytes,
                "residual_bytes": s.residual_bytes,
                "bitmap_bytes": s.bitmap_bytes,
                "residual_rows": s.residual_rows,
                "node_log_bytes": s.node_log_bytes,
                "latest_rows": s.latest_rows,
                "column_space": s.column_space.iter().map(|c| serde_json::json!({
                    "table": c.table,
                    "column": c.column,
                    "encoding": c.encoding,
                    "blocks": c.blocks,
                    "bytes": c.bytes,
                })).collect::<Vec<_>>(),
            });
            say(out, format_args!("{v}"))
        }
        InfoFormat::Table => {
            let rows: BTreeMap<&str, String> = BTreeMap::from([
                ("versions", s.versions.to_string()),
                ("bytes_on_disk", human(s.bytes_on_disk)),
                ("logical_bytes", human(s.logical_bytes)),
                ("blocks_stored", s.blocks_stored.to_string()),
                ("blocks_referenced", s.blocks_referenced.to_string()),
                ("sharing_ratio", format!("{:.1}x", s.sharing_ratio)),
            ]);
            for k in [
                "versions",
                "bytes_on_disk",
                "logical_bytes",
                "blocks_stored",
                "blocks_referenced",
                "sharing_ratio",
            ] {
                say(out, format_args!("{k:<18} {}", rows[k]))?;
            }
            for (t, n) in &s.latest_rows {
                say(
                    out,
                    format_args!(
                        "rows[{t}]{:width$} {n}",
                        "",
                        width = 12usize.saturating_sub(t.len())
                    ),
                )?;
            }
            // Where the column blocks' bytes go, each distinct block once.
            say(
                out,
                format_args!(
                    "{:<32} {:<20} {:>8} {:>12}",
                    "column", "encoding", "blocks", "bytes"
                ),
            )?;
            for c in &s.column_space {
                say(
                    out,
                    format_args!(
                        "{:<32} {:<20} {:>8} {:>12}",
                        format!("{}.{}", c.table, c.column),
                        c.encoding,
                        c.blocks,
                        human(c.bytes)
                    ),
                )?;
            }
            Ok(())
        }
    }
}
