"""Tiny in-process models and tokenizers: shapes, determinism, and tokenizer behaviour."""

from __future__ import annotations

import pytest
import torch

from xalign.errors import ConfigError
from xalign.models import tiny_encoder, train_tiny_tokenizer
from xalign.models._tiny import TINY_TEXTS


@pytest.mark.parametrize("kind", ["bert", "xlmr", "decoder"])
def test_tokenizer_is_fast_small_and_reproducible(kind):
    a = train_tiny_tokenizer(kind)
    b = train_tiny_tokenizer(kind)
    assert a.is_fast
    assert 300 <= len(a) <= 1000
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    for text in TINY_TEXTS[::7]:
        enc = a(text, return_offsets_mapping=True, add_special_tokens=False)
        # Every token maps back to characters of the input.
        assert all(0 <= s < e <= len(text) for s, e in enc["offset_mapping"])
        assert enc["input_ids"] == b(text, add_special_tokens=False)["input_ids"]


def test_special_token_layout():
    bert = train_tiny_tokenizer("bert")
    ids = bert("Hallo Welt")["input_ids"]
    assert (ids[0], ids[-1]) == (bert.cls_token_id, bert.sep_token_id)
    xlmr = train_tiny_tokenizer("xlmr")
    ids = xlmr("Hola mundo")["input_ids"]
    specials = [xlmr.bos_token_id, xlmr.pad_token_id, xlmr.eos_token_id, xlmr.unk_token_id]
    assert specials == [0, 1, 2, 3]
    assert (ids[0], ids[-1]) == (0, 2)
    assert xlmr.mask_token_id == len(xlmr) - 1
    dec = train_tiny_tokenizer("decoder")
    assert dec.pad_token is None
    assert dec.decode(dec("Где вокзал?")["input_ids"]) == "Где вокзал?"  # byte-level: lossless


def test_tokenizer_trains_on_given_texts():
    tok = train_tiny_tokenizer("xlmr", texts=["abc abd abe"] * 20 + ["xyz"])
    assert tok.convert_ids_to_tokens(tok("abc")["input_ids"])[1:-1] != ["<unk>"]
    assert len(tok) < len(train_tiny_tokenizer("xlmr"))
    with pytest.raises(ConfigError, match="empty"):
        train_tiny_tokenizer("bert", texts=[])


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr", "tiny_decoder"])
def test_fixtures_forward_with_all_layers(fixture, request):
    enc = request.getfixturevalue(fixture)
    f = enc.facts
    assert (f.num_layers, f.hidden_size, f.num_heads) == (2, 32, 4)
    assert f.weights_hash is not None and len(f.weights_hash) == 64
    texts = ["Кошка спит.", "The cat sleeps on the windowsill."]
    batch = enc.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = enc.model(**batch, output_hidden_states=True)
    assert len(out.hidden_states) == 3
    assert out.hidden_states[0].shape == (*batch["input_ids"].shape, 32)


def test_same_seed_same_weights_other_seed_other_weights():
    a = tiny_encoder("xlmr", seed=3)
    b = tiny_encoder("xlmr", seed=3)
    c = tiny_encoder("xlmr", seed=4)
    sa, sb, sc = (e.model.state_dict() for e in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    emb = "embeddings.word_embeddings.weight"
    assert not torch.equal(sa[emb], sc[emb])
    assert a.facts.weights_hash == b.facts.weights_hash != c.facts.weights_hash


def test_global_rng_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_encoder("bert", seed=9)
    torch.testing.assert_close(torch.rand(3), expected)


def test_tiny_decoder_pads_with_eos(tiny_decoder):
    tok = tiny_decoder.tokenizer
    assert tok.pad_token_id == tok.eos_token_id
    assert tiny_decoder.facts.family == "decoder"
    assert "pad_token" in tiny_decoder.facts.extra


def test_saved_folder_fixture_loads(tiny_bert_dir, tiny_bert):
    from xalign.models import load_encoder

    enc = load_encoder(tiny_bert_dir, device="cpu")
    assert enc.facts.num_layers == tiny_bert.facts.num_layers
    assert enc.tokenizer.get_vocab() == tiny_bert.tokenizer.get_vocab()


def test_bad_arguments():
    with pytest.raises(ConfigError, match="kind"):
        tiny_encoder("gpt")
    with pytest.raises(ConfigError, match="num_heads"):
        tiny_encoder("bert", hidden_size=30, num_heads=4)
