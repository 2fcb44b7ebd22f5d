"""A prepared extraction run: the store opened, its tables and arrays created, chunks to compute.

What every engine shares: :func:`prepare_extract` does all the work that needs no model forward
(reads lengths, writes the tables, creates the arrays, finds the chunks still to compute);
an engine computes the chunks (:func:`xalign.extract.compute_chunk`) and hands them to
:meth:`ExtractPlan.write_chunk`; :func:`finish_extract` seals the store.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign.errors import ConfigError, StoreError
from xalign.extract._config import ExtractConfig, resolve_prefix
from xalign.extract._extract import SLACK, TORCH_FLOOR, ChunkSpec, ExtractSummary
from xalign.extract._neurons import PARTIAL_DIR, NeuronAccumulator
from xalign.extract._tokenize import tokenize_corpus

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from xalign.data import Corpus
    from xalign.models import Encoder
    from xalign.store import Store

__all__ = [
    "ExtractPlan",
    "finish_extract",
    "prepare_extract",
    "progress_bar",
    "summarize_extract",
]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 1024
DEFAULT_CHUNK_ROWS_TOKENS = 256
TOKEN_CHUNK = 4096
ATTN_CHUNK = 1 << 16


@dataclass
class ExtractPlan:
    """A prepared run: the store writer with its arrays, and where each chunk goes."""

    config: ExtractConfig
    corpus: Corpus
    writer: Any
    spec: ChunkSpec
    texts: list[str]
    n_tokens: NDArray[np.int64]
    chunk_rows: int
    arrays: dict[str, Any]
    tok_off: NDArray[np.int64]
    att_off: NDArray[np.int64]
    n_full: NDArray[np.int64]
    #: neuron statistics still being accumulated (None: not asked for, or already final)
    neurons: NeuronAccumulator | None = None
    #: each row's index into the store's language list (the ``neurons/*`` language axis)
    lang_index: NDArray[np.int64] | None = None
    #: with ``--backend auto`` resolved to torch: the reason (recorded in the manifest's run)
    backend_note: str | None = None

    def chunk_langs(self, chunk: int) -> NDArray[np.int64] | None:
        """The language index of every row of ``chunk`` (None without neuron statistics)."""
        if self.lang_index is None:
            return None
        a, b = self.bounds(chunk)
        return self.lang_index[a:b]

    @property
    def n_rows(self) -> int:
        return len(self.texts)

    @property
    def n_chunks(self) -> int:
        return (self.n_rows + self.chunk_rows - 1) // self.chunk_rows

    def bounds(self, chunk: int) -> tuple[int, int]:
        return chunk * self.chunk_rows, min(self.n_rows, (chunk + 1) * self.chunk_rows)

    def todo(self) -> list[int]:
        return [c for c in range(self.n_chunks) if c not in self.writer.done]

    def write_chunk(self, chunk: int, arrays: dict[str, NDArray[Any]]) -> None:
        """Write one computed chunk into the store and record it as done (the resume point)."""
        a, b = self.bounds(chunk)
        spans: dict[str, Any] = {
            "sentence": (a, b),
            "token": self.tok_off,
            "attention": self.att_off,
        }
        stats = {k: v for k, v in arrays.items() if k.startswith("neurons/")}
        arrays = {k: v for k, v in arrays.items() if not k.startswith("neurons/")}
        if self.spec.neurons and not stats:
            raise StoreError(f"{self.writer.path}: chunk {chunk} holds no neuron statistics")
        if set(arrays) != set(self.arrays):
            raise StoreError(
                f"{self.writer.path}: chunk {chunk} holds arrays {sorted(arrays)}, expected "
                f"{sorted(self.arrays)}"
            )
        for name, data in arrays.items():
            span = spans[name.split("/", 1)[0]]
            lo, hi = (a, b) if isinstance(span, tuple) else (int(span[a]), int(span[b]))
            target = self.arrays[name]
            if data.shape != (hi - lo, *target.shape[1:]):
                raise StoreError(
                    f"{self.writer.path}: chunk {chunk} array {name} has shape {data.shape}, "
                    f"expected {(hi - lo, *target.shape[1:])} (rows {a}..{b - 1})"
                )
            self.writer.write_rows(name, lo, data)  # checksums its chunk files
        if self.neurons is not None:
            self.neurons.add(chunk, stats)  # counted before the chunk is marked done
        self.writer.mark_done(chunk)

    def redo_damaged(self) -> None:
        """Mark the row chunks whose array chunks were found damaged as not done."""
        spans: dict[str, NDArray[np.int64] | None] = {
            "sentence": None,
            "token": self.tok_off,
            "attention": self.att_off,
        }
        redo: set[int] = set()
        for name, ks in self.writer.damaged.items():
            if name not in self.arrays:
                continue  # offsets: rewritten by every run
            c0 = int(self.arrays[name].chunks[0])
            span = spans[name.split("/", 1)[0]]
            for k in ks:
                lo, hi = k * c0, (k + 1) * c0
                if span is None:
                    r0, r1 = lo, min(hi, self.n_rows)
                else:  # rows whose elements overlap [lo, hi)
                    r0 = int(np.searchsorted(span, lo, side="right")) - 1
                    r1 = int(np.searchsorted(span, hi, side="left"))
                r0, r1 = max(r0, 0), min(r1, self.n_rows)
                if r1 > r0:
                    redo.update(range(r0 // self.chunk_rows, (r1 - 1) // self.chunk_rows + 1))
        self.writer.redo(redo)


def prepare_extract(
    config: ExtractConfig, corpus: Corpus, encoder: Encoder, *, autocast: bool | None = None
) -> ExtractPlan:
    """Open or resume the store, write its tables and create its arrays (no model forward).

    ``autocast``: whether the chunks will run under CUDA autocast (default: the config's choice
    on this encoder's device; the Ray engine decides from the cluster's GPUs).

    ``config.backend`` is resolved here (``auto`` → ``onnx`` or ``torch``; an ONNX export, when
    one is needed, happens before the store is touched). A store begun with one backend is
    resumed only with the same one: the two agree to a cosine of 0.9999999, not bit for bit.
    A backend other than torch is part of the store's identity (``extraction.backend``).
    """
    from xalign.extract._onnx import resolve_backend
    from xalign.store import StoreWriter, parse_layers

    facts = encoder.facts
    L = facts.num_layers
    layers = parse_layers(config.layers, L)
    attn_layers = [layer for layer in layers if layer >= 1] if config.attentions != "none" else []
    if config.attentions != "none" and not attn_layers:
        raise ConfigError("--attentions needs at least one layer in 1..L in --layers (0 has none)")
    max_length = min(config.max_length or facts.max_length, facts.max_length)
    prefix = resolve_prefix(config.prefix, facts.default_prefix)
    keep_tokens = config.tokens
    with_token_table = config.tokens or config.attentions != "none"
    chunk_rows = config.chunk_rows or (
        DEFAULT_CHUNK_ROWS_TOKENS if with_token_table else DEFAULT_CHUNK_ROWS
    )
    D = facts.hidden_size
    if autocast is None:
        autocast = bool(config.autocast and encoder.device.type == "cuda")
    neurons_info, ablate = _neuron_facts(config, encoder, corpus)
    backend, backend_note = resolve_backend(config, encoder)
    _check_backend(config, backend)
    extraction = {
        "layers": layers,
        "attention_layers": attn_layers,
        "poolings": list(config.pooling),
        "max_length": max_length,
        "prefix": prefix,
        "tokens": keep_tokens,
        "attentions": config.attentions,
        "dtype_disk": "float16",
        "compute_dtype": config.dtype,
        "autocast": autocast,
        "token_budget": config.token_budget,
        "chunk_rows": chunk_rows,
    }
    if neurons_info is not None:  # only when asked: stores without them keep their identity
        extraction["neurons"] = neurons_info
    if ablate:
        extraction["ablate"] = ablate
    if backend != "torch":  # torch stores keep the identity they had before backends existed
        extraction["backend"] = backend
    corpus_info = {
        "name": corpus.name,
        "source": corpus.source,
        "fingerprint": corpus.fingerprint(),
        "n_rows": len(corpus),
        "languages": corpus.languages,
        "parallel": corpus.is_parallel,
    }
    writer = StoreWriter(
        config.out,
        encoder=facts.to_dict(),
        encoder_identity=facts.identity(),
        corpus=corpus_info,
        extraction=extraction,
        label=config.label,
        overwrite=config.overwrite,
    )
    spec = ChunkSpec(
        layers=layers,
        attn_layers=attn_layers,
        poolings=list(config.pooling),
        keep_tokens=keep_tokens,
        attentions=config.attentions,
        hidden_size=D,
        num_heads=facts.num_heads,
        max_length=max_length,
        prefix=prefix,
        token_budget=config.token_budget,
        autocast=autocast,
        neurons=neurons_info is not None,
        ablate=[(a, b) for a, b in ablate],
        backend=backend,
        **_batching(backend, encoder, autocast, config.token_budget),
    )
    texts = corpus.rows["text"].tolist()
    empty = np.zeros(0, np.int64)
    plan = ExtractPlan(
        config, corpus, writer, spec, texts, empty, chunk_rows, {}, empty, empty, empty
    )
    plan.backend_note = backend_note
    if writer.already_complete:
        shutil.rmtree(writer.path / PARTIAL_DIR, ignore_errors=True)  # left by a kill at the end
        return plan
    # First pass keeps only lengths (the token table streams to disk), so memory does not grow
    # with the corpus; each chunk is tokenised again when it is computed.
    n_tokens, n_full = _first_pass(
        texts,
        encoder.tokenizer,
        max_length=max_length,
        prefix=prefix,
        table=writer.path / "tokens.parquet" if with_token_table else None,
    )
    rows_df = corpus.rows.copy()
    rows_df.insert(0, "row", np.arange(len(rows_df), dtype=np.int64))
    rows_df["n_tokens"] = n_tokens
    rows_df["n_tokens_full"] = n_full
    rows_df["truncated"] = n_full > n_tokens
    writer.write_tables(rows_df, None)
    _write_gold_links(corpus, writer.path)
    writer.write_config({**config.to_dict(), "backend": backend})  # the backend used

    N, nL = len(corpus), len(layers)
    arrays = {
        f"sentence/{p}": writer.ensure_array(
            f"sentence/{p}", shape=(N, nL, D), chunks=(chunk_rows, 1, D), dtype="float16"
        )
        for p in config.pooling
    }
    tok_off = np.concatenate([[0], np.cumsum(n_tokens)]).astype(np.int64)
    att_off = np.concatenate([[0], np.cumsum(n_tokens**2)]).astype(np.int64)
    if keep_tokens:
        arrays["token/hidden"] = writer.ensure_array(
            "token/hidden",
            shape=(int(tok_off[-1]), nL, D),
            chunks=(TOKEN_CHUNK, 1, D),
            dtype="float16",
        )
        writer.ensure_array(
            "token/offsets", shape=(N + 1,), chunks=(N + 1,), dtype="int64", data=tok_off
        )
    if config.attentions != "none":
        H = facts.num_heads
        shape: tuple[int, ...] = (int(att_off[-1]), len(attn_layers))
        chunks: tuple[int, ...] = (ATTN_CHUNK, 1)
        if config.attentions == "full":
            shape, chunks = (*shape, H), (ATTN_CHUNK // H, 1, H)
        arrays[f"attention/{config.attentions}"] = writer.ensure_array(
            f"attention/{config.attentions}", shape=shape, chunks=chunks, dtype="float16"
        )
        writer.ensure_array(
            "attention/offsets", shape=(N + 1,), chunks=(N + 1,), dtype="int64", data=att_off
        )
    plan.n_tokens, plan.n_full, plan.arrays = n_tokens, n_full, arrays
    plan.tok_off, plan.att_off = tok_off, att_off
    plan.redo_damaged()
    if neurons_info is not None:
        _prepare_neurons(plan, neurons_info)
    for line in writer.repairs:
        log.warning("%s", line)
    return plan


def finish_extract(
    plan: ExtractPlan, seconds: float, rows_computed: int, backoffs: int, device: str
) -> tuple[Store, ExtractSummary]:
    from xalign.store import Store

    if plan.neurons is not None:
        _write_neurons(plan)
    counts = {
        "rows": plan.n_rows,
        "languages": {
            k: int(v) for k, v in plan.corpus.rows["lang"].value_counts(sort=False).items()
        },
        "tokens": int(plan.n_tokens.sum()),
        "truncated": int((plan.n_full > plan.n_tokens).sum()),
    }
    plan.writer.finish(
        counts,
        run={
            "seconds": round(seconds, 3),
            "rows_computed": rows_computed,
            "batch_backoffs": backoffs,
            "device": device,
            "engine": plan.config.engine,
            **_backend_run(plan),
        },
    )
    if plan.neurons is not None:
        plan.neurons.remove()
    store = Store.open(plan.config.out)
    return store, summarize_extract(store, seconds, rows_computed, plan.writer, backoffs)


def _batching(backend: str, encoder: Encoder, autocast: bool, budget: int) -> dict[str, Any]:
    """How a chunk's rows are batched: tight on a CPU (the ONNX forward, or torch with a floor).

    On CUDA (or autocast, the Ray engine's GPU actors) the token budget alone, as before.
    """
    if backend == "onnx":
        return {"slack": SLACK, "min_tokens": 0}
    if encoder.device.type == "cpu" and not autocast:
        return {"slack": SLACK, "min_tokens": int(budget * TORCH_FLOOR)}
    return {"slack": None, "min_tokens": 0}


def _backend_run(plan: ExtractPlan) -> dict[str, Any]:
    """The manifest's ``run`` fields on the forward: backend used, asked for, and why."""
    run: dict[str, Any] = {
        "backend": plan.spec.backend,
        "backend_requested": plan.config.backend,
        "batch_slack": plan.spec.slack,
        "batch_min_tokens": plan.spec.min_tokens,
    }
    if plan.backend_note:
        run["backend_note"] = plan.backend_note
    if plan.spec.backend == "onnx":
        import onnxruntime

        run["onnxruntime"] = onnxruntime.__version__
    return run


def _check_backend(config: ExtractConfig, backend: str) -> None:
    """Refuse to resume (or repair) a store at ``--out`` begun with another backend.

    Its chunks and this run's would come from two forwards that agree to a cosine of 0.9999999
    but not bit for bit; one store is never a mix. (The identity check would refuse it too;
    this says which backend to use.)
    """
    from xalign._io import read_json
    from xalign.errors import StoreMismatchError
    from xalign.store import is_store

    out = Path(config.out)
    if config.overwrite or not is_store(out):
        return
    try:
        extraction = read_json(out / "manifest.json").get("extraction", {})
        old = extraction.get("backend", "torch")
    except (OSError, ValueError, AttributeError):
        return  # the store's own checks report a damaged manifest
    if old != backend:
        auto = " (--backend auto)" if config.backend == "auto" else ""
        raise StoreMismatchError(
            f"{out} was begun with the {old} backend and this run uses {backend}{auto}: one "
            "store never mixes the two (they agree closely, not bit for bit); rerun with "
            f"--backend {old} to resume or verify it, or with --overwrite to re-extract it"
        )


def _neuron_facts(
    config: ExtractConfig, encoder: Encoder, corpus: Corpus
) -> tuple[dict[str, Any] | None, list[list[int]]]:
    """The manifest's ``extraction.neurons`` (None when not asked) and checked ``ablate``.

    Finds every block's feed-forward activation before any work, so a model without one, or
    an ablation naming a neuron out of range, fails in one line naming the layer and module.
    """
    if not config.neurons and not config.ablate:
        return None, []
    from xalign.extract._neurons import NEURON_STATS, check_ablation, ffn_size, find_ffn

    model = encoder.model
    blocks = find_ffn(model, encoder.facts.num_layers)
    size = ffn_size(model)
    pairs = [(int(a), int(b)) for a, b in config.ablate or []]
    check_ablation(pairs, blocks, size)
    if not config.neurons:
        return None, [list(x) for x in pairs]
    info = {
        "layers": [b.layer for b in blocks],
        "modules": [b.name for b in blocks],
        "ffn_size": size,
        "languages": list(corpus.languages),
        "stats": list(NEURON_STATS),
        "activation": "output of the feed-forward activation function (before any up-projection "
        "product); active = activation > 0",
        "tokens": "content tokens only: attention mask set, special and prefix tokens excluded",
        "dtype": "float64",
    }
    return info, [list(x) for x in pairs]


def _prepare_neurons(plan: ExtractPlan, info: dict[str, Any]) -> None:
    """Resume the neuron accumulator so that every chunk is counted exactly once."""
    writer = plan.writer
    langs = info["languages"]
    index = {lang: i for i, lang in enumerate(langs)}
    plan.lang_index = np.asarray([index[x] for x in plan.corpus.rows["lang"]], dtype=np.int64)
    folder = writer.path / PARTIAL_DIR
    damaged = any(name.startswith("neurons/") for name in writer.damaged)
    final = (writer.path / "arrays.zarr" / "neurons" / "active" / "zarr.json").is_file()
    if final and not folder.is_dir() and not damaged and writer.done:
        return  # a finished store being repaired: its statistics are intact and stay
    acc = NeuronAccumulator(
        writer.path,
        L=len(info["layers"]),
        G=len(langs),
        F=int(info["ffn_size"]),
        n_chunks=plan.n_chunks,
    )
    if damaged:
        acc.reset()
    missing = writer.done - acc.counted()
    if missing:
        # chunks whose statistics were lost (damaged or unreadable accumulator): the totals
        # are sums over every chunk, so those chunks are computed again
        log.warning(
            "%s: neuron statistics of %d finished chunk(s) are missing: recomputing them",
            writer.path,
            len(missing),
        )
        writer.redo(missing)
    acc.fold()
    plan.neurons = acc


def _write_neurons(plan: ExtractPlan) -> None:
    """Turn the complete accumulator into the store's ``neurons/<stat>`` float64 arrays."""
    acc = plan.neurons
    assert acc is not None
    acc.fold(flush=True)
    if not acc.complete():
        raise StoreError(
            f"{plan.writer.path}: neuron statistics hold chunks 0..{acc.through} of "
            f"{plan.n_chunks}; rerun the same command to resume"
        )
    L = acc.shape[0]
    for stat, data in acc.acc.items():
        plan.writer.ensure_array(
            f"neurons/{stat}",
            shape=data.shape,
            chunks=(L, 1, data.shape[2]),
            dtype="float64",
            data=data,
        )


def _write_gold_links(corpus: Corpus, path: Path) -> None:
    """Keep a word-alignment corpus's gold links in the store (``gold_alignments.tsv``).

    Columns ``id_a, id_b, links`` (awesome-align notation, 1-based: ``i-j`` sure, ``ipj``
    possible), so readers of the store (the dashboard) need nothing outside it.
    """
    meta = corpus.meta
    if corpus.name != "wordalign" or not meta.get("gold"):
        return
    import pandas as pd

    from xalign._io import write_text
    from xalign.data import gold_alignments

    golds = gold_alignments(
        meta["text"],
        limit=int(meta["n_pairs"]),
        out_of_range="drop" if meta.get("gold_dropped") else "error",
    )
    rows = corpus.rows
    src = rows[rows["lang"] == meta["src"]].set_index("group")["id"]
    tgt = rows[rows["lang"] == meta["tgt"]].set_index("group")["id"]
    recs = []
    for k, (sure, possible) in enumerate(golds):
        group = f"{meta['pair']}:{k}"
        if group not in src.index or group not in tgt.index:
            continue
        links = [f"{i + 1}-{j + 1}" for i, j in sorted(sure)]
        links += [f"{i + 1}p{j + 1}" for i, j in sorted(possible - sure)]
        recs.append({"id_a": src[group], "id_b": tgt[group], "links": " ".join(links)})
    write_text(path / "gold_alignments.tsv", pd.DataFrame(recs).to_csv(sep="\t", index=False))


def _first_pass(
    texts: Sequence[str],
    tokenizer: Any,
    *,
    max_length: int,
    prefix: str,
    table: Path | None,
    batch: int = 4096,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Token counts (kept, and before truncation) of every row; streams the token table."""
    from xalign._io import write_parquet_stream

    n_tokens = np.zeros(len(texts), dtype=np.int64)
    n_full = np.zeros(len(texts), dtype=np.int64)

    def tables() -> Iterator[Any]:
        for start in range(0, len(texts), batch):
            part = texts[start : start + batch]
            tk = tokenize_corpus(
                part,
                tokenizer,
                max_length=max_length,
                prefix=prefix,
                with_offsets=table is not None,
            )
            n_tokens[start : start + len(part)] = tk.n_tokens
            n_full[start : start + len(part)] = tk.n_tokens_full
            if table is not None:
                yield tk.token_table(part, tokenizer, row_offset=start)

    if table is None:
        for _ in tables():
            pass
    else:
        write_parquet_stream(table, tables())
    return n_tokens, n_full


def summarize_extract(
    store: Store, seconds: float, rows_computed: int, writer: Any, backoffs: int
) -> ExtractSummary:
    c = store.manifest["counts"]
    run = store.manifest.get("run") or {}
    return ExtractSummary(
        path=str(store.path),
        rows=int(c["rows"]),
        languages=len(c["languages"]),
        tokens=int(c["tokens"]),
        truncated=int(c["truncated"]),
        seconds=seconds,
        rows_computed=rows_computed,
        resumed=writer.resumed,
        already_complete=writer.already_complete,
        store_bytes=store.nbytes_on_disk(),
        batch_backoffs=backoffs,
        repairs=list(getattr(writer, "repairs", [])),
        backend=str(run.get("backend", "torch")),
        backend_note=run.get("backend_note"),
    )


def progress_bar(total: int, *, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="sent", leave=False)
