"""Figure builders shared by the dashboard and the report: plain functions → ``go.Figure``.

This module imports only plotly, pandas and numpy (and light xalign helpers), never Dash, so
``xalign.report`` can draw the very same figures. Every function takes plain data (arrays,
DataFrames of the results table) and returns a :class:`plotly.graph_objects.Figure` without
a title baked in unless asked for. Colours: :func:`language_color` is the one mapping from
language to colour, used for every figure of every view and of the report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "LANGUAGE_COLORS",
    "PALETTE",
    "SYMBOLS",
    "SYMBOL_CODES",
    "aggregate_by_language",
    "as_typed_array",
    "cluster_traces_xy",
    "describe_protocol",
    "fig_alignment",
    "fig_attention",
    "fig_clusters",
    "fig_difference",
    "fig_empty",
    "fig_language_heatmap",
    "fig_metric_by_layer",
    "fig_neighbours",
    "filter_protocol",
    "graph_config",
    "label_symbols",
    "language_color",
    "language_label",
    "parse_protocols",
    "protocol_options",
]

#: Okabe & Ito (2008) colour-blind-safe colours, then Paul Tol's "muted" set: the first
#: 8 are safe for every common colour-vision deficiency; beyond 8 languages colours are only
#: distinct for most readers, so the legend and hover text always name the language too.
PALETTE: tuple[str, ...] = (
    "#000000",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#F0E442",
    "#332288",
    "#882255",
    "#999933",
    "#44AA99",
    "#CC6677",
    "#AA4499",
    "#DDCC77",
    "#117733",
    "#88CCEE",
)

#: Fixed colours for common languages, so a language has the same colour in every store,
#: view and report whatever other languages are present (English, the usual pivot, black).
LANGUAGE_COLORS: dict[str, str] = dict(
    zip(
        [
            "eng",
            "deu",
            "fra",
            "spa",
            "rus",
            "cmn_Hans",
            "arb",
            "hin",
            "jpn",
            "kor",
            "ell",
            "swh",
            "tur",
            "por",
            "ita",
            "nld",
            "cmn_Hant",
        ],
        PALETTE,
        strict=True,
    )
)

#: Marker symbols for labels (all supported by WebGL scatter), with plotly's number of each.
SYMBOL_CODES: dict[str, int] = {
    "circle": 0,
    "square": 1,
    "diamond": 2,
    "cross": 3,
    "x": 4,
    "triangle-up": 5,
    "triangle-down": 6,
    "star": 17,
    "hexagon": 14,
    "pentagon": 13,
    "circle-open": 100,
    "square-open": 101,
}
SYMBOLS: tuple[str, ...] = tuple(SYMBOL_CODES)

_FONT = {"family": "Helvetica, Arial, sans-serif", "size": 12}
_MISSING_COLOR = "#BBBBBB"


def language_color(lang: str | None) -> str:
    """The colour of a language, the same everywhere (dashboard views and report figures).

    Common languages have fixed colours (:data:`LANGUAGE_COLORS`); a script variant falls
    back to its language (``cmn`` → ``cmn_Hans``); any other code gets a palette colour
    picked by a stable hash of the code. ``None`` (no language) is grey.

    Examples
    --------
    >>> language_color("eng"), language_color("deu")
    ('#000000', '#E69F00')
    >>> language_color("cmn") == language_color("cmn_Hans")
    True
    >>> language_color("zul") == language_color("zul")
    True
    """
    if lang is None or (isinstance(lang, float) and np.isnan(lang)):
        return _MISSING_COLOR
    lang = str(lang)
    if lang in LANGUAGE_COLORS:
        return LANGUAGE_COLORS[lang]
    base = lang.split("_")[0]
    for code, color in LANGUAGE_COLORS.items():
        if code.split("_")[0] == base:
            return color
    h = int(hashlib.sha1(lang.encode("utf-8")).hexdigest(), 16)
    return PALETTE[h % len(PALETTE)]


def language_label(lang: str | None) -> str:
    """``"deu (German)"``: code and English name (just the code when unknown)."""
    if lang is None or (isinstance(lang, float) and np.isnan(lang)):
        return "all languages"
    try:
        from xalign.data import language_name

        return f"{lang} ({language_name(str(lang))})"
    except Exception:
        return str(lang)


def label_symbols(labels: Iterable[Any]) -> dict[Any, str]:
    """Marker symbol per label (sorted labels, :data:`SYMBOLS` in order, cycling)."""
    uniq = sorted(
        {
            str(x)
            for x in pd.unique(
                pd.Series(list(labels) if not isinstance(labels, pd.Series) else labels).dropna()
            )
        }
    )
    return {lab: SYMBOLS[i % len(SYMBOLS)] for i, lab in enumerate(uniq)}


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and np.isnan(x)


def graph_config(filename: str = "xalign-figure", *, fmt: str = "png") -> dict[str, Any]:
    """plotly config: the modebar's camera button downloads the figure as PNG or SVG."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"fmt={fmt!r}: allowed values are png, svg")
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": fmt, "filename": filename, "scale": 2},
        "modeBarButtonsToRemove": ["sendDataToCloud"],
    }


