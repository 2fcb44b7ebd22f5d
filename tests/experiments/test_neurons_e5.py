"""The committed result of experiments/neurons-e5: the tables in summary.md are the results table's.

Reads only the small committed files (results.parquet, ablation.csv, summary.md); no model runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).resolve().parents[2] / "experiments" / "neurons-e5"
RESULTS = HERE / "results.parquet"
SUMMARY = HERE / "summary.md"


def _count_blocks(text: str) -> dict[str, pd.DataFrame]:
    """Every ``<!-- counts: CHECKPOINT -->`` Markdown table: rows as labels, block columns."""
    blocks = {}
    for m in re.finditer(r"<!-- counts: (\w+) -->\n(.*?)<!-- /counts -->", text, re.S):
        lines = [ln for ln in m.group(2).strip().splitlines() if ln.startswith("|")]
        head = [c.strip() for c in lines[0].strip("|").split("|")]
        rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
        blocks[m.group(1)] = pd.DataFrame(rows, columns=head).set_index(head[0])
    return blocks


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    from xalign.results import validate_results

    return validate_results(pd.read_parquet(RESULTS), path=str(RESULTS))


@pytest.fixture(scope="module")
def blocks() -> dict[str, pd.DataFrame]:
    found = _count_blocks(SUMMARY.read_text(encoding="utf-8"))
    assert "pretrained" in found, "summary.md has no pretrained count table"
    return found


def test_summary_counts_equal_the_results_table(results, blocks):
    for checkpoint, table in blocks.items():
        d = results[(results["metric"] == "neuron_specific_count")
                    & (results["checkpoint"] == checkpoint)]  # fmt: skip
        layers = [c for c in table.columns if c.isdigit()]
        assert [int(c) for c in layers] == list(range(1, 13))
        langs = [x for x in table.index if not x.startswith("**")]
        assert len(langs) >= 10
        for lang in langs:
            for c in layers:
                row = d[(d["lang"] == lang) & (d["layer"] == int(c))]
                assert len(row) == 1, f"{checkpoint}: no row for {lang} at block {c}"
                assert int(row["value"].iloc[0]) == int(table.loc[lang, c]), (checkpoint, lang, c)
            assert int(table.loc[lang, "total"]) == sum(int(table.loc[lang, c]) for c in layers)
        # the table holds no language the summary leaves out
        assert set(d["lang"]) == set(langs)
        if "**all (sum)**" in table.index:
            for c in layers:
                want = int(d[d["layer"] == int(c)]["value"].sum())
                assert int(table.loc["**all (sum)**", c]) == want
        if "**shared**" in table.index:
            s = results[(results["metric"] == "neuron_shared_count")
                        & (results["checkpoint"] == checkpoint)]  # fmt: skip
            for c in layers:
                want = int(s[s["layer"] == int(c)]["value"].iloc[0])
                assert int(table.loc["**shared**", c]) == want


def test_at_least_ten_languages_in_five_scripts(results):
    d = results[results["metric"] == "neuron_specific_count"]
    langs = set(d["lang"])
    assert len(langs) >= 10
    scripts = {m.group(1) for m in re.finditer(r"\| \S+ \| (\w{4}) \| \d+ \|", SUMMARY.read_text())}
    assert len(scripts) >= 5


def test_selection_size_and_protocol(results):
    """Tang et al.'s top rate: 1 % of 12 × 1536 neurons selected; every count in [0, F]."""
    d = results[(results["metric"] == "neuron_specific_count")]
    assert d["value"].between(0, 1536).all()
    proto = json.loads(d["protocol"].iloc[0])
    assert proto["selection"] == "lape" and proto["top_rate"] == 0.01
    share = results[results["metric"] == "neuron_specific_share"]
    merged = d.merge(share, on=["checkpoint", "layer", "lang"], suffixes=("", "_share"))
    assert (merged["value"] / 1536 - merged["value_share"]).abs().max() < 1e-12


def test_change_rows_are_count_differences(results):
    ch = results[results["metric"] == "neuron_specific_change"]
    assert len(ch) == 12 * 12, "the committed result compares pretrained with push/pull"
    c = results[results["metric"] == "neuron_specific_count"]
    pre = c[c["checkpoint"] == "pretrained"].set_index(["layer", "lang"])["value"]
    post = c[c["checkpoint"] == "pushpull"].set_index(["layer", "lang"])["value"]
    got = ch.set_index(["layer", "lang"])["value"]
    assert ((post - pre).reindex(got.index) - got).abs().max() == 0
    st = results[results["metric"] == "neuron_specific_stability"]
    assert st["value"].between(0, 1).all()


def test_ablation_table():
    a = pd.read_csv(HERE / "ablation.csv")  # committed with the result
    assert set(a["lang"]) == {"fra", "hin"}
    for lang, g in a.groupby("lang"):
        # the control zeroes as many neurons, in the same blocks, as the language's own set
        assert len(g) == 2, lang
        assert g["n_neurons"].nunique() == 1
        assert g["neurons_per_layer"].nunique() == 1
        ch = g["retrieval_after"] - g["retrieval_before"]
        assert (ch - g["retrieval_change"]).abs().max() < 1e-5
    text = SUMMARY.read_text(encoding="utf-8")
    for cmd in a["command"]:
        assert cmd in text


def test_ablation_by_layer_agrees_with_the_reports():
    """At the measured block, the per-layer table equals the .ablation.json numbers."""
    a, t = pd.read_csv(HERE / "ablation.csv"), pd.read_csv(HERE / "ablation_layers.csv")
    assert len(a) == 4 and len(t) > len(a)
    for r in a.itertuples():
        kind = "random" if r.ablated.startswith("random") else "specific"
        row = t[(t["lang"] == r.lang) & (t["ablated"] == kind) & (t["layer"] == r.layer)]
        assert len(row) == 1
        assert abs(row["lang_before"].iloc[0] - r.retrieval_before) < 1e-5
        assert abs(row["lang_after"].iloc[0] - r.retrieval_after) < 1e-5
    # the embedding output (layer 0) is upstream of every feed-forward block
    zero = t[t["layer"] == 0]
    assert (zero["lang_after"] - zero["lang_before"]).abs().max() == 0
