"""The demo pipeline end to end on tiny models: extract → metrics → projections → report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from xalign.data import load_sample
    from xalign.extract import ExtractConfig, extract
    from xalign.metrics import MetricsConfig, compute_metrics
    from xalign.models import tiny_encoder
    from xalign.project import ProjectConfig, project_stores
    from xalign.report import build_report

    root = tmp_path_factory.mktemp("demo")
    corpus = load_sample(langs=["eng", "deu", "fra"]).select(limit_per_lang=16)
    stores = []
    for seed, label in ((0, "before"), (1, "after")):
        enc = tiny_encoder("xlmr", seed=seed, attn_implementation="eager")
        cfg = ExtractConfig(out=str(root / "runs" / label), label=label, tokens=True,
                            attentions="head-mean", progress=False)  # fmt: skip
        extract(cfg, corpus=corpus, encoder=enc)
        stores.append(str(root / "runs" / label))
    results = compute_metrics(MetricsConfig(stores=stores, metrics=["retrieval", "clusters"],
                                            bootstrap=0, progress=False))  # fmt: skip
    res_path = root / "results.parquet"
    results.to_parquet(res_path, index=False)
    project_stores(ProjectConfig(stores=stores, methods=["pca"], progress=False))
    summary = build_report(
        res_path,
        stores_root=root / "runs",
        out=root / "report",
        metrics=["retrieval_acc_mean", "language_silhouette"],
        focus_layers="2",
        dpi=192,
    )
    return root, results, summary


def test_pipeline_writes_every_kind_of_output(pipeline):
    root, _, s = pipeline
    out = root / "report"
    for name in ("report.md", "report.html", "provenance.json"):
        assert (out / name).is_file()
    assert s.compare == ("before", "after")
    tables = {p.stem for p in (out / "tables").glob("*.tex")}
    assert {"metric_by_layer-before", "metric_by_layer-after", "before_after"} <= tables
    assert any(t.startswith("retrieval_by_language-L") for t in tables)
    assert {p.stem for p in (out / "tables").glob("*.csv")} == tables
    figs = set(s.figures)
    assert {"curve-retrieval_acc_mean", "curve-language_silhouette",
            "difference-retrieval_acc_mean", "clusters-L2", "attention-before-L2",
            "alignment-after-L2"} <= figs  # fmt: skip
    # retrieval pairs every language with eng only: a language x language heatmap would be
    # mostly blank, so there is none
    assert not any(f.startswith("heatmap") for f in figs)
    for spec in s.figures.values():
        assert (out / "figures" / f"{spec.name}.html").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert [st["checkpoint"] for st in prov["stores"]] == ["before", "after"]
    from xalign.store import Store

    for st in prov["stores"]:
        assert st["corpus_fingerprint"] == Store.open(st["path"]).corpus["fingerprint"]
        assert len(st["manifest_sha256"]) == 64
    html = (out / "report.html").read_text()
    assert "<script src=" not in html  # self-contained: plotly.js inline
    assert html.count("<figure>") == len(s.figures)


def test_cluster_figure_shows_the_cached_projection(pipeline):
    from xalign.project import load_projection
    from xalign.store import Store

    root, _, s = pipeline
    layer = s.focus_layers[0]
    fig = s.figures[f"clusters-L{layer}"].figure
    for axis, label in (("x", "before"), ("x2", "after")):
        store = Store.open(root / "runs" / label)
        coords = load_projection(store, layer=layer, method="pca")
        langs = store.rows["lang"].to_numpy()[coords["row"].to_numpy()]
        for lang in ("eng", "deu", "fra"):
            trace = next(t for t in fig.data if t.xaxis == axis and t.name == lang)
            sel = coords[langs == lang]
            np.testing.assert_allclose(np.asarray(trace.x, float), sel["x"], rtol=1e-6)
            np.testing.assert_allclose(np.asarray(trace.y, float), sel["y"], rtol=1e-6)
    assert "share one fit" in s.figures[f"clusters-L{layer}"].caption


def test_before_after_table_matches_results(pipeline):
    _, results, s = pipeline
    t = s.tables["before_after"]
    r = results[(results["metric"] == "retrieval_acc_mean")
                & results["protocol"].str.contains('"centered":false')
                & results["protocol"].str.contains('"scoring":"cosine"')]  # fmt: skip
    layer = s.focus_layers[0]
    rec = t.data[(t.data["section"] == f"layer {layer}")
                 & (t.data["metric"] == "retrieval_acc_mean")].iloc[0]  # fmt: skip
    for col in ("before", "after"):
        want = r[(r["checkpoint"] == col) & (r["layer"] == layer)]["value"].mean()
        assert rec[col] == pytest.approx(want)
    assert isinstance(t.data, pd.DataFrame)


@pytest.mark.browser
def test_static_figures_are_valid(pipeline, helpers):
    root, _, s = pipeline
    if not s.static:
        pytest.skip(f"no browser for kaleido here: {s.static_message}")
    figs = root / "report" / "figures"
    for spec in s.figures.values():
        pdf, svg, png = (figs / f"{spec.name}.{ext}" for ext in ("pdf", "svg", "png"))
        assert helpers.pdf_pages(pdf) == 1, pdf
        assert helpers.png_size(png) == (spec.width * 2, spec.height * 2)  # 192 dpi
        tree = ET.parse(svg).getroot()
        assert tree.get("width") == str(spec.width) and tree.get("height") == str(spec.height)
        assert b"/CreationDate (D:20000101000000" in pdf.read_bytes()
    md = (root / "report" / "report.md").read_text()
    assert "![Figure 1](figures/" in md and ".png)" in md


@pytest.mark.browser
def test_static_export_is_reproducible_and_pdfs_are_not_cropped(pipeline, tmp_path):
    import plotly.graph_objects as go

    from xalign.report import export_figures

    root, _, s = pipeline
    if not s.static:
        pytest.skip(f"no browser for kaleido here: {s.static_message}")
    spec = s.figures["attention-after-L2"]  # heatmaps, colour bar, subplot titles
    # a full-bleed figure: the plot area (green) covers the whole figure
    bleed = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="markers", marker={"size": 1}))
    bleed.update_layout(margin={"l": 0, "r": 0, "t": 0, "b": 0}, paper_bgcolor="#FF0000",
                        plot_bgcolor="#00FF00")  # fmt: skip
    bleed.update_xaxes(visible=False, range=[0, 1])
    bleed.update_yaxes(visible=False, range=[0, 1])
    res = export_figures(
        [(spec.figure, tmp_path / spec.name, spec.width, spec.height),
         (bleed, tmp_path / "bleed", 312, 240)],
        scale=2,
    )  # fmt: skip
    assert res.skipped is None and len(res.files) == 6
    for p in res.files:
        if p.stem == spec.name:
            assert p.read_bytes() == (root / "report" / "figures" / p.name).read_bytes(), p.name
    import pymupdf

    with pymupdf.open(tmp_path / "bleed.pdf") as doc:
        pix = doc[0].get_pixmap(dpi=96, colorspace=pymupdf.csRGB, alpha=False)
    w, h = pix.width, pix.height
    rgb = np.frombuffer(pix.samples, dtype=np.uint8).reshape(h, w, 3)
    green = (rgb[..., 0] < 60) & (rgb[..., 1] > 200)
    assert (w, h) == (312, 240)
    # kaleido 1.x prints with 0.1 in margins (figure shifted, right/bottom cut off) unless
    # the export removes them: the whole page must be the figure's plot area
    assert green[1:-1, 1:-1].all()
