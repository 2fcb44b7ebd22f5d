"""The Corpus table: canonical columns, fingerprint, select, is_parallel."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from xalign.data import COLUMNS, Corpus, read_sib200, read_table
from xalign.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

TSV = (
    "group\tlang\ttext\tlabel\tsplit\n"
    "g1\tdeu_Latn\tHallo Welt\tgreet\tdev\n"
    "g1\teng_Latn\tHello world\tgreet\tdev\n"
    "g1\tzho_Hant\t你好世界\tgreet\tdev\n"
    "g2\tdeu_Latn\tTschüss\t\ttest\n"
    "g2\teng_Latn\tBye\t\ttest\n"
)


def test_columns_and_types() -> None:
    c = Corpus(pd.DataFrame({"id": [1, 2], "lang": ["deu", "eng"], "text": ["a", "b"]}))
    assert tuple(c.rows.columns) == COLUMNS
    assert c.rows["id"].tolist() == ["1", "2"]
    assert c.rows["lang_raw"].tolist() == ["deu", "eng"]
    for col in ("group", "label", "split"):
        assert c.rows[col].tolist() == [None, None]
    c = Corpus(
        pd.DataFrame(
            {
                "id": ["a", "b"],
                "lang": ["deu", "eng"],
                "lang_raw": ["de", None],
                "text": ["x", "y"],
                "label": ["1", None],
            }
        )
    )
    assert c.rows["lang_raw"].tolist() == ["de", "eng"]
    # missing optional values are None (not NaN), whatever dtype pandas would infer
    assert c.rows["label"].tolist() == ["1", None]
    assert c.rows.loc[1, "label"] is None


def test_fingerprint_is_sha256_of_canonical_rows() -> None:
    c = Corpus.from_records(
        [
            {"id": "a", "lang": "deu", "text": "Grüße", "label": "x"},
            {"id": "b", "lang": "eng", "text": "Hi", "group": "g"},
        ]
    )
    canon = (
        '["a","deu","deu","Grüße",null,"x",null]\n["b","eng","eng","Hi","g",null,null]\n'
    ).encode()
    assert c.fingerprint() == hashlib.sha256(canon).hexdigest()


def test_fingerprint_stable_and_sensitive(tmp_path: Path) -> None:
    p = tmp_path / "c.tsv"
    p.write_text(TSV, encoding="utf-8")
    f1 = read_table(p).fingerprint()
    f2 = read_table(p).fingerprint()
    assert f1 == f2
    assert len(f1) == 64 and int(f1, 16) >= 0
    p.write_text(TSV.replace("Bye", "Bye!"), encoding="utf-8")
    assert read_table(p).fingerprint() != f1
    p.write_text(TSV.replace("\tgreet\tdev\n", "\tgreet\ttest\n", 1), encoding="utf-8")
    assert read_table(p).fingerprint() != f1
    # a selection that keeps every row keeps the fingerprint
    c = read_table(p)
    assert c.select(langs=["deu", "eng", "cmn_Hant"]).fingerprint() == c.fingerprint()


def test_fingerprint_real_data_stable() -> None:
    folder = SHARED / "sib-200"
    if not folder.is_dir():
        pytest.skip(f"../shared/data absent: {folder.resolve()} is not a folder")
    a = read_sib200(folder, langs=["deu", "zho_Hans"])
    b = read_sib200(folder, langs=["deu", "zho_Hans"])
    assert a.fingerprint() == b.fingerprint()
    rows = a.rows.copy()
    rows.loc[5, "text"] = rows.loc[5, "text"] + " "
    assert Corpus(rows).fingerprint() != a.fingerprint()


def test_select_by_raw_and_normalised_codes(tmp_path: Path) -> None:
    p = tmp_path / "c.tsv"
    p.write_text(TSV, encoding="utf-8")
    c = read_table(p)
    assert c.languages == ["deu", "eng", "cmn_Hant"]
    by_norm = c.select(langs=["deu", "cmn_Hant"])
    by_raw = c.select(langs=["deu_Latn", "zho_Hant"])
    assert (
        by_norm.rows["id"].tolist()
        == by_raw.rows["id"].tolist()
        == ["deu_Latn:0", "zho_Hant:2", "deu_Latn:3"]
    )
    assert by_norm.fingerprint() == by_raw.fingerprint()
    assert c.select(langs="eng").rows["text"].tolist() == ["Hello world", "Bye"]
    with pytest.raises(
        DataError, match=r"language\(s\) \['fra'\] not in corpus; available: deu, eng, cmn_Hant"
    ):
        c.select(langs=["fra"])
    assert c.select(split="test").rows["text"].tolist() == ["Tschüss", "Bye"]
    assert len(c.select(split=["dev", "test"])) == 5
    sub = c.select(limit_per_lang=1)
    assert sub.rows["text"].tolist() == ["Hallo Welt", "Hello world", "你好世界"]
    assert sub.name == c.name and sub.source == c.source


def test_is_parallel(tmp_path: Path) -> None:
    p = tmp_path / "c.tsv"
    p.write_text(TSV, encoding="utf-8")
    c = read_table(p)
    assert c.is_parallel
    assert not c.select(langs=["eng"]).is_parallel  # groups of one language only
    mono = Corpus.from_records(
        [{"id": "a", "lang": "deu", "text": "x"}, {"id": "b", "lang": "eng", "text": "y"}]
    )
    assert not mono.is_parallel
    one_pair = Corpus.from_records(
        [
            {"id": "a", "lang": "deu", "text": "x", "group": "1"},
            {"id": "b", "lang": "eng", "text": "y", "group": "1"},
            {"id": "c", "lang": "eng", "text": "z", "group": "2"},
        ]
    )
    assert one_pair.is_parallel
