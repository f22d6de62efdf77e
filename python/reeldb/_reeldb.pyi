"""Type stubs for the native module `reeldb._reeldb` (re-exported by `reeldb`)."""

from datetime import datetime, timedelta
from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import pyarrow as pa

__version__: str

KeyValue = Union[None, bool, int, float, str, bytes, datetime]
Key = Union[KeyValue, Tuple[KeyValue, ...]]
"""A key: one value, or a tuple of values for a composite key."""

ArrowData = Any
"""Anything with `__arrow_c_stream__` (pyarrow Table / RecordBatchReader, polars DataFrame,
...) or `__arrow_c_array__` (pyarrow RecordBatch)."""

class ReelError(Exception):
    """Any ReelDB failure; the message is the Rust error's."""

class CorruptionError(ReelError):
    """Stored bytes failed a check: the store is damaged (see `verify` and `rewind`)."""

class VersionNotFound(ReelError):
    """The version, time or source offset asked for names no readable version."""

class SchemaError(ReelError):
    """Data does not fit the table: wrong columns or types, null or duplicate keys."""

class WriterBusy(ReelError):
    """Another writer holds the store's writer lock, or took it over from this one (on an
    object store, whose locks are leases), or another maintenance run (or a rewind) holds
    its maintenance lock."""

def open(
    path: Union[str, PathLike[str]],
    create: bool = True,
    storage_options: Optional[Dict[str, str]] = None,
) -> Store:
    """Opens the store at `path` (a local directory, or an `s3://`, `gs://` or `az://`
    prefix in builds with object storage), creating an empty one there first when there is none and `create` is
    true. `storage_options` configure an object store (`{"region": ..., "endpoint": ...}`,
    over the `AWS_*` environment variables; `lock_ttl`, the writer lock's lease in seconds;
    `cache_dir` and `cache_size`, a local cache of what is read)."""

class Store:
    """A ReelDB store."""

    @property
    def path(self) -> str: ...
    @property
    def latest_version(self) -> int:
        """The latest committed version (0 when there is none)."""
    def create_table(self, name: str, schema: pa.Schema, key: Sequence[str]) -> int:
        """Creates a table keyed on `key` in a commit of its own; returns the new version."""
    def writer(self) -> Writer:
        """The store's one writer (`WriterBusy` if another holds the lock)."""
    def snapshot(
        self,
        version: Optional[int] = None,
        as_of: Union[None, datetime, str] = None,
        at_offset: Optional[int] = None,
    ) -> Snapshot:
        """A read handle on the latest version, or on the one asked for (at most one of
        version, as_of and at_offset)."""
    def versions(self) -> List[Dict[str, Any]]:
        """Every readable version, oldest first: version, kind, committed_at, source_offset,
        meta."""
    def changes(self, table: str, a: int, b: int) -> pa.Table:
        """Rows that differ between versions a and b: change, key, old_<c> and new_<c>."""
    def history(self, table: str, key: Key) -> pa.Table:
        """Every version at which the row with `key` changed, with its values then."""
    def compact(
        self,
        keyframe_every: Optional[int] = None,
        retention: Union[None, float, timedelta] = None,
    ) -> Dict[str, Any]:
        """Rewrites closed generations as B-frames and reclaims space; beside live readers
        and beside an open writer (then the packs are not copied: `writer_open` is True).
        Thins keyframes first: by default while a thinned version reads at most as many
        residual rows as its keyframe has; with `keyframe_every`, to one full keyframe per
        that many versions (0 keeps every keyframe). On an object store what it no longer
        needs stays readable for `retention` (seconds or a timedelta; default an hour)."""
    def expire(
        self,
        keep_last: Optional[int] = None,
        before: Optional[int] = None,
        older_than: Union[None, float, timedelta] = None,
        keep_meta: Sequence[str] = (),
    ) -> List[int]:
        """Expires versions (give exactly one of keep_last, before, older_than); returns
        them."""
    def rewind(self, version: int) -> Dict[str, Any]:
        """Drops every version above `version`: to, purged, source_offset."""
    def verify(self, first: int = 1, last: Optional[int] = None) -> Dict[str, Any]:
        """Checks every stored byte of the versions: intact, newest_intact, versions, ...,
        lost_versions (committed versions whose index entries are lost, or None),
        damaged_heads (versions whose head, on an object store, is damaged)."""
    def sync(
        self,
        dst: Union[str, PathLike[str]],
        verify: bool = False,
        storage_options: Optional[Dict[str, str]] = None,
        retention: Union[None, float, timedelta] = None,
    ) -> Dict[str, Any]:
        """Copies this store at its latest version into `dst` (a directory or an object-store
        URL), only what `dst` lacks: mode, from_version, to_version, files_written,
        bytes_copied, resumed, files_removed and files_kept (files of `dst` this store no
        longer has: deleted, or kept for `retention` on an object store or for readers of
        `dst`), leftovers_error (why they were kept when disposing of them failed after the
        copy was made, else None), and with `verify`, intact."""
    def stats(self) -> Dict[str, Any]:
        """Sizes and sharing: bytes_on_disk, logical_bytes, sharing_ratio, ..., and
        column_space: bytes per table, column and encoding (dicts with table, column,
        encoding, blocks, bytes)."""

