"""Benchmark corpora for the extraction benchmark: short Tatoeba sentences and a mixed-length set.

``tatoeba``: the first sentences of 10 non-English Tatoeba languages (short: ~15 tokens).
``mixed``: SIB-200/FLORES sentences of 20 languages in 14 scripts (lengths vary several-fold
between languages and sentences) plus a slice of long passages, each a concatenation of
consecutive FLORES sentences of one language grown until it holds 200–400 tokens (with the
``query: `` prefix, specials included). Every passage stays under the model's 512 tokens, so no
method truncates or windows anything and all methods see the same tokens.

Rows are plain dicts ``id, lang, text`` so that worker processes can read them from JSON.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

TATOEBA_LANGS = ["deu", "fra", "rus", "cmn", "ara", "hin", "jpn", "swh", "tur", "kor"]
SIB_LANGS = [
    "eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "tur_Latn", "vie_Latn", "swh_Latn",
    "rus_Cyrl", "ell_Grek", "heb_Hebr", "arb_Arab", "hin_Deva", "ben_Beng", "tam_Taml",
    "tha_Thai", "kat_Geor", "amh_Ethi", "zho_Hans", "jpn_Jpan", "kor_Hang",
]  # fmt: skip
LONG_MIN, LONG_MAX = 200, 400


def tatoeba_rows(data: str, n: int) -> list[dict[str, Any]]:
    """``n`` Tatoeba sentences, the first ``n // 10 + 1`` of each of the 10 languages."""
    from xalign.data import read_tatoeba

    per = n // len(TATOEBA_LANGS) + 1
    corpus = read_tatoeba(data, langs=TATOEBA_LANGS, include_english=False)
    rows = corpus.rows.groupby("lang", sort=False).head(per).head(n)
    return rows[["id", "lang", "text"]].to_dict("records")


def _sib_texts(folder: Path, lang: str, split: str) -> list[str]:
    with open(folder / "annotated" / lang / f"{split}.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    rows.sort(key=lambda r: int(r[0]))  # FLORES order: consecutive sentences of one article
    return [r[2] for r in rows]


def mixed_rows(
    data: str, *, per_lang: int, long_per_lang: int, tokenizer: Any, prefix: str = "query: "
) -> list[dict[str, Any]]:
    """SIB-200 test sentences (``per_lang`` per language) plus long passages from its train split.

    Passages concatenate consecutive train sentences (FLORES order) until the tokenised
    ``prefix + passage`` reaches a target spread evenly over ``LONG_MIN..LONG_MAX`` tokens; a
    sentence that would take it past ``LONG_MAX`` is left for the next passage. Rows are interleaved across languages and
    lengths, so nothing is sorted before a method sees it.
    """
    folder = Path(data)
    short: list[dict[str, Any]] = []
    long: list[dict[str, Any]] = []
    for li_, lang in enumerate(SIB_LANGS):
        for i, text in enumerate(_sib_texts(folder, lang, "test")[:per_lang]):
            short.append({"id": f"{lang}:s{i}", "lang": lang, "text": text})
        sents = _sib_texts(folder, lang, "train")
        k = 0
        for j in range(long_per_lang):
            frac = ((j + 0.5) / long_per_lang + 0.37 * li_) % 1.0
            target = int(LONG_MIN + frac * (LONG_MAX - LONG_MIN))
            parts: list[str] = []
            while k < len(sents):
                trial = " ".join([*parts, sents[k]])
                n = len(tokenizer(prefix + trial)["input_ids"])
                if n > LONG_MAX and parts:
                    break
                parts.append(sents[k])
                k += 1
                if n >= target:
                    break
            if parts:
                long.append({"id": f"{lang}:p{j}", "lang": lang, "text": " ".join(parts)})
    rows: list[dict[str, Any]] = []
    step = max(1, len(short) // max(len(long), 1))
    li = iter(long)
    for i, r in enumerate(short):  # interleave so that unsorted batches mix lengths
        rows.append(r)
        if i % step == step - 1:
            rows.extend([x for x in [next(li, None)] if x is not None])
    rows.extend(li)
    return rows
