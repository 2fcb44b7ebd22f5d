"""The causal check: re-extract a corpus with one language's specific neurons set to zero.

A store extracted with ``--neurons`` holds the statistics that select language-specific
feed-forward neurons (:func:`xalign.metrics.select_language_specific`, Tang et al. 2024).
:func:`ablate` re-extracts the same corpus through the same model with those neurons of one
language zeroed (or, as a control, as many random neurons in the same layers), and compares
that language's translation retrieval and language-ID probe accuracy with the other
languages', before and after.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from xalign.errors import ConfigError, DataError, StoreMismatchError

if TYPE_CHECKING:
    from xalign.data import Corpus
    from xalign.models import Encoder
    from xalign.store import NeuronStats, Store

__all__ = [
    "AblationReport",
    "ablate",
    "language_neurons",
    "random_control",
    "summary",
    "summary_table",
]

Control = Literal["random"]


def _open(store: str | Path | Store) -> Store:
    from xalign.store import Store

    return store if isinstance(store, Store) else Store.open(store)


def language_neurons(
    stats: NeuronStats,
    lang: str,
    *,
    top_rate: float = 0.01,
    filter_rate: float = 0.95,
    bar_rate: float = 0.95,
) -> list[tuple[int, int]]:
    """``(layer, neuron)`` pairs specific to ``lang`` (Tang et al.'s selection, paper defaults).

    Raises :class:`ConfigError` naming the store's languages when ``lang`` is not one of them.
    """
    from xalign.metrics import activation_probability, select_language_specific

    if lang not in stats.languages:
        raise ConfigError(f"--lang {lang!r}: not in the store (languages: {stats.languages})")
    p = activation_probability(stats.active, stats.tokens)
    sel = select_language_specific(p, top_rate=top_rate, filter_rate=filter_rate, bar_rate=bar_rate)
    g = stats.languages.index(lang)
    li, f = np.nonzero(sel.specific[:, g, :])
    return [(stats.layers[i], int(n)) for i, n in zip(li, f, strict=True)]


def random_control(
    targets: list[tuple[int, int]], ffn_size: int, *, seed: int
) -> list[tuple[int, int]]:
    """As many random neurons per layer as ``targets`` has there, none of them a target.

    Drawn without replacement with ``numpy.random.default_rng(seed)``, layer by layer in
    increasing order, so a seed names one control set.

    >>> random_control([(1, 0), (1, 1), (2, 5)], 8, seed=0)
    [(1, 5), (1, 6), (2, 1)]
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int]] = []
    by: dict[int, set[int]] = {}
    for layer, n in targets:
        by.setdefault(layer, set()).add(n)
    for layer in sorted(by):
        pool = np.array([n for n in range(ffn_size) if n not in by[layer]], dtype=np.int64)
        k = len(by[layer])
        if k > len(pool):
            raise ConfigError(
                f"--control random: layer {layer} has {len(by[layer])} target neurons of "
                f"{ffn_size}; too few others to draw an equal random set"
            )
        out += [(layer, int(n)) for n in sorted(rng.choice(pool, size=k, replace=False))]
    return out


@dataclass
class AblationReport:
    """What ablating one language's neurons did (printed by ``python -m xalign.neurons ablate``).

    ``retrieval``: per language, mean top-1 retrieval accuracy against every other language
    (both directions), before and after; ``lid``: language-ID probe accuracy over all
    languages and of ``lang`` against the others (a balanced binary probe), before and after.
    """

    store: str
    out: str
    lang: str
    control: str | None
    seed: int | None
    layer: int
    pooling: str
    n_neurons: int
    neurons_per_layer: dict[int, int]
    retrieval: dict[str, dict[str, float]] = field(default_factory=dict)
    lid: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def retrieval_change(self) -> float:
        r = self.retrieval.get(self.lang)
        return float("nan") if r is None else r["after"] - r["before"]

    @property
    def others_retrieval_change(self) -> float:
        """Mean change of the other languages' retrieval accuracy (their pairs with ``lang``
        left out)."""
        deltas = [
            v["after_without"] - v["before_without"]
            for k, v in self.retrieval.items()
            if k != self.lang
        ]
        return float(np.mean(deltas)) if deltas else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["neurons_per_layer"] = {str(k): v for k, v in self.neurons_per_layer.items()}
        d["retrieval_change"] = self.retrieval_change
        d["others_retrieval_change"] = self.others_retrieval_change
        return d

    def format(self) -> str:
        what = "random control neurons" if self.control else f"{self.lang}-specific neurons"
        per = ", ".join(f"{k}: {v}" for k, v in sorted(self.neurons_per_layer.items()))
        lines = [
            f"ablated    {self.n_neurons} {what} (per layer {per})"
            + (f", seed {self.seed}" if self.control else ""),
            f"measured   layer {self.layer}, pooling {self.pooling}",
            "retrieval  language    before   after   change   (mean accuracy vs other languages)",
        ]
        for lang, v in self.retrieval.items():
            mark = "  <- ablated" if lang == self.lang else ""
            lines.append(
                f"           {lang:<10} {v['before']:7.3f} {v['after']:7.3f} "
                f"{v['after'] - v['before']:+8.3f}{mark}"
            )
        lines.append(
            f"           {self.lang} change {self.retrieval_change:+.3f}; other languages "
            f"(pairs without {self.lang}) {self.others_retrieval_change:+.3f}"
        )
        for name, v in self.lid.items():
            lines.append(
                f"LID probe  {name:<22} before {v['before']:.3f}  after {v['after']:.3f}  "
                f"change {v['after'] - v['before']:+.3f}"
            )
        return "\n".join(lines)


