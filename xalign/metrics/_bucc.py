"""BUCC-style bitext mining: margin-based mining, threshold tuning on held-out gold, P/R/F1.

Mining scores candidates with the margin of :mod:`xalign.metrics._retrieval` (the same
neighbourhoods, so every k-NN backend gives the same pairs). Formulas and protocol:
docs/metrics.md#margin and #bucc.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from xalign._validate import check_choice
from xalign.errors import ConfigError, DataError
from xalign.metrics._knn import Backend, select_backend
from xalign.metrics._retrieval import (
    Margin,
    _best,
    _neighbourhood,
    _pairs,
    _positive_int,
    _unit_pair,
)

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike, NDArray

__all__ = ["bucc_evaluate", "bucc_f1", "bucc_mine", "bucc_optimize_threshold"]


def bucc_mine(
    src: ArrayLike,
    tgt: ArrayLike,
    *,
    k: int = 4,
    margin: Margin = "ratio",
    threshold: float | None = None,
    center: bool = False,
    backend: Backend = "auto",
) -> pd.DataFrame:
    """Mine 1:1 translation pairs with margin scores (LASER/xtreme ``retrieval='max'``).

    1. For every source :math:`x` the best-scoring target among its ``k`` cosine nearest
       neighbours (forward), and for every target :math:`y` the best source among its ``k``
       neighbours (backward), scored with :func:`margin_scores`.
    2. Pool both lists and sort by score, descending (stable: forward candidates before
       backward ones, then by row, where LASER's ``np.argsort(-scores)`` is unstable).
    3. Greedily accept pairs whose source and target are both still unused (1:1).
    4. Keep pairs with score ``> threshold`` when a threshold is given.

    Parameters
    ----------
    src : array_like, shape (n, d)
    tgt : array_like, shape (m, d)
    k : int
        Neighbourhood size (clamped to the other side's row count); 4 in LASER/xtreme.
    margin : {"none", "distance", "ratio"}
    threshold : float, optional
        Mining threshold :math:`\\tau`; default keeps all accepted pairs.
    center : bool
        Subtract each side's mean vector before normalising (docs/metrics.md#centering).
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}

    Returns
    -------
    pandas.DataFrame
        Columns ``src_idx``, ``tgt_idx`` (int64 row indices), ``score`` (float64), sorted by
        score descending.

    References
    ----------
    Artetxe & Schwenk 2019, ACL (arXiv:1811.01136); LASER ``source/mine_bitexts.py``; xtreme
    ``third_party/utils_retrieve.py::mine_bitext`` (docs/metrics.md#margin).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.1], [0.1, 1.0]])
    >>> bucc_mine(x, x[::-1], k=1, backend="numpy")[["src_idx", "tgt_idx"]].values.tolist()
    [[0, 1], [1, 0]]
    """
    import pandas as pd

    margin = check_choice("margin", margin, get_args(Margin))  # type: ignore[assignment]
    k = _positive_int(k, "k")
    xn, yn = _unit_pair(src, tgt, center=center)
    chosen = select_backend(backend)
    n, m = len(xn), len(yn)
    fwd = _neighbourhood(xn, yn, k, chosen)
    bwd = _neighbourhood(yn, xn, k, chosen)
    f_best, f_score = _best(xn, yn, fwd, bwd[2], margin, "knn", 1.0, None)
    b_best, b_score = _best(yn, xn, bwd, fwd[2], margin, "knn", 1.0, None)
    cand_src = np.concatenate([np.arange(n), b_best])
    cand_tgt = np.concatenate([f_best, np.arange(m)])
    scores = np.concatenate([f_score, b_score])
    order = np.argsort(-scores, kind="stable")
    used_src = np.zeros(n, dtype=bool)
    used_tgt = np.zeros(m, dtype=bool)
    keep = []
    for c in order.tolist():
        s, t = cand_src[c], cand_tgt[c]
        if not used_src[s] and not used_tgt[t]:
            used_src[s] = used_tgt[t] = True
            keep.append(c)
    keep_idx = np.asarray(keep, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "src_idx": cand_src[keep_idx].astype(np.int64),
            "tgt_idx": cand_tgt[keep_idx].astype(np.int64),
            "score": scores[keep_idx].astype(np.float64),
        }
    )
    if threshold is not None:
        frame = frame[frame["score"] > float(threshold)].reset_index(drop=True)
    return frame


def _gold_set(gold: Any, name: str = "gold") -> set[tuple[int, int]]:
    if isinstance(gold, set):
        items: Iterable = gold
    else:
        arr = np.asarray(gold)
        if arr.size == 0:
            return set()
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise DataError(f"{name}: expected (src_idx, tgt_idx) pairs, got shape {arr.shape}")
        items = arr.tolist()
    return {(int(s), int(t)) for s, t in items}


def _mined_table(mined: Any) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    try:
        src = np.asarray(mined["src_idx"], dtype=np.int64)
        tgt = np.asarray(mined["tgt_idx"], dtype=np.int64)
        score = np.asarray(mined["score"], dtype=np.float64)
    except (KeyError, TypeError, IndexError) as exc:
        raise DataError(
            "mined: expected a table with columns src_idx, tgt_idx, score (from bucc_mine)"
        ) from exc
    return src, tgt, score


def bucc_f1(mined: Any, gold_pairs: Any, threshold: float) -> tuple[float, float, float]:
    """Precision, recall and F1 of mined pairs against gold pairs (BUCC shared task).

    .. math::
        P=\\frac{|\\mathcal{A}_\\tau\\cap\\mathcal{G}|}{|\\mathcal{A}_\\tau|},\\quad
        R=\\frac{|\\mathcal{A}_\\tau\\cap\\mathcal{G}|}{|\\mathcal{G}|},\\quad
        F_1=\\frac{2PR}{P+R}

    with :math:`\\mathcal{A}_\\tau` the mined pairs with score ``>= threshold`` (xtreme
    ``bucc_extract``). **Fractions in [0, 1]** (xtreme and the BUCC papers report percent);
    higher = better. An empty :math:`\\mathcal{A}_\\tau` gives P = 0; P = R = 0 gives F1 = 0.

    Parameters
    ----------
    mined : DataFrame or mapping
        Columns ``src_idx``, ``tgt_idx``, ``score`` (:func:`bucc_mine`).
    gold_pairs : array_like of shape (g, 2), or set of (src_idx, tgt_idx)
    threshold : float

    Returns
    -------
    (precision, recall, f1) : tuple of float

    References
    ----------
    Zweigenbaum, Sharoff & Rapp 2017/2018, BUCC shared task; xtreme
    ``third_party/utils_retrieve.py::bucc_eval``; LASER ``tasks/bucc/bucc.py``.

    Examples
    --------
    >>> mined = {"src_idx": [0, 1, 2], "tgt_idx": [0, 2, 1], "score": [1.3, 1.2, 0.9]}
    >>> bucc_f1(mined, [(0, 0), (1, 2), (2, 2)], threshold=1.0)
    (1.0, 0.6666666666666666, 0.8)
    """
    src, tgt, score = _mined_table(mined)
    gold = _gold_set(gold_pairs, "gold_pairs")
    keep = score >= float(threshold)
    extracted = set(zip(src[keep].tolist(), tgt[keep].tolist(), strict=True))
    hits = len(extracted & gold)
    precision = hits / len(extracted) if extracted else 0.0
    recall = hits / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return precision, recall, f1


def bucc_optimize_threshold(mined: Any, gold: Any) -> float:
    """Threshold that maximises F1 on gold pairs, by xtreme's midpoint rule.

    Candidates are sorted by score, descending; F1 is computed after each one; at the best
    cut :math:`i` the threshold is the midpoint :math:`(s_i + s_{i+1})/2` of that score and
    the next (xtreme ``bucc_optimize``). Use it on train/dev gold only, then apply the
    threshold to test with :func:`bucc_f1` (docs/metrics.md#bucc; xtreme#60). Two edge
    cases xtreme leaves open: when the best cut keeps every candidate the threshold is the
    last score (xtreme would index past the end), and when no candidate is correct it
    stays 0.0, xtreme's initial value.

    Parameters
    ----------
    mined : DataFrame or mapping
        Columns ``src_idx``, ``tgt_idx``, ``score``.
    gold : array_like of shape (g, 2), or set of (src_idx, tgt_idx)

    Returns
    -------
    float

    References
    ----------
    Hu et al. 2020, *XTREME*, ICML; ``third_party/utils_retrieve.py::bucc_optimize``.

    Examples
    --------
    >>> mined = {"src_idx": [0, 1, 2], "tgt_idx": [0, 2, 1], "score": [1.3, 1.2, 0.9]}
    >>> round(bucc_optimize_threshold(mined, [(0, 0), (1, 2)]), 6)
    1.05
    """
    src, tgt, score = _mined_table(mined)
    gold_set = _gold_set(gold)
    order = np.argsort(-score, kind="stable")
    n_gold = len(gold_set)
    threshold = 0.0
    best_f1 = 0.0
    n_correct = 0
    for rank, c in enumerate(order.tolist()):
        if (int(src[c]), int(tgt[c])) in gold_set:
            n_correct += 1
        if n_correct == 0:
            continue
        precision = n_correct / (rank + 1)
        recall = n_correct / n_gold
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1:
            best_f1 = f1
            nxt = score[order[rank + 1]] if rank + 1 < len(order) else score[c]
            threshold = float((score[c] + nxt) / 2)
    return threshold


def bucc_evaluate(
    src: ArrayLike,
    tgt: ArrayLike,
    gold: ArrayLike | None = None,
    *,
    n_distractors: int | None = None,
    held_out_fraction: float = 0.5,
    seed: int = 0,
    k: int = 4,
    margin: Margin = "ratio",
    oracle: bool = False,
    center: bool = False,
    backend: Backend = "auto",
) -> dict[str, Any]:
    """BUCC-style mining F1 on parallel data mixed with distractors, τ tuned on held-out gold.

    Construction (xalign-defined, following the BUCC setting of docs/metrics.md#margin):

    1. Gold pairs are ``gold`` (``(src_idx, tgt_idx)`` rows, 1:1) or, when ``gold`` is None,
       the row pairing ``src[i] ↔ tgt[i]``. Rows outside the gold pairs are distractors.
    2. ``n_distractors`` gold pairs, drawn with ``seed``, lose one side: half keep only their
       source sentence, half only their target sentence (unpaired rows, as in BUCC, where
       most sentences have no translation).
    3. The remaining gold pairs and the distractor rows of each side are split at random:
       a fraction ``held_out_fraction`` forms the *tuning* part, the rest the *test* part.
    4. Each part is mined on its own with :func:`bucc_mine`; the threshold τ is chosen on the
       tuning part with :func:`bucc_optimize_threshold` (xtreme midpoint rule) and applied
       to the test part, where P/R/F1 are reported (:func:`bucc_f1`). With ``oracle=True``
       the threshold tuned on the test part and its scores are also returned, under keys
       prefixed ``oracle_`` (an oracle number, never the main result).

    Parameters
    ----------
    src : array_like, shape (n, d)
    tgt : array_like, shape (m, d)
    gold : array_like of int, shape (g, 2), optional
    n_distractors : int, optional
        Gold pairs turned into unpaired rows; default half of the gold pairs.
    held_out_fraction : float
        Share of gold pairs and distractors used to tune τ, in (0, 1).
    seed : int
    k : int
        Margin neighbourhood size.
    margin : {"none", "distance", "ratio"}
    oracle : bool
    center : bool
        Centre each side of each part (its own mean) before mining.
    backend : {"auto", "numpy", "faiss", "faiss-gpu"}

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (fractions in [0, 1], higher = better), ``threshold``,
        counts ``n_gold_tune``, ``n_gold_test``, ``n_src_tune``, ``n_tgt_tune``,
        ``n_src_test``, ``n_tgt_test``, ``n_extracted_test``, optional ``oracle_*`` keys,
        and ``protocol``.

    References
    ----------
    Zweigenbaum, Sharoff & Rapp 2017/2018, BUCC shared task; Artetxe & Schwenk 2019, ACL;
    xtreme ``bucc_optimize``/``bucc_eval``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 16))
    >>> r = bucc_evaluate(x, x + 0.01 * rng.normal(size=x.shape), backend="numpy")
    >>> r["f1"], r["n_gold_test"]
    (1.0, 10)
    """
    k = _positive_int(k, "k")
    margin = check_choice("margin", margin, get_args(Margin))  # type: ignore[assignment]
    if not isinstance(held_out_fraction, float | int) or not 0 < held_out_fraction < 1:
        raise ConfigError(f"held_out_fraction={held_out_fraction!r}: expected a number in (0, 1)")
    x = np.asarray(src)
    y = np.asarray(tgt)
    if x.ndim != 2 or y.ndim != 2:
        raise DataError(f"src and tgt: expected 2-D arrays, got shapes {x.shape} and {y.shape}")
    n, m = x.shape[0], y.shape[0]
    if gold is None:
        if n != m:
            raise DataError(f"src and tgt: {n} vs {m} rows; without gold pairs rows must be paired")
        pairs = np.stack([np.arange(n), np.arange(n)], axis=1).astype(np.int64)
    else:
        pairs = _pairs(gold, "gold", n, m)
        for side, name in ((0, "source"), (1, "target")):
            uniq, times = np.unique(pairs[:, side], return_counts=True)
            if (times > 1).any():
                raise DataError(
                    f"gold: {name} row {int(uniq[times > 1][0])} appears in several pairs; "
                    "expected 1:1 pairs"
                )
    g = len(pairs)
    nd = g // 2 if n_distractors is None else n_distractors
    if isinstance(nd, bool) or not isinstance(nd, int | np.integer) or not 0 <= nd <= g - 2:
        raise ConfigError(
            f"n_distractors={n_distractors!r}: expected an integer in [0, {max(g - 2, 0)}] "
            f"(at least 2 of the {g} gold pairs must stay paired)"
        )
    rng = np.random.default_rng(seed)
    pairs = pairs[rng.permutation(g)]
    broken, kept = pairs[:nd], pairs[nd:]
    half = (nd + 1) // 2
    src_distract = np.concatenate(
        [broken[:half, 0], np.setdiff1d(np.arange(n), pairs[:, 0])]
    ).astype(np.int64)
    tgt_distract = np.concatenate(
        [broken[half:, 1], np.setdiff1d(np.arange(m), pairs[:, 1])]
    ).astype(np.int64)
    src_distract = src_distract[rng.permutation(len(src_distract))]
    tgt_distract = tgt_distract[rng.permutation(len(tgt_distract))]

    def cut(a: NDArray[np.int64]) -> int:
        return round(held_out_fraction * len(a))

    n_tune = min(max(cut(kept), 1), len(kept) - 1)
    parts = {
        "tune": (
            kept[:n_tune],
            src_distract[: cut(src_distract)],
            tgt_distract[: cut(tgt_distract)],
        ),
        "test": (
            kept[n_tune:],
            src_distract[cut(src_distract) :],
            tgt_distract[cut(tgt_distract) :],
        ),
    }
    mined: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for name, (gold_part, s_extra, t_extra) in parts.items():
        s_rows = np.sort(np.concatenate([gold_part[:, 0], s_extra]))
        t_rows = np.sort(np.concatenate([gold_part[:, 1], t_extra]))
        frame = bucc_mine(x[s_rows], y[t_rows], k=k, margin=margin, center=center, backend=backend)
        frame["src_idx"] = s_rows[frame["src_idx"].to_numpy()]
        frame["tgt_idx"] = t_rows[frame["tgt_idx"].to_numpy()]
        mined[name] = frame
        counts[f"n_gold_{name}"] = len(gold_part)
        counts[f"n_src_{name}"] = len(s_rows)
        counts[f"n_tgt_{name}"] = len(t_rows)
    gold_tune, gold_test = parts["tune"][0], parts["test"][0]
    threshold = bucc_optimize_threshold(mined["tune"], gold_tune)
    precision, recall, f1 = bucc_f1(mined["test"], gold_test, threshold)
    result: dict[str, Any] = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "threshold": threshold,
        **counts,
        "n_extracted_test": int((mined["test"]["score"] >= threshold).sum()),
    }
    if oracle:
        t_oracle = bucc_optimize_threshold(mined["test"], gold_test)
        p_o, r_o, f_o = bucc_f1(mined["test"], gold_test, t_oracle)
        result.update(
            oracle_threshold=t_oracle, oracle_precision=p_o, oracle_recall=r_o, oracle_f1=f_o
        )
    result["protocol"] = {
        "metric": "bucc_f1",
        "margin": margin,
        "k": k,
        "retrieval": "max",
        "n_distractors": int(nd),
        "held_out_fraction": float(held_out_fraction),
        "seed": seed,
        "center": bool(center),
        "threshold_rule": "xtreme bucc_optimize midpoint, tuned on the held-out part",
        "oracle": "oracle_* keys: threshold tuned on the test part" if oracle else None,
        "units": "fraction",
    }
    return result
