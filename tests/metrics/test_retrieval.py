from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xalign.errors import ConfigError, DataError
from xalign.metrics._bucc import (
    bucc_evaluate,
    bucc_f1,
    bucc_mine,
    bucc_optimize_threshold,
)
from xalign.metrics._retrieval import (
    csls,
    margin_scores,
    neighbourhood_means,
    retrieve,
    tatoeba_accuracy,
    xalign_layer_to_xtreme,
    xtreme_layer_to_xalign,
    xtreme_tatoeba_accuracy,
)

# ------------------------------------------------------------------ independent references


def unit64(x):
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ref_cos(x, y):
    return unit64(x) @ unit64(y).T


def ref_topk(c, k):
    """Indices of the k largest entries per row, ties to the lower index."""
    ids = np.broadcast_to(np.arange(c.shape[1]), c.shape)
    return np.lexsort((ids, -c), axis=-1)[:, :k]


def ref_means(c, k):
    k = min(k, c.shape[1])
    return np.take_along_axis(c, ref_topk(c, k), axis=1).mean(axis=1)


def ref_margin_matrix(x, y, margin, k):
    c = ref_cos(x, y)
    b = (ref_means(c, k)[:, None] + ref_means(c.T, k)[None, :]) / 2
    return {"none": c, "distance": c - b, "ratio": c / b}[margin]


def ref_xsim_predictions(x, y, margin, k):
    """LASER xsim.py: best margin score among the k cosine neighbours, written as loops."""
    c = ref_cos(x, y)
    fwd = ref_means(c, k)
    bwd = ref_means(c.T, k)
    cand = ref_topk(c, k)
    pred = []
    for i in range(c.shape[0]):
        best, best_s = None, -np.inf
        for j in cand[i]:
            a, b = c[i, j], (fwd[i] + bwd[j]) / 2
            s = a / b if margin == "ratio" else a - b
            if s > best_s:
                best, best_s = j, s
        pred.append(best)
    return np.array(pred)


def ref_bucc_mine(x, y, margin, k):
    """LASER mine_bitexts.py, retrieval='max', written with plain loops."""
    c = ref_cos(x, y)
    fwd_mean, bwd_mean = ref_means(c, k), ref_means(c.T, k)
    kx, ky = min(k, c.shape[1]), min(k, c.shape[0])

    def score(i, j):
        a, b = c[i, j], (fwd_mean[i] + bwd_mean[j]) / 2
        return {"none": a, "distance": a - b, "ratio": a / b}[margin]

    cands = []
    for i, row in enumerate(ref_topk(c, kx)):
        j = max(row, key=lambda j, i=i: score(i, j))
        cands.append((score(i, j), i, j))
    for j, col in enumerate(ref_topk(c.T, ky)):
        i = max(col, key=lambda i, j=j: score(i, j))
        cands.append((score(i, j), i, j))
    seen_s, seen_t, out = set(), set(), []
    for s, i, j in sorted(cands, key=lambda t: -t[0]):
        if i not in seen_s and j not in seen_t:
            seen_s.add(i)
            seen_t.add(j)
            out.append((i, j, s))
    return out


@pytest.fixture
def paired():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 24))
    return base, base + 0.9 * rng.normal(size=base.shape)


# ------------------------------------------------------------------ Tatoeba accuracy


@pytest.mark.parametrize("scoring", ["cosine", "margin", "csls"])
def test_accuracy_is_one_when_src_equals_tgt(scoring):
    x = np.random.default_rng(3).normal(size=(50, 16))
    r = tatoeba_accuracy(x, x, scoring=scoring, backend="numpy")
    assert r["acc_src2tgt"] == r["acc_tgt2src"] == r["acc_mean"] == 1.0
    assert r["n"] == 50 and r["correct_src2tgt"].all() and r["correct_tgt2src"].all()


def test_hand_example_with_known_permutation():
    src = np.eye(3)
    tgt = np.eye(3)[[1, 0, 2]]  # tgt[0] is src[1], tgt[1] is src[0]: only pair 2 is right
    r = tatoeba_accuracy(src, tgt, backend="numpy")
    assert r["pred_src2tgt"].tolist() == [1, 0, 2]
    assert r["pred_tgt2src"].tolist() == [1, 0, 2]
    assert r["correct_src2tgt"].tolist() == [False, False, True]
    assert r["acc_src2tgt"] == pytest.approx(1 / 3) and r["acc_mean"] == pytest.approx(1 / 3)


