"""Extraction: corpus → encoder → store (``python -m xalign.extract``).

Two engines behind one interface (:class:`Engine`): :class:`LocalEngine` computes the chunks in
this process, :class:`RayEngine` on a Ray Data cluster (optional ``scale`` extra). Both use the
public steps below: :func:`prepare_extract`, :func:`compute_chunk`,
:meth:`ExtractPlan.write_chunk`, :func:`finish_extract`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xalign._lazy import lazy_attributes

if TYPE_CHECKING:
    from xalign.extract._config import POOLINGS, ExtractConfig, resolve_prefix
    from xalign.extract._engine import Engine, LocalEngine, engine_for, extract
    from xalign.extract._extract import (
        ChunkSpec,
        ExtractSummary,
        check_out,
        compute_chunk,
        length_sorted_batches,
        load_extract_encoder,
        pool,
    )
    from xalign.extract._pairs import extract_pair_attention
    from xalign.extract._plan import (
        ExtractPlan,
        finish_extract,
        prepare_extract,
        progress_bar,
        summarize_extract,
    )
    from xalign.extract._ray import SHARDS, RayEngine, read_shard, shard_path, write_shard
    from xalign.extract._tokenize import TokenizedCorpus, tokenize_corpus
    from xalign.store import parse_layers

# Public names are imported on first use: ``python -m xalign.extract --help`` and its argument
# errors answer before torch, pandas or plotly are loaded.
_WHERE = {
    "ChunkSpec": "xalign.extract._extract",
    "Engine": "xalign.extract._engine",
    "ExtractConfig": "xalign.extract._config",
    "ExtractPlan": "xalign.extract._plan",
    "ExtractSummary": "xalign.extract._extract",
    "LocalEngine": "xalign.extract._engine",
    "POOLINGS": "xalign.extract._config",
    "RayEngine": "xalign.extract._ray",
    "SHARDS": "xalign.extract._ray",
    "TokenizedCorpus": "xalign.extract._tokenize",
    "check_out": "xalign.extract._extract",
    "compute_chunk": "xalign.extract._extract",
    "engine_for": "xalign.extract._engine",
    "extract": "xalign.extract._engine",
    "extract_pair_attention": "xalign.extract._pairs",
    "finish_extract": "xalign.extract._plan",
    "length_sorted_batches": "xalign.extract._extract",
    "load_extract_encoder": "xalign.extract._extract",
    # the layer-spec language belongs to the store (every reader resolves it); kept here too
    "parse_layers": "xalign.store",
    "pool": "xalign.extract._extract",
    "prepare_extract": "xalign.extract._plan",
    "progress_bar": "xalign.extract._plan",
    "read_shard": "xalign.extract._ray",
    "resolve_prefix": "xalign.extract._config",
    "shard_path": "xalign.extract._ray",
    "summarize_extract": "xalign.extract._plan",
    "tokenize_corpus": "xalign.extract._tokenize",
    "write_shard": "xalign.extract._ray",
}

__all__ = [
    "POOLINGS",
    "SHARDS",
    "ChunkSpec",
    "Engine",
    "ExtractConfig",
    "ExtractPlan",
    "ExtractSummary",
    "LocalEngine",
    "RayEngine",
    "TokenizedCorpus",
    "check_out",
    "compute_chunk",
    "engine_for",
    "extract",
    "extract_pair_attention",
    "finish_extract",
    "length_sorted_batches",
    "load_extract_encoder",
    "parse_layers",
    "pool",
    "prepare_extract",
    "progress_bar",
    "read_shard",
    "resolve_prefix",
    "shard_path",
    "summarize_extract",
    "tokenize_corpus",
    "write_shard",
]


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals(), __all__)
