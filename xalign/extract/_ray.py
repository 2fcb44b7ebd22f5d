"""Extraction on Ray Data: the local engine's chunks, computed by encoder actors on a cluster.

The driver does everything that needs no model forward (reads the corpus, tokenises once for
lengths, writes the tables and creates the store's arrays: :func:`xalign.extract.prepare_extract`),
exactly as the local engine does.
The chunks still to compute become a Ray dataset, one item per store chunk; ``map_batches``
sends them to a pool of encoder actors (one per GPU, or one per ``cpus_per_worker`` CPUs), each
of which runs :func:`xalign.extract.compute_chunk` — the local engine's own code — and writes
the chunk's arrays as a shard file (safetensors) under ``<store>/shards/``. The driver merges
each finished shard into the store's zarr arrays, records the chunk as done and deletes the
shard. Because a chunk is computed by the same code from the same rows in the same batches,
the merged arrays equal a local run's. With ``--neurons`` a shard also carries the chunk's
neuron statistics; the driver folds them in chunk order (``xalign.extract._neurons``).

Interrupting is safe at any point: shards are written under a temporary name and renamed; a
rerun of the same command first merges the shards left behind, then computes only the chunks
that are neither merged nor sharded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from xalign.data import Corpus
    from xalign.extract import ChunkSpec, ExtractConfig, ExtractPlan, ExtractSummary
    from xalign.models import Encoder
    from xalign.store import Store

__all__ = [
    "SHARDS",
    "ChunkWorker",
    "RayEngine",
    "extract_ray",
    "read_shard",
    "shard_path",
    "write_shard",
]

log = logging.getLogger(__name__)

#: Folder inside the store where workers leave computed chunks for the driver to merge.
SHARDS = "shards"
_SHARD = re.compile(r"^chunk-(\d+)\.safetensors$")


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ImportError(
            "--engine ray needs Ray Data: pip install 'xalign[scale]' (or: pip install 'ray[data]')"
        ) from exc
    return ray


def shard_path(store: str | os.PathLike[str], chunk: int) -> Path:
    """``<store>/shards/chunk-<chunk>.safetensors``."""
    return Path(store) / SHARDS / f"chunk-{chunk:06d}.safetensors"


def write_shard(
    path: str | os.PathLike[str], chunk: int, bounds: tuple[int, int], arrays: dict[str, Any]
) -> None:
    """Write one computed chunk as a safetensors file (temporary name, then rename)."""
    from safetensors.numpy import save_file

    from xalign._io import atomic_path

    meta = {"chunk": str(chunk), "start": str(bounds[0]), "stop": str(bounds[1])}
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=meta)


def read_shard(path: str | os.PathLike[str]) -> tuple[int, tuple[int, int], dict[str, NDArray]]:
    """Read a shard written by :func:`write_shard`: ``(chunk, (start, stop), arrays)``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        chunk, start, stop = int(meta["chunk"]), int(meta["start"]), int(meta["stop"])
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        raise StoreError(
            f"{path}: not a readable xalign shard ({exc}); delete it and rerun to recompute "
            "the chunk"
        ) from exc
    return chunk, (start, stop), arrays


class ChunkWorker:
    """A Ray Data actor: loads the encoder once, then computes and shards whole chunks."""

    def __init__(
        self,
        config: dict[str, Any],
        spec: ChunkSpec,
        identity: dict[str, Any],
        store: str,
        threads: int,
    ) -> None:
        import torch

        from xalign.extract import ExtractConfig, load_extract_encoder

        torch.set_num_threads(max(1, threads))
        cfg = ExtractConfig(**config)
        self.encoder: Encoder = load_extract_encoder(cfg)
        got = self.encoder.facts.identity()
        if got != identity:
            raise StoreError(
                f"a Ray worker loaded {cfg.model!r} as {got}, but the driver loaded {identity}: "
                "every node must see the same model files (same revision, same weights)"
            )
        self.spec = spec
        self.runner = spec.runner(self.encoder)
        self.store = store

    def __call__(self, batch: dict[str, NDArray]) -> dict[str, NDArray]:
        from xalign.extract import compute_chunk

        out: dict[str, list[Any]] = {"chunk": [], "rows": [], "seconds": [], "backoffs": []}
        for chunk, start, stop, texts, langs in zip(
            batch["chunk"], batch["start"], batch["stop"], batch["texts"], batch["langs"],
            strict=True,
        ):  # fmt: skip
            t = time.perf_counter()
            before = self.runner.backoffs
            arrays = compute_chunk(
                self.spec, self.runner, json.loads(str(texts)), langs=json.loads(str(langs))
            )
            write_shard(shard_path(self.store, int(chunk)), int(chunk), (start, stop), arrays)
            out["chunk"].append(int(chunk))
            out["rows"].append(int(stop - start))
            out["seconds"].append(time.perf_counter() - t)
            out["backoffs"].append(self.runner.backoffs - before)
        return {k: np.asarray(v) for k, v in out.items()}


def _merge_shard(plan: ExtractPlan, path: Path) -> int:
    chunk, bounds, arrays = read_shard(path)
    if chunk >= plan.n_chunks or bounds != plan.bounds(chunk):
        raise StoreError(
            f"{path}: shard of rows {bounds[0]}..{bounds[1] - 1} as chunk {chunk}, but this store "
            f"has chunk {chunk} = rows {plan.bounds(chunk) if chunk < plan.n_chunks else 'none'}; "
            "delete the shards folder and rerun"
        )
    if chunk not in plan.writer.done:
        plan.write_chunk(chunk, arrays)
    path.unlink()
    return bounds[1] - bounds[0]


