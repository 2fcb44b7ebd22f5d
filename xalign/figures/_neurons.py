"""Figures of per-language values by layer: where language-specific neurons sit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xalign.errors import ConfigError
from xalign.figures._metrics import _with_direction
from xalign.figures._style import _layout, fig_empty
from xalign.results import Direction

__all__ = ["fig_layer_language"]


def fig_layer_language(
    d: pd.DataFrame,
    *,
    metric: str,
    langs: Sequence[str] | None = None,
    title: str | None = None,
    height: int | None = None,
    direction: Direction = None,
    colorscale: str = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
) -> go.Figure:
    """Language (rows) × layer (columns) values of a per-language metric, one checkpoint.

    ``d`` holds rows of the results table for one checkpoint and one protocol, with ``lang``
    set and ``lang2`` empty (for example ``neuron_specific_count``: how many of a layer's
    feed-forward neurons are specific to each language). Languages keep the table's order
    (or ``langs``'); a missing (language, layer) cell is blank, never 0. Whole-number
    metrics are written as integers in the cells. ``direction`` (which value is better
    aligned), when given, is said under the colour bar's title; ``zmin``/``zmax`` fix the
    colour range (for example 0–1 for a Jaccard index).
    """
    d = d[d["lang"].notna() & d["lang2"].isna()] if "lang2" in d else d[d["lang"].notna()]
    if langs is not None:
        d = d[d["lang"].isin(langs)]
    if d.empty:
        return fig_empty(f"no per-language values of {metric}")
    if d["checkpoint"].nunique() > 1:
        raise ConfigError(
            f"fig_layer_language: rows of {d['checkpoint'].nunique()} checkpoints; "
            "select one checkpoint first"
        )
    order = [x for x in (langs or dict.fromkeys(d["lang"])) if x in set(d["lang"])]
    table = d.groupby(["lang", "layer"], sort=False)["value"].mean().unstack("layer")
    table = table.loc[order].sort_index(axis=1)
    Z = table.to_numpy(dtype=float)
    whole = bool(np.all(np.isnan(Z) | (np.round(Z) == Z)))
    text = [["" if np.isnan(v) else (f"{v:.0f}" if whole else f"{v:.3g}") for v in r] for r in Z]
    fig = go.Figure(
        go.Heatmap(
            z=[[None if np.isnan(v) else float(v) for v in r] for r in Z],
            x=[int(c) for c in table.columns],
            y=order,
            text=text,
            texttemplate="%{text}",
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            colorbar={"title": {"text": _with_direction(metric, direction)}},
            hovertemplate="%{y}, layer %{x}: %{z}<extra></extra>",
            hoverongaps=False,
        )
    )
    _layout(fig, title=title, height=height)
    fig.update_xaxes(title="layer (block)", dtick=1)
    fig.update_yaxes(type="category", autorange="reversed")
    return fig
