"""The metrics command guards its output and its inputs (issue 11 classes 2-4, issue 12.7)."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from xalign.data import Corpus
from xalign.extract import ExtractConfig, extract
from xalign.metrics import MetricsConfig
from xalign.metrics.__main__ import main

QUICK = ["--metrics", "isotropy", "--layers", "1", "--bootstrap", "0", "--no-progress"]


@pytest.fixture(scope="module")
def store_dir(tiny_bert, tmp_path_factory) -> Path:
    recs = [
        {"id": f"{lang}{i}", "lang": lang, "text": f"{lang} sentence {i}", "group": f"g{i}"}
        for lang in ("eng", "deu")
        for i in range(6)
    ]
    st, _ = extract(
        ExtractConfig(out=str(tmp_path_factory.mktemp("guards") / "runs" / "s"), progress=False),
        corpus=Corpus.from_records(recs),
        encoder=tiny_bert,
    )
    return st.path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_output_inside_the_store_or_unknown_suffix_is_refused(store_dir, capsys, monkeypatch):
    import xalign.metrics._run as run

    def never(*a, **k):
        raise AssertionError("computed although the output was refused")

    monkeypatch.setattr(run, "compute_metrics", never)
    before = _snapshot(store_dir)
    for out, match in (
        (store_dir / "rows.parquet", "is also an input|lies inside"),
        (store_dir, "unknown output type|is also an input"),
        (store_dir / "new.parquet", "lies inside"),
        (store_dir.parent / "r.txt", "unknown output type '.txt'"),
        (store_dir.parent / "r", "unknown output type"),
    ):
        assert main([str(store_dir), "--out", str(out), *QUICK]) == 2
        assert re.search(match, _one_line_error(capsys)), out
    assert _snapshot(store_dir) == before


def test_sidecar_may_not_overwrite_the_config_file(store_dir, tmp_path, capsys):
    cfg = tmp_path / "r.config.json"  # a TOML file, oddly named
    cfg.write_text('metrics = "isotropy"\n')
    assert main([str(store_dir), "--config", str(cfg), "--out", str(tmp_path / "r.parquet"),
                 "--layers", "1", "--no-progress"]) == 2  # fmt: skip
    assert "is also an input" in _one_line_error(capsys)
    assert cfg.read_text() == 'metrics = "isotropy"\n'


def test_default_output_is_beside_the_store(store_dir, capsys):
    before = _snapshot(store_dir)
    assert main([str(store_dir), *QUICK]) == 0
    out = store_dir.parent / f"{store_dir.name}.results.parquet"
    assert f"results   {out}" in capsys.readouterr().out
    assert len(pd.read_parquet(out)) > 0
    side = json.loads((store_dir.parent / f"{store_dir.name}.results.config.json").read_text())
    assert side["out"] == str(out) and side["metrics"] == ["isotropy"]
    assert _snapshot(store_dir) == before


def test_unwritable_output_is_refused_before_computing(store_dir, tmp_path, capsys, monkeypatch):
    import xalign.metrics._run as run

    monkeypatch.setattr(run, "compute_metrics", lambda *a, **k: pytest.fail("computed"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([str(store_dir), "--out", str(blocker / "r.parquet"), *QUICK]) == 2
    assert str(blocker) in _one_line_error(capsys)


def test_disk_full_keeps_the_results_and_says_where(store_dir, tmp_path, capsys, monkeypatch):
    import tempfile

    import xalign.metrics.__main__ as cli

    out = tmp_path / "out" / "r.parquet"
    out.parent.mkdir()
    out.write_bytes(b"old results")
    spare = tmp_path / "spare"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    real = cli._write_table

    def full(results, path):
        if Path(path).parent == out.parent:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(results, path)

    monkeypatch.setattr(cli, "_write_table", full)
    assert main([str(store_dir), "--out", str(out), *QUICK]) == 2
    err = _one_line_error(capsys)
    assert str(out) in err and "nothing there was replaced" in err and "disk is full" in err
    saved = list(spare.glob("xalign-results-*.parquet"))
    assert len(saved) == 1 and str(saved[0]) in err
    assert len(pd.read_parquet(saved[0])) > 0
    assert out.read_bytes() == b"old results"
    # when the fallback fails too, the message says the results are lost (not silently)
    monkeypatch.setattr(cli, "_write_table", lambda *a: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(a[1]))))  # fmt: skip
    assert main([str(store_dir), "--out", str(out), *QUICK]) == 2
    assert "failed too" in _one_line_error(capsys)


def test_damaged_row_table_is_one_line_naming_the_file(store_dir, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(store_dir, bad)
    (bad / "rows.parquet").write_bytes(b"not parquet at all")
    assert main([str(bad), "--out", str(tmp_path / "r.parquet"), *QUICK]) == 2
    err = _one_line_error(capsys)
    assert str(bad) in err and "rows.parquet" in err


def test_a_folder_of_stores_lists_them(store_dir, tmp_path, capsys):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(store_dir, root / "a")
    shutil.copytree(store_dir, root / "deeper" / "b")
    assert main([str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{root} is not a store but holds 2 store(s)" in err
    for sub in (root / "a", root / "deeper" / "b"):
        assert str(sub) in err
    assert "12 rows, layers 0..2, model" in err and "python -m xalign.metrics" in err


def test_help_and_argument_errors_load_no_heavy_module():
    heavy = ("numpy", "pandas", "sklearn", "torch", "transformers", "faiss", "zarr", "scipy")
    for args in (["--help"], ["x", "--bootstrap", "many"], ["x", "--metrics", "nope"]):
        r = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "xalign.metrics", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode in (0, 2), r.stderr[-500:]
        loaded = {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines()
                  if line.startswith("import time:")}  # fmt: skip
        assert not loaded & set(heavy), (args, loaded & set(heavy))


def test_config_validation_messages_match_the_flags():
    """The Python API says what the flag says; no store is touched for a bad option."""
    cases = [
        ({"bootstrap": "many"}, r"--bootstrap 'many': invalid int value"),
        ({"k": 2.5}, r"--k 2.5: invalid int value"),
        ({"bootstrap": -1}, r"--bootstrap -1: must be >= 0 \(0 = no intervals\)"),
        ({"cv": 1}, r"--cv 1: must be >= 2"),
        ({"centering": "x"}, r"--centering 'x': allowed values are raw, centered, both"),
        ({"backend": "gpu"}, r"--backend 'gpu': allowed values are auto, numpy"),
        ({"scoring": [1]}, r"--scoring \[1\]: expected a comma-separated string or a list"),
        ({"pivot": ["eng"]}, r"--pivot \['eng'\]: expected a non-empty string"),
        ({"dedup": "no"}, r"--no-dedup 'no': expected true or false"),
    ]
    from xalign.errors import ConfigError

    for kw, match in cases:
        with pytest.raises(ConfigError, match=match):
            MetricsConfig(stores=["nowhere"], **kw)