def test_accuracy_matches_numpy_reference_both_directions(paired):
    x, y = paired
    r = tatoeba_accuracy(x, y, backend="faiss")
    c = ref_cos(x, y)
    np.testing.assert_array_equal(r["pred_src2tgt"], c.argmax(axis=1))
    np.testing.assert_array_equal(r["pred_tgt2src"], c.argmax(axis=0))
    gold = np.arange(len(x))
    assert r["acc_src2tgt"] == pytest.approx((c.argmax(1) == gold).mean())
    assert r["acc_tgt2src"] == pytest.approx((c.argmax(0) == gold).mean())
    assert r["acc_mean"] == pytest.approx((r["acc_src2tgt"] + r["acc_tgt2src"]) / 2)
    assert 0.2 < r["acc_src2tgt"] < 1.0  # the fixture is neither trivial nor hopeless
    assert r["protocol"]["units"] == "fraction" and r["protocol"]["direction"] == "both"


def test_single_direction():
    x = np.eye(3)
    r = tatoeba_accuracy(x, x[[1, 0, 2]], direction="tgt2src", backend="numpy")
    assert r["acc_src2tgt"] is None and r["correct_src2tgt"] is None
    assert r["acc_mean"] == r["acc_tgt2src"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("margin", ["ratio", "distance"])
def test_margin_retrieval_matches_xsim_loops(paired, margin):
    x, y = paired
    r = tatoeba_accuracy(x, y, scoring="margin", margin=margin, k=4, backend="numpy")
    np.testing.assert_array_equal(r["pred_src2tgt"], ref_xsim_predictions(x, y, margin, 4))
    np.testing.assert_array_equal(r["pred_tgt2src"], ref_xsim_predictions(y, x, margin, 4))
    assert r["protocol"]["candidates"] == "knn" and r["protocol"]["k"] == 4


@pytest.mark.parametrize("chunk_targets", [1, 7, None])
def test_margin_over_all_candidates_is_argmax_of_full_matrix(paired, monkeypatch, chunk_targets):
    import xalign.metrics._retrieval as retrieval_module

    x, y = paired
    if chunk_targets is not None:  # visit the targets in chunks of this many rows
        monkeypatch.setattr(retrieval_module, "_CHUNK_BYTES", 8 * x.shape[1] * chunk_targets)
    full = ref_margin_matrix(x, y, "ratio", 4)
    for block_size in (1, 7, None):
        idx, score = retrieve(
            x, y, scoring="margin", candidates="all", block_size=block_size, backend="numpy"
        )
        np.testing.assert_array_equal(idx, full.argmax(axis=1))
        np.testing.assert_allclose(score, full.max(axis=1), rtol=1e-6)


def test_exhaustive_scorer_breaks_ties_across_chunks_to_the_lower_index(monkeypatch):
    import xalign.metrics._retrieval as retrieval_module

    monkeypatch.setattr(retrieval_module, "_CHUNK_BYTES", 8 * 4 * 3)  # 3 targets per chunk
    rng = np.random.default_rng(9)
    y = rng.normal(size=(10, 4))
    y[8] = y[1]  # exact duplicate target, in another chunk
    x = y[[1, 8, 5]] + 0.0
    idx, _ = retrieve(x, y, scoring="csls", k=2, block_size=2, backend="numpy")
    assert idx.tolist() == [1, 1, 5]


def test_duplicates_count_as_hits_with_textual_dedup():
    rng = np.random.default_rng(5)
    src = rng.normal(size=(4, 8))
    src[2] = src[1]  # the same sentence twice on both sides
    tgt = src + 0.01 * rng.normal(size=src.shape)
    tgt[2] = tgt[1]
    texts = (["a", "b", "b", "c"], ["A", "B", "B", "C"])
    plain = tatoeba_accuracy(src, tgt, backend="numpy")
    dedup = tatoeba_accuracy(src, tgt, dedup_texts=texts, backend="numpy")
    # row 2 retrieves its identical twin, row 1 (ties go to the lower index)
    assert plain["pred_src2tgt"].tolist() == [0, 1, 1, 3]
    assert plain["acc_src2tgt"] == plain["acc_tgt2src"] == 0.75
    assert dedup["acc_src2tgt"] == dedup["acc_tgt2src"] == 1.0
    assert dedup["protocol"]["dedup"] == "text"


def test_center_option_equals_manual_centring_and_removes_a_language_offset():
    rng = np.random.default_rng(7)
    base = rng.normal(size=(80, 16))
    src = base + 6.0 * rng.normal(size=16)  # one big offset per language
    tgt = base + 0.8 * rng.normal(size=base.shape) + 6.0 * rng.normal(size=16)
    centred = tatoeba_accuracy(src, tgt, center=True, backend="numpy")
    manual = tatoeba_accuracy(src - src.mean(0), tgt - tgt.mean(0), backend="numpy")
    raw = tatoeba_accuracy(src, tgt, backend="numpy")
    np.testing.assert_array_equal(centred["pred_src2tgt"], manual["pred_src2tgt"])
    assert centred["acc_mean"] == manual["acc_mean"]
    assert centred["acc_mean"] > raw["acc_mean"] + 0.2


# ------------------------------------------------------------------ margin and CSLS


@pytest.mark.parametrize("margin", ["none", "distance", "ratio"])
def test_margin_scores_match_reference(paired, margin):
    x, y = paired
    got = margin_scores(x, y, margin=margin, k=4, backend="faiss")
    np.testing.assert_allclose(got, ref_margin_matrix(x, y, margin, 4), rtol=1e-6, atol=1e-7)
    pairs = np.array([[0, 0], [3, 5], [59, 1]])
    np.testing.assert_allclose(
        margin_scores(x, y, margin=margin, k=4, pairs=pairs, backend="numpy"),
        got[pairs[:, 0], pairs[:, 1]],
        rtol=1e-12,
    )


def test_neighbourhood_means_match_reference(paired):
    x, y = paired
    fwd, bwd = neighbourhood_means(x, y, k=5, backend="numpy")
    c = ref_cos(x, y)
    np.testing.assert_allclose(fwd, ref_means(c, 5), rtol=1e-6)
    np.testing.assert_allclose(bwd, ref_means(c.T, 5), rtol=1e-6)


def circle_data():
    """12 points on a circle and the same set rotated by 7 degrees, embedded in 8-D.

    By symmetry every point has the same neighbourhood, so all kNN means are equal.
    """
    angles = np.deg2rad(np.arange(12) * 30.0)
    plane_x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    plane_y = np.stack([np.cos(angles + np.deg2rad(7)), np.sin(angles + np.deg2rad(7))], axis=1)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 8)))
    lift = q[:2]  # orthonormal 2 x 8
    return plane_x @ lift, plane_y @ lift


