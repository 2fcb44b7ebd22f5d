"""Reading and selecting the results table for a report: checks, filters, protocol choice,
per-layer aggregation and the protocol text of captions."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError

__all__ = [
    "CHOICE_KEYS",
    "DEFAULT_PROTOCOL",
    "DIAGONAL_KEYS",
    "PER_ROW_KEYS",
    "RESULTS_COLUMNS",
    "Selection",
    "filter_languages",
    "layer_means",
    "load_results",
    "parse_choice",
    "protocol_text",
    "select_metric",
    "select_rows",
]

RESULTS_COLUMNS = (
    "store", "checkpoint", "metric", "layer", "lang", "lang2", "value", "n", "ci_low",
    "ci_high", "protocol",
)  # fmt: skip

#: Protocol choices a report uses unless told otherwise (JSON text, as in the ``p:`` columns):
#: raw (uncentred) vectors and plain cosine retrieval, the most common published setting.
DEFAULT_PROTOCOL: dict[str, str] = {"centered": "false", "scoring": '"cosine"'}


def load_results(results: str | os.PathLike[str] | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The results table (checked, ``lang``/``lang2`` as None when empty) and where it came from.

    Raises
    ------
    DataError
        The file is missing, unreadable or lacks results columns.
    """
    if isinstance(results, pd.DataFrame):
        df, where = results.copy(), "<DataFrame>"
    else:
        path = Path(results)
        where = str(path)
        if path.suffix.lower() not in (".parquet", ".csv"):
            raise DataError(
                f"unknown results file type {path.suffix or '(no suffix)'!r} "
                "(expected .parquet or .csv)",
                path=path,
            )
        if not path.is_file():
            raise DataError("no such results file (expected .parquet or .csv)", path=path)
        try:
            if path.suffix.lower() == ".csv":
                df = pd.read_csv(path, dtype={"lang": object, "lang2": object})
            else:
                df = pd.read_parquet(path)
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"cannot read results table ({first})", path=path) from e
    missing = [c for c in RESULTS_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"not a results table: missing column(s) {missing} "
            f"(expected {', '.join(RESULTS_COLUMNS)})",
            path=None if where == "<DataFrame>" else where,
        )
    if df.empty:
        raise DataError(
            "the results table has no rows", path=None if where.startswith("<") else where
        )
    df = df[list(RESULTS_COLUMNS)].reset_index(drop=True)
    _check_columns(df, None if where.startswith("<") else where)
    for c in ("lang", "lang2"):
        col = df[c].astype(object)
        df[c] = col.where(col.notna() & (col.astype(str) != ""), None)
    return df, where


