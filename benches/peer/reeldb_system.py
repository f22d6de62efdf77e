"""ReelDB as a system of the peer benchmark (../shared/peer-bench), on the harness's terms.

The harness's `Base.write` loop feeds it: `init_write(initial)` then `apply(v, upserts,
delete_ids)` per version, timed by the harness. Queries go through the Python package exactly
as a user would write them: each from its own `reeldb.open(path).snapshot(version=v)`, Q1 and
Q2 as a projected (and for Q2 filtered) scan read into pyarrow and aggregated with
pyarrow.compute (as the Lance and Iceberg rows do; Q1 reads `status` as dictionaries,
`scan(..., dictionaries=True)`, which its group-by then unifies), Q3 as one `get` per id, Q3b as one scan
with an `id in (...)` filter.

`reeldb_compacted` writes the same versions, then runs `compact` (timed, reported as
`compact_s`) before the harness measures bytes and queries. `reeldb_thinned` does the same
with `compact(keyframe_every=THIN_KEYFRAME_EVERY)`: one full keyframe per 100 versions, every
other version a B-frame over a kept keyframe (`reel compact --keyframe-every 100`).
"""
import time

import pyarrow as pa
import pyarrow.compute as pc

import common as C
import reeldb
from systems import Base, rows_summary

TABLE = "t"


class ReelDB(Base):
    name = "reeldb"
    engines = ["arrow"]

    def __init__(self, root, **kw):
        super().__init__(root)
        self.path = f"{root}/store"
        self.db = None
        self.extra_info = {}

    def init_write(self, initial):
        self.db = reeldb.open(self.path)
        self.db.create_table(TABLE, C.SCHEMA, key=["id"])
        with self.db.writer() as w:
            w.upsert(TABLE, initial)
            self.vmap[0] = w.commit(source_offset=0)

    def apply(self, v, ups, dels):
        with self.db.writer() as w:
            w.upsert(TABLE, ups)
            if len(dels):
                w.delete(TABLE, dels)
            self.vmap[v] = w.commit(source_offset=v)

    def extra(self):
        stats = reeldb.open(self.path).stats()
        kinds = {}
        for info in reeldb.open(self.path).versions():
            kinds[info["kind"]] = kinds.get(info["kind"], 0) + 1
        return {**self.extra_info, "version_kinds": kinds,
                "sharing_ratio": stats["sharing_ratio"], "native_versions": stats["versions"]}

    def open(self, v, engine):
        return reeldb.open(self.path, create=False).snapshot(version=self.vmap[v])

    def q1(self, h):
        # A group-by on a low-cardinality string column asks for it as dictionaries, as
        # `scan`'s documentation advises: the codes come as stored, not built into strings.
        t = h.scan(TABLE, columns=["status", "amount"], dictionaries=True).read_all()
        return C.q1_from_table(t.unify_dictionaries())

    def q2(self, h):
        t = h.scan(TABLE, columns=["amount"], filter=f"region = '{C.Q2_REGION}'").read_all()
        return pc.sum(t["amount"]).as_py()

    def q3(self, h, ids, deadline):
        found, amt, n = [], [], 0
        for x in ids:
            row = h.get(TABLE, x)
            if row is not None:
                found.append(row.column(0)[0].as_py())
                amt.append(row.column(4)[0].as_py())
            n += 1
            if time.perf_counter() > deadline:
                break
        return n, C.q3_summary(found, amt)

    def q3b(self, h, ids):
        id_list = ", ".join(str(int(x)) for x in ids)
        return rows_summary(h.scan(TABLE, filter=f"id in ({id_list})").read_all())


THIN_KEYFRAME_EVERY = 100


class ReelDBCompacted(ReelDB):
    name = "reeldb_compacted"
    keyframe_every = None

    def write(self, data, V, budget_s, log):
        res = super().write(data, V, budget_s, log)
        t0 = time.perf_counter()
        report = self.db.compact(keyframe_every=self.keyframe_every)
        self.extra_info["compact_s"] = time.perf_counter() - t0
        self.extra_info["compact"] = report
        log(f"{self.name}: compact {self.extra_info['compact_s']:.1f}s: {report}")
        return res


class ReelDBThinned(ReelDBCompacted):
    name = "reeldb_thinned"
    keyframe_every = THIN_KEYFRAME_EVERY


SYSTEMS = {"reeldb": ReelDB, "reeldb_compacted": ReelDBCompacted, "reeldb_thinned": ReelDBThinned}
ORDER = [
    ("reeldb", "arrow", "ReelDB, scan into pyarrow / get per id"),
    ("reeldb_compacted", "arrow", "ReelDB after compact, scan into pyarrow / get per id"),
    ("reeldb_thinned", "arrow",
     f"ReelDB after compact(keyframe_every={THIN_KEYFRAME_EVERY}), scan into pyarrow / get per id"),
]
