//! `reel`: the ReelDB command line. Every command exits 0 on success; on failure it prints one
//! line, `error: ...`, to stderr and exits 1 (2 for bad usage).

mod demo;
mod files;
mod output;
mod schema;
#[cfg(feature = "sql")]
mod sql;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use output::RowFormat;
use reeldb::{
    Error, Expiry, Filter, Key, MaintenancePlan, MaintenanceReport, ScanOptions, Snapshot, Store,
    Value, WriterOptions,
};

/// ReelDB: an embedded store of versioned analytical state.
#[derive(Debug, Parser)]
#[command(name = "reel", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an empty store.
    Init {
        /// Store directory (created; must be empty if it exists).
        store: PathBuf,
    },
    /// Create a table (commits a new version and prints its number).
    Create {
        /// Store directory.
        store: PathBuf,
        /// Table name.
        table: String,
        /// Primary-key columns, comma-separated, in key order.
        #[arg(long, value_delimiter = ',', required = true)]
        key: Vec<String>,
        /// A file whose schema the table takes (.arrow, .parquet, .csv, .ndjson/.jsonl).
        #[arg(long)]
        schema_from: PathBuf,
    },
    /// Commit one version: any mix of upserts, deletes and replaces; prints the version.
    Commit(CommitArgs),
    /// Change a table's columns (add, drop, rename, widen) in one version; prints it.
    /// Earlier versions keep reading their own schema; no data is rewritten.
    Alter(schema::AlterArgs),
    /// Drop a table in a new version (earlier versions still read it); prints the version.
    Drop {
        /// Store directory.
        store: PathBuf,
        /// Table name.
        table: String,
    },
    /// Rename a table in a new version (earlier versions read the old name); prints it.
    Rename {
        /// Store directory.
        store: PathBuf,
        /// The table's name.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Print a table's columns (name, type, nullability) and key at a version.
    Schema {
        /// Store directory.
        store: PathBuf,
        /// Table name.
        table: String,
        #[command(flatten)]
        at: At,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: InfoFormat,
    },
    /// List versions.
    Versions {
        /// Store directory.
        store: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: InfoFormat,
    },
    /// List the tables at a version with their row counts and keys.
    Tables {
        /// Store directory.
        store: PathBuf,
        #[command(flatten)]
        at: At,
    },
    /// Scan a table at a version.
    Scan(ScanArgs),
    /// Print the row with a key (exit 1 when absent).
    Get {
        /// Store directory.
        store: PathBuf,
        /// Table name.
        table: String,
        /// One value per key column, comma-separated, in key order.
        key: String,
        #[command(flatten)]
        at: At,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: RowFormat,
    },
    /// Sizes on disk, logical bytes and block sharing.
    Stats {
        /// Store directory.
        store: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: InfoFormat,
    },
    /// Read and check everything the versions reference; name the newest intact version.
    /// Exits with status 2 when damage is found.
    Verify {
        /// Store directory.
        store: PathBuf,
        /// Check only this version (default: every version).
        #[arg(long)]
        version: Option<u64>,
    },
    /// Retire old versions: they keep their numbers but can no longer be opened.
    Expire {
        /// Store directory.
        store: PathBuf,
        /// Keep only the newest N versions.
        #[arg(long, group = "which")]
        keep_last: Option<u64>,
        /// Expire every version below this one.
        #[arg(long, group = "which")]
        before: Option<u64>,
        /// Expire every version older than this (e.g. 30d, 12h, 90m, 45s).
        #[arg(long, group = "which")]
        older_than: Option<String>,
        /// Keep versions whose metadata has this key (repeatable).
        #[arg(long)]
        keep_meta: Vec<String>,
    },
    /// Rewrite every closed generation as B-frames, thin keyframes, and clean the packs.
    Compact {
        /// Store directory.
        store: PathBuf,
        /// Keep one full keyframe per this many versions (0: keep every keyframe).
        #[arg(long, default_value_t = 0)]
        keyframe_every: u64,
    },
    /// Purge every version above a known-good one, so the store can be refilled from the
    /// event stream starting at the source offset that version recorded.
    Rewind {
        /// Store directory.
        store: PathBuf,
        /// The version to keep as the latest.
        #[arg(
            long,
            required_unless_present = "to_last_good",
            conflicts_with = "to_last_good"
        )]
        to: Option<u64>,
        /// Verify every version first and rewind to the newest intact one.
        #[arg(long)]
        to_last_good: bool,
    },
    /// Write a table at a version to a file: Parquet, Arrow IPC, CSV or NDJSON by extension.
    Export {
        /// Store directory.
        store: PathBuf,
        /// Table name.
        table: String,
        #[command(flatten)]
        at: At,
        /// The file to write (.parquet, .arrow, .csv, .ndjson/.jsonl); replaced whole.
        #[arg(long)]
        output: PathBuf,
    },
    /// Load a file as a table's whole new state in one version (creating the table, with the
    /// file's schema, when it does not exist); prints the version.
    Import {
        /// Store directory.
        store: PathBuf,
        /// Table name.
        table: String,
        /// The file to read (.parquet, .arrow, .csv, .ndjson/.jsonl).
        file: PathBuf,
        /// Primary-key columns, comma-separated, when the table is created.
        #[arg(long, value_delimiter = ',')]
        key: Vec<String>,
    },
    /// Run SQL (Apache DataFusion) over a version: one query, or an interactive shell.
    #[cfg(feature = "sql")]
    Sql(sql::SqlArgs),
    /// Run the demo: a reducer folds a synthetic order/account event stream into state
    /// tables, committing a version per batch, then queries the past.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Args)]
