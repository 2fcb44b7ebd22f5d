"""Peak memory of extraction against corpus size: does RSS grow with rows?

A synthetic parallel corpus (random words, 8 languages, 6-40 words a row) goes through a tiny
random-init BERT (2 layers, hidden 32) into a store, at each size in its own process; peak RSS
(ru_maxrss) is reported with the store size. Bounded memory means the 200k-row run peaks
near the 20k-row run: what grows is the corpus table itself (texts, ids), not the arrays.

    python benchmarks/memory.py --rows 20000 200000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(n: int, out: str) -> None:
    import numpy as np

    from xalign.data import Corpus
    from xalign.extract import ExtractConfig, extract
    from xalign.models import tiny_encoder

    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(5000)])
    langs = ["eng", "deu", "fra", "spa", "rus", "ell", "tur", "swh"]
    lengths = rng.integers(6, 41, size=n)
    texts = [" ".join(rng.choice(vocab, size=k)) for k in lengths]
    corpus = Corpus.from_records(
        {"id": str(i), "lang": langs[i % 8], "text": t, "group": str(i // 8)}
        for i, t in enumerate(texts)
    )
    del texts
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    enc = tiny_encoder("bert", seed=0)
    t = time.perf_counter()
    _, summary = extract(
        ExtractConfig(out=out, layers="all", pooling=["mean", "cls"], tokens=True, progress=False),
        corpus=corpus,
        encoder=enc,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": n, "seconds": time.perf_counter() - t, "peak_rss_mib": peak,
                      "rss_after_corpus_mib": base, "store_mib": summary.store_bytes / 2**20,
                      "tokens": summary.tokens}))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(int(a.child[0]), a.child[1])
        return
    tmp = Path(tempfile.mkdtemp(prefix="xalign-mem-"))
    print(
        f"{'rows':>8} {'tokens':>10} {'seconds':>8} {'RSS after corpus':>17} {'peak RSS':>9} {'store':>9}"
    )
    for n in a.rows:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), str(tmp / f"s{n}")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['rows']:>8,} {r['tokens']:>10,} {r['seconds']:>8.1f} {r['rss_after_corpus_mib']:>13.0f} MiB"
              f" {r['peak_rss_mib']:>5.0f} MiB {r['store_mib']:>5.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
