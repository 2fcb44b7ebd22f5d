"""LAPE and language-specific neuron selection (xalign.metrics, Tang et al. 2024)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from xalign.errors import ConfigError
from xalign.metrics import (
    activation_probability,
    compare_selections,
    lape,
    quantile_value,
    select_language_specific,
    shared_neurons,
    specific_jaccard,
)


def test_hand_computed_example():
    # 1 layer, 3 languages, 4 neurons; 10 content tokens per language
    active = np.array([[[9, 5, 0, 1], [0, 5, 0, 8], [0, 5, 1, 9]]], dtype=float)
    tokens = np.array([10.0, 10.0, 10.0])
    p = activation_probability(active, tokens)
    assert p[0, :, 0].tolist() == [0.9, 0.0, 0.0]
    ent = lape(p)
    assert ent[0, 0] == 0.0  # fires for one language only
    assert ent[0, 1] == pytest.approx(math.log(3))  # equally for all
    assert ent[0, 2] == 0.0
    q = np.array([1, 8, 9]) / 18
    assert ent[0, 3] == pytest.approx(-(q * np.log(q)).sum())
    # 12 probabilities sorted: 0 0 0 0 0.1 0.1 0.5 0.5 0.5 0.8 0.9 0.9; 0.75 → 9th = 0.5
    sel = select_language_specific(p, top_rate=0.5, filter_rate=0.75, bar_rate=0.75)
    assert sel.filter_value == 0.5 and sel.bar_value == 0.5
    # eligible (some p > 0.5): neurons 0 and 3; neuron 1 (p = 0.5 everywhere) is not
    assert sel.selected[0].tolist() == [True, False, False, True]
    assert sel.specific[0].astype(int).tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]
    assert shared_neurons(p, threshold=0.4).tolist() == [[False, True, False, False]]
    assert shared_neurons(p, threshold=0.4, fraction=0.6).tolist() == [[False, True, False, True]]
    j = specific_jaccard(sel.specific)[0]
    assert j[1, 2] == 1.0 and j[0, 1] == 0.0 and j[0, 0] == 1.0


def test_tokens_shapes_and_empty_language():
    active = np.ones((2, 3, 4))
    t1 = activation_probability(active, np.array([2.0, 0.0, 4.0]))
    t3 = activation_probability(
        active, np.broadcast_to(np.array([2.0, 0.0, 4.0])[None, :, None], (2, 3, 1))
    )
    assert np.array_equal(t1, t3) and (t1[:, 1] == 0).all() and (t1[:, 2] == 0.25).all()
    assert np.isnan(lape(np.zeros((1, 2, 3)))).all()


def independent(p, top_rate, filter_rate, bar_rate):
    """The selection written from the paper's description with loops and scipy."""
    L, G, F = p.shape
    flat = sorted(p.ravel().tolist())
    fv = flat[round(len(flat) * filter_rate) - 1]
    bv = flat[round(len(flat) * bar_rate) - 1]
    cand = []
    for layer, f in itertools.product(range(L), range(F)):
        probs = p[layer, :, f]
        if probs.sum() == 0 or not (probs > fv).any():
            continue
        cand.append((scipy_entropy(probs), layer, f))
    cand.sort()
    chosen = cand[: round(L * F * top_rate)]
    specific = np.zeros(p.shape, dtype=bool)
    for _, layer, f in chosen:
        for g in range(G):
            specific[layer, g, f] = p[layer, g, f] > bv
    return specific, fv, bv


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selection_equals_an_independent_computation(seed):
    rng = np.random.default_rng(seed)
    L, G, F = 3, 5, 200
    tokens = rng.integers(50, 200, size=G).astype(float)
    # most neurons fire alike everywhere; some prefer one language
    base = rng.uniform(0.05, 0.6, size=(L, 1, F)) * np.ones((1, G, 1))
    pref = rng.integers(0, G, size=(L, F))
    boost = rng.uniform(0, 0.4, size=(L, F))
    for layer, f in itertools.product(range(L), range(F)):
        base[layer, pref[layer, f], f] += boost[layer, f]
    base = base * rng.uniform(0.7, 1.0, size=(L, G, F))
    active = np.round(np.clip(base, 0, 1) * tokens[None, :, None])
    p = activation_probability(active, tokens)
    want_ent = np.array([[scipy_entropy(p[layer, :, f]) for f in range(F)] for layer in range(L)])
    np.testing.assert_allclose(lape(p), want_ent, rtol=1e-12, atol=1e-12)
    for rates in [(0.01, 0.95, 0.95), (0.05, 0.9, 0.8)]:
        sel = select_language_specific(
            p, top_rate=rates[0], filter_rate=rates[1], bar_rate=rates[2]
        )
        specific, fv, bv = independent(p, *rates)
        assert (sel.filter_value, sel.bar_value) == (fv, bv)
        assert np.array_equal(sel.specific, specific)
        assert sel.selected.sum() == round(L * F * rates[0])
        assert sel.protocol == {"selection": "lape", "top_rate": rates[0],
                                "filter_rate": rates[1], "bar_rate": rates[2]}  # fmt: skip
    # Jaccard against sets
    sel = select_language_specific(p, top_rate=0.2, filter_rate=0.5, bar_rate=0.5)
    J = specific_jaccard(sel.specific)
    Jall = specific_jaccard(sel.specific, per_layer=False)
    for a, b in itertools.combinations(range(G), 2):
        sets = [{(layer, f) for layer in range(L) for f in range(F) if sel.specific[layer, g, f]}
                for g in (a, b)]  # fmt: skip
        union = sets[0] | sets[1]
        want = len(sets[0] & sets[1]) / len(union) if union else np.nan
        np.testing.assert_equal(Jall[a, b], want)
        for layer in range(L):
            sa = set(np.flatnonzero(sel.specific[layer, a]))
            sb = set(np.flatnonzero(sel.specific[layer, b]))
            w = len(sa & sb) / len(sa | sb) if sa | sb else np.nan
            np.testing.assert_equal(J[layer, a, b], w)


def test_quantile_matches_kthvalue_definition():
    x = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    assert quantile_value(x, 0.95) == 5.0 and quantile_value(x, 0.5) == 2.0  # round(2.5) = 2
    with pytest.raises(ConfigError, match=r"must be in \(0, 1\]"):
        quantile_value(x, 0.0)


def test_compare_selections_and_shape_check():
    rng = np.random.default_rng(0)
    b = rng.random((2, 3, 50)) < 0.2
    a = rng.random((2, 3, 50)) < 0.3
    out = compare_selections(b, a)
    for layer, g in itertools.product(range(2), range(3)):
        sb, sa = set(np.flatnonzero(b[layer, g])), set(np.flatnonzero(a[layer, g]))
        assert out["change"][layer, g] == len(sa) - len(sb)
        assert out["jaccard"][layer, g] == pytest.approx(len(sa & sb) / len(sa | sb))
    same = compare_selections(b, b)
    assert (same["change"] == 0).all() and (same["jaccard"] == 1).all()
    with pytest.raises(ConfigError, match="cannot be compared"):
        compare_selections(b, a[:, :2])
    with pytest.raises(ConfigError, match=r"--neuron-top-rate 2: must be in \(0, 1\]"):
        select_language_specific(np.zeros((1, 2, 3)), top_rate=2)
