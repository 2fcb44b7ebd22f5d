"""Every request is checked against the stores before any computation (issue 11, class 5).

Under ``all`` a group a store cannot support becomes a note and the rest is computed; a group
asked for by name fails the run before anything is read; a group that still fails part-way
keeps what the others computed.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xalign.data import Corpus
from xalign.errors import ConfigError, DataError
from xalign.extract import ExtractConfig, extract
from xalign.metrics import IncompleteResultsError, MetricsConfig, compute_metrics, plan_metrics
from xalign.metrics.__main__ import main
from xalign.store import Store

WORDS = [
    "cat",
    "dog",
    "sun",
    "rain",
    "tree",
    "house",
    "river",
    "stone",
    "bread",
    "milk",
    "song",
    "road",
]


def _tatoeba_like(n: int = 12) -> Corpus:
    """Tatoeba's shape: each of deu and fra is paired with eng only (xxx-eng files)."""
    recs = []
    for lang in ("deu", "fra"):
        for i in range(n):
            g = f"{lang}-eng:{i}"
            w = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3))
            recs.append({"id": f"{lang}{i}", "lang": lang, "text": f"{lang} {w}", "group": g})
            recs.append({"id": f"eng-{lang}{i}", "lang": "eng", "text": f"the {w}", "group": g})
    return Corpus.from_records(recs, name="tatoeba-like")


@pytest.fixture(scope="module")
def tatoeba_store(tiny_xlmr, tmp_path_factory) -> Store:
    """``--langs deu,fra`` of Tatoeba with --tokens --attentions head-mean (the README run)."""
    st, _ = extract(
        ExtractConfig(
            out=str(tmp_path_factory.mktemp("plan") / "tatoeba"),
            tokens=True,
            attentions="head-mean",
            progress=False,
        ),
        corpus=_tatoeba_like(),
        encoder=tiny_xlmr,
    )
    return st


@pytest.fixture(scope="module")
def small_probe_store(tiny_bert, tmp_path_factory) -> Store:
    """Three languages, one of them with 3 rows: fewer than the probe's 5 folds."""
    recs = []
    for lang, n in (("eng", 8), ("deu", 8), ("fra", 3)):
        for i in range(n):
            recs.append({"id": f"{lang}{i}", "lang": lang, "text": f"{lang} {WORDS[i]} {i}"})
    st, _ = extract(
        ExtractConfig(out=str(tmp_path_factory.mktemp("plan") / "few"), progress=False),
        corpus=Corpus.from_records(recs),
        encoder=tiny_bert,
    )
    return st


def _no_reads(monkeypatch) -> None:
    """Fail the test if any array is read (a computation started)."""

    def boom(*a, **k):
        raise AssertionError("arrays were read before the request was validated")

    for name in ("sentences", "token_hidden", "attention"):
        monkeypatch.setattr(Store, name, boom)


def test_default_run_on_a_tatoeba_store_of_deu_fra(tatoeba_store):
    """The README's run: deu and fra share no group, which used to fail after all layers."""
    res = compute_metrics(
        MetricsConfig(
            stores=[str(tatoeba_store.path)],
            layers="2",
            scoring=["cosine"],
            bootstrap=0,
            cv=2,
            progress=False,
        )
    )
    metrics = set(res["metric"])
    assert {"retrieval_acc", "centroid_distance", "lid_accuracy", "attention_entropy"} <= metrics
    pattern = res[res["metric"] == "attention_pattern_corr"]
    pairs = {frozenset(p) for p in zip(pattern["lang"], pattern["lang2"], strict=True)}
    assert pairs == {frozenset({"deu", "eng"}), frozenset({"fra", "eng"})}
    # one entropy row per language and layer, though eng is in two compared pairs
    ent = res[res["metric"] == "attention_entropy"]
    assert not ent.duplicated(["lang", "layer"]).any()
    assert set(ent["lang"]) == {"deu", "fra", "eng"}
    notes = " ".join(res.attrs["notes"])
    assert "deu-fra" in notes and "pattern agreement left out" in notes
    assert "word_align skipped" in notes and "--gold wordalign:DIR" in notes


