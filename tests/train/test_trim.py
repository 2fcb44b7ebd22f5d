"""Vocabulary trimming is exact on the texts it was built from, and saves as a normal folder."""

from __future__ import annotations

import copy

import pytest
import torch

from xalign.errors import ConfigError
from xalign.models import load_encoder
from xalign.train import TrainConfig, train, trim_vocabulary

TEXTS = [
    "The cat sleeps on the warm mat.",
    "Die Katze schläft.",
    "猫睡在温暖的垫子上。",
    "kalter Regen fällt heute",
]


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_trimmed_model_gives_identical_outputs(fixture, request, tmp_path):
    enc = request.getfixturevalue(fixture)
    small, info = trim_vocabulary(enc, TEXTS)
    assert (
        info["rows_after"] < info["rows_before"] == enc.model.get_input_embeddings().weight.shape[0]
    )
    assert (
        small.facts.vocab_size == info["rows_after"]
        and small.facts.weights_hash != enc.facts.weights_hash
    )
    assert (
        enc.model.get_input_embeddings().weight.shape[0] == info["rows_before"]
    )  # original untouched
    for text in TEXTS:
        a = enc.tokenizer(text, return_tensors="pt")
        b = small.tokenizer(text, return_tensors="pt")
        assert a["input_ids"].shape == b["input_ids"].shape
        with torch.no_grad():
            ha = enc.model(**a, output_hidden_states=True).hidden_states
            hb = small.model(**b, output_hidden_states=True).hidden_states
        for x, y in zip(ha, hb, strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    # a batch with padding behaves the same too (pad id re-indexed consistently)
    a = enc.tokenizer(TEXTS, return_tensors="pt", padding=True)
    b = small.tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(
            enc.model(**a).last_hidden_state, small.model(**b).last_hidden_state
        )
    small.model.save_pretrained(tmp_path)
    small.tokenizer.save_pretrained(tmp_path)
    again = load_encoder(tmp_path, device="cpu")
    assert again.facts.vocab_size == info["rows_after"]
    assert (
        again.tokenizer(TEXTS[1])["input_ids"]
        == b["input_ids"][1][b["attention_mask"][1] == 1].tolist()
    )


def test_bpe_is_refused(tiny_decoder):
    with pytest.raises(ConfigError, match="tokenizer model 'BPE' is not supported"):
        trim_vocabulary(tiny_decoder, TEXTS)


def test_training_with_trimmed_vocabulary_matches_full(
    tiny_bert, tiny_sib, neighbours_file, tmp_path
):
    kw = dict(
        model="tiny-bert", task="sib200", data=str(tiny_sib), neighbours=str(neighbours_file), ap_layer=2,
        n_views=1, epochs=1, batch_size=4, grad_accum=2, seeds=[1], progress=False, save_checkpoint=False,
    )  # fmt: skip
    full = train(TrainConfig(**kw, out=str(tmp_path / "full")), encoder=copy.deepcopy(tiny_bert))
    trim = train(
        TrainConfig(**kw, vocab="task", out=str(tmp_path / "trim")),
        encoder=copy.deepcopy(tiny_bert),
    )
    assert any("vocabulary trimmed" in n for n in trim.notes)
    cols = ["loss", "ce", "rt", "ep", "ap", "push_distance", "pull_mse"]
    for c in cols:
        torch.testing.assert_close(
            torch.tensor(trim.train_log[c].to_numpy()),
            torch.tensor(full.train_log[c].to_numpy()),
            equal_nan=True,
            rtol=1e-4,
            atol=1e-6,
        )
    assert trim.seeds[0].test_acc == full.seeds[0].test_acc
