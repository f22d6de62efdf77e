//! What the fuzz targets share: a small pristine store to damage, the seeds drawn from it,
//! and the two whole-store targets (a damaged store opened and read; random operations over a
//! faulty disk checked against the model). The decoder targets live in `fuzz_targets/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/common/mod.rs"]
pub mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use common::workload::{self, Cursor, Depth, Model, Op, check_promise};
use reeldb::storage::Storage;
use reeldb::{Error, Store};
use reeldb_testkit::{Fault, SimStorage};

/// Lets panics inside `reeldb_keyframe::ipc::guarded` unwind to the guard, which turns them
/// into errors, while every other panic still aborts (libFuzzer's hook aborts on any panic,
/// caught or not). Called by each target before its first input.
pub fn let_guarded_panics_unwind() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !reeldb_keyframe::ipc::inside_guard() {
                fuzzer_hook(info);
            }
        }));
    });
}

/// A small store: a keyframe, overlays that compaction turns into B-frames, a second keyframe
/// and more overlays; its model.
pub fn pristine() -> &'static (SimStorage, Model) {
    static PRISTINE: OnceLock<(SimStorage, Model)> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let sim = SimStorage::new();
        let store =
            Store::create_in(Arc::new(sim.clone()) as Arc<dyn Storage>, Path::new("sim")).unwrap();
        let mut writer = store.writer_with(workload::writer_options()).unwrap();
        let mut model = Model::default();
        let ops = workload::workload();
        for op in ops
            .iter()
            .take(10)
            .chain([&Op::Compact])
            .chain(ops.iter().skip(14).take(4))
        {
            workload::apply(&mut writer, op).unwrap();
            model = model.after(op);
        }
        drop(writer);
        (sim.durable_image(), model)
    })
}

/// Reads version `v` of `store` by a scan and a few point lookups. Errors are fine (the store
/// may be damaged); rows other than the model's are not.
fn read_version(store: &Store, model: &Model, v: u64) -> Result<(), Error> {
    let state = &model.history[v as usize - 1];
    let table = store.snapshot(v)?.table("orders")?;
    let rows: Vec<_> = table
        .scan(&reeldb::ScanOptions::new())?
        .collect::<Result<_, _>>()?;
    assert!(
        common::canonical(&rows) == state.expected,
        "version {v} of a damaged store read wrong rows"
    );
    for key in [0i64, 7, 60, 119, 125] {
        let want = state
            .rows
            .get(&key)
            .map(|s| common::orders_salted(&[key], &[*s]));
        assert!(table.get(key)? == want, "version {v} got key {key} wrong");
    }
    Ok(())
}

/// The `store` target: `data` is a list of patches to the pristine store's files, each
/// `[file: u8][offset: u32 LE][len: u8][len bytes]` (xor-ed in) or, with `len` 0, a truncation
/// at the offset. The damaged store is opened, every version read and verified: errors are
/// expected, panics and wrong rows are not.
pub fn damaged_store(data: &[u8]) {
    let (pristine, model) = pristine();
    let image = pristine.snapshot();
    let files: Vec<_> = image
        .files()
        .into_iter()
        .filter(|f| image.contents(f).is_some_and(|c| !c.is_empty()))
        .collect();
    let mut rest = data;
    while rest.len() >= 6 {
        let file = &files[rest[0] as usize % files.len()];
        let offset = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let len = rest[5] as usize;
        rest = &rest[6..];
        let mut bytes = image.contents(file).unwrap();
        let at = offset % bytes.len();
        if len == 0 {
            bytes.truncate(at);
        } else {
            let patch = &rest[..len.min(rest.len())];
            for (b, p) in bytes[at..].iter_mut().zip(patch) {
                *b ^= p;
            }
            rest = &rest[patch.len()..];
        }
        image.damage(file, bytes);
    }
    let Ok(store) = Store::open_in(Arc::new(image) as Arc<dyn Storage>, Path::new("sim")) else {
        return;
    };
    let Ok(latest) = store.latest_version() else {
        return;
    };
    assert!(latest <= model.latest(), "a version appeared");
    for v in 1..=latest {
        let _ = read_version(&store, model, v);
    }
    if latest > 0 {
        let _ = store.verify(1..=latest, &mut |_| {});
    }
}

/// Draws the next operation from `bytes` for a store whose model is `model`.
fn next_op(bytes: &mut impl Iterator<Item = u8>, model: &Model, step: u64) -> Option<Op> {
    let latest = model.latest();
    let b = bytes.next()?;
    Some(match (b % 8, latest) {
        (_, 0) | (0..=3, _) => {
            let n = bytes.next()? % 8;
            let upsert = (0..n)
                .map(|_| bytes.next().map(|k| (i64::from(k % 64), step)))
                .collect::<Option<Vec<_>>>()?;
            let delete = (0..bytes.next()? % 3)
                .map(|_| bytes.next().map(|k| i64::from(k % 64)))
                .collect::<Option<Vec<_>>>()?;
            let delete: Vec<i64> = delete
                .into_iter()
                .filter(|d| !upsert.iter().any(|(k, _)| k == d))
                .collect();
            let upsert = if latest == 0 {
                (0..64).map(|k| (k, 0)).collect()
            } else {
                upsert
            };
            // The keys 110..120 always exist once the table does (the commit creating it
            // writes them): a patch of one of them is always valid.
            let patch = match b & 0x40 {
                0 => Vec::new(),
                _ => vec![(110 + (step % 10) as i64, step)],
            };
            Op::Commit {
                upsert,
                delete,
                patch,
                keyframe: b & 0x80 != 0,
            }
        }
        (4, _) => Op::Compact,
        (5, _) => Op::Clean,
        (6, _) => Op::Rewind(1 + u64::from(bytes.next()?) % latest),
        _ => Op::ExpireBefore(1 + u64::from(bytes.next()?) % latest),
    })
}

