"""Colours, symbols and the shared layout of every xalign figure (dashboard and report).

:func:`language_color` is the one mapping from language to colour, used for every figure of
every dashboard view and of the report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "LANGUAGE_COLORS",
    "PALETTE",
    "SYMBOLS",
    "SYMBOL_CODES",
    "fig_empty",
    "graph_config",
    "label_symbols",
    "language_color",
    "language_label",
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
