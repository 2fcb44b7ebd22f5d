"""Attention-map metrics: entropy, cross-lingual pattern similarity, map distances, and the
push/pull mechanism checks of EAR (Ding et al. 2022).

Attention arrays have shape ``[..., H, T, T]`` (leading batch axes, heads, query rows, key
columns) holding softmax probabilities; a 2-D ``[T, T]`` array is one head. Sources:
docs/metrics.md#word-alignment and docs/push-pull.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign.errors import DataError
from xalign.metrics._alignment import word_tokens

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "attention_alignment_similarity",
    "attention_distance",
    "attention_entropy",
    "attention_pull_mse",
    "embedding_push_distance",
    "merge_attention_to_words",
]


def _attn(a: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2] or 0 in arr.shape:
        raise DataError(f"{name}: expected attention of shape [..., T, T], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: contains NaN or infinity; expected probabilities")
    if (arr < 0).any():
        raise DataError(f"{name}: negative attention weight; expected probabilities")
    return arr if arr.ndim >= 3 else arr[None]


def _mask(mask: ArrayLike | None, attn: NDArray, name: str = "mask") -> NDArray[np.bool_]:
    """Boolean mask of shape ``attn.shape[:-3] + (T,)`` (True = real token)."""
    lead, t = attn.shape[:-3], attn.shape[-1]
    if mask is None:
        return np.ones((*lead, t), dtype=bool)
    m = np.asarray(mask)
    if m.shape == (t,):
        m = np.broadcast_to(m, (*lead, t))
    if m.shape != (*lead, t):
        raise DataError(
            f"{name}: shape {m.shape}; expected ({t},) or {(*lead, t)} for attention {attn.shape}"
        )
    return m.astype(bool)


def _xlogx(p: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros_like(p)
    pos = p > 0
    out[pos] = p[pos] * np.log(p[pos])
    return out


def attention_entropy(attn: ArrayLike, *, mask: ArrayLike | None = None) -> dict[str, Any]:
    """Entropy of attention rows, in nats, per head and overall.

    For each query row :math:`i` of a head, :math:`H_i=-\\sum_j p_{ij}\\ln p_{ij}` over the
    key positions kept by ``mask`` (:math:`0\\ln0=0`; rows are not renormalised, since HF
    attention gives padded keys zero weight). Per head, the mean over all valid query rows of
    all batch items (pooled); ``mean`` averages the heads. Range :math:`[0, \\ln T]`: 0 = each
    token attends to one position, :math:`\\ln T` = uniform attention.

    Parameters
    ----------
    attn : array_like, shape (..., H, T, T) or (T, T)
    mask : array_like of bool, shape (..., T) or (T,), optional
        True for real tokens; pad rows and columns are ignored.

    Returns
    -------
    dict
        ``per_head`` (ndarray of shape (H,); (1,) for a 2-D input) and ``mean`` (float).

    References
    ----------
    Clark, Khandelwal, Levy & Manning 2019, *What Does BERT Look At?*, BlackboxNLP (§3,
    attention entropy); Ghader & Monz 2017, *What does Attention in Neural Machine
    Translation Pay Attention to?*, IJCNLP.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[[1.0, 0.0], [0.5, 0.5]]])
    >>> r = attention_entropy(a)
    >>> r["per_head"].round(4).tolist(), round(r["mean"], 4)  # (0 + ln 2) / 2
    ([0.3466], 0.3466)
    """
    a = _attn(attn, "attn")
    m = _mask(mask, a)
    cols = m[..., None, None, :]
    ent = -(_xlogx(a) * cols).sum(axis=-1)  # [..., H, T]
    rows = np.broadcast_to(m[..., None, :], ent.shape)
    if not rows.any():
        raise DataError("mask: no valid token; expected at least one True entry")
    head_axis = a.ndim - 3
    ent_h = np.moveaxis(ent, head_axis, 0).reshape(a.shape[-3], -1)
    rows_h = np.moveaxis(rows, head_axis, 0).reshape(a.shape[-3], -1)
    per_head = (ent_h * rows_h).sum(axis=1) / rows_h.sum(axis=1)
    return {"per_head": per_head, "mean": float(per_head.mean())}


def merge_attention_to_words(
    attn: ArrayLike, word_ids: Sequence[int | None]
) -> NDArray[np.float64]:
    """Token-level attention to word-level: sum over a word's tokens as keys, mean as queries.

    Follows Clark et al. 2019 (§2): "for attention *to* a split-up word, we sum up the
    attention weights over its tokens; for attention *from* a split-up word, we take the mean
    of the attention weights over its tokens". Special tokens (word id ``None``) are
    dropped, so rows sum to 1 minus the mass that went to them.

    Parameters
    ----------
    attn : array_like, shape (..., T, T)
    word_ids : sequence of int or None, length T

    Returns
    -------
    ndarray, shape (..., W, W)

    Examples
    --------
    >>> a = [[0.5, 0.25, 0.25], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]
    >>> merge_attention_to_words(a, [0, 1, 1]).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    arr = np.asarray(attn, dtype=np.float64)
    ids = list(word_ids)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2] or arr.shape[-1] != len(ids):
        raise DataError(
            f"attn {arr.shape} and word_ids ({len(ids)}): "
            "expected [..., T, T] with T = len(word_ids)"
        )
    keep, words, counts = word_tokens(ids)
    onehot = np.zeros((len(ids), len(counts)))
    onehot[keep, words] = 1.0
    to_words = arr @ onehot  # [..., T, W]: sum over key tokens of each word
    return np.swapaxes(np.swapaxes(to_words, -1, -2) @ (onehot / counts), -1, -2)


