"""The results room: columns, protocol JSON, loading and checking a table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xalign.errors import DataError
from xalign.results import (
    RESULTS_COLUMNS,
    TIDY_COLUMNS,
    load_results,
    parse_choice,
    parse_protocol,
    parse_protocols,
    protocol_json,
    protocol_text,
    validate_results,
)


def table(**over) -> pd.DataFrame:
    base = {
        "store": ["runs/a", "runs/a"],
        "checkpoint": ["a", "a"],
        "metric": ["cka", "cka"],
        "layer": [0, 1],
        "lang": ["deu", "deu"],
        "lang2": ["eng", "eng"],
        "value": [0.5, 0.6],
        "n": [10, 10],
        "ci_low": [np.nan, np.nan],
        "ci_high": [np.nan, np.nan],
        "protocol": ['{"pooling":"mean"}'] * 2,
    }
    base.update(over)
    return pd.DataFrame(base)


def test_one_schema_everywhere():
    import xalign.metrics as xm
    from xalign.metrics._tidy import RESULT_COLUMNS

    assert RESULTS_COLUMNS == ("store", "checkpoint", "metric", "layer", "lang", "lang2",
                               "value", "n", "ci_low", "ci_high", "protocol")  # fmt: skip
    assert xm.RESULTS_COLUMNS is RESULTS_COLUMNS
    assert RESULT_COLUMNS is TIDY_COLUMNS
    assert [c for c in RESULTS_COLUMNS if c not in TIDY_COLUMNS] == ["store", "checkpoint", "layer"]


def test_protocol_json_has_one_key_order_and_round_trips():
    a = protocol_json({"seed": np.int64(0), "centered": False, "k": None, "langs": ("x", "y")})
    b = protocol_json({"langs": ["x", "y"], "k": None, "centered": False, "seed": 0})
    assert a == b == '{"centered":false,"k":null,"langs":["x","y"],"seed":0}'
    assert protocol_json(json.loads(a)) == a
    parsed = parse_protocol(a)
    assert parsed == {"centered": "false", "k": "null", "langs": '["x", "y"]', "seed": "0"}
    assert protocol_json({k: json.loads(v) for k, v in parsed.items()}) == a
    assert parse_protocol("not json") == {} and parse_protocol("[1]") == {}
    assert parse_choice("centered=true,k=4") == {"centered": "true", "k": "4"}


def test_protocol_text_uses_the_display_order():
    d = pd.DataFrame(
        {"protocol": ['{"seed":0,"scoring":"cosine","centered":true,"pooling":"mean"}']}
    )
    assert protocol_text(d) == "pooling=mean, centered=true, scoring=cosine, seed=0"


def test_parse_protocols_adds_one_column_per_key():
    df = parse_protocols(table(protocol=['{"pooling":"mean"}', '{"k":4}']))
    assert df["p:pooling"].tolist() == ['"mean"', "null"] and df["p:k"].tolist() == ["null", "4"]


@pytest.mark.parametrize("missing", ["value", "protocol", "layer"])
def test_a_missing_column_is_named(missing):
    with pytest.raises(DataError, match=rf"missing column\(s\) \['{missing}'\]"):
        validate_results(table().drop(columns=[missing]))


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("value", ["high", 0.5], r"column 'value' holds 'high'.*first row 1"),
        ("layer", [0.5, 1], r"column 'layer' holds 0.5 .*whole numbers"),
        ("layer", [-1, 1], r"column 'layer' holds -1.0"),
        ("n", [3.5, 1], r"column 'n' holds 3.5 .*expected a count"),
        ("value", [True, False], r"column 'value' holds true/false"),
        ("metric", ["", "cka"], r"column 'metric' is empty or null in 1 row, first row 1"),
        ("protocol", ["[1, 2]", "{}"], r"column 'protocol' holds '\[1, 2\]'.*JSON object"),
    ],
)
def test_bad_values_are_refused_with_column_and_row(column, values, message):
    with pytest.raises(DataError, match=message):
        validate_results(table(**{column: values}))


def test_repeated_rows_and_empty_tables_are_refused(tmp_path):
    with pytest.raises(DataError, match="repeats an earlier row"):
        validate_results(table(layer=[0, 0]))
    with pytest.raises(DataError, match="no rows"):
        validate_results(table().iloc[:0])


def test_load_results_reads_files_and_frames(tmp_path):
    df = table(lang=["deu", ""], value=["0.5", "0.6"])
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    got, where = load_results(path)
    assert where == str(path) and tuple(got.columns) == RESULTS_COLUMNS
    assert got["lang"].tolist() == ["deu", None] and got["value"].dtype == float
    same, where = load_results(table())
    assert where == "<DataFrame>" and same["layer"].dtype == np.int64
    with pytest.raises(DataError, match=r"unknown results file type '\.txt'"):
        load_results(tmp_path / "r.txt")
    with pytest.raises(DataError, match=r"r\.parquet: no such results file"):
        load_results(tmp_path / "r.parquet")
    bad = tmp_path / "bad.csv"
    table().drop(columns=["n"]).to_csv(bad, index=False)
    with pytest.raises(
        DataError, match=r"bad\.csv: not a results table: missing column\(s\) \['n'\]"
    ):
        load_results(bad)
