"""Alignment reports for papers: LaTeX/Markdown/CSV tables, PDF/SVG/PNG figures, report.md/.html.

``build_report(results, out=...)`` (or ``python -m xalign.report``) reads a results table of
``python -m xalign.metrics`` and, optionally, its stores (cached projections, attentions) and
writes ``report.md``, a self-contained ``report.html``, ``tables/*.tex`` (booktabs, ready to
``\\input``) and ``tables/*.csv``, ``figures/*.{pdf,svg,png,html}`` and ``provenance.json``.
Figures are the dashboard's own (:mod:`xalign.figures`) restyled for print; static
export uses one kaleido browser for all of them. Needs plotly (and kaleido + Chrome/Chromium
for PDF/SVG/PNG): ``pip install 'xalign[export]'``.

**Language-specific neurons.** When the results table holds rows of the ``neurons`` metrics
group (stores extracted with ``--neurons``; the LAPE selection of Tang et al. 2024, see
docs/metrics.md#neurons), the report adds a section of its own, after the alignment tables and
figures: the table ``neurons_by_layer`` (languages × layers = feed-forward blocks 1..L, cells
``neuron_specific_count``, a Total column, and a Shared row of ``neuron_shared_count``; one
block of rows per checkpoint; the caption states the rates ``top_rate``, ``filter_rate``,
``bar_rate`` and the note each checkpoint's thresholds ``filter_value``, ``bar_value``), the
language × layer heatmap of specific neurons per checkpoint (``neurons-CKPT``), the Jaccard
overlap of the languages' sets at the layer with the most specific neurons
(``neuron-overlap-CKPT-LAYER``, ``neuron_specific_jaccard``) and, with two checkpoints compared
(``compare``), the change in counts (``neuron-difference``) and the stability of the sets
(``neuron-stability-BEFORE-AFTER``, ``neuron_specific_stability`` rows of the after checkpoint
whose ``other_checkpoint`` is the before one). Neuron metrics are never among the metrics a
report picks by default; ``--metrics`` naming some of the four above shows only their views,
and naming another (``neuron_lape_mean``, ``neuron_activation_prob``...) draws it like any
metric. ``--protocol top_rate=0.02`` picks a selection where the table holds several. A table
without neuron rows gives the same report as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xalign._lazy import lazy_attributes

if TYPE_CHECKING:
    from xalign.report._build import FORMATS, ReportSummary, build_report
    from xalign.report._export import ExportResult, export_figures
    from xalign.report._figures import COLUMN_WIDTH_IN, figure_size_px, paper_style
    from xalign.report._make_figures import FigureSpec
    from xalign.report._tables import Cell, Table, fmt_delta, fmt_value
    from xalign.results import (
        DEFAULT_METRICS,
        METRICS,
        MetricInfo,
        better,
        metric_direction,
        metric_info,
        metric_range,
    )

# Public names are imported on first use: ``python -m xalign.report --help`` and its argument
# errors answer before torch, pandas or plotly are loaded. The metric catalogue is the results
# room's (:mod:`xalign.results`), re-exported here for existing callers.
_WHERE = {
    "COLUMN_WIDTH_IN": "xalign.report._figures",
    "Cell": "xalign.report._tables",
    "DEFAULT_METRICS": "xalign.results",
    "ExportResult": "xalign.report._export",
    "FORMATS": "xalign.report._build",
    "FigureSpec": "xalign.report._make_figures",
    "METRICS": "xalign.results",
    "MetricInfo": "xalign.results",
    "ReportSummary": "xalign.report._build",
    "Table": "xalign.report._tables",
    "better": "xalign.results",
    "build_report": "xalign.report._build",
    "export_figures": "xalign.report._export",
    "figure_size_px": "xalign.report._figures",
    "fmt_delta": "xalign.report._tables",
    "fmt_value": "xalign.report._tables",
    "metric_direction": "xalign.results",
    "metric_info": "xalign.results",
    "metric_range": "xalign.results",
    "paper_style": "xalign.report._figures",
}

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
    "metric_range",
    "paper_style",
]


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals(), __all__)
