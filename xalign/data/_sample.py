"""The bundled sample: a small parallel corpus written for xalign (CC0), shipped as package data."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

from xalign.data._corpus import Corpus
from xalign.data._readers import _delimited_records, _records_corpus, select_langs

__all__ = ["SAMPLE_FILE", "load_sample"]

#: Package-relative path of the sample table (columns group, lang, text, label).
SAMPLE_FILE = "sample/parallel.tsv"


def load_sample(*, langs: Iterable[str] | None = None) -> Corpus:
    """The bundled parallel sample: 125 sentence groups in 13 languages, 5 topic labels.

    Sentences were written for xalign (see ``xalign/data/sample/README.md``; CC0), each group
    translated into English, German, French, Spanish, Russian, Greek, Arabic (``arb``), Hindi,
    Mandarin Chinese (``cmn_Hans``), Japanese, Korean, Swahili (``swh``) and Turkish. ``label``
    is the topic (``food``, ``health``, ``science``, ``sports``, ``travel``); ids are
    ``f"{lang}:{group}"``.

    Parameters
    ----------
    langs : iterable of str, optional
        Raw or normalised codes (``de``, ``deu``, ``zh``...); all by default.

    Examples
    --------
    >>> c = load_sample(langs=["deu", "ja"])
    >>> c.languages, c.is_parallel
    (['deu', 'jpn'], True)
    """
    res = resources.files("xalign.data").joinpath(SAMPLE_FILE)
    text = res.read_text(encoding="utf-8")
    where = f"xalign/data/{SAMPLE_FILE}"
    header, recs = _delimited_records(text, where, "\t")
    corpus = _records_corpus(
        (
            (line, {**rec, "id": f"{rec.get('lang', '')}:{rec.get('group', '')}"})
            for line, rec in recs
        ),
        [*header, "id"],
        path=where,
        columns=None,
        lang=None,
        name="sample",
    )
    corpus = Corpus(corpus.rows, name="sample", source="sample", meta={})
    if langs is None:
        return corpus
    available = dict(zip(corpus.rows["lang_raw"], corpus.rows["lang"], strict=True))
    return corpus.select(langs=select_langs(langs, available, where="sample"))