struct CommitArgs {
    /// Store directory.
    store: PathBuf,
    /// TABLE=FILE: rows to insert or overwrite.
    #[arg(long)]
    upsert: Vec<String>,
    /// TABLE=FILE: keys (the key columns) of rows to delete.
    #[arg(long)]
    delete: Vec<String>,
    /// TABLE=FILE: the table's whole new state.
    #[arg(long)]
    replace: Vec<String>,
    /// KEY=VALUE metadata (repeatable).
    #[arg(long)]
    meta: Vec<String>,
    /// The source-stream position this version reflects (must grow).
    #[arg(long)]
    source_offset: Option<u64>,
    /// Skip fsync: faster, for rebuilds from the event stream; a crash may lose recent versions.
    #[arg(long)]
    no_sync: bool,
    /// Write every changed table as a new keyframe instead of an overlay.
    #[arg(long)]
    keyframe: bool,
    /// Add the columns an --upsert or --replace file has and its table lacks (nullable, the
    /// file's type) in this version, instead of refusing the file.
    #[arg(long)]
    evolve: bool,
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// Store directory.
    store: PathBuf,
    /// Table name.
    table: String,
    #[command(flatten)]
    at: At,
    /// Columns to return, comma-separated.
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// A filter: 'col OP value' (OP: = < <= > >=), 'col between A and B' or 'col in (A, B)'.
    #[arg(long = "where")]
    filter: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: RowFormat,
    /// Write to this file instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Which version to read (the latest when none is given).
#[derive(Debug, Args)]
#[group(multiple = false)]
struct At {
    /// Version number.
    #[arg(long)]
    version: Option<u64>,
    /// The last version committed at or before this time: RFC 3339, a date and time
    /// without a zone (UTC), or a date (midnight UTC), as SQL and Python take it.
    #[arg(long)]
    as_of: Option<String>,
    /// The last version at or before this source offset.
    #[arg(long)]
    at_offset: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InfoFormat {
    Table,
    Json,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Init { store } => {
            Store::create(&store)?;
            say(&mut out, format_args!("created store {}", store.display()))
        }
        Command::Create {
            store,
            table,
            key,
            schema_from,
        } => {
            let store = Store::open(&store)?;
            let schema = files::infer_schema(&schema_from)?;
            let mut w = store.writer()?;
            let mut tx = w.begin();
            let keys: Vec<&str> = key.iter().map(String::as_str).collect();
            tx.create_table(&table, schema, &keys)?;
            let v = tx.commit()?;
            say(&mut out, format_args!("{v}"))
        }
        Command::Commit(args) => commit(&mut out, args),
        Command::Alter(args) => schema::alter(&mut out, args),
        Command::Drop { store, table } => {
            schema::lifecycle(&mut out, &store, |tx| tx.drop_table(&table).map(drop))
        }
        Command::Rename { store, from, to } => {
            schema::lifecycle(&mut out, &store, |tx| tx.rename_table(&from, &to).map(drop))
        }
        Command::Schema {
            store,
            table,
            at,
            format,
        } => schema::schema(&mut out, &store, &table, &at, format),
        Command::Versions { store, format } => versions(&mut out, &Store::open(&store)?, format),
        Command::Tables { store, at } => {
            let snap = open_at(&Store::open(&store)?, &at)?;
            for name in snap.table_names() {
                let t = snap.table(&name)?;
                say(
                    &mut out,
                    format_args!(
                        "{name}\t{} rows\tkey ({})",
                        t.num_rows(),
                        t.key_columns().join(", ")
                    ),
                )?;
            }
            Ok(())
        }
        Command::Scan(args) => scan(&mut out, args),
        Command::Get {
            store,
            table,
            key,
            at,
            format,
        } => {
            let snap = open_at(&Store::open(&store)?, &at)?;
            let t = snap.table(&table)?;
            let key = Key(key
                .split(',')
                .map(|v| Value::Str(v.trim().to_string()))
                .collect());
            match t.get(key.clone())? {
                Some(row) => output::write_rows(&mut out, &row.schema(), &[row], format),
                None => Err(Error::InvalidArgument(format!(
                    "no row with key {key} in {table} at version {}",
                    snap.version()
                ))),
            }
        }
        Command::Stats { store, format } => stats(&mut out, &Store::open(&store)?, format),
        Command::Demo(args) => demo::run(&mut out, args),
        Command::Export {
            store,
            table,
            at,
            output,
        } => {
            let snap = open_at(&Store::open(&store)?, &at)?;
            let t = snap.table(&table)?;
            let scan = t.scan(
                &ScanOptions::new()
                    .in_key_order()
                    .in_parallel()
                    .in_batches_of(reeldb::DEFAULT_BATCH_ROWS),
            )?;
            let rows = files::write_file(&output, &t.schema(), scan)?;
            say(
                &mut out,
                format_args!(
                    "{rows} rows of {table} at version {} written to {}",
                    snap.version(),
                    output.display()
                ),
            )
        }
        Command::Import {
            store,
            table,
            file,
            key,
        } => import(&mut out, &Store::open(&store)?, &table, &file, &key),
        #[cfg(feature = "sql")]
        Command::Sql(args) => sql::run(&mut out, args),
        Command::Verify { store, version } => verify(&mut out, &Store::open(&store)?, version),
        Command::Compact {
            store,
            keyframe_every,
        } => compact(&mut out, &Store::open(&store)?, keyframe_every),
        Command::Expire {
            store,
            keep_last,
            before,
            older_than,
            keep_meta,
        } => {
            let expiry = match (keep_last, before, older_than) {
                (Some(n), None, None) => Expiry::KeepLast(n),
                (None, Some(v), None) => Expiry::Before(v),
                (None, None, Some(d)) => Expiry::OlderThan(parse_duration(&d)?),
                _ => {
                    return Err(Error::InvalidArgument(
                        "give one of --keep-last, --before or --older-than".into(),
                    ));
                }
            };
            let store = Store::open(&store)?;
            let keep: Vec<&str> = keep_meta.iter().map(String::as_str).collect();
            let expired = store.maintenance()?.expire(expiry, &keep)?;
            say(
                &mut out,
                format_args!(
                    "{} versions expired{}",
                    expired.len(),
                    match (expired.first(), expired.last()) {
                        (Some(a), Some(b)) => format!(" (v{a} to v{b})"),
                        _ => String::new(),
                    }
                ),
            )
        }
        Command::Rewind {
            store,
            to,
            to_last_good,
        } => rewind(&mut out, &Store::open(&store)?, to, to_last_good),
    }
}

/// A duration such as `30d`, `12h`, `90m` or `45s`.
fn parse_duration(text: &str) -> Result<std::time::Duration, Error> {
    let bad = || {
        Error::InvalidArgument(format!(
            "bad duration {text:?} (use e.g. 30d, 12h, 90m, 45s)"
        ))
    };
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.trim().parse().map_err(|_| bad())?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    Ok(std::time::Duration::from_secs(
        n.checked_mul(seconds).ok_or_else(bad)?,
    ))
}

fn compact(out: &mut dyn Write, store: &Store, keyframe_every: u64) -> Result<(), Error> {
    let before = store.stats()?.bytes_on_disk;
    let plan = MaintenancePlan {
        keyframe_every: (keyframe_every > 0).then_some(keyframe_every),
        ..MaintenancePlan::default()
    };
    let pb = output::bar(0, "compact");
    let MaintenanceReport {
        compaction: report,
        thinning,
        cleaning,
    } = store.maintenance()?.run(&plan, &mut |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    let after = store.stats()?.bytes_on_disk;
    say(
        out,
        format_args!(
            "{} generations ({} versions) rewritten as B-frames, {} residual rows",
            report.generations, report.versions, report.residual_rows
        ),
    )?;
    if report.mixed_schema_generations > 0 {
        say(
            out,
            format_args!(
                "{} generations left as overlays: a table's schema changed within them",
                report.mixed_schema_generations
            ),
        )?;
    }
    say(
        out,
        format_args!(
            "{} node logs deleted ({}), {} kept for live readers",
            report.node_logs_removed,
            human(report.bytes_reclaimed),
            report.node_logs_held
        ),
    )?;
    if let Some(t) = thinning {
        say(
            out,
            format_args!(
                "{} keyframes thinned ({} versions now read a later keyframe, {} residual rows)",
                t.keyframes, t.versions, t.residual_rows
            ),
        )?;
    }
    if cleaning.writer_open {
        say(
            out,
            format_args!(
                "log cleaning skipped: a writer is open (its next commit may reuse any pack); {} of {} in packs is live",
                human(cleaning.live_bytes),
                human(cleaning.bytes_before)
            ),
        )?;
    } else if cleaning.copied {
        say(
            out,
            format_args!(
                "log cleaning: {} of live records copied into new packs ({} before); {} old packs deleted, {} kept for live readers",
                human(cleaning.bytes_after),
                human(cleaning.bytes_before),
                cleaning.packs_deleted,
                cleaning.packs_held
            ),
        )?;
    } else {
        say(
            out,
            format_args!(
                "log cleaning skipped: {} of {} in packs is live",
                human(cleaning.live_bytes),
                human(cleaning.bytes_before)
            ),
        )?;
    }
    say(
        out,
        format_args!("bytes on disk: {} -> {}", human(before), human(after)),
    )
}

fn rewind(
    out: &mut dyn Write,
    store: &Store,
    to: Option<u64>,
    to_last_good: bool,
) -> Result<(), Error> {
    let to = match to {
        Some(v) => v,
        None => {
            debug_assert!(to_last_good, "clap requires --to or --to-last-good");
            let latest = store.latest_version()?;
            if latest == 0 {
                return say(out, format_args!("no versions: nothing to rewind"));
            }
            let pb = output::bar(latest, "verify");
            let report = store.verify(1..=latest, &mut |_| pb.inc(1))?;
            pb.finish_and_clear();
            report.newest_intact.ok_or_else(|| {
                Error::InvalidArgument("no version is intact: nothing to rewind to".into())
            })?
        }
    };
    let r = store.rewind(to)?;
    say(
        out,
        format_args!(
            "rewound to v{}: {} versions purged; the next commit is v{}",
            r.to,
            r.purged,
            r.to + 1
        ),
    )?;
    match r.source_offset {
        Some(o) => say(out, format_args!("refill from source offset {o}")),
        None => say(
            out,
            format_args!("no source offset recorded: refill from the start"),
        ),
    }
}

fn verify(out: &mut dyn Write, store: &Store, version: Option<u64>) -> Result<(), Error> {
    let latest = store.latest_version()?;
    let versions = match version {
        Some(v) => v..=v,
        None => 1..=latest,
    };
    if latest == 0 && version.is_none() {
        if let Some((first, last)) = store.lost_versions()? {
            say(
                out,
                format_args!(
                    "versions {first} to {last} were committed, but the index lost every entry \
                     (records.log holds their records); `reel rewind --to 0` accepts the loss"
                ),
            )?;
            out.flush().map_err(output::write_error)?;
            std::process::exit(2);
        }
        return say(out, format_args!("no versions to verify"));
    }
    let pb = output::bar(versions.end() - versions.start() + 1, "verify");
    let report = store.verify(versions, &mut |_| pb.inc(1))?;
    pb.finish_and_clear();
    for check in &report.versions {
        if let Some(problem) = &check.problem {
            say(out, format_args!("v{}: {problem}", check.version))?;
        }
    }
    let damaged = report
        .versions
        .iter()
        .filter(|c| c.problem.is_some())
        .count();
    say(
        out,
        format_args!(
            "{} versions checked, {damaged} damaged, {} distinct leaves read",
            report.versions.len(),
            report.leaves_checked
        ),
    )?;
    if let Some((first, last)) = report.lost_versions {
        say(
            out,
            format_args!(
                "versions {first} to {last} were committed, but their index entries are lost \
                 (records.log holds their records); `reel rewind --to {}` accepts the loss",
                first - 1
            ),
        )?;
    }
    if let Some(tail) = &report.ignored_index_tail {
        say(
            out,
            format_args!(
                "note: the index ends in an entry reads ignore (an unfinished commit, or damage \
                 nothing on disk tells from one): {tail}"
            ),
        )?;
    }
    match report.newest_intact {
        Some(v) => say(out, format_args!("newest intact version: {v}"))?,
        None => say(out, format_args!("no intact version"))?,
    }
    if damaged > 0 || report.lost_versions.is_some() {
        out.flush().map_err(output::write_error)?;
        // Damage is an outcome of the check, not a failure to run it: its own exit status.
        std::process::exit(2);
    }
    Ok(())
}

fn say(out: &mut dyn Write, args: std::fmt::Arguments<'_>) -> Result<(), Error> {
    writeln!(out, "{args}").map_err(output::write_error)
}

fn open_at(store: &Store, at: &At) -> Result<Snapshot, Error> {
    if let Some(v) = at.version {
        return store.snapshot(v);
    }
    if let Some(t) = &at.as_of {
        let time = reeldb::parse_timestamp(t)?;
        return store.snapshot_as_of(time);
    }
    if let Some(o) = at.at_offset {
        return store.snapshot_at_offset(o);
    }
    store.latest()
}

fn split_pair<'a>(arg: &'a str, flag: &str) -> Result<(&'a str, &'a str), Error> {
    arg.split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| Error::InvalidArgument(format!("--{flag} {arg:?}: expected NAME=VALUE")))
}

