"""Running the metrics over stores: one tidy results table for every store × metric × layer."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError, StoreError, XAlignError
from xalign.metrics._checks import check_finite
from xalign.metrics._config import METRIC_GROUPS, MetricsConfig, split_store_arg
from xalign.results import RESULTS_COLUMNS, protocol_json

__all__ = [
    "METRIC_GROUPS",
    "RESULTS_COLUMNS",
    "IncompleteResultsError",
    "MetricsConfig",
    "compute_metrics",
    "summarize",
]


class IncompleteResultsError(XAlignError):
    """A requested metric group failed part-way; ``results`` holds what the others computed.

    The command line writes ``results`` (with the failure in its notes) and exits 1.
    """

    def __init__(self, message: str, results: pd.DataFrame) -> None:
        super().__init__(message)
        self.results = results


def _parse_store_arg(arg: str) -> tuple[str | None, str]:
    return split_store_arg(arg)


def _open_stores(cfg: MetricsConfig) -> list[tuple[str, Any]]:
    from xalign.store import Store

    out = []
    for arg in cfg.stores:
        label, path = _parse_store_arg(arg)
        store = Store.open(path)
        _check_readable(store, Path(path))
        out.append((label or store.label, store))
    labels = [lab for lab, _ in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"store labels must be unique, got {labels}; name them label=path")
    return out


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _check_readable(store: Any, path: Path) -> None:
    """Read the row table and the manifest facts every group relies on, once, up front.

    A damaged file fails here with one line naming it, not part-way through a metric.
    """
    try:
        _ = store.rows
    except XAlignError:
        raise
    except (OSError, ValueError) as e:
        raise StoreError(
            f"{path / 'rows.parquet'}: cannot read the store's row table ({_first_line(e)})"
        ) from None
    try:
        _ = (store.layers, store.poolings, store.attention_layers, store.encoder["num_layers"])
        _ = (str(store.corpus["fingerprint"]), store.attention_mode, store.has_tokens)
    except (KeyError, TypeError, ValueError) as e:
        raise StoreError(
            f"{path / 'manifest.json'}: missing or malformed entry ({_first_line(e)})"
        ) from None


def _check_same_corpus(stores: list[tuple[str, Any]]) -> None:
    (la, a), rest = stores[0], stores[1:]
    for lb, b in rest:
        fa, fb = a.corpus["fingerprint"], b.corpus["fingerprint"]
        if fa != fb:
            raise DataError(
                f"stores {la!r} ({a.path}) and {lb!r} ({b.path}) were extracted from different "
                f"corpora (fingerprints {fa[:12]}… vs {fb[:12]}…; {a.corpus['n_rows']} vs "
                f"{b.corpus['n_rows']} rows): before/after comparisons need the same rows. "
                "Re-extract both over the same --data, or pass --independent to compute "
                "per-store metrics only"
            )


def _language_pairs(langs: Sequence[str], pivot: str | None) -> list[tuple[str, str]]:
    if pivot and pivot in langs:
        return [(x, pivot) for x in langs if x != pivot]
    return list(itertools.combinations(langs, 2))


def _aligned(
    rows: pd.DataFrame,
    a: str,
    b: str,
    cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in ``rows``) of the parallel rows of languages a and b, aligned by group.

    ``cache`` keeps them per pair for a caller that passes the same ``rows`` again.
    """
    if cache is not None:
        if (a, b) not in cache:
            cache[(a, b)] = _aligned(rows, a, b)
        return cache[(a, b)]
    ra = rows[(rows["lang"] == a) & rows["group"].notna()]
    rb = rows[(rows["lang"] == b) & rows["group"].notna()]
    ia = pd.Series(ra.index.to_numpy(), index=ra["group"].to_numpy())
    ib = pd.Series(rb.index.to_numpy(), index=rb["group"].to_numpy())
    common = ia.index.intersection(ib.index, sort=False)
    return ia.loc[common].to_numpy(), ib.loc[common].to_numpy()


def _protocol(d: dict[str, Any]) -> str:
    return protocol_json(d)


