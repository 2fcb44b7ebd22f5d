"""Options of the projections, validated once at the boundary.

This module imports nothing heavy (no numpy, scikit-learn, pandas): ``python -m xalign.project
--help`` and every argument error answer before any of them is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from xalign.errors import ConfigError

if TYPE_CHECKING:
    from xalign.project._projector import Projector

__all__ = ["CONTINUE_LEARNING_RATE", "METHODS", "Method", "ProjectConfig", "check_params"]

Method = Literal["pca", "umap", "tsne"]
METHODS: tuple[str, ...] = get_args(Method)
METRICS: tuple[str, ...] = ("cosine", "euclidean")

#: UMAP's initial SGD learning rate for a layout that continues a finished one (umap-learn's
#: default, 1.0, is for a fresh spectral or PCA start). At 1.0 the first epochs move every
#: point by up to the layout's size and a chained layout ends about as far from its start as
#: an unrelated one; at 0.1 it keeps the clusters where they were and refines them locally
#: (measured in ``tests/project/test_projector.py``). Part of every UMAP fit's parameters.
CONTINUE_LEARNING_RATE = 0.1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_params(
    *,
    method: object,
    metric: object = "cosine",
    n_components: object = 2,
    n_neighbors: object = 15,
    min_dist: object = 0.1,
    perplexity: object = 30.0,
    n_iter: object = None,
    random_state: object = 0,
) -> None:
    """Raise :class:`~xalign.errors.ConfigError` (one line) for a projection option out of range.

    Examples
    --------
    >>> check_params(method="umap", n_neighbors=1)
    Traceback (most recent call last):
    ...
    xalign.errors.ConfigError: n_neighbors=1: expected an integer >= 2
    """
    if method not in METHODS:
        raise ConfigError(f"method={method!r}: allowed values are {', '.join(METHODS)}")
    if metric not in METRICS:
        raise ConfigError(f"metric={metric!r}: allowed values are {', '.join(METRICS)}")
    if not _is_int(n_components) or n_components < 1:  # type: ignore[operator]
        raise ConfigError(f"n_components={n_components!r}: expected a positive integer")
    if not _is_int(n_neighbors) or n_neighbors < 2:  # type: ignore[operator]
        raise ConfigError(f"n_neighbors={n_neighbors!r}: expected an integer >= 2")
    if not _is_number(min_dist) or not 0.0 <= float(min_dist) <= 1.0:  # type: ignore[arg-type]
        raise ConfigError(f"min_dist={min_dist!r}: expected a number in [0, 1]")
    if not _is_number(perplexity) or not float(perplexity) > 0:  # type: ignore[arg-type]
        raise ConfigError(f"perplexity={perplexity!r}: expected a positive number")
    if n_iter is not None and (not _is_int(n_iter) or n_iter < 1):  # type: ignore[operator]
        raise ConfigError(f"n_iter={n_iter!r}: expected a positive integer or None")
    if not _is_int(random_state) or random_state < 0:  # type: ignore[operator]
        raise ConfigError(f"seed={random_state!r}: expected an integer >= 0")


@dataclass
class ProjectConfig:
    """Options of ``python -m xalign.project`` (recorded in every index entry).

    Stores extracted from the same corpus are fitted together (one shared PCA; UMAP / t-SNE
    layouts of the later stores start from the first store's same layer) unless
    ``independent``.
    """

    stores: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: ["pca"])
    layers: str = "all"
    pooling: str = "mean"
    sample: int | None = None
    seed: int = 0
    n_neighbors: int = 15
    min_dist: float = 0.1
    perplexity: float = 30.0
    metric: str = "cosine"
    n_iter: int | None = None
    independent: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            self.methods = [m.strip() for m in self.methods.split(",") if m.strip()]
        if isinstance(self.stores, str):
            self.stores = [self.stores]
        if not isinstance(self.methods, list | tuple) or not all(
            isinstance(m, str) for m in self.methods
        ):
            raise ConfigError(f"--methods {self.methods!r}: expected comma-separated names")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ConfigError(
                f"--methods {bad or '(empty)'}: allowed values are {', '.join(METHODS)}"
            )
        self.methods = list(dict.fromkeys(self.methods))
        if self.sample is not None and (not _is_int(self.sample) or self.sample < 1):
            raise ConfigError(f"--sample {self.sample!r}: expected a positive number per language")
        if not isinstance(self.stores, list | tuple) or not all(
            isinstance(s, str) for s in self.stores
        ):
            raise ConfigError(f"stores {self.stores!r}: expected a list of store folders")
        self.stores = [str(s) for s in self.stores]
        if not self.stores:
            raise ConfigError("no stores given: pass one or more store folders")
        if not isinstance(self.layers, str) or not self.layers.strip():
            raise ConfigError(f"--layers {self.layers!r}: expected 'all' or e.g. '0,6,12'")
        if not isinstance(self.pooling, str) or not self.pooling:
            raise ConfigError(f"--pooling {self.pooling!r}: expected a pooling name")
        # The remaining options, once, here, with the estimator's own messages.
        for m in self.methods:
            check_params(
                method=m,
                metric=self.metric,
                n_neighbors=self.n_neighbors,
                min_dist=self.min_dist,
                perplexity=self.perplexity,
                n_iter=self.n_iter,
                random_state=self.seed,
            )

    def params(self, method: str) -> dict[str, Any]:
        """The parameters that change ``method``'s coordinates."""
        if method == "pca":
            return {"normalize": True}
        if method == "umap":
            return {
                "normalize": True,
                "n_neighbors": self.n_neighbors,
                "min_dist": self.min_dist,
                "metric": self.metric,
                "n_iter": self.n_iter,
                "continue_learning_rate": CONTINUE_LEARNING_RATE,
            }
        return {
            "normalize": True,
            "perplexity": self.perplexity,
            "metric": self.metric,
            "n_iter": self.n_iter,
        }

    def projector(self, method: str) -> Projector:
        """The :class:`~xalign.project.Projector` of ``method`` with these options."""
        from xalign.project._projector import Projector

        return Projector(
            method,  # type: ignore[arg-type]
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            perplexity=self.perplexity,
            metric=self.metric,
            random_state=self.seed,
            n_iter=self.n_iter,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
