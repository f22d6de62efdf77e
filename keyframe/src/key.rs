//! Primary keys as memcomparable bytes (arrow-row's row format), and the types allowed in keys.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow_row::{RowConverter, Rows, SortField};

use crate::error::{Error, Result};

/// Encodes the key columns of a table into memcomparable rows and back.
#[derive(Debug)]
pub struct KeyCodec {
    columns: Vec<usize>,
    types: Vec<DataType>,
    converter: RowConverter,
}

/// True for the types a key column may have: integers, strings, binary, dates and timestamps.
pub fn is_key_type(t: &DataType) -> bool {
    use DataType::*;
    matches!(
        t,
        Int8 | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Utf8
            | LargeUtf8
            | Binary
            | LargeBinary
            | Date32
            | Date64
            | Timestamp(..)
    )
}

impl KeyCodec {
    /// A codec for the key columns (by index) of `schema`.
    pub fn new(schema: &SchemaRef, columns: &[usize]) -> Result<Self> {
        let mut types = Vec::with_capacity(columns.len());
        for &c in columns {
            let f = schema.field(c);
            if !is_key_type(f.data_type()) {
                return Err(Error::UnsupportedType {
                    column: f.name().clone(),
                    data_type: f.data_type().to_string(),
                });
            }
            types.push(f.data_type().clone());
        }
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect())?;
        Ok(KeyCodec {
            columns: columns.to_vec(),
            types,
            converter,
        })
    }

    /// Indices of the key columns in the table schema.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Types of the key columns, in key order.
    pub fn types(&self) -> &[DataType] {
        &self.types
    }

    /// Encodes the key of every row of `batch` (a batch of the whole table schema).
    pub fn encode_batch(&self, batch: &RecordBatch) -> Result<Rows> {
        let cols: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&c| batch.column(c).clone())
            .collect();
        self.encode_columns(&cols)
    }

    /// Encodes keys given as the key columns alone, in key order.
    pub fn encode_columns(&self, cols: &[ArrayRef]) -> Result<Rows> {
        Ok(self.converter.convert_columns(cols)?)
    }

    /// Decodes encoded keys back into key columns.
    pub fn decode(&self, rows: &[&[u8]]) -> Result<Vec<ArrayRef>> {
        let parser = self.converter.parser();
        let parsed: Vec<_> = rows.iter().map(|r| parser.parse(r)).collect();
        Ok(self.converter.convert_rows(parsed)?)
    }
}

/// Compares encoded keys; memcomparable bytes order exactly as the keys do.
pub fn compare(a: &[u8], b: &[u8]) -> Ordering {
    a.cmp(b)
}

/// Shared handle to a codec.
pub type KeyCodecRef = Arc<KeyCodec>;

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn encoded_keys_sort_like_the_keys_themselves() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, false),
            Field::new("n", DataType::Int32, false),
        ]));
        let codec = KeyCodec::new(&schema, &[0, 1]).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["b", "a", "a", "", "ab"])),
                Arc::new(Int32Array::from(vec![0, 5, -7, 3, i32::MIN])),
            ],
        )
        .unwrap();
        let rows = codec.encode_batch(&batch).unwrap();
        let mut order: Vec<usize> = (0..5).collect();
        order.sort_by(|&a, &b| compare(rows.row(a).as_ref(), rows.row(b).as_ref()));
        assert_eq!(order, vec![3, 2, 1, 4, 0]);
        let decoded = codec.decode(&[rows.row(2).as_ref()]).unwrap();
        assert_eq!(
            decoded[1].as_ref(),
            &Int32Array::from(vec![-7]) as &dyn arrow::array::Array
        );
    }

    #[test]
    fn floats_and_lists_cannot_be_keys() {
        let schema = Arc::new(Schema::new(vec![Field::new("f", DataType::Float64, false)]));
        assert!(matches!(
            KeyCodec::new(&schema, &[0]),
            Err(Error::UnsupportedType { .. })
        ));
    }
}
