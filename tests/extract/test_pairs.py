"""Word-alignment gold readers and pair-mode extraction (cross-attention blocks of joint inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xalign.data import gold_alignments, load_corpus, read_word_align
from xalign.errors import ConfigError, DataError, StoreMismatchError
from xalign.extract import ExtractConfig, extract
from xalign.extract._pairs import (
    PairAttention,
    extract_pair_attention,
    pair_attention_exists,
    read_pair_attention,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

SRC_TGT = (
    "the cat sleeps ||| die Katze schläft \n"
    "we read two books . ||| wir lesen zwei Bücher .\n"
    "rain again today ||| heute regnet es wieder  \n"
)
GOLD = "1-2 2-2 3-3\n1-1 2-2 3-3 4-4 5p5\n1p4 2p4 3-1\n"


def write_pair(root: Path, src_tgt: str = SRC_TGT, gold: str | None = GOLD) -> Path:
    d = root / "en-de"
    d.mkdir(parents=True, exist_ok=True)
    (d / "ende.src-tgt").write_text(src_tgt, encoding="utf-8")
    if gold is not None:
        (d / "ende.gold").write_text(gold, encoding="utf-8")
    return d


# ----------------------------------------------------------------------------- reader


def test_read_word_align_rows(tmp_path):
    c = read_word_align(write_pair(tmp_path))
    assert c.languages == ["eng", "deu"] and len(c) == 6
    r = c.rows
    assert r["id"].tolist()[:2] == ["en-de:0:en", "en-de:1:en"]
    assert r["group"].tolist() == ["en-de:0", "en-de:1", "en-de:2"] * 2
    assert r["text"].tolist()[3:] == [
        "die Katze schläft",
        "wir lesen zwei Bücher .",
        "heute regnet es wieder",
    ]
    assert r["lang_raw"].tolist() == ["en"] * 3 + ["de"] * 3
    assert c.meta["pair"] == "en-de" and c.meta["n_pairs"] == 3
    # the whitespace word index of the joined text is the gold index - 1
    assert [len(t.split()) for t in r["text"]] == [3, 5, 3, 3, 5, 4]


def test_gold_alignments_zero_based(tmp_path):
    gold = gold_alignments(write_pair(tmp_path))
    assert gold[0] == ({(0, 1), (1, 1), (2, 2)}, {(0, 1), (1, 1), (2, 2)})
    assert gold[1][0] == {(0, 0), (1, 1), (2, 2), (3, 3)}
    assert gold[1][1] == gold[1][0] | {(4, 4)}
    assert gold[2] == ({(2, 0)}, {(0, 3), (1, 3), (2, 0)})
    assert len(gold_alignments(tmp_path / "en-de", limit=2)) == 2


def test_spec_and_pair_selection(tmp_path):
    write_pair(tmp_path)
    other = tmp_path / "ro-en"
    other.mkdir()
    (other / "roen.src-tgt").write_text("o pisica ||| a cat\n")
    c = load_corpus(f"wordalign:{tmp_path / 'en-de'}", limit_per_lang=2)
    assert len(c) == 4 and c.languages == ["eng", "deu"]
    c = load_corpus(f"wordalign:{tmp_path}", langs=["ro"])
    assert c.languages == ["ron", "eng"] and c.meta["gold"] is None
    assert read_word_align(tmp_path, pair="ende").meta["pair"] == "en-de"
    with pytest.raises(DataError, match=r"2 word-alignment pairs here \(en-de, ro-en\)"):
        read_word_align(tmp_path)
    with pytest.raises(DataError, match="gold file"):
        gold_alignments(other)


def test_link_past_sentence_end_names_file_and_line(tmp_path):
    d = write_pair(tmp_path, gold="1-2 2-2 3-3\n1-1 6-2\n1-1\n")
    with pytest.raises(DataError) as e:
        read_word_align(d)
    assert f"{d / 'ende.gold'}:2:" in str(e.value) and "6-2" in str(e.value)
    with pytest.raises(DataError, match=r"ende\.gold:2:"):
        gold_alignments(d)
    gold = gold_alignments(d, out_of_range="drop")
    assert gold[1] == ({(0, 0)}, {(0, 0)})
    assert read_word_align(d, out_of_range="drop").meta["gold_dropped"] == [[2, "6-2"]]


def test_bad_files(tmp_path):
    d = write_pair(tmp_path, gold="1-1\n1-1\n")
    with pytest.raises(DataError, match="2 gold lines for 3 sentence pairs"):
        read_word_align(d)
    d = write_pair(tmp_path / "x", src_tgt="a b ||| c\na b c\n", gold=None)
    with pytest.raises(
        DataError, match=rf"{d / 'ende.src-tgt'}:2: expected 'source tokens \|\|\| target"
    ):
        read_word_align(d)
    d = write_pair(tmp_path / "y", src_tgt="a b ||| c\n   |||  d\n", gold=None)
    with pytest.raises(DataError, match=r"ende\.src-tgt:2: empty source side"):
        read_word_align(d)
    with pytest.raises(ConfigError, match="out_of_range"):
        read_word_align(d, out_of_range="clip")


def test_real_gold_counts():
    if not SHARED.is_dir():
        pytest.skip("../shared/data absent: real word-alignment gold not available")
    root = SHARED / "word-align"
    gold = gold_alignments(root / "en-fr")
    assert len(gold) == 447
    assert sum(len(s) for s, _ in gold) == 4038  # README: 4,038 sure, 17,438 in P (P ⊇ S)
    assert sum(len(p) for _, p in gold) == 17438
    c = read_word_align(root, langs=["ja"], out_of_range="drop")
    assert c.languages == ["jpn", "eng"] and len(c.meta["gold_dropped"]) == 6  # README caveat
    with pytest.raises(DataError, match=r"jaen\.gold:351:"):
        read_word_align(root / "ja-en")


# ----------------------------------------------------------------------------- pair mode


def make_store(tmp_path, encoder, name="s", **kw):
    corpus = read_word_align(write_pair(tmp_path / "data"))
    kw.setdefault("progress", False)
    store, _ = extract(
        ExtractConfig(out=str(tmp_path / name), **kw), corpus=corpus, encoder=encoder
    )
    return store


def expected_word(text: str, start: int) -> int:
    """Whitespace word of a token starting at ``start`` (a bare '▁' joins the next word)."""
    k = start
    while k < len(text) and text[k].isspace():
        k += 1
    return len(text[: k + 1].split()) - 1


def direct_blocks(encoder, text_a, text_b, prefix=""):
    """Reference: one unpadded joint forward pass with eager attention."""
    tok = encoder.tokenizer
    enc = tok(
        prefix + text_a,
        prefix + text_b,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    seq = enc.sequence_ids(0)
    special = enc["special_tokens_mask"]
    offs = enc["offset_mapping"]
    pos, words = {0: [], 1: []}, {0: [], 1: []}
    for t, s in enumerate(seq):
        if s is None or special[t] or offs[t][1] <= len(prefix):
            continue
        pos[s].append(t)
        words[s].append(expected_word((text_a, text_b)[s], max(offs[t][0] - len(prefix), 0)))
    model = encoder.model
    model.set_attn_implementation("eager")
    try:
        inputs = {
            k: torch.tensor([v])
            for k, v in enc.items()
            if k in ("input_ids", "token_type_ids", "attention_mask")
        }
        with torch.no_grad():
            out = model(**inputs, output_attentions=True)
    finally:
        model.set_attn_implementation(encoder.attn_implementation)
    maps = [a[0].mean(0).numpy() for a in out.attentions]  # per block, head mean
    return maps, pos, words


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_cross_blocks_equal_joint_forward_slices(fixture, request, tmp_path):
    encoder = request.getfixturevalue(fixture)
    impl = encoder.model.config._attn_implementation
    store = make_store(tmp_path, encoder)
    pa = extract_pair_attention(store.path, encoder, token_budget=40)  # several batches, padding
    assert encoder.model.config._attn_implementation == impl  # restored
    assert pa.layers == [1, 2] and len(pa) == 3 and pa.langs == ("eng", "deu")
    assert pair_attention_exists(store.path, "eng", "deu")
    texts = store.rows["text"].tolist()
    for i in range(3):
        maps, pos, words = direct_blocks(encoder, texts[i], texts[i + 3])
        row = pa.table.iloc[i]
        assert (row["group"], row["row_a"], row["row_b"]) == (f"en-de:{i}", i, i + 3)
        assert list(row["positions_a"]) == pos[0] and list(row["positions_b"]) == pos[1]
        assert list(row["words_a"]) == words[0] and list(row["words_b"]) == words[1]
        assert set(words[0]) == set(range(len(texts[i].split())))
        for layer in (1, 2):
            ab, ba, wa, wb = read_pair_attention(store.path, "eng", "deu", index=i, layer=layer)
            m = maps[layer - 1]
            np.testing.assert_allclose(ab, m[np.ix_(pos[0], pos[1])], atol=1e-3)
            np.testing.assert_allclose(ba, m[np.ix_(pos[1], pos[0])], atol=1e-3)
            assert wa.tolist() == words[0] and wb.tolist() == words[1]
            ab2, _ = pa.blocks(pa.index_of(f"en-de:{i}"), layer=layer)
            np.testing.assert_array_equal(ab2, ab)
    blocks = {i: (ab, ba) for i, ab, ba in pa.layer_blocks(2)}
    np.testing.assert_array_equal(blocks[1][1], pa.blocks(1, layer=2)[1])


def test_rerun_replaces_and_prefix_tokens_dropped(tiny_xlmr, tmp_path):
    store = make_store(tmp_path, tiny_xlmr)
    first = extract_pair_attention(store.path, tiny_xlmr)
    ab_first, _ = first.blocks(1, layer=2)
    again = extract_pair_attention(store.path, tiny_xlmr, layers=[2])
    assert again.layers == [2] and again.info["layers"] == [2]
    np.testing.assert_array_equal(again.blocks(1, layer=2)[0], ab_first)
    with pytest.raises(ConfigError, match="attention layer 1 has no pair attention"):
        again.blocks(1, layer=1)
    leftovers = sorted(p.name for p in (store.path / "arrays.zarr" / "pairs").iterdir())
    assert leftovers == ["eng-deu", "zarr.json"]  # no temporary or old folder left behind
    pre = extract_pair_attention(store.path, tiny_xlmr, prefix="query: ")
    assert pre.info["prefix"] == "query: "
    texts = store.rows["text"].tolist()
    maps, pos, words = direct_blocks(tiny_xlmr, texts[1], texts[4], prefix="query: ")
    row = pre.table.iloc[1]
    assert list(row["positions_a"]) == pos[0] and list(row["words_a"]) == words[0]
    assert set(words[0]) == set(range(5))  # prefix tokens are not words of the sentence
    np.testing.assert_allclose(
        pre.blocks(1, layer=2)[0], maps[1][np.ix_(pos[0], pos[1])], atol=1e-3
    )


def test_truncation_flagged(tiny_bert, tmp_path):
    store = make_store(tmp_path, tiny_bert)
    pa = extract_pair_attention(store.path, tiny_bert, max_length=12)
    t = pa.table
    assert t["truncated"].all() and (t["n_joint"] == 12).all()
    assert (t["n_a"] + t["n_b"] <= 9).all()
    assert pa.info["counts"]["truncated"] == 3


def test_bad_input(tiny_bert, tiny_xlmr, tmp_path):
    store = make_store(tmp_path, tiny_bert)
    with pytest.raises(
        ConfigError, match=r"no pair attention for eng-deu; run .*extract_pair_attention"
    ):
        PairAttention(store.path, "eng", "deu")
    with pytest.raises(StoreMismatchError, match="encoder differs"):
        extract_pair_attention(store.path, tiny_xlmr)
    with pytest.raises(ConfigError, match="layer 0"):
        extract_pair_attention(store.path, tiny_bert, layers=[0, 1])
    with pytest.raises(ConfigError, match="not in store"):
        extract_pair_attention(store.path, tiny_bert, langs=("eng", "fra"))
    extract_pair_attention(store.path, tiny_bert, langs=("de", "en"))
    assert pair_attention_exists(store.path, "deu", "eng")
    with pytest.raises(ConfigError, match="exactly one of group= and index="):
        read_pair_attention(store.path, "deu", "eng", layer=1)


def test_pair_set_records_checksums_and_verifies(tiny_bert, tmp_path):
    """Every pair chunk's CRC-32, the metadata and table hashes and the record's own SHA-256
    are written; verify_store checks them; a damaged chunk fails the read, and a rerun
    recomputes the pair set."""
    from xalign.errors import StoreError
    from xalign.store import verify_store

    store = make_store(tmp_path, tiny_bert, tokens=True, attentions="head-mean")
    pa = extract_pair_attention(store.path, tiny_bert)
    rec = pa.info["integrity"]
    assert pa.info["format_version"] == 2 and len(pa.info["sha256"]) == 64
    assert sorted(rec["arrays"]) == ["ab", "ab_offsets", "ba", "ba_offsets"]
    assert len(rec["arrays"]["ab"]) == 2 and rec["table"]["rows"] == 3  # one chunk per layer
    assert verify_store(store.path).ok
    chunk = store.path / "arrays.zarr/pairs/eng-deu/ba/c/0/1"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"pairs/eng-deu/ba chunk c/0/1 .*CRC-32.*--pairs eng,deu"):
        read_pair_attention(store.path, "eng", "deu", index=0, layer=2)
    assert not verify_store(store.path).ok
    assert verify_store(store.path, pairs=False).ok  # the store itself is intact
    extract_pair_attention(store.path, tiny_bert)
    assert verify_store(store.path).ok
    read_pair_attention(store.path, "eng", "deu", index=0, layer=2)
