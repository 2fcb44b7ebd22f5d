"""``python -m xalign.neurons``: the per-layer summary and the ablation check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xalign.errors import ConfigError, DataError
from xalign.neurons import ablate, language_neurons, random_control, summary_table
from xalign.neurons.__main__ import main


def test_random_control_is_seeded_same_layers_and_disjoint():
    targets = [(1, 0), (1, 3), (1, 9), (2, 4)]
    a = random_control(targets, 16, seed=3)
    assert a == random_control(targets, 16, seed=3) != random_control(targets, 16, seed=4)
    assert sorted(x for x, _ in a) == [1, 1, 1, 2] and not set(a) & set(targets)
    with pytest.raises(ConfigError, match="layer 1 has 3 target neurons of 4"):
        random_control(targets, 4, seed=0)


def test_summary_counts(neuron_store, capsys):
    df = summary_table(neuron_store, top_rate=0.1)
    ns = neuron_store.neurons()
    assert df.layer.tolist() == ns.layers and (df.neurons == ns.active.shape[2]).all()
    assert 0 < df.specific.sum() <= round(0.1 * ns.active.shape[0] * ns.active.shape[2])
    assert main(["summary", str(neuron_store.path), "--top-rate", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "layer" in out and "shared" in out and "eng" in out


def test_ablate_zeroes_the_language_neurons_and_reports(neuron_store, tiny_bert, tmp_path):
    targets = language_neurons(neuron_store.neurons(), "deu", top_rate=0.1)
    assert targets
    new, report = ablate(neuron_store, "deu", tmp_path / "no-deu", encoder=tiny_bert, top_rate=0.1)
    assert new.ablated == [list(x) for x in sorted(targets)]
    ns = new.neurons()
    for layer, n in targets:
        assert not ns.active[ns.layers.index(layer), :, n].any()
    assert new.manifest["identity"]["corpus_fingerprint"] == neuron_store.corpus["fingerprint"]
    assert report.n_neurons == len(targets) and set(report.retrieval) == {"eng", "deu", "rus"}
    assert 0 <= report.retrieval["deu"]["before"] <= 1 and np.isfinite(report.retrieval_change)
    assert np.isfinite(report.others_retrieval_change)
    assert "all languages" in report.lid and "deu vs the others" in report.lid
    text = report.format()
    assert "deu-specific neurons" in text and "<- ablated" in text
    # the control: as many neurons in the same layers, none of deu's
    ctl, rep = ablate(neuron_store, "deu", tmp_path / "ctl", encoder=tiny_bert, top_rate=0.1,
                      control="random", seed=1)  # fmt: skip
    chosen = [tuple(x) for x in ctl.ablated]
    assert len(chosen) == len(targets) and not set(chosen) & set(targets)
    assert rep.neurons_per_layer == report.neurons_per_layer and "seed 1" in rep.format()


def test_cli_errors_are_one_line(neuron_store, tmp_path, capsys, tiny_bert_dir):
    argv = ["ablate", "--store", str(neuron_store.path), "--out", str(tmp_path / "x")]
    assert main([*argv, "--lang", "fra"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --lang 'fra': not in the store") and "\n" not in err
    # the store names the in-process model "tiny-bert": the CLI cannot load it
    assert main([*argv, "--lang", "deu", "--top-rate", "0.1"]) == 2
    assert "\n" not in capsys.readouterr().err.strip()


def test_store_without_statistics(tiny_bert, tmp_path):
    from xalign.extract import ExtractConfig, extract

    from .conftest import corpus

    plain, _ = extract(ExtractConfig(out=str(tmp_path / "p"), progress=False), corpus=corpus(),
                       encoder=tiny_bert)  # fmt: skip
    with pytest.raises(ConfigError, match="no neuron statistics; re-extract with --neurons"):
        ablate(plain, "deu", tmp_path / "q", encoder=tiny_bert)


def test_no_specific_neuron_is_a_clear_error(neuron_store, tiny_bert, tmp_path):
    with pytest.raises((DataError, ConfigError)):
        ablate(neuron_store, "deu", tmp_path / "z", encoder=tiny_bert, top_rate=1e-9)
    assert json


def test_cli_ablate_end_to_end(tiny_bert_dir, tmp_path, capsys):
    from xalign.extract.__main__ import main as extract_main

    from .conftest import TEXTS

    lines = ["id\tlang\ttext\tgroup"]
    lines += [
        f"{lang}-{i}\t{lang}\t{t}\t{i}" for lang, ts in TEXTS.items() for i, t in enumerate(ts)
    ]
    (tmp_path / "c.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    src = tmp_path / "before"
    assert extract_main(["--model", str(tiny_bert_dir), "--data", f"tsv:{tmp_path / 'c.tsv'}",
                         "--out", str(src), "--neurons", "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    argv = ["ablate", "--store", str(src), "--lang", "rus", "--out", str(tmp_path / "after"),
            "--top-rate", "0.1", "--control", "random", "--seed", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "random control neurons" in out and "LID probe" in out
    rep = json.loads((tmp_path / "after.ablation.json").read_text())
    assert rep["report"]["lang"] == "rus" and rep["report"]["control"] == "random"
    from xalign.store import Store

    assert len(Store.open(tmp_path / "after").ablated) == rep["report"]["n_neurons"]
