"""The metrics runner over real (tiny-model) stores, checked against plain numpy."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from xalign.data import Corpus, load_sample
from xalign.errors import ConfigError, DataError
from xalign.extract import ExtractConfig, extract
from xalign.metrics import RESULTS_COLUMNS, MetricsConfig, compute_metrics
from xalign.metrics.__main__ import main
from xalign.store import Store

LANGS = ["eng", "deu", "rus", "cmn_Hans"]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    rows = load_sample(langs=LANGS).rows
    keep = sorted(rows["group"].unique())[:40]
    return Corpus(rows[rows["group"].isin(keep)], name="sample-40", source="sample")


@pytest.fixture(scope="module")
def store(tiny_xlmr, corpus, tmp_path_factory) -> Store:
    out = tmp_path_factory.mktemp("metrics") / "s"
    st, _ = extract(
        ExtractConfig(out=str(out), pooling=["mean", "cls"], label="before", progress=False),
        corpus=corpus,
        encoder=tiny_xlmr,
    )
    return st


@pytest.fixture(scope="module")
def results(store) -> pd.DataFrame:
    return compute_metrics(MetricsConfig(stores=[str(store.path)], bootstrap=50, progress=False))


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _numpy_accuracy(src, tgt):
    s = _unit(src) @ _unit(tgt).T
    gold = np.arange(len(src))
    return (s.argmax(1) == gold).mean(), (s.argmax(0) == gold).mean()


def test_schema_and_coverage(results, store):
    assert tuple(results.columns) == RESULTS_COLUMNS
    assert set(results["layer"]) == set(store.layers)
    assert set(results["checkpoint"]) == {"before"}
    for p in results["protocol"].head(200):
        assert isinstance(json.loads(p), dict)
    metrics = set(results["metric"])
    for m in ("retrieval_acc", "retrieval_acc_mean", "centroid_distance_scaled",
              "language_silhouette", "translation_contrast", "davies_bouldin", "lid_accuracy",
              "lid_selectivity", "mean_random_cosine", "bucc_f1"):  # fmt: skip
        assert m in metrics, m
    assert any("cka" in m for m in metrics)
    acc = results[results["metric"].str.startswith("retrieval_acc")]
    assert acc["value"].between(0, 1).all()
    assert (acc["ci_low"] <= acc["value"] + 1e-12).all() and (
        acc["value"] <= acc["ci_high"] + 1e-12
    ).all()
    # pivot eng: every other language paired with English, both directions
    pairs = set(zip(acc["lang"], acc["lang2"], strict=True))
    assert ("deu", "eng") in pairs and ("eng", "deu") in pairs and ("deu", "rus") not in pairs


@pytest.mark.parametrize("centered", [False, True])
def test_retrieval_equals_numpy(results, store, centered):
    layer = store.layers[-1]
    X, rows = store.sentences(layer=layer, with_rows=True)
    if centered:
        for lang in set(rows["lang"]):
            m = (rows["lang"] == lang).to_numpy()
            X[m] -= X[m].mean(0)
    by = {lang: g.sort_values("group") for lang, g in rows.groupby("lang")}
    for lang in ("deu", "rus", "cmn_Hans"):
        a, b = by[lang], by["eng"]
        assert (a["group"].to_numpy() == b["group"].to_numpy()).all()
        src2tgt, tgt2src = _numpy_accuracy(X[a.index], X[b.index])
        sel = results[
            (results["layer"] == layer)
            & results["protocol"].str.contains('"scoring":"cosine"')
            & results["protocol"].str.contains(f'"centered":{str(centered).lower()}')
        ]
        got = sel.set_index(["metric", "lang", "lang2"])["value"]
        assert got[("retrieval_acc", lang, "eng")] == pytest.approx(src2tgt)
        assert got[("retrieval_acc", "eng", lang)] == pytest.approx(tgt2src)
        assert got[("retrieval_acc_mean", lang, "eng")] == pytest.approx((src2tgt + tgt2src) / 2)


def test_centroid_gap_equals_numpy(results, store):
    layer = 1
    X, rows = store.sentences(layer=layer, with_rows=True)
    mu = {lang: X[(rows["lang"] == lang).to_numpy()].astype(np.float64).mean(0) for lang in LANGS}
    got = results[
        (results["metric"] == "centroid_distance")
        & (results["layer"] == layer)
        & results["protocol"].str.contains('"centered":false')
    ]
    assert len(got) == 6
    for _, r in got.iterrows():
        assert r["value"] == pytest.approx(np.linalg.norm(mu[r["lang"]] - mu[r["lang2"]]), rel=1e-5)
    centred = results[
        (results["metric"] == "centroid_distance")
        & results["protocol"].str.contains('"centered":true')
    ]
    assert np.allclose(centred["value"], 0, atol=1e-5)


def test_two_stores_same_corpus(store, tmp_path):
    copy = tmp_path / "after"
    shutil.copytree(store.path, copy)
    res = compute_metrics(
        MetricsConfig(
            stores=[f"before={store.path}", f"after={copy}"],
            metrics=["stores", "retrieval"],
            bootstrap=0,
            progress=False,
        )
    )
    assert set(res["checkpoint"]) == {"before", "after"}
    cka = res[res["metric"] == "cka_between_stores"]
    assert len(cka) == len(store.layers) ** 2
    proto = cka["protocol"].map(json.loads)
    diag = cka[[p["other_layer"] == layer for p, layer in zip(proto, cka["layer"], strict=True)]]
    assert np.allclose(diag["value"], 1.0)
    before = res[res["checkpoint"] == "before"].drop(columns=["store", "checkpoint"])
    after = res[res["checkpoint"] == "after"].drop(columns=["store", "checkpoint"])
    pd.testing.assert_frame_equal(
        before[before["metric"] != "cka_between_stores"].reset_index(drop=True),
        after.reset_index(drop=True),
    )


def test_same_layer_cka_between_stores_gets_a_group_bootstrap_interval(store, tmp_path):
    """With --bootstrap, the same layer of both stores gets an interval from a bootstrap over
    translation groups (blocks = min(64, groups)); other layer pairs get none."""
    copy = tmp_path / "after"
    shutil.copytree(store.path, copy)
    res = compute_metrics(
        MetricsConfig(
            stores=[f"before={store.path}", f"after={copy}"],
            metrics=["stores"],
            bootstrap=40,
            progress=False,
        )
    )
    cka = res[res["metric"] == "cka_between_stores"]
    proto = cka["protocol"].map(json.loads)
    same = np.array([p["other_layer"] == x for p, x in zip(proto, cka["layer"], strict=True)])
    diag, off = cka[same], cka[~same]
    assert len(diag) == len(store.layers) and off["ci_low"].isna().all()
    assert np.allclose(diag[["ci_low", "value", "ci_high"]].to_numpy(), 1.0)
    groups = store.rows["group"].nunique()
    assert {p["ci_blocks"] for p in proto[same]} == {min(64, groups)}
    assert {p["n_boot"] for p in proto[same]} == {40}


def test_refuses_stores_of_different_corpora(store, corpus, tiny_xlmr, tmp_path):
    other, _ = extract(
        ExtractConfig(out=str(tmp_path / "other"), progress=False),
        corpus=corpus.select(langs=["eng", "deu"]),
        encoder=tiny_xlmr,
    )
    with pytest.raises(DataError, match=r"different corpora.*--independent"):
        compute_metrics(MetricsConfig(stores=[str(store.path), str(other.path)], progress=False))
    res = compute_metrics(
        MetricsConfig(
            stores=[str(store.path), str(other.path)],
            metrics=["isotropy"],
            independent=True,
            progress=False,
        )
    )
    assert res["store"].nunique() == 2


def test_nan_vectors_reported_with_row_ids(store, monkeypatch):
    """Vectors that are NaN as stored (the store's checksums cannot tell) are named by row id."""
    real = Store.sentences

    def with_nan(self, **kw):
        X, rows = real(self, **kw)
        if kw["layer"] == 1:
            X[3, 0] = np.nan
        return X, rows

    monkeypatch.setattr(Store, "sentences", with_nan)
    row_id = store.rows["id"][3]
    with pytest.raises(
        DataError,
        match=rf"layer 1: non-finite values \(NaN/inf\) in 1 row\(s\) with id '{row_id}'$",
    ):
        compute_metrics(
            MetricsConfig(stores=[str(store.path)], metrics=["isotropy"], progress=False)
        )


def test_bad_options(store, corpus, tiny_xlmr, tmp_path):
    with pytest.raises(ConfigError, match="--layers 9 out of range"):
        compute_metrics(MetricsConfig(stores=[str(store.path)], layers="9", progress=False))
    some, _ = extract(
        ExtractConfig(out=str(tmp_path / "some"), layers="0,2", progress=False),
        corpus=corpus,
        encoder=tiny_xlmr,
    )
    with pytest.raises(ConfigError, match=r"layer\(s\) \[1\] not in store .*stored: \[0, 2\]"):
        compute_metrics(MetricsConfig(stores=[str(some.path)], layers="1", progress=False))
    with pytest.raises(ConfigError, match="pooling 'max' not in store"):
        compute_metrics(MetricsConfig(stores=[str(store.path)], pooling="max", progress=False))
    with pytest.raises(ConfigError, match="allowed values are all"):
        MetricsConfig(stores=["x"], metrics=["nope"])


def test_language_with_one_row_is_named(tiny_bert, tmp_path):
    recs = [{"id": f"e{i}", "lang": "eng", "text": f"sentence number {i}"} for i in range(6)]
    recs.append({"id": "d0", "lang": "deu", "text": "ein Satz"})
    st, _ = extract(
        ExtractConfig(out=str(tmp_path / "s"), progress=False),
        corpus=Corpus.from_records(recs),
        encoder=tiny_bert,
    )
    with pytest.raises(ConfigError, match=r"--metrics clusters on store .*too few: deu \(1\)"):
        compute_metrics(MetricsConfig(stores=[str(st.path)], metrics=["clusters"], progress=False))


def test_cli_writes_results_and_summary(store, tmp_path, capsys):
    out = tmp_path / "r.parquet"
    argv = [f"before={store.path}", "--out", str(out), "--metrics", "retrieval,clusters",
            "--bootstrap", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "← best retrieval" in text and str(out) in text
    df = pd.read_parquet(out)
    assert tuple(df.columns) == RESULTS_COLUMNS and set(df["checkpoint"]) == {"before"}
    cfg = json.loads(out.with_suffix(".config.json").read_text())
    assert cfg["metrics"] == ["retrieval", "clusters"]
    assert main([str(store.path), "--metrics", "bogus"]) == 2
    assert "allowed values" in capsys.readouterr().err


# ---------------------------------------------------------------- token-level groups


@pytest.fixture(scope="module")
def aligned_store(tiny_xlmr, tmp_path_factory):
    """A word-alignment corpus (synthetic gold) with tokens, attentions and pair attention."""
    from xalign.data import gold_alignments, read_word_align
    from xalign.extract import extract_pair_attention

    root = tmp_path_factory.mktemp("wa")
    folder = root / "en-de"
    folder.mkdir()
    pairs = [("the cat sleeps", "die Katze schläft", "1-1 2-2 3-3"),
             ("we walked home", "wir gingen heim", "1-1 2-2 3p3"),
             ("rain again today", "heute wieder Regen", "1-3 2-2 3-1"),
             ("the old harbour", "der alte Hafen", "1-1 2-2 3-3")]  # fmt: skip
    (folder / "ende.src-tgt").write_text("".join(f"{a} ||| {b}\n" for a, b, _ in pairs))
    (folder / "ende.gold").write_text("".join(f"{g}\n" for _, _, g in pairs))
    corpus = read_word_align(folder)
    st, _ = extract(
        ExtractConfig(out=str(root / "s"), tokens=True, attentions="head-mean", progress=False),
        corpus=corpus,
        encoder=tiny_xlmr,
    )
    extract_pair_attention(st.path, tiny_xlmr, langs=corpus.languages)
    return st, folder, gold_alignments(folder)


def test_word_and_attention_groups(aligned_store):
    from xalign.metrics import word_alignment_metrics

    st, folder, gold = aligned_store
    res = compute_metrics(
        MetricsConfig(
            stores=[str(st.path)],
            metrics=["word_align", "attention"],
            gold=f"wordalign:{folder}",
            progress=False,
        )
    )
    assert tuple(res.columns) == RESULTS_COLUMNS
    metrics = set(res["metric"])
    assert {"word_align_aer", "attn_align_aer", "attention_entropy"} <= metrics
    direct = word_alignment_metrics(st, gold, layers=st.layers)
    ours = res[res["metric"].str.startswith("word_align")]
    assert len(ours) == len(direct)
    np.testing.assert_allclose(
        ours.sort_values(["metric", "layer", "protocol"])["value"].to_numpy(),
        direct.sort_values(["metric", "layer", "protocol"])["value"].to_numpy(),
    )
    aer = res[res["metric"].isin(["word_align_aer", "attn_align_aer"])]["value"]
    assert aer.between(0, 1).all()


def test_token_groups_name_the_missing_flag(aligned_store, store, capsys):
    st, folder, _ = aligned_store
    with pytest.raises(ConfigError, match="--gold wordalign:DIR"):
        compute_metrics(
            MetricsConfig(stores=[str(st.path)], metrics=["word_align"], progress=False)
        )
    with pytest.raises(ConfigError, match="--tokens"):
        compute_metrics(
            MetricsConfig(
                stores=[str(store.path)], metrics=["word_align"], gold=str(folder), progress=False
            )
        )
    with pytest.raises(ConfigError, match="--attentions head-mean"):
        compute_metrics(
            MetricsConfig(stores=[str(store.path)], metrics=["attention"], progress=False)
        )
    # under "all" the same gaps become notes, printed by the CLI
    assert main([str(store.path), "--metrics", "all", "--bootstrap", "0", "--layers", "2",
                 "--out", str(st.path.parent / "r.parquet"), "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "note: word_align skipped" in out and "note: attention skipped" in out


def test_parallel_only_groups_on_a_corpus_without_groups(tiny_bert, tmp_path):
    """Retrieval, BUCC and CKA need translation groups: asked for explicitly on a corpus with
    none they are refused with the reason; under "all" they become a note and the other
    groups are still computed."""
    recs = [{"id": f"r{i}", "lang": ("eng", "deu")[i % 2], "text": f"sentence {i} here"}
            for i in range(24)]  # fmt: skip
    st, _ = extract(
        ExtractConfig(out=str(tmp_path / "s"), progress=False),
        corpus=Corpus.from_records(recs),
        encoder=tiny_bert,
    )
    for metric in ("retrieval", "cka", "bucc"):
        with pytest.raises(ConfigError, match=f"--metrics {metric} on store .*parallel corpus"):
            compute_metrics(MetricsConfig(stores=[str(st.path)], metrics=[metric], progress=False))
    res = compute_metrics(MetricsConfig(stores=[str(st.path)], bootstrap=0, progress=False))
    notes = " ".join(res.attrs["notes"])
    for metric in ("retrieval", "cka", "bucc"):
        assert f"{metric} skipped for {st.label}: needs a parallel corpus" in notes
    assert not res["metric"].str.startswith(("retrieval", "bucc", "cka")).any()
    assert res["metric"].str.startswith("lid_").any() and len(res) > 0


def test_aligned_positions_are_cached_per_pair():
    import pandas as pd

    from xalign.metrics._run import _aligned

    rows = pd.DataFrame(
        {"lang": ["en", "de", "en", "de", "fr"], "group": ["g1", "g2", "g2", "g1", "g1"]}
    )
    cache: dict = {}
    first = _aligned(rows, "en", "de", cache)
    assert [x.tolist() for x in first] == [[0, 2], [3, 1]]
    assert [x.tolist() for x in _aligned(rows, "en", "de")] == [[0, 2], [3, 1]]
    assert _aligned(rows, "en", "de", cache) is first
    assert list(cache) == [("en", "de")]


def test_single_blas_thread_limits_and_restores():
    import scipy.linalg  # noqa: F401  (its own OpenBLAS, which the limit must cover too)
    from threadpoolctl import threadpool_info

    from xalign.metrics._blas import single_blas_thread

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with single_blas_thread():
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


# ---------------------------------------------------------------- worker processes


def test_workers_give_the_serial_results(store):
    """--workers N computes layers in N processes; the table is the serial one, bit for bit,
    row for row, and no row records the number of workers."""
    kw = {"stores": [str(store.path)], "bootstrap": 50, "progress": False}
    serial = compute_metrics(MetricsConfig(**kw, workers=1))
    pooled = compute_metrics(MetricsConfig(**kw, workers=2))
    pd.testing.assert_frame_equal(serial, pooled, check_exact=True)
    assert serial.attrs["notes"] == pooled.attrs["notes"]
    assert {"lid_accuracy", "retrieval_acc", "language_silhouette", "partition_isotropy"} <= set(
        serial["metric"]
    )
    assert not serial["protocol"].str.contains("workers").any()


@pytest.mark.skipif(
    sys.platform != "linux", reason="workers are forked on Linux only; spawned ones re-import"
)
def test_workers_fail_as_the_serial_run(store, monkeypatch):
    """A group failing at one layer: the same message, and the same rows kept (its earlier
    layers, every other group), with and without workers."""
    import xalign.metrics._probe as probe_module
    from xalign.metrics._run import IncompleteResultsError

    real = probe_module.language_id_probe

    layer1 = store.sentences(pooling="mean", layer=1)

    def failing(X, langs, **kw):  # the centred probe of layer 1 fails
        if kw["centered"] and np.array_equal(X, layer1):
            raise DataError("made to fail")
        return real(X, langs, **kw)

    monkeypatch.setattr(probe_module, "language_id_probe", failing)
    got = {}
    for workers in (1, 2):
        cfg = MetricsConfig(
            stores=[str(store.path)], metrics=["probe", "isotropy"], bootstrap=0,
            progress=False, workers=workers,
        )  # fmt: skip
        with pytest.raises(IncompleteResultsError) as e:
            compute_metrics(cfg)
        got[workers] = e.value
    assert str(got[1]) == str(got[2])
    assert "probe failed for before at layer 1: made to fail" in str(got[1])
    pd.testing.assert_frame_equal(got[1].results, got[2].results, check_exact=True)
    probe = got[1].results[got[1].results["metric"].str.startswith("lid_")]
    assert sorted(set(probe["layer"])) == [0]  # layer 1 (raw part too) and later: dropped
    assert set(
        got[1].results.loc[got[1].results["metric"] == "partition_isotropy", "layer"]
    ) == set(store.layers)


def test_workers_default_and_serial_fallback(monkeypatch):
    import xalign.metrics._run as run

    monkeypatch.setattr(run, "available_cpus", lambda: 16)
    assert run.resolve_workers(0) == run.AUTO_WORKERS_MAX == 4
    assert run.resolve_workers(3) == 3
    monkeypatch.setattr(run, "available_cpus", lambda: 1)
    assert run.resolve_workers(0) == 1  # one CPU: no worker process
    assert MetricsConfig(stores=["x"]).workers == 0


def test_cli_refuses_bad_workers(store, capsys):
    assert main([str(store.path), "--workers", "-2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --workers -2: must be >= 0 (0 = one per available CPU, at most 4)"]


def test_removed_probe_warm_start_is_refused_with_the_reason(store, capsys, tmp_path):
    """--probe-warm-start started each fold from the previous fold's solution, fitted on this
    fold's test rows: refused with the reason, from the command line and from a config file."""
    assert main([str(store.path), "--probe-warm-start"]) == 2
    err = capsys.readouterr().err
    assert "--probe-warm-start was removed" in err and "test rows" in err
    toml = tmp_path / "m.toml"
    toml.write_text("probe_warm_start = true\n", encoding="utf-8")
    assert main([str(store.path), "--config", str(toml)]) == 2
    err = capsys.readouterr().err
    assert f"{toml}: key 'probe_warm_start': --probe-warm-start was removed" in err
    assert "test rows" in err and "unknown key" not in err
