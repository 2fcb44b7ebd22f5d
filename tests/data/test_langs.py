"""Language codes: normalisation rules, names, scripts; every code of the real datasets."""

from __future__ import annotations

import re

import pytest

from xalign.data import (
    TATOEBA_SCRIPTS,
    language_name,
    normalize_lang,
    script_of,
    split_lang,
)
from xalign.errors import DataError


def _tatoeba_codes(shared) -> list[str]:
    folder = shared("tatoeba/v1")
    pat = re.compile(r"^tatoeba\.([a-z]{3})-eng\.\1$")
    return sorted(m.group(1) for f in folder.iterdir() if (m := pat.match(f.name)))


def _sib_codes(shared) -> list[str]:
    folder = shared("sib-200/annotated")
    return sorted(d.name for d in folder.iterdir() if (d / "test.tsv").is_file())


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # rule 1: ISO 639-1 and 639-2/B become ISO 639-3; case and separators do not matter
        ("de", "deu"),
        ("deu", "deu"),
        ("ger", "deu"),
        ("DE", "deu"),
        ("de-DE", "deu"),
        ("de_AT", "deu"),
        ("fre", "fra"),
        ("dut", "nld"),
        ("iw", "heb"),
        ("nb", "nob"),
        ("en-US", "eng"),
        # retired / merged three-letter codes stay as given (two sets never merge)
        ("kzj", "kzj"),
        ("dtp", "dtp"),
        ("tgl", "tgl"),
        ("tl", "tgl"),
        ("swh", "swh"),
        ("sw", "swa"),
        # rule 2: Chinese always carries a script
        ("zh", "cmn_Hans"),
        ("zho", "cmn_Hans"),
        ("chi", "cmn_Hans"),
        ("cmn", "cmn_Hans"),
        ("zh-CN", "cmn_Hans"),
        ("zh-SG", "cmn_Hans"),
        ("zh-TW", "cmn_Hant"),
        ("zh-tw", "cmn_Hant"),
        ("zh_HK", "cmn_Hant"),
        ("zh-Hant", "cmn_Hant"),
        ("zh-Hans-TW", "cmn_Hans"),
        ("zho_Hans", "cmn_Hans"),
        ("zho_Hant", "cmn_Hant"),
        ("yue", "yue_Hant"),
        ("yue_Hans", "yue_Hans"),
        ("wuu", "wuu_Hans"),
        # rule 3: multi-script languages keep the given script, invent none
        ("srp_Cyrl", "srp_Cyrl"),
        ("srp_Latn", "srp_Latn"),
        ("sr-Latn", "srp_Latn"),
        ("srp", "srp"),
        ("pan_Guru", "pan_Guru"),
        ("kas_Deva", "kas_Deva"),
        ("uzn_Latn", "uzn_Latn"),
        # rule 4: the usual script is dropped, an unusual one kept
        ("deu_Latn", "deu"),
        ("deu-latn", "deu"),
        ("arb_Arab", "arb"),
        ("arb_Latn", "arb_Latn"),
        ("jpn_Jpan", "jpn"),
        ("kor_Hang", "kor"),
        ("rus_Cyrl", "rus"),
        ("rus_Latn", "rus_Latn"),
        ("ace_Arab", "ace_Arab"),
        # rule 5: a region is otherwise dropped
        ("pt-BR", "por"),
        ("es-419", "spa"),
    ],
)
def test_normalize_lang_mappings(code: str, expected: str) -> None:
    assert normalize_lang(code) == expected
    # normalising is idempotent
    assert normalize_lang(expected) == expected


def test_normalize_lang_with_stated_script() -> None:
    assert normalize_lang("cmn", script="Hani") == "cmn_Hani"
    assert normalize_lang("zh-TW", script="Hans") == "cmn_Hans"
    assert normalize_lang("deu", script="Latn") == "deu"
    assert normalize_lang("srp", script="latn") == "srp_Latn"
    with pytest.raises(DataError, match=r"'cmn_Hant' names script 'Hant' but 'Hans' was given"):
        normalize_lang("cmn_Hant", script="Hans")
    with pytest.raises(DataError, match=r"unknown ISO 15924 script 'Qwer1'"):
        normalize_lang("deu", script="Qwer1")


def test_split_lang() -> None:
    assert split_lang("zho_Hant") == ("cmn", "Hant")
    assert split_lang("deu_Latn") == ("deu", None)
    assert split_lang("srp_Cyrl") == ("srp", "Cyrl")
    assert split_lang("de") == ("deu", None)