class Snapshot:
    """A read handle on one version."""

    @property
    def version(self) -> int: ...
    @property
    def info(self) -> Dict[str, Any]: ...
    def tables(self) -> List[str]: ...
    def schema(self, table: str) -> pa.Schema: ...
    def key_columns(self, table: str) -> List[str]: ...
    def count(self, table: str) -> int: ...
    def scan(
        self,
        table: str,
        columns: Optional[Sequence[str]] = None,
        filter: Union[None, str, Sequence[str]] = None,
        dictionaries: bool = False,
        batch_rows: int = 4096,
    ) -> pa.RecordBatchReader:
        """Rows passing `filter` (expressions such as "region = 'r7'", ANDed), streamed;
        with `dictionaries`, string and binary columns as dictionary arrays (one dictionary
        per batch: `unify_dictionaries()` before a group-by). Batches decoded smaller than
        `batch_rows` are joined to at least that many rows."""
    def get(self, table: str, key: Key) -> Optional[pa.RecordBatch]:
        """The row with `key` as a one-row batch, or None."""
    def range(
        self,
        table: str,
        lo: Optional[Key] = None,
        hi: Optional[Key] = None,
        reverse: bool = False,
    ) -> pa.RecordBatchReader:
        """Rows with lo <= key < hi in key order (descending with `reverse`)."""
    def sql(self, query: str) -> pa.Table:
        """SQL (DataFusion) over this version; VERSION AS OF / TIMESTAMP AS OF read others."""

class Writer:
    """The store's writer: stages changes and commits them as one version."""

    @property
    def version(self) -> int: ...
    def upsert(self, table: str, data: ArrowData) -> None: ...
    def patch(self, table: str, data: ArrowData) -> None:
        """Stages new values for some columns of existing rows: the key columns and any of
        the others; columns it lacks keep their values. At commit a key the table lacks is a
        KeyError naming it, and nothing is committed."""
    def delete(self, table: str, keys: Union[ArrowData, pa.Array, Sequence[KeyValue]]) -> None: ...
    def replace(self, table: str, data: ArrowData) -> None: ...
    def add_column(
        self,
        table: str,
        name: str,
        type: Union[pa.DataType, str],
        default: Optional[str] = None,
        nullable: bool = True,
    ) -> None:
        """Stages a new last column; rows written before read as `default` (or nulls)."""
    def drop_column(self, table: str, name: str) -> None: ...
    def rename_column(self, table: str, old: str, new: str) -> None: ...
    def widen_column(self, table: str, name: str, type: Union[pa.DataType, str]) -> None:
        """Stages widening a non-key column (int32 -> int64, float32 -> float64, ...)."""
    def drop_table(self, table: str) -> None: ...
    def rename_table(self, table: str, new: str) -> None: ...
    def commit(
        self,
        source_offset: Optional[int] = None,
        meta: Optional[Dict[str, str]] = None,
        keyframe: bool = False,
    ) -> int:
        """Writes everything staged as one version, all or nothing; returns its number."""
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Writer: ...
    def __exit__(self, *exc: object) -> bool: ...
