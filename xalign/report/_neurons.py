"""The neuron section of a report: language-specific feed-forward neurons by language and
layer, their overlap between languages, and their change from one checkpoint to the other.

Drawn from the ``neurons`` metrics group of the results table (stores extracted with
``--neurons``; the LAPE selection of Tang et al. 2024, ACL): ``neuron_specific_count`` and
``neuron_shared_count`` make the table and the language × layer heatmap,
``neuron_specific_jaccard`` the overlap matrix, ``neuron_specific_stability`` the before/after
overlap of the sets. A results table without these rows gets no neuron section.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign.report._tables import Cell, Table, fmt_value
from xalign.report._text import lang_label, n_text, rows_text
from xalign.results import metric_info, parse_protocol, protocol_text, select_rows

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from xalign.report._plan import Plan

__all__ = ["NEURON_METRICS", "count_text", "neuron_figures", "neuron_tables",
           "table_neurons_by_layer"]  # fmt: skip

COUNT = "neuron_specific_count"
SHARED = "neuron_shared_count"
JACCARD = "neuron_specific_jaccard"
STABILITY = "neuron_specific_stability"
#: The neuron metrics the section draws. The others of the group (mean LAPE, activation
#: probability, specific share, change) are shown like any metric when ``--metrics`` names them.
NEURON_METRICS: tuple[str, ...] = (COUNT, SHARED, JACCARD, STABILITY)


def count_text(v: float, decimals: int = 3) -> str:
    """A neuron count: a whole number as an integer, else with ``decimals`` decimals.

    >>> count_text(12.0), count_text(2.5, 2), count_text(float("nan"))
    ('12', '2.50', '–')
    """
    if math.isfinite(v) and float(v).is_integer():
        return f"{v:.0f}"
    return fmt_value(v, decimals)


def _rows(plan: Plan, m: str) -> pd.DataFrame:
    """The rows of neuron metric ``m`` the report shows (empty when it shows none)."""
    sel = plan.neurons.get(m)
    return sel.rows if sel is not None else plan.df.iloc[:0]


def _values(d: pd.DataFrame, key: str) -> list[Any]:
    """The values of protocol key ``key`` among the rows, in row order (missing left out)."""
    out: dict[str, Any] = {}
    for text in dict.fromkeys(d["protocol"].astype(str)):
        try:
            proto = json.loads(text) if text else {}
        except ValueError:
            continue
        if isinstance(proto, dict) and proto.get(key) is not None:
            out.setdefault(json.dumps(proto[key], sort_keys=True), proto[key])
    return list(out.values())


def _rate(d: pd.DataFrame, key: str, *, percent: bool = False) -> str:
    vals = _values(d, key)
    if not vals:
        return f"{key} not recorded"
    text = " / ".join(f"{100 * float(v):g}%" if percent else f"{float(v):g}" for v in vals)
    return f"{text} ({key})"


def rates_text(d: pd.DataFrame) -> str:
    """``top_rate = 1%, filter_rate = 0.95, bar_rate = 0.95``: the selection's rates."""
    parts = []
    for key in ("top_rate", "filter_rate", "bar_rate"):
        vals = _values(d, key)
        pct = key == "top_rate"
        text = " / ".join(f"{100 * float(v):g}%" if pct else f"{float(v):g}" for v in vals)
        parts.append(f"{key} = {text or 'not recorded'}")
    return ", ".join(parts)


def selection_text(d: pd.DataFrame) -> str:
    """The LAPE selection with the rates of the rows' protocol, as one clause."""
    return (
        "the LAPE selection of Tang et al. (2024): of the neurons whose activation probability "
        "(share of a language's content tokens with activation > 0) exceeds the "
        f"{_rate(d, 'filter_rate')} quantile of all activation probabilities for some "
        f"language, the {_rate(d, 'top_rate', percent=True)} of all neurons with the lowest "
        "language activation probability entropy (LAPE, over all layers together); a selected "
        "neuron is specific to every language whose activation probability exceeds the "
        f"{_rate(d, 'bar_rate')} quantile"
    )


def _thresholds(d: pd.DataFrame, ckpts: list[str]) -> str:
    """``filter_value = 0.41, bar_value = 0.41 (before); ...``: each checkpoint's thresholds."""
    parts = []
    for c in ckpts:
        dc = d[d["checkpoint"] == c]
        vals = []
        for key in ("filter_value", "bar_value"):
            v = _values(dc, key)
            if v:
                vals.append(f"{key} = " + " / ".join(f"{float(x):.4g}" for x in v))
        if vals:
            parts.append(", ".join(vals) + (f" ({c})" if len(ckpts) > 1 else ""))
    return "; ".join(parts) if parts else "not recorded"


