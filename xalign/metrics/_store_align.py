"""Word alignment over stores, layer by layer, scored against gold links, in tidy form.

The array-level functions (:mod:`xalign.metrics._alignment`) do the arithmetic; this module
feeds them from a store:

- :func:`word_alignment_metrics`: SimAlign-style alignment from stored token embeddings
  (``--tokens``), scored against gold links (AER, precision, recall, F1);
- :func:`attention_word_alignment_metrics`: the same scores from pair-mode cross attention
  (:func:`xalign.extract.extract_pair_attention`).

The attention-map metrics over stores (entropy, pattern agreement, distance between two
stores) are in :mod:`xalign.metrics._store_attention`.

Every function returns a frame with columns ``metric, layer, lang, lang2, value, n, ci_low,
ci_high, protocol`` (:data:`STORE_ALIGN_COLUMNS`: :func:`xalign.metrics.tidy_frame` plus
``layer``). Gold links are ``(word of a, word of b)``, 0-based, as
:func:`xalign.data.gold_alignments` returns them; a sequence is matched to corpus groups
``{pair}:{k}`` by ``k``, a mapping by group name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from xalign.errors import ConfigError
from xalign.metrics._alignment import (
    AttentionMethod,
    alignment_scores,
    argmax_align,
    attention_align,
    itermax_align,
    word_similarity,
)
from xalign.metrics._attention import merge_attention_to_words
from xalign.metrics._store_common import (
    BLOCK_PAIRS,
    STORE_ALIGN_COLUMNS,
    Gold,
    Links,
    all_word_ids,
    check_boot,
    check_layers,
    compact_words,
    layer_frame,
    open_store,
    pairs_with_gold,
    resolve_pair,
    row_word_vectors,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from xalign.store import Store

__all__ = [
    "STORE_ALIGN_COLUMNS",
    "attention_word_alignment_metrics",
    "word_alignment_metrics",
    "word_vectors",
]

EmbeddingMethod = Literal["argmax", "itermax"]

_ALIGN_PARTS = ("aer", "f1", "precision", "recall")


def _methods(methods: str | Sequence[str], allowed: tuple[str, ...]) -> list[str]:
    out = [methods] if isinstance(methods, str) else list(methods)
    bad = [m for m in out if m not in allowed]
    if bad or not out:
        raise ConfigError(
            f"methods={methods!r}: expected one or more of {', '.join(map(repr, allowed))}"
        )
    return list(dict.fromkeys(out))


def _counts(pred: Links, sure: Links, possible: Links) -> tuple[int, int, int, int]:
    return len(pred), len(sure), len(pred & sure), len(pred & possible)


def _scores_from_counts(c: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    """AER/P/R/F1 from summed ``[..., 4]`` counts (|A|, |S|, |A∩S|, |A∩P|), as alignment_scores."""
    n_a, n_s, hit_s, hit_p = (c[..., k] for k in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(n_a > 0, hit_p / np.where(n_a > 0, n_a, 1), 0.0)
        rec = np.where(n_s > 0, hit_s / np.where(n_s > 0, n_s, 1), 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.where(prec + rec > 0, prec + rec, 1), 0.0)
        err = np.where(
            n_a + n_s > 0, 1 - (hit_s + hit_p) / np.where(n_a + n_s > 0, n_a + n_s, 1), np.nan
        )
    return {"aer": err, "precision": prec, "recall": rec, "f1": f1}


def _alignment_records(
    preds: list[Links],
    golds: list[tuple[Links, Links]],
    *,
    prefix: str,
    layer: int,
    a: str,
    b: str,
    protocol: dict[str, Any],
    n_boot: int,
    seed: int,
) -> list[dict[str, Any]]:
    point = alignment_scores(preds, golds)
    ci: dict[str, tuple[float, float]] = {}
    if n_boot > 0:
        counts = np.array([_counts(p, s, q) for p, (s, q) in zip(preds, golds, strict=True)], float)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(counts), size=(n_boot, len(counts)))
        reps = _scores_from_counts(counts[idx].sum(axis=1))
        for k, v in reps.items():
            lo, hi = np.nanquantile(v, [0.025, 0.975])
            ci[k] = (float(lo), float(hi))
    proto = {
        **protocol,
        "gold_sure": int(point["n_sure"]),
        "gold_possible": int(point["n_possible"]),
        "predicted": int(point["n_predicted"]),
        "aggregate": "corpus sums (Och & Ney 2003)",
        "n_boot": n_boot,
        "seed": seed,
    }
    out = []
    for part in _ALIGN_PARTS:
        lo, hi = ci.get(part, (np.nan, np.nan))
        out.append(
            {
                "metric": f"{prefix}_{part}",
                "layer": layer,
                "lang": a,
                "lang2": b,
                "value": point[part],
                "n": len(preds),
                "ci_low": lo,
                "ci_high": hi,
                "protocol": proto,
            }
        )
    return out


def _word_ids(store: Store, row: int) -> NDArray[np.int64]:
    return store.row_tokens(row)["word"].to_numpy(dtype=np.int64)


def word_vectors(
    store: Store | str | os.PathLike[str], row: int, *, layer: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Word vectors of one stored row at one layer: the mean of each word's token vectors.

    Words are the row's whitespace words (token table column ``word``); special and prefix
    tokens (``word = -1``) are dropped, as SimAlign drops [CLS]/[SEP]
    (:func:`xalign.metrics.merge_subwords`). A word with no token (cut by truncation) is
    absent.

    Returns
    -------
    vectors : ndarray, shape (W', D)
    words : ndarray of int, shape (W',)
        The word index of each vector (sorted).
    """
    st = open_store(store)
    if not st.has_tokens:
        raise ConfigError(f"store {st.path} has no token embeddings; re-extract with --tokens")
    return row_word_vectors(st.token_hidden(row, layer=layer), _word_ids(st, row))


