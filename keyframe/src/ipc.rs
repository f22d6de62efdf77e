//! Arrow IPC decoding that cannot take the process down. arrow-ipc 59 panics on some
//! messages its flatbuffer verifier accepts (a schema without fields, an unknown type tag:
//! apache/arrow-rs#10437 and #10575, fixed upstream by #10647 after the arrow release that
//! datafusion 55 builds on). Bytes read from disk pass checksums first, so only damage that
//! slips past them, or a hostile file, gets here; every IPC decode of stored bytes still goes
//! through [`guarded`], which turns such a panic into an error. arrow-ipc also allocates a
//! message's declared lengths before reading it, so [`check_stream`] bounds them by the bytes
//! there are before a reader sees them.

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

/// Checks the framing of the IPC stream `bytes` before a reader sees it: every message's
/// metadata decodes as a verified flatbuffer, and no message declares more metadata or body
/// than `bytes` holds. arrow's readers allocate declared lengths up front, so a damaged
/// length would otherwise ask for gigabytes (or abort the process on an impossible size).
pub fn check_stream(bytes: &[u8]) -> Result<(), String> {
    let word = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut at = 0;
    while at < bytes.len() {
        let (meta_len, meta_at) = match word(at) {
            Some(u32::MAX) => (word(at + 4), at + 8),
            first => (first, at + 4),
        };
        let meta_len = meta_len.ok_or("IPC stream ends inside a message header")? as usize;
        if meta_len == 0 {
            return Ok(()); // the end-of-stream marker
        }
        let left = bytes.len().saturating_sub(meta_at);
        if meta_len > left {
            return Err(format!(
                "IPC message at byte {at} declares {meta_len} bytes of metadata, {left} remain"
            ));
        }
        let message = arrow::ipc::root_as_message(&bytes[meta_at..meta_at + meta_len])
            .map_err(|e| format!("IPC message at byte {at}: {e}"))?;
        let body = usize::try_from(message.bodyLength()).unwrap_or(usize::MAX);
        if body > left - meta_len {
            return Err(format!(
                "IPC message at byte {at} declares a body of {} bytes, {} remain",
                message.bodyLength(),
                left - meta_len
            ));
        }
        at = meta_at + meta_len + body;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_declaring_more_metadata_than_there_is_is_refused() {
        let mut bytes = vec![0xFF, 0xFF, 0xFF, 0xFF];
        bytes.extend_from_slice(&0x7E00_0138u32.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 300]);
        assert!(check_stream(&bytes).is_err());
        assert!(check_stream(&bytes[..6]).is_err());
        assert!(check_stream(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]).is_ok());
    }

    #[test]
    fn a_panic_inside_the_guard_becomes_an_error() {
        let r: Result<(), String> = guarded(|| panic!("malformed"));
        assert!(r.is_err());
        assert!(!inside_guard());
    }
}
