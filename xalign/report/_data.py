"""Reading and selecting the results table for a report: checks, filters, protocol choice,
per-layer aggregation and the protocol text of captions."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_PROTOCOL",
    "RESULTS_COLUMNS",
    "filter_languages",
    "layer_means",
    "load_results",
    "parse_choice",
    "protocol_text",
    "select_metric",
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
        if not path.is_file():
            raise DataError("no such results file (expected .parquet or .csv)", path=path)
        try:
            if path.suffix == ".csv":
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
    df = df[list(RESULTS_COLUMNS)].copy()
    for c in ("lang", "lang2"):
        col = df[c].astype(object)
        df[c] = col.where(col.notna() & (col.astype(str) != ""), None)
    df["checkpoint"] = df["checkpoint"].astype(str)
    df["store"] = df["store"].astype(str)
    df["metric"] = df["metric"].astype(str)
    try:
        df["layer"] = df["layer"].astype(np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"column 'layer' must hold integers ({e})", path=where) from e
    df["protocol"] = df["protocol"].fillna("{}").astype(str)
    return df.reset_index(drop=True), where


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


def select_metric(df: pd.DataFrame, metric: str, choices: Mapping[str, str]) -> pd.DataFrame:
    """Rows of one metric under one protocol (:func:`dashboards.figures.filter_protocol`)."""
    from dashboards.figures import filter_protocol

    return filter_protocol(df, metric, dict(choices))


def layer_means(d: pd.DataFrame) -> pd.DataFrame:
    """One value per (checkpoint, layer): what the metric-by-layer curve (``mode="mean"``)
    draws — the overall row when the table has one, else the mean over languages / pairs.

    Columns ``checkpoint, layer, value, ci_low, ci_high, n_rows, kind`` where ``kind`` is
    ``"overall"`` or ``"mean"``.
    """
    out = []
    for ckpt in dict.fromkeys(d["checkpoint"]):
        dc = d[d["checkpoint"] == ckpt]
        overall = dc[dc["lang"].isna() & dc["lang2"].isna()]
        if not overall.empty:
            g = overall.groupby("layer")[["value", "ci_low", "ci_high"]].mean()
            g["n_rows"] = overall.groupby("layer").size()
            kind = "overall"
        else:
            rows = dc[dc["lang"].notna()]
            s = rows.groupby("layer")["value"]
            g = s.mean().to_frame("value")
            half = (1.96 * s.std(ddof=1) / np.sqrt(s.count())).fillna(0.0)
            g["ci_low"], g["ci_high"] = g["value"] - half, g["value"] + half
            g["n_rows"] = s.count()
            kind = "mean"
        g = g.reset_index()
        g.insert(0, "checkpoint", ckpt)
        g["kind"] = kind
        out.append(g)
    cols = ["checkpoint", "layer", "value", "ci_low", "ci_high", "n_rows", "kind"]
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


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
