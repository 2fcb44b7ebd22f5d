"""Paper style for xalign's figures: print sizes, fonts, no titles, vector-friendly.

The report never draws a figure itself: every figure comes from a builder in
:mod:`xalign.figures` (the same functions the dashboard uses, so a language has the
same colour in both) and is restyled here with ``update_layout`` only. Sizes are in inches
at 96 CSS pixels per inch, which is how kaleido maps pixels to PDF points (1 px = 0.75 pt):
a one-column figure is 3.25 in (312 px) wide, a two-column figure 7 in (672 px).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "COLUMN_WIDTH_IN",
    "FONT",
    "PX_PER_IN",
    "Width",
    "figure_size_px",
    "paper_style",
    "screen_copy",
    "side_by_side",
]

PX_PER_IN = 96
Width = Literal["one", "two"]
#: Figure widths (inches): one column and the full text width of a two-column paper.
COLUMN_WIDTH_IN: dict[str, float] = {"one": 3.25, "two": 7.0}
#: Fonts at print size: 10 px = 7.5 pt (ticks, legends), 11 px = 8.25 pt (axis titles).
FONT = {"family": "Helvetica, Arial, 'Liberation Sans', sans-serif", "size": 10,
        "color": "#000000"}  # fmt: skip


def figure_size_px(width: Width, height_in: float) -> tuple[int, int]:
    """(width, height) in CSS pixels of a figure ``width`` columns wide and ``height_in`` tall.

    Examples
    --------
    >>> figure_size_px("one", 2.25), figure_size_px("two", 3.0)
    ((312, 216), (672, 288))
    """
    if width not in COLUMN_WIDTH_IN:
        raise ValueError(f"width={width!r}: allowed values are {', '.join(COLUMN_WIDTH_IN)}")
    return round(COLUMN_WIDTH_IN[width] * PX_PER_IN), round(height_in * PX_PER_IN)


def paper_style(
    fig: go.Figure,
    *,
    width: Width = "one",
    height_in: float = 2.25,
    legend: Literal["top", "right", "bottom", "none"] = "top",
) -> go.Figure:
    """Restyle a dashboard figure for print, in place: size, fonts, margins, no title.

    Parameters
    ----------
    fig : plotly Figure
        From a :mod:`xalign.figures` builder.
    width : {"one", "two"}
        One column (3.25 in) or two columns (7 in).
    height_in : float
        Height in inches.
    legend : {"top", "right", "bottom", "none"}
        Where the legend goes (``"top"``: one horizontal row above the plot).
    """
    w, h = figure_size_px(width, height_in)
    fig.update_layout(
        width=w,
        height=h,
        title=None,
        font=FONT,
        margin={"l": 44, "r": 8, "t": 8, "b": 36},
        paper_bgcolor="#FFFFFF",
        plot_bgcolor="#FFFFFF",
        hoverlabel={"font": {"size": 11}},
    )
    axes = {
        "title_font": {"size": 11},
        "tickfont": {"size": 10},
        "showline": True,
        "linecolor": "#444444",
        "gridcolor": "#E5E5E5",
        "zeroline": False,
        "title_standoff": 4,
    }
    fig.update_xaxes(**axes)
    fig.update_yaxes(**axes)
    if legend == "none":
        fig.update_layout(showlegend=False)
    elif legend == "top":
        fig.update_layout(
            legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02,
                    "yanchor": "bottom", "font": {"size": 10}, "title": None,
                    "itemwidth": 30, "tracegroupgap": 0, "itemsizing": "trace"},
            margin={"t": 30},
        )  # fmt: skip
    elif legend == "bottom":
        fig.update_layout(
            legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.04,
                    "yanchor": "top", "font": {"size": 10}, "title": None,
                    "itemwidth": 30, "tracegroupgap": 0},
        )  # fmt: skip
    else:
        fig.update_layout(
            legend={"font": {"size": 10}, "tracegroupgap": 0, "title": None},
            margin={"r": 8},
        )
    for t in fig.data:
        if t.type == "scatter" and t.fill == "toself":
            t.showlegend = False  # confidence bands: the caption says what they are
        if t.type == "heatmap":
            t.update(textfont={"size": 8}, colorbar={"thickness": 10, "tickfont": {"size": 10},
                                                      "title": {"font": {"size": 10}}})  # fmt: skip
    return fig


def screen_copy(fig: go.Figure, *, scale: float = 1.6) -> dict[str, Any]:
    """The figure as a plotly dict sized for a web page (print size scaled up, same fonts)."""
    out = fig.to_dict()
    layout = out.setdefault("layout", {})
    w, h = layout.get("width"), layout.get("height")
    if w and h:
        layout["width"], layout["height"] = round(w * scale), round(h * scale)
    return out


def side_by_side(
    figs: Sequence[go.Figure], titles: Sequence[str], *, spacing: float = 0.04
) -> go.Figure:
    """Panels of several figures in one row, sharing the legend (panel labels on top).

    The traces of each figure are moved onto their own axes unchanged; the first figure's
    layout (axis styling, ranges) is applied to every panel, and a trace whose legend
    group already appeared is hidden from the legend.
    """
    from plotly.subplots import make_subplots

    n = len(figs)
    out = make_subplots(rows=1, cols=n, subplot_titles=list(titles), horizontal_spacing=spacing)
    seen: set[Any] = set()
    for col, fig in enumerate(figs, start=1):
        for trace in fig.data:
            group = trace.legendgroup or trace.name
            out.add_trace(trace, row=1, col=col)
            if trace.showlegend is not False and group is not None:
                if group in seen:
                    out.data[-1].showlegend = False
                seen.add(group)
        xa, ya = fig.layout.xaxis, fig.layout.yaxis
        out.update_xaxes(
            showticklabels=xa.showticklabels, range=xa.range, title=xa.title, row=1, col=col,
            tickmode=xa.tickmode, tickvals=xa.tickvals, ticktext=xa.ticktext,
            tickangle=xa.tickangle, autorange=xa.autorange,
        )  # fmt: skip
        out.update_yaxes(
            showticklabels=ya.showticklabels,
            range=ya.range, title=ya.title if col == 1 else None, row=1, col=col,
            tickmode=ya.tickmode, tickvals=ya.tickvals, ticktext=ya.ticktext,
            autorange=ya.autorange,
        )  # fmt: skip
    # plotly.js's automatic margins oscillate with rotated tick labels on several subplots
    # (the panels shrink to a corner); composites use fixed margins.
    out.update_xaxes(automargin=False)
    out.update_yaxes(automargin=False)
    base = figs[0].layout
    out.update_layout(template=base.template, legend=base.legend, hovermode=base.hovermode)
    for ann in out.layout.annotations:
        ann.font = {"size": 11}
    return out
