"""A classification head on top of an :class:`~xalign.models.Encoder`'s base model.

Heads follow the EAR reference where it has one:

* ``bert``: the encoder's pooler (dense + tanh on [CLS]) → dropout → linear (mBERT,
  ``models/bert_ept_apt.py``);
* ``xlmr``: dropout → ``RobertaClassificationHead`` on ``<s>`` (dropout → dense → tanh →
  dropout → linear; ``models/xlmr_ept_apt.py``);
* ``mean``: mask-mean of the last layer → dropout → linear. xalign's head for encoders without
  a trained pooler, such as the bundled e5-small (trained with mean pooling).

``auto`` picks ``xlmr`` for RoBERTa-type models, ``bert`` when the model has a pooler, else
``mean``. The checkpoint folder is the encoder's own ``save_pretrained`` output (so
:func:`~xalign.models.load_encoder` reads it) plus ``classifier_head.safetensors`` and
``xalign_train.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xalign.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    import torch

    from xalign.models import Encoder

__all__ = ["HEAD_FILE", "META_FILE", "build_classifier", "load_classifier", "resolve_head"]

HEAD_FILE = "classifier_head.safetensors"
META_FILE = "xalign_train.json"
_ROBERTA_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert"})


def resolve_head(head: str, model: Any) -> str:
    """The concrete head kind for ``head="auto"`` (see the module docstring)."""
    if head != "auto":
        if head == "bert" and getattr(model, "pooler", None) is None:
            raise ConfigError(
                "--head bert needs a model with a pooler (dense + tanh on [CLS]); this one has "
                "none: use --head mean or xlmr"
            )
        return head
    if getattr(model.config, "model_type", "") in _ROBERTA_TYPES:
        return "xlmr"
    if getattr(model, "pooler", None) is not None:
        return "bert"
    return "mean"


def _classifier_class() -> Any:
    import torch
    from torch import nn

    class SequenceClassifier(nn.Module):
        """``encoder`` (a Hugging Face base model) + a classification head of kind ``head``."""

        def __init__(self, encoder: Any, *, head: str, num_labels: int, dropout: float):
            super().__init__()
            self.encoder = encoder
            self.head_kind = head
            self.num_labels = num_labels
            hidden = int(encoder.config.hidden_size)
            self.dropout = nn.Dropout(dropout)
            self.head = nn.ModuleDict()
            if head == "xlmr":
                self.head["dense"] = nn.Linear(hidden, hidden)
                self.head["inner_dropout"] = nn.Dropout(dropout)
            self.head["out"] = nn.Linear(hidden, num_labels)
            std = float(getattr(encoder.config, "initializer_range", 0.02))
            for m in self.head.values():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=std)
                    nn.init.zeros_(m.bias)

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
            *,
            output_hidden_states: bool = False,
            output_attentions: bool = False,
        ) -> tuple[torch.Tensor, Any]:
            kwargs: dict[str, Any] = {}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            out = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
                return_dict=True,
                **kwargs,
            )
            last = out.last_hidden_state
            if self.head_kind == "bert":
                x = self.dropout(out.pooler_output)
            elif self.head_kind == "xlmr":
                x = self.dropout(last[:, 0])
                x = self.head["inner_dropout"](x)
                x = torch.tanh(self.head["dense"](x))
                x = self.head["inner_dropout"](x)
            else:
                m = attention_mask.to(last.dtype).unsqueeze(-1)
                x = self.dropout((last * m).sum(1) / m.sum(1).clamp(min=1e-9))
            return self.head["out"](x), out

    return SequenceClassifier


def build_classifier(
    encoder: Encoder, *, num_labels: int, head: str = "auto", dropout: float | None = None
) -> Any:
    """A ``SequenceClassifier`` over ``encoder.model`` (shared, not copied).

    ``dropout`` defaults to the model config's ``classifier_dropout`` or
    ``hidden_dropout_prob`` (0.1 for BERT/XLM-R/e5).
    """
    model = encoder.model
    kind = resolve_head(head, model)
    if dropout is None:
        cfg = model.config
        dropout = getattr(cfg, "classifier_dropout", None)
        if dropout is None:
            dropout = float(getattr(cfg, "hidden_dropout_prob", 0.1))
    cls = _classifier_class()
    clf = cls(model, head=kind, num_labels=num_labels, dropout=float(dropout))
    return clf.to(encoder.device)


def save_classifier(
    clf: Any, encoder: Encoder, folder: str | os.PathLike[str], *, meta: dict[str, Any]
) -> Path:
    """Save the encoder (``save_pretrained``) + tokenizer + head weights + ``xalign_train.json``."""
    from safetensors.torch import save_file

    from xalign._io import write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clf.encoder.save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in clf.head.state_dict().items()}
    save_file(state, str(folder / HEAD_FILE))
    write_json(
        folder / META_FILE,
        {**meta, "head": clf.head_kind, "num_labels": clf.num_labels, "dropout": clf.dropout.p},
    )
    return folder


def load_classifier(
    folder: str | os.PathLike[str], *, device: str = "auto"
) -> tuple[Any, Encoder, dict[str, Any]]:
    """Reload a checkpoint written by training: ``(classifier, encoder, meta)``, in eval mode.

    Raises
    ------
    ModelLoadError
        When the folder lacks the head or ``xalign_train.json`` (a plain encoder folder).
    """
    from safetensors.torch import load_file

    from xalign._io import read_json
    from xalign.models import load_encoder

    folder = Path(folder)
    for name in (HEAD_FILE, META_FILE):
        if not (folder / name).is_file():
            raise ModelLoadError(
                f"{folder}: no {name}; expected a checkpoint written by python -m xalign.train"
            )
    meta = read_json(folder / META_FILE)
    encoder = load_encoder(folder, device=device)
    clf = build_classifier(
        encoder, num_labels=int(meta["num_labels"]), head=meta["head"], dropout=meta["dropout"]
    )
    clf.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    clf.head.to(encoder.device)
    clf.eval()
    return clf, encoder, meta
