"""Stratified, translation-preserving row samples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xalign.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import NDArray

__all__ = ["stratified_sample"]


def stratified_sample(
    rows: pd.DataFrame, n_per_lang: int | None, *, seed: int = 0
) -> NDArray[np.int64]:
    """At most ``n_per_lang`` rows of every language, keeping translation groups together.

    Groups (rows sharing ``group``) are put in one seeded random order, followed by the rows
    without a group (in seeded random order); each language keeps its first rows in that order.
    Languages covering the same groups therefore keep the *same* groups, so a sampled
    sentence keeps its sampled translations, and every language gets ``min(n_per_lang, its
    rows)`` rows.

    Parameters
    ----------
    rows : DataFrame
        A store's rows (columns ``lang`` and, optionally, ``group``), in store order.
    n_per_lang : int or None
        None keeps every row.
    seed : int

    Returns
    -------
    ndarray of int64
        Sorted positions in ``rows`` (= store row indices).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"lang": ["en", "de"] * 3, "group": ["a", "a", "b", "b", "c", "c"]})
    >>> sub = rows.iloc[stratified_sample(rows, 2, seed=0)]
    >>> len(sub), sorted(sub[sub.lang == "en"].group) == sorted(sub[sub.lang == "de"].group)
    (4, True)
    """
    n = len(rows)
    if n_per_lang is None:
        return np.arange(n, dtype=np.int64)
    if (
        isinstance(n_per_lang, bool)
        or not isinstance(n_per_lang, int | np.integer)
        or n_per_lang < 1
    ):
        raise ConfigError(f"sample={n_per_lang!r}: expected a positive number of rows per language")
    if "group" in rows.columns:
        groups = rows["group"].astype(object).to_numpy()
        missing = np.array([g is None or (isinstance(g, float) and np.isnan(g)) for g in groups])
    else:
        groups = np.full(n, None, dtype=object)
        missing = np.ones(n, dtype=bool)
    # Grouped rows first (groups in one seeded order), then rows without a group: a row
    # that has no translation never displaces a group that other languages keep.
    rng = np.random.default_rng(seed)
    keys = groups[~missing].astype(str)
    uniq = np.unique(keys)  # sorted: the order does not depend on the store's row order
    rank_of = np.empty(len(uniq), dtype=np.int64)
    rank_of[rng.permutation(len(uniq))] = np.arange(len(uniq))
    rank = np.empty(n, dtype=np.int64)
    rank[~missing] = rank_of[np.searchsorted(uniq, keys)]
    rank[missing] = len(uniq) + rng.permutation(int(missing.sum()))
    langs = rows["lang"].astype(str).to_numpy()
    keep: list[NDArray[np.int64]] = []
    for lang in dict.fromkeys(langs):
        idx = np.flatnonzero(langs == lang)
        keep.append(idx[np.argsort(rank[idx], kind="stable")[:n_per_lang]])
    return np.sort(np.concatenate(keep)).astype(np.int64)
