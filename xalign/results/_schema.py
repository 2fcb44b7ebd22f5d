"""The results table's columns and its protocol JSON: how a number records what made it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError

__all__ = [
    "PROTOCOL_KEY_ORDER",
    "RESULTS_COLUMNS",
    "TIDY_COLUMNS",
    "describe_protocol",
    "parse_choice",
    "parse_protocol",
    "parse_protocols",
    "protocol_json",
    "protocol_text",
    "protocol_value_text",
]

#: Columns of the results table, in order (DESIGN.md "Results").
RESULTS_COLUMNS = (
    "store", "checkpoint", "metric", "layer", "lang", "lang2", "value", "n", "ci_low",
    "ci_high", "protocol",
)  # fmt: skip

#: Columns of the tidy frames that metric functions return, in order: the results columns
#: less ``store``, ``checkpoint`` and ``layer``, which the caller adds.
TIDY_COLUMNS = tuple(c for c in RESULTS_COLUMNS if c not in ("store", "checkpoint", "layer"))

#: The order in which protocol keys are shown (captions, dashboard controls): the choices that
#: matter most first, the others alphabetically after them. The JSON itself sorts its keys.
PROTOCOL_KEY_ORDER = ("pooling", "centered", "scoring", "direction", "margin", "k", "dedup",
                      "metric", "similarity", "units")  # fmt: skip


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


def protocol_json(choices: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces) of the choices that change a number.

    >>> protocol_json({"seed": 0, "centered": False})
    '{"centered":false,"seed":0}'
    """
    return json.dumps(
        {k: _plain(v) for k, v in choices.items()}, sort_keys=True, separators=(",", ":")
    )


def parse_protocol(text: str | None) -> dict[str, str]:
    """One ``protocol`` cell as ``{key: JSON text of its value}`` (``{}`` when empty or not JSON).

    JSON text keeps ``null``, ``false`` and numbers distinct and hashable.

    >>> parse_protocol('{"centered":false,"scoring":"margin","k":4}')
    {'centered': 'false', 'scoring': '"margin"', 'k': '4'}
    """
    try:
        d = json.loads(text) if text else {}
    except ValueError:
        d = {}
    if not isinstance(d, dict):
        d = {}
    return {k: json.dumps(v, sort_keys=True) for k, v in d.items()}


def parsed_protocols(protocols: pd.Series) -> list[dict[str, str]]:
    """:func:`parse_protocol` of every cell (each distinct text parsed once)."""
    cache: dict[str, dict[str, str]] = {}
    out = []
    for p in protocols.astype(str):
        if p not in cache:
            cache[p] = parse_protocol(p)
        out.append(cache[p])
    return out


def parse_protocols(results: pd.DataFrame) -> pd.DataFrame:
    """The results table with one ``p:<key>`` column per protocol key (values as JSON text).

    Filtering on protocol choices is then plain pandas; a row without the key holds ``null``.
    """
    df = results.copy()
    parsed = parsed_protocols(df["protocol"].fillna("{}"))
    keys = sorted({k for d in parsed for k in d})
    for k in keys:
        df[f"p:{k}"] = [d.get(k, "null") for d in parsed]
    return df


def key_rank(key: str) -> tuple[int, str]:
    """Sort key of a protocol key: :data:`PROTOCOL_KEY_ORDER` first, then alphabetical."""
    rank = PROTOCOL_KEY_ORDER.index(key) if key in PROTOCOL_KEY_ORDER else len(PROTOCOL_KEY_ORDER)
    return rank, key


def protocol_value_text(v: Any) -> str:
    """A protocol value (parsed JSON) as caption text.

    >>> protocol_value_text(True), protocol_value_text("margin"), protocol_value_text([1, 2])
    ('true', 'margin', '[1, 2]')
    """
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
    keys = sorted({k for p in protos for k in p}, key=key_rank)
    fixed, varying = [], []
    for k in keys:
        vals = {json.dumps(p.get(k), sort_keys=True) for p in protos}
        if len(vals) > 1:
            varying.append(k)
            continue
        v = protos[0].get(k)
        if v is None:
            continue
        fixed.append(f"{k}={protocol_value_text(v)}")
    text = ", ".join(fixed)
    if varying:
        text += ("; " if text else "") + "varying: " + ", ".join(varying)
    return text


def describe_protocol(applied: Mapping[str, str]) -> str:
    """``scoring=cosine, centered=false``: a protocol choice (JSON text values) as one line.

    >>> describe_protocol({"scoring": '"cosine"', "centered": "false"})
    'scoring=cosine, centered=false'
    """
    out = []
    for k, v in applied.items():
        text = str(v)
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = json.loads(text)
        out.append(f"{k}={text}")
    return ", ".join(out)


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
