"""Push/pull training (Embedding-Push, Attention-Pull, Robust targets), baselines, zero-shot eval.

``python -m xalign.train`` fine-tunes an encoder on English labelled data with one of three
methods on the same data, seeds and schedule: ``pushpull`` (Ding et al. 2022, "EAR": CE on a
synonym-perturbed view x̃ + α·Embedding-Push + CE on the original x + β·Attention-Pull),
``finetune`` (CE on x) and ``rsda`` (CE on x̃, Robust-XLT's RS-DA), then reports zero-shot
accuracy per target language in the tidy results schema. The checkpoint is an ordinary Hugging
Face folder that :func:`~xalign.models.load_encoder` reads, so the same corpus can be extracted
before and after training.

>>> from xalign.train import TrainConfig
>>> TrainConfig(method="pushpull", ablate=["ap"]).terms
['ce', 'ep', 'rt']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xalign._lazy import lazy_attributes

if TYPE_CHECKING:
    from xalign.train._config import HEADS, METHOD_TERMS, METHODS, SELECTIONS, TASKS, TrainConfig
    from xalign.train._evaluate import accuracy_rows, encode_pairs, predict, seed_aggregate
    from xalign.train._losses import (
        AP_MASKS,
        TERMS,
        LossTerms,
        attention_pull_loss,
        embedding_push_loss,
        masked_mean,
        objective,
    )
    from xalign.train._model import build_classifier, load_classifier, resolve_head, save_classifier
    from xalign.train._perturb import load_neighbours, paired_views, perturb_sentence
    from xalign.train._tasks import TaskData, load_task
    from xalign.train._trainer import SeedResult, TrainResult, train
    from xalign.train._trim import trim_vocabulary

# Public names are imported on first use: ``python -m xalign.train --help`` and its argument
# errors answer before torch, pandas or plotly are loaded.
_WHERE = {
    "AP_MASKS": "_losses",
    "HEADS": "_config",
    "LossTerms": "_losses",
    "METHODS": "_config",
    "METHOD_TERMS": "_config",
    "SELECTIONS": "_config",
    "SeedResult": "_trainer",
    "TASKS": "_config",
    "TERMS": "_losses",
    "TaskData": "_tasks",
    "TrainConfig": "_config",
    "TrainResult": "_trainer",
    "accuracy_rows": "_evaluate",
    "attention_pull_loss": "_losses",
    "build_classifier": "_model",
    "embedding_push_loss": "_losses",
    "encode_pairs": "_evaluate",
    "load_classifier": "_model",
    "load_neighbours": "_perturb",
    "load_task": "_tasks",
    "masked_mean": "_losses",
    "objective": "_losses",
    "paired_views": "_perturb",
    "perturb_sentence": "_perturb",
    "predict": "_evaluate",
    "resolve_head": "_model",
    "save_classifier": "_model",
    "seed_aggregate": "_evaluate",
    "train": "_trainer",
    "trim_vocabulary": "_trim",
}

__all__ = [
    "AP_MASKS",
    "HEADS",
    "METHODS",
    "METHOD_TERMS",
    "SELECTIONS",
    "TASKS",
    "TERMS",
    "LossTerms",
    "SeedResult",
    "TaskData",
    "TrainConfig",
    "TrainResult",
    "accuracy_rows",
    "attention_pull_loss",
    "build_classifier",
    "embedding_push_loss",
    "encode_pairs",
    "load_classifier",
    "load_neighbours",
    "load_task",
    "masked_mean",
    "objective",
    "paired_views",
    "perturb_sentence",
    "predict",
    "resolve_head",
    "save_classifier",
    "seed_aggregate",
    "train",
    "trim_vocabulary",
]


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals(), __all__)
