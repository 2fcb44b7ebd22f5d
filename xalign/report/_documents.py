"""The files of a report: tables (.tex, .csv), figures (.html, and PDF/SVG/PNG through
kaleido), ``report.md`` and the self-contained ``report.html``."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from xalign._io import write_text
from xalign.report._tables import Table, to_csv, to_html, to_latex, to_markdown
from xalign.report._text import lang_label, layer_ranges
from xalign.results import metric_info, protocol_value_text

if TYPE_CHECKING:
    from xalign.report._make_figures import FigureSpec
    from xalign.report._plan import Plan
    from xalign.store import Store

__all__ = ["write_documents", "write_figures", "write_tables"]

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#111;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
table.xalign{border-collapse:collapse;margin:1.2em 0;font-size:.9em}
table.xalign caption{caption-side:top;text-align:left;padding-bottom:.4em}
table.xalign th{border-bottom:1px solid #000;padding:.2em .6em;text-align:center}
table.xalign th.group{border-bottom:1px solid #888}
table.xalign thead tr:first-child th{border-top:2px solid #000}
table.xalign td{padding:.15em .6em}table.xalign td.num{text-align:right;
font-variant-numeric:tabular-nums}
table.xalign tr.rule td{border-top:1px solid #000}table.xalign tbody tr:last-child td{
border-bottom:2px solid #000}
table.xalign td.section{font-style:italic}table.xalign td.note{font-size:.85em;color:#444;
max-width:60em}
figure{margin:1.5em 0}figcaption{font-size:.92em;max-width:60em}
.notes li{color:#444}code{background:#f4f4f4;padding:0 .2em}
"""


def write_tables(folder: Path, tables: Sequence[Table], *, latex: bool) -> list[Path]:
    """Each table as ``NAME.tex`` (with ``latex``) and ``NAME.csv``; returns the files."""
    files: list[Path] = []
    for t in tables:
        if latex:
            p = folder / f"{t.name}.tex"
            write_text(p, to_latex(t))
            files.append(p)
        p = folder / f"{t.name}.csv"
        write_text(p, to_csv(t))
        files.append(p)
    return files


