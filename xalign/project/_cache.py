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
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    "store_id",
    "write_projections",
]

FOLDER = "projections"
INDEX = "index.json"
INDEX_FORMAT = "xalign-projections"
INDEX_VERSION = 1


def _hash(obj: Any, n: int = 16) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def store_id(store: Store) -> str:
    """A short stable id of a store: the hash of its identity (encoder, corpus, extraction)."""
    return _hash(store.manifest.get("identity") or store.manifest, 12)


def _root(store: Store | str | os.PathLike[str]) -> Path:
    return Path(store) if isinstance(store, str | os.PathLike) else Path(store.path)


def read_index(store: Store | str | os.PathLike[str]) -> dict[str, Any]:
    """The projection index of a store (an empty one when nothing was projected yet)."""
    path = _root(store) / FOLDER / INDEX
    if not path.is_file():
        return {"format": INDEX_FORMAT, "version": INDEX_VERSION, "entries": []}
    try:
        data = read_json(path)
    except ValueError as e:
        raise StoreError(f"{path}: projection index is not valid JSON ({e})") from e
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        raise StoreError(f"{path}: not an xalign projection index (format={data.get('format')!r})")
    if int(data.get("version", 0)) > INDEX_VERSION:
        raise StoreError(f"{path}: projection index version {data['version']} is newer than xalign")
    entries = [e for e in data.get("entries", []) if (path.parent / e["file"]).is_file()]
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
    folder = _root(store) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    new: dict[str, dict[str, Any]] = {}
    for entry, frame in items:
        write_parquet(folder / entry["file"], frame)
        new[entry["key"]] = entry
    index = read_index(store)
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
    group, label`` columns are joined on ``row``: the frame ``dashboards.figures.fig_clusters``
    draws.

    Raises
    ------
    ConfigError
        Nothing cached for these keys; the message gives the ``python -m xalign.project``
        command that computes it.
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
    df = pd.read_parquet(_root(store) / FOLDER / entry["file"])
    if with_rows:
        if isinstance(store, str | os.PathLike):
            from xalign.store import Store

            store = Store.open(store)
        rows = store.rows
        cols = [c for c in ("lang", "text", "group", "label") if c in rows.columns]
        extra = rows.iloc[df["row"].to_numpy()][cols].reset_index(drop=True)
        df = pd.concat([df.reset_index(drop=True), extra], axis=1)
    df.attrs["entry"] = entry
    return df


def bounds(x: np.ndarray, y: np.ndarray) -> list[float]:
    if len(x) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(x.min()), float(x.max()), float(y.min()), float(y.max())]
