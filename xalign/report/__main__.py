"""``python -m xalign.report``: results table (+ stores) → tables, figures, report.md/.html."""

from __future__ import annotations

import argparse
import shlex
import sys

from xalign._cli import HelpFormatter, config_from_args, run_main
from xalign.errors import ConfigError
from xalign.report._config import ReportConfig

__all__ = ["build_parser", "main"]

_D = ReportConfig(results="x")

EPILOG = """\
outputs (in --out):
  report.md, report.html   every table and figure with its caption (HTML: self-contained)
  tables/*.tex             booktabs tables ready to \\input (need \\usepackage{booktabs})
  tables/*.csv             the same tables, unrounded
  figures/*.pdf|svg|png    print-size figures (3.25 in / 7 in wide), via kaleido + Chromium
  figures/*.html           interactive versions (always written)
  provenance.json          xalign version, results hash, stores and their fingerprints, commands

examples:
  python -m xalign.report results/sib.parquet --stores runs/ --out reports/sib/
  python -m xalign.report r.parquet --out reports/x --metrics retrieval_acc_mean,lid_accuracy \\
      --layers 0-12 --langs deu,fra --compare before,after --format latex,md

Language-specific neurons (rows of the metrics group neurons, from stores extracted with
--neurons) get a section of their own whenever the results table has them: a table by
language and layer with the shared neurons, heatmaps, the overlap between languages and,
with two checkpoints, the before/after change; --metrics naming neuron_specific_count,
neuron_shared_count, neuron_specific_jaccard or neuron_specific_stability limits the
section to their views.
Cluster figures need cached projections (python -m xalign.project STORES --methods pca);
the attention example needs a store extracted with --tokens --attentions head-mean.
PDF/SVG/PNG need Chrome or Chromium (apt-get install chromium, or plotly_get_chrome);
CJK, Arabic, Devanagari and Thai labels need fonts (apt-get install fonts-noto-core fonts-noto-cjk).
--out may not be or contain the results file or a store, nor lie inside a store.
"""


def build_parser() -> argparse.ArgumentParser:
    S = argparse.SUPPRESS
    p = argparse.ArgumentParser(
        prog="python -m xalign.report",
        description="Write an alignment report for papers (LaTeX/Markdown/HTML tables, "
        "PDF/SVG/PNG figures) from a results table of python -m xalign.metrics.",
        formatter_class=HelpFormatter,
        epilog=EPILOG,
        argument_default=S,
    )
    p.add_argument("results", help="results table (.parquet or .csv)")
    p.add_argument("--config", metavar="FILE.toml", default=None, help="TOML file with options")
    p.add_argument("--out", help=f"report folder [default: {_D.out}]")
    p.add_argument("--stores", help="folder holding the stores [default: their recorded paths]")
    p.add_argument("--metrics", help="comma-separated metric names [default: headline metrics]")
    p.add_argument("--layers", help="'all' or e.g. '0,4,8-12' [default: all]")
    p.add_argument("--langs", help="comma-separated languages [default: all]")
    p.add_argument("--checkpoints", help="comma-separated checkpoint labels [default: all]")
    p.add_argument("--compare", metavar="BEFORE,AFTER",
                   help="checkpoints to compare [default: the first two]")  # fmt: skip
    p.add_argument("--focus-layers", dest="focus_layers",
                   help="layers of the per-language, before/after and cluster views "
                   "[default: best layer and last layer]")  # fmt: skip
    p.add_argument("--protocol", help="protocol choices, e.g. 'centered=true,scoring=margin' "
                   "[default: centered=false,scoring=cosine]")  # fmt: skip
    p.add_argument("--format", help=f"any of latex, md, html [default: {','.join(_D.format)}]")
    p.add_argument("--no-figures", dest="figures", action="store_false", help="tables only")
    p.add_argument("--figure-formats", dest="figure_formats",
                   help=f"static formats [default: {','.join(_D.figure_formats)}]")  # fmt: skip
    p.add_argument("--pooling", help=f"pooling of the cached projections [default: {_D.pooling}]")
    p.add_argument("--projection", choices=("pca", "umap", "tsne"),
                   help=f"cached projection to draw [default: {_D.projection}]")  # fmt: skip
    p.add_argument("--decimals", type=int, help=f"decimals in tables [default: {_D.decimals}]")
    p.add_argument("--dpi", type=int, help=f"PNG resolution [default: {_D.dpi}]")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, write the report, print where everything is; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        from xalign._io import write_json
        from xalign.report._build import build_report

        cfg = config_from_args(ReportConfig, args, config_file=args.config, parser=parser)
        words = sys.argv[1:] if argv is None else argv
        summary = build_report(
            cfg.results,
            out=cfg.out,
            stores_root=cfg.stores,
            metrics=cfg.metrics,
            layers=cfg.layers,
            langs=cfg.langs,
            checkpoints=cfg.checkpoints,
            formats=cfg.format,
            figures=cfg.figures,
            compare=cfg.compare,
            focus_layers=cfg.focus_layers,
            protocol=cfg.protocol,
            pooling=cfg.pooling,
            projection=cfg.projection,
            decimals=cfg.decimals,
            dpi=cfg.dpi,
            figure_formats=cfg.figure_formats,
            command=shlex.join(["python", "-m", "xalign.report", *words]),
            log=lambda m: print(m, file=sys.stderr),
        )
        write_json(summary.out / "config.json", cfg.to_dict())
        print(summary.format())
        return 0

    def with_config() -> int:
        try:
            return body()
        except ConfigError as e:
            # some values are checked past the TOML reader: say which file they may come from
            if args.config and str(args.config) not in str(e):
                raise ConfigError(f"{e} (with --config {args.config})") from None
            raise

    return run_main(with_config)


if __name__ == "__main__":
    sys.exit(main())