def _layout(fig: go.Figure, *, title: str | None = None, height: int | None = None) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        font=_FONT,
        title={"text": title} if title else None,
        margin={"l": 50, "r": 20, "t": 40 if title else 20, "b": 40},
        height=height,
        legend={"itemsizing": "constant"},
    )
    return fig


def fig_empty(message: str, *, height: int | None = 300) -> go.Figure:
    """A blank figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"size": 14, "color": "#555"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height=height)


# ---------------------------------------------------------------- clusters


def _truncate(texts: Sequence[Any], n: int) -> list[str]:
    return [t if len(t) <= n else t[: n - 1] + "…" for t in map(str, texts)]


def _hover_escape(texts: Sequence[str]) -> list[str]:
    # Hover labels render a subset of HTML: a sentence containing "<b>" must stay text.
    return [t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for t in texts]


def as_typed_array(values: Any) -> dict[str, str]:
    """A numeric array as plotly.js's typed-array spec (``{"dtype", "bdata"}``, base64).

    Sending coordinates this way is several times smaller and faster to encode and to
    parse than JSON lists; plotly.js decodes it natively.

    Examples
    --------
    >>> as_typed_array([1.0, 2.0])
    {'dtype': 'f4', 'bdata': 'AACAPwAAAEA='}
    """
    import base64

    arr = np.ascontiguousarray(values, dtype="<f4")
    return {"dtype": "f4", "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}


def _trace_order(points: pd.DataFrame, langs: Sequence[str] | None) -> list[tuple[str, np.ndarray]]:
    """``(language, positions)`` per language trace: first-appearance order, ``langs`` kept."""
    codes, uniques = pd.factorize(points["lang"])
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    keep = None if langs is None else set(map(str, langs))
    out = []
    for k, lang in enumerate(map(str, uniques)):
        if keep is None or lang in keep:
            out.append((lang, order[bounds[k] : bounds[k + 1]]))
    return out


def _label_legend(points: pd.DataFrame) -> dict[Any, str]:
    """Labels that get a symbol legend entry (only when there are at least two labels)."""
    if "label" not in points.columns or not points["label"].notna().any():
        return {}
    symbols = label_symbols(points["label"])
    return symbols if len(symbols) > 1 else {}


def _highlighted(
    points: pd.DataFrame, langs: Sequence[str] | None, highlight: Any, anchor: int | None
) -> tuple[list[int], list[int]]:
    """(rows, positions in ``points``) of the highlighted rows that are shown."""
    rows = points["row"].to_numpy()
    pos_of = {int(r): i for i, r in enumerate(rows)} if highlight or anchor is not None else {}
    keep = None if langs is None else set(map(str, langs))
    out_rows, out_pos = [], []
    for r in highlight or []:
        i = pos_of.get(int(r))
        if i is None:
            continue
        if keep is not None and str(points["lang"].iloc[i]) not in keep and int(r) != anchor:
            continue
        out_rows.append(int(r))
        out_pos.append(i)
    return out_rows, out_pos


def cluster_traces_xy(
    points: pd.DataFrame,
    *,
    langs: Sequence[str] | None = None,
    highlight: Sequence[int] | None = None,
    anchor: int | None = None,
) -> list[tuple[Any, Any]]:
    """The ``(x, y)`` of every trace of :func:`fig_clusters`, in its trace order.

    Language traces get float32 arrays, the others lists. The dashboard uses this to move
    points when only the layer changes (a partial update instead of a new figure), and
    :func:`fig_clusters` uses it too, so both always agree.
    """
    x = points["x"].to_numpy(dtype=np.float32)
    y = points["y"].to_numpy(dtype=np.float32)
    out: list[tuple[Any, Any]] = [(x[idx], y[idx]) for _, idx in _trace_order(points, langs)]
    out += [([None], [None]) for _ in _label_legend(points)]
    _, hl_pos = _highlighted(points, langs, highlight, anchor)
    hx = [float(x[i]) for i in hl_pos]
    hy = [float(y[i]) for i in hl_pos]
    lx: list[Any] = []
    ly: list[Any] = []
    apos = _highlighted(points, None, [anchor], None)[1] if anchor is not None else []
    if apos:
        ax, ay = float(x[apos[0]]), float(y[apos[0]])
        for px, py in zip(hx, hy, strict=True):
            if (px, py) != (ax, ay):
                lx += [ax, px, None]
                ly += [ay, py, None]
        return [*out, (lx, ly), (hx, hy), ([ax], [ay])]
    return [*out, (lx, ly), (hx, hy), ([], [])]


def fig_clusters(
    points: pd.DataFrame,
    *,
    langs: Sequence[str] | None = None,
    highlight: Sequence[int] | None = None,
    anchor: int | None = None,
    selected: Sequence[int] | None = None,
    ranges: Sequence[float] | None = None,
    title: str | None = None,
    height: int | None = None,
    marker_size: float | None = None,
    max_text: int = 120,
    webgl: bool = True,
    uirevision: Any = "clusters",
) -> go.Figure:
    """Projected sentences, one WebGL trace per language, symbols by label.

    Trace order (stable, so a dashboard can patch coordinates): one ``Scattergl`` per
    language (in order of first appearance, filtered by ``langs``), one empty legend entry
    per label symbol (when there are two labels or more), then ``links`` (lines from the
    anchor sentence to each of its translations), ``translations`` (the highlighted rows,
    large, outlined, labelled by language) and ``anchor`` (a star).

    Parameters
    ----------
    points : DataFrame
        Columns ``row, x, y, lang, text`` and optionally ``label``; one row per sentence.
    langs : sequence of str, optional
        Languages to show (default all).
    highlight : sequence of int, optional
        Store rows to highlight (e.g. all translations of the clicked sentence).
    anchor : int, optional
        The clicked row: lines go from it to every highlighted row.
    selected : sequence of int, optional
        Rows selected by box/lasso (others are dimmed): plotly ``selectedpoints``.
    ranges : [xmin, xmax, ymin, ymax], optional
        Fixed axis ranges (so the axes do not move between layers).
    marker_size : float, optional
        Default: 6, 4 or 3 px for up to 2,000, 20,000 or more points.
    webgl : bool
        ``Scattergl`` (default; needed for tens of thousands of points) or SVG ``Scatter``.
    uirevision : any
        plotly ``uirevision``: zoom and legend clicks persist while it stays the same.

    Returns
    -------
    plotly.graph_objects.Figure
        Coordinates are float32 arrays (sent to the browser as base64 typed arrays).
    """
    xy = cluster_traces_xy(points, langs=langs, highlight=highlight, anchor=anchor)
    order = _trace_order(points, langs)
    size = marker_size or (6.0 if len(points) < 2_000 else 4.0 if len(points) < 20_000 else 3.0)
    rows = points["row"].to_numpy().astype(np.int32)
    texts = np.asarray(_hover_escape(_truncate(points["text"].tolist(), max_text)), dtype=object)
    legend_labels = _label_legend(points)
    has_label = "label" in points.columns and points["label"].notna().any()
    if has_label:
        lab = points["label"].astype(object).where(points["label"].notna(), "").astype(str)
        texts = texts + np.asarray(" · label " + lab, dtype=object)
        codes = np.array([SYMBOL_CODES[v] for v in label_symbols(points["label"]).values()])
        sym_of = dict(zip(label_symbols(points["label"]), codes, strict=True))
        lab_codes, lab_uniques = pd.factorize(lab)
        per_unique = np.array([sym_of.get(u, 0) for u in lab_uniques] or [0], dtype=np.int16)
        symbols = per_unique[np.maximum(lab_codes, 0)]
    sel = None if selected is None else np.isin(rows, np.asarray(list(selected), dtype=np.int64))
    data: list[dict[str, Any]] = []
    for (lang, idx), (x, y) in zip(order, xy[: len(order)], strict=True):
        marker: dict[str, Any] = {
            "color": language_color(lang),
            "size": size,
            "opacity": 0.75,
        }
        if has_label:
            marker["symbol"] = symbols[idx]
        trace = {
            "type": "scattergl" if webgl else "scatter",
            "x": x,
            "y": y,
            "mode": "markers",
            "name": lang,
            "legendgroup": lang,
            "marker": marker,
            "text": texts[idx].tolist(),
            # a list, not a typed array: plotly.js drops typed customdata from click events
            "customdata": rows[idx].tolist(),
            "hovertemplate": "%{text}<br>"
            + _hover_escape([language_label(lang)])[0]
            + " · row %{customdata}<extra></extra>",
        }
        if sel is not None:
            trace["selectedpoints"] = np.flatnonzero(sel[idx]).tolist()
        data.append(trace)
    small = go.Figure()
    Trace = go.Scattergl if webgl else go.Scatter
    for lab_name, sym in legend_labels.items():
        small.add_trace(
            Trace(
                x=[None],
                y=[None],
                mode="markers",
                name=str(lab_name),
                legendgroup="labels",
                legendgrouptitle={"text": "label"},
                hoverinfo="skip",
                marker={"symbol": sym, "color": "#777777", "size": 8},
            )
        )
    hl_rows, hl_pos = _highlighted(points, langs, highlight, anchor)
    hl_lang = [str(points["lang"].iloc[i]) for i in hl_pos]
    (lx, ly), (hx, hy), (ax, ay) = xy[-3], xy[-2], xy[-1]
    small.add_trace(
        go.Scatter(
            x=lx,
            y=ly,
            mode="lines",
            name="links",
            showlegend=False,
            hoverinfo="skip",
            line={"color": "#333333", "width": 1.5},
        )
    )
    small.add_trace(
        go.Scatter(
            x=hx,
            y=hy,
            mode="markers+text",
            name="translations",
            showlegend=False,
            text=hl_lang,
            textposition="top center",
            customdata=hl_rows,
            hovertext=[str(texts[i]) for i in hl_pos],
            hovertemplate="%{hovertext}<br>%{text} · row %{customdata}<extra>translation</extra>",
            marker={
                "color": [language_color(g) for g in hl_lang],
                "size": 12,
                "line": {"color": "#222222", "width": 2},
            },
        )
    )
    small.add_trace(
        go.Scatter(
            x=ax,
            y=ay,
            mode="markers",
            name="anchor",
            showlegend=False,
            customdata=[int(anchor)] if ax and anchor is not None else [],
            hovertemplate="clicked sentence · row %{customdata}<extra></extra>",
            marker={
                "symbol": "star",
                "size": 18,
                "color": "#FFFFFF",
                "line": {"color": "#000000", "width": 2},
            },
        )
    )
    _layout(small, title=title, height=height)
    small.update_layout(
        dragmode="lasso",
        clickmode="event",
        hovermode="closest",
        legend={"title": {"text": "language"}, "itemsizing": "constant"},
        uirevision=uirevision,
    )
    if ranges is not None:
        x0, x1, y0, y1 = (float(v) for v in ranges)
        px, py = 0.05 * (x1 - x0 or 1.0), 0.05 * (y1 - y0 or 1.0)
        small.update_xaxes(range=[x0 - px, x1 + px])
        small.update_yaxes(range=[y0 - py, y1 + py])
    small.update_xaxes(showticklabels=False, zeroline=False, title=None)
    small.update_yaxes(showticklabels=False, zeroline=False, title=None)
    # The big traces skip plotly.py's per-element validation (seconds for 50,000 points);
    # they are built above from checked arrays only.
    return go.Figure(
        data=data + [t.to_plotly_json() for t in small.data],
        layout=small.layout,
        _validate=False,
    )


# ---------------------------------------------------------------- results table helpers


def parse_protocols(results: pd.DataFrame) -> pd.DataFrame:
    """The results table with one ``p:<key>`` column per protocol key (values as JSON text).

    Filtering on protocol choices is then plain pandas; JSON text keeps ``null``, ``false``
    and numbers distinct and hashable.
    """
    df = results.copy()
    cache: dict[str, dict[str, str]] = {}
    parsed = []
    for p in df["protocol"].fillna("{}").astype(str):
        if p not in cache:
            try:
                d = json.loads(p) if p else {}
            except ValueError:
                d = {}
            cache[p] = {k: json.dumps(v, sort_keys=True) for k, v in d.items()}
        parsed.append(cache[p])
    keys = sorted({k for d in cache.values() for k in d})
    for k in keys:
        df[f"p:{k}"] = [d.get(k, "null") for d in parsed]
    return df


#: Protocol keys offered first (the choices that matter most); others follow alphabetically.
PROTOCOL_KEY_ORDER = ("scoring", "centered", "direction", "margin", "k", "pooling")


def _varying_keys(d: pd.DataFrame) -> list[str]:
    keys = [c[2:] for c in d.columns if c.startswith("p:") and d[c].dropna().nunique() > 1]
    rank = {k: i for i, k in enumerate(PROTOCOL_KEY_ORDER)}
    return sorted(keys, key=lambda k: (rank.get(k, len(rank)), k))


def protocol_options(results: pd.DataFrame, metric: str) -> dict[str, list[str]]:
    """For one metric, the protocol keys that take more than one value, with their values
    (JSON text), most important keys first."""
    d = results[results["metric"] == metric]
    return {k: sorted(d[f"p:{k}"].dropna().unique().tolist()) for k in _varying_keys(d)}


def filter_protocol(
    results: pd.DataFrame, metric: str, choices: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Rows of ``metric`` under one protocol.

    Keys are fixed one after the other (:data:`PROTOCOL_KEY_ORDER` first): to the value in
    ``choices`` (JSON text, as in :func:`protocol_options`) when the rows left still have it,
    else to the first value they have. So an impossible combination (``scoring="cosine"``
    with ``k=4``, which only margin rows have) falls back to a combination that exists
    instead of an empty table. ``.attrs["protocol"]`` holds the choices applied.
    """
    d = results[results["metric"] == metric]
    applied: dict[str, str] = {}
    for key in _varying_keys(d):
        col = f"p:{key}"
        vals = sorted(d[col].dropna().unique().tolist())
        if len(vals) <= 1:
            if vals:
                applied[key] = vals[0]
            continue
        want = (choices or {}).get(key)
        pick = str(want) if want in vals else str(vals[0])
        d = d[d[col] == pick]
        applied[key] = pick
    d = d.copy()
    d.attrs["protocol"] = applied
    return d


