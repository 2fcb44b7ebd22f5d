"""Where xalign's extraction time goes: torch.profiler over ``xalign.extract.extract``.

Runs the shipped extraction (e5-small, all 13 layers, mean pooling, float16 store in a temporary
folder) on the benchmark corpora under ``torch.profiler`` and sorts the time into kernels
(matmuls, attention, layer norm, GELU, the stack of 13 hidden states and the pooling) and into
xalign's own steps, which are labelled by wrapping them with ``record_function`` from outside
(first-pass tokenisation in ``prepare_extract``, per-chunk tokenisation, building the padded
input tensors, pooling, the float16 conversion, the store write, ``finish_extract``). Padding
waste comes from the batches themselves. ``--eager`` adds a run with eager attention, whose
separate softmax and attention matmuls show how SDPA's fused kernel splits.

    python benchmarks/extract_profile.py                 # both corpora, as in extract.py
    python benchmarks/extract_profile.py --eager --json benchmarks/results/extract-profile.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# aten op (self time) → category; anything else lands in "other ops"
CATEGORIES = {
    "matmuls (Q/K/V, attention output, FFN)": ("aten::addmm", "aten::mm", "aten::linear",
                                               "aten::matmul"),
    "attention kernel (SDPA: QKᵀ, softmax, ·V fused)": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                                                       "aten::_scaled_dot_product_attention_math",
                                                       "aten::scaled_dot_product_attention"),
    "attention softmax (eager)": ("aten::softmax", "aten::_softmax"),
    "attention matmuls (eager: QKᵀ, ·V)": ("aten::bmm", "aten::baddbmm"),
    "layer norm": ("aten::layer_norm", "aten::native_layer_norm"),
    "GELU": ("aten::gelu",),
    "residual adds, bias, mask": ("aten::add", "aten::add_", "aten::mul", "aten::sub",
                                  "aten::rsub", "aten::div", "aten::where", "aten::masked_fill"),
    "embeddings": ("aten::embedding", "aten::index_select"),
    "bias broadcast inside addmm (aten::copy_)": ("aten::copy_",),
    "stack of 13 hidden states (aten::cat)": ("aten::stack", "aten::cat", "aten::contiguous",
                                              "aten::clone", "aten::to", "aten::_to_copy"),
    "pooling reductions": ("aten::sum",),
}  # fmt: skip

STEPS = {  # (module, attribute) wrapped with a record_function label
    "prepare: first-pass tokenisation": ("xalign.extract._plan", "_first_pass"),
    "prepare (total)": ("xalign.extract._engine", "prepare_extract"),
    "chunk tokenisation": ("xalign.extract._extract", "tokenize_corpus"),
    "padded input tensors": ("xalign.extract._extract._Runner", "_inputs"),
    "model forward (total)": ("xalign.extract._extract._Runner", "_forward"),
    "pooling (mask-multiply, sum, divide)": ("xalign.extract._extract", "pool"),
    "store write (zarr chunks, CRC-32)": ("xalign.extract._plan.ExtractPlan", "write_chunk"),
    "finish (integrity record, manifest, reopen)": ("xalign.extract._engine", "finish_extract"),
    "compute_chunk (total)": ("xalign.extract._engine", "compute_chunk"),
}


def _label(steps: dict[str, tuple[str, str]]) -> None:
    import importlib

    from torch.profiler import record_function

    def wrap(fn: Any, name: str) -> Any:
        @functools.wraps(fn)
        def inner(*a: Any, **k: Any) -> Any:
            with record_function(name):
                return fn(*a, **k)

        return inner

    for name, (mod, attr) in steps.items():
        parts = mod.split(".")
        try:
            owner: Any = importlib.import_module(mod)
        except ModuleNotFoundError:  # a class inside a module
            owner = getattr(importlib.import_module(".".join(parts[:-1])), parts[-1])
        setattr(owner, attr, wrap(getattr(owner, attr), name))


def profile_once(enc: Any, rows: list[dict[str, Any]], out: str) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    from xalign.data import Corpus
    from xalign.extract import ExtractConfig, extract

    cfg = ExtractConfig(out=out, layers="all", pooling=["mean"], progress=False, overwrite=True)
    corpus = Corpus.from_records(rows, name="bench")
    extract(cfg, corpus=Corpus.from_records(rows[:64], name="warm"), encoder=enc)
    t = time.perf_counter()
    extract(cfg, corpus=corpus, encoder=enc)
    plain = time.perf_counter() - t
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        extract(cfg, corpus=corpus, encoder=enc)
        wall = time.perf_counter() - t
    ka = prof.key_averages()
    self_us = {e.key: e.self_cpu_time_total for e in ka}
    total_us = {e.key: e.cpu_time_total for e in ka}
    total_self = sum(v for k, v in self_us.items() if not k.startswith(("prepare", "chunk", "padded",
                     "model", "pooling", "store", "finish", "compute_chunk")))  # fmt: skip
    # addmm's own copy_ children (the bias broadcast into the output) are counted under it by
    # cpu_time_total; the difference shows they are nearly all of aten::copy_
    addmm_children = (total_us.get("aten::addmm", 0) - self_us.get("aten::addmm", 0)) / 1e6
    cats: dict[str, float] = {}
    seen: set[str] = set()
    for cat, ops in CATEGORIES.items():
        # ops that only dispatch (linear → addmm) have small self time, so self time is summed
        cats[cat] = sum(self_us.get(o, 0) for o in ops) / 1e6
        seen.update(ops)
    top_other = sorted(((v, k) for k, v in self_us.items() if k not in seen and k.startswith("aten")),
                       reverse=True)[:8]  # fmt: skip
    cats["other aten ops"] = sum(v for v, _ in top_other) / 1e6
    steps = {name: total_us.get(name, 0) / 1e6 for name in STEPS}
    return {"addmm_children_s": addmm_children, "wall_unprofiled_s": plain, "wall_profiled_s": wall, "self_cpu_total_s": total_self / 1e6,
            "kernels_s": cats, "steps_s": steps,
            "top_other_ops": [(k, v / 1e6) for v, k in top_other],
            "top_ops": [(e.key, e.self_cpu_time_total / 1e6, e.count)
                        for e in sorted(ka, key=lambda e: -e.self_cpu_time_total)[:15]]}  # fmt: skip


def float16_and_assign_cost(rows: int) -> dict[str, float]:
    """Seconds of compute_chunk's numpy steps that the profiler cannot see (per ``rows``)."""
    import numpy as np

    a = np.random.rand(rows, 13, 384).astype(np.float32)
    idx = np.random.permutation(rows)
    t = time.perf_counter()
    for _ in range(5):
        a.astype(np.float16)
    f16 = (time.perf_counter() - t) / 5
    b = np.zeros_like(a)
    t = time.perf_counter()
    for _ in range(5):
        b[idx] = a
    return {
        "float16 conversion": f16,
        "scatter rows into chunk buffer": (time.perf_counter() - t) / 5,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--corpora", default="tatoeba,mixed")
    p.add_argument("--data", default="../shared/data/tatoeba/v1")
    p.add_argument("--sib", default="../shared/data/sib-200")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--per-lang", type=int, default=20)
    p.add_argument("--long-per-lang", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--eager", action="store_true", help="also profile with eager attention")
    p.add_argument("--json", help="write the breakdown here")
    a = p.parse_args(argv)

    import torch
    from _corpora import mixed_rows, tatoeba_rows

    from xalign.models import load_encoder

    torch.set_num_threads(a.threads)
    enc = load_encoder("e5-small", device="cpu")
    _label(STEPS)
    corpora = {}
    for c in a.corpora.split(","):
        corpora[c] = (tatoeba_rows(a.data, a.n) if c == "tatoeba" else
                      mixed_rows(a.sib, per_lang=a.per_lang, long_per_lang=a.long_per_lang,
                                 tokenizer=enc.tokenizer))  # fmt: skip
    result: dict[str, Any] = {"load_average": os.getloadavg(), "threads": a.threads}
    tmp = tempfile.mkdtemp(prefix="xalign-profile-")
    modes = ["sdpa", "eager"] if a.eager else ["sdpa"]
    for mode in modes:
        enc.model.set_attn_implementation(mode)
        for c, rows in corpora.items():
            print(f"profiling {c} ({mode}) ...", file=sys.stderr, flush=True)
            r = profile_once(enc, rows, os.path.join(tmp, c))
            r["numpy_steps_s"] = float16_and_assign_cost(len(rows))
            r["load_average_after"] = os.getloadavg()
            result[f"{c}/{mode}"] = r
            print(
                f"\n== {c}, {len(rows)} rows, attention {mode}: wall {r['wall_unprofiled_s']:.2f} s "
                f"unprofiled, {r['wall_profiled_s']:.2f} s profiled; load {os.getloadavg()[0]:.2f}"
            )
            w = r["wall_profiled_s"]
            for k, v in sorted(r["kernels_s"].items(), key=lambda kv: -kv[1]):
                print(f"  {k:<52} {v:7.3f} s  {v / w * 100:5.1f} %")
            print(f"  (addmm's child ops, i.e. its bias copies: {r['addmm_children_s']:.3f} s)")
            print("  -- xalign steps (inclusive)")
            for k, v in r["steps_s"].items():
                print(f"  {k:<52} {v:7.3f} s  {v / w * 100:5.1f} %")
            for k, v in r["numpy_steps_s"].items():
                print(f"  {k + ' (numpy, timed apart)':<52} {v:7.3f} s  {v / w * 100:5.1f} %")
            print(
                "  -- top ops by self time: "
                + ", ".join(f"{k} {v:.2f}s×{n}" for k, v, n in r["top_ops"][:10])
            )
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