def _retrieval(
    X: np.ndarray,
    rows: pd.DataFrame,
    cfg: MetricsConfig,
    centered: bool,
    pooling: str,
    aligned: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[dict[str, Any]]:
    """Tatoeba-style accuracy for each language pair, both directions and their mean.

    ``X`` is already language-centred when ``centered``; rows are paired through ``group``.
    """
    from xalign.metrics._retrieval import tatoeba_accuracy
    from xalign.metrics._uncertainty import bootstrap_ci

    texts = rows["text"].to_numpy(dtype=object)
    out: list[dict[str, Any]] = []
    langs = list(dict.fromkeys(rows["lang"]))
    for a, b in _language_pairs(langs, cfg.pivot):
        ia, ib = _aligned(rows, a, b, aligned)
        if len(ia) < 2:
            continue
        for scoring in cfg.scoring:
            r = tatoeba_accuracy(
                X[ia],
                X[ib],
                direction="both",
                scoring=scoring,
                k=cfg.k if scoring == "margin" else None,
                dedup_texts=(list(texts[ia]), list(texts[ib])) if cfg.dedup else None,
                backend=cfg.backend,
            )
            proto = {k: v for k, v in r["protocol"].items() if k != "center"}
            proto.update(pooling=pooling, centered=centered, seed=cfg.seed, n_boot=cfg.bootstrap)
            both = np.concatenate([r["correct_src2tgt"], r["correct_tgt2src"]])
            for name, src, tgt, correct in (
                ("src2tgt", a, b, r["correct_src2tgt"]),
                ("tgt2src", b, a, r["correct_tgt2src"]),
                ("mean", a, b, both),
            ):
                lo, hi = (np.nan, np.nan)
                if cfg.bootstrap:
                    lo, hi = bootstrap_ci(
                        correct.astype(float), n_boot=cfg.bootstrap, seed=cfg.seed
                    )
                direction = "mean of both" if name == "mean" else "lang queries, lang2 searched"
                out.append(
                    {
                        "metric": "retrieval_acc_mean" if name == "mean" else "retrieval_acc",
                        "lang": src,
                        "lang2": tgt,
                        "value": r[f"acc_{name}"],
                        "n": r["n"],
                        "ci_low": lo,
                        "ci_high": hi,
                        "protocol": _protocol({**proto, "direction": direction}),
                    }
                )
    return out


def _bucc(
    X: np.ndarray,
    rows: pd.DataFrame,
    cfg: MetricsConfig,
    centered: bool,
    pooling: str,
    aligned: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[dict[str, Any]]:
    """BUCC-style mining P/R/F1 per language pair (needs at least 20 parallel rows)."""
    from xalign.metrics._bucc import bucc_evaluate

    out = []
    langs = list(dict.fromkeys(rows["lang"]))
    for a, b in _language_pairs(langs, cfg.pivot):
        ia, ib = _aligned(rows, a, b, aligned)
        if len(ia) < 20:
            continue
        r = bucc_evaluate(X[ia], X[ib], seed=cfg.seed, k=cfg.k, backend=cfg.backend)
        proto = {k: v for k, v in r["protocol"].items() if k != "center"}
        proto.update(pooling=pooling, centered=centered)
        for m in ("precision", "recall", "f1"):
            out.append(
                {
                    "metric": f"bucc_{m}",
                    "lang": a,
                    "lang2": b,
                    "value": r[m],
                    "n": r["n_gold_test"],
                    "protocol": _protocol(proto),
                }
            )
    return out


def _with_columns(df: pd.DataFrame, store: Any, label: str, layer: int) -> pd.DataFrame:
    df = df.copy()
    df.insert(0, "layer", layer)
    df.insert(0, "checkpoint", label)
    df.insert(0, "store", str(store.path))
    return df[list(RESULTS_COLUMNS)]


def _records(records: list[dict[str, Any]]) -> pd.DataFrame:
    from xalign.metrics._tidy import tidy_frame

    return tidy_frame(records)


def compute_metrics(config: MetricsConfig) -> pd.DataFrame:
    """Compute the requested metric groups for every store and layer; returns the results table.

    Every request is checked against every store **before** any computation
    (:func:`plan_metrics`): a group asked for by name that a store cannot support raises
    :class:`~xalign.errors.ConfigError` naming the store and what is missing; under ``all``
    such a group is skipped with a note (``results.attrs["notes"]``). A group that still fails
    part-way does not discard the others: :class:`IncompleteResultsError` carries their rows
    (``.results``; its notes name the failure).
    """
    with warnings.catch_warnings():
        # Tatoeba-like corpora pair every language with English only: the other pairs have no
        # parallel rows by construction, which is not worth a warning per layer.
        warnings.filterwarnings("ignore", message=".*omitted language pair", category=UserWarning)
        return _compute(config)


#: Groups computed from pooled sentence vectors, one layer at a time.
_SENTENCE_GROUPS = ("retrieval", "clusters", "probe", "cka", "isotropy", "bucc")
#: Fewest parallel rows a language pair needs, per group (smaller pairs are left out).
_MIN_PARALLEL = {"retrieval": 2, "bucc": 20, "cka": 2}
_PARALLEL_WHY = "a parallel corpus (rows that translate each other share a 'group')"
_LISTED = 8


def _listing(items: Sequence[str]) -> str:
    more = len(items) - _LISTED
    return ", ".join(items[:_LISTED]) + (f" ... and {more} more" if more > 0 else "")


class _Facts:
    """What one store holds for this request: rows after ``--langs``, languages, parallel pairs."""

    def __init__(self, label: str, store: Any, cfg: MetricsConfig) -> None:
        self.label, self.store = label, store
        self.rows = store.rows.iloc[store.select(lang=cfg.langs)].reset_index(drop=True)
        if self.rows.empty:
            raise ConfigError(f"store {store.path} has no rows for --langs {cfg.langs}")
        self.counts = self.rows["lang"].value_counts(sort=False)
        self.langs = list(dict.fromkeys(self.rows["lang"]))
        with_group = self.rows[self.rows["group"].notna()]
        self.groups_of = {
            lang: set(g["group"].tolist()) for lang, g in with_group.groupby("lang", sort=False)
        }
        self._shared: dict[tuple[str, str], int] = {}

    def shared(self, a: str, b: str) -> int:
        """Translation groups with a row in both languages."""
        key = (a, b) if a <= b else (b, a)
        if key not in self._shared:
            self._shared[key] = len(self.groups_of.get(a, set()) & self.groups_of.get(b, set()))
        return self._shared[key]

    def pairs(self, pivot: str | None, minimum: int) -> tuple[list[tuple[str, str]], list[str]]:
        """Language pairs (``--pivot`` rule) with at least ``minimum`` parallel rows; the rest."""
        ok, short = [], []
        for a, b in _language_pairs(self.langs, pivot):
            n = self.shared(a, b)
            (ok.append((a, b)) if n >= minimum else short.append(f"{a}-{b} ({n})"))
        return ok, short

    def any_pair(self, minimum: int) -> bool:
        return any(self.shared(a, b) >= minimum for a, b in itertools.combinations(self.langs, 2))

    def few_rows(self, minimum: int) -> list[str]:
        return [f"{lang} ({int(n)})" for lang, n in self.counts.items() if n < minimum]


def _need_languages(f: _Facts, minimum_rows: int, why: str) -> str | None:
    if len(f.langs) < 2:
        return f"needs at least 2 languages ({why}); the store holds {', '.join(f.langs)}"
    few = f.few_rows(minimum_rows)
    if few:
        return f"needs at least {minimum_rows} rows per language ({why}); too few: {_listing(few)}"
    return None


def _need_pairs(f: _Facts, cfg: MetricsConfig, group: str) -> str | None:
    need = _MIN_PARALLEL[group]
    ok, short = f.pairs(None if group == "cka" else cfg.pivot, need)
    if ok:
        return None
    if not f.groups_of:
        return f"needs {_PARALLEL_WHY}; this corpus has no groups"
    pairs = f"; pairs and their shared groups: {_listing(short)}" if short else ""
    return (
        f"no language pair shares at least {need} translation groups: needs {_PARALLEL_WHY}{pairs}"
    )


def _pair_langs(cfg: MetricsConfig) -> list[str] | None:
    return cfg.langs[:2] if cfg.langs and len(cfg.langs) >= 2 else None


def _check_word_align(f: _Facts, cfg: MetricsConfig, gold: Any) -> str | None:
    from xalign.metrics._store_common import pairs_with_gold as _pairs_with_gold
    from xalign.store import resolve_pair_langs

    if gold is None:
        return "needs gold links (--gold wordalign:DIR)"
    if not f.store.has_tokens:
        return "needs token embeddings (re-extract with --tokens)"
    try:
        a, b = resolve_pair_langs(f.store.rows, _pair_langs(cfg), f.store.path)
        _pairs_with_gold(f.store, a, b, gold)
    except XAlignError as e:
        return str(e) + ("" if _pair_langs(cfg) else " (name the pair with --langs A,B)")
    return None


def _check_attention(f: _Facts, cfg: MetricsConfig, gold: Any, layers: list[int]) -> str | None:
    from xalign.store import resolve_pair_langs

    st = f.store
    if st.attention_mode == "none":
        return "needs attention maps (re-extract with --attentions head-mean)"
    if not [x for x in layers if x >= 1 and x in st.attention_layers]:
        return f"no requested layer {layers} has attention maps (stored: {st.attention_layers})"
    if gold is not None:
        try:
            resolve_pair_langs(st.rows, _pair_langs(cfg), st.path)
        except XAlignError as e:
            return f"{e} (name the gold's pair with --langs A,B)"
    elif not st.has_tokens:
        return (
            "needs token embeddings for predicted word links (re-extract with --tokens), "
            "or gold links (--gold wordalign:DIR)"
        )
    return None


def _neuron_frames(plan: _Plan, out: _Collector) -> None:
    """The ``neurons`` group: each store's language-specific neurons (LAPE), and the change
    of the sets from each store to the next (before → after) when both have statistics."""
    from xalign.metrics._neurons import neuron_change_rows, neuron_rows

    cols = list(RESULTS_COLUMNS)
    langs = plan.cfg.langs
    have = [(lab, st) for lab, st in plan.stores if plan.runs_on(lab, "neurons")]
    for lab, st in have:
        out.run("neurons", lab, "", lambda st=st, lab=lab: [
            pd.DataFrame(neuron_rows(st, label=lab, langs=langs), columns=cols)
        ])  # fmt: skip
    if plan.cfg.independent:
        return
    for (la, a), (lb, b) in itertools.pairwise(have):
        out.run("neurons", lb, f" (change from {la})", lambda a=a, b=b, la=la, lb=lb: [
            pd.DataFrame(
                neuron_change_rows(a, b, before_label=la, after_label=lb, langs=langs),
                columns=cols,
            )
        ])  # fmt: skip


def _check_group(
    group: str, f: _Facts, cfg: MetricsConfig, gold: Any, layers: list[int], n_stores: int
) -> str | None:
    """Why ``group`` cannot run on this store (None: it can). Reads no arrays."""
    if group == "clusters":
        return _need_languages(f, 2, "centroid gaps and silhouettes compare languages")
    if group == "isotropy":
        few = f.few_rows(2)
        return f"needs at least 2 rows per language; too few: {_listing(few)}" if few else None
    if group == "probe":
        return _need_languages(
            f, cfg.cv, f"--cv {cfg.cv} folds need a row of every language in each fold"
        )
    if group in _MIN_PARALLEL:
        return _need_pairs(f, cfg, group)
    if group == "stores":
        if cfg.independent:
            return "compares stores of one corpus; --independent turns comparisons off"
        if n_stores < 2:
            return "compares two or more stores of one corpus (before=A after=B)"
        return None
    if group == "word_align":
        return _check_word_align(f, cfg, gold)
    if group == "attention":
        return _check_attention(f, cfg, gold, layers)
    if group == "neurons":
        if not f.store.has_neurons:
            return "needs feed-forward neuron statistics (re-extract with --neurons)"
        return None
    raise AssertionError(group)


class _Plan:
    """Which group runs on which store, decided before any computation."""

    def __init__(self, cfg: MetricsConfig) -> None:
        self.stores = _open_stores(cfg)
        if len(self.stores) > 1 and not cfg.independent:
            _check_same_corpus(self.stores)
        cfg = _resolve_codes(cfg, self.stores)
        self.cfg = cfg
        self.notes: list[str] = []
        self.layers: dict[str, list[int]] = {}
        self.facts: dict[str, _Facts] = {}
        for label, store in self.stores:
            if cfg.pooling not in store.poolings:
                raise ConfigError(
                    f"pooling {cfg.pooling!r} not in store {store.path} (stored: {store.poolings})"
                )
            self.layers[label] = store.resolve_layers(cfg.layers)
            self.facts[label] = _Facts(label, store, cfg)
            self._check_pivot(label, store)
        self.gold = _load_gold(cfg) if "word_align" in cfg.groups or cfg.gold else None
        self.runs: dict[str, list[str]] = {}
        refused: list[str] = []
        for label, store in self.stores:
            self.runs[label] = []
            for group in cfg.groups:
                why = _check_group(
                    group, self.facts[label], cfg, self.gold, self.layers[label], len(self.stores)
                )
                if why is None:
                    self.runs[label].append(group)
                elif group in cfg.explicit:
                    refused.append(f"--metrics {group} on store {store.path}: {why}")
                else:
                    self.notes.append(f"{group} skipped for {label}: {why}")
        if refused:
            more = (
                f" (and {len(refused) - 1} more: {'; '.join(refused[1:])})" if refused[1:] else ""
            )
            raise ConfigError(refused[0] + more)

    def runs_on(self, label: str, group: str) -> bool:
        return group in self.runs[label]

    def _check_pivot(self, label: str, store: Any) -> None:
        """A pivot the store lacks pairs every two languages instead: refuse one given by hand,
        and say so for the default (``eng``), so no average silently covers other pairs."""
        pivot, langs = self.cfg.pivot, self.facts[label].langs
        if pivot is None or pivot in langs or len(langs) < 2:
            return
        if not {"retrieval", "bucc"} & set(self.cfg.groups):
            return
        if pivot != _DEFAULT_PIVOT:
            raise ConfigError(
                f"--pivot {pivot!r}: not among the languages of store {store.path} "
                f"({_listing(langs)}); name one of them, or --pivot none for every pair"
            )
        self.notes.append(
            f"retrieval/bucc for {label}: no {pivot} rows (the default --pivot), so every two "
            "languages are paired"
        )


_DEFAULT_PIVOT = MetricsConfig.__dataclass_fields__["pivot"].default


def _resolve_codes(cfg: MetricsConfig, stores: list[tuple[str, Any]]) -> MetricsConfig:
    """``--langs`` and ``--pivot`` in the stores' own codes: ``en`` means ``eng`` there.

    A code the stores hold is kept as given; another is normalised (ISO 639-1 → 639-3) when
    that gives a code they hold. Anything else is left for the checks that list what is there.
    """
    from xalign.data import normalize_lang

    present: set[str] = set()
    for _, store in stores:
        rows = store.rows
        present |= set(rows["lang"].dropna().astype(str))

    def resolve(code: str) -> str:
        if code in present:
            return code
        try:
            norm = normalize_lang(code)
        except XAlignError:
            return code
        return norm if norm in present else code

    langs = None if cfg.langs is None else list(dict.fromkeys(resolve(x) for x in cfg.langs))
    pivot = None if cfg.pivot is None else resolve(cfg.pivot)
    if langs == cfg.langs and pivot == cfg.pivot:
        return cfg
    return dataclasses.replace(cfg, langs=langs, pivot=pivot)


def plan_metrics(config: MetricsConfig) -> list[str]:
    """Check a request against its stores without computing; returns the notes of ``all``.

    Raises :class:`~xalign.errors.ConfigError` (or a store error) exactly as
    :func:`compute_metrics` would before its first computation.
    """
    return _Plan(config).notes


class _Collector:
    """Frames of the groups that ran; a failing group is recorded and stops for its store."""

    def __init__(self, notes: list[str]) -> None:
        self.frames: list[pd.DataFrame] = []
        self.notes = notes
        self.failures: list[str] = []
        self.stopped: set[tuple[str, str]] = set()

    def run(
        self, group: str, label: str, where: str, fn: Callable[..., Iterable[Any]], *args: Any
    ) -> None:
        """``fn(*args)`` → frames; a failure is recorded (``where`` locates it) and stops
        ``group`` for this store."""
        if (label, group) in self.stopped:
            return
        self.add(group, label, *_attempt(group, label, where, fn, *args))

    def add(self, group: str, label: str, frames: list[Any], failure: str | None) -> None:
        """The outcome of one call (see :func:`_attempt`), unless ``group`` already failed for
        this store: a worker may have computed layers past the failure, which are dropped."""
        if (label, group) in self.stopped:
            return
        if failure is not None:
            self.stopped.add((label, group))
            self.failures.append(failure)
        else:
            self.frames.extend(frames)


def _attempt(
    group: str, label: str, where: str, fn: Callable[..., Iterable[Any]], *args: Any
) -> tuple[list[Any], str | None]:
    """(frames of ``fn(*args)``, None), or ([], the failure's message)."""
    try:
        return [f for f in fn(*args) if len(f)], None
    except (KeyboardInterrupt, SystemExit):
        raise
    except XAlignError as e:
        return [], f"{group} failed for {label}{where}: {e}"
    except Exception as e:  # keep what the other groups computed; say what broke
        return [], (
            f"{group} failed for {label}{where}: {type(e).__name__}: "
            f"{_first_line(e)} (unexpected: please report it)"
        )


def _compute(config: MetricsConfig) -> pd.DataFrame:
    from tqdm.auto import tqdm

    plan = _Plan(config)
    config = plan.cfg
    out = _Collector(plan.notes)
    sentence = [
        (label, store)
        for label, store in plan.stores
        if any(plan.runs_on(label, g) for g in _SENTENCE_GROUPS)
    ]
    total = sum(len(plan.layers[label]) for label, _ in sentence)
    with _layer_pool(plan, sentence) as pool:  # started before the bar (its monitor thread)
        bar = tqdm(
            total=total, disable=not config.progress, desc="metrics", unit="layer", leave=False
        )
        for label, store in sentence:
            _sentence_groups(plan, out, label, store, bar, pool)
        bar.close()
    if plan.runs_on(plan.stores[0][0], "stores"):
        from xalign.metrics._similarity import cka_matrix

        out.run("stores", plan.stores[0][0], "", lambda: [
            _store_similarity(plan.stores, config, cka_matrix)
        ])  # fmt: skip
    _alignment_frames(plan, out)
    _neuron_frames(plan, out)
    notes = [*out.notes, *(f"FAILED: {m}" for m in out.failures)]
    if out.frames:
        results = pd.concat(out.frames, ignore_index=True)
    else:
        results = pd.DataFrame({c: pd.Series(dtype=object) for c in RESULTS_COLUMNS})
    results.attrs["notes"] = notes
    results.attrs["failures"] = list(out.failures)
    if out.failures:
        n = len(out.failures)
        raise IncompleteResultsError(
            f"{n} metric group{'s' if n > 1 else ''} failed ({'; '.join(out.failures)}); "
            f"the other groups' {len(results):,} rows were kept",
            results,
        )
    if not out.frames:
        raise DataError(
            "no metric could be computed for these stores and options"
            + (f": {'; '.join(notes)}" if notes else "")
        )
    return results


def _sentence_groups(
    plan: _Plan, out: _Collector, label: str, store: Any, bar: Any, pool: Any = None
) -> None:
    """The groups computed from pooled sentence vectors, layer by layer, for one store.

    With ``pool`` (worker processes, ``--workers``) the (layer, group) computations run
    there and their outcomes are taken in the serial order: the same frames, the same
    failures, the same results table as without it.
    """
    config, facts = plan.cfg, plan.facts[label]
    runs = [g for g in _SENTENCE_GROUPS if plan.runs_on(label, g)]
    # translation metrics of clusters need a language pair with 2 shared groups
    translation = facts.any_pair(2)
    if "clusters" in runs and not translation:
        plan.notes.append(
            f"clusters for {label}: translation_contrast and translation_silhouette left out "
            f"(no language pair shares 2 translation groups; they need {_PARALLEL_WHY})"
        )
    for group in ("retrieval", "bucc"):
        if group in runs:
            _, short = facts.pairs(config.pivot, _MIN_PARALLEL[group])
            if short:
                plan.notes.append(
                    f"{group} for {label}: language pairs with fewer than {_MIN_PARALLEL[group]} "
                    f"parallel rows left out: {_listing(short)}"
                )
    order: list[str] = [
        g for g in ("clusters", "isotropy", "probe", "retrieval", "bucc", "cka") if g in runs
    ]
    if pool is None:
        runner = _LayerRunner(config, {label: store}, {label: translation})
        for layer in plan.layers[label]:
            runner.load(label, layer)  # a non-finite layer stops the run, as before any group
            for group in order:
                out.run(group, label, f" at layer {layer}", runner.frames, label, layer, group)
            bar.update(1)
        return
    _pooled_groups(plan, out, label, store, bar, pool, order)


def _pooled_groups(
    plan: _Plan, out: _Collector, label: str, store: Any, bar: Any, pool: Any, order: list[str]
) -> None:
    """``_sentence_groups`` with worker processes: every (layer, group) is submitted, the
    probe as one task per centring (its largest part); outcomes are taken layer by layer in
    the serial order, and a group that failed at a layer drops its later layers, as the
    serial run never computes them."""
    from concurrent.futures.process import BrokenProcessPool

    config = plan.cfg
    pending: list[tuple[int, list[tuple[str, list[Any]]]]] = []
    # the probe's parts first: the longest tasks start early, so the last layer ends sooner
    parts: dict[str, list[bool | None]] = {g: [None] for g in order}
    if "probe" in parts and len(config.centerings) > 1:
        parts["probe"] = list(config.centerings)
    submit_order = sorted(order, key=lambda g: g != "probe")
    for layer in plan.layers[label]:
        # read and check the layer here too: a non-finite layer stops the run as serially
        X, rows = store.sentences(
            pooling=config.pooling, layer=layer, lang=config.langs, with_rows=True
        )
        check_finite(X, ids=rows["id"].tolist(), what=f"store {store.path} layer {layer}")
        futures = {
            g: [pool.submit(_worker_task, label, layer, g, part) for part in parts[g]]
            for g in submit_order
        }
        pending.append((layer, [(g, futures[g]) for g in order]))
    for _layer, groups in pending:
        for group, futs in groups:
            try:
                outcomes = [f.result() for f in futs]
            except BrokenProcessPool:
                raise XAlignError(
                    f"a metrics worker process ended unexpectedly (killed, or out of memory?) "
                    f"while computing {group}; rerun with --workers 1 (one process, less memory)"
                ) from None
            failure = next((m for _, m in outcomes if m is not None), None)
            frames = [] if failure is not None else [f for fr, _ in outcomes for f in fr]
            out.add(group, label, frames, failure)
        bar.update(1)


class _LayerRunner:
    """One sentence-level group on one layer of a store, as frames in the results columns.

    The serial run uses one in its own process; each worker process of ``--workers`` builds
    its own (:func:`_init_worker`). Holds the latest layer read and the paired rows of each
    language pair (the same at every layer).
    """

    def __init__(self, cfg: MetricsConfig, stores: dict[str, Any], translation: dict[str, bool]):
        self.cfg, self.stores, self.translation = cfg, stores, translation
        self.aligned: dict[str, dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]] = {
            label: {} for label in stores
        }
        self._latest: tuple[str, int, Any] | None = None

    def load(self, label: str, layer: int) -> tuple[np.ndarray, pd.DataFrame, np.ndarray | None]:
        """Vectors, rows and translation groups (or None) of one layer, checked finite."""
        if self._latest is not None and self._latest[:2] == (label, layer):
            return self._latest[2]  # type: ignore[no-any-return]
        store = self.stores[label]
        X, rows = store.sentences(
            pooling=self.cfg.pooling, layer=layer, lang=self.cfg.langs, with_rows=True
        )
        check_finite(X, ids=rows["id"].tolist(), what=f"store {store.path} layer {layer}")
        grp = rows["group"].to_numpy(dtype=object) if self.translation[label] else None
        self._latest = (label, layer, (X, rows, grp))
        return X, rows, grp

    def frames(
        self, label: str, layer: int, group: str, part: bool | None = None
    ) -> list[pd.DataFrame]:
        """``group`` at ``layer``; ``part``: the probe's centring only (None: every centring)."""
        X, rows, grp = self.load(label, layer)
        parts = _one_group(group, X, rows, grp, self.cfg, self.aligned[label], part)
        return _tidy_layer(parts, {"pooling": self.cfg.pooling}, self.stores[label], label, layer)


#: The worker process's runner (set by :func:`_init_worker`).
_WORKER: dict[str, Any] = {}


def _init_worker(cfg: MetricsConfig, paths: dict[str, str], translation: dict[str, bool]) -> None:
    """Start of a worker process: open the stores (checked by the parent already), one BLAS
    thread for good (the groups use one anyway; several workers would oversubscribe)."""
    from xalign.metrics._blas import _controller
    from xalign.store import Store

    warnings.filterwarnings("ignore", message=".*omitted language pair", category=UserWarning)
    _WORKER["blas"] = _controller().limit(limits=1, user_api="blas")
    stores = {label: Store.open(path, full_check=False) for label, path in paths.items()}
    _WORKER["runner"] = _LayerRunner(cfg, stores, translation)


def _worker_ready() -> bool:
    return True


def _worker_task(
    label: str, layer: int, group: str, part: bool | None
) -> tuple[list[pd.DataFrame], str | None]:
    """In a worker process: (frames, None), or ([], the failure's message) as serially."""
    runner: _LayerRunner = _WORKER["runner"]
    return _attempt(group, label, f" at layer {layer}", runner.frames, label, layer, group, part)


#: ``--workers 0`` (the default) uses one worker per available CPU, at most this many: more
#: would hold more layers in memory at once for little gain on a laptop.
AUTO_WORKERS_MAX = 4


def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the system tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int) -> int:
    """Worker processes for ``--workers``: the number given, or for 0 one per available CPU
    (at most :data:`AUTO_WORKERS_MAX`); 1 = no worker process (serial)."""
    if workers >= 1:
        return int(workers)
    return max(1, min(AUTO_WORKERS_MAX, available_cpus()))


