"""The **Clusters** tab: projected sentences per layer, two stores side by side.

Linked selection: a clicked sentence's translations are highlighted and linked in both
panels (and the sentence becomes the Retrieval and Attention query); a box/lasso selection
selects the same rows in both panels. A layer-slider move only sends new coordinates.
"""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, Patch, State, ctx, dcc, html, no_update

from dashboards._catalog import Catalog
from dashboards._views import (
    cluster_overlay_patch,
    cluster_panel,
    cluster_xy_patch,
    lasso_rows,
    selection_from_click,
)
from dashboards.tabs._common import (
    METHODS,
    ROW,
    as_int,
    as_str,
    callback,
    graph,
    int_list,
    labelled,
    msg,
    str_list,
)
from xalign import figures as F
from xalign.errors import XAlignError

__all__ = ["GRAPHS", "layout", "register", "update_clusters"]

#: Graphs of this tab whose download format follows the page's choice.
GRAPHS = ("clusters-a", "clusters-b")

# inputs that change what the panels show (not only where): a full render, never a patch
_STRUCT = {"store-a.value", "store-b.value", "pooling.value", "method.value", "lang-filter.value"}


def layout() -> html.Div:
    """The tab's controls and its two panels."""
    return html.Div(
        [
            html.Div(
                [
                    labelled(
                        "method",
                        dcc.Dropdown(
                            id="method", value="pca", clearable=False, options=list(METHODS)
                        ),
                        "160px",
                    ),
                    labelled(
                        "languages",
                        dcc.Dropdown(id="lang-filter", multi=True, placeholder="all"),
                        "420px",
                    ),
                    html.Button("clear selection", id="clear-selection", n_clicks=0),
                    html.Span(
                        "click a sentence: its translations are highlighted and linked in "
                        "both panels; drag a lasso to select rows in both",
                        style={"fontSize": "12px", "color": "#666"},
                    ),
                ],
                style=ROW,
            ),
            html.Div(id="clusters-msg"),
            html.Div(
                [
                    html.Div(graph("clusters-a", "600px"), style={"flex": "1", "minWidth": 0}),
                    html.Div(graph("clusters-b", "600px"), style={"flex": "1", "minWidth": 0}),
                ],
                style={"display": "flex", "gap": "8px"},
            ),
            html.Div(id="selection-info", style={"fontSize": "13px", "padding": "4px"}),
        ]
    )


# ---------------------------------------------------------------- the view (plain function)


def _valid_state(state: Any) -> dict[str, Any] | None:
    """The cluster view's saved state when it has every key a patch needs, else None."""
    if not isinstance(state, dict) or not isinstance(state.get("key"), list):
        return None
    for side in ("a", "b"):
        st = state.get(side)
        if st is None:
            continue
        if not (
            isinstance(st, dict)
            and isinstance(st.get("rel"), str)
            and isinstance(st.get("fit_id"), str)
            and isinstance(st.get("n_traces"), int)
            and not isinstance(st.get("n_traces"), bool)
            and st["n_traces"] >= 3
        ):
            return None
    return state


def _panel_state(rel: str | None, panel: Any, layer: int) -> dict[str, Any] | None:
    if not rel or panel.fit is None or not panel.n_traces:
        return None
    return {"rel": rel, "fit_id": panel.fit.fit_id, "n_traces": panel.n_traces, "layer": layer}


