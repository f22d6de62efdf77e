//! Column blocks: one Arrow array (one column of one leaf) encoded as an Arrow IPC stream
//! holding a single one-column batch. The IPC bytes are what is hashed and compressed.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;

use crate::error::{Error, Result};

/// Name of the single field inside a block; the table's own name is applied on read.
const BLOCK_FIELD: &str = "c";

/// Stores each column of `batch` as a column block in `packs` (equal blocks once) and
/// returns their references, in column order: a row batch as overlays and residuals keep it.
pub fn store_columns(
    packs: &mut crate::pack::PackWriter,
    batch: &RecordBatch,
) -> Result<Vec<crate::node::RecordRef>> {
    batch
        .columns()
        .iter()
        .map(|c| {
            let raw = encode(c)?;
            packs.put(
                crate::record::RecordKind::ColumnBlock,
                &raw,
                crate::format::content_hash(&raw),
            )
        })
        .collect()
}

/// Encodes `array` as the uncompressed bytes of a column block.
pub fn encode(array: &ArrayRef) -> Result<Vec<u8>> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        BLOCK_FIELD,
        array.data_type().clone(),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![array.clone()])?;
    let mut out = Vec::with_capacity(array.get_array_memory_size() + 256);
    {
        let mut w = StreamWriter::try_new(&mut out, &schema)?;
        w.write(&batch)?;
        w.finish()?;
    }
    Ok(out)
}

/// Decodes the bytes of a column block (without copying the column's buffers), checking that
/// it holds exactly `rows` values of `data_type`.
pub fn decode(raw: Vec<u8>, data_type: &DataType, rows: usize) -> Result<ArrayRef, String> {
    crate::ipc::guarded(|| decode_unguarded(raw, data_type, rows))
}

fn decode_unguarded(raw: Vec<u8>, data_type: &DataType, rows: usize) -> Result<ArrayRef, String> {
    crate::ipc::check_stream(&raw)?;
    let mut buffer = Buffer::from(raw);
    let mut decoder = StreamDecoder::new();
    let mut found: Option<RecordBatch> = None;
    while !buffer.is_empty() {
        match decoder.decode(&mut buffer).map_err(|e| e.to_string())? {
            Some(batch) if found.is_none() => found = Some(batch),
            Some(_) => return Err("column block holds more than one batch".into()),
            None => {}
        }
    }
    decoder.finish().map_err(|e| e.to_string())?;
    let batch = found.ok_or("column block holds no batch")?;
    if batch.num_columns() != 1 {
        return Err(format!(
            "column block holds {} columns",
            batch.num_columns()
        ));
    }
    let array = batch.column(0).clone();
    if array.data_type() != data_type {
        return Err(format!(
            "column block holds {} where {} was expected",
            array.data_type(),
            data_type
        ));
    }
    if array.len() != rows {
        return Err(format!(
            "column block holds {} rows where the leaf says {}",
            array.len(),
            rows
        ));
    }
    Ok(array)
}

/// Fails unless the keyframe layer can store `data_type` (dictionary-encoded columns are not
/// supported: their IPC form depends on dictionary state outside the block).
pub fn check_storable(column: &str, data_type: &DataType) -> Result<()> {
    let bad = match data_type {
        DataType::Dictionary(..) => true,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            matches!(f.data_type(), DataType::Dictionary(..))
        }
        _ => false,
    };
    if bad {
        return Err(Error::UnsupportedType {
            column: column.to_string(),
            data_type: data_type.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, StringArray};

    #[test]
    fn a_column_round_trips_with_nulls() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")]));
        let raw = encode(&a).unwrap();
        let back = decode(raw, &DataType::Utf8, 3).unwrap();
        assert_eq!(back.as_ref(), a.as_ref());
        assert_eq!(back.null_count(), 1);
    }

    #[test]
    fn equal_columns_encode_to_equal_bytes_even_when_sliced() {
        let whole: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]));
        let fresh: ArrayRef = Arc::new(Float64Array::from(vec![2.0, 3.0]));
        assert_eq!(encode(&whole.slice(1, 2)).unwrap(), encode(&fresh).unwrap());
    }

    #[test]
    fn a_block_of_the_wrong_type_or_length_is_refused() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let raw = encode(&a).unwrap();
        assert!(decode(raw.clone(), &DataType::Int64, 1).is_err());
        assert!(decode(raw, &DataType::Float64, 2).is_err());
    }
}
