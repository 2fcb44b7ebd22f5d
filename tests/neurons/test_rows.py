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
