"""Extraction: corpus → encoder → store, in length-sorted, token-budget batches, chunk by chunk."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign.errors import ConfigError, StoreError
from xalign.extract._config import ExtractConfig, parse_layers, resolve_prefix
from xalign.extract._tokenize import TokenizedCorpus, tokenize_corpus

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

    from xalign.data import Corpus
    from xalign.models import Encoder
    from xalign.store import Store

__all__ = [
    "ChunkSpec",
    "ExtractSummary",
    "check_out",
    "compute_chunk",
    "extract",
    "length_sorted_batches",
    "pool",
]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 1024
DEFAULT_CHUNK_ROWS_TOKENS = 256
TOKEN_CHUNK = 4096
ATTN_CHUNK = 1 << 16


@dataclass
class ExtractSummary:
    """What one run did (printed at the end of ``python -m xalign.extract``)."""

    path: str
    rows: int
    languages: int
    tokens: int
    truncated: int
    seconds: float
    rows_computed: int
    resumed: bool
    already_complete: bool
    store_bytes: int
    batch_backoffs: int
    repairs: list[str] = field(default_factory=list)

    @property
    def sentences_per_s(self) -> float:
        return self.rows_computed / self.seconds if self.seconds > 0 else float("nan")

    def format(self) -> str:
        state = (
            "already complete and verified, nothing to do"
            if self.already_complete
            else ("repaired" if self.repairs else "resumed" if self.resumed else "new")
        )
        found = [f"found      {x}" for x in self.repairs[:10]]
        if len(self.repairs) > 10:
            found.append(f"found      ... and {len(self.repairs) - 10} more")
        return "\n".join(
            [
                *found,
                f"store      {self.path}  ({state})",
                f"rows       {self.rows:,} in {self.languages} languages",
                f"tokens     {self.tokens:,}  (truncated rows: {self.truncated:,})",
                f"time       {self.seconds:.1f} s for {self.rows_computed:,} rows "
                f"({self.sentences_per_s:.1f} sentences/s)",
                f"size       {self.store_bytes / 2**20:.1f} MiB on disk",
            ]
        )


def length_sorted_batches(
    lengths: Sequence[int] | NDArray[np.int64], *, token_budget: int
) -> list[NDArray[np.int64]]:
    """Split row indices into batches whose padded size (rows × longest) stays within the budget.

    Rows are sorted by length (longest first, stable), so padding is small. A row longer than the
    budget gets a batch of its own.

    >>> [b.tolist() for b in length_sorted_batches([3, 9, 4, 8], token_budget=18)]
    [[1, 3], [2, 0]]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[NDArray[np.int64]] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        size = max(1, token_budget // max(longest, 1))
        batches.append(order[start : start + size])
        start += size
    return batches


def pool(
    hidden: torch.Tensor, mask: torch.Tensor, special: torch.Tensor, pooling: str
) -> torch.Tensor:
    """Pool ``hidden [..., B, T, D]`` over tokens with attention ``mask [B, T]``.

    ``special [B, T]`` marks special and prefix tokens (excluded by ``mean_nospecial``).
    """
    import torch

    m = mask.to(hidden.dtype)
    if pooling == "mean":
        return (hidden * m[..., None]).sum(-2) / m.sum(-1)[..., None]
    if pooling == "mean_nospecial":
        c = m * (~special).to(hidden.dtype)
        # a row of only special tokens (cannot happen for non-empty text) falls back to all tokens
        c = torch.where(c.sum(-1, keepdim=True) > 0, c, m)
        return (hidden * c[..., None]).sum(-2) / c.sum(-1)[..., None]
    if pooling == "cls":
        return hidden[..., 0, :]
    if pooling == "max":
        neg = torch.finfo(hidden.dtype).min
        return hidden.masked_fill(~mask.bool()[..., None], neg).amax(-2)
    if pooling == "last":
        last = mask.long().sum(-1) - 1  # right padding
        idx = last.view(*([1] * (hidden.dim() - 3)), -1, 1, 1).expand(
            *hidden.shape[:-2], 1, hidden.shape[-1]
        )
        return hidden.gather(-2, idx).squeeze(-2)
    raise ConfigError(f"unknown pooling {pooling!r}")


def _is_oom(err: BaseException) -> bool:
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class _Runner:
    """Runs the forward pass for batches of rows and returns per-row float32 results."""

    def __init__(
        self,
        encoder: Encoder,
        *,
        layers: list[int],
        attn_layers: list[int],
        poolings: list[str],
        keep_tokens: bool,
        attentions: str,
        autocast: bool,
    ) -> None:
        import torch

        self.torch = torch
        self.encoder = encoder
        self.tok: TokenizedCorpus | None = None  # the chunk being computed (set per chunk)
        self.layers = layers
        self.attn_layers = attn_layers
        self.poolings = poolings
        self.keep_tokens = keep_tokens
        self.attentions = attentions
        self.device = encoder.device
        self.autocast = autocast and self.device.type == "cuda"
        pad = encoder.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0
        self.backoffs = 0

    def _inputs(self, rows: NDArray[np.int64]) -> tuple[Any, Any, Any]:
        torch = self.torch
        assert self.tok is not None
        n = self.tok.n_tokens[rows]  # rows index the current chunk
        T = int(n.max())
        ids = np.full((len(rows), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), T), dtype=np.int64)
        special = np.zeros((len(rows), T), dtype=bool)
        for b, r in enumerate(rows):
            k = int(n[b])
            ids[b, :k] = self.tok.ids[r]
            mask[b, :k] = 1
            special[b, :k] = self.tok.special[r]
        pin = self.device.type == "cuda"
        to = lambda a: (  # noqa: E731
            torch.from_numpy(a).pin_memory().to(self.device, non_blocking=True)
            if pin
            else torch.from_numpy(a)
        )
        return to(ids), to(mask), to(special)

    def _forward(self, rows: NDArray[np.int64]) -> dict[str, Any]:
        torch = self.torch
        ids, mask, special = self._inputs(rows)
        model = self.encoder.model
        want_attn = self.attentions != "none"
        from xalign.models._load import autocast_context

        with torch.inference_mode(), autocast_context(self.autocast):
            out = model(
                input_ids=ids,
                attention_mask=mask,
                output_hidden_states=True,
                output_attentions=want_attn,
                return_dict=True,
            )
            hs = torch.stack([out.hidden_states[layer] for layer in self.layers]).float()
            result: dict[str, Any] = {
                p: pool(hs, mask, special, p).transpose(0, 1).cpu().numpy() for p in self.poolings
            }
            if self.keep_tokens:
                result["tokens"] = hs.transpose(0, 1).to(torch.float16).cpu().numpy()
            if want_attn:
                if out.attentions is None or any(a is None for a in out.attentions):
                    raise ConfigError(
                        "the model returned no attention maps; load it with "
                        "attn_implementation='eager'"
                    )
                att = torch.stack([out.attentions[layer - 1] for layer in self.attn_layers]).float()
                if self.attentions == "head-mean":
                    att = att.mean(2)  # [nA, B, T, T]
                    result["attn"] = att.transpose(0, 1).to(torch.float16).cpu().numpy()
                else:  # [nA, B, H, T, T] → [B, nA, H, T, T]
                    result["attn"] = att.transpose(0, 1).to(torch.float16).cpu().numpy()
        result["n"] = self.tok.n_tokens[rows]  # type: ignore[union-attr]
        return result

    def run(self, rows: NDArray[np.int64]) -> Iterator[tuple[NDArray[np.int64], dict[str, Any]]]:
        """Yield (rows, results) — splitting the batch in halves on out-of-memory."""
        try:
            yield rows, self._forward(rows)
        except Exception as err:
            if not _is_oom(err) or len(rows) == 1:
                raise
            self.backoffs += 1
            if self.device.type == "cuda":
                self.torch.cuda.empty_cache()
            log.warning("out of memory on a batch of %d rows: halving it", len(rows))
            half = len(rows) // 2
            yield from self.run(rows[:half])
            yield from self.run(rows[half:])


