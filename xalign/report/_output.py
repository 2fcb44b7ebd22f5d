"""The report folder: checked before anything is written, never over an input or a stranger's
files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from xalign._io import atomic_path, check_output
from xalign.errors import ConfigError

if TYPE_CHECKING:
    from xalign.report._plan import Plan
    from xalign.store import Store

__all__ = ["prepare_output"]


def prepare_output(
    out: str | os.PathLike[str],
    results: str | os.PathLike[str] | pd.DataFrame,
    plan: Plan,
    stores: dict[str, Store],
) -> tuple[Path, Path]:
    """Check and create the report folder; returns it and the results file the report cites.

    Nothing is written before the folder is known to destroy no input and to lie outside
    every store (a store is written only through the store API). A DataFrame has no file: the
    exact table is kept beside the report, so every number can be traced and regenerated
    (``python -m xalign.report OUT/results.parquet ...``), and the plan cites that copy.
    """
    from_file = not isinstance(results, pd.DataFrame)
    inputs: list[Path] = [Path(results)] if from_file else []  # type: ignore[arg-type]
    inputs += [Path(x) for x in dict.fromkeys(plan.df["store"]) if Path(x).is_dir()]
    inputs += [st.path for st in stores.values()]
    out_dir = check_output(out, inputs=inputs, folder=True)
    _refuse_foreign_files(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    if not isinstance(results, pd.DataFrame):
        return out_dir, Path(results)
    res_path = out_dir / "results.parquet"
    with atomic_path(res_path) as tmp:
        results.to_parquet(tmp, index=False)
    plan.where = str(res_path)
    plan.origin = " (a DataFrame passed to build_report, saved with the report)"
    return out_dir, res_path


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
