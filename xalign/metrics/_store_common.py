"""What the store-level alignment and attention metrics share: opening a store, checking
layers and options, translation pairs with gold links, word vectors, the tidy frame with
``layer``.

Gold links are ``(word of a, word of b)``, 0-based, as :func:`xalign.data.gold_alignments`
returns them; a sequence is matched to corpus groups ``{pair}:{k}`` by ``k``, a mapping by
group name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError
from xalign.metrics._alignment import merge_subwords
from xalign.metrics._tidy import RESULT_COLUMNS, tidy_frame

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from xalign.store import Store

__all__ = [
    "BLOCK_PAIRS",
    "STORE_ALIGN_COLUMNS",
    "Gold",
    "Links",
    "all_word_ids",
    "check_boot",
    "check_layers",
    "compact_words",
    "layer_frame",
    "open_store",
    "pairs_with_gold",
    "resolve_pair",
    "row_word_vectors",
]

#: Columns of the frames the store-level metrics return.
STORE_ALIGN_COLUMNS = ("metric", "layer", *RESULT_COLUMNS[1:])

Links = set[tuple[int, int]]
Gold = (
    Mapping[str, tuple[Iterable[tuple[int, int]], Iterable[tuple[int, int]]]]
    | Sequence[tuple[Iterable[tuple[int, int]], Iterable[tuple[int, int]]]]
)

#: Translation pairs whose token vectors are read at once (bounded memory for any corpus).
BLOCK_PAIRS = 256


def open_store(store: Store | str | os.PathLike[str]) -> Store:
    from xalign.store import Store

    return store if isinstance(store, Store) else Store.open(store)


def layer_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    df = tidy_frame(records)
    df.insert(1, "layer", pd.Series([int(r["layer"]) for r in records], dtype="int64"))
    return df


def check_layers(
    requested: Sequence[int] | None, available: Sequence[int], what: str, where: object
) -> list[int]:
    if requested is None:
        return list(available)
    req = [int(x) for x in requested]
    missing = [x for x in req if x not in available]
    if missing:
        raise ConfigError(f"{what} {missing} not in store {where} (stored: {list(available)})")
    return req


def check_boot(n_boot: int, seed: int) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ConfigError(f"n_boot={n_boot!r}: expected an integer >= 0 (0 = no interval)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r}: expected an integer")


def compact_words(
    word_ids: Sequence[int] | NDArray[np.int64],
) -> tuple[list[int | None], NDArray[np.int64]]:
    """Word ids renumbered 0..W'-1 over the words that own tokens (-1 → None), and those words."""
    w = np.asarray(word_ids, dtype=np.int64)
    present = np.unique(w[w >= 0])
    index = {int(x): k for k, x in enumerate(present)}
    return [index[int(x)] if x >= 0 else None for x in w], present


def _gold_lookup(gold: Gold) -> Callable[[str], tuple[Links, Links] | None]:
    if isinstance(gold, Mapping):
        table = {str(k): v for k, v in gold.items()}

        def by_name(group: str) -> tuple[Links, Links] | None:
            v = table.get(str(group))
            return None if v is None else (_links(v[0]), _links(v[1]))

        return by_name
    seq = list(gold)

    def by_index(group: str) -> tuple[Links, Links] | None:
        tail = str(group).rsplit(":", 1)[-1]
        if not tail.isdigit() or int(tail) >= len(seq):
            return None
        s, p = seq[int(tail)]
        return _links(s), _links(p)

    return by_index


def _links(x: Iterable[tuple[int, int]]) -> Links:
    return {(int(i), int(j)) for i, j in x}


def pairs_with_gold(
    store: Store, a: str, b: str, gold: Gold
) -> tuple[pd.DataFrame, list[tuple[Links, Links]]]:
    """Parallel rows that have gold links, and those links checked against the word counts."""
    from xalign.store import parallel_rows

    pairs = parallel_rows(store.rows, a, b, store.path)
    lookup = _gold_lookup(gold)
    texts = store.rows["text"].tolist()
    keep, golds = [], []
    for k, (group, ra, rb) in enumerate(pairs[["group", "row_a", "row_b"]].itertuples(index=False)):
        g = lookup(group)
        if g is None:
            continue
        sure, possible = g
        m, n = len(texts[ra].split()), len(texts[rb].split())
        bad = [(i, j) for i, j in sorted(possible | sure) if not (0 <= i < m and 0 <= j < n)]
        if bad:
            i, j = bad[0]
            raise DataError(
                f"gold link ({i}, {j}) of group {group!r} is outside its {m} {a} x {n} {b} words "
                "(0-based); is the language order (a = source side of the gold) right?",
                path=store.path,
            )
        keep.append(k)
        golds.append((sure, possible | sure))
    if not keep:
        raise DataError(
            f"no {a}-{b} pair of the store has gold links (groups like "
            f"{pairs['group'].iloc[0]!r}; a gold sequence is matched by the number after ':')",
            path=store.path,
        )
    return pairs.iloc[keep].reset_index(drop=True), golds


def resolve_pair(store: Store, langs: Sequence[str] | None) -> tuple[str, str]:
    from xalign.store import resolve_pair_langs

    return resolve_pair_langs(store.rows, langs, store.path)


def row_word_vectors(
    hidden: NDArray[np.float32], word_ids: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    ids, present = compact_words(word_ids)
    if not len(present):
        return np.zeros((0, hidden.shape[-1])), present
    return merge_subwords(hidden, ids), present


def all_word_ids(st: Store) -> list[NDArray[np.int64]]:
    """Whitespace word index of every token, per row (-1: special or prefix token)."""
    words = st.tokens["word"].to_numpy(dtype=np.int64)
    cuts = np.cumsum(st.rows["n_tokens"].to_numpy(dtype=np.int64))[:-1]
    return np.split(words, cuts)
