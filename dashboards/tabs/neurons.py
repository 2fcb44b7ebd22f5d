"""The **Neurons** tab: language-specific feed-forward neurons from a results table.

A language × layer heatmap of one checkpoint (how many of each block's neurons are specific
to each language, Tang et al. 2024's LAPE selection), the overlap (Jaccard) of the
languages' sets at one block, and the after − before difference between two checkpoints.
The rows come from ``python -m xalign.metrics STORE --metrics neurons`` over stores
extracted with ``--neurons``.
"""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from dashboards._catalog import Catalog
from dashboards._views import neuron_views
from dashboards.tabs._common import ROW, as_int, as_str, callback, graph, labelled, msg, str_list
from xalign import figures as F
from xalign.errors import XAlignError

__all__ = ["GRAPHS", "layout", "register"]

#: Graphs of this tab whose download format follows the page's choice.
GRAPHS = ("neuron-counts", "neuron-overlap", "neuron-diff")


def layout() -> html.Div:
    """The tab's controls (metric, checkpoint, overlap block, before/after) and its graphs."""
    return html.Div(
        [
            html.Div(
                [
                    labelled("neuron metric", dcc.Dropdown(id="neuron-metric"), "240px"),
                    labelled("checkpoint", dcc.Dropdown(id="neuron-ckpt"), "200px"),
                    labelled("overlap at block", dcc.Dropdown(id="neuron-layer"), "140px"),
                    labelled("before", dcc.Dropdown(id="neuron-before"), "200px"),
                    labelled("after", dcc.Dropdown(id="neuron-after"), "200px"),
                ],
                style=ROW,
            ),
            html.Div(id="neurons-msg"),
            graph("neuron-counts", "460px"),
            html.Div(
                [
                    html.Div(graph("neuron-overlap", "520px"), style={"flex": "1", "minWidth": 0}),
                    html.Div(graph("neuron-diff", "520px"), style={"flex": "1", "minWidth": 0}),
                ],
                style={"display": "flex", "gap": "8px"},
            ),
        ]
    )


def _neurons(
    catalog: Catalog,
    shown: str,
    rel: Any,
    metric: Any,
    checkpoint: Any,
    layer: Any,
    before: Any,
    after: Any,
    langs: Any,
) -> tuple[Any, ...]:
    """Every output of the tab from its inputs (the dropdowns' options follow the table):
    three figures, the message, then options and value of metric, checkpoint, overlap block,
    before and after."""
    empty = F.fig_empty("")
    nothing: tuple[Any, ...] = ([], None, [], None, [], None, [], None, [], None)
    if not rel:
        cmd = f"python -m xalign.metrics STORE --metrics neurons --out {shown}/results.parquet"
        return (empty, empty, empty, msg(f"No results table under {shown}. Make one: {cmd}"),
                *nothing)  # fmt: skip
    try:
        out = neuron_views(
            catalog,
            as_str(rel, "results table"),
            metric=as_str(metric, "neuron metric", optional=True),
            checkpoint=as_str(checkpoint, "checkpoint", optional=True),
            layer=as_int(layer, "overlap block") if layer is not None else None,
            before=as_str(before, "before", optional=True),
            after=as_str(after, "after", optional=True),
            langs=str_list(langs, "languages"),
        )
    except (XAlignError, OSError, ValueError) as e:
        return (empty, empty, empty, msg(f"error: {e}", error=True), *nothing)
    ck = out["checkpoints"]
    metric_v = metric if metric in out["metrics"] else (out["metrics"] or [None])[0]
    ck_v = checkpoint if checkpoint in ck else (ck[0] if ck else None)
    before_v = before if before in ck else (ck[0] if ck else None)
    after_v = after if after in ck else (ck[1] if len(ck) > 1 else None)
    return (
        out["counts"] or empty,
        out["overlap"] or empty,
        out["difference"] or empty,
        msg(out["message"]) if out["message"] else None,
        out["metrics"],
        metric_v,
        ck,
        ck_v,
        [{"label": str(x), "value": x} for x in out["layers"]],
        out["layer"],
        ck,
        before_v,
        ck,
        after_v,
    )


def register(app: Dash, catalog: Catalog, *, shown: str) -> None:
    """Register the tab's callback (``shown``: the root as written in commands)."""
    callback(
        app,
        _neurons,
        Output("neuron-counts", "figure"),
        Output("neuron-overlap", "figure"),
        Output("neuron-diff", "figure"),
        Output("neurons-msg", "children"),
        Output("neuron-metric", "options"),
        Output("neuron-metric", "value"),
        Output("neuron-ckpt", "options"),
        Output("neuron-ckpt", "value"),
        Output("neuron-layer", "options"),
        Output("neuron-layer", "value"),
        Output("neuron-before", "options"),
        Output("neuron-before", "value"),
        Output("neuron-after", "options"),
        Output("neuron-after", "value"),
        Input("results", "value"),
        Input("neuron-metric", "value"),
        Input("neuron-ckpt", "value"),
        Input("neuron-layer", "value"),
        Input("neuron-before", "value"),
        Input("neuron-after", "value"),
        Input("lang-filter", "value"),
        bind=(catalog, shown),
        message=3,
    )
