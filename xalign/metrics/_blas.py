"""BLAS thread control for metric groups made of many small products."""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["one_blas_thread"]


def one_blas_thread(fn: Any) -> Any:
    """Run ``fn`` with one BLAS thread: its products are small, and threads that wait on each
    other make them many times slower when other processes compete for the cores."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return inner
