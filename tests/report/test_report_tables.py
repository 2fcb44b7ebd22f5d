"""Report tables: values against independent pandas, bold by direction, options, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xalign.errors import ConfigError, DataError
from xalign.report import build_report, metric_direction


def _raw(df, metric, **proto):
    """Rows of ``metric`` whose protocol has every key=value of ``proto`` (raw by default)."""
    proto = {"centered": False, **proto}
    keep = [all(json.loads(p).get(k) == v for k, v in proto.items()) for p in df["protocol"]]
    return df[(df["metric"] == metric) & np.array(keep, dtype=bool)]


def _expected_by_layer(df, ckpt):
    """Metric × layer values computed independently of the report."""
    d = df[df["checkpoint"] == ckpt]
    out = {}
    r = _raw(d, "retrieval_acc_mean", scoring="cosine")
    out["retrieval_acc_mean"] = r.groupby("layer")["value"].mean()
    g = _raw(d, "centroid_distance_scaled")
    out["centroid_distance_scaled"] = g.groupby("layer")["value"].mean()
    s = _raw(d, "language_silhouette")
    out["language_silhouette"] = s[s["lang"].isna()].set_index("layer")["value"]
    out["lid_accuracy"] = _raw(d, "lid_accuracy").set_index("layer")["value"]
    return out


def test_metric_by_layer_matches_results_and_marks_best(results_factory, tmp_path):
    df = results_factory()
    s = build_report(df, out=tmp_path / "r", figures=False)
    assert set(s.metrics) == {"retrieval_acc_mean", "centroid_distance_scaled",
                              "language_silhouette", "lid_accuracy"}  # fmt: skip
    for ckpt in ("before", "after"):
        t = s.tables[f"metric_by_layer-{ckpt}"]
        exp = _expected_by_layer(df, ckpt)
        for m, series in exp.items():
            np.testing.assert_allclose(t.data[m].to_numpy(), series.sort_index().to_numpy())
            col = 1 + list(t.data.columns[1:]).index(m)
            rounded = series.sort_index().round(3)
            want = rounded.max() if metric_direction(m) == "higher" else rounded.min()
            bold_layers = [int(row[0].text) for row in t.rows[:-1] if row[col].bold]
            assert bold_layers == [int(x) for x in rounded.index[rounded == want]]
            assert t.rows[-1][col].text == ",".join(map(str, bold_layers))


def _pair_table():
    """Hand-made before/after values at layers 0 and 1 (one per metric and checkpoint)."""
    rows = []
    vals = {  # metric: (before, after) at layer 1; layer 0 is a tie for every metric
        "retrieval_acc_mean": (0.50, 0.70),  # higher better → after bold
        "language_silhouette": (0.10, 0.30),  # lower better → before bold
        "lid_accuracy": (0.90, 0.60),  # lower better → after bold
        "mean_random_cosine": (0.20, 0.40),  # no direction → nothing bold
    }
    for m, (b, a) in vals.items():
        for ckpt, v in (("before", b), ("after", a)):
            for layer, value in ((0, 0.25), (1, v)):
                lang2 = "eng" if m == "retrieval_acc_mean" else None
                lang = "deu" if m == "retrieval_acc_mean" else None
                rows.append([f"runs/{ckpt}", ckpt, m, layer, lang, lang2, value, 10, np.nan,
                             np.nan, '{"centered":false}'])  # fmt: skip
    cols = ["store", "checkpoint", "metric", "layer", "lang", "lang2", "value", "n", "ci_low",
            "ci_high", "protocol"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols).astype({"lang": object, "lang2": object})


def test_before_after_bold_follows_each_metrics_direction(tmp_path):
    metrics = ["retrieval_acc_mean", "language_silhouette", "lid_accuracy", "mean_random_cosine"]
    s = build_report(_pair_table(), out=tmp_path / "r", figures=False, metrics=metrics,
                     focus_layers="0,1")  # fmt: skip
    t = s.tables["before_after"]
    assert t.header == ["Metric", "before", "after", "Δ"]
    sections: dict[str, list] = {}
    current = None
    for row in t.rows:
        if isinstance(row, str):
            current = row
            sections[current] = []
        else:
            sections[current].append(row)
    layer1 = {r[0].text.split(" ")[0]: r for r in sections["Layer 1"]}
    assert [c.bold for c in layer1["Retrieval"][1:3]] == [False, True]
    assert [c.bold for c in layer1["Lang."][1:3]] == [True, False]
    assert [c.bold for c in layer1["LID"][1:3]] == [False, True]
    assert [c.bold for c in layer1["Mean"][1:3]] == [False, False]
    assert layer1["Retrieval"][3].text == "+0.200"
    assert layer1["LID"][3].text == "−0.300"
    # a tie is never bold
    assert not any(c.bold for r in sections["Layer 0"] for c in r[1:3])
    # LaTeX and Markdown mark the same cells
    tex = (tmp_path / "r" / "tables" / "before_after.tex").read_text()
    assert r"\textbf{0.700}" in tex and r"\textbf{0.100}" in tex and r"\textbf{0.600}" in tex
    assert r"\textbf{0.300}" not in tex and r"\textbf{0.400}" not in tex
    md = (tmp_path / "r" / "report.md").read_text()
    assert "**0.700**" in md and "**0.100**" in md and "**0.400**" not in md


def test_retrieval_by_language_table(results_factory, tmp_path):
    df = results_factory()
    s = build_report(df, out=tmp_path / "r", figures=False, focus_layers="2")
    t = s.tables["retrieval_by_language-L2"]
    r = _raw(df, "retrieval_acc", scoring="cosine")
    r = r[r["layer"] == 2]
    m = _raw(df, "retrieval_acc_mean", scoring="cosine")
    m = m[m["layer"] == 2]
    for i, lang in enumerate(["deu", "fra", "rus"]):
        for ckpt in ("before", "after"):
            rc = r[r["checkpoint"] == ckpt]
            to = rc[(rc["lang"] == lang) & (rc["lang2"] == "eng")]["value"].item()
            frm = rc[(rc["lang"] == "eng") & (rc["lang2"] == lang)]["value"].item()
            mean = m[(m["checkpoint"] == ckpt) & (m["lang"] == lang)]["value"].item()
            assert t.data.loc[i, f"{ckpt}:to"] == pytest.approx(to)
            assert t.data.loc[i, f"{ckpt}:from"] == pytest.approx(frm)
            assert t.data.loc[i, f"{ckpt}:mean"] == pytest.approx(mean)
        before = round(t.data.loc[i, "before:mean"], 3)
        after = round(t.data.loc[i, "after:mean"], 3)
        row = t.rows[i]
        assert row[0].text.endswith(f"({lang})") and "(" in row[0].text
        assert row[3].bold == (before > after) and row[6].bold == (after > before)
    assert t.rows[0][0].text == "German (deu)"
    assert t.data["lang"].iloc[-1] == "mean"
    assert t.data.loc[3, "after:mean"] == pytest.approx(t.data.loc[:2, "after:mean"].mean())


def test_report_without_some_metrics_still_works(results_factory, tmp_path):
    df = results_factory(metrics=("silhouette", "lid"))
    s = build_report(df, out=tmp_path / "r", figures=False)
    assert s.metrics == ["language_silhouette", "lid_accuracy"]
    assert not any(n.startswith("retrieval") for n in s.tables)
    assert (tmp_path / "r" / "report.md").is_file()
    with pytest.raises(ConfigError, match=r"retrieval_acc_mean.*metrics there: language_sil"):
        build_report(df, out=tmp_path / "r2", metrics=["retrieval_acc_mean"], figures=False)


def test_options_select_rows(results_factory, tmp_path):
    df = results_factory()
    # one language: pairs involving it, and its own silhouette row instead of the overall one
    s = build_report(df, out=tmp_path / "a", figures=False, langs=["deu"], checkpoints="after",
                     layers="1-2")  # fmt: skip
    t = s.tables["metric_by_layer-after"]
    assert t.data["layer"].tolist() == [1, 2] and s.checkpoints == ["after"]
    sil = _raw(df, "language_silhouette")
    sil = sil[(sil["checkpoint"] == "after") & (sil["lang"] == "deu")].set_index("layer")
    np.testing.assert_allclose(t.data["language_silhouette"], sil.loc[[1, 2], "value"])
    ret = _raw(df, "retrieval_acc_mean", scoring="cosine")
    ret = ret[(ret["checkpoint"] == "after") & (ret["lang"] == "deu")].set_index("layer")
    np.testing.assert_allclose(t.data["retrieval_acc_mean"], ret.loc[[1, 2], "value"])
    # protocol choice: centred rows
    s = build_report(df, out=tmp_path / "b", figures=False, protocol="centered=true")
    t = s.tables["metric_by_layer-before"]
    lid = _raw(df, "lid_accuracy", centered=True)
    lid = lid[lid["checkpoint"] == "before"].set_index("layer")["value"]
    np.testing.assert_allclose(t.data["lid_accuracy"], lid.sort_index())
    assert "centered=true" in t.note


def test_bad_options_raise_specific_errors(results_factory, tmp_path):
    df = results_factory()
    with pytest.raises(ConfigError, match=r"--format.*allowed values are latex, md, html"):
        build_report(df, out=tmp_path, formats=["pdf"])
    with pytest.raises(ConfigError, match=r"--checkpoints.*checkpoints there: before, after"):
        build_report(df, out=tmp_path, checkpoints=["mbert"])
    with pytest.raises(ConfigError, match=r"layer\(s\) \[9\] not in the results table"):
        build_report(df, out=tmp_path, layers="0,9")
    with pytest.raises(ConfigError, match="--langs 'xx'"):
        build_report(df, out=tmp_path, langs="xx")
    with pytest.raises(DataError, match=r"missing column\(s\) \['protocol'\]"):
        build_report(df.drop(columns="protocol"), out=tmp_path)
    with pytest.raises(DataError, match="no such results file"):
        build_report(tmp_path / "nope.parquet", out=tmp_path)


def test_same_inputs_give_identical_files(synthetic_results, tmp_path):
    outs = []
    for name in ("a", "b"):
        s = build_report(synthetic_results, out=tmp_path / name, figure_formats=())
        outs.append(s)
    files = sorted(p.relative_to(tmp_path / "a") for p in outs[0].files)
    assert files == sorted(p.relative_to(tmp_path / "b") for p in outs[1].files)
    checked = 0
    for rel in files:
        if rel.suffix in (".tex", ".csv", ".md", ".html"):
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
            checked += 1
    assert checked >= 10
    for name, spec in outs[0].figures.items():
        assert spec.figure.to_json() == outs[1].figures[name].figure.to_json()  # NaN-safe
