"""``python -m xalign.report`` refuses outputs that would destroy an input or write into a
store, unknown formats, bad TOML values and OS errors with one line (issue 11, classes 2-4);
a report built from a DataFrame says where its numbers came from (issue 12, item 6)."""

from __future__ import annotations

import json

import pytest

from xalign.report import build_report
from xalign.report.__main__ import main


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _fake_store(path):
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"format": "xalign-store"}))
    return path


def test_out_may_not_be_or_contain_the_results_file(synthetic_results, capsys):
    before = synthetic_results.read_bytes()
    assert main([str(synthetic_results), "--out", str(synthetic_results), "--no-figures"]) == 2
    assert "is also an input of this command" in _err(capsys)
    assert main([str(synthetic_results), "--out", str(synthetic_results.parent),
                 "--no-figures"]) == 2  # fmt: skip
    assert "would contain the input" in _err(capsys)
    assert synthetic_results.read_bytes() == before


def test_out_may_not_lie_inside_a_store(synthetic_results, tmp_path, capsys):
    store = _fake_store(tmp_path / "runs" / "before")
    assert main([str(synthetic_results), "--out", str(store / "report"), "--no-figures"]) == 2
    assert "inside the store" in _err(capsys)
    assert not (store / "report").exists()


def test_unknown_suffixes_and_formats_are_refused(synthetic_results, tmp_path, capsys):
    odd = tmp_path / "results.xlsx"
    odd.write_bytes(synthetic_results.read_bytes())
    assert main([str(odd), "--out", str(tmp_path / "r")]) == 2
    assert "unknown results file type '.xlsx'" in _err(capsys)
    rc = main([str(synthetic_results), "--out", str(tmp_path / "r"), "--figure-formats", "jpg"])
    assert rc == 2
    assert "--figure-formats ['jpg']: allowed values are pdf, svg, png" in _err(capsys)
    assert not (tmp_path / "r").exists()


def test_os_errors_are_one_line(synthetic_results, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main([str(synthetic_results), "--out", str(blocker), "--no-figures"]) == 2
    assert str(blocker) in _err(capsys)
    assert main([str(synthetic_results), "--out", str(blocker / "sub"), "--no-figures"]) == 2
    assert str(blocker) in _err(capsys)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('decimals = "many"', "decimals"),
        ("dpi = 2.5", "dpi"),
        ('projection = "mds"', "projection"),
        ("figures = 3", "figures"),
        ('metrics = ["nope"]', "nope"),
        ("decimals = 40", "--decimals 40"),
    ],
)
def test_toml_values_are_checked_like_flags(synthetic_results, tmp_path, capsys, toml, expected):
    cfg = tmp_path / "report.toml"
    cfg.write_text(toml + "\n")
    rc = main([str(synthetic_results), "--out", str(tmp_path / "r"), "--config", str(cfg)])
    assert rc == 2
    assert expected in _err(capsys)


def test_report_from_a_dataframe_keeps_the_table_and_its_provenance(results_factory, tmp_path):
    df = results_factory()
    s = build_report(df, out=tmp_path / "r", figures=False, formats=("md",))
    saved = tmp_path / "r" / "results.parquet"
    assert saved in s.files and saved.is_file()
    md = (tmp_path / "r" / "report.md").read_text()
    assert "<DataFrame>" not in md
    assert f"`{saved}` (a DataFrame passed to build_report" in md
    prov = json.loads((tmp_path / "r" / "provenance.json").read_text())
    assert prov["results"]["path"] == str(saved) and prov["results"]["source"] == "DataFrame"
    assert len(prov["results"]["sha256"]) == 64
    assert prov["commands"]["metrics"].startswith("python -m xalign.metrics before=runs/before")
    assert "results.parquet" in prov["files"]
