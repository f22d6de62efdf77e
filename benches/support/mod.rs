//! Shared by the benchmarks: the peer-bench workload (the state table of shared/peer-bench,
//! 1,000,000 rows, and change batches of 1% updates, 0.2% inserts and 0.1% deletes), generated
//! here with the same schema and mix, or read from a peer-bench data folder when
//! `REELDB_PEER_DATA` names one (its `initial.arrow` and `changes/vNNNN.arrow`), so ReelDB's
//! figures stand beside the peers'. Also the aggregation every scan benchmark runs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, Float64Array, Int8Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::compute::{filter_record_batch, kernels::cmp};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

pub const STATUSES: [&str; 6] = [
    "new",
    "paid",
    "shipped",
    "delivered",
    "cancelled",
    "returned",
];
const STATUS_CUMULATIVE: [f64; 6] = [0.10, 0.30, 0.55, 0.90, 0.95, 1.0];

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("qty", DataType::Int32, true),
        Field::new("updated_at", DataType::Int64, true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// The number of rows of the initial state (`REELDB_BENCH_ROWS`, default 1,000,000).
pub fn rows() -> usize {
    std::env::var("REELDB_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

pub fn peer_data() -> Option<PathBuf> {
    std::env::var_os("REELDB_PEER_DATA")
        .map(PathBuf::from)
        .filter(|p| p.join("initial.arrow").exists())
}

pub fn read_ipc(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    arrow::ipc::reader::FileReader::try_new(f, None)
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The generator's view of one row.
#[derive(Clone, Debug)]
pub struct Row {
    pub customer_id: i64,
    pub status: u8,
    pub region: u8,
    pub amount: f64,
    pub qty: i32,
    pub updated_at: i64,
    pub note: String,
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE_TS: i64 = 1_700_000_000_000;
const HOUR_MS: i64 = 3_600_000;

pub fn new_row(rng: &mut Rng, version: i64, customers: u64) -> Row {
    let u = rng.unit();
    let status = STATUS_CUMULATIVE.iter().position(|&c| u < c).unwrap_or(5) as u8;
    let len = 20 + rng.below(9) as usize;
    let note: String = (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect();
    // log-normal(3.5, 1.0) via Box-Muller, rounded to cents
    let (a, b) = (rng.unit().max(1e-12), rng.unit());
    let normal = (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos();
    Row {
        customer_id: rng.below(customers) as i64,
        status,
        region: rng.below(20) as u8,
        amount: ((3.5 + normal).exp() * 100.0).round() / 100.0,
        qty: 1 + rng.below(20) as i32,
        updated_at: BASE_TS + version * HOUR_MS + rng.below(HOUR_MS as u64) as i64,
        note,
    }
}

pub fn batch(ids: &[i64], rows: &[&Row]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.customer_id),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| STATUSES[r.status as usize]),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| format!("r{}", r.region)),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.amount),
            )),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.qty))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.updated_at),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.note.as_str()),
            )),
        ],
    )
    .unwrap()
}

/// Where a version's changes fall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// Anywhere in the key space.
    Uniform,
    /// Within fixed hot key ranges that cover 5% of the keys (ten ranges of 0.5%). Inserts
    /// refill keys deleted from the hot ranges first (so they stay populated), and take new
    /// ids at the top of the key space, as the peer workload's do, when there are none.
    Hot,
    /// Within the newest 5% of the keys (a range sliding up as inserts append new ids above
    /// it): where an event-sourced state's live entities are.
    Recent,
}

/// The state and its change stream.
pub struct Workload {
    pub state: std::collections::BTreeMap<i64, Row>,
    rng: Rng,
    next_id: i64,
    version: i64,
    customers: u64,
    hot: Vec<(i64, i64)>,
    /// Keys deleted from the hot ranges, for inserts to reuse.
    holes: Vec<i64>,
}

/// One version's changes: rows to upsert (sorted by id) and ids to delete.
pub struct Change {
    pub upserts: RecordBatch,
    pub deletes: RecordBatch,
}

impl Workload {
    pub fn new(n: usize, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let customers = (n as u64 / 10).max(1);
        let state = (0..n as i64)
            .map(|i| (i, new_row(&mut rng, 0, customers)))
            .collect();
        let hot = (0..10)
            .map(|k| {
                let start = (n as i64) * (k * 10 + 3) / 100;
                (start, start + (n as i64) / 200)
            })
            .collect();
        Workload {
            state,
            rng,
            next_id: n as i64,
            version: 0,
            customers,
            hot,
            holes: Vec::new(),
        }
    }

    pub fn initial(&self) -> RecordBatch {
        let ids: Vec<i64> = self.state.keys().copied().collect();
        let rows: Vec<&Row> = self.state.values().collect();
        batch(&ids, &rows)
    }