def describe_protocol(applied: Mapping[str, str]) -> str:
    """``scoring=cosine, centered=false``: a protocol choice (JSON text values) as one line."""
    out = []
    for k, v in applied.items():
        text = str(v)
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = json.loads(text)
        out.append(f"{k}={text}")
    return ", ".join(out)


def aggregate_by_language(d: pd.DataFrame) -> pd.DataFrame:
    """One value per (checkpoint, layer, language) from rows of one metric and protocol.

    Per-language rows are used as they are; for pairwise rows (``lang2`` set) a language's
    value is the mean over every pair it takes part in (as query or as target). Columns:
    ``checkpoint, layer, lang, value, ci_low, ci_high``.
    """
    cols = ["checkpoint", "layer", "lang", "value", "ci_low", "ci_high"]
    d = d[d["lang"].notna()]
    if d.empty:
        return pd.DataFrame(columns=cols)
    if d["lang2"].notna().any():
        a = d[["checkpoint", "layer", "lang", "value"]]
        b = d[d["lang2"].notna()][["checkpoint", "layer", "lang2", "value"]].rename(
            columns={"lang2": "lang"}
        )
        both = pd.concat([a, b], ignore_index=True)
        out = both.groupby(["checkpoint", "layer", "lang"], sort=False)["value"].mean()
        out = out.reset_index()
        out["ci_low"] = np.nan
        out["ci_high"] = np.nan
        return out[cols]
    out = d.groupby(["checkpoint", "layer", "lang"], sort=False)[["value", "ci_low", "ci_high"]]
    return out.mean().reset_index()[cols]


