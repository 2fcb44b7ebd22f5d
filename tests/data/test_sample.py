"""The bundled parallel sample: size, coverage, scripts and completeness."""

from __future__ import annotations

import unicodedata
from collections import Counter

from xalign.data import load_corpus, load_sample


def _script(text: str) -> str:
    counts = Counter(unicodedata.name(ch, "?").split()[0] for ch in text if ch.isalpha())
    top = counts.most_common(1)[0][0]
    return {"CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana"}.get(top, top)


def test_sample_size_languages_scripts():
    c = load_sample()
    rows = c.rows
    assert c.is_parallel and c.name == "sample"
    assert len(c.languages) >= 10 and rows["group"].nunique() >= 120
    # every group is complete in every language, each language exactly once
    per_group = rows.groupby("group")["lang"].agg(lambda s: tuple(sorted(s)))
    assert per_group.nunique() == 1 and len(per_group.iloc[0]) == len(c.languages)
    scripts = {lang: _script(" ".join(g["text"])) for lang, g in rows.groupby("lang")}
    assert {"LATIN", "CYRILLIC", "GREEK", "ARABIC", "DEVANAGARI", "Han", "HANGUL"} <= set(
        scripts.values()
    ), scripts
    assert scripts["jpn"] in ("Kana", "Han") and scripts["kor"] == "HANGUL"
    assert not rows["text"].str.strip().eq("").any()
    eng = rows[rows["lang"] == "eng"]["text"].str.split().str.len()
    assert eng.min() <= 6 and eng.max() >= 30 and eng.nunique() > 20
    assert set(rows["label"]) == {"food", "health", "science", "sports", "travel"}


def test_sample_through_data_spec_and_filters():
    c = load_corpus("sample", langs=["de", "zh"])
    assert c.languages == ["deu", "cmn_Hans"]
    assert (c.rows.groupby("lang").size() == 125).all()
    assert c.fingerprint() == load_sample(langs=["deu", "cmn_Hans"]).fingerprint()
