"""``python -m xalign.neurons``: language-specific neurons of a store, and the ablation check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xalign._cli import HelpFormatter, run_main

__all__ = ["build_parser", "main"]

EPILOG = """\
The store must have been extracted with --neurons (python -m xalign.extract --neurons ...).
Selection (Tang et al. 2024, LAPE): neurons with some language's activation probability above
the --filter-rate quantile of all probabilities; of those the --top-rate share of all neurons
with the lowest entropy over languages; each is specific to the languages whose probability
exceeds the --bar-rate quantile.

examples:
  python -m xalign.neurons summary runs/tatoeba-xlmr
  python -m xalign.neurons ablate --store runs/tatoeba-xlmr --lang deu --out runs/xlmr-no-deu
  python -m xalign.neurons ablate --store runs/tatoeba-xlmr --lang deu --out runs/xlmr-rand \\
      --control random --seed 1
"""


def _rates(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--top-rate",
        dest="top_rate",
        type=float,
        default=0.01,
        help="share of all neurons selected by lowest LAPE",
    )
    p.add_argument(
        "--filter-rate",
        dest="filter_rate",
        type=float,
        default=0.95,
        help="quantile of all probabilities a neuron must exceed for some language",
    )
    p.add_argument(
        "--bar-rate",
        dest="bar_rate",
        type=float,
        default=0.95,
        help="quantile above which a selected neuron is specific to a language",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m xalign.neurons",
        description="Language-specific feed-forward neurons of a store (LAPE) and the causal "
        "check: re-extract with one language's neurons zeroed.",
        formatter_class=HelpFormatter,
        epilog=EPILOG,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{summary,ablate}")
    s = sub.add_parser(
        "summary",
        help="per-layer counts of language-specific and shared neurons",
        formatter_class=HelpFormatter,
    )
    s.add_argument("store", help="a store extracted with --neurons")
    _rates(s)
    s.add_argument("--shared-fraction", dest="shared_fraction", type=float, default=1.0,
                   help="share of languages a shared neuron must fire for")  # fmt: skip
    a = sub.add_parser(
        "ablate",
        help="re-extract the corpus with one language's specific neurons zeroed",
        formatter_class=HelpFormatter,
    )
    a.add_argument("--store", required=True, help="a store extracted with --neurons")
    a.add_argument("--lang", required=True, help="the language whose neurons are zeroed")
    a.add_argument("--out", required=True, help="the new (ablated) store folder")
    a.add_argument("--control", choices=("random",), default=None,
                   help="zero as many random neurons in the same layers instead")  # fmt: skip
    a.add_argument("--seed", type=int, default=0, help="seed of the control set and the probes")
    a.add_argument("--layer", type=int, default=None,
                   help="layer measured [default: the last stored]")  # fmt: skip
    a.add_argument("--pooling", default=None, help="pooling measured [default: the store's first]")
    a.add_argument("--device", default=None, help="device [default: the store's extraction's]")
    _rates(a)
    a.add_argument("--overwrite", action="store_true", help="replace an existing --out store")
    a.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run ``summary`` or ``ablate``; returns the exit code."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        from xalign._io import write_json
        from xalign.neurons import ablate, summary

        rates = dict(top_rate=args.top_rate, filter_rate=args.filter_rate, bar_rate=args.bar_rate)
        if args.command == "summary":
            print(summary(args.store, shared_fraction=args.shared_fraction, **rates))
            return 0
        store, report = ablate(
            args.store,
            args.lang,
            args.out,
            control=args.control,
            seed=args.seed,
            layer=args.layer,
            pooling=args.pooling,
            device=args.device,
            overwrite=args.overwrite,
            progress=args.progress,
            **rates,
        )
        out = Path(store.path)
        report_path = out.parent / f"{out.name}.ablation.json"
        write_json(report_path, {"options": vars(args), "report": report.to_dict()})
        print(report.format())
        print(f"\nstore      {store.path}\nreport     {report_path}")
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
