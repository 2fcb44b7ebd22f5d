"""Tasks for zero-shot cross-lingual transfer: English training data, per-language test sets.

* ``sib200``: SIB-200 topic classification (7 labels). Train ``eng_Latn/train.tsv``, select on
  ``eng_Latn/dev.tsv``, test on every language's ``test.tsv``.
* ``pawsx``: PAWS-X paraphrase pairs (labels 0/1). Trains on ``train-en.tsv`` when the folder has
  it, else on the English dev set minus ``dev_holdout`` pairs kept for selection (the layout of
  a PAWS-X copy, which has no English train file). Tests on every language whose
  test file has labels (de and zh there, via ``hf/``).
* ``tsv``: a folder of XTREME-style ``{train,dev,test}-{lang}.tsv`` files (e.g. XNLI): tab-split,
  no CSV quoting; either a header naming ``label`` and ``text`` (or ``sentence1``
  [+ ``sentence2``]), or no header with ``text, label`` or ``sentence1, sentence2, label``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError

__all__ = ["TaskData", "load_task"]

_COLS = ["id", "text_a", "text_b", "label"]
_DEFAULT_TRAIN_LANG = {"sib200": "eng_Latn", "pawsx": "en", "tsv": "en"}


@dataclass
class TaskData:
    """A loaded task. Frames have columns ``id, text_a, text_b, label`` (label = index into
    ``labels``; ``text_b`` None for single-sentence tasks); ``test`` maps the normalised
    language code to its frame, ``lang_raw`` to the dataset's own code."""

    name: str
    labels: list[str]
    train: pd.DataFrame
    dev: pd.DataFrame
    test: dict[str, pd.DataFrame]
    train_lang: str
    pair: bool
    lang_raw: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "labels": self.labels,
            "train_lang": self.train_lang,
            "n_train": len(self.train),
            "n_dev": len(self.dev),
            "test": {lang: len(df) for lang, df in self.test.items()},
            "pair": self.pair,
            "notes": self.notes,
            "sources": self.sources,
        }


def _strip_kind(data: str | None, task: str) -> Path:
    if not data:
        raise ConfigError(f"--data is required for task {task!r} (a folder path or {task}:PATH)")
    kind, sep, rest = data.partition(":")
    aliases = {"sib-200": "sib200", "paws-x": "pawsx"}
    if sep and aliases.get(kind.lower(), kind.lower()) in ("sib200", "pawsx", "tsv"):
        if aliases.get(kind.lower(), kind.lower()) != task:
            raise ConfigError(f"--data {data!r} names kind {kind!r} but --task is {task!r}")
        data = rest
    p = Path(data).expanduser()
    if not p.exists():
        raise DataError(f"no such file or folder (expected the {task} data folder)", path=p)
    return p


