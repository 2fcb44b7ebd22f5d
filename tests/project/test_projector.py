"""Projector, Procrustes and sampling, checked against independent numpy / scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xalign.errors import ConfigError, DataError
from xalign.project import Projector, prepare_block, procrustes_align, stratified_sample


@pytest.fixture(autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread: tiny t-SNE fits on a busy machine otherwise spend seconds in
    OpenMP spin-waits (a 45-point fit: 0.05 s with one thread, up to 4 s with two)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def blobs(n_per: int = 20, d: int = 12, k: int = 3, seed: int = 0, spread: float = 6.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * spread
    X = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres])
    y = np.repeat(np.arange(k), n_per)
    return X, y


def numpy_prepare(X):
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    U = U - U.mean(axis=0)
    return U / np.sqrt((U**2).sum(axis=1).mean())


def test_prepare_block_matches_numpy():
    X, _ = blobs()
    Z = prepare_block(X)
    np.testing.assert_allclose(Z, numpy_prepare(X), atol=1e-12)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    assert np.isclose((Z**2).sum(axis=1).mean(), 1.0)
    np.testing.assert_array_equal(prepare_block(X, normalize=False), X)


def test_shared_pca_equals_sklearn_on_the_union_of_prepared_blocks():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    blocks = [rng.normal(size=(40, 10)) @ rng.normal(size=(10, 10)) + 5 * i for i in range(3)]
    proj = Projector("pca").fit(blocks)
    union = np.concatenate([numpy_prepare(b) for b in blocks])
    ref = PCA(n_components=2, svd_solver="full").fit(union)
    for b, emb in zip(blocks, proj.embeddings_, strict=True):
        expect = (numpy_prepare(b) - ref.mean_) @ ref.components_.T
        signs = np.sign((expect * emb).sum(axis=0))  # components are defined up to sign
        np.testing.assert_allclose(emb, expect * signs, atol=1e-5)
    np.testing.assert_allclose(
        proj.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-8
    )
    for c in proj.components_:  # the documented sign convention
        assert c[np.argmax(np.abs(c))] > 0
    # transform re-projects a block on the same axes
    np.testing.assert_allclose(proj.transform(blocks[2]), proj.embeddings_[2], atol=1e-6)


def test_pca_block_norm_does_not_matter():
    """A layer with 100x larger vectors is not allowed to dominate the shared axes."""
    X, _ = blobs(seed=2)
    Y, _ = blobs(seed=3)
    a = Projector("pca").fit_transform([X, Y])
    b = Projector("pca").fit_transform([X, 100 * Y])
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    single = Projector("pca").fit_transform(X)
    assert isinstance(single, np.ndarray) and single.shape == (len(X), 2)


def test_procrustes_recovers_rotation_reflection_and_translation():
    rng = np.random.default_rng(0)
    T = rng.normal(size=(30, 2))
    theta = 1.1
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    F = np.array([[1.0, 0.0], [0.0, -1.0]])  # a reflection too
    Y = T @ R @ F + np.array([3.0, -7.0])
    np.testing.assert_allclose(procrustes_align(Y, T), T, atol=1e-10)
    np.testing.assert_allclose(procrustes_align(2.5 * Y, T, scale=True), T, atol=1e-10)
    # without scale the spread of Y is kept
    out = procrustes_align(2.5 * Y, T)
    assert np.isclose(np.linalg.norm(out - out.mean(0)), 2.5 * np.linalg.norm(T - T.mean(0)))
    with pytest.raises(DataError, match="same 2-D shape"):
        procrustes_align(Y[:5], T)


def test_tsne_chain_is_seeded_trustworthy_and_continuous():
    from sklearn.manifold import trustworthiness

    X, y = blobs(n_per=15, d=16, k=3, seed=4)
    rng = np.random.default_rng(5)
    X2 = X + 0.05 * rng.normal(size=X.shape)  # "the next layer": almost the same geometry
    proj = Projector("tsne", perplexity=8, random_state=0, n_iter=400)
    e0, e1 = proj.fit_transform([X, X2])
    assert proj.init_from_ == [None, 0]
    for E, src in ((e0, X), (e1, X2)):
        assert E.dtype == np.float32 and E.shape == (45, 2)
        np.testing.assert_allclose(E.mean(axis=0), 0, atol=1e-5)
        assert np.isclose(np.sqrt((E.astype(float) ** 2).sum(axis=1).mean()), 1.0, atol=1e-5)
        assert trustworthiness(numpy_prepare(src), E, n_neighbors=5, metric="cosine") >= 0.9
        # clusters stay apart: each point's nearest layout neighbour is in its own blob
        d = ((E[:, None] - E[None]) ** 2).sum(-1) + np.eye(len(E)) * 1e9
        assert (y[d.argmin(1)] == y).mean() >= 0.95
    # continuity: clusters stay where they were (a fresh layout could put them anywhere),
    # points move much less than the layout's size (unit RMS radius)
    for k in range(3):
        assert np.linalg.norm(e1[y == k].mean(0) - e0[y == k].mean(0)) < 0.25
    assert np.sqrt(((e1 - e0) ** 2).sum(axis=1).mean()) < 0.6
    again = Projector("tsne", perplexity=8, random_state=0, n_iter=400).fit_transform([X, X2])
    np.testing.assert_array_equal(again[0], e0)
    np.testing.assert_array_equal(again[1], e1)


def test_chain_options_are_validated():
    X, _ = blobs()
    with pytest.raises(ConfigError, match="earlier block"):
        Projector("tsne").fit([X, X], init_from=[None, 1])
    with pytest.raises(ConfigError, match="2 entries for 3"):
        Projector("tsne").fit([X, X, X], init_from=[None, 0])
    with pytest.raises(DataError, match="same rows"):
        Projector("tsne", perplexity=5).fit([X, X[:30]])
    with pytest.raises(ConfigError, match="allowed values are pca, umap, tsne"):
        Projector("lda").fit(X)
    with pytest.raises(ConfigError, match="allowed values are cosine, euclidean"):
        Projector("pca", metric="manhattan").fit(X)
    with pytest.raises(DataError, match="row 3 contains NaN"):
        Projector("pca").fit(np.where(np.arange(len(X))[:, None] == 3, np.nan, X))
    with pytest.raises(DataError, match="shared PCA needs equal dimensions"):
        Projector("pca").fit([X, X[:, :5]])
    with pytest.raises(ConfigError, match="no transform for new data"):
        Projector("tsne", perplexity=5, n_iter=250).fit(X).transform(X)
    with pytest.raises(ConfigError, match="not fitted"):
        Projector("pca").transform(X)


def test_get_params_roundtrip():
    from sklearn.base import clone

    p = Projector("umap", n_neighbors=7, random_state=3)
    assert clone(p).get_params() == p.get_params()
    assert p.get_params()["n_neighbors"] == 7


# ---------------------------------------------------------------- sampling


def sample_rows(n_groups=30, langs=("eng", "deu", "fra"), missing=("fra", 5)):
    recs = []
    for g in range(n_groups):
        for lang in langs:
            if lang == missing[0] and g < missing[1]:
                continue  # fra lacks the first 5 groups
            recs.append({"lang": lang, "group": f"g{g}"})
    recs += [{"lang": "eng", "group": None} for _ in range(4)]  # rows without a group
    return pd.DataFrame(recs)


def test_stratified_sample_keeps_translations_together():
    rows = sample_rows()
    idx = stratified_sample(rows, 10, seed=0)
    sub = rows.iloc[idx]
    counts = sub["lang"].value_counts()
    assert counts.to_dict() == {"eng": 10, "deu": 10, "fra": 10}
    assert np.all(np.diff(idx) > 0)
    g = {lang: set(d["group"].dropna()) for lang, d in sub.groupby("lang")}
    # languages that cover the same groups keep the same groups
    assert g["eng"] - {None} == g["deu"]
    # fra lacks g0..g4: it takes the next groups in the same order, so overlaps most
    assert len(g["fra"] & g["deu"]) >= 6
    assert stratified_sample(rows, 10, seed=0).tolist() == idx.tolist()
    assert stratified_sample(rows, 10, seed=1).tolist() != idx.tolist()
    assert stratified_sample(rows, None).tolist() == list(range(len(rows)))
    big = stratified_sample(rows, 1000, seed=0)
    assert big.tolist() == list(range(len(rows)))  # fewer rows than asked: all of them


def test_stratified_sample_order_does_not_depend_on_row_order():
    rows = sample_rows()
    shuffled = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    a = rows.iloc[stratified_sample(rows, 7, seed=3)]
    b = shuffled.iloc[stratified_sample(shuffled, 7, seed=3)]
    key = lambda d: sorted(map(tuple, d[["lang", "group"]].fillna("-").to_numpy()))  # noqa: E731
    assert key(a) == key(b)


def test_stratified_sample_rejects_bad_sizes():
    rows = sample_rows()
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="positive number of rows per language"):
            stratified_sample(rows, bad)
