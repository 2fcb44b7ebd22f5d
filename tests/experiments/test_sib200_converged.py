"""experiments/sib200-converged: the summary generator, and the summary against its table.

The numbers in ``summary.md`` must be the results table's. The test reads the committed
``results.parquet`` + ``summary.md`` when they exist, else the ``--quick`` run's output
(``out-quick/``) when it exists, else a summary generated here from a synthetic table — so it
always checks something. The generator itself is tested on synthetic tables with known answers.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xalign.results import RESULTS_COLUMNS, paired_difference

HERE = Path(__file__).resolve().parents[2] / "experiments" / "sib200-converged"


def _summary_module():
    spec = importlib.util.spec_from_file_location("sib200_converged_summary", HERE / "summary.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _row(ck, metric, lang, value, proto, n=200):
    return dict(store="x", checkpoint=ck, metric=metric, layer=12, lang=lang, lang2=None,
                value=value, n=n, ci_low=np.nan, ci_high=np.nan,
                protocol=json.dumps(proto))  # fmt: skip


def synthetic(
    delta: float = 0.05, seed: int = 0, pushpull_by_seed: dict[int, float] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A results table shaped like run.py's: 2 methods × 3 seeds + oracle, grid, ablations.

    ``pushpull_by_seed`` adds a per-seed shift to pushpull's accuracies (seed → shift).
    """
    rng = np.random.default_rng(seed)
    langs = ["eng_Latn", "deu_Latn", "fra_Latn", "swh_Latn"]
    rows, curves = [], []
    runs = {"finetune": 0.0, "pushpull": delta, "pushpull-a1": 0.01, "pushpull-a10": -0.02,
            "pushpull-b0": 0.0, "ep-only": 0.0, "ap-only": 0.0, "rsda": -0.01}  # fmt: skip
    for run, shift in runs.items():
        seeds = (0, 1, 2) if run in ("finetune", "pushpull") else (0,)
        for s in seeds:
            base = {"seed": s, "selected_step": 44 + s, "selected_epoch": 0.67,
                    "stopped_epoch": 1.33, "early_stopped": True, "epoch_cap": 3,
                    "patience": 3, "terms": ["rt"] if run == "finetune" else ["ce", "rt"]}  # fmt: skip
            for label, extra in ((run, 0.0), (f"{run}-oracle", 0.02)):
                if label.endswith("oracle") and run not in ("finetune", "pushpull"):
                    continue
                ck = f"{label}-seed{s}"
                own = (pushpull_by_seed or {}).get(s, 0.0) if run == "pushpull" else 0.0
                acc = {x: 0.6 + 0.01 * s + shift + own + extra + rng.normal(0, 0.003)
                       for x in langs}  # fmt: skip
                for x, v in acc.items():
                    rows.append(
                        _row(ck, "zero_shot_acc", x, v, {**base, "is_train_lang": x == "eng_Latn"})
                    )
                tgt = [acc[x] for x in langs[1:]]
                rows.append(_row(ck, "zero_shot_acc_pooled", None, float(np.mean(tgt)), base))
                rows.append(_row(ck, "zero_shot_acc_mean", None, float(np.mean(tgt)), base))
                rows.append(_row(ck, "dev_acc", "eng_Latn", 0.8 + shift, base, n=99))
            for step, push, pull in ((0, 2.5e-3, 4e-3), (22, 2.6e-3, 3.5e-3)):
                curves.append({"run": f"{run}-seed{s}", "seed": s, "step": step,
                               "push_distance": push, "pull_mse": pull, "dev_acc": 0.7,
                               "stopped": False})  # fmt: skip
    for ck in ("pretrained", "finetune-seed0", "pushpull-seed0"):
        for layer in (0, 6, 12):
            proto = {"centered": False, "scoring": "cosine"}
            rows.append(_row(ck, "retrieval_acc_mean", None, 0.9 - layer / 100, proto))
            rows.append(_row(ck, "translation_contrast", None, 0.1 + layer / 100, proto))
            if ck != "pretrained":
                p = {"other_checkpoint": "pretrained", "other_layer": layer}
                rows.append(_row(ck, "cka_between_stores", None, 1 - layer / 50, p))
    return pd.DataFrame(rows, columns=list(RESULTS_COLUMNS)), pd.DataFrame(curves)


