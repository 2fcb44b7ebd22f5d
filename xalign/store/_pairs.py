"""Pair-mode attention in a store: reading the cross blocks A→B and B→A of translation pairs.

Written by :func:`xalign.extract.extract_pair_attention` (a translation pair encoded jointly);
read here so that metrics and the dashboard never import the extraction room. Layout::

    arrays.zarr/pairs/<a>-<b>/{ab,ba,ab_offsets,ba_offsets}   flat float16 blocks per layer
    pairs-<a>-<b>.parquet                                      one row per pair
    pairs-<a>-<b>.json                                         what made it (written last)

Integrity (format version 2, the same machinery as the store's, :mod:`xalign.store._integrity`):
the JSON records the CRC-32 of every chunk of the four arrays, the SHA-256 of their
``zarr.json``, size/SHA-256/row count of the table, and the SHA-256 of its own content
(``sha256``). Opening a pair set (:class:`PairAttention`) checks the JSON, the metadata, the
table size and every chunk file's presence and size; every read checks the CRC-32 of the chunks
it reads and the table's SHA-256 and content (pair numbering, block sizes against the offsets);
``python -m xalign.extract --verify STORE`` checks everything. Damage raises
:class:`~xalign.errors.StoreError` naming the store, the pair set and the file; rerunning the
extraction command with ``--pairs A,B`` recomputes the pair set. Pair sets of format version 1
(no records) open with a warning: sizes and the offsets against the table are still checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign._io import read_json
from xalign.errors import ConfigError, DataError, StoreError, StoreMismatchError
from xalign.store._integrity import ArrayMeta, Problem, crc, json_digest, sha256_file

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
#: 2: the JSON records chunk CRC-32s, metadata and table hashes and its own SHA-256;
#: 1: no records (read with a warning; sizes checked only).
PAIRS_FORMAT_VERSION = 2
#: the arrays of one pair set, in the order their records are kept
PAIR_ARRAYS = ("ab", "ba", "ab_offsets", "ba_offsets")
_TABLE_COLUMNS = ("pair", "group", "row_a", "row_b", "n_a", "n_b", "words_a", "words_b")
_WARNED_LEGACY: set[str] = set()
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


def pair_remedy(a: str, b: str) -> str:
    """What to do about a damaged pair set (recompute it)."""
    return (
        f"rerun the extraction command with --pairs {a},{b} (or "
        f"xalign.extract.extract_pair_attention(store, encoder, langs=({a!r}, {b!r}))) to "
        "recompute it"
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


# ----------------------------------------------------------------------------- records (writer)


def pair_records(arrays_dir: Path) -> dict[str, Any]:
    """CRC-32 of every chunk and SHA-256 of the metadata of a pair set's arrays, from disk.

    Called by the extraction right after it wrote the arrays (before they are swapped in).
    Every chunk must be there: a missing one raises :class:`StoreError`.
    """
    arrays: dict[str, list[int]] = {}
    metadata: dict[str, str] = {}
    for name in PAIR_ARRAYS:
        where = arrays_dir / name / "zarr.json"
        raw = where.read_bytes()
        try:
            meta = ArrayMeta.parse(name, raw, where)
        except ValueError as e:
            raise StoreError(f"{where}: {e}") from None
        crcs = []
        for coords in meta.coords():
            f = arrays_dir / name / meta.key(coords)
            try:
                data = f.read_bytes()
            except FileNotFoundError:
                raise StoreError(
                    f"{f}: chunk missing right after it was written (another process or the "
                    "disk?); rerun the same command"
                ) from None
            if len(data) != meta.chunk_nbytes:
                raise StoreError(f"{f}: chunk has {len(data):,} bytes right after it was written")
            crcs.append(crc(data))
        arrays[name] = crcs
        metadata[name] = hashlib.sha256(raw).hexdigest()
    return {"algorithm": "crc32", "arrays": arrays, "metadata": metadata}


def table_record(table_path: Path) -> dict[str, Any]:
    """Size, SHA-256 and number of rows of a written pair table."""
    import pyarrow.parquet as pq

    return {
        "file": table_path.name,
        "size": table_path.stat().st_size,
        "sha256": sha256_file(table_path),
        "rows": pq.read_metadata(table_path).num_rows,
    }


def seal(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with ``sha256``: the digest of its own content (an edit is then found)."""
    # the digest is of the record as readers will parse it back
    out = dict(json.loads(json.dumps({k: v for k, v in info.items() if k != "sha256"})))
    out["sha256"] = json_digest(out, leave_out=("sha256",))
    return out