def update_clusters(
    catalog: Catalog,
    *,
    store_a: str | None,
    store_b: str | None,
    layer: int,
    pooling: str,
    method: str,
    langs: list[str] | None,
    selection: dict[str, Any] | None,
    lasso: list[int] | None,
    state: dict[str, Any] | None,
    triggered: set[str] | None,
    display_root: str | None = None,
) -> tuple[Any, Any, Any, Any]:
    """The cluster view's callback: ``(figure A, figure B, message, state)``.

    When only the layer, the clicked sentence or the box/lasso selection changed (and both
    panels still show the same fits), the figures are updated with :class:`dash.Patch`
    (new coordinates / overlay traces / ``selectedpoints``) instead of being rebuilt, so a
    layer-slider move only sends coordinates.
    """
    try:
        store_a = as_str(store_a, "store A", optional=True) or None
        store_b = as_str(store_b, "store B", optional=True) or None
        layer = as_int(layer, "layer") if layer is not None else 0
        pooling = as_str(pooling, "pooling")
        method = as_str(method, "method", allowed=METHODS)
        langs = str_list(langs, "languages")
        selection = selection if isinstance(selection, dict) else None
        lasso = int_list(lasso)
        state = _valid_state(state)
    except XAlignError as e:
        return no_update, no_update, msg(f"error: {e}", error=True), None
    key = [store_a, store_b, pooling, method, langs]
    trig = set(triggered or ())
    rels = {"a": store_a, "b": store_b}
    try:
        if state and trig and not (trig & _STRUCT) and state.get("key") == key:
            patched = _patch_clusters(
                catalog,
                rels,
                state,
                layer=layer,
                langs=langs,
                selection=selection,
                lasso=lasso,
                trig=trig,
            )
            if patched is not None:
                return patched
        panels = {}
        for side, rel in rels.items():
            partner = store_b if side == "a" else store_a
            panels[side] = cluster_panel(
                catalog,
                rel,
                layer=layer,
                pooling=pooling,
                method=method,
                langs=langs,
                partner=partner,
                selection=selection,
                lasso=lasso,
                display_root=display_root,
                title=(f"{rel} · layer {layer}" if rel else None),
            )
        if not store_b:
            panels["b"].figure = F.fig_empty(
                "choose a second store (e.g. after training) to compare side by side"
            )
        msgs = [p.message for p in panels.values() if p.message]
        new_state = {
            "key": key,
            "a": _panel_state(store_a, panels["a"], layer),
            "b": _panel_state(store_b, panels["b"], layer),
        }
        return (
            panels["a"].figure,
            panels["b"].figure,
            [msg(m) for m in dict.fromkeys(msgs)] or None,
            new_state,
        )
    except XAlignError as e:
        empty = F.fig_empty("cannot show this store")
        return empty, empty, msg(f"error: {e}", error=True), None


def _patch_clusters(
    catalog: Catalog,
    rels: dict[str, str | None],
    state: dict[str, Any],
    *,
    layer: int,
    langs: list[str] | None,
    selection: dict[str, Any] | None,
    lasso: list[int] | None,
    trig: set[str],
) -> tuple[Any, Any, Any, Any] | None:
    figs: dict[str, Any] = {}
    new_state = dict(state)
    for side, rel in rels.items():
        st = state.get(side)
        if not rel:
            figs[side] = no_update
            continue
        if not st or st.get("rel") != rel:
            return None
        fit = catalog.fit_by_id(rel, st["fit_id"])
        if fit is None or layer not in fit.layers:
            return None
        p = Patch()
        n = int(st["n_traces"])
        if "layer.value" in trig:
            xy = cluster_xy_patch(catalog, rel, fit, layer=layer, langs=langs, selection=selection)
            if xy is None or len(xy) != n:
                return None
            for i, (x, y) in enumerate(xy):
                # numpy coordinates travel as base64 typed arrays, the rest as lists
                p["data"][i]["x"] = F.as_typed_array(x) if hasattr(x, "dtype") else x
                p["data"][i]["y"] = F.as_typed_array(y) if hasattr(y, "dtype") else y
            p["layout"]["title"]["text"] = f"{rel} · layer {layer}"
        if "selection.data" in trig:
            over = cluster_overlay_patch(
                catalog, rel, fit, layer=layer, langs=langs, selection=selection
            )
            if over is None:
                return None
            for k, tr in enumerate(over):
                p["data"][n - 3 + k] = tr
        if "lasso.data" in trig:
            entry = fit.layers[layer]
            points = catalog.points(rel, entry)
            sel = None if lasso is None else set(lasso)
            for i, (_, idx) in enumerate(F.trace_order(points, langs)):
                rows = points["row"].to_numpy()[idx]
                p["data"][i]["selectedpoints"] = (
                    None if sel is None else [j for j, r in enumerate(rows) if int(r) in sel]
                )
        figs[side] = p
        new_state[side] = {**st, "layer": layer}
    return figs["a"], figs["b"], no_update, new_state