def zero_shot_cells(text: str) -> dict[tuple[str, int, str], float]:
    """(method, seed, language) → value from the ``<!-- zero-shot -->`` block of a summary."""
    m = re.search(r"<!-- zero-shot -->\n(.*?)<!-- /zero-shot -->", text, re.S)
    assert m, "summary has no zero-shot block"
    lines = [ln for ln in m.group(1).strip().splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = {}
    for ln in lines[2:]:
        vals = [c.strip() for c in ln.strip("|").split("|")]
        for col, v in zip(head[1:], vals[1:], strict=True):
            hit = re.fullmatch(r"(.+) s(\d+)", col)
            if hit and vals[0] not in ("pooled targets", "mean targets", "English dev (selected)"):
                cells[(hit.group(1), int(hit.group(2)), vals[0])] = float(v)
    return cells


def check_summary_against_table(text: str, results: pd.DataFrame) -> int:
    """Every method × seed × language in the summary's zero-shot table is in ``results``."""
    cells = zero_shot_cells(text)
    assert cells, "the zero-shot table is empty"
    z = results[results["metric"] == "zero_shot_acc"].set_index(["checkpoint", "lang"])["value"]
    for (method, seed, lang), v in cells.items():
        key = (f"{method}-seed{seed}", lang)
        assert key in z.index, f"summary reports {key}, absent from the results table"
        assert v == pytest.approx(float(z.loc[key]), abs=5e-4)
    # and nothing in the table's main runs is left out of the summary
    main = results[(results["metric"] == "zero_shot_acc")
                   & results["checkpoint"].str.fullmatch(r"(finetune|pushpull)-seed\d+")]  # fmt: skip
    assert len(main) == len(cells)
    return len(cells)


def test_summary_reports_the_tables_numbers_and_a_correct_conclusion():
    mod = _summary_module()
    results, curves = synthetic(delta=0.05)
    text = mod.build_summary(results, curves, {"train, wall seconds": 100.0})
    assert check_summary_against_table(text, results) == 2 * 3 * 4
    # the conclusion is computed, not written: +0.05 everywhere → "beats", with the numbers
    z = results[(results["metric"] == "zero_shot_acc") & (results["lang"] != "eng_Latn")]
    z = z[z["checkpoint"].str.fullmatch(r"(finetune|pushpull)-seed\d")]
    z = z.assign(method=z["checkpoint"].str[:-6], seed=z["checkpoint"].str[-1])
    ref = paired_difference(z[z.method == "pushpull"], z[z.method == "finetune"],
                            unit_cols=["seed", "lang"])  # fmt: skip
    assert "**push/pull beats plain fine-tuning in zero-shot accuracy in every one of the 3" in text
    assert f"{ref.mean:+.3f}" in text and f"p = {ref.p_value:.3g}" in text
    # oracle inflation +0.02 per seed, grid chosen on dev (pushpull: dev 0.85 is the best)
    assert "**pushpull mean** | | | **+0.020**" in text
    assert "Chosen by English dev accuracy: α = 0.1, β = 1 (pushpull)." in text
    for title in ("EP only", "AP only", "RS-DA", "linear CKA to the pretrained", "cluster gap"):
        assert title in text


def test_conclusion_does_not_call_a_difference_one_seed_carries_established():
    """Significant over seed × language units, but the seeds disagree in sign: not established."""
    mod = _summary_module()
    results, curves = synthetic(delta=0.0, pushpull_by_seed={0: -0.01, 1: 0.04, 2: 0.04})
    text = mod.build_summary(results, curves)
    verdict = next(ln for ln in text.splitlines() if ln.startswith("**"))
    assert verdict.startswith("**push/pull's advantage over plain fine-tuning is not established**")
    assert "sign-flip p = 0.0" in verdict  # the pooled test is significant (p ≈ 0.03) ...
    by_seed = re.search(r"exact sign-flip p = ([0-9.]+)", verdict)
    assert by_seed and float(by_seed.group(1)) >= 0.25  # ... the by-seed test is not (−, +, +)
    assert "s0 -0.0" in verdict and "s1 +0.04" in verdict


def test_conclusion_says_no_difference_when_there_is_none():
    mod = _summary_module()
    results, curves = synthetic(delta=0.0, seed=1)
    text = mod.build_summary(results, curves)
    assert "do not differ detectably" in text


def test_summary_on_the_committed_or_quick_results(tmp_path):
    """The committed table if present, else the quick run's, else a synthetic one."""
    mod = _summary_module()
    for folder in (HERE, HERE / "out-quick"):
        if (folder / "results.parquet").is_file() and (folder / "summary.md").is_file():
            results = pd.read_parquet(folder / "results.parquet")
            text = (folder / "summary.md").read_text(encoding="utf-8")
            assert check_summary_against_table(text, results) > 0
            if (folder / "curves.parquet").is_file():
                regenerated = mod.build_summary(results, pd.read_parquet(folder / "curves.parquet"))
                assert zero_shot_cells(regenerated) == zero_shot_cells(text)
                if folder == HERE:  # the committed summary, every table, from the committed rows
                    head = text.split("## Wall-clock time")[0]
                    assert regenerated.split("## Wall-clock time")[0] == head
            return
    results, curves = synthetic(delta=-0.03, seed=2)
    results.to_parquet(tmp_path / "results.parquet")
    text = mod.build_summary(pd.read_parquet(tmp_path / "results.parquet"), curves)
    assert check_summary_against_table(text, results) == 24
    assert "is worse than plain fine-tuning" in text