def _shared_text(d: pd.DataFrame) -> str:
    fractions = _values(d, "shared_fraction")
    if not fractions or all(float(x) >= 1 for x in fractions):
        who = "every language"
    else:
        who = (
            "at least "
            + " / ".join(f"{100 * float(x):g}%" for x in fractions)
            + " of the languages"
        )
    return f"neurons whose activation probability exceeds the bar_value threshold for {who}"


def _lang_order(plan: Plan, d: pd.DataFrame) -> list[str]:
    """Languages of the rows: the ``--langs`` order first, then the results table's order."""
    present = list(dict.fromkeys(d["lang"].dropna()))
    first = [x for x in (plan.langs or []) if x in present]
    return first + [x for x in present if x not in first]


def _neurons_per_layer(d: pd.DataFrame) -> str:
    n = d["n"].dropna()
    if n.empty:
        return "the layer's feed-forward neurons"
    lo, hi = int(n.min()), int(n.max())
    return (
        f"{lo} feed-forward neurons per layer"
        if lo == hi
        else f"{lo}–{hi} feed-forward neurons per layer"
    )


def table_neurons_by_layer(plan: Plan) -> Table | None:
    """Language-specific neurons per language (rows) and layer (columns), one block of rows per
    checkpoint, each closed by the layer's shared neurons."""
    d = _rows(plan, COUNT)
    d = d[d["lang"].notna() & d["lang2"].isna()]
    if d.empty:
        return None
    sh = _rows(plan, SHARED)
    sh = sh[sh["lang"].isna()]
    ckpts = [c for c in plan.checkpoints if (d["checkpoint"] == c).any()]
    sh = sh[sh["checkpoint"].isin(ckpts)]
    layers = sorted({int(x) for x in pd.concat([d["layer"], sh["layer"]])})
    langs = _lang_order(plan, d)
    cell = d.groupby(["checkpoint", "lang", "layer"])["value"].mean()
    shared = sh.groupby(["checkpoint", "layer"])["value"].mean()
    multi = len(ckpts) > 1
    rows: list[list[Cell] | str] = []
    recs: list[dict[str, Any]] = []
    rules: set[int] = set()

    def add(label: str, c: str, kind: str, lang: str | None, vals: list[float], bold: bool) -> None:
        finite = [v for v in vals if np.isfinite(v)]
        total = float(sum(finite)) if finite else np.nan
        top = max((round(v, plan.decimals) for v in finite), default=0.0)
        marks = [bold and top > 0 and np.isfinite(v) and round(v, plan.decimals) == top
                 for v in vals]  # fmt: skip
        rows.append(
            [Cell(label)]
            + [
                Cell(count_text(v, plan.decimals), v, bold=b)
                for v, b in zip(vals, marks, strict=True)
            ]
            + [Cell(count_text(total, plan.decimals), total)]
        )
        recs.append({"checkpoint": c, "row": kind, "lang": lang,
                     **{f"layer_{x}": v for x, v in zip(layers, vals, strict=True)},
                     "total": total})  # fmt: skip

    for c in ckpts:
        if multi:
            if rows:
                rules.add(len(rows))
            rows.append(f"Checkpoint {c}")
        for lang in langs:
            vals = [float(cell.get((c, lang, x), np.nan)) for x in layers]
            add(lang_label(lang), c, "specific", lang, vals, bold=True)
        if (sh["checkpoint"] == c).any():
            rules.add(len(rows))
            vals = [float(shared.get((c, x), np.nan)) for x in layers]
            add("Shared", c, "shared", None, vals, bold=False)
    info, sinfo = metric_info(COUNT), metric_info(SHARED)
    where = (
        f"checkpoint {ckpts[0]}" if not multi else f"one block per checkpoint ({', '.join(ckpts)})"
    )
    shared_caption = (
        f" Shared: {_shared_text(sh)} (the last row{' of each block' if multi else ''})."
        if not sh.empty
        else ""
    )
    sel = plan.neurons[COUNT]
    used = f"{info.label} {rows_text(sel.subset(checkpoint=ckpts))}."
    proto = f"{info.label}: {protocol_text(d)}"
    if not sh.empty:
        used += f" {sinfo.label} {rows_text(plan.neurons[SHARED].subset(checkpoint=ckpts))}."
        proto += f"; {sinfo.label}: {protocol_text(sh)}"
    groups = [("", 1), ("Layer", len(layers)), ("", 1)]
    return Table(
        name="neurons_by_layer",
        caption=(
            f"Language-specific feed-forward neurons by language (rows) and layer (columns), "
            f"{where}: {selection_text(d)}. Bold: each language's layer with the most; Total: "
            f"the sum over the layers shown.{shared_caption}"
        ),
        note=(
            f"Counts out of {_neurons_per_layer(d)}; layer ℓ is feed-forward block ℓ (its "
            "output is hidden_states[ℓ]). The thresholds are quantiles of each checkpoint's own "
            f"activation probabilities: {_thresholds(d, ckpts)}. –: no row. {used} "
            f"Protocol — {proto}."
        ),
        header=["Language", *map(str, layers), "Total"],
        rows=rows,
        align="l" + "r" * (len(layers) + 1),
        data=pd.DataFrame(recs),
        groups=groups,
        rules=rules,
    )


