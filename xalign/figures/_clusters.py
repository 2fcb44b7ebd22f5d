"""Projected sentences: one WebGL trace per language, translations of a clicked sentence linked."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xalign.figures._style import (
    SYMBOL_CODES,
    _layout,
    label_symbols,
    language_color,
    language_label,
)
from xalign.figures._text import hover_escape, truncate

__all__ = ["as_typed_array", "cluster_traces_xy", "fig_clusters", "trace_order"]


def as_typed_array(values: Any) -> dict[str, str]:
    """A numeric array as plotly.js's typed-array spec (``{"dtype", "bdata"}``, base64).

    Sending coordinates this way is several times smaller and faster to encode and to
    parse than JSON lists; plotly.js decodes it natively.

    Examples
    --------
    >>> as_typed_array([1.0, 2.0])
    {'dtype': 'f4', 'bdata': 'AACAPwAAAEA='}
    """
    arr = np.ascontiguousarray(values, dtype="<f4")
    return {"dtype": "f4", "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}


def trace_order(points: pd.DataFrame, langs: Sequence[str] | None) -> list[tuple[str, np.ndarray]]:
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
    out: list[tuple[Any, Any]] = [(x[idx], y[idx]) for _, idx in trace_order(points, langs)]
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
    order = trace_order(points, langs)
    size = marker_size or (6.0 if len(points) < 2_000 else 4.0 if len(points) < 20_000 else 3.0)
    rows = points["row"].to_numpy().astype(np.int32)
    texts = np.asarray(hover_escape(truncate(points["text"].tolist(), max_text)), dtype=object)
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
            + hover_escape([language_label(lang)])[0]
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
