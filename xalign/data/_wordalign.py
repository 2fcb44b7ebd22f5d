"""Word-alignment gold standards in the awesome-align format: the sentence pairs as a parallel
corpus, and their gold links.

A pair ``en-fr`` is two files with one stem, e.g. ``en-fr/enfr.src-tgt`` and
``en-fr/enfr.gold`` (docs/metrics.md#aer):

- ``<stem>.src-tgt``: one sentence pair per line, ``source tokens ||| target tokens``, already
  tokenised and space-separated;
- ``<stem>.gold``: line *k* holds the links of pair *k*: ``i-j`` sure, ``ipj`` possible,
  **1-based** (source word *i*, target word *j*).

The corpus text of each side is its words joined by one space, so the whitespace word index
that extraction records for every token (``tokens.parquet`` column ``word``) is the gold
word index minus one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from xalign._validate import check_choice
from xalign.data._corpus import Corpus
from xalign.data._readers import _decode, _lines, _norm, _Rows
from xalign.errors import ConfigError, DataError

if TYPE_CHECKING:
    from os import PathLike

__all__ = [
    "WordAlignFiles",
    "find_word_align",
    "gold_alignments",
    "read_gold_alignments",
    "read_word_align",
    "read_word_pairs",
]

Links = set[tuple[int, int]]
OutOfRange = Literal["error", "drop"]

_PAIR = re.compile(r"^([A-Za-z]{2,3})[-_]([A-Za-z]{2,3})$")
_SUFFIX_TEXT = ".src-tgt"
_SUFFIX_GOLD = ".gold"


@dataclass(frozen=True)
class WordAlignFiles:
    """One gold-standard pair on disk: its name, languages and files."""

    #: Pair name as ``src-tgt`` raw codes, e.g. ``"en-fr"`` (also the corpus ``group`` prefix).
    pair: str
    src_raw: str
    tgt_raw: str
    #: Normalised codes (``eng``, ``fra``).
    src: str
    tgt: str
    text: Path
    #: The ``.gold`` file, or None when there is none beside the text file.
    gold: Path | None


def _split_pair(name: str) -> tuple[str, str] | None:
    m = _PAIR.match(name)
    if m:
        return m.group(1).lower(), m.group(2).lower()
    if name.isalpha() and len(name) in (4, 6):  # awesome-align stems: "enfr", "roen", "jaen"
        half = len(name) // 2
        return name[:half].lower(), name[half:].lower()
    return None


def _candidate(text: Path, *, folder_name: str | None) -> WordAlignFiles | None:
    stem = text.name[: -len(_SUFFIX_TEXT)]
    langs = _split_pair(folder_name) if folder_name else None
    if langs is None:
        langs = _split_pair(stem)
    if langs is None:
        return None
    src_raw, tgt_raw = langs
    gold = text.with_name(stem + _SUFFIX_GOLD)
    return WordAlignFiles(
        pair=f"{src_raw}-{tgt_raw}",
        src_raw=src_raw,
        tgt_raw=tgt_raw,
        src=_norm(src_raw, path=text),
        tgt=_norm(tgt_raw, path=text),
        text=text,
        gold=gold if gold.is_file() else None,
    )


def _candidates(path: Path) -> list[WordAlignFiles]:
    prefix_file = path.with_name(path.name + _SUFFIX_TEXT)
    if not path.is_dir() and prefix_file.is_file():
        return [c for c in [_candidate(prefix_file, folder_name=None)] if c]
    if path.is_file() and path.name.endswith(_SUFFIX_TEXT):
        return [c for c in [_candidate(path, folder_name=None)] if c]
    if not path.is_dir():
        raise DataError(
            f"no such file or folder (expected a folder of <pair>{_SUFFIX_TEXT} files, or a "
            f"prefix P with P{_SUFFIX_TEXT})",
            path=path,
        )
    out: list[WordAlignFiles] = []
    here = sorted(path.glob(f"*{_SUFFIX_TEXT}"))
    for f in here:
        c = _candidate(f, folder_name=path.name if len(here) == 1 else None)
        if c:
            out.append(c)
    if not here:
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            files = sorted(sub.glob(f"*{_SUFFIX_TEXT}"))
            for f in files:
                c = _candidate(f, folder_name=sub.name if len(files) == 1 else None)
                if c:
                    out.append(c)
    return out


def _matches(c: WordAlignFiles, pair: str) -> bool:
    p = pair.strip().lower().replace("_", "-")
    stem = c.text.name[: -len(_SUFFIX_TEXT)].lower()
    return p in (c.pair, stem, c.pair.replace("-", ""))


def find_word_align(
    folder_or_prefix: str | PathLike[str],
    *,
    pair: str | None = None,
    langs: Iterable[str] | None = None,
) -> WordAlignFiles:
    """Locate one gold-standard pair: a pair folder, a root of pair folders, or a file prefix.

    ``folder_or_prefix`` may be a pair folder (``word-align/en-fr``), a folder of several
    pairs (``word-align``, then ``pair`` or ``langs`` chooses), a file prefix
    (``word-align/en-fr/enfr``) or the ``.src-tgt`` file itself. The pair name comes from
    the folder (``en-fr``) or the file stem (``enfr`` → ``en``, ``fr``; source first).

    Parameters
    ----------
    folder_or_prefix : path
    pair : str, optional
        ``"en-fr"``, ``"enfr"`` or the file stem.
    langs : iterable of str, optional
        Raw or normalised codes; chooses the pair holding all of them.

    Raises
    ------
    DataError
        Nothing found, or more than one pair matches (the message lists them).
    """
    path = Path(folder_or_prefix)
    found = _candidates(path)
    if not found:
        raise DataError(
            f"no word-alignment pair found (expected <pair>{_SUFFIX_TEXT} files named like "
            f"enfr{_SUFFIX_TEXT} or in a folder named like en-fr)",
            path=path,
        )
    chosen = found
    if pair is not None:
        chosen = [c for c in chosen if _matches(c, pair)]
    if langs is not None:
        want = [langs] if isinstance(langs, str) else list(langs)
        chosen = [
            c
            for c in chosen
            if all(
                x.lower() in (c.src_raw, c.tgt_raw, c.src, c.tgt)
                or _norm(x, path=path) in (c.src, c.tgt)
                for x in want
            )
        ]
    names = ", ".join(c.pair for c in found)
    if not chosen:
        what = f"pair {pair!r}" if pair is not None else f"langs {list(langs or [])}"
        raise DataError(f"{what} matches no word-alignment pair; available: {names}", path=path)
    if len(chosen) > 1:
        raise DataError(
            f"{len(chosen)} word-alignment pairs here ({', '.join(c.pair for c in chosen)}); "
            "choose one with pair= (or --langs)",
            path=path,
        )
    return chosen[0]


def _read_sentences(files: WordAlignFiles) -> list[tuple[list[str], list[str]]]:
    out = []
    for number, line in enumerate(_lines(_decode(files.text)), start=1):
        parts = line.split(" ||| ")
        if len(parts) != 2:
            raise DataError(
                "expected 'source tokens ||| target tokens' (one ' ||| ' separator)",
                path=files.text,
                line=number,
            )
        src, tgt = parts[0].split(), parts[1].split()
        for side, words in (("source", src), ("target", tgt)):
            if not words:
                raise DataError(f"empty {side} side", path=files.text, line=number)
        out.append((src, tgt))
    if not out:
        raise DataError("no sentence pairs", path=files.text)
    return out


def _check_gold(
    files: WordAlignFiles,
    sentences: list[tuple[list[str], list[str]]],
    gold: list[tuple[Links, Links]],
    out_of_range: OutOfRange,
) -> tuple[list[tuple[Links, Links]], list[tuple[int, str]]]:
    """Check gold links against the word counts; drop or refuse links past a sentence's end."""
    assert files.gold is not None
    if len(gold) != len(sentences):
        raise DataError(
            f"{len(gold)} gold lines for {len(sentences)} sentence pairs in {files.text.name}; "
            "expected one line per pair",
            path=files.gold,
        )
    dropped: list[tuple[int, str]] = []
    out = []
    for k, ((src, tgt), (sure, possible)) in enumerate(zip(sentences, gold, strict=True)):
        bad = sorted((i, j) for i, j in possible if i >= len(src) or j >= len(tgt))
        if bad and out_of_range == "error":
            i, j = bad[0]
            raise DataError(
                f"link {i + 1}-{j + 1} points past the sentence pair's {len(src)} source and "
                f"{len(tgt)} target words ({files.text.name} line {k + 1}); expected indices "
                "1..words on each side (out_of_range='drop' drops such links)",
                path=files.gold,
                line=k + 1,
            )
        if bad:
            dropped += [(k + 1, f"{i + 1}-{j + 1}") for i, j in bad]
            drop = set(bad)
            sure, possible = sure - drop, possible - drop
        out.append((sure, possible))
    return out, dropped