def neuron_tables(plan: Plan) -> list[Table]:
    """The neuron section's tables (none when the report shows no neuron rows)."""
    t = table_neurons_by_layer(plan)
    return [] if t is None else [t]


def busiest_layer(d: pd.DataFrame) -> tuple[int, float] | None:
    """The layer with the most language-specific neurons (summed over languages; the lowest
    layer on a tie) and that sum, from ``neuron_specific_count`` rows of one checkpoint.

    >>> busiest_layer(pd.DataFrame({"layer": [1, 1, 2, 3], "value": [2.0, 3.0, 5.0, 1.0]}))
    (1, 5.0)
    """
    if d.empty:
        return None
    total = d.groupby("layer")["value"].sum()
    best = float(total.max())
    return int(min(x for x, v in total.items() if v == best)), best


def _stability_rows(plan: Plan, before: str, after: str) -> pd.DataFrame:
    """``neuron_specific_stability`` rows of ``after`` measured against ``before``."""
    if STABILITY not in plan.neurons:
        return plan.df.iloc[:0]
    d = plan.df[(plan.df["metric"] == STABILITY) & (plan.df["checkpoint"] == after)]
    other = [parse_protocol(p).get("other_checkpoint") for p in d["protocol"]]
    d = d[[x == json.dumps(before) for x in other]]
    if d.empty:
        return d
    return select_rows(d, STABILITY, plan.choices).rows


def _difference(
    plan: Plan,
    F: Any,
    add: Callable[[str, go.Figure, str], None],
    notes: list[str],
    d: pd.DataFrame,
    a: str,
    b: str,
) -> None:
    """The change of the counts from ``a`` to ``b`` per language and layer."""
    from xalign.report._figures import paper_style

    fig = F.fig_difference(d, metric=metric_info(COUNT).label, before=a, after=b,
                           langs=_lang_order(plan, d))  # fmt: skip
    if not (fig.data and fig.data[0].type == "heatmap"):
        notes.append(f"{COUNT}: no (language, layer) with rows for both {a} and {b}; no "
                     "before/after difference figure")  # fmt: skip
        return
    labels = [str(x) for x in fig.data[0].y]
    paper_style(fig, width="one" if d["layer"].nunique() <= 8 else "two",
                height_in=min(0.9 + 0.25 * len(labels), 5.5), legend="none")  # fmt: skip
    _label_margin(fig, labels)
    fig.update_traces(texttemplate="%{z:+.3~f}")  # whole counts without trailing zeros
    add(
        "neuron-difference",
        fig,
        f"Change in the number of language-specific neurons from {a} to {b} ({b} − {a}) per "
        f"language (rows; top row: their mean) and layer (columns). Blue: more language-specific "
        f"neurons in {b}. Each checkpoint's neurons are selected by LAPE as in Tang et al. "
        f"(2024) ({rates_text(d)}) with its own quantile thresholds ({_thresholds(d, [a, b])}). "
        f"{rows_text(plan.neurons[COUNT].subset(checkpoint=[a, b]), capital=True)}. "
        f"Protocol: {protocol_text(d)}.",
    )


def _label_margin(fig: go.Figure, labels: list[str]) -> None:
    """Room on the left for the longest language code of a heatmap's rows."""
    fig.update_layout(margin={"l": 14 + 6 * max((len(x) for x in labels), default=4)})


