"""MetricsConfig: its modes are the array functions' Literal types, checked in one message style."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

import pytest

from xalign.errors import ConfigError
from xalign.metrics._config import (
    BACKENDS,
    CENTERINGS,
    GOLD_OUT_OF_RANGE,
    METRIC_GROUPS,
    SCORINGS,
    MetricsConfig,
)


def test_mode_values_are_those_of_the_array_functions():
    """The config spells the values of Literal types it imports only for annotations (their
    modules load numpy); the spelled values must be the same."""
    from xalign.data._wordalign import OutOfRange
    from xalign.metrics._knn import Backend
    from xalign.metrics._retrieval import Scoring

    assert get_args(Scoring) == SCORINGS
    assert get_args(Backend) == BACKENDS
    assert get_args(OutOfRange) == GOLD_OUT_OF_RANGE
    assert CENTERINGS == ("raw", "centered", "both")
    assert "retrieval" in METRIC_GROUPS and "all" not in METRIC_GROUPS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"centering": "x"}, "--centering 'x': allowed values are raw, centered, both"),
        ({"backend": "gpu"}, "--backend 'gpu': allowed values are auto, numpy, faiss, faiss-gpu"),
        (
            {"gold_out_of_range": "keep"},
            "--gold-out-of-range 'keep': allowed values are error, drop",
        ),
        ({"scoring": "cosine,dot"}, "--scoring 'dot': allowed values are cosine, margin, csls"),
        (
            {"metrics": ["retrieval", "nope"]},
            "--metrics 'nope': allowed values are all, retrieval,",
        ),
        ({"metrics": ","}, "--metrics ',': names nothing; allowed values are all, retrieval,"),
        ({"k": 0}, "--k 0: must be >= 1"),
        ({"cv": 1}, "--cv 1: must be >= 2"),
        ({"bootstrap": -1}, "--bootstrap -1: must be >= 0 (0 = no intervals)"),
        ({"bootstrap": 10**7}, "--bootstrap 10000000: must be in [0, 1000000] (0 = no intervals)"),
        ({"seed": 2**32}, "--seed 4294967296: must be in [0, 4294967295]"),
        ({"k": True}, "--k True: invalid int value"),
        ({"workers": -1}, "--workers -1: must be >= 0 (0 = one per available CPU, at most 4)"),
        ({"workers": 257}, "--workers 257: must be in [0, 256]"),
        ({"workers": "2"}, "--workers '2': invalid int value"),
        ({"independent": "yes"}, "--independent 'yes': expected true or false"),
    ],
)
def test_bad_values_name_the_flag_and_the_rule(kwargs, message):
    with pytest.raises(ConfigError) as e:
        MetricsConfig(stores=["x"], **kwargs)
    assert str(e.value).startswith(message)


def test_lists_of_modes_are_parsed_and_kept_in_order():
    cfg = MetricsConfig(stores=["x"], metrics="cka, retrieval", scoring=["csls", "cosine"])
    assert cfg.metrics == ["cka", "retrieval"]
    assert cfg.scoring == ["csls", "cosine"]
    assert cfg.groups == ["retrieval", "cka"]


def test_config_module_loads_no_numpy():
    """``python -m xalign.metrics --help`` and argument errors answer before numpy is loaded."""
    code = (
        "import sys; from xalign.metrics._config import MetricsConfig; "
        "MetricsConfig(stores=['x']); print('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
