//! Catalog bytes: an index entry, a version record or a table definition (whose schema and
//! layout are then built), as the first byte picks: an error or a value, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reeldb::catalog::index::IndexEntry;
use reeldb::catalog::version::{TableDef, VersionRecord, decode};

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let _ = IndexEntry::decode(bytes, 1);
        }
        1 => {
            let _ = decode::<VersionRecord>(bytes, "fuzz", 0);
        }
        _ => {
            if let Ok(def) = decode::<TableDef>(bytes, "fuzz", 0) {
                let _ = def.schema(0);
                let _ = def.layout(0);
            }
        }
    }
});