def neuron_figures(
    plan: Plan,
    F: Any,
    add: Callable[[str, go.Figure, str], None],
    notes: list[str],
) -> None:
    """Add the neuron section's figures through ``add(name, figure, caption)``: per shown
    checkpoint the language × layer heatmap of specific neurons and the overlap matrix at its
    busiest layer; with two checkpoints compared, the change and the stability of the sets."""
    from xalign.report._figures import paper_style

    counts = _rows(plan, COUNT)
    counts = counts[counts["lang"].notna() & counts["lang2"].isna()]
    jac = _rows(plan, JACCARD)
    jac = jac[jac["lang"].notna() & jac["lang2"].notna()]
    shown = list(plan.compare) if plan.compare else plan.checkpoints[:1]
    info, jinfo = metric_info(COUNT), metric_info(JACCARD)
    for c in shown:
        dc = counts[counts["checkpoint"] == c]
        if dc.empty:
            continue
        langs = _lang_order(plan, dc)
        n_layers = dc["layer"].nunique()
        fig = F.fig_layer_language(dc, metric=info.label, langs=langs)
        paper_style(fig, width="one" if n_layers <= 8 else "two",
                    height_in=min(0.9 + 0.25 * len(langs), 5.5), legend="none")  # fmt: skip
        _label_margin(fig, langs)
        add(
            f"neurons-{c}",
            fig,
            f"Language-specific feed-forward neurons per language (rows) and layer (columns: "
            f"feed-forward blocks), checkpoint {c}, selected by LAPE as in Tang et al. (2024) "
            f"({rates_text(dc)}; the quantile thresholds of {c}: {_thresholds(dc, [c])}). "
            "Blank: no row. Out of "
            f"{_neurons_per_layer(dc)}. "
            f"{rows_text(plan.neurons[COUNT].subset(checkpoint=c), capital=True)}. "
            f"Protocol: {protocol_text(dc)}.",
        )
    # the busiest layer is chosen from the counts even where they are not shown (--metrics)
    every = counts
    if COUNT not in plan.neurons and not jac.empty:
        every = select_rows(plan.df, COUNT, plan.choices).rows
        every = every[every["lang"].notna() & every["lang2"].isna()]
    for c in shown:
        dj = jac[jac["checkpoint"] == c]
        if dj.empty:
            continue
        busiest = busiest_layer(every[every["checkpoint"] == c])
        if busiest is None:
            notes.append(f"{JACCARD}: no {COUNT} rows for {c} to choose the layer; "
                         "no overlap figure")  # fmt: skip
            continue
        layer, total = busiest
        dd = dj[dj["layer"] == layer]
        if dd.empty:
            notes.append(f"{JACCARD}: no rows for {c} at layer {layer}; no overlap figure")
            continue
        n = len(set(dd["lang"]) | set(dd["lang2"]))
        fig = F.fig_language_heatmap(dd, metric=jinfo.label, layer=layer, zmin=0, zmax=1)
        paper_style(fig, width="one" if n <= 6 else "two", height_in=min(1.2 + 0.3 * n, 5.5),
                    legend="none")  # fmt: skip
        fig.update_xaxes(title=None)  # a symmetric overlap: no query and target side
        fig.update_yaxes(title=None)
        add(
            f"neuron-overlap-{c}-L{layer}",
            fig,
            f"Overlap of the language-specific neuron sets of two languages, Jaccard "
            f"|S_a ∩ S_b| / |S_a ∪ S_b| (0: disjoint, 1: the same neurons), at layer {layer}, "
            f"the layer with the most language-specific neurons of checkpoint {c} "
            f"({count_text(total, plan.decimals)} over its languages). Stored once per pair and "
            "mirrored; blank: the diagonal and pairs where neither language has a specific "
            f"neuron. "
            f"{rows_text(plan.neurons[JACCARD].subset(checkpoint=c, layer=layer), capital=True)}. "
            f"Protocol: {protocol_text(dd)}.",
        )
    if not plan.compare:
        return
    a, b = plan.compare
    have = set(counts["checkpoint"])
    if have and not {a, b} <= have:
        notes.append(f"{COUNT}: rows only for {', '.join(sorted(have))}; no before/after "
                     "difference figure")  # fmt: skip
    elif have:
        d = counts[counts["checkpoint"].isin([a, b])]
        _difference(plan, F, add, notes, d, a, b)
    ds = _stability_rows(plan, a, b)
    ds = ds[ds["lang"].notna()]
    if not ds.empty:
        sinfo = metric_info(STABILITY)
        langs = _lang_order(plan, ds)
        fig = F.fig_layer_language(ds, metric=sinfo.label, langs=langs)
        fig.update_traces(zmin=0, zmax=1)  # a Jaccard index: one scale for every report
        paper_style(fig, width="one" if ds["layer"].nunique() <= 8 else "two",
                    height_in=min(0.9 + 0.25 * len(langs), 5.5), legend="none")  # fmt: skip
        _label_margin(fig, langs)
        add(
            f"neuron-stability-{a}-{b}",
            fig,
            f"Stability of the language-specific neuron sets from {a} to {b}: per language "
            f"(rows) and layer (columns) the Jaccard overlap |S ∩ S′| / |S ∪ S′| of the "
            f"language's specific neurons in {a} (S) and in {b} (S′); 1: the same neurons, 0: "
            f"none in common, blank: no specific neuron in either. Rows: {len(ds)} used "
            f"({STABILITY} rows of {b} with other_checkpoint = {a}). "
            f"Protocol: {protocol_text(ds)}; {n_text(ds)} neurons per layer.",
        )
