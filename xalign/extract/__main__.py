"""``python -m xalign.extract``: corpus + encoder → store."""

from __future__ import annotations

import argparse
import sys

from xalign._cli import HelpFormatter, config_from_args, run_main
from xalign.extract._config import ATTENTION_MODES, BACKENDS, ENGINES, POOLINGS, ExtractConfig

__all__ = ["build_parser", "main"]

_D = ExtractConfig()

EPILOG = """\
data specs (--data KIND:PATH):
  sample                       the bundled parallel sample (default)
  tatoeba:FOLDER               LASER/XTREME Tatoeba pair files tatoeba.xxx-eng.{xxx,eng}
  sib200:FOLDER                SIB-200 annotated/<lang>/{train,dev,test}.tsv (use --split)
  pawsx:FOLDER                 PAWS-X TSV files (NS rows dropped)
  tsv:FILE | csv:FILE | jsonl:FILE   generic tables with columns id, lang, text[, group, label]
  hf:NAME                      a Hugging Face dataset (needs `datasets` and a cached copy)

examples:
  python -m xalign.extract --out runs/demo
  python -m xalign.extract --model e5-small --data tatoeba:data/tatoeba/v1 \\
      --langs deu,fra,cmn,swh --layers all --pooling mean,cls --tokens \\
      --attentions head-mean --out runs/tatoeba-e5
  python -m xalign.extract --model bert-base-multilingual-cased --data sib200:sib-200 \\
      --split test --out runs/sib-mbert
  python -m xalign.extract --model xlm-roberta-base --data tatoeba:tatoeba --layers all \\
      --engine ray --address auto --out /shared/runs/tatoeba-xlmr     # on a Ray cluster
  python -m xalign.extract --data tatoeba:data/tatoeba/v1 --backend onnx --out runs/fast
      # CPU: ONNX Runtime forward (pip install 'xalign[onnx]'), 1.1-1.8x the torch speed

--backend onnx exports the encoder to ONNX once (~9 s for e5-small, cached in the xalign
cache under onnx/) and runs the forward in ONNX Runtime with tight length-sorted batches; its
vectors agree with torch's to a cosine of about 0.9999999 after the float16 store, not bit for
bit. It serves hidden states, every pooling and --tokens on the CPU; --attentions, --neurons,
--ablate, CUDA and --engine ray need torch. --backend auto uses onnx when it can, else torch
(the reason is printed and recorded). A store is resumed only with the backend that began it.

An interrupted run resumes when the same command is run again; an --out folder holding a store
of another model, corpus or configuration is refused (use --overwrite to replace it). Run again
on a complete store, the same command verifies every chunk's checksum and recomputes only the
damaged chunks (or says what to do). `python -m xalign.extract --verify STORE` only checks.
"""


