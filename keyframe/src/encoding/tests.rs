//! The block format's specification as tests: round trips of every type and encoding, the
//! encoder's choices, point reads, and corruption found, never read as data.
use super::*;
use arrow::array::*;
use arrow::datatypes::{Field, Int32Type, TimeUnit};
use proptest::prelude::*;
use std::sync::Arc;

fn round_trip(a: &ArrayRef) -> Encoding {
    let raw = ::bytes::Bytes::from(encode(a).unwrap());
    let back = decode(&raw, a.data_type(), a.len()).unwrap();
    assert_eq!(back.as_ref(), a.as_ref(), "{:?}", a.data_type());
    encoding_of(&raw).unwrap()
}

fn sample_columns(n: usize) -> Vec<ArrayRef> {
    let ids: Vec<i64> = (0..n as i64).map(|i| i * 3 + 1_000_000).collect();
    let words = [
        "new",
        "paid",
        "shipped",
        "delivered",
        "cancelled",
        "returned",
    ];
    vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int32Array::from_iter(
            (0..n).map(|i| (i % 7 != 0).then_some((i % 20) as i32 - 5)),
        )),
        Arc::new(UInt64Array::from_iter_values(
            (0..n as u64).map(|i| u64::MAX - i * 977),
        )),
        Arc::new(Int8Array::from_iter_values(
            (0..n).map(|i| (i as i8).wrapping_mul(37)),
        )),
        Arc::new(Float64Array::from_iter((0..n).map(|i| {
            (i % 11 != 0).then_some((i * 7919 % 100_000) as f64 / 100.0)
        }))),
        Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| (i as f64).sqrt()),
        )),
        Arc::new(Float32Array::from_iter_values(
            (0..n).map(|i| (i % 1000) as f32 / 10.0),
        )),
        Arc::new(StringArray::from_iter(
            (0..n).map(|i| (i % 13 != 0).then_some(words[i * 7 % 6])),
        )),
        Arc::new(LargeStringArray::from_iter_values((0..n).map(|i| {
            format!(
                "note-{}-{}",
                i * 2_654_435_761 % 1_000_003,
                "x".repeat(i % 30)
            )
        }))),
        Arc::new(BinaryArray::from_iter(
            (0..n).map(|i| (i % 5 != 0).then(|| vec![(i % 251) as u8; i % 9])),
        )),
        Arc::new(StringViewArray::from_iter_values(
            (0..n).map(|i| words[i % 6]),
        )),
        Arc::new(BooleanArray::from_iter(
            (0..n).map(|i| (i % 3 != 0).then_some(i % 2 == 0)),
        )),
        Arc::new(Date32Array::from_iter_values(
            (0..n as i32).map(|i| 19_000 + i / 100),
        )),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            (0..n as i64).map(|i| 1_700_000_000_000 + i * 1_000),
        )),
        Arc::new(
            Decimal128Array::from_iter_values((0..n as i128).map(|i| i * 1_000_000_007))
                .with_precision_and_scale(38, 4)
                .unwrap(),
        ),
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..n).map(|i| Some(vec![Some(i as i32), None])),
        )),
        Arc::new(NullArray::new(n)),
    ]
}

#[test]
fn every_supported_type_round_trips_in_blocks_of_any_length() {
    for n in [1, 2, 7, 4095, 4096, 4097, 10_000] {
        for a in sample_columns(n) {
            round_trip(&a);
            // A slice encodes like the values it holds.
            if n > 3 {
                let s = a.slice(1, n - 2);
                round_trip(&s);
            }
        }
    }
}

#[test]
fn each_column_shape_gets_the_encoding_its_cost_estimate_favours() {
    let cols = sample_columns(20_000);
    let kinds: Vec<Encoding> = cols.iter().map(round_trip).collect();
    assert_eq!(kinds[0], Encoding::Delta, "sorted keys");
    assert_eq!(kinds[1], Encoding::FrameOfReference);
    assert_eq!(kinds[4], Encoding::DecimalFloat, "cents");
    assert_eq!(kinds[5], Encoding::Plain, "irrational floats");
    assert_eq!(kinds[7], Encoding::Dictionary, "six statuses");
    assert_eq!(kinds[10], Encoding::Dictionary, "views");
    assert_eq!(kinds[11], Encoding::Bitmap);
    assert_eq!(kinds[15], Encoding::ArrowIpc, "lists fall back");
    // Sorted ids in steps of 3 take no bits at all beyond each mini-block's header.
    let ids = encode(&cols[0]).unwrap();
    assert!(ids.len() < 20_000 / 8, "{} bytes", ids.len());
}

