"""Store integrity: what extraction records about every file it writes, and the checks on it.

When a store is finished, ``integrity.json`` records (format version 2):

- the CRC-32 of every chunk file of every array (arrays are uncompressed, so a chunk file's
  size is fixed by its metadata: ``prod(chunk_shape) * itemsize``);
- the SHA-256 of every ``zarr.json`` under ``arrays.zarr/`` (pair attention excepted: it is
  added later and verified by its own record);
- size, SHA-256 and number of rows of ``rows.parquet`` and ``tokens.parquet`` (size and
  SHA-256 of ``gold_alignments.tsv``);
- the SHA-256 of the manifest and a copy of it (without ``label`` and ``integrity``, so a
  checkpoint may be relabelled by hand): an edited manifest is reported, and the files are
  still checked against what extraction wrote.

The manifest names the file and its SHA-256 (``manifest["integrity"]``). The checks:

- **quick** (every :meth:`Store.open`): manifest fields, integrity record and manifest hash,
  table sizes and row counts (parquet footers) against the manifest counts and array shapes,
  array metadata against the manifest, and every chunk file present with its exact size;
- **full** (``python -m xalign.extract --verify``; :meth:`Store.open` too for stores of at
  most :data:`FULL_CHECK_BYTES`): also every chunk's CRC-32, every table's SHA-256 and content
  (``row`` numbering, token counts), and the token/attention offsets against the token counts.

Reads verify the CRC-32 of every chunk they read, whatever was checked at open.
A store of format version 1 has no records: quick checks apply (missing and truncated chunks
are found), content damage of the same size is not; rerunning the extraction command on it
records checksums of the present content (see ``StoreWriter``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xalign._io import sha256_file

__all__ = [
    "FULL_CHECK_BYTES",
    "INTEGRITY",
    "ArrayMeta",
    "Problem",
    "VerifyReport",
    "crc",
    "expected_arrays",
    "json_digest",
    "manifest_digest",
    "verify_store",
]

INTEGRITY = "integrity.json"
INTEGRITY_FORMAT = "xalign-integrity"
#: Stores whose arrays and tables are at most this large are fully checksummed on open.
FULL_CHECK_BYTES = 64 << 20
ARRAYS = "arrays.zarr"
TABLES = ("rows.parquet", "tokens.parquet", "gold_alignments.tsv")
REMEDY = (
    "rerun the extraction command to recompute it "
    "(`python -m xalign.extract --verify STORE` lists every problem)"
)
_BYTES_CODEC = [{"name": "bytes", "configuration": {"endian": "little"}}]
_DTYPES = {"float16": "<f2", "float32": "<f4", "float64": "<f8", "int64": "<i8"}
#: Feed-forward neuron statistics (``extraction.neurons``): ``[L, languages, F]`` float64,
#: ``tokens`` ``[L, languages, 1]`` (broadcasts against the others).
NEURON_STATS = ("active", "sum", "sumsq", "tokens")


def crc(data: bytes) -> int:
    """CRC-32 (zlib) of a chunk's bytes."""
    return zlib.crc32(data) & 0xFFFFFFFF


