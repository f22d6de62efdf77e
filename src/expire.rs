//! `Writer::expire`: retiring old versions. An expired version keeps its number (versions stay
//! dense) but can no longer be opened (`Error::Expired`) nor rewound to; its entry in
//! versions.idx carries an expired flag, set by one atomic replacement of the index. The
//! latest version is never expired, and versions whose metadata has a key the caller names
//! (tags such as `release` or `checkpoint`) are kept. Log cleaning (`Writer::clean`) then
//! reclaims the space only expired versions used.

use std::time::Duration;

use crate::catalog::index::header_with;
use crate::catalog::index_path;
use crate::error::{Error, Result};
use crate::writer::Writer;

/// Which versions an expiry selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// All but the newest `n` versions.
    KeepLast(u64),
    /// Every version below this one.
    Before(u64),
    /// Every version committed longer ago than this.
    OlderThan(Duration),
}

impl Writer {
    /// Expires the versions `expiry` selects, except the latest and any whose metadata holds
    /// one of the keys in `keep_meta`. Returns the versions it expired (not those already
    /// expired). A reader that already holds an expired version keeps reading it.
    pub fn expire(&mut self, expiry: Expiry, keep_meta: &[&str]) -> Result<Vec<u64>> {
        self.check_usable()?;
        let store = self.store().clone();
        let latest = self.version();
        let now = chrono::Utc::now().timestamp_micros();
        let index = store.index();
        let mut entries = Vec::with_capacity(latest as usize);
        let mut expired = Vec::new();
        for v in 1..=latest {
            let mut e = index.entry(v)?;
            let selected = v < latest
                && !e.expired
                && match expiry {
                    Expiry::KeepLast(n) => v + n <= latest,
                    Expiry::Before(b) => v < b,
                    Expiry::OlderThan(d) => {
                        let age = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
                        e.committed_at < now.saturating_sub(age)
                    }
                };
            if selected {
                let rec = store.read_record(&e)?;
                if !rec
                    .meta
                    .iter()
                    .any(|(k, _)| keep_meta.contains(&k.as_str()))
                {
                    e.expired = true;
                    expired.push(v);
                }
            }
            entries.push(e);
        }
        if expired.is_empty() {
            return Ok(expired);
        }
        let mut bytes = header_with(index.rewinds()?);
        for e in &entries {
            bytes.extend_from_slice(&e.encode());
        }
        // The commit point: one atomic, durable replacement of the index.
        let storage = store.inner.storage.clone();
        let written = storage.write_atomic(&index_path(), &bytes);
        // Whether or not the replacement took, the writer follows the index as it now is
        // (its append handle may point at the file the rename replaced).
        if let Err(e) = written.map_err(Error::from).and_then(|()| self.reload()) {
            return self.recover(e);
        }
        Ok(expired)
    }
}
