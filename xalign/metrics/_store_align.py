"""Word alignment and attention metrics over stores, layer by layer, in tidy form.

The array-level functions (:mod:`xalign.metrics._alignment`, :mod:`xalign.metrics._attention`)
do the arithmetic; this module feeds them from a store:

- :func:`word_alignment_metrics`: SimAlign-style alignment from stored token embeddings
  (``--tokens``), scored against gold links (AER, precision, recall, F1);
- :func:`attention_word_alignment_metrics`: the same scores from pair-mode cross attention
  (:func:`xalign.extract.extract_pair_attention`);
- :func:`attention_alignment_metrics`: attention entropy per language and the similarity of
  a sentence's attention pattern with its translation's on aligned words (``--attentions``);
- :func:`attention_store_distance`: MSE / Jensen–Shannon distance between the attention maps
  of two stores over the same rows (before/after training).

Every function returns a frame with columns ``metric, layer, lang, lang2, value, n, ci_low,
ci_high, protocol`` (:func:`xalign.metrics.tidy_frame` plus ``layer``). Gold links are
``(word of a, word of b)``, 0-based, as :func:`xalign.data.gold_alignments` returns them; a
sequence is matched to corpus groups ``{pair}:{k}`` by ``k``, a mapping by group name.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError
from xalign.metrics._alignment import (
    alignment_scores,
    argmax_align,
    attention_align,
    itermax_align,
    merge_subwords,
    word_similarity,
)
from xalign.metrics._attention import (
    attention_alignment_similarity,
    attention_distance,
    attention_entropy,
    merge_attention_to_words,
)
from xalign.metrics._tidy import RESULT_COLUMNS, tidy_frame

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from xalign.store import Store

__all__ = [
    "STORE_ALIGN_COLUMNS",
    "attention_alignment_metrics",
    "attention_store_distance",
    "attention_word_alignment_metrics",
    "word_alignment_metrics",
    "word_vectors",
]

#: Columns of the frames returned here.
STORE_ALIGN_COLUMNS = ("metric", "layer", *RESULT_COLUMNS[1:])

Links = set[tuple[int, int]]
Gold = (
    Mapping[str, tuple[Iterable[tuple[int, int]], Iterable[tuple[int, int]]]]
    | Sequence[tuple[Iterable[tuple[int, int]], Iterable[tuple[int, int]]]]
)
EmbeddingMethod = Literal["argmax", "itermax"]
AttentionMethod = Literal["argmax", "itermax", "threshold"]
LinkSource = Literal["predicted", "gold"]

_BLOCK_PAIRS = 256
_ALIGN_PARTS = ("aer", "f1", "precision", "recall")


# ----------------------------------------------------------------------------- helpers


def _open(store: Store | str | os.PathLike[str]) -> Store:
    from xalign.store import Store

    return store if isinstance(store, Store) else Store.open(store)


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    df = tidy_frame(records)
    df.insert(1, "layer", pd.Series([int(r["layer"]) for r in records], dtype="int64"))
    return df


def _methods(methods: str | Sequence[str], allowed: tuple[str, ...]) -> list[str]:
    out = [methods] if isinstance(methods, str) else list(methods)
    bad = [m for m in out if m not in allowed]
    if bad or not out:
        raise ConfigError(
            f"methods={methods!r}: expected one or more of {', '.join(map(repr, allowed))}"
        )
    return list(dict.fromkeys(out))


def _layers(
    requested: Sequence[int] | None, available: Sequence[int], what: str, where: object
) -> list[int]:
    if requested is None:
        return list(available)
    req = [int(x) for x in requested]
    missing = [x for x in req if x not in available]
    if missing:
        raise ConfigError(f"{what} {missing} not in store {where} (stored: {list(available)})")
    return req


def _check_boot(n_boot: int, seed: int) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ConfigError(f"n_boot={n_boot!r}: expected an integer >= 0 (0 = no interval)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r}: expected an integer")


def _compact(
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


def _pairs_with_gold(
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


def _resolve(store: Store, langs: Sequence[str] | None) -> tuple[str, str]:
    from xalign.store import resolve_pair_langs

    return resolve_pair_langs(store.rows, langs, store.path)


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
    st = _open(store)
    if not st.has_tokens:
        raise ConfigError(f"store {st.path} has no token embeddings; re-extract with --tokens")
    return _row_word_vectors(st.token_hidden(row, layer=layer), _word_ids(st, row))


def _row_word_vectors(
    hidden: NDArray[np.float32], word_ids: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    ids, present = _compact(word_ids)
    if not len(present):
        return np.zeros((0, hidden.shape[-1])), present
    return merge_subwords(hidden, ids), present


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
    st = _open(store)
    if not st.has_tokens:
        raise ConfigError(f"store {st.path} has no token embeddings; re-extract with --tokens")
    chosen = _methods(methods, get_args(EmbeddingMethod))
    _check_boot(n_boot, seed)
    a, b = _resolve(st, langs)
    use_layers = _layers(layers, st.layers, "layer(s)", st.path)
    pairs, golds = _pairs_with_gold(st, a, b, gold)
    words = _all_word_ids(st)
    layer_pos = {layer: st.layers.index(layer) for layer in use_layers}
    preds: dict[tuple[int, str], list[Links]] = {(ly, m): [] for ly in use_layers for m in chosen}
    rows_a = pairs["row_a"].to_numpy()
    rows_b = pairs["row_b"].to_numpy()
    for start in range(0, len(pairs), _BLOCK_PAIRS):
        block = range(start, min(len(pairs), start + _BLOCK_PAIRS))
        needed = sorted({int(rows_a[k]) for k in block} | {int(rows_b[k]) for k in block})
        hidden = {r: st.token_hidden(r) for r in needed}  # [T, n_layers, D]
        for layer in use_layers:
            li = layer_pos[layer]
            for k in block:
                ra, rb = int(rows_a[k]), int(rows_b[k])
                va, wa = _row_word_vectors(hidden[ra][:, li], words[ra])
                vb, wb = _row_word_vectors(hidden[rb][:, li], words[rb])
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
    return _frame(records)


# ----------------------------------------------------------------------------- pair attention


def _merge_cross(
    ab: NDArray[np.float32],
    ba: NDArray[np.float32],
    words_a: NDArray[np.int64],
    words_b: NDArray[np.int64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Word-level cross blocks: keys summed over a word's tokens, queries averaged."""
    ids_a, pa = _compact(words_a)
    ids_b, pb = _compact(words_b)
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

    st = _open(store)
    chosen = _methods(methods, get_args(AttentionMethod))
    _check_boot(n_boot, seed)
    a, b = _resolve(st, langs)
    pa = PairAttention(st.path, a, b)
    use_layers = _layers(layers, pa.layers, "attention layer(s)", f"{st.path} (pair attention)")
    pairs, golds = _pairs_with_gold(st, a, b, gold)
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
    return _frame(records)