@pytest.mark.parametrize("margin", ["distance", "ratio"])
def test_margin_ranks_like_cosine_when_neighbourhood_means_are_equal(margin):
    x, y = circle_data()
    fwd, bwd = neighbourhood_means(x, y, k=4, backend="numpy")
    np.testing.assert_allclose(fwd, fwd[0], atol=1e-6)
    np.testing.assert_allclose(bwd, fwd[0], atol=1e-6)
    cos = margin_scores(x, y, margin="none", backend="numpy")
    mar = margin_scores(x, y, margin=margin, k=4, backend="numpy")
    np.testing.assert_array_equal(np.argsort(-mar, axis=1), np.argsort(-cos, axis=1))
    r_cos = tatoeba_accuracy(x, y, backend="numpy")
    r_mar = tatoeba_accuracy(
        x, y, scoring="margin", margin=margin, candidates="all", backend="numpy"
    )
    np.testing.assert_array_equal(r_cos["pred_src2tgt"], r_mar["pred_src2tgt"])


def test_margin_can_differ_from_cosine_on_hubby_data():
    rng = np.random.default_rng(11)
    base = rng.normal(size=(100, 12))
    hub = rng.normal(size=12) * 2.5
    src = base
    tgt = base + 1.2 * rng.normal(size=base.shape)
    tgt[:10] += hub  # ten targets drift towards one hub direction
    cos = tatoeba_accuracy(src, tgt, backend="numpy")
    mar = tatoeba_accuracy(src, tgt, scoring="margin", backend="numpy")
    assert (cos["pred_src2tgt"] != mar["pred_src2tgt"]).any()


