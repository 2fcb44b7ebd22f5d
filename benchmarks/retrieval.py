"""Retrieval speed against the floor, and bounded memory at 100k × 100k.

Part 1 — for every Tatoeba language paired with English and every stored layer, both
directions: ``xalign.metrics.tatoeba_accuracy`` (cosine, deterministic tie-breaking, the
backend ``auto`` picks) against the floor, a bare numpy blocked matmul + argmax over the same
float32 arrays (normalisation included in both). Arrays are read from the store first; reading
is not timed. Accuracies of the two must agree. The two alternate search by search (A B, then
B A, ...) in each of ``--repeats`` passes over all searches, after one untimed warm-up call
of each; medians of the passes' totals.

``--exact`` — instead of timing, checks exactness (docs/metrics.md#exact): for every language
and stored layer (``--pooling`` picks the pooling), the predictions of ``tatoeba_accuracy``
(cosine, both directions) against the argmax of float64 cosines computed from the raw stored
vectors, next to the plain float32 computation's disagreements and the degeneracy of the layer
(mean cosine of all pairs, median best-vs-second gap).

Part 2 — a 100,000 × 100,000 × 384 top-1 search (synthetic unit vectors), each backend in its
own process, reporting seconds and peak RSS (a full score matrix would be 37 GiB).

Part 3 — BUCC-style mining at the same scale (``--bucc 100000``): ``bucc_mine`` (ratio margin,
k = 4, both directions, greedy 1:1) over 100,000 × 100,000 synthetic sentences of which 20 % are
gold translation pairs hidden among distractors, then the F1 of the mined pairs at the
threshold ``bucc_optimize_threshold`` picks on them (a sanity check of the mining, not a
held-out result), in its own process, reporting seconds per stage and peak RSS.

    python -m xalign.extract --data tatoeba:../shared/data/tatoeba/v1 --layers all \\
        --out runs/tatoeba-all-e5
    python benchmarks/retrieval.py runs/tatoeba-all-e5 [--big 100000] [--bucc 100000] \\
        [--repeats 5] [--layers all|last]
    python benchmarks/retrieval.py STORE --exact [--pooling cls] --big 0
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from _machine import machine_line


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


def _pairs(store, layers: str, pooling: str | None = None):
    """(language, layer, X_lang, X_eng) for every language paired with English, rows in
    group order; arrays read before any timing."""
    rows = store.rows
    langs = [x for x in store.languages if x != "eng"]
    chosen = store.layers if layers == "all" else [store.layers[-1]]
    index = []
    for lang in langs:
        a = rows[rows["lang"] == lang].sort_values("group")
        b = rows[(rows["lang"] == "eng") & rows["group"].isin(a["group"])].sort_values("group")
        index.append((lang, a.index.to_numpy(), b.index.to_numpy()))
    out = []
    for layer in chosen:
        kw = {"pooling": pooling} if pooling else {}
        X = np.asarray(store.sentences(layer=layer, **kw))
        out += [(lang, layer, X[ia], X[ib]) for lang, ia, ib in index]
    return out, langs, chosen


def exact_check(store_path: str, layers: str, pooling: str | None, backend: str) -> None:
    """xalign's predictions against the float64 truth from the raw vectors, per search."""
    from xalign.metrics import tatoeba_accuracy
    from xalign.store import Store

    arrays, langs, chosen = _pairs(Store.open(store_path), layers, pooling)
    total = bad_x = bad_f = 0
    print(f"exactness: {len(langs)} languages x {len(chosen)} layers x 2 directions")
    for lang, layer, A, B in arrays:
        a64 = A.astype(np.float64)
        b64 = B.astype(np.float64)
        a64 /= np.linalg.norm(a64, axis=1, keepdims=True)
        b64 /= np.linalg.norm(b64, axis=1, keepdims=True)
        S = a64 @ b64.T
        truth = (S.argmax(1), S.argmax(0))
        t = time.perf_counter()
        r = tatoeba_accuracy(A, B, direction="both", backend=backend)
        dt = time.perf_counter() - t
        a32 = A / np.linalg.norm(A, axis=1, keepdims=True)
        b32 = B / np.linalg.norm(B, axis=1, keepdims=True)
        F = a32 @ b32.T
        nx = int((r["pred_src2tgt"] != truth[0]).sum() + (r["pred_tgt2src"] != truth[1]).sum())
        nf = int((F.argmax(1) != truth[0]).sum() + (F.argmax(0) != truth[1]).sum())
        top2 = np.sort(S, axis=1)[:, -2:]
        gap = float(np.median(top2[:, 1] - top2[:, 0]))
        total += 2 * len(A)
        bad_x += nx
        bad_f += nf
        if nx or nf or gap < 1e-5:
            print(
                f"  {lang} layer {layer}: {2 * len(A)} queries, mean cosine {S.mean():.5f}, "
                f"median top-2 gap {gap:.1e}: xalign {nx} / float32 {nf} disagreements "
                f"with float64 ({1e3 * dt:.0f} ms)"
            )
    print(f"  all: {total:,} queries; xalign {bad_x} and float32 {bad_f} disagree with float64")


