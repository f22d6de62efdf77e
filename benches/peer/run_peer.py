#!/usr/bin/env python3
"""ReelDB in the peer benchmark, in one command: the harness's own runner, queries and report
(../shared/peer-bench, read-only) with ReelDB's systems registered beside the peers.

    python benches/peer/run_peer.py --data DATA --work WORK --results RESULTS

runs `parquet` (whose files the in-memory reference reads), `memory`, `reeldb`,
`reeldb_compacted` and `reeldb_thinned` one after the other, each in its own process as the
harness does, then writes the harness's report with the ReelDB rows to RESULTS/report.md and ReelDB's ratios to
the in-memory reference (two decimals) to RESULTS/reeldb-ratios.md. Every other option is the
harness's (`--versions`, `--query-versions`, `--reps`, ...); `--systems` picks others, and
`--harness` points at another copy of the harness. The data folder comes from the harness's
generator: `python ../shared/peer-bench/gen.py --out DATA`.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_HARNESS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "peer-bench"))
DEFAULT_SYSTEMS = "parquet,memory,reeldb,reeldb_compacted,reeldb_thinned"


def take(argv, flag, default):
    """Removes `flag VALUE` (or `flag=VALUE`) from argv; returns VALUE or default."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            value = argv[i + 1]
            del argv[i:i + 2]
            return value
        if a.startswith(flag + "="):
            del argv[i]
            return a.split("=", 1)[1]
    return default


def harness_modules(harness):
    """The harness's modules, with ReelDB's systems and report rows registered."""
    sys.path.insert(0, HERE)
    sys.path.insert(0, harness)
    import systems
    import report
    import run as harness_run
    import reeldb_system
    systems.SYSTEMS.update(reeldb_system.SYSTEMS)
    report.ORDER.extend(reeldb_system.ORDER)
    return harness_run, report


def ratios(results, path):
    """ReelDB's medians over the in-memory reference's at each version, to two decimals."""
    import json
    import reeldb_system
    reel = list(reeldb_system.SYSTEMS)
    R = {}
    for name in ["memory", "parquet"] + reel:
        p = os.path.join(results, f"{name}.json")
        if os.path.exists(p):
            with open(p) as f:
                R[name] = json.load(f)
    mem = R.get("memory", {}).get("queries", {}).get("pyarrow", {})
    lines = ["| system | version | open ms | Q1 x | Q2 x | Q3 (1,000 gets) ms | Q3 x | Q3b ms |",
             "|---|---|---|---|---|---|---|---|"]
    for name in reel:
        qs = R.get(name, {}).get("queries", {}).get("arrow", {})
        for v, rec in sorted(qs.items(), key=lambda kv: int(kv[0])):
            m = mem.get(v, {})

            def x(q):
                a, b = rec.get(f"{q}_median"), m.get(f"{q}_median")
                return f"{a / b:.2f}x" if a and b else "n/a"
            lines.append(f"| {name} | v{v} | {rec['open_s_median'] * 1e3:.2f} | {x('Q1')} | {x('Q2')} | "
                         f"{rec['Q3_median'] * 1e3:.1f} | {x('Q3')} | {rec['Q3b_median'] * 1e3:.1f} |")
    lines.append("")
    copy = (R.get("parquet", {}).get("write") or {}).get("v1_file_bytes")
    for name in reel:
        w = R.get(name, {}).get("write")
        if w:
            copies = f" ({w.get('bytes_final', 0) / copy:.2f}x one zstd Parquet copy of v1)" if copy else ""
            lines.append(f"- {name}: {w.get('bytes_final', 0) / 1e6:.1f} MB on disk{copies}, write median "
                         f"{w['per_version_median_s'] * 1e3:.1f} ms/version (initial {w['initial_s']:.2f} s), "
                         f"versions by kind {w.get('version_kinds')}"
                         + (f", compact {w['compact_s']:.1f} s" if "compact_s" in w else ""))
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(text)


def main():
    argv = sys.argv[1:]
    harness = os.path.abspath(take(argv, "--harness", DEFAULT_HARNESS))
    harness_run, report = harness_modules(harness)
    if "--one" in argv:
        # A child process: the harness's per-system run, with ReelDB registered.
        sys.argv = [os.path.join(harness, "run.py")] + argv
        os.chdir(harness)
        return harness_run.main()
    systems = take(argv, "--systems", DEFAULT_SYSTEMS)
    # The children run in the harness's folder: pass the folders as absolute paths.
    folders = {}
    for flag in ("--data", "--work", "--results"):
        value = take(argv, flag, None)
        if value is None:
            sys.exit(f"{flag} is required")
        folders[flag] = os.path.abspath(value)
        argv += [flag, folders[flag]]
    results = folders["--results"]
    for name in systems.split(","):
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, os.path.abspath(__file__), "--harness", harness,
                              "--one", name] + argv)
        print(f"== {name}: rc={rc} in {time.perf_counter() - t0:.0f}s", flush=True)
    sys.argv = ["report.py", "--results", results, "--out", os.path.join(results, "report.md"),
                "--title", "cqrs-snapshots with ReelDB"]
    report.main()
    ratios(results, os.path.join(results, "reeldb-ratios.md"))


if __name__ == "__main__":
    main()