_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")


def fig_metric_by_layer(
    d: pd.DataFrame,
    *,
    metric: str,
    mode: Literal["languages", "mean"] = "languages",
    langs: Sequence[str] | None = None,
    title: str | None = None,
    height: int | None = None,
) -> go.Figure:
    """Metric value by layer: one line per language (one dash style per checkpoint), or the
    mean over languages with its 95 % interval.

    Parameters
    ----------
    d : DataFrame
        Rows of the results table for one metric and one protocol
        (:func:`filter_protocol`), any number of checkpoints.
    mode : {"languages", "mean"}
        ``"mean"`` draws the table's own overall row (``lang`` empty) with its bootstrap CI
        when there is one, else the mean over languages (or pairs) with a normal 95 %
        interval of that mean across them (±1.96·sd/√n).
    """
    if mode not in ("languages", "mean"):
        raise ValueError(f"mode={mode!r}: allowed values are languages, mean")
    fig = go.Figure()
    checkpoints = list(dict.fromkeys(d["checkpoint"]))
    for ci, ckpt in enumerate(checkpoints):
        dc = d[d["checkpoint"] == ckpt]
        dash = _DASHES[ci % len(_DASHES)]
        if mode == "languages":
            agg = aggregate_by_language(dc)
            order = list(dict.fromkeys(agg["lang"]))
            if langs is not None:
                order = [x for x in order if x in set(langs)]
            for lang in order:
                g = agg[agg["lang"] == lang].sort_values("layer")
                fig.add_trace(
                    go.Scatter(
                        x=g["layer"].tolist(),
                        y=g["value"].tolist(),
                        mode="lines+markers",
                        name=f"{lang} · {ckpt}" if len(checkpoints) > 1 else lang,
                        legendgroup=lang,
                        line={"color": language_color(lang), "dash": dash},
                        marker={"size": 5},
                        hovertemplate=f"{language_label(lang)} · {ckpt}<br>layer %{{x}}: "
                        "%{y:.4f}<extra></extra>",
                    )
                )
            continue
        overall = dc[dc["lang"].isna() & dc["lang2"].isna()]
        if not overall.empty:
            g = overall.groupby("layer")[["value", "ci_low", "ci_high"]].mean().reset_index()
            band = "bootstrap 95% CI"
        else:
            rows = dc[dc["lang"].notna()]
            if langs is not None:
                rows = rows[rows["lang"].isin(langs) | rows["lang2"].isin(langs)]
            s = rows.groupby("layer")["value"]
            g = s.mean().reset_index()
            half = (1.96 * s.std(ddof=1) / np.sqrt(s.count())).fillna(0.0).to_numpy()
            g["ci_low"], g["ci_high"] = g["value"] - half, g["value"] + half
            band = "mean ± 1.96·sd/√n over languages"
        color = PALETTE[(ci + 4) % len(PALETTE)]
        if g[["ci_low", "ci_high"]].notna().all().all():
            fig.add_trace(
                go.Scatter(
                    x=g["layer"].tolist() + g["layer"].tolist()[::-1],
                    y=g["ci_high"].tolist() + g["ci_low"].tolist()[::-1],
                    fill="toself",
                    mode="lines",
                    line={"width": 0},
                    fillcolor=color,
                    opacity=0.2,
                    name=f"{ckpt} {band}",
                    hoverinfo="skip",
                    legendgroup=ckpt,
                )
            )
        fig.add_trace(
            go.Scatter(
                x=g["layer"].tolist(),
                y=g["value"].tolist(),
                mode="lines+markers",
                name=str(ckpt),
                legendgroup=ckpt,
                line={"color": color, "dash": dash},
                hovertemplate=f"{ckpt}<br>layer %{{x}}: %{{y:.4f}}<extra></extra>",
            )
        )
    _layout(fig, title=title, height=height)
    fig.update_xaxes(title="layer (0 = embeddings)", dtick=1)
    fig.update_yaxes(title=metric)
    return fig


