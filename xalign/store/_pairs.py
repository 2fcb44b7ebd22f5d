"""Pair-mode attention in a store: reading the cross blocks A→B and B→A of translation pairs.

Written by :func:`xalign.extract.extract_pair_attention` (a translation pair encoded jointly);
read here so that metrics and the dashboard never import the extraction room. Layout::

    arrays.zarr/pairs/<a>-<b>/{ab,ba,ab_offsets,ba_offsets}   flat float16 blocks per layer
    pairs-<a>-<b>.parquet                                      one row per pair
    pairs-<a>-<b>.json                                         what made it (written last)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign._io import read_json
from xalign.errors import ConfigError, DataError, StoreError, StoreMismatchError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "PAIRS_FORMAT",
    "PairAttention",
    "pair_attention_exists",
    "parallel_rows",
    "read_pair_attention",
    "resolve_pair_langs",
]

PAIRS_FORMAT = "xalign-pairs"
PAIRS_FORMAT_VERSION = 1
_ARRAYS = "arrays.zarr"
_CHUNK = 1 << 16
_CHUNK_PAIRS = 256


def _name(a: str, b: str) -> str:
    return f"{a}-{b}"


def _files(store_path: Path, a: str, b: str) -> tuple[Path, Path, Path]:
    name = _name(a, b)
    return (
        store_path / _ARRAYS / "pairs" / name,
        store_path / f"pairs-{name}.parquet",
        store_path / f"pairs-{name}.json",
    )


def pair_attention_exists(store_path: str | os.PathLike[str], a: str, b: str) -> bool:
    """True when pair-mode attention for languages ``a``, ``b`` is complete in the store."""
    return _files(Path(store_path), a, b)[2].is_file()


# ----------------------------------------------------------------------------- languages


def resolve_pair_langs(
    rows: pd.DataFrame, langs: Sequence[str] | None, where: object
) -> tuple[str, str]:
    """Two normalised language codes of ``rows`` (raw codes accepted); None = the only two."""
    stored = list(dict.fromkeys(rows["lang"]))
    if langs is None:
        if len(stored) != 2:
            raise ConfigError(
                f"store {where} holds {len(stored)} languages ({', '.join(stored)}); "
                "name the pair with langs=(a, b)"
            )
        return stored[0], stored[1]
    langs = list(langs)
    if len(langs) != 2 or langs[0] == langs[1]:
        raise ConfigError(f"langs={langs!r}: expected two different languages (a, b)")
    raw_to_norm = dict(zip(rows["lang_raw"], rows["lang"], strict=True))
    out = []
    for x in langs:
        if x in stored:
            out.append(x)
        elif x in raw_to_norm:
            out.append(raw_to_norm[x])
        else:
            raise ConfigError(f"language {x!r} not in store {where}; stored: {', '.join(stored)}")
    return out[0], out[1]


def parallel_rows(rows: pd.DataFrame, a: str, b: str, where: object) -> pd.DataFrame:
    """``group, row_a, row_b`` for every group with a row in both languages, by ``row_a``."""
    ra = rows.loc[(rows["lang"] == a) & rows["group"].notna(), ["group", "row"]]
    rb = rows.loc[(rows["lang"] == b) & rows["group"].notna(), ["group", "row"]]
    pairs = ra.merge(rb, on="group", suffixes=("_a", "_b")).sort_values("row_a")
    if pairs.empty:
        raise DataError(
            f"no group has rows in both {a} and {b}; pair mode needs a parallel corpus",
            path=where,
        )
    return pairs.reset_index(drop=True)


# ----------------------------------------------------------------------------- reading


class PairAttention:
    """Read pair-mode cross-attention blocks of one store and language pair (lazily).

    Parameters
    ----------
    store_path : path
        The store folder (no ``Store`` object needed).
    a, b : str
        The normalised language codes the blocks were extracted for, in that order.

    Raises
    ------
    ConfigError
        Nothing extracted for this pair (the message names :func:`extract_pair_attention`).
    StoreMismatchError
        The store was re-made from another corpus or encoder since.

    Examples
    --------
    On a store extracted with ``--pairs eng,fra``::

        pa = PairAttention("runs/wpt-e5", "eng", "fra")
        ab, ba = pa.blocks(0, layer=8)
    """

    def __init__(self, store_path: str | os.PathLike[str], a: str, b: str) -> None:
        self.path = Path(store_path)
        self.langs = (a, b)
        self._arrays, self._table_path, info_path = _files(self.path, a, b)
        if not info_path.is_file():
            raise ConfigError(
                f"store {self.path} has no pair attention for {_name(a, b)}; run "
                f"xalign.extract.extract_pair_attention(store, encoder, langs=({a!r}, {b!r})) "
                "(python -m xalign.extract --pairs) first"
            )
        self.info: dict[str, Any] = read_json(info_path)
        manifest_path = self.path / "manifest.json"
        if manifest_path.is_file():
            manifest = read_json(manifest_path)
            fp = manifest.get("corpus", {}).get("fingerprint")
            if fp != self.info.get("corpus_fingerprint"):
                raise StoreMismatchError(
                    f"{info_path}: pair attention was extracted from another corpus than the "
                    "store now holds; rerun extract_pair_attention"
                )

    @property
    def layers(self) -> list[int]:
        """Attention layers stored (1..L)."""
        return [int(x) for x in self.info["layers"]]

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per pair (see the module docstring for the columns)."""
        return pd.read_parquet(self._table_path)

    def __len__(self) -> int:
        return int(self.info["counts"]["pairs"])

    @cached_property
    def _group(self) -> Any:
        import zarr

        try:
            return zarr.open_group(str(self._arrays), mode="r", zarr_format=3)
        except Exception as e:
            raise StoreError(
                f"{self._arrays}: pair attention arrays are missing or damaged ({e}); "
                "rerun extract_pair_attention"
            ) from None

    @cached_property
    def _offsets(self) -> NDArray[np.int64]:
        return np.asarray(self._group["ab_offsets"][...], dtype=np.int64)

    def _layer_index(self, layer: int) -> int:
        if layer not in self.layers:
            raise ConfigError(
                f"attention layer {layer} has no pair attention in store {self.path} "
                f"(stored: {self.layers}); rerun extract_pair_attention with it"
            )
        return self.layers.index(layer)

    def index_of(self, group: str) -> int:
        """The pair index of a corpus group."""
        hit = np.flatnonzero(self.table["group"].to_numpy() == str(group))
        if not len(hit):
            raise ConfigError(f"group {group!r} has no pair attention in store {self.path}")
        return int(hit[0])

    def _shape(self, i: int) -> tuple[int, int]:
        row = self.table.iloc[i]
        return int(row["n_a"]), int(row["n_b"])

    def blocks(self, index: int, *, layer: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(ab [T_a, T_b], ba [T_b, T_a])`` of pair ``index`` at attention layer ``layer``."""
        if not 0 <= index < len(self):
            raise ConfigError(f"pair index {index} out of range 0..{len(self) - 1}")
        li = self._layer_index(layer)
        s, e = int(self._offsets[index]), int(self._offsets[index + 1])
        ta, tb = self._shape(index)
        ab = np.asarray(self._group["ab"][s:e, li], dtype=np.float32).reshape(ta, tb)
        ba = np.asarray(self._group["ba"][s:e, li], dtype=np.float32).reshape(tb, ta)
        return ab, ba

    def layer_blocks(
        self, layer: int
    ) -> Iterator[tuple[int, NDArray[np.float32], NDArray[np.float32]]]:
        """Yield ``(index, ab, ba)`` for every pair at one layer (one read per array)."""
        li = self._layer_index(layer)
        ab_all = np.asarray(self._group["ab"][:, li], dtype=np.float32)
        ba_all = np.asarray(self._group["ba"][:, li], dtype=np.float32)
        off = self._offsets
        n_a = self.table["n_a"].to_numpy()
        n_b = self.table["n_b"].to_numpy()
        for i in range(len(self)):
            s, e = int(off[i]), int(off[i + 1])
            yield (
                i,
                ab_all[s:e].reshape(int(n_a[i]), int(n_b[i])),
                ba_all[s:e].reshape(int(n_b[i]), int(n_a[i])),
            )


def read_pair_attention(
    store_path: str | os.PathLike[str],
    a: str,
    b: str,
    *,
    group: str | None = None,
    index: int | None = None,
    layer: int,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
    """Cross-attention blocks of one translation pair: ``(ab, ba, words_a, words_b)``.

    ``ab`` is ``[T_a, T_b]`` (rows: *a*'s word tokens attending to *b*'s), ``ba`` is
    ``[T_b, T_a]``, head mean, float32; ``words_a``/``words_b`` give each row's/column's
    whitespace word index in its sentence. Give exactly one of ``group`` and ``index``.

    Examples
    --------
    On a store extracted with ``--pairs eng,fra``::

        ab, ba, wa, wb = read_pair_attention("runs/wpt-e5", "eng", "fra", group="en-fr:0", layer=8)
    """
    if (group is None) == (index is None):
        raise ConfigError("read_pair_attention: give exactly one of group= and index=")
    pa = PairAttention(store_path, a, b)
    i = pa.index_of(group) if group is not None else int(index)  # type: ignore[arg-type]
    ab, ba = pa.blocks(i, layer=layer)
    row = pa.table.iloc[i]
    return (
        ab,
        ba,
        np.asarray(row["words_a"], dtype=np.int64),
        np.asarray(row["words_b"], dtype=np.int64),
    )
