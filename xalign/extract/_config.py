"""Extraction options, validated once at the boundary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from xalign._validate import check_choice, check_interval
from xalign.errors import ConfigError

__all__ = [
    "BACKENDS",
    "POOLINGS",
    "ExtractConfig",
    "Pooling",
    "onnx_config_reason",
    "resolve_prefix",
]

Pooling = Literal["mean", "mean_nospecial", "cls", "max", "last"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
AttentionMode = Literal["none", "head-mean", "full"]
ATTENTION_MODES: tuple[str, ...] = get_args(AttentionMode)
Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = get_args(Engine)
Backend = Literal["torch", "onnx", "auto"]
BACKENDS: tuple[str, ...] = get_args(Backend)


@dataclass
class ExtractConfig:
    """Everything that defines one extraction run (written beside the store as ``config.json``).

    ``layers`` is ``"all"`` or a spec such as ``"0,4,8,12"``, ``"6-12"`` or ``"-1"`` (our numbering:
    0 = embedding output, L = last block). Poolings: ``mean`` (all tokens, specials and prefix
    included: the e5 / sentence-transformers convention), ``mean_nospecial`` (content tokens only,
    as XTREME's ``--pool_skip_special_token``), ``cls`` (first token), ``max`` (element-wise
    max over all tokens), ``last`` (last non-padding token: the usual choice for decoders).

    ``engine="ray"`` runs the same chunks on a Ray cluster (``address``: ``None`` starts a
    local one, ``"auto"`` joins a running one); ``workers`` encoder actors, each with
    ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs (default: 1 when the cluster has
    GPUs, else 0). The engine does not change the store: its arrays are the local run's.

    ``neurons=True`` also collects feed-forward neuron statistics per block × language × neuron
    (``neurons/<stat>``; see :mod:`xalign.extract._neurons`). ``ablate`` lists ``(layer,
    neuron)`` pairs (layer = block 1..L) whose feed-forward activation is set to zero during the
    forward (``"1:5,2:7"`` on the command line); it is recorded in the manifest exactly.

    ``backend`` is the forward: ``"torch"`` (the reference, default), ``"onnx"`` (ONNX Runtime
    on the CPU, the encoder exported once and cached; needs the ``onnx`` extra; hidden states,
    every pooling and token embeddings, but no attention maps, ``neurons``, ``ablate``, CUDA or
    Ray) or ``"auto"`` (onnx when it can serve the run, else torch, the reason recorded). The
    backend used is recorded in the manifest, and a store is only resumed with the backend
    that began it.
    """

    model: str = "e5-small"
    data: str = "sample"
    out: str = "runs/extract"
    langs: list[str] | None = None
    split: str | None = None
    limit_per_lang: int | None = None
    layers: str = "all"
    pooling: list[str] = field(default_factory=lambda: ["mean"])
    tokens: bool = False
    attentions: str = "none"
    max_length: int | None = None
    prefix: str | None = None
    token_budget: int = 8192
    chunk_rows: int | None = None
    device: str = "auto"
    dtype: str = "float32"
    autocast: bool = True
    revision: str | None = None
    trust_remote_code: bool = False
    label: str | None = None
    overwrite: bool = False
    pairs: list[str] | None = None
    progress: bool = True
    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    neurons: bool = False
    ablate: list[list[int]] | None = None
    backend: str = "torch"

    def __post_init__(self) -> None:
        if self.ablate is not None:
            self.ablate = parse_ablate(self.ablate)
        if isinstance(self.pooling, str):
            self.pooling = [p.strip() for p in self.pooling.split(",") if p.strip()]
        if isinstance(self.pairs, str):
            self.pairs = [x.strip() for x in self.pairs.split(",") if x.strip()]
        if self.pairs is not None and (len(self.pairs) != 2 or self.pairs[0] == self.pairs[1]):
            raise ConfigError(
                f"--pairs {self.pairs}: expected two different languages, e.g. eng,fra"
            )
        if isinstance(self.langs, str):
            self.langs = [x.strip() for x in self.langs.split(",") if x.strip()]
        bad = [p for p in self.pooling if p not in POOLINGS]
        if bad or not self.pooling:
            raise ConfigError(
                f"--pooling {bad or '(empty)'}: allowed values are {', '.join(POOLINGS)}"
            )
        self.pooling = list(dict.fromkeys(self.pooling))
        check_choice("--attentions", self.attentions, ATTENTION_MODES)
        check_choice("--dtype", self.dtype, ("float32", "float16", "bfloat16"))
        check_interval("--token-budget", self.token_budget, low=16, note="tokens")
        if self.max_length is not None:
            check_interval("--max-length", self.max_length, low=4)
        if self.chunk_rows is not None:
            check_interval("--chunk-rows", self.chunk_rows, low=1)
        check_choice("--engine", self.engine, ENGINES)
        if self.engine == "local" and (self.address is not None or self.workers is not None):
            raise ConfigError("--address and --workers apply to --engine ray only")
        if self.workers is not None:
            check_interval("--workers", self.workers, low=1)
        check_interval("--cpus-per-worker", self.cpus_per_worker, low=0, low_open=True)
        if self.gpus_per_worker is not None:
            check_interval("--gpus-per-worker", self.gpus_per_worker, low=0)
        if self.ablate and self.pairs:
            raise ConfigError(
                "--ablate applies to the main pass only; the --pairs pass would run the model "
                "unablated: run them separately"
            )
        if self.engine == "ray" and self.pairs:
            raise ConfigError("--pairs runs on the local engine only; drop --engine ray")
        check_choice("--backend", self.backend, BACKENDS)
        if self.backend == "onnx" and (reason := onnx_config_reason(self)) is not None:
            raise ConfigError(f"--backend onnx: {reason}; use --backend torch (or auto)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def onnx_config_reason(config: ExtractConfig) -> str | None:
    """Why these options keep the ONNX forward from serving a run (None: they do not).

    >>> onnx_config_reason(ExtractConfig(attentions="head-mean"))
    '--attentions head-mean needs attention maps, which the ONNX graph does not output'
    """
    if config.engine == "ray":
        return "--engine ray runs the torch forward in its actors"
    if config.attentions != "none":
        return (
            f"--attentions {config.attentions} needs attention maps, which the ONNX graph "
            "does not output"
        )
    if config.neurons:
        return "--neurons hooks the torch feed-forward modules"
    if config.ablate:
        return "--ablate hooks the torch feed-forward modules"
    if config.dtype != "float32":
        return f"--dtype {config.dtype}: the ONNX forward computes in float32 only"
    return None


def parse_ablate(value: Any) -> list[list[int]]:
    """``"1:5,2:7"`` or ``[[1, 5], [2, 7]]`` → sorted unique ``[[layer, neuron], ...]``.

    >>> parse_ablate("2:7, 1:5,1:5")
    [[1, 5], [2, 7]]
    """
    pairs: list[Any]
    if isinstance(value, str):
        pairs = [x.strip().split(":") for x in value.split(",") if x.strip()]
    elif isinstance(value, list | tuple):
        pairs = [list(x) if isinstance(x, list | tuple) else [x] for x in value]
    else:
        raise ConfigError(f"--ablate {value!r}: expected LAYER:NEURON pairs, e.g. 1:5,2:7")
    out: set[tuple[int, int]] = set()
    for pair in pairs:
        try:
            if len(pair) != 2 or any(isinstance(x, bool | float) for x in pair):
                raise ValueError
            layer, neuron = int(pair[0]), int(pair[1])
        except (TypeError, ValueError):
            raise ConfigError(
                f"--ablate {pair!r}: expected LAYER:NEURON pairs of integers, e.g. 1:5,2:7"
            ) from None
        if layer < 1 or neuron < 0:
            raise ConfigError(
                f"--ablate layer {layer} neuron {neuron}: out of range; layers are blocks 1..L "
                "(0, the embedding output, has no feed-forward block), neurons start at 0"
            )
        out.add((layer, neuron))
    if not out:
        raise ConfigError("--ablate: no LAYER:NEURON pair given")
    return [list(x) for x in sorted(out)]


def resolve_prefix(prefix: str | None, default_prefix: str) -> str:
    """``None`` → the model's default; ``query``/``passage`` → e5 prefixes; ``none`` → ""."""
    if prefix is None:
        return default_prefix
    named = {"query": "query: ", "passage": "passage: ", "none": "", "": ""}
    return named.get(prefix, prefix)