def _load_encoder(cfg: ExtractConfig, *, device: str | None = None) -> Encoder:
    from xalign.models import load_encoder

    attn_impl = "eager" if cfg.attentions != "none" else "sdpa"
    return load_encoder(
        cfg.model,
        device=device or cfg.device,
        dtype=cfg.dtype,  # type: ignore[arg-type]  # validated in ExtractConfig
        revision=cfg.revision,
        attn_implementation=attn_impl,  # type: ignore[arg-type]
        trust_remote_code=cfg.trust_remote_code,
    )


def check_out(out: str | Path) -> Path:
    """Check the store folder ``out`` before any expensive work (model loading, tokenising).

    It must not lie inside another store, must be a folder (or not exist yet) and must take a
    file; it is created. Raises :class:`ConfigError` with one line naming the path.
    """
    from xalign._io import ensure_writable_dir, inside_store

    p = Path(out)
    holder = inside_store(p.parent if str(p.parent) else Path("."))
    if holder is not None:
        raise ConfigError(
            f"--out {p} lies inside the store {holder}; write the new store beside it"
        )
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--out {p}: a file stands where a store folder is expected")
    created = [q for q in (p, *p.parents) if not q.exists()]
    ensure_writable_dir(p, what="--out")
    for q in created:  # leave no empty folder behind if the run stops before writing
        try:
            q.rmdir()
        except OSError:
            break
    return p


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
    computed by encoder actors on a Ray cluster (:mod:`xalign.scale`); ``encoder`` then serves
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
    if config.engine == "ray":
        from xalign.scale import extract_ray

        if encoder is None:
            encoder = _load_encoder(config, device="cpu")  # tokenizer and facts; no forward
        return extract_ray(config, corpus, encoder, t0)
    if encoder is None:
        encoder = _load_encoder(config)
    previous = encoder.attn_implementation
    if config.attentions != "none" and previous != "eager":
        # attention maps need eager attention; the caller's encoder is restored afterwards
        encoder.model.set_attn_implementation("eager")
        encoder.attn_implementation = "eager"
    try:
        return _extract(config, corpus, encoder, t0)
    finally:
        if encoder.attn_implementation != previous:
            encoder.model.set_attn_implementation(previous)
            encoder.attn_implementation = previous


