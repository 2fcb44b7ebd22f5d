"""The dashboard's callbacks, called directly on a small real root (no browser)."""

from __future__ import annotations

import base64
import shutil

import numpy as np
import pandas as pd
import pytest

from dashboards._catalog import Catalog
from dashboards._views import (
    alignment_view,
    cluster_panel,
    lasso_rows,
    metric_views,
    neighbours,
    selection_from_click,
)
from dashboards.app import update_clusters
from xalign.project import load_projection
from xalign.store import Store

ARGS = {
    "store_a": "before",
    "store_b": "after",
    "pooling": "mean",
    "method": "pca",
    "langs": None,
    "selection": None,
    "lasso": None,
}


@pytest.fixture(scope="module")
def cat(dash_root):
    return Catalog(dash_root)


def decode(v):
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype="<f4")
    return v


def patch_ops(patch):
    return {
        tuple(op["location"]): op["params"]["value"] for op in patch.to_plotly_json()["operations"]
    }


def lang_xy(dash_root, store, layer, lang):
    df = load_projection(dash_root / store, layer=layer)
    rows = Store.open(dash_root / store).rows
    df = df.merge(rows[["row", "lang"]], on="row")
    d = df[df["lang"] == lang]
    return d["x"].to_numpy(np.float32), d["y"].to_numpy(np.float32), d["row"].tolist()


def test_full_render_plots_the_cached_coordinates(cat, dash_root):
    fa, fb, msg, state = update_clusters(cat, **ARGS, layer=1, state=None, triggered=set())
    assert msg is None
    assert state["a"]["fit_id"] == state["b"]["fit_id"]  # one shared fit, before and after
    for fig, store in ((fa, "before"), (fb, "after")):
        assert fig.layout.title.text == f"{store} · layer 1"
        for t in fig.data[:5]:
            x, y, rows = lang_xy(dash_root, store, 1, t.name)
            np.testing.assert_array_equal(t.x, x)
            np.testing.assert_array_equal(t.y, y)
            assert list(t.customdata) == rows
        assert [t.name for t in fig.data[:5]] == ["eng", "deu", "fra", "rus", "cmn_Hans"]


def test_layer_move_patches_coordinates(cat, dash_root):
    *_, state = update_clusters(cat, **ARGS, layer=0, state=None, triggered=set())
    fa, fb, _, new_state = update_clusters(
        cat, **ARGS, layer=2, state=state, triggered={"layer.value"}
    )
    assert type(fa).__name__ == "Patch" and type(fb).__name__ == "Patch"
    ops = patch_ops(fa)
    x, y, _ = lang_xy(dash_root, "before", 2, "deu")
    np.testing.assert_array_equal(decode(ops[("data", 1, "x")]), x)
    np.testing.assert_array_equal(decode(ops[("data", 1, "y")]), y)
    x0, _, _ = lang_xy(dash_root, "before", 0, "deu")
    assert not np.allclose(x, x0)  # the layers really differ
    assert ops[("layout", "title", "text")] == "before · layer 2"
    ops_b = patch_ops(fb)
    xb, _, _ = lang_xy(dash_root, "after", 2, "eng")
    np.testing.assert_array_equal(decode(ops_b[("data", 0, "x")]), xb)
    assert new_state["a"]["layer"] == 2
    # a structural change (other pooling) or a stale state gets a full figure
    out = update_clusters(
        cat, **{**ARGS, "method": "tsne"}, layer=2, state=state, triggered={"method.value"}
    )
    assert type(out[0]).__name__ == "Figure"
    stale = {**state, "key": ["x"]}
    assert (
        type(
            update_clusters(cat, **ARGS, layer=2, state=stale, triggered={"layer.value"})[0]
        ).__name__
        == "Figure"
    )