def test_csls_is_twice_distance_margin_and_ranks_identically(paired):
    x, y = paired
    c = csls(x, y, k=5, backend="numpy")
    d = margin_scores(x, y, margin="distance", k=5, backend="faiss")
    np.testing.assert_allclose(c, 2 * d, rtol=1e-12)
    # MUSE's formula written out: 2 cos - r_Y(x) - r_X(y)
    cosm = ref_cos(x, y)
    muse = 2 * cosm - ref_means(cosm, 5)[:, None] - ref_means(cosm.T, 5)[None, :]
    np.testing.assert_allclose(c, muse, rtol=1e-6, atol=1e-7)
    r_csls = tatoeba_accuracy(x, y, scoring="csls", k=5, backend="numpy")
    r_dist = tatoeba_accuracy(
        x, y, scoring="margin", margin="distance", k=5, candidates="all", backend="numpy"
    )
    np.testing.assert_array_equal(r_csls["pred_src2tgt"], r_dist["pred_src2tgt"])
    np.testing.assert_array_equal(r_csls["pred_tgt2src"], r_dist["pred_tgt2src"])
    np.testing.assert_array_equal(r_csls["pred_src2tgt"], muse.argmax(axis=1))
    assert r_csls["protocol"]["k"] == 5 and r_csls["protocol"]["candidates"] == "all"


def test_csls_default_k_is_10(paired):
    x, y = paired
    np.testing.assert_allclose(
        csls(x, y, backend="numpy"), 2 * margin_scores(x, y, margin="distance", k=10)
    )
    assert tatoeba_accuracy(x, y, scoring="csls", backend="numpy")["protocol"]["k"] == 10


# ------------------------------------------------------------------ xtreme compatibility


def test_xtreme_queries_are_english_and_units_are_percent():
    xx = np.array([[1.0, 0.0], [0.0, 1.0]])
    en = np.array([[1.0, 0.1], [1.0, 0.3]])  # both English rows are closest to xx[0]
    r = xtreme_tatoeba_accuracy(xx, en, backend="numpy")
    assert r["predictions"].tolist() == [0, 0]
    assert r["accuracy"] == 50.0 and r["protocol"]["units"] == "percent"
    both = tatoeba_accuracy(xx, en, backend="numpy")
    assert both["acc_src2tgt"] == 1.0  # xx -> en
    assert both["acc_tgt2src"] == 0.5  # en -> xx, what xtreme reports


def test_layer_converters():
    assert xtreme_layer_to_xalign(7) == 8
    assert xalign_layer_to_xtreme(8) == 7
    assert all(xalign_layer_to_xtreme(xtreme_layer_to_xalign(i)) == i for i in range(13))
    with pytest.raises(ConfigError, match="layer 0"):
        xalign_layer_to_xtreme(0)
    with pytest.raises(ConfigError):
        xtreme_layer_to_xalign(-1)


# ------------------------------------------------------------------ BUCC


def test_bucc_mine_hand_example():
    # cos: s0-t0 .96, s0-t1 .60 | s1-t0 .80, s1-t1 1.0 | s2-t0 .28, s2-t1 .80, s2-t2 0.
    # forward best: s0->t0 (.96), s1->t1 (1.0), s2->t1 (.80);
    # backward best: t0->s0 (.96), t1->s1 (1.0), t2->s2 (0.0, the others are negative).
    # greedy 1:1 over the pooled list sorted by score: (1,1) 1.0, (0,0) .96,
    # (2,1) .80 rejected (t1 taken), (2,2) 0.0 accepted.
    src = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    tgt = np.array([[0.96, 0.28], [0.6, 0.8], [-1.0, 0.0]])
    mined = bucc_mine(src, tgt, k=1, margin="none", backend="numpy")
    assert list(mined.columns) == ["src_idx", "tgt_idx", "score"]
    assert mined[["src_idx", "tgt_idx"]].values.tolist() == [[1, 1], [0, 0], [2, 2]]
    np.testing.assert_allclose(mined["score"], [1.0, 0.96, 0.0], atol=1e-6)
    kept = bucc_mine(src, tgt, k=1, margin="none", threshold=0.5, backend="numpy")
    assert kept[["src_idx", "tgt_idx"]].values.tolist() == [[1, 1], [0, 0]]