def _corpus_of(store: Store) -> Corpus:
    """The store's corpus, rebuilt from its row table (checked against its fingerprint)."""
    from xalign.data import COLUMNS, Corpus

    rows = store.rows
    cols = [c for c in COLUMNS if c in rows.columns]
    corpus = Corpus(rows[cols].reset_index(drop=True), name=str(store.corpus.get("name", "")),
                    source=str(store.corpus.get("source", "")))  # fmt: skip
    if corpus.fingerprint() != store.corpus.get("fingerprint"):
        raise StoreMismatchError(
            f"store {store.path}: its row table does not rebuild the corpus it was extracted "
            "from (fingerprint differs); re-extract it with --neurons"
        )
    return corpus


def _retrieval(
    X: np.ndarray, rows: Any, langs: list[str], exclude: str | None = None
) -> dict[str, float]:
    """Per language: mean over partner languages of the mean-direction retrieval accuracy."""
    from xalign.metrics import tatoeba_accuracy

    pos = {
        lang: rows.index[(rows["lang"] == lang).to_numpy()].to_numpy()
        for lang in langs
    }  # fmt: skip
    groups = rows["group"].to_numpy(dtype=object)
    out: dict[str, list[float]] = {lang: [] for lang in langs}
    for i, a in enumerate(langs):
        for b in langs[i + 1 :]:
            if exclude in (a, b):
                continue
            ga = {g: r for r, g in zip(pos[a], groups[pos[a]], strict=True) if g is not None}
            pairs = [(ga[g], r) for r, g in zip(pos[b], groups[pos[b]], strict=True) if g in ga]
            if len(pairs) < 2:
                continue
            ia, ib = (np.array(x) for x in zip(*pairs, strict=True))
            acc = float(tatoeba_accuracy(X[ia], X[ib], backend="numpy")["acc_mean"])
            out[a].append(acc)
            out[b].append(acc)
    return {k: float(np.mean(v)) if v else float("nan") for k, v in out.items()}


def _lid(X: np.ndarray, langs: np.ndarray, lang: str, seed: int) -> dict[str, float]:
    from xalign.metrics import language_id_probe

    out: dict[str, float] = {}
    kw: dict[str, Any] = dict(control=False, n_boot=0, seed=seed)
    cv = int(min(5, min(np.unique(langs, return_counts=True)[1])))
    if cv >= 2:
        df = language_id_probe(X, langs, cv=cv, **kw)
        out["all languages"] = float(df.value.iloc[0])
    # the language against an equal sample of the others (seeded): a balanced binary probe
    mine = np.flatnonzero(langs == lang)
    rest = np.flatnonzero(langs != lang)
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(rest, size=min(len(mine), len(rest)), replace=False))
    idx = np.concatenate([mine, take])
    y = np.where(langs[idx] == lang, lang, "other")
    cv = int(min(5, len(mine), len(take)))
    if cv >= 2:
        df = language_id_probe(X[idx], y, cv=cv, **kw)
        out[f"{lang} vs the others"] = float(df.value.iloc[0])
    return out