def fig_language_heatmap(
    d: pd.DataFrame,
    *,
    metric: str,
    layer: int,
    title: str | None = None,
    height: int | None = None,
    zmin: float | None = None,
    zmax: float | None = None,
) -> go.Figure:
    """Language × language values of a pairwise metric at one layer (one checkpoint).

    Rows are ``lang`` (for retrieval: the query language), columns ``lang2`` (the target).
    A metric stored for one order of each pair only (CKA, centroid distances: symmetric) is
    mirrored; directional metrics keep both directions as stored. Missing pairs are blank.
    """
    d = d[(d["layer"] == layer) & d["lang"].notna() & d["lang2"].notna()]
    if d.empty:
        return fig_empty(f"no language-pair values of {metric} at layer {layer}")
    counts = pd.concat([d["lang"], d["lang2"]]).value_counts(sort=False)
    first = list(dict.fromkeys([*d["lang"], *d["lang2"]]))
    # the pivot (the language in most pairs, e.g. eng for Tatoeba) first, then table order
    langs = sorted(
        first,
        key=lambda x: (
            -int(counts[x] == counts.max() and counts.max() > counts.min()),
            first.index(x),
        ),
    )
    pos = {x: i for i, x in enumerate(langs)}
    M = np.full((len(langs), len(langs)), np.nan)
    vals = d.groupby(["lang", "lang2"], sort=False)["value"].mean()
    for (a, b), v in vals.items():
        M[pos[a], pos[b]] = v
    pairs = set(vals.index)
    if not any((b, a) in pairs for a, b in pairs if a != b):
        for a, b in pairs:
            M[pos[b], pos[a]] = M[pos[a], pos[b]]
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in M]
    fig = go.Figure(
        go.Heatmap(
            z=M.tolist(),
            x=langs,
            y=langs,
            text=text,
            texttemplate="%{text}",
            colorscale="Viridis",
            zmin=zmin,
            zmax=zmax,
            colorbar={"title": {"text": metric}},
            hovertemplate="%{y} → %{x}: %{z:.4f}<extra></extra>",
            hoverongaps=False,
        )
    )
    _layout(fig, title=title, height=height)
    fig.update_xaxes(title="lang2 (target)", type="category", side="bottom")
    fig.update_yaxes(title="lang (query)", type="category", autorange="reversed")
    return fig