@pytest.mark.parametrize("margin", ["ratio", "distance"])
def test_bucc_mine_matches_laser_loops(margin):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 16))
    y = np.concatenate([x[:25] + 0.5 * rng.normal(size=(25, 16)), rng.normal(size=(20, 16))])
    got = bucc_mine(x, y, k=4, margin=margin, backend="faiss")
    want = ref_bucc_mine(x, y, margin, 4)
    assert got[["src_idx", "tgt_idx"]].values.tolist() == [[i, j] for i, j, _ in want]
    np.testing.assert_allclose(got["score"], [s for *_, s in want], rtol=1e-6, atol=1e-7)
    assert got["src_idx"].is_unique and got["tgt_idx"].is_unique


def test_bucc_f1_and_threshold_hand_example():
    mined = pd.DataFrame(
        {"src_idx": [0, 1, 2, 3], "tgt_idx": [0, 1, 3, 2], "score": [1.4, 1.2, 1.1, 0.9]}
    )
    gold = [(0, 0), (1, 1), (3, 3)]
    # cut after 2 candidates: P=1, R=2/3, F1=.8; after 3: P=2/3, R=2/3; after 4: P=.5
    assert bucc_f1(mined, gold, 1.15) == pytest.approx((1.0, 2 / 3, 0.8))
    assert bucc_f1(mined, gold, 0.0) == pytest.approx((0.5, 2 / 3, 4 / 7))
    assert bucc_f1(mined, gold, 2.0) == (0.0, 0.0, 0.0)
    assert bucc_optimize_threshold(mined, gold) == pytest.approx((1.2 + 1.1) / 2)


def test_threshold_maximises_f1_over_every_cut():
    rng = np.random.default_rng(4)
    mined = pd.DataFrame(
        {
            "src_idx": np.arange(30),
            "tgt_idx": rng.permutation(30),
            "score": rng.uniform(0.8, 1.3, size=30),
        }
    )
    gold = {(int(s), int(t)) for s, t in zip(mined.src_idx, mined.tgt_idx, strict=True)}
    gold = set(list(sorted(gold))[::2]) | {(100, 100)}
    tau = bucc_optimize_threshold(mined, gold)
    best = max(bucc_f1(mined, gold, s)[2] for s in mined.score)
    assert bucc_f1(mined, gold, tau)[2] == pytest.approx(best)


def test_bucc_threshold_when_best_cut_keeps_everything():
    mined = {"src_idx": [0, 1], "tgt_idx": [0, 1], "score": [1.2, 1.1]}
    tau = bucc_optimize_threshold(mined, [(0, 0), (1, 1)])
    assert tau == pytest.approx(1.1)
    assert bucc_f1(mined, [(0, 0), (1, 1)], tau) == (1.0, 1.0, 1.0)


def test_bucc_evaluate_separates_translations_from_distractors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 24))
    y = x + 0.3 * rng.normal(size=x.shape)
    r = bucc_evaluate(x, y, seed=1, oracle=True, backend="numpy")
    assert r["f1"] > 0.95
    assert r["n_gold_tune"] + r["n_gold_test"] == 60  # half of the pairs became distractors
    assert r["n_src_test"] > r["n_gold_test"] and r["n_tgt_test"] > r["n_gold_test"]
    assert r["oracle_f1"] >= r["f1"] - 1e-12
    assert r["protocol"]["oracle"].startswith("oracle")
    again = bucc_evaluate(x, y, seed=1, backend="numpy")
    assert again["f1"] == r["f1"] and "oracle_f1" not in again


def test_bucc_evaluate_is_low_on_unrelated_data():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 24)), rng.normal(size=(100, 24))
    assert bucc_evaluate(x, y, n_distractors=0, backend="numpy")["f1"] < 0.2


def test_bucc_evaluate_with_explicit_gold_and_unpaired_rows():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(50, 16))
    y = np.concatenate([rng.normal(size=(20, 16)), x[:30] + 0.2 * rng.normal(size=(30, 16))])
    gold = np.stack([np.arange(30), np.arange(20, 50)], axis=1)
    r = bucc_evaluate(x, y, gold, n_distractors=0, held_out_fraction=0.4, backend="numpy")
    assert r["n_gold_tune"] == 12 and r["n_gold_test"] == 18
    assert r["n_src_tune"] + r["n_src_test"] == 50 and r["n_tgt_tune"] + r["n_tgt_test"] == 50
    assert r["f1"] > 0.9