    fn pick(&mut self, spread: Spread, taken: &std::collections::BTreeSet<i64>) -> i64 {
        loop {
            let id = match spread {
                Spread::Uniform => self.rng.below(self.next_id as u64) as i64,
                Spread::Hot => {
                    let (lo, hi) = self.hot[self.rng.below(self.hot.len() as u64) as usize];
                    lo + self.rng.below((hi - lo) as u64) as i64
                }
                Spread::Recent => {
                    let width = (self.hot.len() as i64 * (self.hot[0].1 - self.hot[0].0)).max(1);
                    self.next_id - 1 - self.rng.below(width as u64) as i64
                }
            };
            if self.state.contains_key(&id) && !taken.contains(&id) {
                return id;
            }
        }
    }

    /// The next version's changes (1% updates, 0.2% inserts, 0.1% deletes), applied to the
    /// generator's state.
    pub fn step(&mut self, spread: Spread) -> Change {
        self.version += 1;
        let live = self.state.len();
        let (n_upd, n_ins, n_del) = (live / 100, live / 500, live / 1000);
        let mut taken = std::collections::BTreeSet::new();
        let mut deleted = Vec::new();
        for _ in 0..n_upd {
            let id = self.pick(spread, &taken);
            taken.insert(id);
            let v = self.version;
            let factor = 0.5 + self.rng.unit();
            let status = {
                let u = self.rng.unit();
                STATUS_CUMULATIVE.iter().position(|&c| u < c).unwrap_or(5) as u8
            };
            let ts = BASE_TS + v * HOUR_MS + self.rng.below(HOUR_MS as u64) as i64;
            let r = self.state.get_mut(&id).unwrap();
            r.status = status;
            r.amount = (r.amount * factor * 100.0).round() / 100.0;
            r.updated_at = ts;
        }
        for _ in 0..n_del {
            let id = self.pick(spread, &taken);
            taken.insert(id);
            deleted.push(id);
        }
        for id in &deleted {
            self.state.remove(id);
        }
        for _ in 0..n_ins {
            // Only keys deleted by earlier versions are reused: one operation per key.
            let id = if spread == Spread::Hot && !self.holes.is_empty() {
                let at = self.rng.below(self.holes.len() as u64) as usize;
                self.holes.swap_remove(at)
            } else {
                self.next_id += 1;
                self.next_id - 1
            };
            let row = new_row(&mut self.rng, self.version, self.customers);
            self.state.insert(id, row);
            taken.insert(id);
        }
        if spread == Spread::Hot {
            self.holes.extend(&deleted);
        }
        let up_ids: Vec<i64> = taken
            .iter()
            .copied()
            .filter(|i| self.state.contains_key(i))
            .collect();
        let rows: Vec<&Row> = up_ids.iter().map(|i| &self.state[i]).collect();
        deleted.sort_unstable();
        Change {
            upserts: batch(&up_ids, &rows),
            deletes: ids_batch(&deleted),
        }
    }
}

pub fn ids_batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap()
}

/// Splits a peer-bench change file into upserts (without `_op`) and delete ids.
pub fn split_peer_change(batches: &[RecordBatch]) -> Change {
    let all = arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap();
    let op = all.column(0).as_any().downcast_ref::<Int8Array>().unwrap();
    let is_delete = cmp::eq(op, &Int8Array::new_scalar(2)).unwrap();
    let keep = arrow::compute::not(&is_delete).unwrap();
    let ups = filter_record_batch(&all, &keep).unwrap();
    let ups = RecordBatch::try_new(schema(), ups.columns()[1..].to_vec()).unwrap();
    let dels = filter_record_batch(&all, &is_delete).unwrap();
    let del_ids = dels
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    Change {
        upserts: ups,
        deletes: ids_batch(&del_ids),
    }
}

/// Q1 of the peer bench: count and sum(amount) grouped by status, over batches holding the
/// `status` and `amount` columns (by name).
pub fn q1(batches: &[RecordBatch]) -> HashMap<String, (u64, f64)> {
    let mut out: HashMap<String, (u64, f64)> = HashMap::new();
    for b in batches {
        q1_into(b, &mut out);
    }
    out
}

pub fn q1_into(b: &RecordBatch, out: &mut HashMap<String, (u64, f64)>) {
    let s = b
        .column_by_name("status")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let a = b
        .column_by_name("amount")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    // A small open-addressed table keyed by the string bytes would be faster; a linear probe
    // over the few distinct statuses is what a real engine's dictionary path does.
    let mut keys: Vec<(&str, u64, f64)> = Vec::with_capacity(8);
    for i in 0..b.num_rows() {
        if s.is_null(i) {
            continue;
        }
        let k = s.value(i);
        let v = if a.is_null(i) { 0.0 } else { a.value(i) };
        match keys.iter_mut().find(|e| e.0 == k) {
            Some(e) => {
                e.1 += 1;
                e.2 += v;
            }
            None => keys.push((k, 1, v)),
        }
    }
    for (k, n, v) in keys {
        let e = out.entry(k.to_string()).or_default();
        e.0 += n;
        e.1 += v;
    }
}

