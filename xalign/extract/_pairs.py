"""Pair mode: encode each translation pair jointly and keep the cross-sentence attention blocks.

For a store whose corpus groups translations (``group``), every group with a row in language
*a* and one in language *b* is encoded as the tokenizer's **pair input**
(``tokenizer(text_a, text_b)``: ``<s> A </s></s> B </s>`` for XLM-R/e5, ``[CLS] A [SEP] B
[SEP]`` for BERT) with eager attention. Per attention layer ℓ (1..L, block ℓ), the head-mean
map's two cross blocks are kept, restricted to the **word tokens** of each side (special and
prefix tokens dropped):

- ``ab`` ``[T_a, T_b]``: rows = *a*'s tokens as queries, columns = *b*'s tokens as keys;
- ``ba`` ``[T_b, T_a]``: rows = *b*'s tokens, columns = *a*'s tokens.

These are the inputs of attention-derived word alignment (Garg et al. 2019;
docs/metrics.md#attn-align). Layout, beside the store's own files::

    arrays.zarr/pairs/<a>-<b>/ab          [sum T_a*T_b, n_layers] float16, flat row-major blocks
    arrays.zarr/pairs/<a>-<b>/ba          [sum T_b*T_a, n_layers] float16
    arrays.zarr/pairs/<a>-<b>/ab_offsets  [n_pairs + 1] int64 (ba_offsets likewise)
    pairs-<a>-<b>.parquet                 one row per pair: pair, group, row_a, row_b, n_a, n_b,
                                          n_joint, truncated, positions_a/_b (into the joint
                                          sequence), words_a/_b (whitespace word index)
    pairs-<a>-<b>.json                    what made it (written last: the completeness mark)

A rerun replaces all three atomically enough for readers: the JSON is removed first and
written last, the arrays are written under a temporary name and swapped in. The JSON records
the CRC-32 of every chunk (read back after it was written), the SHA-256 of the arrays'
metadata and of the table, and its own SHA-256, so readers find damage
(:class:`xalign.store.PairAttention`, ``python -m xalign.extract --verify``); a rerun of the
extraction command with ``--pairs A,B`` recomputes a damaged pair set.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign import __version__
from xalign._io import write_json, write_parquet
from xalign.errors import ConfigError, StoreMismatchError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from xalign.models import Encoder

from xalign.store import (
    ARRAYS,
    PAIR_CHUNK_ELEMENTS,
    PAIR_CHUNK_PAIRS,
    PAIRS_FORMAT,
    PAIRS_FORMAT_VERSION,
    PairAttention,
    pair_attention_exists,
    pair_files,
    pair_records,
    pair_table_record,
    parallel_rows,
    read_pair_attention,
    resolve_pair_langs,
    seal_record,
)

# module names, so that tests can shrink the chunks of this writer alone
_CHUNK = PAIR_CHUNK_ELEMENTS
_CHUNK_PAIRS = PAIR_CHUNK_PAIRS

__all__ = [
    "PAIRS_FORMAT",
    "PairAttention",
    "extract_pair_attention",
    "pair_attention_exists",
    "read_pair_attention",
]


# ----------------------------------------------------------------------------- tokenising


def _side_tokens(
    text: str,
    prefix: str,
    offsets: NDArray[np.int64],
    special: NDArray[np.bool_],
    seq: NDArray[np.int64],
    side: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Joint-sequence positions and whitespace word indices of one side's word tokens."""
    from xalign.extract._tokenize import _word_index

    pos = np.flatnonzero((seq == side) & ~special)
    plen = len(prefix)
    off = offsets[pos]
    sp = np.zeros(len(pos), dtype=bool)
    if plen:
        sp = off[:, 1] <= plen  # the prefix ("query: ") is not part of the sentence
    rel = np.maximum(off, plen) - plen
    words = _word_index(text, rel, sp)
    keep = words >= 0
    return pos[keep].astype(np.int64), words[keep].astype(np.int64)


