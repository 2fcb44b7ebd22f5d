"""Retrieval explorer latency: margin and CSLS neighbours, first click and later clicks.

The explorer scores one query sentence against a language with the ratio margin or CSLS,
which need the k-NN neighbourhood means of both sides. The dashboard caches them in memory
(bounded) per store × layer × pooling × language pair × k × centring, so only the first query
of a pair computes them. This times, on a synthetic store of ``--n-groups`` × languages rows
of ``--dim``-dimensional vectors (one layer):

- the first query (neighbourhoods of every pair of the query's language computed),
- a second query of another sentence in the same language (all from the cache),
- a query in another language (one shared pair cached, the others computed),

for both scorings, and prints what was computed and what came from the cache.

    python benchmarks/dashboard_retrieval.py [--n-groups 10000] [--langs eng,deu,fra,spa,rus]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-groups", type=int, default=10_000, help="rows per language")
    p.add_argument("--langs", default="eng,deu,fra,spa,rus")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=5)
    args = p.parse_args(argv)

    from dashboard import synthetic_store

    from dashboards._catalog import Catalog
    from dashboards._views import neighbours

    langs = args.langs.split(",")
    root = Path(tempfile.mkdtemp(prefix="xalign-bench-"))
    t = time.perf_counter()
    synthetic_store(root / "big", n_groups=args.n_groups, langs=langs, n_layers=1, dim=args.dim)
    n = args.n_groups * len(langs)
    print(f"store {n:,} rows x {args.dim}, {len(langs)} languages: built in "
          f"{time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
    cat = Catalog(root)
    queries = (
        ("first query", 0),
        ("second query (other sentence)", len(langs) * 7),
        ("third query (other language)", 1),
    )
    for scoring in ("margin", "csls"):
        for label, row in queries:
            t = time.perf_counter()
            hits = neighbours(cat, "big", row=row, layer=1, pooling="mean", k=args.k,
                              scoring=scoring)  # fmt: skip
            dt = time.perf_counter() - t
            print(f"{scoring:6s} {label:32s} {dt:7.2f} s  {hits.attrs.get('neighbourhood')}",
                  flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
