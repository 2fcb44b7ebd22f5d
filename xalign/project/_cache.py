"""The projection cache inside a store: ``projections/*.parquet`` + ``projections/index.json``.

One parquet file per (fit, layer) with columns ``row`` (store row index), ``id`` (corpus id),
``x``, ``y`` (float32); the index lists every file with the key that made it::

    {"format": "xalign-projections", "version": 1, "entries": [
      {"key", "file", "fit_id", "layer", "pooling", "method", "params", "sample", "seed", "n",
       "bounds": [xmin, xmax, ymin, ymax], "fit": {"scheme", "stores": [{"id", "label"}],
       "layers"}, "created", "xalign_version"}, ...]}

``fit_id`` hashes everything that changes the coordinates (method, parameters, pooling,
sample size, seed, the layers and the stores fitted together); ``key`` is ``fit_id`` plus the
layer. Files and the index are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from xalign._io import read_json, write_json, write_parquet
from xalign.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from xalign.store import Store

__all__ = [
    "FOLDER",
    "INDEX",
    "find_fit",
    "fit_entries",
    "load_projection",
    "projection_index",
    "read_index",
    "read_projection_file",
    "store_id",
    "write_projections",
]

FOLDER = "projections"
INDEX = "index.json"
INDEX_FORMAT = "xalign-projections"
INDEX_VERSION = 1
#: The only file names an index entry may give: one plain parquet file in ``projections/``.
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.parquet")
_COLUMNS = ("row", "id", "x", "y")


def _hash(obj: Any, n: int = 16) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def store_id(store: Store) -> str:
    """A short stable id of a store: the hash of its identity (encoder, corpus, extraction)."""
    return _hash(store.manifest.get("identity") or store.manifest, 12)


def _root(store: Store | str | os.PathLike[str]) -> Path:
    return Path(store) if isinstance(store, str | os.PathLike) else Path(store.path)


def _problem(entry: Any) -> str | None:
    """Why an index entry cannot be used, or None."""
    if not isinstance(entry, dict):
        return "is not an object"
    for key, kind in (("key", str), ("file", str), ("fit_id", str), ("method", str)):
        if not isinstance(entry.get(key), kind):
            return f"has no {kind.__name__} {key!r}"
    if not isinstance(entry.get("pooling"), str):
        return "has no str 'pooling'"
    layer = entry.get("layer")
    if not isinstance(layer, int) or isinstance(layer, bool):
        return "has no integer 'layer'"
    name = entry["file"]
    if not _FILE.fullmatch(name):
        return (
            f"names the file {name!r}: only a plain .parquet file name inside the store's "
            f"{FOLDER}/ folder is accepted (no absolute path, ../ or subfolder)"
        )
    return None


def _folder(root: Path) -> Path:
    """``root/projections``, refused when it leads out of the store (a symbolic link)."""
    folder = root / FOLDER
    if os.path.lexists(folder) and os.path.realpath(folder) != os.path.join(
        os.path.realpath(root), FOLDER
    ):
        raise StoreError(
            f"{folder}: the projection folder is a link leading out of the store "
            f"(to {os.path.realpath(folder)}); refusing to use it"
        )
    return folder


def _inside(folder: Path, name: str) -> bool:
    """Whether ``folder/name`` is a file that stays in ``folder`` after symbolic links."""
    path = folder / name
    return path.is_file() and os.path.dirname(os.path.realpath(path)) == os.path.realpath(folder)


def read_index(
    store: Store | str | os.PathLike[str], *, on_bad: Literal["raise", "drop"] = "raise"
) -> dict[str, Any]:
    """The projection index of a store (an empty one when nothing was projected yet).

    Entries whose file is missing are left out. An entry that is malformed or names a file
    anywhere but directly in the store's ``projections/`` folder (an absolute path, ``../``,
    a subfolder, a symbolic link leading out) is never followed: it raises
    :class:`~xalign.errors.StoreError` (``on_bad="raise"``) or is left out (``"drop"``, what
    ``python -m xalign.project --overwrite`` does while it rebuilds the index).
    """
    root = _root(store)
    folder = _folder(root)
    path = folder / INDEX
    empty = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "entries": []}
    if not os.path.lexists(path):
        return empty
    redo = f"recompute it: python -m xalign.project {root} --overwrite"
    if not _inside(folder, INDEX):
        if on_bad == "drop":
            return empty
        raise StoreError(f"{path}: not a file inside the store's {FOLDER}/ folder; {redo}")
    try:
        data = read_json(path)
    except (ValueError, UnicodeDecodeError) as e:
        if on_bad == "drop":
            return empty
        raise StoreError(f"{path}: projection index is not valid JSON ({e}); {redo}") from e
    except OSError as e:
        raise StoreError(f"{path}: cannot be read ({e.strerror or e})") from e
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt != INDEX_FORMAT or not isinstance(data.get("entries", []), list):
        if on_bad == "drop":
            return empty
        raise StoreError(f"{path}: not an xalign projection index (format={fmt!r}); {redo}")
    version = data.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        if on_bad == "drop":
            return empty
        raise StoreError(f"{path}: projection index version {version!r} is not a number; {redo}")
    if version > INDEX_VERSION:
        raise StoreError(f"{path}: projection index version {version} is newer than xalign")
    entries = []
    for i, entry in enumerate(data.get("entries", [])):
        problem = _problem(entry)
        if (
            problem is None
            and os.path.lexists(folder / entry["file"])
            and not _inside(folder, entry["file"])
        ):
            problem = f"names {entry['file']!r}, which leads out of the {FOLDER}/ folder"
        if problem is not None:
            if on_bad == "drop":
                continue
            raise StoreError(f"{path}: entry {i} {problem}; refusing to read it ({redo})")
        if _inside(folder, entry["file"]):
            entries.append(entry)
    return {**data, "entries": entries}


def projection_index(store: Store | str | os.PathLike[str]) -> pd.DataFrame:
    """One row per cached projection: key, file, fit_id, layer, pooling, method, sample, seed..."""
    cols = [
        "key",
        "file",
        "fit_id",
        "layer",
        "pooling",
        "method",
        "sample",
        "seed",
        "n",
        "params",
        "created",
    ]
    entries = read_index(store)["entries"]
    return pd.DataFrame([{c: e.get(c) for c in cols} for e in entries], columns=cols)


def write_projections(
    store: Store | str | os.PathLike[str], items: list[tuple[dict[str, Any], pd.DataFrame]]
) -> Path:
    """Write ``(entry, frame)`` pairs into the store's cache and update its index once."""
    folder = _folder(_root(store))
    folder.mkdir(parents=True, exist_ok=True)
    new: dict[str, dict[str, Any]] = {}
    for entry, frame in items:
        problem = _problem(entry)
        if problem is not None:
            raise ConfigError(f"projection entry {problem}")
        write_parquet(folder / entry["file"], frame)
        new[entry["key"]] = entry
    # Entries that cannot be used are dropped, never followed: the new index is clean.
    index = read_index(store, on_bad="drop")
    kept = [e for e in index["entries"] if e["key"] not in new]
    entries = sorted(kept + list(new.values()), key=lambda e: (e["fit_id"], e["layer"]))
    write_json(
        folder / INDEX, {"format": INDEX_FORMAT, "version": INDEX_VERSION, "entries": entries}
    )
    return folder / INDEX