def _subset(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or n >= len(df):
        return df.reset_index(drop=True)
    keep = np.sort(np.random.default_rng(seed).permutation(len(df))[:n])
    return df.iloc[keep].reset_index(drop=True)


def _frame(recs: list[tuple[Any, ...]]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(recs, columns=_COLS)
    df["text_b"] = df["text_b"].astype(object).where(df["text_b"].notna(), None)
    df["label"] = df["label"].astype("int64")
    return df


def _check_labels(
    values: Sequence[str | None],
    labels: list[str],
    where: Sequence[tuple[Path, int | None]],
    what: str,
    aliases: dict[str, str] | None = None,
) -> list[int]:
    index = {lab: i for i, lab in enumerate(labels)}
    out = []
    for v, (path, line) in zip(values, where, strict=True):
        if aliases and v in aliases:
            v = aliases[v]
        if v is None or str(v).strip() == "":
            raise DataError(f"missing label in {what}", path=path, line=line)
        if v not in index:
            raise DataError(
                f"label {v!r} is not in the label set {labels} ({what})", path=path, line=line
            )
        out.append(index[v])
    return out


# ----------------------------------------------------------------------------- SIB-200


def _sib_line(path: Path, index_id: str) -> int | None:
    """1-based line of the row with ``index_id`` in a SIB-200 file (for error messages)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    start = 1
    for fields in reader:
        if fields and fields[0].strip() == index_id:
            return start
        start = reader.line_num + 1
    return None


def _load_sib200(cfg: Any) -> TaskData:
    from xalign.data import read_sib200

    root = _strip_kind(cfg.data, "sib200")
    root = root / "annotated" if (root / "annotated").is_dir() else root
    train_lang = cfg.train_lang or _DEFAULT_TRAIN_LANG["sib200"]
    splits = {}
    for split in ("train", "dev"):
        try:
            splits[split] = read_sib200(root, langs=[train_lang], split=split)  # type: ignore[arg-type]
        except DataError as e:
            raise DataError(f"training language {train_lang!r}, split {split}: {e}") from None
    try:
        test = read_sib200(root, langs=cfg.test_langs, split="test")
    except DataError as e:
        raise DataError(f"test languages: {e}") from None
    raw_train = splits["train"].rows["lang_raw"].iloc[0]
    labels_file = root / raw_train / "labels.txt"
    if cfg.labels:
        labels = list(cfg.labels)
    elif labels_file.is_file():
        labels = [x.strip() for x in labels_file.read_text(encoding="utf-8").splitlines()]
        labels = [x for x in labels if x]
    else:
        labels = sorted(set(splits["train"].rows["label"].dropna()))

    def frame(rows: pd.DataFrame, what: str) -> pd.DataFrame:
        index = {lab: i for i, lab in enumerate(labels)}
        y = []
        for rid, raw, split, v in zip(
            rows["id"], rows["lang_raw"], rows["split"], rows["label"], strict=True
        ):
            v = (cfg.label_aliases or {}).get(v, v)
            if v not in index:
                # The reader keeps no line numbers: find the row's line on this error path only.
                path = root / raw / f"{split}.tsv"
                line = _sib_line(path, rid.rsplit(":", 1)[-1])
                msg = (
                    f"missing label in {what}"
                    if v is None
                    else f"label {v!r} is not in the label set {labels} ({what})"
                )
                raise DataError(msg, path=path, line=line)
            y.append(index[v])
        return _frame(
            [(i, t, None, lab) for i, t, lab in zip(rows["id"], rows["text"], y, strict=True)]
        )

    train = frame(splits["train"].rows, "train")
    dev = frame(splits["dev"].rows, "dev")
    tests: dict[str, pd.DataFrame] = {}
    lang_raw: dict[str, str] = {}
    for lang, rows in test.rows.groupby("lang", sort=False):
        tests[str(lang)] = frame(rows, f"test {lang}")
        lang_raw[str(lang)] = str(rows["lang_raw"].iloc[0])
    train_norm = str(splits["train"].rows["lang"].iloc[0])
    lang_raw.setdefault(train_norm, raw_train)
    return TaskData(
        name="sib200",
        labels=labels,
        train=train,
        dev=dev,
        test=tests,
        train_lang=train_norm,
        pair=False,
        lang_raw=lang_raw,
        sources={"root": str(root)},
    )


# ----------------------------------------------------------------------------- PAWS-X


def _load_pawsx(cfg: Any) -> TaskData:
    from xalign.data import normalize_lang, read_pawsx_pairs

    root = _strip_kind(cfg.data, "pawsx")
    main = root / "xtreme" if (root / "xtreme").is_dir() else root
    train_lang = cfg.train_lang or _DEFAULT_TRAIN_LANG["pawsx"]
    labels = list(cfg.labels) if cfg.labels else ["0", "1"]
    notes: list[str] = []

    def frame(df: pd.DataFrame, what: str, path: Path) -> pd.DataFrame:
        where = [(path, None) for _ in range(len(df))]
        if df["label"].isna().any():
            pair = int(df.loc[df["label"].isna(), "pair"].iloc[0])
            raise DataError(
                f"missing label in {what} (pair {pair}, 0-based): the file has no label column",
                path=path,
                line=pair + 1 if path.parent.name != "hf" else pair + 2,
            )
        y = _check_labels(
            [str(int(v)) for v in df["label"]], labels, where, what, cfg.label_aliases
        )
        ids = [
            f"{r}:{s}:{p}" for r, s, p in zip(df["lang_raw"], df["split"], df["pair"], strict=True)
        ]
        return _frame(list(zip(ids, df["sentence1"], df["sentence2"], y, strict=True)))

    has_train = (main / f"train-{train_lang}.tsv").is_file()
    dev_df = read_pawsx_pairs(root, langs=[train_lang], split="dev")
    dev_path = main / f"dev-{train_lang}.tsv"
    if has_train:
        train_df = read_pawsx_pairs(root, langs=[train_lang], split="train")
        train = frame(train_df, "train", main / f"train-{train_lang}.tsv")
        dev = frame(dev_df, "dev", dev_path)
    else:
        full = frame(dev_df, "dev", dev_path)
        if cfg.dev_holdout < 1 or cfg.dev_holdout >= len(full):
            raise ConfigError(
                f"--dev-holdout {cfg.dev_holdout}: {main} has no train-{train_lang}.tsv, so the "
                f"English dev set ({len(full)} pairs) is split into train and a held-out dev; "
                f"hold out between 1 and {len(full) - 1} pairs"
            )
        perm = np.random.default_rng(cfg.data_seed).permutation(len(full))
        hold = np.sort(perm[: cfg.dev_holdout])
        rest = np.sort(perm[cfg.dev_holdout :])
        train = full.iloc[rest].reset_index(drop=True)
        dev = full.iloc[hold].reset_index(drop=True)
        notes.append(
            f"no train-{train_lang}.tsv in {main}: training on dev-{train_lang}.tsv minus "
            f"{cfg.dev_holdout} held-out pairs (data_seed {cfg.data_seed}), which select the "
            "checkpoint"
        )
    test_df = read_pawsx_pairs(root, langs=cfg.test_langs, split="test")
    tests: dict[str, pd.DataFrame] = {}
    lang_raw: dict[str, str] = {}
    unlabelled = []
    for raw, df in test_df.groupby("lang_raw", sort=True):
        path = main / f"test-{raw}.tsv"
        if df["label"].isna().all():
            unlabelled.append(str(raw))
            continue
        lang = str(df["lang"].iloc[0])
        tests[lang] = frame(df, f"test {raw}", path)
        lang_raw[lang] = str(raw)
    if unlabelled and cfg.test_langs is not None:
        raise DataError(
            f"test language(s) {unlabelled} have no labels (test-<lang>.tsv without a label "
            f"column and no hf/test-<lang>.tsv); labelled: {sorted(lang_raw.values())}",
            path=main,
        )
    if unlabelled:
        notes.append(f"test languages without labels skipped: {', '.join(unlabelled)}")
    if not tests:
        raise DataError(
            "no labelled test-<lang>.tsv files (zero-shot test needs labels)", path=main
        )
    train_norm = normalize_lang(train_lang)
    lang_raw.setdefault(train_norm, train_lang)
    return TaskData(
        name="pawsx",
        labels=labels,
        train=train,
        dev=dev,
        test=tests,
        train_lang=train_norm,
        pair=True,
        lang_raw=lang_raw,
        notes=notes,
        sources={"root": str(main)},
    )


# ----------------------------------------------------------------------------- generic TSV


def _read_tsv_task_file(path: Path) -> tuple[list[tuple[int, str, str | None, str | None]], bool]:
    """``[(line, text_a, text_b, label)]`` of an XTREME-style TSV (tab-split, no quoting)."""
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise DataError(
            f"invalid UTF-8 at byte {e.start}; expected UTF-8 text", path=path
        ) from None
    lines = [(i, ln.rstrip("\r")) for i, ln in enumerate(text.split("\n"), start=1) if ln.strip()]
    if not lines:
        raise DataError("empty file", path=path)
    head = [h.strip().lower() for h in lines[0][1].split("\t")]
    expected = (
        "expected text<TAB>label or sentence1<TAB>sentence2<TAB>label (no header), or a "
        "header naming label and text (or sentence1[, sentence2])"
    )
    if "label" in head and ("text" in head or "sentence1" in head):
        ia = head.index("text") if "text" in head else head.index("sentence1")
        ib = head.index("sentence2") if "sentence2" in head else None
        il = head.index("label")
        width, body = len(head), lines[1:]
    else:
        width = len(lines[0][1].split("\t"))
        if width == 2:
            ia, ib, il = 0, None, 1
        elif width == 3:
            ia, ib, il = 0, 1, 2
        else:
            raise DataError(
                f"{width} tab-separated fields; {expected}", path=path, line=lines[0][0]
            )
        body = lines
    out = []
    for line, raw in body:
        f = raw.split("\t")
        if len(f) != width:
            raise DataError(f"{len(f)} fields, expected {width}; {expected}", path=path, line=line)
        a = f[ia]
        b = f[ib] if ib is not None else None
        if not a.strip() or (b is not None and not b.strip()):
            raise DataError("empty text", path=path, line=line)
        lab = f[il].strip()
        out.append((line, a, b, lab or None))
    return out, ib is not None


def _load_tsv(cfg: Any) -> TaskData:
    from xalign.data import normalize_lang

    root = _strip_kind(cfg.data, "tsv")
    if not root.is_dir():
        raise DataError("expected a folder of {train,dev,test}-<lang>.tsv files", path=root)
    train_lang = cfg.train_lang or _DEFAULT_TRAIN_LANG["tsv"]
    train_path = root / f"train-{train_lang}.tsv"
    if not train_path.is_file():
        raise DataError(f"no train-{train_lang}.tsv (the English training file)", path=root)
    train_recs, pair = _read_tsv_task_file(train_path)
    aliases = cfg.label_aliases or {}
    labels = (
        list(cfg.labels)
        if cfg.labels
        else sorted({aliases.get(r[3], r[3]) for r in train_recs if r[3]})
    )
    if len(labels) < 2:
        raise DataError(
            f"fewer than 2 distinct labels ({labels}) in the training file", path=train_path
        )
    notes: list[str] = []

    def frame(
        recs: list[tuple[int, str, str | None, str | None]], path: Path, what: str
    ) -> pd.DataFrame:
        y = _check_labels(
            [r[3] for r in recs], labels, [(path, r[0]) for r in recs], what, cfg.label_aliases
        )
        stem = path.stem
        return _frame([(f"{stem}:{r[0]}", r[1], r[2], lab) for r, lab in zip(recs, y, strict=True)])

    train = frame(train_recs, train_path, "train")
    dev_path = root / f"dev-{train_lang}.tsv"
    if dev_path.is_file():
        dev = frame(_read_tsv_task_file(dev_path)[0], dev_path, "dev")
    else:
        if cfg.dev_holdout < 1 or cfg.dev_holdout >= len(train):
            raise ConfigError(
                f"--dev-holdout {cfg.dev_holdout}: no dev-{train_lang}.tsv in {root}, so a dev set "
                f"is held out of the {len(train)} training rows; choose 1..{len(train) - 1}"
            )
        perm = np.random.default_rng(cfg.data_seed).permutation(len(train))
        dev = train.iloc[np.sort(perm[: cfg.dev_holdout])].reset_index(drop=True)
        train = train.iloc[np.sort(perm[cfg.dev_holdout :])].reset_index(drop=True)
        notes.append(f"no dev-{train_lang}.tsv: {cfg.dev_holdout} training rows held out as dev")
    available = sorted(
        p.name[len("test-") : -len(".tsv")] for p in root.glob("test-*.tsv") if p.is_file()
    )
    wanted = list(cfg.test_langs) if cfg.test_langs is not None else available
    missing = [x for x in wanted if x not in available]
    if missing or not wanted:
        raise DataError(
            f"test language(s) {missing or '(none)'} have no test-<lang>.tsv; available: "
            f"{', '.join(available) or 'none'}",
            path=root,
        )
    tests: dict[str, pd.DataFrame] = {}
    lang_raw: dict[str, str] = {}
    for raw in wanted:
        path = root / f"test-{raw}.tsv"
        lang = normalize_lang(raw, source=path)
        tests[lang] = frame(_read_tsv_task_file(path)[0], path, f"test {raw}")
        lang_raw[lang] = raw
    train_norm = normalize_lang(train_lang, source=train_path)
    lang_raw.setdefault(train_norm, train_lang)
    return TaskData(
        name="tsv",
        labels=labels,
        train=train,
        dev=dev,
        test=tests,
        train_lang=train_norm,
        pair=pair,
        lang_raw=lang_raw,
        notes=notes,
        sources={"root": str(root)},
    )


def load_task(config: Any) -> TaskData:
    """Load the task a :class:`~xalign.train.TrainConfig` names, with its limits applied.

    Raises
    ------
    DataError
        Missing files, labels missing or outside the label set (file and line), test languages
        absent, unlabelled test sets.
    ConfigError
        Inconsistent options (e.g. ``--data`` of another kind).
    """
    loader = {"sib200": _load_sib200, "pawsx": _load_pawsx, "tsv": _load_tsv}[config.task]
    task = loader(config)
    task.train = _subset(task.train, config.train_limit, config.data_seed)
    task.dev = _subset(task.dev, config.dev_limit, config.data_seed)
    if config.test_limit_per_lang is not None:
        task.test = {
            k: v.head(config.test_limit_per_lang).reset_index(drop=True)
            for k, v in task.test.items()
        }
    return task
