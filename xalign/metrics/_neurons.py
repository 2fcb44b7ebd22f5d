"""Language-specific feed-forward neurons: LAPE and the selection of Tang et al. (ACL 2024).

Inputs are the statistics an extraction with ``--neurons`` stores (``Store.neurons()``): per
layer × language × neuron the number of content tokens with activation > 0 (``active``,
``[L, G, F]``) and the token count (``tokens``, ``[L, G, 1]`` or ``[G]``). Everything here
works on plain arrays; :func:`neuron_rows` and :func:`neuron_change_rows` turn them into rows
of the results table. Formulas: docs/metrics.md#neurons.

References
----------
Tang, Luo, Zhao, Wang, Wang, Zhang, Wei, Wen (2024). Language-Specific Neurons: The Key to
Multilingual Capabilities in Large Language Models. ACL 2024.
Kojima, Okimura, Iwasawa, Yanaka, Matsuo (2024). On the Multilingual Ability of Decoder-based
Pre-trained Language Models: Finding and Controlling Language-Specific Neurons. NAACL 2024.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "NeuronSelection",
    "activation_probability",
    "compare_selections",
    "lape",
    "neuron_change_rows",
    "neuron_rows",
    "quantile_value",
    "select_language_specific",
    "shared_neurons",
    "specific_jaccard",
]

#: Tang et al.'s defaults: the lowest 1 % of LAPE; probabilities above the 95th percentile.
TOP_RATE = 0.01
FILTER_RATE = 0.95
BAR_RATE = 0.95


def _rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(f"{name} {value!r}: must be in (0, 1]")
    return float(value)


def activation_probability(
    active: NDArray[np.floating], tokens: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Activation probability ``p[l, g, f] = active[l, g, f] / tokens[g]`` (0 without tokens).

    ``active`` ``[L, G, F]``: content tokens of language ``g`` on which neuron ``f`` of layer
    ``l`` has activation > 0; ``tokens``: content tokens per language, ``[G]``, ``[L, G]`` or
    ``[L, G, 1]``. Range [0, 1]. Tang et al. 2024 (ACL), eq. 1.

    >>> activation_probability(np.array([[[2.0, 0.0], [1.0, 4.0]]]), np.array([4.0, 4.0]))
    array([[[0.5 , 0.  ],
            [0.25, 1.  ]]])
    """
    a = np.asarray(active, dtype=np.float64)
    t = np.asarray(tokens, dtype=np.float64)
    if a.ndim != 3:
        raise ConfigError(f"active must be [layers, languages, neurons], got shape {a.shape}")
    if t.ndim == 1:
        t = t[None, :, None]
    elif t.ndim == 2:
        t = t[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = a / t
    return np.where(t > 0, p, 0.0)


def lape(p: NDArray[np.floating]) -> NDArray[np.float64]:
    """Language activation probability entropy of every neuron, ``[L, F]`` (nats).

    ``p`` ``[L, G, F]`` are activation probabilities. Normalised over the languages,
    ``q[g] = p[g] / Σ_g' p[g']``, LAPE is ``-Σ_g q[g] log q[g]`` (terms with ``q = 0`` are 0).
    Range [0, log G]; low = the neuron fires for few languages (language-specific). A neuron
    that never fires has LAPE NaN. Tang et al. 2024 (ACL), eq. 2.

    >>> p = np.array([[[0.9, 0.5], [0.0, 0.5]]])  # one layer, 2 languages, 2 neurons
    >>> np.round(lape(p), 4)
    array([[0.    , 0.6931]])
    """
    p = np.asarray(p, dtype=np.float64)
    total = p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = p / total
        terms = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    out = 0.0 - terms.sum(axis=1)  # 0.0 - x: no negative zero
    out[total[:, 0, :] <= 0] = np.nan
    return out


def quantile_value(values: NDArray[np.floating], rate: float) -> float:
    """The ``round(n · rate)``-th smallest of all values (torch ``kthvalue``, as Tang et al.).

    >>> quantile_value(np.arange(1.0, 21.0), 0.95)
    19.0
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    k = min(max(round(len(flat) * _rate("rate", rate)), 1), len(flat))
    return float(np.partition(flat, k - 1)[k - 1])


@dataclass(frozen=True)
class NeuronSelection:
    """Language-specific neurons as Tang et al. select them (:func:`select_language_specific`).

    Attributes
    ----------
    specific : bool ``[L, G, F]``
        Neuron ``f`` of layer ``l`` is specific to language ``g``.
    selected : bool ``[L, F]``
        Neurons in the lowest-LAPE ``top_rate`` share (specific to at least one language).
    entropy : float ``[L, F]``
        LAPE of every neuron (NaN: never fires).
    filter_value, bar_value : float
        The activation-probability thresholds (quantiles of all probabilities).
    protocol : dict
        Every choice that changes the selection.
    """

    specific: NDArray[np.bool_]
    selected: NDArray[np.bool_]
    entropy: NDArray[np.float64]
    filter_value: float
    bar_value: float
    protocol: dict[str, Any]


def select_language_specific(
    p: NDArray[np.floating],
    *,
    top_rate: float = TOP_RATE,
    filter_rate: float = FILTER_RATE,
    bar_rate: float = BAR_RATE,
) -> NeuronSelection:
    """Select language-specific neurons by LAPE (Tang et al. 2024, ACL, section 2).

    1. ``filter_value`` = the ``filter_rate`` quantile of all probabilities ``p`` (every layer,
       language and neuron; paper: 0.95). Neurons with no language above it are dismissed.
    2. Of the remaining neurons, the ``round(top_rate · L · F)`` with the lowest LAPE
       (:func:`lape`; paper: 1 %) are selected, over all layers together (ties: lower layer,
       then lower neuron index first).
    3. A selected neuron is specific to every language ``g`` with ``p[l, g, f] > bar_value``,
       the ``bar_rate`` quantile of all probabilities (paper: 0.95).

    Quantiles are ``round(n · rate)``-th smallest values (:func:`quantile_value`), as in the
    authors' code (``torch.kthvalue``).

    >>> p = np.array([[[0.9, 0.1, 0.5, 0.0], [0.0, 0.1, 0.5, 0.8]]])  # L=1, G=2, F=4
    >>> sel = select_language_specific(p, top_rate=0.5, filter_rate=0.75, bar_rate=0.75)
    >>> sel.specific[0].astype(int).tolist()
    [[1, 0, 0, 0], [0, 0, 0, 1]]
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 3:
        raise ConfigError(f"p must be [layers, languages, neurons], got shape {p.shape}")
    top_rate = _rate("--neuron-top-rate", top_rate)
    filter_rate = _rate("--neuron-filter-rate", filter_rate)
    bar_rate = _rate("--neuron-bar-rate", bar_rate)
    L, _, F = p.shape
    entropy = lape(p)
    filter_value = quantile_value(p, filter_rate)
    bar_value = quantile_value(p, bar_rate)
    eligible = (p > filter_value).any(axis=1) & np.isfinite(entropy)
    score = np.where(eligible, entropy, np.inf).ravel()
    n_top = min(round(L * F * top_rate), int(eligible.sum()))
    order = np.argsort(score, kind="stable")[:n_top]
    selected = np.zeros(L * F, dtype=bool)
    selected[order] = True
    selected = selected.reshape(L, F)
    specific = selected[:, None, :] & (p > bar_value)
    protocol = {
        "selection": "lape",
        "top_rate": top_rate,
        "filter_rate": filter_rate,
        "bar_rate": bar_rate,
    }
    return NeuronSelection(specific, selected, entropy, filter_value, bar_value, protocol)


def shared_neurons(
    p: NDArray[np.floating], *, threshold: float, fraction: float = 1.0
) -> NDArray[np.bool_]:
    """Neurons active for (almost) every language: ``[L, F]`` bool.

    A neuron is shared when ``p[l, g, f] > threshold`` for at least ``ceil(fraction · G)``
    languages (``fraction`` 1: all of them). With ``threshold`` = the selection's
    ``bar_value`` this is the complement notion of Tang et al.'s language-specific neurons
    (xalign-defined; cf. Kojima et al. 2024, NAACL).

    >>> p = np.array([[[0.9, 0.1], [0.8, 0.9], [0.7, 0.0]]])  # L=1, G=3, F=2
    >>> shared_neurons(p, threshold=0.5).tolist()
    [[True, False]]
    >>> shared_neurons(p, threshold=0.5, fraction=0.3).tolist()
    [[True, True]]
    """
    p = np.asarray(p, dtype=np.float64)
    fraction = _rate("--neuron-shared-fraction", fraction)
    need = max(1, math.ceil(fraction * p.shape[1] - 1e-9))
    return (p > threshold).sum(axis=1) >= need


def specific_jaccard(specific: NDArray[np.bool_], *, per_layer: bool = True) -> NDArray[np.float64]:
    """Jaccard overlap of the language-specific sets of every pair of languages.

    ``J(a, b) = |S_a ∩ S_b| / |S_a ∪ S_b|`` (NaN when both sets are empty), with ``S_g`` the
    neurons specific to ``g``: per layer (``[L, G, G]``) or over all layers (``[G, G]``).
    Range [0, 1]; high = the two languages share their "specific" neurons. Jaccard 1901;
    the overlap view of Tang et al. 2024 (ACL), figure 3.

    >>> s = np.array([[[1, 1, 0], [0, 1, 1]]], dtype=bool)  # L=1, G=2, F=3
    >>> specific_jaccard(s)[0].round(3).tolist()
    [[1.0, 0.333], [0.333, 1.0]]
    """
    s = np.asarray(specific, dtype=bool)
    if not per_layer:  # one "layer" holding every (layer, neuron)
        s = s.transpose(1, 0, 2).reshape(1, s.shape[1], -1)
    x = s.astype(np.int64)
    inter = np.einsum("lgf,lhf->lgh", x, x)
    size = x.sum(axis=2)
    union = size[:, :, None] + size[:, None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
    return j if per_layer else j[0]


def compare_selections(
    before: NDArray[np.bool_], after: NDArray[np.bool_]
) -> dict[str, NDArray[np.float64]]:
    """How language-specific sets change between two checkpoints (same model shape).

    ``before``, ``after`` ``[L, G, F]`` bool. Returns ``change`` ``[L, G]`` = ``|S'| - |S|``
    and ``jaccard`` ``[L, G]`` = ``|S ∩ S'| / |S ∪ S'|`` (NaN when both are empty), per layer
    and language. xalign-defined (the before/after view of Tang et al.'s sets).

    >>> b = np.array([[[1, 1, 0, 0]]], dtype=bool); a = np.array([[[0, 1, 1, 1]]], dtype=bool)
    >>> {k: v.tolist() for k, v in compare_selections(b, a).items()}
    {'change': [[1.0]], 'jaccard': [[0.25]]}
    """
    b = np.asarray(before, dtype=bool)
    a = np.asarray(after, dtype=bool)
    if a.shape != b.shape:
        raise ConfigError(
            f"neuron sets of shapes {b.shape} and {a.shape} cannot be compared "
            "(another model, or another language list)"
        )
    inter = (a & b).sum(axis=2)
    union = (a | b).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        jac = np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
    change = a.sum(axis=2).astype(np.float64) - b.sum(axis=2)
    return {"change": change, "jaccard": jac.astype(np.float64)}


# ---------------------------------------------------------------------------------- results rows
def _row(
    store: Any, label: str, metric: str, layer: int, lang: Any, lang2: Any, value: float,
    n: float, protocol: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    from xalign.results import protocol_json

    return {
        "store": str(store.path),
        "checkpoint": label,
        "metric": metric,
        "layer": int(layer),
        "lang": lang,
        "lang2": lang2,
        "value": float(value),
        "n": float(n),
        "ci_low": np.nan,
        "ci_high": np.nan,
        "protocol": protocol_json(protocol),
    }


def _stats(store: Any, langs: list[str] | None) -> Any:
    ns = store.neurons()
    if langs is not None:
        missing = [x for x in langs if x not in ns.languages]
        if missing:
            raise ConfigError(
                f"--langs {missing}: not in store {store.path} (languages: {ns.languages})"
            )
        ns = ns.select(langs)
    return ns


def neuron_rows(
    store: Any,
    *,
    label: str | None = None,
    langs: list[str] | None = None,
    top_rate: float = TOP_RATE,
    filter_rate: float = FILTER_RATE,
    bar_rate: float = BAR_RATE,
    shared_fraction: float = 1.0,
) -> list[dict[str, Any]]:
    """Results rows of the ``neurons`` group for one store with neuron statistics.

    Per layer (block 1..L): ``neuron_lape_mean``; per layer × language
    ``neuron_activation_prob`` (mean over neurons), ``neuron_specific_count`` and
    ``neuron_specific_share``; per layer ``neuron_shared_count``; per layer × language pair
    ``neuron_specific_jaccard``. The protocol records the selection's rates and thresholds.
    """
    ns = _stats(store, langs)
    label = label or store.label
    p = activation_probability(ns.active, ns.tokens)
    sel = select_language_specific(p, top_rate=top_rate, filter_rate=filter_rate, bar_rate=bar_rate)
    shared = shared_neurons(p, threshold=sel.bar_value, fraction=shared_fraction)
    jac = specific_jaccard(sel.specific)
    F = p.shape[2]
    base = {
        **sel.protocol,
        "tokens": "content",
        "activation": "> 0",
        "languages": len(ns.languages),
    }
    if ns.ablated:
        base["ablated"] = len(ns.ablated)
    thresholds = {**base, "filter_value": sel.filter_value, "bar_value": sel.bar_value}
    rows = []
    tok = ns.tokens[0, :, 0]
    for li, layer in enumerate(ns.layers):
        ent = sel.entropy[li]
        ok = np.isfinite(ent)
        rows.append(
            _row(store, label, "neuron_lape_mean", layer, None, None,
                 float(ent[ok].mean()) if ok.any() else np.nan, int(ok.sum()),
                 {"tokens": "content", "activation": "> 0", "languages": len(ns.languages)})
        )  # fmt: skip
        rows.append(
            _row(store, label, "neuron_shared_count", layer, None, None, int(shared[li].sum()), F,
                 {**thresholds, "shared_fraction": shared_fraction})
        )  # fmt: skip
        for gi, lang in enumerate(ns.languages):
            count = int(sel.specific[li, gi].sum())
            rows.append(
                _row(store, label, "neuron_activation_prob", layer, lang, None,
                     float(p[li, gi].mean()), tok[gi], {"tokens": "content", "activation": "> 0"})
            )  # fmt: skip
            rows.append(
                _row(store, label, "neuron_specific_count", layer, lang, None, count, F, thresholds)
            )
            rows.append(
                _row(store, label, "neuron_specific_share", layer, lang, None, count / F, F,
                     thresholds)
            )  # fmt: skip
            for gj in range(gi + 1, len(ns.languages)):
                if np.isfinite(jac[li, gi, gj]):
                    rows.append(
                        _row(store, label, "neuron_specific_jaccard", layer, lang,
                             ns.languages[gj], jac[li, gi, gj], F, thresholds)
                    )  # fmt: skip
    return rows


def neuron_change_rows(
    before: Any,
    after: Any,
    *,
    before_label: str | None = None,
    after_label: str | None = None,
    langs: list[str] | None = None,
    top_rate: float = TOP_RATE,
    filter_rate: float = FILTER_RATE,
    bar_rate: float = BAR_RATE,
) -> list[dict[str, Any]]:
    """Rows comparing the language-specific sets of two stores of the same corpus and model.

    Rows belong to ``after`` (``checkpoint`` = its label) and name ``before`` in the protocol
    (``other_checkpoint``, ``other_store``): ``neuron_specific_change`` (``|S'| - |S|``) and
    ``neuron_specific_stability`` (Jaccard of the two sets) per layer × language. Each store's
    sets use its own thresholds (:func:`select_language_specific`).
    """
    fa = before.corpus.get("fingerprint")
    fb = after.corpus.get("fingerprint")
    if fa != fb:
        raise ConfigError(
            f"stores {before.path} and {after.path} were extracted from other corpora; "
            "before/after neuron sets compare two stores of the same corpus"
        )
    a, b = _stats(before, langs), _stats(after, langs)
    if a.languages != b.languages or a.layers != b.layers or a.active.shape != b.active.shape:
        raise ConfigError(
            f"stores {before.path} and {after.path} hold neuron statistics of other shapes "
            f"({a.active.shape} vs {b.active.shape}) or languages; compare stores of the same "
            "model and corpus"
        )
    kw = dict(top_rate=top_rate, filter_rate=filter_rate, bar_rate=bar_rate)
    sa = select_language_specific(activation_probability(a.active, a.tokens), **kw)
    sb = select_language_specific(activation_probability(b.active, b.tokens), **kw)
    diff = compare_selections(sa.specific, sb.specific)
    label_b = after_label or after.label
    proto = {
        **sa.protocol,
        "tokens": "content",
        "activation": "> 0",
        "other_checkpoint": before_label or before.label,
        "other_store": str(before.path),
    }
    F = a.active.shape[2]
    rows = []
    for li, layer in enumerate(a.layers):
        for gi, lang in enumerate(a.languages):
            rows.append(
                _row(after, label_b, "neuron_specific_change", layer, lang, None,
                     diff["change"][li, gi], F, proto)
            )  # fmt: skip
            if np.isfinite(diff["jaccard"][li, gi]):
                rows.append(
                    _row(after, label_b, "neuron_specific_stability", layer, lang, None,
                         diff["jaccard"][li, gi], F, proto)
                )  # fmt: skip
    return rows
