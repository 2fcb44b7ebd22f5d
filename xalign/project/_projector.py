"""Projector: 2-D projections of sentence embeddings that stay comparable across blocks.

A *block* is one set of sentence vectors: one layer of one store. The blocks of a fit are
projected so that a layer slider, or a before/after pair, does not jump arbitrarily:

- **PCA** is one shared fit. Every block is prepared on its own (rows L2-normalised, then
  centred on the block mean and scaled to unit root-mean-square norm, so no layer or
  checkpoint dominates by its norm), one PCA is fitted on the union of the prepared blocks
  (streamed: one block in memory at a time) and every block is projected on the same two axes.
- **UMAP** and **t-SNE** have no shared linear map, so they use a shared initialisation: the
  first block starts from its own PCA layout, and every other block starts from the finished
  layout of an earlier block with the same rows (by default the previous one; the runner
  chains the layers of the first store and starts each other store from the first store's
  same layer). Each result is then rotated (orthogonal Procrustes) onto the layout it started
  from and scaled to unit root-mean-square radius, which removes the arbitrary rotation and
  scale both methods leave. Clusters therefore start where they were and move only where the
  geometry changed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator

from xalign.errors import ConfigError, DataError
from xalign.project._config import CONTINUE_LEARNING_RATE, METHODS, Method, check_params

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["METHODS", "Method", "Projector", "prepare_block", "procrustes_align"]


def prepare_block(X: ArrayLike, *, normalize: bool = True) -> NDArray[np.float64]:
    """One block made comparable with others: unit rows, centred, unit RMS norm.

    With ``normalize=False`` the block is returned as float64 unchanged.

    Parameters
    ----------
    X : array_like, shape (n, d)
    normalize : bool

    Returns
    -------
    ndarray of float64, shape (n, d)
        :math:`Z = (U - \\bar U) / \\sqrt{\\tfrac1n\\sum_i\\lVert U_i-\\bar U\\rVert^2}` where
        :math:`U_i = X_i/\\lVert X_i\\rVert` (zero rows stay zero).

    Examples
    --------
    >>> Z = prepare_block([[2.0, 0.0], [0.0, 3.0]])
    >>> Z.round(4).tolist()
    [[0.7071, -0.7071], [-0.7071, 0.7071]]
    """
    A = np.asarray(X, dtype=np.float64)
    if not normalize:
        return A
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    A = np.divide(A, norms, out=np.zeros_like(A), where=norms > 0)
    A = A - A.mean(axis=0)
    rms = float(np.sqrt((A * A).sum(axis=1).mean())) if len(A) else 0.0
    return A / rms if rms > 0 else A


def procrustes_align(
    Y: ArrayLike, reference: ArrayLike, *, scale: bool = False
) -> NDArray[np.float64]:
    """``Y`` rotated (or reflected) about its centroid onto ``reference``, rows matched 1:1.

    Solves :math:`\\min_{R^\\top R = I}\\lVert (Y-\\bar Y)R - (T-\\bar T)\\rVert_F` by the SVD
    :math:`(Y-\\bar Y)^\\top (T-\\bar T) = U\\Sigma V^\\top`, :math:`R = UV^\\top` (Schönemann
    1966), then moves the centroid onto :math:`\\bar T`. With ``scale=True`` it also applies
    the optimal scale :math:`s=\\operatorname{tr}\\Sigma/\\lVert Y-\\bar Y\\rVert_F^2`.

    Examples
    --------
    >>> T = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]
    >>> Y = [[0.0, 0.0], [0.0, 1.0], [-2.0, 0.0]]   # T rotated by +90 degrees
    >>> (procrustes_align(Y, T).round(6) + 0.0).tolist()  # + 0.0 turns -0.0 into 0.0
    [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]
    """
    A = np.asarray(Y, dtype=np.float64)
    B = np.asarray(reference, dtype=np.float64)
    if A.shape != B.shape or A.ndim != 2:
        raise DataError(
            f"procrustes_align: Y {A.shape} and reference {B.shape} must have the same 2-D shape"
        )
    ma, mb = A.mean(axis=0), B.mean(axis=0)
    Ac, Bc = A - ma, B - mb
    U, S, Vt = np.linalg.svd(Ac.T @ Bc)
    R = U @ Vt
    out = Ac @ R
    if scale:
        denom = float((Ac * Ac).sum())
        if denom > 0:
            out *= S.sum() / denom
    return out + mb


def _rms_radius(Y: NDArray[np.float64]) -> float:
    c = Y - Y.mean(axis=0)
    return float(np.sqrt((c * c).sum(axis=1).mean())) if len(Y) else 0.0


def _top_components(cov: NDArray[np.float64], k: int) -> tuple[NDArray, NDArray]:
    """Top-``k`` eigenvectors of a symmetric matrix, signs fixed (largest |loading| > 0)."""
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:k]
    comps = vecs[:, order].T.copy()
    for c in comps:
        if c[np.argmax(np.abs(c))] < 0:
            c *= -1
    return comps, np.clip(vals[order], 0.0, None)


class Projector(BaseEstimator):
    """Project one or several blocks of sentence vectors to 2-D, comparably (see module doc).

    Parameters
    ----------
    method : {"pca", "umap", "tsne"}
        ``"umap"`` needs ``umap-learn`` (``pip install 'xalign[umap]'``); its first use in a
        process compiles for tens of seconds, so projections are precomputed by
        ``python -m xalign.project``, never in the dashboard's request path.
    n_components : int
        Output dimensions (2 for the dashboard).
    normalize : bool
        Prepare each block with :func:`prepare_block` (unit rows, centred, unit RMS norm).
    n_neighbors, min_dist : int, float
        UMAP's neighbourhood size and minimum distance (capped at ``n - 1`` neighbours).
    perplexity : float
        t-SNE perplexity (capped below ``(n - 1) / 3``).
    metric : {"cosine", "euclidean"}
        Distance of UMAP and t-SNE on the prepared vectors.
    random_state : int
        Seed of UMAP and t-SNE (PCA is deterministic).
    n_iter : int, optional
        Optimisation length: t-SNE ``max_iter`` (default 1000, at least 250) or UMAP
        ``n_epochs`` (default: UMAP's own choice).

    Attributes
    ----------
    embeddings_ : list of ndarray of float32, shape (n_b, n_components)
        The layout of each fitted block.
    components_, mean_, explained_variance_ratio_ : ndarray
        The shared PCA (``method="pca"`` only); ``explained_variance_ratio_`` is the share of
        the pooled variance of all prepared blocks.
    block_explained_ : list of float
        Share of each prepared block's own variance on the two axes (PCA only).
    init_from_ : list of int or None
        The block each block's layout started from (UMAP / t-SNE).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> layers = [rng.normal(size=(50, 8)) for _ in range(3)]
    >>> proj = Projector("pca").fit(layers)
    >>> [e.shape for e in proj.embeddings_]
    [(50, 2), (50, 2), (50, 2)]
    >>> np.allclose(proj.transform(layers[1]), proj.embeddings_[1], atol=1e-6)
    True
    """

    def __init__(
        self,
        method: Method = "pca",
        *,
        n_components: int = 2,
        normalize: bool = True,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        perplexity: float = 30.0,
        metric: str = "cosine",
        random_state: int = 0,
        n_iter: int | None = None,
    ) -> None:
        self.method = method
        self.n_components = n_components
        self.normalize = normalize
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.perplexity = perplexity
        self.metric = metric
        self.random_state = random_state
        self.n_iter = n_iter

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        check_params(
            method=self.method,
            metric=self.metric,
            n_components=self.n_components,
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            perplexity=self.perplexity,
            n_iter=self.n_iter,
            random_state=self.random_state,
        )

    @staticmethod
    def _as_blocks(X: Any) -> tuple[Sequence[Any], bool]:
        if isinstance(X, np.ndarray) or (
            isinstance(X, Sequence) and len(X) > 0 and np.ndim(X[0]) == 1
        ):
            return [X], True
        if not isinstance(X, Sequence) or len(X) == 0:
            raise DataError("X: expected a 2-D array or a non-empty sequence of 2-D arrays")
        return X, False

    def _block(self, blocks: Sequence[Any], i: int) -> NDArray[np.float64]:
        B = np.asarray(blocks[i], dtype=np.float64)
        if B.ndim != 2 or B.shape[0] == 0:
            raise DataError(f"block {i}: expected a non-empty 2-D array [rows, dim], got {B.shape}")
        if not np.isfinite(B).all():
            bad = int(np.argwhere(~np.isfinite(B))[0, 0])
            raise DataError(f"block {i}: row {bad} contains NaN or infinity")
        return prepare_block(B, normalize=self.normalize)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        init_from: Sequence[int | None] | None = None,
        on_block: Callable[[int], Any] | None = None,
    ):
        """Fit all blocks of ``X`` (a 2-D array, or a sequence of them) jointly.

        ``X`` may be any sequence whose items are read one at a time (a lazy reader over a
        store), so only one block is in memory at once.

        Parameters
        ----------
        X : array_like or sequence of array_like
        y : ignored
        init_from : sequence of int or None, optional
            UMAP / t-SNE: for each block, the index of an earlier block (same number of rows,
            rows matched 1:1) whose layout initialises it; None = its own PCA layout.
            Default: the previous block. Ignored by PCA.
        on_block : callable, optional
            Called with a block's index as soon as its layout is final (a progress bar
            advances once per layout, not once per fit).

        Returns
        -------
        self
        """
        self._check_params()
        blocks, _ = self._as_blocks(X)
        done = on_block or (lambda _i: None)
        if self.method == "pca":
            self._fit_pca(blocks, done)
        else:
            self._fit_chain(blocks, init_from, done)
        self.n_blocks_ = len(blocks)
        return self

    def fit_transform(self, X: Any, y: Any = None, **kw: Any) -> Any:
        """:meth:`fit`, then the layouts: one array, or a list for a sequence of blocks."""
        single = self._as_blocks(X)[1]
        self.fit(X, **kw)
        return self.embeddings_[0] if single else list(self.embeddings_)

    def transform(self, X: Any) -> Any:
        """Project new blocks on the shared PCA axes (each block prepared on its own).

        UMAP and t-SNE layouts have no out-of-sample map here: refit with the new blocks.
        """
        if not hasattr(self, "components_"):
            if hasattr(self, "embeddings_"):
                raise ConfigError(
                    f"Projector(method={self.method!r}) has no transform for new data; "
                    "fit it on all blocks together"
                )
            raise ConfigError("this Projector is not fitted yet; call fit first")
        blocks, single = self._as_blocks(X)
        out = [self._project(self._block(blocks, i)) for i in range(len(blocks))]
        return out[0] if single else out

    def _project(self, Z: NDArray[np.float64]) -> NDArray[np.float32]:
        if Z.shape[1] != self.components_.shape[1]:
            raise DataError(
                f"block has {Z.shape[1]} dimensions; the fitted PCA expects "
                f"{self.components_.shape[1]}"
            )
        return ((Z - self.mean_) @ self.components_.T).astype(np.float32)

    def _fit_pca(self, blocks: Sequence[Any], done: Callable[[int], Any]) -> None:
        total = 0
        s1: NDArray[np.float64] | None = None
        s2: NDArray[np.float64] | None = None
        for i in range(len(blocks)):
            Z = self._block(blocks, i)
            if s1 is None:
                s1, s2 = np.zeros(Z.shape[1]), np.zeros((Z.shape[1], Z.shape[1]))
            elif Z.shape[1] != s1.shape[0]:
                raise DataError(
                    f"block {i}: {Z.shape[1]} dimensions, block 0 has {s1.shape[0]}; a shared "
                    "PCA needs equal dimensions (project stores of other sizes separately)"
                )
            assert s2 is not None
            s1 += Z.sum(axis=0)
            s2 += Z.T @ Z
            total += Z.shape[0]
        assert s1 is not None and s2 is not None
        k = self.n_components
        if k > s1.shape[0]:
            raise ConfigError(f"n_components={k} exceeds the {s1.shape[0]} input dimensions")
        mean = s1 / total
        cov = s2 / total - np.outer(mean, mean)
        comps, vals = _top_components(cov, k)
        self.mean_ = mean
        self.components_ = comps
        trace = float(np.trace(cov))
        self.explained_variance_ = vals
        self.explained_variance_ratio_ = vals / trace if trace > 0 else np.zeros_like(vals)
        self.embeddings_ = []
        self.block_explained_ = []
        for i in range(len(blocks)):
            Z = self._block(blocks, i)
            E = self._project(Z)
            self.embeddings_.append(E)
            zc = Z - Z.mean(axis=0)
            var = float((zc * zc).sum())
            ec = E.astype(np.float64) - E.mean(axis=0)
            self.block_explained_.append(float((ec * ec).sum()) / var if var > 0 else 0.0)
            done(i)
        self.init_from_: list[int | None] = [None] * len(blocks)

    def _fit_chain(
        self,
        blocks: Sequence[Any],
        init_from: Sequence[int | None] | None,
        done: Callable[[int], Any],
    ) -> None:
        n_blocks = len(blocks)
        if init_from is None:
            init_from = [None, *range(n_blocks - 1)]
        init_from = list(init_from)
        if len(init_from) != n_blocks:
            raise ConfigError(f"init_from: {len(init_from)} entries for {n_blocks} blocks")
        for i, j in enumerate(init_from):
            if j is not None and not (0 <= int(j) < i):
                raise ConfigError(
                    f"init_from[{i}] = {j}: must be None or an earlier block index (0..{i - 1})"
                )
        self.embeddings_ = []
        raw_scale: list[float] = []
        for i in range(n_blocks):
            Z = self._block(blocks, i)
            j = init_from[i]
            if j is None:
                comps, _ = _top_components(np.cov(Z, rowvar=False), self.n_components)
                start = (Z - Z.mean(axis=0)) @ comps.T
                scale = None
            else:
                start = self.embeddings_[int(j)].astype(np.float64)
                scale = raw_scale[int(j)]
                if start.shape[0] != Z.shape[0]:
                    raise DataError(
                        f"block {i} has {Z.shape[0]} rows but block {j}, its initialisation, "
                        f"has {start.shape[0]}; chained blocks need the same rows"
                    )
            Y = self._fit_one(Z, start, scale)
            Y = procrustes_align(Y, start)
            Y -= Y.mean(axis=0)
            r = _rms_radius(Y)
            raw_scale.append(r if r > 0 else 1.0)
            self.embeddings_.append((Y / r if r > 0 else Y).astype(np.float32))
            done(i)
        self.init_from_ = [None if j is None else int(j) for j in init_from]

    def _fit_one(
        self, Z: NDArray[np.float64], start: NDArray[np.float64], scale: float | None
    ) -> NDArray[np.float64]:
        """One layout from ``start``; ``scale`` = the raw size of the layout it continues
        (None for a first block, which starts from its PCA layout)."""
        n = Z.shape[0]
        if n < 5:
            raise DataError(f"{self.method}: needs at least 5 rows per block, got {n}")
        r = _rms_radius(start)
        start = (start - start.mean(axis=0)) / (r if r > 0 else 1.0)
        if self.method == "tsne":
            from sklearn.manifold import TSNE

            if scale is None:
                # A fresh layout: small initial scale (std 1e-4, as sklearn's init="pca" and
                # Kobak & Berens 2019) and the usual early exaggeration.
                init = start / max(float(start[:, 0].std()), 1e-12) * 1e-4
                exaggeration = 12.0
            else:
                # Continuing a finished layout: start at its size, without exaggeration
                # (which would first pull the clusters apart again), as openTSNE continues
                # an embedding.
                init, exaggeration = start * scale, 1.0
            tsne = TSNE(
                n_components=self.n_components,
                perplexity=min(float(self.perplexity), (n - 1) / 3.0 - 1e-6),
                init=init.astype(np.float32),
                early_exaggeration=exaggeration,
                metric=self.metric,
                learning_rate="auto",
                random_state=self.random_state,
                max_iter=max(250, self.n_iter) if self.n_iter else 1000,
            )
            return np.asarray(tsne.fit_transform(Z.astype(np.float32)), dtype=np.float64)
        try:
            import umap
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("UMAP projections need umap-learn: pip install 'xalign[umap]'") from e
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = umap.UMAP(
                n_components=self.n_components,
                n_neighbors=min(self.n_neighbors, n - 1),
                min_dist=float(self.min_dist),
                metric=self.metric,
                init=start.astype(np.float32),
                random_state=self.random_state,
                n_epochs=self.n_iter,
                # A continued layout starts finished: a small first step keeps its clusters
                # where they were (see CONTINUE_LEARNING_RATE); a fresh one uses UMAP's own.
                learning_rate=1.0 if scale is None else CONTINUE_LEARNING_RATE,
            )
            return np.asarray(model.fit_transform(Z.astype(np.float32)), dtype=np.float64)
