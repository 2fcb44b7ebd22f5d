"""The results vocabulary: one tidy table for every metric, and how to read it.

The results table has the columns :data:`RESULTS_COLUMNS` (``store, checkpoint, metric,
layer, lang, lang2, value, n, ci_low, ci_high, protocol``); ``protocol`` is canonical JSON
(:func:`protocol_json`) of every choice that changes the number. This room holds the schema,
reading and checking a table (:func:`load_results`, :func:`validate_results`), choosing the
rows of one metric under one protocol (:func:`select_rows`: per-row facts such as distractor
counts never split or filter an average) and averaging them (:func:`layer_means`,
:func:`aggregate_by_language`), comparing two checkpoints unit by unit
(:func:`paired_difference`: bootstrap CI and sign-flip test), and the metric catalogue
(:data:`METRICS`: group, direction, range, unit, meaning and citation of every metric).
Metrics write the table; the report, the dashboard and training's evaluation read it through
these names.
"""

from __future__ import annotations

from xalign.results._catalog import (
    DEFAULT_METRICS,
    METRICS,
    Direction,
    MetricInfo,
    better,
    direction_text,
    metric_direction,
    metric_info,
    metric_range,
    range_text,
)
from xalign.results._load import load_results, validate_results
from xalign.results._schema import (
    PROTOCOL_KEY_ORDER,
    RESULTS_COLUMNS,
    TIDY_COLUMNS,
    describe_protocol,
    parse_choice,
    parse_protocol,
    parse_protocols,
    protocol_json,
    protocol_text,
    protocol_value_text,
)
from xalign.results._select import (
    CHOICE_KEYS,
    DIAGONAL_KEYS,
    PER_ROW_KEYS,
    Selection,
    aggregate_by_language,
    filter_languages,
    filter_protocol,
    layer_means,
    protocol_options,
    select_metric,
    select_rows,
)
from xalign.results._significance import PairedDifference, paired_difference

__all__ = [
    "CHOICE_KEYS",
    "DEFAULT_METRICS",
    "DIAGONAL_KEYS",
    "METRICS",
    "PER_ROW_KEYS",
    "PROTOCOL_KEY_ORDER",
    "RESULTS_COLUMNS",
    "TIDY_COLUMNS",
    "Direction",
    "MetricInfo",
    "PairedDifference",
    "Selection",
    "aggregate_by_language",
    "better",
    "describe_protocol",
    "direction_text",
    "filter_languages",
    "filter_protocol",
    "layer_means",
    "load_results",
    "metric_direction",
    "metric_info",
    "metric_range",
    "paired_difference",
    "parse_choice",
    "parse_protocol",
    "parse_protocols",
    "protocol_json",
    "protocol_options",
    "protocol_text",
    "protocol_value_text",
    "range_text",
    "select_metric",
    "select_rows",
    "validate_results",
]