def fit_entries(store: Store | str | os.PathLike[str], fit_id: str) -> dict[int, dict[str, Any]]:
    """The entries of one fit, by layer."""
    return {int(e["layer"]): e for e in read_index(store)["entries"] if e["fit_id"] == fit_id}


def find_fit(
    entries: list[dict[str, Any]],
    *,
    method: str,
    pooling: str,
    partner: str | None = None,
    layer: int | None = None,
) -> str | None:
    """The fit to show for (method, pooling): one made together with ``partner`` when there is
    one (a before/after pair shares its axes), else the newest; None when nothing matches."""
    cands = [
        e
        for e in entries
        if e["method"] == method
        and e["pooling"] == pooling
        and (layer is None or int(e["layer"]) == int(layer))
    ]
    if not cands:
        return None

    def score(e: dict[str, Any]) -> tuple[int, str, str]:
        ids = [s["id"] for s in e.get("fit", {}).get("stores", [])]
        return (int(partner is not None and partner in ids), e.get("created", ""), e["fit_id"])

    return max(cands, key=score)["fit_id"]


def load_projection(
    store: Store | str | os.PathLike[str],
    *,
    layer: int,
    pooling: str = "mean",
    method: str = "pca",
    fit_id: str | None = None,
    with_rows: bool = False,
) -> pd.DataFrame:
    """Cached 2-D coordinates of one layer: columns ``row, id, x, y`` (``.attrs["entry"]``).

    Without ``fit_id`` the newest fit for (method, pooling) that covers ``layer`` is used.
    With ``with_rows=True`` (needs a :class:`~xalign.store.Store`) the store's ``lang, text,
    group, label`` columns are joined on ``row``: the frame ``xalign.figures.fig_clusters``
    draws.

    Raises
    ------
    ConfigError
        Nothing cached for these keys; the message gives the ``python -m xalign.project``
        command that computes it.
    StoreError
        The index or the cached file is damaged (see :func:`read_projection_file`).
    """
    entries = read_index(store)["entries"]
    fid = fit_id or find_fit(entries, method=method, pooling=pooling, layer=layer)
    match = [e for e in entries if e["fit_id"] == fid and int(e["layer"]) == int(layer)]
    if not match:
        root = _root(store)
        raise ConfigError(
            f"no cached {method} projection of layer {layer} (pooling {pooling}) in {root}; "
            f"compute it: python -m xalign.project {root} --methods {method} --layers all "
            f"--pooling {pooling}"
        )
    entry = match[0]
    if with_rows and isinstance(store, str | os.PathLike):
        from xalign.store import Store

        store = Store.open(store)
    df = read_projection_file(store, entry)
    if with_rows:
        assert not isinstance(store, str | os.PathLike)
        rows = store.rows
        cols = [c for c in ("lang", "text", "group", "label") if c in rows.columns]
        extra = rows.iloc[df["row"].to_numpy()][cols].reset_index(drop=True)
        df = pd.concat([df.reset_index(drop=True), extra], axis=1)
    df.attrs["entry"] = entry
    return df


