"""Extraction: corpus → encoder → store (``python -m xalign.extract``)."""

from __future__ import annotations

from xalign.extract._config import POOLINGS, ExtractConfig, parse_layers, resolve_prefix
from xalign.extract._extract import ExtractSummary, extract, length_sorted_batches, pool
from xalign.extract._pairs import extract_pair_attention
from xalign.extract._tokenize import TokenizedCorpus, tokenize_corpus

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
