"""The Encoder: a Hugging Face model + tokenizer + the facts recorded about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["Encoder", "EncoderFacts"]

Family = Literal["encoder", "decoder"]


@dataclass(frozen=True)
class EncoderFacts:
    """What a store records about the encoder that produced it.

    ``num_layers`` is L: ``hidden_states`` has L + 1 entries, layer 0 being the embedding
    output. ``weights_hash`` identifies the weights when no hub revision exists (sha256 of
    the weight files, or of the source file a model was converted from).
    """

    name: str
    family: Family
    model_type: str
    num_layers: int
    hidden_size: int
    num_heads: int
    vocab_size: int
    max_length: int
    revision: str | None = None
    weights_hash: str | None = None
    #: Text prepended to every input as the model expects it (e5: ``"query: "``), or "".
    default_prefix: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that must match when a store is reopened for resuming."""
        return {
            "name": self.name,
            "revision": self.revision,
            "weights_hash": self.weights_hash,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
        }


@dataclass
class Encoder:
    """A loaded model ready for extraction (``model.eval()``, on ``device``)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    facts: EncoderFacts
    device: torch.device
    #: The attention implementation the model runs with ("eager" returns attention maps).
    attn_implementation: str = "sdpa"
