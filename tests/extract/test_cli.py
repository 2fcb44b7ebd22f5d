"""``python -m xalign.extract`` called in-process (and once as a process killed with SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xalign.extract.__main__ import main
from xalign.store import Store


def write_tsv(path: Path, n_groups: int = 6) -> Path:
    langs = {"eng": "The {} boats left the harbour early.", "deu": "Die {} Boote verließen früh den Hafen.",
             "ell": "Τα {} σκάφη έφυγαν νωρίς από το λιμάνι."}  # fmt: skip
    lines = ["id\tlang\ttext\tgroup"]
    for g in range(n_groups):
        for lang, t in langs.items():
            lines.append(f"{lang}-{g}\t{lang}\t{t.format(g + 2)}\t{g}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_extract_writes_store_config_and_summary(tiny_bert_dir, tmp_path, capsys):
    data = write_tsv(tmp_path / "c.tsv")
    out = tmp_path / "store"
    argv = ["--model", str(tiny_bert_dir), "--data", f"tsv:{data}", "--out", str(out),
            "--pooling", "mean,cls", "--layers", "all", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "18 in 3 languages" in printed and str(out) in printed and "sentences/s" in printed
    store = Store.open(out)
    assert store.poolings == ["mean", "cls"] and len(store) == 18
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == str(tiny_bert_dir) and cfg["pooling"] == ["mean", "cls"]
    # a second run finds it complete and changes nothing
    before = (out / "manifest.json").read_bytes()
    assert main(argv) == 0
    assert "already complete" in capsys.readouterr().out
    assert (out / "manifest.json").read_bytes() == before


def test_cli_config_file_and_flag_override(tiny_bert_dir, tmp_path):
    data = write_tsv(tmp_path / "c.tsv")
    conf = tmp_path / "x.toml"
    conf.write_text(
        f'model = "{tiny_bert_dir}"\ndata = "tsv:{data}"\npooling = ["cls"]\nlayers = "1"\n'
        "progress = false\n"
    )
    out = tmp_path / "store"
    assert main(["--config", str(conf), "--out", str(out), "--layers", "0,2"]) == 0
    store = Store.open(out)
    assert store.layers == [0, 2] and store.poolings == ["cls"]


def test_cli_help_lists_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--model", "e5-small", "--pooling", "mean_nospecial", "--attentions",
                   "head-mean", "--token-budget", "8192", "tatoeba:FOLDER", "resumes"):  # fmt: skip
        assert needle in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "nosuchkind:x"], "nosuchkind"),
        (["--data", "tsv:/no/such/file.tsv"], "/no/such/file.tsv"),
        (["--layers", "99"], "--layers 99 out of range"),
        (["--pooling", "avg"], "allowed values are"),
        (["--model", "definitely/not-a-model-xyz"], "offline"),
    ],
)
def test_cli_bad_input_one_line_error(args, message, tiny_bert_dir, tmp_path, capsys):
    data = write_tsv(tmp_path / "c.tsv")
    argv = ["--model", str(tiny_bert_dir), "--data", f"tsv:{data}", "--out", str(tmp_path / "o"),
            "--no-progress", *args]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bars
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_cli_refuses_other_store(tiny_bert_dir, tmp_path, capsys):
    data = write_tsv(tmp_path / "c.tsv")
    out = tmp_path / "store"
    base = ["--model", str(tiny_bert_dir), "--out", str(out), "--no-progress"]
    assert main([*base, "--data", f"tsv:{data}"]) == 0
    other = write_tsv(tmp_path / "d.tsv", n_groups=4)
    assert main([*base, "--data", f"tsv:{other}"]) == 2
    assert "another model/corpus" in capsys.readouterr().err
    assert len(Store.open(out)) == 18


@pytest.mark.slow
def test_kill_9_then_resume_gives_same_bytes(tiny_bert_dir, tmp_path):
    """A real process killed with SIGKILL mid-run resumes to the same bytes."""
    data = write_tsv(tmp_path / "c.tsv", n_groups=400)  # 1200 rows
    common = ["--model", str(tiny_bert_dir), "--data", f"tsv:{data}", "--chunk-rows", "20",
              "--token-budget", "64", "--tokens", "--no-progress"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xalign.extract", *common, "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    progress = out / "progress.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if progress.is_file() and len(json.loads(progress.read_text())["done_chunks"]) >= 3:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    killed_midway = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_midway, "the extraction finished before it could be killed"
    with pytest.raises(Exception, match="incomplete"):
        Store.open(out)
    assert main([*common, "--out", str(out)]) == 0
    ref, res = Store.open(tmp_path / "ref"), Store.open(out)
    assert res.manifest["run"]["rows_computed"] < len(ref)
    np.testing.assert_array_equal(
        res._group["sentence/mean"][...], ref._group["sentence/mean"][...]
    )
    np.testing.assert_array_equal(res._group["token/hidden"][...], ref._group["token/hidden"][...])
    for f in sorted((ref.path / "arrays.zarr").rglob("*")):
        if f.is_file() and f.name != "zarr.json":
            assert f.read_bytes() == (out / f.relative_to(ref.path)).read_bytes()


def test_cli_pairs_mode(tiny_bert_dir, tmp_path, capsys):
    from xalign.store import PairAttention

    data = write_tsv(tmp_path / "c.tsv", n_groups=3)
    out = tmp_path / "store"
    argv = ["--model", str(tiny_bert_dir), "--data", f"tsv:{data}", "--out", str(out),
            "--langs", "eng,deu", "--pairs", "eng,deu", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "3 eng-deu pairs encoded jointly" in capsys.readouterr().out
    pa = PairAttention(out, "eng", "deu")
    assert len(pa) == 3 and pa.layers == [1, 2]
    ab, ba = pa.blocks(0, layer=1)
    assert ab.shape[::-1] == ba.shape and np.all((ab >= 0) & (ab <= 1))
    assert main([*argv[:-3], "--pairs", "eng", "--no-progress"]) == 2
    assert "expected two different languages" in capsys.readouterr().err


def test_cli_refuses_other_corpus_before_model_loads(tiny_bert_dir, tmp_path, capsys, monkeypatch):
    import xalign.extract._engine as engine

    data = write_tsv(tmp_path / "c.tsv")
    out = tmp_path / "store"
    base = ["--model", str(tiny_bert_dir), "--out", str(out), "--no-progress"]
    assert main([*base, "--data", f"tsv:{data}"]) == 0

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the corpus check")

    monkeypatch.setattr(engine, "load_extract_encoder", no_model)
    other = write_tsv(tmp_path / "d.tsv", n_groups=4)
    assert main([*base, "--data", f"tsv:{other}"]) == 2
    assert "corpus_fingerprint" in capsys.readouterr().err


def test_backward_layer_range_is_refused():
    from xalign.errors import ConfigError
    from xalign.extract import parse_layers

    assert parse_layers("-3--1", 12) == [10, 11, 12]
    for spec in ("12-0", ","):
        with pytest.raises(ConfigError, match="--layers"):
            parse_layers(spec, 12)