def json_digest(obj: dict[str, Any], *, leave_out: tuple[str, ...] = ()) -> str:
    """SHA-256 of a JSON object's content (keys sorted), leaving out the keys ``leave_out``."""
    body = {k: v for k, v in obj.items() if k not in leave_out}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's content, leaving out ``label`` and ``integrity``."""
    body = {k: v for k, v in manifest.items() if k not in ("label", "integrity")}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a store (``kind``: manifest, integrity, table, metadata, chunk)."""

    kind: str
    name: str
    message: str
    chunk: tuple[int, ...] | None = None

    def __str__(self) -> str:
        return self.message


class ArrayMeta:
    """Shape, chunking and dtype of one uncompressed zarr v3 array, from its ``zarr.json``."""

    def __init__(self, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str):
        self.name = name
        self.shape = shape
        self.chunks = chunks
        self.dtype = np.dtype(_DTYPES[dtype])
        self.grid = tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))
        self.chunk_nbytes = int(np.prod(chunks)) * self.dtype.itemsize

    @property
    def n_chunks(self) -> int:
        return int(np.prod(self.grid)) if self.grid else 1

    def coords(self) -> Iterator[tuple[int, ...]]:
        """Every chunk's grid coordinates, in C order (the order of recorded checksums)."""
        return itertools.product(*(range(g) for g in self.grid))

    def flat(self, coords: tuple[int, ...]) -> int:
        return int(np.ravel_multi_index(coords, self.grid))

    @staticmethod
    def key(coords: tuple[int, ...]) -> str:
        return "c/" + "/".join(map(str, coords))

    def describe(self, coords: tuple[int, ...]) -> str:
        """Which elements a chunk holds, for messages (``rows 1024..1535, layer index 2``)."""
        lo = coords[0] * self.chunks[0]
        hi = min(self.shape[0], lo + self.chunks[0]) - 1
        what = f"elements {lo}..{hi}"
        if self.name.startswith("neurons/"):
            return f"all layers, language index {coords[1]}" if len(coords) > 1 else "all"
        if self.name.startswith("sentence/"):
            what = f"rows {lo}..{hi}"
        elif self.name.startswith("token/hidden"):
            what = f"tokens {lo}..{hi}"
        if len(coords) > 1:
            what += f", layer index {coords[1]}"
        return what

    @classmethod
    def parse(cls, name: str, raw: bytes, where: Path) -> ArrayMeta:
        """Parse and check a ``zarr.json``; raises ValueError with what is wrong."""
        try:
            meta = json.loads(raw)
        except ValueError as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{where}: not a zarr array metadata object")
        expect = {"zarr_format": 3, "node_type": "array"}
        for k, v in expect.items():
            if meta.get(k) != v:
                raise ValueError(f"{where}: {k} is {meta.get(k)!r}, expected {v!r}")
        grid = meta.get("chunk_grid") or {}
        enc = meta.get("chunk_key_encoding") or {}
        shape = meta.get("shape")
        chunks = (grid.get("configuration") or {}).get("chunk_shape")
        dtype = meta.get("data_type")
        if (
            grid.get("name") != "regular"
            or enc.get("name") != "default"
            or (enc.get("configuration") or {}).get("separator", "/") != "/"
            or meta.get("codecs") != _BYTES_CODEC
            or meta.get("storage_transformers") not in (None, [])
            or dtype not in _DTYPES
            or not isinstance(shape, list)
            or not isinstance(chunks, list)
            or len(shape) != len(chunks)
            or not all(isinstance(x, int) and x >= 0 for x in shape)
            or not all(isinstance(x, int) and x >= 1 for x in chunks)
        ):
            raise ValueError(
                f"{where}: unexpected array metadata (xalign writes uncompressed little-endian "
                "regular chunks with '/' keys); it was edited or written by another tool"
            )
        shape, chunks = tuple(shape), tuple(chunks)
        if len(shape) >= 2 and (chunks[1] != 1 or chunks[2:] != shape[2:]):
            raise ValueError(
                f"{where}: chunk shape {list(chunks)} does not split only rows and layers "
                f"of shape {list(shape)}; it was edited"
            )
        return cls(name, shape, chunks, dtype)


