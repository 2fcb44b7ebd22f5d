"""Results rows of the neurons group (``neuron_rows``, ``neuron_change_rows``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xalign.errors import ConfigError
from xalign.metrics import (
    activation_probability,
    neuron_change_rows,
    neuron_rows,
    select_language_specific,
    shared_neurons,
)
from xalign.results import METRICS, RESULTS_COLUMNS, validate_results


def test_rows_are_a_valid_results_table(neuron_store):
    df = pd.DataFrame(neuron_rows(neuron_store, top_rate=0.1), columns=list(RESULTS_COLUMNS))
    df = validate_results(df)
    assert set(df.metric) == {
        "neuron_lape_mean", "neuron_shared_count", "neuron_activation_prob",
        "neuron_specific_count", "neuron_specific_share", "neuron_specific_jaccard",
    } or set(df.metric) <= set(METRICS)  # fmt: skip
    assert set(df.metric) <= set(METRICS) and all(METRICS[m].group == "neurons" for m in df.metric)
    for m in set(df.metric):
        lo, hi = METRICS[m].range
        v = df.value[df.metric == m].dropna()
        assert (lo is None or (v >= lo).all()) and (hi is None or (v <= hi).all()), m
    ns = neuron_store.neurons()
    p = activation_probability(ns.active, ns.tokens)
    sel = select_language_specific(p, top_rate=0.1)
    counts = df[df.metric == "neuron_specific_count"].set_index(["layer", "lang"])["value"]
    for li, layer in enumerate(ns.layers):
        for gi, lang in enumerate(ns.languages):
            assert counts[(layer, lang)] == sel.specific[li, gi].sum()
    shared = df[df.metric == "neuron_shared_count"].set_index("layer")["value"]
    want = shared_neurons(p, threshold=sel.bar_value).sum(axis=1)
    assert shared.tolist() == want.tolist()
    proto = json.loads(df[df.metric == "neuron_specific_count"].protocol.iloc[0])
    assert proto["top_rate"] == 0.1 and proto["filter_rate"] == 0.95 and proto["bar_rate"] == 0.95
    assert proto["bar_value"] == sel.bar_value and proto["selection"] == "lape"
    assert df.checkpoint.eq(neuron_store.label).all()


def test_change_rows_of_a_store_with_itself(neuron_store):
    rows = pd.DataFrame(neuron_change_rows(neuron_store, neuron_store, before_label="before",
                                           after_label="after", top_rate=0.1))  # fmt: skip
    validate_results(rows[list(RESULTS_COLUMNS)])
    change = rows[rows.metric == "neuron_specific_change"]
    assert (change.value == 0).all() and (rows.checkpoint == "after").all()
    stab = rows[rows.metric == "neuron_specific_stability"]
    assert np.allclose(stab.value, 1.0)
    assert json.loads(rows.protocol.iloc[0])["other_checkpoint"] == "before"


def test_langs_subset_and_unknown_language(neuron_store):
    rows = neuron_rows(neuron_store, langs=["eng", "deu"], top_rate=0.1)
    assert {r["lang"] for r in rows} <= {"eng", "deu", None}
    with pytest.raises(ConfigError, match=r"--langs \['xxx'\]: not in store"):
        neuron_rows(neuron_store, langs=["xxx"])


def test_the_metrics_runner_computes_the_neurons_group(neuron_store, tiny_bert, tmp_path):
    """``python -m xalign.metrics --metrics neurons``: the same rows as ``neuron_rows``, the
    change rows from the first store to the second, a note under ``all`` for a store without
    statistics, and a one-line refusal when the group is asked for by name."""
    import copy

    from tests.neurons.conftest import corpus
    from xalign.extract import ExtractConfig, extract
    from xalign.metrics import MetricsConfig, compute_metrics

    after_enc = copy.deepcopy(tiny_bert)
    with __import__("torch").no_grad():
        for p in after_enc.model.parameters():
            p.mul_(1.05)
    after, _ = extract(
        ExtractConfig(out=str(tmp_path / "after"), neurons=True, chunk_rows=5, progress=False),
        corpus=corpus(),
        encoder=after_enc,
    )
    res = compute_metrics(
        MetricsConfig(
            stores=[f"before={neuron_store.path}", f"after={after.path}"],
            metrics=["neurons"],
            progress=False,
        )
    )
    direct = pd.DataFrame(neuron_rows(neuron_store, label="before"), columns=list(RESULTS_COLUMNS))
    got = validate_results(res[res["checkpoint"] == "before"])
    pd.testing.assert_frame_equal(
        got.drop(columns="store"), validate_results(direct).drop(columns="store"),
        check_dtype=False,
    )  # fmt: skip
    change = res[res["metric"].isin(["neuron_specific_change", "neuron_specific_stability"])]
    assert set(change["checkpoint"]) == {"after"}
    assert {json.loads(p)["other_checkpoint"] for p in change["protocol"]} == {"before"}
    plain, _ = extract(
        ExtractConfig(out=str(tmp_path / "plain"), chunk_rows=5, progress=False),
        corpus=corpus(),
        encoder=tiny_bert,
    )
    cfg = MetricsConfig(stores=[str(plain.path)], metrics=["all"], progress=False, bootstrap=0)
    notes = compute_metrics(cfg).attrs["notes"]
    assert any("neurons skipped" in n and "--neurons" in n for n in notes)
    with pytest.raises(
        ConfigError, match=r"--metrics neurons on store .*re-extract with --neurons"
    ):
        compute_metrics(MetricsConfig(stores=[str(plain.path)], metrics=["neurons"]))
