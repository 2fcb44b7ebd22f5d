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
        (["--ablate", "kl"], "--ablate ['kl']: allowed terms are ce, rt, ep, ap"),
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