@dataclass
class ChunkSpec:
    """What computing one chunk needs, fixed for the whole run (picklable: sent to Ray workers)."""

    layers: list[int]
    attn_layers: list[int]
    poolings: list[str]
    keep_tokens: bool
    attentions: str
    hidden_size: int
    num_heads: int
    max_length: int
    prefix: str
    token_budget: int
    autocast: bool

    def runner(self, encoder: Encoder) -> _Runner:
        return _Runner(
            encoder,
            layers=self.layers,
            attn_layers=self.attn_layers,
            poolings=self.poolings,
            keep_tokens=self.keep_tokens,
            attentions=self.attentions,
            autocast=self.autocast,
        )


def compute_chunk(
    spec: ChunkSpec,
    runner: _Runner,
    texts: Sequence[str],
    *,
    on_rows: Any = None,
) -> dict[str, NDArray[Any]]:
    """Encode the rows of one store chunk; returns its float16 arrays, named as in the store.

    ``sentence/<pooling>`` ``[rows, layers, D]``; with tokens ``token/hidden`` ``[tokens, layers,
    D]``; with attentions ``attention/<mode>`` (flat ``n × n`` blocks per row). Batches are
    length-sorted within the chunk, so a chunk's bytes do not depend on where it is computed.
    """
    tok = tokenize_corpus(
        texts, runner.encoder.tokenizer, max_length=spec.max_length, prefix=spec.prefix
    )
    runner.tok = tok
    n_tokens = tok.n_tokens
    nL, D = len(spec.layers), spec.hidden_size
    local = {p: np.zeros((len(texts), nL, D), dtype=np.float32) for p in spec.poolings}
    tok_off = np.concatenate([[0], np.cumsum(n_tokens)]).astype(np.int64)
    att_off = np.concatenate([[0], np.cumsum(n_tokens**2)]).astype(np.int64)
    tail: tuple[int, ...] = (len(spec.attn_layers),)
    if spec.attentions == "full":
        tail = (*tail, spec.num_heads)
    if spec.keep_tokens:
        tok_buf = np.zeros((int(tok_off[-1]), nL, D), dtype=np.float16)
    if spec.attentions != "none":
        att_buf = np.zeros((int(att_off[-1]), *tail), np.float16)
    for batch in length_sorted_batches(n_tokens, token_budget=spec.token_budget):
        for rows, res in runner.run(batch):
            for p in spec.poolings:
                local[p][rows] = res[p]
            for j, r in enumerate(rows):
                n = int(res["n"][j])
                if spec.keep_tokens:
                    s = int(tok_off[r])
                    tok_buf[s : s + n] = res["tokens"][j, :, :n].transpose(1, 0, 2)
                if spec.attentions != "none":
                    s = int(att_off[r])
                    blk = res["attn"][j][..., :n, :n]  # [nA, n, n] or [nA, H, n, n]
                    if spec.attentions == "full":
                        blk = blk.transpose(2, 3, 0, 1)  # [n, n, nA, H]
                    else:
                        blk = blk.transpose(1, 2, 0)  # [n, n, nA]
                    att_buf[s : s + n * n] = blk.reshape(n * n, *tail)
            if on_rows is not None:
                on_rows(len(rows))
    out: dict[str, NDArray[Any]] = {
        f"sentence/{p}": local[p].astype(np.float16) for p in spec.poolings
    }
    if spec.keep_tokens:
        out["token/hidden"] = tok_buf
    if spec.attentions != "none":
        out[f"attention/{spec.attentions}"] = att_buf
    return out


