"""load_encoder on saved tiny folders, a fake Hugging Face cache, and its error paths."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from xalign.errors import ConfigError, ModelLoadError
from xalign.models import load_encoder, tiny_encoder

KINDS = ["bert", "xlmr", "decoder"]
EXPECTED = {
    "bert": ("encoder", "bert"),
    "xlmr": ("encoder", "xlm-roberta"),
    "decoder": ("decoder", "gpt2"),
}


def _sha256sum_listing(folder: Path) -> str:
    """What ``sha256sum *.safetensors | sha256sum`` prints, computed independently."""
    lines = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
        for p in sorted(folder.glob("*.safetensors"))
    )
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for kind in KINDS:
        folder = tmp_path_factory.mktemp(f"saved-{kind}")
        tiny_encoder(kind, seed=0, num_layers=3, hidden_size=24, num_heads=3, save_to=folder)
        out[kind] = folder
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_facts_of_saved_folders(saved, kind):
    folder = saved[kind]
    enc = load_encoder(folder, device="cpu")
    f = enc.facts
    assert (f.family, f.model_type) == EXPECTED[kind]
    assert (f.num_layers, f.hidden_size, f.num_heads) == (3, 24, 3)
    assert f.vocab_size == len(enc.tokenizer)
    assert f.max_length == 128
    assert f.name == str(folder)
    assert f.revision is None
    assert f.default_prefix == ""
    assert f.weights_hash == _sha256sum_listing(folder)
    assert enc.device == torch.device("cpu")
    assert not enc.model.training
    batch = enc.tokenizer(["Die Katze schläft.", "猫"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = enc.model(**batch, output_hidden_states=True)
    assert len(out.hidden_states) == f.num_layers + 1
    assert out.hidden_states[-1].shape[-1] == 24


@pytest.mark.parametrize("kind", KINDS)
def test_saved_folder_computes_what_the_in_memory_model_computes(saved, kind):
    mem = tiny_encoder(kind, seed=0, num_layers=3, hidden_size=24, num_heads=3)
    disk = load_encoder(saved[kind], device="cpu")
    text = ["Wir lesen jede Woche zwei Bücher."]
    a = mem.tokenizer(text, return_tensors="pt")
    b = disk.tokenizer(text, return_tensors="pt")
    assert a["input_ids"].tolist() == b["input_ids"].tolist()
    with torch.no_grad():
        ha = mem.model(**a).last_hidden_state
        hb = disk.model(**b).last_hidden_state
    torch.testing.assert_close(ha, hb, atol=1e-5, rtol=1e-5)


def test_weights_hash_is_stable_and_follows_the_weights(saved, tmp_path):
    size = {"num_layers": 3, "hidden_size": 24, "num_heads": 3}
    again = tiny_encoder("bert", seed=0, **size, save_to=tmp_path / "again")
    base = load_encoder(saved["bert"], device="cpu")
    assert again.facts.weights_hash == base.facts.weights_hash
    other = tiny_encoder("bert", seed=1, **size, save_to=tmp_path / "seed1")
    assert other.facts.weights_hash != base.facts.weights_hash
    with torch.no_grad():
        base.model.embeddings.word_embeddings.weight[5, 0] += 1.0
    base.model.save_pretrained(tmp_path / "edited")
    base.tokenizer.save_pretrained(tmp_path / "edited")
    edited = load_encoder(tmp_path / "edited", device="cpu")
    assert edited.facts.weights_hash not in (base.facts.weights_hash, None)


def test_decoder_gets_eos_as_pad_token(saved):
    enc = load_encoder(saved["decoder"], device="cpu")
    tok = enc.tokenizer
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"
    assert "eos" in enc.facts.extra["pad_token"]
    texts = ["Мы читаем две книги каждую неделю.", "Hi"]
    batch = tok(texts, padding=True, return_tensors="pt")
    assert batch["input_ids"][1, -1].item() == tok.pad_token_id
    with torch.no_grad():
        padded = enc.model(**batch).last_hidden_state
        alone = enc.model(**tok(texts[1:], return_tensors="pt")).last_hidden_state
    n = int(batch["attention_mask"][1].sum())
    # Right padding + causal attention: the real positions see exactly what they see alone.
    torch.testing.assert_close(padded[1, :n], alone[0], atol=1e-5, rtol=1e-5)


def test_eager_attention_is_honoured(saved):
    enc = load_encoder(saved["xlmr"], device="cpu", attn_implementation="eager")
    assert enc.attn_implementation == "eager"
    batch = enc.tokenizer(["Il pleut en ville aujourd'hui."], return_tensors="pt")
    with torch.no_grad():
        out = enc.model(**batch, output_attentions=True)
    assert len(out.attentions) == 3
    torch.testing.assert_close(
        out.attentions[0].sum(-1), torch.ones(1, 3, out.attentions[0].shape[2])
    )


@pytest.mark.parametrize(
    ("dtype", "expected"), [("bfloat16", torch.bfloat16), ("float16", torch.float16)]
)
def test_dtype(saved, dtype, expected):
    enc = load_encoder(saved["bert"], device="cpu", dtype=dtype)
    assert next(enc.model.parameters()).dtype == expected


def test_auto_device():
    from xalign.models._load import resolve_device

    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dtype": "float64"}, "dtype"),
        ({"attn_implementation": "fast"}, "attn_implementation"),
        ({"device": "gpu0"}, "device"),
    ],
)
def test_bad_options_raise_config_error(saved, kwargs, field):
    with pytest.raises(ConfigError, match=field):
        load_encoder(saved["bert"], **kwargs)


def test_offline_missing_model_message():
    with pytest.raises(ModelLoadError) as info:
        load_encoder("definitely/not-a-model-xyz", device="cpu")
    msg = str(info.value)
    assert msg == (
        "cannot load model 'definitely/not-a-model-xyz' offline: not a local folder and not in "
        "the Hugging Face cache; download it once online (huggingface-cli download "
        "definitely/not-a-model-xyz) and then run with HF_HUB_OFFLINE=1, or pass a local folder "
        "path (a model saved with save_pretrained)"
    )
    assert "\n" not in msg
    assert info.value.__cause__ is not None


def test_missing_folder_and_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_encoder(str(tmp_path / "nope" / "model"), device="cpu")
    with pytest.raises(ModelLoadError, match=f"from folder '{tmp_path}'"):
        load_encoder(tmp_path, device="cpu")


def test_hub_cache_gives_commit_and_snapshot_hash(saved, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny--bert"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(saved["bert"], snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    enc = load_encoder("tiny/bert", device="cpu")
    assert enc.facts.name == "tiny/bert"
    assert enc.facts.revision == commit
    assert enc.facts.weights_hash == _sha256sum_listing(saved["bert"])
    with pytest.raises(ModelLoadError, match="offline"):
        load_encoder("tiny/bert", device="cpu", revision="v2")


def test_trust_remote_code_is_false_unless_asked(saved, monkeypatch):
    import transformers

    seen = []
    for cls_name in ("AutoConfig", "AutoModel", "AutoTokenizer"):
        cls = getattr(transformers, cls_name)
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, _name=cls_name, **kwargs):
            seen.append((_name, kwargs.get("trust_remote_code", "absent")))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    load_encoder(saved["bert"], device="cpu")
    assert {name for name, _ in seen} == {"AutoConfig", "AutoModel", "AutoTokenizer"}
    assert {flag for _, flag in seen} == {False}
    seen.clear()
    load_encoder(saved["bert"], device="cpu", trust_remote_code=True)
    assert {flag for _, flag in seen} == {True}


def test_slow_tokenizer_is_rejected(saved, tmp_path):
    from transformers import ByT5Tokenizer

    folder = tmp_path / "slow"
    shutil.copytree(saved["bert"], folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    ByT5Tokenizer().save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="only a slow tokenizer"):
        load_encoder(folder, device="cpu")


def test_family_and_max_length_rules():
    from transformers import (
        BertConfig,
        GPT2Config,
        LlamaConfig,
        T5Config,
        XLMRobertaConfig,
    )

    from xalign.models._load import _family, _max_length

    class Tok:
        def __init__(self, n):
            self.model_max_length = n

    assert _family(LlamaConfig()) == "decoder"
    assert _family(GPT2Config()) == "decoder"
    assert _family(BertConfig(is_decoder=True)) == "decoder"
    assert _family(BertConfig(architectures=["BertLMHeadModel"])) == "decoder"
    assert _family(BertConfig()) == "encoder"
    assert _family(XLMRobertaConfig()) == "encoder"
    assert _family(T5Config()) == "encoder"
    huge = int(1e30)  # tokenizers without a recorded limit
    xlmr = XLMRobertaConfig(max_position_embeddings=514, pad_token_id=1)
    assert _max_length(xlmr, Tok(huge)) == 512  # RoBERTa positions start at 2
    assert _max_length(BertConfig(max_position_embeddings=512), Tok(huge)) == 512
    assert _max_length(BertConfig(max_position_embeddings=512), Tok(128)) == 128
    assert _max_length(GPT2Config(n_positions=1024), Tok(huge)) == 1024


def test_encoder_decoder_checkpoint_loads_its_encoder(tmp_path):
    from transformers import T5Config, T5Model

    from xalign.models import train_tiny_tokenizer

    tok = train_tiny_tokenizer("bert")
    config = T5Config(
        vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        decoder_start_token_id=0, pad_token_id=0,
    )  # fmt: skip
    T5Model(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    enc = load_encoder(tmp_path, device="cpu")
    assert type(enc.model).__name__ == "T5EncoderModel"
    assert (enc.facts.family, enc.facts.num_layers, enc.facts.hidden_size) == ("encoder", 2, 32)
    batch = enc.tokenizer(["Hola mundo"], return_tensors="pt")
    with torch.no_grad():
        out = enc.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
        )
    assert len(out.hidden_states) == 3


@pytest.fixture
def no_download(monkeypatch):
    """Counts calls into transformers' loaders; none may reach a network from a test."""
    import transformers

    calls = []

    def refuse(klass, *args, **kwargs):
        calls.append((klass.__name__, kwargs.get("local_files_only")))
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    for cls_name in ("AutoConfig", "AutoModel", "AutoTokenizer"):
        monkeypatch.setattr(getattr(transformers, cls_name), "from_pretrained", classmethod(refuse))
    return calls