def expected_arrays(manifest: dict[str, Any]) -> dict[str, tuple[str, tuple[int | None, ...]]]:
    """Array name → (dtype, shape) the manifest implies (``None``: known only from offsets)."""
    ext, enc, counts = manifest["extraction"], manifest["encoder"], manifest["counts"]
    n, nl, d = int(counts["rows"]), len(ext["layers"]), int(enc["hidden_size"])
    out: dict[str, tuple[str, tuple[int | None, ...]]] = {
        f"sentence/{p}": ("float16", (n, nl, d)) for p in ext["poolings"]
    }
    if ext.get("tokens"):
        out["token/hidden"] = ("float16", (int(counts["tokens"]), nl, d))
        out["token/offsets"] = ("int64", (n + 1,))
    mode = ext.get("attentions", "none")
    if mode != "none":
        na = len(ext.get("attention_layers", []))
        shape: tuple[int | None, ...] = (None, na)
        if mode == "full":
            shape = (None, na, int(enc["num_heads"]))
        out[f"attention/{mode}"] = ("float16", shape)
        out["attention/offsets"] = ("int64", (n + 1,))
    neurons = ext.get("neurons")
    if isinstance(neurons, dict):
        nlay = len(neurons.get("layers", []))
        g = len(neurons.get("languages", []))
        f = int(neurons.get("ffn_size", 0))
        for stat in NEURON_STATS:
            out[f"neurons/{stat}"] = ("float64", (nlay, g, 1 if stat == "tokens" else f))
    return out


def _check_manifest_fields(manifest: dict[str, Any], where: Path) -> None:
    """Raise ValueError naming the first missing or mistyped manifest field readers rely on."""

    def need(obj: Any, dotted: str, kind: type | tuple[type, ...]) -> Any:
        cur = obj
        for part in dotted.split("."):
            if not isinstance(cur, dict) or part not in cur:
                raise ValueError(f"{where}: field {dotted} is missing")
            cur = cur[part]
        if not isinstance(cur, kind) or (isinstance(cur, bool) and kind is not bool):
            raise ValueError(f"{where}: field {dotted} = {cur!r} has the wrong type")
        return cur

    need(manifest, "encoder.num_layers", int)
    need(manifest, "encoder.hidden_size", int)
    need(manifest, "encoder.name", str)
    layers = need(manifest, "extraction.layers", list)
    poolings = need(manifest, "extraction.poolings", list)
    if not layers or not all(isinstance(x, int) and not isinstance(x, bool) for x in layers):
        raise ValueError(f"{where}: field extraction.layers = {layers!r} is not a list of layers")
    if sorted(set(layers)) != layers:
        raise ValueError(f"{where}: field extraction.layers = {layers!r} is not sorted and unique")
    if not poolings or not all(isinstance(x, str) for x in poolings):
        raise ValueError(f"{where}: field extraction.poolings = {poolings!r} is not a list")
    rows = need(manifest, "counts.rows", int)
    if rows < 0:
        raise ValueError(f"{where}: field counts.rows = {rows} is negative")
    ext = manifest["extraction"]
    if ext.get("tokens") or ext.get("attentions", "none") != "none":
        need(manifest, "counts.tokens", int)
    if ext.get("attentions", "none") != "none":
        need(manifest, "extraction.attention_layers", list)


