//! Arrow IPC decoding that cannot take the process down. arrow-ipc 59 panics on some
//! messages its flatbuffer verifier accepts (a schema without fields, an unknown type tag:
//! apache/arrow-rs#10437 and #10575, fixed upstream by #10647 after the arrow release that
//! datafusion 55 builds on). Bytes read from disk pass checksums first, so only damage that
//! slips past them, or a hostile file, gets here; every IPC decode of stored bytes still goes
//! through [`guarded`], which turns such a panic into an error.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static GUARDING: Cell<bool> = const { Cell::new(false) };
}

/// Runs the IPC decode `decode`; a panic inside it becomes an `Err` describing the bytes as
/// malformed. (With `panic = "abort"` the guard cannot help: ReelDB builds with unwinding.)
pub fn guarded<T>(decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let outer = GUARDING.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|_| {
        Err("malformed Arrow IPC message (the decoder panicked on it)".to_string())
    });
    GUARDING.with(|g| g.set(outer));
    result
}

/// True while this thread runs inside [`guarded`]: for panic hooks that otherwise abort on
/// any panic (a fuzzer's), so they let the guard catch this one.
pub fn inside_guard() -> bool {
    GUARDING.with(Cell::get)
}
