"""What each metric of the results table means in a report: its name, direction and description.

The direction says which value is *better for cross-lingual alignment*: retrieval accuracy
is higher-better, the language gap, the language silhouette and the language-ID probe are
lower-better (languages less separable), and descriptive quantities (isotropy, entropy, the
distance between two checkpoints' attentions) have no direction and are never marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "Direction",
    "MetricInfo",
    "better",
    "metric_direction",
    "metric_info",
    "metric_range",
    "range_text",
]

Direction = Literal["higher", "lower"] | None


@dataclass(frozen=True)
class MetricInfo:
    """How the report names and reads one metric of the results table."""

    name: str
    label: str
    direction: Direction
    description: str
    #: The values the metric can take, ``(low, high)`` (None: unbounded). Figures clip
    #: intervals to it and say so; a value outside it is reported as suspect.
    range: tuple[float | None, float | None] = (None, None)


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
    "attention_mse": _POS, "attention_js": _POS,
}  # fmt: skip

#: Every metric the report knows, by name.
METRICS: dict[str, MetricInfo] = {r[0]: MetricInfo(*r, range=_RANGES.get(r[0], (None, None)))
                                  for r in _ROWS}  # fmt: skip

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
    """The report's description of a metric (a neutral one for a metric it does not know).

    Examples
    --------
    >>> metric_info("language_silhouette").direction
    'lower'
    >>> metric_info("my_metric").label, metric_info("my_metric").direction
    ('my_metric', None)
    """
    return METRICS.get(name) or MetricInfo(name, name, None, name.replace("_", " "))


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
