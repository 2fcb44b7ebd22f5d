"""Choosing rows of the results table and averaging them: one protocol per number.

Protocol keys are of three kinds: choices (rows that differ in one are different numbers,
never averaged together), per-row facts (sample sizes, distractor counts: they differ
between language pairs by construction and never split or filter an average) and diagonal
keys (a second layer axis, read where it equals the row's layer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xalign.results._schema import key_rank, parsed_protocols, protocol_value_text

__all__ = [
    "CHOICE_KEYS",
    "DIAGONAL_KEYS",
    "PER_ROW_KEYS",
    "Selection",
    "aggregate_by_language",
    "filter_languages",
    "filter_protocol",
    "layer_means",
    "protocol_options",
    "select_metric",
    "select_rows",
]


def filter_languages(df: pd.DataFrame, langs: Sequence[str] | None) -> pd.DataFrame:
    """Rows about the chosen languages (a pair is kept when either language is chosen).

    Overall rows (no language) are kept only for metrics that have no per-language rows:
    for the others the report averages the chosen languages' rows instead.
    """
    if not langs:
        return df
    keep_l = set(langs)
    lang, lang2 = df["lang"], df["lang2"]
    per_lang = lang.notna() & (lang.isin(keep_l) | lang2.isin(keep_l))
    has_lang = set(df.loc[lang.notna(), "metric"])
    overall = lang.isna() & ~df["metric"].isin(has_lang)
    return df[per_lang | overall]


#: Protocol keys that record what a row was computed on rather than a choice: they differ
#: between language pairs (and layers, checkpoints) by construction, so they never split or
#: filter an average; captions name them as varying per row.
PER_ROW_KEYS = frozenset({
    "n", "n_distractors", "n_gold", "n_gold_test", "n_gold_tune", "n_src", "n_tgt",
    "n_sentences", "n_rows", "n_tokens", "n_words", "gold_sure", "gold_possible", "predicted",
})  # fmt: skip

#: Protocol keys that are choices of the person running the metrics: rows that differ in one
#: of them are different numbers and are never averaged together (one value is chosen).
CHOICE_KEYS = (
    "pooling", "centered", "scoring", "direction", "margin", "k", "candidates", "dedup",
    "similarity", "metric", "distance", "kernel", "debiased", "pairing", "method", "source",
    "attention", "heads", "links", "merge", "subwords", "specials", "prefix", "units",
    "sample_size", "stratified", "n_random", "held_out_fraction", "probe", "C", "max_iter",
    "standardize", "cv", "control", "seed", "n_boot", "alpha", "threshold", "max_length",
    "other_store", "other_checkpoint",
)  # fmt: skip

#: Keys that index a second axis of the same metric: a report reads the diagonal (the row
#: whose value equals the row's own layer), e.g. CKA of layer ℓ with the other checkpoint's ℓ.
DIAGONAL_KEYS = ("other_layer",)

_CELL = ["store", "checkpoint", "layer", "lang", "lang2"]


@dataclass
class Selection:
    """The rows of one metric a report uses, and an account of every row it does not use.

    Attributes
    ----------
    metric : str
    rows : DataFrame
        Rows under the chosen protocol with a finite value: what every number is made from.
    nonfinite : DataFrame
        Rows under the chosen protocol whose value is NaN or infinite (left out of averages).
    excluded : DataFrame
        Rows under another protocol variant, with a column ``reason`` (``"centered=true"``).
    applied : dict
        The protocol choice applied per key (plain text values), where the metric had several.
    per_row : list of str
        Keys that differ between rows by construction (sample sizes, distractor counts): they
        neither split nor filter.
    """

    metric: str
    rows: pd.DataFrame
    nonfinite: pd.DataFrame
    excluded: pd.DataFrame
    applied: dict[str, str] = field(default_factory=dict)
    per_row: list[str] = field(default_factory=list)

    @property
    def other(self) -> dict[str, int]:
        """``reason -> row count`` of the rows under other protocol variants."""
        return {str(k): int(v) for k, v in self.excluded["reason"].value_counts(sort=False).items()}

    @property
    def duplicates(self) -> int:
        """Cells (store, checkpoint, layer, language pair) holding several used rows."""
        if self.rows.empty:
            return 0
        cols = [c for c in _CELL if c in self.rows.columns]
        return int((self.rows[cols].astype(str).value_counts() > 1).sum())

    def subset(self, **equal: Any) -> Selection:
        """The same account restricted to rows whose columns equal ``equal`` (``layer=3``), or
        take one of its values when a list (``checkpoint=["a", "b"]``)."""

        def keep(d: pd.DataFrame) -> pd.DataFrame:
            mask = np.ones(len(d), dtype=bool)
            for k, v in equal.items():
                mask &= (d[k].isin(v) if isinstance(v, list | tuple) else d[k] == v).to_numpy()
            return d[mask]

        return Selection(self.metric, keep(self.rows), keep(self.nonfinite),
                         keep(self.excluded), self.applied, self.per_row)  # fmt: skip


def select_rows(
    df: pd.DataFrame, metric: str, choices: Mapping[str, str] | None = None
) -> Selection:
    """The rows of ``metric`` under one protocol, with an account of what is left out.

    Protocol keys are of three kinds. A *choice* (:data:`CHOICE_KEYS`, and any other key that
    takes several values for one and the same cell — store, checkpoint, layer, language pair)
    is fixed to the value in ``choices`` when the rows have it, else to the first value they
    have; the rows under other values are counted in :attr:`Selection.other`. A *per-row* key
    (:data:`PER_ROW_KEYS`, and any other key that only differs between cells) never filters:
    a Tatoeba table whose BUCC rows have 195 distractors for one pair and 500 for the others
    averages all four pairs. A *diagonal* key (:data:`DIAGONAL_KEYS`) keeps the row whose value
    is the row's own layer. Rows with a NaN or infinite value are set aside, never dropped
    silently (:attr:`Selection.nonfinite`).

    Examples
    --------
    >>> d = pd.DataFrame({"store": "s", "checkpoint": "c", "metric": "bucc_f1", "layer": 0,
    ...     "lang": ["cmn", "swh", "cmn", "swh"], "lang2": "eng", "value": [.9, .5, .8, np.nan],
    ...     "protocol": ['{"centered":false,"n_distractors":500}',
    ...                  '{"centered":false,"n_distractors":195}',
    ...                  '{"centered":true,"n_distractors":500}',
    ...                  '{"centered":true,"n_distractors":195}']})
    >>> s = select_rows(d, "bucc_f1", {"centered": "false"})
    >>> s.rows["lang"].tolist(), s.other, s.per_row
    (['cmn', 'swh'], {'centered=true': 2}, ['n_distractors'])
    """
    d = df[df["metric"] == metric].reset_index(drop=True)
    protos = parsed_protocols(d["protocol"]) if len(d) else []
    keys = sorted({k for p in protos for k in p})
    table = pd.DataFrame(
        {k: [p.get(k, "null") for p in protos] for k in keys}, index=d.index, dtype=object
    )
    dropped: list[pd.DataFrame] = []
    for k in DIAGONAL_KEYS:
        if k in table:
            own = d.loc[table.index, "layer"].astype(int).map(lambda x: json.dumps(int(x)))
            keep = (table[k] == own) | (table[k] == "null")
            dropped.append(d.loc[table.index[~keep]].assign(reason=f"{k} ≠ layer"))
            table = table[keep]
    applied: dict[str, str] = {}
    rank = {k: i for i, k in enumerate(CHOICE_KEYS)}
    ordered = sorted(keys, key=lambda k: (rank.get(k, len(rank)), k))
    cells = d[[c for c in _CELL if c in d.columns]].astype(str)
    per_row: list[str] = []
    for key in ordered:
        if key in DIAGONAL_KEYS:
            continue
        col = table[key]
        vals = sorted(col.unique().tolist())
        if len(vals) <= 1:
            continue
        if key in PER_ROW_KEYS:
            per_row.append(key)
            continue
        if key not in rank:
            c = cells.loc[col.index]
            within = pd.concat([c, col.rename("_v")], axis=1).groupby(list(c.columns), dropna=False)
            if not (within["_v"].nunique() > 1).any():
                per_row.append(key)
                continue
        want = (choices or {}).get(key)
        pick = str(want) if want in vals else str(vals[0])
        rest = col[col != pick]
        reasons = rest.map(lambda v, key=key: f"{key}={protocol_value_text(json.loads(v))}")
        dropped.append(d.loc[rest.index].assign(reason=reasons.to_numpy()))
        table = table[col == pick]
        applied[key] = protocol_value_text(json.loads(pick))
    chosen = d.loc[table.index]
    finite = np.isfinite(pd.to_numeric(chosen["value"], errors="coerce").to_numpy(dtype=float))
    excluded = pd.concat(dropped) if dropped else d.iloc[:0].assign(reason=pd.Series(dtype=object))
    return Selection(metric, chosen[finite], chosen[~finite], excluded, applied, sorted(per_row))


def select_metric(
    df: pd.DataFrame, metric: str, choices: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Rows of one metric under one protocol with a finite value (see :func:`select_rows`)."""
    return select_rows(df, metric, choices).rows


