//! Zone maps: per column and leaf, the minimum, maximum and null count, with min and max kept
//! as single-column memcomparable bytes so any supported type compares as plain bytes.

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use arrow_row::{RowConverter, SortField};

use crate::error::Result;

/// Zone-map values longer than this are not kept (the leaf is then never pruned on that column).
pub const MAX_ZONE_VALUE_LEN: usize = 256;

/// Summary of one column within one leaf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneMap {
    /// Number of null values.
    pub null_count: u32,
    /// Encoded minimum and maximum of the non-null values, when known.
    pub bounds: Option<(Vec<u8>, Vec<u8>)>,
}

/// True for the types zone maps are computed for.
pub fn has_zone_map(t: &DataType) -> bool {
    t.is_primitive()
        || matches!(
            t,
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Binary
                | DataType::LargeBinary
        )
}

/// Encodes a single value (or every value) of a column in zone-map form.
pub fn converter(t: &DataType) -> Result<RowConverter> {
    Ok(RowConverter::new(vec![SortField::new(t.clone())])?)
}

/// Computes the zone map of `array`.
pub fn compute(array: &ArrayRef) -> Result<ZoneMap> {
    let null_count = array.null_count() as u32;
    if !has_zone_map(array.data_type()) || null_count as usize == array.len() {
        return Ok(ZoneMap {
            null_count,
            bounds: None,
        });
    }
    let rows = converter(array.data_type())?.convert_columns(std::slice::from_ref(array))?;
    let mut min: Option<&[u8]> = None;
    let mut max: Option<&[u8]> = None;
    for (i, row) in rows.iter().enumerate() {
        if array.is_null(i) {
            continue;
        }
        let r = row.data();
        if min.is_none_or(|m| r < m) {
            min = Some(r);
        }
        if max.is_none_or(|m| r > m) {
            max = Some(r);
        }
    }
    let bounds = match (min, max) {
        (Some(lo), Some(hi))
            if lo.len() <= MAX_ZONE_VALUE_LEN && hi.len() <= MAX_ZONE_VALUE_LEN =>
        {
            Some((lo.to_vec(), hi.to_vec()))
        }
        _ => None,
    };
    Ok(ZoneMap { null_count, bounds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn min_and_max_skip_nulls_and_order_like_the_values() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![Some(2.5), None, Some(-1.0)]));
        let z = compute(&a).unwrap();
        assert_eq!(z.null_count, 1);
        let conv = converter(&DataType::Float64).unwrap();
        let enc = |v: f64| {
            let arr: ArrayRef = Arc::new(Float64Array::from(vec![v]));
            conv.convert_columns(&[arr])
                .unwrap()
                .row(0)
                .as_ref()
                .to_vec()
        };
        let (lo, hi) = z.bounds.unwrap();
        assert_eq!(lo, enc(-1.0));
        assert_eq!(hi, enc(2.5));
    }

    #[test]
    fn an_all_null_column_has_no_bounds() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>, None]));
        assert_eq!(compute(&a).unwrap().bounds, None);
    }
}
