"""The documentation site: every metric has a page, docstrings cite only the repository's docs.

The strict build itself (``make docs``) runs here too when MkDocs is installed (the ``docs``
extra), so CI fails on a broken link, a missing anchor or a formula that does not render.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _gen():
    spec = importlib.util.spec_from_file_location("xalign_docs_gen", DOCS / "_tools" / "gen.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gen():
    return _gen()


@pytest.fixture(scope="module")
def pages(gen):
    return gen.generate()


def test_every_catalogue_metric_has_a_page(gen, pages):
    cat = gen.catalogue()
    assert cat, "the metric catalogue is empty"
    missing = [name for name in cat if f"catalogue/{name}.md" not in pages]
    assert not missing, f"metrics without a documentation page: {missing}"
    index = pages["catalogue/index.md"]
    for name in cat:
        assert f"[`{name}`]({name}.md)" in index, f"{name} is not listed in the catalogue index"
        page = pages[f"catalogue/{name}.md"]
        for part in ("| direction |", "| range |", "## Formula", "## Protocol choices"):
            assert part in page, f"catalogue/{name}.md lacks {part!r}"


def test_every_public_metric_function_is_documented(gen, pages):
    import xalign.metrics as xm

    api = pages["api/metrics.md"]
    functions = [
        n
        for n in xm.__all__
        if inspect.isfunction(getattr(xm, n)) or inspect.isclass(getattr(xm, n))
    ]
    assert functions
    undocumented = [n for n in functions if f"::: xalign.metrics.{n}\n" not in api]
    assert not undocumented, f"public names of xalign.metrics without an API entry: {undocumented}"
    # every function a metric page draws its formula from is public and has a docstring
    for name, src in gen.METRIC_SOURCES.items():
        qual, fn = gen.source_function(src.function)
        assert fn is not None, f"{name}: {qual} does not exist"
        assert inspect.getdoc(fn), f"{name}: {qual} has no docstring"
        room, _, short = qual.rpartition(".")
        assert short in importlib.import_module(room).__all__, f"{name}: {qual} is not public"


def test_every_command_has_a_page(pages):
    for cmd in ("extract", "metrics", "project", "report", "train", "neurons", "dashboard", "demo"):
        page = pages[f"commands/{cmd}.md"]
        assert "## `--help`" in page and "usage:" in page


def _docstrings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                line = node.body[0].lineno if node.body else 1
                out.append((line, doc))
        # module-level help texts (EPILOG = """...""") are documentation too
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and "\n" in node.value.value
        ):
            out.append((node.lineno, node.value.value))
    return out


_OUTSIDE = re.compile(
    r"\.\./shared|shared/docs|(?<![\w/])(?:push-pull|e5-format)\.md|metrics\.md B"
)
_DOC_LINK = re.compile(r"docs/([\w./-]+\.md)(?:#([\w-]+))?")


def _anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    ids = set(re.findall(r"\{#([\w-]+)\}", text))
    for title in re.findall(r"^#+ (.+?)\s*$", text, flags=re.M):
        ids.add(re.sub(r"[^\w\- ]", "", title).strip().lower().replace(" ", "-"))
    return ids


def test_docstrings_cite_only_files_in_the_repository():
    bad = []
    for folder in ("xalign", "dashboards"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, doc in _docstrings(path):
                rel = path.relative_to(ROOT)
                if _OUTSIDE.search(doc):
                    bad.append(f"{rel}:{line}: cites {_OUTSIDE.search(doc).group(0)!r}")
                for m in _DOC_LINK.finditer(doc):
                    page, anchor = DOCS / m.group(1), m.group(2)
                    if not page.is_file():
                        bad.append(f"{rel}:{line}: docs/{m.group(1)} does not exist")
                    elif anchor and anchor not in _anchors(page):
                        bad.append(f"{rel}:{line}: docs/{m.group(1)} has no anchor #{anchor}")
    assert not bad, "docstrings citing files outside the repository:\n" + "\n".join(bad)


@pytest.mark.slow
def test_site_builds_strictly(tmp_path):
    pytest.importorskip(
        "mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'"
    )
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("latex2mathml")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    assert (site / "catalogue" / "index.html").is_file()
    html = (site / "metrics.html").read_text(encoding="utf-8")
    assert "<math" in html and "arithmatex" not in html
    # offline: no page loads a script, stylesheet or font from another host
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not remote, f"{page.relative_to(site)} loads {remote[:3]}"
