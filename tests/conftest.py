"""Shared fixtures: tiny in-process models, the offline e5-small, and the real data folder.

Tests never touch the Hugging Face hub: offline mode is switched on before transformers is
imported. The converted e5-small is cached in ``$XALIGN_CACHE`` (default for tests:
``/tmp/xalign-test-cache``), so the conversion runs once per machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("XALIGN_CACHE", "/tmp/xalign-test-cache")

#: ``../shared/data`` beside the repository root (real datasets; optional).
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_bert():
    """A 2-layer ``BertModel`` (hidden 32, 4 heads) with an in-process WordPiece tokenizer."""
    from xalign.models import tiny_encoder

    return tiny_encoder("bert", seed=0)


@pytest.fixture(scope="session")
def tiny_xlmr():
    """A 2-layer ``XLMRobertaModel`` with an in-process Unigram/Metaspace tokenizer."""
    from xalign.models import tiny_encoder

    return tiny_encoder("xlmr", seed=0)


@pytest.fixture(scope="session")
def tiny_decoder():
    """A 2-layer ``GPT2Model`` with a byte-level BPE tokenizer (pad token = eos)."""
    from xalign.models import tiny_encoder

    return tiny_encoder("decoder", seed=0)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A saved Hugging Face folder of the tiny BERT (seed 0), loadable with ``load_encoder``."""
    from xalign.models import tiny_encoder

    folder = tmp_path_factory.mktemp("tiny-bert")
    tiny_encoder("bert", seed=0, save_to=folder)
    return folder


@pytest.fixture(scope="session")
def e5_small():
    """The offline default encoder ``load_encoder("e5-small")`` on CPU (converted once)."""
    from xalign.models import load_encoder

    return load_encoder("e5-small", device="cpu")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real datasets), or skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data absent: {SHARED_DATA.resolve()} is not a folder")
    return SHARED_DATA.resolve()


@pytest.fixture(scope="session")
def shared():
    """``shared("tatoeba/v1")``: that folder of ``../shared/data``, or skip (naming it) when
    it is absent."""

    def folder(sub: str) -> Path:
        p = SHARED_DATA / sub
        if not p.is_dir():
            pytest.skip(f"../shared/data absent: {p.resolve()} is not a folder")
        return p

    return folder
