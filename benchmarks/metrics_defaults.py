"""Wall time of the default ``python -m xalign.metrics STORE``, with a per-group breakdown.

Part 1 — the command exactly as a user runs it (``python -m xalign.metrics STORE --out TMP
--no-progress``, default options: worker processes included), each repeat in a fresh process
so that Python start-up and imports are counted; the median of ``--repeats`` runs is reported.

Part 2 — the same default options in a fresh process (``compute_metrics(MetricsConfig(
stores=[STORE], workers=1))``: in one process, so that every group's time can be taken) with a
stopwatch around each metric group: the runner's calls into the group functions (clusters,
isotropy, probe, retrieval, BUCC, CKA), the per-layer read from the store and the language
centring it does for retrieval/BUCC are wrapped, the rest of ``compute_metrics`` (tidying,
protocol JSON, concatenation) is reported as "other". Wrapping replaces module attributes
only; nothing in the package is changed. The sum of the groups is the work that part 1
shares among its worker processes.

With ``--baseline SRC`` (a source tree of another xalign version) every repeat runs both
versions, alternating which goes first (A B, B A, ...), each in its own process with
``PYTHONPATH`` set to its tree, so that both see the same machine load; medians per version.
The results tables of the first repeat are then compared row by row (``--keep`` keeps them):
the largest absolute difference of each metric whose values differ, and whether the rows
(metric, layer, languages, protocol) are the same.

    python -m xalign.extract --out /tmp/xa-demo --layers all --no-progress
    python -m xalign.extract --data tatoeba:../shared/data/tatoeba/v1 --langs deu,fra,cmn,ara \\
        --layers all --out /tmp/xa-tat4 --no-progress
    python benchmarks/metrics_defaults.py /tmp/xa-demo /tmp/xa-tat4 [--repeats 3] \\
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

    # one process, so that the stopwatch sees every group (versions without workers: as is)
    serial = {"workers": 1} if "workers" in MetricsConfig.__dataclass_fields__ else {}
    totals: dict[str, float] = defaultdict(float)
    with stopwatch(totals):
        t = time.perf_counter()
        results = compute_metrics(MetricsConfig(stores=[store], progress=False, **serial))
        total = time.perf_counter() - t
    if save:
        results.to_parquet(save)
    totals["other"] = total - sum(totals.values())
    return total, dict(totals)


def compare_tables(old: Path, new: Path) -> list[str]:
    """Lines saying how the results table ``new`` differs from ``old``, row by row."""
    import numpy as np
    import pandas as pd

    a, b = pd.read_parquet(old), pd.read_parquet(new)
    keys = ["metric", "layer", "lang", "lang2", "protocol"]
    if len(a) != len(b) or not all(
        a[k]
        .astype(object)
        .fillna("")
        .astype(str)
        .equals(b[k].astype(object).fillna("").astype(str))
        for k in keys
    ):
        return [f"rows differ ({len(a):,} vs {len(b):,} rows, or other keys/protocols)"]
    lines = []
    for col in ("value", "ci_low", "ci_high", "n"):
        x, y = a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float)
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        if same.all():
            continue
        diff = pd.Series(np.abs(x - y)[~same], index=a["metric"].to_numpy()[~same])
        per = diff.groupby(level=0).agg(["count", "max"])
        for metric, r in per.iterrows():
            lines.append(
                f"{col} of {metric}: {int(r['count'])} rows differ, max |diff| {r['max']:.3g}"
            )
    return lines or [f"identical ({len(a):,} rows: values, intervals, n, protocols)"]


#: Probe variants of ``--probe-variants``: keyword arguments of ``language_id_probe``.
PROBE_VARIANTS: dict[str, dict[str, Any]] = {
    "default (5 folds)": {"cv": 5},
    "3 folds": {"cv": 3},
}


def probe_variants(store: str) -> None:
    """CPU seconds of the probe (all layers, raw and centred) per variant, in this process,
    and the range of each probe number's change against the default."""
    import pandas as pd

    from xalign.metrics._probe import language_id_probe
    from xalign.store import Store

    st = Store.open(store)
    cpu = dict.fromkeys(PROBE_VARIANTS, 0.0)
    recs = []
    for layer in st.layers:
        X, rows = st.sentences(pooling="mean", layer=layer, with_rows=True)
        langs, grp = rows["lang"].to_numpy(dtype=object), rows["group"].to_numpy(dtype=object)
        for name, kw in PROBE_VARIANTS.items():
            for centered in (False, True):
                c = time.process_time()
                df = language_id_probe(X, langs, groups=grp, centered=centered, **kw)
                cpu[name] += time.process_time() - c
                recs += [
                    (name, layer, centered, m, v) for m, v in zip(df.metric, df.value, strict=True)
                ]
    table = pd.DataFrame(recs, columns=["variant", "layer", "centered", "metric", "value"])
    keys = ["layer", "centered", "metric"]
    default = table[table.variant == next(iter(PROBE_VARIANTS))].set_index(keys)["value"]
    print(f"\n{store}: probe CPU seconds over {len(st.layers)} layers, raw and centred")
    for name in PROBE_VARIANTS:
        print(f"  {name:<26}{cpu[name]:7.1f} s")
        d = table[table.variant == name].set_index(keys)["value"] - default
        for (centered, metric), g in d.groupby(level=["centered", "metric"]):
            if g.abs().max() > 0:
                what = f"{'centred' if centered else 'raw'} {metric}"
                print(f"    {what:<34} change {g.min():+.4f} .. {g.max():+.4f}")


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
        help="skip part 1 (the command); part 2 runs in one process, so its time is the "
        "serial one, not the command's with worker processes",
    )
    p.add_argument(
        "--no-breakdown",
        action="store_true",
        help="skip part 2 (the per-group breakdown): the command's wall time only",
    )
    p.add_argument(
        "--probe-variants",
        action="store_true",
        help="instead: the probe's CPU time and numbers with 3 folds",
    )
    p.add_argument("--breakdown-json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe_variants:
        for store in args.stores:
            probe_variants(store)
        return 0
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
                    print(f"  run {r} {name}: command {walls[name][-1]:.1f} s", flush=True)
                for name in [] if args.no_breakdown else order[::-1]:
                    loads.append(os.getloadavg()[0])
                    save = None
                    if args.keep and args.breakdown_only:
                        save = Path(args.keep) / f"{Path(store).name}-{name}-{r}.parquet"
                    parts[name].append(breakdown_once(store, trees[name], save))
                    print(f"  run {r} {name}: breakdown {parts[name][-1][2]:.1f} s", flush=True)
            if len(trees) == 2 and not args.breakdown_only:
                tables = [
                    Path(args.keep or tmp) / f"{Path(store).name}-{n}-0.parquet" for n in trees
                ]
                print("  results, baseline vs current (repeat 0):")
                for line in compare_tables(*tables):
                    print(f"    {line}")
        print(f"  load average during the runs: {min(loads):.1f}-{max(loads):.1f}")
        for name in trees:
            times = walls[name]
            if times:
                print(
                    f"  [{name}] python -m xalign.metrics STORE: median "
                    f"{statistics.median(times):.1f} s (runs: {_runs(times)})"
                )
            if not parts[name]:
                continue
            procs = [x for _, _, x in parts[name]]
            totals = [x for x, _, _ in parts[name]]
            print(
                f"  [{name}] one-process breakdown (start-up included): median "
                f"{statistics.median(procs):.1f} s (runs: {_runs(procs)})"
            )
            print(
                f"  [{name}] in-process compute_metrics, one process: median "
                f"{statistics.median(totals):.1f} s (runs: {_runs(totals)})"
            )
            groups = sorted({g for _, gs, _ in parts[name] for g in gs})
            med = {g: statistics.median(gs.get(g, 0.0) for _, gs, _ in parts[name]) for g in groups}
            for g, sec in sorted(med.items(), key=lambda kv: -kv[1]):
                print(f"    {g:<28}{sec:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
