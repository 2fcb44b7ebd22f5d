"""``python -m xalign.train``: push/pull (EAR), fine-tuning and RS-DA with zero-shot evaluation."""

from __future__ import annotations

import argparse
import sys

from xalign._cli import HelpFormatter, config_from_args, run_main
from xalign.train._config import (
    BATCHINGS,
    HEADS,
    METHODS,
    SELECTIONS,
    TASKS,
    TrainConfig,
    check_out,
)
from xalign.train._losses import AP_MASKS, TERMS

__all__ = ["build_parser", "main"]

_D = TrainConfig()

EPILOG = """\
methods (same data, seeds and schedule; every method iterates over the same paired rows):
  pushpull   CE(x~) + alpha*EP + CE(x) + beta*AP   (Ding et al. 2022, EAR; --ablate removes terms)
  finetune   CE(x)    plain fine-tuning on the original English sentences
  rsda       CE(x~)   Robust-XLT's RS-DA: CE on the synonym-perturbed copies only
  x~ = counter-fitted synonym substitution (--neighbours), --n-views copies per example.
  EP = -MSE of the mask-mean-pooled embedding-layer outputs (hidden_states[0]) of x and x~;
  AP = MSE of block --ap-layer's attention probabilities (all heads) of x and x~.
  --ap-layer counts blocks from 1 (xalign numbering): the EAR code's 0-based ap_layer=5 is 6.

tasks (--data is a folder, optionally KIND:PATH):
  sib200   SIB-200: train eng_Latn/train.tsv, select on eng_Latn/dev.tsv, test every language
  pawsx    PAWS-X pairs: train-en.tsv if present, else dev-en.tsv minus --dev-holdout pairs;
           test every language with a labelled test file (e.g. de, zh)
  tsv      {train,dev,test}-<lang>.tsv (XTREME layout, e.g. XNLI): text<TAB>label or
           sentence1<TAB>sentence2<TAB>label, or a header naming label and text/sentence1

checkpoint selection: dev (English dev accuracy, default) or oracle (pooled target-language
TEST accuracy, what the EAR code does; optimistic, labelled "oracle" in every output).

output (--out): config.json (resolved), results.parquet (zero-shot accuracy per language,
pooled, mean, dev; per seed and *_seed_mean/*_seed_std), train_log.parquet (per step: loss
terms, lr, grad norm; push distance and pull MSE on fixed monitor rows every --monitor-every
steps), seed-<s>/checkpoint (load_encoder-compatible Hugging Face folder + classifier head).

examples:
  python -m xalign.train --config experiments/sib200-e5/pushpull.toml
  python -m xalign.train --model xlm-roberta-base --task pawsx --data pawsx:PATH \\
      --method pushpull --alpha 0.1 --beta 1.0 --ap-layer 6 --epochs 30 \\
      --neighbours counterfitted_neighbors.json --out runs/pawsx-xlmr-ear
"""


def _d(v: object) -> str:
    if isinstance(v, list):
        return ",".join(map(str, v)) if v else "none"
    if isinstance(v, dict):
        return ",".join(f"{a}={b}" for a, b in v.items()) if v else "none"
    return "unset" if v is None else str(v)


