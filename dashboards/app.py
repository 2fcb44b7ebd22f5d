"""The Dash app: layout and callbacks over a :class:`~dashboards._catalog.Catalog`.

Views: **Clusters** (projected sentences per layer, two stores side by side, linked
selection, translations of a clicked sentence highlighted and linked in both panels),
**Metrics** (metric by layer, language × language heatmap, before/after difference),
**Retrieval** (top-k neighbours of one sentence per language) and **Attention**
(attention maps, similarity matrix with the predicted word alignment, gold links, cross
attention). It only reads stores, cached projections and results tables; it never runs a
model. Assets are served by the app itself (no CDN), so it works offline.

Every callback is registered through :func:`_callback`, which turns any failure (a crafted
request, a damaged store, an unreadable file) into a message in the page instead of an HTTP
500; inputs are validated first (:func:`_as_int`, :func:`_as_str`, ...) so the message says
which control holds what.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from dash import ALL, Dash, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboards import figures as F
from dashboards._catalog import Catalog, Listing
from dashboards._views import (
    MAX_K,
    SCORING_K,
    cluster_overlay_patch,
    cluster_panel,
    cluster_xy_patch,
    lasso_rows,
    metric_views,
    neighbours,
    selection_from_click,
)
from xalign.errors import ConfigError, XAlignError

__all__ = ["create_app", "update_clusters"]

log = logging.getLogger(__name__)

#: Longest search text (characters) the sentence pickers accept.
MAX_SEARCH = 200
#: Longest list (languages, lasso rows) a control may send.
MAX_LIST = 100_000

METHODS = ("pca", "umap", "tsne")
STATIC_GRAPHS = ("clusters-a", "clusters-b", "metric-curves", "metric-heatmap", "metric-diff")
_STRUCT = {"store-a.value", "store-b.value", "pooling.value", "method.value", "lang-filter.value"}

_BOX = {"border": "1px solid #ddd", "borderRadius": "6px", "padding": "8px", "margin": "6px 0"}
_ROW = {"display": "flex", "gap": "12px", "alignItems": "center", "flexWrap": "wrap"}
_MSG = {
    "background": "#FFF8E1",
    "border": "1px solid #E6C200",
    "padding": "8px 12px",
    "borderRadius": "6px",
    "margin": "6px 0",
    "fontFamily": "monospace",
    "whiteSpace": "pre-wrap",
}
_ERR = {**_MSG, "background": "#FDECEA", "border": "1px solid #D55E00"}


def _labelled(label: str, child: Any, width: str | None = None) -> html.Div:
    style = {"display": "flex", "flexDirection": "column", "minWidth": width or "140px"}
    return html.Div(
        [html.Label(label, style={"fontSize": "12px", "color": "#555"}), child], style=style
    )


def _config(name: str, *, fmt: str = "png") -> Any:
    # typed Any: dcc.Graph's stubs want its own Config type, plotly's config is a plain dict
    return F.graph_config(name, fmt=fmt)


def _graph(gid: str, height: str = "560px") -> dcc.Graph:
    return dcc.Graph(
        id=gid,
        figure=F.fig_empty(""),
        config=_config(f"xalign-{gid}"),
        style={"height": height},
        clear_on_unhover=True,
    )


def _show(json_text: str) -> str:
    """A protocol value (JSON text) as a user reads it: knn, 4, false, — for null."""
    try:
        v = json.loads(json_text)
    except ValueError:
        return json_text
    return "—" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _msg(text: str | None, *, error: bool = False) -> Any:
    if not text:
        return None
    return html.Div(text, style=_ERR if error else _MSG)


# ---------------------------------------------------------------- input validation


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def _as_int(value: Any, what: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number from a control (int, integral float or digits), within ``lo..hi``."""
    v = value
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    elif isinstance(v, str) and 0 < len(v.strip()) <= 12 and v.strip().lstrip("-").isdigit():
        v = int(v.strip())
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{what} {_short(value)}: expected a whole number")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(f"{what} {v} is out of range {lo}..{hi}")
    return v