def fig_difference(
    d: pd.DataFrame,
    *,
    metric: str,
    before: str,
    after: str,
    langs: Sequence[str] | None = None,
    title: str | None = None,
    height: int | None = None,
) -> go.Figure:
    """After − before, per language (rows, plus their mean on top) and layer (columns).

    Values per language are :func:`aggregate_by_language` of each checkpoint; the colour
    scale is diverging and centred on 0 (blue = the metric went up).
    """
    agg = aggregate_by_language(d[d["checkpoint"].isin([before, after])])
    if langs is not None:
        agg = agg[agg["lang"].isin(langs)]
    a = agg[agg["checkpoint"] == before].set_index(["lang", "layer"])["value"]
    b = agg[agg["checkpoint"] == after].set_index(["lang", "layer"])["value"]
    diff = (b - a).dropna()
    if diff.empty:
        return fig_empty(f"no {metric} values for both {before!r} and {after!r}")
    table = diff.unstack("layer").sort_index(axis=1)
    order = [x for x in dict.fromkeys(agg["lang"]) if x in table.index]
    table = table.loc[order]
    mean = table.mean(axis=0)
    Z = np.vstack([mean.to_numpy(), table.to_numpy()])
    ylab = ["mean", *order]
    lim = float(np.nanmax(np.abs(Z))) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=Z.tolist(),
            x=[int(c) for c in table.columns],
            y=ylab,
            text=[[f"{v:+.3f}" for v in row] for row in Z],
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=0.0,
            zmin=-lim,
            zmax=lim,
            colorbar={"title": {"text": f"Δ {metric}"}},
            hovertemplate="%{y}, layer %{x}: %{z:+.4f} (" + f"{after} − {before})<extra></extra>",
        )
    )
    _layout(fig, title=title, height=height)
    fig.update_xaxes(title="layer", dtick=1)
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