def build_parser() -> argparse.ArgumentParser:
    S = argparse.SUPPRESS
    p = argparse.ArgumentParser(
        prog="python -m xalign.train",
        description="Fine-tune a multilingual encoder on English with push/pull (EAR), plain "
        "fine-tuning or RS-DA, and evaluate zero-shot cross-lingual transfer.",
        formatter_class=HelpFormatter,
        epilog=EPILOG,
        argument_default=S,
    )

    group: list[argparse._ActionsContainer] = [p]

    def add(flag: str, *, help: str, field: str | None = None, **kw: object) -> None:
        name = field or flag.lstrip("-").replace("-", "_")
        default = getattr(_D, name)
        text = help if help.endswith("]") else f"{help} [default: {_d(default)}]"
        group[0].add_argument(flag, dest=name, help=text, **kw)  # type: ignore[arg-type]

    p.add_argument(
        "--config",
        metavar="FILE.toml",
        default=None,
        help="TOML file with any of the options below, as snake_case keys (flags override it)",
    )
    group[0] = p.add_argument_group("model and data")
    add("--model", help="model name, local folder, or 'e5-small' (bundled)")
    add("--task", choices=TASKS, help="task")
    add("--data", help="task data folder (or KIND:PATH)")
    add("--train-lang", help="training language code [default: eng_Latn for sib200, else en]")
    add("--test-langs", help="comma-separated test language codes [default: all available]")
    add(
        "--labels",
        help="comma-separated label set [default: labels.txt (sib200), 0,1 (pawsx), the "
        "training labels (tsv)]",
    )
    add("--label-aliases", help="comma-separated FROM=TO label renamings (XNLI: "
        "contradictory=contradiction)")  # fmt: skip
    add("--train-limit", type=int, help="use a seeded random subset of N training examples")
    add("--dev-limit", type=int, help="use a seeded random subset of N dev examples")
    add("--test-limit-per-lang", type=int, help="use the first N test examples per language")
    add("--dev-holdout", type=int, help="held-out dev size when there is no dev/train file")
    add("--data-seed", type=int, help="seed of the subsets and hold-outs")
    add("--max-length", type=int, help="truncate inputs to N tokens")
    add(
        "--prefix",
        help="text prefix: 'query', 'passage', 'none' or a string [default: the model's, "
        "'query: ' for e5]",
    )
    add("--vocab", choices=("full", "task"), help="'task' trims the vocabulary to the task's "
        "tokens (exact on its texts; much faster on CPU for 250k-token models)")  # fmt: skip
    group[0] = p.add_argument_group("method and loss")
    add("--method", choices=METHODS, help="training method")
    add("--alpha", type=float, help="weight of Embedding-Push")
    add("--beta", type=float, help="weight of Attention-Pull; with --ap-mask none its loss "
        "grows as the padded length shrinks, so beta depends on --pad-to-max-length (the "
        "padding is recorded in every result's protocol)")  # fmt: skip
    add("--ap-layer", type=int, help="attention layer (block) of Attention-Pull, 1..L")
    add("--ap-mask", choices=AP_MASKS, help="'pad': xalign's masked AP over real tokens only")
    add("--ablate", help=f"comma-separated pushpull terms to drop, from {','.join(TERMS)} "
        "(ce = CE(x~), rt = CE(x))")  # fmt: skip
    add("--neighbours", help="counter-fitted neighbour JSON (word -> list); needed for "
        "pushpull and rsda; with finetune it enables push/pull monitoring")  # fmt: skip
    add("--n-views", type=int, help="perturbed copies per training example")
    add("--perturb-seed", type=int, help="seed of the perturbations (shared by all methods)")
    add("--pad-to-max-length", action="store_true", help="pad both views to --max-length "
        "(the reference's AP over a 128x128 map) instead of the batch's longest")  # fmt: skip
    add("--head", choices=HEADS, help="classification head")
    add("--dropout", type=float, help="head dropout [default: the model config's]")
    group[0] = p.add_argument_group("optimisation")
    add("--epochs", type=int, help="training epochs")
    add("--max-steps", type=int, help="stop after N optimizer steps (overrides --epochs)")
    add("--lr", type=float, help="AdamW learning rate")
    add("--head-lr", type=float, help="learning rate of the new head [default: --lr]")
    add("--weight-decay", type=float, help="AdamW weight decay (not on biases/LayerNorm)")
    add("--adam-eps", type=float, help="AdamW epsilon")
    add("--warmup-ratio", type=float, help="linear warmup over this fraction of the steps")
    add("--warmup-steps", type=int, help="linear warmup steps")
    add("--batch-size", type=int, help="micro-batch size (rows per forward)")
    add("--grad-accum", type=int, help="micro-batches per optimizer step")
    add("--max-grad-norm", type=float, help="gradient clipping norm (0 = off)")
    add(
        "--no-amp",
        field="amp",
        action="store_false",
        help="disable mixed precision on CUDA [default: bf16 (else fp16) autocast on CUDA]",
    )
    add("--seeds", help="comma-separated training seeds")
    add("--selection", choices=SELECTIONS, help="checkpoint selection")
    add("--eval-every", type=int, help="evaluate every N steps (0 = every epoch end)")
    add("--patience", type=int, help="early stopping: stop after N evaluations without a gain "
        "of English dev accuracy (0 = off; --epochs stays the cap)")  # fmt: skip
    add("--record-oracle", action="store_true", help="with --selection dev, also record the "
        "oracle-selected (pooled target test) checkpoint's accuracy from the same run")  # fmt: skip
    add("--oracle-limit-per-lang", type=int, help="with --record-oracle, pick the oracle "
        "checkpoint on N random test examples per target language (cheaper)")  # fmt: skip
    add("--batching", choices=BATCHINGS, help="'length': length-bucketed training batches "
        "(less padding; recorded in the protocol)")  # fmt: skip
    add("--monitor-every", type=int, help="push/pull monitor every N steps (0 = never)")
    add("--monitor-size", type=int, help="rows in the fixed monitor batch")
    add("--eval-token-budget", type=int, help="padded tokens per evaluation batch")
    group[0] = p.add_argument_group("run")
    add("--device", help="'auto', 'cpu', 'cuda', 'cuda:1'")
    add("--out", help="output folder")
    add("--label", help="checkpoint label prefix [default: the method]")
    add("--no-save-checkpoint", field="save_checkpoint", action="store_false",
        help="do not write the checkpoint folders [default: written]")  # fmt: skip
    add("--overwrite", action="store_true", help="replace an earlier training run at --out")
    add(
        "--no-progress",
        field="progress",
        action="store_false",
        help="no progress bars [default: tqdm bars on stderr]",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, train, print the summary; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        cfg = config_from_args(TrainConfig, args, config_file=args.config, parser=parser)
        # The output folder is checked before torch and the model load (seconds to minutes).
        check_out(cfg)

        from xalign.train._trainer import train

        result = train(cfg)
        print(result.format())
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
