"""Bad input: every case gives a DataError whose one-line message names the file and line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from xalign.data import (
    DATA_KINDS,
    Corpus,
    load_corpus,
    read_pawsx,
    read_pawsx_pairs,
    read_sib200,
    read_table,
    read_tatoeba,
)
from xalign.errors import ConfigError, DataError, XAlignError


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8", newline="")
    return path


def _error(fn, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert isinstance(err, XAlignError)
    assert "\n" not in str(err), "message must be one line"
    return err


def _tatoeba(tmp_path: Path, xxx: str, xxx_text: str | bytes, eng_text: str | bytes) -> Path:
    d = tmp_path / "tatoeba"
    _write(d / f"tatoeba.{xxx}-eng.{xxx}", xxx_text)
    _write(d / f"tatoeba.{xxx}-eng.eng", eng_text)
    return d


# ----------------------------------------------------------------------------- empty text


@pytest.mark.parametrize("blank", ["", "   ", "\t", "\u3000"])
def test_tatoeba_empty_text(tmp_path: Path, blank: str) -> None:
    d = _tatoeba(tmp_path, "deu", f"Eins\nZwei\n{blank}\n", "One\nTwo\nThree\n")
    err = _error(read_tatoeba, d)
    assert str(err) == f"{d / 'tatoeba.deu-eng.deu'}:3: empty or whitespace-only text"
    assert (err.path, err.line) == (d / "tatoeba.deu-eng.deu", 3)


def test_tatoeba_empty_english_side(tmp_path: Path) -> None:
    d = _tatoeba(tmp_path, "deu", "Eins\nZwei\n", "One\n \n")
    err = _error(read_tatoeba, d)
    assert str(err) == f"{d / 'tatoeba.deu-eng.eng'}:2: empty or whitespace-only text"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("text\tlang\nHallo\tde\n\tde\n", "3: empty or whitespace-only text"),
        ("text\tlang\nHallo\tde\n   \ten\n", "3: empty or whitespace-only text"),
        # a line of only a tab is a record with empty fields, not a skipped blank line
        ("text\tlang\nHallo\tde\nHi\ten\n\t\n", "4: missing language (column 'lang')"),
        # the line where the record starts, not the record's index
        ('text\tlang\n"multi\nline"\tde\n""\ten\n', "4: empty or whitespace-only text"),
    ],
)
def test_table_empty_text(tmp_path: Path, content: str, where: str) -> None:
    p = _write(tmp_path / "t.tsv", content)
    err = _error(read_table, p)
    assert str(err) == f"{p}:{where}"


def test_single_column_whitespace_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "mono.tsv", "text\nEins\n   \nZwei\n")
    err = _error(read_table, p, lang="de")
    assert str(err) == f"{p}:3: empty or whitespace-only text"


def test_jsonl_empty_text(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.jsonl", '{"text": "a", "lang": "de"}\n\n{"text": " ", "lang": "de"}\n')
    assert str(_error(read_table, p)) == f"{p}:3: empty or whitespace-only text"
    p = _write(tmp_path / "n.jsonl", '{"text": "a", "lang": "de"}\n{"text": null, "lang": "de"}\n')
    assert str(_error(read_table, p)) == f"{p}:2: missing text (column 'text')"


def test_sib200_empty_text(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "sib" / "deu_Latn" / "test.tsv",
        'index_id\tcategory\ttext\n1\thealth\tGut.\n2\ttravel\t""\n',
    )
    assert str(_error(read_sib200, tmp_path / "sib")) == f"{f}:3: empty or whitespace-only text"


def test_pawsx_empty_sentence(tmp_path: Path) -> None:
    f = _write(tmp_path / "p" / "dev-de.tsv", "A.\tB.\t1\nC.\t  \t0\n")
    msg = f"{f}:2: empty or whitespace-only sentence2 (a missing translation is written NS)"
    assert str(_error(read_pawsx, tmp_path / "p")) == msg
    assert str(_error(read_pawsx_pairs, tmp_path / "p")) == msg


def test_corpus_empty_text_and_nulls() -> None:
    rows = pd.DataFrame({"id": ["a", "b"], "lang": ["deu", "eng"], "text": ["x", "  "]})
    err = _error(Corpus, rows, source="mine.tsv")
    assert str(err) == "mine.tsv: empty or whitespace-only text in 1 row(s), first id 'b'"
    rows = pd.DataFrame({"id": ["a", "b"], "lang": ["deu", "eng"], "text": ["x", None]})
    err = _error(Corpus, rows, source="mine.tsv")
    assert str(err) == "mine.tsv: missing text (null) in 1 row(s), first at row 1 (0-based)"
    rows = pd.DataFrame({"id": ["a", "b"], "lang": [None, "eng"], "text": ["x", "y"]})
    assert "missing lang (null)" in str(_error(Corpus, rows))
    assert str(_error(Corpus, pd.DataFrame({"id": [], "lang": [], "text": []}), name="e")) == (
        "e: corpus is empty (no rows)"
    )
    assert "lack required column(s) ['text']" in str(
        _error(Corpus, pd.DataFrame({"id": ["a"], "lang": ["deu"]}))
    )


# ----------------------------------------------------------------------------- line counts


def test_tatoeba_line_counts_differ(tmp_path: Path) -> None:
    d = _tatoeba(tmp_path, "deu", "Eins\nZwei\n", "One\nTwo\nThree\n")
    err = _error(read_tatoeba, d)
    msg = str(err)
    assert msg.startswith(f"{d / 'tatoeba.deu-eng.deu'}: line counts differ: ")
    assert "tatoeba.deu-eng.deu has 2 lines but tatoeba.deu-eng.eng has 3" in msg


def test_tatoeba_missing_side_and_no_files(tmp_path: Path) -> None:
    d = tmp_path / "t"
    _write(d / "tatoeba.deu-eng.deu", "Eins\n")
    err = _error(read_tatoeba, d)
    assert str(err) == (
        f"{d / 'tatoeba.deu-eng.deu'}: missing the other side of pair deu-eng: tatoeba.deu-eng.eng"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no Tatoeba files" in str(_error(read_tatoeba, empty))
    f = _write(tmp_path / "file.txt", "x\n")
    assert str(_error(read_tatoeba, f)) == f"{f}: expected the Tatoeba folder, got a file"


def test_pawsx_hf_labels_differ_in_count(tmp_path: Path) -> None:
    root = tmp_path / "paws-x"
    _write(root / "xtreme" / "test-de.tsv", "A.\tB.\nC.\tD.\n")
    hf = _write(root / "hf" / "test-de.tsv", "id\tsentence1\tsentence2\tlabel\n1\tA.\tB.\t1\n")
    err = _error(read_pawsx, root, split="test")
    assert (
        str(err) == f"{hf}: test-de.tsv has 1 pairs but test-de.tsv has 2; expected the same pairs"
    )
    _write(hf, "id\tsentence1\tsentence2\tlabel\n1\tA.\tB.\t1\n2\tC.\tX.\t0\n")
    err = _error(read_pawsx, root, split="test")
    assert str(err) == (
        f"{hf}:3: text differs from test-de.tsv:2; expected the same pairs in the same order"
    )


# ----------------------------------------------------------------------------- groups


def test_table_group_with_two_rows_of_one_language(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "g.tsv",
        "group\tlang\ttext\ng1\tde\tHallo\ng1\ten\tHello\ng2\tde\tTschüss\ng1\tdeu\tServus\n",
    )
    err = _error(read_table, p)
    assert str(err) == (
        f"{p}:5: group 'g1' has a second row in language 'deu' (first at {p}:2); "
        "a group holds one translation per language"
    )
    assert err.line == 5


def test_corpus_group_with_two_rows_of_one_language() -> None:
    rows = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "lang": ["deu", "eng", "deu"],
            "text": ["x", "y", "z"],
            "group": ["g", "g", "g"],
        }
    )
    err = _error(Corpus, rows, source="src")
    assert str(err) == (
        "src: group 'g' has two rows in language 'deu' (a group holds one translation per language)"
    )


def test_duplicate_id(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "id,lang,text\n1,de,a\n2,de,b\n1,en,c\n")
    assert str(_error(read_table, p)) == f"{p}:4: duplicate row id '1' (first at {p}:2)"


def test_sib200_duplicate_and_disagreeing(tmp_path: Path) -> None:
    head = "index_id\tcategory\ttext\n"
    _write(tmp_path / "a" / "deu_Latn" / "test.tsv", head + "1\thealth\tA\n1\thealth\tB\n")
    f = tmp_path / "a" / "deu_Latn" / "test.tsv"
    assert str(_error(read_sib200, tmp_path / "a")) == (
        f"{f}:3: duplicate row id 'deu_Latn:test:1' (first at {f}:2)"
    )
    _write(tmp_path / "b" / "deu_Latn" / "test.tsv", head + "1\thealth\tA\n")
    g = _write(tmp_path / "b" / "fra_Latn" / "test.tsv", head + "1\tsports\tA\n")
    assert str(_error(read_sib200, tmp_path / "b")) == (
        f"{g}:2: category 'sports' of index_id 1 disagrees with 'health' at "
        f"{tmp_path / 'b' / 'deu_Latn' / 'test.tsv'}:2"
    )


# ----------------------------------------------------------------------------- encoding


def test_invalid_utf8_tatoeba(tmp_path: Path) -> None:
    d = _tatoeba(tmp_path, "deu", b"Eins\nZwei\nDr\xffei\n", "One\nTwo\nThree\n")
    err = _error(read_tatoeba, d)
    assert str(err).startswith(f"{d / 'tatoeba.deu-eng.deu'}:3: invalid UTF-8 (byte 0xff at")
    assert err.line == 3


@pytest.mark.parametrize("suffix", ["tsv", "csv", "jsonl"])
def test_invalid_utf8_tables(tmp_path: Path, suffix: str) -> None:
    body = {
        "tsv": b"text\tlang\nHallo\tde\nGr\xfc\xdfe\tde\n",
        "csv": b"text,lang\nHallo,de\nGr\xfc\xdfe,de\n",
        "jsonl": b'{"text": "Hallo", "lang": "de"}\n{"text": "Gr\xfc\xdfe", "lang": "de"}\n',
    }[suffix]
    p = _write(tmp_path / f"latin1.{suffix}", body)
    line = 3 if suffix != "jsonl" else 2
    msg = str(_error(read_table, p))
    assert msg.startswith(f"{p}:{line}: invalid UTF-8 (byte 0xfc at offset ")
    assert msg.endswith("expected UTF-8 text")


def test_invalid_utf8_sib200(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "s" / "deu_Latn" / "test.tsv", b"index_id\tcategory\ttext\n1\thealth\t\xc3\n"
    )
    assert str(_error(read_sib200, tmp_path / "s")).startswith(f"{f}:2: invalid UTF-8")


def test_bom_is_dropped(tmp_path: Path) -> None:
    p = _write(tmp_path / "bom.tsv", "\ufefftext\tlang\nHallo\tde\n")
    assert read_table(p).rows["text"].tolist() == ["Hallo"]


# ----------------------------------------------------------------------------- language codes


def test_unknown_language_in_table(tmp_path: Path) -> None:
    p = _write(tmp_path / "l.tsv", "text\tlang\nHallo\tde\nBlah\tqqq\n")
    err = _error(read_table, p)
    assert str(err) == (
        f"{p}:3: unknown language code 'qqq': 'qqq' is not an ISO 639 language code"
    )


def test_unknown_language_in_tatoeba_and_sib_names(tmp_path: Path) -> None:
    d = _tatoeba(tmp_path, "xqz", "Eins\n", "One\n")
    assert str(_error(read_tatoeba, d)).startswith(
        f"{d / 'tatoeba.xqz-eng.xqz'}: unknown language code 'xqz'"
    )
    _write(tmp_path / "sib" / "not_a_code" / "test.tsv", "index_id\tcategory\ttext\n1\th\tA\n")
    assert str(_error(read_sib200, tmp_path / "sib")).startswith(
        f"{tmp_path / 'sib' / 'not_a_code'}: unknown language code 'not_a_code'"
    )
    _write(tmp_path / "paws" / "dev-qq.tsv", "A.\tB.\t1\n")
    assert str(_error(read_pawsx, tmp_path / "paws")).startswith(
        f"{tmp_path / 'paws' / 'dev-qq.tsv'}: unknown language code 'qq'"
    )


def test_unknown_requested_language(tmp_path: Path) -> None:
    d = _tatoeba(tmp_path, "deu", "Eins\n", "One\n")
    assert str(_error(read_tatoeba, d, langs=["xx"])) == (
        f"{d}: in langs: unknown language code 'xx': 'xx' is not an ISO 639 language code"
    )
    p = _write(tmp_path / "l.tsv", "text\tlang\nHallo\tde\n")
    assert str(_error(load_corpus, f"tsv:{p}", langs=["qq"])).startswith(
        f"{p}: in langs: unknown language code 'qq'"
    )
    assert str(_error(read_tatoeba, d, langs=["fra"])) == (
        f"{d}: language(s) ['fra'] not found; available: deu"
    )
    assert "name the non-English languages" in str(_error(read_tatoeba, d, langs=["eng"]))


# ----------------------------------------------------------------------------- specs, paths


def test_unknown_data_kind_lists_kinds() -> None:
    msg = str(_error(load_corpus, "parquet:x.parquet"))
    assert msg.startswith("unknown --data kind 'parquet' in 'parquet:x.parquet'")
    for kind in DATA_KINDS:
        assert kind in msg


@pytest.mark.parametrize("kind", ["tatoeba", "sib200", "pawsx", "tsv", "csv", "jsonl"])
def test_missing_path(tmp_path: Path, kind: str) -> None:
    missing = tmp_path / "nowhere"
    err = _error(load_corpus, f"{kind}:{missing}")
    assert str(err) == f"{missing}: no such file or folder for --data '{kind}:{missing}'"


def test_missing_path_direct_readers(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert str(_error(read_table, missing)) == f"{missing}: no such file or folder"
    for fn, what in ((read_tatoeba, "Tatoeba"), (read_sib200, "SIB-200"), (read_pawsx, "PAWS-X")):
        assert str(_error(fn, missing)) == (
            f"{missing}: no such file or folder (expected the {what} folder)"
        )


# ----------------------------------------------------------------------------- columns


def test_missing_mapped_column_lists_available(tmp_path: Path) -> None:
    p = _write(tmp_path / "c.tsv", "sentence\tlanguage\nHallo\tde\n")
    err = _error(read_table, p, columns={"text": "txt", "lang": "language"})
    assert str(err) == f"{p}: no column 'txt' (for text); available columns: sentence, language"


def test_missing_default_columns_list_available(tmp_path: Path) -> None:
    p = _write(tmp_path / "c.csv", "sentence,language\nHallo,de\n")
    err = _error(read_table, p)
    assert str(err) == (
        f"{p}: no 'text' column; available columns: sentence, language "
        "(map one with columns={'text': NAME})"
    )
    err = _error(read_table, p, columns={"text": "sentence"})
    assert str(err) == (
        f"{p}: no 'lang' column; available columns: sentence, language "
        "(map one with columns={'lang': NAME} or pass lang=)"
    )


def test_missing_column_jsonl_names_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "c.jsonl", '{"sent": "a", "lang": "de"}\n{"lang": "de"}\n')
    err = _error(read_table, p, columns={"text": "sent"})
    assert str(err) == f"{p}:2: no column 'sent' (for text); available columns: lang"


def test_bad_columns_option(tmp_path: Path) -> None:
    p = _write(tmp_path / "c.tsv", "text\tlang\nHallo\tde\n")
    with pytest.raises(ConfigError, match="columns key 'sentence': allowed values are id, "):
        read_table(p, columns={"sentence": "text"})
    with pytest.raises(ConfigError, match="give either lang="):
        read_table(p, lang="de", columns={"lang": "lang"})


# ----------------------------------------------------------------------------- malformed rows


@pytest.mark.parametrize(
    ("line_text", "fragment"),
    [
        ('{"text": "b", lang: "de"}', "bad JSON: Expecting property name"),
        ('{"text": "b", "lang": "de"', "bad JSON: Expecting ',' delimiter"),
        ('["b", "de"]', "expected a JSON object per line, got list"),
    ],
)
def test_bad_json_line(tmp_path: Path, line_text: str, fragment: str) -> None:
    p = _write(tmp_path / "b.jsonl", '{"text": "a", "lang": "de"}\n\n' + line_text + "\n")
    err = _error(read_table, p)
    assert str(err).startswith(f"{p}:3: {fragment}")
    assert err.line == 3


def test_wrong_field_count(tmp_path: Path) -> None:
    p = _write(tmp_path / "f.tsv", "text\tlang\nHallo\tde\nA\tde\textra\n")
    assert str(_error(read_table, p)) == (
        f"{p}:3: 3 fields, expected 2 (as the header: text, lang)"
    )
    f = _write(tmp_path / "p" / "dev-de.tsv", "A.\tB.\t1\nC.\tD.\n")
    assert str(_error(read_pawsx, tmp_path / "p")) == f"{f}:2: 2 fields, expected 3"


def test_bad_quoting(tmp_path: Path) -> None:
    p = _write(tmp_path / "q.csv", 'text,lang\n"Hallo" Welt,de\n')
    assert str(_error(read_table, p)).startswith(f"{p}:2: malformed quoting: ")


def test_pawsx_bad_label(tmp_path: Path) -> None:
    f = _write(tmp_path / "p" / "dev-de.tsv", "A.\tB.\t1\nC.\tD.\tyes\n")
    assert str(_error(read_pawsx_pairs, tmp_path / "p")) == (f"{f}:2: label 'yes', expected 0 or 1")


def test_sib200_bad_header_and_empty_id(tmp_path: Path) -> None:
    f = _write(tmp_path / "a" / "deu_Latn" / "test.tsv", "id\tcategory\ttext\n1\th\tA\n")
    assert str(_error(read_sib200, tmp_path / "a")) == (
        f"{f}:1: header ['id', 'category', 'text'] lacks column(s) ['index_id']; "
        "expected index_id, category, text"
    )
    g = _write(tmp_path / "b" / "deu_Latn" / "test.tsv", "index_id\tcategory\ttext\n\th\tA\n")
    assert str(_error(read_sib200, tmp_path / "b")) == f"{g}:2: empty index_id"


def test_unknown_table_format(tmp_path: Path) -> None:
    p = _write(tmp_path / "x.txt", "text\tlang\nHallo\tde\n")
    assert "cannot tell the format from suffix '.txt'" in str(_error(read_table, p))
