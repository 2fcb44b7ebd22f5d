"""``python -m xalign``: lists the verbs; ``python -m xalign demo`` runs the default pipeline."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from xalign._cli import HelpFormatter, run_main

__all__ = ["main"]

VERBS = {
    "extract": "corpus + encoder → store (layerwise embeddings, tokens, attentions)",
    "metrics": "stores → tidy results table (retrieval, cluster gaps, CKA, probes, ...)",
    "project": "stores → cached 2-D projections (PCA, UMAP, t-SNE) for the dashboard",
    "train": "push/pull (and baseline) fine-tuning on English labels, zero-shot evaluation",
    "demo": "the default pipeline on the bundled model and sample (what `make demo` runs)",
}


def _demo(out: Path, *, model: str, progress: bool) -> int:
    from xalign.extract import ExtractConfig, extract

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    store_dir = out / "store"
    print(f"[1/2] extracting the bundled sample with {model} → {store_dir}", flush=True)
    _, summary = extract(
        ExtractConfig(
            model=model,
            data="sample",
            out=str(store_dir),
            layers="all",
            pooling=["mean", "cls"],
            label="pretrained",
            progress=progress,
        )
    )
    print(summary.format())
    results = out / "results.parquet"
    print(f"[2/2] alignment metrics → {results}", flush=True)
    from xalign.metrics.__main__ import main as metrics_main

    rc = metrics_main([str(store_dir), "--out", str(results), "--bootstrap", "200"])
    if rc != 0:
        return rc
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    print(f"  store     {store_dir}   (python: xalign.store.Store.open('{store_dir}'))")
    print(f"  results   {results}   (pandas.read_parquet)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m xalign",
        description="xalign: how well does a multilingual encoder align languages, layer by layer?"
        + "\n\n"
        + "\n".join(f"  {k:<9} {v}" for k, v in VERBS.items())
        + "\n\nEach verb is also `python -m xalign.<verb> --help`.",
        formatter_class=HelpFormatter,
    )
    sub = p.add_subparsers(dest="verb")
    d = sub.add_parser("demo", help=VERBS["demo"], formatter_class=HelpFormatter)
    d.add_argument("--out", default="runs/demo", help="output folder")
    d.add_argument("--model", default="e5-small", help="model name or folder")
    d.add_argument("--no-progress", dest="progress", action="store_false")
    for verb in ("extract", "metrics", "project", "train"):
        sub.add_parser(verb, help=VERBS[verb], add_help=False)
    args, rest = p.parse_known_args(argv)
    if args.verb is None:
        p.print_help()
        return 0
    if args.verb == "demo":
        return run_main(lambda: _demo(Path(args.out), model=args.model, progress=args.progress))
    import importlib

    mod = importlib.import_module(f"xalign.{args.verb}.__main__")
    return int(mod.main(rest))


if __name__ == "__main__":
    sys.exit(main())
