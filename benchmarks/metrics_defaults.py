"""Wall time of the default ``python -m xalign.metrics STORE``, with a per-group breakdown.

Part 1 — the command exactly as a user runs it (``python -m xalign.metrics STORE --out TMP
--no-progress``, default options), each repeat in a fresh process so that Python start-up
and imports are counted; the median of ``--repeats`` runs is reported.

Part 2 — the same default run in this process (``compute_metrics(MetricsConfig(stores=[STORE]))``)
with a stopwatch around each metric group: the runner's calls into the group functions
(clusters, isotropy, probe, retrieval, BUCC, CKA), the per-layer read from the store and the
language centring it does for retrieval/BUCC are wrapped, the rest of ``compute_metrics``
(tidying, protocol JSON, concatenation) is reported as "other". Wrapping replaces module
attributes only; nothing in the package is changed.

    python -m xalign.extract --out /tmp/h3/demo --layers all --pooling mean,cls --no-progress
    python -m xalign.extract --data tatoeba:../shared/data/tatoeba/v1 --langs deu,fra,cmn,swh \\
        --layers all --out /tmp/h3/tat4 --no-progress
    python benchmarks/metrics_defaults.py /tmp/h3/demo /tmp/h3/tat4 [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def wall(store: str, repeats: int) -> list[float]:
    """Seconds of ``python -m xalign.metrics STORE`` in fresh processes."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            cmd = [sys.executable, "-m", "xalign.metrics", store, "--no-progress"]
            cmd += ["--out", str(Path(tmp) / f"r{i}.parquet")]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            out.append(time.perf_counter() - t)
    return out


@contextlib.contextmanager
def stopwatch(totals: dict[str, float]) -> Iterator[None]:
    """Wrap the functions the runner calls so that their time is added to ``totals``."""
    import xalign.metrics._centering as cen
    import xalign.metrics._clusters as clu
    import xalign.metrics._isotropy as iso
    import xalign.metrics._probe as pro
    import xalign.metrics._run as run
    import xalign.metrics._similarity as sim
    from xalign.store import Store

    targets: list[tuple[Any, str, str]] = [
        (clu, "cluster_metrics", "clusters"),
        (iso, "isotropy_metrics", "isotropy"),
        (pro, "language_id_probe", "probe"),
        (run, "_retrieval", "retrieval"),
        (run, "_bucc", "bucc"),
        (sim, "cka_between_languages", "cka"),
        (cen, "center_by_language", "centring (retrieval/bucc)"),
        (Store, "sentences", "read layer"),
    ]
    saved = []
    depth = [0]

    def timed(fn: Any, name: str) -> Any:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            # only the outermost timed call counts (cluster_metrics centres by itself)
            depth[0] += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    totals[name] += time.perf_counter() - t

        return inner

    for owner, attr, name in targets:
        if hasattr(owner, attr):
            fn = getattr(owner, attr)
            saved.append((owner, attr, fn))
            setattr(owner, attr, timed(fn, name))
    try:
        yield
    finally:
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)


def breakdown(store: str) -> tuple[float, dict[str, float]]:
    """(seconds of compute_metrics, seconds per group) for the default options."""
    from xalign.metrics._run import MetricsConfig, compute_metrics

    totals: dict[str, float] = defaultdict(float)
    with stopwatch(totals):
        t = time.perf_counter()
        compute_metrics(MetricsConfig(stores=[store], progress=False))
        total = time.perf_counter() - t
    totals["other"] = total - sum(totals.values())
    return total, dict(totals)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stores", nargs="+", help="store folders")
    p.add_argument("--repeats", type=int, default=3, help="fresh-process runs per store")
    args = p.parse_args(argv)
    from xalign.store import Store

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for store in args.stores:
        s = Store.open(store)
        print(
            f"\n{store}: {len(s.rows):,} rows, {len(s.languages)} languages, {len(s.layers)} layers"
        )
        times = wall(store, args.repeats)
        print(
            f"  python -m xalign.metrics STORE: median {statistics.median(times):.1f} s "
            f"(runs: {', '.join(f'{t:.1f}' for t in times)})"
        )
        total, groups = breakdown(store)
        print(f"  in-process compute_metrics: {total:.1f} s")
        for name, sec in sorted(groups.items(), key=lambda kv: -kv[1]):
            print(f"    {name:<28}{sec:7.2f} s  {100 * sec / total:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
