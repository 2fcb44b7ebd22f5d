"""The **Metrics** tab: a metric by layer, a language × language heatmap and the
before/after difference, read from a results table, one protocol at a time."""

from __future__ import annotations

import json
from typing import Any

from dash import ALL, Dash, Input, Output, State, dcc, html

from dashboards._catalog import Catalog
from dashboards._views import metric_views
from dashboards.tabs._common import (
    ROW,
    as_int,
    as_str,
    callback,
    graph,
    labelled,
    msg,
    str_list,
)
from xalign import figures as F
from xalign.errors import XAlignError
from xalign.results import filter_protocol, protocol_options

__all__ = ["GRAPHS", "layout", "register"]

#: Graphs of this tab whose download format follows the page's choice.
GRAPHS = ("metric-curves", "metric-heatmap", "metric-diff")

# metrics shown first when the table has them
_PREFERRED = ("retrieval_acc", "retrieval_acc_mean", "language_silhouette")


def layout() -> html.Div:
    """The tab's controls (metric, protocol filters, checkpoints) and its three graphs."""
    return html.Div(
        [
            html.Div(
                [
                    labelled("metric", dcc.Dropdown(id="metric", clearable=False), "260px"),
                    html.Div(id="proto-filters", style=ROW),
                    labelled(
                        "curves",
                        dcc.RadioItems(
                            id="metric-mode",
                            inline=True,
                            value="languages",
                            options=[
                                {"label": "one line per language", "value": "languages"},
                                {"label": "mean ± CI", "value": "mean"},
                            ],
                        ),
                    ),
                ],
                style=ROW,
            ),
            html.Div(
                [
                    labelled("heatmap checkpoint", dcc.Dropdown(id="heat-ckpt"), "200px"),
                    labelled("before", dcc.Dropdown(id="ckpt-before"), "200px"),
                    labelled("after", dcc.Dropdown(id="ckpt-after"), "200px"),
                ],
                style=ROW,
            ),
            html.Div(id="metrics-msg"),
            graph("metric-curves", "440px"),
            html.Div(
                [
                    html.Div(graph("metric-heatmap", "520px"), style={"flex": "1", "minWidth": 0}),
                    html.Div(graph("metric-diff", "520px"), style={"flex": "1", "minWidth": 0}),
                ],
                style={"display": "flex", "gap": "8px"},
            ),
        ]
    )


def _show(json_text: str) -> str:
    """A protocol value (JSON text) as a user reads it: knn, 4, false, — for null."""
    try:
        v = json.loads(json_text)
    except ValueError:
        return json_text
    return "—" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


# ---------------------------------------------------------------- callbacks


def _on_results(catalog: Catalog, rel: Any, metric: Any) -> tuple[Any, ...]:
    """A results table chosen: its metrics and checkpoints (keeping the metric if it has it)."""
    try:
        df = catalog.results(rel) if rel else None
    except (XAlignError, OSError, ValueError):
        df = None
    if df is None or df.empty:
        return [], None, [], None, [], None, [], None
    metrics = list(dict.fromkeys(df["metric"]))
    keep = isinstance(metric, str) and metric in metrics
    value = metric if keep else next((m for m in _PREFERRED if m in metrics), metrics[0])
    ck = list(dict.fromkeys(df["checkpoint"]))
    after = ck[1] if len(ck) > 1 else None
    return metrics, value, ck, ck[0], ck, ck[0], ck, after


def _proto_filters(catalog: Catalog, rel: Any, metric: Any) -> list[Any]:
    """One dropdown per protocol key whose value varies among the metric's rows."""
    if not rel or not metric:
        return []
    metric = as_str(metric, "metric")
    try:
        opts = protocol_options(catalog.results(rel), metric)
    except (XAlignError, OSError, ValueError):
        return []
    default = filter_protocol(catalog.results(rel), metric).attrs["protocol"]
    return [
        labelled(
            k,
            dcc.Dropdown(
                id={"type": "proto", "key": k},
                value=default.get(k, v[0]),
                clearable=False,
                options=[{"label": _show(x), "value": x} for x in v],
            ),
            "130px",
        )
        for k, v in opts.items()
    ]


def _metrics(
    catalog: Catalog,
    shown: str,
    rel: Any,
    metric: Any,
    layer: Any,
    proto_vals: Any,
    mode: Any,
    heat: Any,
    before: Any,
    after: Any,
    langs: Any,
    proto_ids: Any,
) -> tuple[Any, Any, Any, Any]:
    ids = proto_ids if isinstance(proto_ids, list) else []
    vals = proto_vals if isinstance(proto_vals, list) else []
    choices = {
        i["key"]: v
        for i, v in zip(ids, vals, strict=False)
        if isinstance(i, dict) and isinstance(i.get("key"), str) and isinstance(v, str)
    }
    empty = F.fig_empty("")
    if not rel:
        cmd = f"python -m xalign.metrics STORE... --out {shown}/results.parquet"
        return empty, empty, empty, msg(f"No results table under {shown}. Make one: {cmd}")
    try:
        out = metric_views(
            catalog,
            as_str(rel, "results table"),
            metric=as_str(metric, "metric", optional=True),
            layer=as_int(layer, "layer") if layer is not None else 0,
            choices=choices,
            mode=as_str(mode or "languages", "curves", allowed=("languages", "mean")),
            heat_checkpoint=as_str(heat, "heatmap checkpoint", optional=True),
            before=as_str(before, "before", optional=True),
            after=as_str(after, "after", optional=True),
            langs=str_list(langs, "languages"),
        )
    except (XAlignError, OSError, ValueError) as e:
        return empty, empty, empty, msg(f"error: {e}", error=True)
    return (
        out["curves"] or empty,
        out["heatmap"] or empty,
        out["difference"] or empty,
        msg(out["message"])
        or html.Div(
            f"protocol: {out.get('protocol') or 'single'}",
            className="protocol-line",
            style={"fontSize": "12px", "color": "#555", "padding": "4px"},
        ),
    )


def register(app: Dash, catalog: Catalog, *, shown: str) -> None:
    """Register the tab's callbacks (``shown``: the root as written in commands)."""
    callback(
        app,
        _on_results,
        Output("metric", "options"),
        Output("metric", "value"),
        Output("heat-ckpt", "options"),
        Output("heat-ckpt", "value"),
        Output("ckpt-before", "options"),
        Output("ckpt-before", "value"),
        Output("ckpt-after", "options"),
        Output("ckpt-after", "value"),
        Input("results", "value"),
        State("metric", "value"),
        bind=(catalog,),
    )
    callback(
        app,
        _proto_filters,
        Output("proto-filters", "children"),
        Input("results", "value"),
        Input("metric", "value"),
        bind=(catalog,),
    )
    callback(
        app,
        _metrics,
        Output("metric-curves", "figure"),
        Output("metric-heatmap", "figure"),
        Output("metric-diff", "figure"),
        Output("metrics-msg", "children"),
        Input("results", "value"),
        Input("metric", "value"),
        Input("layer", "value"),
        Input({"type": "proto", "key": ALL}, "value"),
        Input("metric-mode", "value"),
        Input("heat-ckpt", "value"),
        Input("ckpt-before", "value"),
        Input("ckpt-after", "value"),
        Input("lang-filter", "value"),
        State({"type": "proto", "key": ALL}, "id"),
        bind=(catalog, shown),
        message=3,
    )
