"""The figures of a report, built from its plan and stores: metric curves, per-language curves,
language heatmaps, before/after differences, cluster projections, an attention example,
language-specific neurons."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign.report._text import (
    aggregation_phrase,
    band_text,
    n_text,
    rows_text,
    short_name,
    slug,
    unique_name,
)
from xalign.results import metric_info, protocol_text

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from xalign.report._plan import Plan
    from xalign.store import Store

__all__ = ["FigureSpec", "figure_specs"]


@dataclass
class FigureSpec:
    """One report figure: the plotly figure (print size), its caption and its files."""

    name: str
    figure: go.Figure
    caption: str
    width: int
    height: int
    files: list[Path] = field(default_factory=list)
    screen: dict[str, Any] | None = field(default=None, repr=False)


def _curve(F: Any, plan: Plan, m: str) -> go.Figure:
    """The metric-by-layer figure drawn from the report's own per-layer values (the table's
    numbers, intervals clipped to the metric's range), with each band named."""
    mm = plan.means[m]
    rows = pd.DataFrame({"checkpoint": mm["checkpoint"], "layer": mm["layer"], "lang": None,
                         "lang2": None, "value": mm["value"], "ci_low": mm["ci_low"],
                         "ci_high": mm["ci_high"]})  # fmt: skip
    fig = F.fig_metric_by_layer(rows, metric=metric_info(m).label, mode="mean")
    for t in fig.data:
        if t.fill == "toself":
            ckpt = t.legendgroup
            kinds = set(mm.loc[mm["checkpoint"] == ckpt, "kind"])
            names = {"mean": "95% CI of the mean across rows", "overall": "bootstrap CI"}
            t.name = f"{ckpt} " + " / ".join(names[k] for k in sorted(kinds))
    return fig