# ----------------------------------------------------------------------------- checks


class _PairSet:
    """One pair set's files and records; checks collect problems, reads raise StoreError."""

    def __init__(self, store_path: Path, a: str, b: str) -> None:
        self.path = store_path
        self.a, self.b = a, b
        self.name = _name(a, b)
        self.arrays_dir, self.table_path, self.info_path = _files(store_path, a, b)
        self.remedy = pair_remedy(a, b)
        self.problems: list[Problem] = []
        self.info: dict[str, Any] = {}
        self.records: dict[str, Any] | None = None  # None: format 1, nothing recorded
        self.metas: dict[str, ArrayMeta] = {}
        self.crcs: dict[str, list[int]] = {}
        self.mismatch: str | None = None
        self.fatal = False
        self.chunks = 0
        self.bytes = 0

    def prefix(self) -> str:
        return f"store {self.path}: pair attention {self.name}:"

    def add(self, message: str, name: str = "") -> None:
        what = f"pairs/{self.name}" + (f"/{name}" if name else "")
        self.problems.append(Problem("pairs", what, f"{self.prefix()} {message}"))

    def error(self) -> StoreError:
        first = self.problems[0].message
        more = len(self.problems) - 1
        return StoreError(first + (f" (and {more} more problem(s))" if more else ""))

    @property
    def legacy(self) -> bool:
        return self.records is None

    # -- the JSON record
    def load_info(self, manifest: dict[str, Any] | None) -> None:
        where = self.info_path.name
        try:
            info = read_json(self.info_path)
        except OSError as e:
            self.add(f"{where} cannot be read ({e.strerror or e}); {self.remedy}")
            self.fatal = True
            return
        except ValueError as e:
            self.add(f"{where} is not valid JSON ({e}); {self.remedy}")
            self.fatal = True
            return
        if not isinstance(info, dict) or info.get("format") != PAIRS_FORMAT:
            self.add(f"{where} is not an xalign pair-attention record; {self.remedy}")
            self.fatal = True
            return
        version = info.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            self.add(f"{where}: format_version {version!r} is not a number (edited?)")
            self.fatal = True
            return
        if version > PAIRS_FORMAT_VERSION:
            self.add(
                f"{where}: pair format version {version} is newer than this xalign "
                f"({PAIRS_FORMAT_VERSION}); upgrade xalign"
            )
            self.fatal = True
            return
        if version >= 2:
            if info.get("sha256") != json_digest(info, leave_out=("sha256",)):
                self.add(
                    f"{where} was edited after extraction (its content no longer matches its "
                    f"recorded SHA-256); {self.remedy}"
                )
                self.fatal = True
                return
            rec = info.get("integrity")
            if not isinstance(rec, dict) or not all(
                isinstance(rec.get(k), dict) for k in ("arrays", "metadata", "table")
            ):
                self.add(f"{where} has no integrity record; {self.remedy}")
                self.fatal = True
                return
            self.records = rec
        problem = _info_problem(info, self.a, self.b)
        if problem:
            self.add(f"{where}: {problem} (edited or damaged); {self.remedy}")
            self.fatal = True
            return
        self.info = info
        if manifest is not None:
            corpus = manifest.get("corpus")
            fp = corpus.get("fingerprint") if isinstance(corpus, dict) else None
            if fp != info.get("corpus_fingerprint"):
                self.mismatch = (
                    f"{self.info_path}: pair attention was extracted from another corpus than "
                    f"the store now holds; {self.remedy}"
                )
                self.add(
                    f"{where} was extracted from another corpus than the store now holds; "
                    f"{self.remedy}"
                )

    @property
    def n_pairs(self) -> int:
        return int(self.info["counts"]["pairs"])

    @property
    def n_elements(self) -> int:
        return int(self.info["counts"]["elements"])

    @property
    def layers(self) -> list[int]:
        return [int(x) for x in self.info["layers"]]

    # -- arrays
    def check_arrays(self, *, full: bool) -> None:
        want = {
            "ab": ("float16", (self.n_elements, len(self.layers))),
            "ba": ("float16", (self.n_elements, len(self.layers))),
            "ab_offsets": ("int64", (self.n_pairs + 1,)),
            "ba_offsets": ("int64", (self.n_pairs + 1,)),
        }
        for name in PAIR_ARRAYS:
            where = self.arrays_dir / name / "zarr.json"
            label = f"array pairs/{self.name}/{name}"
            try:
                raw = where.read_bytes()
            except FileNotFoundError:
                self.add(f"{label} is missing ({where}); {self.remedy}", name)
                continue
            except OSError as e:
                self.add(f"{label}: {where} cannot be read ({e.strerror or e}); {self.remedy}")
                continue
            recorded = None if self.records is None else self.records["metadata"].get(name)
            if self.records is not None and hashlib.sha256(raw).hexdigest() != recorded:
                self.add(
                    f"{label} metadata ({where}) was edited after extraction (SHA-256 "
                    f"differs from the record); {self.remedy}",
                    name,
                )
                continue
            try:
                meta = ArrayMeta.parse(f"pairs/{self.name}/{name}", raw, where)
            except ValueError as e:
                if self.records is None and name.endswith("_offsets"):
                    continue  # format 1 compressed its offsets: checked against the table
                self.add(f"{label}: {e}; {self.remedy}", name)
                continue
            dtype, shape = want[name]
            if meta.shape != shape or meta.dtype.name != dtype:
                self.add(
                    f"{label} has shape {list(meta.shape)} {meta.dtype.name}, "
                    f"{self.info_path.name} implies {list(shape)} {dtype} (arrays and record "
                    f"disagree); {self.remedy}",
                    name,
                )
                continue
            if self.records is not None:
                crcs = self.records["arrays"].get(name)
                if (
                    not isinstance(crcs, list)
                    or len(crcs) != meta.n_chunks
                    or not all(isinstance(c, int) for c in crcs)
                ):
                    self.add(f"{label} has no chunk checksums in its record; {self.remedy}", name)
                    continue
                self.crcs[name] = crcs
            self.metas[name] = meta
        for name, meta in self.metas.items():
            base = self.arrays_dir / name
            crcs = self.crcs.get(name)
            for coords in meta.coords():
                p = base / meta.key(coords)
                self.chunks += 1
                what = f"array {meta.name} chunk {meta.key(coords)} ({meta.describe(coords)})"
                try:
                    if full:
                        data = p.read_bytes()
                        size = len(data)
                    else:
                        size = os.stat(p).st_size
                except FileNotFoundError:
                    self.add(f"{what} is missing ({p}); {self.remedy}", name)
                    continue
                except OSError as e:
                    self.add(f"{what} cannot be read ({e.strerror or e}); {self.remedy}", name)
                    continue
                self.bytes += size
                if size != meta.chunk_nbytes:
                    self.add(
                        f"{what} has {size:,} bytes, expected {meta.chunk_nbytes:,} (truncated "
                        f"or replaced); {self.remedy}",
                        name,
                    )
                elif full and crcs is not None and crc(data) != crcs[meta.flat(coords)]:
                    self.add(
                        f"{what} fails its CRC-32 checksum (changed on disk after extraction); "
                        f"{self.remedy}",
                        name,
                    )

    def chunk(self, name: str, coords: tuple[int, ...]) -> NDArray[Any]:
        """One chunk's values after checking its size and CRC-32 (StoreError otherwise)."""
        meta = self.metas[name]
        key = meta.key(coords)
        p = self.arrays_dir / name / key
        what = f"{self.prefix()} array {meta.name} chunk {key} ({meta.describe(coords)})"
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{what} is missing ({p}); {self.remedy}") from None
        except OSError as e:
            raise StoreError(f"{what} cannot be read ({e.strerror or e}); {self.remedy}") from None
        if len(data) != meta.chunk_nbytes:
            raise StoreError(
                f"{what} has {len(data):,} bytes, expected {meta.chunk_nbytes:,} (truncated or "
                f"replaced); {self.remedy}"
            )
        crcs = self.crcs.get(name)
        if crcs is not None and crc(data) != crcs[meta.flat(coords)]:
            raise StoreError(
                f"{what} fails its CRC-32 checksum (changed on disk after extraction); "
                f"{self.remedy}"
            )
        return np.frombuffer(data, dtype=meta.dtype).reshape(meta.chunks)

    def column(self, name: str, lo: int, hi: int, li: int) -> NDArray[np.float32]:
        """Elements ``lo..hi-1`` of ``ab`` or ``ba`` at layer index ``li``, checked."""
        meta = self.metas[name]
        if not 0 <= lo <= hi <= meta.shape[0]:
            raise StoreError(
                f"{self.prefix()} array {meta.name} has {meta.shape[0]:,} elements, asked for "
                f"{lo}..{hi - 1} (offsets and arrays disagree); {self.remedy}"
            )
        out = np.empty(hi - lo, dtype=np.float32)
        c0 = meta.chunks[0]
        if hi > lo:
            for k in range(lo // c0, (hi - 1) // c0 + 1):
                s, e = max(lo, k * c0), min(hi, (k + 1) * c0)
                out[s - lo : e - lo] = self.chunk(name, (k, li))[s - k * c0 : e - k * c0, 0]
        return out

    def stored_offsets(self, name: str) -> NDArray[np.int64]:
        if name in self.metas:
            return np.asarray(self.chunk(name, (0,)), dtype=np.int64)[: self.n_pairs + 1]
        try:  # format 1: compressed offsets, read through zarr (zstd finds most damage)
            import zarr

            arr = zarr.open_array(str(self.arrays_dir / name), mode="r", zarr_format=3)
            return np.asarray(arr[...], dtype=np.int64)
        except Exception as e:
            raise StoreError(
                f"{self.prefix()} array pairs/{self.name}/{name} cannot be read "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                f"{self.remedy}"
            ) from None

    # -- table
    def check_table_size(self) -> None:
        p = self.table_path
        if not p.is_file():
            self.add(f"{p.name} is missing ({p}); {self.remedy}", p.name)
            return
        size = p.stat().st_size
        self.bytes += size
        rec = (self.records or {}).get("table") or {}
        if self.records is not None and size != rec.get("size"):
            self.add(
                f"{p.name} has {size:,} bytes, the extraction wrote {rec.get('size')} "
                f"(truncated or replaced); {self.remedy}",
                p.name,
            )

    def read_table(self, n_rows: int | None = None) -> pd.DataFrame:
        """The pair table, checked (SHA-256, columns, numbering, block sizes); StoreError."""
        import io

        import pyarrow.parquet as pq

        p = self.table_path
        head = f"{self.prefix()} {p.name}"
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{head} is missing ({p}); {self.remedy}") from None
        except OSError as e:
            raise StoreError(f"{head} cannot be read ({e.strerror or e}); {self.remedy}") from None
        rec = (self.records or {}).get("table") or {}
        if self.records is not None and hashlib.sha256(raw).hexdigest() != rec.get("sha256"):
            raise StoreError(
                f"{head} does not match the SHA-256 recorded at extraction (changed on disk); "
                f"{self.remedy}"
            )
        try:
            df = pq.read_table(io.BytesIO(raw)).to_pandas()
        except Exception as e:
            raise StoreError(
                f"{head} is not a readable parquet file ({str(e).splitlines()[0]}); {self.remedy}"
            ) from None
        missing = [c for c in _TABLE_COLUMNS if c not in df.columns]
        if missing:
            raise StoreError(f"{head} has no column(s) {missing}; {self.remedy}")
        if len(df) != self.n_pairs:
            raise StoreError(
                f"{head} has {len(df):,} rows, {self.info_path.name} counts {self.n_pairs:,} "
                f"pairs (a table of another length); {self.remedy}"
            )
        try:
            pair = df["pair"].to_numpy(dtype=np.int64)
            n_a = df["n_a"].to_numpy(dtype=np.int64)
            n_b = df["n_b"].to_numpy(dtype=np.int64)
            rows = df[["row_a", "row_b"]].to_numpy(dtype=np.int64)
            len_a = df["words_a"].map(len).to_numpy(dtype=np.int64)
            len_b = df["words_b"].map(len).to_numpy(dtype=np.int64)
        except (TypeError, ValueError):
            raise StoreError(f"{head} has columns of the wrong type; {self.remedy}") from None
        bad = ""
        if not np.array_equal(pair, np.arange(len(df))):
            bad = f"column 'pair' is not 0..{len(df) - 1} in order (rows reordered or replaced)"
        elif n_a.min(initial=0) < 0 or n_b.min(initial=0) < 0:
            bad = "negative token counts"
        elif not (np.array_equal(len_a, n_a) and np.array_equal(len_b, n_b)):
            bad = "word lists do not match the token counts n_a, n_b"
        elif int((n_a * n_b).sum()) != self.n_elements:
            bad = (
                f"block sizes n_a×n_b sum to {int((n_a * n_b).sum()):,}, "
                f"{self.info_path.name} counts {self.n_elements:,} elements"
            )
        elif n_rows is not None and rows.size and (rows.min() < 0 or rows.max() >= n_rows):
            bad = f"row_a/row_b outside the store's {n_rows:,} rows"
        if bad:
            raise StoreError(f"{head}: {bad}; {self.remedy}")
        return df

    def offsets(self, table: pd.DataFrame) -> NDArray[np.int64]:
        """Offsets of every pair's block, from the table, checked against both stored arrays."""
        n_a = table["n_a"].to_numpy(dtype=np.int64)
        n_b = table["n_b"].to_numpy(dtype=np.int64)
        want = np.concatenate([[0], np.cumsum(n_a * n_b)]).astype(np.int64)
        for name in ("ab_offsets", "ba_offsets"):
            have = self.stored_offsets(name)
            if have.shape != want.shape or not np.array_equal(have, want):
                raise StoreError(
                    f"{self.prefix()} array pairs/{self.name}/{name} does not match the block "
                    f"sizes of {self.table_path.name} (offsets damaged); {self.remedy}"
                )
        return want

    def check_content(self, n_rows: int | None) -> None:
        """Table content and offsets (reads the table and both offset arrays)."""
        try:
            self.offsets(self.read_table(n_rows))
        except StoreError as e:
            msg = str(e).removeprefix(f"{self.prefix()} ")
            self.add(msg)


def _info_problem(info: dict[str, Any], a: str, b: str) -> str | None:
    """What is wrong with the fields readers rely on, or None."""
    if info.get("langs") != [a, b]:
        return f"field langs = {info.get('langs')!r} does not name {a}, {b}"
    layers = info.get("layers")
    if (
        not isinstance(layers, list)
        or not layers
        or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in layers)
        or len(set(layers)) != len(layers)
    ):
        return f"field layers = {layers!r} is not a list of attention layers"
    counts = info.get("counts")
    for key in ("pairs", "elements"):
        v = counts.get(key) if isinstance(counts, dict) else None
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return f"field counts.{key} = {v!r} is not a count"
    return None


