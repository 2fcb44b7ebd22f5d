"""Atomic file writes: write to a temporary name beside the target, fsync, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "atomic_path",
    "read_json",
    "write_json",
    "write_parquet",
    "write_parquet_stream",
    "write_text",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` atomically.

    On error the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _write_with(target: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    with atomic_path(target) as tmp:
        write(tmp)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    _write_with(target, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically (sorted keys, UTF-8, final newline): equal objects, equal bytes."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_parquet(target: str | os.PathLike[str], df: pd.DataFrame) -> None:
    """Write a DataFrame to parquet atomically, without the pandas index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    _write_with(target, lambda p: pq.write_table(table, p, compression="zstd"))


def write_parquet_stream(target: str | os.PathLike[str], frames: Iterable[pd.DataFrame]) -> None:
    """Write DataFrames (same columns) as row groups of one parquet file, atomically.

    Only one frame is in memory at a time. An empty iterable raises ValueError and leaves
    ``target`` as it was.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(target) as tmp:
        writer = None
        try:
            for df in frames:
                table = pa.Table.from_pandas(df, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"{target}: no rows to write")
