"""``python -m xalign.report``: in-process runs, TOML config, one-line errors."""

from __future__ import annotations

import json

from xalign.report.__main__ import main


def test_cli_writes_the_report_and_prints_where(synthetic_results, tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main([str(synthetic_results), "--out", str(out), "--no-figures", "--format", "latex,md",
               "--metrics", "retrieval_acc_mean,lid_accuracy", "--decimals", "2"])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0
    assert f"report.md       {out / 'report.md'}" in printed
    assert (out / "report.md").is_file() and not (out / "report.html").exists()
    tex = (out / "tables" / "metric_by_layer-before.tex").read_text()
    assert "Retrieval" in tex and "LID" in tex and "Lang. silhouette" not in tex
    assert "rounded to 2 decimals" in tex
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["commands"]["report"].startswith("python -m xalign.report ")
    assert "--decimals 2" in prov["commands"]["report"]
    assert prov["report"]["metrics"] == ["retrieval_acc_mean", "lid_accuracy"]
    assert len(prov["results"]["sha256"]) == 64
    assert json.loads((out / "config.json").read_text())["decimals"] == 2


def test_cli_reads_a_toml_config(synthetic_results, tmp_path, capsys):
    cfg = tmp_path / "report.toml"
    cfg.write_text('metrics = ["lid_accuracy"]\nformat = ["md"]\nfigures = false\n')
    rc = main([str(synthetic_results), "--out", str(tmp_path / "r"), "--config", str(cfg)])
    assert rc == 0, capsys.readouterr().err
    assert "LID probe acc." in (tmp_path / "r" / "report.md").read_text()
    assert not list((tmp_path / "r" / "tables").glob("*.tex"))


def test_cli_errors_are_one_line(synthetic_results, tmp_path, capsys):
    assert main([str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no such results file" in err and "\n" not in err
    assert main([str(synthetic_results), "--out", str(tmp_path / "r"), "--format", "docx"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --format ['docx']: allowed values are latex, md, html"
    rc = main(
        [str(synthetic_results), "--out", str(tmp_path / "r"), "--stores", str(tmp_path / "x")]
    )
    assert rc == 2 and "--stores" in capsys.readouterr().err