def _manifest(store_path: Path) -> dict[str, Any] | None:
    mpath = store_path / "manifest.json"
    if not mpath.is_file():
        return None
    try:
        manifest = read_json(mpath)
    except (OSError, ValueError) as e:
        raise StoreError(f"{mpath}: manifest cannot be read ({e})") from None
    return manifest if isinstance(manifest, dict) else None


def _n_rows(manifest: dict[str, Any] | None) -> int | None:
    counts = (manifest or {}).get("counts")
    n = counts.get("rows") if isinstance(counts, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def check_pair_sets(
    store_path: Path, manifest: dict[str, Any] | None, *, full: bool
) -> tuple[list[Problem], int, int, list[str]]:
    """Check every pair set of a store: ``(problems, chunks, bytes, notes)``.

    Used by :func:`xalign.store.verify_store`. A pair set whose JSON record is missing (an
    interrupted run) is a note, not a problem: readers treat it as absent.
    """
    problems: list[Problem] = []
    notes: list[str] = []
    chunks = nbytes = 0
    seen: set[str] = set()
    for info_path in sorted(store_path.glob("pairs-*.json")):
        name = info_path.name.removeprefix("pairs-").removesuffix(".json")
        parts = name.split("-")
        if len(parts) != 2 or not all(parts):
            problems.append(
                Problem(
                    "pairs",
                    info_path.name,
                    f"store {store_path}: {info_path.name} does not name a pair of languages "
                    "(renamed?); delete it or rerun the extraction command with --pairs A,B",
                )
            )
            continue
        a, b = parts
        seen.add(name)
        ps = _PairSet(store_path, a, b)
        ps.load_info(manifest)
        if not ps.fatal:
            ps.check_arrays(full=full)
            ps.check_table_size()
            if full and not ps.problems:
                ps.check_content(_n_rows(manifest))
        problems += ps.problems
        chunks += ps.chunks
        nbytes += ps.bytes
        if ps.legacy and not ps.fatal:
            notes.append(
                f"pair attention {name} was written without checksums (pair format 1): only "
                f"its sizes and offsets are checked; {ps.remedy} and record them"
            )
    pairs_dir = store_path / _ARRAYS / "pairs"
    if pairs_dir.is_dir():
        for d in sorted(pairs_dir.iterdir()):
            if d.is_dir() and not d.name.startswith(".") and d.name not in seen:
                notes.append(
                    f"pair attention {d.name} is incomplete (no pairs-{d.name}.json: its run "
                    "did not finish) and is not read; rerun the extraction command with "
                    f"--pairs {d.name.replace('-', ',', 1)} to finish it"
                )
    return problems, chunks, nbytes, notes


# ----------------------------------------------------------------------------- reading


class PairAttention:
    """Read pair-mode cross-attention blocks of one store and language pair (lazily).

    Opening checks the pair set against the records its extraction wrote (the JSON's own
    SHA-256, array metadata, table size, every chunk file present with its size); every read
    checks the CRC-32 of the chunks it reads and the table's SHA-256 and content.

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
    StoreError
        The pair set is damaged: the message names the store, the pair set, the array or file,
        and what to do (rerun the extraction command with ``--pairs A,B``).

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
        manifest = _manifest(self.path)
        self._n_rows = _n_rows(manifest)
        ps = self._set = _PairSet(self.path, a, b)
        ps.load_info(manifest)
        if ps.mismatch is not None:
            raise StoreMismatchError(ps.mismatch)
        if ps.problems:
            raise ps.error()
        ps.check_arrays(full=False)
        ps.check_table_size()
        if ps.problems:
            raise ps.error()
        self.info: dict[str, Any] = ps.info
        key = f"{self.path.resolve()}::{ps.name}"
        if ps.legacy and key not in _WARNED_LEGACY:
            _WARNED_LEGACY.add(key)
            warnings.warn(
                f"store {self.path}: pair attention {ps.name} was written by an older xalign "
                "(pair format 1) without checksums: missing and truncated chunks are still "
                f"found, changed content is not; {ps.remedy} and record checksums",
                UserWarning,
                stacklevel=2,
            )

    @property
    def layers(self) -> list[int]:
        """Attention layers stored (1..L)."""
        return self._set.layers

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per pair (see the module docstring for the columns); checked on load."""
        return self._set.read_table(self._n_rows)

    def __len__(self) -> int:
        return self._set.n_pairs

    @cached_property
    def _offsets(self) -> NDArray[np.int64]:
        return self._set.offsets(self.table)

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
        ab = self._set.column("ab", s, e, li).reshape(ta, tb)
        ba = self._set.column("ba", s, e, li).reshape(tb, ta)
        return ab, ba

    def layer_blocks(
        self, layer: int
    ) -> Iterator[tuple[int, NDArray[np.float32], NDArray[np.float32]]]:
        """Yield ``(index, ab, ba)`` for every pair at one layer (every chunk read checked)."""
        li = self._layer_index(layer)
        off = self._offsets
        end = int(off[-1])
        ab_all = self._set.column("ab", 0, end, li)
        ba_all = self._set.column("ba", 0, end, li)
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
