"""Training options, validated once at the boundary (written beside the output as config.json)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from xalign._validate import check_choice, check_interval
from xalign.errors import ConfigError
from xalign.train._losses import AP_MASKS, TERMS

__all__ = [
    "BATCHINGS",
    "HEADS",
    "METHODS",
    "SELECTIONS",
    "TASKS",
    "TrainConfig",
    "check_out",
]

Method = Literal["pushpull", "finetune", "rsda"]
#: ``pushpull``: CE(x̃) + α·EP + CE(x) + β·AP; ``finetune``: CE(x); ``rsda``: CE(x̃).
METHODS: tuple[str, ...] = get_args(Method)
Task = Literal["sib200", "pawsx", "tsv"]
TASKS: tuple[str, ...] = get_args(Task)
Selection = Literal["dev", "oracle"]
#: ``dev``: best English dev accuracy; ``oracle``: best pooled target-language *test* accuracy
#: (what the EAR code does; optimistic, labelled "oracle" in every output).
SELECTIONS: tuple[str, ...] = get_args(Selection)
Head = Literal["auto", "bert", "xlmr", "mean"]
HEADS: tuple[str, ...] = get_args(Head)
Vocab = Literal["full", "task"]
VOCABS: tuple[str, ...] = get_args(Vocab)
Batching = Literal["random", "length"]
#: ``random``: consecutive slices of a random permutation (the reference); ``length``: each
#: slice of 50 batches of the permutation sorted by length before it is cut into batches, batch
#: order shuffled (less padding; a different batch composition, recorded in the protocol).
BATCHINGS: tuple[str, ...] = get_args(Batching)

#: Loss terms of each method (``ablate`` removes terms from ``pushpull``).
METHOD_TERMS: dict[str, tuple[str, ...]] = {
    "pushpull": ("ce", "ep", "rt", "ap"),
    "finetune": ("rt",),
    "rsda": ("ce",),
}


def _as_list(value: Any) -> Any:
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    return value


@dataclass
class TrainConfig:
    """Everything that defines one training run (all seeds), written as ``config.json``.

    Early stopping: with ``patience`` P > 0, training stops after P evaluations in a row
    without a strict gain of English dev accuracy (evaluations every ``eval_every`` steps, or
    at each epoch end); ``epochs`` (or ``max_steps``) stays the cap and sets the length of the
    linear learning-rate decay. ``record_oracle`` also evaluates pooled target-language test
    accuracy at every evaluation and reports the checkpoint it would pick (label
    ``<method>-oracle-seed<s>``) from the same run; ``oracle_limit_per_lang`` N makes those
    per-evaluation test passes cheaper by scoring a fixed random N test examples per target
    language (``data_seed``); the picked checkpoint is then evaluated on the full test sets.

    Defaults are the EAR reference's where it has one (α = 0.1, β = 1.0, block 6, lr 2e-5,
    batch 8 × grad-accum 4, max length 128, clip 1.0, no warmup, weight decay 0, seed 7);
    see docs/push-pull.md. Layer numbering is xalign's: ``ap_layer`` ℓ is block ℓ (1..L), which is
    the reference's 0-based ``ap_layer = ℓ - 1`` (its ``5`` = our ``6``).
    """

    model: str = "e5-small"
    task: str = "sib200"
    data: str | None = None
    method: str = "pushpull"
    alpha: float = 0.1
    beta: float = 1.0
    ap_layer: int = 6
    ap_mask: str = "none"
    ablate: list[str] = field(default_factory=list)
    neighbours: str | None = None
    n_views: int = 3
    perturb_seed: int = 0
    epochs: int = 3
    max_steps: int | None = None
    lr: float = 2e-5
    head_lr: float | None = None
    weight_decay: float = 0.0
    adam_eps: float = 1e-8
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    batch_size: int = 8
    grad_accum: int = 4
    max_grad_norm: float = 1.0
    max_length: int = 128
    pad_to_max_length: bool = False
    amp: bool = True
    seeds: list[int] = field(default_factory=lambda: [7])
    selection: str = "dev"
    record_oracle: bool = False
    oracle_limit_per_lang: int | None = None
    patience: int = 0
    batching: str = "random"
    eval_every: int = 0
    monitor_every: int = 10
    monitor_size: int = 32
    train_lang: str | None = None
    test_langs: list[str] | None = None
    pooled_include_train_lang: bool = False
    labels: list[str] | None = None
    label_aliases: dict[str, str] | None = None
    train_limit: int | None = None
    dev_limit: int | None = None
    test_limit_per_lang: int | None = None
    dev_holdout: int = 200
    data_seed: int = 0
    head: str = "auto"
    dropout: float | None = None
    prefix: str | None = None
    vocab: str = "full"
    eval_token_budget: int = 8192
    device: str = "auto"
    out: str = "runs/train"
    label: str | None = None
    save_checkpoint: bool = True
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.ablate = list(_as_list(self.ablate) or [])
        self.seeds = [int(s) for s in _as_list(self.seeds)]
        if self.test_langs is not None:
            self.test_langs = list(_as_list(self.test_langs))
        if self.labels is not None:
            self.labels = list(_as_list(self.labels))
        if isinstance(self.label_aliases, str):
            pairs = [x.split("=", 1) for x in _as_list(self.label_aliases)]
            if any(len(x) != 2 or not x[0] or not x[1] for x in pairs):
                raise ConfigError(
                    f"--label-aliases {self.label_aliases!r}: expected FROM=TO[,FROM=TO...]"
                )
            self.label_aliases = {a.strip(): b.strip() for a, b in pairs}
        check_choice("--task", self.task, TASKS)
        check_choice("--method", self.method, METHODS)
        check_choice("--selection", self.selection, SELECTIONS)
        check_choice("--ap-mask", self.ap_mask, AP_MASKS)
        check_choice("--head", self.head, HEADS)
        check_choice("--vocab", self.vocab, VOCABS)
        check_choice("--batching", self.batching, BATCHINGS)
        check_interval("--patience", self.patience, low=0, note="0 = off: train to the cap")
        if self.record_oracle and self.selection != "dev":
            raise ConfigError(
                "--record-oracle adds oracle-selected rows to a dev-selected run; with "
                "--selection oracle the run is oracle-selected already"
            )
        for t in self.ablate:
            check_choice("--ablate", t, TERMS)
        if self.ablate and self.method != "pushpull":
            raise ConfigError(
                f"--ablate applies to method pushpull, not {self.method!r} "
                f"(its only term is {METHOD_TERMS[self.method][0]})"
            )
        if set(self.ablate) >= set(TERMS):
            raise ConfigError(f"--ablate {self.ablate} removes every term: nothing left to train")
        if not self.seeds:
            raise ConfigError("--seeds is empty: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds {self.seeds}: repeated seed")
        for name, value, lo in (
            ("n-views", self.n_views, 1),
            ("epochs", self.epochs, 1),
            ("batch-size", self.batch_size, 1),
            ("grad-accum", self.grad_accum, 1),
            ("monitor-size", self.monitor_size, 1),
            ("eval-token-budget", self.eval_token_budget, 16),
        ):
            check_interval(f"--{name}", int(value), low=lo)
        for name, optional in (
            ("max-steps", self.max_steps),
            ("train-limit", self.train_limit),
            ("dev-limit", self.dev_limit),
            ("test-limit-per-lang", self.test_limit_per_lang),
            ("oracle-limit-per-lang", self.oracle_limit_per_lang),
        ):
            if optional is not None:
                check_interval(f"--{name}", optional, low=1, note="or unset")
        for name, value in (("eval-every", self.eval_every), ("monitor-every", self.monitor_every)):
            check_interval(f"--{name}", value, low=0, note=f"0 = {_ZERO[name]}")
        check_interval("--dev-holdout", self.dev_holdout, low=0)
        check_interval(
            "--ap-layer",
            self.ap_layer,
            low=1,
            note="attention layers are 1..L, block ℓ; the reference's 0-based ap_layer=5 is our 6",
        )
        check_interval("--lr", self.lr, low=0, low_open=True)
        if self.head_lr is not None:
            check_interval("--head-lr", self.head_lr, low=0, low_open=True)
        check_interval("--warmup-ratio", self.warmup_ratio, low=0, high=1, high_open=True)
        check_interval("--warmup-steps", self.warmup_steps, low=0)
        if self.warmup_ratio and self.warmup_steps:
            raise ConfigError("give --warmup-ratio or --warmup-steps, not both")
        check_interval("--max-grad-norm", self.max_grad_norm, low=0, note="0 = off")
        check_interval("--max-length", self.max_length, low=8)
        if self.dropout is not None:
            check_interval("--dropout", self.dropout, low=0, high=1, high_open=True)
        check_interval("--alpha", self.alpha, low=0)
        check_interval("--beta", self.beta, low=0)

    @property
    def terms(self) -> list[str]:
        """The loss terms this run optimises (method minus ``ablate``)."""
        return [t for t in METHOD_TERMS[self.method] if t not in self.ablate]

    @property
    def needs_perturbed(self) -> bool:
        return bool({"ce", "ep", "ap"} & set(self.terms))

    @property
    def needs_attentions(self) -> bool:
        return "ap" in self.terms

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum

    @property
    def run_label(self) -> str:
        """Checkpoint label prefix: ``label`` or the method, ``-oracle`` when selected on test."""
        base = self.label or self.method
        return f"{base}-oracle" if self.selection == "oracle" else base

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ZERO = {"eval-every": "at the end of every epoch", "monitor-every": "never"}


def _input_paths(cfg: TrainConfig) -> list[str]:
    """The files and folders a training run reads: data, neighbours, a local model folder."""
    paths = []
    if cfg.data:
        kind, sep, rest = cfg.data.partition(":")
        known = {"sib200", "sib-200", "pawsx", "paws-x", "tsv"}
        paths.append(rest if sep and kind.lower() in known else cfg.data)
    if cfg.neighbours:
        paths.append(cfg.neighbours)
    if cfg.model and Path(cfg.model).expanduser().exists():
        paths.append(cfg.model)
    return [os.path.expanduser(p) for p in paths]


def check_out(cfg: TrainConfig) -> Path:
    """Check ``--out`` before the model is loaded: a folder that takes files, not an input.

    Refused with one line (:class:`~xalign.errors.ConfigError`): a file where the folder
    should be, a folder that cannot be written (permissions, read-only or pseudo file
    systems, a full disk), a folder inside a store (only extraction and projection write
    there), and a folder that is, lies inside or contains one of the run's inputs (its data,
    neighbours file or local model folder, which ``--overwrite`` would otherwise delete).
    """
    from xalign._io import check_output

    return check_output(cfg.out, inputs=_input_paths(cfg), folder=True, what="--out")