fn commit(out: &mut dyn Write, args: CommitArgs) -> Result<(), Error> {
    let store = Store::open(&args.store)?;
    let mut w = store.writer_with(WriterOptions::default().sync(!args.no_sync))?;
    let latest = store.latest().ok();
    // Each table's schema as this commit leaves it (--evolve adds columns).
    let mut schemas: BTreeMap<String, arrow::datatypes::SchemaRef> = BTreeMap::new();
    let mut tx = w.begin();
    let mut schema_of = |tx: &mut reeldb::Transaction<'_>,
                         table: &str,
                         file: &str|
     -> Result<arrow::datatypes::SchemaRef, Error> {
        let current = match schemas.get(table) {
            Some(s) => s.clone(),
            None => {
                let snap = latest.as_ref().ok_or_else(|| Error::UnknownTable {
                    table: table.to_string(),
                    version: 0,
                })?;
                snap.table(table)?.schema()
            }
        };
        let extra = schema::extra_columns(Path::new(file), &current)?;
        if extra.is_empty() {
            return Ok(current);
        }
        if !args.evolve {
            return Err(schema::unknown_columns(&args.store, table, file, &extra));
        }
        let mut fields: Vec<arrow::datatypes::Field> = current
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for f in extra {
            tx.add_column(table, f.clone(), None)?;
            fields.push(f);
        }
        let evolved = std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
            fields,
            current.metadata().clone(),
        ));
        schemas.insert(table.to_string(), evolved.clone());
        Ok(evolved)
    };
    // Every file's schema first: --evolve adds columns before any rows are written, and each
    // file is read with its table's final schema (columns it lacks read as nulls).
    let mut schema_at = BTreeMap::new();
    for a in args.upsert.iter().chain(&args.replace) {
        let (table, file) = split_pair(a, "upsert or replace")?;
        schema_at.insert(table.to_string(), schema_of(&mut tx, table, file)?);
    }
    for a in &args.upsert {
        let (table, file) = split_pair(a, "upsert")?;
        for b in files::read_as(Path::new(file), &schema_at[table])? {
            tx.upsert(table, b)?;
        }
    }
    for a in &args.delete {
        let (table, file) = split_pair(a, "delete")?;
        let t = latest
            .as_ref()
            .ok_or_else(|| Error::UnknownTable {
                table: table.to_string(),
                version: 0,
            })?
            .table(table)?;
        let schema = t.schema();
        let key_idx: Vec<usize> = t
            .key_columns()
            .iter()
            .map(|k| schema.index_of(k))
            .collect::<Result<_, _>>()?;
        let key_schema = std::sync::Arc::new(schema.project(&key_idx)?);
        for b in files::read_as(Path::new(file), &key_schema)? {
            tx.delete(table, b)?;
        }
    }
    for a in &args.replace {
        let (table, file) = split_pair(a, "replace")?;
        let batches = files::read_as(Path::new(file), &schema_at[table])?;
        tx.replace(table, batches)?;
    }
    for m in &args.meta {
        let (k, v) = split_pair(m, "meta")?;
        tx.meta(k, v);
    }
    if let Some(o) = args.source_offset {
        tx.source_offset(o);
    }
    if args.keyframe {
        tx.keyframe();
    }
    let v = tx.commit()?;
    say(out, format_args!("{v}"))
}