def figure_specs(
    plan: Plan,
    stores: dict[str, Store],
    *,
    pooling: str,
    projection: str,
    notes: list[str],
) -> list[FigureSpec]:
    from xalign import figures as F
    from xalign.report._figures import paper_style, side_by_side
    from xalign.report._stores import pair_example, projection_points

    specs: list[FigureSpec] = []

    used: set[str] = set()

    def add(name: str, fig: go.Figure, caption: str) -> None:
        name = unique_name(slug(name), used)
        specs.append(FigureSpec(name, fig, caption, int(fig.layout.width), int(fig.layout.height)))

    ckpt_text = ", ".join(plan.checkpoints)
    shown = list(plan.compare) if plan.compare else plan.checkpoints[:1]
    # 1. metric-by-layer curves (mean over languages, every checkpoint)
    for m in plan.metrics:
        d = plan.data[m]
        info = metric_info(m)
        fig = _curve(F, plan, m)
        paper_style(fig, width="one", height_in=2.25, legend="top")
        direction = (
            f" {'Higher' if info.direction == 'higher' else 'Lower'} is better for alignment."
            if info.direction
            else ""
        )
        add(
            f"curve-{m}",
            fig,
            f"{info.label} ({info.description}) by layer (0 = embedding output) for "
            f"{ckpt_text} (one line each); each point is {aggregation_phrase(plan, m)}; "
            f"{band_text(plan, m, plan.checkpoints)}.{direction} "
            f"{rows_text(plan.sel[m], plan.means[m], capital=True)}. "
            f"Protocol: {protocol_text(d)}; {n_text(d)} per row.",
        )
    # 2. per-language curves of the first metric with per-language values
    first = next((m for m in plan.metrics if plan.data[m]["lang"].notna().any()), None)
    if first is not None:
        info = metric_info(first)
        for c in shown:
            d = plan.data[first]
            d = d[d["checkpoint"] == c]
            if d.empty or not d["lang"].notna().any():
                continue
            fig = F.fig_metric_by_layer(d, metric=info.label, mode="languages")
            paper_style(fig, width="two", height_in=2.8, legend="top")
            pairwise = d["lang2"].notna().any()
            add(
                f"curve-languages-{first}-{c}",
                fig,
                f"{info.label} by layer and language, checkpoint {c}"
                + (
                    "; a language's value is the mean over the pairs it takes part in"
                    if pairwise
                    else ""
                )
                + f". Colours are fixed per language. "
                f"{rows_text(plan.sel[first].subset(checkpoint=c), capital=True)}. "
                f"Protocol: {protocol_text(d)}.",
            )
    # 3. language × language heatmaps: the first two pairwise metrics that cover most pairs
    # (a pivot-only table, every pair with English, would be mostly blank), at the first
    # focus layer, for the compared checkpoints
    heat = 0
    for m in plan.metrics:
        d = plan.data[m]
        pairs = d[d["lang"].notna() & d["lang2"].notna()]
        if pairs.empty or heat >= 2:
            continue
        info = metric_info(m)
        layer = plan.focus[0]
        drawn = False
        for c in shown:
            dd = pairs[(pairs["checkpoint"] == c) & (pairs["layer"] == layer)]
            langs = set(dd["lang"]) | set(dd["lang2"])
            n = len(langs)
            n_pairs = len(dd[["lang", "lang2"]].drop_duplicates())
            if n < 3 or n_pairs < 0.8 * n * (n - 1) / 2:
                continue
            fig = F.fig_language_heatmap(dd, metric=info.label, layer=layer)
            paper_style(
                fig,
                width="one" if n <= 6 else "two",
                height_in=min(1.2 + 0.3 * n, 5.5),
                legend="none",
            )
            add(
                f"heatmap-{m}-{c}-L{layer}",
                fig,
                f"{info.label} ({info.description}) between languages at layer {layer}, "
                f"checkpoint {c}. Rows are `lang`, columns `lang2`; a symmetric metric "
                f"stored once per pair is mirrored, missing pairs are blank. "
                f"{rows_text(plan.sel[m].subset(checkpoint=c, layer=layer), capital=True)}. "
                f"Protocol: {protocol_text(dd)}; {n_text(dd)}.",
            )
            drawn = True
        heat += int(drawn)
    # 4. before/after differences by language and layer
    if plan.compare:
        a, b = plan.compare
        for m in plan.metrics:
            d = plan.data[m]
            have = set(d.loc[d["lang"].notna(), "checkpoint"])
            if not have:
                continue
            if not {a, b} <= have:
                notes.append(f"{m}: per-language values only for {', '.join(sorted(have))}; "
                             "no before/after difference figure")  # fmt: skip
                continue
            info = metric_info(m)
            fig = F.fig_difference(d, metric=info.label, before=a, after=b)
            nrows = len(fig.data[0].y) if fig.data and fig.data[0].y is not None else 4
            paper_style(fig, width="two", height_in=min(0.9 + 0.2 * nrows, 5.0), legend="none")
            add(
                f"difference-{m}",
                fig,
                f"Change of {info.label} from {a} to {b} ({b} − {a}) per language (rows; "
                f"top row: their mean) and layer (columns). Blue: the value went up"
                + (
                    f" ({'better' if info.direction == 'higher' else 'worse'} for alignment)"
                    if info.direction
                    else ""
                )
                + f". {rows_text(plan.sel[m].subset(checkpoint=[a, b]), capital=True)}. "
                f"Protocol: {protocol_text(d)}.",
            )
    # 5. cluster projections at the focus layers (before/after side by side)
    with_store = [c for c in shown if c in stores]
    if with_store:
        for layer in plan.focus:
            group = [stores[c] for c in with_store]
            if any(layer not in s.layers for s in group):
                notes.append(f"clusters at layer {layer}: layer not stored in every store")
                continue
            frames, why, shared = projection_points(
                group, layer=layer, pooling=pooling, method=projection
            )
            if frames is None:
                notes.append(f"clusters at layer {layer}: {why}")
                continue
            if plan.langs:
                frames = [f[f["lang"].isin(plan.langs)] for f in frames]
            xs = np.concatenate([f["x"].to_numpy() for f in frames])
            ys = np.concatenate([f["y"].to_numpy() for f in frames])
            ranges = [float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())]
            figs = [F.fig_clusters(f, ranges=ranges, webgl=False, marker_size=3.0) for f in frames]
            if len(figs) == 2:
                fig = side_by_side(figs, list(with_store))
                paper_style(fig, width="two", height_in=3.2, legend="right")
            else:
                fig = figs[0]
                paper_style(fig, width="one", height_in=3.0, legend="right")
            bare = {"showticklabels": False, "showgrid": False, "zeroline": False,
                    "title": None, "mirror": True, "linecolor": "#999999"}  # fmt: skip
            fig.update_xaxes(**bare)
            fig.update_yaxes(**bare)
            fig.update_layout(margin={"l": 6, "b": 6, "t": 20 if len(figs) == 2 else 6, "r": 6})
            method = projection.upper() if projection == "pca" else projection
            axes = (
                "both panels share one fit and the same axes"
                if shared and len(figs) == 2
                else "axes of each panel are its own fit"
                if len(figs) == 2
                else ""
            )
            n = len(frames[0])
            each = " each" if len(figs) == 2 else ""
            add(
                f"clusters-L{layer}",
                fig,
                f"{method} projection of the {pooling}-pooled sentence vectors at layer {layer} "
                f"({' | '.join(with_store)}; {n} sentences{each}), one "
                f"colour per language. Vectors are L2-normalised, centred and scaled per block "
                f"before the fit{'; ' + axes if axes else ''}. Projections are for display "
                "only; every number comes from the full-dimensional vectors.",
            )
    # 6. an attention-alignment example
    for c in shown:
        if c not in stores:
            continue
        s = stores[c]
        cand = [x for x in plan.focus if x >= 1 and x in s.layers]
        if s.attention_mode != "none":
            cand = [x for x in cand if x in s.attention_layers] or [
                x for x in s.attention_layers if x in plan.layers
            ][-1:]
        if not cand:
            continue
        layer = cand[0]
        ex = pair_example(s, layer=layer, langs=plan.langs)
        if ex is None:
            continue
        la, lb = (short_name(x) for x in ex.langs)
        if ex.attention is not None:
            zmax = float(max(ex.attention[0].max(), ex.attention[1].max()))
            fa = F.fig_attention(ex.attention[0], ex.tokens[0], zmax=zmax)
            fb = F.fig_attention(ex.attention[1], ex.tokens[1], zmax=zmax)
            fa.data[0].showscale = False
            fig = side_by_side([fa, fb], [la, lb], spacing=0.12)
            paper_style(fig, width="two", height_in=3.4, legend="none")
            fig.update_xaxes(tickfont={"size": 8})
            fig.update_yaxes(tickfont={"size": 8})
            fig.update_layout(margin={"l": 64, "b": 64, "t": 20, "r": 8})
            add(
                f"attention-{c}-L{layer}",
                fig,
                f"Attention of layer {layer} (mean over heads), checkpoint {c}, for a sentence "
                f"in {la} and its translation in {lb}: “{ex.texts[0]}” / “{ex.texts[1]}” (store "
                f"rows {ex.rows[0]} and {ex.rows[1]}). Rows are query tokens, columns key "
                "tokens (special and prefix tokens included); one colour scale for both.",
            )
        if ex.similarity is not None and ex.words is not None:
            fig = F.fig_alignment(ex.similarity, ex.words[0], ex.words[1], predicted=ex.links)
            paper_style(fig, width="one", height_in=3.4, legend="none")
            fig.update_xaxes(tickfont={"size": 8})
            fig.update_yaxes(tickfont={"size": 8})
            add(
                f"alignment-{c}-L{layer}",
                fig,
                f"Word similarity (cosine of word vectors = mean of their subword vectors at "
                f"layer {layer}) between the {la} sentence (rows) and its {lb} translation "
                f"(columns), checkpoint {c}; circles: the IterMax word alignment (SimAlign, "
                "max 2 rounds, α = 0.9) computed on (cos + 1)/2.",
            )
    # 7. language-specific neurons: by language and layer, overlap, before/after
    if plan.neurons:
        from xalign.report._neurons import neuron_figures

        neuron_figures(plan, F, add, notes)
    return specs
