"""Alignment metrics on plain arrays, and their runner over stores (``python -m xalign.metrics``).

Functions for stateless metrics, scikit-learn-style estimators for fitted things
(:class:`LanguageCenterer`, :class:`LinearProbe`). Formulas, sources and protocol details are
in each docstring; every number carries its protocol.

Names are imported on first use (PEP 562), so ``python -m xalign.metrics --help`` loads no
numpy, pandas or scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xalign._lazy import lazy_attributes

if TYPE_CHECKING:
    from xalign.data import read_gold_alignments, read_word_pairs
    from xalign.metrics._alignment import (
        aer,
        alignment_prf,
        alignment_scores,
        argmax_align,
        attention_align,
        itermax_align,
        merge_subwords,
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
    from xalign.metrics._bucc import (
        bucc_evaluate,
        bucc_f1,
        bucc_mine,
        bucc_optimize_threshold,
    )
    from xalign.metrics._centering import (
        LanguageCenterer,
        center_by_language,
    )
    from xalign.metrics._checks import (
        check_finite,
    )
    from xalign.metrics._clusters import (
        centroid_gaps,
        cluster_metrics,
        davies_bouldin,
        language_silhouette,
        per_language_silhouette,
        translation_contrast,
        translation_silhouette,
    )
    from xalign.metrics._config import (
        METRIC_GROUPS,
        MetricsConfig,
    )
    from xalign.metrics._isotropy import (
        isotropy_metrics,
        mean_random_cosine,
        partition_isotropy,
    )
    from xalign.metrics._knn import (
        knn,
        select_backend,
    )
    from xalign.metrics._neurons import (
        NeuronSelection,
        activation_probability,
        compare_selections,
        lape,
        neuron_change_rows,
        neuron_rows,
        quantile_value,
        select_language_specific,
        shared_neurons,
        specific_jaccard,
    )
    from xalign.metrics._probe import (
        LinearProbe,
        control_labels,
        language_id_probe,
    )
    from xalign.metrics._retrieval import (
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
        RESULTS_COLUMNS,
        IncompleteResultsError,
        compute_metrics,
        plan_metrics,
        summarize,
    )
    from xalign.metrics._similarity import (
        cka_between_languages,
        cka_matrix,
        linear_cka,
    )
    from xalign.metrics._store_align import (
        STORE_ALIGN_COLUMNS,
        attention_word_alignment_metrics,
        word_alignment_metrics,
        word_vectors,
    )
    from xalign.metrics._store_attention import (
        attention_alignment_metrics,
        attention_store_distance,
    )
    from xalign.metrics._tidy import (
        RESULT_COLUMNS,
        protocol_json,
        tidy_frame,
    )
    from xalign.metrics._uncertainty import (
        bootstrap_ci,
        bootstrap_distribution,
    )

_LAZY = {
    "IncompleteResultsError": "xalign.metrics._run",
    "LanguageCenterer": "xalign.metrics._centering",
    "LinearProbe": "xalign.metrics._probe",
    "METRIC_GROUPS": "xalign.metrics._config",
    "MetricsConfig": "xalign.metrics._config",
    "NeuronSelection": "xalign.metrics._neurons",
    "RESULTS_COLUMNS": "xalign.metrics._run",
    "RESULT_COLUMNS": "xalign.metrics._tidy",
    "STORE_ALIGN_COLUMNS": "xalign.metrics._store_align",
    "activation_probability": "xalign.metrics._neurons",
    "aer": "xalign.metrics._alignment",
    "alignment_prf": "xalign.metrics._alignment",
    "alignment_scores": "xalign.metrics._alignment",
    "argmax_align": "xalign.metrics._alignment",
    "attention_align": "xalign.metrics._alignment",
    "attention_alignment_metrics": "xalign.metrics._store_attention",
    "attention_alignment_similarity": "xalign.metrics._attention",
    "attention_distance": "xalign.metrics._attention",
    "attention_entropy": "xalign.metrics._attention",
    "attention_pull_mse": "xalign.metrics._attention",
    "attention_store_distance": "xalign.metrics._store_attention",
    "attention_word_alignment_metrics": "xalign.metrics._store_align",
    "bootstrap_ci": "xalign.metrics._uncertainty",
    "bootstrap_distribution": "xalign.metrics._uncertainty",
    "bucc_evaluate": "xalign.metrics._bucc",
    "bucc_f1": "xalign.metrics._bucc",
    "bucc_mine": "xalign.metrics._bucc",
    "bucc_optimize_threshold": "xalign.metrics._bucc",
    "center_by_language": "xalign.metrics._centering",
    "centroid_gaps": "xalign.metrics._clusters",
    "check_finite": "xalign.metrics._checks",
    "cka_between_languages": "xalign.metrics._similarity",
    "cka_matrix": "xalign.metrics._similarity",
    "cluster_metrics": "xalign.metrics._clusters",
    "compare_selections": "xalign.metrics._neurons",
    "compute_metrics": "xalign.metrics._run",
    "control_labels": "xalign.metrics._probe",
    "csls": "xalign.metrics._retrieval",
    "davies_bouldin": "xalign.metrics._clusters",
    "embedding_push_distance": "xalign.metrics._attention",
    "isotropy_metrics": "xalign.metrics._isotropy",
    "itermax_align": "xalign.metrics._alignment",
    "knn": "xalign.metrics._knn",
    "language_id_probe": "xalign.metrics._probe",
    "language_silhouette": "xalign.metrics._clusters",
    "lape": "xalign.metrics._neurons",
    "linear_cka": "xalign.metrics._similarity",
    "margin_scores": "xalign.metrics._retrieval",
    "mean_random_cosine": "xalign.metrics._isotropy",
    "merge_attention_to_words": "xalign.metrics._attention",
    "merge_subwords": "xalign.metrics._alignment",
    "neighbourhood_means": "xalign.metrics._retrieval",
    "neuron_change_rows": "xalign.metrics._neurons",
    "neuron_rows": "xalign.metrics._neurons",
    "partition_isotropy": "xalign.metrics._isotropy",
    "per_language_silhouette": "xalign.metrics._clusters",
    "plan_metrics": "xalign.metrics._run",
    "protocol_json": "xalign.metrics._tidy",
    "quantile_value": "xalign.metrics._neurons",
    "read_gold_alignments": "xalign.data",
    "read_word_pairs": "xalign.data",
    "retrieve": "xalign.metrics._retrieval",
    "select_backend": "xalign.metrics._knn",
    "select_language_specific": "xalign.metrics._neurons",
    "shared_neurons": "xalign.metrics._neurons",
    "specific_jaccard": "xalign.metrics._neurons",
    "subword_to_word_links": "xalign.metrics._alignment",
    "summarize": "xalign.metrics._run",
    "tatoeba_accuracy": "xalign.metrics._retrieval",
    "tidy_frame": "xalign.metrics._tidy",
    "translation_contrast": "xalign.metrics._clusters",
    "translation_silhouette": "xalign.metrics._clusters",
    "word_alignment_metrics": "xalign.metrics._store_align",
    "word_similarity": "xalign.metrics._alignment",
    "word_vectors": "xalign.metrics._store_align",
    "xalign_layer_to_xtreme": "xalign.metrics._retrieval",
    "xtreme_layer_to_xalign": "xalign.metrics._retrieval",
    "xtreme_tatoeba_accuracy": "xalign.metrics._retrieval",
}

__all__ = [
    "METRIC_GROUPS",
    "RESULTS_COLUMNS",
    "RESULT_COLUMNS",
    "STORE_ALIGN_COLUMNS",
    "IncompleteResultsError",
    "LanguageCenterer",
    "LinearProbe",
    "MetricsConfig",
    "NeuronSelection",
    "activation_probability",
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
    "compare_selections",
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
    "lape",
    "linear_cka",
    "margin_scores",
    "mean_random_cosine",
    "merge_attention_to_words",
    "merge_subwords",
    "neighbourhood_means",
    "neuron_change_rows",
    "neuron_rows",
    "partition_isotropy",
    "per_language_silhouette",
    "plan_metrics",
    "protocol_json",
    "quantile_value",
    "read_gold_alignments",
    "read_word_pairs",
    "retrieve",
    "select_backend",
    "select_language_specific",
    "shared_neurons",
    "specific_jaccard",
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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)
