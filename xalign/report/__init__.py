"""Alignment reports for papers: LaTeX/Markdown/CSV tables, PDF/SVG/PNG figures, report.md/.html.

``build_report(results, out=...)`` (or ``python -m xalign.report``) reads a results table of
``python -m xalign.metrics`` and, optionally, its stores (cached projections, attentions) and
writes ``report.md``, a self-contained ``report.html``, ``tables/*.tex`` (booktabs, ready to
``\\input``) and ``tables/*.csv``, ``figures/*.{pdf,svg,png,html}`` and ``provenance.json``.
Figures are the dashboard's own (:mod:`dashboards.figures`) restyled for print; static
export uses one kaleido browser for all of them. Needs plotly (and kaleido + Chrome/Chromium
for PDF/SVG/PNG): ``pip install 'xalign[export]'``.
"""

from __future__ import annotations

from xalign.report._build import FORMATS, FigureSpec, ReportSummary, build_report
from xalign.report._catalog import (
    DEFAULT_METRICS,
    METRICS,
    MetricInfo,
    better,
    metric_direction,
    metric_info,
)
from xalign.report._export import ExportResult, export_figures
from xalign.report._figures import COLUMN_WIDTH_IN, figure_size_px, paper_style
from xalign.report._tables import Cell, Table, fmt_delta, fmt_value

__all__ = [
    "COLUMN_WIDTH_IN",
    "DEFAULT_METRICS",
    "FORMATS",
    "METRICS",
    "Cell",
    "ExportResult",
    "FigureSpec",
    "MetricInfo",
    "ReportSummary",
    "Table",
    "better",
    "build_report",
    "export_figures",
    "figure_size_px",
    "fmt_delta",
    "fmt_value",
    "metric_direction",
    "metric_info",
    "paper_style",
]