def layer_means(
    d: pd.DataFrame, value_range: tuple[float | None, float | None] = (None, None)
) -> pd.DataFrame:
    """One value per (checkpoint, layer): what the metric-by-layer curve and table show.

    At each layer the checkpoint's overall row (no language) when it has one, with the row's own
    interval (bootstrap CI); else the mean over every per-language or per-pair row with the
    normal-approximation 95 % interval of that mean across them (mean ± 1.96·sd/√n, zero width
    for one row). ``d`` must hold finite values only (:func:`select_rows`). Intervals are
    clipped to ``value_range`` (the metric's range), so a band never leaves it.

    Columns ``checkpoint, layer, value, ci_low, ci_high, n_rows, kind, clipped`` where ``kind``
    is ``"overall"`` or ``"mean"``, ``n_rows`` the rows averaged and ``clipped`` whether an
    interval end was moved onto the range.

    Examples
    --------
    >>> d = pd.DataFrame({"checkpoint": "c", "layer": [0, 0, 0], "lang": ["a", "b", "c"],
    ...     "lang2": None, "value": [0.98, 1.0, 0.9], "ci_low": np.nan, "ci_high": np.nan})
    >>> m = layer_means(d, (0.0, 1.0))
    >>> float(m["ci_high"].iloc[0]), int(m["n_rows"].iloc[0]), bool(m["clipped"].iloc[0])
    (1.0, 3, True)
    """
    out = []
    for (ckpt, layer), dc in d.groupby(["checkpoint", "layer"], sort=False):
        overall = dc[dc["lang"].isna() & dc["lang2"].isna()]
        if not overall.empty:
            rec = {"value": overall["value"].mean(), "ci_low": overall["ci_low"].mean(),
                   "ci_high": overall["ci_high"].mean(), "n_rows": len(overall),
                   "kind": "overall"}  # fmt: skip
        else:
            s = dc.loc[dc["lang"].notna(), "value"]
            half = 1.96 * s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else 0.0
            rec = {"value": s.mean(), "ci_low": s.mean() - half, "ci_high": s.mean() + half,
                   "n_rows": len(s), "kind": "mean"}  # fmt: skip
        out.append({"checkpoint": ckpt, "layer": int(layer), **rec})
    cols = ["checkpoint", "layer", "value", "ci_low", "ci_high", "n_rows", "kind", "clipped"]
    if not out:
        return pd.DataFrame(columns=cols)
    m = pd.DataFrame(out)
    order = {c: i for i, c in enumerate(dict.fromkeys(d["checkpoint"]))}
    m["_order"] = m["checkpoint"].map(order)
    m = m.sort_values(["_order", "layer"], kind="stable").reset_index(drop=True)
    lo, hi = value_range
    m["clipped"] = False
    for c in ("ci_low", "ci_high"):
        clipped = m[c].clip(lower=lo, upper=hi)
        m["clipped"] |= (clipped.ne(m[c]) & m[c].notna()).to_numpy()
        m[c] = clipped
    return m[cols]


