"""Stores: the on-disk result of one extraction run, read lazily, written atomically, resumable."""

from __future__ import annotations

from xalign.store._integrity import VerifyReport, verify_store
from xalign.store._pairs import (
    PairAttention,
    pair_attention_exists,
    parallel_rows,
    read_pair_attention,
    resolve_pair_langs,
)
from xalign.store._store import FORMAT, FORMAT_VERSION, Store, StoreWriter, is_store

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PairAttention",
    "Store",
    "StoreWriter",
    "VerifyReport",
    "is_store",
    "pair_attention_exists",
    "parallel_rows",
    "read_pair_attention",
    "resolve_pair_langs",
    "verify_store",
]
