"""The Ray Data engine against the local engine on the same real sentences and model.

Both extract the same Tatoeba sentences with the bundled e5-small (all 13 layers, mean pooling,
float16 store) in fresh processes: the local engine with torch's default threads, and
``--engine ray`` on a local Ray instance with N one-CPU encoder actors. Reports wall time
(Ray start-up, actor model loading and shard merging included, since a user pays for them),
sentences/s, and whether the two stores' arrays are byte-identical (else the largest
difference, in float16 units of the stored values).

    python benchmarks/ray_engine.py --data ../shared/data/tatoeba/v1 --n 2000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from extract import sentences


def run(engine: str, table: Path, out: Path, workers: int) -> float:
    cmd = [
        sys.executable, "-m", "xalign.extract", "--data", f"tsv:{table}", "--layers", "all",
        "--out", str(out), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    if engine == "ray":
        cmd += ["--engine", "ray", "--workers", str(workers)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="../shared/data/tatoeba/v1")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    import numpy as np
    import pandas as pd

    from xalign.store import Store

    rows = sentences(a.data, a.n)
    tmp = Path(tempfile.mkdtemp(prefix="xalign-ray-bench-"))
    table = tmp / "rows.tsv"
    pd.DataFrame(rows)[["id", "lang", "text"]].to_csv(table, sep="\t", index=False)
    # a warm-up, so that both timed runs find the converted e5-small in the cache
    run("local", table, tmp / "warm", a.workers)
    t_local = run("local", table, tmp / "local", a.workers)
    t_ray = run("ray", table, tmp / "ray", a.workers)
    s_local, s_ray = Store.open(tmp / "local"), Store.open(tmp / "ray")
    worst, identical = 0.0, True
    for layer in s_local.layers:
        x, y = s_local.sentences(layer=layer), s_ray.sentences(layer=layer)
        identical &= bool(np.array_equal(x, y))
        worst = max(worst, float(np.abs(x - y).max()))
    print(json.dumps({"rows": len(rows), "local_s": t_local, "ray_s": t_ray,
                      "identical": identical, "max_abs_diff": worst}))  # fmt: skip
    print(f"{len(rows)} sentences, e5-small, all 13 layers")
    print(f"  local engine            {t_local:7.1f} s  {len(rows) / t_local:6.1f} sentences/s")
    print(
        f"  ray, {a.workers} x 1-CPU actors  {t_ray:7.1f} s  {len(rows) / t_ray:6.1f} sentences/s"
    )
    print(f"  arrays byte-identical: {identical} (max |difference| {worst:.3g})")


if __name__ == "__main__":
    main()
