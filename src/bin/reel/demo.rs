//! `reel demo`: a reducer folds a synthetic order/account event stream into two state tables,
//! committing one version per batch of events (with the stream offset it reached), then asks
//! questions of the past: totals at old versions, one order's history, where to resume.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use clap::Args;
use reeldb::{Error, Filter, ScanOptions, Snapshot, Store, WriterOptions};

use crate::{human, say};

/// Options of `reel demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo store (must not exist or be empty; default: a new directory
    /// under the system's temporary directory, kept so you can explore it with `reel`).
    dir: Option<PathBuf>,
    /// Orders placed before the first version.
    #[arg(long, default_value_t = 200_000)]
    orders: u64,
    /// Batches of events to fold, one version each.
    #[arg(long, default_value_t = 40)]
    batches: u64,
    /// Events per batch.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
}

/// SplitMix64: a small deterministic generator, so every run folds the same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const STATUSES: [&str; 5] = ["placed", "paid", "shipped", "delivered", "cancelled"];
const REGIONS: [&str; 8] = [
    "north", "south", "east", "west", "central", "coast", "hills", "islands",
];

#[derive(Debug, Clone)]
struct Order {
    account: i64,
    status: usize,
    amount: f64,
    region: usize,
    updated: i64,
}

#[derive(Debug, Clone)]
struct Account {
    balance: f64,
    orders: i64,
    updated: i64,
}

/// The state a reducer keeps, and what the current batch touched.
struct Reducer {
    rng: Rng,
    orders: BTreeMap<i64, Order>,
    accounts: BTreeMap<i64, Account>,
    next_order: i64,
    offset: u64,
    touched_orders: BTreeSet<i64>,
    archived: BTreeSet<i64>,
    touched_accounts: BTreeSet<i64>,
}

impl Reducer {
    fn new(accounts: i64) -> Self {
        let mut r = Reducer {
            rng: Rng(42),
            orders: BTreeMap::new(),
            accounts: BTreeMap::new(),
            next_order: 1,
            offset: 0,
            touched_orders: BTreeSet::new(),
            archived: BTreeSet::new(),
            touched_accounts: BTreeSet::new(),
        };
        for a in 0..accounts {
            r.accounts.insert(
                a,
                Account {
                    balance: 0.0,
                    orders: 0,
                    updated: 0,
                },
            );
            r.touched_accounts.insert(a);
        }
        r
    }

    /// One event: mostly lifecycle steps of recent orders, some new orders and deposits, and
    /// now and then the archiving (deletion) of an old finished order.
    fn event(&mut self, place_only: bool) {
        self.offset += 1;
        let now = self.offset as i64;
        let roll = if place_only { 0 } else { self.rng.below(100) };
        match roll {
            0..=24 => {
                let id = self.next_order;
                self.next_order += 1;
                let account = self.rng.below(self.accounts.len() as u64) as i64;
                let amount = (self.rng.below(50_000) as f64) / 100.0 + 1.0;
                let region = self.rng.below(REGIONS.len() as u64) as usize;
                self.orders.insert(
                    id,
                    Order {
                        account,
                        status: 0,
                        amount,
                        region,
                        updated: now,
                    },
                );
                self.touched_orders.insert(id);
                if let Some(a) = self.accounts.get_mut(&account) {
                    a.balance -= amount;
                    a.orders += 1;
                    a.updated = now;
                    self.touched_accounts.insert(account);
                }
            }
            25..=89 => {
                // Advance a recent order: lifecycles happen near the head of the stream.
                let window = 40_000.min(self.next_order - 1).max(1) as u64;
                let id = self.next_order - 1 - self.rng.below(window) as i64;
                if let Some(o) = self.orders.get_mut(&id)
                    && o.status < 3
                {
                    o.status = if self.rng.below(20) == 0 {
                        4
                    } else {
                        o.status + 1
                    };
                    o.updated = now;
                    self.touched_orders.insert(id);
                }
            }
            90..=97 => {
                let account = self.rng.below(self.accounts.len() as u64) as i64;
                if let Some(a) = self.accounts.get_mut(&account) {
                    a.balance += (self.rng.below(100_000) as f64) / 100.0;
                    a.updated = now;
                    self.touched_accounts.insert(account);
                }
            }
            _ => {
                let id = 1 + self.rng.below(self.next_order as u64 / 2 + 1) as i64;
                if self.orders.get(&id).is_some_and(|o| o.status >= 3) {
                    self.orders.remove(&id);
                    self.touched_orders.remove(&id);
                    self.archived.insert(id);
                }
            }
        }
    }