/// The `operations` target: up to 16 operations drawn from `data` run on a simulated disk
/// whose k-th storage operation fails (EIO or ENOSPC, once or persistently; k and the fault
/// from `data`). Every operation either succeeds or fails with an error; after each failure
/// the disk is checked against the model and a new writer carries on; at the end, with the
/// disk healed, every version must read back as the model says.
pub fn operations(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let sim = SimStorage::new();
    let storage = Arc::new(sim.clone()) as Arc<dyn Storage>;
    let store = Store::create_in(storage.clone(), Path::new("sim")).unwrap();
    let fault = if data[2] & 1 == 0 {
        Fault::Eio
    } else {
        Fault::Enospc
    };
    let fail_at = sim.plan().ops() + u64::from(u16::from_le_bytes([data[0], data[1]]));
    sim.plan().fail_at(fail_at, fault, data[2] & 2 != 0);
    let mut bytes = data[3..].iter().copied();
    let mut model = Model::default();
    // The last model before a failed operation whose effect is visible but, its sync having
    // failed perhaps, not yet durable: a power loss may still take the store back to it. A
    // writer opened since makes the head durable again, an acknowledged operation too.
    let mut unsettled: Option<(Model, Op)> = None;
    let mut writer = None;
    for step in 1..=16 {
        let Some(op) = next_op(&mut bytes, &model, step) else {
            break;
        };
        if writer.is_none() {
            writer = store.writer_with(workload::writer_options()).ok();
            if writer.is_some() {
                unsettled = None;
            }
        }
        let Some(w) = writer.as_mut() else {
            continue;
        };
        let result = workload::apply(w, &op);
        if std::env::var_os("REELDB_FUZZ_TRACE").is_some() {
            eprintln!(
                "{op:?}: {result:?} (faults so far: {})",
                sim.plan().failures()
            );
        }
        match result {
            Ok(()) => {
                model = model.after(&op);
                unsettled = None;
            }
            Err(_) => {
                writer = None;
                let now = settle(&sim, &model, &op);
                if now != model {
                    unsettled = Some((model, op));
                }
                model = now;
            }
        }
    }
    drop(writer);
    sim.plan().heal();
    let cursor = match unsettled {
        Some((before, op)) => Cursor {
            created: true,
            acked: before,
            in_flight: Some(op),
        },
        None => Cursor {
            created: true,
            acked: model,
            in_flight: None,
        },
    };
    let depth = Depth {
        every_version: true,
        recover: true,
        seed: 0,
    };
    if let Err(v) = check_promise(Arc::new(sim.durable_image()), &cursor, depth) {
        panic!("the promise is broken after a power loss: {v}");
    }
}

/// After `op` failed: checks the disk against the model with `op` in flight, and returns the
/// model the disk now shows (`op` took effect or it did not).
fn settle(sim: &SimStorage, model: &Model, op: &Op) -> Model {
    let faults = sim.plan();
    let cursor = Cursor {
        created: true,
        acked: model.clone(),
        in_flight: Some(op.clone()),
    };
    let depth = Depth {
        every_version: true,
        recover: false,
        seed: 0,
    };
    let image = sim.process_crash_image();
    if let Err(v) = check_promise(Arc::new(image.clone()), &cursor, depth) {
        panic!(
            "after a failed {op:?} ({} faults so far): {v}",
            faults.failures()
        );
    }
    let store = Store::open_in(Arc::new(image) as Arc<dyn Storage>, Path::new("sim")).unwrap();
    let after = model.after(op);
    let latest = store.latest_version().unwrap();
    match op {
        Op::Commit { .. } | Op::Rewind(_) if latest == after.latest() => after,
        Op::ExpireBefore(v)
            if *v >= 2 && matches!(store.snapshot(v - 1), Err(Error::Expired { .. })) =>
        {
            after
        }
        _ => model.clone(),
    }
}

/// Recomputes the checksums of a format-3 column block in place (each mini-block's that lies
/// inside the block, then the header's), as far as its header can be read; leaves it alone
/// where it cannot. Lets the column-block target reach the decoders behind the checksums.
pub fn fix_block_checksums(block: &mut [u8]) {
    let u32_at = |b: &[u8], at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let Some(minis) = u32_at(block, 8) else { return };
    let Some(dict_len) = u32_at(block, 12) else { return };
    let index = 16 + dict_len;
    let Some(sum_at) = minis.checked_mul(40).map(|n| index + n) else { return };
    if sum_at + 8 > block.len() {
        return;
    }
    let data_start = (sum_at + 8).next_multiple_of(8);
    for i in 0..minis {
        let e = index + 40 * i;
        let (Some(offset), Some(len)) = (u32_at(block, e), u32_at(block, e + 4)) else { return };
        let start = data_start + offset;
        if let Some(bytes) = block.get(start..start + len) {
            let sum = reeldb_keyframe::format::checksum(bytes);
            block[e + 32..e + 40].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let sum = reeldb_keyframe::format::checksum(&block[..sum_at]);
    block[sum_at..sum_at + 8].copy_from_slice(&sum.to_le_bytes());
}
