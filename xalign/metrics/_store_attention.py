"""Attention metrics over stores, layer by layer, in tidy form.

The array-level functions (:mod:`xalign.metrics._attention`) do the arithmetic; this module
feeds them from a store's per-sentence attention maps (``--attentions``):

- :func:`attention_alignment_metrics`: attention entropy per language and the similarity of
  a sentence's attention pattern with its translation's on aligned words;
- :func:`attention_store_distance`: MSE / Jensen–Shannon distance between the attention maps
  of two stores over the same rows (before/after training).

Word alignment *from* attention (pair-mode cross attention scored against gold links) is in
:mod:`xalign.metrics._store_align`. Every function returns a frame with the columns
:data:`~xalign.metrics.STORE_ALIGN_COLUMNS`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError
from xalign.metrics._alignment import argmax_align, word_similarity
from xalign.metrics._attention import (
    attention_alignment_similarity,
    attention_distance,
    attention_entropy,
    merge_attention_to_words,
)
from xalign.metrics._store_common import (
    BLOCK_PAIRS,
    Gold,
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

__all__ = ["attention_alignment_metrics", "attention_store_distance"]

LinkSource = Literal["predicted", "gold"]


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
    st = open_store(store)
    _require_attention(st)
    if links not in get_args(LinkSource):
        raise ConfigError(f"links={links!r}: expected one of 'predicted', 'gold'")
    check_boot(n_boot, seed)
    use_layers = check_layers(layers, st.attention_layers, "attention layer(s)", st.path)
    if links == "gold":
        if gold is None:
            raise ConfigError("links='gold' needs gold= (e.g. xalign.data.gold_alignments(...))")
        pair_list = [resolve_pair(st, langs)]
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
    word_ids = all_word_ids(st)
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
    return layer_frame(records)


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
        pairs, golds = pairs_with_gold(st, a, b, gold)
    else:
        pairs = parallel_rows(st.rows, a, b, st.path)
    rows_a = pairs["row_a"].to_numpy(dtype=np.int64)
    rows_b = pairs["row_b"].to_numpy(dtype=np.int64)
    out: dict[int, list[list[tuple[int, int]]]] = {ly: [[] for _ in rows_a] for ly in layers}
    if links == "gold":
        for k, (ra, rb) in enumerate(zip(rows_a, rows_b, strict=True)):
            _, pa = compact_words(word_ids[ra])
            _, pb = compact_words(word_ids[rb])
            ka = {int(w): x for x, w in enumerate(pa)}
            kb = {int(w): x for x, w in enumerate(pb)}
            sure = golds[k][0]
            pairs_k = sorted((ka[i], kb[j]) for i, j in sure if i in ka and j in kb)
            for ly in layers:
                out[ly][k] = pairs_k
        return pairs, out
    pos = {ly: st.layers.index(ly) for ly in layers}
    for start in range(0, len(rows_a), BLOCK_PAIRS):
        block = range(start, min(len(rows_a), start + BLOCK_PAIRS))
        needed = sorted({int(rows_a[k]) for k in block} | {int(rows_b[k]) for k in block})
        hidden = {r: st.token_hidden(r) for r in needed}  # all layers, one read per row
        for k in block:
            ra, rb = int(rows_a[k]), int(rows_b[k])
            for ly in layers:
                va, _ = row_word_vectors(hidden[ra][:, pos[ly]], word_ids[ra])
                vb, _ = row_word_vectors(hidden[rb][:, pos[ly]], word_ids[rb])
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
        ids_a, _ = compact_words(word_ids[int(ra)])
        ids_b, _ = compact_words(word_ids[int(rb)])
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
    sa, sb = open_store(store_a), open_store(store_b)
    for st in (sa, sb):
        _require_attention(st)
    check_boot(n_boot, seed)
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
        use_layers = check_layers(layers, common, "attention layer(s)", f"{sa.path} and {sb.path}")
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
    return layer_frame(records)