def _as_str(value: Any, what: str, *, allowed: Any = None, optional: bool = False) -> Any:
    """A text value from a control (None allowed when ``optional``), one of ``allowed``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > 1024:
        raise ConfigError(f"{what} {_short(value)}: expected a text value")
    if allowed is not None and value not in allowed:
        raise ConfigError(f"{what}={value!r}: allowed values are {', '.join(map(str, allowed))}")
    return value


def _str_list(value: Any, what: str) -> list[str] | None:
    """A list of texts (language filter...), None for empty; anything else is refused."""
    if value is None or value == []:
        return None
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or len(value) > MAX_LIST
        or not all(isinstance(x, str) and len(x) <= 1024 for x in value)
    ):
        raise ConfigError(f"{what} {_short(value)}: expected a list of texts")
    return value


def _int_list(value: Any) -> list[int] | None:
    """Row numbers of a box/lasso selection; anything that is not one is dropped."""
    if not isinstance(value, list):
        return None
    return [int(x) for x in value[:MAX_LIST] if isinstance(x, int) and not isinstance(x, bool)]


def _as_row(catalog: Catalog, rel: str, row: Any, what: str = "row") -> int:
    n = len(catalog.rows(rel))
    return _as_int(row, f"{what} of {rel}", lo=0, hi=n - 1)


def _as_layer(catalog: Catalog, rel: str, layer: Any) -> int:
    layers = catalog.store(rel).layers
    v = _as_int(layer, "layer")
    if v not in layers:
        raise ConfigError(f"layer {v} is not stored in {rel} (stored: {layers})")
    return v


def _search_text(search: Any) -> str | None:
    if search is None or search == "":
        return None
    if not isinstance(search, str):
        raise ConfigError(f"search {_short(search)}: expected text")
    if len(search) > MAX_SEARCH:
        raise ConfigError(
            f"search text of {len(search):,} characters: type at most {MAX_SEARCH} characters"
        )
    return search


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


def _failure(name: str, e: BaseException) -> Any:
    """The message a failed callback shows in the page (the traceback goes to the log)."""
    if isinstance(e, XAlignError):
        text = f"error: {e}"
    else:
        log.exception("dashboard callback %s failed", name)
        text = (
            f"error: this view could not be updated ({type(e).__name__}: {_short(str(e), 300)}); "
            "the server log has the details"
        )
    return _msg(text[:3000], error=True)


def _callback(
    app: Dash, *deps: Any, message: int | None = None, **kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``app.callback`` that never answers with an HTTP 500.

    Any exception (bad input, a damaged store, an unreadable file) becomes an error message:
    in output number ``message`` when the callback has a message output, else in an error
    slot of its own (``{"type": "cb-error", "cb": name}``, shown at the top of the page and
    cleared by the callback's next success); the other outputs are left unchanged.
    """
    outputs = [d for d in deps if isinstance(d, Output)]
    rest = [d for d in deps if not isinstance(d, Output)]
    n = len(outputs)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__.strip("_")
        slot = None
        if message is None:
            slot = Output({"type": "cb-error", "cb": name}, "children")
            app._xalign_error_slots.append(name)  # type: ignore[attr-defined]

        @functools.wraps(fn)
        def run(*args: Any) -> Any:
            try:
                result = fn(*args)
            except PreventUpdate:
                raise
            except Exception as e:
                res = [no_update] * n
                if message is None:
                    res.append(_failure(name, e))
                else:
                    res[message] = _failure(name, e)
                return res if len(res) > 1 else res[0]
            if slot is None:
                return result
            return [*(result if n > 1 else [result]), None]

        app.callback(*outputs, *([slot] if slot else []), *rest, **kwargs)(run)
        return fn

    return deco


# ---------------------------------------------------------------- clusters callback (plain)


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
        store_a = _as_str(store_a, "store A", optional=True) or None
        store_b = _as_str(store_b, "store B", optional=True) or None
        layer = _as_int(layer, "layer") if layer is not None else 0
        pooling = _as_str(pooling, "pooling")
        method = _as_str(method, "method", allowed=METHODS)
        langs = _str_list(langs, "languages")
        selection = selection if isinstance(selection, dict) else None
        lasso = _int_list(lasso)
        state = _valid_state(state)
    except XAlignError as e:
        return no_update, no_update, _msg(f"error: {e}", error=True), None
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
            [_msg(m) for m in dict.fromkeys(msgs)] or None,
            new_state,
        )
    except XAlignError as e:
        empty = F.fig_empty("cannot show this store")
        return empty, empty, _msg(f"error: {e}", error=True), None


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
            from dashboards.figures import _trace_order

            entry = fit.layers[layer]
            points = catalog.points(rel, entry)
            sel = None if lasso is None else set(lasso)
            for i, (_, idx) in enumerate(_trace_order(points, langs)):
                rows = points["row"].to_numpy()[idx]
                p["data"][i]["selectedpoints"] = (
                    None if sel is None else [j for j, r in enumerate(rows) if int(r) in sel]
                )
        figs[side] = p
        new_state[side] = {**st, "layer": layer}
    return figs["a"], figs["b"], no_update, new_state


