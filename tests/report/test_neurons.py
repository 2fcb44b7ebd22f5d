"""The report's neuron section: language-specific neurons by layer (table), the language × layer
heatmap, the overlap matrix at the busiest layer, the before/after change and stability."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from xalign.report import build_report
from xalign.report._tables import to_latex, to_markdown
from xalign.results import RESULTS_COLUMNS, protocol_json

LANGS = ("eng", "deu", "cmn_Hans")
LAYERS = (1, 2, 3)
F = 64
#: Language-specific neurons per (checkpoint, language): one count per layer 1, 2, 3.
COUNTS = {
    ("before", "eng"): (2, 0, 5),
    ("before", "deu"): (1, 1, 4),
    ("before", "cmn_Hans"): (0, 2, 6),  # layer totals 3, 3, 15: busiest layer 3
    ("after", "eng"): (5, 1, 2),
    ("after", "deu"): (4, 0, 1),
    ("after", "cmn_Hans"): (3, 2, 2),  # layer totals 12, 3, 5: busiest layer 1
}
SHARED = {"before": (10, 7, 2), "after": (11, 8, 4)}
THRESHOLDS = {"before": (0.41, 0.43), "after": (0.37, 0.39)}  # filter_value, bar_value


def jaccard(ckpt: str, layer: int, a: str, b: str) -> float:
    """A distinct overlap per checkpoint, layer and pair."""
    i, j = LANGS.index(a), LANGS.index(b)
    return round(0.1 * layer + 0.01 * (i + j) + (0.3 if ckpt == "after" else 0.0), 4)


def stability(layer: int, lang: str) -> float:
    return round(0.2 * layer + 0.05 * LANGS.index(lang), 4)


def neuron_table(*, top_rate: float = 0.01) -> pd.DataFrame:
    """Rows of the ``neurons`` metrics group for two checkpoints, 3 languages, 3 blocks."""
    recs = []

    def add(ckpt, metric, layer, lang, lang2, value, n, proto):
        recs.append({"store": f"runs/{ckpt}", "checkpoint": ckpt, "metric": metric,
                     "layer": layer, "lang": lang, "lang2": lang2, "value": float(value),
                     "n": float(n), "ci_low": np.nan, "ci_high": np.nan,
                     "protocol": protocol_json(proto)})  # fmt: skip

    for ckpt in ("before", "after"):
        base = {"selection": "lape", "top_rate": top_rate, "filter_rate": 0.95,
                "bar_rate": 0.95, "tokens": "content", "activation": "> 0",
                "languages": len(LANGS)}  # fmt: skip
        fv, bv = THRESHOLDS[ckpt]
        thr = {**base, "filter_value": fv, "bar_value": bv}
        for li, layer in enumerate(LAYERS):
            add(ckpt, "neuron_lape_mean", layer, None, None, 0.5 + 0.1 * li, F,
                {"tokens": "content", "activation": "> 0", "languages": len(LANGS)})  # fmt: skip
            add(ckpt, "neuron_shared_count", layer, None, None, SHARED[ckpt][li], F,
                {**thr, "shared_fraction": 1.0})  # fmt: skip
            for lang in LANGS:
                count = COUNTS[(ckpt, lang)][li]
                add(ckpt, "neuron_activation_prob", layer, lang, None, 0.3, 120,
                    {"tokens": "content", "activation": "> 0"})  # fmt: skip
                add(ckpt, "neuron_specific_count", layer, lang, None, count, F, thr)
                add(ckpt, "neuron_specific_share", layer, lang, None, count / F, F, thr)
            for a, b in combinations(LANGS, 2):
                add(
                    ckpt, "neuron_specific_jaccard", layer, a, b, jaccard(ckpt, layer, a, b), F, thr
                )
    change = {**base, "other_checkpoint": "before", "other_store": "runs/before"}
    for li, layer in enumerate(LAYERS):
        for lang in LANGS:
            diff = COUNTS[("after", lang)][li] - COUNTS[("before", lang)][li]
            add("after", "neuron_specific_change", layer, lang, None, diff, F, change)
            add("after", "neuron_specific_stability", layer, lang, None, stability(layer, lang),
                F, change)  # fmt: skip
    return pd.DataFrame(recs, columns=list(RESULTS_COLUMNS)).astype({"lang": object,
                                                                      "lang2": object})  # fmt: skip


@pytest.fixture(scope="module")
def neuron_report(tmp_path_factory):
    df = neuron_table()
    out = tmp_path_factory.mktemp("neuron-report") / "r"
    return df, build_report(df, out=out, figure_formats=())


def _row_cells(t, label):
    return [[c.text for c in r] for r in t.rows if not isinstance(r, str) and r[0].text == label]


def test_table_cells_are_the_input_counts_with_a_shared_row(neuron_report):
    _, s = neuron_report
    assert s.metrics == [] and "neurons_by_layer" in s.tables
    assert s.neuron_metrics[:1] and "neuron_specific_count" in s.neuron_metrics
    t = s.tables["neurons_by_layer"]
    assert t.header == ["Language", "1", "2", "3", "Total"]
    assert t.groups == [("", 1), ("Layer", 3), ("", 1)]
    # one block per checkpoint, each opened by a section row and closed by the shared row
    sections = [r for r in t.rows if isinstance(r, str)]
    assert sections == ["Checkpoint before", "Checkpoint after"]
    shared_rows = [r for r in t.rows if not isinstance(r, str) and r[0].text == "Shared"]
    assert [[c.text for c in r[1:]] for r in shared_rows] == [
        ["10", "7", "2", "19"], ["11", "8", "4", "23"]]  # fmt: skip
    d = t.data
    for (ckpt, lang), counts in COUNTS.items():
        rec = d[(d["checkpoint"] == ckpt) & (d["row"] == "specific") & (d["lang"] == lang)]
        assert len(rec) == 1
        got = [float(rec[f"layer_{x}"].iloc[0]) for x in LAYERS]
        assert got == [float(x) for x in counts] and float(rec["total"].iloc[0]) == sum(counts)
    for ckpt, counts in SHARED.items():
        rec = d[(d["checkpoint"] == ckpt) & (d["row"] == "shared")]
        assert [float(rec[f"layer_{x}"].iloc[0]) for x in LAYERS] == [float(x) for x in counts]
    # the cells as text: whole numbers, bold at each language's busiest layer
    block = t.rows[1:5]  # before: eng, deu, cmn_Hans, shared
    assert [c.text for c in block[0][1:]] == ["2", "0", "5", "7"]
    assert [c.bold for c in block[0][1:]] == [False, False, True, False]
    assert block[2][0].text.endswith("(cmn_Hans)")
    assert not any(c.bold for c in block[3])
    # the shared rows and the second block are set off by rules
    assert {t.rows.index(r) for r in shared_rows} | {5} <= t.rules


def test_caption_states_the_selection_and_thresholds(neuron_report):
    _, s = neuron_report
    t = s.tables["neurons_by_layer"]
    assert "Tang et al. (2024)" in t.caption and "LAPE" in t.caption
    assert "1% (top_rate)" in t.caption
    assert "0.95 (filter_rate)" in t.caption and "0.95 (bar_rate)" in t.caption
    assert "filter_value = 0.41, bar_value = 0.43 (before)" in t.note
    assert "filter_value = 0.37, bar_value = 0.39 (after)" in t.note
    assert f"{F} feed-forward neurons per layer" in t.note
    assert "every language" in t.caption


def test_latex_and_markdown(neuron_report):
    _, s = neuron_report
    t = s.tables["neurons_by_layer"]
    tex = to_latex(t)
    for rule in ("\\toprule", "\\midrule", "\\bottomrule", "\\cmidrule(lr){2-4}"):
        assert rule in tex
    assert "\\multicolumn{3}{c}{Layer}" in tex
    assert "(cmn\\_Hans)" in tex and "cmn_Hans" not in tex
    assert "\\textit{Checkpoint before}" in tex and "\\textbf{5}" in tex
    assert tex.count("{") == tex.count("}")
    body = tex.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    for line in body.splitlines():
        if line.strip().endswith("\\\\") and "multicolumn" not in line:
            assert line.count("&") == t.ncols - 1, line
    assert (s.out / "tables" / "neurons_by_layer.tex").read_text("utf-8") == tex
    md = to_markdown(t)
    assert "| Language | Layer 1 | Layer 2 | Layer 3 | Total |" in md
    assert "| Shared | 10 | 7 | 2 | 19 |" in md
    assert "| English (eng) | 2 | 0 | **5** | 7 |" in md
    report_md = (s.out / "report.md").read_text("utf-8")
    assert "Language-specific feed-forward neurons (Tang et al. 2024" in report_md
    assert "tables/neurons_by_layer.tex" in report_md
    csv = pd.read_csv(s.out / "tables" / "neurons_by_layer.csv")
    assert list(csv.columns) == ["checkpoint", "row", "lang", "layer_1", "layer_2", "layer_3",
                                 "total"]  # fmt: skip


def test_layer_language_heatmaps(neuron_report):
    _, s = neuron_report
    for ckpt in ("before", "after"):
        hm = s.figures[f"neurons-{ckpt}"].figure.data[0]
        assert list(hm.y) == list(LANGS) and list(hm.x) == list(LAYERS)
        assert [list(r) for r in hm.z] == [[float(v) for v in COUNTS[(ckpt, x)]] for x in LANGS]
        assert list(hm.text[0]) == [str(v) for v in COUNTS[(ckpt, LANGS[0])]]  # integers
    cap = s.figures["neurons-before"].caption
    assert "checkpoint before" in cap and "Tang et al. (2024)" in cap


def test_overlap_matrix_at_the_busiest_layer(neuron_report):
    _, s = neuron_report
    assert set(s.figures) >= {"neuron-overlap-before-L3", "neuron-overlap-after-L1"}
    for ckpt, layer in (("before", 3), ("after", 1)):
        spec = s.figures[f"neuron-overlap-{ckpt}-L{layer}"]
        hm = spec.figure.data[0]
        assert (hm.zmin, hm.zmax) == (0, 1)
        pos = {x: i for i, x in enumerate(hm.x)}
        assert set(pos) == set(LANGS)
        z = np.array(hm.z, dtype=float)
        for a, b in combinations(LANGS, 2):
            want = jaccard(ckpt, layer, a, b)
            assert z[pos[a], pos[b]] == pytest.approx(want)
            assert z[pos[b], pos[a]] == pytest.approx(want)  # mirrored
        assert np.isnan(np.diag(z)).all()
        assert f"at layer {layer}, the layer with the most" in spec.caption


def test_before_after_difference_and_stability(neuron_report):
    _, s = neuron_report
    assert s.compare == ("before", "after")
    hm = s.figures["neuron-difference"].figure.data[0]
    assert list(hm.y) == ["mean", *LANGS]
    want = np.array([[a - b for a, b in zip(COUNTS[("after", x)], COUNTS[("before", x)],
                                            strict=True)] for x in LANGS], dtype=float)  # fmt: skip
    np.testing.assert_allclose(np.array(hm.z[1:], dtype=float), want)
    np.testing.assert_allclose(np.array(hm.z[0], dtype=float), want.mean(axis=0))
    st = s.figures["neuron-stability-before-after"]
    z = np.array(st.figure.data[0].z, dtype=float)
    np.testing.assert_allclose(z, [[stability(x, lang) for x in LAYERS] for lang in LANGS])
    assert "other_checkpoint = before" in st.caption
    # figures are listed in the documents with their captions
    md = (s.out / "report.md").read_text("utf-8")
    html = (s.out / "report.html").read_text("utf-8")
    for name, spec in s.figures.items():
        assert f"figures/{name}.html" in md
        assert spec.caption.split(":")[0] in md and f"fig-{name}" in html


def test_no_compare_no_difference(tmp_path):
    df = neuron_table()
    s = build_report(df, out=tmp_path / "r", checkpoints="after", figure_formats=())
    assert set(s.figures) == {"neurons-after", "neuron-overlap-after-L1"}
    t = s.tables["neurons_by_layer"]
    assert not any(isinstance(r, str) for r in t.rows)  # one checkpoint: no section rows
    assert "checkpoint after:" in t.caption


def test_no_neuron_section_without_neuron_rows(results_factory, tmp_path):
    s = build_report(results_factory(), out=tmp_path / "r", figure_formats=())
    assert s.neuron_metrics == []
    assert not any(n.startswith("neuron") for n in [*s.tables, *s.figures])
    md = (s.out / "report.md").read_text("utf-8")
    assert "Language-specific" not in md and "LAPE" not in md
    prov = json.loads((s.out / "provenance.json").read_text("utf-8"))
    assert "neuron_metrics" not in prov["report"]


def test_neuron_rows_beside_alignment_metrics_change_nothing_else(results_factory, tmp_path):
    base = results_factory()
    both = pd.concat([base, neuron_table()], ignore_index=True)
    a = build_report(base, out=tmp_path / "a", figures=False)
    b = build_report(both, out=tmp_path / "b", figures=False)
    assert a.metrics == b.metrics and a.focus_layers == b.focus_layers
    assert list(b.tables) == [*a.tables, "neurons_by_layer"]
    for name in a.tables:
        assert (a.out / "tables" / f"{name}.tex").read_bytes() == (
            b.out / "tables" / f"{name}.tex"
        ).read_bytes()
    prov = json.loads((b.out / "provenance.json").read_text("utf-8"))
    assert "neuron_specific_count" in prov["report"]["neuron_metrics"]
    assert not any(m.startswith("neuron") for m in prov["report"]["metrics"])


def test_metrics_option_chooses_the_neuron_views(tmp_path):
    df = neuron_table()
    s = build_report(df, out=tmp_path / "r", metrics="neuron_specific_jaccard",
                     figure_formats=())  # fmt: skip
    assert s.tables == {} and s.neuron_metrics == ["neuron_specific_jaccard"]
    assert set(s.figures) == {"neuron-overlap-before-L3", "neuron-overlap-after-L1"}


def test_langs_and_layers_restrict_the_table(tmp_path):
    df = neuron_table()
    s = build_report(df, out=tmp_path / "r", langs="deu,eng", layers="2-3", figures=False)
    t = s.tables["neurons_by_layer"]
    assert t.header == ["Language", "2", "3", "Total"]
    labels = [r[0].text for r in t.rows if not isinstance(r, str)]
    assert labels == ["German (deu)", "English (eng)", "Shared"] * 2


def test_protocol_chooses_the_rates(tmp_path):
    other = neuron_table(top_rate=0.02)
    other = other[other["protocol"].str.contains('"top_rate"')]
    df = pd.concat([neuron_table(top_rate=0.01), other], ignore_index=True)
    doubled = df["metric"] == "neuron_specific_count"
    df.loc[doubled & df["protocol"].str.contains('"top_rate":0.02'), "value"] += 100
    s = build_report(df, out=tmp_path / "a", figures=False)
    t = s.tables["neurons_by_layer"]
    assert "1% (top_rate)" in t.caption and "top_rate=0.02: " in t.note
    assert float(t.data["layer_1"].iloc[0]) == 2.0
    s = build_report(df, out=tmp_path / "b", figures=False, protocol="top_rate=0.02")
    t = s.tables["neurons_by_layer"]
    assert "2% (top_rate)" in t.caption and float(t.data["layer_1"].iloc[0]) == 102.0


# ------------------------------------------------------------------ end to end, real rows


@pytest.fixture(scope="module")
def real_neuron_rows(tiny_bert, tmp_path_factory):
    """Rows of ``neuron_rows`` from two tiny stores (the same corpus, two random models)."""
    pytest.importorskip("torch")
    from xalign.data import Corpus
    from xalign.extract import ExtractConfig, extract
    from xalign.metrics import neuron_change_rows, neuron_rows
    from xalign.models import tiny_encoder

    texts = {
        "eng": ["The cat sleeps on the warm mat.", "Rain again today.", "My brother reads.",
                "The shop opens at nine.", "Bread is on the table."],
        "deu": ["Die Katze schläft auf der Matte.", "Heute regnet es.", "Mein Bruder liest.",
                "Der Laden öffnet um neun.", "Brot liegt auf dem Tisch."],
        "rus": ["Кошка спит на коврике.", "Сегодня дождь.", "Мой брат читает.",
                "Магазин открывается в девять.", "Хлеб на столе."],
    }  # fmt: skip
    corpus = Corpus.from_records(
        [{"id": f"{g}:{i}", "lang": g, "text": t, "group": str(i)}
         for g, ts in texts.items() for i, t in enumerate(ts)],
        name="tiny-neurons",
    )  # fmt: skip
    root = tmp_path_factory.mktemp("neuron-stores")
    stores = {}
    for label, enc in (("before", tiny_bert), ("after", tiny_encoder("bert", seed=1))):
        cfg = ExtractConfig(out=str(root / label), neurons=True, chunk_rows=5, progress=False,
                            model="tiny", label=label)  # fmt: skip
        stores[label], _ = extract(cfg, corpus=corpus, encoder=enc)
    rows = [*neuron_rows(stores["before"], label="before", top_rate=0.1),
            *neuron_rows(stores["after"], label="after", top_rate=0.1),
            *neuron_change_rows(stores["before"], stores["after"], before_label="before",
                                after_label="after", top_rate=0.1)]  # fmt: skip
    return pd.DataFrame(rows, columns=list(RESULTS_COLUMNS))


def test_report_from_real_neuron_rows(real_neuron_rows, tmp_path):
    df = real_neuron_rows
    s = build_report(df, out=tmp_path / "r", figure_formats=())
    t = s.tables["neurons_by_layer"]
    counts = df[df["metric"] == "neuron_specific_count"]
    for rec in t.data[t.data["row"] == "specific"].itertuples():
        want = counts[(counts["checkpoint"] == rec.checkpoint) & (counts["lang"] == rec.lang)]
        want = want.set_index("layer")["value"]
        assert [getattr(rec, f"layer_{x}") for x in want.index] == want.tolist()
    shared = df[df["metric"] == "neuron_shared_count"]
    for rec in t.data[t.data["row"] == "shared"].itertuples():
        want = shared[shared["checkpoint"] == rec.checkpoint].set_index("layer")["value"]
        assert [getattr(rec, f"layer_{x}") for x in want.index] == want.tolist()
    assert {"neurons-before", "neurons-after", "neuron-difference"} <= set(s.figures)
    assert any(n.startswith("neuron-stability") for n in s.figures)


def test_other_neuron_metrics_are_shown_like_any_metric_when_named(tmp_path):
    df = neuron_table()
    s = build_report(df, out=tmp_path / "r", metrics="neuron_lape_mean,neuron_specific_count",
                     figures=False)  # fmt: skip
    assert s.metrics == ["neuron_lape_mean"] and s.neuron_metrics == ["neuron_specific_count"]
    t = s.tables["metric_by_layer-before"]
    np.testing.assert_allclose(t.data["neuron_lape_mean"], [0.5, 0.6, 0.7])
    assert "neurons_by_layer" in s.tables


def test_neuron_table_compiles_with_pdflatex(tmp_path, helpers):
    import shutil
    import subprocess

    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not found: apt-get install texlive-latex-recommended to run it")
    df = neuron_table()
    df["checkpoint"] = df["checkpoint"].map({"before": "base_v1 #1", "after": "ft & 50% {x}"})
    s = build_report(df, out=tmp_path / "r", figures=False)
    tex = s.out / "tables" / "neurons_by_layer.tex"
    assert "\\textit{Checkpoint ft \\& 50\\% \\{x\\}}" in tex.read_text("utf-8")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                   f"\\input{{{tex.as_posix()}}}\n\\end{{document}}\n", encoding="utf-8")  # fmt: skip
    run = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", doc.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert run.returncode == 0, log[-3000:]
    assert "! " not in log and "Undefined control sequence" not in log
    assert helpers.pdf_pages(tmp_path / "doc.pdf") == 1
