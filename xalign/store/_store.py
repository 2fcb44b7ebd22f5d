"""Store: the on-disk result of one extraction run (one encoder × one corpus).

Layout (see DESIGN.md)::

    manifest.json      what made it, and ``status: partial|complete``
    config.json        the resolved extraction config
    rows.parquet       corpus rows + ``row, n_tokens, n_tokens_full, truncated``
    tokens.parquet     one row per token (when tokens or attentions are kept)
    integrity.json     CRC-32 of every chunk, SHA-256 of tables, metadata and manifest
    progress.json      finished row chunks of a partial store (removed when complete)
    integrity.log      chunk checksums of a partial store, one line per finished chunk
    arrays.zarr/       zarr v3 arrays, float16 on disk:
        sentence/<pooling>   [N, n_layers, D]  chunks (chunk_rows, 1, D)
        token/hidden         [T, n_layers, D]  chunks (token_chunk, 1, D), rows by token/offsets
        attention/<mode>     [A, n_attn_layers(, H)] flat T_r×T_r blocks, by attention/offsets
        neurons/<stat>       [L, languages, F] float64 feed-forward statistics (--neurons:
                             active, sum, sumsq; tokens [L, languages, 1]), one chunk per language
    projections/       cached 2-D coordinates (written by ``xalign.project``)

Every reader checks what it trusts: :meth:`Store.open` checks the manifest, the integrity
record, table lengths, array metadata and that every chunk file is there with its size (and,
for stores up to 64 MiB, every checksum); every array read checks the CRC-32 of the chunks it
reads. A damaged store raises :class:`~xalign.errors.StoreError` naming the store and the
array; rerunning the extraction command recomputes the damaged chunks.
"""

from __future__ import annotations

