"""Reading a results table and checking it: every column present and of the right kind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import DataError
from xalign.results._schema import RESULTS_COLUMNS

__all__ = ["load_results", "validate_results"]


def load_results(results: str | os.PathLike[str] | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The results table (checked, ``lang``/``lang2`` as None when empty) and where it came from.

    Raises
    ------
    DataError
        The file is missing or unreadable, lacks results columns, or a column holds values of
        the wrong kind (the message names the column and the first bad row).
    """
    if isinstance(results, pd.DataFrame):
        return validate_results(results), "<DataFrame>"
    path = Path(results)
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
    return validate_results(df, path=str(path)), str(path)


def validate_results(df: pd.DataFrame, *, path: str | None = None) -> pd.DataFrame:
    """A checked copy of a results table: exactly the results columns, in order.

    Names present and non-empty, numbers numeric, layers whole and non-negative, counts whole,
    protocols JSON objects, one row per (store, checkpoint, metric, layer, languages,
    protocol); empty ``lang``/``lang2`` become None. ``path`` is named in errors.

    Raises
    ------
    DataError
        Naming the missing column, or the column and first row of a bad value.

    Examples
    --------
    >>> try:
    ...     validate_results(pd.DataFrame({"metric": ["m"], "value": [0.5]}))
    ... except DataError as e:
    ...     print(str(e)[:62])
    not a results table: missing column(s) ['store', 'checkpoint',
    """
    missing = [c for c in RESULTS_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"not a results table: missing column(s) {missing} "
            f"(expected {', '.join(RESULTS_COLUMNS)})",
            path=path,
        )
    if df.empty:
        raise DataError("the results table has no rows", path=path)
    df = df[list(RESULTS_COLUMNS)].reset_index(drop=True)
    _check_columns(df, path)
    for c in ("lang", "lang2"):
        col = df[c].astype(object)
        df[c] = col.where(col.notna() & (col.astype(str) != ""), None)
    return df


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
