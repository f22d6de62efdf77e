//! Corruption trials: a store holding keyframes, overlays, B-frames, an expiry and a rewind is
//! damaged in one place at a time, and every version is read back (scans and point lookups)
//! and verified. Damage is never returned as data: each read returns the exact rows or an
//! error that reports corruption, and `Store::verify` reports every version a read found
//! damaged and never names one as the newest intact version.
//!
//! The damage: every bit of every header byte (record headers and trailers, file headers,
//! index entries) of a few records of each kind, sampled bits of every payload, every 512-byte
//! and 4 KiB sector zeroed, sectors and equal-length records swapped, sectors and whole files
//! replaced by a stale copy from before the rewind, and files truncated at record boundaries.
//! Acknowledged versions may vanish unreported only where nothing on disk can tell the damage
//! from a crash during the last commit: versions.idx cut within or just before its last entry.
//!
//! `REELDB_CORRUPTION_RECORDS` sets how many records of each kind get every header bit flipped
//! (default 3) and `REELDB_CORRUPTION_FLIPS` the sampled payload flips per record (default 2);
//! the soak run in the README uses 1000 and 8.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::orders_salted;
use common::workload::{self, Model, Op};
use rayon::prelude::*;
use reeldb::storage::Storage;
use reeldb::{Error, Store};
use reeldb_testkit::SimStorage;

const SECTOR: usize = 512;
const PAGE: usize = 4096;

/// The operations that build the damaged store: a keyframe and four overlays that compaction
/// turns into B-frames, a second keyframe and overlays, a rewind that lets later commits reuse
/// catalog positions (so stale copies hold valid records of rewound versions), an expiry.
fn history() -> (Vec<Op>, usize) {
    let mut ops = vec![Op::Commit {
        upsert: (0..120).map(|i| (i, 0)).collect(),
        delete: vec![],
        patch: vec![],
        keyframe: true,
    }];
    ops.extend((1..=4).map(|r| workload::round(r, false)));
    ops.push(workload::round(5, true));
    ops.extend((6..=7).map(|r| workload::round(r, false)));
    ops.push(Op::Compact);
    ops.extend((8..=10).map(|r| workload::round(r, false)));
    // The stale image is taken here, before the rewind.
    let stale_at = ops.len();
    ops.push(Op::Rewind(9));
    ops.extend((11..=12).map(|r| workload::round(r, false)));
    ops.push(Op::ExpireBefore(2));
    (ops, stale_at)
}

/// The pristine store, a stale image of it from before the rewind, and its model.
fn build() -> (SimStorage, SimStorage, Model) {
    let sim = SimStorage::new();
    let store =
        Store::create_in(Arc::new(sim.clone()) as Arc<dyn Storage>, Path::new("sim")).unwrap();
    let mut writer = store.writer_with(workload::writer_options()).unwrap();
    let (ops, stale_at) = history();
    let mut model = Model::default();
    let mut stale = None;
    for (i, op) in ops.iter().enumerate() {
        if i == stale_at {
            stale = Some(sim.snapshot());
        }
        workload::apply(&mut writer, op).unwrap();
        model = model.after(op);
    }
    drop(writer);
    (sim.durable_image(), stale.unwrap().durable_image(), model)
}

/// A record of the store: where it lies and which bytes are its header (every bit of those is
/// flipped for a few records of each kind).
#[derive(Debug, Clone)]
struct Record {
    file: PathBuf,
    kind: &'static str,
    span: Range<usize>,
    header: Vec<Range<usize>>,
}

impl Record {
    fn payload(&self) -> Vec<usize> {
        self.span
            .clone()
            .filter(|at| !self.header.iter().any(|h| h.contains(at)))
            .collect()
    }
}

fn u32_at(data: &[u8], at: usize) -> usize {
    u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize
}

