"""sib200-converged: push/pull vs fine-tuning trained to convergence, grid, ablations, alignment.

Run from the repository root (needs ../shared/data):

    python experiments/sib200-converged/run.py            # everything (see README for the time)
    python experiments/sib200-converged/run.py --quick    # tiny limits: checks the pipeline
    python experiments/sib200-converged/run.py --report-only

1. ``python -m xalign.train``, one process per (run, seed), two at a time, one torch thread each:
   finetune × seeds 0–2 and pushpull × seeds 0–2 (English-dev selection, ORACLE selection
   recorded from the same runs), the α/β grid (α ∈ {1, 10} at β = 1 and β = 0 at α = 0.1; the
   point α = 0.1, β = 1 is pushpull seed 0) and the ablations EP only, AP only, RS-DA on seed 0;
2. ``python -m xalign.extract`` of the untouched e5-small and the seed-0 finetune and pushpull
   checkpoints over the SIB-200 test sentences (stores ``pretrained``, ``finetune-seed0``,
   ``pushpull-seed0``: every layer, mean pooling), and attention stores of the same three
   models at the pulled block (tokens + head-mean attention, 6 languages);
3. the alignment metrics (retrieval, clusters, CKA within and between stores; attention
   alignment at the pulled block) with bootstrap CIs;
4. ``results.parquet`` (training rows of every run and seed + metrics, the results schema;
   ``checkpoint`` = ``<run>-seed<s>`` or the store label), ``curves.parquet`` (the monitored
   push distance / pull MSE / dev accuracy of every run), ``summary.md`` and the report
   figures (``python -m xalign.report``) under ``out/report``.

Resumable: a training run whose ``results.parquet`` exists, a store whose manifest says
``complete`` and an existing metrics table are not redone (``--redo`` forces all). Logs of
every process are in ``out/logs/``. A full run also copies ``results.parquet``,
``curves.parquet`` and ``summary.md`` next to this file (the committed results).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from summary import build_summary  # noqa: E402

SEEDS = (0, 1, 2)
#: The attention stores' languages (a subset: token + attention extraction is the costly part).
ATTN_LANGS = ("eng_Latn", "deu_Latn", "rus_Cyrl", "zho_Hans", "arb_Arab", "swh_Latn")
QUICK = {
    "train-limit": "32", "dev-limit": "16", "test-limit-per-lang": "24",
    "test-langs": "eng_Latn,fra_Latn", "epochs": "1", "batch-size": "8", "eval-every": "2",
    "monitor-every": "2", "patience": "2", "oracle-limit-per-lang": "8",
}  # fmt: skip


@dataclass
class Job:
    """One training process: a config, a label (checkpoint prefix), a seed, flag overrides."""

    label: str
    config: str
    seed: int
    flags: dict[str, str] = field(default_factory=dict)
    oracle: bool = False
    #: relative cost, for scheduling the longest first (two forwards per step = 2)
    cost: float = 2.0

    @property
    def name(self) -> str:
        return f"{self.label}-seed{self.seed}"


def jobs() -> list[Job]:
    out = []
    for s in SEEDS:
        out.append(Job("pushpull", "pushpull", s, oracle=True))
        out.append(Job("finetune", "finetune", s, oracle=True, cost=1.0))
    out += [
        Job("pushpull-a1", "pushpull", 0, {"alpha": "1.0"}),
        Job("pushpull-a10", "pushpull", 0, {"alpha": "10.0"}),
        Job("pushpull-b0", "pushpull", 0, {"beta": "0.0"}),
        Job("ep-only", "pushpull", 0, {"ablate": "ap"}),
        Job("ap-only", "pushpull", 0, {"ablate": "ep"}),
        Job("rsda", "pushpull", 0, {"method": "rsda"}, cost=1.0),
    ]
    return sorted(out, key=lambda j: -j.cost)  # stable: longest first, then listed order


def _config(name: str) -> dict:
    return tomllib.loads((HERE / f"{name}.toml").read_text(encoding="utf-8"))


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def run_parallel(todo: list[tuple[str, list[str]]], logs: Path, workers: int) -> None:
    """Run ``(name, argv)`` at most ``workers`` at a time; logs in ``logs/<name>.log``."""
    logs.mkdir(parents=True, exist_ok=True)
    pending = list(todo)
    running: list[tuple[str, subprocess.Popen, float, object]] = []
    failed = []
    while pending or running:
        while pending and len(running) < workers:
            name, argv = pending.pop(0)
            log = open(logs / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115
            print(f"  start {name}", flush=True)
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT
            )
            running.append((name, proc, time.perf_counter(), log))
        time.sleep(1)
        for item in list(running):
            name, proc, t0, log = item
            if proc.poll() is not None:
                running.remove(item)
                log.close()  # type: ignore[attr-defined]
                dt = time.perf_counter() - t0
                print(f"  done  {name}: exit {proc.returncode} in {dt:.0f} s", flush=True)
                if proc.returncode:
                    failed.append(name)
    if failed:
        sys.exit(f"failed: {failed}; see the logs in {logs}")


def _done_training(folder: Path) -> bool:
    return (folder / "results.parquet").is_file() and (folder / "config.json").is_file()


def train(out: Path, workers: int, quick: bool) -> None:
    todo = []
    for j in jobs():
        folder = out / "train" / j.name
        if _done_training(folder):
            print(f"  skip  {j.name} (finished earlier)")
            continue
        argv = [sys.executable, "-m", "xalign.train", "--config", str(HERE / f"{j.config}.toml")]
        argv += ["--seeds", str(j.seed), "--label", j.label, "--out", str(folder)]
        argv += ["--overwrite"]  # progress bars go to out/logs/train-*.log
        if j.oracle:
            argv += ["--record-oracle"]
        for k, v in j.flags.items():
            argv += [f"--{k}", v]
        if quick:
            for k, v in QUICK.items():
                argv += [f"--{k}", v]
        elif j.oracle:
            argv += ["--oracle-limit-per-lang", "24"]
        todo.append((f"train-{j.name}", argv))
    run_parallel(todo, out / "logs", workers)


def _store_done(folder: Path) -> bool:
    m = folder / "manifest.json"
    if not m.is_file():
        return False
    try:
        return json.loads(m.read_text(encoding="utf-8")).get("status") == "complete"
    except json.JSONDecodeError:
        return False


def extract(out: Path, workers: int, quick: bool) -> None:
    cfg = _config("finetune")
    langs = QUICK["test-langs"].split(",") if quick else cfg["test_langs"]
    attn_langs = langs if quick else list(ATTN_LANGS)
    models = {
        "pretrained": "e5-small",
        "finetune-seed0": str(out / "train" / "finetune-seed0" / "seed-0" / "checkpoint"),
        "pushpull-seed0": str(out / "train" / "pushpull-seed0" / "seed-0" / "checkpoint"),
    }
    ap_layer = str(_config("pushpull")["ap_layer"])
    todo = []
    for label, model in models.items():
        for kind in ("stores", "attn"):
            folder = out / kind / label
            if _store_done(folder):
                print(f"  skip  {kind}/{label} (complete)")
                continue
            argv = [sys.executable, "-m", "xalign.extract", "--model", model]
            argv += ["--data", f"sib200:{cfg['data']}", "--split", "test"]
            argv += ["--max-length", str(cfg["max_length"]), "--prefix", "query"]
            argv += ["--label", label, "--out", str(folder), "--overwrite"]
            argv += ["--device", "cpu", "--no-progress"]
            if kind == "stores":
                argv += ["--langs", ",".join(langs), "--layers", "all", "--pooling", "mean"]
            else:
                argv += ["--langs", ",".join(attn_langs), "--layers", ap_layer]
                argv += ["--pooling", "mean", "--tokens", "--attentions", "head-mean"]
            if quick:
                argv += ["--limit-per-lang", QUICK["test-limit-per-lang"]]
            todo.append((f"extract-{kind}-{label}", argv))
    run_parallel(todo, out / "logs", workers)


def metrics(out: Path, bootstrap: int, redo: bool) -> None:
    from xalign._io import write_parquet
    from xalign.metrics._run import MetricsConfig, compute_metrics

    target = out / "metrics.parquet"
    if target.is_file() and not redo:
        print(f"  skip  metrics ({target} exists)")
        return
    labels = ("pretrained", "finetune-seed0", "pushpull-seed0")
    main = MetricsConfig(
        stores=[f"{s}={out / 'stores' / s}" for s in labels],
        metrics=["retrieval", "clusters", "cka", "stores"],
        scoring=["cosine"],
        bootstrap=bootstrap,
        progress=False,
        workers=1,
    )
    frames = [compute_metrics(main)]
    attn = MetricsConfig(
        stores=[f"{s}={out / 'attn' / s}" for s in labels],
        metrics=["attention"],
        bootstrap=bootstrap,
        progress=False,
        workers=1,
        # per store only: the trained checkpoints carry the trimmed vocabulary, so their token
        # ids differ from the pretrained store's and the between-store attention distance
        # refuses to compare them position by position
        independent=True,
    )
    try:
        frames.append(compute_metrics(attn))
    except Exception as err:  # reported, not fatal: the other tables stand on their own
        print(f"  attention metrics failed: {type(err).__name__}: {err}", flush=True)
    import pandas as pd

    write_parquet(target, pd.concat(frames, ignore_index=True))


def collect(out: Path) -> tuple:
    import pandas as pd

    from xalign._io import write_parquet

    res, curves = [], []
    for j in jobs():
        folder = out / "train" / j.name
        if not _done_training(folder):
            continue
        r = pd.read_parquet(folder / "results.parquet")
        res.append(r[r["checkpoint"].str.contains(r"-seed\d+$", regex=True)])
        lg = pd.read_parquet(folder / "train_log.parquet")
        lg.insert(0, "run", j.name)
        curves.append(lg)
    if (out / "metrics.parquet").is_file():
        res.append(pd.read_parquet(out / "metrics.parquet"))
    results = pd.concat(res, ignore_index=True)
    # store paths are machine-specific: keep them relative to the output folder
    results["store"] = results["store"].map(
        lambda s: os.path.relpath(s, out) if isinstance(s, str) and os.path.isabs(s) else s
    )
    curve = pd.concat(curves, ignore_index=True)
    keep = curve["push_distance"].notna() | curve["dev_acc"].notna() | curve["stopped"]
    curve = curve[keep].reset_index(drop=True)
    write_parquet(out / "results.parquet", results)
    write_parquet(out / "curves.parquet", curve)
    return results, curve


#: Metrics kept per language (pair) in the committed table; the other metric groups' rows are
#: kept only where they cover all languages at once (``lang`` empty): the per-pair cluster and
#: CKA rows (tens of thousands) stay in out/results.parquet.
PER_LANGUAGE = ("retrieval_acc", "retrieval_acc_mean", "translation_contrast", "cka_between_stores")


def committed_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of the committed ``results.parquet``: every training row, and of the metrics
    every row the summary reads (retrieval per language pair, CKA between stores, attention,
    the all-language rows of the other groups)."""
    training = results["metric"].str.startswith(("zero_shot_acc", "dev_acc"))
    raw = results["protocol"].str.contains('"centered":false', regex=False)
    keep = (
        training
        | (results["metric"].isin(PER_LANGUAGE) & (raw | results["metric"].str.startswith("cka")))
        | results["metric"].str.startswith("attention_")
        | results["lang"].isna()
    )
    return results[keep].reset_index(drop=True)