def _tokenize_pairs(
    tokenizer: Any, texts_a: list[str], texts_b: list[str], *, prefix: str, max_length: int
) -> dict[str, Any]:
    enc = tokenizer(
        [prefix + t for t in texts_a],
        [prefix + t for t in texts_b],
        truncation="longest_first",
        max_length=max_length,
        padding=False,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_attention_mask=False,
    )
    n = len(texts_a)
    ids = [list(x) for x in enc["input_ids"]]
    types = enc.get("token_type_ids")
    pos_a, pos_b, words_a, words_b = [], [], [], []
    for i in range(n):
        off = np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
        sp = np.asarray(enc["special_tokens_mask"][i], dtype=bool)
        seq = np.asarray([-1 if s is None else s for s in enc.sequence_ids(i)], dtype=np.int64)
        pa, wa = _side_tokens(texts_a[i], prefix, off, sp, seq, 0)
        pb, wb = _side_tokens(texts_b[i], prefix, off, sp, seq, 1)
        pos_a.append(pa)
        pos_b.append(pb)
        words_a.append(wa)
        words_b.append(wb)
    n_joint = np.array([len(x) for x in ids], dtype=np.int64)
    truncated = np.zeros(n, dtype=bool)
    at_limit = np.flatnonzero(n_joint >= max_length)
    if len(at_limit):
        from xalign.extract._tokenize import full_lengths

        full = full_lengths(
            tokenizer,
            [prefix + texts_a[i] for i in at_limit],
            [prefix + texts_b[i] for i in at_limit],
        )
        truncated[at_limit] = [x > max_length for x in full]
    return {
        "ids": ids,
        "types": None if types is None else [list(x) for x in types],
        "pos_a": pos_a,
        "pos_b": pos_b,
        "words_a": words_a,
        "words_b": words_b,
        "n_joint": n_joint,
        "truncated": truncated,
    }


# ----------------------------------------------------------------------------- extraction


def _check_encoder(store_manifest: dict[str, Any], encoder: Encoder, where: Path) -> None:
    want = store_manifest.get("identity", {}).get("encoder") or {}
    have = encoder.facts.identity()
    diffs = [
        f"{k}: store has {want.get(k)!r}, encoder has {have[k]!r}"
        for k in have
        if want.get(k) != have[k]
    ]
    if diffs:
        raise StoreMismatchError(
            f"{where}: the encoder differs from the one that made the store "
            f"({'; '.join(diffs[:3])}); pair attention must come from the same encoder"
        )


def _attn_layers(layers: Sequence[int] | str | None, num_layers: int) -> list[int]:
    from xalign.store import parse_layers

    if layers is None:
        return list(range(1, num_layers + 1))
    spec = layers if isinstance(layers, str) else [int(x) for x in layers]
    out = parse_layers(spec, num_layers)
    if 0 in out:
        raise ConfigError(
            "layers: attention layers are 1..L (block ℓ); layer 0 (the embedding output) has none"
        )
    return out


