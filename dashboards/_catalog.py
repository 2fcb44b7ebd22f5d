"""What the dashboard may read: stores and results files under one root, with safe paths.

Every path that comes from the browser is resolved here and refused unless it names a
store (or results file) under the root: no absolute paths, no ``..``, no symlink that
leads outside the root. Reads are cached (keyed by file modification times, so stores and
projections written while the app runs show up). Nothing here imports Dash or runs a model.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import StoreError

__all__ = ["Catalog", "FitInfo", "Listing", "StoreInfo", "UnsafePathError"]

#: Columns that make a parquet/CSV file a results table.
RESULTS_REQUIRED = frozenset(
    {"store", "checkpoint", "metric", "layer", "lang", "lang2", "value", "protocol"}
)
_STORE_TABLES = {"rows.parquet", "tokens.parquet"}
_SKIP_DIRS = {"arrays.zarr", "projections", "__pycache__", "node_modules"}


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


class _LRU:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        value = make()
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.maxsize:
                self.data.popitem(last=False)
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

    # ------------------------------------------------------------------ discovery
    def scan(self) -> Listing:
        """Stores (folders holding an xalign ``manifest.json``) and results files under root."""
        from xalign.project import read_index, store_id
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
                    s = Store.open(here)
                    try:
                        entries = read_index(s)["entries"]
                    except StoreError:
                        entries = []
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
                if p.is_symlink() and not p.resolve().is_relative_to(self.root):
                    continue
                if _is_results(p):
                    out.results.append(self.rel(p))
        return out

    # ------------------------------------------------------------------ stores
    def store(self, rel: str) -> Any:
        from xalign.store import Store

        path = self.resolve(rel)
        key = (str(path), _mtime(path / "manifest.json"))
        return self._stores.get(key, lambda: Store.open(path))

    def rows(self, rel: str) -> pd.DataFrame:
        return self.store(rel).rows

    def index(self, rel: str) -> list[dict[str, Any]]:
        from xalign.project import read_index

        path = self.resolve(rel)
        key = ("index", str(path), _mtime(path / "projections" / "index.json"))
        return self._misc.get(key, lambda: read_index(path)["entries"])

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
        path = self.resolve(rel) / "projections" / entry["file"]
        key = (str(path), _mtime(path))

        def load() -> pd.DataFrame:
            df = pd.read_parquet(path, columns=["row", "x", "y"])
            return df.astype({"row": np.int64, "x": np.float32, "y": np.float32})

        return self._coords.get(key, load)

    def points(self, rel: str, entry: dict[str, Any]) -> pd.DataFrame:
        """Rows of one fit joined with their language, text, label and group (no x, y)."""
        s = self.store(rel)
        key = ("points", str(s.path), entry["fit_id"])

        def make() -> pd.DataFrame:
            rows = self.coords(rel, entry)["row"].to_numpy()
            r = s.rows
            cols = ["row", "lang", "text", "group", "id"] + (["label"] if "label" in r else [])
            df = r.iloc[rows][cols].reset_index(drop=True)
            df["row"] = rows
            return df

        return self._misc.get(key, make)

    def vectors(self, rel: str, *, pooling: str, layer: int) -> np.ndarray:
        s = self.store(rel)
        key = (str(s.path), pooling, int(layer))
        return self._vectors.get(key, lambda: s.sentences(pooling=pooling, layer=int(layer)))

    # ------------------------------------------------------------------ results
    def results(self, rel: str) -> pd.DataFrame:
        """A results table with parsed protocol columns (``p:<key>``)."""
        from dashboards.figures import parse_protocols

        path = self.resolve(rel, kind="results")
        key = (str(path), _mtime(path))

        def load() -> pd.DataFrame:
            df = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
            missing = RESULTS_REQUIRED - set(df.columns)
            if missing:
                raise StoreError(f"{rel}: not a results table (missing {sorted(missing)})")
            df = df.astype({"lang": object, "lang2": object, "checkpoint": str})
            df["lang"] = df["lang"].where(df["lang"].notna(), None)
            df["lang2"] = df["lang2"].where(df["lang2"].notna(), None)
            return parse_protocols(df)

        return self._tables.get(key, load)


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
