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
    "report": "results + stores → LaTeX/Markdown/HTML tables and PDF/SVG/PNG figures",
    "train": "push/pull (and baseline) fine-tuning on English labels, zero-shot evaluation",
    "neurons": "language-specific feed-forward neurons of a store (--neurons), ablation check",
    "demo": "the default pipeline on the bundled model and sample (what `make demo` runs)",
}


def _demo(out: Path, *, model: str, progress: bool) -> int:
    """Bundled sample + model → store → metrics → projections → report; prints where all is."""
    from xalign.data import load_sample
    from xalign.extract import ExtractConfig, extract, extract_pair_attention, load_extract_encoder
    from xalign.metrics import METRIC_GROUPS
    from xalign.metrics.__main__ import main as metrics_main
    from xalign.project import ProjectConfig, project_stores

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    store_dir, attn_dir = out / "sample-e5", out / "sample-e5-attention"
    results = out / "results.parquet"
    report_dir = out / "report"
    cfg = ExtractConfig(
        model=model,
        data="sample",
        out=str(store_dir),
        layers="all",
        pooling=["mean", "cls"],
        label="pretrained",
        neurons=True,  # feed-forward neuron statistics for the neurons metrics and views
        progress=progress,
    )
    encoder = load_extract_encoder(cfg)  # SDPA; switched to eager where attentions are asked for
    print(f"[1/4] extracting the bundled sample with {model} → {store_dir}", flush=True)
    _, summary = extract(cfg, encoder=encoder)
    print(summary.format())
    # a small second store with token embeddings, attention maps and joint-pair attention
    # for the dashboard's attention-alignment view (all 13 layers of every token are large)
    rows = load_sample(langs=["eng", "deu", "cmn_Hans"]).rows
    groups = sorted(rows["group"].unique())[::10]
    from xalign.data import Corpus

    small = Corpus(rows[rows["group"].isin(groups)], name="sample-attention", source="sample")
    extract(
        ExtractConfig(
            model=model,
            out=str(attn_dir),
            tokens=True,
            attentions="head-mean",
            label="pretrained",
            progress=progress,
        ),
        corpus=small,
        encoder=encoder,
    )
    extract_pair_attention(attn_dir, encoder, langs=("eng", "deu"))
    print(f"      + {attn_dir} ({len(small)} rows with tokens, attentions, eng-deu pairs)")

    print(f"[2/4] alignment metrics → {results}", flush=True)
    # the groups the sentence-vector store supports: word alignment needs gold links and
    # attention the small attention store, which the dashboard's attention view reads
    groups = [g for g in METRIC_GROUPS if g not in ("stores", "word_align", "attention")]
    argv = [f"pretrained={store_dir}", "--out", str(results), "--bootstrap", "200",
            "--metrics", ",".join(groups)]  # fmt: skip
    rc = metrics_main(argv if progress else [*argv, "--no-progress"])
    if rc != 0:
        return rc
    print("[3/4] PCA projections (one shared fit over all layers) cached in the store", flush=True)
    project_stores(ProjectConfig(stores=[str(store_dir)], methods=["pca"], progress=progress))
    print(f"[4/4] report → {report_dir}", flush=True)
    from xalign.report import build_report

    report = build_report(
        results,
        stores_root=out,
        out=report_dir,
        command=f"python -m xalign.report {results} --stores {out} --out {report_dir}",
    )
    print(report.format())
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    print(f"  store      {store_dir}   (xalign.store.Store.open('{store_dir}'))")
    print(f"  results    {results}   (pandas.read_parquet)")
    kinds = sorted({f.suffix for f in report.files})
    made = [x for x, k in (("tables/*.tex", ".tex"), ("figures/*.pdf", ".pdf")) if k in kinds]
    where = report.report_html or report.report_md or report.out
    if report.figures and not report.static:
        made.append(f"figures as interactive HTML only: {report.static_message}")
    print(f"  report     {where}  ({'; '.join(made) or 'tables as CSV'})")
    print(
        f"  attention  {attn_dir}   (tokens, head-mean attentions; the dashboard's attention "
        f"view, or python -m xalign.metrics {attn_dir} --metrics attention)"
    )
    print(f"  dashboard  python -m dashboards --root {out}   → http://127.0.0.1:8050")
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
    for verb in ("extract", "metrics", "project", "report", "train", "neurons"):
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