def write_figures(
    folder: Path,
    specs: Sequence[FigureSpec],
    *,
    formats: Sequence[str],
    dpi: int,
    say: Callable[[str], None],
) -> tuple[list[Path], bool, str | None]:
    """Each figure as interactive ``NAME.html`` (beside one ``plotly.min.js``) and, through
    kaleido, in ``formats``; returns the files, whether static export ran, and why not."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    from xalign.report._export import export_figures
    from xalign.report._figures import screen_copy

    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if specs:
        js = folder / "plotly.min.js"
        if not js.is_file() or js.stat().st_size != len(get_plotlyjs().encode("utf-8")):
            write_text(js, get_plotlyjs())
        files.append(js)
    for s in specs:
        p = folder / f"{s.name}.html"
        s.screen = screen_copy(s.figure)
        write_text(
            p,
            pio.to_html(
                s.screen,
                include_plotlyjs="directory",
                div_id=f"fig-{s.name}",
                config={"displaylogo": False},
                validate=False,
            ),
        )
        s.files.append(p)
        files.append(p)
    if not (formats and specs):
        return files, False, None
    say(f"report: exporting {len(specs)} figure(s) as {', '.join(formats)} (kaleido)")
    res = export_figures(
        [(s.figure, folder / s.name, s.width, s.height) for s in specs],
        formats=formats,
        scale=dpi / 96,
    )
    by_stem: dict[str, list[Path]] = {}
    for p in res.files:
        by_stem.setdefault(p.stem, []).append(p)
    for s in specs:
        got = sorted(by_stem.get(s.name, []), key=lambda p: list(formats).index(p.suffix[1:]))
        s.files[:0] = got
        files += got
    return files, res.skipped is None, res.skipped


def write_documents(
    folder: Path,
    formats: Sequence[str],
    plan: Plan,
    stores: dict[str, Store],
    tables: list[Table],
    figs: list[FigureSpec],
    notes: list[str],
) -> list[Path]:
    """``report.md`` (format ``md``) and ``report.html`` (``html``); returns the files."""
    intro = _intro_lines(plan, stores)
    files: list[Path] = []
    if "md" in formats:
        p = folder / "report.md"
        _write_markdown(p, intro, tables, figs, notes)
        files.append(p)
    if "html" in formats:
        p = folder / "report.html"
        _write_html(p, intro, tables, figs, notes)
        files.append(p)
    return files


def _intro_lines(plan: Plan, stores: dict[str, Store]) -> list[str]:
    """The opening paragraphs (Markdown): results table, checkpoints, metrics, choices."""
    lines = [
        f"Results table `{plan.where}`{plan.origin} ({plan.total_rows:,} rows). Checkpoints: "
        + ", ".join(
            f"{c}"
            + (
                f" (store `{stores[c].path}`, encoder {stores[c].encoder.get('name')})"
                if c in stores
                else ""
            )
            for c in plan.checkpoints
        )
        + ".",
        f"Metrics: {', '.join(f'{metric_info(m).label} (`{m}`)' for m in plan.metrics)}. "
        f"Layers {layer_ranges(plan.layers)}; focus layers {', '.join(map(str, plan.focus))}."
        if plan.metrics
        else f"Layers {layer_ranges(plan.layers)}.",
        "Protocol choices applied where a metric has several: "
        + ", ".join(f"{k}={protocol_value_text(json.loads(v))}" for k, v in plan.choices.items())
        + " (other variants are in the results table).",
    ]
    if plan.neurons:
        shown = ", ".join(f"{metric_info(m).label} (`{m}`)" for m in plan.neurons)
        lines.insert(2, "Language-specific feed-forward neurons (Tang et al. 2024, LAPE selection; "
                     f"layer ℓ = feed-forward block ℓ): {shown}.")  # fmt: skip
    if plan.langs:
        lines.append(f"Languages: {', '.join(lang_label(x) for x in plan.langs)}.")
    return lines


def _write_markdown(
    path: Path, intro: list[str], tables: list[Table], figs: list[FigureSpec], notes: list[str]
) -> None:
    out = ["# Cross-lingual alignment report", ""]
    out += [*intro, ""]
    out += ["## Tables", ""]
    for i, t in enumerate(tables, start=1):
        out += [to_markdown(t, number=i), f"LaTeX: `tables/{t.name}.tex` · CSV: "
                f"`tables/{t.name}.csv`", ""]  # fmt: skip
    if figs:
        out += ["## Figures", ""]
        for i, f in enumerate(figs, start=1):
            png = next((p for p in f.files if p.suffix == ".png"), None)
            rel = lambda p: p.relative_to(path.parent).as_posix()  # noqa: E731
            if png is not None:
                out.append(f"![Figure {i}]({rel(png)})")
            else:
                out.append(f"[Figure {i} (interactive)](figures/{f.name}.html)")
            others = " · ".join(f"[{p.suffix[1:]}]({rel(p)})" for p in f.files)
            out += ["", f"**Figure {i}.** {f.caption}", "", f"<sub>{others}</sub>", ""]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    out += ["Provenance (xalign version, stores, fingerprints, commands): `provenance.json`.", ""]
    write_text(path, "\n".join(out))


def _write_html(
    path: Path, intro: list[str], tables: list[Table], figs: list[FigureSpec], notes: list[str]
) -> None:
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    from xalign.report._figures import screen_copy

    e = html.escape
    body = ["<h1>Cross-lingual alignment report</h1>"]
    for line in intro:
        body.append(f"<p>{_md_code_to_html(e(line))}</p>")
    body.append("<h2>Tables</h2>")
    for i, t in enumerate(tables, start=1):
        body.append(to_html(t, number=i))
    if figs:
        body.append("<h2>Figures</h2>")
        for i, f in enumerate(figs, start=1):
            div = pio.to_html(
                f.screen or screen_copy(f.figure),
                full_html=False,
                include_plotlyjs=False,
                div_id=f"fig-{f.name}",
                config={"displaylogo": False, "responsive": False},
                validate=False,
            )
            body.append(
                f"<figure>{div}<figcaption><b>Figure {i}.</b> "
                f"{_md_code_to_html(e(f.caption))}</figcaption></figure>"
            )
    if notes:
        body.append("<h2>Notes</h2><ul class='notes'>")
        body += [f"<li>{e(n)}</li>" for n in notes]
        body.append("</ul>")
    body.append("<p>Provenance: <code>provenance.json</code>.</p>")
    doc = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>xalign report</title>"
        f"<style>{_CSS}</style>"
        + (f"<script>{get_plotlyjs()}</script>" if figs else "")
        + "</head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    write_text(path, doc)


def _md_code_to_html(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
