"""Running the metrics over stores: one tidy results table for every store × metric × layer."""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError
from xalign.metrics._checks import check_finite
from xalign.metrics._tidy import RESULT_COLUMNS

__all__ = [
    "METRIC_GROUPS",
    "RESULTS_COLUMNS",
    "MetricsConfig",
    "compute_metrics",
    "summarize",
]

#: Columns of the results table (DESIGN.md).
RESULTS_COLUMNS = ("store", "checkpoint", "metric", "layer", *RESULT_COLUMNS[1:])

#: Metric groups of ``--metrics`` (``all`` = every group the stores support).
METRIC_GROUPS = (
    "retrieval",
    "clusters",
    "probe",
    "cka",
    "isotropy",
    "bucc",
    "stores",
    "word_align",
    "attention",
)

#: Groups that need more than pooled sentence vectors; under ``all`` they run where possible.
_NEEDS = {
    "word_align": "token embeddings (--tokens) and gold links (--gold wordalign:DIR)",
    "attention": "attention maps (--attentions head-mean)",
}


@dataclass
class MetricsConfig:
    """Options of ``python -m xalign.metrics`` (written beside the results as JSON).

    ``stores`` are paths or ``label=path``; labels become the ``checkpoint`` column.
    """

    stores: list[str] = field(default_factory=list)
    out: str | None = None
    metrics: list[str] = field(default_factory=lambda: ["all"])
    pooling: str = "mean"
    layers: str = "all"
    langs: list[str] | None = None
    pivot: str | None = "eng"
    scoring: list[str] = field(default_factory=lambda: ["cosine", "margin"])
    k: int = 4
    dedup: bool = True
    centering: str = "both"
    bootstrap: int = 1000
    sample_size: int = 5000
    cv: int = 5
    seed: int = 0
    backend: str = "auto"
    independent: bool = False
    gold: str | None = None
    gold_out_of_range: str = "error"
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.metrics, str):
            self.metrics = [m.strip() for m in self.metrics.split(",") if m.strip()]
        if isinstance(self.scoring, str):
            self.scoring = [s.strip() for s in self.scoring.split(",") if s.strip()]
        if isinstance(self.langs, str):
            self.langs = [x.strip() for x in self.langs.split(",") if x.strip()]
        bad = [m for m in self.metrics if m != "all" and m not in METRIC_GROUPS]
        if bad:
            raise ConfigError(
                f"--metrics {bad}: allowed values are all, {', '.join(METRIC_GROUPS)}"
            )
        bad = [s for s in self.scoring if s not in ("cosine", "margin", "csls")]
        if bad:
            raise ConfigError(f"--scoring {bad}: allowed values are cosine, margin, csls")
        if self.centering not in ("raw", "centered", "both"):
            raise ConfigError(
                f"--centering {self.centering!r}: allowed values are raw, centered, both"
            )
        if self.gold_out_of_range not in ("error", "drop"):
            raise ConfigError(
                f"--gold-out-of-range {self.gold_out_of_range!r}: allowed values are error, drop"
            )
        if not self.stores:
            raise ConfigError("no stores given: pass one or more store folders (or label=path)")

    @property
    def groups(self) -> list[str]:
        return list(METRIC_GROUPS) if "all" in self.metrics else list(self.metrics)

    @property
    def centerings(self) -> list[bool]:
        return {"raw": [False], "centered": [True], "both": [False, True]}[self.centering]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_store_arg(arg: str) -> tuple[str | None, str]:
    if "=" in arg and not Path(arg).exists():
        label, path = arg.split("=", 1)
        return label, path
    return None, arg


def _open_stores(cfg: MetricsConfig) -> list[tuple[str, Any]]:
    from xalign.store import Store

    out = []
    for arg in cfg.stores:
        label, path = _parse_store_arg(arg)
        store = Store.open(path)
        out.append((label or store.label, store))
    labels = [lab for lab, _ in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"store labels must be unique, got {labels}; name them label=path")
    return out


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


