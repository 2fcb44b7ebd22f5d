from __future__ import annotations

import itertools

import numpy as np
import pytest

from xalign.data import read_gold_alignments, read_word_pairs
from xalign.errors import ConfigError, DataError
from xalign.metrics._alignment import (
    aer,
    alignment_prf,
    alignment_scores,
    argmax_align,
    attention_align,
    itermax_align,
    merge_subwords,
    subword_to_word_links,
    word_similarity,
)

# ------------------------------------------------------------------ similarity and ArgMax


def test_merge_subwords_is_the_mean_of_each_words_tokens():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(7, 5))
    word_ids = [None, 0, 1, 1, 1, 2, None]
    words = merge_subwords(tokens, word_ids)
    np.testing.assert_allclose(words[0], tokens[1])
    np.testing.assert_allclose(words[1], (tokens[2] + tokens[3] + tokens[4]) / 3)
    np.testing.assert_allclose(words[2], tokens[5])
    with pytest.raises(DataError, match="word 1 has no token"):
        merge_subwords(tokens[:3], [0, 2, 2])
    with pytest.raises(DataError, match="one per token"):
        merge_subwords(tokens, [0, 1])


def test_word_similarity_matches_sklearn_cosine():
    from sklearn.metrics.pairwise import cosine_similarity

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(5, 6))
    np.testing.assert_allclose(word_similarity(a, b), cosine_similarity(a, b), atol=1e-12)
    np.testing.assert_allclose(
        word_similarity(a, b, scale="simalign"), (cosine_similarity(a, b) + 1) / 2, atol=1e-12
    )
    with pytest.raises(ConfigError, match="scale"):
        word_similarity(a, b, scale="angular")


def brute_force_mutual_argmax(s):
    m, n = s.shape
    out = set()
    for i, j in itertools.product(range(m), range(n)):
        row_best = all(s[i, j] >= s[i, jj] for jj in range(n)) and all(
            s[i, j] > s[i, jj] for jj in range(j)
        )
        col_best = all(s[i, j] >= s[ii, j] for ii in range(m)) and all(
            s[i, j] > s[ii, j] for ii in range(i)
        )
        if row_best and col_best:
            out.add((i, j))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_argmax_align_matches_brute_force(seed):
    s = np.random.default_rng(seed).uniform(size=(6, 8))
    assert argmax_align(s) == brute_force_mutual_argmax(s)


def test_argmax_align_hand_example_and_ties_go_to_the_first_maximum():
    s = np.array([[0.9, 0.2], [0.8, 0.7], [0.1, 0.6]])
    # rows: 0->0, 1->0, 2->1; columns: 0->0, 1->1  => (0,0) only ((1,0): col 0 prefers row 0)
    assert argmax_align(s) == {(0, 0)}
    assert argmax_align(np.ones((2, 2))) == {(0, 0)}


# ------------------------------------------------------------------ IterMax


def test_itermax_hand_example():
    s = np.array(
        [
            [0.90, 0.10, 0.10, 0.10],
            [0.10, 0.50, 0.60, 0.10],
            [0.10, 0.20, 0.95, 0.10],
            [0.10, 0.40, 0.10, 0.20],
        ]
    )
    # Round 1 (ArgMax): rows -> 0, 2, 2, 1; columns -> 0, 1, 2, 3  =>  (0,0), (2,2).
    # Round 2: unaligned rows {1, 3}, columns {1, 3}. Weight 1 where both words are
    # unaligned, 0.9 where one is, 0 where both are aligned. S*W:
    #   row 0: [0, .09, 0, .09]    row 1: [.09, .5, .54, .1]
    #   row 2: [0, .18, 0, .09]    row 3: [.09, .4, .09, .2]
    #   rows -> 1, 2, 1, 1; columns -> 1, 1, 1, 3  =>  mutual: (1,2) only.
    # Round 3: unaligned row {3}, columns {1, 3}. S*W:
    #   row 0: [0, .09, 0, .09]    row 1: [0, .45, 0, .09]
    #   row 2: [0, .18, 0, .09]    row 3: [.09, .4, .09, .2]
    #   rows -> 1, 1, 1, 1; columns -> 3, 1, 3, 3  =>  mutual: (1,1) (column 1 is open).
    # Round 4: unaligned row {3}, column {3}. S*W: rows 0-2 = [0, 0, 0, .09],
    #   row 3 = [.09, .36, .09, .2]; rows -> 3, 3, 3, 1; columns -> 3, 3, 3, 3
    #   =>  mutual: (3,1).
    assert argmax_align(s) == {(0, 0), (2, 2)}
    assert itermax_align(s, max_iter=1) == {(0, 0), (2, 2)}
    assert itermax_align(s) == {(0, 0), (2, 2), (1, 2)}
    assert itermax_align(s, max_iter=3) == {(0, 0), (2, 2), (1, 2), (1, 1)}
    assert itermax_align(s, max_iter=4) == {(0, 0), (2, 2), (1, 2), (1, 1), (3, 1)}
    # alpha = 0.5: round 2 weights are 1 / .5 / 0, S*W row 1 = [.05, .5, .3, .1], and
    # columns -> 1, 1, 1, 3  =>  (1,1) instead of (1,2)
    assert itermax_align(s, alpha=0.5) == {(0, 0), (2, 2), (1, 1)}


