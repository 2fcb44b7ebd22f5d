"""Report tables: one small model (:class:`Table`) rendered to LaTeX (booktabs), Markdown,
HTML and CSV, so every format shows the same cells, bold marks and notes.

Cell text uses a few Unicode symbols (Δ, ↑, ↓, →, −, ℓ) that each renderer translates;
numbers are formatted once, by :func:`fmt_value` / :func:`fmt_delta`, with a fixed number of
decimals, so all formats agree digit for digit.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import pandas as pd

__all__ = [
    "Cell",
    "Table",
    "fmt_delta",
    "fmt_value",
    "tex_escape",
    "to_csv",
    "to_html",
    "to_latex",
    "to_markdown",
]

_DASH = "–"


def fmt_value(v: float | None, decimals: int = 3) -> str:
    """A number with ``decimals`` decimals, a true minus sign, and ``–`` when missing.

    Examples
    --------
    >>> fmt_value(0.12345), fmt_value(-0.5, 2), fmt_value(float("nan")), fmt_value(-0.0001)
    ('0.123', '−0.50', '–', '0.000')
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return _DASH
    text = f"{float(v):.{decimals}f}"
    if text.startswith("-"):
        text = text[1:] if float(text) == 0 else "−" + text[1:]
    return text


def fmt_delta(v: float | None, decimals: int = 3) -> str:
    """A difference with an explicit sign (``+0.012``, ``−0.012``, ``0.000``).

    Examples
    --------
    >>> fmt_delta(0.0123), fmt_delta(-0.0123), fmt_delta(0.00001)
    ('+0.012', '−0.012', '0.000')
    """
    text = fmt_value(v, decimals)
    if text != _DASH and not text.startswith("−") and float(text) != 0:
        text = "+" + text
    return text


@dataclass
class Cell:
    """One table cell: its text, the number behind it (for CSV), and whether it is bold."""

    text: str
    value: float | None = None
    bold: bool = False


@dataclass
class Table:
    """A report table, independent of the output format.

    ``rows`` holds lists of cells, or a string for a section row spanning every column
    (e.g. ``"Layer 8"``); ``rules`` holds the indices of rows preceded by a mid rule.
    ``groups`` is an optional header row above ``header``: ``(text, span)`` pairs.
    ``data`` is what the CSV file holds (unrounded numbers).
    """

    name: str
    caption: str
    note: str
    header: list[str]
    rows: list[list[Cell] | str]
    align: str
    data: pd.DataFrame
    groups: list[tuple[str, int]] | None = None
    rules: set[int] = field(default_factory=set)
    label: str = ""

    @property
    def ncols(self) -> int:
        return len(self.header)


# ------------------------------------------------------------------ LaTeX

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "→": r"$\rightarrow$",
    "−": r"$-$",
    "±": r"$\pm$",
    "ℓ": r"$\ell$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "×": r"$\times$",
    "·": r"$\cdot$",
    "√": r"$\surd$",
    "–": "--",
    "—": "---",
    "…": r"\ldots{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def tex_escape(text: str) -> str:
    r"""Text safe for LaTeX (special characters escaped, symbols as math).

    Examples
    --------
    >>> tex_escape("Δ acc_mean ↑ 50%")
    '$\\Delta$ acc\\_mean $\\uparrow$ 50\\%'
    """
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def _tex_header(text: str, align: str) -> str:
    if "\n" not in text:
        return tex_escape(text)
    lines = r" \\ ".join(tex_escape(x) for x in text.split("\n"))
    return f"\\begin{{tabular}}[b]{{@{{}}{align}@{{}}}}{lines}\\end{{tabular}}"


def _tex_cell(c: Cell | str) -> str:
    if isinstance(c, str):
        return tex_escape(c)
    t = tex_escape(c.text)
    return rf"\textbf{{{t}}}" if c.bold else t


