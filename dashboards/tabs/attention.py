"""The **Attention** tab: for sentence A and one of its translations B, each sentence's
attention map, the similarity matrix with the predicted word alignment (and gold links when
the corpus has them) and the cross attention, in store A and (the same pair) in store B."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dashboards._catalog import Catalog
from dashboards._views import alignment_view
from dashboards.tabs._common import (
    BOX,
    ROW,
    as_int,
    as_row,
    as_str,
    callback,
    graph_config,
    labelled,
    msg,
    safe_store,
    sentence_options,
)
from xalign.errors import XAlignError

__all__ = ["layout", "register"]


def layout(first_row: int | None) -> html.Div:
    """The tab's controls (sentence pair, head, units, alignment method) and its output."""
    return html.Div(
        [
            html.Div(
                [
                    labelled(
                        "sentence A (type to search)",
                        dcc.Dropdown(id="attn-a", placeholder="type a few words…", value=first_row),
                        "420px",
                    ),
                    labelled("translation B", dcc.Dropdown(id="attn-b"), "420px"),
                    labelled(
                        "head",
                        dcc.Dropdown(id="head", value="mean", clearable=False, options=["mean"]),
                        "100px",
                    ),
                    labelled(
                        "units",
                        dcc.RadioItems(
                            id="granularity",
                            inline=True,
                            value="words",
                            options=["words", "tokens"],
                        ),
                    ),
                    labelled(
                        "alignment",
                        dcc.RadioItems(
                            id="align-method",
                            inline=True,
                            value="itermax",
                            options=["argmax", "itermax"],
                        ),
                    ),
                ],
                style=ROW,
            ),
            html.Div(id="attention-out"),
        ]
    )


# ---------------------------------------------------------------- callbacks


def _attn_a_options(catalog: Catalog, rel: Any, search: Any, value: Any) -> list[dict[str, Any]]:
    return sentence_options(catalog, rel, search, value)


def _attn_b_options(
    catalog: Catalog, rel: Any, row_a: Any, current: Any
) -> tuple[list[dict[str, Any]], int | None, list[str]]:
    """Sentence A's translations (English first, else the current choice kept) and the heads."""
    s = safe_store(catalog, rel)
    heads = ["mean"]
    if s is None or row_a is None:
        return [], None, heads
    if s.attention_mode == "full":
        heads += [str(h) for h in range(int(s.encoder.get("num_heads", 0)))]
    row_a = as_row(catalog, rel, row_a, "sentence A")
    rows = catalog.rows(rel)
    g = rows["group"].iloc[row_a] if "group" in rows else None
    if g is None or (isinstance(g, float) and g != g):
        return [], None, heads
    same = [int(i) for i in rows.index[rows["group"] == g] if int(i) != row_a]
    opts = sentence_options(catalog, rel, None, None, rows_only=same)
    langs = rows["lang"].astype(str)
    pick = (
        current
        if isinstance(current, int) and current in same
        else next((r for r in same if langs.iloc[r] == "eng"), same[0] if same else None)
    )
    return opts, pick, heads


def _attention(
    catalog: Catalog,
    a: Any,
    b: Any,
    layer: Any,
    row_a: Any,
    row_b: Any,
    head: Any,
    gran: Any,
    method: Any,
    fmt: Any,
) -> Any:
    if a is None:
        return msg("choose a store")
    if row_a is None or row_b is None:
        return msg(
            "choose sentence A (type to search, or click one in Clusters) and one "
            "of its translations B"
        )
    a = as_str(a, "store A")
    b = as_str(b, "store B", optional=True) or None
    row_a = as_row(catalog, a, row_a, "sentence A")
    row_b = as_row(catalog, a, row_b, "translation B")
    layer = as_int(layer, "layer")
    head = as_str(str(head) if isinstance(head, int) else head or "mean", "head")
    gran = as_str(gran or "words", "units", allowed=("words", "tokens"))
    method = as_str(method or "itermax", "alignment", allowed=("argmax", "itermax"))
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
                    out.append(msg(f"{rel}: this pair is not in the store"))
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
            out.append(msg(f"error: {e}", error=True))
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
                            config=graph_config(f"xalign-{gid}", fmt=fmt),
                        ),
                        style={"flex": "1", "minWidth": "320px"},
                    )
                )
        out.append(
            html.Div(
                [
                    html.H4(f"{side}: {rel}"),
                    *[msg(m) for m in v["messages"]],
                    html.Div(graphs, style={"display": "flex", "gap": "6px", "flexWrap": "wrap"}),
                ],
                style=BOX,
            )
        )
    return out


def register(app: Dash, catalog: Catalog) -> None:
    """Register the tab's callbacks."""
    callback(
        app,
        _attn_a_options,
        Output("attn-a", "options"),
        Input("store-a", "value"),
        Input("attn-a", "search_value"),
        Input("attn-a", "value"),
        bind=(catalog,),
    )
    callback(
        app,
        _attn_b_options,
        Output("attn-b", "options"),
        Output("attn-b", "value"),
        Output("head", "options"),
        Input("store-a", "value"),
        Input("attn-a", "value"),
        State("attn-b", "value"),
        bind=(catalog,),
    )
    callback(
        app,
        _attention,
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
        bind=(catalog,),
        message=0,
    )
