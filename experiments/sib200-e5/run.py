"""SIB-200 push/pull on CPU with the bundled e5-small: train, extract before/after, measure.

Run from the repository root (needs ../shared/data):

    python experiments/sib200-e5/run.py

1. ``python -m xalign.train`` with finetune.toml and pushpull.toml (3 seeds each), in parallel;
2. ``python -m xalign.extract`` of the untouched e5-small and of seed 0's two checkpoints over the
   SIB-200 test sentences of the 20 languages in the configs (stores ``pretrained``,
   ``finetune``, ``pushpull``);
3. the alignment metrics of the three stores (``xalign.metrics``);
4. ``out/summary.md``: zero-shot accuracy per language, seed and method, the push-distance and
   pull-MSE curves, alignment metrics by layer.

Each worker process runs one torch thread: on a shared 2-core machine, one thread per process
was about five times faster than two threads in one process (thread contention), so the two
trainings (and then the extractions) run side by side. ``--report-only`` rebuilds the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
METHODS = ("finetune", "pushpull")
STORES = ("pretrained", "finetune", "pushpull")


def _config(method: str) -> dict:
    return tomllib.loads((HERE / f"{method}.toml").read_text(encoding="utf-8"))


def _run_parallel(jobs: list[tuple[str, list[str]]], logs: Path, workers: int) -> None:
    """Run ``(name, argv)`` jobs, at most ``workers`` at a time, one torch thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    logs.mkdir(parents=True, exist_ok=True)
    pending = list(jobs)
    running: list[tuple[str, subprocess.Popen, float]] = []
    failed = []
    while pending or running:
        while pending and len(running) < workers:
            name, argv = pending.pop(0)
            log = open(logs / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115
            print(f"  start {name}: {' '.join(argv)}", flush=True)
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            running.append((name, proc, time.perf_counter()))
        time.sleep(2)
        for item in list(running):
            name, proc, t0 = item
            if proc.poll() is not None:
                running.remove(item)
                print(f"  done  {name}: exit {proc.returncode} in {time.perf_counter() - t0:.0f} s")
                if proc.returncode:
                    failed.append(name)
    if failed:
        sys.exit(f"failed: {failed}; see {logs}")


def train(out: Path, workers: int) -> None:
    jobs = []
    for m in METHODS:
        argv = [sys.executable, "-m", "xalign.train", "--config", str(HERE / f"{m}.toml")]
        argv += ["--out", str(out / m), "--no-progress"]
        jobs.append((f"train-{m}", argv))
    _run_parallel(jobs, out / "logs", workers)


def extract(out: Path, workers: int, seed: int) -> None:
    cfg = _config("finetune")
    models = {
        "pretrained": "e5-small",
        "finetune": str(out / "finetune" / f"seed-{seed}" / "checkpoint"),
        "pushpull": str(out / "pushpull" / f"seed-{seed}" / "checkpoint"),
    }
    jobs = []
    for label in STORES:
        argv = [sys.executable, "-m", "xalign.extract", "--model", models[label]]
        argv += ["--data", f"sib200:{cfg['data']}", "--split", "test"]
        argv += ["--langs", ",".join(cfg["test_langs"]), "--layers", "all", "--pooling", "mean"]
        argv += ["--max-length", str(cfg["max_length"]), "--prefix", "query"]
        argv += ["--label", label, "--out", str(out / "stores" / label), "--overwrite"]
        argv += ["--device", "cpu", "--no-progress"]
        jobs.append((f"extract-{label}", argv))
    _run_parallel(jobs, out / "logs", workers)


def metrics(out: Path, bootstrap: int) -> None:
    from xalign._io import write_parquet
    from xalign.metrics._run import MetricsConfig, compute_metrics

    cfg = MetricsConfig(
        stores=[f"{s}={out / 'stores' / s}" for s in STORES],
        metrics=["retrieval", "clusters", "cka", "stores"],
        scoring=["cosine"],
        bootstrap=bootstrap,
        progress=False,
    )
    write_parquet(out / "metrics.parquet", compute_metrics(cfg))


# ----------------------------------------------------------------------------- report


def _fmt(vals) -> str:
    import numpy as np

    vals = list(vals)
    s = f"{np.mean(vals):.3f}"
    return s + (f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "")


def report(out: Path, timings: dict) -> str:
    import numpy as np
    import pandas as pd

    lines = ["# sib200-e5 results", ""]
    res = {m: pd.read_parquet(out / m / "results.parquet") for m in METHODS}
    logs = {m: pd.read_parquet(out / m / "train_log.parquet") for m in METHODS}
    conf = {m: json.loads((out / m / "config.json").read_text()) for m in METHODS}
    seeds = conf["finetune"]["seeds"]

    def per_seed(m: str, metric: str, lang: str | None) -> list[float]:
        df = res[m]
        df = df[(df["metric"] == metric) & df["checkpoint"].str.contains("-seed")]
        df = df[df["lang"].isna()] if lang is None else df[df["lang"] == lang]
        order = {f"{conf[m]['resolved']['run_label']}-seed{s}": i for i, s in enumerate(seeds)}
        df = df.assign(o=df["checkpoint"].map(order)).sort_values("o")
        return df["value"].tolist()

    langs = [x for x in res["finetune"].query("metric == 'zero_shot_acc'")["lang"].unique()]
    head = "| language | " + " | ".join(
        [f"finetune s{s}" for s in seeds] + ["finetune mean ± std"]
        + [f"pushpull s{s}" for s in seeds] + ["pushpull mean ± std", "Δ mean"]
    ) + " |"  # fmt: skip
    lines += [
        "## Zero-shot accuracy (SIB-200 test, 204 sentences per language; English dev selection)",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    rows = [(lang, "zero_shot_acc", lang) for lang in langs]
    rows += [
        ("**pooled (19 targets)**", "zero_shot_acc_pooled", None),
        ("**mean (19 targets)**", "zero_shot_acc_mean", None),
        ("English dev", "dev_acc", "eng"),
    ]
    for name, metric, lang in rows:
        cells = [name]
        means = []
        for m in METHODS:
            v = per_seed(m, metric, lang)
            cells += [f"{x:.3f}" for x in v] + [_fmt(v)]
            means.append(np.mean(v))
        cells.append(f"{means[1] - means[0]:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    ft = per_seed("finetune", "zero_shot_acc_mean", None)
    pp = per_seed("pushpull", "zero_shot_acc_mean", None)
    diffs = np.array(pp) - np.array(ft)

    def seed_mean(m: str, lang: str) -> float:
        return float(np.mean(per_seed(m, "zero_shot_acc", lang)))

    wins = sum(seed_mean("pushpull", x) > seed_mean("finetune", x) for x in langs if x != "eng")
    lines += [
        "",
        f"Mean zero-shot accuracy over the 19 target languages: finetune {_fmt(ft)}, pushpull "
        f"{_fmt(pp)} over {len(seeds)} seeds; paired difference per seed (pushpull − finetune): "
        + ", ".join(f"{d:+.3f}" for d in diffs)
        + f". Push/pull is better on {wins} of 19 target languages (seed means).",
        "",
    ]

    lines += ["## Push distance and pull MSE (fixed 32 monitor rows, eval mode)", ""]
    lines += [
        "| method | step | push distance (seed mean) | pull MSE, full map | pull MSE, masked |",
        "|---|---|---|---|---|",
    ]
    for m in METHODS:
        lg = logs[m][logs[m]["push_distance"].notna()]
        g = lg.groupby("step")[["push_distance", "pull_mse", "pull_mse_masked"]].mean()
        steps = g.index.tolist()
        show = sorted({steps[0], steps[len(steps) // 4], steps[len(steps) // 2], steps[-1]})
        for s in show:
            r = g.loc[s]
            lines.append(
                f"| {m} | {s} | {r['push_distance']:.6e} | {r['pull_mse']:.4e} | "
                f"{r['pull_mse_masked']:.4e} |"
            )
    lines += [""]
    for m in METHODS:
        lg = logs[m][logs[m]["push_distance"].notna()]
        first = lg.groupby("seed").first()
        last = lg.groupby("seed").last()
        push = (100 * (last["push_distance"] / first["push_distance"] - 1)).tolist()
        pull = (100 * (last["pull_mse"] / first["pull_mse"] - 1)).tolist()
        pullm = (100 * (last["pull_mse_masked"] / first["pull_mse_masked"] - 1)).tolist()
        pct = lambda v: f"{np.mean(v):+.3f} % (seeds: {', '.join(f'{x:+.3f}' for x in v)})"  # noqa: E731
        lines.append(
            f"- {m}, step 0 → last step: push distance {pct(push)}; pull MSE {pct(pull)}; "
            f"masked pull MSE {pct(pullm)}."
        )
    lines.append("")

    if (out / "metrics.parquet").is_file():
        mt = pd.read_parquet(out / "metrics.parquet")
        raw = mt[mt["protocol"].str.contains('"centered":false', regex=False)]

        def by_layer(metric: str, frame: pd.DataFrame, lang_none: bool = False) -> pd.DataFrame:
            d = frame[frame["metric"] == metric]
            if lang_none:
                d = d[d["lang"].isna()]
            return d.groupby(["layer", "checkpoint"])["value"].mean().unstack()[list(STORES)]

        cen = mt[mt["protocol"].str.contains('"centered":true', regex=False)]
        tables = {
            "retrieval accuracy (cosine, raw; mean over 19 X↔eng pairs)": by_layer(
                "retrieval_acc_mean", raw
            ),
            "retrieval accuracy (cosine, language-centred)": by_layer("retrieval_acc_mean", cen),
            "language silhouette (raw; lower = languages less separated)": by_layer(
                "language_silhouette", raw, lang_none=True
            ),
            "translation cosine − random cosine (raw)": by_layer("translation_contrast", raw),
            "linear CKA between languages (mean over pairs)": by_layer(
                "cka", mt[mt["metric"] == "cka"]
            ),
        }
        lines += ["## Alignment metrics by layer (SIB-200 test, 20 languages, mean pooling)", ""]
        for title, t in tables.items():
            if t.empty:
                continue
            lines += [
                f"**{title}**",
                "",
                "| layer | " + " | ".join(STORES) + " |",
                "|---|---|---|---|",
            ]
            for layer, r in t.iterrows():
                lines.append(f"| {layer} | " + " | ".join(f"{r[s]:.3f}" for s in STORES) + " |")
            lines.append("")
        cka = mt[mt["metric"] == "cka_between_stores"].copy()
        if len(cka):
            cka["other_layer"] = cka["protocol"].map(lambda p: json.loads(p)["other_layer"])
            cka["other"] = cka["protocol"].map(lambda p: json.loads(p)["other_checkpoint"])
            same = cka[cka["layer"] == cka["other_layer"]]
            t = same.pivot_table(index="layer", columns=["checkpoint", "other"], values="value")
            lines += ["**CKA between stores, same layer (1 = unchanged representation)**", ""]
            cols = list(t.columns)
            lines += ["| layer | " + " | ".join(f"{a} vs {b}" for a, b in cols) + " |"]
            lines += ["|---|" + "---|" * len(cols)]
            for layer, r in t.iterrows():
                lines.append(f"| {layer} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
            lines.append("")
    if timings:
        lines += ["## Wall-clock time", ""]
        for k, v in timings.items():
            if k == "load_average":
                lines.append(f"- load average (1, 5, 15 min) when it finished: {v}")
            else:
                lines.append(f"- {k}: {v:.0f} s")
        lines.append("")
    return "\n".join(lines)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default=str(HERE / "out"), help="output folder [default: %(default)s]")
    p.add_argument("--workers", type=int, default=2, help="parallel processes [default: 2]")
    p.add_argument("--seed", type=int, default=0, help="seed whose checkpoints are extracted")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates for CIs")
    p.add_argument("--report-only", action="store_true", help="only rebuild out/summary.md")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings_file = out / "timings.json"
    timings: dict = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    if not args.report_only:
        timings = {}
        t_all = time.perf_counter()
        for name, fn in (
            ("train (finetune ∥ pushpull, 3 seeds each)", lambda: train(out, args.workers)),
            ("extract (3 stores)", lambda: extract(out, args.workers, args.seed)),
            ("metrics", lambda: metrics(out, args.bootstrap)),
        ):
            print(f"[{name}]", flush=True)
            t0 = time.perf_counter()
            c0 = _cpu_seconds()
            fn()
            timings[name] = time.perf_counter() - t0
            timings[f"{name}, CPU seconds (all processes)"] = _cpu_seconds() - c0
        timings["total"] = time.perf_counter() - t_all
        timings["load_average"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
        timings_file.write_text(json.dumps(timings, indent=2))
    text = report(out, timings)
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
