"""``python -m xalign.metrics``: stores → tidy results table + a per-layer summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xalign._cli import HelpFormatter, config_from_args, run_main
from xalign.metrics._run import METRIC_GROUPS, MetricsConfig

__all__ = ["build_parser", "main"]

_D = MetricsConfig(stores=["x"])

EPILOG = """\
metric groups (--metrics, comma-separated; default all):
  retrieval   Tatoeba-style top-1 accuracy, both directions and mean, per language pair
              (cosine / ratio-margin k=4 / CSLS; bootstrap CIs), raw and language-centred
  clusters    centroid gaps (raw, scaled by spread, cosine), translation vs random-pair cosine
              contrast, silhouette with language and translation-group labels, Davies-Bouldin
  probe       5-fold language-ID logistic-regression probe with a control task (selectivity)
  cka         linear CKA between languages on parallel rows (feature-space form)
  isotropy    mean cosine of random pairs and partition isotropy, per language
  bucc        BUCC-style mining F1 with distractors, threshold tuned on a held-out part
  stores      layer x layer linear CKA between stores (before vs after)
  word_align  SimAlign-style word alignment from token embeddings (argmax, itermax) and, with
              pair-mode attention (extract --pairs A,B), from cross attention; AER/P/R/F1
              against --gold (needs --tokens)
  attention   attention entropy per language, attention-pattern similarity of a sentence and
              its translation on aligned word pairs; attention MSE / JS between two stores
              (needs --attentions head-mean)

examples:
  python -m xalign.metrics runs/tatoeba-e5 --out runs/tatoeba-e5/results.parquet
  python -m xalign.metrics before=runs/sib-before after=runs/sib-after --metrics all \\
      --out results/sib.parquet

Results columns: store, checkpoint, metric, layer, lang, lang2, value, n, ci_low, ci_high,
protocol (JSON of every choice that changes the number). Layers are ours (0 = embeddings).
"""


def build_parser() -> argparse.ArgumentParser:
    S = argparse.SUPPRESS
    p = argparse.ArgumentParser(
        prog="python -m xalign.metrics",
        description="Alignment metrics over one or more stores, written as one tidy table.",
        formatter_class=HelpFormatter,
        epilog=EPILOG,
        argument_default=S,
    )
    p.add_argument("stores", nargs="+", help="store folders, or label=folder (label = checkpoint)")
    p.add_argument("--config", metavar="FILE.toml", default=None, help="TOML file with options")
    p.add_argument("--out", help="results file (.parquet or .csv) [default: results.parquet in the "
                   "first store]")  # fmt: skip
    p.add_argument("--metrics", help=f"all or any of {', '.join(METRIC_GROUPS)} [default: all]")
    p.add_argument("--pooling", help=f"sentence pooling to read [default: {_D.pooling}]")
    p.add_argument("--layers", help="'all' or e.g. '0,6,12' [default: all]")
    p.add_argument("--langs", help="comma-separated languages [default: all in the store]")
    p.add_argument("--pivot", help=f"retrieval pairs each language with this one when present; "
                   f"'none' for all pairs [default: {_D.pivot}]")  # fmt: skip
    p.add_argument("--scoring", help="retrieval scorings: cosine, margin, csls "
                   f"[default: {','.join(_D.scoring)}]")  # fmt: skip
    p.add_argument("--k", type=int, help=f"margin neighbourhood size [default: {_D.k}]")
    p.add_argument(
        "--no-dedup",
        dest="dedup",
        action="store_false",
        help="count retrieval hits by row, not by text (duplicates then count as misses)",
    )
    p.add_argument(
        "--centering",
        choices=("raw", "centered", "both"),
        help=f"language centring variants [default: {_D.centering}]",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        help=f"bootstrap resamples for CIs (0 = none) [default: {_D.bootstrap}]",
    )
    p.add_argument(
        "--sample-size",
        dest="sample_size",
        type=int,
        help=f"silhouette subsample (stratified) [default: {_D.sample_size}]",
    )
    p.add_argument("--cv", type=int, help=f"probe folds [default: {_D.cv}]")
    p.add_argument("--seed", type=int, help=f"seed for every sampled choice [default: {_D.seed}]")
    p.add_argument("--backend", choices=("auto", "numpy", "faiss", "faiss-gpu"),
                   help="k-NN backend; auto = faiss GPU when present, else numpy (same results) "
                   f"[default: {_D.backend}]")  # fmt: skip
    p.add_argument(
        "--gold",
        metavar="wordalign:DIR",
        help="gold word alignments (awesome-align format) for --metrics word_align",
    )
    p.add_argument(
        "--gold-out-of-range",
        dest="gold_out_of_range",
        choices=("error", "drop"),
        help="gold links past the end of a sentence (ja-en has 6) [default: error]",
    )
    p.add_argument(
        "--independent",
        action="store_true",
        help="stores of different corpora: per-store metrics only, no comparison",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        from xalign._io import atomic_path, write_json
        from xalign.metrics._run import compute_metrics, summarize

        if getattr(args, "pivot", None) == "none":
            args.pivot = None
        cfg = config_from_args(MetricsConfig, args, config_file=args.config, parser=parser)
        results = compute_metrics(cfg)
        first = (
            cfg.stores[0].split("=", 1)[-1] if not Path(cfg.stores[0]).exists() else cfg.stores[0]
        )
        out = Path(cfg.out) if cfg.out else Path(first) / "results.parquet"
        with atomic_path(out) as tmp:
            if out.suffix == ".csv":
                results.to_csv(tmp, index=False)
            else:
                results.to_parquet(tmp, index=False)
        write_json(out.with_suffix(".config.json"), cfg.to_dict())
        print(summarize(results))
        for note in results.attrs.get("notes", []):
            print(f"note: {note}")
        print(f"\nresults   {out}  ({len(results):,} rows)")
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
