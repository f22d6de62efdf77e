"""The Python package as a specification: round trips, time travel, zero-copy readers for
pyarrow, polars and DuckDB, maintenance, and errors as the exception hierarchy."""

import datetime as dt
import decimal
import os
import pathlib

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import reeldb

ORDERS = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("amount", pa.float64()),
    ]
)


def orders(ids, status="new", amount=1.0):
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "status": pa.array([status] * len(ids), pa.string()),
            "amount": pa.array([amount * i for i in ids], pa.float64()),
        },
        schema=ORDERS,
    )


@pytest.fixture
def db(tmp_path):
    store = reeldb.open(tmp_path / "store")
    store.create_table("orders", ORDERS, key=["id"])
    return store


def commit(db, upsert=None, delete=None, **kw):
    with db.writer() as w:
        if upsert is not None:
            w.upsert("orders", upsert)
        if delete is not None:
            w.delete("orders", delete)
        return w.commit(**kw)


def test_every_supported_type_round_trips_with_nulls(tmp_path):
    schema = pa.schema(
        [
            pa.field("k", pa.int64(), nullable=False),
            ("i8", pa.int8()),
            ("i16", pa.int16()),
            ("i32", pa.int32()),
            ("u8", pa.uint8()),
            ("u16", pa.uint16()),
            ("u32", pa.uint32()),
            ("u64", pa.uint64()),
            ("f32", pa.float32()),
            ("f64", pa.float64()),
            ("b", pa.bool_()),
            ("s", pa.string()),
            ("bin", pa.binary()),
            ("d", pa.date32()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("dec", pa.decimal128(12, 3)),
        ]
    )
    n = 50
    rows = {
        "k": list(range(n)),
        "i8": [None if i % 7 == 0 else i - 25 for i in range(n)],
        "i16": [None if i % 5 == 0 else -300 * i for i in range(n)],
        "i32": [None if i % 3 == 0 else 70_000 * i for i in range(n)],
        "u8": [None if i % 4 == 0 else 5 * i for i in range(n)],
        "u16": [None if i % 6 == 0 else 1000 * i for i in range(n)],
        "u32": [None if i % 8 == 0 else 80_000_000 * i for i in range(n)],
        "u64": [None if i % 9 == 0 else 2**63 + i for i in range(n)],
        "f32": [None if i % 10 == 0 else i / 4 for i in range(n)],
        "f64": [None if i % 11 == 0 else i * 1e-3 for i in range(n)],
        "b": [None if i % 12 == 0 else i % 2 == 0 for i in range(n)],
        "s": [None if i % 13 == 0 else "é" * (i % 4) + str(i) for i in range(n)],
        "bin": [None if i % 14 == 0 else bytes([i, 0, 255]) for i in range(n)],
        "d": [None if i % 15 == 0 else dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(n)],
        "ts": [
            None if i % 16 == 0 else dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i)
            for i in range(n)
        ],
        "dec": [None if i % 17 == 0 else decimal.Decimal(i) / 8 for i in range(n)],
    }
    data = pa.table(rows, schema=schema)
    db = reeldb.open(tmp_path / "types")
    db.create_table("t", schema, key=["k"])
    with db.writer() as w:
        w.upsert("t", data)
        v = w.commit()
    back = db.snapshot(version=v).scan("t").read_all()
    assert back.schema == schema
    assert back.sort_by("k").equals(data)
    # The same through one-row gets.
    snap = db.snapshot()
    for i in (0, 13, 49):
        row = snap.get("t", i)
        assert row.schema == schema
        assert row.to_pylist() == data.slice(i, 1).to_pylist()


def test_a_scan_is_a_record_batch_reader_imported_without_a_copy(db):
    commit(db, upsert=orders(range(100_000)))
    reader = db.snapshot().scan("orders", columns=["id", "amount"])
    assert isinstance(reader, pa.RecordBatchReader)
    before = pa.total_allocated_bytes()
    table = reader.read_all()
    # The batches' buffers stay Rust's: pyarrow's own pool allocated nothing for them.
    assert pa.total_allocated_bytes() - before < 1024
    assert table.num_rows == 100_000
    assert table.column_names == ["id", "amount"]
    assert pc.sum(table["amount"]).as_py() == sum(range(100_000))


