"""``build_report``: results table (+ stores) → tables, figures, report.md/.html, provenance."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign._io import atomic_path, check_output, write_json, write_text
from xalign.errors import ConfigError
from xalign.report._tables import (
    Cell,
    Table,
    fmt_delta,
    fmt_value,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)
from xalign.results import (
    DEFAULT_METRICS,
    Selection,
    better,
    filter_languages,
    layer_means,
    load_results,
    metric_info,
    metric_range,
    parse_choice,
    protocol_text,
    protocol_value_text,
    range_text,
    select_rows,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from xalign.store import Store

__all__ = ["FORMATS", "FigureSpec", "ReportSummary", "build_report"]

#: Report formats (``--format``); CSV tables are always written.
FORMATS: tuple[str, ...] = ("latex", "md", "html")
_ARROW = {"higher": "↑", "lower": "↓", None: ""}
#: Protocol choices a report uses unless told otherwise (JSON text, as in ``parse_choice``):
#: raw (uncentred) vectors and plain cosine retrieval, the most common published setting.
DEFAULT_PROTOCOL: dict[str, str] = {"centered": "false", "scoring": '"cosine"'}


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


@dataclass
class ReportSummary:
    """What :func:`build_report` made: every file, table and figure, and what was left out."""

    out: Path
    files: list[Path]
    tables: dict[str, Table]
    figures: dict[str, FigureSpec]
    metrics: list[str]
    checkpoints: list[str]
    layers: list[int]
    focus_layers: list[int]
    compare: tuple[str, str] | None
    static: bool
    static_message: str | None
    notes: list[str]

    @property
    def report_md(self) -> Path | None:
        p = self.out / "report.md"
        return p if p in self.files else None

    @property
    def report_html(self) -> Path | None:
        p = self.out / "report.html"
        return p if p in self.files else None

    def format(self) -> str:
        """A short human summary with the path of every kind of output."""
        lines = [
            f"report     {self.out}",
            f"metrics    {', '.join(self.metrics)}",
            f"checkpoints {', '.join(self.checkpoints)}"
            + (f"  (compared: {self.compare[0]} → {self.compare[1]})" if self.compare else ""),
            f"layers     {_ranges(self.layers)}  (focus: {', '.join(map(str, self.focus_layers))})",
        ]
        kinds: dict[str, int] = {}
        for f in self.files:
            kinds[f.suffix] = kinds.get(f.suffix, 0) + 1
        lines.append(f"tables     {len(self.tables)} ({self.out / 'tables'})")
        lines.append(
            f"figures    {len(self.figures)}"
            + (f" ({self.out / 'figures'})" if self.figures else "")
            + ("" if self.static or not self.figures else "  interactive HTML only")
        )
        if self.static_message:
            lines.append(f"note: {self.static_message}")
        for n in self.notes:
            lines.append(f"note: {n}")
        for name in ("report.md", "report.html", "provenance.json"):
            p = self.out / name
            if p in self.files:
                lines.append(f"{name:<16}{p}")
        return "\n".join(lines)


def _ranges(layers: Sequence[int]) -> str:
    """``0-3,6``: compact layer list.

    >>> _ranges([0, 1, 2, 3, 6])
    '0-3,6'
    """
    out: list[str] = []
    xs = sorted(set(int(x) for x in layers))
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(f"{xs[i]}-{xs[j]}" if j > i else f"{xs[i]}")
        i = j + 1
    return ",".join(out)


def _as_list(v: Any) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    return [str(x) for x in v]


def _parse_layers(v: Any, available: Sequence[int], what: str) -> list[int] | None:
    if v is None or (isinstance(v, str) and v.strip() in ("", "all")):
        return None
    items: list[int] = []
    parts = v.split(",") if isinstance(v, str) else list(v)
    for p in parts:
        p = str(p).strip()
        if not p:
            continue
        try:
            if "-" in p.lstrip("-"):
                a, b = p.split("-", 1)
                lo, hi = int(a), int(b)
                backwards = lo > hi
                items += list(range(lo, hi + 1))
            else:
                items.append(int(p))
        except ValueError:
            raise ConfigError(f"{what} {v!r}: expected 'all' or layers like 0,4,8-12") from None
        if "-" in p.lstrip("-") and backwards:
            raise ConfigError(f"{what} {v!r}: range {p!r} runs backwards; write {hi}-{lo}")
    if not items:
        raise ConfigError(f"{what} {v!r}: names no layer; expected 'all' or layers like 0,4,8-12")
    bad = sorted(set(items) - set(available))
    if bad:
        raise ConfigError(
            f"{what}: layer(s) {bad} not in the results table (layers there: {_ranges(available)})"
        )
    return sorted(set(items))


def _lang_label(code: str | None) -> str:
    if code is None:
        return "all"
    try:
        from xalign.data import language_name

        return f"{language_name(str(code))} ({code})"
    except Exception:
        return str(code)


def _short_name(code: str) -> str:
    try:
        from xalign.data import language_name

        return language_name(str(code))
    except Exception:
        return str(code)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when already used (then marked used).

    >>> used = set(); _unique("a", used), _unique("a", used)
    ('a', 'a-2')
    """
    out, i = name, 1
    while out in used:
        i += 1
        out = f"{name}-{i}"
    used.add(out)
    return out


def _n_text(d: pd.DataFrame) -> str:
    n = d["n"].dropna().astype(int)
    if n.empty:
        return ""
    lo, hi = int(n.min()), int(n.max())
    return f"n = {lo}" if lo == hi else f"n = {lo}–{hi}"


