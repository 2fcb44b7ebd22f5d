"""``build_report``: results table (+ stores) → tables, figures, report.md/.html, provenance.

The steps have their own modules: the plan of what the report shows (``_plan``), its tables
(``_make_tables``, rendered by ``_tables``) and figures (``_make_figures``, styled by
``_figures``, exported by ``_export``), the language-specific neuron section (``_neurons``),
the report folder (``_output``), the files written
(``_documents``) and ``provenance.json`` (``_provenance``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from xalign.errors import ConfigError
from xalign.report._make_figures import FigureSpec
from xalign.report._plan import as_list, make_plan
from xalign.report._tables import Table
from xalign.report._text import layer_ranges

__all__ = ["FORMATS", "ReportSummary", "build_report"]

#: Report formats (``--format``); CSV tables are always written.
FORMATS: tuple[str, ...] = ("latex", "md", "html")


@dataclass
class ReportSummary:
    """What :func:`build_report` made: every file, table and figure, and what was left out."""

    out: Path
    files: list[Path]
    tables: dict[str, Table]
    figures: dict[str, FigureSpec]
    metrics: list[str]
    checkpoints: list[str]
    layers: list[int]
    focus_layers: list[int]
    compare: tuple[str, str] | None
    static: bool
    static_message: str | None
    notes: list[str]
    neuron_metrics: list[str] = field(default_factory=list)

    @property
    def report_md(self) -> Path | None:
        p = self.out / "report.md"
        return p if p in self.files else None

    @property
    def report_html(self) -> Path | None:
        p = self.out / "report.html"
        return p if p in self.files else None

    def format(self) -> str:
        """A short human summary with the path of every kind of output."""
        lines = [
            f"report     {self.out}",
            f"metrics    {', '.join(self.metrics)}",
            *([f"neurons    {', '.join(self.neuron_metrics)}"] if self.neuron_metrics else []),
            f"checkpoints {', '.join(self.checkpoints)}"
            + (f"  (compared: {self.compare[0]} → {self.compare[1]})" if self.compare else ""),
            f"layers     {layer_ranges(self.layers)}  "
            f"(focus: {', '.join(map(str, self.focus_layers))})",
        ]
        kinds: dict[str, int] = {}
        for f in self.files:
            kinds[f.suffix] = kinds.get(f.suffix, 0) + 1
        lines.append(f"tables     {len(self.tables)} ({self.out / 'tables'})")
        lines.append(
            f"figures    {len(self.figures)}"
            + (f" ({self.out / 'figures'})" if self.figures else "")
            + ("" if self.static or not self.figures else "  interactive HTML only")
        )
        if self.static_message:
            lines.append(f"note: {self.static_message}")
        for n in self.notes:
            lines.append(f"note: {n}")
        for name in ("report.md", "report.html", "provenance.json"):
            p = self.out / name
            if p in self.files:
                lines.append(f"{name:<16}{p}")
        return "\n".join(lines)


def build_report(
    results: str | os.PathLike[str] | pd.DataFrame,
    *,
    out: str | os.PathLike[str],
    stores_root: str | os.PathLike[str] | None = None,
    metrics: Sequence[str] | str | None = None,
    layers: Sequence[int] | str | None = None,
    langs: Sequence[str] | str | None = None,
    checkpoints: Sequence[str] | str | None = None,
    formats: Sequence[str] | str = FORMATS,
    figures: bool = True,
    compare: Sequence[str] | str | None = None,
    focus_layers: Sequence[int] | str | None = None,
    protocol: str | dict[str, Any] | None = None,
    pooling: str = "mean",
    projection: str = "pca",
    decimals: int = 3,
    dpi: int = 300,
    figure_formats: Sequence[str] | str = ("pdf", "svg", "png"),
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> ReportSummary:
    """Write an alignment report for papers from a results table (and its stores).

    Parameters
    ----------
    results : path or DataFrame
        The results table of ``python -m xalign.metrics`` (.parquet or .csv).
    out : path
        Report folder: ``report.md``, ``report.html``, ``tables/``, ``figures/``,
        ``provenance.json``.
    stores_root : path, optional
        Folder holding the stores (found by recorded path, folder name or label); needed
        for cluster projections (cached by ``python -m xalign.project``) and the
        attention-alignment example. Stores at their recorded paths are found without it.
    metrics : list of str, optional
        Metric names of the results table (default: the headline metrics present, see
        :data:`~xalign.report.DEFAULT_METRICS`).
    layers, langs, checkpoints : optional
        Restrict the report (default all). A language pair is kept when either language is
        chosen. The first two checkpoints are compared as before → after unless ``compare``.
    formats : subset of {"latex", "md", "html"}
        Tables as ``.tex``, the Markdown report, the self-contained HTML report. CSV tables
        are always written.
    figures : bool
        Draw figures (interactive HTML always; PDF/SVG/PNG when kaleido finds a browser).
    compare : (before, after), optional
        The checkpoints of the before/after table and difference figures.
    focus_layers : optional
        Layers of the per-language, before/after, heatmap and cluster views (default: the
        best layer of the first metric with a direction, and the last layer).
    protocol : "key=value,..." or dict, optional
        Protocol choices where a metric has several variants (default
        ``centered=false,scoring=cosine``).
    pooling, projection : str
        Which cached projections to draw.
    decimals : int
        Decimals of every number in the tables.
    dpi : int
        PNG resolution (figures are 3.25 in or 7 in wide).
    figure_formats : subset of {"pdf", "svg", "png"}
    command : str, optional
        The command that made the report, recorded in ``provenance.json``.
    log : callable, optional
        Progress messages (e.g. ``print``).

    Returns
    -------
    ReportSummary
    """
    from xalign.report._documents import write_documents, write_figures, write_tables
    from xalign.report._make_figures import figure_specs
    from xalign.report._make_tables import report_tables
    from xalign.report._output import prepare_output
    from xalign.report._provenance import call_text, write_provenance
    from xalign.report._stores import find_stores

    say = log or (lambda _msg: None)
    fmts, sfmts = _check_options(formats, figure_formats, decimals, dpi)
    plan = make_plan(results, metrics=metrics, layers=layers, langs=langs,
                     checkpoints=checkpoints, compare=compare, focus_layers=focus_layers,
                     protocol=protocol, decimals=decimals)  # fmt: skip
    notes = list(plan.notes)
    stores, store_notes = find_stores(plan.store_checkpoints(), stores_root)
    out_dir, res_path = prepare_output(out, results, plan, stores)
    if figures:
        notes += store_notes
    say(f"report: {len(plan.metrics)} metric(s), checkpoints {', '.join(plan.checkpoints)}")
    tables = report_tables(plan)
    files = write_tables(out_dir / "tables", tables, latex="latex" in fmts)
    specs: list[FigureSpec] = []
    static, static_msg = False, None
    if figures:
        say("report: drawing figures")
        specs = figure_specs(plan, stores, pooling=pooling, projection=projection, notes=notes)
        written, static, static_msg = write_figures(
            out_dir / "figures", specs, formats=sfmts, dpi=dpi, say=say
        )
        files += written
    files += write_documents(out_dir, fmts, plan, stores, tables, specs, notes)
    if isinstance(results, pd.DataFrame):
        files.append(res_path)
    command = command or call_text(
        results=plan.where, out=str(out_dir),
        stores_root=None if stores_root is None else str(stores_root), metrics=metrics,
        layers=layers, langs=langs, checkpoints=checkpoints, compare=compare,
        focus_layers=focus_layers, protocol=protocol,
    )  # fmt: skip
    options = {"decimals": decimals, "pooling": pooling, "projection": projection,
               "static_figures": static}  # fmt: skip
    write_provenance(out_dir / "provenance.json", results=results, res_path=res_path, plan=plan,
                     stores=stores, command=command, options=options, files=files,
                     notes=notes)  # fmt: skip
    files.append(out_dir / "provenance.json")
    return ReportSummary(
        out=out_dir,
        files=files,
        tables={t.name: t for t in tables},
        figures={s.name: s for s in specs},
        metrics=plan.metrics,
        checkpoints=plan.checkpoints,
        layers=plan.layers,
        focus_layers=plan.focus,
        compare=plan.compare,
        static=static,
        static_message=static_msg,
        notes=notes,
        neuron_metrics=list(plan.neurons),
    )


def _check_options(
    formats: Sequence[str] | str, figure_formats: Sequence[str] | str, decimals: int, dpi: int
) -> tuple[list[str], list[str]]:
    """The document and figure formats as lists, once every plain option is known to be valid
    (and plotly importable): nothing is read before."""
    from xalign.report._export import FORMATS as STATIC_FORMATS

    fmts = as_list(formats) or []
    bad = [f for f in fmts if f not in FORMATS]
    if bad:
        raise ConfigError(f"--format {bad}: allowed values are {', '.join(FORMATS)}")
    if not fmts:
        raise ConfigError(
            f"--format {formats!r}: names no format; give one or more of {', '.join(FORMATS)}"
        )
    sfmts = as_list(figure_formats) or []
    bad = [f for f in sfmts if f not in STATIC_FORMATS]
    if bad:
        raise ConfigError(f"--figure-formats {bad}: allowed values are {', '.join(STATIC_FORMATS)}")
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 8:
        raise ConfigError(f"--decimals {decimals!r}: expected an integer from 0 to 8")
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 50 <= dpi <= 1200:
        raise ConfigError(f"--dpi {dpi!r}: expected an integer from 50 to 1200")
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ImportError("xalign.report needs plotly: pip install 'xalign[export]'") from None
    return fmts, sfmts