def reference_round(s, links, alpha):
    """One IterMax round written with loops (SimAlign iter_max)."""
    m, n = s.shape
    row_done = {i for i, _ in links}
    col_done = {j for _, j in links}
    w = np.zeros_like(s)
    for i, j in itertools.product(range(m), range(n)):
        w[i, j] = min(1.0, alpha * (i not in row_done) + alpha * (j not in col_done))
    new = brute_force_mutual_argmax(s * w)
    return {(i, j) for i, j in new if i not in row_done or j not in col_done}


@pytest.mark.parametrize("seed", range(6))
def test_itermax_rounds_match_a_loop_reference(seed):
    s = np.random.default_rng(seed).uniform(size=(5, 7))
    links = argmax_align(s)
    for rounds in (2, 3, 4):
        added = reference_round(s, links, 0.9)
        rows_full = len({i for i, _ in links}) == 5
        cols_full = len({j for _, j in links}) == 7
        if not rows_full and not cols_full:
            links = links | added
        assert itermax_align(s, max_iter=rounds) == links


def test_itermax_short_sentences_get_plain_argmax():
    s = np.array([[0.9, 0.8, 0.7], [0.95, 0.1, 0.2]])
    assert itermax_align(s, max_iter=5) == argmax_align(s)


def test_itermax_bad_options():
    with pytest.raises(ConfigError, match="max_iter"):
        itermax_align(np.eye(3), max_iter=0)
    with pytest.raises(ConfigError, match="alpha"):
        itermax_align(np.eye(3), alpha=1.5)


def test_subword_links_map_to_word_links_by_union():
    links = {(0, 0), (1, 0), (2, 2), (3, 1)}
    src_ids = [0, 0, 1, None]
    tgt_ids = [0, 1, 1]
    assert subword_to_word_links(links, src_ids, tgt_ids) == {(0, 0), (1, 1)}


# ------------------------------------------------------------------ attention alignment


def test_attention_align_argmax_of_product():
    ab = np.array([[0.30, 0.10, 0.05], [0.05, 0.10, 0.40]])  # rows of a -> columns of b
    ba = np.array([[0.50, 0.10], [0.20, 0.20], [0.05, 0.60]])  # rows of b -> columns of a
    # renormalised: p_ab = [[2/3, 2/9, 1/9], [1/11, 2/11, 8/11]]
    #               p_ba = [[5/6, 1/6], [1/2, 1/2], [1/13, 12/13]]
    p_ab = ab / ab.sum(1, keepdims=True)
    p_ba = ba / ba.sum(1, keepdims=True)
    s = p_ab * p_ba.T
    assert attention_align(ab, ba) == brute_force_mutual_argmax(s) == {(0, 0), (1, 2)}
    assert attention_align(ab, ba, method="threshold", threshold=0.15) == {
        (0, 0),
        (0, 1),
        (1, 1),
        (1, 2),
    }
    assert attention_align(ab, ba, method="threshold", threshold=0.4) == {(0, 0), (1, 2)}
    # a head axis is averaged first
    heads = np.stack([ab, ab * 0.5 + 0.01])
    heads_ba = np.stack([ba, ba])
    assert attention_align(heads, heads_ba) == attention_align(heads.mean(0), ba)


def test_attention_align_bad_inputs():
    with pytest.raises(DataError, match=r"expected shapes \(m, n\) and \(n, m\)"):
        attention_align(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ConfigError, match="method"):
        attention_align(np.ones((2, 2)), np.ones((2, 2)), method="mwmf")


# ------------------------------------------------------------------ AER, P, R, F1


def test_aer_hand_example():
    predicted = {(0, 0), (0, 1), (1, 1), (2, 2)}
    sure = {(0, 0), (1, 1)}
    possible = {(0, 1), (2, 1)}  # P = S u possible = {(0,0),(1,1),(0,1),(2,1)}
    # |A&S| = 2, |A&P| = 3, |A| = 4, |S| = 2  =>  AER = 1 - (2 + 3) / (4 + 2) = 1/6
    assert aer(predicted, sure, possible) == pytest.approx(1 / 6)
    # precision = |A&P|/|A| = 3/4, recall = |A&S|/|S| = 1, F1 = 2*.75/(1.75) = 6/7
    assert alignment_prf(predicted, sure, possible) == pytest.approx((0.75, 1.0, 6 / 7))
    assert aer(sure, sure, set()) == 0.0
    assert aer(set(), sure, set()) == 1.0
    assert np.isnan(aer(set(), set(), set()))


