"""Early stopping on English dev, the epoch cap, oracle selection from the same run, batching."""

from __future__ import annotations

import copy
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from xalign.errors import ConfigError
from xalign.train import TrainConfig, train
from xalign.train._trainer import _Trainer


def cfg(tmp_path, tiny_sib, neighbours_file, name, **kw):
    base = dict(
        model="tiny-bert", task="sib200", data=str(tiny_sib), neighbours=str(neighbours_file),
        ap_layer=2, n_views=1, epochs=2, lr=5e-3, batch_size=4, grad_accum=2, seeds=[1],
        monitor_every=0, eval_every=1, out=str(tmp_path / name), progress=False,
        save_checkpoint=False,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def bert(tiny_bert):
    return copy.deepcopy(tiny_bert)


def _expected_stop(dev: list[float], patience: int) -> int:
    """Index of the evaluation at which training must stop (plain loop, independent)."""
    best, bad = -1.0, 0
    for i, d in enumerate(dev):
        if d > best:
            best, bad = d, 0
        else:
            bad += 1
        if bad >= patience:
            return i
    return len(dev) - 1


def test_frozen_model_stops_after_exactly_patience_evaluations(
    bert, tiny_sib, neighbours_file, tmp_path
):
    # lr 1e-12: dev accuracy cannot change, so the first evaluation is the only gain
    for patience in (1, 3):
        r = train(
            cfg(
                tmp_path,
                tiny_sib,
                neighbours_file,
                f"p{patience}",
                lr=1e-12,
                head_lr=1e-12,
                epochs=50,
                patience=patience,
                method="finetune",
            ),
            encoder=bert,
        )
        log = r.train_log
        evals = log[log["dev_acc"].notna()]
        assert len(evals) == patience + 1
        assert log["step"].max() == patience + 1 < 50 * 2
        assert evals["bad_evals"].tolist() == list(range(patience + 1))
        assert log["stopped"].tolist() == [False] * (len(log) - 1) + [True]
        s = r.seeds[0]
        assert s.early_stopped and s.selected_step == 1 and s.steps == patience + 1
        protos = [json.loads(p) for p in r.results["protocol"]]
        seed_rows = [p for p in protos if "seed" in p]
        assert all(p["patience"] == patience and p["epoch_cap"] == 50 for p in protos)
        assert all(
            p["early_stopped"] is True and p["stopped_step"] == patience + 1 for p in seed_rows
        )
        assert (log["patience"].dropna() == patience).all() and (
            log["epoch_cap"].dropna() == 50
        ).all()


def test_stop_matches_an_independent_loop_and_selection_is_first_best(
    bert, tiny_sib, neighbours_file, tmp_path
):
    r = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "es", epochs=8, patience=2, seeds=[1, 2]),
        encoder=bert,
    )
    for s in r.seeds:
        log = r.train_log[r.train_log["seed"] == s.seed]
        evals = log[log["dev_acc"].notna()]
        dev = evals["dev_acc"].tolist()
        stop = _expected_stop(dev, 2)
        assert len(evals) == stop + 1
        assert s.steps == int(evals["step"].iloc[-1])
        assert s.early_stopped == (s.steps < 8 * 2)
        first_best = int(evals["step"].iloc[int(np.argmax(dev))])
        assert s.selected_step == first_best
        assert s.dev_acc == pytest.approx(max(dev))
        dev_row = r.results[
            (r.results["metric"] == "dev_acc")
            & (r.results["checkpoint"] == f"pushpull-seed{s.seed}")
        ]
        assert dev_row["value"].item() == pytest.approx(max(dev))
        assert json.loads(dev_row["protocol"].item())["selected_step"] == first_best


def test_epoch_cap_is_respected_when_patience_never_runs_out(
    bert, tiny_sib, neighbours_file, tmp_path
):
    r = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "cap", epochs=3, patience=100, eval_every=0),
        encoder=bert,
    )
    log = r.train_log
    assert log["step"].max() == 3 * 2  # 16 rows / batch 8 × 3 epochs
    assert log["epoch"].max() == pytest.approx(3.0)
    assert len(log[log["dev_acc"].notna()]) == 3  # one evaluation per epoch end
    assert not r.seeds[0].early_stopped and not log["stopped"].any()
    p = json.loads(r.results["protocol"].iloc[0])
    assert p["early_stopped"] is False and p["stopped_epoch"] == 3.0 and p["patience"] == 100


