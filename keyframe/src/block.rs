//! Column blocks: one column of one leaf (or of an overlay or residual batch) in the
//! mini-block form of [`crate::encoding`], stored as a record of its own so equal blocks are
//! stored once.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use bytes::Bytes;

use crate::error::Result;

pub use crate::encoding::check_storable;

/// Stores each column of `batch` (a batch of `layout`'s schema) as a column block in `packs`
/// (equal blocks once) and returns their references laid out in `layout`'s slots: a row
/// batch as overlays and residuals keep it.
pub fn store_columns(
    packs: &mut crate::pack::PackWriter,
    layout: &crate::tree::TableLayout,
    batch: &RecordBatch,
) -> Result<Vec<Option<crate::node::RecordRef>>> {
    let encoded = batch
        .columns()
        .iter()
        .map(encode)
        .collect::<Result<Vec<_>>>()?;
    let refs = encoded
        .iter()
        .map(|raw| {
            packs.put(
                crate::record::RecordKind::ColumnBlock,
                raw,
                crate::format::content_hash(raw),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(layout.to_slots(&refs))
}

/// Encodes `array` as the bytes of a column block.
pub fn encode(array: &ArrayRef) -> Result<Vec<u8>> {
    crate::encoding::encode(array)
}

/// Decodes the bytes of a column block, checking that it holds exactly `rows` values of
/// `data_type` and verifying every mini-block.
pub fn decode(raw: &Bytes, data_type: &DataType, rows: usize) -> Result<ArrayRef, String> {
    crate::encoding::decode(raw, data_type, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, StringArray};
    use std::sync::Arc;

    fn round_trip(a: &ArrayRef) -> ArrayRef {
        let raw = Bytes::from(encode(a).unwrap());
        decode(&raw, a.data_type(), a.len()).unwrap()
    }

    #[test]
    fn a_column_round_trips_with_nulls() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")]));
        let back = round_trip(&a);
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
        let raw = Bytes::from(encode(&a).unwrap());
        assert!(decode(&raw, &DataType::Int64, 1).is_err());
        assert!(decode(&raw, &DataType::Float64, 2).is_err());
    }
}
