"""Time and profile training steps of e5-small on SIB-200 (one torch thread).

    python experiments/sib200-converged/profile_step.py --rounds 3 --steps 6

Runs short trainings (``max_steps`` steps, no evaluation but the last) interleaved
A B A B … over the variants below and prints the median seconds per step of each, then (with
``--profile``) a cProfile breakdown of one push/pull and one finetune run. The per-step times
come from ``train_log.parquet`` (``seconds`` column differences, step 2 onwards; with ``--cpu``
the ``cpu_seconds`` column: CPU time of the one-thread process, close to what the step takes
on an idle core when the machine is loaded).
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import pstats
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

NEIGHBOURS = ROOT.parent / "shared/data/counterfitted-neighbors/counterfitted_neighbors.json"
BASE = dict(
    model="e5-small", task="sib200", data=str(ROOT.parent / "shared/data/sib-200"),
    test_langs=["eng_Latn", "deu_Latn"],
    neighbours=str(NEIGHBOURS),
    n_views=3, alpha=0.1, beta=1.0, ap_layer=6, lr=5e-5, head_lr=2e-3, batch_size=32, grad_accum=1,
    max_length=64, seeds=[0], eval_every=0, monitor_every=0, vocab="task", device="cpu",
    progress=False, save_checkpoint=False, overwrite=True, epochs=1,
)  # fmt: skip


#: measure CPU seconds of the process (≈ idle wall time of a one-thread process) or wall seconds
CPU = False


def variants(args) -> dict[str, dict]:
    v = {
        "pushpull": {"method": "pushpull"},
        "finetune": {"method": "finetune"},
    }
    if args.bucketing:
        v["pushpull+length"] = {"method": "pushpull", "batching": "length"}
        v["finetune+length"] = {"method": "finetune", "batching": "length"}
    return v


def run(name: str, kw: dict, steps: int, tmp: Path, encoder, task_cache: dict):
    from xalign.train import TrainConfig, train

    cfg = TrainConfig(**{**BASE, **kw, "max_steps": steps, "out": str(tmp / name)})
    r = train(cfg, encoder=encoder)
    col = "cpu_seconds" if CPU else "seconds"
    s = r.train_log[col].to_numpy()
    return [float(b - a) for a, b in itertools.pairwise(s[1:])]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--bucketing", action="store_true")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--cpu", action="store_true", help="per-step CPU seconds instead of wall")
    args = p.parse_args(argv)
    global CPU
    CPU = args.cpu
    import torch

    torch.set_num_threads(1)
    from xalign.models import load_encoder

    enc = load_encoder("e5-small", device="cpu", attn_implementation="eager")
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for r in range(args.rounds):
            for name, kw in variants(args).items():
                t = run(name, kw, args.steps, tmp, enc, {})
                times.setdefault(name, []).extend(t)
                print(
                    f"round {r} {name}: {statistics.median(t):.3f} s/step "
                    f"(load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        for name, t in times.items():
            print(f"{name}: median {statistics.median(t):.3f} s/step over {len(t)} steps")
        if args.profile:
            for name in ("pushpull", "finetune"):
                pr = cProfile.Profile()
                pr.enable()
                run(name, variants(args)[name], args.steps, tmp, enc, {})
                pr.disable()
                print(f"=== cProfile {name} ({args.steps} steps + one dev/test evaluation)")
                pstats.Stats(pr).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
