"""The **Retrieval** tab: the top-k neighbours of one sentence in every other language,
for store A and (the same sentence) in store B, with cosine, margin or CSLS scoring.

Margin and CSLS need each sentence's neighbourhood in the other language; the first query
of a store × layer × pooling computes them (the catalog caches them), and the page polls
the catalog's progress meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dashboards._catalog import Catalog
from dashboards._views import MAX_K, SCORING_K, neighbours
from dashboards.tabs._common import (
    BOX,
    MSG,
    ROW,
    as_int,
    as_layer,
    as_row,
    as_str,
    callback,
    graph_config,
    labelled,
    msg,
    sentence_options,
    str_list,
)
from xalign import figures as F
from xalign.errors import XAlignError

__all__ = ["layout", "register"]


def layout(first_row: int | None) -> html.Div:
    """The tab's controls (sentence, k, scoring, centering), progress box and output."""
    return html.Div(
        [
            html.Div(
                [
                    labelled(
                        "sentence (type to search the store)",
                        dcc.Dropdown(id="query", placeholder="type a few words…", value=first_row),
                        "520px",
                    ),
                    labelled(
                        "k",
                        dcc.Input(
                            id="k", type="number", min=1, max=50, value=5, style={"width": "60px"}
                        ),
                    ),
                    labelled(
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
                style=ROW,
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
                style={**MSG, "display": "none"},
            ),
            dcc.Interval(id="retrieval-tick", interval=1000, disabled=True),
            dcc.Loading(html.Div(id="retrieval-out"), delay_show=300),
        ]
    )


# ---------------------------------------------------------------- output blocks


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
                config=graph_config(f"xalign-{gid}", fmt=fmt or "png"),
            ),
        ],
        style={**BOX, "flex": "1", "minWidth": "420px"},
    )


# ---------------------------------------------------------------- callbacks


def _query_options(catalog: Catalog, rel: Any, search: Any, value: Any) -> list[dict[str, Any]]:
    return sentence_options(catalog, rel, search, value)


def _retrieval(
    catalog: Catalog,
    a: Any,
    b: Any,
    layer: Any,
    pooling: Any,
    row: Any,
    k: Any,
    scoring: Any,
    centering: Any,
    langs: Any,
    fmt: Any,
) -> Any:
    """The neighbours of sentence ``row`` of store A, in A and (the same id) in B."""
    if a is None:
        return msg("choose a store")
    if row is None:
        return msg("choose or type a sentence of the store (or click one in Clusters)")
    a = as_str(a, "store A")
    b = as_str(b, "store B", optional=True) or None
    row = as_row(catalog, a, row, "sentence")
    k = as_int(k if k is not None else 5, "k", lo=1, hi=MAX_K)
    scoring = as_str(scoring or "cosine", "scoring", allowed=tuple(SCORING_K))
    pooling = as_str(pooling, "pooling")
    langs = str_list(langs, "languages")
    fmt = fmt if fmt in ("png", "svg") else "png"
    sel_id = str(catalog.rows(a)["id"].iloc[row])
    blocks = []
    for side, rel in (("A", a), ("B", b)):
        if not rel:
            continue
        try:
            lay = as_layer(catalog, rel, layer)
            r = row
            if side == "B":
                ids = catalog.rows(rel)["id"].astype(str)
                hit = ids.index[ids == sel_id]
                if not len(hit):
                    blocks.append(msg(f"{rel}: the sentence {sel_id!r} is not in this store"))
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
            blocks.append(msg(f"error: {e}", error=True))
            continue
        blocks.append(_retrieval_block(side, rel, hits, lay, scoring, fmt))
    return html.Div(blocks, style={"display": "flex", "gap": "12px", "flexWrap": "wrap"})


def _retrieval_progress(catalog: Catalog, _n: Any) -> str:
    """What the neighbourhood computation is doing (polled while a query runs)."""
    p = catalog.progress()
    if not p:
        return "reading the store…"
    elapsed = time.perf_counter() - float(p.get("started", time.perf_counter()))
    return (
        f"{p['what']}: language pair {p['pair']} ({int(p['done']) + 1} of {p['total']}, "
        f"{int(p['rows']):,} sentences), {elapsed:.0f} s so far"
    )


def register(app: Dash, catalog: Catalog) -> None:
    """Register the tab's callbacks."""
    callback(
        app,
        _query_options,
        Output("query", "options"),
        Input("store-a", "value"),
        Input("query", "search_value"),
        Input("query", "value"),
        bind=(catalog,),
    )
    callback(
        app,
        _retrieval,
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
        bind=(catalog,),
        message=0,
        running=[
            (Output("retrieval-tick", "disabled"), False, True),
            (
                Output("retrieval-status", "style"),
                {**MSG, "display": "block"},
                {"display": "none"},
            ),
        ],
    )
    callback(
        app,
        _retrieval_progress,
        Output("retrieval-progress", "children"),
        Input("retrieval-tick", "n_intervals"),
        bind=(catalog,),
        message=0,
        prevent_initial_call=True,
    )
