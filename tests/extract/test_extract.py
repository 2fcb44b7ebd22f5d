"""Extraction on tiny in-process models: values checked against direct forward passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xalign.data import Corpus
from xalign.errors import ConfigError, StoreMismatchError
from xalign.extract import ExtractConfig, extract, length_sorted_batches, parse_layers
from xalign.store import Store

TEXTS = {
    "eng": ["The cat sleeps on the warm mat.", "Rain again today.", "We walked to the old harbour at dawn."],
    "deu": ["Die Katze schläft auf der warmen Matte.", "Heute regnet es wieder.", "Wir gingen im Morgengrauen zum alten Hafen."],
    "rus": ["Кошка спит на тёплом коврике.", "Сегодня снова дождь.", "На рассвете мы пошли в старую гавань."],
    "cmn_Hans": ["猫睡在温暖的垫子上。", "今天又下雨了。", "黎明时我们走到了老港口。"],
}  # fmt: skip


def parallel_corpus(n_copies: int = 1) -> Corpus:
    recs = []
    for c in range(n_copies):
        for lang, texts in TEXTS.items():
            for i, t in enumerate(texts):
                recs.append({"id": f"{lang}:{c}:{i}", "lang": lang, "text": t, "group": f"{c}:{i}"})
    return Corpus.from_records(recs, name="tiny-parallel")


def direct(encoder, text: str, prefix: str = ""):
    """Unbatched reference forward pass (no padding at all)."""
    enc = encoder.tokenizer(prefix + text, return_tensors="pt", return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask")[0].bool()
    before = encoder.model.config._attn_implementation
    encoder.model.set_attn_implementation("eager")  # attention maps need eager attention
    try:
        with torch.no_grad():
            out = encoder.model(**enc, output_hidden_states=True, output_attentions=True)
    finally:
        encoder.model.set_attn_implementation(before)
    return out, enc, special


def cfg(tmp_path, name="s", **kw) -> ExtractConfig:
    kw.setdefault("progress", False)
    return ExtractConfig(out=str(tmp_path / name), **kw)


def extract_killed(monkeypatch, after_chunks: int, config: ExtractConfig, **kw) -> None:
    """Run ``extract(config, **kw)`` and kill it (KeyboardInterrupt) right after its
    ``after_chunks``-th chunk is marked done, as Ctrl-C would."""
    from xalign.store import StoreWriter

    real = StoreWriter.mark_done
    calls = {"n": 0}

    def dying(self, chunk):
        real(self, chunk)
        calls["n"] += 1
        if calls["n"] == after_chunks:
            raise KeyboardInterrupt

    monkeypatch.setattr(StoreWriter, "mark_done", dying)
    try:
        with pytest.raises(KeyboardInterrupt):
            extract(config, **kw)
    finally:
        monkeypatch.setattr(StoreWriter, "mark_done", real)


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_poolings_equal_hand_computation(fixture, request, tmp_path):
    encoder = request.getfixturevalue(fixture)
    corpus = parallel_corpus()
    store, summary = extract(
        cfg(tmp_path, pooling=["mean", "mean_nospecial", "cls", "max"], token_budget=40),
        corpus=corpus,
        encoder=encoder,
    )
    assert summary.rows == len(corpus) and store.layers == list(range(encoder.facts.num_layers + 1))
    for r, text in enumerate(corpus.rows["text"]):
        out, _, special = direct(encoder, text)
        for layer in store.layers:
            h = out.hidden_states[layer][0].numpy()
            expect = {
                "mean": h.mean(0),
                "mean_nospecial": h[~special.numpy()].mean(0),
                "cls": h[0],
                "max": h.max(0),
            }
            for pooling, ref in expect.items():
                got = store.sentences(pooling=pooling, layer=layer, rows=[r])[0]
                np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3, err_msg=pooling)


def test_layer0_is_embedding_output(tiny_bert, tmp_path):
    corpus = parallel_corpus()
    store, _ = extract(cfg(tmp_path, layers="0"), corpus=corpus, encoder=tiny_bert)
    text = corpus.rows["text"][5]
    enc = tiny_bert.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        emb = tiny_bert.model.embeddings(input_ids=enc["input_ids"])[0].numpy()
    np.testing.assert_allclose(store.sentences(layer=0, rows=[5])[0], emb.mean(0), atol=2e-3)
    assert store.layers == [0]


def test_decoder_last_pooling_and_right_padding(tiny_decoder, tmp_path):
    corpus = parallel_corpus()
    store, _ = extract(
        cfg(tmp_path, pooling=["last", "mean"], token_budget=30),
        corpus=corpus,
        encoder=tiny_decoder,
    )
    assert store.encoder["family"] == "decoder"
    for r in (0, 4, 11):
        out, _, _ = direct(tiny_decoder, corpus.rows["text"][r])
        L = tiny_decoder.facts.num_layers
        np.testing.assert_allclose(
            store.sentences(pooling="last", layer=L, rows=[r])[0],
            out.hidden_states[L][0, -1].numpy(),
            atol=3e-3,
        )


def test_tokens_and_attentions(tiny_xlmr, tmp_path):
    corpus = parallel_corpus()
    store, _ = extract(
        cfg(tmp_path, tokens=True, attentions="head-mean", prefix="query: ", token_budget=64),
        corpus=corpus,
        encoder=tiny_xlmr,
    )
    full, _ = extract(
        cfg(tmp_path, "full", attentions="full", layers="1-2", prefix="query: "),
        corpus=corpus,
        encoder=tiny_xlmr,
    )
    assert store.manifest["extraction"]["prefix"] == "query: "
    for r, text in enumerate(corpus.rows["text"]):
        out, enc, _ = direct(tiny_xlmr, text, prefix="query: ")
        toks = store.row_tokens(r)
        assert toks["token_id"].tolist() == enc["input_ids"][0].tolist()
        content = toks[~toks["special"]]
        # the prefix is marked special, and offsets point into the original text
        assert not any("query" in t for t in content["token"])
        for _, t in content.iterrows():
            piece = text[t.char_start : t.char_end]
            assert piece and piece in text
            assert piece.strip() in text.split()[t.word]
        assert content["word"].max() == len(text.split()) - 1
        hid = store.token_hidden(r)
        np.testing.assert_allclose(hid[:, 1], out.hidden_states[1][0].numpy(), atol=2e-3)
        for layer in (1, 2):
            a = store.attention(r, layer=layer)
            ref = out.attentions[layer - 1][0].numpy()
            np.testing.assert_allclose(a, ref.mean(0), atol=2e-3)
            np.testing.assert_allclose(a.sum(-1), 1.0, atol=5e-3)
            heads = full.attention(r, layer=layer)
            assert heads.shape == ref.shape
            np.testing.assert_allclose(heads, ref, atol=2e-3)
            # head-mean equals the mean of the full maps
            np.testing.assert_allclose(heads.mean(0), a, atol=2e-3)


def test_truncation_is_counted_not_crashed(tiny_bert, tmp_path):
    recs = [{"id": "long", "lang": "eng", "text": " ".join(["word"] * 10_000)},
            {"id": "short", "lang": "eng", "text": "short one"}]  # fmt: skip
    store, summary = extract(
        cfg(tmp_path, max_length=32), corpus=Corpus.from_records(recs), encoder=tiny_bert
    )
    rows = store.rows.set_index("id")
    assert summary.truncated == 1 and bool(rows.loc["long", "truncated"])
    assert rows.loc["long", "n_tokens"] == 32 and rows.loc["long", "n_tokens_full"] >= 10_000
    assert not rows.loc["short", "truncated"]
    assert np.isfinite(store.sentences(layer=-1)).all()


def test_deterministic_and_resumable(tiny_bert, tmp_path, monkeypatch):
    corpus = parallel_corpus(n_copies=3)  # 36 rows, chunks of 5
    base = dict(chunk_rows=5, token_budget=48, tokens=True, attentions="head-mean")
    ref, _ = extract(cfg(tmp_path, "ref", **base), corpus=corpus, encoder=tiny_bert)
    again, _ = extract(cfg(tmp_path, "again", **base), corpus=corpus, encoder=tiny_bert)
    extract_killed(
        monkeypatch, 3, cfg(tmp_path, "killed", **base), corpus=corpus, encoder=tiny_bert
    )
    with pytest.raises(Exception, match="incomplete"):
        Store.open(tmp_path / "killed")
    resumed, summary = extract(cfg(tmp_path, "killed", **base), corpus=corpus, encoder=tiny_bert)
    assert summary.resumed and summary.rows_computed == len(corpus) - 15
    for other in (again, resumed):
        for name in ("sentence/mean", "token/hidden", "attention/head-mean"):
            a = (ref.path / "arrays.zarr" / name / "c").rglob("*")
            for f in sorted(p for p in a if p.is_file()):
                g = other.path / f.relative_to(ref.path)
                assert f.read_bytes() == g.read_bytes(), f"{name}: {f.name} differs"
    assert (ref.path / "rows.parquet").read_bytes() == (resumed.path / "rows.parquet").read_bytes()


def test_refuses_store_of_other_model_or_corpus(tiny_bert, tiny_xlmr, tmp_path):
    corpus = parallel_corpus()
    extract(cfg(tmp_path), corpus=corpus, encoder=tiny_bert)
    before = (tmp_path / "s" / "manifest.json").read_bytes()
    with pytest.raises(StoreMismatchError, match="another model/corpus"):
        extract(cfg(tmp_path), corpus=corpus, encoder=tiny_xlmr)
    with pytest.raises(StoreMismatchError, match="corpus_fingerprint"):
        extract(cfg(tmp_path), corpus=corpus.select(langs=["eng", "deu"]), encoder=tiny_bert)
    with pytest.raises(StoreMismatchError, match="poolings"):
        extract(cfg(tmp_path, pooling=["cls"]), corpus=corpus, encoder=tiny_bert)
    assert (tmp_path / "s" / "manifest.json").read_bytes() == before
    store, _ = extract(
        cfg(tmp_path, pooling=["cls"], overwrite=True), corpus=corpus, encoder=tiny_bert
    )
    assert store.poolings == ["cls"]


def test_refuses_unknown_nonempty_folder(tiny_bert, tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="not empty and holds no xalign store"):
        extract(cfg(tmp_path), corpus=parallel_corpus(), encoder=tiny_bert)
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"


def test_layers_out_of_range(tiny_bert, tmp_path):
    with pytest.raises(ConfigError, match=r"--layers 7 out of range.*L=2.*0\.\.2"):
        extract(cfg(tmp_path, layers="0,7"), corpus=parallel_corpus(), encoder=tiny_bert)
    assert not (tmp_path / "s").exists()


def test_parse_layers_and_batches():
    assert parse_layers("all", 3) == [0, 1, 2, 3]
    assert parse_layers("-2--1", 12) == [11, 12]
    with pytest.raises(ConfigError, match="expected 'all'"):
        parse_layers("x", 3)
    lengths = np.array([5, 50, 7, 12, 12, 3, 40])
    batches = length_sorted_batches(lengths, token_budget=60)
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))
    for b in batches:
        assert len(b) == 1 or len(b) * lengths[b].max() <= 60
    assert lengths[batches[0][0]] == 50


def test_store_lazy_reads(tiny_bert, tmp_path):
    corpus = parallel_corpus()
    store, _ = extract(cfg(tmp_path, pooling=["mean", "cls"]), corpus=corpus, encoder=tiny_bert)
    full = store.sentences(layer=1)
    deu, rows = store.sentences(layer=1, lang="deu", with_rows=True)
    assert deu.dtype == np.float32 and (rows["lang"] == "deu").all()
    np.testing.assert_array_equal(deu, full[rows["row"].to_numpy()])
    np.testing.assert_array_equal(store.sentences(layer=-1), store.sentences(layer=2))
    np.testing.assert_array_equal(store.sentences(layer=1, rows=[7, 2]), full[[7, 2]])
    with pytest.raises(ConfigError, match="layer 5 is not in store"):
        store.sentences(layer=5)
    with pytest.raises(ConfigError, match="re-extract with --pooling"):
        store.sentences(pooling="max", layer=1)
    with pytest.raises(ConfigError, match="--tokens"):
        store.token_hidden(0)
    with pytest.raises(ConfigError, match="--attentions"):
        store.attention(0, layer=1)
    with pytest.raises(ConfigError, match="not in store"):
        store.sentences(layer=1, lang="fra")
    assert store.manifest["corpus"]["fingerprint"] == corpus.fingerprint()


def test_out_of_memory_halves_the_batch(tiny_bert, tmp_path, monkeypatch):
    """A batch that runs out of memory is split in halves; the values do not change."""
    corpus = parallel_corpus(n_copies=2)
    ref, _ = extract(cfg(tmp_path, "ref", token_budget=4096), corpus=corpus, encoder=tiny_bert)
    model = tiny_bert.model
    real_forward = model.forward
    sizes: list[int] = []

    def forward(*args, **kwargs):
        n = kwargs["input_ids"].shape[0]
        sizes.append(n)
        if n > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    store, summary = extract(
        cfg(tmp_path, "oom", token_budget=4096), corpus=corpus, encoder=tiny_bert
    )
    assert summary.batch_backoffs > 0 and max(sizes) > 3 and min(sizes) <= 3
    assert store.manifest["run"]["batch_backoffs"] == summary.batch_backoffs
    np.testing.assert_allclose(store.sentences(layer=2), ref.sentences(layer=2), atol=2e-3)

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")  # not an OOM: surfaces unchanged

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        extract(cfg(tmp_path, "broken"), corpus=corpus, encoder=tiny_bert)


def test_word_alignment_corpus_keeps_its_gold_links(tiny_xlmr, tmp_path):
    from dashboards._catalog import Catalog
    from dashboards._views import _gold_links
    from xalign.data import gold_alignments, read_word_align

    folder = tmp_path / "en-de"
    folder.mkdir()
    (folder / "ende.src-tgt").write_text(
        "the cat sleeps ||| die Katze schläft\nrain today ||| heute Regen\n"
    )
    (folder / "ende.gold").write_text("1-1 2-2 3p3\n1-2 2-1\n")
    corpus = read_word_align(folder)
    store, _ = extract(cfg(tmp_path), corpus=corpus, encoder=tiny_xlmr)
    assert (store.path / "gold_alignments.tsv").is_file()
    rows = store.rows
    cat = Catalog(tmp_path)
    for k, (sure, possible) in enumerate(gold_alignments(folder)):
        a = rows[(rows["group"] == f"en-de:{k}") & (rows["lang"] == "eng")]["id"].item()
        b = rows[(rows["group"] == f"en-de:{k}") & (rows["lang"] == "deu")]["id"].item()
        assert _gold_links(cat, store.path, a, b) == (set(sure), set(possible))
    assert _gold_links(cat, store.path, "x", "y") is None


def test_callers_attention_implementation_is_restored(tiny_bert, tmp_path):
    assert tiny_bert.attn_implementation == "sdpa"
    store, _ = extract(
        cfg(tmp_path, attentions="head-mean"), corpus=parallel_corpus(), encoder=tiny_bert
    )
    assert store.attention_mode == "head-mean"
    assert tiny_bert.attn_implementation == "sdpa"
    assert tiny_bert.model.config._attn_implementation == "sdpa"