def test_click_highlights_translations_in_both_panels(cat, dash_root):
    rows = cat.rows("before")
    r = int(rows.index[(rows["lang"] == "deu")][3])
    click = {"points": [{"curveNumber": 1, "pointIndex": 3, "customdata": r}]}
    sel = selection_from_click(cat, "before", click)
    assert sel["row"] == r and sel["lang"] == "deu" and sel["group"] == rows["group"].iloc[r]
    group_rows = rows.index[rows["group"] == sel["group"]].tolist()
    fa, fb, _, state = update_clusters(
        cat, **{**ARGS, "selection": sel}, layer=2, state=None, triggered=set()
    )
    proj = load_projection(dash_root / "before", layer=2).set_index("row")
    for fig in (fa, fb):
        links, hl, star = fig.data[-3:]
        assert sorted(hl.customdata) == sorted(group_rows)
        assert len(group_rows) == 5 and list(star.customdata) == [r]
        assert len(links.x) == 3 * (len(group_rows) - 1)
    # panel A's points sit at A's coordinates of those rows
    hl = fa.data[-2]
    for row, x, y in zip(hl.customdata, hl.x, hl.y, strict=True):
        assert (x, y) == pytest.approx((proj.loc[row, "x"], proj.loc[row, "y"]), abs=1e-6)
    # a later click is an overlay patch, not a new figure
    sel2 = selection_from_click(cat, "after", {"points": [{"customdata": group_rows[0] + 5}]})
    pa, _, _, _ = update_clusters(
        cat, **{**ARGS, "selection": sel2}, layer=2, state=state, triggered={"selection.data"}
    )
    n = len(fa.data)
    ops = patch_ops(pa)
    assert set(ops) == {("data", n - 3), ("data", n - 2), ("data", n - 1)}
    g2 = rows["group"].iloc[group_rows[0] + 5]
    assert sorted(ops[("data", n - 2)]["customdata"]) == rows.index[rows["group"] == g2].tolist()
    assert selection_from_click(cat, "before", {"points": [{}]}) is None
    assert selection_from_click(cat, "before", {"points": [{"customdata": 10**6}]}) is None


def test_lasso_selection_is_linked(cat):
    *_, state = update_clusters(cat, **ARGS, layer=1, state=None, triggered=set())
    picked = lasso_rows({"points": [{"customdata": 3}, {"customdata": 8}, {"customdata": 3}]})
    assert picked == [3, 8]
    pa, pb, _, _ = update_clusters(
        cat, **{**ARGS, "lasso": picked}, layer=1, state=state, triggered={"lasso.data"}
    )
    rows = cat.rows("before")
    for p in (pa, pb):
        ops = patch_ops(p)
        for i, lang in enumerate(["eng", "deu", "fra", "rus", "cmn_Hans"]):
            lang_rows = rows.index[rows["lang"] == lang].tolist()
            expect = [k for k, r in enumerate(lang_rows) if r in (3, 8)]
            assert ops[("data", i, "selectedpoints")] == expect
    assert lasso_rows(None) is None


def test_empty_states_say_what_to_run(cat, dash_root):
    p = cluster_panel(
        cat, "bare", layer=1, pooling="mean", method="pca", langs=None, display_root="runs"
    )
    assert p.message.endswith(
        "python -m xalign.project runs/bare --methods pca --layers all --pooling mean"
    )
    _, _, msg, _ = update_clusters(
        cat, **{**ARGS, "method": "umap"}, layer=1, state=None, triggered=set(), display_root="runs"
    )
    text = msg[0].children
    assert "python -m xalign.project runs/before runs/after --methods umap" in text
    v = alignment_view(cat, "bare", row_a=0, row_b=1, layer=1)
    assert v["attn_a"] is None and v["alignment"] is None
    assert "--tokens" in v["messages"][0] and "--attentions head-mean" in v["messages"][0]
    v = alignment_view(cat, "before", row_a=0, row_b=1, layer=0)
    assert any("layer 0 is the embedding output" in m for m in v["messages"])
    assert v["alignment"] is not None  # similarity still works at layer 0


def test_bad_store_value_is_an_error_message_not_data(cat):
    _, _, msg, state = update_clusters(
        cat, **{**ARGS, "store_a": "../secret"}, layer=1, state=None, triggered=set()
    )
    assert state is None and msg.children.startswith("error: '../secret'")
    assert "only paths below the dashboard root" in msg.children