def to_latex(t: Table) -> str:
    """A ``table`` float ready to ``\\input`` (needs ``\\usepackage{booktabs}``)."""
    env = "table*" if t.ncols > 7 else "table"
    lines = [
        f"% xalign report table '{t.name}'; needs \\usepackage{{booktabs}}",
        f"\\begin{{{env}}}[tbp]",
        "\\centering",
        "\\small",
        f"\\caption{{{tex_escape(t.caption)}}}",
        f"\\label{{{t.label or 'tab:xalign-' + t.name}}}",
        "\\setlength{\\tabcolsep}{4pt}",
        f"\\begin{{tabular}}{{@{{}}{t.align}@{{}}}}",
        "\\toprule",
    ]
    if t.groups:
        parts, rules, col = [], [], 1
        for text, span in t.groups:
            if span == 1:
                parts.append(tex_escape(text))
            else:
                parts.append(f"\\multicolumn{{{span}}}{{c}}{{{tex_escape(text)}}}")
            if text:
                rules.append(f"\\cmidrule(lr){{{col}-{col + span - 1}}}")
            col += span
        lines.append(" & ".join(parts) + r" \\")
        if rules:
            lines.append(" ".join(rules))
    lines.append(
        " & ".join(_tex_header(h, a) for h, a in zip(t.header, t.align, strict=True)) + r" \\"
    )
    lines.append("\\midrule")
    for i, row in enumerate(t.rows):
        if i in t.rules:
            lines.append("\\midrule")
        if isinstance(row, str):
            multi = f"\\multicolumn{{{t.ncols}}}{{@{{}}l}}"
            lines.append(f"{multi}{{\\textit{{{tex_escape(row)}}}}} \\\\")
        else:
            lines.append(" & ".join(_tex_cell(c) for c in row) + r" \\")
    lines += [
        "\\bottomrule",
        "\\end{tabular}",
        "\\par\\smallskip",
        f"\\parbox{{\\linewidth}}{{\\footnotesize {tex_escape(t.note)}}}",
        f"\\end{{{env}}}",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ Markdown


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _md_cell(c: Cell) -> str:
    t = _md_escape(c.text)
    return f"**{t}**" if c.bold and t else t


def to_markdown(t: Table, *, number: int | None = None) -> str:
    """A pipe table with its caption above and its note below."""
    head = f"**Table {number}.** " if number is not None else ""
    lines = [f"{head}{_md_escape(t.caption)}", ""]
    header = [h.replace("\n", " ") for h in t.header]
    if t.groups:
        # Markdown has one header row: prefix each column with its group.
        expanded = [g for g, span in t.groups for _ in range(span)]
        header = [f"{g} {h}".strip() if g else h for g, h in zip(expanded, header, strict=True)]
    aligns = [{"l": ":---", "r": "---:", "c": ":---:"}[a] for a in t.align]
    lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
    lines.append("| " + " | ".join(aligns) + " |")
    for row in t.rows:
        if isinstance(row, str):
            lines.append("| " + " | ".join([f"*{_md_escape(row)}*"] + [""] * (t.ncols - 1)) + " |")
        else:
            lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    lines += ["", f"<sub>{_md_escape(t.note)}</sub>", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ HTML


def to_html(t: Table, *, number: int | None = None) -> str:
    """An HTML ``<table>`` with a caption and the note in a footer."""
    e = html.escape
    head = f"<b>Table {number}.</b> " if number is not None else ""
    out = [
        f'<table class="xalign" id="tab-{e(t.name)}">',
        f"<caption>{head}{e(t.caption)}</caption>",
    ]
    out.append("<thead>")
    if t.groups:
        out.append(
            "<tr>"
            + "".join(
                f'<th colspan="{span}" class="group">{e(text)}</th>' for text, span in t.groups
            )
            + "</tr>"
        )
    heads = "".join(f"<th>{e(h).replace(chr(10), '<br>')}</th>" for h in t.header)
    out.append(f"<tr>{heads}</tr>")
    out.append("</thead><tbody>")
    for i, row in enumerate(t.rows):
        cls = ' class="rule"' if i in t.rules else ""
        if isinstance(row, str):
            out.append(f'<tr{cls}><td colspan="{t.ncols}" class="section">{e(row)}</td></tr>')
            continue
        cells = []
        for c, a in zip(row, t.align, strict=True):
            text = f"<b>{e(c.text)}</b>" if c.bold else e(c.text)
            cells.append(f'<td class="{"num" if a == "r" else "txt"}">{text}</td>')
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody>")
    out.append(f'<tfoot><tr><td colspan="{t.ncols}" class="note">{e(t.note)}</td></tr></tfoot>')
    out.append("</table>")
    return "\n".join(out)


# ------------------------------------------------------------------ CSV


def to_csv(t: Table) -> str:
    """The table's data (unrounded numbers), as CSV text with ``\\n`` line ends."""
    return t.data.to_csv(index=False, lineterminator="\n", float_format="%.10g")
