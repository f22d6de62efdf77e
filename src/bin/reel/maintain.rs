//! `reel compact`, `reel expire`, `reel rewind` and `reel verify`: maintenance of a store's
//! versions and files, each reporting what it did.

use std::io::Write;
use std::path::Path;

use reeldb::{
    Error, Expiry, KeyframeThinning, MaintenancePlan, MaintenanceReport, MaintenanceStep, Store,
};

use crate::{human, output, say};

/// `reel expire`: the versions one of `keep_last`, `before` or `older_than` names retired
/// (those whose metadata has a key of `keep_meta` kept), then the catalog rewritten if enough
/// of it is dead.
pub fn expire(
    out: &mut dyn Write,
    store: &Path,
    (keep_last, before, older_than): (Option<u64>, Option<u64>, Option<&str>),
    keep_meta: &[String],
    retention: &str,
) -> Result<(), Error> {
    let retention = parse_duration(retention)?;
    let expiry = match (keep_last, before, older_than) {
        (Some(n), None, None) => Expiry::KeepLast(n),
        (None, Some(v), None) => Expiry::Before(v),
        (None, None, Some(d)) => Expiry::OlderThan(parse_duration(d)?),
        _ => {
            return Err(Error::InvalidArgument(
                "give one of --keep-last, --before or --older-than".into(),
            ));
        }
    };
    let store = crate::open_store(store)?;
    let keep: Vec<&str> = keep_meta.iter().map(String::as_str).collect();
    let mut maintenance = store.maintenance()?;
    maintenance.set_retention(retention);
    let expired = maintenance.expire(expiry, &keep)?;
    let catalog = maintenance.rewrite_catalog(reeldb::maintenance::catalog::REWRITE_AT_DEAD)?;
    say_rewrite(out, &catalog)?;
    say_reclaimed(out, &maintenance.reclaim()?)?;
    say(
        out,
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

/// `reel compact`: compaction, thinning (to one keyframe per `keyframe_every` versions when
/// given, 0: none; else the default policy) and log cleaning, as `MaintenancePlan` runs them,
/// with a progress bar per step.
pub fn compact(
    out: &mut dyn Write,
    store: &Store,
    keyframe_every: Option<u64>,
    retention: &str,
) -> Result<(), Error> {
    let retention = parse_duration(retention)?;
    let before = store.stats()?.bytes_on_disk;
    let thinning = match keyframe_every {
        None => KeyframeThinning::default(),
        Some(0) => KeyframeThinning::Off,
        Some(n) => KeyframeThinning::Every(n),
    };
    let plan = MaintenancePlan {
        thinning,
        ..MaintenancePlan::default()
    };
    let pb = output::bar(0, "compact");
    let MaintenanceReport {
        compaction: report,
        thinning,
        cleaning,
        catalog,
        reclaimed,
    } = {
        let mut maintenance = store.maintenance()?;
        maintenance.set_retention(retention);
        maintenance.run(&plan, &mut |step, done, total| {
            pb.set_message(match step {
                MaintenanceStep::Compaction => "compact",
                MaintenanceStep::Thinning => "thin",
            });
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        })?
    };
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
            "{} node logs deleted ({}), {} kept for live readers (or retired)",
            report.node_logs_removed,
            human(report.bytes_reclaimed),
            report.node_logs_held
        ),
    )?;
    if let Some(t) = thinning {
        say(
            out,
            format_args!(
                "{} keyframes thinned in {} runs ({} versions now read a later keyframe, {} residual rows)",
                t.keyframes, t.runs, t.versions, t.residual_rows
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
                "log cleaning: {} of live records copied into new packs ({} before); {} old packs deleted, {} kept for live readers (or retired)",
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
    say_rewrite(out, &catalog)?;
    say_reclaimed(out, &reclaimed)?;
    say(
        out,
        format_args!("bytes on disk: {} -> {}", human(before), human(after)),
    )
}

/// Says what deleting retired files did (on an object store; nothing to say elsewhere).
fn say_reclaimed(out: &mut dyn Write, reclaimed: &reeldb::Reclaimed) -> Result<(), Error> {
    if *reclaimed == reeldb::Reclaimed::default() {
        return Ok(());
    }
    say(
        out,
        format_args!(
            "retired files: {} deleted, {} kept until their retention passes",
            reclaimed.files_deleted, reclaimed.files_retained
        ),
    )
}

/// `reel rewind`: every version above `to` purged, or above the newest intact one when
/// `to_last_good` (every version verified first).
pub fn rewind(
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

/// `reel verify`: `version`, or every version, checked end to end; exits with status 2 when
/// damage or lost versions are found.
pub fn verify(out: &mut dyn Write, store: &Store, version: Option<u64>) -> Result<(), Error> {
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
    if !report.damaged_heads.is_empty() {
        say(
            out,
            format_args!(
                "note: the heads of versions {:?} are damaged; opens of them read versions.idx \
                 instead (slower, the same rows)",
                report.damaged_heads
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

/// Reports a catalog rewrite, if one was made.
fn say_rewrite(out: &mut dyn Write, catalog: &reeldb::CatalogRewrite) -> Result<(), Error> {
    if !catalog.rewritten {
        return Ok(());
    }
    say(
        out,
        format_args!(
            "catalog rewritten: {} of records -> {}",
            human(catalog.bytes_before),
            human(catalog.bytes_after)
        ),
    )
}

/// `reel sync`: copies `src` into `dst` and says what was copied and what of `dst` its
/// source no longer has was removed; with `verify`, exits 2 when a version copied is
/// damaged.
pub fn sync(
    out: &mut dyn Write,
    src: &Store,
    dst: &std::path::Path,
    verify: bool,
    retention: &str,
) -> Result<(), Error> {
    let options = reeldb::SyncOptions {
        verify,
        retention: parse_duration(retention)?,
    };
    let report = src.sync_to_with(dst, &[], &options)?;
    say(
        out,
        format_args!(
            "{}: {} at version {} (was {}): {} files written, {} bytes copied{}",
            report.mode.as_str(),
            dst.display(),
            report.to_version,
            report.from_version,
            report.files_written,
            report.bytes_copied,
            if report.resumed {
                ", an unfinished sync resumed"
            } else {
                ""
            }
        ),
    )?;
    if report.files_removed + report.files_kept > 0 {
        say(
            out,
            format_args!(
                "files the source no longer has: {} removed, {} kept (for the retention, or \
                 for readers of the copy)",
                report.files_removed, report.files_kept
            ),
        )?;
    }
    if let Some(e) = &report.leftovers_error {
        say(
            out,
            format_args!("they were kept, for the next sync: {e} (the copy is synced)"),
        )?;
    }
    if let Some(checked) = &report.verified {
        for check in &checked.versions {
            if let Some(problem) = &check.problem {
                say(out, format_args!("v{}: {problem}", check.version))?;
            }
        }
        say(
            out,
            format_args!(
                "{} versions verified, {}",
                checked.versions.len(),
                if checked.is_intact() {
                    "all intact"
                } else {
                    "damage found"
                }
            ),
        )?;
        if !checked.is_intact() {
            out.flush().map_err(output::write_error)?;
            std::process::exit(2);
        }
    }
    Ok(())
}