# ---------------------------------------------------------------- retrieval


def fig_neighbours(
    hits: pd.DataFrame, *, title: str | None = None, height: int | None = None, max_text: int = 60
) -> go.Figure:
    """Top-k neighbours of one query sentence per language, as horizontal bars of scores.

    ``hits`` has columns ``lang, rank, row, text, score, gold`` (bool: the row is a gold
    translation of the query). Bars are coloured by language; gold neighbours are marked
    ``✓`` and, when the top-1 of a language is not gold, its bar is hatched (a miss).
    """
    if hits.empty:
        return fig_empty("no neighbours")
    h = hits.sort_values(["lang", "rank"], kind="stable")
    ylab = [f"{lang} #{int(r)}" for lang, r in zip(h["lang"], h["rank"], strict=True)]
    miss = (h["rank"] == 1) & ~h["gold"].astype(bool)
    text = [
        ("✓ " if g else "") + t
        for g, t in zip(
            h["gold"].astype(bool), _truncate(h["text"].tolist(), max_text), strict=True
        )
    ]
    fig = go.Figure(
        go.Bar(
            x=h["score"].tolist(),
            y=ylab,
            orientation="h",
            text=text,
            textposition="auto",
            marker={
                "color": [language_color(x) for x in h["lang"]],
                "pattern": {"shape": ["/" if m else "" for m in miss]},
                "line": {"color": "#222222", "width": [2 if g else 0 for g in h["gold"]]},
            },
            customdata=h["row"].tolist(),
            hovertemplate="%{y}: %{x:.4f} · row %{customdata}<extra></extra>",
        )
    )
    _layout(fig, title=title, height=height or max(250, 22 * len(h) + 60))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title="score")
    return fig


