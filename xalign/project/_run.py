"""Running projections over stores and caching them (``python -m xalign.project``)."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign import __version__
from xalign.errors import ConfigError
from xalign.project._cache import (
    _hash,
    bounds,
    read_index,
    store_id,
    write_projections,
)
from xalign.project._config import ProjectConfig
from xalign.project._sample import stratified_sample

if TYPE_CHECKING:
    from xalign.store import Store

__all__ = ["ProjectConfig", "project_stores"]


class _Blocks(Sequence):  # type: ignore[type-arg]
    """Lazy blocks: item ``i`` reads one (store, layer) from disk when asked for."""

    def __init__(self, pairs: list[tuple[Store, int]], pooling: str, rows: np.ndarray) -> None:
        self.pairs, self.pooling, self.rows = pairs, pooling, rows

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: Any) -> Any:
        store, layer = self.pairs[i]
        return store.sentences(pooling=self.pooling, layer=layer, rows=self.rows)


def _layers(stores: list[Store], spec: str) -> list[int]:
    common = [x for x in stores[0].layers if all(x in s.layers for s in stores[1:])]
    if spec == "all":
        return common
    for s in stores[1:]:
        s.resolve_layers(spec)  # every store must hold the requested layers
    return stores[0].resolve_layers(spec)


def _groups(stores: list[Store], independent: bool) -> list[list[Store]]:
    if independent:
        return [[s] for s in stores]
    groups: dict[str, list[Store]] = {}
    for s in stores:
        groups.setdefault(s.corpus["fingerprint"], []).append(s)
    return list(groups.values())


def _scheme(method: str, stores: list[Store]) -> str:
    if method == "pca":
        dims = {s.hidden_size for s in stores}
        return "shared-pca" if len(dims) == 1 else "pca-per-store+procrustes"
    return "chained-init+procrustes"


def _fit_group(
    cfg: ProjectConfig,
    method: str,
    stores: list[Store],
    layers: list[int],
    rows: np.ndarray,
    on_block: Callable[[int], Any],
) -> list[list[np.ndarray]]:
    """Layouts ``[store][layer]`` of one group of stores over the same rows.

    ``on_block`` is called once per finished layout (a progress bar's unit of work).
    """
    from xalign.project._projector import procrustes_align

    pairs = [(s, layer) for s in stores for layer in layers]
    nl = len(layers)
    if method == "pca" and len({s.hidden_size for s in stores}) > 1:
        # Different hidden sizes cannot share one PCA: one per store, then each store's layer
        # is rotated onto the first store's same layer.
        out: list[list[np.ndarray]] = []
        for s in stores:
            emb = cfg.projector("pca").fit_transform(
                _Blocks([(s, x) for x in layers], cfg.pooling, rows), on_block=on_block
            )
            if out:
                emb = [
                    procrustes_align(e, r).astype(np.float32)
                    for e, r in zip(emb, out[0], strict=True)
                ]
            out.append(emb)
        return out
    init_from: list[int | None] = []
    for k in range(len(stores)):
        for i in range(nl):
            init_from.append((i - 1 if i else None) if k == 0 else i)
    emb = cfg.projector(method).fit_transform(
        _Blocks(pairs, cfg.pooling, rows), init_from=init_from, on_block=on_block
    )
    return [emb[k * nl : (k + 1) * nl] for k in range(len(stores))]


def _check_stores(stores: list[Store]) -> None:
    """Refuse what would make projection write where it must not, before any fit.

    Projection writes only into each store's own ``projections/`` folder. A store given
    twice, a store inside another one, or a ``projections/`` link that leads out of its store
    (into another store, say) is refused, and the folder must take a file now, not after
    minutes of fitting.
    """
    from xalign._io import ensure_writable_dir
    from xalign.project._cache import FOLDER, _folder

    real = [Path(os.path.realpath(s.path)) for s in stores]
    for i, a in enumerate(real):
        for j, b in enumerate(real[:i]):
            if a == b:
                raise ConfigError(
                    f"store {stores[i].path} is given twice (also as {stores[j].path})"
                )
            if a in b.parents or b in a.parents:
                inner, outer = (stores[i], stores[j]) if b in a.parents else (stores[j], stores[i])
                raise ConfigError(
                    f"store {inner.path} lies inside store {outer.path}: projecting both would "
                    "write into one store's files through the other; give them separately"
                )
    for s in stores:
        ensure_writable_dir(_folder(Path(s.path)), what=f"store {s.path}: {FOLDER}/ folder")


def _cached(
    group: list[Store], fit_id: str, layers: list[int], say: Any
) -> list[dict[str, Any]] | None:
    """The index entries of a complete, readable cached fit, or None (then it is recomputed).

    Every cached file is read back and checked: a damaged or truncated file, or one with
    another number of rows than its entry, is recomputed rather than reused.
    """
    from xalign.errors import StoreError
    from xalign.project._cache import read_projection_file

    out = []
    for s in group:
        entries = [e for e in read_index(s)["entries"] if e["fit_id"] == fit_id]
        if not set(layers) <= {e["layer"] for e in entries}:
            return None
        for e in entries:
            try:
                read_projection_file(s, e)
            except StoreError as err:
                say(f"  {err.args[0].split('; recompute')[0]}: recomputing")
                return None
        out += [{**e, "cached": True, "store": str(s.path)} for e in entries]
    return out


def project_stores(config: ProjectConfig, *, log: Any = None) -> list[dict[str, Any]]:
    """Compute and cache the projections asked for; returns the index entries written or reused.

    Parameters
    ----------
    config : ProjectConfig
    log : callable, optional
        Called with one line of progress text per fit (e.g. ``print``).

    Returns
    -------
    list of dict
        One index entry per (store, method, layer), with ``"cached": True`` when it was
        already in the store and ``overwrite`` was off.

    Raises
    ------
    ConfigError
        A bad option, a store given twice or nested in another, a ``projections/`` folder that
        cannot be written (checked before any fit).
    StoreError
        A store cannot be opened, or its projection index names a file outside its
        ``projections/`` folder (``overwrite`` drops such entries instead).
    """
    from tqdm.auto import tqdm

    from xalign.store import Store

    say = log or (lambda _msg: None)
    stores = [Store.open(p) for p in config.stores]
    for s in stores:
        if config.pooling not in s.poolings:
            raise ConfigError(
                f"pooling {config.pooling!r} is not in store {s.path} (stored: {s.poolings}); "
                "re-extract with --pooling including it"
            )
    _check_stores(stores)
    groups = _groups(stores, config.independent)
    plan = []
    for group in groups:
        layers = _layers(group, config.layers)
        if not layers:
            raise ConfigError(f"stores {[str(s.path) for s in group]} share no layer")
        # An index that names files outside its folder is refused before any fit (with
        # --overwrite it is rebuilt without those entries).
        for s in group:
            read_index(s, on_bad="drop" if config.overwrite else "raise")
        plan.append((group, layers))
    written: list[dict[str, Any]] = []
    # One unit per layout (store x layer x method): UMAP fits of 13 layers advance the bar
    # 13 times per store, not once at the end.
    total = sum(len(g) * len(layers) for g, layers in plan) * len(config.methods)
    bar = tqdm(total=total, disable=not config.progress, desc="project", unit="layout", leave=False)
    for group, layers in plan:
        rows = stratified_sample(group[0].rows, config.sample, seed=config.seed)
        ids = [store_id(s) for s in group]
        for method in config.methods:
            bar.set_postfix_str(method)
            fit = {
                "scheme": _scheme(method, group),
                "stores": [{"id": i, "label": s.label} for i, s in zip(ids, group, strict=True)],
                "layers": layers,
            }
            fit_id = _hash(
                {
                    "method": method,
                    "params": config.params(method),
                    "pooling": config.pooling,
                    "sample": config.sample,
                    "seed": config.seed,
                    "layers": layers,
                    "stores": ids,
                    "rows": len(rows),
                }
            )
            cached = None if config.overwrite else _cached(group, fit_id, layers, say)
            if cached is not None:
                say(f"{method}: cached in {', '.join(str(s.path) for s in group)} (fit {fit_id})")
                written += cached
                bar.update(len(group) * len(layers))
                continue
            say(
                f"{method}: fitting {len(group)} store(s) x {len(layers)} layer(s), "
                f"{len(rows):,} rows each"
            )
            layouts = _fit_group(config, method, group, layers, rows, lambda _i: bar.update(1))
            created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            for s, per_layer in zip(group, layouts, strict=True):
                ids_col = s.rows["id"].to_numpy()[rows]
                items = []
                for layer, Y in zip(layers, per_layer, strict=True):
                    frame = pd.DataFrame(
                        {
                            "row": rows.astype(np.int64),
                            "id": ids_col,
                            "x": Y[:, 0].astype(np.float32),
                            "y": Y[:, 1].astype(np.float32),
                        }
                    )
                    entry = {
                        "key": f"{fit_id}:L{layer}",
                        "file": f"{method}-{config.pooling}-L{layer:03d}-{fit_id}.parquet",
                        "fit_id": fit_id,
                        "layer": int(layer),
                        "pooling": config.pooling,
                        "method": method,
                        "params": config.params(method),
                        "sample": config.sample,
                        "seed": config.seed,
                        "n": len(rows),
                        "bounds": bounds(frame["x"].to_numpy(), frame["y"].to_numpy()),
                        "fit": fit,
                        "created": created,
                        "xalign_version": __version__,
                    }
                    items.append((entry, frame))
                index = write_projections(s, items)
                written += [{**e, "cached": False, "store": str(s.path)} for e, _ in items]
                say(f"  {index}")
    bar.close()
    return written
