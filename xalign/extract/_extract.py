"""Computing one store chunk: length-sorted token-budget batches, forward, pooling.

The part of an extraction that every engine runs (:func:`compute_chunk`, on the driver for the
local engine, in encoder actors for the Ray engine); preparing and finishing a store is in
:mod:`xalign.extract._plan`, running the chunks in :mod:`xalign.extract._engine`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign.errors import ConfigError
from xalign.extract._config import ExtractConfig
from xalign.extract._tokenize import TokenizedCorpus, tokenize_corpus

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

    from xalign.extract._neurons import NeuronHooks
    from xalign.extract._onnx import OnnxModel
    from xalign.models import Encoder

__all__ = [
    "ChunkSpec",
    "ExtractSummary",
    "check_out",
    "compute_chunk",
    "length_sorted_batches",
    "load_extract_encoder",
    "pool",
]

log = logging.getLogger(__name__)

#: Tight batches (``length_sorted_batches(..., slack=SLACK)``): no row padded by more than 10 %.
SLACK = 0.1
#: With the torch forward on a CPU, a tight batch ends on slack only once it holds this share
#: of the token budget: measured interleaved (benchmarks/README.md), tight batches without a
#: floor lost 7 % on the mixed-length corpus under load, with it none lost anywhere.
TORCH_FLOOR = 0.25


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
    #: the forward that computed the rows (``torch`` or ``onnx``)
    backend: str = "torch"
    #: with ``--backend auto``: why it is torch (None when onnx, or when torch was asked)
    backend_note: str | None = None

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
                *self._backend_line(),
                f"size       {self.store_bytes / 2**20:.1f} MiB on disk",
            ]
        )

    def _backend_line(self) -> list[str]:
        if self.backend != "torch":
            return [f"backend    {self.backend}"]
        if self.backend_note:
            return [f"backend    torch (auto: {self.backend_note})"]
        return []


def length_sorted_batches(
    lengths: Sequence[int] | NDArray[np.int64],
    *,
    token_budget: int,
    slack: float | None = None,
    min_tokens: int = 0,
) -> list[NDArray[np.int64]]:
    """Split row indices into batches whose padded size (rows × longest) stays within the budget.

    Rows are sorted by length (longest first, stable), so padding is small. A row longer than the
    budget gets a batch of its own.

    >>> [b.tolist() for b in length_sorted_batches([3, 9, 4, 8], token_budget=18)]
    [[1, 3], [2, 0]]

    With ``slack`` (*tight* batches) a batch also ends before a row more than ``slack`` shorter
    than its first row, so no row is padded by more than that share: on short sentences the
    budget alone lets a batch run from 159 tokens down to 20. ``min_tokens`` is a floor: a batch
    ends on slack only once it holds at least that many padded tokens (fewer, larger batches).

    >>> lengths = [20, 9, 10, 19, 10]
    >>> [b.tolist() for b in length_sorted_batches(lengths, token_budget=60)]
    [[0, 3, 2], [4, 1]]
    >>> [b.tolist() for b in length_sorted_batches(lengths, token_budget=60, slack=0.1)]
    [[0, 3], [2, 4, 1]]
    >>> [b.tolist() for b in length_sorted_batches(lengths, token_budget=60, slack=0.1,
    ...                                            min_tokens=50)]
    [[0, 3, 2], [4, 1]]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[NDArray[np.int64]] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        size = max(1, token_budget // max(longest, 1))
        end = min(start + size, len(order))
        if slack is not None:
            shortest = (1 - slack) * longest
            cut = start + 1
            while cut < end and (
                lengths[order[cut]] >= shortest or (cut - start) * longest < min_tokens
            ):
                cut += 1
            end = cut
        batches.append(order[start:end])
        start = end
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


def pool_numpy(
    hidden: NDArray[np.float32], mask: NDArray[Any], special: NDArray[np.bool_], pooling: str
) -> NDArray[np.float32]:
    """:func:`pool` of one layer ``hidden [B, T, D]`` in numpy (the ONNX path's pooling).

    Means are one matrix product per layer with the weights ``mask / mask.sum()``; the result
    equals :func:`pool`'s up to float32 rounding.
    """
    m = mask.astype(np.float32)
    if pooling in ("mean", "mean_nospecial"):
        c = m
        if pooling == "mean_nospecial":
            c = m * ~special
            c = np.where(c.sum(-1, keepdims=True) > 0, c, m)
        w = (c / c.sum(-1, keepdims=True))[:, None, :]  # [B, 1, T]
        return np.matmul(w, hidden)[:, 0]
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "max":
        neg = np.finfo(hidden.dtype).min
        return np.where(mask.astype(bool)[..., None], hidden, neg).max(-2)
    if pooling == "last":
        last = mask.astype(np.int64).sum(-1) - 1  # right padding
        return hidden[np.arange(len(hidden)), last]
    raise ConfigError(f"unknown pooling {pooling!r}")


def _is_oom(err: BaseException) -> bool:
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    msg = str(err).lower()
    if type(err).__module__.startswith("onnxruntime"):  # ONNX Runtime's allocation failures
        return "failed to allocate" in msg or "bad_alloc" in msg or "bad allocation" in msg
    return isinstance(err, RuntimeError) and "out of memory" in msg


class _Runner:
    """Runs the forward pass for batches of rows and returns per-row float32 results.

    ``backend="onnx"`` runs the forward through ONNX Runtime (:mod:`xalign.extract._onnx`)
    instead of torch: hidden states only (no attention maps, no neuron hooks), CPU.
    """

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
        neurons: bool = False,
        ablate: list[tuple[int, int]] | None = None,
        backend: str = "torch",
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
        self.hooks: NeuronHooks | None = None
        if neurons or ablate:
            from xalign.extract._neurons import NeuronHooks, check_ablation, ffn_size, find_ffn

            blocks = find_ffn(encoder.model, encoder.facts.num_layers)
            size = ffn_size(encoder.model)
            zero = check_ablation(list(ablate or []), blocks, size)
            self.hooks = NeuronHooks(blocks, size, collect=neurons, ablate=zero)
        self.backend = backend
        self.onnx: OnnxModel | None = None
        if backend == "onnx":
            if self.hooks is not None or attentions != "none":
                raise ConfigError("--backend onnx computes hidden states only; use --backend torch")
            from xalign.extract._onnx import onnx_model

            self.onnx = onnx_model(encoder)

    def _arrays(
        self, rows: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
        """Padded ``ids``, ``mask`` and ``special`` of a batch (rows index the current chunk)."""
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
        return ids, mask, special

    def _inputs(self, rows: NDArray[np.int64]) -> tuple[Any, Any, Any]:
        torch = self.torch
        ids, mask, special = self._arrays(rows)
        pin = self.device.type == "cuda"
        to = lambda a: (  # noqa: E731
            torch.from_numpy(a).pin_memory().to(self.device, non_blocking=True)
            if pin
            else torch.from_numpy(a)
        )
        return to(ids), to(mask), to(special)

    def _forward_onnx(self, rows: NDArray[np.int64]) -> dict[str, Any]:
        """The forward in ONNX Runtime, pooled in numpy (no torch kernels between its runs)."""
        assert self.onnx is not None and self.tok is not None
        ids, mask, special = self._arrays(rows)
        hs = self.onnx.run(ids, mask, self.layers)  # nL × [B, T, D] float32
        result: dict[str, Any] = {
            p: np.stack([pool_numpy(h, mask, special, p) for h in hs], 1) for p in self.poolings
        }
        if self.keep_tokens:
            result["tokens"] = np.stack(hs, 1).astype(np.float16)  # [B, nL, T, D]
        result["n"] = self.tok.n_tokens[rows]
        return result

    def _forward(self, rows: NDArray[np.int64]) -> dict[str, Any]:
        if self.onnx is not None:
            return self._forward_onnx(rows)
        torch = self.torch
        ids, mask, special = self._inputs(rows)
        model = self.encoder.model
        want_attn = self.attentions != "none"
        from xalign.models import autocast_context

        hooked: Any = contextlib.nullcontext()
        if self.hooks is not None:
            hooked = self.hooks.forward(rows, mask.bool() & ~special)
        with torch.inference_mode(), autocast_context(self.autocast):
            with hooked:
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


def load_extract_encoder(cfg: ExtractConfig, *, device: str | None = None) -> Encoder:
    """Load ``cfg.model`` as an extraction needs it (eager attention when attentions are kept).

    ``device`` overrides ``cfg.device`` (the Ray driver loads its copy on the CPU).
    """
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
    #: collect feed-forward neuron statistics (``neurons/*`` of each chunk)
    neurons: bool = False
    #: ``(layer, neuron)`` pairs whose feed-forward activation is set to zero
    ablate: list[tuple[int, int]] = field(default_factory=list)
    #: the forward: ``"torch"`` (the reference) or ``"onnx"`` (ONNX Runtime, CPU)
    backend: str = "torch"
    #: tight batches: a batch also ends before a row this much shorter than its first (None:
    #: the token budget alone), once it holds ``min_tokens`` padded tokens
    slack: float | None = None
    min_tokens: int = 0

    def batches(self, n_tokens: NDArray[np.int64]) -> list[NDArray[np.int64]]:
        """The length-sorted batches of one chunk."""
        return length_sorted_batches(
            n_tokens, token_budget=self.token_budget, slack=self.slack, min_tokens=self.min_tokens
        )

    def runner(self, encoder: Encoder) -> _Runner:
        return _Runner(
            encoder,
            layers=self.layers,
            attn_layers=self.attn_layers,
            poolings=self.poolings,
            keep_tokens=self.keep_tokens,
            attentions=self.attentions,
            autocast=self.autocast,
            neurons=self.neurons,
            ablate=[(int(a), int(b)) for a, b in self.ablate],
            backend=self.backend,
        )


def compute_chunk(
    spec: ChunkSpec,
    runner: _Runner,
    texts: Sequence[str],
    *,
    on_rows: Any = None,
    langs: Sequence[int] | NDArray[np.int64] | None = None,
) -> dict[str, NDArray[Any]]:
    """Encode the rows of one store chunk; returns its float16 arrays, named as in the store.

    ``sentence/<pooling>`` ``[rows, layers, D]``; with tokens ``token/hidden`` ``[tokens, layers,
    D]``; with attentions ``attention/<mode>`` (flat ``n × n`` blocks per row). Batches are
    length-sorted within the chunk, so a chunk's bytes do not depend on where it is computed.
    With ``spec.neurons`` also the chunk's neuron statistics (float64): ``neurons/langs [k]``
    (the languages present, as indices into the store's language list; ``langs`` gives each
    row's), ``neurons/active``, ``neurons/sum``, ``neurons/sumsq`` ``[L, k, F]`` and
    ``neurons/tokens [k]`` (content tokens).
    """
    tok = tokenize_corpus(
        texts, runner.encoder.tokenizer, max_length=spec.max_length, prefix=spec.prefix
    )
    runner.tok = tok
    if spec.neurons:
        if langs is None or len(langs) != len(texts) or runner.hooks is None:
            raise ConfigError("neuron statistics need the language index of every row of the chunk")
        runner.hooks.begin_chunk(np.asarray(langs, dtype=np.int64))
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
    for batch in spec.batches(n_tokens):
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
    if spec.neurons and runner.hooks is not None:
        out.update(runner.hooks.chunk_arrays())
    return out