import datetime as _dt
import io
import itertools
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from xalign import __version__
from xalign._io import read_json, write_json, write_parquet, write_text
from xalign.errors import ConfigError, StoreError, StoreMismatchError
from xalign.store._integrity import (
    INTEGRITY,
    INTEGRITY_FORMAT,
    NEURON_STATS,
    REMEDY,
    TABLES,
    ArrayMeta,
    Checker,
    crc,
    expected_arrays,
    manifest_digest,
    run_checks,
    sha256_file,
    verify_store,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["FORMAT", "FORMAT_VERSION", "Store", "StoreWriter", "is_store", "verify_store"]

FORMAT = "xalign-store"
#: 2: ``integrity.json`` records every chunk's CRC-32 and every table's SHA-256 (see
#: :mod:`xalign.store._integrity`); 1: no records (read with a warning).
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
PROGRESS = "progress.json"
INTEGRITY_LOG = "integrity.log"
ARRAYS = "arrays.zarr"
_WARNED_UNVERIFIABLE: set[str] = set()

AttentionMode = Literal["none", "head-mean", "full"]


def is_store(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding an xalign manifest."""
    p = Path(path) / MANIFEST
    if not p.is_file():
        return False
    try:
        return read_json(p).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
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


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the store at ``path``; StoreError when it is missing or not one."""
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise StoreError(f"{path}: not an xalign store (no {MANIFEST})")
    try:
        manifest = read_json(mpath)
    except ValueError as e:
        raise StoreError(f"{mpath}: manifest is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise StoreError(f"{mpath}: not an xalign store manifest (format={got!r})")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int):
        raise StoreError(f"{mpath}: format_version {version!r} is not a number (edited?)")
    if version > FORMAT_VERSION:
        raise StoreError(
            f"{mpath}: store format version {version} is newer than this "
            f"xalign ({FORMAT_VERSION}); upgrade xalign"
        )
    return manifest


def read_table(
    path: Path, name: str, manifest: dict[str, Any], integrity: dict[str, Any] | None
) -> pd.DataFrame:
    """Read a store table, checking its recorded SHA-256 (format 2) on the bytes read."""
    import hashlib

    import pyarrow.parquet as pq

    p = path / name
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"store {path}: {name} is missing ({p}); {REMEDY}") from None
    rec = (integrity or {}).get("tables", {}).get(name)
    if rec is not None and hashlib.sha256(raw).hexdigest() != rec.get("sha256"):
        raise StoreError(
            f"store {path}: {name} does not match the SHA-256 recorded at extraction "
            f"(changed on disk); {REMEDY}"
        )
    try:
        return pq.read_table(io.BytesIO(raw)).to_pandas()
    except Exception as e:
        raise StoreError(
            f"store {path}: {name} is not a readable parquet file ({e}); {REMEDY}"
        ) from None


def check_rows(rows: pd.DataFrame, manifest: dict[str, Any], path: Path) -> None:
    """The row table agrees with the manifest: length, ``row`` numbering, token counts."""
    counts = manifest.get("counts") or {}
    n = counts.get("rows")
    if n is not None and len(rows) != n:
        raise StoreError(
            f"store {path}: rows.parquet has {len(rows):,} rows but the manifest counts {n:,} "
            f"(a table of another length); {REMEDY}"
        )
    for col in ("row", "lang"):
        if col not in rows.columns:
            raise StoreError(f"store {path}: rows.parquet has no column {col!r}; {REMEDY}")
    if not np.array_equal(rows["row"].to_numpy(), np.arange(len(rows))):
        raise StoreError(
            f"store {path}: rows.parquet column 'row' is not 0..{len(rows) - 1} in order "
            f"(rows reordered or replaced); {REMEDY}"
        )
    ext = manifest.get("extraction") or {}
    if ext.get("tokens") or ext.get("attentions", "none") != "none":
        if "n_tokens" not in rows.columns:
            raise StoreError(f"store {path}: rows.parquet has no column 'n_tokens'; {REMEDY}")
        nt = rows["n_tokens"].to_numpy()
        if "tokens" in counts and (nt.min(initial=0) < 0 or int(nt.sum()) != counts["tokens"]):
            raise StoreError(
                f"store {path}: rows.parquet token counts sum to {int(nt.sum()):,}, the "
                f"manifest counts {counts['tokens']:,} tokens; {REMEDY}"
            )


def check_tokens(tokens: pd.DataFrame, rows: pd.DataFrame, path: Path) -> None:
    """The token table has one row per counted token, numbered by its row."""
    nt = rows["n_tokens"].to_numpy(dtype=np.int64)
    if len(tokens) != int(nt.sum()):
        raise StoreError(
            f"store {path}: tokens.parquet has {len(tokens):,} rows, rows.parquet counts "
            f"{int(nt.sum()):,} tokens (a table of another length); {REMEDY}"
        )
    if "row" not in tokens.columns or not np.array_equal(
        tokens["row"].to_numpy(), np.repeat(np.arange(len(nt)), nt)
    ):
        raise StoreError(
            f"store {path}: tokens.parquet column 'row' does not follow rows.parquet's token "
            f"counts (table replaced or reordered); {REMEDY}"
        )


class Store:
    """Read access to an extraction store; arrays are read lazily, one layer at a time.

    Every chunk read is checked against the CRC-32 recorded when it was written (format 2),
    so a damaged store raises :class:`~xalign.errors.StoreError` instead of returning wrong
    numbers.

    Examples
    --------
    On a store written by ``python -m xalign.extract --out runs/tatoeba-e5``::

        store = Store.open("runs/tatoeba-e5")
        X, rows = store.sentences(layer=8, lang="deu", with_rows=True)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        manifest: dict[str, Any],
        *,
        checker: Checker | None = None,
    ) -> None:
        self.path = Path(path)
        self.manifest = manifest
        if checker is None:
            checker = Checker(self.path, manifest)
            if manifest.get("status") == "complete":
                checker.check_manifest()
                if not checker.fatal:
                    checker.load_integrity()
                    checker.check_metadata()
        self._checker = checker
        self._offsets: dict[str, NDArray[np.int64]] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        allow_partial: bool = False,
        full_check: bool | None = None,
    ) -> Store:
        """Open an existing store, checking it first; a partial store is refused unless asked.

        Parameters
        ----------
        path : path
            The store folder.
        allow_partial : bool
            Open an interrupted store (its arrays are partly missing; reads may fail).
        full_check : bool, optional
            Also check every chunk's checksum and every table's content now (``None``: only
            for stores up to 64 MiB; reads always check the chunks they read).

        Raises
        ------
        StoreError
            Not a store, incomplete, or damaged: the message names the store, the array or
            file, and what to do.
        """
        path = Path(path)
        manifest = read_manifest(path)
        if manifest.get("status") != "complete":
            if not allow_partial:
                raise StoreError(
                    f"{path}: store is incomplete (status={manifest.get('status')!r}); rerun "
                    "the same `python -m xalign.extract` command to resume it"
                )
            return cls(path, manifest, checker=Checker(path, manifest))
        checker = run_checks(path, manifest, full=full_check)
        if checker.problems:
            first = checker.problems[0].message
            more = len(checker.problems) - 1
            raise StoreError(first + (f" (and {more} more problem(s))" if more else ""))
        if checker.integrity is None and str(path.resolve()) not in _WARNED_UNVERIFIABLE:
            _WARNED_UNVERIFIABLE.add(str(path.resolve()))
            warnings.warn(
                f"store {path} was written by an older xalign (format version "
                f"{manifest.get('format_version', 1)}) without checksums: missing and truncated "
                "chunks are still found, changed content is not; rerun its extraction command "
                "to record checksums",
                UserWarning,
                stacklevel=2,
            )
        return cls(path, manifest, checker=checker)

    def verify(self, *, full: bool = True) -> Any:
        """Check the whole store now (see :func:`xalign.store.verify_store`)."""
        return verify_store(self.path, full=full)

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
        from xalign.store._layers import parse_layers

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
        """Corpus rows in store order (``row`` = position in every array); checked on load."""
        df = read_table(self.path, "rows.parquet", self.manifest, self._checker.integrity)
        if self.manifest.get("status") == "complete":
            check_rows(df, self.manifest, self.path)
        return df

    @property
    def languages(self) -> list[str]:
        return list(dict.fromkeys(self.rows["lang"]))

    @cached_property
    def _group(self) -> Any:
        """The zarr group (unchecked; readers use the checked accessors below)."""
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

    def _check_row(self, row: int) -> int:
        n = len(self.rows)
        if not isinstance(row, int | np.integer) or not 0 <= int(row) < n:
            raise ConfigError(f"row index {row!r} out of range 0..{n - 1} in store {self.path}")
        return int(row)

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

    # ------------------------------------------------------------------ arrays (checked)
    def _meta(self, name: str) -> ArrayMeta:
        meta = self._checker.metas.get(name)
        if meta is not None:
            return meta
        where = self.path / ARRAYS / name / "zarr.json"
        try:
            meta = ArrayMeta.parse(name, where.read_bytes(), where)
        except FileNotFoundError:
            raise StoreError(
                f"store {self.path}: array {name} is missing ({where}); {REMEDY}"
            ) from None
        except (OSError, ValueError) as e:
            raise StoreError(f"store {self.path}: array {name}: {e}") from None
        if self._checker.integrity is not None:
            raise StoreError(f"store {self.path}: array {name} has no recorded checksums")
        self._checker.metas[name] = meta
        return meta

    def _chunk(self, meta: ArrayMeta, coords: tuple[int, ...]) -> NDArray[Any]:
        """One chunk's values, after checking its size and CRC-32."""
        key = meta.key(coords)
        p = self.path / ARRAYS / meta.name / key
        where = f"store {self.path}: array {meta.name} chunk {key} ({meta.describe(coords)})"
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            partial = self.manifest.get("status") != "complete"
            why = "not computed yet (partial store)" if partial else f"missing ({p}); {REMEDY}"
            raise StoreError(f"{where} is {why}") from None
        if len(data) != meta.chunk_nbytes:
            raise StoreError(
                f"{where} has {len(data):,} bytes, expected {meta.chunk_nbytes:,} (truncated or "
                f"replaced); {REMEDY}"
            )
        crcs = self._checker.crcs.get(meta.name)
        if crcs is not None and crc(data) != crcs[meta.flat(coords)]:
            raise StoreError(
                f"{where} fails its CRC-32 checksum (changed on disk after extraction); {REMEDY}"
            )
        return np.frombuffer(data, dtype=meta.dtype).reshape(meta.chunks)

    def _chunk_rows(self, meta: ArrayMeta, k: int, layer_i: int | None) -> NDArray[Any]:
        """Axis-0 chunk ``k``: ``[c0, ...]`` at one layer index, or ``[c0, n_layers, ...]``."""
        nd = len(meta.shape)
        if nd == 1:
            return self._chunk(meta, (k,))
        rest = (0,) * (nd - 2)
        if layer_i is not None:
            return self._chunk(meta, (k, layer_i, *rest))[:, 0]
        return np.concatenate(
            [self._chunk(meta, (k, j, *rest)) for j in range(meta.shape[1])], axis=1
        )

    def _read(
        self,
        name: str,
        rows: slice | NDArray[np.int64],
        layer_i: int | None = None,
        dtype: Any = None,
    ) -> NDArray[Any]:
        """Rows of an array (a slice or an index array) at one layer index (or all)."""
        meta = self._meta(name)
        c0 = meta.chunks[0]
        tail = meta.shape[1:] if layer_i is None or len(meta.shape) == 1 else meta.shape[2:]
        if layer_i is not None and len(meta.shape) > 1 and not 0 <= layer_i < meta.shape[1]:
            raise StoreError(f"store {self.path}: array {name} has no layer index {layer_i}")
        if isinstance(rows, slice):
            lo, hi = rows.start or 0, meta.shape[0] if rows.stop is None else rows.stop
            if not 0 <= lo <= hi <= meta.shape[0]:
                raise StoreError(
                    f"store {self.path}: array {name} has {meta.shape[0]:,} elements, asked for "
                    f"{lo}..{hi - 1} (offsets and arrays disagree); {REMEDY}"
                )
            out = np.empty((hi - lo, *tail), dtype=dtype or meta.dtype)
            if hi > lo:
                for k in range(lo // c0, (hi - 1) // c0 + 1):
                    a, b = max(lo, k * c0), min(hi, (k + 1) * c0)
                    out[a - lo : b - lo] = self._chunk_rows(meta, k, layer_i)[
                        a - k * c0 : b - k * c0
                    ]
            return out
        idx = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(idx), *tail), dtype=dtype or meta.dtype)
        if len(idx) and (idx.min() < 0 or idx.max() >= meta.shape[0]):
            raise StoreError(f"store {self.path}: array {name}: row index out of range")
        ks = idx // c0
        for k in np.unique(ks):
            m = ks == k
            out[m] = self._chunk_rows(meta, int(k), layer_i)[idx[m] - int(k) * c0]
        return out

    def _read_rows(self, name: str, idx: NDArray[np.int64], layer_i: int) -> NDArray[np.float32]:
        if len(idx) and len(idx) == idx[-1] - idx[0] + 1 and np.all(np.diff(idx) == 1):
            return self._read(name, slice(int(idx[0]), int(idx[-1]) + 1), layer_i, np.float32)
        return self._read(name, idx, layer_i, np.float32)

    def _validated_offsets(self, kind: str) -> NDArray[np.int64]:
        """``token/offsets`` or ``attention/offsets``, checked against the rows' token counts."""
        if kind in self._offsets:
            return self._offsets[kind]
        name = f"{kind}/offsets"
        off = self._read(name, slice(None)).astype(np.int64)
        n = self.rows["n_tokens"].to_numpy(dtype=np.int64)
        want = np.concatenate([[0], np.cumsum(n if kind == "token" else n**2)])
        if off.shape != want.shape or not np.array_equal(off, want):
            raise StoreError(
                f"store {self.path}: array {name} does not match the token counts of "
                f"rows.parquet (offsets damaged); {REMEDY}"
            )
        data = (
            "token/hidden"
            if kind == "token"
            else f"attention/{self.manifest['extraction'].get('attentions')}"
        )
        if data in self._checker.metas and self._meta(data).shape[0] != int(want[-1]):
            raise StoreError(
                f"store {self.path}: array {data} has {self._meta(data).shape[0]:,} elements, "
                f"its offsets end at {int(want[-1]):,}; {REMEDY}"
            )
        self._offsets[kind] = off
        return off

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
        X = self._read_rows(f"sentence/{pooling}", idx, li)
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
            ext = self.manifest["extraction"]
            if ext.get("tokens") or ext.get("attentions", "none") != "none":
                raise StoreError(f"store {self.path}: tokens.parquet is missing ({p}); {REMEDY}")
            raise ConfigError(
                f"store {self.path} has no token table; re-extract with --tokens or --attentions"
            )
        df = read_table(self.path, "tokens.parquet", self.manifest, self._checker.integrity)
        check_tokens(df, self.rows, self.path)
        return df

    def row_tokens(self, row: int) -> pd.DataFrame:
        """The tokens of one row, in position order."""
        row = self._check_row(row)
        off = self._token_offsets
        return self.tokens.iloc[int(off[row]) : int(off[row + 1])].reset_index(drop=True)

    @cached_property
    def _token_offsets(self) -> NDArray[np.int64]:
        n = self.rows["n_tokens"].to_numpy(dtype=np.int64)
        return np.concatenate([[0], np.cumsum(n)]).astype(np.int64)

    def token_hidden(self, row: int, *, layer: int | None = None) -> NDArray[np.float32]:
        """Token embeddings of one row: ``[T, D]`` at ``layer``, or ``[T, n_layers, D]``."""
        self._require_tokens()
        row = self._check_row(row)
        off = self._validated_offsets("token")
        a, b = int(off[row]), int(off[row + 1])
        li = None if layer is None else self._layer_index(layer, self.layers)
        return self._read("token/hidden", slice(a, b), li, np.float32)

    def attention(self, row: int, *, layer: int) -> NDArray[np.float32]:
        """Attention of block ``layer`` (1..L) of one row: head-mean ``[T, T]`` or ``[H, T, T]``."""
        mode = self.attention_mode
        if mode == "none":
            raise ConfigError(
                f"store {self.path} has no attentions; "
                "re-extract with --attentions head-mean (or full)"
            )
        li = self._layer_index(layer, self.attention_layers, what="attention layer")
        row = self._check_row(row)
        att_off = self._validated_offsets("attention")
        n = int(self.rows["n_tokens"].iloc[row])
        block = self._read(
            f"attention/{mode}", slice(int(att_off[row]), int(att_off[row + 1])), li, np.float32
        )
        if mode == "full":
            return block.reshape(n, n, -1).transpose(2, 0, 1)
        return block.reshape(n, n)

    def nbytes_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    # ------------------------------------------------------------------ neuron statistics
    @property
    def has_neurons(self) -> bool:
        """True when the store holds feed-forward neuron statistics (``--neurons``)."""
        return isinstance(self.manifest["extraction"].get("neurons"), dict)

    @property
    def ablated(self) -> list[list[int]]:
        """``[layer, neuron]`` pairs zeroed while extracting (``--ablate``; empty if none)."""
        return [list(map(int, x)) for x in self.manifest["extraction"].get("ablate", [])]

    def neurons(self) -> Any:
        """The feed-forward neuron statistics as :class:`~xalign.store.NeuronStats`.

        Arrays ``[L, languages, F]`` float64 (``tokens``: ``[L, languages, 1]``), every chunk
        checked against its CRC-32. Raises :class:`ConfigError` when the store has none.
        """
        from xalign.store._neurons import NeuronStats

        info = self.manifest["extraction"].get("neurons")
        if not isinstance(info, dict):
            raise ConfigError(
                f"store {self.path} has no neuron statistics; re-extract with --neurons"
            )
        arrays = {}
        for stat in NEURON_STATS:
            meta = self._meta(f"neurons/{stat}")
            out = np.empty(meta.shape, dtype=np.float64)
            for coords in meta.coords():
                sl = tuple(
                    slice(c * k, min((c + 1) * k, s))
                    for c, k, s in zip(coords, meta.chunks, meta.shape, strict=True)
                )
                chunk = self._chunk(meta, coords)
                out[sl] = chunk[tuple(slice(0, x.stop - x.start) for x in sl)]
            arrays[stat] = out
        return NeuronStats(
            **arrays,
            languages=[str(x) for x in info["languages"]],
            layers=[int(x) for x in info["layers"]],
            modules=[str(x) for x in info.get("modules", [])],
            ablated=self.ablated,
            label=self.label,
        )


class StoreWriter:
    """Creates or resumes a store and writes it chunk by chunk (used by ``xalign.extract``).

    The identity (encoder, corpus fingerprint, extraction config) is checked against an existing
    store: a mismatch raises :class:`StoreMismatchError`; a partial store with the same identity
    is resumed from its last complete chunk, after checking the chunks it already holds.

    Every chunk file written through :meth:`write_rows` (or ``ensure_array(data=...)``) is
    read back and its CRC-32 logged (``integrity.log``) when :meth:`mark_done` records the
    row chunk; :meth:`finish` checks every chunk against its record and writes
    ``integrity.json``. A complete store with the same identity is verified in full: when it is
    intact the run has nothing to do (``already_complete``); when chunks or tables are damaged
    it becomes partial again with the damaged chunks deleted (``damaged``, ``repairs``), so the
    run recomputes exactly those.
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
        #: array name → axis-0 chunk indices found damaged (their files are deleted)
        self.damaged: dict[str, set[int]] = {}
        #: one line per problem found in an existing store (it is being repaired)
        self.repairs: list[str] = []
        self._records: dict[str, dict[tuple[int, ...], int]] = {}
        self._pending: dict[str, dict[tuple[int, ...], int]] = {}
        self._arrays: dict[str, Any] = {}
        self._logged = False  # True once chunks are recorded as they are written (extraction)
        self._legacy = False  # resuming/upgrading a store written without checksums
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
                old = read_manifest(p)
                identity = old.get("identity")
                diffs = _describe_mismatch(
                    identity if isinstance(identity, dict) else {}, self.identity
                )
                if diffs:
                    raise StoreMismatchError(
                        f"{p} holds a store of another model/corpus/config ({'; '.join(diffs[:3])}"
                        f"{'; ...' if len(diffs) > 3 else ''}); use another --out or --overwrite"
                    )
                self.manifest["created"] = old.get("created", self.manifest["created"])
                if old.get("status") == "complete":
                    if self._check_complete(old):
                        return
                else:
                    self._resume_partial(old)
                self.resumed = True
        p.mkdir(parents=True, exist_ok=True)
        write_json(p / MANIFEST, self.manifest)

    def _check_complete(self, old: dict[str, Any]) -> bool:
        """Verify a complete store: True when intact; else prepare to recompute the damage."""
        rep = verify_store(self.path, full=True, pairs=False)  # pairs: redone by --pairs
        if rep.ok and rep.checksums:
            self.already_complete = True
            self.manifest = old
            return True
        fatal = [
            pr
            for pr in rep.problems
            if pr.kind in ("integrity", "metadata")
            or (pr.kind == "manifest" and pr.name == "manifest.json" and "field" in pr.message)
        ]
        if fatal:
            raise StoreError(
                f"{fatal[0].message.split('; ')[0]}: this cannot be repaired in place; "
                f"rerun with --overwrite to re-extract the store"
            )
        if not rep.checksums:
            self._legacy = True
            self.repairs.append(
                f"{self.path}: format version {old.get('format_version', 1)} store without "
                "checksums: recording them now (content written before cannot be checked)"
            )
        self.repairs += [pr.message for pr in rep.problems]
        metas = {}
        for name in expected_arrays(old):
            where = self.path / ARRAYS / name / "zarr.json"
            metas[name] = ArrayMeta.parse(name, where.read_bytes(), where)
        first = next(m for n, m in metas.items() if n.startswith("sentence/"))
        self.done = set(range(first.grid[0]))
        crcs = _load_recorded(self.path, old) if not self._legacy else {}
        for pr in rep.problems:
            if pr.kind == "chunk" and pr.chunk is not None:
                self.damaged.setdefault(pr.name, set()).add(pr.chunk[0])
        for name, meta in metas.items():
            recs: dict[tuple[int, ...], int] = {}
            for coords in meta.coords():
                if coords[0] in self.damaged.get(name, ()):
                    (self.path / ARRAYS / name / meta.key(coords)).unlink(missing_ok=True)
                elif name in crcs:
                    recs[coords] = crcs[name][meta.flat(coords)]
            self._records[name] = recs
        # readers refuse the store from here until the repair finishes
        self.manifest["status"] = "partial"
        write_json(self.path / MANIFEST, self.manifest)
        (self.path / INTEGRITY).unlink(missing_ok=True)
        self._rewrite_log()
        self._write_progress()
        return False

    def _resume_partial(self, old: dict[str, Any]) -> None:
        """Resume: keep finished chunks whose files still match their logged checksums."""
        prog = self.path / PROGRESS
        if prog.is_file():
            try:
                self.done = {int(c) for c in read_json(prog).get("done_chunks", [])}
            except (ValueError, TypeError, AttributeError):
                self.done = set()  # unreadable: recompute everything
        self._records = self._load_log()
        if self.done and not self._records:
            self._legacy = True  # a partial store of format version 1
        for name, recs in self._records.items():
            for coords in list(recs):
                f = self.path / ARRAYS / name / ArrayMeta.key(coords)
                try:
                    ok = crc(f.read_bytes()) == recs[coords]
                except OSError:
                    ok = False
                if not ok:
                    f.unlink(missing_ok=True)
                    del recs[coords]
                    self.damaged.setdefault(name, set()).add(coords[0])
                    self.repairs.append(
                        f"{self.path}: array {name} chunk {ArrayMeta.key(coords)} changed "
                        "since it was written: recomputing it"
                    )
        self._rewrite_log()

    # -- integrity log (partial stores)
    def _load_log(self) -> dict[str, dict[tuple[int, ...], int]]:
        out: dict[str, dict[tuple[int, ...], int]] = {}
        log = self.path / INTEGRITY_LOG
        if not log.is_file():
            return out
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                for name, recs in entry["arrays"].items():
                    d = out.setdefault(name, {})
                    for *coords, c in recs:
                        d[tuple(int(x) for x in coords)] = int(c)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line torn by a kill: its chunk was not marked done
        return out

    def _rewrite_log(self) -> None:
        entry = {
            "chunk": None,
            "arrays": {n: [[*k, c] for k, c in r.items()] for n, r in self._records.items()},
        }
        write_text(self.path / INTEGRITY_LOG, json.dumps(entry, separators=(",", ":")) + "\n")

    def _append_log(self, chunk: int | None) -> None:
        entry = {
            "chunk": chunk,
            "arrays": {n: [[*k, c] for k, c in r.items()] for n, r in self._pending.items()},
        }
        with open(self.path / INTEGRITY_LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for name, recs in self._pending.items():
            self._records.setdefault(name, {}).update(recs)
        self._pending = {}

    def _write_progress(self) -> None:
        write_json(self.path / PROGRESS, {"done_chunks": sorted(self.done)})

    def redo(self, chunks: set[int] | list[int]) -> None:
        """Mark row chunks as not done (their arrays are recomputed by the run)."""
        chunks = set(chunks) & self.done
        if chunks:
            self.done -= chunks
            self._write_progress()

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
        """Create an array once; on resume, reuse it after checking shape and dtype.

        ``data`` (small arrays such as offsets) is written, and its checksums recorded, on
        every run, so a damaged copy is replaced.
        """
        g = self.group()
        if name in g:
            arr = g[name]
            if tuple(arr.shape) != tuple(shape) or str(arr.dtype) != dtype:
                raise StoreError(
                    f"{self.path}/{ARRAYS}/{name}: has shape {arr.shape} {arr.dtype}, expected "
                    f"{shape} {dtype}; the store is damaged, rerun with --overwrite"
                )
        else:
            chunks = tuple(max(1, min(c, s)) for c, s in zip(chunks, shape, strict=True))
            arr = g.create_array(
                name, shape=shape, chunks=chunks, dtype=dtype, compressors=None, fill_value=0
            )
        # every chunk is written, even all zeros: a missing chunk file then always means damage
        arr = arr.with_config({"write_empty_chunks": True})
        self._arrays[name] = arr
        if data is not None:
            self.write_rows(name, 0, np.asarray(data))
            self._append_log(None)
        return _RecordingArray(self, name, arr)

    def write_rows(self, name: str, lo: int, data: NDArray[Any]) -> None:
        """Write ``data`` at ``[lo : lo + len(data)]`` of an array and checksum its chunks."""
        arr = self._arrays[name]
        hi = lo + len(data)
        arr[lo:hi] = data
        self._record(name, lo, hi)

    def _record(self, name: str, lo: int, hi: int, *, missing_ok: bool = False) -> None:
        if hi <= lo:
            return
        arr = self._arrays[name]
        meta = ArrayMeta(name, tuple(arr.shape), tuple(arr.chunks), str(arr.dtype))
        pend = self._pending.setdefault(name, {})
        c0 = meta.chunks[0]
        for k in range(lo // c0, (hi - 1) // c0 + 1):
            for rest in itertools.product(*(range(g) for g in meta.grid[1:])):
                coords = (k, *rest)
                f = self.path / ARRAYS / name / meta.key(coords)
                if missing_ok and not f.is_file():
                    continue  # not written by this assignment (another layer)
                pend[coords] = crc(f.read_bytes())

    def mark_done(self, chunk: int) -> None:
        """Record a finished chunk (after its arrays are written): the resume point."""
        self._logged = True
        self._append_log(chunk)
        self.done.add(chunk)
        self._write_progress()

    def finish(self, counts: dict[str, Any], run: dict[str, Any]) -> None:
        """Check every chunk against its record, write ``integrity.json``, mark complete."""
        if self._pending:
            self._append_log(None)
        self.manifest["counts"] = counts
        self.manifest["run"] = run
        self.manifest["status"] = "complete"
        self.manifest["format_version"] = FORMAT_VERSION
        self.manifest.pop("integrity", None)
        # the digest is of the manifest as readers will parse it back
        manifest = json.loads(json.dumps(self.manifest))
        integrity = {
            "format": INTEGRITY_FORMAT,
            "algorithm": "crc32",
            "arrays": self._final_records(manifest),
            "tables": _table_records(self.path),
            "metadata": _metadata_records(self.path),
            "manifest_sha256": manifest_digest(manifest),
            "manifest": {k: v for k, v in manifest.items() if k not in ("label", "integrity")},
        }
        text = json.dumps(integrity, sort_keys=True, separators=(",", ":")) + "\n"
        write_text(self.path / INTEGRITY, text)
        import hashlib

        self.manifest["integrity"] = {
            "file": INTEGRITY,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "algorithm": "crc32",
        }
        write_json(self.path / MANIFEST, self.manifest)
        for leftover in (PROGRESS, INTEGRITY_LOG):
            (self.path / leftover).unlink(missing_ok=True)

    def _final_records(self, manifest: dict[str, Any]) -> dict[str, list[int]]:
        names = list(dict.fromkeys([*expected_arrays(manifest), *self._arrays]))
        strict = self._logged and not self._legacy
        out: dict[str, list[int]] = {}
        for name in names:
            where = self.path / ARRAYS / name / "zarr.json"
            try:
                meta = ArrayMeta.parse(name, where.read_bytes(), where)
            except FileNotFoundError:
                raise StoreError(f"{self.path}: array {name} was never created") from None
            except (OSError, ValueError) as e:
                raise StoreError(f"{self.path}: array {name}: {e}") from None
            recs = self._records.get(name, {})
            crcs = []
            for coords in meta.coords():
                f = self.path / ARRAYS / name / meta.key(coords)
                try:
                    data: bytes | None = f.read_bytes()
                except FileNotFoundError:
                    data = None
                rec = recs.get(coords)
                if rec is None and not strict:
                    if data is None:  # never written: what zarr would read is the fill, 0
                        data = bytes(meta.chunk_nbytes)
                        f.parent.mkdir(parents=True, exist_ok=True)
                        f.write_bytes(data)
                    rec = crc(data)
                if data is None or rec is None or crc(data) != rec:
                    raise StoreError(
                        f"{f}: chunk {'missing' if data is None else 'changed'} after it was "
                        "written (another process or the disk?); rerun the same command to "
                        "recompute it"
                    )
                crcs.append(rec)
            out[name] = crcs
        return out


class _RecordingArray:
    """What :meth:`StoreWriter.ensure_array` returns: a zarr array whose writes are recorded.

    Assignments go through the writer, so the checksums of the chunks they touch are kept;
    anything else (``shape``, reads) is the zarr array's.
    """

    def __init__(self, writer: StoreWriter, name: str, arr: Any) -> None:
        self._writer, self._name, self._arr = writer, name, arr

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._arr, attr)

    def __getitem__(self, key: Any) -> Any:
        return self._arr[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._arr[key] = value
        # record every chunk along the rows the key touches (all of them: simple and safe)
        first = key[0] if isinstance(key, tuple) else key
        n = self._arr.shape[0]
        if isinstance(first, slice):
            lo, hi, _ = first.indices(n)
        elif isinstance(first, int | np.integer):
            lo, hi = int(first), int(first) + 1
        else:
            lo, hi = 0, n
        self._writer._record(self._name, lo, hi, missing_ok=True)


def _load_recorded(path: Path, manifest: dict[str, Any]) -> dict[str, list[int]]:
    try:
        rec = read_json(path / INTEGRITY)
        return {k: list(v) for k, v in rec.get("arrays", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _table_records(path: Path) -> dict[str, dict[str, Any]]:
    import pyarrow.parquet as pq

    out = {}
    for name in TABLES:
        p = path / name
        if p.is_file():
            rec: dict[str, Any] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
            if name.endswith(".parquet"):
                rec["rows"] = pq.read_metadata(p).num_rows
            out[name] = rec
    return out


def _metadata_records(path: Path) -> dict[str, str]:
    import hashlib

    root = path / ARRAYS
    out = {}
    for f in sorted(root.rglob("zarr.json")):
        rel = f.relative_to(root).as_posix()
        if rel.split("/", 1)[0] == "pairs" or "/." in f"/{rel}":
            continue  # pair attention has its own record; skip temporary folders
        out[rel] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out
