"""Choosing and averaging rows: per-row facts never split or filter an average."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xalign.results import (
    aggregate_by_language,
    filter_protocol,
    layer_means,
    protocol_options,
    select_rows,
)


def bucc() -> pd.DataFrame:
    """BUCC-like rows: one pair has 195 distractors, the others 500; two centerings."""
    recs = []
    for centered in (False, True):
        for lang, nd, v in (("cmn", 500, 0.9), ("swh", 195, 0.5), ("deu", 500, 0.7)):
            recs.append({"store": "s", "checkpoint": "c", "metric": "bucc_f1", "layer": 0,
                         "lang": lang, "lang2": "eng", "value": v - 0.1 * centered, "n": 10,
                         "ci_low": np.nan, "ci_high": np.nan,
                         "protocol": json.dumps({"centered": centered, "n_distractors": nd})})  # fmt: skip
    return pd.DataFrame(recs)


def test_distractor_counts_never_split_or_filter_an_average():
    df = bucc()
    s = select_rows(df, "bucc_f1", {"centered": "false"})
    assert s.rows["lang"].tolist() == ["cmn", "swh", "deu"]
    assert s.per_row == ["n_distractors"] and s.other == {"centered=true": 3}
    assert s.applied == {"centered": "false"}
    m = layer_means(s.rows)
    assert m["value"].iloc[0] == pytest.approx(0.7) and int(m["n_rows"].iloc[0]) == 3


def test_the_dashboard_uses_the_same_selection():
    df = bucc()
    assert protocol_options(df, "bucc_f1") == {"centered": ["false", "true"]}
    d = filter_protocol(df, "bucc_f1", {"centered": "true"})
    assert d["lang"].tolist() == ["cmn", "swh", "deu"]  # all three pairs, whatever n_distractors
    assert d.attrs["protocol"] == {"centered": "true"}
    assert filter_protocol(df, "bucc_f1").attrs["protocol"] == {"centered": "false"}
    nan = df.assign(value=[np.nan, *df["value"][1:]])
    assert len(filter_protocol(nan, "bucc_f1", {"centered": "false"})) == 3  # NaN rows drawn too


def test_an_unknown_key_is_a_choice_only_when_it_varies_within_a_cell():
    df = bucc()
    df["protocol"] = [json.dumps({**json.loads(p), "flavour": f}) for p, f in
                      zip(df["protocol"], ["a", "b", "a", "a", "b", "a"], strict=True)]  # fmt: skip
    assert "flavour" not in protocol_options(df, "bucc_f1")  # differs between pairs only
    two = pd.concat([df, df.assign(protocol=df["protocol"].str.replace('"a"', '"z"'))])
    assert "flavour" in protocol_options(two, "bucc_f1")


def test_aggregate_by_language_averages_every_pair_a_language_is_in():
    d = pd.DataFrame({"checkpoint": "c", "layer": 0, "lang": ["deu", "fra"], "lang2": "eng",
                      "value": [0.2, 0.6], "ci_low": np.nan, "ci_high": np.nan})  # fmt: skip
    agg = aggregate_by_language(d).set_index("lang")["value"]
    assert agg.to_dict() == pytest.approx({"deu": 0.2, "fra": 0.6, "eng": 0.4})
