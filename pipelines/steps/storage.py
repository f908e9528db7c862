"""Atomic, content-addressed file writes for every stage.

Every stage is safe to retry: outputs go to a temporary file in the same folder and are renamed
into place, so a crash never leaves a half-written file at a final path. Parquet is written
without timestamps so the same input gives byte-identical output and the same fingerprint.
"""

import contextlib
import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.steps.records import Message, Record, records_to_frame


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(folder: str | Path) -> str:
    """Hex sha256 over the relative paths and bytes of every file in a folder, in sorted order."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` and rename the result onto `path` (same filesystem, atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet(frame: pd.DataFrame, path: str | Path) -> str:
    """Write a frame as Parquet atomically and return the file's sha256."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    return sha256_file(path)


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a Parquet file written by `write_parquet`."""
    return pq.read_table(path).to_pandas()


T = TypeVar("T")

ROW_GROUP_ROWS = 8192
"""Rows per row group of a file written by `ParquetStream`: fixed, so that a file's bytes do not
depend on the batches it was written in; a file of at most this many rows is one row group, as
`write_parquet` writes it. Small, because a group is held until it is full: 65,536 rows of a
scrubbed corpus are about 55 MiB of Arrow, held twice over while they are joined, and counted
again in the forked scanning process (#21.1)."""


def frame_schema(frame: pd.DataFrame) -> pa.Schema:
    """The Arrow schema (pandas metadata included) `write_parquet` writes `frame` with: built from
    a sample frame whose every column holds a value, it fixes a `ParquetStream`'s schema."""
    return pa.Table.from_pandas(frame, preserve_index=False).schema


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), read as they are needed."""
    if size < 1:
        raise ValueError(f"a batch holds at least one item (got {size})")
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def iter_parquet_frames(path: str | Path, batch_rows: int) -> Iterator[pd.DataFrame]:
    """A Parquet file as frames of at most `batch_rows` rows, in order (never the whole file)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        yield batch.to_pandas()


SAMPLE_RECORD = Record(
    "id", "file", 1, "text", (Message("user", "text", "text"),), subject="s", source="s"
)
"""A record with every column set, whose frame gives the schema of a file of records."""
RECORD_SCHEMA = frame_schema(records_to_frame([SAMPLE_RECORD]))
"""The columns of a corpus file (`records_to_frame`) as `write_parquet` writes them."""


