"""One message style for option checks, whichever room raises it (xalign._validate)."""

from __future__ import annotations

import pytest

from xalign._validate import check_choice, check_interval
from xalign.errors import ConfigError


def test_choice_and_interval_messages():
    assert check_choice("--engine", "ray", ("local", "ray")) == "ray"
    with pytest.raises(ConfigError, match=r"^--engine 'spark': allowed values are local, ray$"):
        check_choice("--engine", "spark", ("local", "ray"))
    assert check_interval("--dropout", 0.0, low=0, high=1, high_open=True) == 0.0
    for value, kwargs, rule in [
        (0, {"low": 1}, ">= 1"),
        (1, {"low": 1, "low_open": True}, "> 1"),
        (0, {"high": -1}, "<= -1"),
        (-1, {"high": -1, "high_open": True}, "< -1"),
        (1, {"low": 1, "high": 2, "low_open": True}, r"in \(1, 2\]"),
    ]:
        with pytest.raises(ConfigError, match=rf"^--x {value}: must be {rule}$"):
            check_interval("--x", value, **kwargs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: __import__("xalign.metrics", fromlist=["x"]).language_silhouette(
                [[0.0, 1.0], [1.0, 0.0]], ["a", "b"], metric="l1"
            ),
            "metric 'l1': allowed values are",
        ),
        (
            lambda: __import__("xalign.extract", fromlist=["x"]).ExtractConfig(engine="spark"),
            "--engine 'spark': allowed values are local, ray",
        ),
        (
            lambda: __import__("xalign.train", fromlist=["x"]).TrainConfig(method="ear"),
            "--method 'ear': allowed values are pushpull, finetune, rsda",
        ),
        (
            lambda: __import__("xalign.models", fromlist=["x"]).load_encoder("x", dtype="int8"),
            "dtype 'int8': allowed values are float32, float16, bfloat16, auto",
        ),
    ],
)
def test_every_room_says_it_the_same_way(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
