"""Feed-forward neuron statistics as stored by ``python -m xalign.extract --neurons``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["NeuronStats"]


@dataclass(frozen=True)
class NeuronStats:
    """Per block × language × neuron statistics of the feed-forward activations.

    Attributes
    ----------
    active, sum, sumsq : ndarray, float64 ``[L, G, F]``
        Over the content tokens of each language: tokens with activation > 0, the sum and
        the sum of squares of the activations.
    tokens : ndarray, float64 ``[L, G, 1]``
        Content tokens of each language (the same for every layer; broadcasts against the
        others: ``active / tokens`` is the activation probability).
    languages : list of str
        The language axis (``G``), in store order.
    layers : list of int
        The layer axis (``L``): blocks 1..L (our numbering: block ℓ feeds ``hidden_states[ℓ]``).
    modules : list of str
        The hooked module of each layer (e.g. ``encoder.layer.0.intermediate``).
    ablated : list of [layer, neuron]
        Neurons set to zero while extracting (empty for a plain store).
    label : str
        The store's checkpoint label.
    """

    active: NDArray[np.float64]
    sum: NDArray[np.float64]
    sumsq: NDArray[np.float64]
    tokens: NDArray[np.float64]
    languages: list[str]
    layers: list[int]
    modules: list[str] = field(default_factory=list)
    ablated: list[list[int]] = field(default_factory=list)
    label: str = ""

    @property
    def probability(self) -> NDArray[np.float64]:
        """Activation probability ``active / tokens`` ``[L, G, F]`` (0 without tokens)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            p = self.active / self.tokens
        return np.where(self.tokens > 0, p, 0.0)

    @property
    def mean(self) -> NDArray[np.float64]:
        """Mean activation per token ``sum / tokens`` (0 where a language has no tokens)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self.sum / self.tokens
        return np.where(self.tokens > 0, m, 0.0)

    def select(self, langs: list[str]) -> NeuronStats:
        """The same statistics restricted to ``langs`` (in that order)."""
        idx = [self.languages.index(x) for x in langs]
        take: dict[str, Any] = {
            k: getattr(self, k)[:, idx] for k in ("active", "sum", "sumsq", "tokens")
        }
        return NeuronStats(
            **take,
            languages=list(langs),
            layers=list(self.layers),
            modules=list(self.modules),
            ablated=[list(x) for x in self.ablated],
            label=self.label,
        )