@contextlib.contextmanager
def _layer_pool(plan: _Plan, sentence: list[tuple[str, Any]]) -> Iterator[Any]:
    """Worker processes for the sentence groups, or None (serial) for one worker, one layer
    in all, or where processes cannot be started. Results do not depend on it."""
    n = resolve_workers(plan.cfg.workers)
    layers = sum(len(plan.layers[label]) for label, _ in sentence)
    if n <= 1 or layers == 0 or (layers == 1 and n_groups(plan, sentence) <= 1):
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork shares the imported modules (no start-up per worker); elsewhere spawn
    method = "fork" if sys.platform == "linux" else "spawn"
    paths = {label: str(store.path) for label, store in sentence}
    translation = {label: plan.facts[label].any_pair(2) for label, _ in sentence}
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns on fork in a process with threads (BLAS's own, here);
            # the workers only compute with numpy and never touch the parent's locks
            warnings.filterwarnings("ignore", message=".*fork", category=DeprecationWarning)
            pool = ProcessPoolExecutor(
                max_workers=n,
                mp_context=multiprocessing.get_context(method),
                initializer=_init_worker,
                initargs=(plan.cfg, paths, translation),
            )
            pool.submit(_worker_ready).result()  # start them now (before any other thread)
    except (OSError, ImportError, NotImplementedError) as e:
        plan.notes.append(f"--workers {n}: worker processes unavailable ({_first_line(e)}); "
                          "computed in one process")  # fmt: skip
        yield None
        return
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def n_groups(plan: _Plan, sentence: list[tuple[str, Any]]) -> int:
    """Sentence groups to compute, summed over stores (one layer each)."""
    return sum(sum(plan.runs_on(label, g) for g in _SENTENCE_GROUPS) for label, _ in sentence)


def _tidy_layer(
    parts: Iterable[pd.DataFrame], base: dict[str, Any], store: Any, label: str, layer: int
) -> list[pd.DataFrame]:
    done = []
    for part in parts:
        if len(part):
            part = part.copy()
            part["protocol"] = [_add_protocol(p, base) for p in part["protocol"]]
            done.append(_with_columns(part, store, label, layer))
    return done


def _one_group(
    group: str,
    X: np.ndarray,
    rows: pd.DataFrame,
    grp: np.ndarray | None,
    config: MetricsConfig,
    aligned: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] | None = None,
    part: bool | None = None,
) -> list[pd.DataFrame]:
    """One sentence-level group on one layer's vectors (tidy frames without store columns).

    ``aligned`` caches the paired row positions of each language pair across layers (the
    rows are the same at every layer). ``part`` (the probe only): that centring alone.
    """
    from xalign.metrics._blas import single_blas_thread
    from xalign.metrics._centering import center_by_language
    from xalign.metrics._clusters import cluster_metrics
    from xalign.metrics._isotropy import isotropy_metrics
    from xalign.metrics._probe import language_id_probe
    from xalign.metrics._similarity import cka_between_languages

    langs = rows["lang"].to_numpy(dtype=object)
    if group == "clusters":
        return [
            cluster_metrics(
                X,
                langs,
                grp,
                centered=_both(config),
                sample_size=config.sample_size,
                seed=config.seed,
                n_boot=config.bootstrap,
            )
        ]
    if group == "isotropy":
        return [isotropy_metrics(X, langs, centered=_both(config), seed=config.seed)]
    if group == "probe":
        return [
            language_id_probe(
                X,
                langs,
                groups=grp,
                cv=config.cv,
                seed=config.seed,
                centered=centered,
                n_boot=config.bootstrap,
            )
            for centered in (config.centerings if part is None else [part])
        ]
    if group in ("retrieval", "bucc"):
        fn = _retrieval if group == "retrieval" else _bucc
        # one search per language pair of ~1,000 rows: one BLAS thread is as fast on an idle
        # machine and many times faster when other processes compete for the cores
        with single_blas_thread():
            return [
                _records(
                    fn(
                        center_by_language(X, langs) if centered else X,
                        rows,
                        config,
                        centered,
                        config.pooling,
                        aligned,
                    )
                )
                for centered in config.centerings
            ]
    if group == "cka":
        return [_quiet(cka_between_languages, X, langs, rows["group"].to_numpy())]
    raise AssertionError(group)


