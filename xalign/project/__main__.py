"""``python -m xalign.project``: stores → cached 2-D projections (PCA, UMAP, t-SNE)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xalign._cli import HelpFormatter, config_from_args, run_main
from xalign.project._config import METHODS, ProjectConfig

__all__ = ["build_parser", "main"]

_D = ProjectConfig(stores=["x"])

EPILOG = """\
comparability (what a layer slider or a before/after pair shows):
  pca    one PCA fitted on the union of every (store, layer) block, each block first
         L2-normalised per row, centred and scaled to unit RMS norm; every block is
         projected on the same two axes
  umap   each layout starts from an earlier one (the previous layer of the first store;
  tsne   the first store's same layer for the other stores), then is rotated onto it
         (orthogonal Procrustes) and scaled to unit RMS radius
  Stores of the same corpus are fitted together (--independent: one fit per store).

examples:
  python -m xalign.project runs/demo/store --methods pca --layers all
  python -m xalign.project runs/sib-before runs/sib-after --methods pca,umap --sample 500

Projections are cached in each store's projections/ folder (parquet per layer +
index.json, with the resolved options in config.json) and reused when the same command runs
again (--overwrite recomputes).
UMAP needs umap-learn (pip install 'xalign[umap]') and compiles for tens of seconds first.
"""


def build_parser() -> argparse.ArgumentParser:
    S = argparse.SUPPRESS
    p = argparse.ArgumentParser(
        prog="python -m xalign.project",
        description="Precompute comparable 2-D projections of pooled sentence embeddings and "
        "cache them in the stores (read by the dashboard and the report).",
        formatter_class=HelpFormatter,
        epilog=EPILOG,
        argument_default=S,
    )
    p.add_argument("stores", nargs="+", help="store folders")
    p.add_argument("--config", metavar="FILE.toml", default=None, help="TOML file with options")
    p.add_argument(
        "--methods",
        help=f"comma-separated, from {', '.join(METHODS)} [default: {','.join(_D.methods)}]",
    )
    p.add_argument("--layers", help=f"'all' or e.g. '0,6,12' [default: {_D.layers}]")
    p.add_argument("--pooling", help=f"sentence pooling to read [default: {_D.pooling}]")
    p.add_argument(
        "--sample",
        type=int,
        help="at most N rows per language, translation groups kept together [default: every row]",
    )
    p.add_argument(
        "--seed", type=int, help=f"seed of the sample, UMAP and t-SNE [default: {_D.seed}]"
    )
    p.add_argument(
        "--n-neighbors",
        dest="n_neighbors",
        type=int,
        help=f"UMAP neighbours [default: {_D.n_neighbors}]",
    )
    p.add_argument(
        "--min-dist",
        dest="min_dist",
        type=float,
        help=f"UMAP minimum distance [default: {_D.min_dist}]",
    )
    p.add_argument("--perplexity", type=float, help=f"t-SNE perplexity [default: {_D.perplexity}]")
    p.add_argument(
        "--metric",
        choices=("cosine", "euclidean"),
        help=f"UMAP / t-SNE distance [default: {_D.metric}]",
    )
    p.add_argument(
        "--n-iter",
        dest="n_iter",
        type=int,
        help="t-SNE iterations / UMAP epochs [default: the method's own]",
    )
    p.add_argument(
        "--independent", action="store_true", help="fit every store on its own (no shared axes)"
    )
    p.add_argument("--overwrite", action="store_true", help="recompute cached projections")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, compute (or reuse) the projections, print where they are."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        from xalign.errors import StoreError

        cfg = config_from_args(ProjectConfig, args, config_file=args.config, parser=parser)
        # A mistyped store path is an argument error: answered before the heavy imports.
        for store in cfg.stores:
            if not (Path(store) / "manifest.json").is_file():
                raise StoreError(f"{store}: not an xalign store (no manifest.json)")

        from xalign._io import write_json
        from xalign.project._run import project_stores

        entries = project_stores(cfg, log=print)
        for store in cfg.stores:
            write_json(Path(store) / "projections" / "config.json", cfg.to_dict())
        stores = dict.fromkeys(e["store"] for e in entries)
        new = sum(not e["cached"] for e in entries)
        print(f"\n{len(entries)} projection(s) ({new} computed, {len(entries) - new} cached)")
        for s in stores:
            print(f"projections   {s}/projections/index.json")
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
