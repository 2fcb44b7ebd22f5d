"""The Corpus table: rows ``id, lang, lang_raw, text`` plus optional ``group, label, split``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from xalign.errors import DataError

__all__ = ["COLUMNS", "Corpus"]

#: Column order of ``Corpus.rows``. ``group``, ``label`` and ``split`` may be all-null.
COLUMNS = ("id", "lang", "lang_raw", "text", "group", "label", "split")


@dataclass(frozen=True, eq=False)
class Corpus:
    """A multilingual corpus: one row per sentence.

    Parameters
    ----------
    rows : DataFrame
        Columns ``COLUMNS``. ``id`` (str, unique), ``lang`` (normalised ISO 639-3 code, with
        ``_Script`` where the script matters, e.g. ``cmn_Hans``), ``lang_raw`` (the dataset's own
        code), ``text`` (non-empty str), ``group`` (str or null: rows sharing a group translate
        each other), ``label`` (str or null), ``split`` (str or null).
    name : str
        Short human name (``tatoeba``, ``sib200``, ``sample``...).
    source : str
        The ``--data`` spec or path it was read from (recorded in manifests).
    """

    rows: pd.DataFrame
    name: str = "corpus"
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = self.rows
        missing = [c for c in ("id", "lang", "text") if c not in rows.columns]
        if missing:
            raise DataError(
                f"corpus rows lack required column(s) {missing}", path=self.source or None
            )
        rows = rows.copy()
        for c in ("id", "lang", "text"):
            null = rows[c].isna().to_numpy()
            if null.any():
                # Checked before astype(str), which would turn None into the text "None".
                raise DataError(
                    f"missing {c} (null) in {int(null.sum())} row(s), first at row "
                    f"{int(null.argmax())} (0-based)",
                    path=self.source or self.name,
                )
        if "lang_raw" not in rows.columns:
            rows["lang_raw"] = rows["lang"]
        else:
            rows["lang_raw"] = rows["lang_raw"].where(rows["lang_raw"].notna(), rows["lang"])
        for c in ("group", "label", "split"):
            if c not in rows.columns:
                rows[c] = None
        rows = rows[list(COLUMNS)].reset_index(drop=True)
        for c in ("id", "lang", "lang_raw", "text"):
            rows[c] = rows[c].astype(str)
        for c in ("group", "label", "split"):
            # object dtype with None for missing: pandas 3 would infer a str dtype holding NaN,
            # which changes the fingerprint (NaN vs null) and breaks ``v is None`` checks.
            vals = [None if pd.isna(v) else str(v) for v in rows[c].tolist()]
            rows[c] = pd.Series(vals, index=rows.index, dtype=object)
        object.__setattr__(self, "rows", rows)
        self._validate()

    def _validate(self) -> None:
        rows = self.rows
        where = self.source or self.name
        if len(rows) == 0:
            raise DataError("corpus is empty (no rows)", path=where)
        blank = rows["text"].str.strip() == ""
        if blank.any():
            first = rows.loc[blank, "id"].iloc[0]
            raise DataError(
                f"empty or whitespace-only text in {int(blank.sum())} row(s), first id {first!r}",
                path=where,
            )
        dup = rows["id"].duplicated()
        if dup.any():
            raise DataError(f"duplicate row id {rows.loc[dup, 'id'].iloc[0]!r}", path=where)
        grouped = rows[rows["group"].notna()]
        if len(grouped):
            twice = grouped.duplicated(["group", "lang"])
            if twice.any():
                g, lang = grouped.loc[twice, ["group", "lang"]].iloc[0]
                raise DataError(
                    f"group {g!r} has two rows in language {lang!r} "
                    "(a group holds one translation per language)",
                    path=where,
                )

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def languages(self) -> list[str]:
        """Normalised language codes in order of first appearance."""
        return list(dict.fromkeys(self.rows["lang"]))

    @property
    def is_parallel(self) -> bool:
        """True when some group has rows in two or more languages."""
        g = self.rows["group"].dropna()
        return bool(len(g)) and bool((self.rows.groupby("group")["lang"].nunique() > 1).any())

    def fingerprint(self) -> str:
        """sha256 of the rows in canonical form (stable across pandas versions)."""
        h = hashlib.sha256()
        for rec in self.rows[list(COLUMNS)].itertuples(index=False, name=None):
            h.update(json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode())
            h.update(b"\n")
        return h.hexdigest()

    def select(
        self,
        *,
        langs: Sequence[str] | None = None,
        split: str | Iterable[str] | None = None,
        limit_per_lang: int | None = None,
    ) -> Corpus:
        """A sub-corpus: only these languages / splits, at most ``limit_per_lang`` rows each.

        Languages are matched on ``lang`` or ``lang_raw`` (after normalisation by the caller),
        and an unknown language raises a DataError listing the available ones.
        """
        rows = self.rows
        if isinstance(langs, str):
            langs = [langs]
        if langs is not None:
            avail = set(rows["lang"]) | set(rows["lang_raw"])
            unknown = [x for x in langs if x not in avail]
            if unknown:
                raise DataError(
                    f"language(s) {unknown} not in corpus; available: {', '.join(self.languages)}",
                    path=self.source or self.name,
                )
            keep = set(langs)
            rows = rows[rows["lang"].isin(keep) | rows["lang_raw"].isin(keep)]
        if split is not None:
            splits = {split} if isinstance(split, str) else set(split)
            have = sorted(set(self.rows["split"].dropna()))
            if not have:
                raise DataError(
                    f"split(s) {sorted(splits)} asked for, but this corpus has no splits "
                    "(its rows carry no split); leave the split out",
                    path=self.source or self.name,
                )
            rows = rows[rows["split"].isin(splits)]
            if len(rows) == 0:
                raise DataError(
                    f"no rows in split(s) {sorted(splits)}; available: "
                    f"{sorted(set(self.rows['split'].dropna()))}",
                    path=self.source or self.name,
                )
        if limit_per_lang is not None:
            rows = rows.groupby("lang", sort=False).head(limit_per_lang)
        return Corpus(rows, name=self.name, source=self.source, meta=dict(self.meta))

    @classmethod
    def from_records(
        cls, records: Iterable[dict[str, Any]], *, name: str = "corpus", source: str = ""
    ) -> Corpus:
        """Build from dicts with at least ``id``, ``lang`` and ``text``."""
        return cls(pd.DataFrame.from_records(list(records)), name=name, source=source)
