"""Perturbed views: the reference algorithm, its randomness, and the neighbour file checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xalign.errors import DataError
from xalign.train import load_neighbours, paired_views, perturb_sentence


def reference_perturb(sent: str, neighbors: dict, n: int) -> list[str]:
    """EAR ``utils/perturb_aug_ori.perturb`` transcribed (global ``np.random``)."""
    words = sent.split(" ")
    p_sents = []
    for _ in range(n):
        p_words = []
        for word in words:
            if word not in neighbors or len(neighbors[word]) == 0:
                p_words.append(word)
            else:
                tmp_list = [word] + neighbors[word]
                p_words.append(tmp_list[np.random.randint(0, len(tmp_list))])
        p_sents.append(" ".join(p_words))
    return p_sents


def test_matches_reference_draw_for_draw(neighbours):
    sents = ["the cat sleeps on the warm mat", "a big dog runs  today", "Cat cat. cat"]
    np.random.seed(11)
    want = [reference_perturb(s, neighbours, 4) for s in sents]
    rng = np.random.RandomState(11)
    got = [perturb_sentence(s, neighbours, rng, n=4) for s in sents]
    assert got == want


def test_space_split_case_sensitive_and_unknown_words_kept(neighbours):
    rng = np.random.RandomState(0)
    for out in perturb_sentence("Cat cat. CAT the  dog", neighbours, rng, n=50):
        words = out.split(" ")
        assert words[:4] == ["Cat", "cat.", "CAT", "the"]  # case, punctuation, empty list
        assert words[4] == ""  # a double space is an empty word, kept
        assert words[5] in ["dog", *neighbours["dog"]]


def test_uniform_over_word_and_neighbours(neighbours):
    rng = np.random.RandomState(3)
    outs = perturb_sentence("dog", neighbours, rng, n=8000)
    cands = ["dog", *neighbours["dog"]]
    freq = np.array([outs.count(c) for c in cands]) / len(outs)
    assert sum(outs.count(c) for c in cands) == len(outs)
    np.testing.assert_allclose(freq, 0.25, atol=0.02)


def test_paired_views_copies_order_and_seed(neighbours):
    ex = pd.DataFrame(
        {
            "text_a": ["the cat sleeps", "cold rain today"],
            "text_b": ["the dog runs", "warm rain"],
            "label": [0, 1],
        }
    )
    v = paired_views(ex, neighbours, n_views=3, seed=5)
    assert v["example"].tolist() == [0, 0, 0, 1, 1, 1]
    assert v["view"].tolist() == [0, 1, 2, 0, 1, 2]
    assert (v["text_a"] == ex["text_a"].repeat(3).to_numpy()).all()
    assert v["label"].tolist() == [0, 0, 0, 1, 1, 1]
    # the reference draws all copies of sentence 1, then all copies of sentence 2
    rng = np.random.RandomState(5)
    want_a, want_b = [], []
    for a, b in zip(ex["text_a"], ex["text_b"], strict=True):
        want_a += perturb_sentence(a, neighbours, rng, n=3)
        want_b += perturb_sentence(b, neighbours, rng, n=3)
    assert v["pert_a"].tolist() == want_a and v["pert_b"].tolist() == want_b
    assert paired_views(ex, neighbours, n_views=3, seed=5).equals(v)
    other = paired_views(ex, neighbours, n_views=3, seed=6)
    assert other["pert_a"].tolist() != v["pert_a"].tolist()


def test_neighbour_file_ok_and_bad(tmp_path, neighbours_file, neighbours):
    assert load_neighbours(neighbours_file) == neighbours
    with pytest.raises(
        DataError, match=r"nope\.json: no such neighbour file \(expected a JSON object"
    ):
        load_neighbours(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"cat": ["kitten",\n  ]', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json:2: invalid JSON"):
        load_neighbours(bad)
    bad.write_text(json.dumps(["cat", "kitten"]), encoding="utf-8")
    with pytest.raises(DataError, match=r"top level is a JSON list; expected a JSON object"):
        load_neighbours(bad)
    bad.write_text(json.dumps({"cat": "kitten"}), encoding="utf-8")
    with pytest.raises(DataError, match=r"value of key 'cat' is \"kitten\"; expected"):
        load_neighbours(bad)
    bad.write_text(json.dumps({"cat": [1, 2]}), encoding="utf-8")
    with pytest.raises(DataError, match=r"value of key 'cat'"):
        load_neighbours(bad)
    bad.write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match="empty object"):
        load_neighbours(bad)


@pytest.mark.shared
def test_real_counterfitted_file(shared_data):
    nb = load_neighbours(shared_data / "counterfitted-neighbors" / "counterfitted_neighbors.json")
    assert len(nb) == 49975
    assert sum(1 for v in nb.values() if v) == 25591
    assert max(len(v) for v in nb.values()) == 8
    assert nb["fox"][0] == "renard"
