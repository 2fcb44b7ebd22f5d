"""Is a difference between two checkpoints real? Paired bootstrap CI and sign-flip test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PairedDifference", "paired_difference"]

#: Up to this many paired units every sign pattern is enumerated (2**16 = 65,536 patterns).
EXACT_MAX_UNITS = 16


@dataclass(frozen=True)
class PairedDifference:
    """The paired comparison of ``a`` − ``b`` over ``n`` units (see :func:`paired_difference`)."""

    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    n_positive: int
    n_negative: int
    confidence: float
    n_boot: int
    permutation: str
    n_perm: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self, a: str = "a", b: str = "b") -> str:
        """One line: mean difference, CI, p-value and how many units favour each side."""
        pct = round(100 * self.confidence)
        test = (
            f"exact sign-flip test over all 2^{self.n} patterns"
            if self.permutation == "exact"
            else f"sign-flip test, {self.n_perm} Monte Carlo patterns, seed {self.seed}"
        )
        return (
            f"{a} − {b} = {self.mean:+.4f} (mean over {self.n} paired units; {pct} % "
            f"bootstrap CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}]; two-sided p = "
            f"{self.p_value:.3g}, {test}; {a} higher on {self.n_positive}, lower on "
            f"{self.n_negative})"
        )


def _paired_values(
    a: Any, b: Any, unit_cols: Sequence[str] | None, value_col: str
) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    if isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
        if not (isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame)):
            raise ConfigError("paired_difference: give two DataFrames or two arrays, not one each")
        if not unit_cols:
            raise ConfigError("paired_difference: unit_cols is required with DataFrames")
        cols = list(unit_cols)
        for name, df in (("a", a), ("b", b)):
            missing = [c for c in [*cols, value_col] if c not in df.columns]
            if missing:
                raise DataError(f"paired_difference: {name} has no column(s) {missing}")
            if df.duplicated(cols).any():
                dup = df[df.duplicated(cols, keep=False)][cols].iloc[0].tolist()
                raise DataError(
                    f"paired_difference: {name} has several rows for unit {dup} of {cols}; "
                    "expected one value per unit"
                )
        m = a[[*cols, value_col]].merge(
            b[[*cols, value_col]], on=cols, how="outer", suffixes=("_a", "_b"), indicator=True
        )
        lonely = m[m["_merge"] != "both"]
        if len(lonely):
            side = "a" if lonely["_merge"].iloc[0] == "left_only" else "b"
            raise DataError(
                f"paired_difference: {len(lonely)} unit(s) without a partner, e.g. "
                f"{lonely[cols].iloc[0].tolist()} only in {side}; both sides need the same units"
            )
        m = m.sort_values(cols, kind="stable")
        x = m[f"{value_col}_a"].to_numpy(dtype=float)
        y = m[f"{value_col}_b"].to_numpy(dtype=float)
    else:
        if unit_cols:
            raise ConfigError("paired_difference: unit_cols applies to DataFrames, not arrays")
        x = np.asarray(a, dtype=float).ravel()
        y = np.asarray(b, dtype=float).ravel()
        if x.shape != y.shape:
            raise DataError(
                f"paired_difference: a has {x.size} values and b {y.size}; paired values needed"
            )
    if not len(x):
        raise DataError("paired_difference: no paired units")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError("paired_difference: a or b holds NaN or infinite values")
    return x, y


def paired_difference(
    a: pd.DataFrame | Sequence[float] | np.ndarray,
    b: pd.DataFrame | Sequence[float] | np.ndarray,
    *,
    unit_cols: Sequence[str] | None = None,
    value_col: str = "value",
    n_boot: int = 10_000,
    n_perm: int = 100_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Mean paired difference ``a − b`` with a bootstrap CI and a sign-flip permutation p-value.

    With per-unit differences :math:`d_i = a_i - b_i` over *n* paired units (for example
    seed × target language: the same seed and language under two methods):

    - ``mean`` = :math:`\\bar d = \\frac1n\\sum_i d_i`;
    - ``ci_low``, ``ci_high``: percentile bootstrap over the units — ``n_boot`` resamples of
      *n* units with replacement (``numpy.random.default_rng(seed)``), the
      :math:`(1-c)/2` and :math:`(1+c)/2` quantiles of their mean differences;
    - ``p_value``: two-sided paired permutation (sign-flip) test of "no difference": under
      exchangeability of the two methods within a unit each :math:`d_i` is equally likely to
      carry either sign, so :math:`p = P(|\\frac1n\\sum_i s_i d_i| \\ge |\\bar d|)` over
      :math:`s \\in \\{-1, 1\\}^n`. Every pattern is enumerated when
      :math:`n \\le 16` (``permutation="exact"``); otherwise ``n_perm`` random patterns from
      ``default_rng(seed + 1)`` and :math:`p = (1 + \\#\\{|T^*| \\ge |\\bar d|\\}) / (1 +
      n_{perm})`, which is never 0 (``permutation="monte carlo"``).

    Units are assumed independent; seeds × languages share a model per seed, so the CI and p
    are those of a fixed set of languages and seeds, not of new ones.

    Parameters
    ----------
    a, b : DataFrame or 1-D array
        DataFrames (one row per unit, joined on ``unit_cols``; both must hold the same units)
        or two arrays paired by position.
    unit_cols : sequence of str
        Columns naming a unit (e.g. ``["seed", "lang"]``); required with DataFrames.
    value_col : str
        The column holding the number (default ``value``, as in the results table).
    n_boot, n_perm : int
        Bootstrap resamples; random sign patterns when *n* > 16.
    confidence : float
        Level of the CI, in (0, 1).
    seed : int
        Seed of the bootstrap (``seed``) and of the Monte Carlo patterns (``seed + 1``),
        recorded in the result.

    Returns
    -------
    PairedDifference
        ``mean, ci_low, ci_high, p_value, n, n_positive, n_negative`` and how they were
        computed (``confidence, n_boot, permutation, n_perm, seed``); ``.sentence()`` writes it
        as one line.

    References
    ----------
    Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13 and 15; Good (2005),
    *Permutation, Parametric and Bootstrap Tests of Hypotheses*, §3 (paired sign-flip test).

    Examples
    --------
    >>> r = paired_difference([0.7, 0.8, 0.9], [0.6, 0.6, 0.6], n_boot=1000)
    >>> round(r.mean, 4), r.p_value, r.permutation
    (0.2, 0.25, 'exact')
    """
    if int(n_boot) < 1 or int(n_perm) < 1:
        raise ConfigError(f"paired_difference: n_boot={n_boot}, n_perm={n_perm}: expected ≥ 1")
    if not 0 < confidence < 1:
        raise ConfigError(f"paired_difference: confidence={confidence}: expected in (0, 1)")
    x, y = _paired_values(a, b, unit_cols, value_col)
    d = x - y
    n = len(d)
    mean = float(d.mean())
    rng = np.random.default_rng(seed)
    boot = np.empty(int(n_boot))
    for s in range(0, int(n_boot), 1000):  # bounded memory for large n × n_boot
        k = min(1000, int(n_boot) - s)
        boot[s : s + k] = d[rng.integers(0, n, size=(k, n))].mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    observed = abs(mean)
    # A tolerance for ties: |mean| of a flipped pattern equal to the observed one counts.
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n <= EXACT_MAX_UNITS:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
        stats = np.abs(signs @ d) / n
        p = float(np.mean(stats >= observed - tol))
        method, used = "exact", 2**n
    else:
        prng = np.random.default_rng(seed + 1)
        hits = 0
        for s in range(0, int(n_perm), 10_000):
            k = min(10_000, int(n_perm) - s)
            signs = prng.choice(np.array([-1.0, 1.0]), size=(k, n))
            hits += int((np.abs(signs @ d) / n >= observed - tol).sum())
        p = (1 + hits) / (1 + int(n_perm))
        method, used = "monte carlo", int(n_perm)
    return PairedDifference(
        mean=mean,
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=p,
        n=n,
        n_positive=int((d > 0).sum()),
        n_negative=int((d < 0).sum()),
        confidence=float(confidence),
        n_boot=int(n_boot),
        permutation=method,
        n_perm=used,
        seed=int(seed),
    )
