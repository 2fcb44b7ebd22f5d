"""Alignment metrics on plain arrays, and their runner over stores (``python -m xalign.metrics``).

Functions for stateless metrics, scikit-learn-style estimators for fitted things
(:class:`LanguageCenterer`, :class:`LinearProbe`). Formulas, sources and protocol details are
in each docstring; every number carries its protocol.
"""

from __future__ import annotations

from xalign.metrics._alignment import (
    aer,
    alignment_prf,
    alignment_scores,
    argmax_align,
    attention_align,
    itermax_align,
    merge_subwords,
    read_gold_alignments,
    read_word_pairs,
    subword_to_word_links,
    word_similarity,
)
from xalign.metrics._attention import (
    attention_alignment_similarity,
    attention_distance,
    attention_entropy,
    attention_pull_mse,
    embedding_push_distance,
    merge_attention_to_words,
)
from xalign.metrics._centering import LanguageCenterer, center_by_language
from xalign.metrics._checks import check_finite
from xalign.metrics._clusters import (
    centroid_gaps,
    cluster_metrics,
    davies_bouldin,
    language_silhouette,
    per_language_silhouette,
    translation_contrast,
    translation_silhouette,
)
from xalign.metrics._isotropy import isotropy_metrics, mean_random_cosine, partition_isotropy
from xalign.metrics._knn import knn, select_backend
from xalign.metrics._probe import LinearProbe, control_labels, language_id_probe
from xalign.metrics._retrieval import (
    bucc_evaluate,
    bucc_f1,
    bucc_mine,
    bucc_optimize_threshold,
    csls,
    margin_scores,
    neighbourhood_means,
    retrieve,
    tatoeba_accuracy,
    xalign_layer_to_xtreme,
    xtreme_layer_to_xalign,
    xtreme_tatoeba_accuracy,
)
from xalign.metrics._run import (
    METRIC_GROUPS,
    RESULTS_COLUMNS,
    MetricsConfig,
    compute_metrics,
    summarize,
)
from xalign.metrics._similarity import cka_between_languages, cka_matrix, linear_cka
from xalign.metrics._store_align import (
    STORE_ALIGN_COLUMNS,
    attention_alignment_metrics,
    attention_store_distance,
    attention_word_alignment_metrics,
    word_alignment_metrics,
    word_vectors,
)
from xalign.metrics._tidy import RESULT_COLUMNS, protocol_json, tidy_frame
from xalign.metrics._uncertainty import bootstrap_ci, bootstrap_distribution

__all__ = [
    "METRIC_GROUPS",
    "RESULTS_COLUMNS",
    "RESULT_COLUMNS",
    "STORE_ALIGN_COLUMNS",
    "LanguageCenterer",
    "LinearProbe",
    "MetricsConfig",
    "aer",
    "alignment_prf",
    "alignment_scores",
    "argmax_align",
    "attention_align",
    "attention_alignment_metrics",
    "attention_alignment_similarity",
    "attention_distance",
    "attention_entropy",
    "attention_pull_mse",
    "attention_store_distance",
    "attention_word_alignment_metrics",
    "bootstrap_ci",
    "bootstrap_distribution",
    "bucc_evaluate",
    "bucc_f1",
    "bucc_mine",
    "bucc_optimize_threshold",
    "center_by_language",
    "centroid_gaps",
    "check_finite",
    "cka_between_languages",
    "cka_matrix",
    "cluster_metrics",
    "compute_metrics",
    "control_labels",
    "csls",
    "davies_bouldin",
    "embedding_push_distance",
    "isotropy_metrics",
    "itermax_align",
    "knn",
    "language_id_probe",
    "language_silhouette",
    "linear_cka",
    "margin_scores",
    "mean_random_cosine",
    "merge_attention_to_words",
    "merge_subwords",
    "neighbourhood_means",
    "partition_isotropy",
    "per_language_silhouette",
    "protocol_json",
    "read_gold_alignments",
    "read_word_pairs",
    "retrieve",
    "select_backend",
    "subword_to_word_links",
    "summarize",
    "tatoeba_accuracy",
    "tidy_frame",
    "translation_contrast",
    "translation_silhouette",
    "word_alignment_metrics",
    "word_similarity",
    "word_vectors",
    "xalign_layer_to_xtreme",
    "xtreme_layer_to_xalign",
    "xtreme_tatoeba_accuracy",
]
