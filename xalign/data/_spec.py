"""``--data`` specs: ``KIND:PATH`` strings that name a corpus on disk (or the bundled sample)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from xalign._validate import check_choice
from xalign.data._corpus import Corpus
from xalign.data._readers import (
    read_hf,
    read_pawsx,
    read_sib200,
    read_table,
    read_tatoeba,
    select_langs,
)
from xalign.data._sample import load_sample
from xalign.data._wordalign import read_word_align
from xalign.errors import DataError

__all__ = ["DATA_KINDS", "load_corpus", "parse_data_spec"]

#: Kinds a ``--data`` spec may name, with what PATH is.
DATA_KINDS: dict[str, str] = {
    "sample": "the bundled parallel sample (no path)",
    "tatoeba": "folder of tatoeba.xxx-eng.{xxx,eng} files",
    "sib200": "SIB-200 folder (or its annotated/ subfolder)",
    "pawsx": "PAWS-X folder (with xtreme/ and hf/) or a folder of {split}-{lang}.tsv files",
    "tsv": "TSV file with a header row",
    "csv": "CSV file with a header row",
    "jsonl": "JSON Lines file, one object per line",
    "hf": "Hugging Face dataset NAME or NAME:CONFIG (needs `datasets`)",
    "wordalign": "word-alignment gold folder (awesome-align <pair>.src-tgt + .gold), e.g. "
    "word-align/en-fr, or their root with --langs",
}

_ALIASES = {"sib-200": "sib200", "paws-x": "pawsx", "ndjson": "jsonl", "word-align": "wordalign"}

#: Splits of the kinds whose readers take one (``load_corpus`` also accepts ``"all"``).
_SPLITS = {"sib200": ("train", "dev", "test"), "pawsx": ("train", "dev", "test")}
#: Split a kind reads when ``load_corpus(split=None)``; ``"all"`` asks for every split.
_DEFAULT_SPLIT = {"sib200": "test", "pawsx": "dev", "hf": "test"}


def _kinds() -> str:
    return ", ".join(DATA_KINDS)


def parse_data_spec(spec: str) -> tuple[str, str]:
    """``(kind, path)`` of a ``--data`` spec ``KIND:PATH`` (``sample`` needs no path).

    Raises
    ------
    DataError
        Unknown kind (the message lists the kinds), or a kind that needs a path given none.

    Examples
    --------
    >>> parse_data_spec("tatoeba:data/tatoeba/v1")
    ('tatoeba', 'data/tatoeba/v1')
    >>> parse_data_spec("sample")
    ('sample', '')
    >>> parse_data_spec("hf:Davlan/sib200:eng_Latn")
    ('hf', 'Davlan/sib200:eng_Latn')
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"empty --data spec; expected KIND:PATH with KIND one of {_kinds()}")
    kind, sep, path = spec.strip().partition(":")
    kind = _ALIASES.get(kind.lower(), kind.lower())
    if kind not in DATA_KINDS:
        hint = ""
        if not sep:
            hint = " (a spec is KIND:PATH, e.g. tsv:my.tsv)"
        raise DataError(f"unknown --data kind {kind!r} in {spec!r}{hint}; kinds: {_kinds()}")
    path = path.strip()
    if kind == "sample":
        if path:
            raise DataError(f"--data sample takes no path, got {spec!r}")
        return kind, ""
    if not path:
        raise DataError(f"--data {kind} needs a path: {kind}:PATH ({DATA_KINDS[kind]})")
    return kind, path


def load_corpus(
    spec: str,
    *,
    langs: Iterable[str] | None = None,
    split: str | None = None,
    limit_per_lang: int | None = None,
    columns: Mapping[str, str] | None = None,
) -> Corpus:
    """Load the corpus a ``--data`` spec names.

    Parameters
    ----------
    spec : str
        ``KIND:PATH``; kinds in ``DATA_KINDS``: ``sample``, ``tatoeba:DIR``, ``sib200:DIR``,
        ``pawsx:DIR``, ``tsv:FILE``, ``csv:FILE``, ``jsonl:FILE``, ``hf:NAME[:CONFIG]``,
        ``wordalign:DIR``.
    langs : iterable of str, optional
        Languages to keep, as raw (``zho_Hans``, ``de``) or normalised (``cmn_Hans``) codes;
        a code without a script selects every script of that language.
    split : str, optional
        Split to keep. None means the kind's usual one (``sib200``, ``hf``: test; ``pawsx``:
        dev) and everything for the others; ``"all"`` keeps every split.
    limit_per_lang : int, optional
        Keep the first rows of each language (for Tatoeba: the first pairs of each language,
        with their English sides).
    columns : mapping, optional
        Column mapping for ``tsv``/``csv``/``jsonl``/``hf`` (see :func:`read_table`).

    Raises
    ------
    DataError
        Bad spec, missing path ("no such file or folder"), or bad data.

    Examples
    --------
    >>> c = load_corpus("sample", langs=["en", "fr"], limit_per_lang=3)
    >>> len(c), c.languages
    (6, ['eng', 'fra'])
    """
    kind, path = parse_data_spec(spec)
    lim = limit_per_lang
    if lim is not None and (isinstance(lim, bool) or not isinstance(lim, int) or lim < 1):
        raise DataError(
            f"limit_per_lang (--limit-per-lang) must be an integer >= 1, got {limit_per_lang!r}"
        )
    if columns is not None and kind not in ("tsv", "csv", "jsonl", "hf"):
        raise DataError(f"columns= applies to tsv, csv, jsonl and hf data, not {kind!r}")
    if split is not None and kind in _SPLITS:  # the readers' own splits, and "all"
        check_choice(f"--split (for {kind} data)", split, (*_SPLITS[kind], "all"))
    want = split if split is not None else _DEFAULT_SPLIT.get(kind)
    if want == "all":
        want = None
    if kind not in ("sample", "hf") and not Path(path).exists():
        raise DataError(f"no such file or folder for --data {spec!r}", path=path)

    if kind == "sample":
        corpus = load_sample(langs=langs)
    elif kind == "tatoeba":
        corpus = read_tatoeba(path, langs=langs, limit=limit_per_lang)
        limit_per_lang = None
    elif kind == "sib200":
        corpus = read_sib200(path, langs=langs, split=want)  # type: ignore[arg-type]
        want = None
    elif kind == "pawsx":
        corpus = read_pawsx(path, langs=langs, split=want)  # type: ignore[arg-type]
        want = None
    elif kind == "wordalign":
        corpus = read_word_align(path, langs=langs, limit=limit_per_lang)
        limit_per_lang = None
    elif kind == "hf":
        name, _, config = path.partition(":")
        corpus = read_hf(name, config=config or None, split=want or "test", columns=columns)
        want = None
    else:
        corpus = read_table(path, columns=columns, format=kind)  # type: ignore[arg-type]

    if langs is not None and kind in ("tsv", "csv", "jsonl", "hf"):
        available = dict(zip(corpus.rows["lang_raw"], corpus.rows["lang"], strict=True))
        langs = select_langs(langs, available, where=corpus.source or spec)
        corpus = corpus.select(langs=langs)
    if want is not None or limit_per_lang is not None:
        corpus = corpus.select(split=want, limit_per_lang=limit_per_lang)
    return Corpus(corpus.rows, name=corpus.name, source=spec, meta=dict(corpus.meta))