def report_figures(out: Path) -> None:
    if not (out / "metrics.parquet").is_file():
        return
    # the report's cluster figures read cached 2-D projections of the stores
    stores = [str(out / "stores" / s) for s in ("pretrained", "finetune-seed0", "pushpull-seed0")]
    proj = [sys.executable, "-m", "xalign.project", *stores, "--methods", "pca"]
    proj += ["--layers", "all", "--pooling", "mean"]
    run_parallel([("project", proj)], out / "logs", 1)
    argv = [sys.executable, "-m", "xalign.report", str(out / "metrics.parquet")]
    argv += ["--out", str(out / "report"), "--stores", str(out / "stores")]
    argv += ["--compare", "pretrained,pushpull-seed0", "--figure-formats", "png"]
    run_parallel([("report", argv)], out / "logs", 1)


def _cpu_seconds() -> float:
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", help="output folder [default: out/, or out-quick/ with --quick]")
    p.add_argument("--quick", action="store_true", help="tiny limits: checks the pipeline")
    p.add_argument("--workers", type=int, default=2, help="parallel processes [default: 2]")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates for CIs")
    p.add_argument("--redo", action="store_true", help="redo finished steps too")
    p.add_argument("--report-only", action="store_true", help="only rebuild the summary")
    args = p.parse_args(argv)
    out = Path(args.out or HERE / ("out-quick" if args.quick else "out")).resolve()
    if args.redo and out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    tfile = out / "timings.json"
    timings: dict = json.loads(tfile.read_text()) if tfile.is_file() else {}
    if not args.report_only:
        t_all = time.perf_counter()
        steps = (
            ("train", lambda: train(out, args.workers, args.quick)),
            ("extract", lambda: extract(out, args.workers, args.quick)),
            ("metrics", lambda: metrics(out, args.bootstrap, args.redo)),
            ("report figures", lambda: report_figures(out)),
        )
        for name, fn in steps:
            print(f"[{name}]", flush=True)
            t0, c0 = time.perf_counter(), _cpu_seconds()
            fn()
            timings[f"{name}, wall seconds"] = round(time.perf_counter() - t0, 1)
            timings[f"{name}, CPU seconds (all processes)"] = round(_cpu_seconds() - c0, 1)
        timings["total wall seconds (this invocation)"] = round(time.perf_counter() - t_all, 1)
        timings["load average at the end (1, 5, 15 min)"] = " ".join(
            f"{x:.1f}" for x in os.getloadavg()
        )
        tfile.write_text(json.dumps(timings, indent=2))
    results, curves = collect(out)
    text = build_summary(results, curves, timings)
    (out / "summary.md").write_text(text, encoding="utf-8")
    if not args.quick and args.out is None:
        from xalign._io import write_parquet

        write_parquet(HERE / "results.parquet", committed_rows(results))
        for f in ("curves.parquet", "summary.md"):
            shutil.copy2(out / f, HERE / f)
    print(text)
    print(f"summary  {out / 'summary.md'}\nresults  {out / 'results.parquet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