def ablate(
    store: str | Path | Store,
    lang: str,
    out: str | Path,
    *,
    control: Control | None = None,
    seed: int = 0,
    encoder: Encoder | None = None,
    layer: int | None = None,
    pooling: str | None = None,
    top_rate: float = 0.01,
    filter_rate: float = 0.95,
    bar_rate: float = 0.95,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> tuple[Store, AblationReport]:
    """Re-extract ``store``'s corpus into ``out`` with ``lang``'s specific neurons zeroed.

    ``control="random"``: as many random neurons in the same layers instead
    (:func:`random_control` with ``seed``). The new store's manifest records the zeroed
    ``(layer, neuron)`` pairs exactly (``extraction.ablate``). The report compares, at
    ``layer`` (default: the last stored) and ``pooling`` (default: the store's first),
    every language's retrieval accuracy and the language-ID probe, before and after.

    ``encoder``: the model, already loaded (default: the store's ``config.json`` model,
    checked against the store's encoder identity).
    """
    from xalign.extract import ExtractConfig, extract, load_extract_encoder

    src = _open(store)
    if control not in (None, "random"):
        raise ConfigError(f"--control {control!r}: allowed values are random")
    stats = src.neurons()
    targets = language_neurons(
        stats, lang, top_rate=top_rate, filter_rate=filter_rate, bar_rate=bar_rate
    )
    if not targets:
        raise DataError(
            f"no neuron of store {src.path} is specific to {lang!r} at these thresholds "
            f"(top rate {top_rate}, filter rate {filter_rate}, bar rate {bar_rate})"
        )
    F = int(stats.active.shape[2])
    chosen = random_control(targets, F, seed=seed) if control == "random" else targets
    cfg_path = src.path / "config.json"
    try:
        base = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{cfg_path}: cannot read the extraction config ({e})") from None
    known = set(ExtractConfig.__dataclass_fields__)
    base = {k: v for k, v in base.items() if k in known}
    base.update(
        out=str(out),
        ablate=[list(x) for x in chosen],
        neurons=True,
        label=f"{src.label}-ablate-{lang}" + ("-random" if control else ""),
        overwrite=overwrite,
        progress=progress,
        engine="local",
        address=None,
        workers=None,
        pairs=None,
        langs=None,
        split=None,
        limit_per_lang=None,
    )
    if device is not None:
        base["device"] = device
    cfg = ExtractConfig(**base)
    if encoder is None:
        encoder = load_extract_encoder(cfg)
    want = src.manifest.get("identity", {}).get("encoder")
    if want is not None and encoder.facts.identity() != want:
        raise StoreMismatchError(
            f"the model loaded for the ablation is not the one store {src.path} was extracted "
            f"with ({encoder.facts.identity()} vs {want}); pass the same model"
        )
    new, _ = extract(cfg, corpus=_corpus_of(src), encoder=encoder)
    layer = src.layers[-1] if layer is None else layer
    pooling = pooling or src.poolings[0]
    report = AblationReport(
        store=str(src.path),
        out=str(new.path),
        lang=lang,
        control=control,
        seed=seed if control else None,
        layer=layer,
        pooling=pooling,
        n_neurons=len(chosen),
        neurons_per_layer={
            k: sum(1 for a, _ in chosen if a == k) for k in sorted({a for a, _ in chosen})
        },
    )
    before, rows = src.sentences(pooling=pooling, layer=layer, with_rows=True)
    after = new.sentences(pooling=pooling, layer=layer)
    rows = rows.reset_index(drop=True)
    langs = list(dict.fromkeys(rows["lang"]))
    rb, ra = _retrieval(before, rows, langs), _retrieval(after, rows, langs)
    rb_wo, ra_wo = (_retrieval(x, rows, langs, exclude=lang) for x in (before, after))
    report.retrieval = {
        g: {
            "before": rb[g],
            "after": ra[g],
            "before_without": rb_wo[g],
            "after_without": ra_wo[g],
        }
        for g in langs
    }
    labels = rows["lang"].to_numpy(dtype=object).astype(str)
    lb, la = _lid(before, labels, lang, seed), _lid(after, labels, lang, seed)
    report.lid = {k: {"before": lb[k], "after": la[k]} for k in lb if k in la}
    return new, report


def summary_table(
    store: str | Path | Store,
    *,
    top_rate: float = 0.01,
    filter_rate: float = 0.95,
    bar_rate: float = 0.95,
    shared_fraction: float = 1.0,
) -> Any:
    """Per layer: neurons, selected (language-specific to some language), shared, mean LAPE,
    and the count specific to each language, as a DataFrame."""
    import pandas as pd

    from xalign.metrics import (
        activation_probability,
        select_language_specific,
        shared_neurons,
    )

    stats = _open(store).neurons()
    p = activation_probability(stats.active, stats.tokens)
    sel = select_language_specific(p, top_rate=top_rate, filter_rate=filter_rate, bar_rate=bar_rate)
    shared = shared_neurons(p, threshold=sel.bar_value, fraction=shared_fraction)
    recs = []
    for li, layer in enumerate(stats.layers):
        ent = sel.entropy[li]
        rec: dict[str, Any] = {
            "layer": layer,
            "neurons": p.shape[2],
            "specific": int(sel.selected[li].sum()),
            "shared": int(shared[li].sum()),
            "lape_mean": float(np.nanmean(ent)) if np.isfinite(ent).any() else float("nan"),
        }
        for gi, lang in enumerate(stats.languages):
            rec[lang] = int(sel.specific[li, gi].sum())
        recs.append(rec)
    df = pd.DataFrame(recs)
    df.attrs.update(filter_value=sel.filter_value, bar_value=sel.bar_value, **sel.protocol)
    return df


def summary(store: str | Path | Store, **kw: Any) -> str:
    """``python -m xalign.neurons summary``: the per-layer table as text."""
    df = summary_table(store, **kw)
    a = df.attrs
    share = kw.get("shared_fraction", 1.0)
    every = "every language" if share == 1 else f"at least {share:g} of the languages"
    head = (
        f"language-specific neurons (LAPE lowest {a['top_rate']:g}, probability > "
        f"{a['bar_value']:.4f} = the {a['bar_rate']:g} quantile; shared: above it for {every})"
    )
    return head + "\n" + df.to_string(index=False, float_format=lambda x: f"{x:.4f}")
