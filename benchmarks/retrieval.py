"""Retrieval speed against the floor, and bounded memory at 100k × 100k.

Part 1 — for every Tatoeba language paired with English and every stored layer, both
directions: ``xalign.metrics.tatoeba_accuracy`` (cosine, deterministic tie-breaking, the
backend ``auto`` picks) against the floor, a bare numpy blocked matmul + argmax over the same
float32 arrays (normalisation included in both). Arrays are read from the store first; reading
is not timed. Accuracies of the two must agree.

Part 2 — a 100,000 × 100,000 × 384 top-1 search (synthetic unit vectors), each backend in its
own process, reporting seconds and peak RSS (a full score matrix would be 37 GiB).

Part 3 — BUCC-style mining at the same scale (``--bucc 100000``): ``bucc_mine`` (ratio margin,
k = 4, both directions, greedy 1:1) over 100,000 × 100,000 synthetic sentences of which 20 % are
gold translation pairs hidden among distractors, then the F1 of the mined pairs at the
threshold ``bucc_optimize_threshold`` picks on them (a sanity check of the mining, not a
held-out result), in its own process, reporting seconds per stage and peak RSS.

    python -m xalign.extract --data tatoeba:../shared/data/tatoeba/v1 --layers all \\
        --out runs/tatoeba-all-e5
    python benchmarks/retrieval.py runs/tatoeba-all-e5 [--big 100000] [--bucc 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def floor_accuracy(a: np.ndarray, b: np.ndarray, block: int = 4096) -> tuple[float, float]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    n = len(a)
    fwd = np.empty(n, dtype=np.int64)
    bwd = np.empty(n, dtype=np.int64)
    for s in range(0, n, block):
        fwd[s : s + block] = (a[s : s + block] @ b.T).argmax(1)
        bwd[s : s + block] = (b[s : s + block] @ a.T).argmax(1)
    gold = np.arange(n)
    return float((fwd == gold).mean()), float((bwd == gold).mean())


def part1(store_path: str, backend: str) -> None:
    from xalign.metrics import select_backend, tatoeba_accuracy
    from xalign.store import Store

    store = Store.open(store_path)
    rows = store.rows
    langs = [x for x in store.languages if x != "eng"]
    t_x = t_f = 0.0
    n_searches = 0
    worst = 0.0
    for layer in store.layers:
        X = store.sentences(layer=layer)
        for lang in langs:
            a = rows[rows["lang"] == lang].sort_values("group")
            b = rows[(rows["lang"] == "eng") & rows["group"].isin(a["group"])].sort_values("group")
            A, B = X[a.index], X[b.index]
            t = time.perf_counter()
            r = tatoeba_accuracy(A, B, direction="both", backend=backend)
            t_x += time.perf_counter() - t
            t = time.perf_counter()
            f = floor_accuracy(A, B)
            t_f += time.perf_counter() - t
            worst = max(worst, abs(r["acc_src2tgt"] - f[0]), abs(r["acc_tgt2src"] - f[1]))
            n_searches += 2
    print(
        f"part 1: {len(langs)} languages x {len(store.layers)} layers x 2 directions = "
        f"{n_searches} searches over {len(rows):,} rows; backend {select_backend(backend)}"
    )
    print(f"  xalign tatoeba_accuracy  {t_x:8.2f} s")
    print(f"  numpy floor              {t_f:8.2f} s")
    print(f"  ratio xalign / floor     {t_x / t_f:8.2f}   (max accuracy difference {worst:.2e})")


def big_child(backend: str, n: int) -> None:
    from xalign.metrics import knn

    rng = np.random.default_rng(0)
    q = rng.standard_normal((n, 384), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    k = q + 0.1 * rng.standard_normal((n, 384), dtype=np.float32)
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    _, idx = knn(q, k, k=1, backend=backend)
    dt = time.perf_counter() - t
    acc = float((idx[:, 0] == np.arange(n)).mean())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": dt, "peak_rss_mib": peak, "inputs_rss_mib": base, "acc": acc}))


def part2(n: int) -> None:
    print(
        f"part 2: {n:,} x {n:,} x 384 top-1 search (full score matrix: {n * n * 4 / 2**30:.0f} GiB)"
    )
    for backend in ("numpy", "faiss"):
        out = subprocess.run(
            [sys.executable, __file__, "--big-child", backend, str(n)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  {backend:<6} {r['seconds']:7.1f} s   peak RSS {r['peak_rss_mib']:6.0f} MiB "
            f"(inputs alone {r['inputs_rss_mib']:.0f} MiB)   top-1 acc {r['acc']:.3f}"
        )


def bucc_child(n: int, backend: str = "numpy") -> None:
    from xalign.metrics import bucc_f1, bucc_mine, bucc_optimize_threshold

    rng = np.random.default_rng(1)
    d = 384
    src = rng.standard_normal((n, d), dtype=np.float32)
    tgt = rng.standard_normal((n, d), dtype=np.float32)
    n_gold = n // 5
    gs = rng.choice(n, n_gold, replace=False)
    gt = rng.choice(n, n_gold, replace=False)
    # a translation: its source plus noise of similar size (cosine about 0.6-0.7)
    tgt[gt] = src[gs] + 0.8 * rng.standard_normal((n_gold, d), dtype=np.float32)
    gold = np.stack([gs, gt], axis=1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    mined = bucc_mine(src, tgt, k=4, margin="ratio", backend=backend)
    t_mine = time.perf_counter() - t
    t = time.perf_counter()
    threshold = bucc_optimize_threshold(mined, gold)
    precision, recall, f1 = bucc_f1(mined, gold, threshold)
    t_eval = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "mine_seconds": t_mine,
        "eval_seconds": t_eval,
        "peak_rss_mib": peak,
        "inputs_rss_mib": base,
        "mined": len(mined),
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "threshold": threshold,
    }
    print(json.dumps(out))


def part3(n: int, backend: str) -> None:
    from xalign.metrics import select_backend

    print(
        f"part 3: BUCC mining, {n:,} x {n:,} x 384, 20 % gold pairs among distractors; "
        f"backend {select_backend(backend)}"
    )
    out = subprocess.run(
        [sys.executable, __file__, "--bucc-child", str(n), "--backend", backend],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"  bucc_mine {r['mine_seconds']:7.1f} s, threshold + F1 {r['eval_seconds']:5.1f} s   "
        f"peak RSS {r['peak_rss_mib']:6.0f} MiB (inputs alone {r['inputs_rss_mib']:.0f} MiB)\n"
        f"  {r['mined']:,} pairs mined; F1 {r['f1']:.3f} (P {r['precision']:.3f}, "
        f"R {r['recall']:.3f}) at the threshold {r['threshold']:.4f} tuned on these same pairs "
        "(a sanity check, not a held-out result)"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("store", nargs="?")
    p.add_argument("--backend", default="auto")
    p.add_argument("--big", type=int, default=100_000, help="rows for part 2 (0 = skip)")
    p.add_argument("--bucc", type=int, default=0, help="rows per side for part 3 (0 = skip)")
    p.add_argument("--big-child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--bucc-child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.big_child:
        big_child(a.big_child[0], int(a.big_child[1]))
        return
    if a.bucc_child:
        bucc_child(a.bucc_child, a.backend)
        return
    if a.store:
        part1(a.store, a.backend)
    if a.big:
        part2(a.big)
    if a.bucc:
        part3(a.bucc, a.backend)


if __name__ == "__main__":
    main()
