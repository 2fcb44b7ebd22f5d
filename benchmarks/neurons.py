"""Neuron statistics (``--neurons``): peak memory against corpus size, and the extra cost.

A synthetic parallel corpus (random words, 8 languages, 6-40 words a row) goes through a tiny
random-init BERT (2 layers, hidden 32, F = 128) into a store, each run in its own process,
once plainly and once with ``--neurons``. Peak RSS (ru_maxrss) is reported: bounded memory
means the large corpus peaks near the small one (the statistics are ``[L, languages, F]``
float64 whatever the number of rows; only the corpus table itself grows). The time ratio is
the cost of the hooks and the float64 reductions over plain extraction on this CPU model;
on a GPU model measure with ``--model`` (any name ``load_encoder`` accepts).

    python benchmarks/neurons.py --rows 5000 50000
    python benchmarks/neurons.py --rows 20000 --model e5-small

Result (2026-12-03, ``--rows 2000 20000``, tiny BERT, 2 shared CPU cores, other jobs running;
the times are noisy, the memory is the point):

    rows  neurons     tokens  seconds  RSS after corpus  peak RSS     store
   2,000       no     79,814     11.2           122 MiB   550 MiB   0.5 MiB
   2,000      yes     79,814      7.0           122 MiB   565 MiB   0.6 MiB
  20,000       no    785,873    111.1           141 MiB   662 MiB   5.0 MiB
  20,000      yes    785,873     86.3           142 MiB   650 MiB   5.1 MiB

Ten times the rows: peak RSS with --neurons grows like the plain run's (corpus table and
tokenisation), not with the statistics. The time cost on a real model (GPU, F = 3072) is not
measured yet.
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


def child(n: int, out: str, neurons: bool, model: str) -> None:
    import numpy as np

    from xalign.data import Corpus
    from xalign.extract import ExtractConfig, extract

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
    if model == "tiny":
        from xalign.models import tiny_encoder

        enc = tiny_encoder("bert", seed=0)
    else:
        from xalign.models import load_encoder

        enc = load_encoder(model)
    t = time.perf_counter()
    _, summary = extract(
        ExtractConfig(out=out, layers="all", pooling=["mean"], progress=False, neurons=neurons),
        corpus=corpus,
        encoder=enc,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": n, "neurons": neurons, "seconds": time.perf_counter() - t,
                      "peak_rss_mib": peak, "rss_after_corpus_mib": base,
                      "store_mib": summary.store_bytes / 2**20, "tokens": summary.tokens}))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, nargs="+", default=[5_000, 50_000])
    p.add_argument("--model", default="tiny", help="'tiny' (in-process BERT) or a model name")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(int(a.child[0]), a.child[1], a.child[2] == "1", a.child[3])
        return
    tmp = Path(tempfile.mkdtemp(prefix="xalign-neurons-"))
    print(f"{'rows':>8} {'neurons':>8} {'tokens':>10} {'seconds':>8} {'RSS after corpus':>17} "
          f"{'peak RSS':>9} {'store':>9}")  # fmt: skip
    for n in a.rows:
        secs = {}
        for neurons in (False, True):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(n), str(tmp / f"s{n}-{int(neurons)}"),
                 str(int(neurons)), a.model],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            secs[neurons] = r["seconds"]
            print(f"{r['rows']:>8,} {'yes' if neurons else 'no':>8} {r['tokens']:>10,} "
                  f"{r['seconds']:>8.1f} {r['rss_after_corpus_mib']:>13.0f} MiB"
                  f" {r['peak_rss_mib']:>5.0f} MiB {r['store_mib']:>5.1f} MiB")  # fmt: skip
        print(f"{'':>8} cost of --neurons: x{secs[True] / secs[False]:.2f} time")


if __name__ == "__main__":
    main()