def test_polars_and_duckdb_read_a_scan_through_the_stream_protocol(db):
    commit(db, upsert=orders(range(1000), status="paid"))
    commit(db, upsert=orders(range(0, 1000, 2), status="new"))
    snap = db.snapshot()
    frame = pl.from_arrow(snap.scan("orders"))
    counts = dict(frame.group_by("status").len().iter_rows())
    assert counts == {"paid": 500, "new": 500}
    reader = snap.scan("orders", filter="status = 'new'")
    total = duckdb.sql("SELECT count(*), sum(id) FROM reader").fetchall()[0]
    assert total == (500, sum(range(0, 1000, 2)))


def test_data_comes_in_from_pyarrow_polars_and_record_batches(db):
    commit(db, upsert=orders(range(10)))
    commit(db, upsert=pl.from_arrow(orders(range(10, 20))))
    commit(db, upsert=orders(range(20, 30)).to_batches()[0])
    commit(db, upsert=pa.RecordBatchReader.from_batches(ORDERS, orders(range(30, 40)).to_batches()))
    assert db.snapshot().count("orders") == 40


def test_any_version_reads_as_it_was_committed(db):
    first = commit(db, upsert=orders(range(10)), source_offset=100, meta={"label": "a"})
    second = commit(db, upsert=orders(range(5), amount=2.0), delete=[9], source_offset=200)
    third = commit(db, delete=pa.table({"id": pa.array([0, 1], pa.int64())}), source_offset=300)

    def ids(snap):
        return sorted(snap.scan("orders", columns=["id"]).read_all()["id"].to_pylist())

    assert ids(db.snapshot(version=first)) == list(range(10))
    assert ids(db.snapshot(version=second)) == list(range(9))
    assert ids(db.snapshot()) == list(range(2, 9))
    assert db.snapshot(at_offset=250).version == second
    assert db.snapshot(version=second).get("orders", 3).column("amount").to_pylist() == [6.0]
    assert db.snapshot(version=first).get("orders", 3).column("amount").to_pylist() == [3.0]
    assert db.snapshot(version=third).get("orders", 0) is None

    versions = db.versions()
    assert [v["version"] for v in versions] == list(range(1, third + 1))
    assert versions[first - 1]["meta"] == {"label": "a"}
    assert versions[second - 1]["source_offset"] == 200
    committed = versions[second - 1]["committed_at"]
    assert committed.tzinfo is not None
    assert db.snapshot(as_of=committed).version >= second
    assert db.snapshot(as_of=committed.isoformat()).version >= second


def test_ranges_come_in_key_order_either_way_and_filters_combine(db):
    commit(db, upsert=orders(range(100)))
    commit(db, upsert=orders([5, 50, 150], status="paid"))
    snap = db.snapshot()
    forward = snap.range("orders", 40, 60).read_all()["id"].to_pylist()
    assert forward == list(range(40, 60))
    backward = snap.range("orders", lo=140, reverse=True).read_all()["id"].to_pylist()
    assert backward == [150]
    everything = snap.range("orders", reverse=True).read_all()["id"].to_pylist()
    assert everything == sorted(list(range(100)) + [150], reverse=True)
    paid = snap.scan("orders", filter=["status = 'paid'", "id < 100"]).read_all()
    assert sorted(paid["id"].to_pylist()) == [5, 50]


def test_changes_and_history_follow_the_versions(db):
    a = commit(db, upsert=orders(range(10)))
    commit(db, upsert=orders([1], amount=5.0), delete=[2])
    b = commit(db, upsert=orders([42]))
    changes = db.changes("orders", a, b)
    got = {(r["change"], r["id"]) for r in changes.to_pylist()}
    assert got == {("update", 1), ("delete", 2), ("insert", 42)}
    history = db.history("orders", 1).to_pylist()
    assert [h["version"] for h in history] == [a, a + 1]


def test_sql_reads_this_version_or_the_one_named(db):
    a = commit(db, upsert=orders(range(10)))
    commit(db, delete=list(range(5)))
    snap = db.snapshot()
    now = snap.sql("SELECT count(*) AS n FROM orders").to_pylist()
    assert now == [{"n": 5}]
    then = snap.sql(f"SELECT count(*) AS n FROM orders VERSION AS OF {a}").to_pylist()
    assert then == [{"n": 10}]


