"""Sentences and tokens: retrieval neighbours, attention maps, word alignments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xalign.figures._style import _layout, fig_empty, language_color
from xalign.figures._text import truncate

__all__ = ["fig_alignment", "fig_attention", "fig_neighbours"]


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
        for g, t in zip(h["gold"].astype(bool), truncate(h["text"].tolist(), max_text), strict=True)
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