def test_attention_rows_carry_bootstrap_intervals(tatoeba_store):
    """--bootstrap reaches the attention group: entropy, pattern agreement and the distance
    between two stores get 95 % intervals around their value (none with --bootstrap 0)."""
    path = str(tatoeba_store.path)

    def run(n_boot: int):
        return compute_metrics(
            MetricsConfig(
                stores=[f"a={path}", f"b={path}"],
                metrics=["attention"],
                layers="2",
                bootstrap=n_boot,
                progress=False,
                workers=1,
            )
        )

    res = run(200)
    names = {"attention_entropy", "attention_pattern_corr", "attention_mse", "attention_js"}
    assert names <= set(res["metric"])
    rows = res[res["metric"].isin(names) & res["value"].notna()]
    assert rows["ci_low"].notna().all() and rows["ci_high"].notna().all()
    assert (rows["ci_low"] <= rows["value"] + 1e-12).all()
    assert (rows["value"] <= rows["ci_high"] + 1e-12).all()
    ent = rows[rows["metric"] == "attention_entropy"]
    assert (ent["ci_high"] > ent["ci_low"]).all()  # sentences differ: a real interval
    same = rows[rows["metric"] == "attention_mse"]  # a store against itself: exactly 0
    assert (same[["value", "ci_low", "ci_high"]].to_numpy() == 0).all()
    assert all('"n_boot":200' in p for p in rows["protocol"])
    none = run(0)
    assert none[none["metric"].isin(names)]["ci_low"].isna().all()


def test_explicit_requests_are_validated_before_any_computation(
    tatoeba_store, small_probe_store, monkeypatch
):
    _no_reads(monkeypatch)
    cases = [
        (tatoeba_store, ["retrieval", "word_align"], r"--metrics word_align on store .*--gold"),
        (small_probe_store, ["clusters", "probe"], r"--metrics probe on store .*fra \(3\)"),
        (small_probe_store, ["isotropy", "retrieval"], r"--metrics retrieval .*parallel corpus"),
        (small_probe_store, ["attention"], r"--attentions head-mean"),
        (tatoeba_store, ["stores"], r"--metrics stores .*two or more stores"),
    ]
    for st, metrics, match in cases:
        cfg = MetricsConfig(stores=[str(st.path)], metrics=metrics, progress=False)
        with pytest.raises(ConfigError, match=match):
            plan_metrics(cfg)
        with pytest.raises(ConfigError, match=match):
            compute_metrics(cfg)


def test_probe_minimum_is_a_note_under_all(small_probe_store):
    res = compute_metrics(
        MetricsConfig(stores=[str(small_probe_store.path)], layers="1", bootstrap=0, progress=False)
    )
    notes = " ".join(res.attrs["notes"])
    assert "probe skipped for" in notes and "fra (3)" in notes
    assert not res["metric"].str.startswith("lid_").any()
    assert res["metric"].isin(["centroid_distance", "mean_random_cosine"]).any()
    # with 3 folds the probe can run, and does
    res3 = compute_metrics(
        MetricsConfig(
            stores=[str(small_probe_store.path)],
            metrics=["probe"],
            cv=3,
            bootstrap=0,
            progress=False,
        )
    )
    assert res3["metric"].eq("lid_accuracy").any()


def test_a_group_failing_midway_keeps_the_others(small_probe_store, monkeypatch, tmp_path, capsys):
    import xalign.metrics._isotropy as iso

    def broken(*a, **k):
        raise DataError("isotropy blew up on purpose")

    monkeypatch.setattr(iso, "isotropy_metrics", broken)
    cfg = MetricsConfig(
        stores=[str(small_probe_store.path)],
        metrics=["clusters", "isotropy"],
        bootstrap=0,
        progress=False,
    )
    with pytest.raises(IncompleteResultsError, match=r"isotropy failed for .*on purpose") as e:
        compute_metrics(cfg)
    kept = e.value.results
    assert kept["metric"].eq("centroid_distance").any()
    assert set(kept["layer"]) == set(small_probe_store.layers)
    assert not kept["metric"].isin(["mean_random_cosine", "partition_isotropy"]).any()
    # the command line writes what was computed, names the failure and exits 1
    out = tmp_path / "r.parquet"
    argv = [str(small_probe_store.path), "--metrics", "clusters,isotropy", "--bootstrap", "0",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "isotropy failed" in err and str(out) in err
    written = pd.read_parquet(out)
    assert len(written) == len(kept)
    side = json.loads(out.with_suffix(".config.json").read_text())
    assert any("isotropy failed" in f for f in side["failures"])


def test_an_unexpected_error_is_a_failure_even_under_all(small_probe_store, monkeypatch):
    import xalign.metrics._clusters as cl

    def broken(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cl, "cluster_metrics", broken)
    with pytest.raises(IncompleteResultsError, match=r"clusters failed .*RuntimeError: a bug"):
        compute_metrics(
            MetricsConfig(stores=[str(small_probe_store.path)], bootstrap=0, progress=False)
        )
