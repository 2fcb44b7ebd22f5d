"""Fixtures of the metrics tests: a stand-in for faiss-gpu, so GPU code paths run on CPU."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest


@pytest.fixture
def fake_faiss_gpu(monkeypatch):
    """Install a fake ``faiss`` with ``n_gpus`` devices; returns the list of recorded calls.

    ``knn_gpu`` is a numpy top-k (sorted, like faiss) that records which device searched how
    many keys with which memory limits, so the sharding and limits can be checked.
    """
    import xalign.metrics._knn as K

    def install(n_gpus: int) -> list:
        calls: list = []

        class Res:
            def setTempMemory(self, n):
                calls.append(("temp", n))

        def knn_gpu(res, xq, xb, k, metric=None, device=-1, **limits):
            calls.append((device, len(xb), limits))
            s = xq @ xb.T
            idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(s, idx, axis=1), idx

        fake = types.SimpleNamespace(
            METRIC_INNER_PRODUCT=0,
            get_num_gpus=lambda: n_gpus,
            StandardGpuResources=Res,
            knn_gpu=knn_gpu,
        )
        monkeypatch.setitem(sys.modules, "faiss", fake)
        K._gpu_resources.cache_clear()
        return calls

    yield install
    K._gpu_resources.cache_clear()
