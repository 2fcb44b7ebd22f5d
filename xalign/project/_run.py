"""Running projections over stores and caching them (``python -m xalign.project``)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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
from xalign.project._projector import METHODS, Projector
from xalign.project._sample import stratified_sample

if TYPE_CHECKING:
    from xalign.store import Store

__all__ = ["ProjectConfig", "project_stores"]


@dataclass
class ProjectConfig:
    """Options of ``python -m xalign.project`` (recorded in every index entry).

    Stores extracted from the same corpus are fitted together (one shared PCA; UMAP / t-SNE
    layouts of the later stores start from the first store's same layer) unless
    ``independent``.
    """

    stores: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: ["pca"])
    layers: str = "all"
    pooling: str = "mean"
    sample: int | None = None
    seed: int = 0
    n_neighbors: int = 15
    min_dist: float = 0.1
    perplexity: float = 30.0
    metric: str = "cosine"
    n_iter: int | None = None
    independent: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            self.methods = [m.strip() for m in self.methods.split(",") if m.strip()]
        if isinstance(self.stores, str):
            self.stores = [self.stores]
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ConfigError(
                f"--methods {bad or '(empty)'}: allowed values are {', '.join(METHODS)}"
            )
        self.methods = list(dict.fromkeys(self.methods))
        if self.sample is not None and (
            isinstance(self.sample, bool) or not isinstance(self.sample, int) or self.sample < 1
        ):
            raise ConfigError(f"--sample {self.sample!r}: expected a positive number per language")
        if not self.stores:
            raise ConfigError("no stores given: pass one or more store folders")
        # Validates the remaining options once, here, with the estimator's own messages.
        for m in self.methods:
            self.projector(m)._check_params()

    def params(self, method: str) -> dict[str, Any]:
        """The parameters that change ``method``'s coordinates."""
        if method == "pca":
            return {"normalize": True}
        if method == "umap":
            return {
                "normalize": True,
                "n_neighbors": self.n_neighbors,
                "min_dist": self.min_dist,
                "metric": self.metric,
                "n_iter": self.n_iter,
            }
        return {
            "normalize": True,
            "perplexity": self.perplexity,
            "metric": self.metric,
            "n_iter": self.n_iter,
        }

    def projector(self, method: str) -> Projector:
        return Projector(
            method,  # type: ignore[arg-type]
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            perplexity=self.perplexity,
            metric=self.metric,
            random_state=self.seed,
            n_iter=self.n_iter,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    cfg: ProjectConfig, method: str, stores: list[Store], layers: list[int], rows: np.ndarray
) -> list[list[np.ndarray]]:
    """Layouts ``[store][layer]`` of one group of stores over the same rows."""
    from xalign.project._projector import procrustes_align

    pairs = [(s, layer) for s in stores for layer in layers]
    nl = len(layers)
    if method == "pca" and len({s.hidden_size for s in stores}) > 1:
        # Different hidden sizes cannot share one PCA: one per store, then each store's layer
        # is rotated onto the first store's same layer.
        out: list[list[np.ndarray]] = []
        for s in stores:
            emb = cfg.projector("pca").fit_transform(
                _Blocks([(s, x) for x in layers], cfg.pooling, rows)
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
        _Blocks(pairs, cfg.pooling, rows), init_from=init_from
    )
    return [emb[k * nl : (k + 1) * nl] for k in range(len(stores))]


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
    written: list[dict[str, Any]] = []
    groups = _groups(stores, config.independent)
    total = sum(len(config.methods) for _ in groups)
    bar = tqdm(total=total, disable=not config.progress, desc="project", unit="fit", leave=False)
    for group in groups:
        layers = _layers(group, config.layers)
        if not layers:
            raise ConfigError(f"stores {[str(s.path) for s in group]} share no layer")
        rows = stratified_sample(group[0].rows, config.sample, seed=config.seed)
        ids = [store_id(s) for s in group]
        for method in config.methods:
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
            have = [
                {e["layer"] for e in read_index(s)["entries"] if e["fit_id"] == fit_id}
                for s in group
            ]
            if not config.overwrite and all(set(layers) <= h for h in have):
                say(f"{method}: cached in {', '.join(str(s.path) for s in group)} (fit {fit_id})")
                for s in group:
                    written += [
                        {**e, "cached": True, "store": str(s.path)}
                        for e in read_index(s)["entries"]
                        if e["fit_id"] == fit_id
                    ]
                bar.update(1)
                continue
            say(
                f"{method}: fitting {len(group)} store(s) x {len(layers)} layer(s), "
                f"{len(rows):,} rows each"
            )
            layouts = _fit_group(config, method, group, layers, rows)
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
            bar.update(1)
    bar.close()
    return written
