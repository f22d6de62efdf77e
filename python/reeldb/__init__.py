"""ReelDB for Python: an embedded store of versioned analytical state.

One writer commits versions of keyed tables; readers open any version and get Arrow back.
Arrow crosses into and out of the store through the Arrow C stream interface (the PyCapsule
protocol) without copies, so pyarrow, polars and DuckDB read scans directly.

    import reeldb
    db = reeldb.open("store")
    db.create_table("orders", schema, key=["id"])
    with db.writer() as w:
        w.upsert("orders", table)
        version = w.commit(source_offset=1200, meta={"label": "nightly"})
    snap = db.snapshot(version=version)
    reader = snap.scan("orders", columns=["status", "amount"], filter="amount > 10")
"""

from ._reeldb import (
    CorruptionError,
    ReelError,
    SchemaError,
    Snapshot,
    Store,
    VersionNotFound,
    Writer,
    WriterBusy,
    __version__,
    open,
)

__all__ = [
    "open",
    "Store",
    "Snapshot",
    "Writer",
    "ReelError",
    "CorruptionError",
    "VersionNotFound",
    "SchemaError",
    "WriterBusy",
    "__version__",
]