def test_bucc_evaluate_bad_options():
    x = np.random.default_rng(0).normal(size=(10, 4))
    with pytest.raises(ConfigError, match="held_out_fraction"):
        bucc_evaluate(x, x, held_out_fraction=1.0)
    with pytest.raises(ConfigError, match="n_distractors"):
        bucc_evaluate(x, x, n_distractors=9)
    with pytest.raises(DataError, match="1:1"):
        bucc_evaluate(x, x, [[0, 1], [0, 2], [3, 3]])


# ------------------------------------------------------------------ validation


def test_bad_inputs_raise_specific_errors():
    x = np.eye(3)
    with pytest.raises(ConfigError, match="scoring 'dot': allowed values are cosine, margin, csls"):
        tatoeba_accuracy(x, x, scoring="dot")
    with pytest.raises(ConfigError, match="direction"):
        tatoeba_accuracy(x, x, direction="en2xx")
    with pytest.raises(
        ConfigError, match="margin 'absolute': allowed values are none, distance, ratio"
    ):
        margin_scores(x, x, margin="absolute")
    with pytest.raises(DataError, match="paired rows"):
        tatoeba_accuracy(x, x[:2])
    with pytest.raises(DataError, match="row 1 has zero norm"):
        tatoeba_accuracy(x, np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1]]))
    with pytest.raises(DataError, match="vector sizes differ"):
        tatoeba_accuracy(x, np.eye(3, 4))
    with pytest.raises(DataError, match="expected 3 each"):
        tatoeba_accuracy(x, x, dedup_texts=(["a"], ["b"]))
    with pytest.raises(DataError, match="out of range"):
        margin_scores(x, x, pairs=[[0, 3]])


def test_unit_rows_huge_finite_values_and_bad_rows():
    """Float32 squares of 1e20 overflow; the norms fall back to float64 instead of calling the
    rows infinite. A real NaN or infinity is reported with its row."""
    from xalign.metrics._retrieval import _unit_rows

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    big = _unit_rows(x * np.float32(1e20), "src").f32
    np.testing.assert_allclose(big, x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(big, axis=1), 1.0, rtol=1e-6)
    r = tatoeba_accuracy(x * np.float32(1e20), x, backend="numpy")
    assert r["acc_mean"] == 1.0
    for bad in (np.nan, np.inf):
        y = x.copy()
        y[3, 2] = bad
        with pytest.raises(DataError, match="tgt: row 3 contains NaN or infinity"):
            tatoeba_accuracy(x, y, backend="numpy")


def _hubby_with_duplicates(seed: int = 4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(150, 20))
    y = x + 0.9 * rng.normal(size=x.shape)
    y[:12] += 2.0 * rng.normal(size=20)  # a hub
    y[40] = y[7]  # duplicate targets: ties go to the lower index
    y[60:75] = y[3]  # more duplicates than the first candidate pool (8)
    x[90] = x[20]
    return x, y


@pytest.mark.parametrize("n_gpus", [0, 1, 3])
def test_csls_over_all_targets_identical_on_every_backend(n_gpus, fake_faiss_gpu):
    """CSLS over all targets is an augmented inner-product search; numpy, faiss CPU and faiss
    GPU (faked on CPU, keys sharded over 1 or 3 devices) give the float64 MUSE argmax."""
    x, y = _hubby_with_duplicates()
    cosm = ref_cos(x, y)
    muse = 2 * cosm - ref_means(cosm, 10)[:, None] - ref_means(cosm.T, 10)[None, :]
    ref = tatoeba_accuracy(x, y, scoring="csls", backend="numpy")
    np.testing.assert_array_equal(ref["pred_src2tgt"], muse.argmax(axis=1))
    np.testing.assert_array_equal(ref["pred_tgt2src"], muse.argmax(axis=0))
    assert 40 not in set(ref["pred_src2tgt"].tolist())  # duplicate of 7: never chosen
    assert not set(range(60, 75)) & set(ref["pred_src2tgt"].tolist())
    calls = fake_faiss_gpu(n_gpus) if n_gpus else []
    backend = "faiss-gpu" if n_gpus else "faiss"
    got = tatoeba_accuracy(x, y, scoring="csls", backend=backend)
    np.testing.assert_array_equal(got["pred_src2tgt"], ref["pred_src2tgt"])
    np.testing.assert_array_equal(got["pred_tgt2src"], ref["pred_tgt2src"])
    idx, score = retrieve(x, y, scoring="csls", backend=backend)
    np.testing.assert_array_equal(idx, ref["pred_src2tgt"])
    np.testing.assert_allclose(score, muse.max(axis=1), rtol=1e-6, atol=1e-7)
    if n_gpus:  # the augmented search ran on the (fake) GPUs, over d + 1 dimensions
        devices = {c[0] for c in calls if c[0] != "temp"}
        assert devices == ({-1} if n_gpus == 1 else set(range(n_gpus)))


