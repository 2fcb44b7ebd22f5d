"""Feed-forward neuron statistics collected during extraction, and neuron ablation.

With ``--neurons`` every block's feed-forward activation (the output of the intermediate
activation function, see :func:`find_ffn`) is reduced, per block × language × neuron, to four
numbers over the *content* tokens (attention mask set, not special, not prefix): how many
tokens have activation > 0, the sum, the sum of squares, and the token count. Raw activations
are never kept, so memory does not grow with the corpus.

How a chunk is counted exactly once (resume and the Ray engine give the local run's bytes):

- :func:`compute_chunk <xalign.extract.compute_chunk>` returns the chunk's own statistics
  (``neurons/*``: only the languages present in the chunk) beside its arrays;
- :class:`NeuronAccumulator` (driver) writes them as a small partial file
  ``neurons-partial/chunk-<k>.safetensors`` *before* the chunk is marked done, and folds the
  partials into a float64 accumulator strictly in chunk order 0, 1, 2, …; the accumulator is
  saved as ``neurons-partial/acc.safetensors`` (atomically, with ``through`` = last chunk
  folded) every :data:`FLUSH_EVERY` chunks, and only then are the folded partials deleted;
- on resume, the accumulator and the partials left on disk are read back; a chunk ``<= through``
  is never added again, a recomputed chunk overwrites its partial with the same content;
- at the end the accumulator becomes the store arrays ``neurons/<stat>`` (CRC-recorded like
  every array) and the folder is removed.

Because additions always happen in chunk order, the float64 sums do not depend on where a run
was interrupted or in which order Ray workers finished. They do depend on the float32 forward
itself: a CPU forward's last bits change with the torch thread count, so a Ray worker with one
thread equals a local run with one thread (``active`` and ``tokens`` almost always agree
anyway; ``sum``/``sumsq`` differ in the last bits otherwise).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign.errors import ConfigError, StoreError

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

__all__ = [
    "FFN_PATTERNS",
    "FLUSH_EVERY",
    "NEURON_STATS",
    "PARTIAL_DIR",
    "FfnBlock",
    "NeuronAccumulator",
    "NeuronHooks",
    "check_ablation",
    "ffn_size",
    "find_ffn",
]

#: Statistics of the store (``neurons/<stat>``); ``tokens`` has shape ``[L, languages, 1]``.
NEURON_STATS = ("active", "sum", "sumsq", "tokens")
#: Folder inside a partial store holding the accumulator and per-chunk partials.
PARTIAL_DIR = "neurons-partial"
#: The accumulator is saved after this many folded chunks (and at the end).
FLUSH_EVERY = 16

#: Module name (relative to a block) of the feed-forward activation, by architecture:
#: BERT / XLM-R / e5 ``layer.N.intermediate`` (= ``intermediate_act_fn(dense(x))``),
#: Llama / Qwen / Mistral ``layers.N.mlp.act_fn`` (= ``act_fn(gate_proj(x))``, Tang et al.'s
#: choice, before the product with ``up_proj``), GPT-2 ``h.N.mlp.act`` (= ``act(c_fc(x))``).
FFN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("layer", "intermediate"),
    ("layers", "mlp.act_fn"),
    ("h", "mlp.act"),
)
_FFN_RE = re.compile(
    r"(?:^|\.)(?P<list>layer|layers|h)\.(?P<i>\d+)\.(?P<mod>intermediate|mlp\.act_fn|mlp\.act)$"
)


@dataclass
class FfnBlock:
    """One block's feed-forward activation module: block ``layer`` (1..L), its module name."""

    layer: int
    name: str
    module: Any


def _where(model: Any) -> str:
    return type(model).__name__


