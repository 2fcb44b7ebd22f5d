"""Atomic file writes: write to a temporary name beside the target, fsync, then rename."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "atomic_path",
    "check_output",
    "ensure_writable_dir",
    "exclusive_lock",
    "inside_store",
    "read_json",
    "write_json",
    "write_parquet",
    "write_parquet_stream",
    "write_text",
]


_STORE_MARK = "manifest.json"


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.realpath(os.fspath(path))))


def inside_store(path: str | os.PathLike[str]) -> Path | None:
    """The store folder that holds ``path`` (the path itself or an ancestor), or None."""
    p = _resolved(path)
    for folder in (p, *p.parents):
        m = folder / _STORE_MARK
        try:
            if m.is_file() and '"xalign-store"' in m.read_text(encoding="utf-8", errors="replace"):
                return folder
        except OSError:
            continue
    return None


def ensure_writable_dir(folder: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """Create ``folder`` (and parents) and prove it takes a file, before any expensive work.

    Raises :class:`~xalign.errors.ConfigError` with the path and the reason (a file where a
    folder is expected, no permission, a read-only or pseudo file system, a full disk).
    """
    from xalign.errors import ConfigError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".xalign-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise ConfigError(f"{what} {folder}: a file stands where a folder is expected") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ConfigError(f"{what} {folder}: cannot write there ({reason})") from None
    return folder


def check_output(
    out: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    suffixes: Iterable[str] | None = None,
    what: str = "--out",
    folder: bool = False,
    into_store: bool = False,
) -> Path:
    """Refuse an output path that would destroy an input or be written as something else.

    - ``out`` may not be one of ``inputs``, lie inside an input folder, or contain one;
    - ``out`` may not lie inside a store folder (only extraction and projection write there,
      through the store API), unless ``into_store``;
    - its suffix must be one of ``suffixes`` (when given; case-insensitive);
    - its folder is created and must take a file (checked now, before any expensive work).

    Returns ``out`` as a Path; raises :class:`~xalign.errors.ConfigError` with one line.
    """
    from xalign.errors import ConfigError

    out_p = Path(out)
    if suffixes is not None:
        allowed = [x.lower() for x in suffixes]
        if out_p.suffix.lower() not in allowed:
            raise ConfigError(
                f"{what} {out_p}: unknown output type {out_p.suffix or '(no suffix)'!r}; "
                f"use one of {', '.join(allowed)}"
            )
    target = _resolved(out_p)
    for inp in inputs:
        src = _resolved(inp)
        if target == src:
            raise ConfigError(f"{what} {out_p} is also an input of this command; choose another")
        if src in target.parents:
            raise ConfigError(
                f"{what} {out_p} lies inside the input {inp}; write it somewhere else"
            )
        if target in src.parents:
            raise ConfigError(
                f"{what} {out_p} would contain the input {inp}; write it somewhere else"
            )
    if not into_store:
        store = inside_store(target if folder else target.parent)
        if store is None and target.is_dir():
            store = inside_store(target)
        if store is not None:
            raise ConfigError(
                f"{what} {out_p} lies inside the store {store}; only extraction and projection "
                "write into a store: write it beside the store instead"
            )
    if out_p.exists() and not folder and out_p.is_dir():
        raise ConfigError(f"{what} {out_p}: a folder stands where a file is expected")
    if out_p.exists() and folder and not out_p.is_dir():
        raise ConfigError(f"{what} {out_p}: a file stands where a folder is expected")
    ensure_writable_dir(
        out_p if folder else (out_p.parent if str(out_p.parent) else Path(".")),
        what=f"{what} folder",
    )
    return out_p


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


@contextmanager
def exclusive_lock(lock_path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an advisory lock on ``lock_path`` (POSIX ``flock``; the file is created if needed);
    elsewhere, just go ahead. Processes that convert or export into a shared cache take it so
    that only one does the work."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def default_cache_dir() -> Path:
    """The xalign cache folder: ``$XALIGN_CACHE``, else ``$XDG_CACHE_HOME/xalign``, else
    ``~/.cache/xalign``."""
    if os.environ.get("XALIGN_CACHE"):
        return Path(os.environ["XALIGN_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "xalign"
    return Path.home() / ".cache" / "xalign"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in a streaming way."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_file_cached(path: str | os.PathLike[str]) -> str:
    """:func:`sha256_file`, remembered per (path, size, mtime) for this process."""
    st = os.stat(path)
    return _sha256_memo(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_memo(path: str, _size: int, _mtime_ns: int) -> str:
    return sha256_file(path)


def replace_dir(tmp: Path, folder: Path) -> None:
    """Rename the finished folder ``tmp`` to ``folder``, replacing a folder already there
    (stale, damaged or forced). If another process renamed its own copy into place first, that
    one is kept and ``tmp`` is removed."""
    import shutil
    import time

    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        with suppress(FileNotFoundError):
            folder.rename(old)
    try:
        tmp.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