# ---------------------------------------------------------------- layout


def _empty_root(listing: Listing, display_root: str) -> html.Div:
    r = display_root
    return html.Div(
        [
            html.H3("No stores under this root yet"),
            html.P(
                f"Nothing under {r} holds an xalign store (a folder with manifest.json). "
                "Make one, then reload this page:"
            ),
            html.Pre(
                f"python -m xalign.extract --out {r}/demo --tokens --attentions head-mean\n"
                f"python -m xalign.metrics {r}/demo --out {r}/results.parquet\n"
                f"python -m xalign.project {r}/demo --methods pca --layers all",
                style=_MSG,
            ),
            *([html.P("Skipped: " + "; ".join(listing.skipped))] if listing.skipped else []),
        ],
        id="empty-root",
        style=_BOX,
    )


def _store_options(listing: Listing) -> list[dict[str, str]]:
    return [
        {
            "label": f"{s.rel} — {s.label} · {s.encoder} · {s.rows:,} rows · "
            f"{s.projections} projections",
            "value": s.rel,
        }
        for s in listing.stores
    ]


def _default_pair(listing: Listing) -> tuple[str | None, str | None]:
    """Stores shown first: a pair projected together (in the order given to
    ``xalign.project``, e.g. before after), else the first store alone."""
    if not listing.stores:
        return None, None
    by_id = {s.id: s.rel for s in listing.stores}
    for s in listing.stores:
        for fit in s.partners:
            rels = [by_id[i] for i in fit if i in by_id]
            if len(rels) >= 2:
                return rels[0], rels[1]
    return listing.stores[0].rel, None


