"""What a report reads from stores: finding them, their provenance, cached projections, and
one translation pair's attention maps and word similarities."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from xalign.store import Store

__all__ = [
    "PairExample",
    "find_stores",
    "pair_example",
    "projection_points",
    "store_provenance",
]


def _scan(root: Path, max_depth: int = 5) -> list[Path]:
    from xalign.store import is_store

    found = []
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if d not in ("arrays.zarr", "projections") and d[:1] != "."
        )
        if len(here.parts) - base >= max_depth:
            dirnames[:] = []
        if "manifest.json" in filenames and is_store(here):
            found.append(here)
            dirnames[:] = []
    return found


def find_stores(
    pairs: list[tuple[str, str]], stores_root: str | os.PathLike[str] | None
) -> tuple[dict[str, Store], list[str]]:
    """The store of each checkpoint: ``pairs`` are (store path in the results, checkpoint).

    A store is looked for at its recorded path, then (with ``stores_root``) under the root
    by relative path, by folder name, and by checkpoint label. Returns the stores found and
    a note per checkpoint whose store was not found; a store that is found but incomplete or
    damaged raises :class:`~xalign.errors.StoreError` naming it and the damage.
    """
    from xalign.store import Store, is_store

    root = None
    if stores_root is not None:
        root = Path(stores_root)
        if not root.is_dir():
            raise ConfigError(f"--stores {root}: no such folder")
    scanned: list[Path] | None = None
    out: dict[str, Store] = {}
    notes: list[str] = []
    for recorded, ckpt in pairs:
        if ckpt in out:
            continue
        p = Path(recorded)
        cands = [p]
        if root is not None:
            cands += [root / p, root / p.name] if not p.is_absolute() else [root / p.name]
        hit = next((c for c in cands if c.is_dir() and is_store(c)), None)
        if hit is None and root is not None:
            if scanned is None:
                scanned = _scan(root)
            by_name = [s for s in scanned if s.name == p.name]
            hit = by_name[0] if by_name else None
            if hit is None:
                for s in scanned:
                    try:
                        if Store.open(s).label == ckpt:
                            hit = s
                            break
                    except StoreError:
                        continue
        if hit is None:
            where = f"{recorded}" + (f" or under {root}" if root is not None else "")
            notes.append(
                f"store of checkpoint {ckpt!r} not found ({where}): its cluster and attention "
                "figures are left out (pass --stores DIR)"
            )
            continue
        try:
            out[ckpt] = Store.open(hit)
        except StoreError as e:
            # a store that is there but damaged stops the report: figures drawn from the rest
            # would look complete while leaving the damage unsaid
            raise StoreError(f"store of checkpoint {ckpt!r}: {e}") from None
    return out, notes


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_provenance(store: Store, checkpoint: str) -> dict[str, Any]:
    """Identity of a store for ``provenance.json``."""
    from xalign.project import store_id

    enc = store.encoder
    return {
        "checkpoint": checkpoint,
        "path": str(store.path),
        "label": store.label,
        "store_id": store_id(store),
        "manifest_sha256": _sha256(store.path / "manifest.json"),
        "corpus_fingerprint": store.corpus.get("fingerprint"),
        "corpus": store.corpus.get("name"),
        "rows": len(store),
        "encoder": {k: enc.get(k) for k in ("name", "revision", "weights_hash", "num_layers")},
        "extraction": {
            k: store.extraction.get(k)
            for k in ("layers", "poolings", "prefix", "max_length", "tokens", "attentions")
        },
        "xalign_version": store.manifest.get("xalign_version"),
    }


def projection_points(
    stores: list[Store], *, layer: int, pooling: str, method: str
) -> tuple[list[pd.DataFrame] | None, str | None, bool]:
    """Cached 2-D points (``row, x, y, lang, text``) of each store at one layer.

    Stores fitted together (a before/after pair shares its axes) use their common fit.
    Returns (frames or None, why not, shared axes).
    """
    from xalign.project import find_fit, read_index, store_id

    indexes = [read_index(s)["entries"] for s in stores]
    fit_ids: list[str | None] = []
    for i, entries in enumerate(indexes):
        partner = store_id(stores[1 - i]) if len(stores) == 2 else None
        fit_ids.append(
            find_fit(entries, method=method, pooling=pooling, partner=partner, layer=layer)
        )
    if any(f is None for f in fit_ids):
        missing = [str(s.path) for s, f in zip(stores, fit_ids, strict=True) if f is None]
        return (
            None,
            f"no cached {method} projection of layer {layer} (pooling {pooling}) in "
            f"{', '.join(missing)}; compute it: python -m xalign.project "
            f"{' '.join(str(s.path) for s in stores)} --methods {method} --layers all "
            f"--pooling {pooling}",
            False,
        )
    shared = len(set(fit_ids)) == 1
    frames = []
    from xalign.project import load_projection

    for s, fid in zip(stores, fit_ids, strict=True):
        coords = load_projection(s, layer=layer, pooling=pooling, method=method, fit_id=fid)
        rows = s.rows
        pos = coords["row"].to_numpy(dtype=np.int64)
        frames.append(
            pd.DataFrame(
                {
                    "row": pos,
                    "x": coords["x"].to_numpy(dtype=np.float32),
                    "y": coords["y"].to_numpy(dtype=np.float32),
                    "lang": rows["lang"].to_numpy()[pos],
                    "text": rows["text"].to_numpy()[pos],
                }
            )
        )
    return frames, None, shared


@dataclass
class PairExample:
    """One translation pair of a store at one layer: attention maps and word similarities."""

    rows: tuple[int, int]
    langs: tuple[str, str]
    texts: tuple[str, str]
    layer: int
    tokens: tuple[list[str], list[str]]
    attention: tuple[np.ndarray, np.ndarray] | None
    words: tuple[list[str], list[str]] | None
    similarity: np.ndarray | None
    links: list[tuple[int, int]]


def _plotly_text(text: str) -> str:
    # plotly renders a subset of HTML in tick labels: "<s>" would become strike-through
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _token_label(tok: str) -> str:
    t = str(tok).replace("▁", "").replace("Ġ", "").replace("##", "")
    return _plotly_text(t or "▁")


def _word_labels(tokens: pd.DataFrame, text: str) -> list[str]:
    words = tokens[tokens["word"] >= 0]
    out = []
    for _, g in words.groupby("word", sort=True):
        a, b = int(g["char_start"].min()), int(g["char_end"].max())
        out.append(_plotly_text(text[a:b] if 0 <= a < b <= len(text) else g["token"].iloc[0]))
    return out


def choose_pair(store: Store, langs: list[str] | None) -> tuple[int, int] | None:
    """A short translation pair: the pivot (English when present) and the next language.

    Among groups holding both languages, the first (by group id) whose two sentences have
    6 to 14 tokens each, else the shortest pair.
    """
    rows = store.rows
    if "group" not in rows or not rows["group"].notna().any():
        return None
    order = [x for x in dict.fromkeys(rows["lang"].astype(str)) if not langs or x in langs]
    if len(order) < 2:
        return None
    a = "eng" if "eng" in order else order[0]
    b = next(x for x in order if x != a)
    ra = rows[(rows["lang"] == a) & rows["group"].notna()]
    rb = rows[(rows["lang"] == b) & rows["group"].notna()]
    ia = pd.Series(ra.index.to_numpy(), index=ra["group"].astype(str).to_numpy())
    ib = pd.Series(rb.index.to_numpy(), index=rb["group"].astype(str).to_numpy())
    ia = ia[~ia.index.duplicated()]
    ib = ib[~ib.index.duplicated()]
    common = sorted(set(ia.index) & set(ib.index))
    if not common:
        return None
    ntok = rows["n_tokens"].to_numpy()
    best = None
    for g in common:
        x, y = int(ia[g]), int(ib[g])
        if 6 <= ntok[x] <= 14 and 6 <= ntok[y] <= 14:
            return x, y
        key = (ntok[x] + ntok[y], g)
        if best is None or key < best[0]:
            best = (key, (x, y))
    return best[1] if best else None


def pair_example(store: Store, *, layer: int, langs: list[str] | None) -> PairExample | None:
    """Attention maps (head mean) and word similarities of one translation pair at ``layer``."""
    from xalign.metrics import itermax_align, merge_subwords, word_similarity

    if not (store.path / "tokens.parquet").is_file():
        return None
    pair = choose_pair(store, langs)
    if pair is None:
        return None
    ra, rb = pair
    rows = store.rows
    toks = (store.row_tokens(ra), store.row_tokens(rb))
    attention = None
    if store.attention_mode != "none" and layer in store.attention_layers:
        maps = []
        for r in pair:
            A = store.attention(r, layer=layer)
            maps.append(A.mean(axis=0) if A.ndim == 3 else A)
        attention = (maps[0], maps[1])
    words = similarity = None
    links: list[tuple[int, int]] = []
    if store.has_tokens and layer in store.layers:
        vecs = []
        for r, t in zip(pair, toks, strict=True):
            H = store.token_hidden(r, layer=layer)
            vecs.append(merge_subwords(H, [None if w < 0 else int(w) for w in t["word"]]))
        similarity = word_similarity(vecs[0], vecs[1])
        links = sorted(
            (int(i), int(j)) for i, j in itermax_align(word_similarity(vecs[0], vecs[1],
                                                                       scale="simalign"))
        )  # fmt: skip
        words = (
            _word_labels(toks[0], str(rows["text"].iloc[ra])),
            _word_labels(toks[1], str(rows["text"].iloc[rb])),
        )
    if attention is None and similarity is None:
        return None
    return PairExample(
        rows=(ra, rb),
        langs=(str(rows["lang"].iloc[ra]), str(rows["lang"].iloc[rb])),
        texts=(str(rows["text"].iloc[ra]), str(rows["text"].iloc[rb])),
        layer=layer,
        tokens=(
            [_token_label(x) for x in toks[0]["token"]],
            [_token_label(x) for x in toks[1]["token"]],
        ),
        attention=attention,
        words=words,
        similarity=similarity,
        links=links,
    )