def _validate_mode(out_of_range: str) -> None:
    check_choice("out_of_range", out_of_range, ("error", "drop"))


def _limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ConfigError(f"limit must be >= 1 (sentence pairs) or None, got {limit}")


def read_word_align(
    folder_or_prefix: str | PathLike[str],
    *,
    pair: str | None = None,
    langs: Iterable[str] | None = None,
    limit: int | None = None,
    out_of_range: OutOfRange = "error",
) -> Corpus:
    """Read a word-alignment gold standard's sentence pairs as a parallel corpus.

    Sentence pair *k* (0-based; line *k* + 1) becomes two rows, ids ``{pair}:{k}:{src_raw}``
    and ``{pair}:{k}:{tgt_raw}``, grouped under ``{pair}:{k}`` (e.g. ``en-fr:0``), with
    ``lang`` the normalised code of each side (``eng``, ``fra``), ``split="test"``, and
    ``text`` the side's words joined by single spaces, so whitespace word *w* of a row is
    gold word *w* + 1. All source rows come first, then all target rows, so
    ``Corpus.languages`` is ``[source, target]``.

    When the ``.gold`` file exists it is checked too: one line per pair, and no link past
    the end of its sentence (the KFTT ja-en conversion has six such links; pass
    ``out_of_range="drop"`` to accept them, as its README advises).

    Parameters
    ----------
    folder_or_prefix : path
        See :func:`find_word_align`.
    pair, langs : optional
        Choose the pair when the folder holds several.
    limit : int, optional
        Read only the first ``limit`` sentence pairs.
    out_of_range : {"error", "drop"}

    Returns
    -------
    Corpus
        ``name="wordalign"``; ``meta`` has ``pair``, ``src``, ``tgt``, ``text``, ``gold``
        (paths as str, gold None when absent), ``n_pairs`` and ``gold_dropped`` (list of
        ``[line, link]``).

    Raises
    ------
    DataError
        A malformed line, an empty side, a gold file whose line count or link indices do not
        fit the sentences (file and line in the message).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "en-fr"
    >>> d.mkdir()
    >>> _ = (d / "enfr.src-tgt").write_text("the cat ||| le chat \\n")
    >>> _ = (d / "enfr.gold").write_text("1-1 2-2\\n")
    >>> c = read_word_align(d)
    >>> c.rows[["id", "lang", "text", "group"]].values.tolist()
    [['en-fr:0:en', 'eng', 'the cat', 'en-fr:0'], ['en-fr:0:fr', 'fra', 'le chat', 'en-fr:0']]
    """
    _validate_mode(out_of_range)
    _limit(limit)
    files = find_word_align(folder_or_prefix, pair=pair, langs=langs)
    sentences = _read_sentences(files)
    dropped: list[tuple[int, str]] = []
    if files.gold is not None:
        _, dropped = _check_gold(files, sentences, _read_gold(files), out_of_range)
    n = len(sentences) if limit is None else min(limit, len(sentences))
    rows = _Rows()
    for side, (raw, lang) in enumerate(((files.src_raw, files.src), (files.tgt_raw, files.tgt))):
        for k in range(n):
            rows.add(
                path=files.text,
                line=k + 1,
                id=f"{files.pair}:{k}:{raw}",
                lang=lang,
                lang_raw=raw,
                text=" ".join(sentences[k][side]),
                group=f"{files.pair}:{k}",
                split="test",
            )
    meta = {
        "pair": files.pair,
        "src": files.src,
        "tgt": files.tgt,
        "text": str(files.text),
        "gold": None if files.gold is None else str(files.gold),
        "n_pairs": n,
        "gold_dropped": [[line, link] for line, link in dropped if line <= n],
    }
    return rows.corpus(name="wordalign", source=str(files.text), meta=meta)