def _quiet(fn: Callable[..., pd.DataFrame], *args: Any) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args)


def _load_gold(cfg: MetricsConfig) -> Any:
    if not cfg.gold:
        return None
    from xalign.data import gold_alignments

    kind, sep, rest = cfg.gold.partition(":")
    if sep and kind.lower() in ("wordalign", "word-align"):
        path = rest
    elif sep and kind.isalpha() and len(kind) > 1 and not Path(cfg.gold).exists():
        raise ConfigError(
            f"--gold {cfg.gold}: gold links are word-alignment files, not {kind!r} data; "
            "expected wordalign:DIR (awesome-align .src-tgt + .gold)"
        )
    else:
        path = cfg.gold
    if not path.strip():
        raise ConfigError(f"--gold {cfg.gold}: no folder given; expected wordalign:DIR")
    if not Path(path).exists():
        raise ConfigError(f"--gold {cfg.gold}: no such folder or file {path}")
    return gold_alignments(path, out_of_range=cfg.gold_out_of_range)


def _attention_pairs(f: _Facts) -> tuple[list[tuple[str, str]], list[str]]:
    """Language pairs with at least one translation group (the others cannot be compared)."""
    ok, none = [], []
    for a, b in itertools.combinations(f.langs, 2):
        (ok.append((a, b)) if f.shared(a, b) else none.append(f"{a}-{b}"))
    return ok, none