# ====================================================================== the plan


@dataclass
class _Plan:
    df: pd.DataFrame
    where: str
    metrics: list[str]
    data: dict[str, pd.DataFrame]
    means: dict[str, pd.DataFrame]
    sel: dict[str, Selection]
    checkpoints: list[str]
    layers: list[int]
    focus: list[int]
    compare: tuple[str, str] | None
    choices: dict[str, str]
    langs: list[str] | None
    decimals: int
    notes: list[str]
    total_rows: int
    origin: str = ""


def _plan(
    results: Any,
    *,
    metrics: Any,
    layers: Any,
    langs: Any,
    checkpoints: Any,
    compare: Any,
    focus_layers: Any,
    protocol: Any,
    decimals: int,
) -> _Plan:
    df, where = load_results(results)
    total_rows = len(df)
    notes: list[str] = []
    all_ckpts = list(dict.fromkeys(df["checkpoint"]))
    ckpts = _as_list(checkpoints)
    if ckpts:
        bad = [c for c in ckpts if c not in all_ckpts]
        if bad:
            raise ConfigError(
                f"--checkpoints {bad}: not in {where} (checkpoints there: {', '.join(all_ckpts)})"
            )
        df = df[df["checkpoint"].isin(ckpts)]
    else:
        ckpts = all_ckpts
    avail_layers = sorted(set(df["layer"].astype(int)))
    keep_layers = _parse_layers(layers, avail_layers, "--layers")
    if keep_layers is not None:
        df = df[df["layer"].isin(keep_layers)]
    lang_list = _as_list(langs)
    if lang_list:
        from xalign.data import normalize_lang

        present = set(df["lang"].dropna()) | set(df["lang2"].dropna())
        norm = []
        for x in lang_list:
            code = x if x in present else None
            if code is None:
                try:
                    code = normalize_lang(x)
                except Exception:
                    code = x
            if code not in present:
                raise ConfigError(
                    f"--langs {x!r}: not in {where} (languages there: {', '.join(sorted(present))})"
                )
            norm.append(code)
        lang_list = norm
        df = filter_languages(df, lang_list)
    df = df.reset_index(drop=True)
    present_metrics = list(dict.fromkeys(df["metric"]))
    wanted = _as_list(metrics)
    if wanted:
        bad = [m for m in wanted if m not in present_metrics]
        if bad:
            raise ConfigError(
                f"--metrics {bad}: not in {where} (metrics there: "
                f"{', '.join(sorted(present_metrics))})"
            )
    else:
        wanted = [m for m in DEFAULT_METRICS if m in present_metrics]
        if not wanted:
            wanted = sorted(present_metrics)[:8]
    asked = parse_choice(protocol)
    _check_choices(df, wanted, asked)
    choices = {**DEFAULT_PROTOCOL, **asked}
    data: dict[str, pd.DataFrame] = {}
    means: dict[str, pd.DataFrame] = {}
    sels: dict[str, Selection] = {}
    for m in wanted:
        sel = select_rows(df, m, choices)
        for key, value in asked.items():
            want = protocol_value_text(json.loads(value))
            if key in sel.applied and sel.applied[key] != want:
                notes.append(
                    f"{m}: has no rows with {key}={want}; shown with {key}={sel.applied[key]}"
                )
        if sel.rows.empty:
            why = (
                f"all {len(sel.nonfinite)} rows under the chosen protocol are NaN"
                if len(sel.nonfinite)
                else "no rows under the chosen protocol"
            )
            notes.append(f"{m}: {why}; left out")
            continue
        outside = _outside_range(sel.rows, metric_range(m))
        if outside:
            notes.append(f"{m}: {outside}; check the results table")
        data[m], sels[m] = sel.rows, sel
        means[m] = layer_means(sel.rows, metric_range(m))
    if not data:
        raise ConfigError(f"none of the metrics {wanted} has values in {where}")
    used_layers = sorted({int(x) for d in data.values() for x in d["layer"]})
    ckpts = [c for c in ckpts if any((d["checkpoint"] == c).any() for d in data.values())]
    # before/after pair
    pair = _as_list(compare)
    if pair:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ConfigError(f"--compare {compare!r}: expected two checkpoints, BEFORE,AFTER")
        bad = [c for c in pair if c not in ckpts]
        if bad:
            raise ConfigError(f"--compare {bad}: checkpoints in the report are {ckpts}")
        cmp: tuple[str, str] | None = (pair[0], pair[1])
    else:
        cmp = (ckpts[0], ckpts[1]) if len(ckpts) >= 2 else None
    # focus layers: the best layer of the primary metric (first checkpoint) and the last one
    focus = _parse_layers(focus_layers, used_layers, "--focus-layers")
    if focus is None:
        focus = [used_layers[-1]]
        for m in data:
            info = metric_info(m)
            mm = means[m]
            mm = mm[mm["checkpoint"] == ckpts[0]]
            if info.direction and not mm.empty:
                best = _best_layers(mm, info.direction, decimals)
                if best:
                    focus = sorted({best[0], used_layers[-1]})
                break
    return _Plan(df, where, list(data), data, means, sels, ckpts, used_layers, focus, cmp,
                 choices, lang_list, decimals, notes, total_rows)  # fmt: skip


