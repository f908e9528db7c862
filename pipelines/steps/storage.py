"""Atomic, content-addressed file writes for every stage.

Every stage is safe to retry: outputs go to a temporary file in the same folder and are renamed
into place, so a crash never leaves a half-written file at a final path. Parquet is written
without timestamps so the same input gives byte-identical output and the same fingerprint.
"""

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


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