def test_neighbours_match_numpy(cat, dash_root):
    s = Store.open(dash_root / "before")
    X = s.sentences(layer=2)
    rows = s.rows
    q = int(rows.index[rows["lang"] == "eng"][4])
    hits = neighbours(cat, "before", row=q, layer=2, pooling="mean", k=3)
    assert set(hits["lang"]) == {"deu", "fra", "rus", "cmn_Hans"}
    for lang, h in hits.groupby("lang"):
        tgt = rows.index[rows["lang"] == lang].to_numpy()
        u = X / np.linalg.norm(X, axis=1, keepdims=True)
        cos = u[tgt] @ u[q]
        top = tgt[np.argsort(-cos, kind="stable")[:3]]
        assert h["row"].tolist() == top.tolist()
        np.testing.assert_allclose(h["score"], np.sort(cos)[::-1][:3], atol=1e-6)
        gold = rows["group"].iloc[h["row"]].to_numpy() == rows["group"].iloc[q]
        assert h["gold"].tolist() == gold.tolist()
    # margin (ratio, k=4) against the formula written out in numpy
    src = rows.index[rows["lang"] == "eng"].to_numpy()
    tgt = rows.index[rows["lang"] == "deu"].to_numpy()
    u = X / np.linalg.norm(X, axis=1, keepdims=True)
    C = u[src] @ u[tgt].T
    fwd = np.sort(C, axis=1)[:, -4:].mean(1)
    bwd = np.sort(C, axis=0)[-4:, :].mean(0)
    qi = int(np.flatnonzero(src == q)[0])
    marg = C[qi] / ((fwd[qi] + bwd) / 2)
    h = neighbours(
        cat, "before", row=q, layer=2, pooling="mean", k=2, scoring="margin", langs=["deu"]
    )
    assert h["row"].tolist() == tgt[np.argsort(-marg)[:2]].tolist()
    np.testing.assert_allclose(h["score"], np.sort(marg)[::-1][:2], atol=1e-6)
    # CSLS (k=10) and centring give their own rankings, still with finite scores
    c = neighbours(
        cat,
        "before",
        row=q,
        layer=2,
        pooling="mean",
        k=2,
        scoring="csls",
        centering=True,
        langs=["deu"],
    )
    Xc = X.copy()
    for idx in (src, tgt):
        Xc[idx] = Xc[idx] - Xc[idx].mean(0)
    uc = Xc / np.linalg.norm(Xc, axis=1, keepdims=True)
    Cc = uc[src] @ uc[tgt].T
    k = min(10, len(tgt))
    rf = np.sort(Cc, axis=1)[:, -k:].mean(1)
    rb = np.sort(Cc, axis=0)[-min(10, len(src)) :, :].mean(0)
    cs = 2 * Cc[qi] - rf[qi] - rb
    assert c["row"].tolist() == tgt[np.argsort(-cs)[:2]].tolist()


def test_alignment_view_similarity_and_links(cat, dash_root, tmp_path):
    s = Store.open(dash_root / "before")
    rows = s.rows
    a = int(rows.index[rows["lang"] == "eng"][2])
    b = int(rows.index[(rows["lang"] == "deu") & (rows["group"] == rows["group"].iloc[a])][0])
    v = alignment_view(cat, "before", row_a=a, row_b=b, layer=2, method="argmax")
    assert v["messages"] == []
    att = np.array(v["attn_a"].data[0].z)
    np.testing.assert_allclose(att, s.attention(a, layer=2), atol=1e-6)
    assert list(v["attn_a"].layout.xaxis.ticktext) == s.row_tokens(a)["token"].tolist()
    # word vectors = mean of each word's token vectors (specials dropped), cosine matrix
    vec = {}
    for r in (a, b):
        H = s.token_hidden(r, layer=2)
        w = s.row_tokens(r)["word"].to_numpy()
        vec[r] = np.stack([H[w == k].mean(0) for k in range(w.max() + 1)])
    U = vec[a] / np.linalg.norm(vec[a], axis=1, keepdims=True)
    V = vec[b] / np.linalg.norm(vec[b], axis=1, keepdims=True)
    S = U @ V.T
    fig = v["alignment"]
    np.testing.assert_allclose(np.array(fig.data[0].z), S, atol=1e-6)
    assert list(fig.layout.yaxis.ticktext) == rows["text"].iloc[a].split()
    # predicted = mutual argmax, drawn at (x = target word, y = source word)
    mutual = {(i, int(S[i].argmax())) for i in range(len(S)) if S[:, S[i].argmax()].argmax() == i}
    assert set(v["links"]) == mutual
    pred = fig.data[1]
    assert sorted(zip(pred.y, pred.x, strict=True)) == sorted(mutual)


