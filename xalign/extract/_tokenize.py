"""Tokenising a corpus once: ids, truncation counts, and the token table with word/char offsets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["TokenizedCorpus", "tokenize_corpus"]

_WORD = re.compile(r"\S+")
_BATCH = 2048


@dataclass
class TokenizedCorpus:
    """Token ids per row (truncated to ``max_length``) plus what the store records about them."""

    ids: list[list[int]]
    special: list[NDArray[np.bool_]]  # special tokens and prefix tokens
    offsets: list[NDArray[np.int64]] | None  # [n, 2] char offsets into the original text (-1: none)
    n_tokens: NDArray[np.int64]
    n_tokens_full: NDArray[np.int64]
    max_length: int
    prefix: str

    @property
    def truncated(self) -> NDArray[np.bool_]:
        return self.n_tokens_full > self.n_tokens

    def token_table(
        self, texts: Sequence[str], tokenizer: Any, *, row_offset: int = 0
    ) -> pd.DataFrame:
        """One row per token: row, position, token_id, token, word, char_start/end, special."""
        assert self.offsets is not None
        rows, pos, words = [], [], []
        for r, (text, off, sp) in enumerate(zip(texts, self.offsets, self.special, strict=True)):
            n = len(off)
            rows.append(np.full(n, r + row_offset, dtype=np.int64))
            pos.append(np.arange(n, dtype=np.int64))
            words.append(_word_index(text, off, sp))
        ids = np.fromiter((i for row in self.ids for i in row), dtype=np.int64)
        offs = np.concatenate(self.offsets) if self.offsets else np.zeros((0, 2), np.int64)
        return pd.DataFrame(
            {
                "row": np.concatenate(rows),
                "position": np.concatenate(pos),
                "token_id": ids,
                "token": tokenizer.convert_ids_to_tokens(ids.tolist()),
                "word": np.concatenate(words),
                "char_start": offs[:, 0],
                "char_end": offs[:, 1],
                "special": np.concatenate(self.special),
            }
        )


def _word_index(text: str, off: NDArray[np.int64], special: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Index of the whitespace-separated word each token falls in (-1 for special/prefix tokens).

    Words are whitespace-delimited, as in word-alignment gold standards (SimAlign, awesome-align);
    for scripts written without spaces a "word" is a whole space-free run.
    """
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    out = np.full(len(off), -1, dtype=np.int64)
    if not spans:
        return out
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    for t, (a, b) in enumerate(off):
        if special[t] or a < 0 or b <= a:
            continue
        w = int(np.searchsorted(starts, a, side="right")) - 1
        if w < 0 or a >= ends[w]:  # token begins with the space before the next word
            w += 1
        if 0 <= w < len(spans):
            out[t] = w
    return out


def full_lengths(tokenizer: Any, first: list[str], second: list[str] | None = None) -> list[int]:
    """Token counts of texts (or text pairs) without truncation, specials included.

    Transformers' warning about inputs longer than the model maximum is silenced: measuring
    those lengths is the point.
    """
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        full = tokenizer(
            *([first] if second is None else [first, second]),
            truncation=False,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
    finally:
        transformers.logging.set_verbosity(verbosity)
    return [len(x) for x in full]


def tokenize_corpus(
    texts: Sequence[str],
    tokenizer: Any,
    *,
    max_length: int,
    prefix: str = "",
    with_offsets: bool = False,
) -> TokenizedCorpus:
    """Tokenise ``prefix + text`` for every row; count rows longer than ``max_length``.

    Prefix tokens (e5's ``"query: "``) are marked special, and character offsets are relative
    to the original text, so token tables and word alignment never see the prefix.
    """
    plen = len(prefix)
    ids: list[list[int]] = []
    special: list[NDArray[np.bool_]] = []
    offsets: list[NDArray[np.int64]] | None = [] if with_offsets else None
    for start in range(0, len(texts), _BATCH):
        batch = [prefix + t for t in texts[start : start + _BATCH]]
        enc = tokenizer(
            batch,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        for row_ids, off, sp in zip(
            enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"], strict=True
        ):
            off_a = np.asarray(off, dtype=np.int64).reshape(-1, 2)
            sp_a = np.asarray(sp, dtype=bool)
            is_prefix = off_a[:, 1] <= plen if plen else np.zeros(len(sp_a), dtype=bool)
            sp_a = sp_a | is_prefix
            ids.append(list(row_ids))
            special.append(sp_a)
            if offsets is not None:
                rel = np.maximum(off_a, plen) - plen
                rel[sp_a] = -1
                offsets.append(rel)
    n_tokens = np.array([len(x) for x in ids], dtype=np.int64)
    n_full = n_tokens.copy()
    at_limit = np.flatnonzero(n_tokens >= max_length)
    if len(at_limit):
        n_full[at_limit] = full_lengths(tokenizer, [prefix + texts[int(i)] for i in at_limit])
    return TokenizedCorpus(ids, special, offsets, n_tokens, n_full, max_length, prefix)
