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
