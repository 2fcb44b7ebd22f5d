"""What the dashboard may read: stores and results files under one root, with safe paths.

Every path that comes from the browser is resolved here and refused unless it names a
store (or results file) under the root: no absolute paths, no ``..``, no symlink that
leads outside the root. The same holds for every file a store's own files name: before a
store is opened its folder is walked and refused when any entry is a symlink leading outside
the root or is not a plain file or folder (so :class:`xalign.store.Store` only ever reads
inside the root); entries of ``projections/index.json`` must name plain file names inside
the store's ``projections/`` folder; every file read here directly goes through
:meth:`Catalog.check_file`. Reads are cached (keyed by file modification times, so stores
and projections written while the app runs show up), and so are the neighbourhood
statistics of margin/CSLS retrieval (bounded in memory; the dashboard never writes into a
store). Nothing here imports Dash or runs a model.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import DataError, StoreError, XAlignError
from xalign.results import RESULTS_COLUMNS, parse_protocols, validate_results

__all__ = ["Catalog", "FitInfo", "Listing", "StoreInfo", "UnsafePathError"]

#: Columns that make a parquet/CSV file a results table (counts and intervals may be absent).
RESULTS_REQUIRED = frozenset(RESULTS_COLUMNS) - {"n", "ci_low", "ci_high"}
_STORE_TABLES = {"rows.parquet", "tokens.parquet"}
_SKIP_DIRS = {"arrays.zarr", "projections", "__pycache__", "node_modules"}
#: Memory bound of the margin/CSLS neighbourhood cache (float64 means per row and pair).
NEIGHBOURHOOD_CACHE_BYTES = 256 * 2**20


class UnsafePathError(StoreError):
    """A requested path is not a store or results file under the dashboard root."""


@dataclass(frozen=True)
class StoreInfo:
    rel: str
    label: str
    encoder: str
    rows: int
    layers: list[int]
    poolings: list[str]
    languages: list[str]
    has_tokens: bool
    attentions: str
    projections: int
    corpus: str
    fingerprint: str
    id: str = ""
    partners: tuple[tuple[str, ...], ...] = ()


@dataclass
class Listing:
    root: Path
    stores: list[StoreInfo] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FitInfo:
    fit_id: str
    method: str
    pooling: str
    layers: dict[int, dict[str, Any]]
    bounds: tuple[float, float, float, float]
    scheme: str
    partners: tuple[str, ...]


#: A projection file named by ``projections/index.json``: a plain file name, no folders.
_PROJECTION_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,200}\.parquet")


class _LRU:
    """A thread-safe LRU cache bounded by entries (and by bytes when ``nbytes`` is given).

    Concurrent requests for a missing key compute it once: the others wait for that result
    (a margin/CSLS neighbourhood can take minutes on a large store).
    """

    def __init__(
        self,
        maxsize: int,
        *,
        max_bytes: int | None = None,
        nbytes: Callable[[Any], int] | None = None,
    ) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.nbytes = nbytes
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.sizes: dict[Any, int] = {}
        self.lock = threading.Lock()
        self.pending: dict[Any, threading.Lock] = {}

    def __contains__(self, key: Any) -> bool:
        with self.lock:
            return key in self.data

    def _put(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        if self.nbytes is not None:
            self.sizes[key] = int(self.nbytes(value))
        while len(self.data) > 1 and (
            len(self.data) > self.maxsize
            or (self.max_bytes is not None and sum(self.sizes.values()) > self.max_bytes)
        ):
            old, _ = self.data.popitem(last=False)
            self.sizes.pop(old, None)

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
            gate = self.pending.setdefault(key, threading.Lock())
        with gate:
            with self.lock:
                if key in self.data:
                    self.data.move_to_end(key)
                    return self.data[key]
            try:
                value = make()
            except BaseException:
                with self.lock:
                    self.pending.pop(key, None)
                raise
            with self.lock:
                self._put(key, value)
                self.pending.pop(key, None)
        return value


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return -1


class Catalog:
    """Stores and results files under ``root``, read lazily with caches.

    Parameters
    ----------
    root : path
        The folder the dashboard serves; it must exist.
    max_depth : int
        How deep to look for stores below the root.
    """

    def __init__(self, root: str | os.PathLike[str], *, max_depth: int = 6) -> None:
        root = Path(root)
        if not root.is_dir():
            raise StoreError(f"--root {root}: no such folder")
        self.root = root.resolve()
        self.max_depth = max_depth
        self._stores = _LRU(32)
        self._tables = _LRU(16)
        self._coords = _LRU(256)
        self._vectors = _LRU(8)
        self._misc = _LRU(64)
        self._guards = _LRU(64)
        # float64 neighbourhood means: at most 8 bytes per store row and language pair
        self._neigh = _LRU(4096, max_bytes=NEIGHBOURHOOD_CACHE_BYTES, nbytes=_nbytes)
        self._progress_lock = threading.Lock()
        self._progress: dict[str, Any] = {}

    # ------------------------------------------------------------------ safe paths
    def resolve(self, rel: Any, *, kind: str = "store") -> Path:
        """The real path of a store (``kind="store"``) or results file under the root.

        Raises
        ------
        UnsafePathError
            Not a string, absolute, containing ``..`` or a backslash, leading outside the
            root (also through a symlink), or not a store / results file.
        """
        if not isinstance(rel, str) or not rel or len(rel) > 1024 or "\x00" in rel:
            raise UnsafePathError(f"{rel!r}: expected a relative path under the dashboard root")
        pure = PurePosixPath(rel)
        if pure.is_absolute() or "\\" in rel or ".." in pure.parts or rel.startswith("~"):
            raise UnsafePathError(f"{rel!r}: only paths below the dashboard root are served")
        try:
            path = (self.root / pure).resolve(strict=True)
        except (OSError, RuntimeError):
            raise UnsafePathError(f"{rel!r}: no such store under the dashboard root") from None
        if not path.is_relative_to(self.root):
            raise UnsafePathError(f"{rel!r}: leads outside the dashboard root")
        if kind == "store":
            from xalign.store import is_store

            if not path.is_dir() or not is_store(path):
                raise UnsafePathError(f"{rel!r}: not an xalign store under the dashboard root")
        elif kind == "results":
            if not path.is_file() or path.suffix not in (".parquet", ".csv"):
                raise UnsafePathError(f"{rel!r}: not a results file under the dashboard root")
        else:
            raise ValueError(f"kind={kind!r}: allowed values are store, results")
        return path

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix() or "."

    def _inside(self, real: str | Path) -> bool:
        return Path(real).is_relative_to(self.root)

    def _shown(self, path: str | Path) -> str:
        """``path`` relative to the root for messages (never the server's absolute path)."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).name

    def check_file(self, path: str | os.PathLike[str]) -> Path:
        """The real path of a file the app is about to read, refused unless it is a regular
        file inside the root once every symlink is resolved.

        Raises
        ------
        UnsafePathError
            The path leads outside the root (directly or through a symlink), or is not a
            regular file (a folder, a FIFO, a device).
        """
        real = Path(os.path.realpath(path))
        shown = self._shown(path)
        if not self._inside(real):
            raise UnsafePathError(f"{shown}: leads outside the dashboard root; not read")
        try:
            st = os.stat(real)
        except OSError:
            raise StoreError(f"{shown}: no such file under the dashboard root") from None
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"{shown}: not a regular file; not read")
        return real

    def guard_store(self, path: Path) -> None:
        """Refuse a store folder that holds anything the app must not read through it.

        Walks the whole folder (symlinked folders inside the root included, once each): every
        symlink must resolve inside the root and every entry must be a regular file or a
        folder. Cached per store until its manifest, folder or arrays change.

        Raises
        ------
        UnsafePathError
            Naming the first offending entry, relative to the root.
        """
        key = (
            "guard",
            str(path),
            _mtime(path),
            _mtime(path / "manifest.json"),
            _mtime(path / "arrays.zarr"),
            _mtime(path / "projections"),
        )
        self._guards.get(key, lambda: self._walk_guard(path))

    def _walk_guard(self, top: Path) -> bool:
        rel = self._shown(top)
        seen: set[str] = set()
        todo = [str(top)]
        while todo:
            folder = todo.pop()
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            try:
                entries = list(os.scandir(folder))
            except OSError as e:
                raise StoreError(f"{rel}: cannot list {self._shown(folder)} ({e.strerror})") from e
            for entry in entries:
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if not self._inside(target):
                        raise UnsafePathError(
                            f"{rel}: {os.path.relpath(entry.path, top)} is a symlink leading "
                            "outside the dashboard root; the dashboard does not read this store"
                        )
                    try:
                        mode = os.stat(target).st_mode
                    except OSError:
                        continue  # a dangling link: reading it fails with a clear error later
                else:
                    try:
                        mode = entry.stat(follow_symlinks=False).st_mode
                    except OSError:
                        continue
                if stat.S_ISDIR(mode):
                    todo.append(entry.path)
                elif not stat.S_ISREG(mode):
                    raise UnsafePathError(
                        f"{rel}: {os.path.relpath(entry.path, top)} is not a regular file; "
                        "the dashboard does not read this store"
                    )
        return True

    # ------------------------------------------------------------------ discovery
    def scan(self) -> Listing:
        """Stores (folders holding an xalign ``manifest.json``) and results files under root."""
        from xalign.project import store_id
        from xalign.store import Store, is_store

        out = Listing(root=self.root)
        base_depth = len(self.root.parts)
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            here = Path(dirpath)
            depth = len(here.parts) - base_depth
            dirnames[:] = sorted(
                d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")
            )
            if depth >= self.max_depth:
                dirnames[:] = []
            in_store = "manifest.json" in filenames and is_store(here)
            if in_store:
                rel = self.rel(here)
                try:
                    self.guard_store(here)
                    s = _checked(Store.open(here), rel)
                    try:
                        entries = self._read_index(here)
                    except StoreError as e:
                        entries = []
                        out.skipped.append(f"{rel}: projections not shown: {e}")
                    fits = {
                        tuple(x["id"] for x in e.get("fit", {}).get("stores", [])): None
                        for e in entries
                    }
                    out.stores.append(
                        StoreInfo(
                            rel=rel,
                            label=s.label,
                            encoder=str(s.encoder.get("name")),
                            rows=len(s),
                            layers=s.layers,
                            poolings=s.poolings,
                            languages=list(s.corpus.get("languages") or []),
                            has_tokens=s.has_tokens,
                            attentions=s.attention_mode,
                            projections=len(entries),
                            corpus=str(s.corpus.get("name")),
                            fingerprint=str(s.corpus.get("fingerprint")),
                            id=store_id(s),
                            partners=tuple(f for f in fits if len(f) > 1),
                        )
                    )
                except StoreError as e:
                    out.skipped.append(f"{rel}: {e}")
            for f in sorted(filenames):
                if not f.endswith((".parquet", ".csv")) or f.startswith("."):
                    continue
                if in_store and f in _STORE_TABLES:
                    continue
                p = here / f
                try:
                    self.check_file(p)  # no symlink out of the root, no FIFO to hang on
                except StoreError:
                    continue
                if _is_results(p):
                    out.results.append(self.rel(p))
        return out

    # ------------------------------------------------------------------ stores
    def store(self, rel: str) -> Any:
        """The opened store ``rel`` (after :meth:`guard_store`)."""
        from xalign.store import Store

        path = self.resolve(rel)
        self.guard_store(path)
        key = (str(path), _mtime(path / "manifest.json"))
        return self._stores.get(key, lambda: _checked(Store.open(path), rel))

    def rows(self, rel: str) -> pd.DataFrame:
        s = self.store(rel)
        self.check_file(s.path / "rows.parquet")
        try:
            rows = s.rows
        except XAlignError:
            raise
        except (OSError, ValueError) as e:
            raise StoreError(f"{rel}/rows.parquet: cannot be read ({e})") from e
        if "lang" not in rows.columns or "text" not in rows.columns or "id" not in rows.columns:
            raise StoreError(f"{rel}/rows.parquet: missing the id, lang or text column")
        if len(rows) != len(s):
            raise StoreError(
                f"{rel}/rows.parquet: {len(rows)} rows but the manifest counts {len(s)}; "
                "the store is damaged"
            )
        return rows

    def index(self, rel: str) -> list[dict[str, Any]]:
        """The validated entries of a store's projection index (see :meth:`_read_index`)."""
        path = self.resolve(rel)
        self.guard_store(path)
        key = ("index", str(path), _mtime(path / "projections" / "index.json"))
        return self._misc.get(key, lambda: self._read_index(path))

    def _read_index(self, path: Path) -> list[dict[str, Any]]:
        """Entries of ``projections/index.json`` whose file exists, each checked first.

        Raises
        ------
        StoreError
            An entry is malformed or names anything but a plain ``.parquet`` file name in the
            store's ``projections/`` folder (an absolute path, ``../``, a subfolder), or that
            file leads outside the root.
        """
        from xalign.project import read_index

        folder = path / "projections"
        index = folder / "index.json"
        if not os.path.lexists(index):
            return []
        where = f"{self._shown(index)}"
        try:
            raw = json.loads(self.check_file(index).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise StoreError(f"{where}: not valid JSON ({e})") from e
        except OSError as e:
            raise StoreError(f"{where}: cannot be read ({e.strerror or e})") from e
        entries = raw.get("entries", []) if isinstance(raw, dict) else None
        if not isinstance(entries, list):
            raise StoreError(f"{where}: not an xalign projection index (no list of entries)")
        for i, e in enumerate(entries):
            problem = _entry_problem(e)
            if problem:
                raise StoreError(f"{where}: entry {i} {problem}; these projections are not shown")
        try:
            kept = read_index(path)["entries"]
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise StoreError(f"{where}: malformed projection index ({e})") from e
        for e in kept:
            self.check_file(folder / e["file"])
        return kept

    def methods(self, rel: str) -> dict[str, list[str]]:
        """Cached projection methods → poolings they exist for."""
        out: dict[str, list[str]] = {}
        for e in self.index(rel):
            out.setdefault(e["method"], [])
            if e["pooling"] not in out[e["method"]]:
                out[e["method"]].append(e["pooling"])
        return out

    def fit(
        self, rel: str, *, method: str, pooling: str, partner: str | None = None
    ) -> FitInfo | None:
        """The projection fit to show for a store (shared with ``partner`` when possible)."""
        from xalign.project import find_fit, store_id

        pid = store_id(self.store(partner)) if partner else None
        fid = find_fit(self.index(rel), method=method, pooling=pooling, partner=pid)
        return None if fid is None else self.fit_by_id(rel, fid)

    def fit_by_id(self, rel: str, fit_id: str) -> FitInfo | None:
        """One fit of a store's projection cache: its entries by layer and joint bounds."""
        entries = [e for e in self.index(rel) if e["fit_id"] == fit_id]
        if not entries:
            return None
        b = np.array([e["bounds"] for e in entries], dtype=np.float64)
        fit = entries[0].get("fit", {})
        return FitInfo(
            fit_id=fit_id,
            method=entries[0]["method"],
            pooling=entries[0]["pooling"],
            layers={int(e["layer"]): e for e in entries},
            bounds=(
                float(b[:, 0].min()),
                float(b[:, 1].max()),
                float(b[:, 2].min()),
                float(b[:, 3].max()),
            ),
            scheme=str(fit.get("scheme", "")),
            partners=tuple(x["id"] for x in fit.get("stores", [])),
        )

    def coords(self, rel: str, entry: dict[str, Any]) -> pd.DataFrame:
        """One cached projection file: ``row, x, y`` (row order of the fit)."""
        name = entry.get("file")
        if not isinstance(name, str) or not _PROJECTION_FILE.fullmatch(name):
            raise UnsafePathError(f"{rel}: projection file {name!r} is not a plain file name")
        path = self.check_file(self.resolve(rel) / "projections" / name)
        key = (str(path), _mtime(path))
        n_rows = len(self.store(rel))

        def load() -> pd.DataFrame:
            try:
                df = pd.read_parquet(path, columns=["row", "x", "y"])
                df = df.astype({"row": np.int64, "x": np.float32, "y": np.float32})
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise StoreError(f"{rel}/projections/{name}: cannot be read ({e})") from e
            r = df["row"].to_numpy()
            if len(r) and (r.min() < 0 or r.max() >= n_rows):
                raise StoreError(
                    f"{rel}/projections/{name}: row indices outside 0..{n_rows - 1}; "
                    "the projection does not belong to this store (re-run xalign.project)"
                )
            return df

        return self._coords.get(key, load)

    def points(self, rel: str, entry: dict[str, Any]) -> pd.DataFrame:
        """Rows of one fit joined with their language, text, label and group (no x, y)."""
        s = self.store(rel)
        key = ("points", str(s.path), entry["fit_id"])

        def make() -> pd.DataFrame:
            rows = self.coords(rel, entry)["row"].to_numpy()
            r = self.rows(rel)
            cols = ["row", "lang", "text", "group", "id"] + (["label"] if "label" in r else [])
            df = r.iloc[rows][cols].reset_index(drop=True)
            df["row"] = rows
            return df

        return self._misc.get(key, make)

    def vectors(self, rel: str, *, pooling: str, layer: int) -> np.ndarray:
        s = self.store(rel)
        key = (str(s.path), _mtime(s.path / "manifest.json"), pooling, int(layer))
        return self._vectors.get(key, lambda: s.sentences(pooling=pooling, layer=int(layer)))

    def neighbourhood(
        self,
        rel: str,
        *,
        pooling: str,
        layer: int,
        src_lang: str,
        tgt_lang: str,
        k: int,
        center: bool,
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Neighbourhood means of margin/CSLS between two languages of a store, cached.

        Returns ``(fwd, bwd, cached)``: :func:`xalign.metrics.neighbourhood_means` of the
        ``src_lang`` rows against the ``tgt_lang`` rows (store order; numpy backend), and
        whether they came from the cache. The cache is in memory (the dashboard never writes
        into a store), keyed by store, manifest, pooling, layer, language pair, ``k`` and
        centring, bounded by :data:`NEIGHBOURHOOD_CACHE_BYTES`; one entry serves both
        directions of a pair.
        """
        s = self.store(rel)
        a, b = sorted((str(src_lang), str(tgt_lang)))
        key = (
            "neighbourhood",
            str(s.path),
            _mtime(s.path / "manifest.json"),
            json.dumps(s.manifest.get("identity"), sort_keys=True, default=str),
            str(pooling),
            int(layer),
            a,
            b,
            int(k),
            bool(center),
        )
        cached = key in self._neigh

        def make() -> tuple[np.ndarray, np.ndarray]:
            from xalign.metrics import neighbourhood_means

            X = self.vectors(rel, pooling=pooling, layer=layer)
            lang = self.rows(rel)["lang"].astype(str).to_numpy()
            return neighbourhood_means(
                X[lang == a], X[lang == b], k=int(k), center=bool(center), backend="numpy"
            )

        fa, fb = self._neigh.get(key, make)
        return (fa, fb, cached) if a == src_lang else (fb, fa, cached)

    # ------------------------------------------------------------------ progress
    def set_progress(self, **info: Any) -> None:
        """Record what a long computation is doing (read by the page's progress poller)."""
        with self._progress_lock:
            if info:
                self._progress = {**info, "updated": time.monotonic()}
            else:
                self._progress = {}

    def progress(self) -> dict[str, Any]:
        """The latest :meth:`set_progress` record (empty when nothing long is running)."""
        with self._progress_lock:
            return dict(self._progress)

    # ------------------------------------------------------------------ results
    def results(self, rel: str) -> pd.DataFrame:
        """A results table with parsed protocol columns (``p:<key>``)."""
        path = self.check_file(self.resolve(rel, kind="results"))
        key = (str(path), _mtime(path))

        def load() -> pd.DataFrame:
            try:
                df = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
            except (OSError, ValueError, UnicodeDecodeError) as e:
                raise StoreError(f"{rel}: cannot be read as a results table ({e})") from e
            # the results room's own checks (every column's kind, layers whole, protocols
            # JSON, one row per key), so a damaged table is refused here as in the report;
            # tables written without uncertainty columns are still shown (no intervals)
            for c in ("n", "ci_low", "ci_high"):
                if c not in df.columns:
                    df[c] = np.nan
            try:
                df = validate_results(df)
            except DataError as e:
                raise StoreError(f"{rel}: {e}") from e
            return parse_protocols(df)

        return self._tables.get(key, load)


def _checked(store: Any, rel: str) -> Any:
    """``store`` once the manifest facts the dashboard uses are known to be well formed."""
    try:
        layers = store.layers
        ok = (
            bool(layers)
            and all(isinstance(x, int) and not isinstance(x, bool) for x in layers)
            and bool(store.poolings)
            and all(isinstance(x, str) for x in store.poolings)
            and all(isinstance(x, int) for x in store.attention_layers)
            and isinstance(store.encoder, dict)
            and isinstance(store.corpus, dict)
            and len(store) >= 0
        )
        str(store.attention_mode), store.label, store.has_tokens
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise StoreError(f"{rel}/manifest.json: malformed ({type(e).__name__}: {e})") from e
    if not ok:
        raise StoreError(f"{rel}/manifest.json: malformed layers or poolings")
    return store


def _nbytes(value: Any) -> int:
    return int(sum(getattr(v, "nbytes", 0) for v in value))


def _finite_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _entry_problem(e: Any) -> str | None:
    """Why a projection-index entry cannot be used (None when it can)."""
    if not isinstance(e, dict):
        return "is not an object"
    f = e.get("file")
    if not isinstance(f, str) or not _PROJECTION_FILE.fullmatch(f):
        return (
            f"names file {str(f)[:200]!r}, not a plain .parquet file name inside the store's "
            "projections/ folder (absolute paths, ../ and subfolders are refused)"
        )
    for k in ("fit_id", "method", "pooling"):
        if not isinstance(e.get(k), str):
            return f"has no text {k!r}"
    if isinstance(e.get("layer"), bool) or not isinstance(e.get("layer"), int):
        return "has no integer 'layer'"
    b = e.get("bounds")
    if not isinstance(b, list) or len(b) != 4 or not all(_finite_number(x) for x in b):
        return "has no 'bounds' of four finite numbers"
    fit = e.get("fit", {})
    stores = fit.get("stores", []) if isinstance(fit, dict) else None
    if not isinstance(stores, list) or not all(
        isinstance(x, dict) and isinstance(x.get("id"), str) for x in stores
    ):
        return "has a malformed 'fit' (expected {'stores': [{'id': ...}, ...]})"
    if not isinstance(e.get("created", ""), str):
        return "has a non-text 'created'"
    return None


def _is_results(p: Path) -> bool:
    try:
        if p.suffix == ".parquet":
            import pyarrow.parquet as pq

            cols = set(pq.read_schema(p).names)
        else:
            with open(p, encoding="utf-8") as f:
                cols = {c.strip() for c in f.readline().split(",")}
    except Exception:
        return False
    return cols >= RESULTS_REQUIRED