def _aligned(rows: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in ``rows``) of the parallel rows of languages a and b, aligned by group."""
    ra = rows[(rows["lang"] == a) & rows["group"].notna()]
    rb = rows[(rows["lang"] == b) & rows["group"].notna()]
    ia = pd.Series(ra.index.to_numpy(), index=ra["group"].to_numpy())
    ib = pd.Series(rb.index.to_numpy(), index=rb["group"].to_numpy())
    common = ia.index.intersection(ib.index, sort=False)
    return ia.loc[common].to_numpy(), ib.loc[common].to_numpy()


def _protocol(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def _retrieval(
    X: np.ndarray, rows: pd.DataFrame, cfg: MetricsConfig, centered: bool, pooling: str
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
        ia, ib = _aligned(rows, a, b)
        if len(ia) < 2:
            continue
        for scoring in cfg.scoring:
            r = tatoeba_accuracy(
                X[ia],
                X[ib],
                direction="both",
                scoring=scoring,  # type: ignore[arg-type]
                k=cfg.k if scoring == "margin" else None,
                dedup_texts=(list(texts[ia]), list(texts[ib])) if cfg.dedup else None,
                backend=cfg.backend,  # type: ignore[arg-type]
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
    X: np.ndarray, rows: pd.DataFrame, cfg: MetricsConfig, centered: bool, pooling: str
) -> list[dict[str, Any]]:
    """BUCC-style mining P/R/F1 per language pair (needs at least 20 parallel rows)."""
    from xalign.metrics._retrieval import bucc_evaluate

    out = []
    langs = list(dict.fromkeys(rows["lang"]))
    for a, b in _language_pairs(langs, cfg.pivot):
        ia, ib = _aligned(rows, a, b)
        if len(ia) < 20:
            continue
        r = bucc_evaluate(X[ia], X[ib], seed=cfg.seed, k=cfg.k, backend=cfg.backend)  # type: ignore[arg-type]
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
    """Compute the requested metric groups for every store and layer; returns the results table."""
    with warnings.catch_warnings():
        # Tatoeba-like corpora pair every language with English only: the other pairs have no
        # parallel rows by construction, which is not worth a warning per layer.
        warnings.filterwarnings("ignore", message=".*omitted language pair", category=UserWarning)
        return _compute(config)


def _compute(config: MetricsConfig) -> pd.DataFrame:
    from tqdm.auto import tqdm

    from xalign.metrics._centering import center_by_language
    from xalign.metrics._clusters import cluster_metrics
    from xalign.metrics._isotropy import isotropy_metrics
    from xalign.metrics._probe import language_id_probe
    from xalign.metrics._similarity import cka_between_languages, cka_matrix

    stores = _open_stores(config)
    if len(stores) > 1 and not config.independent:
        _check_same_corpus(stores)
    groups = config.groups
    frames: list[pd.DataFrame] = []
    notes: list[str] = []
    parallel_only = [g for g in ("retrieval", "bucc", "cka") if g in groups]
    for label, store in stores:
        if parallel_only and not store.rows["group"].notna().any():
            why = (
                f"{', '.join(parallel_only)} on store {store.path}: needs a parallel corpus "
                "(rows that translate each other share a 'group'); this corpus has no groups"
            )
            if "all" not in config.metrics:
                raise ConfigError(f"--metrics {why}")
            notes.append(f"skipped for {label}: {why}")
    total = sum(len(s.resolve_layers(config.layers)) for _, s in stores)
    bar = tqdm(total=total, disable=not config.progress, desc="metrics", unit="layer", leave=False)
    for label, store in stores:
        if config.pooling not in store.poolings:
            raise ConfigError(
                f"pooling {config.pooling!r} not in store {store.path} (stored: {store.poolings})"
            )
        for layer in store.resolve_layers(config.layers):
            X, rows = store.sentences(
                pooling=config.pooling, layer=layer, lang=config.langs, with_rows=True
            )
            check_finite(X, ids=rows["id"].tolist(), what=f"store {store.path} layer {layer}")
            langs = rows["lang"].to_numpy(dtype=object)
            has_groups = rows["group"].notna().any()
            grp = rows["group"].to_numpy(dtype=object) if has_groups else None
            parts: list[pd.DataFrame] = []
            base = {"pooling": config.pooling}
            if "clusters" in groups:
                parts.append(
                    cluster_metrics(
                        X,
                        langs,
                        grp,
                        centered=_both(config),
                        sample_size=config.sample_size,
                        seed=config.seed,
                        n_boot=config.bootstrap,
                    )
                )
            if "isotropy" in groups:
                parts.append(isotropy_metrics(X, langs, centered=_both(config), seed=config.seed))
            if "probe" in groups and len(set(langs)) > 1:
                for centered in config.centerings:
                    parts.append(
                        language_id_probe(
                            X,
                            langs,
                            groups=grp,
                            cv=config.cv,
                            seed=config.seed,
                            centered=centered,
                            n_boot=config.bootstrap,
                        )
                    )
            if has_groups:
                for centered in config.centerings:
                    Xc = center_by_language(X, langs) if centered else X
                    if "retrieval" in groups:
                        parts.append(
                            _records(_retrieval(Xc, rows, config, centered, config.pooling))
                        )
                    if "bucc" in groups:
                        parts.append(_records(_bucc(Xc, rows, config, centered, config.pooling)))
                if "cka" in groups:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)
                        parts.append(cka_between_languages(X, langs, rows["group"].to_numpy()))
            for part in parts:
                if len(part):
                    part = part.copy()
                    part["protocol"] = [_add_protocol(p, base) for p in part["protocol"]]
                    frames.append(_with_columns(part, store, label, layer))
            bar.update(1)
    bar.close()
    if "stores" in groups and len(stores) > 1 and not config.independent:
        frames.append(_store_similarity(stores, config, cka_matrix))
    frames += _alignment_frames(stores, config, groups, notes)
    if not frames:
        raise DataError("no metric could be computed for these stores and options")
    results = pd.concat(frames, ignore_index=True)
    results.attrs["notes"] = notes
    return results


def _load_gold(cfg: MetricsConfig) -> Any:
    if not cfg.gold:
        return None
    from xalign.data._wordalign import gold_alignments

    path = cfg.gold.split(":", 1)[1] if cfg.gold.startswith("wordalign:") else cfg.gold
    return gold_alignments(path, out_of_range=cfg.gold_out_of_range)  # type: ignore[arg-type]


def _alignment_frames(
    stores: list[tuple[str, Any]], cfg: MetricsConfig, groups: list[str], notes: list[str]
) -> list[pd.DataFrame]:
    """Word and attention alignment groups (token-level; only where the stores support them).

    Asked for by name, a missing ingredient is an error naming the flag that adds it; under
    ``all`` the group is skipped with a note.
    """
    from xalign.metrics._store_align import (
        attention_alignment_metrics,
        attention_store_distance,
        attention_word_alignment_metrics,
        word_alignment_metrics,
    )
    from xalign.store import pair_attention_exists, resolve_pair_langs

    explicit = "all" not in cfg.metrics
    frames = []
    gold = _load_gold(cfg) if "word_align" in groups else None
    pair_langs = cfg.langs[:2] if cfg.langs and len(cfg.langs) >= 2 else None
    for label, store in stores:
        layers = store.resolve_layers(cfg.layers)

        def add(df: pd.DataFrame, store: Any = store, label: str = label) -> None:
            if len(df):
                frames.append(
                    _with_columns(df.drop(columns="layer"), store, label, 0).assign(
                        layer=df["layer"].to_numpy()
                    )
                )

        if "word_align" in groups:
            missing = None if gold is not None else "gold links (--gold wordalign:DIR)"
            if missing is None and not store.has_tokens:
                missing = "token embeddings (re-extract with --tokens)"
            if missing and explicit:
                raise ConfigError(f"--metrics word_align on store {store.path} needs {missing}")
            if missing:
                notes.append(f"word_align skipped for {label}: needs {missing}")
            else:
                assert gold is not None
                add(word_alignment_metrics(store, gold, langs=pair_langs, layers=layers))
                a, b = resolve_pair_langs(store.rows, pair_langs, store.path)
                if pair_attention_exists(store.path, a, b):
                    attn = [x for x in layers if x >= 1]
                    add(attention_word_alignment_metrics(store, gold, langs=(a, b), layers=attn))
                else:
                    notes.append(
                        f"attention word alignment skipped for {label}: no pair-mode attention "
                        f"(python -m xalign.extract ... --pairs {a},{b})"
                    )
        if "attention" in groups:
            if store.attention_mode == "none":
                msg = (
                    f"store {store.path} has no attentions; re-extract with --attentions head-mean"
                )
                if explicit:
                    raise ConfigError(f"--metrics attention: {msg}")
                notes.append(f"attention skipped for {label}: {msg}")
            else:
                attn_layers = [x for x in layers if x >= 1 and x in store.attention_layers]
                add(
                    attention_alignment_metrics(
                        store,
                        langs=pair_langs,
                        layers=attn_layers,
                        links="gold" if gold is not None else "predicted",
                        gold=gold,
                    )
                )
    if "attention" in groups and len(stores) > 1 and not cfg.independent:
        (la, a), rest = stores[0], stores[1:]
        for _, b in rest:
            if a.attention_mode != "none" and b.attention_mode != "none":
                df = attention_store_distance(a, b)
                frames.append(
                    _with_columns(df.drop(columns="layer"), a, la, 0).assign(
                        layer=df["layer"].to_numpy()
                    )
                )
    return frames


def _both(cfg: MetricsConfig) -> Any:
    return {"raw": False, "centered": True, "both": "both"}[cfg.centering]


def _add_protocol(proto: str, extra: dict[str, Any]) -> str:
    d = json.loads(proto) if proto else {}
    for k, v in extra.items():
        d.setdefault(k, v)
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def _store_similarity(
    stores: list[tuple[str, Any]], cfg: MetricsConfig, cka_matrix: Any
) -> pd.DataFrame:
    """Layer × layer linear CKA between every pair of stores (same rows), in tidy form."""
    recs = []
    for (la, a), (lb, b) in itertools.combinations(stores, 2):
        layers_a, layers_b = a.resolve_layers(cfg.layers), b.resolve_layers(cfg.layers)
        A = [a.sentences(pooling=cfg.pooling, layer=x, lang=cfg.langs) for x in layers_a]
        B = [b.sentences(pooling=cfg.pooling, layer=x, lang=cfg.langs) for x in layers_b]
        M = cka_matrix(A, B)
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
                        "ci_low": np.nan,
                        "ci_high": np.nan,
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
