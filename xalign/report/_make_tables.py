"""The tables of a report, built from its plan: metrics by layer, before/after, retrieval by
language, language-specific neurons (rendered by :mod:`xalign.report._tables`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign.report._plan import best_layers
from xalign.report._tables import Cell, Table, fmt_delta, fmt_value
from xalign.report._text import (
    aggregation_phrase,
    lang_label,
    metric_header,
    n_text,
    protocol_note,
    rows_text,
    short_name,
    slug,
    unique_name,
    value_note,
)
from xalign.results import better, metric_info, protocol_text, select_rows

if TYPE_CHECKING:
    from xalign.report._plan import Plan

__all__ = ["report_tables", "table_before_after", "table_metric_by_layer",
           "table_retrieval_by_language"]  # fmt: skip


def table_metric_by_layer(plan: Plan, ckpt: str) -> Table | None:
    cols = []
    for m in plan.metrics:
        mm = plan.means[m]
        mm = mm[mm["checkpoint"] == ckpt]
        if not mm.empty:
            cols.append((m, mm.set_index("layer")["value"]))
    if not cols:
        return None
    layers = sorted({int(x) for _, s in cols for x in s.index})
    best = {
        m: set(
            best_layers(
                pd.DataFrame({"layer": s.index, "value": s.to_numpy()}),
                metric_info(m).direction,
                plan.decimals,
            )
        )
        for m, s in cols
    }
    rows: list[list[Cell] | str] = []
    for layer in layers:
        row = [Cell(str(layer))]
        for m, s in cols:
            v = float(s.get(layer, np.nan))
            row.append(Cell(fmt_value(v, plan.decimals), v, bold=layer in best[m]))
        rows.append(row)
    rows.append(
        [Cell("best layer")]
        + [Cell(",".join(map(str, sorted(best[m]))) if best[m] else "–") for m, _ in cols]
    )
    data = pd.DataFrame({"layer": layers})
    for m, s in cols:
        data[m] = [float(s.get(layer, np.nan)) for layer in layers]
    aggs = " ".join(
        f"{metric_info(m).label}: {aggregation_phrase(plan, m, ckpt)} "
        f"({rows_text(plan.sel[m].subset(checkpoint=ckpt), _ckpt_means(plan, m, ckpt))})."
        for m, _ in cols
    )
    return Table(
        name=f"metric_by_layer-{slug(ckpt)}",
        caption=(
            f"Alignment metrics by layer, checkpoint {ckpt} (per-language and per-pair values "
            "averaged, see the note). Bold: the best layer of each metric (last row)."
        ),
        note=f"{value_note(plan)} Values — {aggs} Protocol — "
        f"{protocol_note(plan, [m for m, _ in cols])}.",
        header=["Layer"] + [metric_header(m, wrap=True) for m, _ in cols],
        rows=rows,
        align="r" * (1 + len(cols)),
        data=data,
        rules={len(rows) - 1},
    )


def _ckpt_means(plan: Plan, m: str, ckpt: str | Sequence[str]) -> pd.DataFrame:
    mm = plan.means[m]
    return mm[mm["checkpoint"].isin([ckpt] if isinstance(ckpt, str) else list(ckpt))]


def _pivot(d: pd.DataFrame) -> str | None:
    """The language in every pair (e.g. eng for Tatoeba-style pairs), else None.

    >>> _pivot(pd.DataFrame({"lang": ["deu", "fra"], "lang2": ["eng", "eng"]}))
    'eng'
    >>> _pivot(pd.DataFrame({"lang": ["deu", "fra", "deu"], "lang2": ["eng", "eng", "fra"]}))
    """
    pairs = d[d["lang"].notna() & d["lang2"].notna()][["lang", "lang2"]].drop_duplicates()
    if pairs.empty:
        return None
    if len(pairs) == 1:
        return str(pairs["lang2"].iloc[0])
    common = set.intersection(*({a, b} for a, b in pairs.itertuples(index=False)))
    return str(next(iter(common))) if len(common) == 1 else None


def table_retrieval_by_language(plan: Plan, layer: int) -> Table | None:
    m = "retrieval_acc_mean"
    if m not in plan.data:
        return None
    d = plan.data[m]
    d = d[d["layer"] == layer]
    if d.empty or not d["lang"].notna().any():
        return None
    pivot = _pivot(d)
    ckpts = [c for c in plan.checkpoints if (d["checkpoint"] == c).any()]
    directional = None
    if pivot is not None and "retrieval_acc" in set(plan.df["metric"]):
        dsel = select_rows(plan.df, "retrieval_acc", plan.choices)
        directional = dsel.rows[dsel.rows["layer"] == layer]
    if pivot is not None:
        langs = [x for x in dict.fromkeys([*d["lang"], *d["lang2"]]) if x != pivot and x]
    else:
        langs = list(dict.fromkeys([*d["lang"].dropna(), *d["lang2"].dropna()]))

    def mean_of(ckpt: str, lang: str) -> float:
        dc = d[d["checkpoint"] == ckpt]
        if pivot is not None:
            sel = dc[((dc["lang"] == lang) & (dc["lang2"] == pivot))
                     | ((dc["lang"] == pivot) & (dc["lang2"] == lang))]  # fmt: skip
        else:
            sel = dc[(dc["lang"] == lang) | (dc["lang2"] == lang)]
        return float(sel["value"].mean()) if len(sel) else np.nan

    def dir_of(ckpt: str, a: str, b: str) -> float:
        if directional is None:
            return np.nan
        dc = directional[directional["checkpoint"] == ckpt]
        sel = dc[(dc["lang"] == a) & (dc["lang2"] == b)]
        return float(sel["value"].mean()) if len(sel) else np.nan

    sub = (
        [(f"→ {pivot}", "to"), (f"{pivot} →", "from"), ("mean", "mean")]
        if pivot is not None and directional is not None and not directional.empty
        else [("mean" if pivot is not None else "mean over pairs", "mean")]
    )
    values: dict[tuple[str, str], list[float]] = {}
    for c in ckpts:
        for _, kind in sub:
            col = []
            for lang in langs:
                if kind == "mean":
                    col.append(mean_of(c, lang))
                elif kind == "to":
                    col.append(dir_of(c, lang, pivot))  # type: ignore[arg-type]
                else:
                    col.append(dir_of(c, pivot, lang))  # type: ignore[arg-type]
            values[(c, kind)] = col
    cmp = plan.compare if plan.compare and all(x in ckpts for x in plan.compare) else None
    direction = metric_info(m).direction
    rows: list[list[Cell] | str] = []
    shown_values: list[dict[tuple[str, str], float]] = []
    all_rows = [*range(len(langs)), "mean"]
    for i in all_rows:
        label = "Mean" if i == "mean" else lang_label(langs[i])  # type: ignore[index]
        row = [Cell(label)]
        shown: dict[tuple[str, str], float] = {}
        for c in ckpts:
            for _, kind in sub:
                col = values[(c, kind)]
                v = float(np.nanmean(col)) if i == "mean" and np.isfinite(col).any() else (
                    np.nan if i == "mean" else col[i])  # type: ignore[index]  # fmt: skip
                shown[(c, kind)] = v
        shown_values.append(shown)
        for c in ckpts:
            for _, kind in sub:
                v = shown[(c, kind)]
                bold = False
                if cmp and c in cmp:
                    a = round(shown[(cmp[0], kind)], plan.decimals)
                    b = round(shown[(cmp[1], kind)], plan.decimals)
                    w = better(a, b, direction)
                    bold = w >= 0 and cmp[w] == c
                row.append(Cell(fmt_value(v, plan.decimals), v, bold=bold))
        if cmp:
            dv = shown[(cmp[1], "mean")] - shown[(cmp[0], "mean")]
            dr = round(shown[(cmp[1], "mean")], plan.decimals) - round(
                shown[(cmp[0], "mean")], plan.decimals
            )
            row.append(Cell(fmt_delta(dr, plan.decimals), dv))
        rows.append(row)
    header = ["Language"]
    groups: list[tuple[str, int]] | None = [("", 1)] if len(ckpts) > 1 or len(sub) > 1 else None
    data = pd.DataFrame({"lang": [*langs, "mean"]})
    for c in ckpts:
        for text, kind in sub:
            header.append(text)
            data[f"{c}:{kind}"] = [shown_values[i][(c, kind)] for i in range(len(rows))]
        if groups is not None:
            groups.append((c, len(sub)))
    if cmp:
        header.append("Δ mean")
        data["delta_mean"] = [
            shown_values[i][(cmp[1], "mean")] - shown_values[i][(cmp[0], "mean")]
            for i in range(len(rows))
        ]
        if groups is not None:
            groups.append((f"{cmp[1]} − {cmp[0]}", 1))
    n = n_text(d)
    blank = [
        lang_label(langs[i])
        for i in range(len(langs))
        if any(not np.isfinite(values[(c, kind)][i]) for c in ckpts for _, kind in sub)
    ]
    blank_text = (
        f" –: no finite value ({', '.join(blank)}); the Mean row averages the languages "
        "that have one."
        if blank
        else ""
    )
    rows_used = rows_text(plan.sel[m].subset(layer=layer))
    what = (
        f"paired with {short_name(pivot)} ({pivot}); → {pivot}: the language's sentences "
        f"query the {pivot} ones, {pivot} →: the reverse; mean: of both directions"
        if pivot is not None
        else "mean over every pair the language takes part in (both directions)"
    )
    cmp_text = (
        f" Bold: the better of {cmp[0]} and {cmp[1]}; Δ = {cmp[1]} − {cmp[0]} (of the means)."
        if cmp
        else ""
    )
    return Table(
        name=f"retrieval_by_language-L{layer}",
        caption=(
            f"Top-1 translation retrieval accuracy per language at layer {layer}, {what}.{cmp_text}"
        ),
        note=(
            f"{value_note(plan)} Accuracy is the fraction of sentences whose translation is "
            f"retrieved first ({n or 'n unknown'} sentence pairs per language pair). "
            f"Mean: the mean over the languages.{blank_text} Retrieval acc. at layer {layer}, "
            f"{rows_used}. Protocol — {protocol_text(d)}."
        ),
        header=header,
        rows=rows,
        align="l" + "r" * (len(header) - 1),
        data=data,
        groups=groups,
        rules={len(rows) - 1},
    )


def table_before_after(plan: Plan) -> Table | None:
    if plan.compare is None:
        return None
    a, b = plan.compare
    rows: list[list[Cell] | str] = []
    recs: list[dict[str, Any]] = []

    def add(section: str, m: str, va: float, vb: float, la: Any = None, lb: Any = None) -> None:
        direction = metric_info(m).direction
        ra, rb = round(va, plan.decimals), round(vb, plan.decimals)
        w = better(ra, rb, direction)
        ta, tb = fmt_value(va, plan.decimals), fmt_value(vb, plan.decimals)
        if la is not None:
            ta, tb = f"{ta} (L{la})", f"{tb} (L{lb})"
        rows.append([
            Cell(metric_header(m)),
            Cell(ta, va, bold=w == 0),
            Cell(tb, vb, bold=w == 1),
            Cell(fmt_delta(rb - ra, plan.decimals), vb - va),
        ])  # fmt: skip
        recs.append({"section": section, "metric": m, "before": va, "after": vb,
                     "delta": vb - va, "before_layer": la, "after_layer": lb})  # fmt: skip

    for layer in plan.focus:
        start = len(rows)
        for m in plan.metrics:
            mm = plan.means[m]
            va = mm[(mm["checkpoint"] == a) & (mm["layer"] == layer)]["value"]
            vb = mm[(mm["checkpoint"] == b) & (mm["layer"] == layer)]["value"]
            if len(va) and len(vb):
                if len(rows) == start:
                    rows.append(f"Layer {layer}")
                add(f"layer {layer}", m, float(va.iloc[0]), float(vb.iloc[0]))
    start = len(rows)
    for m in plan.metrics:
        info = metric_info(m)
        if info.direction is None:
            continue
        mm = plan.means[m]
        ma, mb = mm[mm["checkpoint"] == a], mm[mm["checkpoint"] == b]
        if ma.empty or mb.empty:
            continue
        la, lb = (
            best_layers(ma, info.direction, plan.decimals),
            best_layers(mb, info.direction, plan.decimals),
        )
        va = float(ma.set_index("layer")["value"][la[0]])
        vb = float(mb.set_index("layer")["value"][lb[0]])
        if len(rows) == start:
            rows.append("Best layer of each checkpoint")
        add("best layer", m, va, vb, la[0], lb[0])
    if not recs:
        return None
    section_rows = {i for i, r in enumerate(rows) if isinstance(r, str) and i > 0}
    return Table(
        name="before_after",
        caption=(
            f"Before ({a}) and after ({b}): alignment metrics at layer(s) "
            f"{', '.join(map(str, plan.focus))} and at each checkpoint's best layer (L = layer). "
            f"Bold: the better value (by each metric's direction); Δ = {b} − {a}."
        ),
        note=f"{value_note(plan)} Δ is the difference of the rounded values. Values — "
        + " ".join(
            f"{metric_info(m).label}: {aggregation_phrase(plan, m, [a, b])} "
            f"({rows_text(plan.sel[m].subset(checkpoint=[a, b]), _ckpt_means(plan, m, [a, b]))})."
            for m in dict.fromkeys(r["metric"] for r in recs)
        )
        + " Protocol — "
        f"{protocol_note(plan, list(dict.fromkeys(r['metric'] for r in recs)))}.",
        header=["Metric", a, b, "Δ"],
        rows=rows,
        align="lrrr",
        data=pd.DataFrame(recs),
        rules=section_rows,
    )


def report_tables(plan: Plan) -> list[Table]:
    """Every table of the report, in order: metrics by layer (one per checkpoint), before/after,
    retrieval by language (one per focus layer), language-specific neurons by layer."""
    from xalign.report._neurons import neuron_tables

    tables: list[Table] = []
    used: set[str] = set()
    for c in plan.checkpoints:
        t = table_metric_by_layer(plan, c)
        if t is not None:
            t.name = unique_name(t.name, used)  # checkpoint labels "a b" and "a-b" share a slug
            tables.append(t)
    ba = table_before_after(plan)
    if ba is not None:
        tables.append(ba)
    for layer in plan.focus:
        t = table_retrieval_by_language(plan, layer)
        if t is not None:
            tables.append(t)
    tables += neuron_tables(plan)
    return tables
