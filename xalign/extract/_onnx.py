"""The ONNX Runtime forward of ``--backend onnx``: an encoder exported once, all hidden states out.

The torch forward stays the reference (``--backend torch``, the default). ``onnx`` runs the
same encoder through ONNX Runtime on the CPU, with its graph fusions; its vectors agree with
the torch path's to a cosine of about 0.9999999 after the float16 store, but not bit for bit.

**Export.** :func:`onnx_model` exports the encoder once with the TorchScript exporter
(``torch.onnx.export(..., dynamo=False, opset_version=17)``, traced with eager attention),
dynamic batch and sequence axes,
inputs ``input_ids`` and ``attention_mask`` and the L + 1 hidden states as outputs
``hidden_states.0`` .. ``hidden_states.L``. The file is cached under
``$XALIGN_ONNX_CACHE`` (default ``<xalign cache>/onnx``: ``$XALIGN_CACHE``,
``$XDG_CACHE_HOME/xalign`` or ``~/.cache/xalign``) in a folder named by a hash of the encoder's
weights (``facts.weights_hash``), its config, the torch / transformers versions and
:data:`EXPORT_VERSION`. It is written in a temporary folder and renamed into place under a
lock, so concurrent processes export once. The folder's ``export.json`` records every file's
size and sha256; a file that does not match (a killed export, a damaged disk) is exported
again, never used. Each process then checks the session against the live torch model on a
small padded batch of another shape than the export's: a graph that disagrees (an
architecture the exporter traces wrongly, a stale cache) is exported again once, then refused.

**What it serves.** Encoders (not decoders) on the CPU in float32, hidden states and every
pooling, token embeddings too. Not: attention maps, ``--neurons`` / ``--ablate`` (they hook the
torch modules), CUDA devices, the Ray engine. :func:`resolve_backend` turns ``--backend`` into
the backend a run uses: explicit ``onnx`` raises one line naming the reason it cannot serve the
run; ``auto`` falls back to torch and records the reason.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign._io import (
    default_cache_dir,
    exclusive_lock,
    replace_dir,
    sha256_file,
    sha256_file_cached,
)
from xalign.errors import ConfigError, XAlignError
from xalign.extract._config import onnx_config_reason

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from xalign.extract._config import ExtractConfig
    from xalign.models import Encoder

__all__ = [
    "EXPORT_VERSION",
    "OnnxMissingError",
    "OnnxModel",
    "cache_root",
    "import_onnxruntime",
    "onnx_model",
    "resolve_backend",
]

log = logging.getLogger(__name__)

#: Bump when the exported graph changes (inputs, outputs, export options): older caches are
#: left alone and a new file is exported.
EXPORT_VERSION = 1
OPSET = 17
#: The attention the graph is traced with. Eager attention exports as MatMul + Add(mask) +
#: Softmax; SDPA exports with a boolean mask as Where + Softmax + IsNaN + Where over every
#: [B, H, T, T] score, 14 % of the kernel time on long rows (measured: the mixed corpus of
#: benchmarks/extract.py, 20 % slower end to end). Both give the same hidden states.
EXPORT_ATTENTION = "eager"
EXTRA = "pip install 'xalign[onnx]'"
SIDECAR = "export.json"
MODEL_FILE = "model.onnx"
#: Largest error allowed between the ONNX and the torch hidden states on the check batch,
#: relative to the largest hidden-state magnitude (float32 reordering gives ~1e-6).
PROBE_TOLERANCE = 1e-3


class OnnxMissingError(XAlignError, ImportError):
    """onnxruntime or onnx is not installed (the ``onnx`` extra)."""


def import_onnxruntime() -> Any:
    """``onnxruntime`` (with ``onnx`` present, which the export needs); else one clear error."""
    missing = []
    for name in ("onnxruntime", "onnx"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise OnnxMissingError(
            f"--backend onnx needs {' and '.join(missing)}: {EXTRA}"
            f" ({', '.join(missing)} not installed)"
        )
    import onnxruntime

    return onnxruntime


def cache_root() -> Path:
    """``$XALIGN_ONNX_CACHE``, else ``onnx/`` in the xalign cache (``$XALIGN_CACHE``,
    ``$XDG_CACHE_HOME/xalign`` or ``~/.cache/xalign``)."""
    if os.environ.get("XALIGN_ONNX_CACHE"):
        return Path(os.environ["XALIGN_ONNX_CACHE"]).expanduser()
    return default_cache_dir() / "onnx"


# --------------------------------------------------------------------------- which backend


def _encoder_reason(encoder: Encoder) -> str | None:
    """Why this encoder cannot run through ONNX Runtime here (None: it can, once exported)."""
    if encoder.device.type != "cpu":
        return f"device {encoder.device}: the ONNX path runs on the CPU only"
    if encoder.facts.family != "encoder":
        return f"{encoder.facts.name} is a {encoder.facts.family}; only encoders are exported"
    dtypes = {str(p.dtype).removeprefix("torch.") for p in encoder.model.parameters()}
    if dtypes - {"float32"}:
        return f"the model's weights are {', '.join(sorted(dtypes))}; the ONNX path needs float32"
    return None


def resolve_backend(config: ExtractConfig, encoder: Encoder) -> tuple[str, str | None]:
    """The backend this run uses (``"torch"`` or ``"onnx"``) and, for ``auto``, why not onnx.

    ``torch``: always torch. ``onnx``: onnx, or :class:`ConfigError` (one line naming the
    reason) when it cannot serve the run, :class:`OnnxMissingError` (an ``ImportError``) when
    the ``onnx`` extra is missing. ``auto``: onnx when it can serve the run (the session is
    built and checked here), else torch with the reason. The export, when one is needed,
    happens here, before the store is touched.
    """
    if config.backend == "torch":
        return "torch", None
    explicit = config.backend == "onnx"
    reason = onnx_config_reason(config) or _encoder_reason(encoder)
    if reason is None:
        try:
            import_onnxruntime()
        except OnnxMissingError as exc:
            if explicit:
                raise
            reason = str(exc).removeprefix("--backend onnx needs ")
    if reason is None:
        try:
            onnx_model(encoder)
        except XAlignError as exc:  # the extra gone since, or a graph that disagrees
            if explicit and isinstance(exc, OnnxMissingError):
                raise
            reason = str(exc).removeprefix("--backend onnx: ")
        except Exception as exc:  # the exporter's and ONNX Runtime's errors are of many kinds
            lines = str(exc).strip().splitlines()
            first = f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
            reason = f"exporting {encoder.facts.name} to ONNX failed ({first})"
    if reason is None:
        return "onnx", None
    if explicit:
        raise ConfigError(f"--backend onnx: {reason}; use --backend torch")
    log.info("--backend auto: using torch (%s)", reason)
    return "torch", reason


# --------------------------------------------------------------------------- export and cache


def _slug(name: str) -> str:
    tail = Path(name.rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tail)[:48]


def _weights_id(encoder: Encoder) -> str:
    """``facts.weights_hash``, else a sha256 of the live weights (a model without files)."""
    if encoder.facts.weights_hash:
        return str(encoder.facts.weights_hash)
    import torch

    h = hashlib.sha256()
    for name, t in sorted(encoder.model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "state:" + h.hexdigest()


def _identity(encoder: Encoder) -> dict[str, Any]:
    import torch
    import transformers

    cfg = encoder.model.config.to_dict()
    for k in ("_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        cfg.pop(k, None)
    return {
        "export_version": EXPORT_VERSION,
        "opset": OPSET,
        "weights": _weights_id(encoder),
        "name": encoder.facts.name,
        "class": type(encoder.model).__name__,
        "config": cfg,
        "attention": EXPORT_ATTENTION,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _cache_problem(folder: Path, key: str) -> str | None:
    """Why the cached export in ``folder`` cannot be used (None: it is complete and intact)."""
    side = folder / SIDECAR
    if not folder.is_dir():
        return "not exported yet"
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        files = meta["files"]
        if meta.get("key") != key or meta.get("export_version") != EXPORT_VERSION:
            return f"{side} records another export"
        if not isinstance(files, dict) or MODEL_FILE not in files:
            return f"{side} lists no {MODEL_FILE}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{side} is missing or unreadable"
    for name, rec in files.items():
        p = folder / name
        try:
            st = p.stat()
        except OSError:
            return f"{p} is missing"
        if st.st_size != rec.get("size"):
            return f"{p} has {st.st_size:,} bytes, {rec.get('size'):,} were written"
        if sha256_file_cached(p) != rec.get("sha256"):
            return f"{p} does not match its recorded sha256 (damaged)"
    return None


def _dummy(encoder: Encoder, batch: int, length: int, seed: int) -> tuple[Any, Any]:
    """Token ids and an attention mask with padding (rows of decreasing length, ≥ 2 tokens)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    hi = max(min(int(encoder.facts.vocab_size), 1000), 8)
    ids = torch.randint(min(5, hi - 1), hi, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    pad = encoder.tokenizer.pad_token_id
    for b in range(1, batch):
        keep = max(2, length - b * max(1, length // (batch + 1)))
        mask[b, keep:] = 0
        ids[b, keep:] = int(pad) if pad is not None else 0
    return ids, mask


def _export(encoder: Encoder, folder: Path, key: str, identity: dict[str, Any]) -> None:
    """Export into a temporary folder beside ``folder``, record sizes and hashes, rename."""
    import torch

    L = encoder.facts.num_layers
    outputs = [f"hidden_states.{i}" for i in range(L + 1)]

    class AllLayers(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_hidden_states=True,
                return_dict=True,
            )
            return tuple(out.hidden_states)

    model = encoder.model
    was_training = model.training
    attention = encoder.model.config._attn_implementation
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache holds ordinary readable files
    t0 = time.perf_counter()
    log.warning("exporting %s to ONNX (once; cached in %s)", encoder.facts.name, folder)
    try:
        # padding in the example batch: a branch the tracer bakes in must be the masked one
        ids, mask = _dummy(
            encoder, batch=2, length=max(4, min(17, encoder.facts.max_length)), seed=0
        )
        axes = {n: {0: "batch", 1: "tokens"} for n in ["input_ids", "attention_mask", *outputs]}
        if attention != EXPORT_ATTENTION:
            model.set_attn_implementation(EXPORT_ATTENTION)
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings; the check batch judges the graph
            torch.onnx.export(
                AllLayers(model).eval(),
                (ids, mask),
                str(tmp / MODEL_FILE),
                input_names=["input_ids", "attention_mask"],
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        files = {}
        for p in sorted(tmp.iterdir()):
            if p.is_file():
                p.chmod(0o644)
                files[p.name] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
        meta = {
            "export_version": EXPORT_VERSION,
            "key": key,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "export_seconds": round(time.perf_counter() - t0, 2),
            "inputs": ["input_ids", "attention_mask"],
            "outputs": outputs,
            "files": files,
            "identity": identity,
        }
        (tmp / SIDECAR).write_text(json.dumps(meta, indent=1, default=str) + "\n", "utf-8")
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        model.train(was_training)
        if model.config._attn_implementation != attention:
            model.set_attn_implementation(attention)
    log.warning("exported %s in %.1f s", encoder.facts.name, time.perf_counter() - t0)


# --------------------------------------------------------------------------- the session


@dataclass
class OnnxModel:
    """An ONNX Runtime session of one encoder: ``run`` returns the requested hidden states."""

    session: Any
    folder: Path
    num_layers: int
    threads: int
    #: largest error against the torch model on the check batch (relative to its magnitude)
    probe_error: float
    #: the torch model last checked against: its id and its parameters' in-place versions
    checked: tuple[Any, ...] = ()

    def run(
        self, ids: NDArray[np.int64], mask: NDArray[np.int64], layers: list[int]
    ) -> list[NDArray[np.float32]]:
        """Hidden states ``[B, T, D]`` float32 of ``layers`` (0 = embedding output)."""
        names = [f"hidden_states.{i}" for i in layers]
        return list(self.session.run(names, {"input_ids": ids, "attention_mask": mask}))


def _session(path: Path, threads: int) -> Any:
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _probe_error(session: Any, encoder: Encoder) -> float:
    """Largest hidden-state difference, ONNX vs torch, on a padded batch (real tokens only)."""
    import torch

    L = encoder.facts.num_layers
    length = max(4, min(13, int(encoder.facts.max_length)))
    ids, mask = _dummy(encoder, batch=3, length=length, seed=1)
    with torch.inference_mode():
        ref = encoder.model(
            input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True
        ).hidden_states
    names = [f"hidden_states.{i}" for i in range(L + 1)]
    got = session.run(names, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    keep = mask.bool().numpy()
    err, scale = 0.0, 1.0
    for g, r in zip(got, ref, strict=True):
        r = r.float().numpy()
        if g.shape != r.shape:
            return float("inf")
        err = max(err, float(np.abs(g - r)[keep].max()))
        scale = max(scale, float(np.abs(r[keep]).max()))
    return err / scale


_SESSIONS: dict[tuple[str, int], OnnxModel] = {}
#: sessions kept per process (each holds its own copy of the weights); the least recently used goes
_KEEP = 2
_LOCK = threading.Lock()


def onnx_model(encoder: Encoder, *, threads: int | None = None) -> OnnxModel:
    """The checked ONNX Runtime session of ``encoder`` (exported and cached on first use).

    ``threads``: ONNX Runtime intra-op threads (default ``torch.get_num_threads()``; inter-op
    1). The last two sessions used are kept for the life of the process. A
    session is checked against the live torch model on a small padded batch when it is made
    and whenever the model object or its parameters changed since (in-place updates count).
    Raises :class:`OnnxMissingError` without the extra, :class:`ConfigError` when the graph
    disagrees with torch after a fresh export, or the exporter's own error.
    """
    import torch

    import_onnxruntime()
    reason = _encoder_reason(encoder)
    if reason is not None:
        raise ConfigError(f"--backend onnx: {reason}")
    threads = int(threads or torch.get_num_threads())
    identity = _identity(encoder)
    key = _digest(identity)
    folder = cache_root() / f"{_slug(encoder.facts.name)}-{key[:16]}"
    with _LOCK:
        held = _SESSIONS.pop((str(folder), threads), None)
    state = (id(encoder.model), *(p._version for p in encoder.model.parameters()))
    if held is not None and held.checked == state:  # checked against this very model already
        return _keep(folder, threads, held)
    fresh = False
    if held is None:
        fresh = _ensure_export(encoder, folder, key, identity, force=False)
        held = OnnxModel(_session(folder / MODEL_FILE, threads), folder, encoder.facts.num_layers,
                         threads, 0.0)  # fmt: skip
    held.probe_error = _probe_error(held.session, encoder)
    if held.probe_error > PROBE_TOLERANCE and not fresh:
        log.warning("%s disagrees with the torch model: exporting again", folder)
        _ensure_export(encoder, folder, key, identity, force=True)
        held = OnnxModel(_session(folder / MODEL_FILE, threads), folder, encoder.facts.num_layers,
                         threads, 0.0)  # fmt: skip
        held.probe_error = _probe_error(held.session, encoder)
    if held.probe_error > PROBE_TOLERANCE:
        raise ConfigError(
            f"the ONNX export of {encoder.facts.name} disagrees with its torch forward (relative "
            f"error {held.probe_error:.2g} > {PROBE_TOLERANCE:g} on a check batch): the onnx "
            "backend does not support this architecture"
        )
    held.checked = state
    return _keep(folder, threads, held)


def _keep(folder: Path, threads: int, held: OnnxModel) -> OnnxModel:
    with _LOCK:
        _SESSIONS[(str(folder), threads)] = held
        while len(_SESSIONS) > _KEEP:
            del _SESSIONS[next(iter(_SESSIONS))]  # the least recently used
    return held


def _ensure_export(
    encoder: Encoder, folder: Path, key: str, identity: dict[str, Any], *, force: bool
) -> bool:
    """Make ``folder`` hold an intact export (exporting when needed); True if exported now."""
    if not force and _cache_problem(folder, key) is None:
        return False
    root = folder.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{root}: cannot create the ONNX cache folder ({exc})") from exc
    with exclusive_lock(root / f".{folder.name}.lock"):
        problem = _cache_problem(folder, key)  # another process may have exported meanwhile
        if problem is None and not force:
            return False
        if folder.is_dir() and problem is not None:
            log.warning("ONNX cache: %s: exporting again", problem)
        _export(encoder, folder, key, identity)
    return True