def _check_choices(df: pd.DataFrame, metrics: Sequence[str], asked: dict[str, str]) -> None:
    """Every ``--protocol key=value`` must name a key and a value the chosen metrics have.

    Otherwise :func:`select_rows` would fall back to the first value without a word: a report
    asked for ``scoring=csls`` would show cosine numbers.
    """
    if not asked:
        return
    seen: dict[str, set[str]] = {}
    for text in dict.fromkeys(df.loc[df["metric"].isin(list(metrics)), "protocol"].astype(str)):
        try:
            proto = json.loads(text) if text else {}
        except ValueError:
            continue
        for k, v in (proto or {}).items():
            seen.setdefault(str(k), set()).add(json.dumps(v, sort_keys=True))
    for key, value in asked.items():
        if key not in seen:
            raise ConfigError(
                f"--protocol {key}=...: no row of the chosen metrics records {key!r}; keys "
                f"there: {', '.join(sorted(seen)) or '(none)'}"
            )
        if value not in seen[key]:
            have = ", ".join(sorted(protocol_value_text(json.loads(x)) for x in seen[key]))
            raise ConfigError(
                f"--protocol {key}={protocol_value_text(json.loads(value))}: no row of the chosen "
                f"metrics has that value; values there: {have}"
            )


def _outside_range(d: pd.DataFrame, value_range: tuple[float | None, float | None]) -> str:
    """What lies outside a metric's range (empty when nothing does)."""
    lo, hi = value_range
    v = d["value"].astype(float)
    bad = np.zeros(len(v), dtype=bool)
    if lo is not None:
        bad |= (v < lo).to_numpy()
    if hi is not None:
        bad |= (v > hi).to_numpy()
    if not bad.any():
        return ""
    return (
        f"{int(bad.sum())} value(s) outside the metric's range {range_text(value_range)} "
        f"({_where_text(d[bad])}); they are shown as they are"
    )


def _pair_text(lang: Any, lang2: Any) -> str:
    if not lang:
        return "overall"
    return f"{lang}–{lang2}" if lang2 else str(lang)


def _where_text(d: pd.DataFrame, limit: int = 4) -> str:
    """``swh–eng at layers 0-3; deu at layer 5``: which rows (checkpoint named when several).

    >>> d = pd.DataFrame({"checkpoint": "c", "lang": ["swh", "swh", "deu"],
    ...                   "lang2": ["eng", "eng", None], "layer": [0, 1, 5]})
    >>> _where_text(d)
    'swh–eng at layers 0-1; deu at layer 5'
    """
    multi = d["checkpoint"].nunique() > 1
    keys = pd.DataFrame({"c": d["checkpoint"].astype(str), "a": d["lang"].fillna("").astype(str),
                         "b": d["lang2"].fillna("").astype(str), "layer": d["layer"]})  # fmt: skip
    items = []
    for (c, a, b), g in keys.groupby(["c", "a", "b"], sort=False):
        layers = sorted({int(x) for x in g["layer"]})
        who = _pair_text(a, b) + (f" ({c})" if multi else "")
        items.append(f"{who} at layer{'s' if len(layers) > 1 else ''} {_ranges(layers)}")
    more = len(items) - limit
    return "; ".join(items[:limit]) + (f"; and {more} more" if more > 0 else "")


def _rows_text(sel: Selection, means: pd.DataFrame | None = None, *, capital: bool = False) -> str:
    """Every row of a metric accounted for: used, NaN left out, other protocol variants.

    With ``means`` (:func:`layer_means` of the same rows), the rows averaged into them are
    the ones counted as used, and per-language rows beside an overall row are named.
    """
    if means is not None and len(means):
        used = int(means["n_rows"].sum())
        beside = len(sel.rows) - used
    else:
        used, beside = len(sel.rows), 0
    parts = [f"{used} used"]
    bad = sel.nonfinite
    if len(bad):
        vals = bad["value"].astype(float)
        what = "NaN" if vals.isna().all() else "NaN or infinite"
        parts.append(f"{len(bad)} {what} value{'s' if len(bad) != 1 else ''} left out "
                     f"({_where_text(bad)})")  # fmt: skip
    else:
        parts.append("no NaN left out")
    if beside > 0:
        parts.append(f"{beside} per-language row{'s' if beside != 1 else ''} not averaged "
                     "(the checkpoint's overall row is its value)")  # fmt: skip
    if len(sel.excluded):
        counts = ", ".join(f"{k}: {v}" for k, v in sel.other.items())
        parts.append(f"{len(sel.excluded)} row{'s' if len(sel.excluded) != 1 else ''} under "
                     f"other protocol variants not used ({counts})")  # fmt: skip
    if sel.per_row:
        keys = ", ".join(sel.per_row)
        parts.append(f"{keys} differ{'s' if len(sel.per_row) == 1 else ''} between rows by "
                     "construction and neither splits nor filters")  # fmt: skip
    if sel.duplicates:
        parts.append(f"{sel.duplicates} cell(s) hold several rows, averaged")
    return ("Rows: " if capital else "rows: ") + "; ".join(parts)


def _best_layers(mm: pd.DataFrame, direction: str | None, decimals: int) -> list[int]:
    """Layers with the best rounded value (all of them on a tie)."""
    if direction is None or mm.empty:
        return []
    vals = mm["value"].round(decimals)
    target = vals.max() if direction == "higher" else vals.min()
    return [int(x) for x in mm.loc[vals == target, "layer"]]


# ====================================================================== tables