@pytest.mark.parametrize(
    "code",
    ["xx", "zz", "qqq", "zzz", "xyz", "und", "mul", "zxx", "abcd", "", "123", "de-Xxxx", "x-foo"],
)
def test_unknown_code_is_data_error_naming_it(code: str) -> None:
    with pytest.raises(DataError) as info:
        normalize_lang(code, source="my/file.tsv")
    msg = str(info.value)
    assert f"unknown language code {code!r}" in msg
    assert msg.startswith("my/file.tsv: ")
    assert info.value.path == "my/file.tsv"


def test_non_string_code_is_data_error() -> None:
    with pytest.raises(DataError, match="language code must be a string, got 7"):
        normalize_lang(7)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("cmn_Hans", "Mandarin Chinese (Simplified)"),
        ("zh-TW", "Mandarin Chinese (Traditional)"),
        ("de", "German"),
        ("srp_Cyrl", "Serbian (Cyrillic)"),
        ("yue", "Cantonese (Traditional)"),
        ("kzj", "Coastal Kadazan"),
        ("arb_Arab", "Standard Arabic"),
        ("fre", "French"),
    ],
)
def test_language_name(code: str, name: str) -> None:
    assert language_name(code) == name


def test_language_name_of_unknown_code() -> None:
    with pytest.raises(DataError, match="unknown language code 'qqq'"):
        language_name("qqq")


@pytest.mark.parametrize(
    ("code", "script"),
    [
        ("cmn_Hant", "Hant"),
        ("zh", "Hans"),
        ("deu", "Latn"),
        ("rus", "Cyrl"),
        ("arb_Latn", "Latn"),
        ("arb", "Arab"),
        ("jpn", "Jpan"),
        ("kor_Hang", "Kore"),
        ("hin", "Deva"),
        ("srp", "Cyrl"),
        ("srp_Latn", "Latn"),
        ("tlh", None),
    ],
)
def test_script_of(code: str, script: str | None) -> None:
    assert script_of(code) == script


# ----------------------------------------------------------------------------- real codes


def test_all_tatoeba_codes_normalise(shared) -> None:
    codes = _tatoeba_codes(shared)
    assert len(codes) == 112
    plain = {c: normalize_lang(c) for c in codes}
    # Only the Chinese varieties gain a script; every other ISO 639-3 code is kept as given.
    changed = {c: n for c, n in plain.items() if c != n}
    assert changed == {"cmn": "cmn_Hans", "wuu": "wuu_Hans", "yue": "yue_Hant"}
    as_read = {c: normalize_lang(c, script=TATOEBA_SCRIPTS.get(c)) for c in codes}
    assert as_read["cmn"] == "cmn_Hani"
    assert len(set(as_read.values())) == 112, "two Tatoeba sets merged"
    for c, n in as_read.items():
        assert language_name(n), c
        assert normalize_lang(n) == n


def test_all_sib200_codes_normalise(shared) -> None:
    codes = _sib_codes(shared)
    assert len(codes) == 205
    norm = {c: normalize_lang(c) for c in codes}
    assert len(set(norm.values())) == 205, "two SIB-200 folders merged"
    for c, n in norm.items():
        iso, script = c.split("_")
        base, _, kept = n.partition("_")
        assert base == ("cmn" if iso == "zho" else iso), c
        assert kept in ("", script), c  # a script is dropped or kept, never replaced
        assert normalize_lang(n) == n
        assert language_name(n), c
    # design intent on representative folders
    assert norm["zho_Hans"] == "cmn_Hans"
    assert norm["zho_Hant"] == "cmn_Hant"
    assert norm["yue_Hant"] == "yue_Hant"
    assert norm["srp_Cyrl"] == "srp_Cyrl"
    assert norm["arb_Arab"] == "arb"
    assert norm["arb_Latn"] == "arb_Latn"
    assert norm["deu_Latn"] == "deu"
    assert norm["kor_Hang"] == "kor"
    assert norm["jpn_Jpan"] == "jpn"
    assert (norm["kas_Arab"], norm["kas_Deva"]) == ("kas_Arab", "kas_Deva")
    assert (norm["taq_Latn"], norm["taq_Tfng"]) == ("taq_Latn", "taq_Tfng")
    assert script_of(norm["zho_Hant"]) == "Hant"
    assert script_of(norm["rus_Cyrl"]) == "Cyrl"
