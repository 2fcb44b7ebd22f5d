"""Fixtures of the report tests: a synthetic results table with known values, and helpers."""

from __future__ import annotations

import json
import struct
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

COLUMNS = ["store", "checkpoint", "metric", "layer", "lang", "lang2", "value", "n", "ci_low",
           "ci_high", "protocol"]  # fmt: skip


def _proto(**kw) -> str:
    return json.dumps(kw, sort_keys=True, separators=(",", ":"))


def make_results(
    *,
    checkpoints=("before", "after"),
    layers=(0, 1, 2, 3),
    langs=("eng", "deu", "fra", "rus"),
    seed=0,
    metrics=("retrieval", "silhouette", "lid", "gap"),
) -> pd.DataFrame:
    """A results table shaped like ``xalign.metrics``' output, values drawn from ``seed``.

    Retrieval pairs every language with eng (Tatoeba-like) under three protocols (cosine
    raw, cosine centred, margin raw); silhouette has an overall row and per-language rows;
    the LID probe has only overall rows; the language gap has every pair.
    """
    rng = np.random.default_rng(seed)
    recs = []

    def add(ckpt, metric, layer, lang, lang2, value, proto, n=20, ci=None):
        lo, hi = ci if ci is not None else (np.nan, np.nan)
        recs.append([f"runs/{ckpt}", ckpt, metric, layer, lang, lang2, float(value), n, lo, hi,
                     proto])  # fmt: skip

    pivot = langs[0]
    for ckpt in checkpoints:
        for layer in layers:
            for centered in (False, True):
                if "retrieval" in metrics:
                    scorings = ("cosine", "margin") if not centered else ("cosine",)
                    for scoring in scorings:
                        base = dict(centered=centered, pooling="mean", scoring=scoring,
                                    k=4 if scoring == "margin" else None, seed=0)  # fmt: skip
                        for x in langs[1:]:
                            a2b, b2a = rng.uniform(0.2, 1.0, size=2).round(4)
                            d = "lang queries, lang2 searched"
                            add(ckpt, "retrieval_acc", layer, x, pivot, a2b,
                                _proto(**base, direction=d))  # fmt: skip
                            add(ckpt, "retrieval_acc", layer, pivot, x, b2a,
                                _proto(**base, direction=d))  # fmt: skip
                            add(ckpt, "retrieval_acc_mean", layer, x, pivot, (a2b + b2a) / 2,
                                _proto(**base, direction="mean of both"),
                                ci=((a2b + b2a) / 2 - 0.05, (a2b + b2a) / 2 + 0.05))  # fmt: skip
                if "silhouette" in metrics:
                    p = _proto(centered=centered, metric="cosine", pooling="mean", seed=0)
                    per = rng.uniform(-0.1, 0.5, size=len(langs))
                    add(ckpt, "language_silhouette", layer, None, None, per.mean(), p, n=80)
                    for x, v in zip(langs, per, strict=True):
                        add(ckpt, "language_silhouette", layer, x, None, v, p)
                if "lid" in metrics:
                    v = rng.uniform(0.5, 1.0)
                    add(ckpt, "lid_accuracy", layer, None, None, v,
                        _proto(centered=centered, cv=5, pooling="mean", seed=0), n=80,
                        ci=(v - 0.02, v + 0.02))  # fmt: skip
                if "gap" in metrics:
                    p = _proto(centered=centered, distance="euclidean", pooling="mean")
                    for a, b in combinations(langs, 2):
                        add(ckpt, "centroid_distance_scaled", layer, a, b,
                            rng.uniform(0.1, 2.0), p, n=40)  # fmt: skip
    df = pd.DataFrame(recs, columns=COLUMNS)
    return df.astype({"lang": object, "lang2": object})


@pytest.fixture(scope="session")
def results_factory():
    return make_results


@pytest.fixture
def synthetic_results(tmp_path) -> Path:
    path = tmp_path / "results.parquet"
    make_results().to_parquet(path, index=False)
    return path


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    data = Path(path).read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def pdf_pages(path: Path) -> int:
    """Number of pages of a PDF (pypdf when installed, else the page objects counted)."""
    try:
        from pypdf import PdfReader
    except ImportError:
        import re

        data = Path(path).read_bytes()
        assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:]
        return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    return len(PdfReader(str(path)).pages)


@pytest.fixture(scope="session")
def helpers():
    class H:
        pass

    h = H()
    h.png_size = png_size
    h.pdf_pages = pdf_pages
    return h
