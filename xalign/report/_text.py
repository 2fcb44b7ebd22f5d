"""Wording shared by a report's tables, figures and documents: layer lists, language labels,
which rows a number comes from, what a value per layer is."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from xalign.results import Selection, metric_info, metric_range, protocol_text, range_text

if TYPE_CHECKING:
    from xalign.report._plan import Plan

__all__ = [
    "aggregation_phrase",
    "band_text",
    "lang_label",
    "layer_ranges",
    "metric_header",
    "n_text",
    "protocol_note",
    "rows_text",
    "short_name",
    "slug",
    "unique_name",
    "value_note",
    "where_text",
]

_ARROW = {"higher": "↑", "lower": "↓", None: ""}


def layer_ranges(layers: Sequence[int]) -> str:
    """``0-3,6``: compact layer list.

    >>> layer_ranges([0, 1, 2, 3, 6])
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


def lang_label(code: str | None) -> str:
    if code is None:
        return "all"
    try:
        from xalign.data import language_name

        return f"{language_name(str(code))} ({code})"
    except Exception:
        return str(code)


def short_name(code: str) -> str:
    try:
        from xalign.data import language_name

        return language_name(str(code))
    except Exception:
        return str(code)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when already used (then marked used).

    >>> used = set(); unique_name("a", used), unique_name("a", used)
    ('a', 'a-2')
    """
    out, i = name, 1
    while out in used:
        i += 1
        out = f"{name}-{i}"
    used.add(out)
    return out


def n_text(d: pd.DataFrame) -> str:
    n = d["n"].dropna().astype(int)
    if n.empty:
        return ""
    lo, hi = int(n.min()), int(n.max())
    return f"n = {lo}" if lo == hi else f"n = {lo}–{hi}"


def _pair_text(lang: Any, lang2: Any) -> str:
    if not lang:
        return "overall"
    return f"{lang}–{lang2}" if lang2 else str(lang)


def where_text(d: pd.DataFrame, limit: int = 4) -> str:
    """``swh–eng at layers 0-3; deu at layer 5``: which rows (checkpoint named when several).

    >>> d = pd.DataFrame({"checkpoint": "c", "lang": ["swh", "swh", "deu"],
    ...                   "lang2": ["eng", "eng", None], "layer": [0, 1, 5]})
    >>> where_text(d)
    'swh–eng at layers 0-1; deu at layer 5'
    """
    multi = d["checkpoint"].nunique() > 1
    keys = pd.DataFrame({"c": d["checkpoint"].astype(str), "a": d["lang"].fillna("").astype(str),
                         "b": d["lang2"].fillna("").astype(str), "layer": d["layer"]})  # fmt: skip
    items = []
    for (c, a, b), g in keys.groupby(["c", "a", "b"], sort=False):
        layers = sorted({int(x) for x in g["layer"]})
        who = _pair_text(a, b) + (f" ({c})" if multi else "")
        items.append(f"{who} at layer{'s' if len(layers) > 1 else ''} {layer_ranges(layers)}")
    more = len(items) - limit
    return "; ".join(items[:limit]) + (f"; and {more} more" if more > 0 else "")


def rows_text(sel: Selection, means: pd.DataFrame | None = None, *, capital: bool = False) -> str:
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
                     f"({where_text(bad)})")  # fmt: skip
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


def metric_header(m: str, *, wrap: bool = False) -> str:
    """``"Retrieval acc. ↑"``; with ``wrap`` a long label is split over two lines.

    >>> metric_header("translation_contrast", wrap=True)
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


def protocol_note(plan: Plan, metrics: Sequence[str]) -> str:
    parts = [
        f"{metric_info(m).label}: {protocol_text(plan.data[m]) or 'no protocol recorded'}"
        for m in metrics
    ]
    return "; ".join(parts)


def value_note(plan: Plan) -> str:
    return (
        f"Values rounded to {plan.decimals} decimals (comparisons on rounded values). "
        "Layer ℓ = hidden_states[ℓ] (0 = embedding output). ↑/↓: higher/lower is better for "
        "cross-lingual alignment."
    )


def aggregation_phrase(plan: Plan, m: str, ckpt: str | Sequence[str] | None = None) -> str:
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
        parts.append(text + (f" at layers {layer_ranges(over['layer'])}" if mixed else ""))
    if len(mean):
        unit = "language pair" if d["lang2"].notna().any() else "language"
        lo, hi = int(mean["n_rows"].min()), int(mean["n_rows"].max())
        count = f"{lo}" if lo == hi else f"{lo} to {hi}"
        text = f"the mean over {count} {unit} rows" + (
            " (the count differs by layer)" if lo != hi else ""
        )
        parts.append(text + (f" at layers {layer_ranges(mean['layer'])}" if mixed else ""))
    return "; ".join(parts)


def band_text(plan: Plan, m: str, ckpts: Sequence[str]) -> str:
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
