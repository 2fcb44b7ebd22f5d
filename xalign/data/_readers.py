"""Readers: Tatoeba (LASER), SIB-200, PAWS-X, generic TSV/CSV/JSONL tables, Hugging Face datasets.

Every reader returns a :class:`~xalign.data.Corpus` whose ``lang_raw`` is the file's own code
and whose ``lang`` is normalised (:func:`~xalign.data.normalize_lang`). Bad input raises
:class:`~xalign.errors.DataError` naming the file and, when it is about one line, the line.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from xalign._validate import check_choice, check_interval
from xalign.data._corpus import Corpus
from xalign.data._langs import _TAG, normalize_lang, split_lang
from xalign.errors import ConfigError, DataError

if TYPE_CHECKING:
    from os import PathLike

__all__ = [
    "TABLE_FIELDS",
    "read_hf",
    "read_pawsx",
    "read_pawsx_pairs",
    "read_sib200",
    "read_table",
    "read_tatoeba",
]

#: Corpus fields that :func:`read_table` and :func:`read_hf` map from a file's columns.
TABLE_FIELDS = ("id", "lang", "text", "group", "label", "split")

#: Scripts measured in the shipped data where the code alone would mislead: Tatoeba's ``cmn``
#: mixes Simplified and Traditional Han (327 lines Simplified-only, 359 Traditional-only among
#: 1000), so it is ``cmn_Hani`` (ISO 15924 "Han, either variant"), not the default ``cmn_Hans``.
TATOEBA_SCRIPTS = {"cmn": "Hani"}

_PAWSX_SPLITS = {"train": "train", "dev": "dev", "validation": "dev", "test": "test"}
_PAWSX_FILE = re.compile(r"^(train|dev|validation|test)-([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*)\.tsv$")
_NS = "NS"


# ----------------------------------------------------------------------------- helpers


def _decode(path: Path) -> str:
    """File text as str; invalid UTF-8 is a DataError at its line. A leading BOM is dropped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except IsADirectoryError:
        raise DataError("a folder stands where a file is expected", path=path) from None
    except OSError as e:
        raise DataError(f"cannot read file: {e.strerror}", path=path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
        hint = " (a UTF-16 file? save it as UTF-8)" if utf16 else ""
        raise DataError(
            f"invalid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); expected UTF-8 "
            f"text{hint}",
            path=path,
            line=line,
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        hint = " (a UTF-16 file? save it as UTF-8)" if text.count("\x00") * 4 > len(text) else ""
        raise DataError(
            f"NUL byte (\\x00) at character {nul}; expected plain UTF-8 text{hint}",
            path=path,
            line=line,
        )
    return text.removeprefix("\ufeff")


def _lines(text: str) -> list[str]:
    """Split on ``\\n`` only (not on U+2028 and friends, which may occur inside sentences)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.removesuffix("\r") for ln in lines]


def _csv_rows(text: str, path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` per record, CSV quoting honoured; empty lines are skipped.

    Only truly empty lines are skipped: a line of blanks or tabs is a record (with empty
    fields), so that empty text is reported at its line rather than dropped silently.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"malformed quoting: {e}", path=path, line=reader.line_num) from None
        if fields:
            yield start, fields
        start = reader.line_num + 1


class _Rows:
    """Accumulates corpus rows with their file and line, and checks them before Corpus sees them.

    The checks repeat Corpus' own, but can name the file and line of the offending row.
    """

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {c: [] for c in (*TABLE_FIELDS, "lang_raw")}
        self._ids: dict[str, tuple[Path | str, int]] = {}
        self._group_lang: dict[tuple[str, str], tuple[Path | str, int]] = {}

    def add(
        self,
        *,
        path: Path | str,
        line: int,
        id: str,
        lang: str,
        lang_raw: str,
        text: str,
        group: str | None = None,
        label: str | None = None,
        split: str | None = None,
    ) -> None:
        if not text.strip():
            raise DataError("empty or whitespace-only text", path=path, line=line)
        if not id.strip():
            raise DataError("empty row id; expected a non-empty id", path=path, line=line)
        if id in self._ids:
            p, ln = self._ids[id]
            raise DataError(f"duplicate row id {id!r} (first at {p}:{ln})", path=path, line=line)
        self._ids[id] = (path, line)
        if group is not None:
            key = (group, lang)
            if key in self._group_lang:
                p, ln = self._group_lang[key]
                raise DataError(
                    f"group {group!r} has a second row in language {lang!r} (first at {p}:{ln}); "
                    "a group holds one translation per language",
                    path=path,
                    line=line,
                )
            self._group_lang[key] = (path, line)
        for k, v in (
            ("id", id),
            ("lang", lang),
            ("lang_raw", lang_raw),
            ("text", text),
            ("group", group),
            ("label", label),
            ("split", split),
        ):
            self.cols[k].append(v)

    def __len__(self) -> int:
        return len(self.cols["id"])

    def corpus(self, *, name: str, source: str, meta: dict[str, Any] | None = None) -> Corpus:
        if not len(self):
            raise DataError("no rows read", path=source)
        return Corpus(pd.DataFrame(self.cols), name=name, source=source, meta=dict(meta or {}))


def _norm(raw: str, *, path: object, line: int | None = None, script: str | None = None) -> str:
    try:
        return normalize_lang(raw, script=script)
    except DataError as e:
        raise DataError(str(e), path=path, line=line) from None


def _lang_matches(request: str, raw: str, norm: str) -> bool:
    """Whether a ``langs=`` entry selects a dataset language (raw or normalised code).

    A request without a script (``srp``, ``zh``) selects the language in every script.
    """
    if request in (raw, norm):
        return True
    req = normalize_lang(request)
    if req == norm:
        return True
    m = _TAG.match(request.strip())
    # A region that implies a script (``zh-TW`` -> ``cmn_Hant``) is as explicit as a script.
    explicit_script = m is not None and (
        m.group(2) is not None or (m.group(3) is not None and split_lang(req)[1] is not None)
    )
    return not explicit_script and split_lang(req)[0] == split_lang(norm)[0]


def select_langs(
    requested: Iterable[str] | None, available: Mapping[str, str], *, where: object
) -> list[str]:
    """Raw codes (keys of ``available``, raw -> normalised) that ``requested`` selects.

    Every requested code must select something, else a DataError lists the available ones.
    """
    if requested is None:
        return list(available)
    if isinstance(requested, str):
        requested = [requested]
    requested = list(requested)
    keep: set[str] = set()
    missing = []
    for req in requested:
        try:
            hits = {raw for raw, norm in available.items() if _lang_matches(req, raw, norm)}
        except DataError as e:
            raise DataError(f"in langs: {e}", path=where) from None
        if not hits:
            missing.append(req)
        keep |= hits
    if missing:
        avail = ", ".join(sorted(available))
        raise DataError(f"language(s) {missing} not found; available: {avail}", path=where)
    return [raw for raw in available if raw in keep]


def _folder(folder: str | PathLike[str], what: str) -> Path:
    p = Path(folder)
    if not p.exists():
        raise DataError(f"no such file or folder (expected the {what} folder)", path=p)
    if not p.is_dir():
        raise DataError(f"expected the {what} folder, got a file", path=p)
    return p


def _check_split(split: str | None, allowed: Sequence[str], what: str) -> None:
    if split is not None:
        check_choice(f"{what} split", split, allowed)


# ----------------------------------------------------------------------------- Tatoeba


def read_tatoeba(
    folder: str | PathLike[str],
    *,
    langs: Iterable[str] | None = None,
    include_english: bool = True,
    limit: int | None = None,
) -> Corpus:
    """Read the LASER/XTREME Tatoeba test set: ``tatoeba.xxx-eng.{xxx,eng}`` pairs.

    Line *i* of ``tatoeba.xxx-eng.xxx`` translates line *i* of ``tatoeba.xxx-eng.eng``. The
    English side differs from pair to pair, so **English appears once per pair**: the rows of
    ``tatoeba.deu-eng.eng`` are English rows (``lang="eng"``) with ids ``eng@deu:i``, grouped
    with the German row ``deu:i`` under group ``deu:i``. A group therefore holds exactly one
    pair, and English rows of different pairs are never grouped together even when their text
    is the same. All rows have ``split="test"`` (LASER's name for this set).

    Tatoeba's ``cmn`` mixes Simplified and Traditional characters and reads as ``cmn_Hani``
    (see ``TATOEBA_SCRIPTS``); ``yue`` is Traditional (``yue_Hant``), ``wuu`` Simplified.

    Parameters
    ----------
    folder : path
        Folder holding the ``tatoeba.*`` files (e.g. ``tatoeba/v1``).
    langs : iterable of str, optional
        Non-English sides to read (raw ``kzj`` or normalised ``cmn_Hani`` codes; ``eng`` in
        the list is ignored). All pairs by default.
    include_english : bool
        Add each pair's English rows.
    limit : int, optional
        Read only the first ``limit`` pairs of each language.

    Returns
    -------
    Corpus
        ``meta["pairs"]`` maps each raw code to its number of pairs read.

    Raises
    ------
    DataError
        A pair's files differ in line count, a line is empty or not UTF-8, a language code is
        unknown, or no pair is found.
    ConfigError
        ``limit`` is below 1.
    """
    if limit is not None:
        check_interval("limit", limit, low=1, note="pairs per language, or None for all")
    root = _folder(folder, "Tatoeba")
    pattern = re.compile(r"^tatoeba\.([a-z]{3})-eng\.([a-z]{3})$")
    sides: dict[str, set[str]] = {}
    for f in root.iterdir():
        m = pattern.match(f.name)
        if m and m.group(2) in (m.group(1), "eng"):
            sides.setdefault(m.group(1), set()).add(m.group(2))
    if not sides:
        raise DataError("no Tatoeba files (tatoeba.xxx-eng.xxx + tatoeba.xxx-eng.eng)", path=root)
    for xxx, have in sorted(sides.items()):
        want = {xxx, "eng"}
        if have != want:
            (lack,) = want - have
            raise DataError(
                f"missing the other side of pair {xxx}-eng: tatoeba.{xxx}-eng.{lack}",
                path=root / f"tatoeba.{xxx}-eng.{next(iter(have))}",
            )
    available = {
        x: _norm(x, path=root / f"tatoeba.{x}-eng.{x}", script=TATOEBA_SCRIPTS.get(x))
        for x in sorted(sides)
    }
    if langs is not None:
        langs = [
            x for x in ([langs] if isinstance(langs, str) else langs) if x not in ("eng", "en")
        ]
        if not langs:
            raise DataError(
                "langs selects no Tatoeba pair (English is the other side of every "
                "pair; name the non-English languages)",
                path=root,
            )
    chosen = select_langs(langs, available, where=root)
    rows = _Rows()
    pairs: dict[str, int] = {}
    for xxx in chosen:
        fx, fe = root / f"tatoeba.{xxx}-eng.{xxx}", root / f"tatoeba.{xxx}-eng.eng"
        lx, le = _lines(_decode(fx)), _lines(_decode(fe))
        if len(lx) != len(le):
            raise DataError(
                f"line counts differ: {fx.name} has {len(lx)} lines but {fe.name} has "
                f"{len(le)} (line i of one must translate line i of the other)",
                path=fx,
            )
        if not lx:
            raise DataError("empty file; expected one sentence per line", path=fx)
        n = len(lx) if limit is None else min(limit, len(lx))
        pairs[xxx] = n
        for i in range(n):
            rows.add(
                path=fx,
                line=i + 1,
                id=f"{xxx}:{i}",
                lang=available[xxx],
                lang_raw=xxx,
                text=lx[i],
                group=f"{xxx}:{i}",
                split="test",
            )
        if include_english:
            for i in range(n):
                rows.add(
                    path=fe,
                    line=i + 1,
                    id=f"eng@{xxx}:{i}",
                    lang="eng",
                    lang_raw="eng",
                    text=le[i],
                    group=f"{xxx}:{i}",
                    split="test",
                )
    return rows.corpus(name="tatoeba", source=str(root), meta={"pairs": pairs})


# ----------------------------------------------------------------------------- SIB-200


def _sib_root(folder: Path) -> Path:
    sub = folder / "annotated"
    return sub if sub.is_dir() else folder


def read_sib200(
    folder: str | PathLike[str],
    *,
    langs: Iterable[str] | None = None,
    split: Literal["train", "dev", "test"] | None = "test",
) -> Corpus:
    """Read SIB-200: ``<lang_Script>/{train,dev,test}.tsv`` with columns index_id, category, text.

    The files are CSV-quoted TSV (a field holding ``"`` is quoted and inner quotes doubled),
    so they are read with a CSV parser. Every language translates the same FLORES-200
    sentences, so rows are grouped across languages by ``group = f"{split}:{index_id}"``;
    ``label`` is the topic category and ``split`` the file's split. Ids are
    ``f"{lang_raw}:{split}:{index_id}"``.

    Parameters
    ----------
    folder : path
        The ``sib-200`` folder or its ``annotated`` subfolder.
    langs : iterable of str, optional
        Raw (``zho_Hans``) or normalised (``cmn_Hans``, ``deu``) codes; all by default.
    split : {"train", "dev", "test"} or None
        One split, or None for every split that the chosen languages have.

    Raises
    ------
    DataError
        Header or field count wrong, empty text, a duplicated index_id, a category that
        disagrees across languages for one index_id, unknown language folder.
    """
    _check_split(split, ("train", "dev", "test"), "SIB-200")
    root = _sib_root(_folder(folder, "SIB-200"))
    splits = [split] if split is not None else ["train", "dev", "test"]
    folders = sorted(
        d.name
        for d in root.iterdir()
        if d.is_dir() and any((d / f"{s}.tsv").is_file() for s in splits)
    )
    if not folders:
        raise DataError(f"no <lang>/{{{','.join(splits)}}}.tsv files", path=root)
    available = {d: _norm(d, path=root / d) for d in folders}
    chosen = select_langs(langs, available, where=root)
    # With split=None, read the splits that some chosen language has (then all must have them).
    splits = [s for s in splits if any((root / d / f"{s}.tsv").is_file() for d in chosen)]
    rows = _Rows()
    category: dict[str, tuple[str, Path, int]] = {}
    for raw in chosen:
        for s in splits:
            path = root / raw / f"{s}.tsv"
            if not path.is_file():
                raise DataError(f"missing split file (other languages have {s}.tsv)", path=path)
            recs = _csv_rows(_decode(path), path, "\t")
            first = next(recs, None)
            if first is None:
                raise DataError("empty file (expected header index_id, category, text)", path=path)
            header = [h.strip() for h in first[1]]
            need = ("index_id", "category", "text")
            if any(c not in header for c in need):
                raise DataError(
                    f"header {header} lacks column(s) "
                    f"{[c for c in need if c not in header]}; expected "
                    "index_id, category, text",
                    path=path,
                    line=first[0],
                )
            ci, cc, ct = (header.index(c) for c in need)
            for line, f in recs:
                if len(f) != len(header):
                    raise DataError(
                        f"{len(f)} fields, expected {len(header)} (as the header)",
                        path=path,
                        line=line,
                    )
                idx, cat = f[ci].strip(), f[cc].strip()
                for col, v in (("index_id", idx), ("category", cat)):
                    if not v:
                        raise DataError(f"empty {col}", path=path, line=line)
                group = f"{s}:{idx}"
                seen = category.setdefault(group, (cat, path, line))
                if seen[0] != cat:
                    raise DataError(
                        f"category {cat!r} of index_id {idx} disagrees with "
                        f"{seen[0]!r} at {seen[1]}:{seen[2]}",
                        path=path,
                        line=line,
                    )
                rows.add(
                    path=path,
                    line=line,
                    id=f"{raw}:{s}:{idx}",
                    lang=available[raw],
                    lang_raw=raw,
                    text=f[ct],
                    group=group,
                    label=cat,
                    split=s,
                )
    return rows.corpus(name="sib200", source=str(root))


# ----------------------------------------------------------------------------- PAWS-X


def _pawsx_layout(folder: Path) -> tuple[Path, Path | None]:
    """(folder with the main ``{split}-{lang}.tsv`` files, folder of HF label files or None)."""
    if (folder / "xtreme").is_dir():
        hf = folder / "hf"
        return folder / "xtreme", (hf if hf.is_dir() else None)
    return folder, None


def _pawsx_file(path: Path) -> tuple[list[tuple[int, str, str, str | None]], bool]:
    """``[(line, s1, s2, label or None)]`` of one PAWS-X file, and whether it had a header.

    XTREME files have no header (``sentence1, sentence2[, label]``); the Hugging Face export
    has ``id, sentence1, sentence2, label``.
    """
    recs = list(_csv_rows(_decode(path), path, "\t"))
    if not recs:
        raise DataError("empty file", path=path)
    head = [h.strip().lower() for h in recs[0][1]]
    if "sentence1" in head and "sentence2" in head:
        i1, i2 = head.index("sentence1"), head.index("sentence2")
        il = head.index("label") if "label" in head else None
        width, body, has_header = len(head), recs[1:], True
    else:
        width = len(recs[0][1])
        if width not in (2, 3):
            raise DataError(
                f"{width} fields; expected sentence1, sentence2[, label] (no "
                "header) or a header naming sentence1 and sentence2",
                path=path,
                line=recs[0][0],
            )
        i1, i2, il = 0, 1, (2 if width == 3 else None)
        body, has_header = recs, False
    out = []
    for line, f in body:
        if len(f) != width:
            raise DataError(f"{len(f)} fields, expected {width}", path=path, line=line)
        label = None if il is None else f[il].strip()
        if label not in (None, "0", "1", _NS):
            raise DataError(f"label {label!r}, expected 0 or 1", path=path, line=line)
        for col, text in (("sentence1", f[i1]), ("sentence2", f[i2])):
            if not text.strip():
                raise DataError(
                    f"empty or whitespace-only {col} (a missing translation is written NS)",
                    path=path,
                    line=line,
                )
        out.append((line, f[i1], f[i2], label))
    return out, has_header


def _pawsx_read(
    folder: str | PathLike[str], langs: Iterable[str] | None, split: str | None
) -> tuple[
    Path,
    dict[str, str],
    dict[tuple[str, str], list[tuple[int, str, str, str | None]]],
    dict[str, int],
    dict[str, bool],
    dict[tuple[str, str], Path],
]:
    _check_split(split, ("train", "dev", "test"), "PAWS-X")
    root = _folder(folder, "PAWS-X")
    main, hf = _pawsx_layout(root)
    files: dict[tuple[str, str], Path] = {}
    for f in sorted(main.iterdir()):
        m = _PAWSX_FILE.match(f.name)
        if not m:
            continue
        key = (_PAWSX_SPLITS[m.group(1)], m.group(2))
        if key in files:
            raise DataError(
                f"two files for split {key[0]!r}, language {key[1]!r}: "
                f"{files[key].name} and {f.name}",
                path=main,
            )
        files[key] = f
    if split is not None:
        files = {k: v for k, v in files.items() if k[0] == split}
    if not files:
        want = f"{split}-<lang>.tsv" if split else "{dev,test}-<lang>.tsv"
        raise DataError(f"no PAWS-X files ({want})", path=main)
    available: dict[str, str] = {}
    for (_, raw), path in sorted(files.items(), key=lambda kv: kv[0][1]):
        available.setdefault(raw, _norm(raw, path=path))
    chosen = set(select_langs(langs, available, where=main))
    data: dict[tuple[str, str], list[tuple[int, str, str, str | None]]] = {}
    for (s, raw), path in sorted(files.items()):
        if raw not in chosen:
            continue
        recs, _ = _pawsx_file(path)
        if s == "test" and hf is not None and all(r[3] is None for r in recs):
            recs = _pawsx_hf_labels(recs, path, hf / f"test-{raw}.tsv")
        data[(s, raw)] = recs
    dropped = {
        f"{s}-{raw}": sum(_NS in (r[1], r[2], r[3]) for r in recs)
        for (s, raw), recs in data.items()
    }
    parallel = _pawsx_parallel(data)
    return main, available, data, dropped, parallel, files


def _pawsx_hf_labels(
    recs: list[tuple[int, str, str, str | None]], path: Path, hf_path: Path
) -> list[tuple[int, str, str, str | None]]:
    """Labels for an unlabelled XTREME test file from the HF export, after checking its text."""
    if not hf_path.is_file():
        return recs
    hf_recs, _ = _pawsx_file(hf_path)
    if len(hf_recs) != len(recs):
        raise DataError(
            f"{hf_path.name} has {len(hf_recs)} pairs but {path.name} has "
            f"{len(recs)}; expected the same pairs",
            path=hf_path,
        )
    out = []
    for (line, s1, s2, _), (hline, h1, h2, lab) in zip(recs, hf_recs, strict=True):
        if (s1, s2) != (h1, h2):
            raise DataError(
                f"text differs from {path.name}:{line}; expected the same pairs in the same order",
                path=hf_path,
                line=hline,
            )
        out.append((line, s1, s2, lab))
    return out


def _pawsx_parallel(
    data: Mapping[tuple[str, str], list[tuple[int, str, str, str | None]]],
) -> dict[str, bool]:
    """Per split: True when every language has the same number of rows and, wherever two
    languages both have a label on a non-NS row, the labels agree (PAWS-X translates the
    same English pairs row by row; this is checked, not assumed)."""
    out = {}
    for s in sorted({k[0] for k in data}):
        tables = [recs for (sp, _), recs in data.items() if sp == s]
        same_len = len({len(t) for t in tables}) == 1
        agree = True
        if same_len:
            for i in range(len(tables[0])):
                labs = {
                    t[i][3]
                    for t in tables
                    if t[i][3] is not None and _NS not in (t[i][1], t[i][2], t[i][3])
                }
                if len(labs) > 1:
                    agree = False
                    break
        out[s] = same_len and agree
    return out


def read_pawsx(
    folder: str | PathLike[str],
    *,
    langs: Iterable[str] | None = None,
    split: Literal["train", "dev", "test"] | None = "dev",
) -> Corpus:
    """Read PAWS-X as a sentence corpus: each pair gives two rows (``s1`` and ``s2``).

    Files are ``{split}-{lang}.tsv`` (``validation`` reads as ``dev``): XTREME's headerless
    ``sentence1, sentence2[, label]`` files, or the Hugging Face export with header
    ``id, sentence1, sentence2, label``. Given the ``paws-x`` folder (with ``xtreme/`` and
    ``hf/``), the XTREME files are read and unlabelled test files take their labels from
    ``hf/test-{lang}.tsv`` when it exists (its text is checked equal, row by row).

    Pairs where a sentence or the label is the placeholder ``NS`` (missing translation) are
    dropped; ``meta["dropped_ns"]`` counts them per ``{split}-{lang}``.

    Row *i* of every language's file of a split translates the same English pair, so rows
    are grouped across languages by ``group = f"{split}:{i}:s1"`` (and ``:s2``), *i* being
    the 0-based pair index before dropping. This is checked per split (equal row counts,
    labels agreeing on every comparable row); a split that fails the check gets no groups
    and ``meta["parallel"][split]`` is False, with a warning that says why. Ids are
    ``f"{lang_raw}:{split}:{i}:s1"``; ``label`` is the pair's label (``"0"``/``"1"``, None
    when the file has none). The same sentence may occur in several pairs (242 repeated
    ``sentence1`` in English dev).

    Parameters
    ----------
    folder : path
        The ``paws-x`` folder, its ``xtreme`` or ``hf`` folder, or any folder of
        ``{split}-{lang}.tsv`` files.
    langs : iterable of str, optional
        Raw (``zh``) or normalised (``cmn_Hans``) codes; all by default.
    split : {"train", "dev", "test"} or None
        One split (default ``dev``: labelled in every language), or None for all.
    """
    main, available, data, dropped, parallel, files = _pawsx_read(folder, langs, split)
    for s, ok in parallel.items():
        if not ok and len([k for k in data if k[0] == s]) > 1:
            counts = ", ".join(f"{raw} {len(r)}" for (sp, raw), r in data.items() if sp == s)
            same = len({len(r) for (sp, _), r in data.items() if sp == s}) == 1
            why = "labels disagree on the same row" if same else f"pairs per file: {counts}"
            warnings.warn(
                f"{main}: PAWS-X {s} files are not row-parallel ({why}); its rows get no "
                "translation groups, so retrieval and other parallel metrics cannot use them",
                stacklevel=2,
            )
    rows = _Rows()
    for (s, raw), recs in data.items():
        path = files[(s, raw)]
        for i, (line, s1, s2, lab) in enumerate(recs):
            if _NS in (s1, s2, lab):
                continue
            for side, text in (("s1", s1), ("s2", s2)):
                rows.add(
                    path=path,
                    line=line,
                    id=f"{raw}:{s}:{i}:{side}",
                    lang=available[raw],
                    lang_raw=raw,
                    text=text,
                    group=f"{s}:{i}:{side}" if parallel[s] else None,
                    label=lab,
                    split=s,
                )
    meta = {"dropped_ns": dropped, "parallel": parallel}
    return rows.corpus(name="pawsx", source=str(main), meta=meta)


def read_pawsx_pairs(
    folder: str | PathLike[str],
    *,
    langs: Iterable[str] | None = None,
    split: Literal["train", "dev", "test"] | None = "dev",
) -> pd.DataFrame:
    """PAWS-X as a pair table (for training and evaluation), ``NS`` pairs dropped.

    Same files and options as :func:`read_pawsx`. Columns: ``lang`` (normalised), ``lang_raw``,
    ``split``, ``pair`` (0-based row index in its file: equal ``pair`` across languages means
    the same English pair), ``sentence1``, ``sentence2``, ``label`` (nullable Int64: 0/1, NA
    when the file has no labels). ``df.attrs["dropped_ns"]`` counts dropped pairs per
    ``{split}-{lang}``.
    """
    _, available, data, dropped, parallel, _ = _pawsx_read(folder, langs, split)
    recs = [
        (available[raw], raw, s, i, s1, s2, None if lab is None else int(lab))
        for (s, raw), rs in data.items()
        for i, (_, s1, s2, lab) in enumerate(rs)
        if _NS not in (s1, s2, lab)
    ]
    cols = ["lang", "lang_raw", "split", "pair", "sentence1", "sentence2", "label"]
    df = pd.DataFrame.from_records(recs, columns=cols)
    df["label"] = df["label"].astype("Int64")
    df.attrs["dropped_ns"] = dropped
    df.attrs["parallel"] = parallel
    return df


# ----------------------------------------------------------------------------- generic tables


def _infer_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        return check_choice("format", fmt, ("tsv", "csv", "jsonl"))
    suffix = path.suffix.lower()
    for fmt_, suffixes in (
        ("tsv", (".tsv", ".tab")),
        ("csv", (".csv",)),
        ("jsonl", (".jsonl", ".ndjson")),
    ):
        if suffix in suffixes:
            return fmt_
    raise DataError(
        f"cannot tell the format from suffix {suffix!r}; name it: format='tsv', "
        "'csv' or 'jsonl' (or --data tsv:/csv:/jsonl:)",
        path=path,
    )


def _mapping(columns: Mapping[str, str] | None, lang: str | None) -> dict[str, str | None]:
    """Field -> source column. Fields the caller does not name map to a same-named column
    when there is one (``text`` -> ``text``), else to nothing."""
    out: dict[str, str | None] = dict(columns or {})
    for k in out:
        check_choice("columns key", k, TABLE_FIELDS)
    if lang is not None and "lang" in out:
        raise ConfigError(
            "give either lang= (one language for every row) or a 'lang' column, not both"
        )
    return out


def _records_corpus(
    records: Iterable[tuple[int, Mapping[str, Any]]],
    available_cols: Sequence[str] | None,
    *,
    path: Path | str,
    columns: Mapping[str, str] | None,
    lang: str | None,
    name: str,
    row_word: str = "line",
) -> Corpus:
    """Corpus from ``(line, record)`` pairs, mapping columns (see :func:`read_table`)."""
    explicit = _mapping(columns, lang)
    rows = _Rows()
    norm_cache: dict[str, str] = {}
    if lang is not None:
        norm_cache[lang] = _norm(lang, path=path)

    def resolve(rec_keys: Sequence[str], line: int) -> dict[str, str | None]:
        got: dict[str, str | None] = {}
        for fld in TABLE_FIELDS:
            if fld in explicit:
                col = explicit[fld]
                if col not in rec_keys:
                    raise DataError(
                        f"no column {col!r} (for {fld}); available columns: "
                        f"{', '.join(map(str, rec_keys))}",
                        path=path,
                        line=None if available_cols is not None else line,
                    )
                got[fld] = col
            elif fld == "lang" and lang is not None:
                got[fld] = None
            else:
                got[fld] = fld if fld in rec_keys else None
        for fld in ("text", "lang"):
            if got[fld] is None and not (fld == "lang" and lang is not None):
                raise DataError(
                    f"no {fld!r} column; available columns: "
                    f"{', '.join(map(str, rec_keys))} (map one with columns="
                    f"{{'{fld}': NAME}}" + (" or pass lang=" if fld == "lang" else "") + ")",
                    path=path,
                    line=None if available_cols is not None else line,
                )
        return got

    fixed = resolve(available_cols, 0) if available_cols is not None else None

    def value(rec: Mapping[str, Any], col: str | None) -> str | None:
        if col is None:
            return None
        v = rec.get(col)
        if v is None or (isinstance(v, float) and v != v):
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return v if isinstance(v, str) else str(v)

    def check_types(rec: Mapping[str, Any], got: Mapping[str, str | None], line: int) -> None:
        # A list or object would be embedded as its JSON text, a number or true/false as
        # "123"/"True": silently not the sentence meant. Ids, groups and labels may be numbers.
        for fld, col in got.items():
            if col is None:
                continue
            v = rec.get(col)
            if v is None or isinstance(v, str):
                continue
            if isinstance(v, (dict, list, tuple)) or (
                fld in ("text", "lang") and not isinstance(v, str)
            ):
                raise DataError(
                    f"column {col!r} ({fld}) holds {type(v).__name__} {_short(v)}; "
                    f"expected {'a string' if fld in ('text', 'lang') else 'a string or number'}",
                    path=path,
                    line=line,
                )

    for n, (line, rec) in enumerate(records):
        got = fixed if fixed is not None else resolve(list(rec), line)
        check_types(rec, got, line)
        text = value(rec, got["text"])
        if text is None:
            raise DataError(f"missing text (column {got['text']!r})", path=path, line=line)
        raw = lang if lang is not None else value(rec, got["lang"])
        if raw is None or not raw.strip():
            raise DataError(f"missing language (column {got['lang']!r})", path=path, line=line)
        raw = raw.strip()
        if raw not in norm_cache:
            norm_cache[raw] = _norm(raw, path=path, line=line)
        rid = value(rec, got["id"])
        rows.add(
            path=path,
            line=line,
            id=rid if rid is not None else f"{raw}:{n}",
            lang=norm_cache[raw],
            lang_raw=raw,
            text=text,
            group=value(rec, got["group"]),
            label=value(rec, got["label"]),
            split=value(rec, got["split"]),
        )
    if not len(rows):
        raise DataError(f"no data rows ({row_word}s)", path=path)
    return rows.corpus(name=name, source=str(path))


def _delimited_records(
    text: str, path: Path | str, delimiter: str
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    recs = _csv_rows(text, Path(str(path)), delimiter)
    first = next(recs, None)
    if first is None:
        raise DataError("empty file (expected a header row naming the columns)", path=path)
    header = [h.strip() for h in first[1]]
    other = "," if delimiter == "\t" else "\t"
    if len(header) == 1 and other in header[0]:
        kind, spec = ("CSV", "csv") if other == "," else ("TSV", "tsv")
        raise DataError(
            f"the header is one column {header[0]!r}: the file looks {kind} "
            f"(use --data {spec}:{path}, or format={spec!r})",
            path=path,
            line=first[0],
        )
    dup = [h for h in header if header.count(h) > 1]
    if dup:
        raise DataError(f"header names column {dup[0]!r} twice", path=path, line=first[0])

    def gen() -> Iterator[tuple[int, dict[str, str]]]:
        for line, f in recs:
            if len(f) != len(header):
                raise DataError(
                    f"{len(f)} fields, expected {len(header)} (as the header: {', '.join(header)})",
                    path=path,
                    line=line,
                )
            yield line, dict(zip(header, f, strict=True))

    return header, gen()


def _short(v: Any, width: int = 40) -> str:
    text = json.dumps(v, ensure_ascii=False) if not isinstance(v, tuple) else repr(v)
    return text if len(text) <= width else text[: width - 1] + "…"


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _jsonl_records(text: str, path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as e:
            raise DataError(
                f"key {e.args[0]!r} appears twice in one object; expected each key once",
                path=path,
                line=i,
            ) from None
        except json.JSONDecodeError as e:
            raise DataError(f"bad JSON: {e.msg} (column {e.colno})", path=path, line=i) from None
        if not isinstance(rec, dict):
            raise DataError(
                f"expected a JSON object per line, got {type(rec).__name__}", path=path, line=i
            )
        yield i, rec


def read_table(
    path: str | PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    lang: str | None = None,
    format: Literal["tsv", "csv", "jsonl"] | None = None,
    name: str | None = None,
) -> Corpus:
    """Read a TSV, CSV or JSONL file of sentences, mapping its columns to corpus fields.

    TSV and CSV need a header row and honour CSV quoting; JSONL holds one object per line.

    Parameters
    ----------
    path : path
        The file.
    columns : mapping, optional
        Corpus field -> column name, for fields ``id, lang, text, group, label, split``
        (e.g. ``{"text": "sentence", "lang": "language"}``). A field not named maps to a
        same-named column when the file has one. ``text`` and ``lang`` are required (``lang``
        unless ``lang=`` is given); ids default to ``f"{lang_raw}:{row}"``.
    lang : str, optional
        One language code for every row (for monolingual files without a language column).
    format : {"tsv", "csv", "jsonl"}, optional
        Inferred from the suffix (``.tsv``/``.tab``, ``.csv``, ``.jsonl``/``.ndjson``) if None.
    name : str, optional
        Corpus name; the file stem by default.

    Raises
    ------
    DataError
        Missing column (the message lists the available ones), wrong field count, bad JSON,
        empty text, unknown language code, duplicated id, two rows of one language in a group
        (each naming file and line).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "mini.tsv"
    >>> _ = p.write_text("sent\\tlanguage\\nHallo Welt\\tde\\nHello world\\ten\\n")
    >>> c = read_table(p, columns={"text": "sent", "lang": "language"})
    >>> list(c.rows["lang"]), list(c.rows["id"])
    (['deu', 'eng'], ['de:0', 'en:1'])
    """
    p = Path(path)
    if not p.exists():
        raise DataError("no such file or folder", path=p)
    fmt = _infer_format(p, format)
    text = _decode(p)
    name = name or p.stem
    if fmt == "jsonl":
        return _records_corpus(
            _jsonl_records(text, p), None, path=p, columns=columns, lang=lang, name=name
        )
    header, recs = _delimited_records(text, p, "\t" if fmt == "tsv" else ",")
    return _records_corpus(recs, header, path=p, columns=columns, lang=lang, name=name)


# ----------------------------------------------------------------------------- Hugging Face


def read_hf(
    name: str,
    *,
    config: str | None = None,
    split: str = "test",
    columns: Mapping[str, str] | None = None,
    lang: str | None = None,
    revision: str | None = None,
) -> Corpus:
    """Read a Hugging Face dataset split (needs ``datasets``; honours ``HF_HUB_OFFLINE``).

    Columns map to corpus fields as in :func:`read_table`; errors name the row (1-based).

    Parameters
    ----------
    name : str
        Dataset name on the hub (``Davlan/sib200``) or a local dataset script/folder.
    config : str, optional
        Configuration (``eng_Latn``).
    split : str
        Split to read.
    columns, lang
        As in :func:`read_table`.
    revision : str, optional
        Git revision of the dataset repository.

    Raises
    ------
    ImportError
        ``datasets`` is not installed.
    DataError
        The dataset cannot be loaded, or a row is bad.
    """
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "Hugging Face datasets input needs `datasets`: pip install 'xalign[hf]'"
        ) from None
    where = f"hf:{name}" + (f":{config}" if config else "") + f"[{split}]"
    try:
        ds = datasets.load_dataset(name, config, split=split, revision=revision)
    except Exception as e:
        raise DataError(
            f"cannot load Hugging Face dataset: {type(e).__name__}: {e}", path=where
        ) from None
    cols = list(getattr(ds, "column_names", None) or [])
    records = ((i + 1, rec) for i, rec in enumerate(ds))
    return _records_corpus(
        records,
        cols or None,
        path=where,
        columns=columns,
        lang=lang,
        name=name.rsplit("/", 1)[-1],
        row_word="row",
    )
