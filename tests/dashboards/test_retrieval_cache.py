"""Margin/CSLS retrieval in the explorer: neighbourhoods computed once, then reused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import xalign.metrics
from dashboards._catalog import _LRU, Catalog
from dashboards._views import neighbours
from xalign.errors import XAlignError
from xalign.metrics import csls, margin_scores
from xalign.store import Store


@pytest.fixture
def counted(dash_root, monkeypatch):
    """A fresh catalog and the list of neighbourhood computations it asks for."""
    cat = Catalog(dash_root)
    calls = []
    real = xalign.metrics.neighbourhood_means

    def spy(src, tgt, **kw):
        calls.append((len(src), len(tgt), kw["k"], kw["center"], cat.progress()))
        return real(src, tgt, **kw)

    monkeypatch.setattr(xalign.metrics, "neighbourhood_means", spy)
    return cat, calls


def expected(dash_root, row, *, scoring, k, lang, center=False):
    """Top-k of one target language straight from xalign.metrics (no cache)."""
    s = Store.open(dash_root / "before")
    X = s.sentences(layer=2)
    langs = s.rows["lang"].astype(str).to_numpy()
    src = np.flatnonzero(langs == langs[row])
    tgt = np.flatnonzero(langs == lang)
    pairs = np.stack([np.full(len(tgt), np.searchsorted(src, row)), np.arange(len(tgt))], 1)
    if scoring == "margin":
        sc = margin_scores(X[src], X[tgt], k=4, pairs=pairs, center=center, backend="numpy")
    else:
        sc = csls(X[src], X[tgt], k=10, pairs=pairs, center=center, backend="numpy")
    order = np.lexsort((np.arange(len(sc)), -sc))[:k]
    return tgt[order], sc[order]


def test_second_query_reuses_the_neighbourhoods(counted, dash_root):
    cat, calls = counted
    rows = cat.rows("before")
    eng = rows.index[rows["lang"] == "eng"].to_numpy()
    q = dict(layer=2, pooling="mean", k=3, scoring="margin")
    first = neighbours(cat, "before", row=int(eng[0]), **q)
    assert len(calls) == 4  # one per target language
    assert first.attrs["neighbourhood"]["computed"] == 4
    # progress was reported while computing, and cleared after
    assert [c[4]["pair"] for c in calls] == ["eng–deu", "eng–fra", "eng–rus", "eng–cmn_Hans"]
    assert [c[4]["done"] for c in calls] == [0, 1, 2, 3] and calls[0][4]["total"] == 4
    assert cat.progress() == {}
    again = neighbours(cat, "before", row=int(eng[0]), **q)
    pd.testing.assert_frame_equal(first, again)
    other = neighbours(cat, "before", row=int(eng[5]), **q)
    assert len(calls) == 4
    assert other.attrs["neighbourhood"] == {**other.attrs["neighbourhood"], "computed": 0}
    assert other.attrs["neighbourhood"]["cached"] == 4
    # identical to xalign.metrics computed from scratch (same floats, same order)
    for row, hits in ((int(eng[0]), first), (int(eng[5]), other)):
        for lang, h in hits.groupby("lang", sort=False):
            top, sc = expected(dash_root, row, scoring="margin", k=3, lang=lang)
            assert h["row"].tolist() == top.tolist()
            np.testing.assert_array_equal(h["score"].to_numpy(), sc)


def test_cache_keys_direction_k_and_centring(counted, dash_root):
    cat, calls = counted
    rows = cat.rows("before")
    eng = int(rows.index[rows["lang"] == "eng"][1])
    deu = int(rows.index[rows["lang"] == "deu"][2])
    neighbours(cat, "before", row=eng, layer=2, pooling="mean", scoring="margin")
    assert len(calls) == 4
    # deu→eng reuses the eng–deu entry (the same means, swapped); three pairs are new
    h = neighbours(cat, "before", row=deu, layer=2, pooling="mean", k=2, scoring="margin")
    assert len(calls) == 7
    for lang, g in h.groupby("lang", sort=False):
        top, sc = expected(dash_root, deu, scoring="margin", k=2, lang=lang)
        assert g["row"].tolist() == top.tolist()
        np.testing.assert_array_equal(g["score"].to_numpy(), sc)
    # CSLS has its own k; centring its own vectors; cosine needs no neighbourhood
    c = neighbours(cat, "before", row=eng, layer=2, pooling="mean", k=2, scoring="csls")
    assert len(calls) == 11 and {x[2] for x in calls[-4:]} == {10}
    top, sc = expected(dash_root, eng, scoring="csls", k=2, lang="fra")
    np.testing.assert_array_equal(c[c["lang"] == "fra"]["score"].to_numpy(), sc)
    kw = dict(row=eng, layer=2, pooling="mean", k=2, scoring="csls", centering=True)
    neighbours(cat, "before", **kw)
    assert len(calls) == 15 and calls[-1][3] is True
    cc = neighbours(cat, "before", **kw)
    top, sc = expected(dash_root, eng, scoring="csls", k=2, lang="rus", center=True)
    np.testing.assert_array_equal(cc[cc["lang"] == "rus"]["score"].to_numpy(), sc)
    neighbours(cat, "before", row=eng, layer=2, pooling="mean", scoring="cosine")
    neighbours(cat, "before", row=eng, layer=1, pooling="mean", scoring="margin")
    assert len(calls) == 19  # another layer is another entry


def test_neighbours_refuse_bad_arguments(dash_root):
    cat = Catalog(dash_root)
    for kw, msg in (
        ({"row": -1}, "out of range"),
        ({"row": 10**6}, "out of range"),
        ({"row": "3"}, "expected a row number"),
        ({"row": 0, "k": 0}, "k=0"),
        ({"row": 0, "scoring": "dot"}, "allowed values are cosine, margin, csls"),
    ):
        with pytest.raises(XAlignError, match=msg):
            neighbours(cat, "before", layer=1, pooling="mean", **kw)


def test_lru_is_bounded_by_bytes_and_computes_once():
    cache = _LRU(100, max_bytes=100, nbytes=lambda v: v.nbytes)
    made = []

    def make(n):
        def f():
            made.append(n)
            return np.zeros(n, dtype=np.uint8)

        return f

    for key in ("a", "b", "c"):
        cache.get(key, make(40))
    assert "a" not in cache and "b" in cache and "c" in cache
    cache.get("b", make(40))
    assert made == [40, 40, 40]
    cache.get("big", make(500))  # larger than the bound: kept alone
    assert list(cache.data) == ["big"]


def test_the_page_shows_progress_while_computing(dash_root):
    from dashboards.app import create_app

    app = create_app(str(dash_root))
    key = next(k for k in app.callback_map if k.startswith(("..retrieval-out.", "retrieval-out.")))
    cb = next(c for c in app._callback_list if c["output"] == key)
    assert cb["running"]["running"] == {
        "retrieval-tick.disabled": False,
        "retrieval-status.style": cb["running"]["running"]["retrieval-status.style"],
    }
    assert cb["running"]["running"]["retrieval-status.style"]["display"] == "block"
    layout = str(app.layout())
    assert "retrieval-status" in layout and "retrieval-tick" in layout and "Loading" in layout
    cat = app._xalign_catalog
    cat.set_progress(
        what="margin neighbourhoods of before, layer 2",
        pair="eng–deu",
        done=1,
        total=4,
        rows=42,
        started=0.0,
    )
    fn = next(c["callback"] for k, c in app.callback_map.items() if "retrieval-progress" in k)
    assert fn.__wrapped__(1).startswith(
        "margin neighbourhoods of before, layer 2: language pair eng–deu (2 of 4, 42 sentences)"
    )
    cat.set_progress()
    assert fn.__wrapped__(2) == "reading the store…"
