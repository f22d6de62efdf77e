//! `reel sql`: one query, or an interactive shell (line editing, history, statements over
//! several lines ended by `;`, and the commands `.tables`, `.versions`, `.schema T`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use reeldb::sql::SqlSession;
use reeldb::{Error, Store};

use crate::output::{self, RowFormat};

/// Arguments of `reel sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Store directory, or s3://, gs:// or az:// URL.
    store: PathBuf,
    /// The query (without one, an interactive shell starts).
    query: Option<String>,
    /// The version tables without a `VERSION AS OF` clause are read at (default: latest).
    #[arg(long)]
    version: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: RowFormat,
    /// Write the result to this file instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
}

const HELP: &str = "\
Statements end with ';' and may span lines. Tables read the session's version unless a
query says otherwise: SELECT ... FROM t VERSION AS OF 12, or TIMESTAMP AS OF '2026-01-01'.
  reel_changes('t', from, to)   rows of t that differ between two versions
  reel_history('t', key...)     every version at which one row changed
  .tables        tables at the session's version
  .versions      the store's versions
  .schema T      columns and key of table T
  .help          this text
  .quit          leave (or Ctrl-D)";

/// Runs `reel sql`.
pub fn run(out: &mut dyn Write, args: SqlArgs) -> Result<(), Error> {
    let store = crate::open_store(&args.store)?;
    let session = SqlSession::open(&store, args.version)?;
    match &args.query {
        Some(q) => {
            let (schema, batches) = session.query_with_schema(q)?;
            output::write_rows_to(out, args.output.as_deref(), &schema, &batches, args.format)
        }
        None => shell(out, &store, &session, args.format),
    }
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".reel_history"))
}

fn say(out: &mut dyn Write, text: impl std::fmt::Display) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(output::write_error)
}

fn shell(
    out: &mut dyn Write,
    store: &Store,
    session: &SqlSession,
    format: RowFormat,
) -> Result<(), Error> {
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|e| Error::InvalidArgument(format!("cannot start the shell: {e}")))?;
    let history = history_file();
    if let Some(h) = &history {
        // A missing history file is the first session's normal state.
        let _ = editor.load_history(h);
    }
    say(
        out,
        format_args!(
            "reel sql: {} at version {} (.help for help)",
            store.path().display(),
            session.version()
        ),
    )?;
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "reel> "
        } else {
            "  ... "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(Error::InvalidArgument(format!("reading input: {e}"))),
        };
        let trimmed = line.trim();
        if pending.is_empty() && trimmed.starts_with('.') {
            let _ = editor.add_history_entry(trimmed);
            match command(out, store, session, trimmed) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => say(out, format_args!("error: {e}"))?,
            }
            continue;
        }
        if trimmed.is_empty() && pending.is_empty() {
            continue;
        }
        pending.push_str(&line);
        pending.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let statement = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(statement.trim());
        let query = statement.trim().trim_end_matches(';');
        match session.query_with_schema(query) {
            Ok((schema, batches)) => {
                output::write_rows(out, &schema, &batches, format)?;
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                say(out, format_args!("({rows} rows)"))?;
            }
            Err(e) => say(out, format_args!("error: {e}"))?,
        }
    }
    if let Some(h) = &history {
        // Losing the history is not worth failing the session over.
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// Runs a dot command; true to leave the shell.
fn command(
    out: &mut dyn Write,
    store: &Store,
    session: &SqlSession,
    line: &str,
) -> Result<bool, Error> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let snapshot = store.snapshot(session.version())?;
    match name {
        ".quit" | ".exit" => return Ok(true),
        ".help" => say(out, HELP)?,
        ".tables" => {
            for name in snapshot.table_names() {
                let t = snapshot.table(&name)?;
                say(out, format_args!("{name}\t{} rows", t.num_rows()))?;
            }
        }
        ".versions" => {
            for v in store.versions()? {
                say(
                    out,
                    format_args!(
                        "{}\t{}\t{}",
                        v.version,
                        v.kind.as_str(),
                        v.committed_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                )?;
            }
        }
        ".schema" => {
            let table = words
                .next()
                .ok_or_else(|| Error::InvalidArgument(".schema takes a table name".into()))?;
            let t = snapshot.table(table)?;
            for f in t.schema().fields() {
                let key = if t.key_columns().contains(f.name()) {
                    "  (key)"
                } else {
                    ""
                };
                let null = if f.is_nullable() { "" } else { " not null" };
                say(
                    out,
                    format_args!("{}\t{}{null}{key}", f.name(), f.data_type()),
                )?;
            }
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown command {other} (.help lists them)"
            )));
        }
    }
    Ok(false)
}