def ffn_size(model: Any) -> int:
    """Number of feed-forward neurons F per block, from the model config."""
    cfg = model.config
    for attr in ("intermediate_size", "n_inner", "ffn_dim", "d_ff"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    hidden = getattr(cfg, "n_embd", None) or getattr(cfg, "hidden_size", None)
    if getattr(cfg, "model_type", "") == "gpt2" and hidden:
        return 4 * int(hidden)  # GPT-2's default n_inner
    raise ConfigError(
        f"--neurons: cannot tell the feed-forward size of {_where(model)} (its config has no "
        "intermediate_size / n_inner)"
    )


def find_ffn(model: Any, num_layers: int) -> list[FfnBlock]:
    """The feed-forward activation module of every block, in block order (1..L).

    Raises :class:`ConfigError` in one line naming the model class when no block, or not
    exactly ``num_layers`` blocks, have a module this knows (:data:`FFN_PATTERNS`).
    """
    found: dict[int, tuple[str, Any]] = {}
    kinds: set[str] = set()
    for name, module in model.named_modules():
        m = _FFN_RE.search(name)
        if m is None:
            continue
        i = int(m.group("i"))
        kinds.add(f"{m.group('list')}.N.{m.group('mod')}")
        if i in found:
            raise ConfigError(
                f"--neurons: {_where(model)} has two feed-forward modules for block {i + 1} "
                f"({found[i][0]}, {name})"
            )
        found[i] = (name, module)
    looked = ", ".join(f"{a}.N.{b}" for a, b in FFN_PATTERNS)
    if not found:
        raise ConfigError(
            f"--neurons: no feed-forward activation module found in {_where(model)} "
            f"(looked for {looked})"
        )
    if len(kinds) > 1 or sorted(found) != list(range(num_layers)):
        raise ConfigError(
            f"--neurons: {_where(model)} has feed-forward modules {sorted(kinds)} for blocks "
            f"{[i + 1 for i in sorted(found)]}, expected one per block 1..{num_layers}"
        )
    ids = [id(mod) for _, mod in found.values()]
    if len(set(ids)) != len(ids):
        raise ConfigError(
            f"--neurons: {_where(model)} shares one activation module between blocks "
            f"({found[0][0]}); its blocks cannot be told apart"
        )
    return [FfnBlock(i + 1, found[i][0], found[i][1]) for i in sorted(found)]


def check_ablation(
    pairs: list[tuple[int, int]], blocks: list[FfnBlock], size: int
) -> dict[int, list[int]]:
    """``(layer, neuron)`` pairs → ``{layer: sorted neurons}``; one-line error when out of range."""
    by: dict[int, set[int]] = {}
    names = {b.layer: b.name for b in blocks}
    for layer, neuron in pairs:
        if layer not in names:
            raise ConfigError(
                f"--ablate layer {layer}: out of range; the model has feed-forward blocks "
                f"1..{len(blocks)}"
            )
        if not 0 <= neuron < size:
            raise ConfigError(
                f"--ablate layer {layer} neuron {neuron}: out of range; {names[layer]} has "
                f"{size} neurons (0..{size - 1})"
            )
        by.setdefault(layer, set()).add(neuron)
    return {k: sorted(v) for k, v in sorted(by.items())}


def _reduce(xs: torch.Tensor) -> tuple[NDArray[np.float64], ...]:
    """(count > 0, sum, sum of squares) over axis 0 of ``xs [n, F]`` in float64.

    On CPU the sums run in numpy (row after row, independent of the thread count, so a Ray
    worker with one thread gives the driver's bytes); on CUDA in torch float64.
    """
    if xs.is_cuda:
        x = xs.double()
        return (
            (x > 0).sum(0).double().cpu().numpy(),
            x.sum(0).cpu().numpy(),
            (x * x).sum(0).cpu().numpy(),
        )
    a = xs.float().numpy().astype(np.float64)
    return (
        np.add.reduce(a > 0, axis=0, dtype=np.float64),
        np.add.reduce(a, axis=0),
        np.add.reduce(a * a, axis=0),
    )


@dataclass
class NeuronHooks:
    """Forward hooks on every block's feed-forward activation of one encoder.

    ``collect``: reduce activations to per-language statistics (:meth:`begin_chunk` /
    :meth:`chunk_arrays`); ``ablate``: ``{layer: neurons}`` set to zero in the activation
    (the statistics then see the zeros). Hooks are installed for one forward at a time
    (:meth:`forward`), so the encoder is left untouched between calls.
    """

    blocks: list[FfnBlock]
    size: int
    collect: bool
    ablate: dict[int, list[int]] = field(default_factory=dict)
    _langs: Any = None  # [B] local language index of each row of the current batch
    _content: Any = None  # [B, T] bool: content tokens of the current batch
    _pending: dict[int, list[tuple[int, tuple[NDArray[np.float64], ...]]]] = field(
        default_factory=dict
    )
    _acc: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    _chunk_langs: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    _local: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    _batch_langs: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    def begin_chunk(self, chunk_langs: NDArray[np.int64]) -> None:
        """Start a chunk whose rows have global language indices ``chunk_langs``."""
        present = np.unique(chunk_langs)
        self._chunk_langs = present
        L, k, F = len(self.blocks), len(present), self.size
        self._acc = {s: np.zeros((L, k, F)) for s in ("active", "sum", "sumsq")}
        self._acc["tokens"] = np.zeros(k)
        self._local = np.searchsorted(present, chunk_langs)

    def _hook(self, block: int, li: int) -> Any:
        torch_zero = self.ablate.get(block)

        def hook(module: Any, inputs: Any, output: Any) -> Any:
            if output.shape[-1] != self.size:
                raise ConfigError(
                    f"--neurons: block {block}'s feed-forward activation "
                    f"({self.blocks[li].name}) has {output.shape[-1]} neurons, the model "
                    f"config says {self.size}"
                )
            if torch_zero:
                output = output.clone()
                output[..., torch_zero] = 0
            if self.collect:
                parts = []
                for g in self._batch_langs:
                    sel = self._content & (self._langs == int(g))[:, None]
                    xs = output[sel]  # [n, F]
                    parts.append((int(g), _reduce(xs)))
                self._pending[li] = parts
            return output if torch_zero else None

        return hook

    def forward(self, rows_local: NDArray[np.int64], content: torch.Tensor) -> Any:
        """Context manager: hooks installed for one forward of these rows."""
        import contextlib

        import torch

        @contextlib.contextmanager
        def ctx() -> Any:
            if self.collect:
                langs = self._local[rows_local]
                self._langs = torch.from_numpy(langs).to(content.device)
                self._batch_langs = np.unique(langs)
                self._content = content
            self._pending = {}
            handles = [
                b.module.register_forward_hook(self._hook(b.layer, i))
                for i, b in enumerate(self.blocks)
            ]
            try:
                yield
            finally:
                for h in handles:
                    h.remove()
            if self.collect:  # the forward succeeded: count its tokens once
                for li, parts in self._pending.items():
                    for g, (cnt, s, ss) in parts:
                        self._acc["active"][li, g] += cnt
                        self._acc["sum"][li, g] += s
                        self._acc["sumsq"][li, g] += ss
                n = content.sum(1).cpu().numpy()
                for g in self._batch_langs:
                    self._acc["tokens"][g] += float(n[langs == g].sum())
                self._pending = {}

        return ctx()

    def chunk_arrays(self) -> dict[str, NDArray[Any]]:
        """The chunk's statistics: ``neurons/langs [k]`` and ``[L, k, F]`` / ``[k]`` stats."""
        out: dict[str, NDArray[Any]] = {"neurons/langs": self._chunk_langs.astype(np.int64)}
        out.update({f"neurons/{s}": v for s, v in self._acc.items()})
        return out


class NeuronAccumulator:
    """The driver's running totals ``[L, G, F]``, folded in chunk order (see module doc)."""

    def __init__(self, store: Path, *, L: int, G: int, F: int, n_chunks: int) -> None:
        self.folder = store / PARTIAL_DIR
        self.shape = (L, G, F)
        self.n_chunks = n_chunks
        self.through = -1
        self.acc = {s: np.zeros(self.shape) for s in ("active", "sum", "sumsq")}
        self.acc["tokens"] = np.zeros((L, G, 1))
        self._folded: list[int] = []
        self.folder.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- files
    def _acc_path(self) -> Path:
        return self.folder / "acc.safetensors"

    def _part_path(self, chunk: int) -> Path:
        return self.folder / f"chunk-{chunk:06d}.safetensors"

    def _load(self) -> None:
        from safetensors import SafetensorError, safe_open

        p = self._acc_path()
        if not p.is_file():
            return
        try:
            with safe_open(str(p), framework="numpy") as f:
                meta = f.metadata() or {}
                acc = {s: f.get_tensor(s) for s in self.acc}
            through = int(meta["through"])
        except (OSError, ValueError, KeyError, SafetensorError):
            # unreadable: start over; the partials of chunks after it are gone, so every
            # chunk must be recomputed (the caller redoes all chunks when through == -1)
            self.reset()
            return
        if any(acc[s].shape != self.acc[s].shape for s in self.acc):
            raise StoreError(
                f"{p}: neuron accumulator of shape {acc['active'].shape}, expected {self.shape}; "
                "delete the folder and rerun"
            )
        self.acc, self.through = acc, through

    def reset(self) -> None:
        """Forget everything counted (every chunk must then be recomputed)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.through = -1
        for v in self.acc.values():
            v[...] = 0

    def counted(self) -> set[int]:
        """Chunks whose statistics are in the accumulator or in a partial file on disk."""
        have = set(range(self.through + 1))
        for p in self.folder.glob("chunk-*.safetensors"):
            have.add(int(p.stem.split("-")[1]))
        return have

    def _save(self) -> None:
        from safetensors.numpy import save_file

        from xalign._io import atomic_path

        with atomic_path(self._acc_path()) as tmp:
            save_file(
                {k: np.ascontiguousarray(v) for k, v in self.acc.items()},
                str(tmp),
                metadata={"through": str(self.through)},
            )
        for c in self._folded:  # only now: the saved accumulator holds them
            self._part_path(c).unlink(missing_ok=True)
        self._folded = []

    # -- chunks
    def add(self, chunk: int, arrays: dict[str, NDArray[Any]]) -> None:
        """Record one chunk's statistics (before the chunk is marked done)."""
        from safetensors.numpy import save_file

        from xalign._io import atomic_path

        if chunk <= self.through:
            return  # already counted (a chunk recomputed because its arrays were damaged)
        with atomic_path(self._part_path(chunk)) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
        self.fold()

    def fold(self, *, flush: bool = False) -> None:
        """Add the partials of the chunks following ``through``, in order; save now and then."""
        from safetensors.numpy import load_file

        while self._part_path(self.through + 1).is_file():
            c = self.through + 1
            part = load_file(str(self._part_path(c)))
            g = part["neurons/langs"]
            if len(g) and (g.min() < 0 or g.max() >= self.shape[1]):
                raise StoreError(f"{self._part_path(c)}: language index out of range")
            for s in ("active", "sum", "sumsq"):
                self.acc[s][:, g] += part[f"neurons/{s}"]
            self.acc["tokens"][:, g, 0] += part["neurons/tokens"][None, :]
            self.through = c
            self._folded.append(c)
        if self._folded and (flush or len(self._folded) >= FLUSH_EVERY):
            self._save()

    def complete(self) -> bool:
        return self.through == self.n_chunks - 1

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