def _alignment_frames(plan: _Plan, out: _Collector) -> None:
    """Word and attention alignment groups (token-level), where the plan runs them."""
    from xalign.store import pair_attention_exists, resolve_pair_langs

    cfg, gold = plan.cfg, plan.gold
    pair_langs = _pair_langs(cfg)
    for label, store in plan.stores:
        layers = plan.layers[label]
        if plan.runs_on(label, "word_align"):
            a, b = resolve_pair_langs(store.rows, pair_langs, store.path)
            attn = [x for x in layers if x >= 1 and x in store.attention_layers]
            if not pair_attention_exists(store.path, a, b):
                attn = []
                plan.notes.append(
                    f"attention word alignment skipped for {label}: no pair-mode attention "
                    f"(python -m xalign.extract ... --pairs {a},{b})"
                )
            out.run("word_align", label, "", _word_align, store, label, gold, (a, b), layers, attn)
        if plan.runs_on(label, "attention"):
            attn_layers = [x for x in layers if x >= 1 and x in store.attention_layers]
            if gold is not None:
                calls = [list(resolve_pair_langs(store.rows, pair_langs, store.path))]
            else:
                facts = plan.facts[label]
                pairs, missing = _attention_pairs(facts)
                if missing:
                    plan.notes.append(
                        f"attention for {label}: pattern agreement left out for language pairs "
                        f"without translation groups: {_listing(missing)}"
                    )
                if not missing:
                    calls = [facts.langs]
                else:  # one call per comparable pair, one per language left (entropy only)
                    alone = [x for x in facts.langs if not any(x in p for p in pairs)]
                    calls = [list(p) for p in pairs] + [[x] for x in alone]
            out.run(
                "attention", label, "", _attention, store, label, gold, calls, attn_layers,
                cfg.bootstrap, cfg.seed,
            )  # fmt: skip
    if "attention" in cfg.groups and len(plan.stores) > 1 and not cfg.independent:
        (la, a), rest = plan.stores[0], plan.stores[1:]
        for lb, b in rest:
            has = [s.attention_mode != "none" for s in (a, b)]
            if all(has):
                out.run(
                    "attention", la, f" (distance to {lb})", _attention_distance, a, b, la,
                    cfg.bootstrap, cfg.seed,
                )  # fmt: skip
            elif any(has):
                plan.notes.append(
                    f"attention distance {la} vs {lb} skipped: only one of them has attention maps"
                )


