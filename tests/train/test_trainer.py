"""End-to-end training on a tiny model and tiny data (seconds): push/pull, selection, outputs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from xalign.metrics._run import RESULTS_COLUMNS
from xalign.models import load_encoder
from xalign.train import TrainConfig, load_classifier, predict, train
from xalign.train._evaluate import encode_pairs
from xalign.train._trainer import _Trainer


def cfg(tmp_path, tiny_sib, neighbours_file, name, **kw):
    base = dict(
        model="tiny-bert", task="sib200", data=str(tiny_sib), neighbours=str(neighbours_file),
        ap_layer=2, n_views=1, epochs=2, lr=5e-3, batch_size=4, grad_accum=2, seeds=[1],
        monitor_every=1, out=str(tmp_path / name), progress=False,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def bert(tiny_bert):
    """A private copy of the session's tiny BERT (training must not touch the shared one)."""
    return copy.deepcopy(tiny_bert)


def test_push_rises_and_pull_falls_versus_finetune(bert, tiny_sib, neighbours_file, tmp_path):
    # α and β are exaggerated so that a seconds-long run on a random tiny model shows the effect.
    before = {k: v.clone() for k, v in bert.model.state_dict().items()}
    runs = {
        m: train(
            cfg(
                tmp_path,
                tiny_sib,
                neighbours_file,
                m,
                method=m,
                alpha=1.0,
                beta=100.0,
                save_checkpoint=False,
            ),
            encoder=bert,
        )
        for m in ("pushpull", "finetune")
    }
    for k, v in bert.model.state_dict().items():  # the caller's encoder is restored
        assert torch.equal(v, before[k])
    for seed in (1,):
        logs = {m: r.train_log[r.train_log["seed"] == seed] for m, r in runs.items()}
        pp, ft = logs["pushpull"], logs["finetune"]
        # identical data and seeds: both start from the same monitored values
        assert pp["push_distance"].iloc[0] == ft["push_distance"].iloc[0]
        assert pp["pull_mse"].iloc[0] == ft["pull_mse"].iloc[0]
        rise = lambda df: df["push_distance"].iloc[-1] - df["push_distance"].iloc[0]  # noqa: E731
        fall = lambda df: df["pull_mse"].iloc[0] - df["pull_mse"].iloc[-1]  # noqa: E731
        assert rise(pp) > 0 and rise(pp) > 2 * rise(ft)
        assert fall(pp) > 0 and fall(pp) > fall(ft)
        assert pp["pull_mse"].iloc[-1] < ft["pull_mse"].iloc[-1]
        # logged terms: pushpull has all four, finetune only CE on the original view
        assert pp[["ce", "rt", "ep", "ap"]].iloc[1:].notna().all().all()
        assert (
            ft[["ce", "ep", "ap"]].iloc[1:].isna().all().all() and ft["rt"].iloc[1:].notna().all()
        )
        assert (pp["ep"].iloc[1:] < 0).all() and (pp["ap"].iloc[1:] > 0).all()
        assert pp["lr"].iloc[1] > pp["lr"].iloc[-1]  # linear decay
    assert runs["pushpull"].train_log["step"].max() == 4  # 16 rows / batch 8 × 2 epochs


def test_same_seed_same_losses(bert, tiny_sib, neighbours_file, tmp_path):
    a = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "a", epochs=1, save_checkpoint=False), encoder=bert
    )
    b = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "b", epochs=1, save_checkpoint=False), encoder=bert
    )
    c = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "c", epochs=1, seeds=[2], save_checkpoint=False),
        encoder=bert,
    )
    cols = ["loss", "ce", "rt", "ep", "ap", "push_distance", "pull_mse"]
    pd.testing.assert_frame_equal(a.train_log[cols], b.train_log[cols])
    assert not np.allclose(a.train_log["loss"].iloc[1:], c.train_log["loss"].iloc[1:])


