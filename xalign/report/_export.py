"""Static figure export (PDF, SVG, PNG) through kaleido with one browser for every figure.

Kaleido ≥ 1 drives a headless Chrome/Chromium. Starting it takes seconds, so every figure
of a report is written by one :class:`kaleido.Kaleido` (one browser, one tab, figures queued).
Outputs are made reproducible: PDF creation/modification dates are fixed (same byte
length, so the cross-reference table stays valid) and the random id plotly.js gives each
SVG figure is replaced by one derived from the file name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ENABLE_STATIC_HINT",
    "FORMATS",
    "ExportResult",
    "export_figures",
    "fix_pdf_dates",
    "fix_svg_ids",
]

#: Static formats written for every figure.
FORMATS: tuple[str, ...] = ("pdf", "svg", "png")

#: What to do when no browser is found (printed as one line).
ENABLE_STATIC_HINT = (
    "static figures (PDF/SVG/PNG) need Chrome or Chromium for kaleido: "
    "apt-get install chromium (or run plotly_get_chrome)"
)

_FIXED_DATE = b"20000101000000"


@dataclass
class ExportResult:
    """Files written, and why static export did not happen (None when it did)."""

    files: list[Path]
    skipped: str | None = None


def fix_pdf_dates(data: bytes) -> bytes:
    """The PDF with its ``/CreationDate`` and ``/ModDate`` set to 2000-01-01 (same length).

    Examples
    --------
    >>> fix_pdf_dates(b"/CreationDate (D:20261122003206+00'00')")
    b"/CreationDate (D:20000101000000+00'00')"
    """
    return re.sub(
        rb"(/(?:CreationDate|ModDate) \(D:)\d{14}",
        lambda m: m.group(1) + _FIXED_DATE,
        data,
    )


_SVG_UID = re.compile(r'<defs id="defs-([0-9a-z]+)"')
# plotly.js uses its figure uid in these ids and in url(#...) references to them.
_SVG_UID_PREFIXES = ("defs-", "topdefs-", "clip", "legend", "g", "p")


def fix_svg_ids(svg: str, uid: str) -> str:
    """The SVG with plotly.js's random figure id replaced by ``uid`` (only where used as an id).

    Examples
    --------
    >>> s = '<defs id="defs-8ea88d"/><clipPath id="clip8ea88dxyplot"/><rect fill="#8ea88d"/>'
    >>> fix_svg_ids(s, "f0")
    '<defs id="defs-f0"/><clipPath id="clipf0xyplot"/><rect fill="#8ea88d"/>'
    """
    m = _SVG_UID.search(svg)
    if not m:
        return svg
    old = re.escape(m.group(1))
    pattern = re.compile(rf"(?<![0-9A-Za-z_-])({'|'.join(_SVG_UID_PREFIXES)}){old}")
    return pattern.sub(lambda mm: mm.group(1) + uid, svg)


def _with_trace_uids(fig: Any) -> dict[str, Any]:
    """The figure as a dict whose traces have fixed uids (plotly.js draws random ones into
    SVG class names and gradient ids otherwise)."""
    d = fig.to_dict() if hasattr(fig, "to_dict") else dict(fig)
    d["data"] = [{"uid": f"t{i}", **t} for i, t in enumerate(d.get("data", []))]
    return d


@contextlib.contextmanager
def _pdf_without_margins() -> Iterator[None]:
    """Print PDFs without the 0.1 in margins kaleido 1.x asks Chrome for.

    Kaleido sets the CSS page size to the figure size but prints with 0.1 in margins, so
    the figure is shifted by 0.1 in and its right and bottom 0.2 in are cut off. Its print
    helper is swapped for the duration of an export (and left alone when kaleido's private
    layout differs, e.g. in a later version that fixed it).
    """
    try:
        from kaleido._kaleido_tab import _devtools_utils as du

        original = du.print_pdf
        raise_error = du._raise_error
    except (ImportError, AttributeError):
        yield
        return

    async def print_pdf(tab: Any) -> Any:
        params = {"printBackground": True, "marginTop": 0, "marginBottom": 0, "marginLeft": 0,
                  "marginRight": 0, "preferCSSPageSize": True, "pageRanges": "1"}  # fmt: skip
        response = await tab.send_command("Page.printToPDF", params=params)
        raise_error(response)
        return response.get("result", {}).get("data")

    du.print_pdf = print_pdf
    try:
        yield
    finally:
        du.print_pdf = original


def _run(coro_factory: Any) -> Any:
    """Run a coroutine to completion, also from inside a running event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


def export_figures(
    items: Sequence[tuple[Any, Path, int, int]],
    *,
    formats: Sequence[str] = FORMATS,
    scale: float = 1.0,
    timeout: float = 120.0,
) -> ExportResult:
    """Write every figure in every format with one kaleido browser.

    Parameters
    ----------
    items : sequence of (figure, path stem, width px, height px)
        ``path stem`` gets the format's suffix; sizes are CSS pixels (96 per inch, so a PDF
        page is ``width * 0.75`` points wide).
    formats : sequence of {"pdf", "svg", "png"}
    scale : float
        PNG pixels per CSS pixel (``dpi / 96``); vector formats ignore it.
    timeout : float
        Seconds allowed per figure.

    Returns
    -------
    ExportResult
        ``skipped`` holds one line saying how to enable static export when kaleido or a
        browser is missing (nothing is written then).
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"formats {bad}: allowed values are {', '.join(FORMATS)}")
    if not items or not formats:
        return ExportResult([])
    try:
        import kaleido
        from choreographer.errors import ChromeNotFoundError
    except ImportError:
        return ExportResult(
            [], "static figures (PDF/SVG/PNG) need kaleido: pip install 'xalign[export]'"
        )
    jobs: list[dict[str, Any]] = []
    for fig, stem, width, height in items:
        fig = _with_trace_uids(fig)
        for fmt in formats:
            path = Path(f"{stem}.{fmt}")
            opts = {"format": fmt, "width": width, "height": height,
                    "scale": scale if fmt == "png" else 1}  # fmt: skip
            jobs.append({"fig": fig, "path": path, "opts": opts})

    async def render() -> tuple[Exception, ...]:
        page = kaleido.PageGenerator(mathjax=False)  # MathJax would come from a CDN
        page.header = page.header.replace("Kaleido-fier", "xalign figure")
        async with kaleido.Kaleido(n=1, timeout=timeout, page_generator=page) as k:
            return tuple(await k.write_fig_from_object(jobs))

    try:
        with _pdf_without_margins():
            errors = _run(render)
            if errors:
                # kaleido can run a figure's script before its page has loaded ("kaleido_scopes
                # is not defined", seen once under load): one more browser, every figure again
                errors = _run(render)
    except ChromeNotFoundError:
        return ExportResult([], ENABLE_STATIC_HINT)
    except (OSError, RuntimeError) as e:  # a browser that does not start or crashes
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return ExportResult([], f"{ENABLE_STATIC_HINT} (kaleido failed: {first})")
    if errors:
        raise RuntimeError(f"kaleido could not render {len(errors)} figure(s): {errors[0]}")
    files: list[Path] = []
    for job in jobs:
        path = Path(job["path"])
        if path.suffix == ".pdf":
            path.write_bytes(fix_pdf_dates(path.read_bytes()))
        elif path.suffix == ".svg":
            uid = re.sub(r"[^0-9a-z]", "", path.stem.lower())[:24] or "fig"
            path.write_text(fix_svg_ids(path.read_text(encoding="utf-8"), uid), encoding="utf-8")
        files.append(path)
    return ExportResult(files)
