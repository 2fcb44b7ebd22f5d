"""The plan of a report: the rows, metrics, checkpoints and layers it shows, checked once.

:func:`make_plan` reads the results table, applies ``--checkpoints``, ``--layers``,
``--langs``, ``--metrics`` and ``--protocol``, and picks the before/after pair and the focus
layers; every table and figure is drawn from the :class:`Plan` it returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError
from xalign.report._neurons import NEURON_METRICS
from xalign.report._text import layer_ranges, where_text
from xalign.results import (
    DEFAULT_METRICS,
    METRICS,
    Selection,
    filter_languages,
    layer_means,
    load_results,
    metric_info,
    metric_range,
    parse_choice,
    protocol_value_text,
    range_text,
    select_rows,
)

__all__ = ["DEFAULT_PROTOCOL", "NEURON_GROUP", "Plan", "as_list", "best_layers", "is_neuron_metric",
           "make_plan"]  # fmt: skip

#: Protocol choices a report uses unless told otherwise (JSON text, as in ``parse_choice``):
#: raw (uncentred) vectors and plain cosine retrieval, the most common published setting.
DEFAULT_PROTOCOL: dict[str, str] = {"centered": "false", "scoring": '"cosine"'}

#: The metrics group of language-specific feed-forward neurons. Its metrics are never among the
#: metrics a report picks by default; those of :data:`NEURON_METRICS` make a section of their own
#: (:mod:`xalign.report._neurons`), shown whenever the results table has their rows.
NEURON_GROUP = "neurons"


def is_neuron_metric(m: str) -> bool:
    """Whether ``m`` is a metric of the ``neurons`` group.

    >>> is_neuron_metric("neuron_specific_count"), is_neuron_metric("retrieval_acc_mean")
    (True, False)
    """
    info = METRICS.get(m)
    return info is not None and info.group == NEURON_GROUP


def as_list(v: Any) -> list[str] | None:
    """``"a, b"`` or a sequence → ``["a", "b"]``; None stays None."""
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
            f"{what}: layer(s) {bad} not in the results table "
            f"(layers there: {layer_ranges(available)})"
        )
    return sorted(set(items))


@dataclass
class Plan:
    """What a report shows: the filtered rows, per metric its rows under the chosen protocol
    (``data``, ``sel``) and their per-layer values (``means``), and the report's choices.

    ``neurons`` holds the rows of the language-specific neuron metrics of the neuron section
    (:data:`~xalign.report._neurons.NEURON_METRICS`), each under the chosen protocol; they are
    not in ``metrics``."""

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
    neurons: dict[str, Selection] = field(default_factory=dict)

    def store_checkpoints(self) -> list[tuple[str, str]]:
        """(store path, checkpoint) of the checkpoints shown, as the results table orders them."""
        pairs = dict.fromkeys(zip(self.df["store"], self.df["checkpoint"], strict=True))
        return [(s, c) for s, c in pairs if c in self.checkpoints]


def make_plan(
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
) -> Plan:
    df, where = load_results(results)
    total_rows = len(df)
    notes: list[str] = []
    all_ckpts = list(dict.fromkeys(df["checkpoint"]))
    ckpts = as_list(checkpoints)
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
    lang_list = as_list(langs)
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
    wanted = as_list(metrics)
    if wanted:
        bad = [m for m in wanted if m not in present_metrics]
        if bad:
            raise ConfigError(
                f"--metrics {bad}: not in {where} (metrics there: "
                f"{', '.join(sorted(present_metrics))})"
            )
        neuron_metrics = [m for m in NEURON_METRICS if m in wanted]
    else:
        wanted = [m for m in DEFAULT_METRICS if m in present_metrics]
        if not wanted:
            wanted = sorted(m for m in present_metrics if not is_neuron_metric(m))[:8]
        neuron_metrics = [m for m in NEURON_METRICS if m in present_metrics]
    asked = parse_choice(protocol)
    _check_choices(df, list(dict.fromkeys([*wanted, *neuron_metrics])), asked)
    choices = {**DEFAULT_PROTOCOL, **asked}
    data: dict[str, pd.DataFrame] = {}
    means: dict[str, pd.DataFrame] = {}
    sels: dict[str, Selection] = {}
    for m in wanted:
        if m in NEURON_METRICS:
            continue
        sel = _select(df, m, choices, asked, notes)
        if sel is None:
            continue
        data[m], sels[m] = sel.rows, sel
        means[m] = layer_means(sel.rows, metric_range(m))
    neurons: dict[str, Selection] = {}
    for m in neuron_metrics:
        sel = _select(df, m, choices, asked, notes)
        if sel is not None:
            neurons[m] = sel
    if not data and not neurons:
        raise ConfigError(f"none of the metrics {wanted} has values in {where}")
    shown = [*data.values(), *(s.rows for s in neurons.values())]
    used_layers = sorted({int(x) for d in shown for x in d["layer"]})
    ckpts = [c for c in ckpts if any((d["checkpoint"] == c).any() for d in shown)]
    # before/after pair
    pair = as_list(compare)
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
                best = best_layers(mm, info.direction, decimals)
                if best:
                    focus = sorted({best[0], used_layers[-1]})
                break
    return Plan(df, where, list(data), data, means, sels, ckpts, used_layers, focus, cmp,
                choices, lang_list, decimals, notes, total_rows, neurons=neurons)  # fmt: skip


def _select(
    df: pd.DataFrame, m: str, choices: dict[str, str], asked: dict[str, str], notes: list[str]
) -> Selection | None:
    """The rows of ``m`` under the chosen protocol, or None (with a note) when it has none."""
    sel = select_rows(df, m, choices)
    for key, value in asked.items():
        want = protocol_value_text(json.loads(value))
        if key in sel.applied and sel.applied[key] != want:
            notes.append(f"{m}: has no rows with {key}={want}; shown with {key}={sel.applied[key]}")
    if sel.rows.empty:
        why = (
            f"all {len(sel.nonfinite)} rows under the chosen protocol are NaN"
            if len(sel.nonfinite)
            else "no rows under the chosen protocol"
        )
        notes.append(f"{m}: {why}; left out")
        return None
    outside = _outside_range(sel.rows, metric_range(m))
    if outside:
        notes.append(f"{m}: {outside}; check the results table")
    return sel


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
        f"({where_text(d[bad])}); they are shown as they are"
    )


def best_layers(mm: pd.DataFrame, direction: str | None, decimals: int) -> list[int]:
    """Layers with the best rounded value (all of them on a tie)."""
    if direction is None or mm.empty:
        return []
    vals = mm["value"].round(decimals)
    target = vals.max() if direction == "higher" else vals.min()
    return [int(x) for x in mm.loc[vals == target, "layer"]]