def _pearson_cosine(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[Any, Any]:
    """Pearson r and cosine along the last axis (NaN where undefined)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = x - x.mean(axis=-1, keepdims=True)
        yc = y - y.mean(axis=-1, keepdims=True)
        r = (xc * yc).sum(-1) / np.sqrt((xc**2).sum(-1) * (yc**2).sum(-1))
        cos = (x * y).sum(-1) / np.sqrt((x**2).sum(-1) * (y**2).sum(-1))
    return r, cos


def attention_alignment_similarity(
    attn_a: ArrayLike, attn_b: ArrayLike, word_pairs: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    """Similarity of a sentence's attention pattern and its translation's, via word alignment.

    With aligned word pairs :math:`G=\\{(i_1,j_1),\\dots,(i_L,j_L)\\}` (word *i* of sentence
    *a* ↔ word *j* of its translation *b*), compare, over **all ordered pairs of links**
    :math:`(p,q)\\in G\\times G` (including :math:`p=q`), the attention that *a*'s word
    :math:`i_p` pays to :math:`i_q` with the attention *b*'s word :math:`j_p` pays to
    :math:`j_q`:

    .. math::
        x_{pq}=A^{a}_{i_p i_q},\\qquad y_{pq}=A^{b}_{j_p j_q},\\qquad p,q=1..L

    and report the Pearson correlation and the cosine of the vectors :math:`x, y\\in
    \\mathbb{R}^{L^2}`. Both in [-1, 1] (cosine in [0, 1] for attention weights); higher =
    the translation attends along the same aligned structure. NaN when undefined (fewer
    than two distinct values for Pearson). This is the alignment-projected comparison
    suggested in docs/metrics.md#attn-agree for inputs of different lengths; use word-level maps
    (:func:`merge_attention_to_words`) and gold or predicted links.

    Parameters
    ----------
    attn_a : array_like, shape (..., m, m)
        Word-level attention of sentence *a* (e.g. ``[H, m, m]`` for per-head results).
    attn_b : array_like, shape (..., n, n)
        Same leading axes as ``attn_a``.
    word_pairs : sequence of (i, j)

    Returns
    -------
    dict
        ``pearson`` and ``cosine`` (float, or arrays over the leading axes), ``n_entries``
        (:math:`L^2`).

    References
    ----------
    xalign-defined (docs/metrics.md#attn-mass); attention-map comparison as in Clark et al. 2019,
    BlackboxNLP.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0.7, 0.3], [0.2, 0.8]])
    >>> r = attention_alignment_similarity(a, a[::-1, ::-1], [(0, 1), (1, 0)])
    >>> round(float(r["pearson"]), 6), r["n_entries"]
    (1.0, 4)
    """
    a = np.asarray(attn_a, dtype=np.float64)
    b = np.asarray(attn_b, dtype=np.float64)
    for arr, name in ((a, "attn_a"), (b, "attn_b")):
        if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
            raise DataError(f"{name}: expected shape [..., W, W], got {arr.shape}")
    if a.shape[:-2] != b.shape[:-2]:
        raise DataError(f"attn_a {a.shape} and attn_b {b.shape}: leading axes must match")
    links = np.asarray(list(word_pairs), dtype=np.int64).reshape(-1, 2)
    if len(links) == 0:
        raise DataError("word_pairs: expected at least one aligned word pair")
    m, n = a.shape[-1], b.shape[-1]
    if (links < 0).any() or (links[:, 0] >= m).any() or (links[:, 1] >= n).any():
        raise DataError(f"word_pairs: an index is outside the {m} x {n} words of the two sentences")
    ia, jb = links[:, 0], links[:, 1]
    x = a[..., ia[:, None], ia[None, :]].reshape(*a.shape[:-2], -1)
    y = b[..., jb[:, None], jb[None, :]].reshape(*b.shape[:-2], -1)
    r, cos = _pearson_cosine(x, y)
    if np.ndim(r) == 0:
        r, cos = float(r), float(cos)
    return {"pearson": r, "cosine": cos, "n_entries": int(x.shape[-1])}


def attention_distance(
    attn_1: ArrayLike, attn_2: ArrayLike, *, mask: ArrayLike | None = None
) -> dict[str, Any]:
    """Distance between two attention maps of the same rows (e.g. two checkpoints' stores).

    - ``mse``: mean of :math:`(A^{(1)}_{ij}-A^{(2)}_{ij})^2` over heads, valid query rows
      and valid key columns. Range [0, 1]; 0 = identical.
    - ``js``: mean over heads and valid rows of the Jensen–Shannon divergence (nats)
      between the two rows, each restricted to the valid columns and renormalised:
      :math:`\\mathrm{JS}(p,q)=\\tfrac12\\mathrm{KL}(p\\|\\bar m)
      +\\tfrac12\\mathrm{KL}(q\\|\\bar m)`, :math:`\\bar m=(p+q)/2`. Range
      :math:`[0,\\ln 2]`; 0 = identical.

    Both also per head (``mse_per_head``, ``js_per_head``). Row-wise JS over aligned rows is
    the length-robust comparison of docs/metrics.md#attn-agree.

    Parameters
    ----------
    attn_1, attn_2 : array_like, shape (..., H, T, T) or (T, T), equal shapes
    mask : array_like of bool, shape (..., T) or (T,), optional

    Returns
    -------
    dict
        ``mse``, ``js`` (float), ``mse_per_head``, ``js_per_head`` (ndarray (H,)).

    References
    ----------
    Lin 1991, *Divergence measures based on the Shannon entropy*, IEEE Trans. Inf. Theory
    (JS); docs/metrics.md#attn-agree.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[1.0, 0.0], [0.5, 0.5]])
    >>> q = np.array([[0.0, 1.0], [0.5, 0.5]])
    >>> r = attention_distance(p, q)
    >>> r["mse"], round(r["js"], 4)  # JS of the first rows is ln 2
    (0.5, 0.3466)
    """
    a = _attn(attn_1, "attn_1")
    b = _attn(attn_2, "attn_2")
    if a.shape != b.shape:
        raise DataError(f"attn_1 {a.shape} and attn_2 {b.shape}: expected equal shapes")
    m = _mask(mask, a)
    rows = np.broadcast_to(m[..., None, :, None], a.shape)
    cols = np.broadcast_to(m[..., None, None, :], a.shape)
    cell = rows & cols
    if not cell.any():
        raise DataError("mask: no valid token; expected at least one True entry")
    head_axis = a.ndim - 3
    h = a.shape[-3]

    def per_head(values: NDArray, weights: NDArray) -> NDArray[np.float64]:
        v = np.moveaxis(values, head_axis, 0).reshape(h, -1)
        w = np.moveaxis(weights, head_axis, 0).reshape(h, -1)
        return (v * w).sum(axis=1) / w.sum(axis=1)

    mse_h = per_head((a - b) ** 2, cell)
    pa = np.where(cols, a, 0.0)
    pb = np.where(cols, b, 0.0)
    sa = pa.sum(axis=-1, keepdims=True)
    sb = pb.sum(axis=-1, keepdims=True)
    valid_rows = m[..., None, :] & np.ones(a.shape[:-1], dtype=bool)
    if ((sa[..., 0] <= 0) & valid_rows).any() or ((sb[..., 0] <= 0) & valid_rows).any():
        raise DataError("attn: a valid row has no attention mass on valid columns")
    pa = pa / np.where(sa > 0, sa, 1.0)
    pb = pb / np.where(sb > 0, sb, 1.0)
    mid = (pa + pb) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_a = np.where(pa > 0, pa * np.log(pa / np.where(mid > 0, mid, 1.0)), 0.0).sum(-1)
        kl_b = np.where(pb > 0, pb * np.log(pb / np.where(mid > 0, mid, 1.0)), 0.0).sum(-1)
    js_rows = np.clip(0.5 * (kl_a + kl_b), 0.0, np.log(2.0))
    js_h = per_head(js_rows, valid_rows)
    return {
        "mse": float(mse_h.mean()),
        "js": float(js_h.mean()),
        "mse_per_head": mse_h,
        "js_per_head": js_h,
    }


def _pool(emb: NDArray[np.float64], mask: NDArray[np.float64], name: str) -> NDArray[np.float64]:
    denom = mask.sum(axis=1, keepdims=True)
    if (denom <= 0).any():
        raise DataError(f"{name}: an example has no real token; expected at least one 1 per row")
    return (emb * mask[..., None]).sum(axis=1) / denom


def embedding_push_distance(
    emb_orig: ArrayLike,
    emb_pert: ArrayLike,
    mask: ArrayLike,
    *,
    mask_pert: ArrayLike | None = None,
) -> float:
    """EAR's Embedding-Push quantity: MSE between mask-mean-pooled embedding-layer outputs.

    .. math::
        \\bar e(x)=\\frac{\\sum_i m_i E(x)_i}{\\sum_i m_i},\\qquad
        D_{EP}=\\mathrm{MSE}(\\bar e(x),\\bar e(\\tilde x))
        =\\frac{1}{B\\,d}\\sum_b\\lVert\\bar e(x_b)-\\bar e(\\tilde x_b)\\rVert^2

    with :math:`E(\\cdot)` = ``hidden_states[0]`` (xalign layer 0), :math:`m` the attention
    mask ([CLS]/[SEP] included, as EAR's ``utils/tools.Pooling``). EAR trains with
    :math:`L_{EP}=-D_{EP}` (weight α = 0.1), so "push" is observed when :math:`D_{EP}` grows
    between the original and perturbed views. Range :math:`[0,\\infty)`.

    Parameters
    ----------
    emb_orig : array_like, shape (B, T, d) or (T, d)
        Embedding-layer outputs of the original view :math:`x`.
    emb_pert : array_like, shape (B, T', d) or (T', d)
        Outputs of the perturbed view :math:`\\tilde x`.
    mask : array_like, shape (B, T) or (T,)
        1 for real tokens of the original view.
    mask_pert : array_like, shape (B, T') or (T',), optional
        Mask of the perturbed view; default ``mask`` (EAR pads both views to one length).

    Returns
    -------
    float

    References
    ----------
    Ding et al. 2022, *A Simple and Effective Method to Improve Zero-Shot Cross-Lingual
    Transfer Learning*, COLING (arXiv:2210.09934); KB-Ding/EAR ``models/bert_ept_apt.py``;
    docs/push-pull.md#method.

    Examples
    --------
    >>> e1 = [[[1.0, 1.0], [3.0, 3.0], [9.0, 9.0]]]
    >>> e2 = [[[3.0, 3.0], [3.0, 3.0], [6.0, 6.0]]]
    >>> embedding_push_distance(e1, e2, [[1, 1, 0]], mask_pert=[[1, 1, 1]])  # [2, 2] vs [4, 4]
    4.0
    """
    e1 = np.asarray(emb_orig, dtype=np.float64)
    e2 = np.asarray(emb_pert, dtype=np.float64)
    m1 = np.asarray(mask, dtype=np.float64)
    m2 = m1 if mask_pert is None else np.asarray(mask_pert, dtype=np.float64)
    if e1.ndim == 2:
        e1 = e1[None]
    if e2.ndim == 2:
        e2 = e2[None]
    if m1.ndim == 1:
        m1 = m1[None]
    if m2.ndim == 1:
        m2 = m2[None]
    for e, mk, name in ((e1, m1, "emb_orig/mask"), (e2, m2, "emb_pert/mask_pert")):
        if e.ndim != 3 or mk.shape != e.shape[:2]:
            raise DataError(
                f"{name}: shapes {e.shape} and {mk.shape}; expected [B, T, d] and [B, T]"
            )
    if e1.shape[0] != e2.shape[0] or e1.shape[2] != e2.shape[2]:
        raise DataError(f"emb_orig {e1.shape} and emb_pert {e2.shape}: batch and dim must match")
    pooled1 = _pool(e1, m1, "mask")
    pooled2 = _pool(e2, m2, "mask_pert")
    return float(((pooled1 - pooled2) ** 2).mean())


def attention_pull_mse(attn_orig: ArrayLike, attn_pert: ArrayLike) -> float:
    """EAR's Attention-Pull quantity: MSE between two views' attention probabilities.

    .. math::
        D_{AP}=\\frac{1}{B\\,H\\,L^2}\\sum\\lVert A^{(l)}(x)-A^{(l)}(\\tilde x)\\rVert_F^2

    over all heads and the full padded :math:`L\\times L` map, position by position, pads
    included (EAR's ``nn.MSELoss`` on the ``[B, H, L, L]`` tensors; no token alignment).
    EAR uses ``ap_layer=5`` (0-based into HF ``attentions``), i.e. block 6 = xalign
    attention layer 6, and trains with :math:`+\\beta D_{AP}` (β = 1), so "pull" is
    observed when :math:`D_{AP}` shrinks. Range [0, 1].

    Parameters
    ----------
    attn_orig, attn_pert : array_like, equal shapes, e.g. (B, H, L, L)

    Returns
    -------
    float

    References
    ----------
    Ding et al. 2022, COLING (arXiv:2210.09934); KB-Ding/EAR ``models/bert_ept_apt.py``;
    docs/push-pull.md#method.

    Examples
    --------
    >>> attention_pull_mse([[[1.0, 0.0], [0.5, 0.5]]], [[[0.0, 1.0], [0.5, 0.5]]])
    0.5
    """
    a = np.asarray(attn_orig, dtype=np.float64)
    b = np.asarray(attn_pert, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise DataError(
            f"attn_orig {a.shape} and attn_pert {b.shape}: expected equal, non-empty shapes"
        )
    return float(((a - b) ** 2).mean())
