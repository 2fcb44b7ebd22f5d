"""``python -m xalign.metrics``: stores → tidy results table + a per-layer summary.

Parsing needs no heavy import (numpy, pandas, scikit-learn, zarr, torch are loaded only once
the arguments are valid), so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xalign._cli import HelpFormatter, config_from_args, os_error_message, run_main
from xalign.errors import ConfigError, XAlignError
from xalign.metrics._config import (
    METRIC_GROUPS,
    OUT_SUFFIXES,
    MetricsConfig,
    default_out,
)

if TYPE_CHECKING:
    import pandas as pd

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

Under "all" (the default) a group that a store cannot support (no parallel rows, no tokens,
no attentions, no --gold, too few rows per language for the probe, one store for "stores")
is skipped with a note; a group named in --metrics that a store cannot support stops the run
before anything is computed, naming the store and what is missing.

output: --out takes .parquet or .csv; it may not be an input nor lie inside a store folder.
Default: beside the first store, STORE.results.parquet (runs/tatoeba-e5 ->
runs/tatoeba-e5.results.parquet). The resolved options, notes and failures are written
beside it as STORE.results.config.json. If the results cannot be written (a full disk), the
file is left as it was and the results are saved under the temporary folder instead, saying
where.

speed: layers run side by side in --workers processes (identical tables for any number);
the probe is the slowest group: leave it out of --metrics when it is not needed.

exit status: 0 all requested groups computed; 1 a group failed part-way (the other groups'
results are written, the failure is named); 2 bad input or nothing written to --out.
A folder that holds stores (not a store itself) lists them and exits 2.

examples:
  python -m xalign.metrics runs/tatoeba-e5 --out runs/tatoeba-e5.results.parquet
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
    p.add_argument("--out", help="results file (.parquet or .csv), not inside a store "
                   "[default: FIRST_STORE.results.parquet beside the first store]")  # fmt: skip
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
    # removed: refused with the reason (REMOVED_WARM_START, config_from_args) rather than as
    # an unknown flag
    p.add_argument("--probe-warm-start", dest="probe_warm_start", action="store_true",
                   help=argparse.SUPPRESS)  # fmt: skip
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
    p.add_argument(
        "--workers",
        type=int,
        help="processes computing layers side by side; the results are identical for any "
        "number (0 = one per available CPU, at most 4; 1 = one process) [default: 0]",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


REMOVED_WARM_START = (
    "--probe-warm-start was removed: it started each fold's probe from the previous fold's "
    "solution, which was fitted on this fold's test rows, and raised accuracies above the "
    "converged probe's; every fold now starts from zero (docs/metrics.md#lid-probe)"
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        from xalign._io import check_output

        if getattr(args, "pivot", None) == "none":
            args.pivot = None
        try:
            cfg = config_from_args(
                MetricsConfig,
                args,
                config_file=args.config,
                parser=parser,
                removed={"probe_warm_start": REMOVED_WARM_START},
            )
        except ConfigError as e:
            # the dataclass checks some values itself: say which file they came from
            if args.config and str(args.config) not in str(e):
                raise ConfigError(f"{e} (with --config {args.config})") from None
            raise
        listing = _folders_of_stores(cfg.store_paths)
        if listing:
            print(listing, file=sys.stderr)
            return 2
        out = Path(cfg.out) if cfg.out else default_out(cfg.store_paths[0])
        inputs = [*cfg.store_paths, *([args.config] if args.config else [])]
        if cfg.gold:
            kind, sep, rest = cfg.gold.partition(":")
            inputs.append(rest if sep and kind.lower() in ("wordalign", "word-align") else cfg.gold)
        check_output(out, inputs=inputs, suffixes=OUT_SUFFIXES)
        sidecar = _sidecar(out)
        check_output(sidecar, inputs=inputs, what="--out (its .config.json)")
        for target, what in ((out, "--out"), (sidecar, "--out (its .config.json)")):
            _refuse_read_only(target, what)
        cfg.out = str(out)

        from xalign.metrics._run import IncompleteResultsError, compute_metrics, summarize

        failed: IncompleteResultsError | None = None
        try:
            results = compute_metrics(cfg)
        except IncompleteResultsError as e:
            results, failed = e.results, e
        if len(results):
            print(summarize(results))
        for note in results.attrs.get("notes", []):
            print(f"note: {note}")
        if failed is not None and not len(results):
            # nothing was computed: an empty table would only replace an earlier one
            print(f"error: {failed}; no results were written", file=sys.stderr)
            return 1
        written = _write_results(results, out, cfg)
        print(f"\nresults   {written}  ({len(results):,} rows)")
        if failed is not None:
            print(f"error: {failed}; results of the other groups: {written}", file=sys.stderr)
            return 1
        return 0

    return run_main(body)


def _refuse_read_only(target: Path, what: str) -> None:
    """A file made read-only is being kept on purpose: replacing it (a rename ignores the
    file's own mode) would destroy it without a word."""
    # the mode bits, not os.access: to root every file is writable
    if target.is_file() and not (target.stat().st_mode & 0o222 and os.access(target, os.W_OK)):
        raise ConfigError(
            f"{what} {target} exists and is read-only; nothing was computed. Choose another "
            "--out, or make it writable (chmod u+w) to replace it"
        )


def _sidecar(out: Path) -> Path:
    return out.with_suffix(".config.json")


def _write_table(results: pd.DataFrame, path: Path) -> None:
    from xalign._io import atomic_path

    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            results.to_csv(tmp, index=False)
        else:
            results.to_parquet(tmp, index=False)


def _write_results(results: pd.DataFrame, out: Path, cfg: MetricsConfig) -> Path:
    """Write results (atomically) and their config sidecar; returns where they went.

    When ``out`` cannot be written (a full disk, a lost mount), it is left as it was and the
    results are saved under the temporary folder instead: computed numbers are never dropped
    silently. The error names both paths; exit status 2 (nothing written to ``--out``).
    """
    from xalign._io import write_json

    side = {
        **cfg.to_dict(),
        "notes": list(results.attrs.get("notes", [])),
        "failures": list(results.attrs.get("failures", [])),
    }
    try:
        _write_table(results, out)
    except OSError as e:
        reason = os_error_message(e)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        fallback = Path(tempfile.gettempdir()) / f"xalign-results-{stamp}-{os.getpid()}{out.suffix}"
        try:
            _write_table(results, fallback)
            write_json(_sidecar(fallback), {**side, "out": str(fallback)})
        except OSError as e2:
            raise XAlignError(
                f"cannot write the results to {out} ({reason}); nothing there was replaced, and "
                f"saving them to {fallback} failed too ({os_error_message(e2)}): the "
                f"{len(results):,} computed rows are lost; free space or choose another --out, "
                "and rerun"
            ) from None
        raise XAlignError(
            f"cannot write the results to {out} ({reason}); nothing there was replaced. The "
            f"{len(results):,} computed rows were saved to {fallback} instead (with "
            f"{_sidecar(fallback).name}): move them where you want them"
        ) from None
    write_json(_sidecar(out), side)
    return out


def _folders_of_stores(paths: list[str]) -> str | None:
    """For a folder that is not a store but holds stores: the listing and how to run on them."""
    for path in paths:
        folder = Path(path)
        if not folder.is_dir() or (folder / "manifest.json").exists():
            continue
        found = _stores_under(folder)
        if not found:
            continue
        lines = [
            f"error: {folder} is not a store but holds {len(found)} store(s); "
            "name the ones to measure:"
        ]
        for sub, m in found:
            lines.append(f"  {sub}  {_describe(m)}")
        names = " ".join(str(sub) for sub, _ in found[:4])
        lines.append(
            f"e.g. python -m xalign.metrics {names}{' ...' if len(found) > 4 else ''} "
            f"--out {folder / 'results.parquet'}  (--independent if their corpora differ)"
        )
        return "\n".join(lines)
    return None


def _stores_under(folder: Path, depth: int = 3) -> list[tuple[Path, dict[str, Any]]]:
    """Store folders (a ``manifest.json`` of format ``xalign-store``) up to ``depth`` below."""
    found: list[tuple[Path, dict[str, Any]]] = []
    try:
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return found
    for sub in subs:
        manifest = sub / "manifest.json"
        if manifest.is_file():
            try:
                m = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                m = {"format": "xalign-store", "status": "unreadable manifest"}
            if isinstance(m, dict) and m.get("format") == "xalign-store":
                found.append((sub, m))
        elif depth > 1:
            found += _stores_under(sub, depth - 1)
    return found


def _describe(m: dict[str, Any]) -> str:
    def get(*keys: str) -> Any:
        v: Any = m
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    rows, layers = get("counts", "rows"), get("extraction", "layers")
    parts = [f"{rows:,} rows" if isinstance(rows, int) else "? rows"]
    if isinstance(layers, list) and layers:
        parts.append(f"layers {layers[0]}..{layers[-1]}")
    parts.append(f"model {get('encoder', 'name') or '?'}")
    if m.get("status") != "complete":
        parts.append(f"status {m.get('status')}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
