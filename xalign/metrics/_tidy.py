"""The tidy long form that metric functions return: one row per (metric, lang, lang2) number.

The results table (:data:`xalign.results.RESULTS_COLUMNS`) is ``store, checkpoint, metric,
layer, lang, lang2, value, n, ci_low, ci_high, protocol``; metric functions fill the subset in
:data:`RESULT_COLUMNS` and the caller adds ``store``, ``checkpoint`` and ``layer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from xalign.results import TIDY_COLUMNS, protocol_json

__all__ = ["RESULT_COLUMNS", "protocol_json", "tidy_frame"]

#: Columns of the tidy frames that metric functions return, in order (the results room's
#: :data:`~xalign.results.TIDY_COLUMNS`).
RESULT_COLUMNS = TIDY_COLUMNS


def tidy_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a frame with exactly :data:`RESULT_COLUMNS` from dicts.

    Missing ``lang``/``lang2`` become None, missing ``ci_low``/``ci_high`` NaN. ``protocol``
    may be a mapping (serialised with :func:`~xalign.results.protocol_json`) or a JSON string.

    >>> df = tidy_frame([{"metric": "m", "value": 0.5, "n": 3, "protocol": {"seed": 0}}])
    >>> df.loc[0, "lang"] is None, df.loc[0, "protocol"]
    (True, '{"seed":0}')
    """
    rows = []
    for r in records:
        proto = r.get("protocol", {})
        rows.append(
            {
                "metric": str(r["metric"]),
                "lang": None if r.get("lang") is None else str(r["lang"]),
                "lang2": None if r.get("lang2") is None else str(r["lang2"]),
                "value": float(r["value"]),
                "n": int(r["n"]),
                "ci_low": float(r.get("ci_low", np.nan)),
                "ci_high": float(r.get("ci_high", np.nan)),
                "protocol": proto if isinstance(proto, str) else protocol_json(proto),
            }
        )
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    df = df.astype(
        {
            "metric": object,
            "lang": object,
            "lang2": object,
            "value": "float64",
            "n": "int64",
            "ci_low": "float64",
            "ci_high": "float64",
            "protocol": object,
        }
    )
    for c in ("lang", "lang2"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df
