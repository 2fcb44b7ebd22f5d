"""The Dash app: the page shell and the server around the tabs of :mod:`dashboards.tabs`.

Views: **Clusters** (projected sentences per layer, two stores side by side, linked
selection, translations of a clicked sentence highlighted and linked in both panels),
**Metrics** (metric by layer, language × language heatmap, before/after difference),
**Retrieval** (top-k neighbours of one sentence per language), **Attention** (attention
maps, similarity matrix with the predicted word alignment, gold links, cross attention) and
**Neurons** (language-specific feed-forward neurons by layer, their overlap between
languages, before/after), one module each under :mod:`dashboards.tabs`. It only reads
stores, cached projections and results tables; it never runs a model. Assets are served by
the app itself (no CDN), so it works offline.

This module holds what the tabs share: app creation, the header (stores, results table,
pooling, download format), the layer slider, the error slots, and the server protections.
Every callback is registered through :func:`~dashboards.tabs._common.callback`, which turns
any failure (a crafted request, a damaged store, an unreadable file) into a message in the
page instead of an HTTP 500; a request Dash itself cannot parse gets a 400.
"""

from __future__ import annotations

import logging
from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dashboards._catalog import Catalog, Listing
from dashboards.tabs import attention, clusters, metrics, neurons, retrieval
from dashboards.tabs._common import (
    BOX,
    METHODS,
    MSG,
    ROW,
    callback,
    labelled,
    safe_store,
)
from dashboards.tabs.clusters import update_clusters
from xalign import figures as F

__all__ = ["create_app", "update_clusters"]

log = logging.getLogger(__name__)

#: Graphs whose download format (png/svg) follows the header's choice.
STATIC_GRAPHS = clusters.GRAPHS + metrics.GRAPHS + neurons.GRAPHS


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
                style=MSG,
            ),
            *([html.P("Skipped: " + "; ".join(listing.skipped))] if listing.skipped else []),
        ],
        id="empty-root",
        style=BOX,
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


def _header(listing: Listing, display_root: str) -> html.Div:
    stores = _store_options(listing)
    a, b = _default_pair(listing)
    return html.Div(
        [
            html.Div(
                [html.B("xalign"), html.Span(f" · root {display_root}", style={"color": "#666"})],
                style={"fontSize": "18px", "minWidth": "160px"},
            ),
            labelled(
                "store A",
                dcc.Dropdown(id="store-a", options=stores, value=a, clearable=False),
                "320px",
            ),
            labelled(
                "store B (before/after)",
                dcc.Dropdown(id="store-b", options=stores, value=b, placeholder="(none)"),
                "320px",
            ),
            labelled(
                "results table",
                dcc.Dropdown(
                    id="results",
                    options=[{"label": r, "value": r} for r in listing.results],
                    value=listing.results[0] if listing.results else None,
                    placeholder="(no results file under root)",
                ),
                "260px",
            ),
            labelled("pooling", dcc.Dropdown(id="pooling", clearable=False), "110px"),
            labelled(
                "download",
                dcc.RadioItems(
                    id="download-format", options=["png", "svg"], value="png", inline=True
                ),
            ),
        ],
        style={**ROW, "padding": "6px 4px"},
    )


def _layer_slider() -> html.Div:
    return html.Div(
        [
            html.Span("layer", style={"marginRight": "8px"}),
            html.Div(
                dcc.Slider(id="layer", min=0, max=1, step=1, value=None, marks={0: "0", 1: "1"}),
                style={"flex": "1"},
            ),
        ],
        id="layer-row",
        style={**ROW, "flexWrap": "nowrap", "padding": "0 8px"},
    )


def _layout(catalog: Catalog, display_root: str, error_slots: list[str]) -> html.Div:
    listing = catalog.scan()
    first_row = 0 if listing.stores else None
    tabs = dcc.Tabs(
        id="tabs",
        value="clusters",
        children=[
            dcc.Tab(label="Clusters", value="clusters", children=clusters.layout()),
            dcc.Tab(label="Metrics", value="metrics", children=metrics.layout()),
            dcc.Tab(label="Retrieval", value="retrieval", children=retrieval.layout(first_row)),
            dcc.Tab(label="Attention", value="attention", children=attention.layout(first_row)),
            dcc.Tab(label="Neurons", value="neurons", children=neurons.layout()),
        ],
    )
    errors = html.Div(
        [html.Div(id={"type": "cb-error", "cb": name}) for name in error_slots],
        id="callback-errors",
    )
    body: list[Any] = [_header(listing, display_root), errors, _layer_slider()]
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


# ---------------------------------------------------------------- shell callbacks


def _on_store(catalog: Catalog, rel: Any, layer: Any, pooling: Any, method: Any) -> tuple[Any, ...]:
    """Store A chosen: its layers on the slider, its poolings, languages and projections."""
    s = safe_store(catalog, rel)
    if s is None:
        return 0, 1, {0: "0", 1: "1"}, 0, [], None, [], list(METHODS)
    layers = s.layers
    marks = {int(x): str(x) for x in layers}
    value = layer if isinstance(layer, int) and layer in layers else layers[-1]
    pool = pooling if isinstance(pooling, str) and pooling in s.poolings else s.poolings[0]
    langs = [{"label": F.language_label(x), "value": x} for x in s.languages]
    have = catalog.methods(rel)
    methods = [{"label": m + ("" if m in have else " (not computed)"), "value": m} for m in METHODS]
    return min(layers), max(layers), marks, value, s.poolings, pool, langs, methods


def _download_format(fmt: Any) -> list[Any]:
    fmt = fmt if fmt in ("png", "svg") else "png"
    return [F.graph_config(f"xalign-{g}", fmt=fmt) for g in STATIC_GRAPHS]


def _register(app: Dash, catalog: Catalog, shown: str) -> None:
    # registration order is the order of the error slots at the top of the page
    callback(
        app,
        _on_store,
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
        bind=(catalog,),
    )
    clusters.register(app, catalog, shown=shown)
    callback(
        app,
        _download_format,
        *[Output(g, "config") for g in STATIC_GRAPHS],
        Input("download-format", "value"),
    )
    metrics.register(app, catalog, shown=shown)
    retrieval.register(app, catalog)
    attention.register(app, catalog)
    neurons.register(app, catalog, shown=shown)


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