def _layout(catalog: Catalog, display_root: str, error_slots: list[str]) -> html.Div:
    listing = catalog.scan()
    stores = _store_options(listing)
    a, b = _default_pair(listing)
    first_row = 0 if listing.stores else None
    header = html.Div(
        [
            html.Div(
                [html.B("xalign"), html.Span(f" · root {display_root}", style={"color": "#666"})],
                style={"fontSize": "18px", "minWidth": "160px"},
            ),
            _labelled(
                "store A",
                dcc.Dropdown(id="store-a", options=stores, value=a, clearable=False),
                "320px",
            ),
            _labelled(
                "store B (before/after)",
                dcc.Dropdown(id="store-b", options=stores, value=b, placeholder="(none)"),
                "320px",
            ),
            _labelled(
                "results table",
                dcc.Dropdown(
                    id="results",
                    options=[{"label": r, "value": r} for r in listing.results],
                    value=listing.results[0] if listing.results else None,
                    placeholder="(no results file under root)",
                ),
                "260px",
            ),
            _labelled("pooling", dcc.Dropdown(id="pooling", clearable=False), "110px"),
            _labelled(
                "download",
                dcc.RadioItems(
                    id="download-format", options=["png", "svg"], value="png", inline=True
                ),
            ),
        ],
        style={**_ROW, "padding": "6px 4px"},
    )
    slider = html.Div(
        [
            html.Span("layer", style={"marginRight": "8px"}),
            html.Div(
                dcc.Slider(id="layer", min=0, max=1, step=1, value=None, marks={0: "0", 1: "1"}),
                style={"flex": "1"},
            ),
        ],
        id="layer-row",
        style={**_ROW, "flexWrap": "nowrap", "padding": "0 8px"},
    )
    clusters = html.Div(
        [
            html.Div(
                [
                    _labelled(
                        "method",
                        dcc.Dropdown(
                            id="method", value="pca", clearable=False, options=list(METHODS)
                        ),
                        "160px",
                    ),
                    _labelled(
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
                style=_ROW,
            ),
            html.Div(id="clusters-msg"),
            html.Div(
                [
                    html.Div(_graph("clusters-a", "600px"), style={"flex": "1", "minWidth": 0}),
                    html.Div(_graph("clusters-b", "600px"), style={"flex": "1", "minWidth": 0}),
                ],
                style={"display": "flex", "gap": "8px"},
            ),
            html.Div(id="selection-info", style={"fontSize": "13px", "padding": "4px"}),
        ]
    )
    metrics = html.Div(
        [
            html.Div(
                [
                    _labelled("metric", dcc.Dropdown(id="metric", clearable=False), "260px"),
                    html.Div(id="proto-filters", style=_ROW),
                    _labelled(
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
                style=_ROW,
            ),
            html.Div(
                [
                    _labelled("heatmap checkpoint", dcc.Dropdown(id="heat-ckpt"), "200px"),
                    _labelled("before", dcc.Dropdown(id="ckpt-before"), "200px"),
                    _labelled("after", dcc.Dropdown(id="ckpt-after"), "200px"),
                ],
                style=_ROW,
            ),
            html.Div(id="metrics-msg"),
            _graph("metric-curves", "440px"),
            html.Div(
                [
                    html.Div(_graph("metric-heatmap", "520px"), style={"flex": "1", "minWidth": 0}),
                    html.Div(_graph("metric-diff", "520px"), style={"flex": "1", "minWidth": 0}),
                ],
                style={"display": "flex", "gap": "8px"},
            ),
        ]
    )
    retrieval = html.Div(
        [
            html.Div(
                [
                    _labelled(
                        "sentence (type to search the store)",
                        dcc.Dropdown(id="query", placeholder="type a few words…", value=first_row),
                        "520px",
                    ),
                    _labelled(
                        "k",
                        dcc.Input(
                            id="k", type="number", min=1, max=50, value=5, style={"width": "60px"}
                        ),
                    ),
                    _labelled(
                        "scoring",
                        dcc.RadioItems(
                            id="scoring",
                            inline=True,
                            value="cosine",
                            options=[
                                {"label": "cosine", "value": "cosine"},
                                {"label": "margin (ratio, k=4)", "value": "margin"},
                                {"label": "CSLS (k=10)", "value": "csls"},
                            ],
                        ),
                    ),
                    dcc.Checklist(
                        id="centering",
                        options=[{"label": "centre each language", "value": "on"}],
                        value=[],
                    ),
                ],
                style=_ROW,
            ),
            html.Div(
                [
                    html.Span("computing… ", style={"fontWeight": "bold"}),
                    html.Span(
                        "margin and CSLS need each sentence's nearest neighbours in the other "
                        "language; the first query of a store × layer × pooling computes them "
                        "(minutes on a large store), later queries reuse them.",
                    ),
                    html.Div(id="retrieval-progress"),
                ],
                id="retrieval-status",
                style={**_MSG, "display": "none"},
            ),
            dcc.Interval(id="retrieval-tick", interval=1000, disabled=True),
            dcc.Loading(html.Div(id="retrieval-out"), delay_show=300),
        ]
    )
    attention = html.Div(
        [
            html.Div(
                [
                    _labelled(
                        "sentence A (type to search)",
                        dcc.Dropdown(id="attn-a", placeholder="type a few words…", value=first_row),
                        "420px",
                    ),
                    _labelled("translation B", dcc.Dropdown(id="attn-b"), "420px"),
                    _labelled(
                        "head",
                        dcc.Dropdown(id="head", value="mean", clearable=False, options=["mean"]),
                        "100px",
                    ),
                    _labelled(
                        "units",
                        dcc.RadioItems(
                            id="granularity",
                            inline=True,
                            value="words",
                            options=["words", "tokens"],
                        ),
                    ),
                    _labelled(
                        "alignment",
                        dcc.RadioItems(
                            id="align-method",
                            inline=True,
                            value="itermax",
                            options=["argmax", "itermax"],
                        ),
                    ),
                ],
                style=_ROW,
            ),
            html.Div(id="attention-out"),
        ]
    )
    tabs = dcc.Tabs(
        id="tabs",
        value="clusters",
        children=[
            dcc.Tab(label="Clusters", value="clusters", children=clusters),
            dcc.Tab(label="Metrics", value="metrics", children=metrics),
            dcc.Tab(label="Retrieval", value="retrieval", children=retrieval),
            dcc.Tab(label="Attention", value="attention", children=attention),
        ],
    )
    errors = html.Div(
        [html.Div(id={"type": "cb-error", "cb": name}) for name in error_slots],
        id="callback-errors",
    )
    body: list[Any] = [header, errors, slider]
    if not listing.stores:
        body.append(_empty_root(listing, display_root))
    body += [
        tabs,
        dcc.Store(id="selection"),
        dcc.Store(id="lasso"),
        dcc.Store(id="clusters-state"),
    ]
    return html.Div(
        body, style={"fontFamily": "Helvetica, Arial, sans-serif", "padding": "6px 12px"}
    )


# ---------------------------------------------------------------- app


def create_app(root: str, *, display_root: str | None = None) -> Dash:
    """The dashboard over every store and results file under ``root``.

    Parameters
    ----------
    root : str
        Folder to serve (only stores and results files below it are ever read).
    display_root : str, optional
        How to write the root in commands shown to the user (default: ``root`` as given).
    """
    catalog = Catalog(root)
    shown = display_root if display_root is not None else str(root).rstrip("/") or "."
    app = Dash(
        __name__,
        title="xalign dashboard",
        serve_locally=True,
        assets_folder=str(catalog.root / ".xalign-no-assets"),
        include_assets_files=False,
        suppress_callback_exceptions=True,
        update_title="",
    )
    app.server.register_error_handler(Exception, _malformed_request)
    app._xalign_catalog = catalog  # type: ignore[attr-defined]
    app._xalign_error_slots = []  # type: ignore[attr-defined]
    _register(app, catalog, shown)
    app.layout = lambda: _layout(catalog, shown, app._xalign_error_slots)  # type: ignore[attr-defined]
    return app


def _malformed_request(e: Exception) -> Any:
    """A request Dash itself cannot parse (not one made by the page): 400, not a 500."""
    from werkzeug.exceptions import HTTPException

    if isinstance(e, HTTPException):
        return e
    log.warning("malformed dashboard request: %s: %s", type(e).__name__, e)
    return {"error": f"malformed callback request ({type(e).__name__})"}, 400


def _safe_store(catalog: Catalog, rel: Any) -> Any:
    if not rel:
        return None
    try:
        return catalog.store(rel)
    except XAlignError:
        return None


def _register(app: Dash, catalog: Catalog, shown: str) -> None:
    def callback(*deps: Any, message: int | None = None, **kw: Any) -> Any:
        return _callback(app, *deps, message=message, **kw)

    @callback(
        Output("layer", "min"),
        Output("layer", "max"),
        Output("layer", "marks"),
        Output("layer", "value"),
        Output("pooling", "options"),
        Output("pooling", "value"),
        Output("lang-filter", "options"),
        Output("method", "options"),
        Input("store-a", "value"),
        State("layer", "value"),
        State("pooling", "value"),
        State("method", "value"),
    )
    def _on_store(rel, layer, pooling, method):
        s = _safe_store(catalog, rel)
        if s is None:
            return 0, 1, {0: "0", 1: "1"}, 0, [], None, [], list(METHODS)
        layers = s.layers
        marks = {int(x): str(x) for x in layers}
        value = layer if isinstance(layer, int) and layer in layers else layers[-1]
        pool = pooling if isinstance(pooling, str) and pooling in s.poolings else s.poolings[0]
        langs = [{"label": F.language_label(x), "value": x} for x in s.languages]
        have = catalog.methods(rel)
        methods = [
            {"label": m + ("" if m in have else " (not computed)"), "value": m} for m in METHODS
        ]
        return min(layers), max(layers), marks, value, s.poolings, pool, langs, methods

    @callback(
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
        message=2,
    )
    def _clusters(a, b, layer, pooling, method, langs, selection, lasso, state):
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

    @callback(
        Output("selection", "data"),
        Output("query", "value"),
        Output("attn-a", "value"),
        Input("clusters-a", "clickData"),
        Input("clusters-b", "clickData"),
        Input("clear-selection", "n_clicks"),
        Input("store-a", "value"),
        State("store-b", "value"),
        prevent_initial_call=True,
    )
    def _on_click(click_a, click_b, _n, a, b):
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

    @callback(
        Output("lasso", "data"),
        Input("clusters-a", "selectedData"),
        Input("clusters-b", "selectedData"),
        prevent_initial_call=True,
    )
    def _on_lasso(sel_a, sel_b):
        return lasso_rows(sel_a if ctx.triggered_id == "clusters-a" else sel_b)

    @callback(Output("selection-info", "children"), Input("selection", "data"), message=0)
    def _selection_info(sel):
        if not isinstance(sel, dict) or not {"lang", "row", "text"} <= set(sel):
            return "no sentence selected"
        return [
            html.B(f"{str(sel['lang'])[:64]} · row {str(sel['row'])[:20]}: "),
            str(sel["text"])[:2000],
            html.Span(f"  (group {str(sel['group'])[:200]})" if sel.get("group") else ""),
        ]

    @callback(*[Output(g, "config") for g in STATIC_GRAPHS], Input("download-format", "value"))
    def _download_format(fmt):
        fmt = fmt if fmt in ("png", "svg") else "png"
        return [F.graph_config(f"xalign-{g}", fmt=fmt) for g in STATIC_GRAPHS]

    # ------------------------------------------------------------ metrics
    @callback(
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
    )
    def _on_results(rel, metric):
        try:
            df = catalog.results(rel) if rel else None
        except (XAlignError, OSError, ValueError):
            df = None
        if df is None or df.empty:
            return [], None, [], None, [], None, [], None
        metrics = list(dict.fromkeys(df["metric"]))
        pref = ("retrieval_acc", "retrieval_acc_mean", "language_silhouette")
        keep = isinstance(metric, str) and metric in metrics
        value = metric if keep else next((m for m in pref if m in metrics), metrics[0])
        ck = list(dict.fromkeys(df["checkpoint"]))
        after = ck[1] if len(ck) > 1 else None
        return metrics, value, ck, ck[0], ck, ck[0], ck, after

    @callback(
        Output("proto-filters", "children"), Input("results", "value"), Input("metric", "value")
    )
    def _proto_filters(rel, metric):
        if not rel or not metric:
            return []
        metric = _as_str(metric, "metric")
        try:
            opts = F.protocol_options(catalog.results(rel), metric)
        except (XAlignError, OSError, ValueError):
            return []
        default = F.filter_protocol(catalog.results(rel), metric).attrs["protocol"]
        return [
            _labelled(
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

    @callback(
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
        message=3,
    )
    def _metrics(rel, metric, layer, proto_vals, mode, heat, before, after, langs, proto_ids):
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
            return empty, empty, empty, _msg(f"No results table under {shown}. Make one: {cmd}")
        try:
            out = metric_views(
                catalog,
                _as_str(rel, "results table"),
                metric=_as_str(metric, "metric", optional=True),
                layer=_as_int(layer, "layer") if layer is not None else 0,
                choices=choices,
                mode=_as_str(mode or "languages", "curves", allowed=("languages", "mean")),
                heat_checkpoint=_as_str(heat, "heatmap checkpoint", optional=True),
                before=_as_str(before, "before", optional=True),
                after=_as_str(after, "after", optional=True),
                langs=_str_list(langs, "languages"),
            )
        except (XAlignError, OSError, ValueError) as e:
            return empty, empty, empty, _msg(f"error: {e}", error=True)
        return (
            out["curves"] or empty,
            out["heatmap"] or empty,
            out["difference"] or empty,
            _msg(out["message"])
            or html.Div(
                f"protocol: {out.get('protocol') or 'single'}",
                className="protocol-line",
                style={"fontSize": "12px", "color": "#555", "padding": "4px"},
            ),
        )

    # ------------------------------------------------------------ retrieval
    def _sentence_options(rel, search, value, rows_only=None):
        search = _search_text(search)
        s = _safe_store(catalog, rel)
        if s is None:
            return []
        rows = catalog.rows(rel)
        texts = rows["text"].astype(str)
        if rows_only is not None:
            idx = [int(r) for r in rows_only]
        elif search:
            hit = texts.str.contains(search, case=False, regex=False)
            idx = list(hit.to_numpy().nonzero()[0][:50])
        else:
            idx = list(range(min(50, len(rows))))
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(rows):
            idx = [value, *[i for i in idx if i != value]]
        return [
            {"label": f"[{rows['lang'].iloc[i]}] {texts.iloc[i][:90]} (row {i})", "value": int(i)}
            for i in idx
        ]

    @callback(
        Output("query", "options"),
        Input("store-a", "value"),
        Input("query", "search_value"),
        Input("query", "value"),
    )
    def _query_options(rel, search, value):
        return _sentence_options(rel, search, value)

    @callback(
        Output("retrieval-out", "children"),
        Input("store-a", "value"),
        Input("store-b", "value"),
        Input("layer", "value"),
        Input("pooling", "value"),
        Input("query", "value"),
        Input("k", "value"),
        Input("scoring", "value"),
        Input("centering", "value"),
        Input("lang-filter", "value"),
        State("download-format", "value"),
        message=0,
        running=[
            (Output("retrieval-tick", "disabled"), False, True),
            (
                Output("retrieval-status", "style"),
                {**_MSG, "display": "block"},
                {"display": "none"},
            ),
        ],
    )
    def _retrieval(a, b, layer, pooling, row, k, scoring, centering, langs, fmt):
        if a is None:
            return _msg("choose a store")
        if row is None:
            return _msg("choose or type a sentence of the store (or click one in Clusters)")
        a = _as_str(a, "store A")
        b = _as_str(b, "store B", optional=True) or None
        row = _as_row(catalog, a, row, "sentence")
        k = _as_int(k if k is not None else 5, "k", lo=1, hi=MAX_K)
        scoring = _as_str(scoring or "cosine", "scoring", allowed=tuple(SCORING_K))
        pooling = _as_str(pooling, "pooling")
        langs = _str_list(langs, "languages")
        fmt = fmt if fmt in ("png", "svg") else "png"
        sel_id = str(catalog.rows(a)["id"].iloc[row])
        blocks = []
        for side, rel in (("A", a), ("B", b)):
            if not rel:
                continue
            try:
                lay = _as_layer(catalog, rel, layer)
                r = row
                if side == "B":
                    ids = catalog.rows(rel)["id"].astype(str)
                    hit = ids.index[ids == sel_id]
                    if not len(hit):
                        blocks.append(_msg(f"{rel}: the sentence {sel_id!r} is not in this store"))
                        continue
                    r = int(hit[0])
                hits = neighbours(
                    catalog,
                    rel,
                    row=r,
                    layer=lay,
                    pooling=pooling,
                    k=k,
                    scoring=scoring,
                    centering=bool(centering),
                    langs=langs,
                )
            except (XAlignError, ValueError, IndexError) as e:
                blocks.append(_msg(f"error: {e}", error=True))
                continue
            blocks.append(_retrieval_block(side, rel, hits, lay, scoring, fmt))
        return html.Div(blocks, style={"display": "flex", "gap": "12px", "flexWrap": "wrap"})

    @callback(
        Output("retrieval-progress", "children"),
        Input("retrieval-tick", "n_intervals"),
        message=0,
        prevent_initial_call=True,
    )
    def _retrieval_progress(_n):
        p = catalog.progress()
        if not p:
            return "reading the store…"
        elapsed = time.perf_counter() - float(p.get("started", time.perf_counter()))
        return (
            f"{p['what']}: language pair {p['pair']} ({int(p['done']) + 1} of {p['total']}, "
            f"{int(p['rows']):,} sentences), {elapsed:.0f} s so far"
        )

    # ------------------------------------------------------------ attention
    @callback(
        Output("attn-a", "options"),
        Input("store-a", "value"),
        Input("attn-a", "search_value"),
        Input("attn-a", "value"),
    )
    def _attn_a_options(rel, search, value):
        return _sentence_options(rel, search, value)

    @callback(
        Output("attn-b", "options"),
        Output("attn-b", "value"),
        Output("head", "options"),
        Input("store-a", "value"),
        Input("attn-a", "value"),
        State("attn-b", "value"),
    )
    def _attn_b_options(rel, row_a, current):
        s = _safe_store(catalog, rel)
        heads = ["mean"]
        if s is None or row_a is None:
            return [], None, heads
        if s.attention_mode == "full":
            heads += [str(h) for h in range(int(s.encoder.get("num_heads", 0)))]
        row_a = _as_row(catalog, rel, row_a, "sentence A")
        rows = catalog.rows(rel)
        g = rows["group"].iloc[row_a] if "group" in rows else None
        if g is None or (isinstance(g, float) and g != g):
            return [], None, heads
        same = [int(i) for i in rows.index[rows["group"] == g] if int(i) != row_a]
        opts = _sentence_options(rel, None, None, rows_only=same)
        langs = rows["lang"].astype(str)
        pick = (
            current
            if isinstance(current, int) and current in same
            else next((r for r in same if langs.iloc[r] == "eng"), same[0] if same else None)
        )
        return opts, pick, heads

    @callback(
        Output("attention-out", "children"),
        Input("store-a", "value"),
        Input("store-b", "value"),
        Input("layer", "value"),
        Input("attn-a", "value"),
        Input("attn-b", "value"),
        Input("head", "value"),
        Input("granularity", "value"),
        Input("align-method", "value"),
        State("download-format", "value"),
        message=0,
    )
    def _attention(a, b, layer, row_a, row_b, head, gran, method, fmt):
        from dashboards._views import alignment_view

        if a is None:
            return _msg("choose a store")
        if row_a is None or row_b is None:
            return _msg(
                "choose sentence A (type to search, or click one in Clusters) and one "
                "of its translations B"
            )
        a = _as_str(a, "store A")
        b = _as_str(b, "store B", optional=True) or None
        row_a = _as_row(catalog, a, row_a, "sentence A")
        row_b = _as_row(catalog, a, row_b, "translation B")
        layer = _as_int(layer, "layer")
        head = _as_str(str(head) if isinstance(head, int) else head or "mean", "head")
        gran = _as_str(gran or "words", "units", allowed=("words", "tokens"))
        method = _as_str(method or "itermax", "alignment", allowed=("argmax", "itermax"))
        fmt = fmt if fmt in ("png", "svg") else "png"
        ids = [str(x) for x in catalog.rows(a)["id"].iloc[[row_a, row_b]]]
        out = []
        for side, rel in (("A", a), ("B", b)):
            if not rel:
                continue
            try:
                ra, rb = row_a, row_b
                if rel != a:
                    col = catalog.rows(rel)["id"].astype(str)
                    pos = [col.index[col == i] for i in ids]
                    if not all(len(p) for p in pos):
                        out.append(_msg(f"{rel}: this pair is not in the store"))
                        continue
                    ra, rb = int(pos[0][0]), int(pos[1][0])
                v = alignment_view(
                    catalog,
                    rel,
                    row_a=ra,
                    row_b=rb,
                    layer=layer,
                    head=head,
                    granularity=gran,
                    method=method,
                )
            except (XAlignError, ValueError, IndexError) as e:
                out.append(_msg(f"error: {e}", error=True))
                continue
            graphs = []
            for key in ("attn_a", "attn_b", "alignment", "cross"):
                fig = v.get(key)
                if fig is not None:
                    gid = f"attn-{'a' if rel == a else 'b'}-{key}"
                    graphs.append(
                        html.Div(
                            dcc.Graph(
                                id=gid,
                                figure=fig,
                                style={"height": "460px"},
                                config=_config(f"xalign-{gid}", fmt=fmt),
                            ),
                            style={"flex": "1", "minWidth": "320px"},
                        )
                    )
            out.append(
                html.Div(
                    [
                        html.H4(f"{side}: {rel}"),
                        *[_msg(m) for m in v["messages"]],
                        html.Div(
                            graphs, style={"display": "flex", "gap": "6px", "flexWrap": "wrap"}
                        ),
                    ],
                    style=_BOX,
                )
            )
        return out


def _neighbourhood_note(hits: Any) -> list[Any]:
    info = hits.attrs.get("neighbourhood") or {}
    if not info.get("computed") and not info.get("cached"):
        return []
    if info.get("computed"):
        text = (
            f"neighbourhoods of {info['computed']} language pair(s) computed in "
            f"{info['seconds']:.1f} s (cached: later queries of this layer reuse them)"
        )
    else:
        text = f"neighbourhoods from the cache ({info['seconds']:.2f} s)"
    return [html.P(text, className="neighbourhood-note", style={"fontSize": "12px"})]


def _retrieval_block(side: str, rel: str, hits: Any, layer: Any, scoring: str, fmt: Any) -> Any:
    top1 = hits[hits["rank"] == 1]
    n_ok = int(top1["gold"].sum())
    rows = []
    for lang, g in hits.groupby("lang", sort=False):
        for _, h in g.iterrows():
            mark = "✓" if h["gold"] else ("✗" if h["rank"] == 1 else "")
            rows.append(
                html.Tr(
                    [
                        html.Td(
                            F.language_label(lang) if h["rank"] == 1 else "",
                            style={"color": F.language_color(lang), "fontWeight": "bold"},
                        ),
                        html.Td(int(h["rank"])),
                        html.Td(f"{h['score']:.4f}"),
                        html.Td(mark, style={"color": "#009E73" if h["gold"] else "#D55E00"}),
                        html.Td(h["text"]),
                        html.Td(int(h["row"]), style={"color": "#888"}),
                    ]
                )
            )
    table = html.Table(
        [
            html.Thead(
                html.Tr([html.Th(x) for x in ("language", "#", "score", "gold", "sentence", "row")])
            ),
            html.Tbody(rows),
        ],
        className="neighbours",
        style={"fontSize": "13px", "borderCollapse": "collapse"},
    )
    gid = f"retrieval-fig-{side.lower()}"
    return html.Div(
        [
            html.H4(f"{side}: {rel} · layer {layer} · {scoring}"),
            html.P(
                f"top-1 is the gold translation in {n_ok} of {len(top1)} languages",
                className="top1-summary",
            ),
            *_neighbourhood_note(hits),
            table,
            dcc.Graph(
                id=gid,
                figure=F.fig_neighbours(hits),
                config=_config(f"xalign-{gid}", fmt=fmt or "png"),
            ),
        ],
        style={**_BOX, "flex": "1", "minWidth": "420px"},
    )