/// Every record of `file`, whose bytes are `data`, as the format lays them out.
fn records_of(file: &Path, data: &[u8]) -> Vec<Record> {
    let name = file.to_string_lossy();
    let record = |kind, span: Range<usize>, header: Vec<Range<usize>>| Record {
        file: file.to_path_buf(),
        kind,
        span,
        header,
    };
    // A record all of whose bytes are header.
    let all_header =
        |kind, span: Range<usize>| record(kind, span.clone(), std::iter::once(span).collect());
    let whole = |kind| vec![all_header(kind, 0..data.len())];
    // Framed records from offset 16: (kind, framed length, header length) of the one at `at`.
    let framed = |file_header: &'static str,
                  frame: &dyn Fn(usize) -> (&'static str, usize, usize)| {
        let mut out = vec![all_header(file_header, 0..16)];
        let mut at = 16;
        while at < data.len() {
            let (kind, len, head) = frame(at);
            let end = at + len;
            out.push(record(kind, at..end, vec![at..at + head, end - 8..end]));
            at = end;
        }
        out
    };
    if name.ends_with("STORE") {
        whole("store descriptor")
    } else if name.ends_with("versions.idx") {
        let entries = data.len() / 64 - 1;
        let mut out = vec![all_header("index header", 0..64)];
        out.extend((1..=entries).map(|v| {
            let kind = if v == entries {
                "last index entry"
            } else {
                "index entry"
            };
            all_header(kind, 64 * v..64 * v + 64)
        }));
        out
    } else if name.ends_with("records.log") {
        framed("catalog file header", &|at| {
            let kind = match data[at + 4] {
                1 => "table definition",
                _ => "version record",
            };
            (kind, 12 + u32_at(data, at + 8) + 8, 12)
        })
    } else if name.ends_with(".pack") {
        framed("pack header", &|at| {
            let kind = match data[at + 4] {
                1 => "column block",
                2 => "leaf node",
                3 => "internal node",
                _ => "membership (B-frame)",
            };
            (kind, 32 + u32_at(data, at + 12) + 8, 32)
        })
    } else if name.ends_with(".olog") {
        framed("node log header", &|at| {
            ("version delta", 4 + u32_at(data, at) + 8, 4 + 4)
        })
    } else {
        Vec::new()
    }
}

/// One kind of damage to one place.
#[derive(Debug, Clone)]
enum Damage {
    Flip {
        at: usize,
        bit: u8,
    },
    Zero {
        span: Range<usize>,
    },
    SwapSectors {
        a: usize,
        b: usize,
        len: usize,
    },
    /// The bytes of `span` come from the stale image (the whole file when `span` covers it).
    Stale {
        span: Range<usize>,
    },
    Truncate {
        len: usize,
    },
}

/// One trial: a damage, where, and what it hit.
#[derive(Debug, Clone)]
struct Trial {
    file: PathBuf,
    /// The record kind hit, or the damage class for damage spanning records.
    kind: &'static str,
    damage: Damage,
}

