//! Writes the seed corpus (`corpus/<target>/seed-*`): real column blocks, nodes, bitmaps and
//! catalog records taken from the pristine store, so the fuzzer starts from valid inputs.
//! Run from `fuzz/`: `cargo run --release --example make_seeds`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int32Array, Int64Array, LargeStringArray, ListArray, StringArray,
    StringViewArray, TimestampMicrosecondArray, UInt8Array,
};
use arrow::datatypes::Int32Type;
use reeldb_keyframe::record::{RecordKind, decode, decode_header};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = PathBuf::from("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn u32_at(d: &[u8], at: usize) -> usize {
    u32::from_le_bytes(d[at..at + 4].try_into().unwrap()) as usize
}

fn main() {
    // Column blocks of every type the target tries, in its order, with enough rows for
    // several mini-blocks in each encoding.
    let n = 9000usize;
    let statuses = ["new", "paid", "shipped", "delivered"];
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i * 3))),
        Arc::new(Int32Array::from_iter((0..n as i32).map(|i| (i % 7 != 0).then_some(i % 100)))),
        Arc::new(UInt8Array::from_iter_values((0..n).map(|i| (i % 200) as u8))),
        Arc::new(Float64Array::from_iter((0..n).map(|i| (i % 5 != 0).then_some(i as f64 / 100.0)))),
        Arc::new(Float32Array::from_iter_values((0..n).map(|i| (i as f32).sqrt()))),
        Arc::new(StringArray::from_iter((0..n).map(|i| (i % 9 != 0).then_some(statuses[i % 4])))),
        Arc::new(LargeStringArray::from_iter_values((0..n).map(|i| format!("free text {}", i * 7919 % 10007)))),
        Arc::new(StringViewArray::from_iter_values((0..n).map(|i| statuses[i % 4]))),
        Arc::new(BooleanArray::from_iter((0..n).map(|i| (i % 3 != 0).then_some(i % 2 == 0)))),
        Arc::new(BinaryArray::from_iter_values((0..n).map(|i| vec![(i % 256) as u8; i % 5]))),
        Arc::new(Date32Array::from_iter_values((0..n as i32).map(|i| 19_000 + i))),
        Arc::new(TimestampMicrosecondArray::from_iter_values((0..n as i64).map(|i| i * 1_000_003))),
        Arc::new(
            Decimal128Array::from_iter_values((0..n as i128).map(|i| i * 11))
                .with_precision_and_scale(20, 2)
                .unwrap(),
        ),
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..n).map(|i| Some(vec![Some(i as i32), None])),
        )),
    ];
    for (i, a) in arrays.iter().enumerate() {
        // type, rows (u16), flags (bit 0: recompute checksums; the rest: the row a point
        // read asks for)
        let rows = (a.len() as u16).to_le_bytes();
        let mut seed = vec![i as u8, rows[0], rows[1], 1 | (i as u8 * 37) << 1];
        seed.extend(reeldb_keyframe::block::encode(a).unwrap());
        write("column_block", &format!("seed-{i}"), &seed);
    }
    let (sim, _) = reeldb_fuzz::pristine();
    let mut n = 0;
    for file in sim.files() {
        let data = sim.contents(&file).unwrap();
        let name = file.to_string_lossy().to_string();
        let mut seed = |target: &str, prefix: Option<u8>, body: &[u8]| {
            let bytes: Vec<u8> = prefix.into_iter().chain(body.iter().copied()).collect();
            n += 1;
            write(target, &format!("seed-{n}"), &bytes);
        };
        if name.ends_with(".pack") {
            let mut at = 16;
            while at < data.len() {
                let h = decode_header(&data[at..]).unwrap();
                let framed = &data[at..at + h.framed_len()];
                let payload = decode(framed, h.kind, h.hash).unwrap();
                match h.kind {
                    RecordKind::Leaf => seed("tree_node", Some(0), &payload),
                    RecordKind::Internal => seed("tree_node", Some(1), &payload),
                    RecordKind::Membership => seed("membership", None, &payload),
                    RecordKind::ColumnBlock => {}
                }
                at += h.framed_len();
            }
        } else if name.ends_with(".olog") {
            let mut at = 16;
            while at < data.len() {
                let len = u32_at(&data, at);
                let body = &data[at + 4..at + 4 + len];
                // A version delta: shadowed_len u32, a treemap, then a bitmap.
                let payload = &body[4..];
                let split = 4 + u32_at(payload, 0);
                seed("bitmap", Some(0), &payload[4..split]);
                seed("bitmap", Some(1), &payload[split..]);
                at += 4 + len + 8;
            }
        } else if name.ends_with("versions.idx") {
            for entry in data[64..].chunks(64) {
                seed("catalog_record", Some(0), entry);
            }
        } else if name.ends_with("records.log") {
            let mut at = 16;
            while at < data.len() {
                let len = u32_at(&data, at + 8);
                let which = if data[at + 4] == 2 { 1 } else { 2 };
                seed("catalog_record", Some(which), &data[at + 12..at + 12 + len]);
                at += 12 + len + 8;
            }
        }
    }
    // The whole-store targets: no patch, and one small patch per file.
    write("store", "seed-none", &[]);
    for f in 0..8u8 {
        write(
            "store",
            &format!("seed-file-{f}"),
            &[f, 40, 0, 0, 0, 1, 0x10],
        );
    }
    // Operations: a fault late enough to miss, then one early, with commits and maintenance.
    let ops = [
        0u8, 0, 9, 1, 3, 5, 2, 0, 1, 7, 4, 0, 2, 9, 1, 5, 6, 3, 7, 1, 0x81, 2, 1, 2, 0,
    ];
    for (i, fault) in [[0xff, 0xff, 0], [40, 0, 1], [90, 0, 2], [200, 0, 3]]
        .iter()
        .enumerate()
    {
        let seed: Vec<u8> = fault.iter().chain(&ops).copied().collect();
        write("operations", &format!("seed-{i}"), &seed);
    }
    println!("seeds written under {}", Path::new("corpus").display());
}