class ParquetStream:
    """A Parquet file written frame by frame, atomically, in row groups of `row_group_rows`.

    Rows go to a temporary file in the target's folder; `commit()` renames it into place and
    returns its sha256; leaving the `with` block without `commit()` (an exception, a refused
    input) deletes it, so no half-written file ever lies at `path`. At most one row group of
    rows is held. The bytes equal `write_parquet`'s for the same rows when they fit in one row
    group and every column of `schema` matches the frame's own (`frame_schema`): a file of any
    size has the same bytes whatever the frames it was written in. A stream that received no
    row writes `empty` (a frame with the columns and no row) as `write_parquet` would.

    Args:
        path: The final path.
        schema: The schema of every frame written (`frame_schema` of a sample).
        empty: What an empty file holds (default: `schema`'s empty table).
        row_group_rows: Rows per row group.
    """

    def __init__(
        self,
        path: str | Path,
        schema: pa.Schema,
        *,
        empty: pd.DataFrame | None = None,
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.rows = 0
        self.sha256: str | None = None
        self._empty = empty
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(tmp_name)
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> "ParquetStream":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sha256 is None:
            self.abort()

    def write(self, frame: pd.DataFrame) -> None:
        """Append the frame's rows (columns as in `schema`)."""
        if not len(frame):
            return
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= self.row_group_rows:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        start = 0
        rows = self.row_group_rows
        while table.num_rows - start >= rows or (final and start < table.num_rows):
            group = table.slice(start, rows).combine_chunks()
            self._writer.write_table(group, row_group_size=rows)
            start += group.num_rows
        if start < table.num_rows:
            self._pending, self._pending_rows = [table.slice(start)], table.num_rows - start

    def commit(self) -> str:
        """Write what is held, rename the file into place and return its sha256."""
        if self.rows:
            self._flush(final=True)
            assert self._writer is not None
            self._writer.close()
        else:
            empty = (
                self.schema.empty_table()
                if self._empty is None
                else pa.Table.from_pandas(self._empty, preserve_index=False)
            )
            pq.write_table(empty, self._tmp, compression="zstd")
        with open(self._tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self._tmp, self.path)
        self.sha256 = sha256_file(self.path)
        return self.sha256

    def abort(self) -> None:
        """Drop the temporary file (nothing is left at `path`)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._tmp.unlink(missing_ok=True)


def write_json(obj: Any, path: str | Path) -> str:
    """Write JSON atomically (sorted keys, UTF-8) and return the file's sha256."""
    payload = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    atomic_write(path, lambda tmp: tmp.write_bytes(payload))
    return sha256_file(path)


def write_text(text: str, path: str | Path) -> str:
    """Write UTF-8 text atomically and return the file's sha256."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return sha256_file(path)


# Stored outputs name files relative to the data root, so a data root can be moved (`mv`, then
# point SOVTUNE_DATA_ROOT or the profile at the new place) without breaking a link. In memory,
# paths are absolute; `to_stored`/`portable` make them relative for what is written (summaries,
# Dagster metadata, MLflow tags), `from_stored`/`resolved` read them back through the root.
_URI_SCHEMES = ("file://", "sqlite:///")
"""URIs whose path is a local file: `file:///root/x` is stored `file:x`, `sqlite:///root/x.db`
`sqlite:x.db`. Other URIs (a tracking server) are stored as they are."""


def to_stored(value: str | Path, root: str | Path) -> str:
    """A path or local URI under `root` as stored: relative to it (`curated/x.parquet`,
    `file:mlflow/artifacts/...`); anything outside `root` unchanged (a user's own model)."""
    text = str(value)
    base = Path(root).resolve()
    for scheme in _URI_SCHEMES:
        if text.startswith(scheme):
            rest = text[len(scheme) :]
            local = Path("/" + rest.lstrip("/"))
            relative = _relative(local, base)
            return text if relative is None else f"{scheme.split(':')[0]}:{relative}"
    if not os.path.isabs(text):
        return text
    relative = _relative(Path(text), base)
    return text if relative is None else relative


def from_stored(value: str, root: str | Path) -> str:
    """The absolute path or URI of a stored value (`to_stored`'s inverse); an absolute path or
    a remote URI unchanged; an empty string stays empty."""
    if not value:
        return value
    base = Path(root).resolve()
    for scheme in _URI_SCHEMES:
        short = scheme.split(":")[0] + ":"
        if value.startswith(short) and not value.startswith(scheme):
            local = base / value[len(short) :]
            return local.as_uri() if scheme == "file://" else f"{scheme}{local}"
    if value.startswith(_URI_SCHEMES) or "://" in value or os.path.isabs(value):
        return value
    return str(base / value)


def _relative(path: Path, base: Path) -> str | None:
    try:
        return Path(os.path.normpath(path)).relative_to(base).as_posix() or "."
    except ValueError:
        return None


def is_path_key(key: str) -> bool:
    """Keys of a stored summary that hold a file or folder path, or a local URI."""
    return key in ("path", "html", "json", "mlflow_artifacts") or key.endswith(
        ("_path", "_dir", "_uri")
    )


def portable(obj: Any, root: str | Path) -> Any:
    """A summary (dicts and lists, any depth) with every path-keyed string made relative to
    `root` (`to_stored`), for writing it down."""
    return _map_paths(obj, lambda v: to_stored(v, root))


def resolved(obj: Any, root: str | Path) -> Any:
    """A stored summary with every path-keyed string absolute again (`from_stored`)."""
    return _map_paths(obj, lambda v: from_stored(v, root))


def _map_paths(obj: Any, convert: Callable[[str], str]) -> Any:
    if isinstance(obj, dict):
        return {
            k: (
                convert(v)
                if isinstance(k, str) and is_path_key(k) and isinstance(v, str)
                else _map_paths(v, convert)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_map_paths(v, convert) for v in obj]
    if type(obj) is tuple:
        return tuple(_map_paths(v, convert) for v in obj)
    return obj
