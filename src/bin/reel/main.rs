//! `reel`: the ReelDB command line. Every command exits 0 on success; on failure it prints one
//! line, `error: ...`, to stderr and exits 1 (2 for bad usage).
//!
//! This file holds the command-line definitions and the dispatch; each command's work lives in
//! the module of its job.

mod commit;
mod demo;
mod files;
mod maintain;
mod output;
mod read;
mod schema;
#[cfg(feature = "sql")]
mod sql;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use output::RowFormat;
use reeldb::{Error, Snapshot, Store};

/// ReelDB: an embedded store of versioned analytical state.
#[derive(Debug, Parser)]
#[command(name = "reel", version, about)]
struct Cli {
    /// A local directory caching what is read from an s3:// store (created if missing;
    /// processes naming the same one share it).
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// The cache's bound in bytes [default: 1 GiB].
    #[arg(long, global = true, value_name = "BYTES", requires = "cache_dir")]
    cache_size: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

/// The storage options the command line gave (`--cache-dir`, `--cache-size`).
static STORAGE_OPTIONS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Opens the store at `location` with the command line's storage options.
fn open_store(location: &std::path::Path) -> Result<Store, Error> {
    Store::open_url(location, STORAGE_OPTIONS.get().map_or(&[], |o| o))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an empty store.
    Init {
        /// Store directory, or s3://, gs:// or az:// URL (created; must be empty if it exists).
        store: PathBuf,
    },
    /// Create a table (commits a new version and prints its number).
    Create {
        /// Store directory, or s3://, gs:// or az:// URL.
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
    /// Commit one version: any mix of upserts, deletes, patches and replaces; prints the version.
    Commit(commit::CommitArgs),
    /// Change a table's columns (add, drop, rename, widen) in one version; prints it.
    /// Earlier versions keep reading their own schema; no data is rewritten.
    Alter(schema::AlterArgs),
    /// Drop a table in a new version (earlier versions still read it); prints the version.
    Drop {
        /// Store directory, or s3://, gs:// or az:// URL.
        store: PathBuf,
        /// Table name.
        table: String,
    },
    /// Rename a table in a new version (earlier versions read the old name); prints it.
    Rename {
        /// Store directory, or s3://, gs:// or az:// URL.
        store: PathBuf,
        /// The table's name.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Print a table's columns (name, type, nullability) and key at a version.
    Schema {
        /// Store directory, or s3://, gs:// or az:// URL.
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
        /// Store directory, or s3://, gs:// or az:// URL.
        store: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: InfoFormat,
    },
    /// List the tables at a version with their row counts and keys.
    Tables {
        /// Store directory, or s3://, gs:// or az:// URL.
        store: PathBuf,
        #[command(flatten)]
        at: At,
    },
    /// Scan a table at a version.
    Scan(read::ScanArgs),
    /// Print the row with a key (exit 1 when absent).
    Get {
        /// Store directory, or s3://, gs:// or az:// URL.
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
        /// Store directory, or s3://, gs:// or az:// URL.
        store: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: InfoFormat,
    },
    /// Read and check everything the versions reference; name the newest intact version.
    /// Exits with status 2 when damage is found.
    Verify {
        /// Store directory, or s3://, gs:// or az:// URL.
        store: PathBuf,
        /// Check only this version (default: every version).
        #[arg(long)]
        version: Option<u64>,
    },
    /// Retire old versions: they keep their numbers but can no longer be opened.
    Expire {
        /// Store directory, or s3://, gs:// or az:// URL.
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
        /// On an object store: how long files no longer needed stay readable before a run
        /// deletes them, for readers that opened versions earlier (e.g. 1h, 30m, 0s).
        #[arg(long, default_value = "1h")]
        retention: String,
    },
    /// Rewrite every closed generation as B-frames, thin keyframes, and clean the packs.
    Compact {
        /// Store directory, or s3://, gs:// or az:// URL.
        store: PathBuf,
        /// Keep one full keyframe per this many versions (0: keep every keyframe). Without
        /// it, keyframes are thinned while a thinned version reads at most as many residual
        /// rows as its keyframe has (see ARCHITECTURE.md, "Keyframe thinning").
        #[arg(long)]
        keyframe_every: Option<u64>,
        /// On an object store: how long files no longer needed stay readable before a run
        /// deletes them, for readers that opened versions earlier (e.g. 1h, 30m, 0s).
        #[arg(long, default_value = "1h")]
        retention: String,
    },
    /// Purge every version above a known-good one, so the store can be refilled from the
    /// event stream starting at the source offset that version recorded.
    Rewind {
        /// Store directory, or s3://, gs:// or az:// URL.
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
    /// Copy a store at its latest version into another location (local or s3://, gs://,
    /// az://), copying only what the copy lacks: run again to bring a copy up to date, or to
    /// finish one that was interrupted. `--cache-dir` caches what is read from SRC.
    Sync {
        /// The store copied: directory, or s3://, gs:// or az:// URL.
        src: PathBuf,
        /// Where the copy is (created if missing; must be empty or an earlier copy of SRC).
        dst: PathBuf,
        /// Then verify the versions copied (exit status 2 on damage).
        #[arg(long)]
        verify: bool,
        /// When DST is on an object store: how long files DST no longer needs (SRC's
        /// maintenance deleted them) stay readable after a sync retires them, before a
        /// later sync deletes them (e.g. 1h, 30m, 0s).
        #[arg(long, default_value = "1h")]
        retention: String,
    },
    /// Write a table at a version to a file: Parquet, Arrow IPC, CSV or NDJSON by extension.
    Export {
        /// Store directory, or s3://, gs:// or az:// URL.
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
        /// Store directory, or s3://, gs:// or az:// URL.
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

/// How `reel versions`, `reel stats` and `reel schema` print: a text table or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InfoFormat {
    Table,
    Json,
}

fn main() {
    let cli = Cli::parse();
    let mut options = Vec::new();
    if let Some(dir) = &cli.cache_dir {
        options.push(("cache_dir".to_string(), dir.display().to_string()));
    }
    if let Some(size) = cli.cache_size {
        options.push(("cache_size".to_string(), size.to_string()));
    }
    let _ = STORAGE_OPTIONS.set(options);
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Runs one command, writing what it reports to standard output.
fn run(cli: Cli) -> Result<(), Error> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Init { store } => {
            Store::create_url(&store, STORAGE_OPTIONS.get().map_or(&[], |o| o))?;
            say(&mut out, format_args!("created store {}", store.display()))
        }
        Command::Create {
            store,
            table,
            key,
            schema_from,
        } => commit::create(&mut out, &store, &table, &key, &schema_from),
        Command::Commit(args) => commit::commit(&mut out, args),
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
        Command::Versions { store, format } => {
            read::versions(&mut out, &open_store(&store)?, format)
        }
        Command::Tables { store, at } => read::tables(&mut out, &store, &at),
        Command::Scan(args) => read::scan(&mut out, args),
        Command::Get {
            store,
            table,
            key,
            at,
            format,
        } => read::get(&mut out, &store, &table, &key, &at, format),
        Command::Stats { store, format } => read::stats(&mut out, &open_store(&store)?, format),
        Command::Demo(args) => demo::run(&mut out, args),
        Command::Export {
            store,
            table,
            at,
            output,
        } => read::export(&mut out, &store, &table, &at, &output),
        Command::Import {
            store,
            table,
            file,
            key,
        } => commit::import(&mut out, &open_store(&store)?, &table, &file, &key),
        #[cfg(feature = "sql")]
        Command::Sql(args) => sql::run(&mut out, args),
        Command::Verify { store, version } => {
            maintain::verify(&mut out, &open_store(&store)?, version)
        }
        Command::Compact {
            store,
            keyframe_every,
            retention,
        } => maintain::compact(&mut out, &open_store(&store)?, keyframe_every, &retention),
        Command::Expire {
            store,
            keep_last,
            before,
            older_than,
            keep_meta,
            retention,
        } => maintain::expire(
            &mut out,
            &store,
            (keep_last, before, older_than.as_deref()),
            &keep_meta,
            &retention,
        ),
        Command::Rewind {
            store,
            to,
            to_last_good,
        } => maintain::rewind(&mut out, &open_store(&store)?, to, to_last_good),
        Command::Sync {
            src,
            dst,
            verify,
            retention,
        } => maintain::sync(&mut out, &open_store(&src)?, &dst, verify, &retention),
    }
}

/// Writes one line of a command's report.
fn say(out: &mut dyn Write, args: std::fmt::Arguments<'_>) -> Result<(), Error> {
    writeln!(out, "{args}").map_err(output::write_error)
}

/// The version `at` names (by number, time or source offset), or the latest.
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