@dataclass
class _Plan:
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


def _prepare(
    config: ExtractConfig, corpus: Corpus, encoder: Encoder, *, autocast: bool | None = None
) -> _Plan:
    """Open or resume the store, write its tables and create its arrays (no model forward).

    ``autocast``: whether the chunks will run under CUDA autocast (default: the config's choice
    on this encoder's device; the Ray engine decides from the cluster's GPUs).
    """
    from xalign.store import StoreWriter

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
    )
    texts = corpus.rows["text"].tolist()
    empty = np.zeros(0, np.int64)
    plan = _Plan(config, corpus, writer, spec, texts, empty, chunk_rows, {}, empty, empty, empty)
    if writer.already_complete:
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
    writer.write_config(config.to_dict())

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
    for line in writer.repairs:
        log.warning("%s", line)
    return plan


def _finish(
    plan: _Plan, seconds: float, rows_computed: int, backoffs: int, device: str
) -> tuple[Store, ExtractSummary]:
    from xalign.store import Store

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
        },
    )
    store = Store.open(plan.config.out)
    return store, _summary(store, seconds, rows_computed, plan.writer, backoffs)


def _extract(
    config: ExtractConfig, corpus: Corpus, encoder: Encoder, t0: float
) -> tuple[Store, ExtractSummary]:
    from xalign.store import Store

    plan = _prepare(config, corpus, encoder)
    if plan.writer.already_complete:
        store = Store.open(config.out)
        return store, _summary(store, time.perf_counter() - t0, 0, plan.writer, 0)
    runner = plan.spec.runner(encoder)
    todo = plan.todo()
    rows_todo = sum(b - a for a, b in map(plan.bounds, todo))
    t_compute = time.perf_counter()
    bar = _progress(rows_todo, enabled=config.progress, desc=f"extract {encoder.facts.name}")
    for c in todo:
        a, b = plan.bounds(c)
        plan.write_chunk(c, compute_chunk(plan.spec, runner, plan.texts[a:b], on_rows=bar.update))
    bar.close()
    seconds = time.perf_counter() - t_compute
    return _finish(plan, seconds, rows_todo, runner.backoffs, str(encoder.device))


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


def _summary(
    store: Store, seconds: float, rows_computed: int, writer: Any, backoffs: int
) -> ExtractSummary:
    c = store.manifest["counts"]
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
    )


def _progress(total: int, *, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="sent", leave=False)