def _choice_keys(d: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Keys of ``table`` (parsed protocols of ``d``) that :func:`select_rows` treats as choices."""
    cells = d[[c for c in _CELL if c in d.columns]].astype(str)
    out = []
    for key in table.columns:
        if key in DIAGONAL_KEYS or key in PER_ROW_KEYS or table[key].nunique() <= 1:
            continue
        if key not in CHOICE_KEYS:
            both = pd.concat([cells, table[key].rename("_v")], axis=1)
            within = both.groupby(list(cells.columns), dropna=False)["_v"].nunique()
            if not (within > 1).any():
                continue
        out.append(str(key))
    return sorted(out, key=key_rank)


def _protocol_table(d: pd.DataFrame) -> pd.DataFrame:
    protos = parsed_protocols(d["protocol"].fillna("{}")) if len(d) else []
    keys = sorted({k for p in protos for k in p})
    return pd.DataFrame(
        {k: [p.get(k, "null") for p in protos] for k in keys}, index=d.index, dtype=object
    )


def protocol_options(results: pd.DataFrame, metric: str) -> dict[str, list[str]]:
    """For one metric, the protocol choices that take more than one value, with their values
    (JSON text), in :data:`~xalign.results.PROTOCOL_KEY_ORDER`.

    Per-row facts such as ``n_distractors`` are not choices and are never offered.

    Examples
    --------
    >>> d = pd.DataFrame({"store": "s", "checkpoint": "c", "metric": "bucc_f1", "layer": 0,
    ...     "lang": ["cmn", "swh", "cmn", "swh"], "lang2": "eng", "value": [.9, .5, .8, .4],
    ...     "protocol": ['{"centered":false,"n_distractors":500}',
    ...                  '{"centered":false,"n_distractors":195}',
    ...                  '{"centered":true,"n_distractors":500}',
    ...                  '{"centered":true,"n_distractors":195}']})
    >>> protocol_options(d, "bucc_f1")
    {'centered': ['false', 'true']}
    """
    d = results[results["metric"] == metric].reset_index(drop=True)
    table = _protocol_table(d)
    return {k: sorted(table[k].unique().tolist()) for k in _choice_keys(d, table)}


def filter_protocol(
    results: pd.DataFrame, metric: str, choices: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Rows of ``metric`` under one protocol, in table order (those with a NaN value too).

    The rows of :func:`select_rows` (choices fixed to ``choices`` where the rows have the
    value, else to the first value; per-row facts never filter), for a view that plots them.
    ``.attrs["protocol"]`` holds the choice applied per key of :func:`protocol_options`, as
    JSON text.
    """
    d = results[results["metric"] == metric].reset_index(drop=True)
    s = select_rows(d, metric, choices)
    out = d.loc[s.rows.index.union(s.nonfinite.index)].copy()
    table = _protocol_table(out)
    applied = {}
    for key in _choice_keys(d, _protocol_table(d)):
        vals = table[key].unique().tolist() if key in table else ["null"]
        if len(vals) == 1:
            applied[key] = str(vals[0])
    out.attrs["protocol"] = applied
    return out


def aggregate_by_language(d: pd.DataFrame) -> pd.DataFrame:
    """One value per (checkpoint, layer, language) from rows of one metric and protocol.

    Per-language rows are used as they are; for pairwise rows (``lang2`` set) a language's
    value is the mean over every pair it takes part in (as query or as target). Columns:
    ``checkpoint, layer, lang, value, ci_low, ci_high``.
    """
    cols = ["checkpoint", "layer", "lang", "value", "ci_low", "ci_high"]
    d = d[d["lang"].notna()]
    if d.empty:
        return pd.DataFrame(columns=cols)
    if d["lang2"].notna().any():
        a = d[["checkpoint", "layer", "lang", "value"]]
        b = d[d["lang2"].notna()][["checkpoint", "layer", "lang2", "value"]].rename(
            columns={"lang2": "lang"}
        )
        both = pd.concat([a, b], ignore_index=True)
        out = both.groupby(["checkpoint", "layer", "lang"], sort=False)["value"].mean()
        out = out.reset_index()
        out["ci_low"] = np.nan
        out["ci_high"] = np.nan
        return out[cols]
    out = d.groupby(["checkpoint", "layer", "lang"], sort=False)[["value", "ci_low", "ci_high"]]
    return out.mean().reset_index()[cols]
