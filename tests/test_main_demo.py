"""``python -m xalign demo``: what its last lines say is true (issue 12, item 6).

Extraction, metrics and projection are replaced by stand-ins (the real ones are tested in
their own rooms and by ``make demo``); the report is the real one, built from the results
file, with static export reported as unavailable.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "report"))
from conftest import make_results


@pytest.fixture
def demo(tmp_path, monkeypatch):
    import xalign.extract
    import xalign.metrics.__main__
    import xalign.project
    import xalign.report._export
    from xalign.report._export import ENABLE_STATIC_HINT, ExportResult

    class Summary:
        def format(self) -> str:
            return "store written"

    seen: dict[str, list[str]] = {}

    def metrics_main(argv):
        seen["metrics"] = list(argv)
        out = Path(argv[argv.index("--out") + 1])
        make_results(checkpoints=("pretrained",)).to_parquet(out, index=False)
        return 0

    monkeypatch.setattr(xalign.extract, "load_extract_encoder", lambda cfg: object())

    def extract(cfg, *a, **k):
        seen.setdefault("extract", []).append(cfg)
        return None, Summary()

    monkeypatch.setattr(xalign.extract, "extract", extract)
    monkeypatch.setattr(xalign.extract, "extract_pair_attention", lambda *a, **k: None)
    monkeypatch.setattr(xalign.metrics.__main__, "main", metrics_main)
    monkeypatch.setattr(xalign.project, "project_stores", lambda *a, **k: [])
    monkeypatch.setattr(
        xalign.report._export,
        "export_figures",
        lambda *a, **k: ExportResult([], ENABLE_STATIC_HINT),
    )
    return tmp_path / "demo", seen


def test_demo_says_what_it_wrote(demo, capsys):
    from xalign.__main__ import main

    out, seen = demo
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    groups = seen["metrics"][seen["metrics"].index("--metrics") + 1].split(",")
    assert "attention" not in groups and "retrieval" in groups
    # every group asked for by name must be supported by the main store, or metrics refuse it
    # (CI's make demo failed on --metrics neurons against a store without the statistics)
    assert "neurons" in groups and seen["extract"][0].neurons
    assert "re-extract with --attentions" not in printed
    line = next(x for x in printed.splitlines() if x.startswith("  report     "))
    assert "figures/*.pdf" not in line and "interactive HTML only" in line and "chromium" in line
    assert "tables/*.tex" in line
    md = (out / "report" / "report.md").read_text()
    assert "<DataFrame>" not in md and f"`{out / 'results.parquet'}`" in md