def _embedding_links(
    va: NDArray[np.float64],
    vb: NDArray[np.float64],
    wa: NDArray[np.int64],
    wb: NDArray[np.int64],
    method: str,
) -> Links:
    sim = word_similarity(va, vb, scale="simalign")
    links = argmax_align(sim) if method == "argmax" else itermax_align(sim)
    return {(int(wa[i]), int(wb[j])) for i, j in links}


# ----------------------------------------------------------------------------- embeddings


def word_alignment_metrics(
    store: Store | str | os.PathLike[str],
    gold: Gold,
    *,
    langs: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    methods: str | Sequence[str] = ("argmax", "itermax"),
    n_boot: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Word-alignment quality of each layer's token embeddings against gold links (SimAlign).

    Per translation pair (rows of ``a`` and ``b`` sharing a group) and layer ℓ: word vectors
    are the mean of their subword vectors at ``hidden_states[ℓ]`` (special and prefix tokens
    dropped; :func:`word_vectors`); :math:`S_{ij}=(\\cos(e_i,f_j)+1)/2`; links by ArgMax
    (mutual argmax) or IterMax (SimAlign, α = 0.9, 2 rounds). Scores sum link counts over
    the pairs (:func:`xalign.metrics.alignment_scores`):

    .. math::
        \\mathrm{AER}=1-\\frac{\\sum|A\\cap S|+\\sum|A\\cap P|}{\\sum|A|+\\sum|S|},\\quad
        \\mathrm{Prec}=\\frac{\\sum|A\\cap P|}{\\sum|A|},\\quad
        \\mathrm{Rec}=\\frac{\\sum|A\\cap S|}{\\sum|S|}

    Metrics ``word_align_aer`` (lower = better), ``word_align_f1``, ``word_align_precision``,
    ``word_align_recall`` (higher = better), all in [0, 1]; ``n`` = sentence pairs scored.

    Parameters
    ----------
    store : Store or path
        Extracted with ``--tokens``.
    gold : sequence or mapping of (sure, possible)
        0-based ``(word of a, word of b)`` links (:func:`xalign.data.gold_alignments`).
    langs : (str, str), optional
        *a* = the gold's source side; None = the store's two languages in order.
    layers : sequence of int, optional
        Default: every stored layer.
    methods : str or sequence of {"argmax", "itermax"}
    n_boot : int
        Bootstrap replicates over sentence pairs for a 95 % percentile interval (0 = none).
    seed : int

    Returns
    -------
    DataFrame
        :data:`STORE_ALIGN_COLUMNS`.

    Raises
    ------
    ConfigError
        The store has no token embeddings ("re-extract with --tokens"), bad options.
    DataError
        No pair has gold links; a gold link outside its sentence.

    References
    ----------
    Jalili Sabet, Dufter, Yvon & Schütze 2020, *SimAlign*, Findings of EMNLP; Och & Ney 2003,
    Computational Linguistics 29(1); docs/metrics.md#simalign, #aer.
    """
    st = open_store(store)
    if not st.has_tokens:
        raise ConfigError(f"store {st.path} has no token embeddings; re-extract with --tokens")
    chosen = _methods(methods, get_args(EmbeddingMethod))
    check_boot(n_boot, seed)
    a, b = resolve_pair(st, langs)
    use_layers = check_layers(layers, st.layers, "layer(s)", st.path)
    pairs, golds = pairs_with_gold(st, a, b, gold)
    words = all_word_ids(st)
    layer_pos = {layer: st.layers.index(layer) for layer in use_layers}
    preds: dict[tuple[int, str], list[Links]] = {(ly, m): [] for ly in use_layers for m in chosen}
    rows_a = pairs["row_a"].to_numpy()
    rows_b = pairs["row_b"].to_numpy()
    for start in range(0, len(pairs), BLOCK_PAIRS):
        block = range(start, min(len(pairs), start + BLOCK_PAIRS))
        needed = sorted({int(rows_a[k]) for k in block} | {int(rows_b[k]) for k in block})
        hidden = {r: st.token_hidden(r) for r in needed}  # [T, n_layers, D]
        for layer in use_layers:
            li = layer_pos[layer]
            for k in block:
                ra, rb = int(rows_a[k]), int(rows_b[k])
                va, wa = row_word_vectors(hidden[ra][:, li], words[ra])
                vb, wb = row_word_vectors(hidden[rb][:, li], words[rb])
                for m in chosen:
                    links = _embedding_links(va, vb, wa, wb, m) if len(wa) and len(wb) else set()
                    preds[(layer, m)].append(links)
    records: list[dict[str, Any]] = []
    for layer in use_layers:
        for m in chosen:
            records += _alignment_records(
                preds[(layer, m)],
                golds,
                prefix="word_align",
                layer=layer,
                a=a,
                b=b,
                protocol={
                    "source": "token embeddings (hidden_states[layer])",
                    "method": m,
                    "similarity": "(cos+1)/2",
                    "subwords": "mean",
                    "specials": "excluded",
                    "prefix": st.extraction.get("prefix", ""),
                },
                n_boot=n_boot,
                seed=seed,
            )
    return layer_frame(records)


# ----------------------------------------------------------------------------- pair attention


def _merge_cross(
    ab: NDArray[np.float32],
    ba: NDArray[np.float32],
    words_a: NDArray[np.int64],
    words_b: NDArray[np.int64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Word-level cross blocks: keys summed over a word's tokens, queries averaged."""
    ids_a, pa = compact_words(words_a)
    ids_b, pb = compact_words(words_b)
    ta, tb = len(ids_a), len(ids_b)
    joint = np.zeros((ta + tb, ta + tb))
    joint[:ta, ta:] = ab
    joint[ta:, :ta] = ba
    ids = [*ids_a, *[None if x is None else x + len(pa) for x in ids_b]]
    merged = merge_attention_to_words(joint, ids)
    return merged[: len(pa), len(pa) :], merged[len(pa) :, : len(pa)], pa, pb


def attention_word_alignment_metrics(
    store: Store | str | os.PathLike[str],
    gold: Gold,
    *,
    langs: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    methods: str | Sequence[str] = "argmax",
    threshold: float = 0.1,
    n_boot: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Word-alignment quality of each layer's cross-sentence attention against gold links.

    Reads the pair-mode blocks (:func:`xalign.extract.extract_pair_attention`): for the joint
    input ``a ⊕ b``, the head-mean attention of *a*'s tokens to *b*'s (``ab``) and back
    (``ba``) at attention layer ℓ (block ℓ). Blocks are merged to words as Clark et al. 2019
    (sum over a word's key tokens, mean over its query tokens; special and prefix tokens
    dropped), then hard-aligned by :func:`xalign.metrics.attention_align` (row-normalised
    directions, product, mutual argmax / IterMax / threshold). Scores as
    :func:`word_alignment_metrics`, with metric names ``attn_align_aer``,
    ``attn_align_f1``, ``attn_align_precision``, ``attn_align_recall``.

    Parameters
    ----------
    store : Store or path
    gold : sequence or mapping of (sure, possible)
    langs : (str, str), optional
        The pair as extracted (*a* first); None = the store's two languages.
    layers : sequence of int, optional
        Attention layers (1..L); default every extracted one.
    methods : str or sequence of {"argmax", "itermax", "threshold"}
    threshold : float
        τ for ``"threshold"``.
    n_boot, seed : int
        Bootstrap over sentence pairs (0 = no interval).

    Raises
    ------
    ConfigError
        No pair attention for (a, b) (the message names ``extract_pair_attention``).

    References
    ----------
    Garg, Peitz, Nallasamy & Paulik 2019, EMNLP; Clark, Khandelwal, Levy & Manning 2019,
    BlackboxNLP; Och & Ney 2003; docs/metrics.md#attn-align.
    """
    from xalign.store import PairAttention

    st = open_store(store)
    chosen = _methods(methods, get_args(AttentionMethod))
    check_boot(n_boot, seed)
    a, b = resolve_pair(st, langs)
    pa = PairAttention(st.path, a, b)
    use_layers = check_layers(
        layers, pa.layers, "attention layer(s)", f"{st.path} (pair attention)"
    )
    pairs, golds = pairs_with_gold(st, a, b, gold)
    table = pa.table
    index = {g: i for i, g in enumerate(table["group"])}
    missing = [g for g in pairs["group"] if g not in index]
    if missing:
        raise ConfigError(
            f"group {missing[0]!r} has no pair attention in store {st.path}; rerun "
            "extract_pair_attention (the store's corpus changed?)"
        )
    wanted = [index[g] for g in pairs["group"]]
    wanted_pos = {i: k for k, i in enumerate(wanted)}
    records: list[dict[str, Any]] = []
    for layer in use_layers:
        preds: dict[str, list[Links]] = {m: [set() for _ in wanted] for m in chosen}
        for i, ab, ba in pa.layer_blocks(layer):
            k = wanted_pos.get(i)
            if k is None or ab.size == 0:
                continue
            wab, wba, wa, wb = _merge_cross(
                ab, ba, np.asarray(table["words_a"].iloc[i]), np.asarray(table["words_b"].iloc[i])
            )
            for m in chosen:
                links = attention_align(wab, wba, method=m, threshold=threshold)  # type: ignore[arg-type]
                preds[m][k] = {(int(wa[x]), int(wb[y])) for x, y in links}
        for m in chosen:
            proto = {
                "source": "pair-mode cross attention (joint input a+b)",
                "attention": "head-mean",
                "merge": "keys summed, queries averaged",
                "method": m,
                "max_length": pa.info.get("max_length"),
                "prefix": pa.info.get("prefix", ""),
            }
            if m == "threshold":
                proto["threshold"] = float(threshold)
            records += _alignment_records(
                preds[m],
                golds,
                prefix="attn_align",
                layer=layer,
                a=a,
                b=b,
                protocol=proto,
                n_boot=n_boot,
                seed=seed,
            )
    return layer_frame(records)
