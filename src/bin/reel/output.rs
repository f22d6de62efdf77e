//! Writing query results: a text table, CSV, JSON (an array of objects) or Arrow IPC.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use clap::ValueEnum;
use reeldb::Error;

/// Output formats for rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RowFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
    /// An Arrow IPC file.
    Arrow,
}

/// Maps a failed write of output to an error; a reader that went away (`reel ... | head`)
/// ends the program quietly, as command-line tools do.
pub fn write_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    Error::InvalidArgument(format!("writing output: {e}"))
}

fn io(e: std::io::Error) -> Error {
    write_error(e)
}

/// Writes `batches` (of `schema`) to `out` in `format`.
pub fn write_rows(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: RowFormat,
) -> Result<(), Error> {
    match format {
        RowFormat::Table => {
            let shown = arrow::util::pretty::pretty_format_batches(batches)?;
            if batches.is_empty() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(out, "{}", names.join(" | ")).map_err(io)?;
                writeln!(out, "(0 rows)").map_err(io)?;
            } else {
                writeln!(out, "{shown}").map_err(io)?;
            }
        }
        RowFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                drop(w);
                writeln!(out, "{}", names.join(",")).map_err(io)?;
            } else {
                for b in batches {
                    w.write(b)?;
                }
            }
        }
        RowFormat::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            if batches.is_empty() {
                write!(out, "[]").map_err(io)?;
            }
            writeln!(out).map_err(io)?;
        }
        RowFormat::Arrow => {
            let mut w = arrow::ipc::writer::FileWriter::try_new(&mut *out, schema)?;
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(())
}

/// Writes `batches` in `format` to the file `path` when given, else to `out`.
pub fn write_rows_to(
    out: &mut dyn Write,
    path: Option<&std::path::Path>,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: RowFormat,
) -> Result<(), Error> {
    match path {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
            write_rows(&mut f, schema, batches, format)
        }
        None => write_rows(out, schema, batches, format),
    }
}

/// A progress bar on stderr counting `len` steps of `what`.
pub fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}