fn import(
    out: &mut dyn Write,
    store: &Store,
    table: &str,
    file: &Path,
    key: &[String],
) -> Result<(), Error> {
    let existing = match store.latest() {
        Ok(snap) => match snap.table(table) {
            Ok(t) => Some(t.schema()),
            Err(Error::UnknownTable { .. }) => None,
            Err(e) => return Err(e),
        },
        Err(Error::Empty) => None,
        Err(e) => return Err(e),
    };
    let mut w = store.writer()?;
    let mut tx = w.begin();
    let schema = match existing {
        Some(schema) => {
            if !key.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "table {table} exists: its key cannot be set again"
                )));
            }
            schema
        }
        None => {
            if key.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "table {table} does not exist: give its key columns with --key to create it"
                )));
            }
            let inferred = files::infer_schema(file)?;
            // Key columns cannot hold nulls; the file's schema may not say so.
            let fields: Vec<arrow::datatypes::Field> = inferred
                .fields()
                .iter()
                .map(|f| {
                    let nullable = f.is_nullable() && !key.contains(f.name());
                    f.as_ref().clone().with_nullable(nullable)
                })
                .collect();
            let schema = std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
                fields,
                inferred.metadata().clone(),
            ));
            let keys: Vec<&str> = key.iter().map(String::as_str).collect();
            tx.create_table(table, schema.clone(), &keys)?;
            schema
        }
    };
    let batches = files::read_as(file, &schema)?;
    tx.replace(table, batches)?;
    let v = tx.commit()?;
    say(out, format_args!("{v}"))
}

