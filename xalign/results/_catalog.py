"""The metric catalogue: for every metric of the results table its group, direction, range,
unit, one-line meaning and citation.

The direction says which value is *better for cross-lingual alignment*: retrieval accuracy
is higher-better, the language gap, the language silhouette and the language-ID probe are
lower-better (languages less separable), and descriptive quantities (isotropy, entropy, the
distance between two checkpoints' attentions) have no direction and are never marked.
Formulas and sources: ``docs/metrics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "Direction",
    "MetricInfo",
    "better",
    "direction_text",
    "metric_direction",
    "metric_info",
    "metric_range",
    "range_text",
]

Direction = Literal["higher", "lower"] | None


@dataclass(frozen=True)
class MetricInfo:
    """What one metric of the results table is and how to read it.

    Attributes
    ----------
    name : str
        The ``metric`` value in the results table.
    label : str
        A short name for tables and axes.
    direction : {"higher", "lower", None}
        Which value is better aligned (None: a descriptive quantity).
    meaning : str
        One line saying what the number is.
    range : (low, high)
        The values the metric can take (None: unbounded). Figures clip intervals to it and
        say so; a value outside it is reported as suspect.
    group : str
        The ``--metrics`` group of ``python -m xalign.metrics`` that computes it; ``"train"``
        for the zero-shot scores that ``python -m xalign.train`` writes.
    unit : str
    citation : str
        Where the metric comes from (full references in ``docs/metrics.md``).
    """

    name: str
    label: str
    direction: Direction
    meaning: str
    range: tuple[float | None, float | None] = (None, None)
    group: str = ""
    unit: str = ""
    citation: str = ""

    @property
    def description(self) -> str:
        """The one-line meaning (the name the report has always used)."""
        return self.meaning


_ROWS: tuple[tuple[str, str, Direction, str], ...] = (
    ("retrieval_acc_mean", "Retrieval acc.", "higher",
     "top-1 translation retrieval accuracy (Tatoeba-style), mean of both directions"),
    ("retrieval_acc", "Retrieval acc. (dir.)", "higher",
     "top-1 translation retrieval accuracy, `lang` sentences querying `lang2`"),
    ("bucc_f1", "BUCC F1", "higher",
     "BUCC-style bitext mining F1 with a threshold tuned on a held-out part"),
    ("bucc_precision", "BUCC precision", "higher", "BUCC-style bitext mining precision"),
    ("bucc_recall", "BUCC recall", "higher", "BUCC-style bitext mining recall"),
    ("centroid_distance_scaled", "Language gap", "lower",
     "distance between language centroids divided by the mean within-language spread"),
    ("centroid_distance", "Centroid distance", "lower",
     "Euclidean distance between language centroids"),
    ("centroid_cosine", "Centroid cosine", "higher", "cosine between language centroids"),
    ("language_silhouette", "Lang. silhouette", "lower",
     "silhouette of the sentence vectors with languages as cluster labels"),
    ("davies_bouldin", "Davies–Bouldin", "higher",
     "Davies–Bouldin index with languages as clusters (high = languages less separated)"),
    ("translation_cosine", "Translation cosine", "higher",
     "mean cosine between a sentence and its translation"),
    ("random_cosine", "Random-pair cosine", None,
     "mean cosine between random cross-language sentence pairs"),
    ("translation_contrast", "Translation contrast", "higher",
     "mean cosine of translation pairs minus that of random cross-language pairs"),
    ("translation_silhouette", "Transl. silhouette", "higher",
     "silhouette with translation groups as cluster labels"),
    ("lid_accuracy", "LID probe acc.", "lower",
     "cross-validated accuracy of a logistic-regression language-ID probe"),
    ("lid_control_accuracy", "LID control acc.", None,
     "accuracy of the same probe on a control task"),
    ("lid_selectivity", "LID selectivity", "lower",
     "language-ID probe accuracy minus control-task accuracy"),
    ("cka", "Cross-lang. CKA", "higher",
     "linear CKA between the vectors of translation pairs of two languages"),
    ("cka_debiased", "Cross-lang. CKA (debiased)", "higher",
     "debiased linear CKA between translation pairs of two languages"),
    ("cka_between_stores", "CKA between checkpoints", None,
     "linear CKA between two checkpoints' vectors of the same sentences"),
    ("mean_random_cosine", "Mean random cosine", None,
     "mean cosine of random sentence pairs (anisotropy)"),
    ("partition_isotropy", "Partition isotropy", None,
     "partition-function isotropy of the sentence vectors"),
    ("word_align_f1", "Word-align. F1", "higher",
     "F1 of word alignments from token embeddings against gold links"),
    ("word_align_aer", "Word-align. AER", "lower",
     "alignment error rate of word alignments from token embeddings"),
    ("word_align_precision", "Word-align. precision", "higher",
     "precision of word alignments from token embeddings"),
    ("word_align_recall", "Word-align. recall", "higher",
     "recall of word alignments from token embeddings"),
    ("attn_align_f1", "Attn.-align. F1", "higher",
     "F1 of word alignments from cross attention against gold links"),
    ("attn_align_aer", "Attn.-align. AER", "lower",
     "alignment error rate of word alignments from cross attention"),
    ("attn_align_precision", "Attn.-align. precision", "higher",
     "precision of word alignments from cross attention"),
    ("attn_align_recall", "Attn.-align. recall", "higher",
     "recall of word alignments from cross attention"),
    ("attention_pattern_corr", "Attn. pattern corr.", "higher",
     "Pearson correlation of the attention patterns of a sentence and its translation "
     "on aligned word pairs"),
    ("attention_pattern_cos", "Attn. pattern cosine", "higher",
     "cosine of the attention patterns of a sentence and its translation on aligned words"),
    ("attention_entropy", "Attention entropy", None, "mean entropy of the attention rows"),
    ("attention_mse", "Attention MSE", None,
     "mean squared difference between two checkpoints' attention maps"),
    ("attention_js", "Attention JS", None,
     "Jensen–Shannon divergence between two checkpoints' attention rows"),
    ("zero_shot_acc", "Zero-shot acc.", "higher",
     "test accuracy in `lang` of a classifier fine-tuned on the training language only"),
    ("zero_shot_acc_pooled", "Zero-shot acc. (pooled)", "higher",
     "zero-shot test accuracy over all test examples of the target languages together"),
    ("zero_shot_acc_mean", "Zero-shot acc. (mean)", "higher",
     "unweighted mean of the target languages' zero-shot test accuracies"),
    ("dev_acc", "Dev acc.", "higher",
     "accuracy on the training language's dev set (the checkpoint-selection score)"),
    ("neuron_activation_prob", "Neuron act. prob.", None,
     "mean probability that a feed-forward neuron fires (> 0) on a content token of `lang`"),
    ("neuron_lape_mean", "Mean LAPE", None,
     "mean language activation probability entropy of the layer's feed-forward neurons "
     "(low = more language-specific)"),
    ("neuron_specific_count", "Lang.-specific neurons", None,
     "feed-forward neurons of the layer specific to `lang` (LAPE selection)"),
    ("neuron_specific_share", "Lang.-specific share", None,
     "share of the layer's feed-forward neurons specific to `lang` (LAPE selection)"),
    ("neuron_shared_count", "Shared neurons", None,
     "feed-forward neurons of the layer active above the threshold for (almost) every language"),
    ("neuron_specific_jaccard", "Specific-neuron overlap", None,
     "Jaccard overlap of the neurons specific to `lang` and to `lang2` in the layer"),
    ("neuron_specific_change", "Change in specific neurons", None,
     "language-specific neurons of `lang` in this checkpoint minus those in the other"),
    ("neuron_specific_stability", "Specific-set stability", None,
     "Jaccard overlap of `lang`'s specific neurons in this checkpoint and in the other"),
)  # fmt: skip

_UNIT = (0.0, 1.0)
_COS = (-1.0, 1.0)
_POS = (0.0, None)
#: Range of each metric (metrics not listed are unbounded).
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "retrieval_acc_mean": _UNIT, "retrieval_acc": _UNIT, "bucc_f1": _UNIT,
    "bucc_precision": _UNIT, "bucc_recall": _UNIT, "centroid_distance_scaled": _POS,
    "centroid_distance": _POS, "centroid_cosine": _COS, "language_silhouette": _COS,
    "davies_bouldin": _POS, "translation_cosine": _COS, "random_cosine": _COS,
    "translation_contrast": (-2.0, 2.0), "translation_silhouette": _COS, "lid_accuracy": _UNIT,
    "lid_control_accuracy": _UNIT, "lid_selectivity": _COS, "cka": _UNIT,
    "cka_debiased": (None, 1.0), "cka_between_stores": _UNIT, "mean_random_cosine": _COS,
    "partition_isotropy": _UNIT, "word_align_f1": _UNIT, "word_align_aer": _UNIT,
    "word_align_precision": _UNIT, "word_align_recall": _UNIT, "attn_align_f1": _UNIT,
    "attn_align_aer": _UNIT, "attn_align_precision": _UNIT, "attn_align_recall": _UNIT,
    "attention_pattern_corr": _COS, "attention_pattern_cos": _COS, "attention_entropy": _POS,
    "attention_mse": _POS, "attention_js": _POS, "zero_shot_acc": _UNIT,
    "zero_shot_acc_pooled": _UNIT, "zero_shot_acc_mean": _UNIT, "dev_acc": _UNIT,
    "neuron_activation_prob": _UNIT, "neuron_lape_mean": _POS, "neuron_specific_count": _POS,
    "neuron_specific_share": _UNIT, "neuron_shared_count": _POS,
    "neuron_specific_jaccard": _UNIT, "neuron_specific_stability": _UNIT,
}  # fmt: skip

_RETR = "Artetxe & Schwenk 2019 (TACL); Hu et al. 2020, XTREME (ICML)"
_BUCC = "Zweigenbaum, Sharoff & Rapp 2017, 2018 (BUCC shared task)"
_GAP = "Libovický, Rosa & Fraser 2020; Liang et al. 2022, Mind the Gap (NeurIPS)"
_SIL = "Rousseeuw 1987 (J. Comput. Appl. Math.)"
_CONTRAST = "xalign-defined; random-pair baseline after Ethayarajh 2019 (EMNLP)"
_LID = "Libovický, Rosa & Fraser 2020; control tasks: Hewitt & Liang 2019 (EMNLP)"
_CKA = "Kornblith, Norouzi, Lee & Hinton 2019 (ICML)"
_SIMALIGN = "Jalili Sabet et al. 2020, SimAlign (Findings of EMNLP); Och & Ney 2003"
_ATTN = "Garg, Peitz, Nallasamy & Paulik 2019 (EMNLP); Och & Ney 2003"
_AGREE = "xalign-defined (attention along the word alignment)"
_LAPE = "Tang et al. 2024, Language-Specific Neurons (ACL)"
_LAPE = "Tang et al. 2024, Language-Specific Neurons (ACL)"
_NEURONS = _LAPE + "; Kojima et al. 2024 (NAACL)"
_ZS = "Hu et al. 2020, XTREME (ICML); Ding et al. 2022 (COLING)"

#: ``name: (group, unit, citation)`` of every metric of :data:`_ROWS`.
_FACTS: dict[str, tuple[str, str, str]] = {
    "retrieval_acc_mean": ("retrieval", "fraction of queries", _RETR),
    "retrieval_acc": ("retrieval", "fraction of queries", _RETR),
    "bucc_f1": ("bucc", "fraction", _BUCC),
    "bucc_precision": ("bucc", "fraction of mined pairs", _BUCC),
    "bucc_recall": ("bucc", "fraction of gold pairs", _BUCC),
    "centroid_distance_scaled": ("clusters", "multiples of the within-language spread", _GAP),
    "centroid_distance": ("clusters", "the vectors' own units (Euclidean)", _GAP),
    "centroid_cosine": ("clusters", "cosine", _GAP),
    "language_silhouette": ("clusters", "silhouette", _SIL),
    "davies_bouldin": ("clusters", "ratio of spreads to centroid distances",
                       "Davies & Bouldin 1979 (IEEE TPAMI)"),
    "translation_cosine": ("clusters", "cosine", _CONTRAST),
    "random_cosine": ("clusters", "cosine", _CONTRAST),
    "translation_contrast": ("clusters", "difference of mean cosines", _CONTRAST),
    "translation_silhouette": ("clusters", "silhouette", _SIL),
    "lid_accuracy": ("probe", "fraction of rows", _LID),
    "lid_control_accuracy": ("probe", "fraction of rows", _LID),
    "lid_selectivity": ("probe", "difference of accuracies", _LID),
    "cka": ("cka", "similarity index", _CKA),
    "cka_debiased": ("cka", "similarity index",
                     _CKA + "; unbiased HSIC: Song et al. 2012 (JMLR)"),
    "cka_between_stores": ("stores", "similarity index", _CKA),
    "mean_random_cosine": ("isotropy", "cosine", "Ethayarajh 2019 (EMNLP)"),
    "partition_isotropy": ("isotropy", "ratio", "Mu & Viswanath 2018 (ICLR)"),
    "word_align_f1": ("word_align", "fraction", _SIMALIGN),
    "word_align_aer": ("word_align", "fraction", _SIMALIGN),
    "word_align_precision": ("word_align", "fraction", _SIMALIGN),
    "word_align_recall": ("word_align", "fraction", _SIMALIGN),
    "attn_align_f1": ("word_align", "fraction", _ATTN),
    "attn_align_aer": ("word_align", "fraction", _ATTN),
    "attn_align_precision": ("word_align", "fraction", _ATTN),
    "attn_align_recall": ("word_align", "fraction", _ATTN),
    "attention_pattern_corr": ("attention", "Pearson correlation", _AGREE),
    "attention_pattern_cos": ("attention", "cosine", _AGREE),
    "attention_entropy": ("attention", "nats",
                          "Clark, Khandelwal, Levy & Manning 2019 (BlackboxNLP)"),
    "attention_mse": ("attention", "squared probability",
                      "xalign-defined; the quantity Attention-Pull minimises (docs/push-pull.md)"),
    "attention_js": ("attention", "nats", "Lin 1991 (IEEE Trans. Inf. Theory)"),
    "zero_shot_acc": ("train", "fraction of test examples", _ZS),
    "zero_shot_acc_pooled": ("train", "fraction of test examples", _ZS),
    "zero_shot_acc_mean": ("train", "fraction (mean over languages)", _ZS),
    "dev_acc": ("train", "fraction of dev examples", _ZS),
    "neuron_activation_prob": ("neurons", "probability", _LAPE),
    "neuron_lape_mean": ("neurons", "nats", _LAPE),
    "neuron_specific_count": ("neurons", "neurons", _LAPE),
    "neuron_specific_share": ("neurons", "fraction of the layer's neurons", _LAPE),
    "neuron_shared_count": ("neurons", "neurons",
                            "xalign-defined; after " + _LAPE + "; Kojima et al. 2024 (NAACL)"),
    "neuron_specific_jaccard": ("neurons", "Jaccard index", _LAPE + "; Jaccard 1901"),
    "neuron_specific_change": ("neurons", "neurons", "xalign-defined; sets of " + _LAPE),
    "neuron_specific_stability": ("neurons", "Jaccard index",
                                  "xalign-defined; sets of " + _LAPE),
}  # fmt: skip

#: Every metric the catalogue knows, by name (every metric ``python -m xalign.metrics`` writes).
METRICS: dict[str, MetricInfo] = {
    r[0]: MetricInfo(
        *r,
        range=_RANGES.get(r[0], (None, None)),
        group=_FACTS[r[0]][0],
        unit=_FACTS[r[0]][1],
        citation=_FACTS[r[0]][2],
    )
    for r in _ROWS
}

#: The headline metrics a report shows by default (those present in the results table).
DEFAULT_METRICS: tuple[str, ...] = (
    "retrieval_acc_mean",
    "bucc_f1",
    "centroid_distance_scaled",
    "language_silhouette",
    "lid_accuracy",
    "translation_contrast",
    "cka",
    "word_align_f1",
    "attn_align_f1",
    "attention_pattern_corr",
)


def metric_info(name: str) -> MetricInfo:
    """The catalogue's entry for a metric (a neutral one for a metric it does not know).

    Examples
    --------
    >>> metric_info("language_silhouette").direction
    'lower'
    >>> metric_info("my_metric").label, metric_info("my_metric").direction
    ('my_metric', None)
    >>> metric_info("zero_shot_acc_seed_std").direction, metric_info("dev_acc_seed_mean").range
    (None, (0.0, 1.0))
    """
    info = METRICS.get(name)
    if info is not None:
        return info
    base, _, kind = name.rpartition("_seed_")
    if kind in ("mean", "std") and base in METRICS:  # training's aggregates over seeds
        b = METRICS[base]
        if kind == "mean":
            return replace(b, name=name, label=f"{b.label}, seed mean",
                           meaning=f"mean over seeds of: {b.meaning}")  # fmt: skip
        hi = None if b.range[0] is None or b.range[1] is None else b.range[1] - b.range[0]
        return replace(b, name=name, label=f"{b.label}, seed std", direction=None,
                       meaning=f"standard deviation (ddof 1) over seeds of: {b.meaning}",
                       range=(0.0, hi))  # fmt: skip
    return MetricInfo(name, name, None, name.replace("_", " "))


def metric_range(name: str) -> tuple[float | None, float | None]:
    """``(low, high)``: the values a metric can take (None where unbounded).

    Examples
    --------
    >>> metric_range("retrieval_acc_mean"), metric_range("centroid_distance")
    ((0.0, 1.0), (0.0, None))
    """
    return metric_info(name).range


def range_text(value_range: tuple[float | None, float | None]) -> str:
    """``[0, 1]``, ``[0, ∞)``: a range as text.

    Examples
    --------
    >>> range_text((0.0, 1.0)), range_text((0.0, None)), range_text((None, 1.0))
    ('[0, 1]', '[0, ∞)', '(−∞, 1]')
    """
    lo, hi = value_range
    left = "(−∞" if lo is None else f"[{lo:g}"
    right = "∞)" if hi is None else f"{hi:g}]"
    return f"{left}, {right}"


def metric_direction(name: str) -> Direction:
    """``"higher"``, ``"lower"`` (better for alignment) or None (no better value).

    Examples
    --------
    >>> metric_direction("retrieval_acc_mean"), metric_direction("lid_accuracy")
    ('higher', 'lower')
    """
    return metric_info(name).direction


def better(a: float, b: float, direction: Direction) -> int:
    """Which of two values is better: 0 (``a``), 1 (``b``) or -1 (a tie, NaN, no direction).

    Examples
    --------
    >>> better(0.8, 0.9, "higher"), better(0.8, 0.9, "lower"), better(0.5, 0.5, "higher")
    (1, 0, -1)
    """
    if direction is None or a != a or b != b or a == b:
        return -1
    if direction == "higher":
        return 0 if a > b else 1
    return 0 if a < b else 1


def direction_text(name: str) -> str:
    """``"higher = better aligned"``, ``"lower = better aligned"`` or ``""`` (no direction).

    Examples
    --------
    >>> direction_text("lid_accuracy"), direction_text("attention_entropy")
    ('lower = better aligned', '')
    """
    direction = metric_direction(name)
    return "" if direction is None else f"{direction} = better aligned"