def test_outputs_results_schema_and_checkpoint_reload(bert, tiny_sib, neighbours_file, tmp_path):
    r = train(cfg(tmp_path, tiny_sib, neighbours_file, "pp", seeds=[1, 2], epochs=2), encoder=bert)
    out = tmp_path / "pp"
    for f in ("config.json", "results.parquet", "train_log.parquet", "seed-1/train_log.parquet"):
        assert (out / f).is_file()
    conf = json.loads((out / "config.json").read_text())
    assert conf["method"] == "pushpull" and conf["resolved"]["terms"] == ["ce", "ep", "rt", "ap"]
    res = pd.read_parquet(out / "results.parquet")
    assert list(res.columns) == list(RESULTS_COLUMNS)
    one = res[res["checkpoint"] == "pushpull-seed1"]
    accs = one[one["metric"] == "zero_shot_acc"].set_index("lang")["value"]
    assert set(accs.index) == {"eng", "deu", "fra"}
    ns = one[one["metric"] == "zero_shot_acc"].set_index("lang")["n"]
    pooled = one[one["metric"] == "zero_shot_acc_pooled"]["value"].item()
    assert pooled == pytest.approx(
        (accs["deu"] * ns["deu"] + accs["fra"] * ns["fra"]) / (ns["deu"] + ns["fra"])
    )
    assert one[one["metric"] == "zero_shot_acc_mean"]["value"].item() == pytest.approx(
        (accs["deu"] + accs["fra"]) / 2
    )
    assert all(json.loads(p)["selection"] == "dev" for p in one["protocol"])
    # the padding changes Attention-Pull's value, so every row records it (aggregates too)
    assert {json.loads(p)["padding"] for p in res["protocol"]} == {"longest"}
    # mean ± std over seeds
    per_seed = res[
        (res["metric"] == "zero_shot_acc_pooled") & res["checkpoint"].str.contains("seed")
    ]["value"]
    agg = res[res["checkpoint"] == "pushpull"].set_index("metric")["value"]
    assert agg["zero_shot_acc_pooled_seed_mean"] == pytest.approx(per_seed.mean())
    assert agg["zero_shot_acc_pooled_seed_std"] == pytest.approx(per_seed.std(ddof=1))
    # dev selection: the selected step has the best dev accuracy among evaluated steps (first max)
    log = r.train_log[r.train_log["seed"] == 1]
    evals = log[log["dev_acc"].notna()]
    assert r.seeds[0].selected_step == int(evals.loc[evals["dev_acc"].idxmax(), "step"])
    # the checkpoint is an encoder folder load_encoder reads, and the classifier reloads
    ckpt = r.seeds[0].checkpoint
    clf, enc, meta = load_classifier(ckpt, device="cpu")
    assert meta["labels"] == ["animals", "weather"] and meta["selection"] == "dev"
    plain = load_encoder(ckpt, device="cpu")
    x = plain.tokenizer(["der Hund läuft im Park"], return_tensors="pt")
    with torch.no_grad():
        h1 = plain.model(**x).last_hidden_state
        h2 = clf.encoder(**x).last_hidden_state
        h0 = bert.model(**x).last_hidden_state
    torch.testing.assert_close(h1, h2)
    assert not torch.allclose(h1, h0)  # trained weights, not the starting ones
    from xalign.train import load_task

    task = load_task(TrainConfig(task="sib200", data=str(tiny_sib)))
    de = task.test["deu"]
    enc_de = encode_pairs(enc.tokenizer, de["text_a"].tolist(), None, prefix="", max_length=128)
    pred = predict(clf, enc_de, pad_id=enc.tokenizer.pad_token_id, device="cpu")
    assert (pred == de["label"].to_numpy()).mean() == pytest.approx(accs["deu"])


def test_oracle_selection_is_labelled_and_picks_best_test(
    bert, tiny_sib, neighbours_file, tmp_path
):
    r = train(
        cfg(
            tmp_path,
            tiny_sib,
            neighbours_file,
            "or",
            selection="oracle",
            eval_every=1,
            epochs=1,
            method="finetune",
        ),
        encoder=bert,
    )
    log = r.train_log
    evals = log[log["test_pooled"].notna()]
    assert len(evals) == 2
    assert r.seeds[0].selected_step == int(evals.loc[evals["test_pooled"].idxmax(), "step"])
    assert (r.results["checkpoint"].str.contains("oracle")).all()
    protos = [json.loads(p) for p in r.results["protocol"]]
    assert all(p["selection"] == "oracle" and p["oracle"] is True for p in protos)
    assert "ORACLE" in r.format()
    seeds_pooled = r.results[r.results["metric"] == "zero_shot_acc_pooled"]["value"].item()
    assert seeds_pooled == pytest.approx(evals["test_pooled"].max())


