"""Extraction: corpus → encoder → store (``python -m xalign.extract``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xalign.extract._config import POOLINGS, ExtractConfig, parse_layers, resolve_prefix
    from xalign.extract._extract import ExtractSummary, extract, length_sorted_batches, pool
    from xalign.extract._pairs import extract_pair_attention
    from xalign.extract._tokenize import TokenizedCorpus, tokenize_corpus

# Public names are imported on first use: ``python -m xalign.extract --help`` and its argument
# errors answer before torch, pandas or plotly are loaded.
_WHERE = {
    "ExtractConfig": "_config",
    "ExtractSummary": "_extract",
    "POOLINGS": "_config",
    "TokenizedCorpus": "_tokenize",
    "extract": "_extract",
    "extract_pair_attention": "_pairs",
    "length_sorted_batches": "_extract",
    "parse_layers": "_config",
    "pool": "_extract",
    "resolve_prefix": "_config",
    "tokenize_corpus": "_tokenize",
}

__all__ = [
    "POOLINGS",
    "ExtractConfig",
    "ExtractSummary",
    "TokenizedCorpus",
    "extract",
    "extract_pair_attention",
    "length_sorted_batches",
    "parse_layers",
    "pool",
    "resolve_prefix",
    "tokenize_corpus",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