def test_record_oracle_adds_oracle_rows_without_changing_dev_selection(
    bert, tiny_sib, neighbours_file, tmp_path
):
    plain = train(cfg(tmp_path, tiny_sib, neighbours_file, "a", epochs=3), encoder=bert)
    both = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "b", epochs=3, record_oracle=True), encoder=bert
    )
    dev_rows = both.results[both.results["checkpoint"].str.startswith("pushpull-seed")]
    ref = plain.results[plain.results["checkpoint"].str.startswith("pushpull-seed")]
    pd.testing.assert_series_equal(
        dev_rows["value"].reset_index(drop=True), ref["value"].reset_index(drop=True)
    )
    log = both.train_log
    evals = log[log["test_pooled"].notna()]
    assert len(evals) == len(log[log["dev_acc"].notna()]) == 6
    orc = both.results[both.results["checkpoint"] == "pushpull-oracle-seed1"]
    assert set(orc["metric"]) == {
        "zero_shot_acc",
        "zero_shot_acc_pooled",
        "zero_shot_acc_mean",
        "dev_acc",
    }
    pooled = orc[orc["metric"] == "zero_shot_acc_pooled"]
    assert pooled["value"].item() == pytest.approx(evals["test_pooled"].max())
    p = json.loads(pooled["protocol"].item())
    assert p["selection"] == "oracle" and p["oracle"] is True
    assert p["selected_step"] == int(evals.loc[evals["test_pooled"].idxmax(), "step"])
    assert both.seeds[0].oracle_step == p["selected_step"]
    # the oracle can only match or beat dev selection on the pooled test it selects on
    dev_pooled = dev_rows[dev_rows["metric"] == "zero_shot_acc_pooled"]["value"].item()
    assert pooled["value"].item() >= dev_pooled
    aggs = set(both.results["checkpoint"])
    assert {"pushpull", "pushpull-oracle"} <= aggs
    agg = both.results[both.results["checkpoint"] == "pushpull-oracle"]
    assert json.loads(agg["protocol"].iloc[0])["selection"] == "oracle"
    assert not plain.results["checkpoint"].str.contains("oracle").any()


def test_record_oracle_refused_with_oracle_selection(tmp_path):
    with pytest.raises(ConfigError, match="--record-oracle"):
        TrainConfig(selection="oracle", record_oracle=True)
    with pytest.raises(ConfigError, match="--patience"):
        TrainConfig(patience=-1)
    with pytest.raises(ConfigError, match="--batching"):
        TrainConfig(batching="sorted")


def test_overwrite_behaviour_unchanged_with_early_stopping(
    bert, tiny_sib, neighbours_file, tmp_path
):
    c = cfg(tmp_path, tiny_sib, neighbours_file, "ow", epochs=2, patience=1)
    train(c, encoder=bert)
    with pytest.raises(ConfigError, match="--overwrite"):
        train(c, encoder=bert)
    c.overwrite = True
    again = train(c, encoder=bert)
    assert (tmp_path / "ow" / "results.parquet").is_file() and again.seeds[0].steps >= 2


def test_length_batching_covers_every_row_once_and_groups_by_length(
    bert, tiny_sib, neighbours_file, tmp_path, monkeypatch
):
    seen: list[np.ndarray] = []
    real = _Trainer._step

    def spy(self, clf, opt, sched, scaler, rows):
        seen.append(np.array(rows))
        return real(self, clf, opt, sched, scaler, rows)

    monkeypatch.setattr(_Trainer, "_step", spy)
    holder = {}
    real_init = _Trainer.__init__

    def keep(self, *a, **k):
        real_init(self, *a, **k)
        holder["t"] = self

    monkeypatch.setattr(_Trainer, "__init__", keep)
    r = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "len", epochs=2, batching="length", n_views=2),
        encoder=bert,
    )
    lengths = holder["t"].row_lengths
    per_epoch = 4  # 32 view rows / batch 8
    assert len(seen) == 2 * per_epoch == r.train_log["step"].max()
    for e in range(2):
        batches = seen[e * per_epoch : (e + 1) * per_epoch]
        assert sorted(np.concatenate(batches).tolist()) == list(range(32))
        spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
        for (_, hi), (lo, _) in itertools.pairwise(spans):
            assert hi <= lo  # one bucket: sorted, so batches do not interleave in length
    assert json.loads(r.results["protocol"].iloc[0])["batching"] == "length"


def test_oracle_limit_per_lang_scores_a_fixed_subsample(bert, tiny_sib, neighbours_file, tmp_path):
    kw = dict(epochs=2, record_oracle=True, method="finetune")
    full = train(cfg(tmp_path, tiny_sib, neighbours_file, "f", **kw), encoder=bert)
    big = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "g", oracle_limit_per_lang=100, **kw),
        encoder=bert,
    )
    small = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "s", oracle_limit_per_lang=2, **kw),
        encoder=bert,
    )
    # a limit above the test size keeps every row (the same numbers as no limit)
    pd.testing.assert_series_equal(full.train_log["test_pooled"], big.train_log["test_pooled"])
    vals = small.train_log["test_pooled"].dropna().to_numpy()
    assert len(vals) == 4 and np.allclose(vals * 4, np.round(vals * 4))  # 2 langs x 2 rows
    orc = small.results[small.results["checkpoint"] == "finetune-oracle-seed1"]
    p = json.loads(orc["protocol"].iloc[0])
    assert p["oracle_limit_per_lang"] == 2
    # the picked checkpoint is scored on the full test sets (16 target examples)
    assert orc[orc["metric"] == "zero_shot_acc_pooled"]["n"].item() == 16


def test_oracle_selection_alone_keeps_its_seed_aggregate(bert, tiny_sib, neighbours_file, tmp_path):
    r = train(
        cfg(tmp_path, tiny_sib, neighbours_file, "o", epochs=1, selection="oracle", seeds=[1, 2]),
        encoder=bert,
    )
    agg = r.results[r.results["checkpoint"] == "pushpull-oracle"]
    assert "zero_shot_acc_pooled_seed_mean" in set(agg["metric"])
    per_seed = r.results[r.results["metric"] == "zero_shot_acc_pooled"]["value"]
    mean = agg[agg["metric"] == "zero_shot_acc_pooled_seed_mean"]["value"].item()
    assert mean == pytest.approx(per_seed.mean())