/// `n` strings of 24 random letters and digits: text zstd compresses.
fn random_text(n: usize) -> ArrayRef {
    let mut seed = 7u64;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize
    };
    let alnum = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    Arc::new(StringArray::from_iter_values((0..n).map(|_| {
        (0..24)
            .map(|_| alnum[next() % alnum.len()] as char)
            .collect::<String>()
    })))
}

#[test]
fn random_text_is_zstd_compressed_and_short_text_is_not() {
    let text = random_text(5000);
    assert_eq!(round_trip(&text), Encoding::ZstdBytes);
    let raw = encode(&text).unwrap();
    assert!(raw.len() < 5000 * 24 * 85 / 100, "{} bytes", raw.len());
    let tiny: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
    assert_eq!(round_trip(&tiny), Encoding::PlainBytes);
}

#[test]
fn floats_that_are_not_exact_decimals_keep_their_bits() {
    let odd: ArrayRef = Arc::new(Float64Array::from(vec![
        0.1,
        -0.0,
        0.0,
        f64::NAN,
        f64::INFINITY,
        1e300,
        12.34,
        f64::MIN_POSITIVE,
    ]));
    let raw = ::bytes::Bytes::from(encode(&odd).unwrap());
    let back = decode(&raw, &DataType::Float64, 8).unwrap();
    let bits = |a: &ArrayRef| -> Vec<u64> {
        a.as_primitive::<arrow::datatypes::Float64Type>()
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    assert_eq!(bits(&back), bits(&odd));
}

#[test]
fn a_point_read_decodes_exactly_the_rows_asked() {
    for a in sample_columns(10_000) {
        let raw = ::bytes::Bytes::from(encode(&a).unwrap());
        for want in [0..1, 4095..4097, 9_999..10_000, 100..8_200, 5..5] {
            let part = decode_rows(&raw, a.data_type(), 10_000, want.clone()).unwrap();
            assert_eq!(part.as_ref(), a.slice(want.start, want.len()).as_ref());
        }
        assert!(decode_rows(&raw, a.data_type(), 10_000, 9_999..10_001).is_err());
    }
}

#[test]
fn each_mini_block_read_whole_holds_exactly_its_rows() {
    let text = random_text(10_000);
    assert_eq!(round_trip(&text), Encoding::ZstdBytes);
    for a in sample_columns(10_000).into_iter().chain([text]) {
        let raw = ::bytes::Bytes::from(encode(&a).unwrap());
        let index = PointIndex::new(&raw, 10_000).unwrap();
        let mut row = 0;
        while let Some((_, held)) = index.mini_of(row) {
            let part = index.decode(a.data_type(), held.clone()).unwrap();
            assert_eq!(part.as_ref(), a.slice(held.start, held.len()).as_ref());
            row = held.end;
        }
    }
}

#[test]
fn every_flipped_byte_of_a_block_is_reported_never_read_as_data() {
    let cols = sample_columns(300);
    for a in cols.iter().filter(|a| a.data_type() != &DataType::Null) {
        let good = encode(a).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let raw = ::bytes::Bytes::from(bad);
            match decode(&raw, a.data_type(), 300) {
                Err(_) => {}
                Ok(back) => panic!(
                    "{:?}: flip at {at} of {} read as data (equal: {})",
                    a.data_type(),
                    good.len(),
                    back.as_ref() == a.as_ref()
                ),
            }
        }
    }
}

#[test]
fn a_block_read_as_a_dictionary_holds_the_same_values() {
    for a in sample_columns(9000) {
        if !bytes::handles(a.data_type()) {
            continue;
        }
        let raw = ::bytes::Bytes::from(encode(&a).unwrap());
        let d = decode_dictionary(&raw, a.data_type(), 9000).unwrap();
        assert!(matches!(d.data_type(), DataType::Dictionary(..)));
        let back = arrow::compute::cast(&d, a.data_type()).unwrap();
        assert_eq!(back.as_ref(), a.as_ref());
    }
}