fn versions(out: &mut dyn Write, store: &Store, format: InfoFormat) -> Result<(), Error> {
    let infos = store.versions()?;
    match format {
        InfoFormat::Json => {
            let list: Vec<serde_json::Value> = infos
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "version": i.version,
                        "kind": i.kind.as_str(),
                        "committed_at": i.committed_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        "source_offset": i.source_offset,
                        "meta": i.meta,
                    })
                })
                .collect();
            say(out, format_args!("{}", serde_json::Value::Array(list)))
        }
        InfoFormat::Table => {
            say(
                out,
                format_args!(
                    "{:>8}  {:<9} {:<27} {:>13}  meta",
                    "version", "kind", "committed_at", "source_offset"
                ),
            )?;
            for i in &infos {
                let meta: Vec<String> = i.meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
                say(
                    out,
                    format_args!(
                        "{:>8}  {:<9} {:<27} {:>13}  {}",
                        i.version,
                        i.kind.as_str(),
                        i.committed_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        i.source_offset.map_or("-".to_string(), |o| o.to_string()),
                        meta.join(" ")
                    ),
                )?;
            }
            Ok(())
        }
    }
}

fn scan(out: &mut dyn Write, args: ScanArgs) -> Result<(), Error> {
    let store = Store::open(&args.store)?;
    let snap = open_at(&store, &args.at)?;
    let t = snap.table(&args.table)?;
    let mut opts = ScanOptions::new()
        .in_key_order()
        .in_parallel()
        .in_batches_of(reeldb::DEFAULT_BATCH_ROWS);
    if let Some(cols) = &args.columns {
        opts = opts.columns(cols);
    }
    if let Some(f) = &args.filter {
        opts = opts.filter(Filter::parse(f)?);
    }
    let schema = t.scan_schema(&opts)?;
    let batches: Vec<_> = t.scan(&opts)?.collect::<Result<_, _>>()?;
    output::write_rows_to(out, args.output.as_deref(), &schema, &batches, args.format)
}