# ---------------------------------------------------------------- attention and alignment


def _ticks(labels: Sequence[str], *, angle: int | None = None) -> dict[str, Any]:
    # Numeric axes with tick text: repeated tokens ("the" twice) stay separate cells.
    out: dict[str, Any] = {
        "tickmode": "array",
        "tickvals": list(range(len(labels))),
        "ticktext": list(labels),
    }
    if angle is not None:
        out["tickangle"] = angle
    return out


def fig_attention(
    matrix: Any,
    row_labels: Sequence[str],
    col_labels: Sequence[str] | None = None,
    *,
    title: str | None = None,
    height: int | None = None,
    zmax: float | None = None,
    colorbar_title: str = "attention",
) -> go.Figure:
    """An attention map ``[queries, keys]`` as a heatmap with token labels on both axes."""
    M = np.asarray(matrix, dtype=np.float64)
    cols = list(col_labels) if col_labels is not None else list(row_labels)
    if M.shape != (len(row_labels), len(cols)):
        raise ValueError(f"matrix {M.shape} does not match {len(row_labels)}×{len(cols)} labels")
    hover = [
        [f"{row_labels[i]} → {cols[j]}" for j in range(len(cols))] for i in range(len(row_labels))
    ]
    fig = go.Figure(
        go.Heatmap(
            z=M.tolist(),
            colorscale="Blues",
            zmin=0.0,
            zmax=zmax,
            text=hover,
            hovertemplate="%{text}: %{z:.3f}<extra></extra>",
            colorbar={"title": {"text": colorbar_title}},
        )
    )
    _layout(fig, title=title, height=height)
    fig.update_xaxes(title="key", **_ticks(cols, angle=-60))
    fig.update_yaxes(title="query", autorange="reversed", **_ticks(list(row_labels)))
    return fig


def fig_alignment(
    similarity: Any,
    src_labels: Sequence[str],
    tgt_labels: Sequence[str],
    *,
    predicted: Iterable[tuple[int, int]] = (),
    gold_sure: Iterable[tuple[int, int]] = (),
    gold_possible: Iterable[tuple[int, int]] = (),
    title: str | None = None,
    height: int | None = None,
) -> go.Figure:
    """Word (or token) similarity matrix with the predicted alignment drawn over it.

    Predicted links are open circles, gold sure links crosses, gold possible links open
    squares; cell ``(i, j)`` is source word ``i`` (row) × target word ``j`` (column).
    """
    S = np.asarray(similarity, dtype=np.float64)
    if S.shape != (len(src_labels), len(tgt_labels)):
        raise ValueError(
            f"similarity {S.shape} does not match {len(src_labels)}×{len(tgt_labels)} labels"
        )
    hover = [
        [f"{src_labels[i]} ↔ {tgt_labels[j]}" for j in range(len(tgt_labels))]
        for i in range(len(src_labels))
    ]
    fig = go.Figure(
        go.Heatmap(
            z=S.tolist(),
            colorscale="RdBu",
            zmid=0.0,
            text=hover,
            hovertemplate="%{text}: %{z:.3f}<extra></extra>",
            colorbar={"title": {"text": "cosine"}},
        )
    )
    for name, links, marker in (
        (
            "predicted",
            predicted,
            {"symbol": "circle-open", "size": 14, "color": "#000000", "line": {"width": 2.5}},
        ),
        (
            "gold (sure)",
            gold_sure,
            {"symbol": "x-thin-open", "size": 12, "color": "#D55E00", "line": {"width": 2.5}},
        ),
        (
            "gold (possible)",
            gold_possible,
            {"symbol": "square-open", "size": 16, "color": "#E69F00", "line": {"width": 1.5}},
        ),
    ):
        pts = sorted({(int(i), int(j)) for i, j in links})
        fig.add_trace(
            go.Scatter(
                x=[j for _, j in pts],
                y=[i for i, _ in pts],
                mode="markers",
                name=name,
                marker=marker,
                hovertemplate=name + ": %{y} ↔ %{x}<extra></extra>",
            )
        )
    _layout(fig, title=title, height=height)
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title="target", **_ticks(list(tgt_labels), angle=-60))
    fig.update_yaxes(title="source", autorange="reversed", **_ticks(list(src_labels)))
    return fig