def _tidy_token(df: pd.DataFrame, store: Any, label: str) -> pd.DataFrame:
    """A token-level frame (with its own ``layer`` column) in the results columns."""
    return _with_columns(df.drop(columns="layer"), store, label, 0).assign(
        layer=df["layer"].to_numpy()
    )


def _word_align(
    store: Any, label: str, gold: Any, pair: tuple[str, str], layers: list[int], attn: list[int]
) -> list[pd.DataFrame]:
    from xalign.metrics._store_align import (
        attention_word_alignment_metrics,
        word_alignment_metrics,
    )

    parts = [
        _tidy_token(word_alignment_metrics(store, gold, langs=pair, layers=layers), store, label)
    ]
    if attn:
        df = attention_word_alignment_metrics(store, gold, langs=pair, layers=attn)
        parts.append(_tidy_token(df, store, label))
    return parts


def _attention(
    store: Any,
    label: str,
    gold: Any,
    calls: list[list[str]],
    layers: list[int],
    n_boot: int = 0,
    seed: int = 0,
) -> list[pd.DataFrame]:
    from xalign.metrics._store_attention import attention_alignment_metrics

    parts: list[pd.DataFrame] = []
    seen: set[str] = set()
    for langs in calls:
        df = attention_alignment_metrics(
            store,
            langs=langs,
            layers=layers,
            links="gold" if gold is not None else "predicted",
            gold=gold,
            n_boot=n_boot,
            seed=seed,
        )
        # a language in several pairs: its entropy is the same number each time, kept once
        ent = df["metric"].eq("attention_entropy")
        df = df[~(ent & df["lang"].isin(seen))]
        seen.update(langs)
        parts.append(_tidy_token(df, store, label))
    return parts