def test_out_of_memory_halves_micro_batch_keeping_effective_batch(
    bert, tiny_sib, neighbours_file, tmp_path, monkeypatch
):
    ref = train(
        cfg(
            tmp_path,
            tiny_sib,
            neighbours_file,
            "ref",
            epochs=1,
            batch_size=2,
            grad_accum=4,
            save_checkpoint=False,
        ),
        encoder=bert,
    )
    real = _Trainer._micro

    def flaky(self, clf, rows, weight, scaler):
        if len(rows) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(self, clf, rows, weight, scaler)

    monkeypatch.setattr(_Trainer, "_micro", flaky)
    r = train(
        cfg(
            tmp_path,
            tiny_sib,
            neighbours_file,
            "oom",
            epochs=1,
            batch_size=8,
            grad_accum=1,
            save_checkpoint=False,
        ),
        encoder=bert,
    )
    assert any("out of memory with micro-batch 8: halved to 4" in n for n in r.notes)
    assert any(
        "halved to 2 (4 micro-batches per step, effective batch 8 kept)" in n for n in r.notes
    )
    assert (r.train_log["micro_batch"].iloc[1:] == 2).all()
    cols = ["loss", "ce", "rt", "ep", "ap"]
    pd.testing.assert_frame_equal(r.train_log[cols], ref.train_log[cols])


def test_sdpa_switches_to_eager_and_says_so(bert, tiny_sib, neighbours_file, tmp_path):
    assert bert.attn_implementation == "sdpa"
    r = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "e", epochs=1, save_checkpoint=False), encoder=bert
    )
    assert any("switched attention from sdpa to eager" in n for n in r.notes)
    assert r.train_log["ap"].iloc[1:].notna().all()
    # a model that claims eager but returns no maps is caught at the first forward
    liar = copy.deepcopy(bert)
    liar.model.set_attn_implementation("sdpa")
    liar.attn_implementation = "eager"
    r2 = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "e2", epochs=1, save_checkpoint=False),
        encoder=liar,
    )
    assert any("from sdpa to eager: the model returned no attention maps" in n for n in r2.notes)
    assert (
        r2.train_log["ap"].iloc[1:].notna().all()
        and liar.model.config._attn_implementation == "eager"
    )


def test_rsda_and_ablation_terms(bert, tiny_sib, neighbours_file, tmp_path):
    r = train(
        cfg(
            tmp_path,
            tiny_sib,
            neighbours_file,
            "rs",
            method="rsda",
            epochs=1,
            save_checkpoint=False,
        ),
        encoder=bert,
    )
    log = r.train_log.iloc[1:]
    assert log["ce"].notna().all() and log[["rt", "ep", "ap"]].isna().all().all()
    assert np.allclose(log["loss"], log["ce"])
    a = train(
        cfg(
            tmp_path,
            tiny_sib,
            neighbours_file,
            "ab",
            ablate=["ap", "rt"],
            epochs=1,
            save_checkpoint=False,
        ),
        encoder=bert,
    )
    log = a.train_log.iloc[1:]
    assert log[["rt", "ap"]].isna().all().all()
    assert np.allclose(log["loss"], log["ce"] + 1.0 * 0.1 * log["ep"], rtol=1e-5)
    assert a.results["protocol"].map(lambda p: json.loads(p)["terms"] == ["ce", "ep"]).all()


def test_xlmr_head_trains_and_reloads(tiny_xlmr, tiny_sib, neighbours_file, tmp_path):
    enc = copy.deepcopy(tiny_xlmr)
    r = train(cfg(tmp_path, tiny_sib, neighbours_file, "x", epochs=1), encoder=enc)
    conf = json.loads((tmp_path / "x" / "config.json").read_text())
    assert conf["resolved"]["head"] == "xlmr" and r.train_log["ap"].iloc[1:].notna().all()
    clf, enc2, _ = load_classifier(r.seeds[0].checkpoint, device="cpu")
    assert clf.head_kind == "xlmr" and set(clf.head) == {"dense", "inner_dropout", "out"}
    from xalign.train import load_task

    de = load_task(TrainConfig(task="sib200", data=str(tiny_sib))).test["deu"]
    enc_de = encode_pairs(enc2.tokenizer, de["text_a"].tolist(), None, prefix="", max_length=128)
    pred = predict(clf, enc_de, pad_id=enc2.tokenizer.pad_token_id, device="cpu")
    assert (pred == de["label"].to_numpy()).mean() == pytest.approx(r.seeds[0].test_acc["deu"])


@pytest.mark.gpu
def test_amp_on_cuda(tiny_bert, tiny_sib, neighbours_file, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    enc = copy.deepcopy(tiny_bert)
    enc.model.to("cuda")
    enc.device = torch.device("cuda")
    r = train(cfg(tmp_path, tiny_sib, neighbours_file, "g", epochs=1, device="cuda"), encoder=enc)
    log = r.train_log.iloc[1:]
    assert np.isfinite(log[["loss", "ce", "rt", "ep", "ap"]].to_numpy()).all()
    assert json.loads(r.results["protocol"].iloc[0])["selection"] == "dev"
