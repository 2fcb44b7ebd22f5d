"""Perturbed views: counter-fitted synonym substitution, exactly as the EAR / Robust-XLT code.

The reference (KB-Ding/EAR ``utils/perturb_aug_ori.py``, the algorithm of Robust-XLT's
``perturb.py``) splits a sentence on single spaces, looks every word up case-sensitively in a
word -> neighbours map, and replaces a word that has neighbours by a word drawn uniformly from
``[word] + neighbours[word]`` (``np.random.randint``). It writes N perturbed copies per example.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError

__all__ = ["load_neighbours", "paired_views", "perturb_sentence"]

Neighbours = Mapping[str, Sequence[str]]


def load_neighbours(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a neighbour file: one JSON object mapping each word to a list of neighbour words.

    The reference file is Robust-XLT's ``counterfitted_neighbors.json`` (49,975 keys; at most
    8 neighbours each). Words with an empty list are kept (they are never replaced).

    Raises
    ------
    DataError
        Missing file, invalid JSON, or not an object of string -> list of strings (the message
        names the file and the first offending key).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "nb.json"
    >>> _ = p.write_text('{"quick": ["fast", "rapid"], "the": []}')
    >>> load_neighbours(p)["quick"]
    ['fast', 'rapid']
    """
    p = Path(path)
    expected = "expected a JSON object mapping each word to a list of neighbour words"
    if not p.is_file():
        raise DataError(f"no such neighbour file ({expected})", path=p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason}); {expected}", path=p) from None
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}; {expected}", path=p, line=e.lineno) from None
    if not isinstance(data, dict):
        raise DataError(f"top level is a JSON {type(data).__name__}; {expected}", path=p)
    if not data:
        raise DataError(f"empty object; {expected}", path=p)
    out: dict[str, list[str]] = {}
    for word, nbs in data.items():
        if not isinstance(nbs, list) or not all(isinstance(x, str) for x in nbs):
            raise DataError(
                f"value of key {word!r} is {json.dumps(nbs, ensure_ascii=False)[:60]}; {expected}",
                path=p,
            )
        out[word] = list(nbs)
    return out


def perturb_sentence(
    sentence: str, neighbours: Neighbours, rng: np.random.RandomState, *, n: int = 1
) -> list[str]:
    """Return ``n`` perturbed copies of ``sentence`` (the reference ``perturb``).

    The sentence is split on single spaces (``str.split(" ")``: no lowercasing, punctuation
    stays attached, so ``"fox."`` is not ``"fox"``). Each word with a non-empty neighbour list
    becomes ``rng.randint(len(c))``-th element of ``c = [word] + neighbours[word]``, so a word
    with k neighbours changes with probability k / (k + 1). Copies are drawn one after the
    other, words left to right, exactly as the reference draws from ``np.random``: with
    ``rng = np.random.RandomState(s)`` the copies equal the reference script's after
    ``np.random.seed(s)``.

    Examples
    --------
    >>> rng = np.random.RandomState(0)
    >>> perturb_sentence("the quick fox", {"quick": ["fast"], "fox": []}, rng, n=3)
    ['the quick fox', 'the fast fox', 'the fast fox']
    """
    words = sentence.split(" ")
    copies = []
    for _ in range(n):
        out = []
        for word in words:
            nbs = neighbours.get(word)
            if not nbs:
                out.append(word)
                continue
            cands = [word, *nbs]
            out.append(cands[rng.randint(0, len(cands))])
        copies.append(" ".join(out))
    return copies


def paired_views(
    examples: pd.DataFrame,
    neighbours: Neighbours | None,
    *,
    n_views: int = 1,
    seed: int = 0,
) -> pd.DataFrame:
    """Training rows of (perturbed view, original view, label): ``n_views`` rows per example.

    Parameters
    ----------
    examples : DataFrame
        Columns ``text_a``, ``text_b`` (None for single-sentence tasks), ``label``.
    neighbours : mapping or None
        Word -> neighbours (:func:`load_neighbours`). None makes the perturbed view a copy of
        the original (methods that never read it).
    n_views : int
        Perturbed copies per example (the reference ``--num``; its default is 3).
    seed : int
        Seed of the ``np.random.RandomState`` stream (the same seed, the same views).

    Returns
    -------
    DataFrame
        Columns ``example`` (row of ``examples``), ``view`` (0..n_views-1), ``pert_a``,
        ``pert_b``, ``text_a``, ``text_b``, ``label``; the copies of one example are
        consecutive, as in the reference file. For a pair, all copies of ``text_a`` are drawn
        before those of ``text_b`` (the reference order).

    Examples
    --------
    >>> ex = pd.DataFrame({"text_a": ["a quick fox"], "text_b": [None], "label": [0]})
    >>> paired_views(ex, {"quick": ["fast"]}, n_views=2, seed=5)["pert_a"].tolist()
    ['a fast fox', 'a quick fox']
    """
    if n_views < 1:
        raise ConfigError(f"n_views={n_views}: must be at least 1")
    rng = np.random.RandomState(seed)
    recs = []
    has_b = "text_b" in examples.columns
    for i, (a, b, y) in enumerate(
        zip(
            examples["text_a"],
            examples["text_b"] if has_b else [None] * len(examples),
            examples["label"],
            strict=True,
        )
    ):
        if neighbours is None:
            pa, pb = [a] * n_views, [b] * n_views
        else:
            pa = perturb_sentence(a, neighbours, rng, n=n_views)
            pb = (
                perturb_sentence(b, neighbours, rng, n=n_views)
                if b is not None
                else [None] * n_views
            )
        for v in range(n_views):
            recs.append((i, v, pa[v], pb[v], a, b, y))
    cols = ["example", "view", "pert_a", "pert_b", "text_a", "text_b", "label"]
    return pd.DataFrame.from_records(recs, columns=cols)