# ---------------------------------------------------------------- the two files, read alone


def _parse_link(tok: str, path: object, line: int) -> tuple[bool, int, int]:
    sure = "-" in tok
    sep = "-" if sure else "p"
    parts = tok.split(sep)
    if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise DataError(
            f"link {tok!r}: expected 'i-j' (sure) or 'ipj' (possible) with 1-based integers",
            path=path,
            line=line,
        )
    i, j = int(parts[0]), int(parts[1])
    if i < 1 or j < 1:
        raise DataError(f"link {tok!r}: indices are 1-based, got 0", path=path, line=line)
    return sure, i - 1, j - 1


def read_gold_alignments(path: str | Path) -> list[tuple[Links, Links]]:
    """Read a gold word-alignment file in the awesome-align format.

    Line *k* holds the links of sentence pair *k*, separated by spaces: ``i-j`` is a
    **sure** link and ``ipj`` a **possible** link, with **1-based** indices (source word
    *i*, target word *j*). Indices are converted to 0-based. An empty line is a pair
    without links.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of (sure, possible)
        Per sentence pair: the sure links :math:`S` and the possible links :math:`P`,
        where :math:`P` **includes** :math:`S` (:math:`P\\supseteq S`, as AER uses it and as
        awesome-align ``tools/aer.py`` and SimAlign ``calc_align_score.py`` read it).

    Raises
    ------
    DataError
        A malformed link, with file and line.

    References
    ----------
    Och & Ney 2003, Computational Linguistics; awesome-align ``examples/*.gold``;
    docs/metrics.md#aer (the format).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.gold"
    >>> _ = p.write_text("1-1 2p3\\n\\n")
    >>> [(sorted(s), sorted(q)) for s, q in read_gold_alignments(p)]
    [([(0, 0)], [(0, 0), (1, 2)]), ([], [])]
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read gold alignments: {exc.strerror}", path=path) from exc
    out: list[tuple[Links, Links]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        sure: Links = set()
        possible: Links = set()
        for tok in line.split():
            is_sure, i, j = _parse_link(tok, path, number)
            possible.add((i, j))
            if is_sure:
                sure.add((i, j))
        out.append((sure, possible))
    return out


def read_word_pairs(path: str | Path) -> list[tuple[list[str], list[str]]]:
    """Read tokenised sentence pairs ``source tokens ||| target tokens`` (awesome-align).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.src-tgt"
    >>> _ = p.write_text("a b ||| c \\n")
    >>> read_word_pairs(p)
    [(['a', 'b'], ['c'])]
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read sentence pairs: {exc.strerror}", path=path) from exc
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split(" ||| ")
        if len(parts) != 2:
            raise DataError("expected 'source tokens ||| target tokens'", path=path, line=number)
        out.append((parts[0].split(), parts[1].split()))
    return out