    fn take_changes(&mut self) -> (RecordBatch, RecordBatch, RecordBatch) {
        let ids: Vec<i64> = std::mem::take(&mut self.touched_orders)
            .into_iter()
            .collect();
        let rows: Vec<&Order> = ids.iter().map(|i| &self.orders[i]).collect();
        let orders = RecordBatch::try_new(
            orders_schema(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|o| o.account))),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|o| STATUSES[o.status]),
                )),
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|o| o.amount),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|o| REGIONS[o.region]),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|o| o.updated))),
            ],
        );
        let gone: Vec<i64> = std::mem::take(&mut self.archived).into_iter().collect();
        let deletes = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "order_id",
                DataType::Int64,
                false,
            )])),
            vec![Arc::new(Int64Array::from(gone))],
        );
        let acc_ids: Vec<i64> = std::mem::take(&mut self.touched_accounts)
            .into_iter()
            .collect();
        let accs: Vec<&Account> = acc_ids.iter().map(|i| &self.accounts[i]).collect();
        let accounts = RecordBatch::try_new(
            accounts_schema(),
            vec![
                Arc::new(Int64Array::from(acc_ids.clone())),
                Arc::new(Float64Array::from_iter_values(
                    accs.iter().map(|a| a.balance),
                )),
                Arc::new(Int64Array::from_iter_values(accs.iter().map(|a| a.orders))),
                Arc::new(Int64Array::from_iter_values(accs.iter().map(|a| a.updated))),
            ],
        );
        // The schemas above are built to match the columns, so these cannot fail.
        match (orders, deletes, accounts) {
            (Ok(o), Ok(d), Ok(a)) => (o, d, a),
            _ => unreachable!("demo batches match their schemas"),
        }
    }
}

fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("account_id", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("updated_at", DataType::Int64, false),
    ]))
}

fn accounts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Int64, false),
        Field::new("balance", DataType::Float64, false),
        Field::new("orders", DataType::Int64, false),
        Field::new("updated_at", DataType::Int64, false),
    ]))
}

/// Count and total amount per status, by a parallel scan of two columns.
fn by_status(snap: &Snapshot) -> Result<BTreeMap<String, (u64, f64)>, Error> {
    use rayon::prelude::*;
    let t = snap.table("orders")?;
    let parts: Vec<BTreeMap<String, (u64, f64)>> = t
        .par_scan(&ScanOptions::new().columns(&["status", "amount"]))?
        .map(|b| {
            let b = b?;
            let mut m: BTreeMap<String, (u64, f64)> = BTreeMap::new();
            let s = b.column(0).as_any().downcast_ref::<StringArray>();
            let a = b.column(1).as_any().downcast_ref::<Float64Array>();
            if let (Some(s), Some(a)) = (s, a) {
                for i in 0..b.num_rows() {
                    let e = m.entry(s.value(i).to_string()).or_default();
                    e.0 += 1;
                    e.1 += a.value(i);
                }
            }
            Ok(m)
        })
        .collect::<Result<_, Error>>()?;
    let mut total = BTreeMap::new();
    for p in parts {
        for (k, (n, s)) in p {
            let e: &mut (u64, f64) = total.entry(k).or_default();
            e.0 += n;
            e.1 += s;
        }
    }
    Ok(total)
}

