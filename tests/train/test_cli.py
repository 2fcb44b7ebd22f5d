"""``python -m xalign.train``: flags, TOML config, help, one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xalign.train.__main__ import main


def test_help_lists_every_option_with_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag, default in [
        ("--alpha", "0.1"), ("--beta", "1.0"), ("--ap-layer", "6"), ("--lr", "2e-05"),
        ("--batch-size", "8"), ("--grad-accum", "4"), ("--seeds", "7"), ("--selection", "dev"),
        ("--n-views", "3"), ("--method", "pushpull"), ("--max-length", "128"),
    ]:  # fmt: skip
        assert flag in out
        assert (
            f"[default: {default}]" in out.replace("\n", " ").replace("  ", " ") or default in out
        )
    for flag in (
        "--neighbours",
        "--epochs",
        "--out",
        "--device",
        "--task",
        "--data",
        "--model",
        "--ablate",
        "--ap-mask",
    ):
        assert flag in out
    assert "oracle" in out and "0-based ap_layer=5 is 6" in out


def test_flags_and_toml_config(tiny_bert_dir, tiny_sib, neighbours_file, tmp_path, capsys):
    out = tmp_path / "run"
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'model = "{tiny_bert_dir}"\ntask = "sib200"\ndata = "{tiny_sib}"\nmethod = "pushpull"\n'
        f'neighbours = "{neighbours_file}"\nap_layer = 2\nn_views = 1\nepochs = 1\nbatch_size = 8\n'
        f'grad_accum = 1\nseeds = [4, 5]\nprogress = false\nout = "{out}"\n',
        encoding="utf-8",
    )
    rc = main(
        [
            "--config",
            str(toml),
            "--alpha",
            "0.5",
            "--test-langs",
            "deu_Latn,fra_Latn",
            "--no-save-checkpoint",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "pushpull: pushpull (terms ce+ep+rt+ap)" in printed and "results" in printed
    conf = json.loads((out / "config.json").read_text())
    assert (
        conf["alpha"] == 0.5
        and conf["seeds"] == [4, 5]
        and conf["test_langs"] == ["deu_Latn", "fra_Latn"]
    )
    res = pd.read_parquet(out / "results.parquet")
    assert set(res["checkpoint"]) == {"pushpull-seed4", "pushpull-seed5", "pushpull"}
    assert sorted(res.loc[res["metric"] == "zero_shot_acc", "lang"].unique()) == ["deu", "fra"]
    assert main(["--config", str(toml)]) == 2  # the folder exists now
    assert "pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ap-layer", "9"], "--ap-layer 9 is beyond the model"),
        (["--method", "rsda", "--neighbours", "/nonexistent.json"], "no such neighbour file"),
        (["--selection", "test"], None),  # argparse choices: exit 2 with usage
        (["--ablate", "kl"], "--ablate 'kl': allowed values are ce, rt, ep, ap"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    argv, message, tiny_bert_dir, tiny_sib, neighbours_file, tmp_path, capsys
):
    base = ["--model", str(tiny_bert_dir), "--data", str(tiny_sib), "--neighbours", str(neighbours_file),
            "--out", str(tmp_path / "o"), "--no-progress"]  # fmt: skip
    try:
        rc = main(base + argv)
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after transformers' loading bars
    if message:
        assert last.startswith("error: ") and message in last


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if training (and so the model load) starts: the checks come first."""
    import xalign.train._trainer as trainer

    def refuse(*args, **kwargs):
        raise AssertionError("training started although --out is unusable")

    monkeypatch.setattr(trainer, "train", refuse)


@pytest.mark.parametrize(
    ("make_out", "message"),
    [
        (lambda d: d["file"], "a file stands where a folder is expected"),
        (lambda d: "/proc/xalign-test/run", "cannot write there"),
        (lambda d: d["data"], "is also an input of this command"),
        (lambda d: d["data"] / "run", "lies inside the input"),
        (lambda d: d["neighbours"].parent, "would contain the input"),
        (lambda d: d["model"], "is also an input of this command"),
        (lambda d: d["store"] / "run", "lies inside the store"),
    ],
    ids=["file", "proc", "data", "in-data", "holds-neighbours", "model", "in-store"],
)
def test_out_is_checked_before_the_model_loads(make_out, message, tmp_path, capsys, no_training):
    data = tmp_path / "sib"
    data.mkdir()
    neighbours = tmp_path / "nb" / "neighbours.json"
    neighbours.parent.mkdir()
    neighbours.write_text("{}", encoding="utf-8")
    model = tmp_path / "model"
    model.mkdir()
    store = tmp_path / "store"
    store.mkdir()
    (store / "manifest.json").write_text('{"format": "xalign-store"}', encoding="utf-8")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x", encoding="utf-8")
    where = {"data": data, "neighbours": neighbours, "model": model, "store": store, "file": a_file}
    out = make_out(where)
    argv = ["--model", str(model), "--data", f"sib200:{data}", "--neighbours", str(neighbours),
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and message in err and err.count("\n") == 1
    assert a_file.read_text(encoding="utf-8") == "x" and neighbours.is_file()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('epochs = "many"', "epochs = 'many': invalid int value (as for --epochs)"),
        ("out = 3", "out = 3: expected a string (as for --out)"),
        ('method = "sgd"', "method = 'sgd'"),
        ("overwrite = 1", "expected true or false (the switch --overwrite)"),
    ],
)
def test_toml_values_are_checked_like_flags(toml, message, tmp_path, capsys, no_training):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml + "\n", encoding="utf-8")
    assert main(["--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_help_and_argument_errors_do_not_import_torch():
    """``--help`` and argument errors answer before torch / pandas load (they take seconds)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from xalign.train.__main__ import main\n"
        "for argv in (['--help'], ['--epochs', 'x'], ['--method', 'sgd']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'pandas', 'transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