def _n_rows(store: Store | str | os.PathLike[str]) -> int | None:
    if not isinstance(store, str | os.PathLike):
        return len(store)
    try:
        counts = read_json(_root(store) / "manifest.json")["counts"]
        return int(counts["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_projection_file(
    store: Store | str | os.PathLike[str], entry: dict[str, Any]
) -> pd.DataFrame:
    """The checked contents of one cached projection file: columns ``row, id, x, y``.

    The file must be a readable parquet file directly in the store's ``projections/``
    folder, with the entry's number of rows, store row indices in range and finite
    coordinates; otherwise :class:`~xalign.errors.StoreError` names the file, what is wrong
    and the command that recomputes it. A damaged cache is never shown as data.
    """
    root = _root(store)
    folder = _folder(root)
    problem = _problem(entry)
    if problem is not None:
        raise StoreError(f"{folder / INDEX}: an entry {problem}; refusing to read it")
    path = folder / entry["file"]
    redo = (
        f"recompute it: python -m xalign.project {root} --methods {entry['method']} "
        f"--pooling {entry['pooling']} --overwrite"
    )
    if not _inside(folder, entry["file"]):
        raise StoreError(f"{path}: missing, or not a file inside {folder}; {redo}")
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        missing = [c for c in _COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"no column {', '.join(missing)}")
        df = table.select(list(_COLUMNS)).to_pandas()
        rows = df["row"].to_numpy()
        xy = df[["x", "y"]].to_numpy(dtype=np.float64)
    except Exception as e:  # any failure to decode the file is a damaged cache
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StoreError(f"{path}: damaged projection cache ({detail}); {redo}") from None
    n = entry.get("n")
    if isinstance(n, int) and len(df) != n:
        raise StoreError(
            f"{path}: damaged projection cache ({len(df)} rows, the index says {n}); {redo}"
        )
    if not np.issubdtype(rows.dtype, np.integer):
        raise StoreError(f"{path}: damaged projection cache (row indices are not integers); {redo}")
    n_rows = _n_rows(store)
    if len(rows) and (rows.min() < 0 or (n_rows is not None and rows.max() >= n_rows)):
        raise StoreError(
            f"{path}: row indices outside the store's rows 0..{(n_rows or 0) - 1}; the cache "
            f"does not belong to this store: {redo}"
        )
    if not np.isfinite(xy).all():
        raise StoreError(f"{path}: damaged projection cache (non-finite coordinates); {redo}")
    return df


def bounds(x: np.ndarray, y: np.ndarray) -> list[float]:
    if len(x) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(x.min()), float(x.max()), float(y.min()), float(y.max())]