def test_gold_links_and_cross_attention_when_present(dash_root, tmp_path):

    root = tmp_path / "root"
    shutil.copytree(dash_root / "before", root / "before")
    s = Store.open(root / "before")
    rows = s.rows
    a, b = 0, int(rows.index[(rows["lang"] == "deu") & (rows["group"] == rows["group"].iloc[0])][0])
    pd.DataFrame(
        {"id_a": [rows["id"].iloc[b]], "id_b": [rows["id"].iloc[a]], "links": ["1-1 2p3"]}
    ).to_csv(root / "before" / "gold_alignments.tsv", sep="\t", index=False)
    from xalign.extract import extract_pair_attention
    from xalign.models import tiny_encoder
    from xalign.store import PairAttention

    la, lb = rows["lang"].iloc[a], rows["lang"].iloc[b]
    extract_pair_attention(s.path, tiny_encoder("bert", seed=0), langs=(la, lb))
    pa = PairAttention(s.path, la, lb)
    k = pa.index_of(rows["group"].iloc[a])
    block = pa.blocks(k, layer=2)[0]
    v = alignment_view(Catalog(root), "before", row_a=a, row_b=b, layer=2)
    fig = v["alignment"]
    sure, possible = fig.data[2], fig.data[3]
    # the gold file lists the pair as (b, a): links are swapped to (a-word, b-word)
    assert (list(sure.y), list(sure.x)) == ([0], [0])
    assert (list(possible.y), list(possible.x)) == ([2], [1])
    np.testing.assert_allclose(np.array(v["cross"].data[0].z), block, atol=1e-3)
    content_b = s.row_tokens(b)
    assert v["cross"].layout.xaxis.ticktext == tuple(content_b["token"][~content_b["special"]])


def test_metric_views_from_the_results_table(cat, dash_root):
    out = metric_views(
        cat,
        "results.parquet",
        metric="retrieval_acc",
        layer=2,
        choices=None,
        mode="languages",
        heat_checkpoint="before",
        before="before",
        after="after",
    )
    res = pd.read_parquet(dash_root / "results.parquet")
    ref = res[
        (res.metric == "retrieval_acc")
        & res.protocol.str.contains('"scoring":"cosine"')
        & res.protocol.str.contains('"centered":false')
    ]
    # the results room's display order (xalign.results.PROTOCOL_KEY_ORDER)
    assert out["protocol"].startswith("centered=false, scoring=cosine")
    # every metric figure says which way is better aligned
    assert out["curves"].layout.yaxis.title.text == "retrieval_acc<br>(higher = better aligned)"
    assert "higher = better aligned" in out["heatmap"].data[0].colorbar.title.text
    assert "higher = better aligned" in out["difference"].data[0].colorbar.title.text
    curves = {t.name: t for t in out["curves"].data}
    deu = ref[(ref.checkpoint == "before") & ((ref.lang == "deu") | (ref.lang2 == "deu"))]
    assert list(curves["deu · before"].y) == pytest.approx(
        deu.groupby("layer")["value"].mean().tolist()
    )
    hm = out["heatmap"].data[0]
    labels = list(hm.y)
    z = np.array(hm.z, dtype=float)
    r = ref[(ref.checkpoint == "before") & (ref.layer == 2) & (ref.lang == "fra")]
    assert z[labels.index("fra"), labels.index("eng")] == pytest.approx(r["value"].iloc[0])
    diff = out["difference"].data[0]
    assert list(diff.x) == [0, 1, 2] and diff.y[0] == "mean"
    none = metric_views(
        cat,
        None,
        metric=None,
        layer=0,
        choices=None,
        mode="languages",
        heat_checkpoint=None,
        before=None,
        after=None,
    )
    assert none["message"] == "no results table selected"


