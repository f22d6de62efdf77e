//! Checking one overlay version's bitmaps: every delta decodes, no delta shadows an ordinal
//! the keyframe lacks or one an earlier delta shadowed, and no delta retires a row the
//! batches lack or one an earlier delta retired. (That no key shows two rows is checked
//! against the batches' keys by the `reeldb` crate, which can decode them.)

use roaring::{RoaringBitmap, RoaringTreemap};

use crate::error::{Error, Result};
use crate::log::{NodeLog, NodeRef};
use crate::version::{OverlayVersion, VersionDelta};

/// The shape of the data an overlay version refers to, for [`verify`].
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Rows of all the version's row batches together.
    pub batch_rows: u32,
    /// Rows of the generation's keyframe.
    pub keyframe_rows: u64,
}

/// Verifies the version whose deltas are at `deltas` (see the module docs) and returns its
/// bitmaps.
pub fn verify(log: &NodeLog, deltas: &[NodeRef], bounds: Bounds) -> Result<OverlayVersion> {
    let wrong = |r: NodeRef, reason: String| Error::Corrupt {
        path: log.path().to_path_buf(),
        offset: r.offset,
        reason,
    };
    let mut read = Vec::with_capacity(deltas.len());
    let (mut shadowed, mut retired) = (RoaringTreemap::new(), RoaringBitmap::new());
    for &r in deltas {
        let d = VersionDelta::load(log, r)?;
        if let Some(max) = d.shadowed.max()
            && max >= bounds.keyframe_rows
        {
            return Err(wrong(
                r,
                format!(
                    "delta shadows ordinal {max} of a {}-row keyframe",
                    bounds.keyframe_rows
                ),
            ));
        }
        if let Some(max) = d.retired.max()
            && max >= bounds.batch_rows
        {
            return Err(wrong(
                r,
                format!(
                    "delta retires row {max} of {} overlay rows",
                    bounds.batch_rows
                ),
            ));
        }
        if !shadowed.is_disjoint(&d.shadowed) {
            return Err(wrong(r, "delta shadows an ordinal again".into()));
        }
        if !retired.is_disjoint(&d.retired) {
            return Err(wrong(r, "delta retires a row again".into()));
        }
        shadowed |= &d.shadowed;
        retired |= &d.retired;
        read.push(d);
    }
    Ok(OverlayVersion::fold(&read, bounds.batch_rows))
}
