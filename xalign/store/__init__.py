"""Stores: the on-disk result of one extraction run, read lazily, written atomically, resumable."""

from __future__ import annotations

from xalign.store._integrity import VerifyReport, verify_store
from xalign.store._layers import parse_layers
from xalign.store._neurons import NeuronStats
from xalign.store._pairs import _CHUNK as PAIR_CHUNK_ELEMENTS
from xalign.store._pairs import _CHUNK_PAIRS as PAIR_CHUNK_PAIRS
from xalign.store._pairs import (
    PAIRS_FORMAT,
    PAIRS_FORMAT_VERSION,
    PairAttention,
    pair_attention_exists,
    pair_records,
    parallel_rows,
    read_pair_attention,
    resolve_pair_langs,
)
from xalign.store._pairs import _files as pair_files
from xalign.store._pairs import seal as seal_record
from xalign.store._pairs import table_record as pair_table_record
from xalign.store._store import ARRAYS, FORMAT, FORMAT_VERSION, Store, StoreWriter, is_store

__all__ = [
    "ARRAYS",
    "FORMAT",
    "FORMAT_VERSION",
    "PAIRS_FORMAT",
    "PAIRS_FORMAT_VERSION",
    "PAIR_CHUNK_ELEMENTS",
    "PAIR_CHUNK_PAIRS",
    "NeuronStats",
    "PairAttention",
    "Store",
    "StoreWriter",
    "VerifyReport",
    "is_store",
    "pair_attention_exists",
    "pair_files",
    "pair_records",
    "pair_table_record",
    "parallel_rows",
    "parse_layers",
    "read_pair_attention",
    "resolve_pair_langs",
    "seal_record",
    "verify_store",
]
