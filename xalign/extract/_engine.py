"""Extraction engines: who computes a prepared run's chunks (this process, or a Ray cluster).

Every engine follows one recipe on public names of :mod:`xalign.extract`:
:func:`prepare_extract` opens or resumes the store and creates its arrays (no model forward),
:func:`compute_chunk` encodes the rows of one chunk, :meth:`ExtractPlan.write_chunk` stores
them and :func:`finish_extract` seals the store. The engines differ only in where the chunks
are computed, so a store's bytes do not depend on the engine. :func:`extract` picks the engine
named by ``config.engine`` (:func:`engine_for`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from xalign._validate import check_choice
from xalign.extract._config import ENGINES, ExtractConfig
from xalign.extract._extract import (
    ExtractSummary,
    check_out,
    compute_chunk,
    load_extract_encoder,
)
from xalign.extract._plan import finish_extract, prepare_extract, progress_bar, summarize_extract

if TYPE_CHECKING:
    from xalign.data import Corpus
    from xalign.models import Encoder
    from xalign.store import Store

__all__ = ["Engine", "LocalEngine", "engine_for", "extract"]


class Engine(Protocol):
    """What :func:`extract` needs of an engine (``config.engine`` names it)."""

    name: str

    def driver_encoder(self, config: ExtractConfig) -> Encoder:
        """The encoder this process loads when the caller gave none."""
        ...

    def run(
        self, config: ExtractConfig, corpus: Corpus, encoder: Encoder, t0: float
    ) -> tuple[Store, ExtractSummary]:
        """Write ``corpus`` through ``encoder`` into ``config.out``; ``t0``: when the run began."""
        ...


class LocalEngine:
    """Computes every chunk in this process, one after the other, on the encoder's device."""

    name = "local"

    def driver_encoder(self, config: ExtractConfig) -> Encoder:
        return load_extract_encoder(config)

    def run(
        self, config: ExtractConfig, corpus: Corpus, encoder: Encoder, t0: float
    ) -> tuple[Store, ExtractSummary]:
        previous = encoder.attn_implementation
        if config.attentions != "none" and previous != "eager":
            # attention maps need eager attention; the caller's encoder is restored afterwards
            encoder.model.set_attn_implementation("eager")
            encoder.attn_implementation = "eager"
        try:
            return self._run(config, corpus, encoder, t0)
        finally:
            if encoder.attn_implementation != previous:
                encoder.model.set_attn_implementation(previous)
                encoder.attn_implementation = previous

    @staticmethod
    def _run(
        config: ExtractConfig, corpus: Corpus, encoder: Encoder, t0: float
    ) -> tuple[Store, ExtractSummary]:
        from xalign.store import Store

        plan = prepare_extract(config, corpus, encoder)
        if plan.writer.already_complete:
            store = Store.open(config.out)
            return store, summarize_extract(store, time.perf_counter() - t0, 0, plan.writer, 0)
        runner = plan.spec.runner(encoder)
        todo = plan.todo()
        rows_todo = sum(b - a for a, b in map(plan.bounds, todo))
        t_compute = time.perf_counter()
        bar = progress_bar(rows_todo, enabled=config.progress, desc=f"extract {encoder.facts.name}")
        for c in todo:
            a, b = plan.bounds(c)
            chunk = compute_chunk(
                plan.spec, runner, plan.texts[a:b], on_rows=bar.update, langs=plan.chunk_langs(c)
            )
            plan.write_chunk(c, chunk)
        bar.close()
        seconds = time.perf_counter() - t_compute
        return finish_extract(plan, seconds, rows_todo, runner.backoffs, str(encoder.device))


def engine_for(name: str) -> Engine:
    """The engine called ``name`` (``"local"`` or ``"ray"``; Ray is imported only when used)."""
    check_choice("--engine", name, ENGINES)
    if name == "ray":
        from xalign.extract._ray import RayEngine

        return RayEngine()
    return LocalEngine()


def _check_existing_corpus(config: ExtractConfig, corpus: Corpus) -> None:
    """Refuse, before the model loads, an ``--out`` store made from another corpus.

    The full identity (encoder, extraction config) is checked once the encoder is known; the
    corpus part needs no model, so a wrong ``--out`` fails in a second instead of after loading.
    """
    from xalign._io import read_json
    from xalign.errors import StoreMismatchError
    from xalign.store import is_store

    out = Path(config.out)
    if config.overwrite or not is_store(out):
        return
    try:
        old = read_json(out / "manifest.json").get("identity", {}).get("corpus_fingerprint")
    except (OSError, ValueError, AttributeError):
        return  # the store's own checks report a damaged manifest with the right message
    new = corpus.fingerprint()
    if old is not None and old != new:
        raise StoreMismatchError(
            f"{out} holds a store of another model/corpus/config (corpus_fingerprint: store has "
            f"{old!r}, "
            f"this run has {new!r}); use another --out or --overwrite"
        )


def extract(
    config: ExtractConfig,
    *,
    corpus: Corpus | None = None,
    encoder: Encoder | None = None,
) -> tuple[Store, ExtractSummary]:
    """Run one extraction into ``config.out`` (resuming a partial store of the same identity).

    ``corpus`` and ``encoder`` may be given directly (tests, notebooks); otherwise they are loaded
    from ``config.data`` and ``config.model``. With ``config.engine == "ray"`` the chunks are
    computed by encoder actors on a Ray cluster (:class:`RayEngine`); ``encoder`` then serves
    the driver only (tokenizer and facts), and each worker loads ``config.model`` itself.
    """

    t0 = time.perf_counter()
    check_out(config.out)
    if corpus is None:
        from xalign.data import load_corpus

        corpus = load_corpus(
            config.data,
            langs=config.langs,
            split=config.split,
            limit_per_lang=config.limit_per_lang,
        )
    elif config.langs or config.split or config.limit_per_lang:
        corpus = corpus.select(
            langs=config.langs, split=config.split, limit_per_lang=config.limit_per_lang
        )
    _check_existing_corpus(config, corpus)
    engine = engine_for(config.engine)
    if encoder is None:
        encoder = engine.driver_encoder(config)
    return engine.run(config, corpus, encoder, t0)