def extract_pair_attention(
    store_path: str | os.PathLike[str],
    encoder: Encoder,
    *,
    langs: Sequence[str] | None = None,
    layers: Sequence[int] | str | None = None,
    max_length: int | None = None,
    prefix: str | None = None,
    token_budget: int = 8192,
    autocast: bool = True,
    progress: bool = False,
) -> PairAttention:
    """Encode every translation pair of a store jointly and store its cross-attention blocks.

    Parameters
    ----------
    store_path : path
        A complete store (``Store.open``) whose rows share ``group`` across languages.
    encoder : Encoder
        The encoder that made the store (checked against the manifest's identity).
        Its attention implementation is switched to eager for the run and restored.
    langs : (str, str), optional
        Languages *a* and *b* (normalised or raw codes); None = the store's only two.
        Pair *a*-*b* is stored under ``<a>-<b>``; *a* is the first segment of the input.
    layers : sequence of int or str, optional
        Attention layers 1..L (a spec such as ``"6-12"`` works); None = all.
    max_length : int, optional
        Limit of the joint sequence (longest-first truncation); default the store's.
    prefix : str, optional
        Text put before each side, as in the store (e5: ``"query: "``); default the store's.
        Its tokens are dropped from the blocks.
    token_budget : int
        Padded tokens per forward batch.
    autocast : bool
        bfloat16/float16 autocast on CUDA (ignored on CPU).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    PairAttention
        Reader of what was written.

    Raises
    ------
    StoreError
        Not a complete store.
    StoreMismatchError
        ``encoder`` is not the store's encoder.
    ConfigError, DataError
        Bad languages or layers; no group with rows in both languages.
    """
    import torch

    from xalign.extract._extract import _is_oom, length_sorted_batches
    from xalign.models import autocast_context
    from xalign.store import Store

    store = Store.open(store_path)
    path = store.path
    _check_encoder(store.manifest, encoder, path)
    a, b = resolve_pair_langs(store.rows, langs, path)
    pairs = parallel_rows(store.rows, a, b, path)
    facts = encoder.facts
    attn_layers = _attn_layers(layers, facts.num_layers)
    ext = store.extraction
    limit = min(int(max_length or ext.get("max_length") or facts.max_length), facts.max_length)
    if limit < 4:
        raise ConfigError(f"max_length={max_length}: must be at least 4")
    pfx = ext.get("prefix", "") if prefix is None else prefix
    if token_budget < 16:
        raise ConfigError(f"token_budget={token_budget}: must be at least 16 tokens")

    texts = store.rows["text"].tolist()
    ta = [texts[r] for r in pairs["row_a"]]
    tb = [texts[r] for r in pairs["row_b"]]
    tok = _tokenize_pairs(encoder.tokenizer, ta, tb, prefix=pfx, max_length=limit)
    n_a = np.array([len(p) for p in tok["pos_a"]], dtype=np.int64)
    n_b = np.array([len(p) for p in tok["pos_b"]], dtype=np.int64)
    sizes = n_a * n_b
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    N, nL = len(pairs), len(attn_layers)

    arrays_dir, table_path, info_path = pair_files(path, a, b)
    if info_path.exists():
        info_path.unlink()  # incomplete from here until the new JSON is written
    tmp_dir = arrays_dir.with_name(f".{arrays_dir.name}.tmp-{os.getpid()}")
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    import zarr

    zarr.open_group(str(path / ARRAYS), mode="a", zarr_format=3).require_group("pairs")
    group = zarr.open_group(str(tmp_dir), mode="w", zarr_format=3)
    total = max(int(offsets[-1]), 1)
    # uncompressed, every chunk written (even all zeros): a chunk file's size is fixed by the
    # metadata and a missing file always means damage (see xalign.store._integrity)
    arrs = {
        k: group.create_array(
            k,
            shape=(int(offsets[-1]), nL),
            chunks=(min(_CHUNK, total), 1),
            dtype="float16",
            compressors=None,
            fill_value=0,
            config={"write_empty_chunks": True},
        )
        for k in ("ab", "ba")
    }
    for k in ("ab_offsets", "ba_offsets"):
        group.create_array(
            k,
            shape=(N + 1,),
            chunks=(N + 1,),
            dtype="int64",
            compressors=None,
            fill_value=0,
            config={"write_empty_chunks": True},
        )[...] = offsets

    model = encoder.model
    old_impl = encoder.attn_implementation
    if old_impl != "eager":
        model.set_attn_implementation("eager")
    device = encoder.device
    use_autocast = autocast and device.type == "cuda"
    pad = encoder.tokenizer.pad_token_id
    pad_id = int(pad) if pad is not None else 0
    t0 = time.perf_counter()
    bar = _progress(N, enabled=progress)

    def forward(idx: NDArray[np.int64]) -> Iterator[tuple[int, NDArray, NDArray]]:
        T = int(tok["n_joint"][idx].max())
        ids = np.full((len(idx), T), pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), T), dtype=np.int64)
        types = np.zeros((len(idx), T), dtype=np.int64)
        for j, i in enumerate(idx):
            k = int(tok["n_joint"][i])
            ids[j, :k] = tok["ids"][i]
            mask[j, :k] = 1
            if tok["types"] is not None:
                types[j, :k] = tok["types"][i]
        inputs = {
            "input_ids": torch.from_numpy(ids).to(device),
            "attention_mask": torch.from_numpy(mask).to(device),
        }
        if tok["types"] is not None:
            inputs["token_type_ids"] = torch.from_numpy(types).to(device)
        with torch.inference_mode(), autocast_context(use_autocast):
            out = model(**inputs, output_attentions=True, return_dict=True)
            if out.attentions is None or any(x is None for x in out.attentions):
                raise ConfigError(
                    "the model returned no attention maps; it needs attn_implementation='eager'"
                )
            att = torch.stack([out.attentions[layer - 1] for layer in attn_layers])
            att = att.float().mean(2)  # [nL, B, T, T] head mean
            for j, i in enumerate(idx):
                pa = torch.as_tensor(tok["pos_a"][i], device=att.device)
                pb = torch.as_tensor(tok["pos_b"][i], device=att.device)
                m = att[:, j]
                ab = m[:, pa][:, :, pb]  # [nL, Ta, Tb]
                ba = m[:, pb][:, :, pa]
                yield (
                    int(i),
                    ab.to(torch.float16).cpu().numpy(),
                    ba.to(torch.float16).cpu().numpy(),
                )

    def run(idx: NDArray[np.int64]) -> Iterator[tuple[int, NDArray, NDArray]]:
        try:
            yield from list(forward(idx))
        except Exception as err:
            if not _is_oom(err) or len(idx) == 1:
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            half = len(idx) // 2
            yield from run(idx[:half])
            yield from run(idx[half:])

    try:
        for start in range(0, N, _CHUNK_PAIRS):
            stop = min(N, start + _CHUNK_PAIRS)
            lo, hi = int(offsets[start]), int(offsets[stop])
            buf = {k: np.zeros((hi - lo, nL), dtype=np.float16) for k in ("ab", "ba")}
            for batch in length_sorted_batches(
                tok["n_joint"][start:stop], token_budget=token_budget
            ):
                for i, ab, ba in run(batch + start):
                    s, e = int(offsets[i]) - lo, int(offsets[i + 1]) - lo
                    buf["ab"][s:e] = ab.reshape(nL, -1).T
                    buf["ba"][s:e] = ba.reshape(nL, -1).T
                    bar.update(1)
            for k in ("ab", "ba"):
                if hi > lo:
                    arrs[k][lo:hi] = buf[k]
        # CRC-32 of every chunk as written (read back before the arrays are swapped in)
        records = pair_records(tmp_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    finally:
        bar.close()
        if old_impl != "eager":
            model.set_attn_implementation(old_impl)

    old_dir = arrays_dir.with_name(f".{arrays_dir.name}.old-{os.getpid()}")
    if arrays_dir.exists():
        os.replace(arrays_dir, old_dir)
    os.replace(tmp_dir, arrays_dir)
    shutil.rmtree(old_dir, ignore_errors=True)

    table = pd.DataFrame(
        {
            "pair": np.arange(N, dtype=np.int64),
            "group": pairs["group"].astype(str).to_numpy(),
            "row_a": pairs["row_a"].to_numpy(dtype=np.int64),
            "row_b": pairs["row_b"].to_numpy(dtype=np.int64),
            "n_a": n_a,
            "n_b": n_b,
            "n_joint": tok["n_joint"],
            "truncated": tok["truncated"],
            "positions_a": [p.tolist() for p in tok["pos_a"]],
            "positions_b": [p.tolist() for p in tok["pos_b"]],
            "words_a": [w.tolist() for w in tok["words_a"]],
            "words_b": [w.tolist() for w in tok["words_b"]],
        }
    )
    write_parquet(table_path, table)
    records["table"] = pair_table_record(table_path)
    info = {
        "format": PAIRS_FORMAT,
        "format_version": PAIRS_FORMAT_VERSION,
        "xalign_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "langs": [a, b],
        "layers": attn_layers,
        "attention": "head-mean",
        "tokens": "word tokens only (special and prefix tokens dropped)",
        "input": "tokenizer pair input (text_a, text_b)",
        "max_length": limit,
        "prefix": pfx,
        "token_budget": token_budget,
        "autocast": use_autocast,
        "encoder": {
            "name": facts.name,
            "revision": facts.revision,
            "weights_hash": facts.weights_hash,
            "num_layers": facts.num_layers,
        },
        "corpus_fingerprint": store.corpus.get("fingerprint"),
        "counts": {
            "pairs": N,
            "truncated": int(tok["truncated"].sum()),
            "elements": int(offsets[-1]),
        },
        "seconds": round(time.perf_counter() - t0, 3),
        "device": str(device),
        "integrity": records,
    }
    write_json(info_path, seal_record(info))  # written last: the pair set exists from here
    return PairAttention(path, a, b)


def _progress(total: int, *, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="pair attention", unit="pair", leave=False)