def _neuron_rows(rng, ckpt, langs, layers, F=64):
    """Results rows shaped as ``python -m xalign.metrics --metrics neurons`` writes them."""
    import json

    rows = []
    proto = json.dumps({"top_rate": 0.01, "tokens": "content"})
    counts = {}
    for layer in layers:
        for i, a in enumerate(langs):
            c = int(rng.integers(0, F // 4))
            counts[(layer, a)] = c
            for metric, v in (("neuron_specific_count", c), ("neuron_specific_share", c / F)):
                rows.append((ckpt, metric, layer, a, None, float(v), proto))
            for b in langs[i + 1 :]:
                rows.append((ckpt, "neuron_specific_jaccard", layer, a, b, rng.uniform(), proto))
    df = pd.DataFrame(rows, columns=["checkpoint", "metric", "layer", "lang", "lang2", "value",
                                     "protocol"])  # fmt: skip
    df.insert(0, "store", f"runs/{ckpt}")
    df["n"], df["ci_low"], df["ci_high"] = F, np.nan, np.nan
    return df, counts


def test_neuron_views_from_results_rows(tmp_path):
    from dashboards._views import neuron_views
    from xalign.results import RESULTS_COLUMNS

    rng = np.random.default_rng(0)
    langs, layers = ["eng", "deu", "cmn_Hani"], [1, 2, 3]
    a, ca = _neuron_rows(rng, "before", langs, layers)
    b, cb = _neuron_rows(rng, "after", langs, layers)
    pd.concat([a, b])[list(RESULTS_COLUMNS)].to_parquet(tmp_path / "n.parquet")
    cat = Catalog(tmp_path)
    out = neuron_views(cat, "n.parquet", metric=None, checkpoint="after", layer=None,
                       before="before", after="after")  # fmt: skip
    assert out["metrics"] == ["neuron_specific_count", "neuron_specific_share"]
    assert out["checkpoints"] == ["before", "after"] and out["layers"] == layers
    heat = out["counts"].data[0]
    assert list(heat.y) == langs and list(heat.x) == layers
    assert [list(r) for r in heat.z] == [[cb[(layer, x)] for layer in layers] for x in langs]
    # default overlap block: the one with the most language-specific neurons in all languages
    best = max(layers, key=lambda layer: sum(cb[(layer, x)] for x in langs))
    assert out["layer"] == best
    ov = out["overlap"].data[0]
    jac = b[(b.metric == "neuron_specific_jaccard") & (b.layer == best)]
    for _, r in jac.iterrows():
        i, j = langs.index(r["lang"]), langs.index(r["lang2"])
        assert ov.z[i][j] == pytest.approx(r["value"]) and ov.z[j][i] == pytest.approx(r["value"])
    diff = out["difference"].data[0]
    by_lang = {x: [cb[(layer, x)] - ca[(layer, x)] for layer in layers] for x in langs}
    assert [list(r) for r in diff.z[1:]] == [by_lang[x] for x in diff.y[1:]]
    # one block asked for; a table without neuron rows says what to run
    assert neuron_views(cat, "n.parquet", metric="neuron_specific_share", checkpoint=None,
                        layer=1, before=None, after=None)["layer"] == 1  # fmt: skip
    a[a.metric == "neuron_specific_jaccard"].assign(metric="cka")[list(RESULTS_COLUMNS)].to_parquet(
        tmp_path / "other.parquet"
    )
    msg = neuron_views(cat, "other.parquet", metric=None, checkpoint=None, layer=None,
                       before=None, after=None)["message"]  # fmt: skip
    assert "--neurons" in msg and "--metrics neurons" in msg
