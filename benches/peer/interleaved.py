#!/usr/bin/env python3
"""Q1, Q2 and 1,000 gets on a ReelDB store the peer run wrote, alternated with the in-memory
reference on the same state in one process, so that both sides see the same machine.

    python benches/peer/interleaved.py WORK/reeldb/store [OFFSET ...]

OFFSET is the harness's version (the source offset ReelDB carries; default 1 50 100). The
in-memory reference is the version's full scan combined into one pyarrow Table, queried as
the harness's `memory` system queries it; Q1 is also timed with `dictionaries=True`, and both
with batches joined to 64Ki rows. Each figure is the median of 7 alternating runs; the gets are 1,000 ids from the whole key range, on one snapshot (its decoded-block cache
warm after the first run).
"""
import statistics
import sys
import time

import pyarrow.compute as pc

from run_peer import DEFAULT_HARNESS  # this folder is on sys.path, as the script's own

sys.path.insert(0, DEFAULT_HARNESS)
import common as C  # noqa: E402
import reeldb  # noqa: E402


def median_ms(f, runs=7):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main():
    path = sys.argv[1]
    offsets = [int(a) for a in sys.argv[2:]] or [1, 50, 100]
    db = reeldb.open(path, create=False)
    for offset in offsets:
        snap = db.snapshot(at_offset=offset)
        mem = snap.scan("t").read_all().combine_chunks()
        ids = mem["id"].to_numpy()[:: max(1, mem.num_rows // 1000)][:1000]
        m1 = median_ms(lambda: C.q1_from_table(mem.select(["status", "amount"])))
        r1 = median_ms(lambda: C.q1_from_table(snap.scan("t", columns=["status", "amount"]).read_all()))
        # The same with `status` as dictionaries (unified across batches, as pyarrow's
        # group-by needs).
        d1 = median_ms(lambda: C.q1_from_table(
            snap.scan("t", columns=["status", "amount"], dictionaries=True).read_all().unify_dictionaries()))
        # Both again with every batch joined to 64Ki rows (the Python default before
        # 2026-12-06), a second copy of every column.
        r1j = median_ms(lambda: C.q1_from_table(
            snap.scan("t", columns=["status", "amount"], batch_rows=1 << 16).read_all()))
        d1j = median_ms(lambda: C.q1_from_table(
            snap.scan("t", columns=["status", "amount"], dictionaries=True, batch_rows=1 << 16)
            .read_all().unify_dictionaries()))
        m2 = median_ms(lambda: pc.sum(pc.filter(mem["amount"], pc.equal(mem["region"], C.Q2_REGION))).as_py())
        r2 = median_ms(lambda: pc.sum(
            snap.scan("t", columns=["amount"], filter=f"region = '{C.Q2_REGION}'").read_all()["amount"]).as_py())
        r3 = median_ms(lambda: [snap.get("t", int(x)) for x in ids])
        print(f"v{offset} ({snap.info['kind']}): Q1 {r1:.1f} ms = {r1 / m1:.2f}x memory ({m1:.1f} ms), "
              f"with dictionaries {d1:.1f} ms = {d1 / m1:.2f}x "
              f"(joined to 64Ki: {r1j / m1:.2f}x, {d1j / m1:.2f}x), "
              f"Q2 {r2:.1f} ms = {r2 / m2:.2f}x memory ({m2:.1f} ms), 1,000 gets {r3:.1f} ms")


if __name__ == "__main__":
    main()
