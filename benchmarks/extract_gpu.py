"""GPU extraction throughput against the bf16 roofline.

For each model × length mix, ``xalign.extract`` runs the whole pipeline (token-budget batches,
bf16 autocast, SDPA, pinned-memory transfers, all layers mean-pooled, float16 store written)
after a warm-up run, and reports

- tokens/s (real tokens, padding excluded) and padded tokens/s;
- the fraction of the bf16 roofline: ``2 × non-embedding parameters × tokens/s ÷ peak``, with
  ``peak`` both the nominal dense bf16 peak of the GPU (when its name is known) and the peak
  measured here with an 8192³ bf16 ``torch.matmul``. Attention-score FLOPs are not counted
  (as in the usual 2·N·tokens estimate), so long inputs under-report the real utilisation.

Models: the bundled ``e5-small`` (21 M non-embedding parameters) and an mBERT-size random-init
BERT (12 layers, hidden 768, 85 M non-embedding parameters) saved with e5-small's tokenizer, so
both read the same token ids. Length mixes are built from the bundled 13-language sample:
``short`` single sentences (~29 tokens with e5's ``query:`` prefix; FLORES/SIB-like),
``medium`` three joined (~80 tokens, XNLI premise-like), ``long`` ten joined (~250 tokens,
short documents).

    python benchmarks/extract_gpu.py                      # on a CUDA machine
    python benchmarks/extract_gpu.py --device cpu --rows 64 --models e5-small --mixes short
                                                          # a smoke run of the code path on CPU
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

#: Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, by device-name fragment.
NOMINAL_BF16 = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 80GB HBM3": 989e12,
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
}

MIXES = {"short": 1, "medium": 3, "long": 10}


def nominal_peak(name: str) -> float | None:
    for key, value in NOMINAL_BF16.items():
        if key in name:
            return value
    return None


def measured_peak(device: str) -> float:
    import torch

    n = 8192 if device.startswith("cuda") else 1024
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    reps = 20 if device.startswith("cuda") else 3
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t)


def corpus(mix: str, rows: int):
    from xalign.data import Corpus, load_sample

    sample = load_sample().rows
    k = MIXES[mix]
    recs = []
    for lang, part in sample.groupby("lang", sort=True):
        texts = part["text"].tolist()
        for i in range(len(texts)):
            recs.append(
                {"lang": lang, "text": " ".join(texts[(i + j) % len(texts)] for j in range(k))}
            )
    # repeat to the requested size, with a counter so every row differs
    out = [
        {
            "id": f"r{n}",
            "lang": recs[n % len(recs)]["lang"],
            "text": f"{recs[n % len(recs)]['text']} ({n})",
        }
        for n in range(rows)
    ]
    return Corpus.from_records(out, name=f"gpu-bench-{mix}")


def mbert_size_folder(root: Path) -> Path:
    """A random-init BERT of mBERT's shape, saved with e5-small's tokenizer (same token ids)."""
    import torch
    from transformers import BertConfig, BertModel

    from xalign.models import load_encoder

    folder = root / "mbert-size-random"
    if (folder / "config.json").exists():
        return folder
    tok = load_encoder("e5-small", device="cpu").tokenizer
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def non_embedding_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)


def run(model_name: str, mix: str, rows: int, device: str, budget: int, tmp: Path) -> dict:
    import torch

    from xalign.extract import ExtractConfig, extract
    from xalign.models import load_encoder

    enc = load_encoder(model_name, device=device)
    c = corpus(mix, rows)
    warm = c.select(limit_per_lang=8)
    opts = dict(layers="all", pooling=["mean"], token_budget=budget, progress=False, device=device)
    extract(
        ExtractConfig(out=str(tmp / f"warm-{mix}"), overwrite=True, **opts),
        corpus=warm,
        encoder=enc,
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    store, summary = extract(
        ExtractConfig(out=str(tmp / f"run-{mix}"), overwrite=True, **opts), corpus=c, encoder=enc
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    n_tok = store.rows["n_tokens"].to_numpy()
    from xalign.extract import length_sorted_batches

    padded = 0
    chunk = store.extraction["chunk_rows"]
    for a in range(0, len(n_tok), chunk):
        for b in length_sorted_batches(n_tok[a : a + chunk], token_budget=budget):
            padded += len(b) * int(n_tok[a : a + chunk][b].max())
    return {
        "model": model_name if "mbert" not in str(model_name) else "mbert-size (random init)",
        "mix": mix,
        "rows": rows,
        "mean_tokens": float(n_tok.mean()),
        "seconds": dt,
        "tokens_per_s": summary.tokens / dt,
        "padded_tokens_per_s": padded / dt,
        "non_embedding_params": non_embedding_params(enc.model),
        "gpu_peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30
        if device.startswith("cuda")
        else None,
        "autocast": store.extraction["autocast"],
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda")
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--models", default="e5-small,mbert-size")
    p.add_argument("--mixes", default="short,medium,long")
    p.add_argument("--token-budget", type=int, default=65536)
    p.add_argument("--json", help="also write the results here (JSON lines)")
    a = p.parse_args()
    import torch

    name = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "CPU"
    nominal = nominal_peak(name) if a.device.startswith("cuda") else None
    measured = measured_peak(a.device)
    print(f"device {name}; torch {torch.__version__}; measured {'bf16' if a.device.startswith('cuda') else 'fp32'} "
          f"matmul peak {measured / 1e12:.1f} TFLOP/s; nominal dense bf16 peak "
          f"{'%.0f TFLOP/s' % (nominal / 1e12) if nominal else 'unknown'}")  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for model in a.models.split(","):
            path = str(mbert_size_folder(tmp)) if model == "mbert-size" else model
            for mix in a.mixes.split(","):
                r = run(path, mix, a.rows, a.device, a.token_budget, tmp)
                flops = 2 * r["non_embedding_params"] * r["tokens_per_s"]
                r["device"] = name
                r["roofline_measured"] = flops / measured
                r["roofline_nominal"] = flops / nominal if nominal else None
                results.append(r)
                print(json.dumps(r))
    print(
        "\n| model | mix | mean tokens | tokens/s | padded tokens/s | of measured peak | of nominal peak | GPU peak mem |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        nom = f"{100 * r['roofline_nominal']:.1f} %" if r["roofline_nominal"] else "n/a"
        mem = f"{r['gpu_peak_mem_gib']:.1f} GiB" if r["gpu_peak_mem_gib"] is not None else "n/a"
        print(f"| {r['model']} | {r['mix']} | {r['mean_tokens']:.0f} | {r['tokens_per_s']:,.0f} | "
              f"{r['padded_tokens_per_s']:,.0f} | {100 * r['roofline_measured']:.1f} % | {nom} | {mem} |")  # fmt: skip
    if a.json:
        Path(a.json).write_text("".join(json.dumps(r) + "\n" for r in results))


if __name__ == "__main__":
    main()