def build_parser() -> argparse.ArgumentParser:
    S = argparse.SUPPRESS
    p = argparse.ArgumentParser(
        prog="python -m xalign.extract",
        description="Extract layerwise sentence embeddings, token embeddings and attention maps "
        "from a Hugging Face encoder over a multilingual corpus into a store.",
        formatter_class=HelpFormatter,
        epilog=EPILOG,
        argument_default=S,
    )
    p.add_argument(
        "--config",
        metavar="FILE.toml",
        default=None,
        help="TOML file with any of the options below (flags override it)",
    )
    p.add_argument(
        "--model", help=f"model name, local folder, or 'e5-small' (bundled) [default: {_D.model}]"
    )
    p.add_argument("--data", help=f"corpus spec KIND:PATH, see below [default: {_D.data}]")
    p.add_argument("--out", help=f"output store folder [default: {_D.out}]")
    p.add_argument("--langs", help="comma-separated language codes to keep [default: all]")
    p.add_argument("--split", help="corpus split to keep (e.g. test) [default: all]")
    p.add_argument(
        "--limit-per-lang",
        dest="limit_per_lang",
        type=int,
        help="keep at most N rows per language [default: no limit]",
    )
    p.add_argument(
        "--layers",
        help=f"'all', 'last', or e.g. '0,4,8-12' (0 = embedding output) [default: {_D.layers}]",
    )
    p.add_argument(
        "--pooling",
        help=f"comma-separated poolings from {', '.join(POOLINGS)} "
        f"[default: {','.join(_D.pooling)}]",
    )
    p.add_argument(
        "--tokens",
        action="store_true",
        help="also store token embeddings with word and character offsets",
    )
    p.add_argument(
        "--attentions",
        choices=ATTENTION_MODES,
        help=f"store attention maps per layer [default: {_D.attentions}]",
    )
    p.add_argument(
        "--max-length",
        dest="max_length",
        type=int,
        help="truncate inputs to N tokens (counted and reported) [default: model maximum]",
    )
    p.add_argument(
        "--prefix",
        help="text prefix: 'query', 'passage', 'none' or a literal string "
        "[default: the model's own, 'query: ' for e5]",
    )
    p.add_argument(
        "--token-budget",
        dest="token_budget",
        type=int,
        help="padded tokens per batch (length-sorted; on the CPU a batch also ends before a "
        f"row 10%% shorter than its first) [default: {_D.token_budget}]",
    )
    p.add_argument(
        "--chunk-rows",
        dest="chunk_rows",
        type=int,
        help="rows per store chunk (the resume unit) [default: 1024, 256 with tokens]",
    )
    p.add_argument("--device", help=f"'auto', 'cpu', 'cuda', 'cuda:1' [default: {_D.device}]")
    p.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        help=f"model weights dtype [default: {_D.dtype}]",
    )
    p.add_argument(
        "--no-autocast",
        dest="autocast",
        action="store_false",
        help="disable bf16/fp16 autocast on CUDA [default: autocast on CUDA]",
    )
    p.add_argument("--revision", help="model revision (branch, tag or commit) [default: latest]")
    p.add_argument(
        "--trust-remote-code",
        dest="trust_remote_code",
        action="store_true",
        help="allow model code from the hub (off unless asked)",
    )
    p.add_argument(
        "--pairs",
        metavar="A,B",
        help="also encode each A-B translation pair jointly and store the cross "
        "attention blocks A→B and B→A per layer (pair mode, for attention alignment)",
    )
    p.add_argument(
        "--neurons",
        action="store_true",
        help="also collect feed-forward neuron statistics per layer x language x neuron "
        "(tokens with activation > 0, sum, sum of squares, token count; content tokens only) "
        "as neurons/<stat> arrays; no raw activations are kept",
    )
    p.add_argument(
        "--ablate",
        metavar="L:N,...",
        help="set these feed-forward neurons (LAYER:NEURON, layer = block 1..L) to zero "
        "during the forward; recorded in the manifest (see python -m xalign.neurons ablate)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="the forward: 'torch' (the reference), 'onnx' (ONNX Runtime on the CPU, faster; "
        "needs the onnx extra), 'auto' (onnx when it can serve the run, else torch); recorded "
        f"in the manifest [default: {_D.backend}]",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        help="'local' (this process) or 'ray' (encoder actors on a Ray cluster; the store is "
        f"the same) [default: {_D.engine}]",
    )
    p.add_argument(
        "--address",
        help="with --engine ray: Ray cluster address, 'auto' joins a running cluster "
        "[default: start a local one]",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="with --engine ray: encoder actors [default: one per GPU, else one per "
        "--cpus-per-worker CPUs]",
    )
    p.add_argument(
        "--cpus-per-worker",
        dest="cpus_per_worker",
        type=float,
        help="with --engine ray: CPUs (and torch threads) per actor "
        f"[default: {_D.cpus_per_worker:g}]",
    )
    p.add_argument(
        "--gpus-per-worker",
        dest="gpus_per_worker",
        type=float,
        help="with --engine ray: GPUs per actor [default: 1 when the cluster has GPUs, else 0]",
    )
    p.add_argument(
        "--verify",
        metavar="STORE",
        help="check an existing store instead of extracting: every chunk's checksum, every "
        "table, the manifest and array metadata; prints OK or one line per problem "
        "(exit 1 when damaged; rerunning the extraction command recomputes damaged chunks)",
    )
    p.add_argument("--label", help="checkpoint label for comparisons [default: folder name]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the extraction, print a summary; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        from xalign._io import write_json
        from xalign.extract import check_out, extract, load_extract_encoder

        verify = getattr(args, "verify", None)
        if verify is not None:
            return _verify(verify, given=[k for k in vars(args) if k not in ("verify", "config")])
        cfg = config_from_args(ExtractConfig, args, config_file=args.config, parser=parser)
        check_out(cfg.out)  # before the model loads
        encoder = load_extract_encoder(cfg) if cfg.pairs else None  # loaded once for both passes
        store, summary = extract(cfg, encoder=encoder)
        write_json(store.path / "config.json", {**cfg.to_dict(), "backend": summary.backend})
        print(summary.format())
        if cfg.pairs:
            from xalign.extract import extract_pair_attention

            assert encoder is not None

            pa = extract_pair_attention(
                store.path,
                encoder,
                langs=(cfg.pairs[0], cfg.pairs[1]),
                max_length=cfg.max_length,
                token_budget=cfg.token_budget,
                progress=cfg.progress,
            )
            print(
                f"pairs      {len(pa.table):,} {'-'.join(pa.langs)} pairs encoded jointly "
                f"(cross attention, layers {pa.layers[0]}..{pa.layers[-1]})"
            )
        print(
            f'\nopen it:   python -c "from xalign.store import Store; '
            f"print(Store.open('{store.path}'))\""
        )
        return 0

    return run_main(body)


def _verify(path: str, *, given: list[str]) -> int:
    """``--verify STORE``: print the report; 0 when intact, 1 when damaged."""
    from xalign.errors import ConfigError
    from xalign.store import verify_store

    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
        raise ConfigError(f"--verify checks a store and takes no other options (got {flags})")
    report = verify_store(path)
    print(report.format())
    if not report.ok:
        print(
            f"error: store {path} is damaged ({len(report.problems)} problem(s)); rerun the "
            "extraction command that made it to recompute the damaged chunks",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
