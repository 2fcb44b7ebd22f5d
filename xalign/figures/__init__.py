"""Plotly figures shared by the report and the dashboard: plain data in, ``go.Figure`` out.

Every builder takes plain data (arrays, rows of the results table) and returns a
:class:`plotly.graph_objects.Figure` without a title unless asked for; the dashboard shows
them as they are, the report restyles them for print. No Dash here, and ``import xalign``
does not import this room (it needs plotly: ``pip install 'xalign[app]'`` or
``'xalign[export]'``). Colours: :func:`language_color` is the one mapping from language to colour.
"""

from __future__ import annotations

from xalign.figures._clusters import as_typed_array, cluster_traces_xy, fig_clusters, trace_order
from xalign.figures._metrics import fig_difference, fig_language_heatmap, fig_metric_by_layer
from xalign.figures._neurons import fig_layer_language
from xalign.figures._style import (
    LANGUAGE_COLORS,
    PALETTE,
    SYMBOL_CODES,
    SYMBOLS,
    fig_empty,
    graph_config,
    label_symbols,
    language_color,
    language_label,
)
from xalign.figures._tokens import fig_alignment, fig_attention, fig_neighbours

__all__ = [
    "LANGUAGE_COLORS",
    "PALETTE",
    "SYMBOLS",
    "SYMBOL_CODES",
    "as_typed_array",
    "cluster_traces_xy",
    "fig_alignment",
    "fig_attention",
    "fig_clusters",
    "fig_difference",
    "fig_empty",
    "fig_language_heatmap",
    "fig_layer_language",
    "fig_metric_by_layer",
    "fig_neighbours",
    "graph_config",
    "label_symbols",
    "language_color",
    "language_label",
    "trace_order",
]