def _first(mask: Any) -> str:
    """``"3 rows, first row 17"`` for a boolean mask over the table (rows counted from 1)."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    return f"{len(idx)} row{'s' if len(idx) != 1 else ''}, first row {int(idx[0]) + 1}"


def _check_columns(df: pd.DataFrame, path: str | None) -> None:
    """Check every column's values in place (the table is already a copy): names present,
    numbers numeric, layers whole and non-negative, protocols JSON objects, one row per key.

    A value of the wrong kind is refused with the column and the first row rather than cast:
    ``astype(int)`` would turn layer 0.5 into 0, and a text value would fail deep inside an
    average.
    """
    for c in ("store", "checkpoint", "metric"):
        col = df[c]
        bad = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
        if bad.any():
            raise DataError(f"column {c!r} is empty or null in {_first(bad)}", path=path)
        df[c] = col.astype(str)
    for c in ("value", "n", "ci_low", "ci_high", "layer"):
        col = df[c]
        if pd.api.types.is_bool_dtype(col):
            raise DataError(f"column {c!r} holds true/false; expected numbers", path=path)
        num = pd.to_numeric(col, errors="coerce")
        bad = (num.isna() & col.notna() & (col.astype(str).str.strip() != "")).to_numpy()
        if bad.any():
            first = col[bad].iloc[0]
            raise DataError(
                f"column {c!r} holds {first!r} and other non-numbers ({_first(bad)}); "
                "expected numbers",
                path=path,
            )
        if not pd.api.types.is_numeric_dtype(col):
            df[c] = num.astype(float)
    layer = df["layer"].to_numpy(dtype=float)
    bad = ~np.isfinite(layer) | (layer != np.round(layer)) | (layer < 0)
    if bad.any():
        first = float(layer[bad][0])
        raise DataError(
            f"column 'layer' holds {first!r} ({_first(bad)}); expected whole numbers >= 0 "
            "(0 = embedding output)",
            path=path,
        )
    df["layer"] = layer.astype(np.int64)
    n = df["n"].to_numpy(dtype=float)
    bad = np.isfinite(n) & ((n < 0) | (n != np.round(n)))
    if bad.any():
        raise DataError(
            f"column 'n' holds {float(n[bad][0])!r} ({_first(bad)}); expected a count", path=path
        )
    protos = df["protocol"].astype(object).where(df["protocol"].notna(), "{}").astype(str)
    protos = protos.where(protos.str.strip() != "", "{}")
    for text in dict.fromkeys(protos):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            bad = (protos == text).to_numpy()
            raise DataError(
                f"column 'protocol' holds {text[:60]!r} ({_first(bad)}); expected a JSON object "
                'like {"pooling": "mean"}',
                path=path,
            )
    df["protocol"] = protos
    key = ["store", "checkpoint", "metric", "layer", "lang", "lang2", "protocol"]
    dup = df[key].astype(str).duplicated().to_numpy()
    if dup.any():
        raise DataError(
            f"{_first(dup)}: a row repeats an earlier row's store, checkpoint, metric, layer, "
            "languages and protocol; a results table holds one row per result (was a table "
            "appended twice? drop the repeats, e.g. df.drop_duplicates())",
            path=path,
        )


def parse_choice(spec: str | Mapping[str, Any] | None) -> dict[str, str]:
    """Protocol choices ``"centered=true,scoring=margin"`` as JSON text values.

    Examples
    --------
    >>> parse_choice("centered=true,scoring=margin,k=4")
    {'centered': 'true', 'scoring': '"margin"', 'k': '4'}
    """
    if spec is None:
        return {}
    items: list[tuple[str, Any]]
    if isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        items = []
        for part in str(spec).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ConfigError(f"--protocol {part!r}: expected key=value (e.g. centered=true)")
            k, v = part.split("=", 1)
            items.append((k.strip(), v.strip()))
    out = {}
    for k, v in items:
        if isinstance(v, str):
            with contextlib.suppress(ValueError):
                v = json.loads(v)
        out[str(k)] = json.dumps(v, sort_keys=True)
    return out


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


def _parsed(protocols: pd.Series) -> list[dict[str, str]]:
    cache: dict[str, dict[str, str]] = {}
    out = []
    for p in protocols.astype(str):
        if p not in cache:
            try:
                d = json.loads(p) if p else {}
            except ValueError:
                d = {}
            cache[p] = {k: json.dumps(v, sort_keys=True) for k, v in (d or {}).items()}
        out.append(cache[p])
    return out


def select_rows(df: pd.DataFrame, metric: str, choices: Mapping[str, str]) -> Selection:
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
    protos = _parsed(d["protocol"]) if len(d) else []
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
        want = choices.get(key)
        pick = str(want) if want in vals else str(vals[0])
        rest = col[col != pick]
        reasons = rest.map(lambda v, key=key: f"{key}={_plain(json.loads(v))}")
        dropped.append(d.loc[rest.index].assign(reason=reasons.to_numpy()))
        table = table[col == pick]
        applied[key] = _plain(json.loads(pick))
    chosen = d.loc[table.index]
    finite = np.isfinite(pd.to_numeric(chosen["value"], errors="coerce").to_numpy(dtype=float))
    excluded = pd.concat(dropped) if dropped else d.iloc[:0].assign(reason=pd.Series(dtype=object))
    return Selection(metric, chosen[finite], chosen[~finite], excluded, applied, sorted(per_row))


def select_metric(df: pd.DataFrame, metric: str, choices: Mapping[str, str]) -> pd.DataFrame:
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


_KEY_ORDER = ("pooling", "centered", "scoring", "direction", "margin", "k", "dedup", "metric",
              "similarity", "units")  # fmt: skip


def _plain(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def protocol_text(d: pd.DataFrame) -> str:
    """The protocol shared by every row of ``d`` as ``key=value`` pairs (null values left out;
    keys whose value differs between rows, like per-row counts, are named as varying).

    Examples
    --------
    >>> d = pd.DataFrame({"protocol": ['{"centered":false,"k":null,"n":3}',
    ...                                '{"centered":false,"k":null,"n":4}']})
    >>> protocol_text(d)
    'centered=false; varying: n'
    """
    protos = [json.loads(p) if p else {} for p in dict.fromkeys(d["protocol"].astype(str))]
    rank = {k: i for i, k in enumerate(_KEY_ORDER)}
    keys = sorted({k for p in protos for k in p}, key=lambda k: (rank.get(k, len(rank)), k))
    fixed, varying = [], []
    for k in keys:
        vals = {json.dumps(p.get(k), sort_keys=True) for p in protos}
        if len(vals) > 1:
            varying.append(k)
            continue
        v = protos[0].get(k)
        if v is None:
            continue
        fixed.append(f"{k}={_plain(v)}")
    text = ", ".join(fixed)
    if varying:
        text += ("; " if text else "") + "varying: " + ", ".join(varying)
    return text