#[test]
fn a_block_read_as_another_type_is_refused() {
    let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    let raw = ::bytes::Bytes::from(encode(&a).unwrap());
    for t in [
        DataType::UInt64,
        DataType::UInt32,
        DataType::Float64,
        DataType::Utf8,
        DataType::Boolean,
    ] {
        assert!(decode(&raw, &t, 3).is_err(), "{t}");
    }
    assert!(decode(&raw, &DataType::Timestamp(TimeUnit::Second, None), 3).is_ok());
    let _ = Field::new("unused", DataType::Null, true);
}

#[test]
fn a_block_written_before_its_column_was_widened_reads_as_the_wider_type() {
    let cases: Vec<(ArrayRef, DataType)> = vec![
        (
            Arc::new(Int32Array::from(vec![Some(-5), None, Some(i32::MAX)])),
            DataType::Int64,
        ),
        (
            Arc::new(Int8Array::from(vec![Some(-5), None, Some(7)])),
            DataType::Int64,
        ),
        (
            Arc::new(UInt16Array::from(vec![Some(5), None, Some(u16::MAX)])),
            DataType::UInt64,
        ),
        (
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
            DataType::Float64,
        ),
        (
            Arc::new(StringArray::from(vec![Some("a"), None, Some("bc")])),
            DataType::LargeUtf8,
        ),
    ];
    for (narrow, wide) in cases {
        let raw = ::bytes::Bytes::from(encode(&narrow).unwrap());
        let read = decode(&raw, &wide, 3).unwrap();
        let expected = arrow::compute::cast(&narrow, &wide).unwrap();
        assert_eq!(
            read.as_ref(),
            expected.as_ref(),
            "{} as {wide}",
            narrow.data_type()
        );
        let one = decode_rows(&raw, &wide, 3, 2..3).unwrap();
        assert_eq!(one.as_ref(), expected.slice(2, 1).as_ref());
    }
}

#[test]
fn a_block_written_after_a_widening_reads_at_the_older_narrower_type() {
    // A version from before the widening, re-expressed over a keyframe written after it.
    let wide: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)]));
    let raw = ::bytes::Bytes::from(encode(&wide).unwrap());
    let read = decode(&raw, &DataType::Int32, 3).unwrap();
    assert_eq!(
        read.as_ref(),
        &Int32Array::from(vec![Some(1), None, Some(-3)]) as &dyn Array
    );
}

proptest! {
    #[test]
    fn integers_with_nulls_round_trip(values in proptest::collection::vec(proptest::option::of(any::<i64>()), 1..9000)) {
        let a: ArrayRef = Arc::new(Int64Array::from(values));
        round_trip(&a);
    }

    #[test]
    fn strings_with_nulls_round_trip(values in proptest::collection::vec(proptest::option::of("[a-c]{0,3}|.{0,40}"), 1..3000)) {
        let a: ArrayRef = Arc::new(StringArray::from(values));
        round_trip(&a);
    }

    #[test]
    fn floats_round_trip_bit_for_bit(values in proptest::collection::vec(proptest::option::of(any::<f64>()), 1..5000), cents in any::<bool>()) {
        let values: Vec<Option<f64>> = if cents {
            values.into_iter().map(|v| v.map(|f| ((f % 1e6) * 100.0).round() / 100.0)).collect()
        } else { values };
        let a: ArrayRef = Arc::new(Float64Array::from(values.clone()));
        let raw = ::bytes::Bytes::from(encode(&a).unwrap());
        let back = decode(&raw, &DataType::Float64, values.len()).unwrap();
        let back = back.as_primitive::<arrow::datatypes::Float64Type>();
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(f) => prop_assert_eq!(back.value(i).to_bits(), f.to_bits()),
                None => prop_assert!(back.is_null(i)),
            }
        }
    }

    #[test]
    fn hostile_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), rows in 0usize..50) {
        let raw = ::bytes::Bytes::from(bytes);
        for t in [DataType::Int64, DataType::Utf8, DataType::Float64, DataType::Boolean] {
            let _ = decode(&raw, &t, rows);
        }
    }
}