def test_compact_expire_rewind_verify_and_stats(db):
    for i in range(30):
        commit(db, upsert=orders([i, i + 1000], amount=float(i)), source_offset=i + 1)
    latest = db.latest_version
    report = db.compact()
    assert report["generations"] >= 1
    assert db.verify()["intact"]
    expired = db.expire(before=5)
    assert expired == [1, 2, 3, 4]
    with pytest.raises(reeldb.VersionNotFound):
        db.snapshot(version=2)
    rewound = db.rewind(latest - 3)
    assert rewound["to"] == latest - 3 and rewound["purged"] == 3
    assert db.latest_version == latest - 3
    stats = db.stats()
    assert stats["versions"] == latest - 3
    assert stats["bytes_on_disk"] > 0 and stats["latest_rows"]["orders"] > 0


def test_compact_runs_beside_an_open_writer_and_says_what_it_skipped(db):
    for i in range(30):
        commit(db, upsert=orders([i, i + 1000], amount=float(i)))
    with db.writer() as w:
        report = db.compact()
        assert report["generations"] >= 1
        assert report["writer_open"] and not report["packs_copied"]
        w.upsert("orders", orders([7], amount=70.0))
        after = w.commit()
    assert db.snapshot(version=after).scan("orders").read_all().num_rows == 60
    assert not db.compact()["writer_open"]
    assert db.verify()["intact"]


def test_categoricals_are_stored_as_strings_and_stats_show_each_columns_encoding(db):
    data = orders(list(range(5000)), status="paid")
    categorical = data.set_column(1, "status", pc.dictionary_encode(data["status"]))
    commit(db, upsert=categorical)
    back = db.snapshot().scan("orders").read_all().sort_by("id")
    assert back.schema == ORDERS
    assert back.equals(data)
    # Asked for, strings come as dictionaries holding the same values, filtered or not.
    as_dict = db.snapshot().scan("orders", dictionaries=True).read_all().sort_by("id")
    assert pa.types.is_dictionary(as_dict.schema.field("status").type)
    assert as_dict.cast(ORDERS).equals(data)
    filtered = db.snapshot().scan("orders", columns=["status"], filter="id < 10", dictionaries=True)
    assert filtered.read_all()["status"].to_pylist() == ["paid"] * 10
    space = {(c["column"], c["encoding"]): c["bytes"] for c in db.stats()["column_space"]}
    assert ("id", "delta") in space and ("status", "dictionary") in space
    assert all(b > 0 for b in space.values())


def test_small_batches_are_joined_to_batch_rows_and_big_ones_pass_as_decoded(db):
    commit(db, upsert=orders(list(range(5000))))
    snap = db.snapshot()
    whole = snap.scan("orders").read_all().sort_by("id")
    # A filter keeping a few rows of each leaf: its batches are joined to at least 1,000 rows.
    sizes = [b.num_rows for b in snap.scan("orders", filter="id < 2500", batch_rows=1000)]
    assert sum(sizes) == 2500 and all(n >= 1000 for n in sizes[:-1])
    # Asked for single rows, every decoded batch passes as it is; the rows are the same.
    single = snap.scan("orders", batch_rows=1).read_all().sort_by("id")
    assert single.equals(whole)


def test_thinning_keyframes_keeps_every_version_as_it_was(db):
    for i in range(45):
        commit(db, upsert=orders([i % 7, 100 + i], amount=float(i)), delete=[100 + i - 3] if i >= 3 else None)
    def state(v):
        return db.snapshot(version=v).scan("orders").read_all().sort_by("id").to_pylist()
    before = {v["version"]: state(v["version"]) for v in db.versions()}
    keyframes = sum(1 for v in db.versions() if v["kind"] == "keyframe")
    report = db.compact(keyframe_every=1000)
    assert keyframes >= 3 and report["keyframes_thinned"] == keyframes - 1
    assert {v: state(v) for v in before} == before
    assert db.verify()["intact"]