@dataclass
class VerifyReport:
    """What :func:`verify_store` found."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    chunks: int = 0
    bytes: int = 0
    seconds: float = 0.0
    checksums: bool = True
    full: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        what = (
            f"{self.chunks:,} chunks, {self.bytes / 2**20:.1f} MiB "
            f"{'checksummed' if self.checksums and self.full else 'present with their sizes'}"
        )
        if self.ok:
            lines = [f"OK {self.path}: {what} in {self.seconds:.2f} s"]
        else:
            lines = [f"DAMAGED {self.path}: {len(self.problems)} problem(s) ({what})"]
            lines += [f"  {p.message}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class Checker:
    """Runs the checks on one store folder; problems are collected, not raised."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.problems: list[Problem] = []
        self.integrity: dict[str, Any] | None = None
        self.metas: dict[str, ArrayMeta] = {}
        self.crcs: dict[str, list[int]] = {}
        self.chunks = 0
        self.bytes = 0
        self.fatal = False  # nothing below the manifest/integrity can be trusted

    def add(self, kind: str, name: str, message: str, chunk: tuple[int, ...] | None = None):
        self.problems.append(Problem(kind, name, f"store {self.path}: {message}", chunk))

    # -- manifest and integrity record
    def check_manifest(self) -> None:
        try:
            _check_manifest_fields(self.manifest, self.path / "manifest.json")
        except ValueError as e:
            self.add("manifest", "manifest.json", f"{e} (the manifest was edited or damaged)")
            self.fatal = True

    def load_integrity(self) -> None:
        version = self.manifest.get("format_version", 0)
        if not isinstance(version, int) or version < 2:
            return
        pointer = self.manifest.get("integrity")
        ipath = self.path / INTEGRITY
        if not isinstance(pointer, dict) or pointer.get("file") != INTEGRITY:
            self.add(
                "integrity",
                INTEGRITY,
                "manifest.json names no integrity record (field integrity missing or edited); "
                "the store cannot be verified: re-extract it with --overwrite",
            )
            self.fatal = True
            return
        try:
            raw = ipath.read_bytes()
        except OSError as e:
            self.add(
                "integrity",
                INTEGRITY,
                f"{ipath} cannot be read ({e.strerror or e}); the store cannot be verified: "
                "re-extract it with --overwrite",
            )
            self.fatal = True
            return
        if hashlib.sha256(raw).hexdigest() != pointer.get("sha256"):
            self.add(
                "integrity",
                INTEGRITY,
                f"{ipath} does not match the SHA-256 the manifest records (edited or damaged); "
                "re-extract the store with --overwrite",
            )
            self.fatal = True
            return
        try:
            rec = json.loads(raw)
            assert rec.get("format") == INTEGRITY_FORMAT
        except (ValueError, AssertionError, AttributeError):
            self.add("integrity", INTEGRITY, f"{ipath} is not an xalign integrity record")
            self.fatal = True
            return
        self.integrity = rec
        if manifest_digest(self.manifest) != rec.get("manifest_sha256"):
            self.add(
                "manifest",
                "manifest.json",
                "manifest.json was edited after extraction (its content no longer matches the "
                f"SHA-256 recorded in {INTEGRITY}; only 'label' may be changed): restore it, or "
                f"{REMEDY}",
            )
            kept = rec.get("manifest")
            if isinstance(kept, dict) and manifest_digest(kept) == rec.get("manifest_sha256"):
                self.manifest = kept  # check the files against what extraction wrote

    # -- tables
    def check_tables(self, *, full: bool) -> None:
        import pyarrow.parquet as pq

        counts = self.manifest["counts"]
        ext = self.manifest["extraction"]
        recorded = (self.integrity or {}).get("tables", {})
        want_rows = {"rows.parquet": int(counts["rows"])}
        if ext.get("tokens") or ext.get("attentions", "none") != "none":
            want_rows["tokens.parquet"] = int(counts["tokens"])
        for name in TABLES:
            p = self.path / name
            rec = recorded.get(name)
            if rec is None and name not in want_rows:
                continue
            if not p.is_file():
                self.add("table", name, f"{name} is missing ({p}); {REMEDY}")
                continue
            size = p.stat().st_size
            self.bytes += size
            if rec is not None and size != rec.get("size"):
                self.add(
                    "table",
                    name,
                    f"{name} has {size:,} bytes, the extraction wrote {rec.get('size'):,} "
                    f"(truncated or replaced); {REMEDY}",
                )
                continue
            if full and rec is not None and sha256_file(p) != rec.get("sha256"):
                self.add(
                    "table",
                    name,
                    f"{name} does not match the SHA-256 recorded at extraction (changed on "
                    f"disk); {REMEDY}",
                )
                continue
            if name.endswith(".parquet"):
                try:
                    n = pq.read_metadata(p).num_rows
                except Exception as e:
                    self.add(
                        "table", name, f"{name} is not a readable parquet file ({e}); {REMEDY}"
                    )
                    continue
                if name in want_rows and n != want_rows[name]:
                    what = "rows" if name == "rows.parquet" else "tokens"
                    self.add(
                        "table",
                        name,
                        f"{name} has {n:,} rows but the manifest counts {want_rows[name]:,} "
                        f"{what} (a table of another length); {REMEDY}",
                    )
        if full and not any(p.kind == "table" for p in self.problems):
            self._check_table_content()

    def _check_table_content(self) -> None:
        try:
            from xalign.store._store import check_rows, check_tokens, read_table

            rows = read_table(self.path, "rows.parquet", self.manifest, self.integrity)
            check_rows(rows, self.manifest, self.path)
            ext = self.manifest["extraction"]
            if ext.get("tokens") or ext.get("attentions", "none") != "none":
                toks = read_table(self.path, "tokens.parquet", self.manifest, self.integrity)
                check_tokens(toks, rows, self.path)
        except Exception as e:  # StoreError from the checks
            self.add("table", "rows.parquet", str(e).removeprefix(f"store {self.path}: "))

    # -- arrays
    def check_metadata(self) -> None:
        arrays_dir = self.path / ARRAYS
        recorded = (self.integrity or {}).get("metadata")
        if recorded is not None:
            for rel, digest in sorted(recorded.items()):
                p = arrays_dir / rel
                try:
                    ok = hashlib.sha256(p.read_bytes()).hexdigest() == digest
                except OSError:
                    self.add("metadata", rel, f"{ARRAYS}/{rel} is missing; {REMEDY}")
                    continue
                if not ok:
                    self.add(
                        "metadata",
                        rel,
                        f"{ARRAYS}/{rel} was edited after extraction (SHA-256 differs from the "
                        "record); re-extract the store with --overwrite",
                    )
        elif not (arrays_dir / "zarr.json").is_file():
            self.add("metadata", "zarr.json", f"{ARRAYS}/zarr.json is missing; {REMEDY}")
        for name, (dtype, shape) in expected_arrays(self.manifest).items():
            where = arrays_dir / name / "zarr.json"
            try:
                meta = ArrayMeta.parse(name, where.read_bytes(), where)
            except FileNotFoundError:
                self.add("metadata", name, f"array {name} is missing ({where}); {REMEDY}")
                continue
            except (OSError, ValueError) as e:
                self.add("metadata", name, f"array {name}: {e}")
                continue
            have = str(meta.dtype.name)
            bad = (
                have != dtype
                or len(meta.shape) != len(shape)
                or any(w is not None and h != w for h, w in zip(meta.shape, shape, strict=False))
            )
            if bad:
                want = ", ".join("?" if w is None else str(w) for w in shape)
                self.add(
                    "metadata",
                    name,
                    f"array {name} has shape {list(meta.shape)} {have}, the manifest implies "
                    f"[{want}] {dtype} (manifest counts/layers or array metadata edited); "
                    "re-extract the store with --overwrite",
                )
                continue
            self.metas[name] = meta
            if self.integrity is not None:
                rec = self.integrity.get("arrays", {}).get(name)
                if not isinstance(rec, list) or len(rec) != meta.n_chunks:
                    self.add(
                        "integrity",
                        name,
                        f"{INTEGRITY} has no checksums for array {name}; re-extract the store "
                        "with --overwrite",
                    )
                    self.metas.pop(name)
                    continue
                self.crcs[name] = rec

    def check_chunks(self, *, full: bool, names: list[str] | None = None) -> None:
        for name in names or list(self.metas):
            meta = self.metas[name]
            crcs = self.crcs.get(name)
            base = self.path / ARRAYS / name
            for coords in meta.coords():
                key = meta.key(coords)
                p = base / key
                self.chunks += 1
                where = f"array {name} chunk {key} ({meta.describe(coords)})"
                try:
                    if full:
                        data = p.read_bytes()
                        size = len(data)
                    else:
                        size = os.stat(p).st_size
                except FileNotFoundError:
                    self.add("chunk", name, f"{where} is missing ({p}); {REMEDY}", coords)
                    continue
                except OSError as e:
                    self.add("chunk", name, f"{where} cannot be read ({e.strerror}); {REMEDY}")
                    continue
                self.bytes += size
                if size != meta.chunk_nbytes:
                    self.add(
                        "chunk",
                        name,
                        f"{where} has {size:,} bytes, expected {meta.chunk_nbytes:,} "
                        f"(truncated or replaced); {REMEDY}",
                        coords,
                    )
                elif full and crcs is not None and crc(data) != crcs[meta.flat(coords)]:
                    self.add(
                        "chunk",
                        name,
                        f"{where} fails its CRC-32 checksum (changed on disk after "
                        f"extraction); {REMEDY}",
                        coords,
                    )

    def check_offsets(self) -> None:
        """Token/attention offsets against the rows' token counts (needs rows.parquet)."""
        from xalign.errors import StoreError
        from xalign.store._store import Store

        if not any(n.endswith("/offsets") for n in self.metas):
            return
        store = Store(self.path, self.manifest, checker=self)
        try:
            store._validated_offsets("token") if "token/offsets" in self.metas else None
            if "attention/offsets" in self.metas:
                store._validated_offsets("attention")
        except StoreError as e:
            self.add("chunk", "offsets", str(e).removeprefix(f"store {self.path}: "))

    def total_bytes(self) -> int:
        return sum(m.chunk_nbytes * m.n_chunks for m in self.metas.values())


