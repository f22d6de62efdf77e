//! Reading input files for `reel create` and `reel commit`: Arrow IPC, Parquet, CSV and
//! newline-delimited JSON, chosen by extension, conformed to a table's schema.

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
/// types (CSV and JSON are parsed with it directly). Extra columns in the file are ignored.
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
    batches.iter().map(|b| conform(path, b, &loose)).collect()
}

/// Selects the schema's columns from `batch` by name and casts them to the schema's types.
fn conform(path: &Path, batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, Error> {
    let cols = schema
        .fields()
        .iter()
        .map(|f| {
            let col = batch
                .column_by_name(f.name())
                .ok_or_else(|| file_err(path, format!("no column {}", f.name())))?;
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
