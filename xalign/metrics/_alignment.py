"""Word alignment from embeddings or attention, and its scores (AER, precision, recall, F1).

Links are sets of 0-based ``(i, j)`` tuples: ``i`` indexes source words, ``j`` target words.
Formulas and sources: docs/metrics.md#word-alignment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from xalign.errors import ConfigError, DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Links",
    "aer",
    "alignment_prf",
    "alignment_scores",
    "argmax_align",
    "attention_align",
    "itermax_align",
    "merge_subwords",
    "subword_to_word_links",
    "word_similarity",
]

Links = set[tuple[int, int]]
AttentionMethod = Literal["argmax", "itermax", "threshold"]


def _matrix(s: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(s, dtype=np.float64)
    if arr.ndim != 2 or 0 in arr.shape:
        raise DataError(f"{name}: expected a non-empty 2-D matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: contains NaN or infinity; expected finite values")
    return arr


def _links(matrix: NDArray) -> Links:
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(matrix), strict=True)}


# ---------------------------------------------------------------- similarity


def word_tokens(
    ids: Sequence[int | None],
) -> tuple[list[int], NDArray[np.int64], NDArray[np.int64]]:
    """Positions of the word tokens, their word indices, and the token count of each word.

    Tokens with word id ``None`` (specials) are left out; the word indices must be 0..W-1
    without gaps, each word owning at least one token.
    """
    keep = [t for t, w in enumerate(ids) if w is not None]
    if not keep:
        raise DataError("word_ids: no token belongs to a word (all None)")
    words = np.asarray([ids[t] for t in keep], dtype=np.int64)
    if words.min() < 0:
        raise DataError(f"word_ids: negative word index {int(words.min())}")
    counts = np.bincount(words, minlength=int(words.max()) + 1)
    if (counts == 0).any():
        raise DataError(
            f"word_ids: word {int(np.flatnonzero(counts == 0)[0])} has no token; "
            "expected word indices 0..W-1 without gaps"
        )
    return keep, words, counts


def merge_subwords(token_vectors: ArrayLike, word_ids: Sequence[int | None]) -> NDArray[np.float64]:
    """Word vectors as the mean of each word's subword-token vectors (SimAlign style).

    .. math:: e_w = \\frac{1}{|T_w|}\\sum_{t\\in T_w} h_t

    Parameters
    ----------
    token_vectors : array_like, shape (T, d)
        One sentence's token vectors at one layer.
    word_ids : sequence of int or None, length T
        Word index of each token (as ``tokenizers``' ``word_ids()``); ``None`` marks special
        tokens ([CLS], [SEP], <s>, </s>), which are dropped as SimAlign drops them.

    Returns
    -------
    ndarray, shape (W, d)
        ``W = max(word_ids) + 1``; every word must own at least one token.

    References
    ----------
    Jalili Sabet, Dufter, Yvon & Schütze 2020, *SimAlign*, Findings of EMNLP;
    ``simalign/simalign.py`` (``token_type="word"``: ``vectors[word_set].mean(0)``).

    Examples
    --------
    >>> merge_subwords([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [0.0, 0.0]],
    ...                [None, 0, 0, 1, None]).tolist()
    [[2.0, 3.0], [5.0, 6.0]]
    """
    vecs = np.asarray(token_vectors, dtype=np.float64)
    if vecs.ndim != 2:
        raise DataError(f"token_vectors: expected shape [tokens, dim], got {vecs.shape}")
    ids = list(word_ids)
    if len(ids) != vecs.shape[0]:
        raise DataError(
            f"word_ids: {len(ids)} entries for {vecs.shape[0]} token vectors; "
            "expected one per token"
        )
    keep, words, counts = word_tokens(ids)
    out = np.zeros((len(counts), vecs.shape[1]))
    np.add.at(out, words, vecs[keep])
    return out / counts[:, None]


def word_similarity(
    src_words: ArrayLike,
    tgt_words: ArrayLike,
    *,
    scale: Literal["cosine", "simalign"] = "cosine",
) -> NDArray[np.float64]:
    """Cosine similarity matrix between the words of a sentence pair.

    :math:`S_{ij}=\\cos(e_i,f_j)\\in[-1,1]`, or with ``scale="simalign"``
    :math:`S_{ij}=(\\cos(e_i,f_j)+1)/2\\in[0,1]` as SimAlign's ``get_similarity``.

    ArgMax alignment (:func:`argmax_align`) is the same under both scales: it only compares
    values, and any increasing rescaling keeps their order. **IterMax is not**: its later
    rounds multiply :math:`S` by weights in :math:`\\{0, \\alpha, 1\\}`, and a weighted
    value changes its rank under any rescaling with an offset (:math:`aS+b`, :math:`b\\ne0`),
    not only where cosines are negative: :math:`0.9\\cdot0.82 > 0.71` but
    :math:`0.9\\cdot(0.82+1)/2 < (0.71+1)/2`. Use ``scale="simalign"`` before
    :func:`itermax_align` to reproduce SimAlign's links; ``"cosine"`` gives a different
    (not SimAlign's) IterMax.

    Parameters
    ----------
    src_words : array_like, shape (m, d)
    tgt_words : array_like, shape (n, d)
    scale : {"cosine", "simalign"}

    Returns
    -------
    ndarray, shape (m, n)

    References
    ----------
    Jalili Sabet et al. 2020, *SimAlign*, Findings of EMNLP (docs/metrics.md#simalign).

    Examples
    --------
    >>> word_similarity([[1.0, 0.0]], [[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]).tolist()
    [[1.0, 0.0, -1.0]]
    >>> word_similarity([[1.0, 0.0]], [[0.0, 2.0]], scale="simalign").tolist()
    [[0.5]]

    IterMax differs between the scales even when every cosine is positive:

    >>> cos = np.array([[0.89, 0.78, 0.05], [0.82, 0.08, 0.71], [0.21, 0.83, 0.54]])
    >>> sorted(itermax_align(cos)), sorted(itermax_align((cos + 1) / 2))
    ([(0, 0), (1, 0), (2, 1)], [(0, 0), (1, 2), (2, 1)])
    """
    if scale not in ("cosine", "simalign"):
        raise ConfigError(f"scale={scale!r}: expected one of 'cosine', 'simalign'")
    a = _matrix(src_words, "src_words")
    b = _matrix(tgt_words, "tgt_words")
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"src_words and tgt_words: vector sizes differ ({a.shape[1]} vs {b.shape[1]})"
        )
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    if (na == 0).any() or (nb == 0).any():
        raise DataError("src_words/tgt_words: a word vector has zero norm; cosine is undefined")
    cos = (a / na) @ (b / nb).T
    return (cos + 1.0) / 2.0 if scale == "simalign" else cos


# ---------------------------------------------------------------- hard alignment


def _mutual_argmax(s: NDArray[np.float64]) -> NDArray[np.float64]:
    m, n = s.shape
    forward = np.eye(n)[s.argmax(axis=1)]
    backward = np.eye(m)[s.argmax(axis=0)].T
    return forward * backward


def argmax_align(similarity: ArrayLike) -> Links:
    """SimAlign's ArgMax (``inter``): links that are the row and the column maximum.

    .. math::
        A=\\{(i,j): j=\\arg\\max_{j'}S_{ij'}\\ \\wedge\\ i=\\arg\\max_{i'}S_{i'j}\\}

    the intersection of forward and backward argmax alignments. Ties go to the first
    maximum (``numpy.argmax``), as in SimAlign.

    Parameters
    ----------
    similarity : array_like, shape (m, n)
        Source words × target words.

    Returns
    -------
    set of (int, int)

    References
    ----------
    Jalili Sabet, Dufter, Yvon & Schütze 2020, *SimAlign*, Findings of EMNLP;
    ``simalign/simalign.py::get_alignment_matrix`` (docs/metrics.md#simalign).

    Examples
    --------
    >>> sorted(argmax_align([[0.9, 0.1, 0.2], [0.8, 0.3, 0.1]]))
    [(0, 0)]
    """
    return _links(_mutual_argmax(_matrix(similarity, "similarity")))


def itermax_align(similarity: ArrayLike, *, max_iter: int = 2, alpha: float = 0.9) -> Links:
    """SimAlign's IterMax: ArgMax repeated on the still-unaligned words.

    After the first ArgMax round (:func:`argmax_align`) with links :math:`A`, each further
    round (up to ``max_iter`` rounds in total, SimAlign's ``max_count``) does:

    - :math:`u_i = 1` if source word *i* is unaligned, else 0; :math:`v_j` likewise for
      target words;
    - weight :math:`W_{ij}=\\min(1, \\alpha u_i + \\alpha v_j)`: pairs of two unaligned
      words get :math:`\\min(1, 2\\alpha)` (1 for SimAlign's α = 0.9), pairs with one
      aligned word :math:`\\alpha`, pairs of two aligned words 0;
    - run ArgMax on :math:`S\\odot W` and add its links :math:`(i,j)` for which at least one of
      *i*, *j* is unaligned (mask :math:`1-(1-u_i)(1-v_j)`);
    - stop early when nothing is added, or when every source or every target word is
      aligned.

    Sentences with :math:`\\min(m,n)\\le2` get plain ArgMax. This is SimAlign's
    ``iter_max`` (``alpha_ratio=0.9``, ``max_count=2``) step for step. The links depend on
    the similarity's scale (any offset changes them, see :func:`word_similarity`): SimAlign's
    are reproduced on ``word_similarity(..., scale="simalign")``, i.e. :math:`(\\cos+1)/2`.

    Parameters
    ----------
    similarity : array_like, shape (m, n)
    max_iter : int
        Total ArgMax rounds, including the first.
    alpha : float
        Weight for pairs with one already-aligned word, in [0, 1].

    Returns
    -------
    set of (int, int)

    References
    ----------
    Jalili Sabet, Dufter, Yvon & Schütze 2020, *SimAlign*, Findings of EMNLP, §2.3;
    ``simalign/simalign.py::iter_max`` (docs/metrics.md#simalign).

    Examples
    --------
    >>> s = [[0.9, 0.1, 0.1], [0.1, 0.5, 0.6], [0.1, 0.2, 0.95]]
    >>> sorted(argmax_align(s))  # source word 1 is left unaligned
    [(0, 0), (2, 2)]
    >>> sorted(itermax_align(s))  # round 2 links it to its best target, although aligned
    [(0, 0), (1, 2), (2, 2)]
    """
    s = _matrix(similarity, "similarity")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter={max_iter!r}: expected a positive integer")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"alpha={alpha!r}: expected a number in [0, 1]")
    m, n = s.shape
    inter = _mutual_argmax(s)
    if min(m, n) <= 2:
        return _links(inter)
    for _ in range(max_iter - 1):
        unaligned_x = 1.0 - np.clip(inter.sum(axis=1), 0.0, 1.0)[:, None] * np.ones((1, n))
        unaligned_y = 1.0 - np.clip(inter.sum(axis=0), 0.0, 1.0)[None, :] * np.ones((m, 1))
        if unaligned_x.sum() < 1.0 or unaligned_y.sum() < 1.0:
            break
        weight = np.clip(alpha * unaligned_x + alpha * unaligned_y, 0.0, 1.0)
        open_pair = 1.0 - (1.0 - unaligned_x) * (1.0 - unaligned_y)
        new = _mutual_argmax(s * weight) * open_pair
        if np.array_equal(inter + new, inter):
            break
        inter = inter + new
    return _links(inter)


def subword_to_word_links(
    links: Iterable[tuple[int, int]],
    src_word_ids: Sequence[int | None],
    tgt_word_ids: Sequence[int | None],
) -> Links:
    """Map subword-token links to word links by union (SimAlign ``token_type="bpe"``).

    A word pair is linked when any of their subword tokens are linked; links that touch a
    special token (word id ``None``) are dropped.

    Examples
    --------
    >>> sorted(subword_to_word_links({(0, 0), (1, 0), (2, 1)}, [0, 0, 1], [0, 1]))
    [(0, 0), (1, 1)]
    """
    src_ids, tgt_ids = list(src_word_ids), list(tgt_word_ids)
    out: Links = set()
    for i, j in links:
        if not (0 <= i < len(src_ids) and 0 <= j < len(tgt_ids)):
            raise DataError(
                f"links: ({i}, {j}) outside the token ranges {len(src_ids)} x {len(tgt_ids)}"
            )
        wi, wj = src_ids[i], tgt_ids[j]
        if wi is not None and wj is not None:
            out.add((int(wi), int(wj)))
    return out


def _cross_probs(block: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(block, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr.mean(axis=0)
    arr = _matrix(arr, name)
    if (arr < 0).any():
        raise DataError(f"{name}: negative attention weight; expected probabilities")
    rows = arr.sum(axis=1, keepdims=True)
    if (rows <= 0).any():
        raise DataError(f"{name}: a row has no attention mass in the cross block")
    return arr / rows


def attention_align(
    cross_attn_ab: ArrayLike,
    cross_attn_ba: ArrayLike,
    *,
    method: AttentionMethod = "argmax",
    threshold: float = 0.1,
) -> Links:
    """Hard word alignment from the cross-sentence attention of a jointly encoded pair.

    For an input ``[CLS] a [SEP] b [SEP]``, ``cross_attn_ab`` is the block of rows of *a*'s
    tokens and columns of *b*'s tokens (``m × n``), ``cross_attn_ba`` the block rows *b*,
    columns *a* (``n × m``); a leading head axis is averaged. Each block is renormalised so
    every row sums to one over the other sentence:
    :math:`P^{a\\to b}_{ij}=A_{ij}/\\sum_{j'}A_{ij'}`, and likewise :math:`P^{b\\to a}`.

    - ``"argmax"`` (default): mutual argmax (:func:`argmax_align`) of the product of the two
      directions, :math:`S_{ij}=P^{a\\to b}_{ij}\\,P^{b\\to a}_{ji}`.
    - ``"itermax"``: :func:`itermax_align` on the same :math:`S`.
    - ``"threshold"``: keep :math:`(i,j)` when :math:`P^{a\\to b}_{ij}>\\tau` and
      :math:`P^{b\\to a}_{ji}>\\tau` (awesome-align's bidirectional "softmax" extraction
      rule; awesome-align uses τ = 1e-3 on softmaxed embedding similarities, attention rows
      are flatter, hence the default τ = 0.1 here).

    Map subword links to words with :func:`subword_to_word_links`; score with
    :func:`alignment_scores`.

    Parameters
    ----------
    cross_attn_ab : array_like, shape (m, n) or (heads, m, n)
    cross_attn_ba : array_like, shape (n, m) or (heads, n, m)
    method : {"argmax", "itermax", "threshold"}
    threshold : float
        τ for ``method="threshold"``, in [0, 1).

    Returns
    -------
    set of (int, int)
        ``(i, j)``: token *i* of *a* with token *j* of *b*.

    References
    ----------
    Garg, Peitz, Nallasamy & Paulik 2019, *Jointly Learning to Align and Translate with
    Transformer Models*, EMNLP; Dou & Neubig 2021, *Word Alignment by Fine-tuning Embeddings
    on Parallel Corpora*, EACL (awesome-align ``modeling.py::BertGuideHead``);
    docs/metrics.md#attn-align.

    Examples
    --------
    >>> ab = [[0.7, 0.1], [0.2, 0.6]]
    >>> ba = [[0.5, 0.1], [0.1, 0.5]]
    >>> sorted(attention_align(ab, ba))
    [(0, 0), (1, 1)]
    """
    if method not in get_args(AttentionMethod):
        raise ConfigError(
            f"method={method!r}: expected one of {', '.join(map(repr, get_args(AttentionMethod)))}"
        )
    if not 0.0 <= float(threshold) < 1.0:
        raise ConfigError(f"threshold={threshold!r}: expected a number in [0, 1)")
    p_ab = _cross_probs(cross_attn_ab, "cross_attn_ab")
    p_ba = _cross_probs(cross_attn_ba, "cross_attn_ba")
    if p_ab.shape != p_ba.shape[::-1]:
        raise DataError(
            f"cross_attn_ab {p_ab.shape} and cross_attn_ba {p_ba.shape}: expected shapes "
            "(m, n) and (n, m)"
        )
    if method == "threshold":
        return _links((p_ab > threshold) & (threshold < p_ba.T))
    s = p_ab * p_ba.T
    return argmax_align(s) if method == "argmax" else itermax_align(s)


# ---------------------------------------------------------------- gold data and scores


def _as_links(x: Iterable[tuple[int, int]]) -> Links:
    return {(int(i), int(j)) for i, j in x}


def alignment_prf(
    predicted: Iterable[tuple[int, int]],
    sure: Iterable[tuple[int, int]],
    possible: Iterable[tuple[int, int]],
) -> tuple[float, float, float]:
    """Alignment precision, recall and F1 of one sentence pair (Och & Ney 2003).

    :math:`\\mathrm{Prec}=|A\\cap P|/|A|`, :math:`\\mathrm{Rec}=|A\\cap S|/|S|`,
    :math:`F_1=2\\,\\mathrm{Prec}\\,\\mathrm{Rec}/(\\mathrm{Prec}+\\mathrm{Rec})`, all in [0, 1],
    higher = better; :math:`P` is taken as :math:`P\\cup S`. Empty :math:`A` gives
    precision 0, empty :math:`S` recall 0.

    Examples
    --------
    >>> alignment_prf({(0, 0), (1, 2)}, {(0, 0), (1, 1)}, {(1, 2)})
    (1.0, 0.5, 0.6666666666666666)
    """
    a, s = _as_links(predicted), _as_links(sure)
    p = _as_links(possible) | s
    prec = len(a & p) / len(a) if a else 0.0
    rec = len(a & s) / len(s) if s else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return prec, rec, f1


def aer(
    predicted: Iterable[tuple[int, int]],
    sure: Iterable[tuple[int, int]],
    possible: Iterable[tuple[int, int]],
) -> float:
    """Alignment error rate of one sentence pair (Och & Ney 2003).

    .. math:: \\mathrm{AER}=1-\\frac{|A\\cap S|+|A\\cap P|}{|A|+|S|}

    with predicted links :math:`A`, sure links :math:`S` and possible links
    :math:`P\\supseteq S` (``possible`` is united with ``sure``). Range [0, 1]; lower =
    better. NaN when :math:`A` and :math:`S` are both empty. For a corpus use
    :func:`alignment_scores`, which sums counts over sentences (not a mean of AERs).

    References
    ----------
    Och & Ney 2003, *A Systematic Comparison of Various Statistical Alignment Models*,
    Computational Linguistics 29(1); SimAlign ``scripts/calc_align_score.py``.

    Examples
    --------
    >>> aer({(0, 0), (1, 2)}, {(0, 0), (1, 1)}, {(1, 2)})
    0.25
    """
    a, s = _as_links(predicted), _as_links(sure)
    p = _as_links(possible) | s
    denom = len(a) + len(s)
    if denom == 0:
        return float("nan")
    return 1.0 - (len(a & s) + len(a & p)) / denom


def alignment_scores(
    preds: Sequence[Iterable[tuple[int, int]]],
    golds: Sequence[tuple[Iterable[tuple[int, int]], Iterable[tuple[int, int]]]],
) -> dict[str, float | int]:
    """Corpus-level AER, precision, recall and F1 from summed link counts.

    .. math::
        \\mathrm{Prec}=\\frac{\\sum|A\\cap P|}{\\sum|A|},\\quad
        \\mathrm{Rec}=\\frac{\\sum|A\\cap S|}{\\sum|S|},\\quad
        \\mathrm{AER}=1-\\frac{\\sum|A\\cap S|+\\sum|A\\cap P|}{\\sum|A|+\\sum|S|},\\quad
        F_1=\\frac{2\\,\\mathrm{Prec}\\,\\mathrm{Rec}}{\\mathrm{Prec}+\\mathrm{Rec}}

    sums over sentence pairs, as awesome-align ``tools/aer.py::calculate_metrics`` and SimAlign
    ``calc_align_score.py``. Fractions in [0, 1]; AER lower = better, the others higher =
    better.

    Parameters
    ----------
    preds : sequence of link sets
        Predicted 0-based links per sentence pair.
    golds : sequence of (sure, possible)
        As returned by :func:`xalign.data.read_gold_alignments`; same length as ``preds``.

    Returns
    -------
    dict
        ``aer``, ``precision``, ``recall``, ``f1``, ``n_sentences``, ``n_predicted``,
        ``n_sure``, ``n_possible`` (the size of :math:`\\sum|P|`, P including S).

    References
    ----------
    Och & Ney 2003, Computational Linguistics; awesome-align (Dou & Neubig 2021, EACL).

    Examples
    --------
    >>> golds = [({(0, 0)}, {(0, 0), (1, 1)}), ({(0, 1)}, {(0, 1)})]
    >>> r = alignment_scores([{(0, 0), (1, 1)}, {(0, 0)}], golds)
    >>> round(r["aer"], 4), round(r["precision"], 4), r["recall"]
    (0.4, 0.6667, 0.5)
    """
    if len(preds) != len(golds):
        raise DataError(
            f"preds and golds: {len(preds)} vs {len(golds)} sentence pairs; expected equal counts"
        )
    n_a = n_s = n_p = hit_s = hit_p = 0
    for pred, (sure, possible) in zip(preds, golds, strict=True):
        a, s = _as_links(pred), _as_links(sure)
        p = _as_links(possible) | s
        n_a += len(a)
        n_s += len(s)
        n_p += len(p)
        hit_s += len(a & s)
        hit_p += len(a & p)
    precision = hit_p / n_a if n_a else 0.0
    recall = hit_s / n_s if n_s else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    error = 1.0 - (hit_s + hit_p) / (n_a + n_s) if n_a + n_s else float("nan")
    return {
        "aer": error,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_sentences": len(preds),
        "n_predicted": n_a,
        "n_sure": n_s,
        "n_possible": n_p,
    }