def _attention_distance(
    a: Any, b: Any, label: str, n_boot: int = 0, seed: int = 0
) -> list[pd.DataFrame]:
    from xalign.metrics._store_attention import attention_store_distance

    return [_tidy_token(attention_store_distance(a, b, n_boot=n_boot, seed=seed), a, label)]


def _both(cfg: MetricsConfig) -> Any:
    return {"raw": False, "centered": True, "both": "both"}[cfg.centering]


def _add_protocol(proto: str, extra: dict[str, Any]) -> str:
    d = json.loads(proto) if proto else {}
    for k, v in extra.items():
        d.setdefault(k, v)
    return protocol_json(d)


def _store_similarity(
    stores: list[tuple[str, Any]], cfg: MetricsConfig, cka_matrix: Any
) -> pd.DataFrame:
    """Layer × layer linear CKA between every pair of stores (same rows), in tidy form; the
    same layer of both gets a cluster-bootstrap interval (:func:`cka_block_bootstrap`)."""
    from xalign.metrics._similarity import cka_block_bootstrap

    recs = []
    for (la, a), (lb, b) in itertools.combinations(stores, 2):
        layers_a, layers_b = a.resolve_layers(cfg.layers), b.resolve_layers(cfg.layers)
        A = [a.sentences(pooling=cfg.pooling, layer=x, lang=cfg.langs) for x in layers_a]
        B = [b.sentences(pooling=cfg.pooling, layer=x, lang=cfg.langs) for x in layers_b]
        M = cka_matrix(A, B)
        units = a.rows["group"].to_numpy(dtype=object)[a.select(lang=cfg.langs)]
        for i, x in enumerate(layers_a):
            for j, y in enumerate(layers_b):
                proto = {
                    "other_store": str(b.path),
                    "other_checkpoint": lb,
                    "other_layer": y,
                    "pooling": cfg.pooling,
                    "debiased": False,
                    "form": "feature-space",
                    "centered": False,
                }
                lo = hi = np.nan
                if x == y and cfg.bootstrap > 0:  # the same layer of both: an interval
                    lo, hi, blocks = cka_block_bootstrap(
                        A[i], B[j], units=units, n_boot=cfg.bootstrap, seed=cfg.seed
                    )
                    proto.update(
                        ci="cluster bootstrap over translation groups, dealt into random blocks",
                        ci_blocks=blocks,
                        n_boot=cfg.bootstrap,
                        seed=cfg.seed,
                    )
                recs.append(
                    {
                        "store": str(a.path),
                        "checkpoint": la,
                        "metric": "cka_between_stores",
                        "layer": x,
                        "lang": None,
                        "lang2": None,
                        "value": float(M[i, j]),
                        "n": len(A[i]),
                        "ci_low": lo,
                        "ci_high": hi,
                        "protocol": _protocol(proto),
                    }
                )
    return pd.DataFrame(recs, columns=list(RESULTS_COLUMNS))


