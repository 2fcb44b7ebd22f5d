"""Report averages use every row of a metric and say what they leave out (issue 11, class 7).

Per-pair counts in the protocol (BUCC distractors, sample sizes) never split an average; NaN
values left out are counted in the captions; real protocol choices still split; bands stay
inside the metric's range and say what they are.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xalign.report import build_report, metric_range
from xalign.results import layer_means, select_rows

COLUMNS = ["store", "checkpoint", "metric", "layer", "lang", "lang2", "value", "n", "ci_low",
           "ci_high", "protocol"]  # fmt: skip
F1 = {"cmn_Hani": 0.80, "deu": 0.90, "fra": 0.85, "swh": 0.30}
DISTRACTORS = {"cmn_Hani": 500, "deu": 500, "fra": 500, "swh": 195}


def _proto(**kw) -> str:
    return json.dumps(kw, sort_keys=True, separators=(",", ":"))


def tatoeba_bucc(*, nan: tuple[str, int] | None = None) -> pd.DataFrame:
    """A 4-language Tatoeba store's BUCC F1 rows, as python -m xalign.metrics writes them:
    Swahili has 195 distractors, the others 500; raw and centred variants."""
    recs = []
    for layer in range(4):
        for lang, f1 in F1.items():
            for centered in (False, True):
                v = f1 + 0.01 * layer + (0.05 if centered else 0.0)
                if nan == (lang, layer) and not centered:
                    v = np.nan
                p = _proto(center=False, centered=centered, k=4, margin="ratio",
                           n_distractors=DISTRACTORS[lang], pooling="mean", seed=0,
                           held_out_fraction=0.2, units="fraction")  # fmt: skip
                recs.append(["runs/tatoeba", "e5", "bucc_f1", layer, lang, "eng", v, 400,
                             np.nan, np.nan, p])  # fmt: skip
    return pd.DataFrame(recs, columns=COLUMNS).astype({"lang": object, "lang2": object})


def _report(df, tmp_path, **kw):
    return build_report(df, out=tmp_path / "r", figure_formats=(), formats=("md",), **kw)


def test_bucc_average_uses_every_pair_whatever_its_distractor_count(tmp_path):
    s = _report(tatoeba_bucc(), tmp_path, metrics=["bucc_f1"])
    t = s.tables["metric_by_layer-e5"]
    for layer in range(4):
        want = np.mean([v + 0.01 * layer for v in F1.values()])
        got = t.data.loc[t.data["layer"] == layer, "bucc_f1"].iloc[0]
        assert got == pytest.approx(want)  # not Swahili's 0.30 alone
    assert "the mean over 4 language pair rows" in t.note
    assert "16 used" in t.note and "no NaN left out" in t.note
    assert "16 rows under other protocol variants not used (centered=true: 16)" in t.note
    assert "n_distractors differs between rows by construction" in t.note
    cap = s.figures["curve-bucc_f1"].caption
    assert "the mean over 4 language pair rows" in cap and "1 language pair" not in cap
    fig = s.figures["curve-bucc_f1"].figure
    line = next(tr for tr in fig.data if tr.fill != "toself")
    assert list(line.y) == pytest.approx(t.data["bucc_f1"].tolist())


def test_nan_values_left_out_are_counted_and_named(tmp_path):
    s = _report(tatoeba_bucc(nan=("deu", 2)), tmp_path, metrics=["bucc_f1"])
    t = s.tables["metric_by_layer-e5"]
    got = t.data.set_index("layer")["bucc_f1"]
    assert got[2] == pytest.approx(np.mean([F1[x] + 0.02 for x in ("cmn_Hani", "fra", "swh")]))
    assert got[1] == pytest.approx(np.mean([v + 0.01 for v in F1.values()]))
    for text in (t.note, s.figures["curve-bucc_f1"].caption):
        assert "1 NaN value left out (deu–eng at layer 2)" in text
        assert "15 used" in text
        assert "the mean over 3 to 4 language pair rows (the count differs by layer)" in text
    caps = [f.caption for n, f in s.figures.items() if n.startswith("curve-languages")]
    assert caps and all("1 NaN value left out" in c for c in caps)
    md = (tmp_path / "r" / "report.md").read_text()
    assert "1 NaN value left out (deu–eng at layer 2)" in md


def test_a_metric_with_only_nan_rows_is_left_out_with_the_reason(tmp_path):
    df = tatoeba_bucc()
    df.loc[df["protocol"].str.contains('"centered":false'), "value"] = np.nan
    df2 = pd.concat([df, tatoeba_bucc().assign(metric="bucc_precision")], ignore_index=True)
    s = _report(df2, tmp_path, metrics=["bucc_f1", "bucc_precision"])
    assert any("bucc_f1: all 16 rows under the chosen protocol are NaN" in n for n in s.notes)


def test_real_protocol_choices_still_split_and_unknown_keys_follow_the_data():
    df = tatoeba_bucc()
    sel = select_rows(df, "bucc_f1", {"centered": "true"})
    assert len(sel.rows) == 16 and set(sel.other) == {"centered=false"}
    # an unknown key with several values in one cell is a choice; one that only differs
    # between cells (here per language) is per-row data
    two = pd.concat([df.assign(protocol=df["protocol"].str.replace("{", '{"newopt":1,')),
                     df.assign(protocol=df["protocol"].str.replace("{", '{"newopt":2,'))])  # fmt: skip
    sel = select_rows(two, "bucc_f1", {})
    assert sel.applied["newopt"] == "1" and len(sel.rows) == 16
    assert sel.other == {"centered=true": 32, "newopt=2": 16}
    per_lang = df.copy()
    per_lang["protocol"] = [p.replace("{", f'{{"n_test":{len(lang)},')
                            for p, lang in zip(df["protocol"], df["lang"], strict=True)]  # fmt: skip
    sel = select_rows(per_lang, "bucc_f1", {})
    assert len(sel.rows) == 16 and "n_test" in sel.per_row and "n_distractors" in sel.per_row


def test_second_axis_keys_read_the_diagonal():
    recs = []
    for layer in range(3):
        for other in range(3):
            recs.append(["runs/a", "a", "cka_between_stores", layer, None, None,
                         1.0 if layer == other else 0.2, 10, np.nan, np.nan,
                         _proto(other_layer=other, other_checkpoint="b")])  # fmt: skip
    df = pd.DataFrame(recs, columns=COLUMNS)
    sel = select_rows(df, "cka_between_stores", {})
    assert sel.rows["value"].tolist() == [1.0, 1.0, 1.0]
    assert sel.other == {"other_layer ≠ layer": 6}


def test_bands_stay_inside_the_metric_range_and_are_named(tmp_path):
    recs = []
    for layer in range(3):
        for lang, v in (("deu", 1.0), ("fra", 0.97), ("swh", 0.80)):
            recs.append(["runs/x", "x", "retrieval_acc_mean", layer, lang, "eng", v, 50,
                         np.nan, np.nan, _proto(centered=False, scoring="cosine")])  # fmt: skip
    df = pd.DataFrame(recs, columns=COLUMNS)
    m = layer_means(df, metric_range("retrieval_acc_mean"))
    assert (m["ci_high"] <= 1.0).all() and m["clipped"].all()
    unclipped = layer_means(df)
    assert (unclipped["ci_high"] > 1.0).all()  # the band the figure drew before
    s = _report(df, tmp_path, metrics=["retrieval_acc_mean"])
    f = s.figures["curve-retrieval_acc_mean"]
    band = [tr for tr in f.figure.data if tr.fill == "toself"]
    assert band and max(band[0].y) <= 1.0 and min(band[0].y) >= 0.0
    assert "95% CI" in band[0].name
    assert "normal-approximation 95% CI of the mean" in f.caption
    assert "clipped to the metric's range [0, 1] at 3 layers" in f.caption


def test_values_outside_the_range_are_reported(tmp_path):
    df = tatoeba_bucc()
    df.loc[(df["lang"] == "fra") & (df["layer"] == 3), "value"] = 1.7
    s = _report(df, tmp_path, metrics=["bucc_f1"])
    assert any("outside the metric's range [0, 1] (fra–eng at layer 3)" in n for n in s.notes)
