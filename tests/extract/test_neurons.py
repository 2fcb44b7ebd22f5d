"""Neuron statistics collected during extraction (``--neurons``) and neuron ablation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xalign.errors import ConfigError
from xalign.extract import ExtractConfig, extract
from xalign.store import Store

from .test_extract import extract_killed, parallel_corpus


def cfg(tmp_path, name="s", **kw) -> ExtractConfig:
    kw.setdefault("progress", False)
    kw.setdefault("neurons", True)
    return ExtractConfig(out=str(tmp_path / name), **kw)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A 2-layer ``LlamaModel`` (SwiGLU MLP) saved with the tiny byte-level BPE tokenizer."""
    from transformers import LlamaConfig, LlamaModel

    from xalign.models import load_encoder, tiny_encoder

    tok = tiny_encoder("decoder", seed=0).tokenizer
    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaModel(config).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return load_encoder(folder, device="cpu")


def ffn_modules(model):
    """The feed-forward activation modules, found independently of the code under test."""
    kind = model.config.model_type
    if kind in ("bert", "xlm-roberta"):
        return [blk.intermediate for blk in model.encoder.layer]
    if kind == "gpt2":
        return [blk.mlp.act for blk in model.h]
    return [blk.mlp.act_fn for blk in model.layers]


def brute_force(encoder, corpus, languages):
    """Statistics from raw activations, one unpadded row at a time, captured by a test hook."""
    mods = ffn_modules(encoder.model)
    L, G = len(mods), len(languages)
    F = None
    acts: dict[int, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, i=i: acts.__setitem__(i, out.detach()))
        for i, m in enumerate(mods)
    ]
    try:
        stats = None
        tokens = np.zeros(G)
        for text, lang in zip(corpus.rows["text"], corpus.rows["lang"], strict=True):
            enc = encoder.tokenizer(text, return_tensors="pt", return_special_tokens_mask=True)
            content = ~enc.pop("special_tokens_mask")[0].bool()
            with torch.no_grad():
                encoder.model(**enc)
            g = languages.index(lang)
            tokens[g] += int(content.sum())
            for i in range(L):
                x = acts[i][0][content].double().numpy()  # [n, F]
                if stats is None:
                    F = x.shape[1]
                    stats = {k: np.zeros((L, G, F)) for k in ("active", "sum", "sumsq")}
                stats["active"][i, g] += (x > 0).sum(0)
                stats["sum"][i, g] += x.sum(0)
                stats["sumsq"][i, g] += (x**2).sum(0)
    finally:
        for h in hooks:
            h.remove()
    stats["tokens"] = np.broadcast_to(tokens[None, :, None], (L, G, 1))
    return stats


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr", "tiny_decoder", "tiny_llama"])
def test_statistics_equal_brute_force(fixture, request, tmp_path):
    encoder = request.getfixturevalue(fixture)
    corpus = parallel_corpus(n_copies=2)
    store, _ = extract(cfg(tmp_path, chunk_rows=7, token_budget=40), corpus=corpus, encoder=encoder)
    ns = store.neurons()
    assert ns.languages == corpus.languages and ns.layers == [1, 2]
    want = brute_force(encoder, corpus, ns.languages)
    F = want["active"].shape[2]
    assert ns.active.shape == (2, len(ns.languages), F) and ns.tokens.shape == (2, 4, 1)
    assert ns.active.dtype == np.float64
    np.testing.assert_array_equal(ns.tokens, want["tokens"])
    np.testing.assert_array_equal(ns.active, want["active"])
    # float32 forwards of padded batches vs single rows differ in the last bits
    np.testing.assert_allclose(ns.sum, want["sum"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ns.sumsq, want["sumsq"], rtol=1e-5, atol=1e-5)
    assert 0 < ns.probability.mean() < 1
    info = store.manifest["extraction"]["neurons"]
    assert info["ffn_size"] == F and "content tokens" in info["tokens"]
    # sentence vectors are those of a plain run: hooks only read
    plain, _ = extract(
        cfg(tmp_path, "plain", chunk_rows=7, token_budget=40, neurons=False),
        corpus=corpus,
        encoder=encoder,
    )
    np.testing.assert_array_equal(store.sentences(layer=2), plain.sentences(layer=2))
    assert not (store.path / "neurons-partial").exists()


def test_store_integrity_covers_neuron_arrays(tiny_bert, tmp_path):
    store, _ = extract(cfg(tmp_path, chunk_rows=5), corpus=parallel_corpus(), encoder=tiny_bert)
    rec = (store.path / "integrity.json").read_text()
    assert '"neurons/active"' in rec and '"neurons/tokens"' in rec
    f = store.path / "arrays.zarr" / "neurons" / "sum" / "c" / "0" / "1" / "0"
    data = bytearray(f.read_bytes())
    data[3] ^= 0xFF
    f.write_bytes(bytes(data))
    rep = store.verify()
    assert not rep.ok and "neurons/sum" in rep.format()
    with pytest.raises(Exception, match="neurons/sum"):
        Store.open(store.path).neurons()
    # rerunning the command recomputes the statistics (every chunk: they are sums over all)
    ref, _ = extract(
        cfg(tmp_path, "ref", chunk_rows=5), corpus=parallel_corpus(), encoder=tiny_bert
    )
    fixed, summary = extract(
        cfg(tmp_path, chunk_rows=5), corpus=parallel_corpus(), encoder=tiny_bert
    )
    assert summary.repairs and summary.rows_computed == len(parallel_corpus())
    for stat in ("active", "sum", "sumsq", "tokens"):
        np.testing.assert_array_equal(getattr(fixed.neurons(), stat), getattr(ref.neurons(), stat))


def _array_bytes(store):
    root = store.path / "arrays.zarr"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.mark.parametrize("kill_at", [1, 3, 6])
def test_interrupted_run_resumes_to_identical_statistics(tiny_bert, tmp_path, monkeypatch, kill_at):
    from xalign.store import StoreWriter

    corpus = parallel_corpus(n_copies=3)  # 36 rows, chunks of 5: 8 chunks
    base = dict(chunk_rows=5, token_budget=48)
    ref, _ = extract(cfg(tmp_path, "ref", **base), corpus=corpus, encoder=tiny_bert)

    real = StoreWriter.mark_done
    calls = {"n": 0}

    def dying(self, chunk):
        calls["n"] += 1
        if calls["n"] == kill_at:  # killed after the statistics were written, before done
            raise KeyboardInterrupt
        real(self, chunk)

    monkeypatch.setattr(StoreWriter, "mark_done", dying)
    with pytest.raises(KeyboardInterrupt):
        extract(cfg(tmp_path, "killed", **base), corpus=corpus, encoder=tiny_bert)
    monkeypatch.setattr(StoreWriter, "mark_done", real)
    assert (tmp_path / "killed" / "neurons-partial").is_dir()
    resumed, summary = extract(cfg(tmp_path, "killed", **base), corpus=corpus, encoder=tiny_bert)
    assert summary.resumed and summary.rows_computed == len(corpus) - 5 * (kill_at - 1)
    assert _array_bytes(resumed) == _array_bytes(ref)


def test_resume_after_a_flushed_accumulator(tiny_bert, tmp_path, monkeypatch):
    """Kill after the accumulator was saved and its partials deleted: nothing counted twice."""
    from xalign.extract import _neurons

    monkeypatch.setattr(_neurons, "FLUSH_EVERY", 2)
    corpus = parallel_corpus(n_copies=3)
    base = dict(chunk_rows=5, token_budget=48)
    ref, _ = extract(cfg(tmp_path, "ref", **base), corpus=corpus, encoder=tiny_bert)
    extract_killed(
        monkeypatch, 5, cfg(tmp_path, "killed", **base), corpus=corpus, encoder=tiny_bert
    )
    folder = tmp_path / "killed" / "neurons-partial"
    assert (folder / "acc.safetensors").is_file()
    assert sorted(p.name for p in folder.glob("chunk-*")) == ["chunk-000004.safetensors"]
    resumed, _ = extract(cfg(tmp_path, "killed", **base), corpus=corpus, encoder=tiny_bert)
    assert _array_bytes(resumed) == _array_bytes(ref)


def test_out_of_order_chunks_give_the_same_bytes(tiny_bert, tmp_path):
    """Chunks arriving in any order (the Ray engine) are folded in chunk order."""
    from xalign.extract import compute_chunk, finish_extract, prepare_extract

    corpus = parallel_corpus(n_copies=2)
    base = dict(chunk_rows=5, token_budget=48)
    ref, _ = extract(cfg(tmp_path, "ref", **base), corpus=corpus, encoder=tiny_bert)
    c = cfg(tmp_path, "shuffled", **base)
    plan = prepare_extract(c, corpus, tiny_bert)
    runner = plan.spec.runner(tiny_bert)
    for k in [3, 0, 4, 2, 1]:
        a, b = plan.bounds(k)
        plan.write_chunk(
            k, compute_chunk(plan.spec, runner, plan.texts[a:b], langs=plan.chunk_langs(k))
        )
    store, _ = finish_extract(plan, 0.0, len(corpus), 0, "cpu")
    assert _array_bytes(store) == _array_bytes(ref)


def test_ablation_zeroes_the_named_neurons(tiny_bert, tmp_path):
    corpus = parallel_corpus()
    ablate = [[1, 0], [1, 5], [2, 7]]
    store, _ = extract(cfg(tmp_path, ablate="1:5,2:7,1:0"), corpus=corpus, encoder=tiny_bert)
    assert store.manifest["extraction"]["ablate"] == ablate and store.ablated == ablate
    ns = store.neurons()
    for layer, neuron in ablate:
        li = ns.layers.index(layer)
        assert not ns.active[li, :, neuron].any() and not ns.sumsq[li, :, neuron].any()
    plain, _ = extract(cfg(tmp_path, "plain"), corpus=corpus, encoder=tiny_bert)
    assert plain.neurons().active[0, :, 5].any()
    # the first block's output changes, the embedding output does not
    np.testing.assert_array_equal(store.sentences(layer=0), plain.sentences(layer=0))
    assert not np.array_equal(store.sentences(layer=1), plain.sentences(layer=1))
    # the encoder is left as it was: no hooks remain
    assert all(not m._forward_hooks for m in ffn_modules(tiny_bert.model))


def test_ablation_without_statistics(tiny_decoder, tmp_path):
    store, _ = extract(
        cfg(tmp_path, neurons=False, ablate=[[2, 3]]),
        corpus=parallel_corpus(),
        encoder=tiny_decoder,
    )
    assert store.ablated == [[2, 3]] and not store.has_neurons
    with pytest.raises(ConfigError, match="no neuron statistics; re-extract with --neurons"):
        store.neurons()


def test_errors_name_the_layer_and_module(tiny_bert, tmp_path):
    corpus = parallel_corpus()
    with pytest.raises(ConfigError, match=r"layer 1 neuron 128: out of range; "
                       r"encoder\.layer\.0\.intermediate has 128 neurons \(0\.\.127\)"):  # fmt: skip
        extract(cfg(tmp_path, ablate="1:128"), corpus=corpus, encoder=tiny_bert)
    with pytest.raises(ConfigError, match=r"--ablate layer 3: out of range; .* blocks 1\.\.2"):
        extract(cfg(tmp_path, ablate="3:0"), corpus=corpus, encoder=tiny_bert)
    with pytest.raises(ConfigError, match="--ablate layer 0 neuron 1: out of range"):
        cfg(tmp_path, ablate="0:1")
    with pytest.raises(ConfigError, match="LAYER:NEURON pairs of integers"):
        cfg(tmp_path, ablate="1-5")
    with pytest.raises(ConfigError, match="--ablate applies to the main pass only"):
        cfg(tmp_path, ablate="1:5", pairs=["eng", "deu"])
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").glob("arrays.zarr/*"))


def test_model_without_feed_forward_block(tiny_bert, tmp_path, monkeypatch):
    from xalign.extract._neurons import find_ffn

    class NoFfn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2)])

    with pytest.raises(ConfigError, match=r"no feed-forward activation module found in NoFfn "
                       r"\(looked for layer\.N\.intermediate, layers\.N\.mlp\.act_fn"):  # fmt: skip
        find_ffn(NoFfn(), 1)
    with pytest.raises(ConfigError, match=r"blocks \[1, 2\], expected one per block 1\.\.3"):
        find_ffn(tiny_bert.model, 3)


@pytest.mark.slow
def test_ray_engine_gives_the_local_statistics(tiny_bert_dir, tmp_path):
    """On a local 2-CPU Ray cluster the neuron arrays equal a local run's, byte for byte."""
    ray = pytest.importorskip("ray", reason="ray[data] not installed")
    from xalign.models import load_encoder

    corpus = parallel_corpus(n_copies=3)
    base = dict(model=str(tiny_bert_dir), device="cpu", chunk_rows=5, token_budget=48)
    encoder = load_encoder(tiny_bert_dir, device="cpu")
    # a float32 forward's last bits depend on the CPU thread count: run like a 1-CPU worker
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local, _ = extract(cfg(tmp_path, "local", **base), corpus=corpus, encoder=encoder)
    finally:
        torch.set_num_threads(threads)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 * 2**20)  # fmt: skip
    try:
        remote, _ = extract(
            cfg(tmp_path, "ray", engine="ray", workers=2, **base), corpus=corpus, encoder=encoder
        )
    finally:
        ray.shutdown()
    assert remote.manifest["identity"] == local.manifest["identity"]
    a, b = _array_bytes(local), _array_bytes(remote)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    assert not (remote.path / "neurons-partial").exists()


def test_cli_flags(tiny_bert_dir, tmp_path, capsys):
    from xalign.extract.__main__ import main

    from .test_cli import write_tsv

    data = write_tsv(tmp_path / "c.tsv")
    argv = ["--model", str(tiny_bert_dir), "--data", f"tsv:{data}", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--neurons", "--ablate", "2:3,1:4"]) == 0
    store = Store.open(tmp_path / "a")
    assert store.has_neurons and store.ablated == [[1, 4], [2, 3]]
    assert store.neurons().languages == ["eng", "deu", "ell"]
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "b"), "--ablate", "1:999"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the weights' progress bar
    assert err == (
        "error: --ablate layer 1 neuron 999: out of range; encoder.layer.0.intermediate has "
        "128 neurons (0..127)"
    )


def test_repair_of_other_arrays_keeps_the_statistics(tiny_bert, tmp_path):
    """A damaged sentence chunk is recomputed alone; the intact statistics stay as they are."""
    corpus = parallel_corpus(n_copies=2)
    store, _ = extract(cfg(tmp_path, chunk_rows=5), corpus=corpus, encoder=tiny_bert)
    before = _array_bytes(store)
    f = store.path / "arrays.zarr" / "sentence" / "mean" / "c" / "1" / "0" / "0"
    data = bytearray(f.read_bytes())
    data[0] ^= 0xFF
    f.write_bytes(bytes(data))
    fixed, summary = extract(cfg(tmp_path, chunk_rows=5), corpus=corpus, encoder=tiny_bert)
    assert summary.repairs and summary.rows_computed == 5
    assert _array_bytes(fixed) == before


def test_statistics_equal_brute_force_on_e5_small(e5_small, tmp_path):
    """The bundled model (12 blocks, F = 1,536): the same statistics as raw activations taken
    one unpadded row at a time. Batched float32 forwards differ from single rows in the last
    bits, so an activation within rounding of 0 may count as active in one and not the other:
    counts may differ by a token in a handful of cells, sums agree to float32 rounding."""
    corpus = parallel_corpus()
    store, _ = extract(
        cfg(tmp_path, chunk_rows=7, token_budget=64, prefix="none"), corpus=corpus, encoder=e5_small
    )
    ns = store.neurons()
    assert ns.layers == list(range(1, 13))
    want = brute_force(e5_small, corpus, ns.languages)
    assert ns.active.shape == want["active"].shape == (12, len(ns.languages), 1536)
    np.testing.assert_array_equal(ns.tokens, want["tokens"])
    diff = np.abs(ns.active - want["active"])
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    np.testing.assert_allclose(ns.sum, want["sum"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ns.sumsq, want["sumsq"], rtol=1e-4, atol=1e-3)
    assert store.manifest["extraction"]["neurons"]["modules"][0].endswith("layer.0.intermediate")
