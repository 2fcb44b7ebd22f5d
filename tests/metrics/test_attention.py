from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, pearsonr

from xalign.errors import DataError
from xalign.metrics._attention import (
    attention_alignment_similarity,
    attention_distance,
    attention_entropy,
    attention_pull_mse,
    embedding_push_distance,
    merge_attention_to_words,
)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.fixture
def batch():
    """Two examples, 3 heads, 6 positions; example 1 has 2 pad positions (masked keys)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 6, 6)) * 2
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=bool)
    logits = np.where(mask[:, None, None, :], logits, -np.inf)
    return softmax(logits), mask


# ------------------------------------------------------------------ entropy


def test_entropy_matches_scipy_per_row(batch):
    attn, mask = batch
    r = attention_entropy(attn, mask=mask)
    expected = np.zeros(3)
    for h in range(3):
        rows = [entropy(attn[b, h, i]) for b in range(2) for i in range(6) if mask[b, i]]
        expected[h] = np.mean(rows)  # 6 + 4 valid rows pooled
    np.testing.assert_allclose(r["per_head"], expected, rtol=1e-12)
    assert r["mean"] == pytest.approx(expected.mean())


def test_entropy_bounds_uniform_and_one_hot():
    t = 5
    uniform = np.full((2, t, t), 1 / t)
    one_hot = np.stack([np.eye(t), np.eye(t)[::-1]])
    assert attention_entropy(uniform)["per_head"] == pytest.approx([np.log(t)] * 2)
    assert attention_entropy(one_hot)["mean"] == 0.0
    assert attention_entropy(np.eye(3))["per_head"].shape == (1,)  # 2-D input = one head


def test_entropy_ignores_pad_rows(batch):
    attn, mask = batch
    garbage = attn.copy()
    garbage[1, :, 4:, :] = 1 / 6  # pad query rows: any content must not matter
    a = attention_entropy(attn, mask=mask)["per_head"]
    b = attention_entropy(garbage, mask=mask)["per_head"]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(DataError, match="mask: shape"):
        attention_entropy(attn, mask=mask[:, :4])


# ------------------------------------------------------------------ word-level maps


def test_merge_attention_to_words_sums_keys_and_averages_queries():
    rng = np.random.default_rng(1)
    attn = softmax(rng.normal(size=(2, 5, 5)))
    word_ids = [None, 0, 0, 1, None]
    w = merge_attention_to_words(attn, word_ids)
    assert w.shape == (2, 2, 2)
    for h in range(2):
        a = attn[h]
        np.testing.assert_allclose(w[h, 0, 0], (a[1, 1] + a[1, 2] + a[2, 1] + a[2, 2]) / 2)
        np.testing.assert_allclose(w[h, 0, 1], (a[1, 3] + a[2, 3]) / 2)
        np.testing.assert_allclose(w[h, 1, 0], a[3, 1] + a[3, 2])
        np.testing.assert_allclose(w[h, 1, 1], a[3, 3])


# ------------------------------------------------------------------ alignment-projected similarity


def test_attention_alignment_similarity_matches_loops():
    rng = np.random.default_rng(2)
    a = softmax(rng.normal(size=(4, 5, 5)))
    b = softmax(rng.normal(size=(4, 6, 6)))
    pairs = [(0, 1), (2, 2), (3, 5), (4, 0)]
    r = attention_alignment_similarity(a, b, pairs)
    assert r["n_entries"] == 16
    for h in range(4):
        x = [a[h, i, i2] for (i, _), (i2, _) in itertools.product(pairs, pairs)]
        y = [b[h, j, j2] for (_, j), (_, j2) in itertools.product(pairs, pairs)]
        assert r["pearson"][h] == pytest.approx(pearsonr(x, y)[0], rel=1e-10)
        cos = np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y)
        assert r["cosine"][h] == pytest.approx(cos, rel=1e-12)


def test_attention_alignment_similarity_is_one_for_a_relabelled_copy():
    rng = np.random.default_rng(3)
    a = softmax(rng.normal(size=(5, 5)))
    perm = np.array([3, 0, 4, 1, 2])  # word i of a is word perm[i] of b
    b = np.empty_like(a)
    b[np.ix_(perm, perm)] = a
    r = attention_alignment_similarity(a, b, list(enumerate(perm.tolist())))
    assert r["pearson"] == pytest.approx(1.0) and r["cosine"] == pytest.approx(1.0)
    wrong = attention_alignment_similarity(a, b, list(enumerate(range(5))))
    assert wrong["pearson"] < 0.9
    with pytest.raises(DataError, match="outside"):
        attention_alignment_similarity(a, b, [(0, 5)])


# ------------------------------------------------------------------ distances between maps


def test_attention_distance_matches_scipy_and_manual_mse(batch):
    attn, mask = batch
    rng = np.random.default_rng(4)
    logits = np.where(mask[:, None, None, :], rng.normal(size=attn.shape), -np.inf)
    other = softmax(logits)
    r = attention_distance(attn, other, mask=mask)
    for h in range(3):
        sq, js = [], []
        for b in range(2):
            valid = np.flatnonzero(mask[b])
            for i in valid:
                sq.extend((attn[b, h, i, valid] - other[b, h, i, valid]) ** 2)
                js.append(jensenshannon(attn[b, h, i, valid], other[b, h, i, valid]) ** 2)
        assert r["mse_per_head"][h] == pytest.approx(np.mean(sq), rel=1e-12)
        assert r["js_per_head"][h] == pytest.approx(np.mean(js), rel=1e-8)
    assert r["js"] == pytest.approx(r["js_per_head"].mean())
    same = attention_distance(attn, attn, mask=mask)
    assert same["mse"] == 0.0 and same["js"] == pytest.approx(0.0, abs=1e-15)


def test_attention_distance_js_is_at_most_ln2():
    p = np.eye(4)
    q = np.eye(4)[[1, 2, 3, 0]]
    r = attention_distance(p, q)
    assert r["js"] == pytest.approx(np.log(2)) and r["mse"] == pytest.approx(2 / 4)


# ------------------------------------------------------------------ push / pull checks


def test_embedding_push_distance_matches_manual_pooling():
    rng = np.random.default_rng(5)
    e1, e2 = rng.normal(size=(3, 7, 4)), rng.normal(size=(3, 7, 4))
    m1 = np.array([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4])
    m2 = np.array([[1] * 6 + [0], [1] * 7, [1] * 4 + [0] * 3])
    total = 0.0
    for b in range(3):
        p1 = e1[b, m1[b] == 1].mean(axis=0)
        p2 = e2[b, m2[b] == 1].mean(axis=0)
        total += ((p1 - p2) ** 2).sum()
    expected = total / (3 * 4)  # MSE over B * d
    assert embedding_push_distance(e1, e2, m1, mask_pert=m2) == pytest.approx(expected)
    shared_mask = embedding_push_distance(e1, e2, m1)
    manual = np.mean(
        [((e1[b, m1[b] == 1].mean(0) - e2[b, m1[b] == 1].mean(0)) ** 2).mean() for b in range(3)]
    )
    assert shared_mask == pytest.approx(manual)
    assert embedding_push_distance(e1, e1, m1) == 0.0
    with pytest.raises(DataError, match="no real token"):
        embedding_push_distance(e1, e2, np.zeros((3, 7)))


def test_attention_pull_mse_is_the_mean_over_every_entry_including_pads(batch):
    attn, _ = batch
    other = np.roll(attn, 1, axis=-1)
    expected = sum(((attn - other) ** 2).ravel()) / attn.size  # B * H * L * L entries
    assert attention_pull_mse(attn, other) == pytest.approx(expected)
    assert attention_pull_mse(attn, attn) == 0.0
    with pytest.raises(DataError, match="equal"):
        attention_pull_mse(attn, attn[:, :2])


def test_merge_attention_bad_word_ids_name_the_problem():
    """Same checks as merge_subwords: a negative index or a gap is a DataError naming it
    (a negative index used to reach np.bincount and fail with its ValueError)."""
    a = np.full((3, 3), 1 / 3)
    with pytest.raises(DataError, match="negative word index -1"):
        merge_attention_to_words(a, [0, -1, 1])
    with pytest.raises(DataError, match="word 1 has no token"):
        merge_attention_to_words(a, [0, 2, 2])
    with pytest.raises(DataError, match="all None"):
        merge_attention_to_words(a, [None, None, None])