def summarize(results: pd.DataFrame) -> str:
    """A compact per-layer table: mean retrieval accuracy, language gap, silhouette, probe."""
    lines = []
    for (store, ckpt), df in results.groupby(["store", "checkpoint"], sort=False):
        raw = df[df["protocol"].str.contains('"centered":false', regex=False)]

        def per_layer(
            metric: str,
            extra: str | None = None,
            *,
            lang_none: bool = False,
            raw: pd.DataFrame = raw,
        ) -> pd.Series:
            d = raw[raw["metric"] == metric]
            if extra:
                d = d[d["protocol"].str.contains(extra, regex=False)]
            if lang_none:
                d = d[d["lang"].isna()]
            return d.groupby("layer")["value"].mean()

        cols = {
            "retrieval": per_layer("retrieval_acc_mean", '"scoring":"cosine"'),
            "gap": per_layer("centroid_distance_scaled"),
            "silhouette": per_layer("language_silhouette", lang_none=True),
            "lid_probe": per_layer("lid_accuracy"),
        }
        table = pd.DataFrame(cols)
        if table.empty:
            continue
        best = table["retrieval"].idxmax() if table["retrieval"].notna().any() else None
        lines.append(f"{ckpt}  ({store})")
        lines.append(
            f"{'layer':>5}  {'retrieval':>9}  {'gap':>7}  {'silhouette':>10}  {'LID probe':>9}"
        )
        for layer, r in table.iterrows():
            mark = "  ← best retrieval" if layer == best else ""
            lines.append(
                f"{layer:>5}  {_f(r['retrieval'])}  {_f(r['gap'], 7)}  {_f(r['silhouette'], 10)}"
                f"  {_f(r['lid_probe'])}{mark}"
            )
        lines.append(
            "retrieval: mean top-1 accuracy (both directions, cosine, raw) over language pairs; "
            "gap: centroid distance / mean spread; silhouette: language labels (cosine); "
            "LID probe: 5-fold logistic-regression accuracy"
        )
    return "\n".join(lines)


def _f(v: float, w: int = 9) -> str:
    return f"{v:>{w}.3f}" if pd.notna(v) else f"{'–':>{w}}"