/// Runs the demo, printing to `out`.
pub fn run(out: &mut dyn Write, args: DemoArgs) -> Result<(), Error> {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("reeldb-demo-{}", std::process::id())),
    };
    let store = Store::create(&dir)?;
    say(
        out,
        format_args!(
            "ReelDB demo: folding an order/account event stream into {}",
            dir.display()
        ),
    )?;
    let mut writer = store.writer_with(WriterOptions::default())?;
    let mut reducer = Reducer::new((args.orders / 10).max(1) as i64);

    // Version 1: the tables and the state after the opening burst of orders.
    let started = Instant::now();
    let pb = crate::output::bar(args.orders, "orders");
    for i in 0..args.orders {
        reducer.event(true);
        if i % 10_000 == 0 {
            pb.set_position(i);
        }
    }
    pb.finish_and_clear();
    let (orders, _, accounts) = reducer.take_changes();
    let mut tx = writer.begin();
    tx.create_table("orders", orders_schema(), &["order_id"])?;
    tx.create_table("accounts", accounts_schema(), &["account_id"])?;
    tx.upsert("orders", orders)?;
    tx.upsert("accounts", accounts)?;
    tx.source_offset(reducer.offset).meta("batch", "0");
    tx.commit()?;

    // One version per batch of events.
    let pb = crate::output::bar(args.batches, "batches");
    let mut commit_times = Vec::new();
    for b in 1..=args.batches {
        for _ in 0..args.events {
            reducer.event(false);
        }
        let (orders, deletes, accounts) = reducer.take_changes();
        let t0 = Instant::now();
        let mut tx = writer.begin();
        tx.upsert("orders", orders)?;
        tx.delete("orders", deletes)?;
        tx.upsert("accounts", accounts)?;
        tx.source_offset(reducer.offset)
            .meta("batch", &b.to_string());
        tx.commit()?;
        commit_times.push(t0.elapsed().as_secs_f64());
        pb.inc(1);
    }
    pb.finish_and_clear();
    drop(writer);
    commit_times.sort_by(f64::total_cmp);
    let median = commit_times
        .get(commit_times.len() / 2)
        .copied()
        .unwrap_or(0.0);
    let latest = store.latest()?;
    say(
        out,
        format_args!(
            "folded {} events into {} versions in {:.1} s (median commit {:.1} ms); {} orders and {} accounts now",
            reducer.offset,
            latest.version(),
            started.elapsed().as_secs_f64(),
            median * 1e3,
            latest.table("orders")?.num_rows(),
            latest.table("accounts")?.num_rows(),
        ),
    )?;

    // Time travel: the same question at three versions.
    say(
        out,
        format_args!("\norders by status (count, total amount) at three versions:"),
    )?;
    let picks = [1, latest.version().div_ceil(2), latest.version()];
    let tallies: Vec<BTreeMap<String, (u64, f64)>> = picks
        .iter()
        .map(|&v| by_status(&store.snapshot(v)?))
        .collect::<Result<_, _>>()?;
    say(
        out,
        format_args!(
            "{:<10} {}",
            "status",
            picks.map(|v| format!("{:>24}", format!("v{v}"))).join("")
        ),
    )?;
    for s in STATUSES {
        let cells: Vec<String> = tallies
            .iter()
            .map(|t| {
                let (n, a) = t.get(s).copied().unwrap_or_default();
                format!("{:>24}", format!("{n} / {a:.2}"))
            })
            .collect();
        say(out, format_args!("{s:<10} {}", cells.join("")))?;
    }

    // One order's history: its status at every version where it changed.
    let probe = (args.orders as i64) + 1;
    say(out, format_args!("\nhistory of order {probe}:"))?;
    let mut last = String::new();
    for v in 1..=latest.version() {
        let row = store.snapshot(v)?.table("orders")?.get(probe)?;
        let now = match row {
            Some(r) => r
                .column(2)
                .as_any()
                .downcast_ref::<StringArray>()
                .map_or("?".to_string(), |s| s.value(0).to_string()),
            None => "(absent)".to_string(),
        };
        if now != last {
            say(out, format_args!("  v{v:<4} {now}"))?;
            last = now;
        }
    }

    // Where a restarted reducer resumes, and what the store held at an earlier offset.
    let resume = store.latest_source_offset()?.unwrap_or(0);
    let half = resume / 2;
    let at_half = store.snapshot_at_offset(half)?;
    say(
        out,
        format_args!(
            "\na restarted reducer resumes after event {resume}; event {half} was folded into version {} (batch {})",
            latest.version().min(at_half.version()),
            at_half
                .info()
                .meta
                .get("batch")
                .cloned()
                .unwrap_or_default()
        ),
    )?;
    let rich = Filter::gt("balance", 1_000.0);
    let count = |snap: &Snapshot| -> Result<usize, Error> {
        let t = snap.table("accounts")?;
        t.scan(
            &ScanOptions::new()
                .columns(&["account_id"])
                .filter(rich.clone()),
        )?
        .map(|b| b.map(|b| b.num_rows()))
        .sum()
    };
    say(
        out,
        format_args!(
            "accounts with balance > 1000: {} at v1, {} at v{}",
            count(&store.snapshot(1)?)?,
            count(&latest)?,
            latest.version()
        ),
    )?;

    let s = store.stats()?;
    say(
        out,
        format_args!(
            "\nstorage: {} on disk for {} versions whose full copies would take {} uncompressed ({:.1}x sharing); {} blocks stored, {} referenced",
            human(s.bytes_on_disk),
            s.versions,
            human(s.logical_bytes),
            s.sharing_ratio,
            s.blocks_stored,
            s.blocks_referenced
        ),
    )?;
    say(
        out,
        format_args!(
            "explore it: reel versions {0}; reel scan {0} orders --where 'status = cancelled' --version 2",
            dir.display()
        ),
    )
}
