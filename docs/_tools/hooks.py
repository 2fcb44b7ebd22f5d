"""MkDocs hooks: generated pages (``gen.py``) and math rendered to MathML at build time.

- ``on_config``: replaces the nav placeholders ``GENERATED:<folder>`` by the generated pages;
- ``on_files``: adds the generated pages to the build (nothing is written to ``docs/``);
- ``on_page_content``: turns the math that ``pymdownx.arithmatex`` marks (``$...$``,
  ``$$...$$``) into MathML with ``latex2mathml``, so pages need no JavaScript or web font
  and the site works offline; a formula that does not convert fails the strict build.
"""

from __future__ import annotations

import html
import logging
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen

log = logging.getLogger("mkdocs.plugins.xalign")
_PAGES: dict[str, str] = {}


def _title(path: str, text: str) -> str:
    m = re.search(r"^# (.+)$", text, flags=re.M)
    title = m.group(1) if m else Path(path).stem
    return title.replace("`", "").replace("\\", "")


def _expand(nav: Any) -> Any:
    if isinstance(nav, list):
        out = []
        for item in nav:
            if isinstance(item, str) and item.startswith("GENERATED:"):
                folder = item.split(":", 1)[1].strip("/") + "/"
                paths = [p for p in _PAGES if p.startswith(folder)]
                paths.sort(key=lambda p: (not p.endswith("index.md"), list(_PAGES).index(p)))
                out += [{_title(p, _PAGES[p]): p} for p in paths]
            else:
                out.append(_expand(item))
        return out
    if isinstance(nav, dict):
        return {k: _expand(v) for k, v in nav.items()}
    return nav


def on_config(config: Any) -> Any:
    _PAGES.clear()
    _PAGES.update(gen.generate())
    config["nav"] = _expand(config["nav"])
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, text in _PAGES.items():
        files.append(File.generated(config, path, content=text))
    return files


_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_BLOCK = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)


def _mathml(latex: str, *, block: bool, where: str) -> str:
    from latex2mathml.converter import convert

    tex = html.unescape(latex).strip()
    try:
        out = convert(tex, display="block" if block else "inline")
    except Exception as e:
        log.warning("%s: formula does not convert to MathML (%s): %s", where, e, tex)
        return f"<code>{html.escape(tex)}</code>"
    return f'<div class="math">{out}</div>' if block else out


def on_page_content(content: str, page: Any, **kwargs: Any) -> str:
    where = page.file.src_uri
    content = _BLOCK.sub(lambda m: _mathml(m.group(1), block=True, where=where), content)
    return _INLINE.sub(lambda m: _mathml(m.group(1), block=False, where=where), content)
