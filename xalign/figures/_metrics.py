"""The results table drawn: a metric by layer, between languages, and its change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xalign.figures._style import PALETTE, _layout, fig_empty, language_color, language_label
from xalign.results import Direction, aggregate_by_language

__all__ = ["fig_difference", "fig_language_heatmap", "fig_metric_by_layer"]

_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")


def _with_direction(label: str, direction: Direction) -> str:
    """``"cka<br>(higher = better aligned)"``: a metric's axis title with its direction."""
    return f"{label}<br>({direction} = better aligned)" if direction else label


def fig_metric_by_layer(
    d: pd.DataFrame,
    *,
    metric: str,
    mode: Literal["languages", "mean"] = "languages",
    langs: Sequence[str] | None = None,
    title: str | None = None,
    height: int | None = None,
    direction: Direction = None,
) -> go.Figure:
    """Metric value by layer: one line per language (one dash style per checkpoint), or the
    mean over languages with its 95 % interval.

    Parameters
    ----------
    d : DataFrame
        Rows of the results table for one metric and one protocol
        (:func:`xalign.results.filter_protocol`), any number of checkpoints.
    mode : {"languages", "mean"}
        ``"mean"`` draws the table's own overall row (``lang`` empty) with its bootstrap CI
        when there is one, else the mean over languages (or pairs) with a normal 95 %
        interval of that mean across them (±1.96·sd/√n).
    direction : {"higher", "lower", None}
        Which value is better aligned (:func:`xalign.results.metric_direction`): said under
        the axis title (``higher = better aligned``) when given.
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
    fig.update_yaxes(title=_with_direction(metric, direction))
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
    direction: Direction = None,
) -> go.Figure:
    """Language × language values of a pairwise metric at one layer (one checkpoint).

    Rows are ``lang`` (for retrieval: the query language), columns ``lang2`` (the target).
    A metric stored for one order of each pair only (CKA, centroid distances: symmetric) is
    mirrored; directional metrics keep both directions as stored. Missing pairs are blank.
    ``direction`` (which value is better aligned), when given, is said under the colour bar's
    title.
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
            colorbar={"title": {"text": _with_direction(metric, direction)}},
            hovertemplate="%{y} → %{x}: %{z:.4f}<extra></extra>",
            hoverongaps=False,
        )
    )
    _layout(fig, title=title, height=height)
    fig.update_xaxes(title="lang2 (target)", type="category", side="bottom")
    fig.update_yaxes(title="lang (query)", type="category", autorange="reversed")
    return fig


def _signed(v: float, whole: bool) -> str:
    """``+3`` for a whole difference of counts, else ``+0.125``."""
    return f"{v:+.0f}" if whole and v == round(v) else f"{v:+.3f}"


def fig_difference(
    d: pd.DataFrame,
    *,
    metric: str,
    before: str,
    after: str,
    langs: Sequence[str] | None = None,
    title: str | None = None,
    height: int | None = None,
    direction: Direction = None,
) -> go.Figure:
    """After − before, per language (rows, plus their mean on top) and layer (columns).

    Values per language are :func:`aggregate_by_language` of each checkpoint; the colour
    scale is diverging and centred on 0 (blue = the metric went up). ``direction`` (which value
    is better aligned), when given, is said under the colour bar's title.
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
    # counts (language-specific neurons) stay whole, +3 not +3.000 (a fractional mean keeps
    # its decimals)
    whole = bool(np.all(np.isnan(Z[1:]) | (np.round(Z[1:]) == Z[1:])))
    fig = go.Figure(
        go.Heatmap(
            z=Z.tolist(),
            x=[int(c) for c in table.columns],
            y=ylab,
            text=[[_signed(v, whole) for v in row] for row in Z],
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=0.0,
            zmin=-lim,
            zmax=lim,
            colorbar={"title": {"text": _with_direction(f"Δ {metric}", direction)}},
            hovertemplate="%{y}, layer %{x}: %{z:+.4f} (" + f"{after} − {before})<extra></extra>",
        )
    )
    _layout(fig, title=title, height=height)
    fig.update_xaxes(title="layer", dtick=1)
    fig.update_yaxes(type="category", autorange="reversed")
    return fig
