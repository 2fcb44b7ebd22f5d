"""Wall time of the default ``python -m xalign.metrics STORE``, with a per-group breakdown.

Part 1 — the command exactly as a user runs it (``python -m xalign.metrics STORE --out TMP
--no-progress``, default options), each repeat in a fresh process so that Python start-up
and imports are counted; the median of ``--repeats`` runs is reported.

Part 2 — the same default run in a fresh process (``compute_metrics(MetricsConfig(stores=[STORE]))``)
with a stopwatch around each metric group: the runner's calls into the group functions
(clusters, isotropy, probe, retrieval, BUCC, CKA), the per-layer read from the store and the
language centring it does for retrieval/BUCC are wrapped, the rest of ``compute_metrics``
(tidying, protocol JSON, concatenation) is reported as "other". Wrapping replaces module
attributes only; nothing in the package is changed.

With ``--baseline SRC`` (a source tree of another xalign version) every repeat runs both
versions, alternating which goes first (A B, B A, ...), each in its own process with
``PYTHONPATH`` set to its tree, so that both see the same machine load; medians per version.

    python -m xalign.extract --out /tmp/h3/demo --layers all --pooling mean,cls --no-progress
    python -m xalign.extract --data tatoeba:../shared/data/tatoeba/v1 --langs deu,fra,cmn,ara \\
        --layers all --out /tmp/h3/tat4 --no-progress
    python benchmarks/metrics_defaults.py /tmp/h3/demo /tmp/h3/tat4 [--repeats 3] \\
        [--baseline /tmp/xalign-base]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
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


def _env(tree: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = tree
    return env


def wall_once(store: str, tree: str | None, out: Path) -> float:
    """Seconds of one ``python -m xalign.metrics STORE --out OUT`` in a fresh process."""
    cmd = [sys.executable, "-m", "xalign.metrics", store, "--no-progress", "--out", str(out)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=_env(tree))
    return time.perf_counter() - t


def breakdown_once(
    store: str, tree: str | None, save: Path | None = None
) -> tuple[float, dict[str, float], float]:
    """(seconds, seconds per group, process seconds) of the in-process breakdown, in a fresh
    process; the process time includes start-up, imports and opening the store."""
    cmd = [sys.executable, __file__, "--breakdown-json", store]
    cmd += ["--keep", str(save)] if save else []
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env(tree))
    seconds = time.perf_counter() - t
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["total"], data["groups"], seconds


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


def breakdown(store: str, save: str | None = None) -> tuple[float, dict[str, float]]:
    """(seconds of compute_metrics, seconds per group) for the default options."""
    from xalign.metrics._run import MetricsConfig, compute_metrics

    totals: dict[str, float] = defaultdict(float)
    with stopwatch(totals):
        t = time.perf_counter()
        results = compute_metrics(MetricsConfig(stores=[store], progress=False))
        total = time.perf_counter() - t
    if save:
        results.to_parquet(save)
    totals["other"] = total - sum(totals.values())
    return total, dict(totals)


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stores", nargs="+", help="store folders")
    p.add_argument("--repeats", type=int, default=3, help="runs per store (and per version)")
    p.add_argument("--baseline", help="source tree of the version to compare with (PYTHONPATH)")
    p.add_argument(
        "--candidate",
        help="source tree of the version measured [default: this checkout]; a snapshot keeps "
        "edits made while the benchmark runs out of it",
    )
    p.add_argument("--keep", help="folder for the results tables of the runs [default: none]")
    p.add_argument(
        "--breakdown-only",
        action="store_true",
        help="skip part 1; the process time of part 2 (start-up included) stands for it",
    )
    p.add_argument("--breakdown-json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.breakdown_json:
        total, groups = breakdown(args.stores[0], args.keep)
        print(json.dumps({"total": total, "groups": groups}))
        return 0
    from xalign.store import Store

    here = args.candidate or str(Path(__file__).resolve().parents[1])
    trees = {"current": here}
    if args.baseline:
        trees = {"baseline": args.baseline, "current": here}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for store in args.stores:
        s = Store.open(store)
        print(
            f"\n{store}: {len(s.rows):,} rows, {len(s.languages)} languages, {len(s.layers)} layers"
        )
        walls: dict[str, list[float]] = defaultdict(list)
        parts: dict[str, list[tuple[float, dict[str, float], float]]] = defaultdict(list)
        loads = []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                order = list(trees) if r % 2 == 0 else list(trees)[::-1]
                for name in [] if args.breakdown_only else order:
                    loads.append(os.getloadavg()[0])
                    keep = Path(args.keep or tmp) / f"{Path(store).name}-{name}-{r}.parquet"
                    walls[name].append(wall_once(store, trees[name], keep))
                for name in order[::-1]:
                    loads.append(os.getloadavg()[0])
                    save = None
                    if args.keep and args.breakdown_only:
                        save = Path(args.keep) / f"{Path(store).name}-{name}-{r}.parquet"
                    parts[name].append(breakdown_once(store, trees[name], save))
                    print(f"  run {r} {name}: {parts[name][-1][2]:.1f} s", flush=True)
        print(f"  load average during the runs: {min(loads):.1f}-{max(loads):.1f}")
        for name in trees:
            times = walls[name]
            if times:
                print(
                    f"  [{name}] python -m xalign.metrics STORE: median "
                    f"{statistics.median(times):.1f} s (runs: {_runs(times)})"
                )
            procs = [x for _, _, x in parts[name]]
            totals = [x for x, _, _ in parts[name]]
            print(
                f"  [{name}] breakdown process (start-up included): median "
                f"{statistics.median(procs):.1f} s (runs: {_runs(procs)})"
            )
            print(
                f"  [{name}] in-process compute_metrics: median "
                f"{statistics.median(totals):.1f} s (runs: {_runs(totals)})"
            )
            groups = sorted({g for _, gs, _ in parts[name] for g in gs})
            med = {g: statistics.median(gs.get(g, 0.0) for _, gs, _ in parts[name]) for g in groups}
            for g, sec in sorted(med.items(), key=lambda kv: -kv[1]):
                print(f"    {g:<28}{sec:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
