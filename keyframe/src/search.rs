//! Binary search of a leaf's or row batch's sorted key columns for one key: natively for a
//! one-column key of a common type, through Arrow's comparators for any other.

use std::cmp::Ordering;

use arrow::array::{Array, ArrayRef, AsArray, make_comparator};
use arrow::compute::SortOptions;
use arrow::datatypes::*;

use crate::error::Result;

/// The first row of the sorted key columns `keys` whose key is not below the key given as
/// one-row arrays `probe`, and how many rows from there hold exactly that key.
pub fn equal_range(keys: &[ArrayRef], probe: &[ArrayRef]) -> Result<(usize, usize)> {
    if let ([k], [p]) = (keys, probe)
        && let Some(found) = native_equal_range(k.as_ref(), p.as_ref())
    {
        return Ok(found);
    }
    compared_equal_range(keys, probe)
}

/// Binary search over the sorted key columns of a leaf (keys unique) for the key given as
/// one-row arrays: `Ok(row)` when present, `Err(insertion point)` when not.
pub fn search_key(
    keys: &[ArrayRef],
    probe: &[ArrayRef],
) -> Result<std::result::Result<usize, usize>> {
    let (at, equal) = equal_range(keys, probe)?;
    Ok(if equal > 0 { Ok(at) } else { Err(at) })
}

/// The first of `len` sorted rows not below the probe, and how many from there equal it,
/// given each row's ordering against the probe.
fn sorted_range(len: usize, compare: impl Fn(usize) -> Ordering) -> (usize, usize) {
    let (mut lo, mut hi) = (0usize, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if compare(mid) == Ordering::Less {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let equal = (lo..len)
        .take_while(|&r| compare(r) == Ordering::Equal)
        .count();
    (lo, equal)
}

/// [`equal_range`] through Arrow's comparators, for any key types.
fn compared_equal_range(keys: &[ArrayRef], probe: &[ArrayRef]) -> Result<(usize, usize)> {
    let cmps = keys
        .iter()
        .zip(probe)
        .map(|(k, p)| make_comparator(k.as_ref(), p.as_ref(), SortOptions::default()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rows = keys.first().map_or(0, |k| k.len());
    Ok(sorted_range(rows, |row| {
        cmps.iter()
            .map(|c| c(row, 0))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    }))
}

/// [`sorted_range`] over a string or binary column, by bytes (Arrow's order for them).
fn byte_range<T: ByteArrayType>(keys: &dyn Array, probe: &dyn Array) -> (usize, usize)
where
    T::Native: AsRef<[u8]>,
{
    let (k, x) = (keys.as_bytes::<T>(), probe.as_bytes::<T>().value(0));
    sorted_range(k.len(), |i| k.value(i).as_ref().cmp(x.as_ref()))
}

/// [`equal_range`] for a one-column key of an integer, date, timestamp, string or binary type,
/// by comparing native values (what Arrow's comparators do for these types, without their
/// per-row dispatch); `None` for any other type, nulls, or a probe of another type.
fn native_equal_range(keys: &dyn Array, probe: &dyn Array) -> Option<(usize, usize)> {
    if keys.null_count() > 0 || probe.null_count() > 0 || probe.len() != 1 {
        return None;
    }
    if keys.data_type() != probe.data_type() {
        return None;
    }
    macro_rules! primitive {
        ($t:ty) => {{
            let values = keys.as_primitive::<$t>().values();
            let x = probe.as_primitive::<$t>().value(0);
            Some(sorted_range(values.len(), |i| values[i].cmp(&x)))
        }};
    }
    match keys.data_type() {
        DataType::Int8 => primitive!(Int8Type),
        DataType::Int16 => primitive!(Int16Type),
        DataType::Int32 => primitive!(Int32Type),
        DataType::Int64 => primitive!(Int64Type),
        DataType::UInt8 => primitive!(UInt8Type),
        DataType::UInt16 => primitive!(UInt16Type),
        DataType::UInt32 => primitive!(UInt32Type),
        DataType::UInt64 => primitive!(UInt64Type),
        DataType::Date32 => primitive!(Date32Type),
        DataType::Date64 => primitive!(Date64Type),
        DataType::Timestamp(TimeUnit::Second, _) => primitive!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => primitive!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => primitive!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => primitive!(TimestampNanosecondType),
        DataType::Utf8 => Some(byte_range::<Utf8Type>(keys, probe)),
        DataType::LargeUtf8 => Some(byte_range::<LargeUtf8Type>(keys, probe)),
        DataType::Binary => Some(byte_range::<BinaryType>(keys, probe)),
        DataType::LargeBinary => Some(byte_range::<LargeBinaryType>(keys, probe)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray, UInt32Array};
    use proptest::prelude::*;

    fn both(keys: ArrayRef, probe: ArrayRef) -> ((usize, usize), (usize, usize)) {
        let (k, p) = (vec![keys], vec![probe]);
        (
            equal_range(&k, &p).unwrap(),
            compared_equal_range(&k, &p).unwrap(),
        )
    }

    proptest! {
        #[test]
        fn native_search_finds_what_arrows_comparators_find(
            mut ints in proptest::collection::vec(-50i64..50, 0..200),
            probe in -60i64..60,
        ) {
            ints.sort_unstable();
            let (native, compared) = both(
                Arc::new(Int64Array::from(ints.clone())),
                Arc::new(Int64Array::from(vec![probe])),
            );
            prop_assert_eq!(native, compared);
            let unsigned: Vec<u32> = ints.iter().map(|v| (v + 50) as u32).collect();
            let (native, compared) = both(
                Arc::new(UInt32Array::from(unsigned)),
                Arc::new(UInt32Array::from(vec![(probe + 50).max(0) as u32])),
            );
            prop_assert_eq!(native, compared);
            let mut strings: Vec<String> = ints.iter().map(|v| format!("k{v}")).collect();
            strings.sort_unstable();
            let (native, compared) = both(
                Arc::new(StringArray::from(strings)),
                Arc::new(StringArray::from(vec![format!("k{probe}")])),
            );
            prop_assert_eq!(native, compared);
        }
    }

    #[test]
    fn a_key_with_nulls_or_another_type_takes_the_comparators() {
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let probe: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        assert_eq!(native_equal_range(keys.as_ref(), probe.as_ref()), None);
        let other: ArrayRef = Arc::new(UInt32Array::from(vec![1]));
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        assert_eq!(native_equal_range(ints.as_ref(), other.as_ref()), None);
    }
}