# ---------------------------------------------------------------- corpus and checked gold


def _read_gold(files: WordAlignFiles) -> list[tuple[Links, Links]]:
    assert files.gold is not None
    return read_gold_alignments(files.gold)


def gold_alignments(
    folder_or_prefix: str | PathLike[str],
    pair: str | None = None,
    *,
    langs: Iterable[str] | None = None,
    limit: int | None = None,
    out_of_range: OutOfRange = "error",
) -> list[tuple[Links, Links]]:
    """Gold links of a word-alignment pair, 0-based, checked against its sentences.

    Parameters
    ----------
    folder_or_prefix : path
        See :func:`find_word_align`.
    pair, langs : optional
        Choose the pair when the folder holds several.
    limit : int, optional
        Only the first ``limit`` sentence pairs.
    out_of_range : {"error", "drop"}
        What to do with a link past the end of its sentence.

    Returns
    -------
    list of (sure, possible)
        Entry *k* belongs to sentence pair *k* (corpus group ``{pair}:{k}``); links are
        ``(source word, target word)``, 0-based; ``possible`` includes ``sure``
        (:func:`read_gold_alignments`).

    Raises
    ------
    DataError
        No ``.gold`` file, a malformed link, a line count that differs from the sentence
        file, or (``out_of_range="error"``) a link past the sentence end, with file:line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "enfr.src-tgt").write_text("the cat ||| le chat \\n")
    >>> _ = (d / "enfr.gold").write_text("1-1 2p2\\n")
    >>> [(sorted(s), sorted(p)) for s, p in gold_alignments(d, "en-fr")]
    [([(0, 0)], [(0, 0), (1, 1)])]
    """
    _validate_mode(out_of_range)
    _limit(limit)
    files = find_word_align(folder_or_prefix, pair=pair, langs=langs)
    if files.gold is None:
        stem = files.text.name[: -len(_SUFFIX_TEXT)]
        raise DataError(
            f"no gold file {stem}{_SUFFIX_GOLD} beside {files.text.name}", path=files.text
        )
    gold, _ = _check_gold(files, _read_sentences(files), _read_gold(files), out_of_range)
    return gold if limit is None else gold[:limit]
