"""Store: the on-disk result of one extraction run (one encoder × one corpus).

Layout (see DESIGN.md)::

    manifest.json      what made it, and ``status: partial|complete``
    config.json        the resolved extraction config
    rows.parquet       corpus rows + ``row, n_tokens, n_tokens_full, truncated``
    tokens.parquet     one row per token (when tokens or attentions are kept)
    progress.json      finished row chunks of a partial store (removed when complete)
    arrays.zarr/       zarr v3 arrays, float16 on disk:
        sentence/<pooling>   [N, n_layers, D]  chunks (chunk_rows, 1, D)
        token/hidden         [T, n_layers, D]  chunks (token_chunk, 1, D), rows by token/offsets
        attention/<mode>     [A, n_attn_layers(, H)] flat T_r×T_r blocks, by attention/offsets
    projections/       cached 2-D coordinates (written by ``xalign.project``)
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from xalign import __version__
from xalign._io import read_json, write_json, write_parquet
from xalign.errors import ConfigError, StoreError, StoreMismatchError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["FORMAT", "FORMAT_VERSION", "Store", "StoreWriter", "is_store"]

FORMAT = "xalign-store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PROGRESS = "progress.json"
ARRAYS = "arrays.zarr"

AttentionMode = Literal["none", "head-mean", "full"]


def is_store(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding an xalign manifest."""
    p = Path(path) / MANIFEST
    if not p.is_file():
        return False
    try:
        return read_json(p).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def _describe_mismatch(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _describe_mismatch(a, b, prefix=f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: store has {a!r}, this run has {b!r}")
    return diffs


class Store:
    """Read access to an extraction store; arrays are read lazily, one layer at a time.

    Examples
    --------
    On a store written by ``python -m xalign.extract --out runs/tatoeba-e5``::

        store = Store.open("runs/tatoeba-e5")
        X, rows = store.sentences(layer=8, lang="deu", with_rows=True)
    """

    def __init__(self, path: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, allow_partial: bool = False) -> Store:
        """Open an existing store; a partial (interrupted) store is refused unless asked for."""
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise StoreError(f"{path}: not an xalign store (no {MANIFEST})")
        try:
            manifest = read_json(mpath)
        except ValueError as e:
            raise StoreError(f"{mpath}: manifest is not valid JSON ({e})") from e
        if manifest.get("format") != FORMAT:
            raise StoreError(
                f"{mpath}: not an xalign store manifest (format={manifest.get('format')!r})"
            )
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise StoreError(
                f"{mpath}: store format version {manifest['format_version']} is newer than this "
                f"xalign ({FORMAT_VERSION}); upgrade xalign"
            )
        if manifest.get("status") != "complete" and not allow_partial:
            raise StoreError(
                f"{path}: store is incomplete (status={manifest.get('status')!r}); rerun the same "
                "`python -m xalign.extract` command to resume it"
            )
        return cls(path, manifest)

    # ------------------------------------------------------------------ facts
    @property
    def status(self) -> str:
        return str(self.manifest["status"])

    @property
    def label(self) -> str:
        """The checkpoint label (``before``, ``after``...; defaults to the folder name)."""
        return str(self.manifest.get("label") or self.path.name)

    @property
    def encoder(self) -> dict[str, Any]:
        return dict(self.manifest["encoder"])

    @property
    def corpus(self) -> dict[str, Any]:
        return dict(self.manifest["corpus"])

    @property
    def extraction(self) -> dict[str, Any]:
        return dict(self.manifest["extraction"])

    @property
    def layers(self) -> list[int]:
        """Stored layers, in our numbering (0 = embedding output, L = last block)."""
        return list(self.manifest["extraction"]["layers"])

    def resolve_layers(self, spec: str) -> list[int]:
        """Layers of a spec (``"all"`` = every stored layer, or e.g. ``"0,6-12"``, ``"-1"``).

        Raises :class:`ConfigError` naming any requested layer the store does not hold.
        """
        if spec == "all":
            return self.layers
        from xalign.extract._config import parse_layers

        wanted = parse_layers(spec, int(self.encoder["num_layers"]))
        missing = [x for x in wanted if x not in self.layers]
        if missing:
            raise ConfigError(
                f"layer(s) {missing} not in store {self.path} (stored: {self.layers}); "
                "re-extract with --layers including them"
            )
        return wanted

    @property
    def attention_layers(self) -> list[int]:
        return list(self.manifest["extraction"].get("attention_layers", []))

    @property
    def poolings(self) -> list[str]:
        return list(self.manifest["extraction"]["poolings"])

    @property
    def attention_mode(self) -> str:
        return str(self.manifest["extraction"].get("attentions", "none"))

    @property
    def has_tokens(self) -> bool:
        return bool(self.manifest["extraction"].get("tokens", False))

    @property
    def hidden_size(self) -> int:
        return int(self.manifest["encoder"]["hidden_size"])

    def __len__(self) -> int:
        return int(self.manifest["counts"]["rows"])

    def __repr__(self) -> str:
        return (
            f"Store({str(self.path)!r}, encoder={self.encoder['name']!r}, rows={len(self)}, "
            f"layers={self.layers[0]}..{self.layers[-1]}, poolings={self.poolings})"
        )

    # ------------------------------------------------------------------ tables
    @cached_property
    def rows(self) -> pd.DataFrame:
        """Corpus rows in store order (``row`` = position in every array)."""
        return pd.read_parquet(self.path / "rows.parquet")

    @property
    def languages(self) -> list[str]:
        return list(dict.fromkeys(self.rows["lang"]))

    @cached_property
    def _group(self) -> Any:
        import zarr

        return zarr.open_group(str(self.path / ARRAYS), mode="r", zarr_format=3)

    def _layer_index(self, layer: int, available: Sequence[int], what: str = "layer") -> int:
        if layer < 0:
            layer = self.encoder["num_layers"] + 1 + layer
        try:
            return list(available).index(layer)
        except ValueError:
            raise ConfigError(
                f"{what} {layer} is not in store {self.path} (stored: {list(available)}); "
                "re-extract with --layers including it"
            ) from None

    def select(
        self, *, lang: str | Sequence[str] | None = None, rows: Sequence[int] | None = None
    ) -> NDArray[np.int64]:
        """Row indices (sorted) for a language (or languages) and/or an explicit row list."""
        df = self.rows
        mask = np.ones(len(df), dtype=bool)
        if lang is not None:
            langs = [lang] if isinstance(lang, str) else list(lang)
            unknown = [
                x for x in langs if x not in set(df["lang"]) and x not in set(df["lang_raw"])
            ]
            if unknown:
                raise ConfigError(
                    f"language(s) {unknown} not in store {self.path}; "
                    f"stored: {', '.join(self.languages)}"
                )
            mask &= df["lang"].isin(langs).to_numpy() | df["lang_raw"].isin(langs).to_numpy()
        idx = np.flatnonzero(mask).astype(np.int64)
        if rows is not None:
            r = np.asarray(rows, dtype=np.int64)
            if len(r) and (r.min() < 0 or r.max() >= len(df)):
                raise ConfigError(f"row index out of range 0..{len(df) - 1} in store {self.path}")
            idx = np.intersect1d(idx, r) if lang is not None else r
        return idx

    # ------------------------------------------------------------------ arrays
    def _read_rows(self, arr: Any, idx: NDArray[np.int64], layer_i: int) -> NDArray[np.float32]:
        if len(idx) == 0:
            return np.zeros((0, arr.shape[-1]), dtype=np.float32)
        if len(idx) == idx[-1] - idx[0] + 1 and np.all(np.diff(idx) == 1):
            out = arr[int(idx[0]) : int(idx[-1]) + 1, layer_i, :]
        else:
            out = arr.oindex[idx, layer_i, :]
        return np.asarray(out, dtype=np.float32)

    def sentences(
        self,
        *,
        pooling: str = "mean",
        layer: int,
        lang: str | Sequence[str] | None = None,
        rows: Sequence[int] | None = None,
        with_rows: bool = False,
    ) -> Any:
        """Pooled sentence vectors at one layer as float32 ``[n, D]`` (reads only that layer).

        With ``with_rows=True`` returns ``(array, rows DataFrame)`` with matching order.
        """
        if pooling not in self.poolings:
            raise ConfigError(
                f"pooling {pooling!r} is not in store {self.path} (stored: {self.poolings}); "
                "re-extract with --pooling including it"
            )
        li = self._layer_index(layer, self.layers)
        idx = self.select(lang=lang, rows=rows)
        X = self._read_rows(self._group[f"sentence/{pooling}"], idx, li)
        if with_rows:
            return X, self.rows.iloc[idx].reset_index(drop=True)
        return X

    def iter_layers(self, *, pooling: str = "mean", lang: str | Sequence[str] | None = None) -> Any:
        """Yield ``(layer, X)`` for every stored layer (one layer in memory at a time)."""
        for layer in self.layers:
            yield layer, self.sentences(pooling=pooling, layer=layer, lang=lang)

    def _require_tokens(self) -> None:
        if not self.has_tokens:
            raise ConfigError(
                f"store {self.path} has no token embeddings; re-extract with --tokens"
            )

    @cached_property
    def tokens(self) -> pd.DataFrame:
        """The token table: row, position, token_id, token, word, char_start, char_end, special."""
        p = self.path / "tokens.parquet"
        if not p.is_file():
            raise ConfigError(
                f"store {self.path} has no token table; re-extract with --tokens or --attentions"
            )
        return pd.read_parquet(p)

    def row_tokens(self, row: int) -> pd.DataFrame:
        """The tokens of one row, in position order."""
        off = self._token_offsets
        return self.tokens.iloc[int(off[row]) : int(off[row + 1])].reset_index(drop=True)

    @cached_property
    def _token_offsets(self) -> NDArray[np.int64]:
        n = self.rows["n_tokens"].to_numpy(dtype=np.int64)
        return np.concatenate([[0], np.cumsum(n)]).astype(np.int64)

    def token_hidden(self, row: int, *, layer: int | None = None) -> NDArray[np.float32]:
        """Token embeddings of one row: ``[T, D]`` at ``layer``, or ``[T, n_layers, D]``."""
        self._require_tokens()
        off = self._token_offsets
        a, b = int(off[row]), int(off[row + 1])
        arr = self._group["token/hidden"]
        if layer is None:
            return np.asarray(arr[a:b], dtype=np.float32)
        return np.asarray(arr[a:b, self._layer_index(layer, self.layers), :], dtype=np.float32)

    def attention(self, row: int, *, layer: int) -> NDArray[np.float32]:
        """Attention of block ``layer`` (1..L) of one row: head-mean ``[T, T]`` or ``[H, T, T]``."""
        mode = self.attention_mode
        if mode == "none":
            raise ConfigError(
                f"store {self.path} has no attentions; "
                "re-extract with --attentions head-mean (or full)"
            )
        li = self._layer_index(layer, self.attention_layers, what="attention layer")
        att_off = np.asarray(self._group["attention/offsets"][row : row + 2], dtype=np.int64)
        n = int(self.rows["n_tokens"].iloc[row])
        block = np.asarray(
            self._group[f"attention/{mode}"][int(att_off[0]) : int(att_off[1]), li],
            dtype=np.float32,
        )
        if mode == "full":
            return block.reshape(n, n, -1).transpose(2, 0, 1)
        return block.reshape(n, n)

    def nbytes_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


class StoreWriter:
    """Creates or resumes a store and writes it chunk by chunk (used by ``xalign.extract``).

    The identity (encoder, corpus fingerprint, extraction config) is checked against an existing
    store: a mismatch raises :class:`StoreMismatchError`; a partial store with the same identity
    is resumed from its last complete chunk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        encoder: dict[str, Any],
        encoder_identity: dict[str, Any],
        corpus: dict[str, Any],
        extraction: dict[str, Any],
        label: str | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.identity = {
            "encoder": encoder_identity,
            "corpus_fingerprint": corpus["fingerprint"],
            "extraction": extraction,
        }
        self.manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "xalign_version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "status": "partial",
            "label": label or self.path.name,
            "encoder": encoder,
            "corpus": corpus,
            "extraction": extraction,
            "identity": self.identity,
            "counts": {},
        }
        self.done: set[int] = set()
        self.resumed = False
        self.already_complete = False
        self._prepare(overwrite=overwrite)

    def _prepare(self, *, overwrite: bool) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise StoreError(f"{p}: output path exists and is not a folder")
        if p.is_dir() and any(p.iterdir()):
            if not is_store(p):
                raise StoreError(
                    f"{p}: output folder is not empty and holds no xalign store; "
                    "choose another --out (xalign never writes into unknown folders)"
                )
            if overwrite:
                shutil.rmtree(p)
            else:
                old = read_json(p / MANIFEST)
                diffs = _describe_mismatch(old.get("identity", {}), self.identity)
                if diffs:
                    raise StoreMismatchError(
                        f"{p} holds a store of another model/corpus/config ({'; '.join(diffs[:3])}"
                        f"{'; ...' if len(diffs) > 3 else ''}); use another --out or --overwrite"
                    )
                self.manifest["created"] = old.get("created", self.manifest["created"])
                if old.get("status") == "complete":
                    self.already_complete = True
                    self.manifest = old
                    return
                prog = p / PROGRESS
                if prog.is_file():
                    self.done = {int(c) for c in read_json(prog).get("done_chunks", [])}
                self.resumed = True
        p.mkdir(parents=True, exist_ok=True)
        write_json(p / MANIFEST, self.manifest)

    # -- tables
    def write_tables(self, rows: pd.DataFrame, tokens: pd.DataFrame | None) -> None:
        write_parquet(self.path / "rows.parquet", rows)
        if tokens is not None:
            write_parquet(self.path / "tokens.parquet", tokens)

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.path / "config.json", config)

    # -- arrays
    def group(self) -> Any:
        import zarr

        return zarr.open_group(str(self.path / ARRAYS), mode="a", zarr_format=3)

    def ensure_array(
        self,
        name: str,
        *,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        dtype: str,
        data: NDArray[Any] | None = None,
    ) -> Any:
        """Create an array once; on resume, reuse it after checking shape and dtype."""
        g = self.group()
        if name in g:
            arr = g[name]
            if tuple(arr.shape) != tuple(shape) or str(arr.dtype) != dtype:
                raise StoreError(
                    f"{self.path}/{ARRAYS}/{name}: has shape {arr.shape} {arr.dtype}, expected "
                    f"{shape} {dtype}; the store is damaged, rerun with --overwrite"
                )
            return arr
        chunks = tuple(max(1, min(c, s)) for c, s in zip(chunks, shape, strict=True))
        arr = g.create_array(
            name, shape=shape, chunks=chunks, dtype=dtype, compressors=None, fill_value=0
        )
        if data is not None:
            arr[...] = data
        return arr

    def mark_done(self, chunk: int) -> None:
        """Record a finished chunk (after its arrays are written): the resume point."""
        self.done.add(chunk)
        write_json(self.path / PROGRESS, {"done_chunks": sorted(self.done)})

    def finish(self, counts: dict[str, Any], run: dict[str, Any]) -> None:
        self.manifest["counts"] = counts
        self.manifest["run"] = run
        self.manifest["status"] = "complete"
        write_json(self.path / MANIFEST, self.manifest)
        prog = self.path / PROGRESS
        if prog.exists():
            prog.unlink()
