"""``provenance.json``: what made a report (xalign version, results hash, stores and their
fingerprints, the metrics and report commands) and what it holds."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from xalign._io import write_json
from xalign.report._stores import store_provenance

if TYPE_CHECKING:
    from xalign.report._plan import Plan
    from xalign.store import Store

__all__ = ["call_text", "write_provenance"]


def write_provenance(
    path: Path,
    *,
    results: str | os.PathLike[str] | pd.DataFrame,
    res_path: Path,
    plan: Plan,
    stores: dict[str, Store],
    command: str,
    options: dict[str, Any],
    files: list[Path],
    notes: list[str],
) -> None:
    """Write ``provenance.json`` for a report made from ``plan``.

    ``res_path`` is the results file the report cites (for a DataFrame, its copy in the
    report); its ``.config.json`` sidecar (or a DataFrame's ``attrs["config"]``) gives the
    metrics command. ``options`` are the report's own choices beside the plan's, ``files``
    every file written (listed relative to the report folder). A sidecar that is not JSON
    adds a note to ``notes``.
    """
    from xalign import __version__

    metrics_cfg = _metrics_config(results, res_path, notes)
    prov = {
        "xalign_version": __version__,
        "python": sys.version.split()[0],
        "results": {
            "path": plan.where,
            "sha256": hashlib.sha256(res_path.read_bytes()).hexdigest(),
            "source": "DataFrame" if isinstance(results, pd.DataFrame) else "file",
            "rows": plan.total_rows,
            "metrics_config": metrics_cfg,
        },
        "stores": [store_provenance(stores[c], c) for c in plan.checkpoints if c in stores],
        "commands": {
            "report": command,
            "metrics": _metrics_command(metrics_cfg) or _metrics_command_from_table(plan.df),
        },
        "report": {
            "metrics": plan.metrics,
            **({"neuron_metrics": list(plan.neurons)} if plan.neurons else {}),
            "checkpoints": plan.checkpoints,
            "layers": plan.layers,
            "focus_layers": plan.focus,
            "compare": list(plan.compare) if plan.compare else None,
            "protocol_choices": {k: json.loads(v) for k, v in plan.choices.items()},
            "languages": plan.langs,
            **options,
        },
        "files": sorted(p.relative_to(path.parent).as_posix() for p in files),
        "notes": notes,
    }
    write_json(path, prov)


def call_text(**kwargs: Any) -> str:
    """The ``build_report(...)`` call of a report made without a command (None values left out).

    >>> call_text(results="r.parquet", out="rep", metrics=None, layers="0-3")
    "build_report(results='r.parquet', out='rep', layers='0-3')"
    """
    return (
        "build_report(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if v is not None) + ")"
    )


def _metrics_config(
    results: str | os.PathLike[str] | pd.DataFrame, res_path: Path, notes: list[str]
) -> dict[str, Any] | None:
    """The metrics config recorded with the results: the ``.config.json`` sidecar of a file,
    ``attrs["config"]`` of a DataFrame; None when there is none (a bad sidecar adds a note)."""
    if isinstance(results, pd.DataFrame):
        cfg = results.attrs.get("config")
        return cfg if isinstance(cfg, dict) else None
    cfg_path = res_path.with_suffix(".config.json")
    if not cfg_path.is_file():
        return None
    try:
        loaded: dict[str, Any] = json.loads(cfg_path.read_text("utf-8"))
    except ValueError as e:
        notes.append(f"{cfg_path}: not valid JSON ({e}); the metrics command is not recorded")
        return None
    return loaded


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
