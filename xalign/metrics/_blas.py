"""BLAS thread control for metric groups made of many small products."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["one_blas_thread", "single_blas_thread"]


_built: dict[str, Any] = {"modules": -1, "controller": None}


def _controller() -> Any:
    """A ThreadpoolController, rebuilt only when modules were imported since the last one.

    Inspecting the loaded BLAS libraries costs ~0.5 ms and a metrics run limits threads
    thousands of times; a controller only sees the libraries loaded when it was built, and
    new native libraries come with imports, so a changed ``sys.modules`` rebuilds it.
    """
    if _built["modules"] != len(sys.modules):
        import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS, limited as well)
        from threadpoolctl import ThreadpoolController

        _built["controller"] = ThreadpoolController()
        _built["modules"] = len(sys.modules)
    return _built["controller"]


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """One BLAS thread inside the block (restored on exit)."""
    with _controller().limit(limits=1, user_api="blas"):
        yield


def one_blas_thread(fn: Any) -> Any:
    """Run ``fn`` with one BLAS thread: its products are small, and threads that wait on each
    other make them many times slower when other processes compete for the cores."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        with single_blas_thread():
            return fn(*args, **kwargs)

    return inner