def _metric_header(m: str, *, wrap: bool = False) -> str:
    """``"Retrieval acc. ↑"``; with ``wrap`` a long label is split over two lines.

    >>> _metric_header("translation_contrast", wrap=True)
    'Translation\\ncontrast ↑'
    """
    info = metric_info(m)
    text = f"{info.label} {_ARROW[info.direction]}".strip()
    if wrap and len(text) > 10 and " " in text:
        words = text.split(" ")
        cuts = [(abs(len(" ".join(words[:i])) - len(" ".join(words[i:]))), i)
                for i in range(1, len(words))]  # fmt: skip
        i = min(cuts)[1]
        text = " ".join(words[:i]) + "\n" + " ".join(words[i:])
    return text


def _protocol_note(plan: _Plan, metrics: Sequence[str]) -> str:
    parts = [
        f"{metric_info(m).label}: {protocol_text(plan.data[m]) or 'no protocol recorded'}"
        for m in metrics
    ]
    return "; ".join(parts)


def _value_note(plan: _Plan) -> str:
    return (
        f"Values rounded to {plan.decimals} decimals (comparisons on rounded values). "
        "Layer ℓ = hidden_states[ℓ] (0 = embedding output). ↑/↓: higher/lower is better for "
        "cross-lingual alignment."
    )


def _aggregation_phrase(plan: _Plan, m: str, ckpt: str | Sequence[str] | None = None) -> str:
    """What one value per layer is: the overall row or the mean over N languages / pairs."""
    mm = plan.means[m]
    if ckpt is not None:
        mm = mm[mm["checkpoint"].isin([ckpt] if isinstance(ckpt, str) else list(ckpt))]
    d = plan.data[m]
    parts = []
    over, mean = mm[mm["kind"] == "overall"], mm[mm["kind"] == "mean"]
    mixed = len(over) and len(mean)
    if len(over):
        text = "the checkpoint's overall row (computed over all its sentences)"
        parts.append(text + (f" at layers {_ranges(over['layer'])}" if mixed else ""))
    if len(mean):
        unit = "language pair" if d["lang2"].notna().any() else "language"
        lo, hi = int(mean["n_rows"].min()), int(mean["n_rows"].max())
        count = f"{lo}" if lo == hi else f"{lo} to {hi}"
        text = f"the mean over {count} {unit} rows" + (
            " (the count differs by layer)" if lo != hi else ""
        )
        parts.append(text + (f" at layers {_ranges(mean['layer'])}" if mixed else ""))
    return "; ".join(parts)


def _band_text(plan: _Plan, m: str, ckpts: Sequence[str]) -> str:
    """What the band around each curve is, where none is drawn, and any clipping."""
    mm = plan.means[m]
    mm = mm[mm["checkpoint"].isin(list(ckpts))]
    ckpts = [c for c in ckpts if (mm["checkpoint"] == c).any()]
    with_band = [
        c
        for c in ckpts
        if not mm[mm["checkpoint"] == c].empty
        and mm.loc[mm["checkpoint"] == c, ["ci_low", "ci_high"]].notna().all().all()
    ]
    if not with_band:
        return "no band: no interval is recorded"
    b = mm[mm["checkpoint"].isin(with_band)]
    kinds = set(b["kind"])
    parts = []
    if "overall" in kinds:
        parts.append("the overall row's own bootstrap CI (ci_low–ci_high of the results table)")
    if "mean" in kinds:
        parts.append("the normal-approximation 95% CI of the mean across the rows averaged "
                     "(mean ± 1.96·sd/√n; zero width where one row)")  # fmt: skip
    text = "the band is " + (" where it is the overall row, else ".join(parts))
    missing = [c for c in ckpts if c not in with_band]
    if missing:
        text += f"; no band for {', '.join(missing)} (no interval recorded at every layer)"
    n_clip = int(b["clipped"].sum())
    if n_clip:
        text += (f"; clipped to the metric's range {range_text(metric_range(m))} at "
                 f"{n_clip} layer{'s' if n_clip != 1 else ''}")  # fmt: skip
    return text


def _table_metric_by_layer(plan: _Plan, ckpt: str) -> Table | None:
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
            _best_layers(
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
        f"{metric_info(m).label}: {_aggregation_phrase(plan, m, ckpt)} "
        f"({_rows_text(plan.sel[m].subset(checkpoint=ckpt), _ckpt_means(plan, m, ckpt))})."
        for m, _ in cols
    )
    return Table(
        name=f"metric_by_layer-{_slug(ckpt)}",
        caption=(
            f"Alignment metrics by layer, checkpoint {ckpt} (per-language and per-pair values "
            "averaged, see the note). Bold: the best layer of each metric (last row)."
        ),
        note=f"{_value_note(plan)} Values — {aggs} Protocol — "
        f"{_protocol_note(plan, [m for m, _ in cols])}.",
        header=["Layer"] + [_metric_header(m, wrap=True) for m, _ in cols],
        rows=rows,
        align="r" * (1 + len(cols)),
        data=data,
        rules={len(rows) - 1},
    )


def _ckpt_means(plan: _Plan, m: str, ckpt: str | Sequence[str]) -> pd.DataFrame:
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


def _table_retrieval_by_language(plan: _Plan, layer: int) -> Table | None:
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
        label = "Mean" if i == "mean" else _lang_label(langs[i])  # type: ignore[index]
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
    n = _n_text(d)
    blank = [
        _lang_label(langs[i])
        for i in range(len(langs))
        if any(not np.isfinite(values[(c, kind)][i]) for c in ckpts for _, kind in sub)
    ]
    blank_text = (
        f" –: no finite value ({', '.join(blank)}); the Mean row averages the languages "
        "that have one."
        if blank
        else ""
    )
    rows_text = _rows_text(plan.sel[m].subset(layer=layer))
    what = (
        f"paired with {_short_name(pivot)} ({pivot}); → {pivot}: the language's sentences "
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
            f"{_value_note(plan)} Accuracy is the fraction of sentences whose translation is "
            f"retrieved first ({n or 'n unknown'} sentence pairs per language pair). "
            f"Mean: the mean over the languages.{blank_text} Retrieval acc. at layer {layer}, "
            f"{rows_text}. Protocol — {protocol_text(d)}."
        ),
        header=header,
        rows=rows,
        align="l" + "r" * (len(header) - 1),
        data=data,
        groups=groups,
        rules={len(rows) - 1},
    )