def test_unreachable_hub_fails_at_once_with_the_hint(monkeypatch, no_download):
    """An uncached hub model with no network: one probe, no download attempt, the how-to."""
    from xalign.models import _load

    probes = []
    monkeypatch.setattr(_load, "hub_reachable", lambda *a, **k: probes.append(a) or False)
    for _ in range(2):  # every time, not only the first
        with pytest.raises(ModelLoadError) as info:
            load_encoder("someone/uncached-model", device="cpu", local_files_only=False)
        msg = str(info.value)
        assert "is unreachable" in msg and "not in the Hugging Face cache" in msg
        assert "HF_HUB_OFFLINE=1" in msg and "local folder path" in msg and "\n" not in msg
    assert no_download == [] and len(probes) == 2


def test_reachable_hub_that_fails_still_gives_the_hint_after_one_try(monkeypatch, no_download):
    from xalign.models import _load

    monkeypatch.setattr(_load, "hub_reachable", lambda *a, **k: True)
    with pytest.raises(ModelLoadError) as info:
        load_encoder("someone/uncached-model", device="cpu", local_files_only=False)
    msg = str(info.value)
    assert "hub did not provide it" in msg and "HF_HUB_OFFLINE=1" in msg
    assert no_download == [("AutoConfig", False)]  # one attempt; our code adds no retry loop


def test_unreachable_hub_loads_a_cached_model_offline(saved, tmp_path, monkeypatch, no_download):
    from huggingface_hub import constants

    from xalign.models import _load

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny--bert"
    shutil.copytree(saved["bert"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(_load, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(ModelLoadError):
        load_encoder("tiny/bert", device="cpu", local_files_only=False)
    # the spies stand in for the loaders: every call is for local files only (no network)
    assert no_download and {flag for _, flag in no_download} == {True}


def test_hub_probe_answers_fast_without_a_network():
    """The probe itself: an address that cannot be resolved is 'unreachable', once per URL."""
    import time

    from xalign.models._load import _hub_probe, hub_reachable

    url = "https://hub.invalid"  # RFC 2606: never resolves
    t0 = time.perf_counter()
    assert hub_reachable(url, timeout=1.0) is False
    assert time.perf_counter() - t0 < 30  # bounded by the timeout, never by retries
    assert _hub_probe[url] is False and hub_reachable(url) is False
