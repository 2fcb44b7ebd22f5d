"""Docstring RST → Markdown, for API pages (a griffe extension) and generated metric pages.

xalign's docstrings are numpydoc with a few reStructuredText constructs: ``.. math::`` blocks,
``:math:`...``` and cross-reference roles (``:func:`retrieve```). Markdown has none of them:
math becomes ``$...$`` / ``$$...$$`` (rendered to MathML by the ``hooks`` module), roles become
code spans, and a cited page of this site (``docs/metrics.md#cka``) becomes a link.
"""

from __future__ import annotations

import posixpath
import re

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc|py:\w+):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_DOCS_REF = re.compile(
    r"``?docs/([\w./-]+\.md)(#[\w-]+)?``?|(?<![\w/])docs/([\w./-]+\.md)(#[\w-]+)?"
)


def _math_blocks(text: str) -> str:
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)\.\. math::\s*(.*)$", line)
        if not m:
            out.append(line)
            i += 1
            continue
        indent, first = m.group(1), m.group(2)
        body = [first] if first.strip() else []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            if not lines[i].strip() and body and i + 1 < len(lines):
                nxt = lines[i + 1]
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= len(indent):
                    break
            body.append(lines[i].strip())
            i += 1
        formula = " ".join(b for b in body if b)
        out += ["", f"{indent}$$", f"{indent}{formula}", f"{indent}$$", ""]
    return "\n".join(out)


def _fence_doctests(text: str) -> str:
    """Doctest blocks outside an Examples section as fenced code (griffe fences only those)."""
    head, sep, tail = text.partition("\nExamples\n--------")
    out: list[str] = []
    in_block = False
    for line in head.split("\n"):
        if not in_block and line.lstrip().startswith(">>>"):
            out += ["", "```pycon"]
            in_block = True
        elif in_block and not line.strip():
            out += ["```"]
            in_block = False
        out.append(line)
    if in_block:
        out.append("```")
    return "\n".join(out) + sep + tail


def to_markdown(text: str, *, page: str = "api/x.md", html: bool = False) -> str:
    """Rewrite the RST constructs of a docstring as Markdown, for a page at ``page``.

    Links to other pages end in ``.md`` (MkDocs rewrites and checks them, in mkdocstrings
    output too), or in ``.html`` with ``html=True`` for text outside the build.
    """
    text = _fence_doctests(_math_blocks(text))
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = _ROLE.sub(lambda m: f"`{m.group(1).split('.')[-1]}`", text)

    def link(m: re.Match[str]) -> str:
        path = m.group(1) or m.group(3)
        anchor = m.group(2) or m.group(4) or ""
        rel = posixpath.relpath(path, posixpath.dirname(page) or ".")
        if html:
            rel = rel[: -len(".md")] + ".html"
        return f"[docs/{path}{anchor}]({rel}{anchor})"

    return _DOCS_REF.sub(link, text)


class RstToMarkdown(griffe.Extension):
    """Griffe extension: every docstring is rewritten by :func:`to_markdown` when loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