def _leftover_shards(plan: ExtractPlan) -> list[Path]:
    folder = plan.writer.path / SHARDS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _SHARD.match(p.name))


def _resources(ray: Any, config: ExtractConfig) -> tuple[int, float, float]:
    """(workers, cpus per worker, gpus per worker) for this cluster and config."""
    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))
    gpw = config.gpus_per_worker
    if gpw is None:
        gpw = 1.0 if gpus > 0 and config.device != "cpu" else 0.0
    if gpw > 0 and gpus == 0:
        raise ConfigError(
            f"--gpus-per-worker {gpw}: the Ray cluster has no GPUs (resources: {total})"
        )
    cpw = float(config.cpus_per_worker)
    if cpw > cpus:
        raise ConfigError(f"--cpus-per-worker {cpw}: the Ray cluster has only {cpus:g} CPUs")
    fit = int(gpus // gpw) if gpw > 0 else int(cpus // cpw)
    workers = config.workers or max(1, fit)
    return workers, cpw, gpw


def _run_actors(
    ray: Any,
    plan: ExtractPlan,
    config: ExtractConfig,
    encoder: Encoder,
    todo: list[int],
    workers: int,
    cpw: float,
    gpw: float,
    rows_todo: int,
) -> int:
    """Compute ``todo`` chunks on a pool of ``workers`` actors, merging shards as they come."""
    from xalign.extract import progress_bar

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False

    def langs(c: int) -> str:
        idx = plan.chunk_langs(c)
        return json.dumps(None if idx is None else idx.tolist())

    items = [
        {"chunk": c, "start": a, "stop": b, "texts": json.dumps(plan.texts[a:b]), "langs": langs(c)}
        for c in todo
        for a, b in [plan.bounds(c)]
    ]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    done = ds.map_batches(
        ChunkWorker,
        fn_constructor_kwargs={
            "config": config.to_dict(),
            "spec": plan.spec,
            "identity": encoder.facts.identity(),
            "store": str(plan.writer.path.resolve()),
            "threads": max(1, int(cpw)),
        },
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpw,
        num_gpus=gpw,
    )
    backoffs = 0
    bar = progress_bar(
        rows_todo, enabled=config.progress, desc=f"extract {encoder.facts.name} (ray)"
    )
    for row in done.iter_rows():
        _merge_shard(plan, shard_path(plan.writer.path, int(row["chunk"])))
        backoffs += int(row["backoffs"])
        bar.update(int(row["rows"]))
    bar.close()
    return backoffs


def extract_ray(
    config: ExtractConfig, corpus: Corpus, encoder: Encoder, t0: float
) -> tuple[Store, ExtractSummary]:
    """Run :func:`xalign.extract.extract` with ``config.engine == "ray"`` (see module doc).

    ``encoder`` is the driver's copy, used for the tokenizer and the facts only; each worker
    loads its own from ``config.model`` on its own device.
    """
    from xalign.extract import finish_extract, prepare_extract, summarize_extract
    from xalign.store import Store

    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        ray.init(
            address=config.address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        started = True
    try:
        workers, cpw, gpw = _resources(ray, config)
        # actors on GPUs run under autocast (unless --no-autocast), as a local CUDA run does
        plan = prepare_extract(config, corpus, encoder, autocast=bool(config.autocast and gpw > 0))
        if plan.writer.already_complete:
            store = Store.open(config.out)
            return store, summarize_extract(store, time.perf_counter() - t0, 0, plan.writer, 0)
        t_compute = time.perf_counter()
        rows_done = 0
        for path in _leftover_shards(plan):
            rows_done += _merge_shard(plan, path)
        if rows_done:
            log.info("merged %d rows left as shards by an interrupted run", rows_done)
        todo = plan.todo()
        rows_todo = sum(b - a for a, b in map(plan.bounds, todo))
        backoffs = 0
        workers = min(workers, len(todo))
        if todo:
            backoffs = _run_actors(ray, plan, config, encoder, todo, workers, cpw, gpw, rows_todo)
    finally:
        if started:
            ray.shutdown()
    missing = plan.todo()
    if missing:
        raise StoreError(
            f"{plan.writer.path}: the Ray run ended with chunks {missing[:5]} not computed; "
            "rerun the same command to resume"
        )
    folder = plan.writer.path / SHARDS
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    seconds = time.perf_counter() - t_compute
    device = f"ray: {workers} worker{'s' if workers != 1 else ''}" if workers else "ray: merged"
    return finish_extract(plan, seconds, rows_todo + rows_done, backoffs, device)


class RayEngine:
    """Computes the chunks on a Ray Data cluster (:func:`extract_ray`); Ray is an optional extra."""

    name = "ray"

    def driver_encoder(self, config: ExtractConfig) -> Encoder:
        from xalign.extract import load_extract_encoder

        return load_extract_encoder(config, device="cpu")  # tokenizer and facts; no forward

    def run(
        self, config: ExtractConfig, corpus: Corpus, encoder: Encoder, t0: float
    ) -> tuple[Store, ExtractSummary]:
        return extract_ray(config, corpus, encoder, t0)
