"""Figure builders (xalign.figures): the data in each figure, checked against hand computations."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from xalign import figures as F
from xalign import results as R


def points_frame():
    # 3 groups x 3 languages; row ids deliberately not 0..n-1
    recs = []
    for g in range(3):
        for k, lang in enumerate(["eng", "deu", "jpn"]):
            r = 100 + 3 * g + k
            recs.append(
                {
                    "row": r,
                    "lang": lang,
                    "text": f"<b>{lang} sentence {g}</b>",
                    "group": f"g{g}",
                    "label": ["food", "travel", "food"][g],
                    "x": float(r),
                    "y": float(-r) / 2,
                }
            )
    return pd.DataFrame(recs)


def test_language_colour_is_one_fixed_mapping():
    assert F.language_color("eng") == "#000000"
    assert F.language_color("deu") == "#E69F00"
    sample = [
        "eng",
        "deu",
        "fra",
        "spa",
        "rus",
        "ell",
        "arb",
        "hin",
        "cmn_Hans",
        "jpn",
        "kor",
        "swh",
        "tur",
    ]
    assert len({F.language_color(x) for x in sample}) == len(sample)  # all distinct
    assert F.language_color("cmn") == F.language_color("cmn_Hans")
    assert F.language_color("zul") in F.PALETTE
    # stable across processes (no salted hash)
    code = "from xalign.figures import language_color as c; print(c('zul'), c('yor'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [F.language_color("zul"), F.language_color("yor")]
    assert F.language_color(None) == F.language_color(float("nan")) == "#BBBBBB"


def test_figures_room_imports_no_dash_and_xalign_no_plotly():
    code = (
        "import sys, xalign, xalign.results, xalign.report; a = 'plotly' in sys.modules; "
        "import xalign.figures; print(a, 'dash' in sys.modules, 'dashboards' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_fig_clusters_traces_colours_symbols_and_hover():
    pts = points_frame()
    fig = F.fig_clusters(pts)
    names = [t.name for t in fig.data]
    assert names == ["eng", "deu", "jpn", "food", "travel", "links", "translations", "anchor"]
    for t, lang in zip(fig.data[:3], ["eng", "deu", "jpn"], strict=True):
        sub = pts[pts["lang"] == lang]
        assert t.type == "scattergl"
        np.testing.assert_array_equal(np.asarray(t.x), sub["x"].to_numpy(np.float32))
        np.testing.assert_array_equal(np.asarray(t.y), sub["y"].to_numpy(np.float32))
        assert list(t.customdata) == sub["row"].tolist()
        assert t.marker.color == F.language_color(lang)
        sym = F.label_symbols(pts["label"])
        assert list(t.marker.symbol) == [F.SYMBOL_CODES[sym[v]] for v in sub["label"]]
        # HTML in a sentence is shown as text, and the label is in the hover text
        assert t.text[0].startswith("&lt;b&gt;") and t.text[0].endswith("· label food")
        assert f"{lang} (" in t.hovertemplate and "row %{customdata}" in t.hovertemplate
    # legend entries for the label symbols carry no points
    assert fig.data[3].marker.symbol == "circle" and list(fig.data[3].x) == [None]
    js = json.loads(fig.to_json())
    # coordinates travel as float32 typed arrays
    x0 = js["data"][0]["x"]
    assert x0["dtype"] == "f4"
    np.testing.assert_array_equal(
        np.frombuffer(base64.b64decode(x0["bdata"]), "<f4"),
        pts[pts.lang == "eng"]["x"].to_numpy(np.float32),
    )


def test_fig_clusters_highlights_translations_and_draws_links():
    pts = points_frame()
    group_rows = pts[pts["group"] == "g1"]["row"].tolist()  # 103, 104, 105
    anchor = 104
    fig = F.fig_clusters(pts, highlight=group_rows, anchor=anchor)
    links, hl, star = fig.data[-3:]
    assert list(hl.customdata) == group_rows
    assert list(hl.x) == [103.0, 104.0, 105.0] and list(hl.y) == [-51.5, -52.0, -52.5]
    assert list(hl.text) == ["eng", "deu", "jpn"]
    assert list(hl.marker.color) == [F.language_color(x) for x in ["eng", "deu", "jpn"]]
    # one segment anchor -> translation per other row, separated by None
    assert list(links.x) == [104.0, 103.0, None, 104.0, 105.0, None]
    assert list(links.y) == [-52.0, -51.5, None, -52.0, -52.5, None]
    assert list(star.x) == [104.0] and list(star.y) == [-52.0] and list(star.customdata) == [104]
    # the same arrays as cluster_traces_xy, which the dashboard patches with
    xy = F.cluster_traces_xy(pts, highlight=group_rows, anchor=anchor)
    assert len(xy) == len(fig.data)
    for (x, y), t in zip(xy, fig.data, strict=True):
        assert list(np.asarray(x, dtype=object)) == list(np.asarray(t.x, dtype=object))
        assert list(np.asarray(y, dtype=object)) == list(np.asarray(t.y, dtype=object))


def test_fig_clusters_language_filter_selection_and_ranges():
    pts = points_frame()
    fig = F.fig_clusters(
        pts,
        langs=["deu", "jpn"],
        highlight=[100, 101, 102],
        anchor=100,
        selected=[101, 107],
        ranges=[0, 10, -5, 5],
    )
    assert [t.name for t in fig.data[:2]] == ["deu", "jpn"]
    # the anchor (eng) stays highlighted although eng is filtered out; other eng rows do not
    assert list(fig.data[-2].customdata) == [100, 101, 102]
    assert list(fig.data[0].selectedpoints) == [0, 2]  # rows 101 and 107 within deu
    assert list(fig.data[1].selectedpoints) == []
    assert list(fig.layout.xaxis.range) == pytest.approx([-0.5, 10.5])
    assert list(fig.layout.yaxis.range) == pytest.approx([-5.5, 5.5])
    nolabel = F.fig_clusters(pts.drop(columns="label"), webgl=False)
    assert [t.name for t in nolabel.data] == [
        "eng",
        "deu",
        "jpn",
        "links",
        "translations",
        "anchor",
    ]
    assert nolabel.data[0].type == "scatter" and nolabel.data[0].marker.symbol is None


def results_frame():
    """Hand-made results: 2 checkpoints, 2 layers, pairwise and per-language metrics."""
    recs = []
    proto_cos = json.dumps({"scoring": "cosine", "centered": False, "k": None})
    proto_mar = json.dumps({"scoring": "margin", "centered": False, "k": 4})
    vals = {
        ("before", 0): [0.2, 0.4, 0.6, 0.8],
        ("before", 1): [0.3, 0.5, 0.7, 0.9],
        ("after", 0): [0.5, 0.5, 0.5, 0.5],
        ("after", 1): [0.6, 0.7, 0.8, 0.9],
    }
    pairs = [("deu", "eng"), ("eng", "deu"), ("fra", "eng"), ("eng", "fra")]
    for (ck, layer), v in vals.items():
        for (a, b), value in zip(pairs, v, strict=True):
            for proto, off in ((proto_cos, 0.0), (proto_mar, 0.05)):
                recs.append(
                    {
                        "store": ck,
                        "checkpoint": ck,
                        "metric": "retrieval_acc",
                        "layer": layer,
                        "lang": a,
                        "lang2": b,
                        "value": value + off,
                        "n": 10,
                        "ci_low": np.nan,
                        "ci_high": np.nan,
                        "protocol": proto,
                    }
                )
        for lang, s in (("eng", 0.1), ("deu", 0.2), (None, 0.15)):
            recs.append(
                {
                    "store": ck,
                    "checkpoint": ck,
                    "metric": "language_silhouette",
                    "layer": layer,
                    "lang": lang,
                    "lang2": None,
                    "value": s + layer,
                    "n": 10,
                    "ci_low": s + layer - 0.01,
                    "ci_high": s + layer + 0.01,
                    "protocol": json.dumps({"centered": False}),
                }
            )
        recs.append(
            {
                "store": ck,
                "checkpoint": ck,
                "metric": "cka",
                "layer": layer,
                "lang": "deu",
                "lang2": "eng",
                "value": 0.9 - layer / 10,
                "n": 10,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "protocol": "{}",
            }
        )
    return R.parse_protocols(pd.DataFrame(recs))


def test_protocol_filter_falls_back_to_combinations_that_exist():
    df = results_frame()
    opts = R.protocol_options(df, "retrieval_acc")
    assert list(opts) == ["scoring", "k"]  # scoring first, then the rest
    assert opts["scoring"] == ['"cosine"', '"margin"'] and opts["k"] == ["4", "null"]
    d = R.filter_protocol(df, "retrieval_acc", {"scoring": '"cosine"', "k": "4"})
    # cosine rows have k=null: the impossible k=4 falls back instead of emptying the table
    assert len(d) == 16 and set(d["p:scoring"]) == {'"cosine"'}
    assert d.attrs["protocol"] == {"scoring": '"cosine"', "k": "null"}
    assert R.describe_protocol(d.attrs["protocol"]) == "scoring=cosine, k=null"
    m = R.filter_protocol(df, "retrieval_acc", {"scoring": '"margin"'})
    assert set(m["p:k"]) == {"4"} and np.allclose(sorted(m["value"])[:1], [0.25])
    assert R.protocol_options(df, "cka") == {}


def test_metric_by_layer_one_line_per_language():
    df = results_frame()
    d = R.filter_protocol(df, "retrieval_acc")
    fig = F.fig_metric_by_layer(d, metric="retrieval_acc")
    lines = {t.name: t for t in fig.data}
    assert set(lines) == {f"{x} · {c}" for x in ("deu", "eng", "fra") for c in ("before", "after")}
    # pairwise rows: a language's value is the mean over every pair it takes part in
    assert list(lines["deu · before"].y) == pytest.approx([(0.2 + 0.4) / 2, (0.3 + 0.5) / 2])
    assert list(lines["eng · before"].y) == pytest.approx([0.5, 0.6])  # mean of all four
    assert list(lines["fra · after"].y) == pytest.approx([0.5, (0.8 + 0.9) / 2])
    assert list(lines["deu · after"].x) == [0, 1]
    assert lines["deu · before"].line.color == F.language_color("deu")
    assert lines["deu · before"].line.dash != lines["deu · after"].line.dash


def test_metric_by_layer_mean_with_ci():
    df = results_frame()
    sil = R.filter_protocol(df, "language_silhouette")
    fig = F.fig_metric_by_layer(sil, metric="language_silhouette", mode="mean")
    band, line = fig.data[0], fig.data[1]
    # the table's own overall row (lang empty) and its bootstrap CI
    assert line.name == "before" and list(line.y) == pytest.approx([0.15, 1.15])
    assert list(band.y) == pytest.approx([0.16, 1.16, 1.14, 0.14])
    # no overall row: mean over pairs with a normal 95 % interval across them
    ret = R.filter_protocol(df, "retrieval_acc")
    fig = F.fig_metric_by_layer(
        ret[ret["checkpoint"] == "before"], metric="retrieval_acc", mode="mean"
    )
    v = np.array([0.2, 0.4, 0.6, 0.8])
    half = 1.96 * v.std(ddof=1) / 2
    assert list(fig.data[1].y) == pytest.approx([0.5, 0.6])
    assert list(fig.data[0].y)[:2] == pytest.approx([0.5 + half, 0.6 + half])
    with pytest.raises(ValueError, match="allowed values are languages, mean"):
        F.fig_metric_by_layer(ret, metric="x", mode="median")


def test_language_heatmap_directional_and_symmetric():
    df = results_frame()
    d = R.filter_protocol(df, "retrieval_acc")
    fig = F.fig_language_heatmap(d[d["checkpoint"] == "before"], metric="retrieval_acc", layer=1)
    z = np.array(fig.data[0].z, dtype=float)
    labels = list(fig.data[0].y)
    assert labels[0] == "eng"  # the pivot (in most pairs) first
    at = lambda a, b: z[labels.index(a), labels.index(b)]  # noqa: E731
    assert at("deu", "eng") == 0.3 and at("eng", "deu") == 0.5  # kept directional
    assert at("fra", "eng") == 0.7 and np.isnan(at("deu", "fra"))
    cka = R.filter_protocol(df, "cka")
    fig = F.fig_language_heatmap(cka[cka["checkpoint"] == "after"], metric="cka", layer=1)
    z = np.array(fig.data[0].z, dtype=float)
    assert z[0, 1] == z[1, 0] == pytest.approx(0.8)  # mirrored
    assert np.isnan(z[0, 0])
    empty = F.fig_language_heatmap(cka, metric="cka", layer=7)
    assert "no language-pair values" in empty.layout.annotations[0].text


def test_difference_view_is_after_minus_before():
    df = results_frame()
    d = R.filter_protocol(df, "retrieval_acc")
    fig = F.fig_difference(d, metric="retrieval_acc", before="before", after="after")
    hm = fig.data[0]
    assert list(hm.y) == ["mean", "deu", "eng", "fra"] and list(hm.x) == [0, 1]
    z = np.array(hm.z, dtype=float)
    deu = [0.5 - 0.3, (0.6 + 0.7) / 2 - 0.4]
    fra = [0.5 - 0.7, (0.8 + 0.9) / 2 - 0.8]
    eng = [0.5 - 0.5, 0.75 - 0.6]
    np.testing.assert_allclose(z[1:], [deu, eng, fra], atol=1e-12)
    np.testing.assert_allclose(z[0], np.mean([deu, eng, fra], axis=0), atol=1e-12)
    assert hm.zmid == 0 and hm.zmax == pytest.approx(np.abs(z).max())
    none = F.fig_difference(d, metric="retrieval_acc", before="before", after="nope")
    assert "no retrieval_acc values" in none.layout.annotations[0].text


def test_neighbours_attention_alignment_figures():
    hits = pd.DataFrame(
        {
            "lang": ["deu", "deu", "fra"],
            "rank": [1, 2, 1],
            "row": [5, 9, 7],
            "text": ["a", "b", "c"],
            "score": [0.9, 0.8, 0.7],
            "gold": [False, True, True],
        }
    )
    fig = F.fig_neighbours(hits)
    bar = fig.data[0]
    assert list(bar.y) == ["deu #1", "deu #2", "fra #1"] and list(bar.x) == [0.9, 0.8, 0.7]
    assert list(bar.text) == ["a", "✓ b", "✓ c"]
    assert list(bar.marker.pattern.shape) == ["/", "", ""]  # the miss is hatched
    A = np.arange(9, dtype=float).reshape(3, 3) / 10
    att = F.fig_attention(A, ["[CLS]", "the", "the"])
    assert np.array(att.data[0].z).tolist() == A.tolist()
    assert list(att.layout.xaxis.ticktext) == ["[CLS]", "the", "the"]  # duplicates kept
    assert list(att.layout.yaxis.tickvals) == [0, 1, 2]
    with pytest.raises(ValueError, match="does not match"):
        F.fig_attention(A, ["a", "b"])
    S = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.4]])
    al = F.fig_alignment(
        S,
        ["a", "b", "c"],
        ["x", "y"],
        predicted={(0, 0), (1, 1)},
        gold_sure={(0, 0)},
        gold_possible={(2, 1)},
    )
    pred, sure, poss = al.data[1:]
    assert (list(pred.x), list(pred.y)) == ([0, 1], [0, 1])  # x = target word, y = source
    assert (list(sure.x), list(sure.y)) == ([0], [0])
    assert (list(poss.x), list(poss.y)) == ([1], [2])
    assert np.array(al.data[0].z).tolist() == S.tolist()


def test_graph_config_download_buttons():
    c = F.graph_config("xalign-x", fmt="svg")
    assert c["toImageButtonOptions"] == {"format": "svg", "filename": "xalign-x", "scale": 2}
    assert c["displaylogo"] is False
    with pytest.raises(ValueError):
        F.graph_config(fmt="jpeg")


def test_metric_figures_say_the_direction_only_when_asked():
    df = results_frame()
    d = R.filter_protocol(df, "retrieval_acc")
    plain = F.fig_metric_by_layer(d, metric="retrieval_acc")
    assert plain.layout.yaxis.title.text == "retrieval_acc"  # the report's figures unchanged
    marked = F.fig_metric_by_layer(d, metric="retrieval_acc", direction="higher")
    assert marked.layout.yaxis.title.text == "retrieval_acc<br>(higher = better aligned)"
    heat = F.fig_language_heatmap(d, metric="sil", layer=1, direction="lower")
    assert heat.data[0].colorbar.title.text == "sil<br>(lower = better aligned)"
    diff = F.fig_difference(d, metric="m", before="before", after="after", direction="higher")
    assert diff.data[0].colorbar.title.text == "Δ m<br>(higher = better aligned)"


def test_layer_language_heatmap_cells_blanks_and_one_checkpoint():
    from xalign.errors import ConfigError
    from xalign.figures import fig_layer_language

    d = pd.DataFrame(
        {
            "checkpoint": "before",
            "metric": "neuron_specific_count",
            "layer": [1, 2, 1, 2, 1],
            "lang": ["deu", "deu", "eng", "eng", "cmn_Hani"],
            "lang2": None,
            "value": [3.0, 5.0, 0.0, 7.0, 2.0],
        }
    )
    fig = fig_layer_language(d, metric="neuron_specific_count", direction=None)
    h = fig.data[0]
    assert list(h.y) == ["deu", "eng", "cmn_Hani"] and list(h.x) == [1, 2]
    assert [list(r) for r in h.z] == [[3.0, 5.0], [0.0, 7.0], [2.0, None]]  # missing: blank
    assert [list(r) for r in h.text] == [["3", "5"], ["0", "7"], ["2", ""]]
    only = fig_layer_language(d, metric="m", langs=["eng", "deu"]).data[0]
    assert list(only.y) == ["eng", "deu"]
    with pytest.raises(ConfigError, match="2 checkpoints"):
        fig_layer_language(pd.concat([d, d.assign(checkpoint="after")]), metric="m")


def test_difference_of_counts_is_written_whole():
    d = pd.DataFrame(
        {
            "checkpoint": ["a", "a", "b", "b"],
            "metric": "neuron_specific_count",
            "layer": [1, 1, 1, 1],
            "lang": ["deu", "eng", "deu", "eng"],
            "lang2": None,
            "value": [3.0, 4.0, 5.0, 7.0],
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
    )
    h = F.fig_difference(d, metric="neuron_specific_count", before="a", after="b").data[0]
    assert [list(r) for r in h.text] == [["+2.500"], ["+2"], ["+3"]]  # mean row, deu, eng
    frac = F.fig_difference(d.assign(value=d["value"] / 8), metric="m", before="a", after="b")
    assert list(frac.data[0].text[1]) == ["+0.250"]
