"""The metric catalogue: every metric the runner writes has a complete entry."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from xalign.results import METRICS, direction_text, metric_direction, metric_info, metric_range

ROOT = Path(__file__).resolve().parents[2]


def emitted_metric_names() -> set[str]:
    """Every ``metric`` value the metrics runner can write, read from the sources that make them.

    Literal names (``"metric": "cka_debiased"``), the f-string families (``bucc_{m}``,
    ``{prefix}_{part}``) expanded with the loops that fill them, and the column names that
    tidy frames melt into metric names (centroid gaps, attention agreement and distance).
    """
    src = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "xalign/metrics").glob("*.py")}
    names: set[str] = set()
    for text in src.values():
        names |= set(re.findall(r'"metric": "([a-z_]+)",\n\s+"(?:lang|value|layer)"', text))
    for text in src.values():  # "metric": "a" if flag else "b"
        for a, b in re.findall(r'"metric": "([a-z_]+)" if [^\n]* else "([a-z_]+)"', text):
            names |= {a, b}
    names |= {f"bucc_{m}" for m in ("f1", "precision", "recall")}
    parts = re.search(r"_ALIGN_PARTS = \(([^)]*)\)", src["_store_align.py"])
    assert parts is not None
    for prefix in re.findall(r'prefix="([a-z_]+)"', src["_store_align.py"]):
        names |= {f"{prefix}_{p}" for p in re.findall(r'"([a-z0-9]+)"', parts.group(1))}
    names |= {"centroid_distance", "centroid_distance_scaled", "centroid_cosine"}
    names |= {"attention_pattern_corr", "attention_pattern_cos", "attention_mse", "attention_js"}
    return names


def test_every_metric_the_runner_writes_is_catalogued():
    names = emitted_metric_names()
    assert len(names) >= 35
    assert not sorted(names - set(METRICS)), "metrics without a catalogue entry"


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_entry_is_complete(name):
    info = METRICS[name]
    assert info.name == name and info.label and info.meaning and info.unit and info.citation
    assert info.group in ("retrieval", "clusters", "probe", "cka", "isotropy", "bucc", "stores",
                          "word_align", "attention", "train", "neurons")  # fmt: skip
    assert info.direction in ("higher", "lower", None)
    lo, hi = info.range
    assert lo is None or hi is None or lo < hi
    assert info.description == info.meaning


def test_directions_ranges_and_unknown_metrics():
    assert metric_direction("retrieval_acc_mean") == "higher"
    assert metric_direction("language_silhouette") == "lower"
    assert direction_text("cka") == "higher = better aligned"
    assert direction_text("attention_entropy") == ""
    assert metric_range("cka_debiased") == (None, 1.0)
    unknown = metric_info("my_metric")
    assert unknown.direction is None and unknown.label == "my_metric"
    assert not math.isnan(METRICS["cka"].range[1])


def test_training_metrics_are_catalogued_with_their_seed_aggregates():
    """What ``python -m xalign.train`` writes (read from its source) has catalogue entries;
    the ``_seed_mean``/``_seed_std`` aggregates derive theirs (a std has no direction)."""
    text = (ROOT / "xalign/train/_evaluate.py").read_text(encoding="utf-8")
    written = set(re.findall(r'add\(\s*"([a-z_]+)"', text))
    written |= set(re.findall(r'"metric": "([a-z_]+)"', text))
    assert {"zero_shot_acc", "zero_shot_acc_pooled", "zero_shot_acc_mean", "dev_acc"} <= written
    for name in written:
        assert METRICS[name].group == "train" and METRICS[name].direction == "higher"
        mean, std = metric_info(f"{name}_seed_mean"), metric_info(f"{name}_seed_std")
        assert mean.direction == "higher" and mean.range == (0.0, 1.0)
        assert std.direction is None and std.range == (0.0, 1.0) and "seeds" in std.meaning