# ----------------------------------------------------------------------------- attention maps


def _require_attention(st: Store) -> None:
    if st.attention_mode == "none":
        raise ConfigError(
            f"store {st.path} has no attentions; re-extract with --attentions head-mean (or full)"
        )


def _head_mean(m: NDArray[np.float32]) -> NDArray[np.float64]:
    arr = np.asarray(m, dtype=np.float64)
    return arr.mean(axis=0) if arr.ndim == 3 else arr


def _mean_ci(
    values: Sequence[float] | NDArray[np.float64], n_boot: int, seed: int
) -> tuple[float, float, float]:
    from xalign.metrics._uncertainty import bootstrap_ci

    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean()) if len(v) else float("nan")
    if n_boot > 0 and len(v) > 0:
        lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed)
        return mean, float(lo), float(hi)
    return mean, float("nan"), float("nan")


def attention_alignment_metrics(
    store: Store | str | os.PathLike[str],
    *,
    langs: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    links: LinkSource = "predicted",
    gold: Gold | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Attention entropy per language, and attention-pattern agreement between translations.

    From the store's per-sentence attention maps (``--attentions``; a ``full`` store is
    averaged over heads first, so head-mean and full stores give the same numbers), per
    attention layer ℓ (block ℓ):

    - ``attention_entropy`` (``lang``): mean over the language's sentences of the mean row
      entropy :math:`-\\sum_j p_{ij}\\ln p_{ij}` over all tokens (special tokens included),
      in nats; range :math:`[0,\\ln T]` (:func:`xalign.metrics.attention_entropy`).
    - ``attention_pattern_corr`` / ``attention_pattern_cos`` (``lang``, ``lang2``): per
      translation pair, word-level maps (:func:`xalign.metrics.merge_attention_to_words`)
      compared on aligned word pairs (:func:`xalign.metrics.attention_alignment_similarity`:
      Pearson r and cosine of :math:`A^a_{i_p i_q}` vs :math:`A^b_{j_p j_q}` over all pairs
      of links); mean over the translation pairs where it is defined (``n`` counts them).
      Higher = the translation attends along the same aligned structure. Links are
      ``"predicted"``: the ArgMax alignment of the layer's word embeddings (hidden state ℓ,
      the output of block ℓ; needs ``--tokens``), or ``"gold"``: the gold **sure** links.

    Parameters
    ----------
    store : Store or path
    langs : sequence of str, optional
        Languages for entropy; their pairs (all combinations, in the given order) for
        pattern agreement. Default: every stored language. With ``links="gold"`` exactly
        two languages (or a two-language store), *a* being the gold's source side.
    layers : sequence of int, optional
        Attention layers; default every stored one.
    links : {"predicted", "gold"}
    gold : sequence or mapping of (sure, possible), optional
        Required for ``links="gold"``.
    n_boot, seed : int
        Bootstrap over sentences / sentence pairs for a 95 % interval (0 = none).

    Raises
    ------
    ConfigError
        No attentions in the store ("re-extract with --attentions head-mean"), no token
        embeddings for predicted links, or bad options.

    References
    ----------
    Clark, Khandelwal, Levy & Manning 2019, *What Does BERT Look At?*, BlackboxNLP;
    docs/metrics.md#attn-mass.
    """
    st = _open(store)
    _require_attention(st)
    if links not in get_args(LinkSource):
        raise ConfigError(f"links={links!r}: expected one of 'predicted', 'gold'")
    _check_boot(n_boot, seed)
    use_layers = _layers(layers, st.attention_layers, "attention layer(s)", st.path)
    if links == "gold":
        if gold is None:
            raise ConfigError("links='gold' needs gold= (e.g. xalign.data.gold_alignments(...))")
        pair_list = [_resolve(st, langs)]
        entropy_langs = list(pair_list[0])
    else:
        if not st.has_tokens:
            raise ConfigError(
                f"store {st.path} has no token embeddings for predicted links; re-extract with "
                "--tokens, or pass links='gold' with gold="
            )
        missing = [x for x in use_layers if x not in st.layers]
        if missing:
            raise ConfigError(
                f"layer(s) {missing} have attention but no hidden states in store {st.path}; "
                "predicted links need hidden_states[ℓ] for attention layer ℓ"
            )
        entropy_langs = st.languages if langs is None else [_resolve_one(st, x) for x in langs]
        pair_list = list(itertools.combinations(entropy_langs, 2))
    rows = st.rows
    proto_base = {
        "attention": st.attention_mode,
        "heads": "mean",
        "n_boot": n_boot,
        "seed": seed,
    }
    word_ids = _all_word_ids(st)
    prepared = {
        (a, b): _pattern_links(st, a, b, links, gold, use_layers, word_ids) for a, b in pair_list
    }
    records: list[dict[str, Any]] = []
    for layer in use_layers:
        attn = _MapCache(st, layer)

        for lang in entropy_langs:
            idx = np.flatnonzero(rows["lang"].to_numpy() == lang)
            ent = [attention_entropy(attn(int(r)))["mean"] for r in idx]
            v, lo, hi = _mean_ci(ent, n_boot, seed)
            records.append(
                {
                    "metric": "attention_entropy",
                    "layer": layer,
                    "lang": lang,
                    "lang2": None,
                    "value": v,
                    "n": len(ent),
                    "ci_low": lo,
                    "ci_high": hi,
                    "protocol": {
                        **proto_base,
                        "unit": "nats",
                        "tokens": "all (special included)",
                        "aggregate": "mean over sentences of the mean row entropy",
                    },
                }
            )
        for a, b in pair_list:
            records += _pattern_records(
                layer, a, b, links, prepared[(a, b)], word_ids, attn, proto_base, n_boot, seed
            )
    return _frame(records)


class _MapCache:
    """Head-mean attention maps of one layer, read once per row."""

    def __init__(self, store: Store, layer: int) -> None:
        self.store, self.layer = store, layer
        self.maps: dict[int, NDArray[np.float64]] = {}

    def __call__(self, row: int) -> NDArray[np.float64]:
        if row not in self.maps:
            self.maps[row] = _head_mean(self.store.attention(row, layer=self.layer))
        return self.maps[row]


def _resolve_one(st: Store, lang: str) -> str:
    rows = st.rows
    if lang in set(rows["lang"]):
        return lang
    raw = dict(zip(rows["lang_raw"], rows["lang"], strict=True))
    if lang in raw:
        return raw[lang]
    raise ConfigError(
        f"language {lang!r} not in store {st.path}; stored: {', '.join(st.languages)}"
    )


def _all_word_ids(st: Store) -> list[NDArray[np.int64]]:
    """Whitespace word index of every token, per row (-1: special or prefix token)."""
    words = st.tokens["word"].to_numpy(dtype=np.int64)
    cuts = np.cumsum(st.rows["n_tokens"].to_numpy(dtype=np.int64))[:-1]
    return np.split(words, cuts)


def _pattern_links(
    st: Store,
    a: str,
    b: str,
    links: str,
    gold: Gold | None,
    layers: list[int],
    word_ids: list[NDArray[np.int64]],
) -> tuple[pd.DataFrame, dict[int, list[list[tuple[int, int]]]]]:
    """Per layer and translation pair, the aligned word pairs in compact word numbering."""
    from xalign.store import parallel_rows

    if links == "gold":
        assert gold is not None
        pairs, golds = _pairs_with_gold(st, a, b, gold)
    else:
        pairs = parallel_rows(st.rows, a, b, st.path)
    rows_a = pairs["row_a"].to_numpy(dtype=np.int64)
    rows_b = pairs["row_b"].to_numpy(dtype=np.int64)
    out: dict[int, list[list[tuple[int, int]]]] = {ly: [[] for _ in rows_a] for ly in layers}
    if links == "gold":
        for k, (ra, rb) in enumerate(zip(rows_a, rows_b, strict=True)):
            _, pa = _compact(word_ids[ra])
            _, pb = _compact(word_ids[rb])
            ka = {int(w): x for x, w in enumerate(pa)}
            kb = {int(w): x for x, w in enumerate(pb)}
            sure = golds[k][0]
            pairs_k = sorted((ka[i], kb[j]) for i, j in sure if i in ka and j in kb)
            for ly in layers:
                out[ly][k] = pairs_k
        return pairs, out
    pos = {ly: st.layers.index(ly) for ly in layers}
    for start in range(0, len(rows_a), _BLOCK_PAIRS):
        block = range(start, min(len(rows_a), start + _BLOCK_PAIRS))
        needed = sorted({int(rows_a[k]) for k in block} | {int(rows_b[k]) for k in block})
        hidden = {r: st.token_hidden(r) for r in needed}  # all layers, one read per row
        for k in block:
            ra, rb = int(rows_a[k]), int(rows_b[k])
            for ly in layers:
                va, _ = _row_word_vectors(hidden[ra][:, pos[ly]], word_ids[ra])
                vb, _ = _row_word_vectors(hidden[rb][:, pos[ly]], word_ids[rb])
                if len(va) and len(vb):
                    out[ly][k] = sorted(argmax_align(word_similarity(va, vb)))
    return pairs, out


def _pattern_records(
    layer: int,
    a: str,
    b: str,
    links: str,
    prepared: tuple[pd.DataFrame, dict[int, list[list[tuple[int, int]]]]],
    word_ids: list[NDArray[np.int64]],
    attn: Callable[[int], NDArray[np.float64]],
    proto_base: dict[str, Any],
    n_boot: int,
    seed: int,
) -> list[dict[str, Any]]:
    pairs, per_layer = prepared
    corr: list[float] = []
    cos: list[float] = []
    for (ra, rb), word_pairs in zip(
        pairs[["row_a", "row_b"]].itertuples(index=False), per_layer[layer], strict=True
    ):
        if not word_pairs:
            continue
        ids_a, _ = _compact(word_ids[int(ra)])
        ids_b, _ = _compact(word_ids[int(rb)])
        ma = merge_attention_to_words(attn(int(ra)), ids_a)
        mb = merge_attention_to_words(attn(int(rb)), ids_b)
        r = attention_alignment_similarity(ma, mb, word_pairs)
        if np.isfinite(r["pearson"]):
            corr.append(float(r["pearson"]))
        if np.isfinite(r["cosine"]):
            cos.append(float(r["cosine"]))
    proto = {
        **proto_base,
        "links": "gold sure links" if links == "gold" else "argmax of hidden_states[layer] words",
        "merge": "keys summed, queries averaged",
        "aggregate": "mean over translation pairs where defined",
        "n_pairs": len(pairs),
    }
    out = []
    for name, vals in (("attention_pattern_corr", corr), ("attention_pattern_cos", cos)):
        v, lo, hi = _mean_ci(vals, n_boot, seed)
        out.append(
            {
                "metric": name,
                "layer": layer,
                "lang": a,
                "lang2": b,
                "value": v,
                "n": len(vals),
                "ci_low": lo,
                "ci_high": hi,
                "protocol": proto,
            }
        )
    return out


def attention_store_distance(
    store_a: Store | str | os.PathLike[str],
    store_b: Store | str | os.PathLike[str],
    *,
    layers: Sequence[int] | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Distance between two stores' attention maps over the same rows, per layer.

    For each row and attention layer ℓ, the head-mean maps of both stores
    (:func:`xalign.metrics.attention_distance`): ``attention_mse`` (mean squared difference,
    [0, 1]) and ``attention_js`` (mean row Jensen–Shannon divergence, nats, [0, ln 2]); 0 =
    identical. Values are means over rows, per language (``lang``) and over all rows
    (``lang`` None). Typical use: a checkpoint before and after training on one corpus.

    Parameters
    ----------
    store_a, store_b : Store or path
        Same corpus (fingerprint) and the same tokenisation (token ids per row).
    layers : sequence of int, optional
        Attention layers; default those both stores hold.
    n_boot, seed : int
        Bootstrap over rows for a 95 % interval (0 = none).

    Raises
    ------
    DataError
        Different corpora (fingerprints differ) or different tokenisation, saying which.
    ConfigError
        A store without attentions, or a layer missing from one of them.

    References
    ----------
    Lin 1991, IEEE Trans. Inf. Theory (JS); Ding et al. 2022, COLING (attention pull);
    docs/metrics.md#attn-agree.
    """
    sa, sb = _open(store_a), _open(store_b)
    for st in (sa, sb):
        _require_attention(st)
    _check_boot(n_boot, seed)
    fa, fb = sa.corpus.get("fingerprint"), sb.corpus.get("fingerprint")
    if fa != fb:
        raise DataError(
            f"stores {sa.path} and {sb.path} hold different corpora (fingerprints "
            f"{str(fa)[:12]}… vs {str(fb)[:12]}…); attention distance compares the same rows",
            path=sb.path,
        )
    na = sa.rows["n_tokens"].to_numpy()
    nb = sb.rows["n_tokens"].to_numpy()
    diff = np.flatnonzero(na != nb)
    if len(diff):
        r = int(diff[0])
        raise DataError(
            f"row {r} (id {sa.rows['id'].iloc[r]!r}) has {na[r]} tokens in {sa.path} but {nb[r]} "
            "in this store: different tokenisers (or max_length); maps cannot be compared "
            "position by position",
            path=sb.path,
        )
    ta, tb = sa.tokens["token_id"].to_numpy(), sb.tokens["token_id"].to_numpy()
    if not np.array_equal(ta, tb):
        t = int(np.flatnonzero(ta != tb)[0])
        r = int(sa.tokens["row"].iloc[t])
        raise DataError(
            f"row {r} is tokenised differently in {sa.path} and this store (token "
            f"{int(sa.tokens['position'].iloc[t])}); maps cannot be compared position by position",
            path=sb.path,
        )
    common = [x for x in sa.attention_layers if x in sb.attention_layers]
    if layers is None:
        use_layers = common
    else:
        use_layers = _layers(layers, common, "attention layer(s)", f"{sa.path} and {sb.path}")
    if not use_layers:
        raise ConfigError(f"stores {sa.path} and {sb.path} share no attention layer")
    langs = sa.rows["lang"].to_numpy()
    proto = {
        "other_store": sb.label,
        "maps": "head-mean",
        "rows": "all tokens (special included)",
        "aggregate": "mean over rows",
        "n_boot": n_boot,
        "seed": seed,
    }
    records: list[dict[str, Any]] = []
    for layer in use_layers:
        mse = np.zeros(len(langs))
        js = np.zeros(len(langs))
        for r in range(len(langs)):
            d = attention_distance(
                _head_mean(sa.attention(r, layer=layer)), _head_mean(sb.attention(r, layer=layer))
            )
            mse[r], js[r] = d["mse"], d["js"]
        groups: list[tuple[str | None, NDArray[np.bool_]]] = [
            (lang, langs == lang) for lang in dict.fromkeys(langs)
        ]
        groups.append((None, np.ones(len(langs), dtype=bool)))
        for lang, mask in groups:
            for name, vals in (("attention_mse", mse), ("attention_js", js)):
                v, lo, hi = _mean_ci(vals[mask], n_boot, seed)
                records.append(
                    {
                        "metric": name,
                        "layer": layer,
                        "lang": lang,
                        "lang2": None,
                        "value": v,
                        "n": int(mask.sum()),
                        "ci_low": lo,
                        "ci_high": hi,
                        "protocol": proto,
                    }
                )
    return _frame(records)
