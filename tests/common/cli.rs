//! Running the `reel` binary from the CLI tests: a command's output, success or its one-line
//! error, and a seeded store to run commands on.
//!
//! The binary's path is read with `option_env!` because this module is also compiled into
//! the fuzz crate (`fuzz/src/lib.rs` includes `tests/common`), which has no `reel` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use super::orders;

/// The `reel` binary Cargo built for this test.
// Never called in the fuzz crate, where the variable is unset (see the module documentation).
#[allow(clippy::option_env_unwrap)]
fn reel_binary() -> &'static str {
    option_env!("CARGO_BIN_EXE_reel").expect("the reel binary is built for integration tests")
}

/// Runs `reel` with `args` and returns what it did.
pub fn reel(args: &[&str]) -> Output {
    Command::new(reel_binary()).args(args).output().unwrap()
}

/// Runs `reel` with `args`, which must succeed, and returns its standard output.
pub fn ok(args: &[&str]) -> String {
    let out = reel(args);
    assert!(
        out.status.success(),
        "reel {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `reel` with `args`, which must fail with exit status 1 and a one-line `error: ...`,
/// and returns that line.
pub fn fails(args: &[&str]) -> String {
    let out = reel(args);
    assert_eq!(out.status.code(), Some(1), "reel {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one-line error expected: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Writes `batch` to `path` as an Arrow IPC file.
pub fn write_arrow(path: &Path, batch: &arrow::array::RecordBatch) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = arrow::ipc::writer::FileWriter::try_new(f, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
}

/// A store at `dir/s` with an `orders` table (version 1) holding `ids` (version 2); returns
/// the store path and the Arrow file the rows came from.
pub fn seeded(dir: &Path, ids: &[i64]) -> (String, std::path::PathBuf) {
    let s = dir.join("s").to_str().unwrap().to_string();
    let first = dir.join("first.arrow");
    write_arrow(&first, &orders(ids, 0));
    ok(&["init", &s]);
    let schema_from = first.to_str().unwrap();
    assert_eq!(
        ok(&[
            "create",
            &s,
            "orders",
            "--key",
            "id",
            "--schema-from",
            schema_from
        ]),
        "1\n"
    );
    assert_eq!(
        ok(&[
            "commit",
            &s,
            "--upsert",
            &format!("orders={}", first.display())
        ]),
        "2\n"
    );
    (s, first)
}