/// A swap of two equal-length records of one kind (possibly in two files): each reference to
/// either then finds a valid record holding other content.
#[derive(Debug, Clone)]
struct RecordSwap {
    kind: &'static str,
    a: (PathBuf, usize),
    b: (PathBuf, usize),
    len: usize,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` items spread evenly over `items` (first and last included).
fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n)
        .map(|i| items[i * (items.len() - 1) / (n - 1).max(1)].clone())
        .collect()
}

/// What no version reads: records of rewound versions, of versions compaction replaced, and
/// of expired ones. Damage there is harmless; the other kinds are tallied over live records.
const UNREFERENCED: &str = "unreferenced record";

/// Every record of the store, with those no version reads relabelled [`UNREFERENCED`]: a
/// record is live when a flip of its first byte is noticed.
fn live_records(pristine: &SimStorage, model: &Model) -> Vec<Record> {
    let mut records: Vec<Record> = pristine
        .files()
        .into_iter()
        .flat_map(|file| records_of(&file, &pristine.contents(&file).unwrap()))
        .collect();
    records.par_iter_mut().for_each(|r| {
        let trial = Trial {
            file: r.file.clone(),
            kind: r.kind,
            damage: Damage::Flip {
                at: r.span.start,
                bit: 0,
            },
        };
        let image = damaged(pristine, pristine, &trial);
        if matches!(judge(image, model), Ok(Outcome::Harmless)) {
            r.kind = UNREFERENCED;
        }
    });
    records
}

fn trials(
    pristine: &SimStorage,
    stale: &SimStorage,
    model: &Model,
) -> (Vec<Trial>, Vec<RecordSwap>) {
    let per_kind = env_usize("REELDB_CORRUPTION_RECORDS", 3);
    let flips = env_usize("REELDB_CORRUPTION_FLIPS", 2);
    let mut rng = fastrand::Rng::with_seed(0xC0AA);
    let mut out = Vec::new();
    let mut by_kind: BTreeMap<&'static str, Vec<Record>> = BTreeMap::new();
    let all_records = live_records(pristine, model);
    for file in pristine.files() {
        let data = pristine.contents(&file).unwrap();
        if data.is_empty() {
            continue;
        }
        let records: Vec<&Record> = all_records.iter().filter(|r| r.file == file).collect();
        for r in &records {
            by_kind.entry(r.kind).or_default().push((*r).clone());
            let payload = r.payload();
            for _ in 0..flips.min(payload.len()) {
                let at = payload[rng.usize(..payload.len())];
                out.push(Trial {
                    file: file.clone(),
                    kind: r.kind,
                    damage: Damage::Flip {
                        at,
                        bit: rng.u8(0..8),
                    },
                });
            }
        }
        for size in [SECTOR, PAGE] {
            let class = if size == SECTOR {
                "zeroed 512 B sector"
            } else {
                "zeroed 4 KiB sector"
            };
            for at in (0..data.len()).step_by(size) {
                let span = at..(at + size).min(data.len());
                if data[span.clone()].iter().any(|&b| b != 0) {
                    out.push(Trial {
                        file: file.clone(),
                        kind: class,
                        damage: Damage::Zero { span },
                    });
                }
            }
            let sectors = data.len() / size;
            for _ in 0..if sectors >= 2 { 4 } else { 0 } {
                let a = rng.usize(..sectors);
                let b = (a + 1 + rng.usize(..sectors - 1)) % sectors;
                let class = if size == SECTOR {
                    "swapped 512 B sectors"
                } else {
                    "swapped 4 KiB sectors"
                };
                out.push(Trial {
                    file: file.clone(),
                    kind: class,
                    damage: Damage::SwapSectors {
                        a: a * size,
                        b: b * size,
                        len: size,
                    },
                });
            }
        }
        if let Some(old) = stale.contents(&file)
            && old != data
        {
            out.push(Trial {
                file: file.clone(),
                kind: "stale copy of a file",
                damage: Damage::Stale {
                    span: 0..data.len().max(old.len()),
                },
            });
            for at in (0..data.len().min(old.len())).step_by(PAGE) {
                let end = (at + PAGE).min(data.len()).min(old.len());
                if old[at..end] != data[at..end] {
                    out.push(Trial {
                        file: file.clone(),
                        kind: "stale copy of a 4 KiB sector",
                        damage: Damage::Stale { span: at..end },
                    });
                }
            }
        }
        let mut cuts: BTreeSet<usize> = BTreeSet::from([0, data.len() - 1]);
        for r in &records {
            cuts.insert(r.span.start);
            cuts.insert(r.span.start + 1);
            cuts.insert(r.span.end - 1);
        }
        cuts.remove(&data.len());
        let cuts: Vec<usize> = cuts.into_iter().collect();
        for len in spread(&cuts, 40) {
            out.push(Trial {
                file: file.clone(),
                kind: "truncated file",
                damage: Damage::Truncate { len },
            });
        }
    }
    let mut swaps = Vec::new();
    for (kind, records) in &by_kind {
        let exhaustive = if *kind == UNREFERENCED { 0 } else { per_kind };
        for r in spread(records, exhaustive) {
            for h in &r.header {
                for at in h.clone() {
                    for bit in 0..8 {
                        out.push(Trial {
                            file: r.file.clone(),
                            kind,
                            damage: Damage::Flip { at, bit },
                        });
                    }
                }
            }
        }
        // Equal-length pairs of this kind; a handful per kind.
        let mut by_len: BTreeMap<usize, Vec<&Record>> = BTreeMap::new();
        for r in records {
            by_len.entry(r.span.len()).or_default().push(r);
        }
        let pairs = by_len
            .values()
            .filter(|rs| rs.len() >= 2)
            .flat_map(|rs| rs.windows(2).map(|w| (w[0], w[1])));
        for (a, b) in pairs.take(4) {
            swaps.push(RecordSwap {
                kind,
                a: (a.file.clone(), a.span.start),
                b: (b.file.clone(), b.span.start),
                len: a.span.len(),
            });
        }
    }
    (out, swaps)
}

/// The pristine image with `trial`'s damage applied.
fn damaged(pristine: &SimStorage, stale: &SimStorage, trial: &Trial) -> SimStorage {
    let image = pristine.snapshot();
    let mut data = pristine.contents(&trial.file).unwrap();
    match &trial.damage {
        Damage::Flip { at, bit } => data[*at] ^= 1 << bit,
        Damage::Zero { span } => data[span.clone()].fill(0),
        Damage::SwapSectors { a, b, len } => {
            let first = data[*a..a + len].to_vec();
            data.copy_within(*b..b + len, *a);
            data[*b..b + len].copy_from_slice(&first);
        }
        Damage::Stale { span } => {
            let old = stale.contents(&trial.file).unwrap();
            if span.end >= data.len().max(old.len()) && span.start == 0 {
                data = old;
            } else {
                data[span.clone()].copy_from_slice(&old[span.clone()]);
            }
        }
        Damage::Truncate { len } => data.truncate(*len),
    }
    image.damage(&trial.file, data);
    image
}

fn swapped(pristine: &SimStorage, swap: &RecordSwap) -> SimStorage {
    let image = pristine.snapshot();
    let (fa, a) = &swap.a;
    let (fb, b) = &swap.b;
    let bytes_a = pristine.contents(fa).unwrap()[*a..a + swap.len].to_vec();
    let bytes_b = pristine.contents(fb).unwrap()[*b..b + swap.len].to_vec();
    let mut data = image.contents(fa).unwrap();
    data[*a..a + swap.len].copy_from_slice(&bytes_b);
    image.damage(fa, data);
    let mut data = image.contents(fb).unwrap();
    data[*b..b + swap.len].copy_from_slice(&bytes_a);
    image.damage(fb, data);
    image
}

/// What a damaged store did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Every read returned the exact rows and verify found nothing: the damage hit bytes
    /// nothing reads (dead tails, unchecked reserved bytes, the rewind counter).
    Harmless,
    /// Opening, a read or verify reported corruption.
    Detected,
    /// The last index entry failed its checksum and was taken for a torn one: the store reads
    /// as of the version before, and verify notes the ignored entry.
    TailIgnored,
    /// The index lost whole entries at its end and nothing can tell: the store reads as of an
    /// earlier version, exactly what a crash before those commits would leave.
    IndexCut,
}

/// Opens `image`, reads every version of `model` and verifies: the outcome, or the violation.
fn examine(image: SimStorage, model: &Model) -> Result<Outcome, String> {
    let caught = |e: Error, what: &str| {
        if e.is_corruption() {
            Ok(Outcome::Detected)
        } else {
            Err(format!(
                "{what} failed with an error that is not corruption: {e}"
            ))
        }
    };
    let store = match Store::open_in(Arc::new(image) as Arc<dyn Storage>, Path::new("sim")) {
        Ok(store) => store,
        Err(e) => return caught(e, "opening"),
    };
    let latest = match store.latest_version() {
        Ok(v) => v,
        Err(e) => return caught(e, "reading the latest version"),
    };
    if latest > model.latest() {
        return Err(format!(
            "version {latest} appeared (latest is {})",
            model.latest()
        ));
    }
    let mut damaged = BTreeSet::new();
    for v in 1..=latest {
        match read_version(&store, model, v) {
            Ok(()) => {}
            Err(ReadFailure::Failed(e)) if e.is_corruption() => {
                damaged.insert(v);
            }
            Err(ReadFailure::Failed(Error::Expired { .. })) if model.expired.contains(&v) => {}
            Err(ReadFailure::Failed(e)) => {
                return Err(format!("reading v{v}: not a corruption error: {e}"));
            }
            Err(ReadFailure::Wrong) => return Err(format!("v{v} reads wrong rows")),
        }
    }
    let mut flagged = !damaged.is_empty();
    if latest > 0 {
        match store.verify(1..=latest, &mut |_| {}) {
            Ok(report) => {
                for c in &report.versions {
                    if damaged.contains(&c.version) && c.problem.is_none() {
                        return Err(format!(
                            "verify finds v{} intact, reads found damage",
                            c.version
                        ));
                    }
                }
                if let Some(v) = report.newest_intact
                    && damaged.contains(&v)
                {
                    return Err(format!(
                        "verify names damaged v{v} the newest intact version"
                    ));
                }
                flagged |= !report.is_intact();
                if latest < model.latest() && !flagged && !writer_refuses(&store)? {
                    return Ok(if report.ignored_index_tail.is_some() {
                        Outcome::TailIgnored
                    } else {
                        Outcome::IndexCut
                    });
                }
            }
            Err(e) => return caught(e, "verify"),
        }
    }
    if latest < model.latest() && !flagged && writer_refuses(&store)? {
        return Ok(Outcome::Detected);
    }
    Ok(if flagged {
        Outcome::Detected
    } else if latest < model.latest() {
        Outcome::IndexCut
    } else {
        Outcome::Harmless
    })
}

/// True when a writer refuses to open with a corruption error: what the next writer does
/// where cutting the catalog back to the versions reads see would lose acknowledged ones.
fn writer_refuses(store: &Store) -> Result<bool, String> {
    match store.writer() {
        Ok(_) => Ok(false),
        Err(e) if e.is_corruption() => Ok(true),
        Err(e) => Err(format!("opening a writer: not a corruption error: {e}")),
    }
}

/// Reads version `v` by a scan and by point lookups of the keys it changed and a few others.
fn read_version(store: &Store, model: &Model, v: u64) -> Result<(), ReadFailure> {
    let state = &model.history[v as usize - 1];
    let table = store.snapshot(v)?.table("orders")?;
    for options in [
        reeldb::ScanOptions::new(),
        reeldb::ScanOptions::new().in_parallel(),
    ] {
        let batches = table.scan(&options)?.collect::<Result<Vec<_>, _>>()?;
        if common::canonical(&batches) != state.expected {
            return Err(ReadFailure::Wrong);
        }
    }
    let before = (v >= 2).then(|| &model.history[v as usize - 2].rows);
    let changed = state
        .rows
        .iter()
        .filter(|(k, s)| before.is_some_and(|b| b.get(k) != Some(s)))
        .map(|(k, _)| *k);
    let gone = before
        .into_iter()
        .flat_map(|b| b.keys().filter(|k| !state.rows.contains_key(k)).copied());
    for key in changed.chain(gone).chain([0, 59, 119, 200]) {
        let expected = state.rows.get(&key).map(|s| orders_salted(&[key], &[*s]));
        if table.get(key)? != expected {
            return Err(ReadFailure::Wrong);
        }
    }
    Ok(())
}

/// Why a version did not read back.
#[derive(Debug)]
enum ReadFailure {
    /// It returned rows other than the ones written.
    Wrong,
    /// It failed with this error.
    Failed(Error),
}

impl From<Error> for ReadFailure {
    fn from(e: Error) -> Self {
        ReadFailure::Failed(e)
    }
}

#[derive(Debug, Default)]
struct KindTally {
    trials: u64,
    outcomes: BTreeMap<Outcome, u64>,
}

#[test]
fn damage_anywhere_is_detected_or_harmless_and_never_read_as_data() {
    let started = std::time::Instant::now();
    let (pristine, stale, model) = build();
    assert_eq!(examine(pristine.snapshot(), &model), Ok(Outcome::Harmless));
    let (trials, swaps) = trials(&pristine, &stale, &model);
    let judged: Vec<(&'static str, String, Result<Outcome, String>, bool)> = trials
        .par_iter()
        .map(|t| {
            let image = damaged(&pristine, &stale, t);
            let what = format!("{:?} of {} ({})", t.damage, t.file.display(), t.kind);
            let torn = looks_torn(&pristine, t);
            (t.kind, what, judge(image, &model), torn)
        })
        .chain(swaps.par_iter().map(|s| {
            let what = format!("{s:?}");
            (s.kind, what, judge(swapped(&pristine, s), &model), false)
        }))
        .collect();
    let mut tally: BTreeMap<&'static str, KindTally> = BTreeMap::new();
    let mut violations = Vec::new();
    for (kind, what, result, torn) in &judged {
        let k = tally.entry(kind).or_default();
        k.trials += 1;
        match result {
            Ok(outcome) => *k.outcomes.entry(*outcome).or_default() += 1,
            Err(v) => violations.push(format!("{what}: {v}")),
        }
        let index_damage = what.contains("versions.idx");
        if matches!(result, Ok(Outcome::IndexCut | Outcome::TailIgnored)) && !index_damage {
            violations.push(format!(
                "{what}: versions vanished though the index is intact"
            ));
        }
        // What may go unnoticed is only what no byte on disk can tell from a crash during the
        // last commit: a cut within, or just before, the last entry (see `catalog::tail`).
        if matches!(result, Ok(Outcome::IndexCut | Outcome::TailIgnored))
            && !cut_within_last_entry(what, model.latest())
            && !torn
        {
            violations.push(format!(
                "{what}: acknowledged versions lost though records.log proves them"
            ));
        }
    }
    println!("corruption trials by what was hit (detected / tail ignored / index cut / harmless):");
    let count = |k: &KindTally, o| k.outcomes.get(&o).copied().unwrap_or(0);
    for (kind, k) in &tally {
        println!(
            "  {kind:<30} {:>6} trials: {} / {} / {} / {}",
            k.trials,
            count(k, Outcome::Detected),
            count(k, Outcome::TailIgnored),
            count(k, Outcome::IndexCut),
            count(k, Outcome::Harmless)
        );
    }
    let total = |o| tally.values().map(|k| count(k, o)).sum::<u64>();
    let (detected, tail, cut, harmless) = (
        total(Outcome::Detected),
        total(Outcome::TailIgnored),
        total(Outcome::IndexCut),
        total(Outcome::Harmless),
    );
    println!(
        "corruption: {} trials, {detected} detected, {tail} taken for a torn index tail (noted by \
         verify), {cut} index cut at an entry boundary, {harmless} harmless, {} wrong results or \
         panics, {:.1} s",
        judged.len(),
        violations.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        violations.is_empty(),
        "{:#?}",
        &violations[..violations.len().min(50)]
    );
    assert_eq!(
        tally
            .get(UNREFERENCED)
            .map(|k| count(k, Outcome::Harmless) == k.trials),
        Some(true),
        "unreferenced records are read by nothing"
    );
    for (kind, k) in tally.iter().filter(|(kind, _)| **kind != UNREFERENCED) {
        assert!(
            count(k, Outcome::Detected) + count(k, Outcome::TailIgnored) > 0,
            "no damage to {kind} was noticed at all: the trials miss what they aim at"
        );
    }
}

/// True when a bit flip left versions.idx exactly as a torn append of its last entry does: the
/// flipped byte became zero and every byte after it is zero (the first bytes landed, the rest
/// did not). No byte on disk tells the two apart; it happens when the flip hits a set bit
/// of an entry whose trailing bytes are otherwise zero.
fn looks_torn(pristine: &SimStorage, trial: &Trial) -> bool {
    let Damage::Flip { at, bit } = trial.damage else {
        return false;
    };
    if !trial.file.ends_with("versions.idx") {
        return false;
    }
    let data = pristine.contents(&trial.file).unwrap();
    data[at] ^ (1 << bit) == 0 && data[at + 1..].iter().all(|&b| b == 0)
}

/// True when the damage `what` truncated versions.idx within its last entry (of version
/// `latest`) or just before it.
fn cut_within_last_entry(what: &str, latest: u64) -> bool {
    let len = what
        .strip_prefix("Truncate { len: ")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(n, _)| n.parse::<u64>().ok());
    what.contains("versions.idx") && len.is_some_and(|len| len >= 64 * latest)
}

/// [`examine`], with a panic counted as a violation.
fn judge(image: SimStorage, model: &Model) -> Result<Outcome, String> {
    catch_unwind(AssertUnwindSafe(|| examine(image, model)))
        .unwrap_or_else(|p| Err(format!("panicked: {:?}", p.downcast_ref::<String>())))
}