def test_errors_are_typed_and_change_nothing(db, tmp_path):
    v = commit(db, upsert=orders(range(10)))
    assert issubclass(reeldb.CorruptionError, reeldb.ReelError)
    with pytest.raises(reeldb.VersionNotFound, match="unknown version 99"):
        db.snapshot(version=99)
    wrong = pa.table({"id": pa.array([1], pa.int64()), "other": pa.array(["x"])})
    with pytest.raises(reeldb.SchemaError):
        commit(db, upsert=wrong)
    with pytest.raises(reeldb.SchemaError):
        commit(db, upsert=orders([1, 1]))
    assert db.latest_version == v
    with db.writer():
        with pytest.raises(reeldb.WriterBusy):
            db.writer()
    with pytest.raises(reeldb.ReelError, match="unknown table"):
        db.snapshot().scan("nope")
    with pytest.raises(TypeError):
        commit(db, upsert=[1, 2, 3])
    # A writer left without a commit writes nothing.
    with db.writer() as w:
        w.upsert("orders", orders([77]))
    assert db.latest_version == v and db.snapshot().get("orders", 77) is None


def test_an_unsupported_store_url_is_refused_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(reeldb.ReelError, match="hdfs://bucket/prefix"):
        reeldb.open("hdfs://bucket/prefix")
    with pytest.raises(reeldb.ReelError, match="storage option"):
        reeldb.open(str(tmp_path / "local"), storage_options={"region": "eu-west-1"})
    assert list(tmp_path.iterdir()) == []
    db = reeldb.open(f"file://{tmp_path}/local")
    assert db.latest_version == 0 and (tmp_path / "local" / "STORE").exists()