# ---------------------------------------------------------------- callbacks


def _clusters(
    catalog: Catalog,
    shown: str,
    a: Any,
    b: Any,
    layer: Any,
    pooling: Any,
    method: Any,
    langs: Any,
    selection: Any,
    lasso: Any,
    state: Any,
) -> tuple[Any, Any, Any, Any]:
    if not pooling:
        return no_update, no_update, no_update, no_update
    return update_clusters(
        catalog,
        store_a=a,
        store_b=b,
        layer=layer,
        pooling=pooling,
        method=method,
        langs=langs,
        selection=selection,
        lasso=lasso,
        state=state,
        triggered=set(ctx.triggered_prop_ids),
        display_root=shown,
    )


def _on_click(
    catalog: Catalog, click_a: Any, click_b: Any, _n: Any, a: Any, b: Any
) -> tuple[Any, Any, Any]:
    """A clicked sentence: the selection, and the Retrieval and Attention query."""
    trig = ctx.triggered_id
    if trig in ("clear-selection", "store-a"):
        return None, no_update, no_update
    rel, click = (a, click_a) if trig == "clusters-a" else (b, click_b)
    try:
        sel = selection_from_click(catalog, rel, click)
    except XAlignError:
        sel = None
    if sel is None:
        return no_update, no_update, no_update
    same_a = sel["store"] == a
    return sel, (sel["row"] if same_a else no_update), (sel["row"] if same_a else no_update)


def _on_lasso(sel_a: Any, sel_b: Any) -> list[int] | None:
    return lasso_rows(sel_a if ctx.triggered_id == "clusters-a" else sel_b)


def _selection_info(sel: Any) -> str | list[Any]:
    if not isinstance(sel, dict) or not {"lang", "row", "text"} <= set(sel):
        return "no sentence selected"
    return [
        html.B(f"{str(sel['lang'])[:64]} · row {str(sel['row'])[:20]}: "),
        str(sel["text"])[:2000],
        html.Span(f"  (group {str(sel['group'])[:200]})" if sel.get("group") else ""),
    ]


def register(app: Dash, catalog: Catalog, *, shown: str) -> None:
    """Register the tab's callbacks (``shown``: the root as written in commands)."""
    callback(
        app,
        _clusters,
        Output("clusters-a", "figure"),
        Output("clusters-b", "figure"),
        Output("clusters-msg", "children"),
        Output("clusters-state", "data"),
        Input("store-a", "value"),
        Input("store-b", "value"),
        Input("layer", "value"),
        Input("pooling", "value"),
        Input("method", "value"),
        Input("lang-filter", "value"),
        Input("selection", "data"),
        Input("lasso", "data"),
        State("clusters-state", "data"),
        bind=(catalog, shown),
        message=2,
    )
    callback(
        app,
        _on_click,
        Output("selection", "data"),
        Output("query", "value"),
        Output("attn-a", "value"),
        Input("clusters-a", "clickData"),
        Input("clusters-b", "clickData"),
        Input("clear-selection", "n_clicks"),
        Input("store-a", "value"),
        State("store-b", "value"),
        bind=(catalog,),
        prevent_initial_call=True,
    )
    callback(
        app,
        _on_lasso,
        Output("lasso", "data"),
        Input("clusters-a", "selectedData"),
        Input("clusters-b", "selectedData"),
        prevent_initial_call=True,
    )
    callback(
        app,
        _selection_info,
        Output("selection-info", "children"),
        Input("selection", "data"),
        message=0,
    )
