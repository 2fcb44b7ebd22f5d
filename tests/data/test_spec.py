"""``--data`` specs: parsing, ``load_corpus`` filters, every kind on small or real files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from xalign.data import DATA_KINDS, load_corpus, parse_data_spec
from xalign.errors import DataError


def test_data_kinds() -> None:
    assert list(DATA_KINDS) == [
        "sample",
        "tatoeba",
        "sib200",
        "pawsx",
        "tsv",
        "csv",
        "jsonl",
        "hf",
        "wordalign",
    ]
    assert all(isinstance(v, str) and v for v in DATA_KINDS.values())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("tatoeba:../shared/data/tatoeba/v1", ("tatoeba", "../shared/data/tatoeba/v1")),
        ("sample", ("sample", "")),
        ("  sample  ", ("sample", "")),
        ("TSV:my file.tsv", ("tsv", "my file.tsv")),
        ("sib-200:/d/sib", ("sib200", "/d/sib")),
        ("paws-x:x", ("pawsx", "x")),
        ("ndjson:a.jsonl", ("jsonl", "a.jsonl")),
        ("csv: a.csv ", ("csv", "a.csv")),
        ("hf:Davlan/sib200:eng_Latn", ("hf", "Davlan/sib200:eng_Latn")),
        ("tsv:C:/data/x.tsv", ("tsv", "C:/data/x.tsv")),
    ],
)
def test_parse_data_spec(spec: str, expected: tuple[str, str]) -> None:
    assert parse_data_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("xml:foo.xml", "unknown --data kind 'xml' in 'xml:foo.xml'; kinds: "),
        ("data/x.tsv", "(a spec is KIND:PATH, e.g. tsv:my.tsv); kinds: "),
        ("", "empty --data spec; expected KIND:PATH with KIND one of "),
    ],
)
def test_parse_data_spec_unknown_kind_lists_kinds(spec: str, fragment: str) -> None:
    with pytest.raises(DataError) as info:
        parse_data_spec(spec)
    msg = str(info.value)
    assert fragment in msg
    assert msg.endswith(", ".join(DATA_KINDS))


def test_parse_data_spec_path_rules() -> None:
    with pytest.raises(DataError, match=r"--data tsv needs a path: tsv:PATH \(TSV file"):
        parse_data_spec("tsv:")
    with pytest.raises(DataError, match="--data sample takes no path, got 'sample:x'"):
        parse_data_spec("sample:x")


# ----------------------------------------------------------------------------- load_corpus


@pytest.fixture
def parallel_tsv(tmp_path: Path) -> Path:
    p = tmp_path / "par.tsv"
    lines = ["group\tlang\ttext\tlabel\tsplit"]
    texts = {
        "de": ["Eins", "Zwei", "Drei", "Vier"],
        "en": ["One", "Two", "Three", "Four"],
        "zh-TW": ["一", "二", "三", "四"],
        "zh-CN": ["壹", "贰", "叁", "肆"],
    }
    for i in range(4):
        for lang, words in texts.items():
            lines.append(f"g{i}\t{lang}\t{words[i]}\t{'odd' if i % 2 else 'even'}\t{'ab'[i // 2]}")
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_load_corpus_tsv_all(parallel_tsv: Path) -> None:
    spec = f"tsv:{parallel_tsv}"
    c = load_corpus(spec)
    assert len(c) == 16
    assert c.source == spec
    assert c.name == "par"
    assert c.languages == ["deu", "eng", "cmn_Hant", "cmn_Hans"]
    assert c.is_parallel
    assert c.rows["id"].tolist()[:3] == ["de:0", "en:1", "zh-TW:2"]


def test_load_corpus_tsv_langs_and_limit(parallel_tsv: Path) -> None:
    spec = f"tsv:{parallel_tsv}"
    c = load_corpus(spec, langs=["deu", "en"], limit_per_lang=2)
    assert c.rows[["lang", "text"]].values.tolist() == [
        ["deu", "Eins"],
        ["eng", "One"],
        ["deu", "Zwei"],
        ["eng", "Two"],
    ]
    # a code without script selects both Chinese scripts; a region implying one selects it
    assert load_corpus(spec, langs=["zh"]).languages == ["cmn_Hant", "cmn_Hans"]
    assert load_corpus(spec, langs=["cmn"]).languages == ["cmn_Hant", "cmn_Hans"]
    assert load_corpus(spec, langs=["zh-TW"]).languages == ["cmn_Hant"]
    assert load_corpus(spec, langs=["cmn_Hans"]).languages == ["cmn_Hans"]
    assert load_corpus(spec, langs="de").languages == ["deu"]
    with pytest.raises(DataError, match=r"language\(s\) \['fra'\] not found; available: "):
        load_corpus(spec, langs=["fra"])


def test_load_corpus_tsv_split_and_columns(parallel_tsv: Path) -> None:
    spec = f"tsv:{parallel_tsv}"
    c = load_corpus(spec, split="b", langs=["en"])
    assert c.rows["text"].tolist() == ["Three", "Four"]
    assert c.rows["label"].tolist() == ["even", "odd"]
    assert len(load_corpus(spec, split="all")) == 16
    with pytest.raises(DataError, match=r"no rows in split\(s\) \['c'\]; available: \['a', 'b'\]"):
        load_corpus(spec, split="c")
    c = load_corpus(spec, columns={"label": "split", "split": "label"}, split="odd")
    assert set(c.rows["label"]) == {"a", "b"}
    assert len(c) == 8


def test_load_corpus_csv_and_jsonl(tmp_path: Path) -> None:
    csvp = tmp_path / "x.data"
    csvp.write_text("sent,code\nHallo,de\nHello,en\n", encoding="utf-8")
    c = load_corpus(f"csv:{csvp}", columns={"text": "sent", "lang": "code"}, langs=["eng"])
    assert c.rows["text"].tolist() == ["Hello"]
    j = tmp_path / "x.jsonl"
    j.write_text('{"text": "Hallo", "lang": "de"}\n{"text": "Hello", "lang": "en"}\n')
    assert load_corpus(f"jsonl:{j}").languages == ["deu", "eng"]


def test_load_corpus_bad_options(parallel_tsv: Path, tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"limit_per_lang \(--limit-per-lang\) must be an integer >= 1, got 0"
    ):
        load_corpus(f"tsv:{parallel_tsv}", limit_per_lang=0)
    with pytest.raises(DataError, match="columns= applies to tsv, csv, jsonl and hf data"):
        load_corpus(f"tatoeba:{tmp_path}", columns={"text": "x"})
    missing = tmp_path / "nope.tsv"
    with pytest.raises(DataError) as info:
        load_corpus(f"tsv:{missing}")
    assert str(info.value) == f"{missing}: no such file or folder for --data 'tsv:{missing}'"


def test_load_corpus_hf_without_hub() -> None:
    # Tests run offline: without `datasets` the extra is named; with it, loading fails cleanly.
    if importlib.util.find_spec("datasets") is None:
        with pytest.raises(ImportError, match=r"pip install 'xalign\[hf\]'"):
            load_corpus("hf:surely/not-a-dataset-xalign")
    else:
        with pytest.raises(DataError, match="hf:surely/not-a-dataset-xalign"):
            load_corpus("hf:surely/not-a-dataset-xalign")


# ----------------------------------------------------------------------------- real data


def test_load_corpus_tatoeba_limit_keeps_pairs(shared) -> None:
    folder = shared("tatoeba/v1")
    c = load_corpus(f"tatoeba:{folder}", langs=["de", "zh"], limit_per_lang=5)
    assert c.meta["pairs"] == {"cmn": 5, "deu": 5}
    assert len(c) == 20
    assert c.languages == ["cmn_Hani", "eng", "deu"]
    assert (c.rows.groupby("group").size() == 2).all()
    first = (folder / "tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()[:5]
    assert c.rows.loc[c.rows["lang"] == "deu", "text"].tolist() == first


def test_load_corpus_sib200_default_split_is_test(shared) -> None:
    folder = shared("sib-200")
    c = load_corpus(f"sib200:{folder}", langs=["zho_Hans", "deu", "zh-TW"])
    assert c.languages == ["deu", "cmn_Hans", "cmn_Hant"]
    assert set(c.rows["split"]) == {"test"}
    assert len(c) == 3 * 204
    c = load_corpus(f"sib-200:{folder}", langs=["eng"], split="all", limit_per_lang=800)
    # files are read train, dev, test: the first 800 rows are all of train and dev
    assert c.rows.groupby("split").size().to_dict() == {"dev": 99, "train": 701}
    assert len(c) == 800


def test_load_corpus_pawsx_default_split_is_dev(shared) -> None:
    folder = shared("paws-x")
    c = load_corpus(f"pawsx:{folder}", langs=["de"])
    assert set(c.rows["split"]) == {"dev"}
    assert len(c) == 2 * (2000 - 68)
    assert c.meta["dropped_ns"] == {"dev-de": 68}