@pytest.fixture
def moto_endpoint():
    """A moto S3 server on loopback with bucket `bkt` (testkit/moto_server.py), stopped
    after the test; skipped when moto is not installed, unless REELDB_REQUIRE_MOTO is set."""
    import subprocess
    import sys

    try:
        import moto  # noqa: F401
    except ImportError:
        if os.environ.get("REELDB_REQUIRE_MOTO"):
            raise
        pytest.skip("moto[server] is not installed")
    script = pathlib.Path(__file__).parents[2] / "testkit" / "moto_server.py"
    server = subprocess.Popen(
        [sys.executable, str(script), "bkt"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    line = server.stdout.readline().decode()
    assert line.startswith("PORT "), line
    yield f"http://127.0.0.1:{int(line.split()[1])}"
    server.stdin.close()
    server.wait(timeout=30)


def s3_options(endpoint):
    """Storage options for the moto server at `endpoint`."""
    return {
        "endpoint": endpoint,
        "allow_http": "true",
        "region": "us-east-1",
        "access_key_id": "test",
        "secret_access_key": "test",
    }


def test_a_store_on_s3_round_trips_through_storage_options(moto_endpoint, tmp_path):
    options = s3_options(moto_endpoint)
    db = reeldb.open("s3://bkt/py/orders", storage_options=options)
    db.create_table("orders", ORDERS, key=["id"])
    with db.writer() as w:
        w.upsert("orders", orders([1, 2, 3]))
        v = w.commit()
    cached = {**options, "cache_dir": str(tmp_path / "cache"), "lock_ttl": "5"}
    again = reeldb.open("s3://bkt/py/orders", create=False, storage_options=cached)
    assert again.latest_version == v
    assert again.snapshot().scan("orders").read_all().num_rows == 3
    assert any((tmp_path / "cache").iterdir()), "what was read is cached"
    with pytest.raises(reeldb.ReelError, match="s3://no-such-bucket/x"):
        reeldb.open("s3://no-such-bucket/x", storage_options=options)


def test_a_store_synced_to_s3_and_back_reads_the_same_and_follows_new_versions(
    moto_endpoint, db, tmp_path
):
    options = s3_options(moto_endpoint)
    commit(db, upsert=orders([1, 2, 3]))
    first = db.sync("s3://bkt/py/mirror", verify=True, storage_options=options)
    assert (first["mode"], first["to_version"], first["intact"]) == ("fresh", 2, True)
    assert (first["files_removed"], first["files_kept"]) == (0, 0), "a fresh copy has no leftovers"
    commit(db, upsert=orders([4]))
    second = db.sync("s3://bkt/py/mirror", storage_options=options, retention=dt.timedelta(0))
    assert (second["mode"], second["from_version"], second["to_version"]) == ("append", 2, 3)
    assert 0 < second["bytes_copied"] < first["bytes_copied"]
    mirror = reeldb.open("s3://bkt/py/mirror", create=False, storage_options=options)
    done = mirror.compact(retention=0)
    assert done["files_retained"] == 0
    back = mirror.sync(tmp_path / "back", verify=True)
    assert back["intact"]
    copy = reeldb.open(tmp_path / "back", create=False)
    assert copy.snapshot().scan("orders").read_all() == db.snapshot().scan("orders").read_all()


def test_damaged_bytes_raise_corruption_error(tmp_path):
    db = reeldb.open(tmp_path / "damaged")
    db.create_table("orders", ORDERS, key=["id"])
    commit(db, upsert=orders(range(20_000)))
    files = [p for p in pathlib.Path(db.path).rglob("*") if p.is_file()]
    biggest = max(files, key=lambda p: p.stat().st_size)
    raw = bytearray(biggest.read_bytes())
    for at in range(len(raw) // 4, len(raw) // 4 * 3, 512):
        raw[at] ^= 0xFF
    biggest.write_bytes(bytes(raw))
    with pytest.raises(reeldb.CorruptionError):
        fresh = reeldb.open(db.path)
        snap = fresh.snapshot()
        for i in range(0, 20_000, 97):
            snap.get("orders", i)
    report = reeldb.open(db.path).verify()
    assert not report["intact"]


def test_the_readme_example_runs(tmp_path, monkeypatch):
    readme = pathlib.Path(__file__).resolve().parents[2] / "README.md"
    blocks = readme.read_text().split("```python\n")[1:]
    assert blocks, "the README has a Python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block.split("```")[0], "README.md", "exec"), {})


def test_schema_changes_are_versions_and_earlier_versions_keep_their_schema(db):
    v1 = commit(db, upsert=orders([1, 2, 3]))
    with db.writer() as w:
        w.add_column("orders", "tier", pa.int32(), default="1")
        w.rename_column("orders", "status", "state")
        w.widen_column("orders", "tier", "int64")
        v2 = w.commit()
    new = db.snapshot(v2)
    assert new.schema("orders").names == ["id", "state", "amount", "tier"]
    assert new.schema("orders").field("tier").type == pa.int64()
    assert new.scan("orders").read_all().column("tier").to_pylist() == [1, 1, 1]
    assert db.snapshot(v1).schema("orders").names == ["id", "status", "amount"]
    with db.writer() as w:
        with pytest.raises(reeldb.SchemaError, match="key"):
            w.drop_column("orders", "id")
            w.commit()
        with pytest.raises(reeldb.SchemaError, match="amount"):
            w.widen_column("orders", "amount", pa.float32())
            w.commit()
        w.rename_table("orders", "sales")
        v3 = w.commit()
        w.drop_table("sales")
        v4 = w.commit()
    assert db.snapshot(v3).tables() == ["sales"]
    assert db.snapshot(v4).tables() == []
    assert db.snapshot(v2).count("orders") == 3


def test_a_patch_changes_some_columns_and_an_absent_key_changes_nothing(db):
    v = commit(db, upsert=orders(range(10), status="new", amount=2.0))
    with db.writer() as w:
        w.patch("orders", pa.table({"id": pa.array([3, 4], pa.int64()), "status": ["paid", "shipped"]}))
        patched = w.commit()
    row = db.snapshot().get("orders", 3).to_pylist()[0]
    assert row["status"] == "paid" and row["amount"] == 6.0
    assert db.snapshot(version=v).get("orders", 3).to_pylist()[0]["status"] == "new"
    with pytest.raises(KeyError, match="404"):
        with db.writer() as w:
            w.patch("orders", pa.table({"id": pa.array([5, 404], pa.int64()), "amount": [1.0, 1.0]}))
            w.commit()
    with pytest.raises(reeldb.SchemaError, match="colour"):
        with db.writer() as w:
            w.patch("orders", pa.table({"id": pa.array([5], pa.int64()), "colour": ["red"]}))
            w.commit()
    assert db.latest_version == patched
    assert db.snapshot().get("orders", 5).to_pylist()[0]["amount"] == 10.0
