//! `Maintenance::expire`: retiring old versions. An expired version keeps its number (versions stay
//! dense) but can no longer be opened (`Error::Expired`) nor rewound to; its entry in
//! versions.idx carries an expired flag, set by one atomic replacement of the index. The
//! latest version is never expired, and versions whose metadata has a key the caller names
//! (tags such as `release` or `checkpoint`) are kept. Log cleaning (`Maintenance::clean`) then
//! reclaims the space only expired versions used. It runs beside a writer like the rest of
//! maintenance: the replacement is made under the catalog lock from the index as it is then.

use std::time::Duration;

use crate::catalog::commit::CatalogWriter;
use crate::catalog::index::header_with;
use crate::error::Result;
use crate::maintenance::Maintenance;

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

impl Maintenance {
    /// Expires the versions `expiry` selects, except the latest and any whose metadata holds
    /// one of the keys in `keep_meta`. Returns the versions it expired (not those already
    /// expired). A reader that already holds an expired version keeps reading it. Versions a
    /// writer commits meanwhile are not selected.
    pub fn expire(&mut self, expiry: Expiry, keep_meta: &[&str]) -> Result<Vec<u64>> {
        let store = self.store().clone();
        let index = store.index();
        let latest = store.latest_version()?;
        let now = chrono::Utc::now().timestamp_micros();
        let mut expired = Vec::new();
        for e in index.entries(latest)? {
            let v = e.version;
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
            if selected
                && !store
                    .read_record(&e)?
                    .meta
                    .iter()
                    .any(|(k, _)| keep_meta.contains(&k.as_str()))
            {
                expired.push(v);
            }
        }
        if expired.is_empty() {
            return Ok(expired);
        }
        // The commit point, under the catalog lock: one atomic, durable replacement of the
        // index as it now is (with any versions committed since), the selected flags set.
        let storage = store.inner.storage.clone();
        let mut catalog = CatalogWriter::take(&storage)?;
        let now_latest = catalog.head().map_or(0, |e| e.version);
        let mut bytes = header_with(index.rewinds()?);
        let mut selected = expired.iter().peekable();
        for mut e in index.entries(now_latest)? {
            if selected.next_if_eq(&&e.version).is_some() {
                e.expired = true;
            }
            bytes.extend_from_slice(&e.encode());
        }
        catalog.replace_index(&[], &bytes)?;
        Ok(expired)
    }
}