def test_top1_shifted_searches_again_when_candidates_are_not_enough():
    """Twenty identical best keys exceed the first pool of 8 candidates: the query is searched
    again with more, and the lowest index of the tie wins."""
    from xalign.metrics._knn import _as_rows, top1_shifted

    rng = np.random.default_rng(0)
    keys = rng.normal(size=(50, 6)).astype(np.float32)
    keys[10:30] = keys[5] * 3  # 20 copies scoring highest for a query along keys[5]
    q = keys[5:6] / np.linalg.norm(keys[5])
    shift = np.zeros(50)
    shift[5] = 1.0  # key 5 itself is pushed below its copies
    idx, s = top1_shifted(
        _as_rows(q, "q"),
        _as_rows(keys, "keys"),
        shift,
        lambda r, c, d: d - shift[c],
        backend="numpy",
    )
    exact = q.astype(np.float64) @ keys.astype(np.float64).T - shift
    assert idx.tolist() == [10] and exact.argmax() == 10
    np.testing.assert_allclose(s, exact.max(), rtol=1e-12)


def test_small_searches_on_one_blas_thread_give_the_same_result(monkeypatch):
    import xalign.metrics._retrieval as ret

    rng = np.random.default_rng(21)
    a = rng.normal(size=(60, 16)).astype(np.float32)
    b = (a + 0.8 * rng.normal(size=a.shape)).astype(np.float32)
    out = {}
    for limit in (0, 2**40):  # never / always one thread
        monkeypatch.setattr(ret, "_ONE_THREAD_MACS", limit)
        out[limit] = [
            tatoeba_accuracy(a, b, scoring=s, backend="numpy") for s in ("cosine", "margin")
        ]
    for r0, r1 in zip(out[0], out[2**40], strict=True):
        assert np.array_equal(r0["pred_src2tgt"], r1["pred_src2tgt"])
        assert np.array_equal(r0["pred_tgt2src"], r1["pred_tgt2src"])


def test_one_numpy_blas_thread_sets_and_restores_the_thread_count():
    from threadpoolctl import threadpool_info

    import xalign.metrics._retrieval as ret

    libs = ret._numpy_blas()
    assert libs  # numpy's BLAS is found
    paths = {c.filepath for c in libs}

    def counts():
        return {
            i["filepath"]: i["num_threads"] for i in threadpool_info() if i["filepath"] in paths
        }

    before = counts()
    with ret._one_numpy_blas_thread():
        assert set(counts().values()) == {1}
    assert counts() == before
    with pytest.raises(RuntimeError), ret._one_numpy_blas_thread():
        raise RuntimeError("restored on errors too")
    assert counts() == before


def test_one_numpy_blas_thread_sets_nothing_when_already_one(monkeypatch):
    """Under the metrics command's single-thread block the pin costs one read, no writes;
    otherwise it sets one thread and restores the count, on errors too."""
    import xalign.metrics._retrieval as ret

    class Fake:
        def __init__(self, n):
            self.n, self.sets = n, []

        def get_num_threads(self):
            return self.n

        def set_num_threads(self, n):
            self.sets.append(n)
            self.n = n

    one, two = Fake(1), Fake(2)
    monkeypatch.setitem(ret._NUMPY_BLAS, "libs", [one, two])
    with pytest.raises(RuntimeError), ret._one_numpy_blas_thread():
        assert (one.n, two.n) == (1, 1)
        raise RuntimeError("restored on errors too")
    assert one.sets == [] and two.sets == [1, 2] and two.n == 2