/// Merges per-thread Q1 partials.
pub fn merge(parts: Vec<HashMap<String, (u64, f64)>>) -> HashMap<String, (u64, f64)> {
    let mut out: HashMap<String, (u64, f64)> = HashMap::new();
    for p in parts {
        for (k, (n, v)) in p {
            let e = out.entry(k).or_default();
            e.0 += n;
            e.1 += v;
        }
    }
    out
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// Median of a slice of seconds.
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Decodes the named columns of an Arrow IPC file without copying their buffers: the file is
/// memory-mapped (through ReelDB's storage layer, which owns the one memmap call) and the
/// batches point into the map.
pub fn ipc_mmap_batches(path: &Path, columns: &[&str]) -> Vec<RecordBatch> {
    use arrow::buffer::Buffer;
    use arrow::ipc::convert::fb_to_schema;
    use arrow::ipc::reader::{FileDecoder, read_footer_length};
    use arrow::ipc::root_as_footer;
    use reeldb::storage::{LocalStorage, Storage};
    let storage = LocalStorage::new(path.parent().unwrap());
    let bytes = storage.map(Path::new(path.file_name().unwrap())).unwrap();
    let buffer = Buffer::from(bytes);
    let trailer_start = buffer.len() - 10;
    let footer_len = read_footer_length(buffer[trailer_start..].try_into().unwrap()).unwrap();
    let footer = root_as_footer(&buffer[trailer_start - footer_len..trailer_start]).unwrap();
    let schema = fb_to_schema(footer.schema().unwrap());
    let projection = columns
        .iter()
        .map(|c| schema.index_of(c).unwrap())
        .collect();
    let mut decoder =
        FileDecoder::new(Arc::new(schema), footer.version()).with_projection(projection);
    for block in footer.dictionaries().iter().flatten() {
        let len = block.bodyLength() as usize + block.metaDataLength() as usize;
        let data = buffer.slice_with_length(block.offset() as usize, len);
        decoder.read_dictionary(block, &data).unwrap();
    }
    footer
        .recordBatches()
        .map(|bs| {
            bs.iter()
                .map(|block| {
                    let len = block.bodyLength() as usize + block.metaDataLength() as usize;
                    let data = buffer.slice_with_length(block.offset() as usize, len);
                    decoder.read_record_batch(block, &data).unwrap().unwrap()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `batch` as an Arrow IPC file in chunks of `chunk` rows.
pub fn write_ipc(path: &Path, batch: &RecordBatch, chunk: usize) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = arrow::ipc::writer::FileWriter::try_new(f, &batch.schema()).unwrap();
    let mut at = 0;
    while at < batch.num_rows() {
        let n = chunk.min(batch.num_rows() - at);
        w.write(&batch.slice(at, n)).unwrap();
        at += n;
    }
    w.finish().unwrap();
}

/// The in-memory state as leaf-sized slices (no copy), for a parallel in-memory scan.
pub fn slices(batch: &RecordBatch, chunk: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(chunk)
        .map(|at| batch.slice(at, chunk.min(batch.num_rows() - at)))
        .collect()
}

/// 1,000 keys of `state` (its first column, `id`) in a fixed random order, for point gets.
pub fn probe_keys(state: &RecordBatch) -> Vec<i64> {
    let ids = state
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let mut rng = Rng(7);
    (0..1000)
        .map(|_| ids.value(rng.below(ids.len() as u64) as usize))
        .collect()
}

/// Gets every key of `probes` from `table`; returns how many were found.
pub fn get_all(table: &reeldb::Table, probes: &[i64]) -> usize {
    probes
        .iter()
        .filter(|&&k| table.get(k).unwrap().is_some())
        .count()
}

/// Median seconds of `reps` runs of `f`, after one warm-up run.
pub fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f());
    let mut xs: Vec<f64> = (0..reps)
        .map(|_| {
            let t = std::time::Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut xs)
}

/// Q1 over table `t` of `store` at `version`, by a parallel scan of its two columns.
pub fn q1_store(store: &reeldb::Store, version: u64) -> HashMap<String, (u64, f64)> {
    use rayon::prelude::*;
    let t = store.snapshot(version).unwrap().table("t").unwrap();
    merge(
        t.par_scan(&reeldb::ScanOptions::new().columns(&["status", "amount"]))
            .unwrap()
            .map(|b| q1(&[b.unwrap()]))
            .collect(),
    )
}

/// Q1 over in-memory batches, one rayon task per batch.
pub fn q1_par(batches: &[RecordBatch]) -> HashMap<String, (u64, f64)> {
    use rayon::prelude::*;
    merge(
        batches
            .par_iter()
            .map(|b| q1(std::slice::from_ref(b)))
            .collect(),
    )
}

/// Bytes of `rows` as one zstd Parquet file (the peers' baseline).
pub fn parquet_bytes(schema: &SchemaRef, rows: &RecordBatch) -> u64 {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).unwrap();
    w.write(rows).unwrap();
    w.close().unwrap();
    out.len() as u64
}
