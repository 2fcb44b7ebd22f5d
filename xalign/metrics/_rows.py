"""Row normalisation shared by the metrics: one helper, an explicit policy for zero rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from xalign._validate import check_choice
from xalign.errors import DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["ZeroRows", "float32_norms", "normalize_rows"]

#: What :func:`normalize_rows` does with an all-zero row (no direction, so no unit vector):
#: ``"raise"`` a DataError naming the row (retrieval: a cosine with it is undefined),
#: ``"keep"`` it as zeros (cosine 0 with everything, scikit-learn's ``normalize``
#: convention; clusters and isotropy), or make it ``"nan"`` (undefined, and visibly so).
ZeroRows = Literal["raise", "keep", "nan"]
_ZERO_ROWS: tuple[str, ...] = get_args(ZeroRows)


def normalize_rows(
    x: ArrayLike,
    *,
    zero: ZeroRows,
    what: str = "X",
    note: str = "",
    dtype: type[np.floating] = np.float64,
) -> NDArray[np.floating]:
    """Return a copy of the 2-D array ``x`` with every row scaled to unit L2 norm.

    ``dtype=np.float64`` (default): computed in float64 with ``np.linalg.norm``; the input
    is expected finite (callers check it once). ``dtype=np.float32``: the float32 copy is
    divided by norms from float32 sums of squares and a float32 square root (relative error
    below (d/2 + 1)·2⁻²⁴;
    float64 sums where float32 overflows or a norm is below 2⁻²⁰), and a row with NaN or
    infinity, found from its non-finite norm without a separate pass, raises DataError;
    :func:`~xalign.metrics._knn.rho_float32_normalised` bounds the componentwise error.
    ``zero`` decides what an all-zero row becomes (:data:`ZeroRows`); ``what`` names the
    array and ``note`` qualifies the zero norm (e.g. " after centring") in error messages.

    Examples
    --------
    >>> normalize_rows([[3.0, 4.0], [0.0, 0.0]], zero="keep").tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    >>> normalize_rows([[3.0, 4.0], [0.0, 0.0]], zero="nan")[1].tolist()
    [nan, nan]
    >>> normalize_rows([[3.0, 4.0], [0.0, 0.0]], zero="raise", what="src")
    Traceback (most recent call last):
    ...
    xalign.errors.DataError: src: row 1 has zero norm; cosine is undefined
    """
    check_choice("zero", zero, _ZERO_ROWS)
    if dtype is np.float32:
        out = np.ascontiguousarray(x, dtype=np.float32)
        _check_2d(out, what)
        n32 = float32_norms(out)
        # Fast path: every norm finite and at least 2⁻²⁰ (NaN fails both tests). Otherwise
        # float64 sums: float32 squares overflowed, or underflowed (tiny rows), which would
        # break the relative error bound.
        if len(n32) and n32.min() >= 2.0**-20 and n32.max() < np.inf:
            return out / n32[:, None]
        norms = np.sqrt(np.einsum("ij,ij->i", out, out, dtype=np.float64))
        if not np.isfinite(norms).all():
            bad = int(np.flatnonzero(~np.isfinite(norms))[0])
            raise DataError(f"{what}: row {bad} contains NaN or infinity; expected finite values")
        norms = _zero_policy(norms, zero, what, note)
        return out / norms.astype(np.float32)[:, None]
    arr = np.asarray(x, dtype=np.float64)
    _check_2d(arr, what)
    norms = _zero_policy(np.linalg.norm(arr, axis=1), zero, what, note)
    return arr / norms[:, None]


def float32_norms(x32: NDArray[np.float32]) -> NDArray[np.float32]:
    """Row norms of a 2-D float32 array from float32 sums of squares and a float32 square root:
    what :func:`normalize_rows` with ``dtype=np.float32`` divides by when every norm is finite
    and at least 2⁻²⁰ (NaN and infinity propagate; callers check). The sums are ``np.vecdot``
    (numpy ≥ 2; half the time of ``einsum`` on 100 × 384 rows) or ``einsum``: any float32
    summation order, which the error bound allows for."""
    if _VECDOT is None:
        return np.sqrt(np.einsum("ij,ij->i", x32, x32))
    with np.errstate(over="ignore", invalid="ignore"):  # as quiet as einsum on overflow
        return np.sqrt(_VECDOT(x32, x32))


_VECDOT = getattr(np, "vecdot", None)


def _check_2d(arr: NDArray[np.floating], what: str) -> None:
    if arr.ndim != 2:
        raise DataError(f"{what}: expected a 2-D array [rows, dim], got shape {arr.shape}")


def _zero_policy(
    norms: NDArray[np.float64], zero: str, what: str, note: str
) -> NDArray[np.float64]:
    """Norms to divide by: zero norms raise, or become 1 (row stays 0) or NaN (row NaN)."""
    is_zero = norms == 0.0
    if not is_zero.any():
        return norms
    if zero == "raise":
        bad = int(np.flatnonzero(is_zero)[0])
        raise DataError(f"{what}: row {bad} has zero norm{note}; cosine is undefined")
    norms = norms.copy()
    norms[is_zero] = 1.0 if zero == "keep" else np.nan
    return norms
