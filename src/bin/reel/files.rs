//! Input and output files: reading for `reel create`, `reel commit` and `reel import`, writing
//! for `reel export`. Arrow IPC, Parquet, CSV and newline-delimited JSON, chosen by extension;
//! inputs are conformed to a table's schema.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{Schema, SchemaRef};
use reeldb::Error;

/// The kinds of input file, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Arrow,
    Parquet,
    Csv,
    Json,
}

fn kind(path: &Path) -> Result<Kind, Error> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "arrow" | "ipc" | "feather" => Ok(Kind::Arrow),
        "parquet" | "pq" => Ok(Kind::Parquet),
        "csv" => Ok(Kind::Csv),
        "ndjson" | "jsonl" | "json" => Ok(Kind::Json),
        _ => Err(Error::InvalidArgument(format!(
            "{}: unknown file type (use .arrow, .parquet, .csv, .ndjson or .jsonl)",
            path.display()
        ))),
    }
}

fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{}: {e}", path.display()))
}

/// The schema a file carries (Arrow, Parquet) or that its contents suggest (CSV, JSON).
pub fn infer_schema(path: &Path) -> Result<SchemaRef, Error> {
    match kind(path)? {
        Kind::Arrow => {
            let r = arrow::ipc::reader::FileReader::try_new(open(path)?, None)
                .map_err(|e| file_err(path, e))?;
            Ok(r.schema())
        }
        Kind::Parquet => {
            let b =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                    .map_err(|e| file_err(path, e))?;
            Ok(b.schema().clone())
        }
        Kind::Csv => {
            let mut f = open(path)?;
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(&mut f, Some(10_000))
                .map_err(|e| file_err(path, e))?;
            Ok(Arc::new(schema))
        }
        Kind::Json => {
            let mut f = BufReader::new(open(path)?);
            let (schema, _) =
                arrow::json::reader::infer_json_schema_from_seekable(&mut f, Some(10_000))
                    .map_err(|e| file_err(path, e))?;
            f.rewind().map_err(|e| file_err(path, e))?;
            Ok(Arc::new(schema))
        }
    }
}

/// Reads `path` as batches of `schema`: columns are matched by name and cast to the schema's
/// types (CSV and JSON are parsed with it directly). A nullable column the file lacks reads as
/// nulls; a non-nullable one is an error. Extra columns in the file are ignored (the caller
/// checks for them: `reel commit` refuses them unless asked to add them).
pub fn read_as(path: &Path, schema: &SchemaRef) -> Result<Vec<RecordBatch>, Error> {
    let loose = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let batches: Vec<RecordBatch> = match kind(path)? {
        Kind::Arrow => {
            let r = arrow::ipc::reader::FileReader::try_new(open(path)?, None)
                .map_err(|e| file_err(path, e))?;
            r.collect::<Result<_, _>>().map_err(|e| file_err(path, e))?
        }
        Kind::Parquet => {
            let r =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                    .and_then(|b| b.build())
                    .map_err(|e| file_err(path, e))?;
            r.collect::<Result<_, _>>().map_err(|e| file_err(path, e))?
        }
        Kind::Csv => {
            let r = arrow::csv::ReaderBuilder::new(loose.clone())
                .with_header(true)
                .build(open(path)?)
                .map_err(|e| file_err(path, e))?;
            r.collect::<Result<_, _>>().map_err(|e| file_err(path, e))?
        }
        Kind::Json => {
            let r = arrow::json::ReaderBuilder::new(loose.clone())
                .build(BufReader::new(open(path)?))
                .map_err(|e| file_err(path, e))?;
            r.collect::<Result<_, _>>().map_err(|e| file_err(path, e))?
        }
    };
    for f in schema.fields().iter().filter(|f| !f.is_nullable()) {
        if let Some(b) = batches.first()
            && b.column_by_name(f.name()).is_none()
        {
            return Err(file_err(path, format!("no column {}", f.name())));
        }
    }
    batches.iter().map(|b| conform(path, b, &loose)).collect()
}

/// Selects the schema's columns from `batch` by name and casts them to the schema's types;
/// a column `batch` lacks is nulls (`schema` is all nullable).
fn conform(path: &Path, batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, Error> {
    let cols = schema
        .fields()
        .iter()
        .map(|f| {
            let Some(col) = batch.column_by_name(f.name()) else {
                return Ok(arrow::array::new_null_array(
                    f.data_type(),
                    batch.num_rows(),
                ));
            };
            if col.data_type() == f.data_type() {
                Ok(col.clone())
            } else {
                cast(col, f.data_type())
                    .map_err(|e| file_err(path, format!("column {}: {e}", f.name())))
            }
        })
        .collect::<Result<Vec<_>, Error>>()?;
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| file_err(path, e))
}

/// Writes `batches` (of `schema`) to `path` in the format its extension names. The file
/// appears whole or not at all: rows go to a temporary file beside it, renamed over it at
/// the end. Returns the number of rows written.
pub fn write_file(
    path: &Path,
    schema: &SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch, Error>>,
) -> Result<u64, Error> {
    let format = kind(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| file_err(path, "not a file name"))?
        .to_string_lossy()
        .into_owned();
    let temp = path.with_file_name(format!(".{name}.partial"));
    let written = write_to(&temp, format, schema, batches).and_then(|rows| {
        std::fs::rename(&temp, path).map_err(|e| file_err(path, e))?;
        Ok(rows)
    });
    if written.is_err() {
        // Nothing half-written is left behind; the original error is what matters.
        let _ = std::fs::remove_file(&temp);
    }
    written
}

fn write_to(
    path: &Path,
    format: Kind,
    schema: &SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch, Error>>,
) -> Result<u64, Error> {
    let file = File::create(path).map_err(|e| file_err(path, e))?;
    let out = std::io::BufWriter::new(file);
    let fail = |e: &dyn std::fmt::Display| file_err(path, e);
    let mut rows = 0u64;
    let file = match format {
        Kind::Arrow => {
            let mut w =
                arrow::ipc::writer::FileWriter::try_new(out, schema).map_err(|e| fail(&e))?;
            for b in batches {
                let b = b?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(|e| fail(&e))?;
            }
            w.finish().map_err(|e| fail(&e))?;
            w.into_inner().map_err(|e| fail(&e))?
        }
        Kind::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut w = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props))
                .map_err(|e| fail(&e))?;
            for b in batches {
                let b = b?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(|e| fail(&e))?;
            }
            w.into_inner().map_err(|e| fail(&e))?
        }
        Kind::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            let mut any = false;
            for b in batches {
                let b = b?;
                rows += b.num_rows() as u64;
                any = true;
                w.write(&b).map_err(|e| fail(&e))?;
            }
            if !any {
                // The header alone, so the file still names its columns.
                w.write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(|e| fail(&e))?;
            }
            w.into_inner()
        }
        Kind::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                let b = b?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(|e| fail(&e))?;
            }
            w.finish().map_err(|e| fail(&e))?;
            w.into_inner()
        }
    };
    let file = file.into_inner().map_err(|e| fail(&e.error()))?;
    file.sync_all().map_err(|e| fail(&e))?;
    Ok(rows)
}