def test_corpus_scores_sum_counts_like_awesome_align():
    golds = [
        ({(0, 0), (1, 1)}, {(0, 0), (1, 1), (1, 2)}),
        ({(0, 0)}, {(0, 0)}),
        (set(), {(3, 3)}),
    ]
    preds = [{(0, 0), (1, 2), (2, 2)}, {(0, 1)}, {(3, 3), (4, 4)}]
    # A&S: 1 + 0 + 0 = 1; A&P: 2 + 0 + 1 = 3; |A| = 6; |S| = 3
    r = alignment_scores(preds, golds)
    assert r["aer"] == pytest.approx(1 - (1 + 3) / (6 + 3))
    assert r["precision"] == pytest.approx(3 / 6) and r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert (r["n_sentences"], r["n_predicted"], r["n_sure"], r["n_possible"]) == (3, 6, 3, 5)
    per_sentence = np.nanmean([aer(p, s, q) for p, (s, q) in zip(preds, golds, strict=True)])
    assert r["aer"] != pytest.approx(per_sentence)  # corpus level, not a mean of AERs
    with pytest.raises(DataError, match="equal counts"):
        alignment_scores(preds[:2], golds)


def test_read_gold_alignments_format_and_errors(tmp_path):
    path = tmp_path / "x.gold"
    path.write_text("1-1 2p3 2-2\n\n3-1 \n", encoding="utf-8")
    gold = read_gold_alignments(path)
    assert gold == [
        ({(0, 0), (1, 1)}, {(0, 0), (1, 2), (1, 1)}),
        (set(), set()),
        ({(2, 0)}, {(2, 0)}),
    ]
    bad = tmp_path / "bad.gold"
    bad.write_text("1-1\n1-1 2x3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.gold:2: link '2x3'"):
        read_gold_alignments(bad)
    zero = tmp_path / "zero.gold"
    zero.write_text("0-1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"zero\.gold:1: .*1-based"):
        read_gold_alignments(zero)
    with pytest.raises(DataError, match="cannot read"):
        read_gold_alignments(tmp_path / "missing.gold")


README_COUNTS = {
    # pair: (file stem, sentences, sure links, possible links beyond sure, src tokens, tgt tokens)
    "en-fr": ("enfr", 447, 4038, 13400, 7020, 7761),
    "ro-en": ("roen", 248, 6198, 0, 5495, 5639),
    "ja-en": ("jaen", 582, 13562, 0, 14442, 12608),
}


@pytest.mark.shared
@pytest.mark.parametrize("pair", sorted(README_COUNTS))
def test_real_gold_files_match_readme_counts(shared_data, pair):
    stem, n_sent, n_sure, n_possible_only, n_src, n_tgt = README_COUNTS[pair]
    folder = shared_data / "word-align" / pair
    gold = read_gold_alignments(folder / f"{stem}.gold")
    words = read_word_pairs(folder / f"{stem}.src-tgt")
    assert len(gold) == len(words) == n_sent
    assert sum(len(s) for s, _ in gold) == n_sure
    assert sum(len(p) - len(s) for s, p in gold) == n_possible_only
    assert all(s <= p for s, p in gold)
    assert sum(len(a) for a, _ in words) == n_src and sum(len(b) for _, b in words) == n_tgt
    # gold links as predictions: perfect scores; the empty prediction: AER 1
    perfect = alignment_scores([s for s, _ in gold], gold)
    assert perfect["aer"] == 0.0 and perfect["precision"] == perfect["recall"] == 1.0
    empty = alignment_scores([set() for _ in gold], gold)
    assert empty["aer"] == 1.0 and empty["recall"] == 0.0
    if pair == "en-fr":
        # predicting every possible link: precision 1, recall 1, AER 0 (P counts as correct)
        everything = alignment_scores([p for _, p in gold], gold)
        assert everything["aer"] == 0.0 and everything["n_predicted"] == 17438


def test_itermax_depends_on_the_scale_even_with_positive_cosines():
    """Any offset changes IterMax (its weights multiply S); ArgMax only compares values.

    Randomised check of what the ``word_similarity`` docstring states: on positive cosines
    alone, IterMax on cos and on (cos+1)/2 (SimAlign's scale) disagree on some matrices,
    ArgMax never does, and a pure positive rescaling (no offset) never changes IterMax.
    """
    rng = np.random.default_rng(0)
    differ = 0
    for _ in range(300):
        cos = rng.uniform(0.05, 0.95, size=(4, 5))
        assert argmax_align(cos) == argmax_align((cos + 1) / 2)
        assert itermax_align(cos) == itermax_align(3.0 * cos)
        differ += itermax_align(cos) != itermax_align((cos + 1) / 2)
    assert differ > 0
