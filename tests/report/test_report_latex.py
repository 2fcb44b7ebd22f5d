"""The LaTeX tables compile with a real pdflatex (booktabs), escapes included."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from xalign.report import build_report


def test_every_table_compiles_with_pdflatex(results_factory, tmp_path, helpers):
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not found: apt-get install texlive-latex-recommended to run it")
    df = results_factory()
    # labels with LaTeX special characters must be escaped
    df["checkpoint"] = df["checkpoint"].map({"before": "base_v1 #1", "after": "ft & 50% {x}"})
    s = build_report(df, out=tmp_path / "r", figures=False, focus_layers="1,3")
    tex = sorted((tmp_path / "r" / "tables").glob("*.tex"))
    names = {p.stem for p in tex}
    assert {"before_after", "retrieval_by_language-L1", "retrieval_by_language-L3"} <= names
    assert {f"metric_by_layer-{n}" for n in ("base_v1-1", "ft-50-x")} <= names
    assert len(tex) == len(s.tables)
    body = "\n".join(f"\\input{{{p.as_posix()}}}\n\\clearpage" for p in tex)
    doc = tmp_path / "doc.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert run.returncode == 0, log[-3000:]
    assert "! " not in log and "Undefined control sequence" not in log
    assert helpers.pdf_pages(tmp_path / "doc.pdf") == len(tex)
    ba = (tmp_path / "r" / "tables" / "before_after.tex").read_text()
    assert "\\toprule" in ba and "\\midrule" in ba and "\\bottomrule" in ba
    assert "ft \\& 50\\% \\{x\\}" in ba and "base\\_v1 \\#1" in ba