def run_checks(path: Path, manifest: dict[str, Any], *, full: bool | None) -> Checker:
    """All checks of one complete store; ``full=None``: full when the store is small."""
    ch = Checker(path, manifest)
    ch.check_manifest()
    if ch.fatal:
        return ch
    ch.load_integrity()
    if ch.fatal:
        return ch
    ch.check_metadata()
    table_bytes = sum((path / t).stat().st_size for t in TABLES if (path / t).is_file())
    if full is None:
        full = ch.total_bytes() + table_bytes <= FULL_CHECK_BYTES
    ch.check_tables(full=full)
    ch.check_chunks(full=full)
    if full and not ch.problems:
        ch.check_offsets()
    return ch


def verify_store(
    path: str | os.PathLike[str], *, full: bool = True, pairs: bool = True
) -> VerifyReport:
    """Check a whole store: every chunk's checksum, every table, manifest and metadata.

    Parameters
    ----------
    path : path
        The store folder.
    full : bool
        ``False`` checks presence and sizes only (no file is read whole).
    pairs : bool
        Also check every pair-mode attention set (``pairs-A-B.json``, ``arrays.zarr/pairs/``)
        against the records its extraction wrote. The extraction's own re-check of a complete
        store leaves them out: a damaged pair set is recomputed by ``--pairs A,B``.

    Returns
    -------
    VerifyReport
        ``ok`` when nothing is wrong; ``problems`` otherwise, one line each.

    Raises
    ------
    StoreError
        ``path`` is not an xalign store (no readable manifest).
    """
    from xalign.store._store import read_manifest

    t0 = time.perf_counter()
    path = Path(path)
    manifest = read_manifest(path)
    rep = VerifyReport(path=path, full=full)
    if manifest.get("status") != "complete":
        rep.problems.append(
            Problem(
                "manifest",
                "manifest.json",
                f"store {path}: store is incomplete (status={manifest.get('status')!r}); rerun "
                "the same `python -m xalign.extract` command to finish it",
            )
        )
        rep.seconds = time.perf_counter() - t0
        return rep
    ch = run_checks(path, manifest, full=full)
    rep.problems = ch.problems
    rep.chunks, rep.bytes = ch.chunks, ch.bytes
    if pairs:
        from xalign.store._pairs import check_pair_sets

        problems, chunks, nbytes, notes = check_pair_sets(path, ch.manifest, full=full)
        rep.problems = [*rep.problems, *problems]
        rep.chunks += chunks
        rep.bytes += nbytes
        rep.notes += notes
    rep.checksums = ch.integrity is not None
    if not rep.checksums and not ch.fatal:
        rep.notes.append(
            f"format version {manifest.get('format_version', 1)}: no checksums recorded, so "
            "same-size damage cannot be found; rerun the extraction command on it to record "
            "them"
        )
    rep.seconds = time.perf_counter() - t0
    return rep