def _table_before_after(plan: _Plan) -> Table | None:
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
            Cell(_metric_header(m)),
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
            _best_layers(ma, info.direction, plan.decimals),
            _best_layers(mb, info.direction, plan.decimals),
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
        note=f"{_value_note(plan)} Δ is the difference of the rounded values. Values — "
        + " ".join(
            f"{metric_info(m).label}: {_aggregation_phrase(plan, m, [a, b])} "
            f"({_rows_text(plan.sel[m].subset(checkpoint=[a, b]), _ckpt_means(plan, m, [a, b]))})."
            for m in dict.fromkeys(r["metric"] for r in recs)
        )
        + " Protocol — "
        f"{_protocol_note(plan, list(dict.fromkeys(r['metric'] for r in recs)))}.",
        header=["Metric", a, b, "Δ"],
        rows=rows,
        align="lrrr",
        data=pd.DataFrame(recs),
        rules=section_rows,
    )


# ====================================================================== figures


def _curve(F: Any, plan: _Plan, m: str) -> go.Figure:
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


def _figure_specs(
    plan: _Plan,
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
        name = _unique(_slug(name), used)
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
            f"{ckpt_text} (one line each); each point is {_aggregation_phrase(plan, m)}; "
            f"{_band_text(plan, m, plan.checkpoints)}.{direction} "
            f"{_rows_text(plan.sel[m], plan.means[m], capital=True)}. "
            f"Protocol: {protocol_text(d)}; {_n_text(d)} per row.",
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
                f"{_rows_text(plan.sel[first].subset(checkpoint=c), capital=True)}. "
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
                f"{_rows_text(plan.sel[m].subset(checkpoint=c, layer=layer), capital=True)}. "
                f"Protocol: {protocol_text(dd)}; {_n_text(dd)}.",
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
                + f". {_rows_text(plan.sel[m].subset(checkpoint=[a, b]), capital=True)}. "
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
            fig.update_xaxes(
                showticklabels=False,
                showgrid=False,
                zeroline=False,
                title=None,
                mirror=True,
                linecolor="#999999",
            )
            fig.update_yaxes(
                showticklabels=False,
                showgrid=False,
                zeroline=False,
                title=None,
                mirror=True,
                linecolor="#999999",
            )
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
        la, lb = (_short_name(x) for x in ex.langs)
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
    return specs


# ====================================================================== documents

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#111;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
table.xalign{border-collapse:collapse;margin:1.2em 0;font-size:.9em}
table.xalign caption{caption-side:top;text-align:left;padding-bottom:.4em}
table.xalign th{border-bottom:1px solid #000;padding:.2em .6em;text-align:center}
table.xalign th.group{border-bottom:1px solid #888}
table.xalign thead tr:first-child th{border-top:2px solid #000}
table.xalign td{padding:.15em .6em}table.xalign td.num{text-align:right;
font-variant-numeric:tabular-nums}
table.xalign tr.rule td{border-top:1px solid #000}table.xalign tbody tr:last-child td{
border-bottom:2px solid #000}
table.xalign td.section{font-style:italic}table.xalign td.note{font-size:.85em;color:#444;
max-width:60em}
figure{margin:1.5em 0}figcaption{font-size:.92em;max-width:60em}
.notes li{color:#444}code{background:#f4f4f4;padding:0 .2em}
"""


def _intro_lines(plan: _Plan, stores: dict[str, Store], summary_stats: dict[str, Any]) -> list[str]:
    lines = [
        f"Results table `{plan.where}`{plan.origin} ({summary_stats['rows']:,} rows). Checkpoints: "
        + ", ".join(
            f"{c}"
            + (
                f" (store `{stores[c].path}`, encoder {stores[c].encoder.get('name')})"
                if c in stores
                else ""
            )
            for c in plan.checkpoints
        )
        + ".",
        f"Metrics: {', '.join(f'{metric_info(m).label} (`{m}`)' for m in plan.metrics)}. "
        f"Layers {_ranges(plan.layers)}; focus layers {', '.join(map(str, plan.focus))}.",
        "Protocol choices applied where a metric has several: "
        + ", ".join(f"{k}={protocol_value_text(json.loads(v))}" for k, v in plan.choices.items())
        + " (other variants are in the results table).",
    ]
    if plan.langs:
        lines.append(f"Languages: {', '.join(_lang_label(x) for x in plan.langs)}.")
    return lines


def _write_markdown(
    path: Path,
    plan: _Plan,
    stores: dict[str, Store],
    tables: list[Table],
    figs: list[FigureSpec],
    notes: list[str],
    stats: dict[str, Any],
) -> None:
    out = ["# Cross-lingual alignment report", ""]
    out += [*_intro_lines(plan, stores, stats), ""]
    out += ["## Tables", ""]
    for i, t in enumerate(tables, start=1):
        out += [to_markdown(t, number=i), f"LaTeX: `tables/{t.name}.tex` · CSV: "
                f"`tables/{t.name}.csv`", ""]  # fmt: skip
    if figs:
        out += ["## Figures", ""]
        for i, f in enumerate(figs, start=1):
            png = next((p for p in f.files if p.suffix == ".png"), None)
            rel = lambda p: p.relative_to(path.parent).as_posix()  # noqa: E731
            if png is not None:
                out.append(f"![Figure {i}]({rel(png)})")
            else:
                out.append(f"[Figure {i} (interactive)](figures/{f.name}.html)")
            others = " · ".join(f"[{p.suffix[1:]}]({rel(p)})" for p in f.files)
            out += ["", f"**Figure {i}.** {f.caption}", "", f"<sub>{others}</sub>", ""]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    out += ["Provenance (xalign version, stores, fingerprints, commands): `provenance.json`.", ""]
    write_text(path, "\n".join(out))


def _write_html(
    path: Path,
    plan: _Plan,
    stores: dict[str, Store],
    tables: list[Table],
    figs: list[FigureSpec],
    notes: list[str],
    stats: dict[str, Any],
) -> None:
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    from xalign.report._figures import screen_copy

    e = html.escape
    body = ["<h1>Cross-lingual alignment report</h1>"]
    for line in _intro_lines(plan, stores, stats):
        body.append(f"<p>{_md_code_to_html(e(line))}</p>")
    body.append("<h2>Tables</h2>")
    for i, t in enumerate(tables, start=1):
        body.append(to_html(t, number=i))
    if figs:
        body.append("<h2>Figures</h2>")
        for i, f in enumerate(figs, start=1):
            div = pio.to_html(
                f.screen or screen_copy(f.figure),
                full_html=False,
                include_plotlyjs=False,
                div_id=f"fig-{f.name}",
                config={"displaylogo": False, "responsive": False},
                validate=False,
            )
            body.append(
                f"<figure>{div}<figcaption><b>Figure {i}.</b> "
                f"{_md_code_to_html(e(f.caption))}</figcaption></figure>"
            )
    if notes:
        body.append("<h2>Notes</h2><ul class='notes'>")
        body += [f"<li>{e(n)}</li>" for n in notes]
        body.append("</ul>")
    body.append("<p>Provenance: <code>provenance.json</code>.</p>")
    doc = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>xalign report</title>"
        f"<style>{_CSS}</style>"
        + (f"<script>{get_plotlyjs()}</script>" if figs else "")
        + "</head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    write_text(path, doc)


def _md_code_to_html(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


# ====================================================================== entry point


def build_report(
    results: str | os.PathLike[str] | pd.DataFrame,
    *,
    out: str | os.PathLike[str],
    stores_root: str | os.PathLike[str] | None = None,
    metrics: Sequence[str] | str | None = None,
    layers: Sequence[int] | str | None = None,
    langs: Sequence[str] | str | None = None,
    checkpoints: Sequence[str] | str | None = None,
    formats: Sequence[str] | str = FORMATS,
    figures: bool = True,
    compare: Sequence[str] | str | None = None,
    focus_layers: Sequence[int] | str | None = None,
    protocol: str | dict[str, Any] | None = None,
    pooling: str = "mean",
    projection: str = "pca",
    decimals: int = 3,
    dpi: int = 300,
    figure_formats: Sequence[str] | str = ("pdf", "svg", "png"),
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> ReportSummary:
    """Write an alignment report for papers from a results table (and its stores).

    Parameters
    ----------
    results : path or DataFrame
        The results table of ``python -m xalign.metrics`` (.parquet or .csv).
    out : path
        Report folder: ``report.md``, ``report.html``, ``tables/``, ``figures/``,
        ``provenance.json``.
    stores_root : path, optional
        Folder holding the stores (found by recorded path, folder name or label); needed
        for cluster projections (cached by ``python -m xalign.project``) and the
        attention-alignment example. Stores at their recorded paths are found without it.
    metrics : list of str, optional
        Metric names of the results table (default: the headline metrics present, see
        :data:`~xalign.report.DEFAULT_METRICS`).
    layers, langs, checkpoints : optional
        Restrict the report (default all). A language pair is kept when either language is
        chosen. The first two checkpoints are compared as before → after unless ``compare``.
    formats : subset of {"latex", "md", "html"}
        Tables as ``.tex``, the Markdown report, the self-contained HTML report. CSV tables
        are always written.
    figures : bool
        Draw figures (interactive HTML always; PDF/SVG/PNG when kaleido finds a browser).
    compare : (before, after), optional
        The checkpoints of the before/after table and difference figures.
    focus_layers : optional
        Layers of the per-language, before/after, heatmap and cluster views (default: the
        best layer of the first metric with a direction, and the last layer).
    protocol : "key=value,..." or dict, optional
        Protocol choices where a metric has several variants (default
        ``centered=false,scoring=cosine``).
    pooling, projection : str
        Which cached projections to draw.
    decimals : int
        Decimals of every number in the tables.
    dpi : int
        PNG resolution (figures are 3.25 in or 7 in wide).
    figure_formats : subset of {"pdf", "svg", "png"}
    command : str, optional
        The command that made the report, recorded in ``provenance.json``.
    log : callable, optional
        Progress messages (e.g. ``print``).

    Returns
    -------
    ReportSummary
    """
    from xalign import __version__
    from xalign.report._export import FORMATS as STATIC_FORMATS
    from xalign.report._export import export_figures
    from xalign.report._stores import find_stores, store_provenance

    say = log or (lambda _msg: None)
    fmts = _as_list(formats) or []
    bad = [f for f in fmts if f not in FORMATS]
    if bad:
        raise ConfigError(f"--format {bad}: allowed values are {', '.join(FORMATS)}")
    if not fmts:
        raise ConfigError(
            f"--format {formats!r}: names no format; give one or more of {', '.join(FORMATS)}"
        )
    sfmts = _as_list(figure_formats) or []
    bad = [f for f in sfmts if f not in STATIC_FORMATS]
    if bad:
        raise ConfigError(f"--figure-formats {bad}: allowed values are {', '.join(STATIC_FORMATS)}")
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 8:
        raise ConfigError(f"--decimals {decimals!r}: expected an integer from 0 to 8")
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 50 <= dpi <= 1200:
        raise ConfigError(f"--dpi {dpi!r}: expected an integer from 50 to 1200")
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ImportError("xalign.report needs plotly: pip install 'xalign[export]'") from None

    plan = _plan(
        results,
        metrics=metrics,
        layers=layers,
        langs=langs,
        checkpoints=checkpoints,
        compare=compare,
        focus_layers=focus_layers,
        protocol=protocol,
        decimals=decimals,
    )
    notes = list(plan.notes)
    pairs = list(dict.fromkeys(zip(plan.df["store"], plan.df["checkpoint"], strict=True)))
    pairs = [(s, c) for s, c in pairs if c in plan.checkpoints]
    stores, store_notes = find_stores(pairs, stores_root)
    # nothing is written before the output folder is known to destroy no input and to lie
    # outside every store (a store is written only through the store API)
    from_file = not isinstance(results, pd.DataFrame)
    inputs: list[Path] = [Path(results)] if from_file else []  # type: ignore[arg-type]
    inputs += [Path(x) for x in dict.fromkeys(plan.df["store"]) if Path(x).is_dir()]
    inputs += [st.path for st in stores.values()]
    out_dir = check_output(out, inputs=inputs, folder=True)
    _refuse_foreign_files(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    res_path = Path(results) if from_file else out_dir / "results.parquet"  # type: ignore[arg-type]
    if isinstance(results, pd.DataFrame):
        # a DataFrame has no file: keep the exact table beside the report, so every number
        # can be traced and regenerated (python -m xalign.report OUT/results.parquet ...)
        with atomic_path(res_path) as tmp:
            results.to_parquet(tmp, index=False)
        plan.where = str(res_path)
        plan.origin = " (a DataFrame passed to build_report, saved with the report)"
    if figures:
        notes += store_notes
    say(f"report: {len(plan.metrics)} metric(s), checkpoints {', '.join(plan.checkpoints)}")

    # tables
    tables: list[Table] = []
    used: set[str] = set()
    for c in plan.checkpoints:
        t = _table_metric_by_layer(plan, c)
        if t is not None:
            t.name = _unique(t.name, used)  # checkpoint labels "a b" and "a-b" share a slug
            tables.append(t)
    ba = _table_before_after(plan)
    if ba is not None:
        tables.append(ba)
    for layer in plan.focus:
        t = _table_retrieval_by_language(plan, layer)
        if t is not None:
            tables.append(t)
    files: list[Path] = []
    for t in tables:
        if "latex" in fmts:
            p = out_dir / "tables" / f"{t.name}.tex"
            write_text(p, to_latex(t))
            files.append(p)
        p = out_dir / "tables" / f"{t.name}.csv"
        write_text(p, to_csv(t))
        files.append(p)

    # figures
    specs: list[FigureSpec] = []
    static, static_msg = False, None
    if figures:
        say("report: drawing figures")
        specs = _figure_specs(plan, stores, pooling=pooling, projection=projection, notes=notes)
        fig_dir = out_dir / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        import plotly.io as pio
        from plotly.offline import get_plotlyjs

        from xalign.report._figures import screen_copy

        if specs:
            js = fig_dir / "plotly.min.js"
            if not js.is_file() or js.stat().st_size != len(get_plotlyjs().encode("utf-8")):
                write_text(js, get_plotlyjs())
            files.append(js)
        for s in specs:
            p = fig_dir / f"{s.name}.html"
            s.screen = screen_copy(s.figure)
            write_text(
                p,
                pio.to_html(
                    s.screen,
                    include_plotlyjs="directory",
                    div_id=f"fig-{s.name}",
                    config={"displaylogo": False},
                    validate=False,
                ),
            )
            s.files.append(p)
            files.append(p)
        if sfmts and specs:
            say(f"report: exporting {len(specs)} figure(s) as {', '.join(sfmts)} (kaleido)")
            res = export_figures(
                [(s.figure, fig_dir / s.name, s.width, s.height) for s in specs],
                formats=sfmts,
                scale=dpi / 96,
            )
            static, static_msg = res.skipped is None, res.skipped
            by_stem: dict[str, list[Path]] = {}
            for p in res.files:
                by_stem.setdefault(p.stem, []).append(p)
            for s in specs:
                got = sorted(by_stem.get(s.name, []), key=lambda p: sfmts.index(p.suffix[1:]))
                s.files[:0] = got
                files += got

    # documents
    stats = {"rows": plan.total_rows}
    if "md" in fmts:
        p = out_dir / "report.md"
        _write_markdown(p, plan, stores, tables, specs, notes, stats)
        files.append(p)
    if "html" in fmts:
        p = out_dir / "report.html"
        _write_html(p, plan, stores, tables, specs, notes, stats)
        files.append(p)

    # provenance
    metrics_cfg = None
    cfg_path = res_path.with_suffix(".config.json")
    if not isinstance(results, pd.DataFrame) and cfg_path.is_file():
        try:
            metrics_cfg = json.loads(cfg_path.read_text("utf-8"))
        except ValueError as e:
            notes.append(f"{cfg_path}: not valid JSON ({e}); the metrics command is not recorded")
    elif isinstance(results, pd.DataFrame) and isinstance(results.attrs.get("config"), dict):
        metrics_cfg = results.attrs["config"]
    if isinstance(results, pd.DataFrame):
        files.append(res_path)
    prov = {
        "xalign_version": __version__,
        "python": sys.version.split()[0],
        "results": {
            "path": plan.where,
            "sha256": hashlib.sha256(res_path.read_bytes()).hexdigest(),
            "source": "DataFrame" if isinstance(results, pd.DataFrame) else "file",
            "rows": stats["rows"],
            "metrics_config": metrics_cfg,
        },
        "stores": [store_provenance(stores[c], c) for c in plan.checkpoints if c in stores],
        "commands": {
            "report": command
            or (
                "build_report("
                + ", ".join(
                    f"{k}={v!r}"
                    for k, v in {
                        "results": plan.where,
                        "out": str(out_dir),
                        "stores_root": None if stores_root is None else str(stores_root),
                        "metrics": metrics,
                        "layers": layers,
                        "langs": langs,
                        "checkpoints": checkpoints,
                        "compare": compare,
                        "focus_layers": focus_layers,
                        "protocol": protocol,
                    }.items()
                    if v is not None
                )
                + ")"
            ),
            "metrics": _metrics_command(metrics_cfg) or _metrics_command_from_table(plan.df),
        },
        "report": {
            "metrics": plan.metrics,
            "checkpoints": plan.checkpoints,
            "layers": plan.layers,
            "focus_layers": plan.focus,
            "compare": list(plan.compare) if plan.compare else None,
            "protocol_choices": {k: json.loads(v) for k, v in plan.choices.items()},
            "languages": plan.langs,
            "decimals": decimals,
            "pooling": pooling,
            "projection": projection,
            "static_figures": static,
        },
        "files": sorted(p.relative_to(out_dir).as_posix() for p in files),
        "notes": notes,
    }
    p = out_dir / "provenance.json"
    write_json(p, prov)
    files.append(p)
    return ReportSummary(
        out=out_dir,
        files=files,
        tables={t.name: t for t in tables},
        figures={s.name: s for s in specs},
        metrics=plan.metrics,
        checkpoints=plan.checkpoints,
        layers=plan.layers,
        focus_layers=plan.focus,
        compare=plan.compare,
        static=static,
        static_message=static_msg,
        notes=notes,
    )


#: Files and folders a report writes at the top of its folder.
_REPORT_NAMES = ("report.md", "report.html", "provenance.json", "config.json", "results.parquet",
                 "tables", "figures")  # fmt: skip


def _refuse_foreign_files(out_dir: Path) -> None:
    """Refuse a folder whose files of the report's names belong to something else.

    A report replaces ``report.md``, ``config.json``... in ``--out``: fine over an earlier
    report (its ``provenance.json`` says so), but ``--out .`` in a project folder would replace
    that project's own ``config.json`` without a word.
    """
    taken = [n for n in _REPORT_NAMES if (out_dir / n).exists()]
    if not taken:
        return
    prov = out_dir / "provenance.json"
    try:
        earlier = json.loads(prov.read_text(encoding="utf-8")) if prov.is_file() else None
    except (OSError, ValueError):
        earlier = None
    commands = earlier.get("commands") if isinstance(earlier, dict) else None
    if isinstance(commands, dict) and "report" in commands:
        return
    raise ConfigError(
        f"--out {out_dir} already holds {', '.join(taken)}, and not from an earlier report "
        "(no report provenance.json there): a report would replace them. Choose a new or empty "
        "folder"
    )


def _metrics_command_from_table(df: pd.DataFrame) -> str:
    """The stores of a results table as a metrics command, when its config was not recorded.

    >>> _metrics_command_from_table(pd.DataFrame({"checkpoint": ["a"], "store": ["runs/a"]}))
    'python -m xalign.metrics a=runs/a  # options not recorded (no results .config.json)'
    """
    stores = dict.fromkeys(zip(df["checkpoint"], df["store"], strict=True))
    return (
        "python -m xalign.metrics "
        + " ".join(f"{c}={st}" for c, st in stores)
        + "  # options not recorded (no results .config.json)"
    )


def _metrics_command(cfg: dict[str, Any] | None) -> str | None:
    """The ``python -m xalign.metrics`` command equivalent to a recorded config (approximate:
    options at their defaults are left out)."""
    if not cfg:
        return None
    import shlex

    from xalign.metrics import MetricsConfig

    default = MetricsConfig(stores=["x"]).to_dict()
    parts = ["python -m xalign.metrics", *map(shlex.quote, map(str, cfg.get("stores", [])))]
    for k, v in cfg.items():
        # the sidecar also records what happened ("notes", "failures"): those are no options
        if k not in default or k in ("stores", "progress") or default.get(k) == v:
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            if k == "dedup" and not v:
                parts.append("--no-dedup")
            elif v:
                parts.append(flag)
        elif isinstance(v, list):
            parts += [flag, shlex.quote(",".join(map(str, v)))]
        elif v is None:
            if k == "pivot":
                parts += [flag, "none"]
        else:
            parts += [flag, shlex.quote(str(v))]
    return " ".join(parts)