fn stats(out: &mut dyn Write, store: &Store, format: InfoFormat) -> Result<(), Error> {
    let s = store.stats()?;
    match format {
        InfoFormat::Json => {
            let v = serde_json::json!({
                "versions": s.versions,
                "bytes_on_disk": s.bytes_on_disk,
                "logical_bytes": s.logical_bytes,
                "blocks_stored": s.blocks_stored,
                "blocks_referenced": s.blocks_referenced,
                "sharing_ratio": s.sharing_ratio,
                "row_batch_bytes": s.row_batch_bytes,
                "residual_bytes": s.residual_bytes,
                "bitmap_bytes": s.bitmap_bytes,
                "residual_rows": s.residual_rows,
                "node_log_bytes": s.node_log_bytes,
                "latest_rows": s.latest_rows,
                "column_space": s.column_space.iter().map(|c| serde_json::json!({
                    "table": c.table,
                    "column": c.column,
                    "encoding": c.encoding,
                    "blocks": c.blocks,
                    "bytes": c.bytes,
                })).collect::<Vec<_>>(),
            });
            say(out, format_args!("{v}"))
        }
        InfoFormat::Table => {
            let rows: BTreeMap<&str, String> = BTreeMap::from([
                ("versions", s.versions.to_string()),
                ("bytes_on_disk", human(s.bytes_on_disk)),
                ("logical_bytes", human(s.logical_bytes)),
                ("blocks_stored", s.blocks_stored.to_string()),
                ("blocks_referenced", s.blocks_referenced.to_string()),
                ("sharing_ratio", format!("{:.1}x", s.sharing_ratio)),
            ]);
            for k in [
                "versions",
                "bytes_on_disk",
                "logical_bytes",
                "blocks_stored",
                "blocks_referenced",
                "sharing_ratio",
            ] {
                say(out, format_args!("{k:<18} {}", rows[k]))?;
            }
            for (t, n) in &s.latest_rows {
                say(
                    out,
                    format_args!(
                        "rows[{t}]{:width$} {n}",
                        "",
                        width = 12usize.saturating_sub(t.len())
                    ),
                )?;
            }
            // Where the column blocks' bytes go, each distinct block once.
            say(
                out,
                format_args!(
                    "{:<32} {:<20} {:>8} {:>12}",
                    "column", "encoding", "blocks", "bytes"
                ),
            )?;
            for c in &s.column_space {
                say(
                    out,
                    format_args!(
                        "{:<32} {:<20} {:>8} {:>12}",
                        format!("{}.{}", c.table, c.column),
                        c.encoding,
                        c.blocks,
                        human(c.bytes)
                    ),
                )?;
            }
            Ok(())
        }
    }
}

/// Bytes in B, KiB, MiB or GiB.
pub fn human(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
