"""Readers on small synthetic files and on the real datasets in ../shared/data."""

from __future__ import annotations

import csv
import json
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from xalign.data import (
    Corpus,
    normalize_lang,
    read_pawsx,
    read_pawsx_pairs,
    read_sib200,
    read_table,
    read_tatoeba,
)
from xalign.errors import ConfigError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    return path


def _csv_file(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


# ============================================================================ Tatoeba


@pytest.fixture
def tatoeba_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tatoeba"
    _write(d / "tatoeba.deu-eng.deu", "Hallo Welt.\nGuten Morgen.\nDanke.\n")
    _write(d / "tatoeba.deu-eng.eng", "Hello world.\nGood morning.\nThank you.\n")
    # no trailing newline, CRLF endings, and an English sentence shared with the deu pair
    _write(d / "tatoeba.cmn-eng.cmn", "你好世界。\r\n謝謝。")
    _write(d / "tatoeba.cmn-eng.eng", "Hello world.\r\nThank you.")
    _write(d / "README", "not a data file\n")
    return d


def test_tatoeba_synthetic(tatoeba_dir: Path) -> None:
    c = read_tatoeba(tatoeba_dir)
    assert c.name == "tatoeba"
    assert c.meta["pairs"] == {"cmn": 2, "deu": 3}
    assert len(c) == 2 * (2 + 3)
    assert c.languages == ["cmn_Hani", "eng", "deu"]
    r = c.rows.set_index("id")
    assert r.loc["deu:1", "text"] == "Guten Morgen."
    assert r.loc["eng@deu:1", "text"] == "Good morning."
    assert r.loc["cmn:0", "text"] == "你好世界。"  # "\r" stripped
    assert r.loc["eng@cmn:1", "text"] == "Thank you."
    assert r.loc["cmn:0", "lang_raw"] == "cmn"
    assert r.loc["eng@cmn:0", "lang"] == "eng"
    assert (r["split"] == "test").all()
    assert r["label"].isna().all()
    assert r.loc["deu:2", "group"] == r.loc["eng@deu:2", "group"] == "deu:2"
    # the same English text in two pairs is two rows in two groups
    same = r[r["text"] == "Hello world."]
    assert list(same.index) == ["eng@cmn:0", "eng@deu:0"]
    assert same["group"].nunique() == 2
    assert c.is_parallel


def test_tatoeba_synthetic_options(tatoeba_dir: Path) -> None:
    c = read_tatoeba(tatoeba_dir, langs=["de"], limit=2)
    assert list(c.rows["id"]) == ["deu:0", "deu:1", "eng@deu:0", "eng@deu:1"]
    c = read_tatoeba(tatoeba_dir, langs=["cmn_Hani", "eng"], include_english=False)
    assert list(c.rows["id"]) == ["cmn:0", "cmn:1"]
    assert not c.is_parallel
    # a code without a script selects the language in every script
    assert read_tatoeba(tatoeba_dir, langs="zh").languages == ["cmn_Hani", "eng"]
    assert read_tatoeba(tatoeba_dir, limit=10).meta["pairs"] == {"cmn": 2, "deu": 3}
    with pytest.raises(ConfigError, match=r"limit 0: must be >= 1 \(pairs per language"):
        read_tatoeba(tatoeba_dir, limit=0)


@pytest.fixture(scope="module")
def tatoeba_real(shared) -> tuple[Path, Corpus]:
    folder = shared("tatoeba/v1")
    return folder, read_tatoeba(folder)


def test_tatoeba_real_counts(tatoeba_real: tuple[Path, Corpus]) -> None:
    folder, c = tatoeba_real
    pairs = c.meta["pairs"]
    assert len(pairs) == 112
    assert sum(pairs.values()) == 88877  # README
    assert len(c) == 2 * 88877
    counts = c.rows.groupby("lang_raw").size()
    for xxx in ("deu", "amh", "tzl", "cmn", "kzj", "arq", "srp"):
        for side in (xxx, "eng"):
            n_lines = (folder / f"tatoeba.{xxx}-eng.{side}").read_bytes().count(b"\n")
            assert pairs[xxx] == n_lines, (xxx, side)
        assert counts[xxx] == pairs[xxx]
    # README table
    assert (pairs["amh"], pairs["tzl"], pairs["arq"], pairs["deu"]) == (168, 104, 911, 1000)
    assert counts["eng"] == 88877


def test_tatoeba_real_text_matches_file(tatoeba_real: tuple[Path, Corpus]) -> None:
    folder, c = tatoeba_real
    r = c.rows.set_index("id")
    for xxx in ("deu", "jpn", "yue"):
        lines_x = (folder / f"tatoeba.{xxx}-eng.{xxx}").read_text(encoding="utf-8").splitlines()
        lines_e = (folder / f"tatoeba.{xxx}-eng.eng").read_text(encoding="utf-8").splitlines()
        for i in (0, len(lines_x) // 2, len(lines_x) - 1):
            assert r.loc[f"{xxx}:{i}", "text"] == lines_x[i]
            assert r.loc[f"eng@{xxx}:{i}", "text"] == lines_e[i]


def test_tatoeba_real_groups(tatoeba_real: tuple[Path, Corpus]) -> None:
    _, c = tatoeba_real
    rows = c.rows
    g = rows.groupby("group")
    assert (g.size() == 2).all()
    assert g.ngroups == 88877
    # each group: one row of its language, one English row, same pair index
    eng = rows[rows["lang"] == "eng"].set_index("group")
    other = rows[rows["lang"] != "eng"].set_index("group")
    assert len(eng) == len(other) == 88877
    assert sorted(eng.index) == sorted(other.index)
    assert (("eng@" + other["id"]).reindex(eng.index) == eng["id"]).all()
    # English ids are distinct per pair even where English texts repeat across pairs
    assert eng["id"].is_unique
    assert eng["text"].duplicated().sum() > 0
    by_lang = rows.groupby("lang")["lang_raw"].unique()
    assert by_lang["cmn_Hani"].tolist() == ["cmn"]
    assert by_lang["yue_Hant"].tolist() == ["yue"]
    assert set(rows["split"]) == {"test"}


# ============================================================================ SIB-200

SIB_HEADER = "index_id\tcategory\ttext\n"


@pytest.fixture
def sib_dir(tmp_path: Path) -> Path:
    root = tmp_path / "sib-200"
    ann = root / "annotated"
    _write(
        ann / "deu_Latn" / "test.tsv",
        SIB_HEADER + '7\thealth\t"""Gut"", sagte er."\n3\tsports\tTor!\n',
    )
    _write(ann / "deu_Latn" / "dev.tsv", SIB_HEADER + "5\ttravel\tReise.\n")
    _write(ann / "zho_Hans" / "test.tsv", SIB_HEADER + "3\tsports\t进球！\n7\thealth\t他说好。\n")
    _write(ann / "zho_Hans" / "dev.tsv", SIB_HEADER + "5\ttravel\t旅行。\n")
    _write(ann / "deu_Latn" / "labels.txt", "health\nsports\ntravel\n")
    return root


def test_sib200_synthetic(sib_dir: Path) -> None:
    c = read_sib200(sib_dir)
    assert c.name == "sib200"
    assert len(c) == 4
    r = c.rows.set_index("id")
    assert r.loc["deu_Latn:test:7", "text"] == '"Gut", sagte er.'  # CSV quoting undone
    assert r.loc["deu_Latn:test:7", "label"] == "health"
    assert r.loc["deu_Latn:test:7", "group"] == r.loc["zho_Hans:test:7", "group"] == "test:7"
    assert r.loc["zho_Hans:test:3", "lang"] == "cmn_Hans"
    assert r.loc["zho_Hans:test:3", "lang_raw"] == "zho_Hans"
    assert r.loc["deu_Latn:test:3", "lang"] == "deu"
    assert set(r["split"]) == {"test"}
    assert c.is_parallel
    # the annotated/ folder itself works too; langs by normalised or raw code; all splits
    c2 = read_sib200(sib_dir / "annotated", langs=["zh"], split=None)
    assert sorted(c2.rows["id"]) == ["zho_Hans:dev:5", "zho_Hans:test:3", "zho_Hans:test:7"]
    assert read_sib200(sib_dir, langs=["deu_Latn"], split="dev").rows["text"].tolist() == ["Reise."]
    with pytest.raises(
        ConfigError, match="SIB-200 split 'validation': allowed values are train, dev, test"
    ):
        read_sib200(sib_dir, split="validation")  # type: ignore[arg-type]


SIB_TEST_LABELS = {
    "science/technology": 51,
    "travel": 40,
    "politics": 30,
    "sports": 25,
    "health": 22,
    "entertainment": 19,
    "geography": 17,
}


@pytest.fixture(scope="module")
def sib_real(shared) -> tuple[Path, Corpus]:
    folder = shared("sib-200")
    return folder, read_sib200(folder, split="test")


def test_sib200_real_test_split(sib_real: tuple[Path, Corpus]) -> None:
    _, c = sib_real
    rows = c.rows
    assert c.rows["lang_raw"].nunique() == 205
    assert len(c.languages) == 205
    per_lang = rows.groupby("lang_raw").size()
    assert (per_lang == 204).all()  # README: test 204 sentences per language
    assert len(c) == 205 * 204
    groups = rows.groupby("lang_raw")["group"].apply(frozenset)
    assert groups.nunique() == 1, "groups differ across languages"
    assert len(groups.iloc[0]) == 204
    assert (rows.groupby("group")["lang"].nunique() == 205).all()
    # one label per group, same in every language
    assert (rows.groupby("group")["label"].nunique() == 1).all()
    for raw in ("eng_Latn", "zho_Hant", "nqo_Nkoo"):
        counts = Counter(rows.loc[rows["lang_raw"] == raw, "label"])
        assert counts == SIB_TEST_LABELS, raw
    assert set(rows["split"]) == {"test"}


def test_sib200_real_labels_equal_category(sib_real: tuple[Path, Corpus]) -> None:
    folder, c = sib_real
    r = c.rows.set_index("id")
    for raw in ("deu_Latn", "zho_Hans", "arb_Arab", "srp_Cyrl"):
        recs = _csv_file(folder / "annotated" / raw / "test.tsv")
        assert recs[0] == ["index_id", "category", "text"]
        assert len(recs) - 1 == 204
        for idx, cat, text in recs[1:]:
            row = r.loc[f"{raw}:test:{idx}"]
            assert (row["label"], row["text"], row["group"]) == (cat, text, f"test:{idx}")
        assert r.loc[f"{raw}:test:{recs[1][0]}", "lang"] == normalize_lang(raw)


def test_sib200_real_all_splits_one_language(shared) -> None:
    c = read_sib200(shared("sib-200"), langs=["deu"], split=None)
    assert c.rows.groupby("split").size().to_dict() == {"dev": 99, "test": 204, "train": 701}
    assert c.languages == ["deu"]


# ============================================================================ PAWS-X


@pytest.fixture
def paws_dir(tmp_path: Path) -> Path:
    root = tmp_path / "paws-x"
    x = root / "xtreme"
    _write(x / "dev-en.tsv", "A b .\tB a .\t1\nC d .\tD c .\t0\nE f .\tF e .\t1\n")
    _write(x / "dev-de.tsv", 'A b.\t"""B"" a."\t1\nNS\tD c.\t0\nE f.\tF e.\t1\n')
    _write(x / "test-en.tsv", "G h .\tH g .\nI j .\tJ i .\n")
    _write(x / "test-de.tsv", "G h.\tH g.\nI j.\tNS\n")
    _write(
        root / "hf" / "test-de.tsv",
        "id\tsentence1\tsentence2\tlabel\n1\tG h.\tH g.\t1\n2\tI j.\tNS\t0\n",
    )
    return root


def test_pawsx_synthetic_dev(paws_dir: Path) -> None:
    c = read_pawsx(paws_dir)
    assert c.meta["dropped_ns"] == {"dev-de": 1, "dev-en": 0}
    assert c.meta["parallel"] == {"dev": True}
    assert len(c) == 2 * (3 + 2)
    r = c.rows.set_index("id")
    assert "de:dev:1:s1" not in r.index  # the NS pair is dropped, both sides
    assert r.loc["de:dev:0:s2", "text"] == '"B" a.'
    assert r.loc["de:dev:0:s2", "group"] == r.loc["en:dev:0:s2", "group"] == "dev:0:s2"
    assert r.loc["de:dev:2:s1", "label"] == "1"
    assert r.loc["en:dev:1:s1", "label"] == "0"
    assert r.loc["de:dev:0:s1", "lang"] == "deu"
    assert r.loc["de:dev:0:s1", "lang_raw"] == "de"


def test_pawsx_split_that_is_not_row_parallel_loads_without_groups_and_says_why(
    paws_dir: Path,
) -> None:
    x = paws_dir / "xtreme"
    (x / "dev-de.tsv").write_text("A b.\tB a.\t1\nC d.\tD c.\t0\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"PAWS-X dev files are not row-parallel \(pairs per "
                      r"file: de 2, en 3\)"):  # fmt: skip
        c = read_pawsx(paws_dir)
    assert c.meta["parallel"] == {"dev": False} and c.rows["group"].isna().all()
    # same length, but row 0's label differs: still not the same English pairs
    (x / "dev-de.tsv").write_text("A b.\tB a.\t0\nC d.\tD c.\t0\nE f.\tF e.\t1\n")
    with pytest.warns(UserWarning, match="labels disagree on the same row"):
        read_pawsx(paws_dir)
    with warnings.catch_warnings():  # one language: nothing to be parallel with, no warning
        warnings.simplefilter("error")
        assert read_pawsx(paws_dir, langs=["de"]).meta["parallel"] == {"dev": True}


def test_pawsx_synthetic_test_takes_hf_labels(paws_dir: Path) -> None:
    c = read_pawsx(paws_dir, split="test")
    r = c.rows.set_index("id")
    assert r.loc["de:test:0:s1", "label"] == "1"
    assert r.loc["en:test:0:s1", "label"] is None
    assert "de:test:1:s1" not in r.index
    assert c.meta["dropped_ns"] == {"test-de": 1, "test-en": 0}


def test_pawsx_pairs_synthetic(paws_dir: Path) -> None:
    df = read_pawsx_pairs(paws_dir, split=None)
    assert list(df.columns) == [
        "lang",
        "lang_raw",
        "split",
        "pair",
        "sentence1",
        "sentence2",
        "label",
    ]
    assert str(df["label"].dtype) == "Int64"
    de_dev = df[(df["lang_raw"] == "de") & (df["split"] == "dev")]
    assert de_dev["pair"].tolist() == [0, 2]
    assert de_dev["label"].tolist() == [1, 1]
    assert de_dev["sentence2"].tolist() == ['"B" a.', "F e."]
    en_test = df[(df["lang_raw"] == "en") & (df["split"] == "test")]
    assert en_test["label"].isna().all() and len(en_test) == 2
    assert df.attrs["dropped_ns"] == {"dev-de": 1, "dev-en": 0, "test-de": 1, "test-en": 0}


def _raw_ns(path: Path) -> tuple[int, int]:
    """(rows, rows where a sentence is NS) of a headerless XTREME file."""
    recs = _csv_file(path)
    return len(recs), sum("NS" in (r[0], r[1]) for r in recs)


PAWS_LANGS = ("de", "en", "es", "fr", "ja", "ko", "zh")


@pytest.mark.parametrize("split", ["dev", "test"])
def test_pawsx_real_ns_dropped(split: str, shared) -> None:
    folder = shared("paws-x")
    c = read_pawsx(folder, split=split)  # type: ignore[arg-type]
    sizes = c.rows.groupby("lang_raw").size()
    expected_dropped = {}
    for lang in PAWS_LANGS:
        n, ns = _raw_ns(folder / "xtreme" / f"{split}-{lang}.tsv")
        assert n == 2000
        expected_dropped[f"{split}-{lang}"] = ns
        assert sizes[lang] == 2 * (n - ns), lang
    assert c.meta["dropped_ns"] == expected_dropped
    assert expected_dropped[f"{split}-de"] == {"dev": 68, "test": 32}[split]  # README
    assert not (c.rows["text"] == "NS").any()
    assert c.meta["parallel"] == {split: True}
    # row i of every language is the same pair: a group has at most one row per language
    assert (c.rows.groupby("group").size() <= 7).all()
    assert c.rows.groupby("group")["label"].nunique().max() <= 1


def test_pawsx_real_pairs(shared) -> None:
    folder = shared("paws-x")
    df = read_pawsx_pairs(folder, split=None)
    assert list(df.columns) == [
        "lang",
        "lang_raw",
        "split",
        "pair",
        "sentence1",
        "sentence2",
        "label",
    ]
    n = df.groupby(["split", "lang_raw"]).size()
    # README: 1968 de / 1975 zh labelled test pairs after dropping NS
    assert (n[("test", "de")], n[("test", "zh")]) == (1968, 1975)
    assert n[("dev", "de")] == 2000 - 68
    dev = df[df["split"] == "dev"]
    assert set(dev["label"].dropna().tolist()) == {0, 1}
    assert dev["label"].notna().all()
    test = df[df["split"] == "test"]
    labelled = set(test.loc[test["label"].notna(), "lang_raw"])
    assert labelled == {"de", "zh"}  # from hf/test-{de,zh}.tsv
    # labels and texts agree with the raw file, row by row
    raw = _csv_file(folder / "xtreme" / "dev-fr.tsv")
    fr = dev[dev["lang_raw"] == "fr"]
    for pair, s1, s2, lab in fr[["pair", "sentence1", "sentence2", "label"]].itertuples(
        index=False
    ):
        assert raw[pair] == [s1, s2, str(lab)]
    kept = [i for i, r in enumerate(raw) if "NS" not in r[:2]]
    assert fr["pair"].tolist() == kept
    hf = _csv_file(folder / "hf" / "test-zh.tsv")[1:]
    zh = test[test["lang_raw"] == "zh"].set_index("pair")
    for i in (0, 999, 1999):
        if i in zh.index:
            assert zh.loc[i, "label"] == int(hf[i][3])
    assert (df.loc[df["lang_raw"] == "zh", "lang"] == "cmn_Hans").all()


# ============================================================================ tables


def test_table_tsv_column_mapping(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "m.tsv",
        "key\tsentence\tlanguage\tpara\ttopic\tpart\n"
        "a1\tHallo Welt\tde\tg1\tgreet\tdev\n"
        'a2\t"Hello ""world"""\ten\tg1\tgreet\tdev\n'
        "a3\tBonjour\tfr-CA\tg2\t\ttest\n",
    )
    c = read_table(
        p,
        columns={
            "id": "key",
            "text": "sentence",
            "lang": "language",
            "group": "para",
            "label": "topic",
            "split": "part",
        },
    )
    assert c.name == "m"
    assert c.rows["id"].tolist() == ["a1", "a2", "a3"]
    assert c.rows["text"].tolist() == ["Hallo Welt", 'Hello "world"', "Bonjour"]
    assert c.rows["lang"].tolist() == ["deu", "eng", "fra"]
    assert c.rows["lang_raw"].tolist() == ["de", "en", "fr-CA"]
    assert c.rows["group"].tolist() == ["g1", "g1", "g2"]
    assert c.rows["label"].tolist() == ["greet", "greet", ""]
    assert c.rows["split"].tolist() == ["dev", "dev", "test"]
    assert c.is_parallel


def test_table_default_names_tsv_csv_jsonl(tmp_path: Path) -> None:
    recs = [
        {"text": "Hallo", "lang": "de", "group": "1"},
        {"text": "Hi, there", "lang": "en", "group": "1"},
        {"text": "你好", "lang": "zh", "group": "1"},
    ]
    tsv = _write(
        tmp_path / "d.tsv",
        "text\tlang\tgroup\n" + "".join(f"{r['text']}\t{r['lang']}\t1\n" for r in recs),
    )
    csvp = _write(
        tmp_path / "d.csv",
        "text,lang,group\n" + "".join(f'"{r["text"]}",{r["lang"]},1\n' for r in recs),
    )
    jsonl = _write(
        tmp_path / "d.jsonl",
        "".join(json.dumps({**r, "group": 1}, ensure_ascii=False) + "\n" for r in recs),
    )
    expected = pd.DataFrame(
        {
            "id": ["de:0", "en:1", "zh:2"],
            "lang": ["deu", "eng", "cmn_Hans"],
            "lang_raw": ["de", "en", "zh"],
            "text": ["Hallo", "Hi, there", "你好"],
            "group": ["1", "1", "1"],
        }
    )
    fingerprints = set()
    for p in (tsv, csvp, jsonl):
        c = read_table(p)
        got = c.rows[list(expected.columns)].astype(object)
        assert got.to_dict("records") == expected.astype(object).to_dict("records"), p.name
        assert c.rows["label"].isna().all() and c.rows["split"].isna().all()
        fingerprints.add(c.fingerprint())
    assert len(fingerprints) == 1  # same rows from three formats


def test_table_one_language_and_explicit_format(tmp_path: Path) -> None:
    p = _write(tmp_path / "mono.txt", "sentence\nEins\nZwei\n")
    c = read_table(p, format="tsv", lang="deu_Latn", columns={"text": "sentence"}, name="mono")
    assert c.name == "mono"
    assert c.rows["id"].tolist() == ["deu_Latn:0", "deu_Latn:1"]
    assert c.rows["lang"].tolist() == ["deu", "deu"]
    assert c.rows["lang_raw"].tolist() == ["deu_Latn", "deu_Latn"]
    j = _write(
        tmp_path / "x.jsonl",
        '{"id": 5, "text": "a", "lang": "de"}\n\n{"id": 6.0, "text": "b", "lang": "de"}\n',
    )
    assert read_table(j).rows["id"].tolist() == ["5", "6"]