def part1(store_path: str, backend: str, repeats: int = 1, layers: str = "all") -> None:
    """xalign vs floor over every (language, layer) search, interleaved: within a repeat each
    search runs both (A B, then B A for the next search, ...); totals per repeat, medians."""
    import statistics

    from xalign.metrics import select_backend, tatoeba_accuracy
    from xalign.store import Store

    store = Store.open(store_path)
    rows = store.rows
    found, langs, chosen = _pairs(store, layers)
    before = machine_line()
    arrays = [(A, B) for _, _, A, B in found]
    totals: dict[str, list[float]] = {"xalign": [], "floor": []}
    worst = 0.0
    # warm-up, not timed, on the smallest and the largest search: first-call costs (lazy
    # imports, the BLAS thread controller) are paid once per process, not per search
    for A, B in (min(arrays, key=lambda p: len(p[0])), max(arrays, key=lambda p: len(p[0]))):
        tatoeba_accuracy(A, B, direction="both", backend=backend)
        floor_accuracy(A, B)
    flip = False
    for _ in range(repeats):
        t_run = {"xalign": 0.0, "floor": 0.0}
        for A, B in arrays:
            for name in ("floor", "xalign") if flip else ("xalign", "floor"):
                t = time.perf_counter()
                if name == "xalign":
                    r = tatoeba_accuracy(A, B, direction="both", backend=backend)
                else:
                    f = floor_accuracy(A, B)
                t_run[name] += time.perf_counter() - t
            flip = not flip
            worst = max(worst, abs(r["acc_src2tgt"] - f[0]), abs(r["acc_tgt2src"] - f[1]))
        for name in totals:
            totals[name].append(t_run[name])
    n_searches = 2 * len(arrays)
    x, fl = statistics.median(totals["xalign"]), statistics.median(totals["floor"])
    ratios = [a / b for a, b in zip(totals["xalign"], totals["floor"], strict=True)]
    print(before)
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"part 1: {len(langs)} languages x {len(chosen)} layers x 2 directions = "
        f"{n_searches} searches over {len(rows):,} rows; backend {select_backend(backend)}; "
        f"{repeats} interleaved repeats, medians"
    )
    print(f"  xalign tatoeba_accuracy  {x:8.3f} s   ({1e3 * x / len(arrays):.2f} ms per pair)")
    print(f"  numpy floor              {fl:8.3f} s   ({1e3 * fl / len(arrays):.2f} ms per pair)")
    print(
        f"  ratio xalign / floor     {x / fl:8.2f}   (per repeat: "
        f"{', '.join(f'{v:.2f}' for v in ratios)}; max accuracy difference {worst:.2e})"
    )


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
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats of part 1")
    p.add_argument("--layers", choices=("all", "last"), default="all", help="layers of part 1")
    p.add_argument("--big", type=int, default=100_000, help="rows for part 2 (0 = skip)")
    p.add_argument("--bucc", type=int, default=0, help="rows per side for part 3 (0 = skip)")
    p.add_argument("--exact", action="store_true", help="check exactness instead of part 1")
    p.add_argument("--pooling", default=None, help="pooling for --exact (default: the store's)")
    p.add_argument("--big-child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--bucc-child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.big_child:
        big_child(a.big_child[0], int(a.big_child[1]))
        return
    if a.bucc_child:
        bucc_child(a.bucc_child, a.backend)
        return
    if a.store and a.exact:
        exact_check(a.store, a.layers, a.pooling, a.backend)
    elif a.store:
        part1(a.store, a.backend, a.repeats, a.layers)
    if a.big:
        part2(a.big)
    if a.bucc:
        part3(a.bucc, a.backend)


if __name__ == "__main__":
    main()
