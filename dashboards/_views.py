"""The dashboard's computations, as plain functions of a :class:`Catalog` and the controls.

Dash callbacks in :mod:`dashboards.app` are thin wrappers around these, so tests and the
benchmark call them directly. Nothing here runs a model: it reads stores, cached
projections and results tables. Figures come from :mod:`xalign.figures`, rows of the results
table are chosen by :mod:`xalign.results`.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboards._catalog import Catalog, FitInfo
from xalign import figures as F
from xalign.errors import ConfigError, XAlignError
from xalign.results import describe_protocol, filter_protocol, metric_direction

__all__ = [
    "ClusterPanel",
    "alignment_view",
    "cluster_overlay_patch",
    "cluster_panel",
    "cluster_xy_patch",
    "metric_views",
    "neighbours",
    "neuron_views",
    "project_command",
    "selection_from_click",
]

EXTRACT_TOKENS = "--tokens"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Neighbourhood size of each retrieval scoring (None: plain cosine needs none).
SCORING_K: dict[str, int | None] = {"cosine": None, "margin": 4, "csls": 10}
MAX_K = 50
EXTRACT_ATTN = "--attentions head-mean"


def shown_path(catalog: Catalog, rel: str, display_root: str | None) -> str:
    base = display_root if display_root is not None else str(catalog.root)
    return str(Path(base) / rel) if rel != "." else base


def project_command(
    catalog: Catalog, rels: list[str], *, method: str, pooling: str, display_root: str | None
) -> str:
    """The exact ``python -m xalign.project`` command that fills an empty cluster view."""
    paths = " ".join(shlex.quote(shown_path(catalog, r, display_root)) for r in rels)
    return f"python -m xalign.project {paths} --methods {method} --layers all --pooling {pooling}"


# ---------------------------------------------------------------- clusters


@dataclass
class ClusterPanel:
    """One cluster panel: the figure (or why there is none) and what a patch needs."""

    figure: Any
    message: str | None
    fit: FitInfo | None
    langs: list[str] | None
    n_traces: int


def _selection_rows(points: pd.DataFrame, selection: dict[str, Any] | None) -> tuple[Any, Any]:
    """(anchor row, highlighted rows) of a clicked sentence in one panel's points."""
    if not selection:
        return None, None
    anchor = None
    if selection.get("id") is not None:
        hit = points.index[points["id"].astype(str) == str(selection["id"])]
        anchor = int(points["row"].iloc[hit[0]]) if len(hit) else None
    group = selection.get("group")
    if group is not None:
        rows = points.loc[points["group"].astype(str) == str(group), "row"].astype(int).tolist()
    else:
        rows = [anchor] if anchor is not None else []
    return anchor, rows


def _with_xy(points: pd.DataFrame, coords: pd.DataFrame) -> pd.DataFrame:
    p = points.copy()
    p["x"] = coords["x"].to_numpy()
    p["y"] = coords["y"].to_numpy()
    return p


def _layer_points(
    catalog: Catalog, rel: str, entry: Any, selection: dict[str, Any] | None
) -> tuple[pd.DataFrame, Any, Any]:
    """Projected points of one cached layer, with the selected sentence's rows."""
    points = _with_xy(catalog.points(rel, entry), catalog.coords(rel, entry))
    anchor, highlight = _selection_rows(points, selection)
    return points, anchor, highlight


def cluster_panel(
    catalog: Catalog,
    rel: str | None,
    *,
    layer: int,
    pooling: str,
    method: str,
    langs: list[str] | None,
    partner: str | None = None,
    selection: dict[str, Any] | None = None,
    lasso: list[int] | None = None,
    display_root: str | None = None,
    title: str | None = None,
) -> ClusterPanel:
    """The full cluster figure of one store at one layer (or an empty state saying why)."""
    if not rel:
        return ClusterPanel(F.fig_empty("choose a store"), None, None, langs, 0)
    fit = catalog.fit(rel, method=method, pooling=pooling, partner=partner)
    if fit is None:
        rels = [rel] + ([partner] if partner else [])
        cmd = project_command(
            catalog, rels, method=method, pooling=pooling, display_root=display_root
        )
        msg = f"No {method} projections (pooling {pooling}) cached in {rel}. Compute them: {cmd}"
        return ClusterPanel(F.fig_empty(f"no cached {method} projection"), msg, None, langs, 0)
    entry = fit.layers.get(int(layer))
    if entry is None:
        msg = (
            f"{rel}: layer {layer} is not in the cached {method} fit (layers {sorted(fit.layers)})"
        )
        return ClusterPanel(F.fig_empty(f"layer {layer} not projected"), msg, fit, langs, 0)
    points, anchor, highlight = _layer_points(catalog, rel, entry, selection)
    fig = F.fig_clusters(
        points,
        langs=langs,
        highlight=highlight,
        anchor=anchor,
        selected=lasso,
        ranges=fit.bounds,
        title=title,
        uirevision=f"{rel}|{method}|{pooling}",
    )
    return ClusterPanel(fig, None, fit, langs, len(fig.data))


def cluster_xy_patch(
    catalog: Catalog,
    rel: str,
    fit: FitInfo,
    *,
    layer: int,
    langs: list[str] | None,
    selection: dict[str, Any] | None,
) -> list[tuple[list[Any], list[Any]]] | None:
    """New ``(x, y)`` of every trace after a layer change (None when a full render is needed)."""
    entry = fit.layers.get(int(layer))
    if entry is None:
        return None
    points, anchor, highlight = _layer_points(catalog, rel, entry, selection)
    return F.cluster_traces_xy(points, langs=langs, highlight=highlight, anchor=anchor)


def cluster_overlay_patch(
    catalog: Catalog,
    rel: str,
    fit: FitInfo,
    *,
    layer: int,
    langs: list[str] | None,
    selection: dict[str, Any] | None,
) -> list[dict[str, Any]] | None:
    """The three overlay traces (links, translations, anchor) for a new clicked sentence."""
    entry = fit.layers.get(int(layer))
    if entry is None:
        return None
    points, anchor, highlight = _layer_points(catalog, rel, entry, selection)
    # The overlays are the last three traces of fig_clusters; building them on a one-row
    # frame of each language would be cheaper but would duplicate fig_clusters' logic.
    sub = points[
        points["row"].isin(set(highlight or []) | ({anchor} if anchor is not None else set()))
    ]
    fig = F.fig_clusters(sub, langs=langs, highlight=highlight, anchor=anchor)
    return [t.to_plotly_json() for t in fig.data[-3:]]


def _custom_row(point: Any) -> int | None:
    """The store row a plotly point carries in ``customdata`` (None when it carries none)."""
    if not isinstance(point, dict):
        return None
    cd = point.get("customdata")
    if isinstance(cd, list):
        cd = cd[0] if cd else None
    if isinstance(cd, bool) or not isinstance(cd, int | float | str):
        return None
    try:
        return int(cd)
    except (TypeError, ValueError, OverflowError):
        return None


def selection_from_click(
    catalog: Catalog, rel: str | None, click: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The clicked sentence (store row → corpus id, group, language, text) from ``clickData``."""
    if not rel or not isinstance(click, dict):
        return None
    points = click.get("points")
    if not isinstance(points, list) or not points:
        return None
    row = _custom_row(points[0])
    if row is None:
        return None
    rows = catalog.rows(rel)
    if not 0 <= row < len(rows):
        return None
    r = rows.iloc[row]
    group = r.get("group")
    return {
        "store": rel,
        "row": row,
        "id": str(r["id"]),
        "group": None if group is None or pd.isna(group) else str(group),
        "lang": str(r["lang"]),
        "text": str(r["text"]),
    }


def lasso_rows(selected: dict[str, Any] | None) -> list[int] | None:
    """Store rows of a box/lasso selection (``selectedData``), None when nothing is selected."""
    if not isinstance(selected, dict):
        return None
    points = selected.get("points")
    if not isinstance(points, list) or not points:
        return None
    rows = (_custom_row(p) for p in points)
    return sorted({r for r in rows if r is not None and r >= 0})


# ---------------------------------------------------------------- metrics


def _difference(
    d: pd.DataFrame,
    metric: str,
    before: str | None,
    after: str | None,
    langs: list[str] | None,
    direction: Any,
) -> Any:
    """After − before of one metric's rows (one protocol), or what to choose to see it."""
    ckpts = set(d["checkpoint"])
    if before and after and before != after and {before, after} <= ckpts:
        return F.fig_difference(
            d, metric=metric, before=before, after=after, langs=langs, direction=direction
        )
    return F.fig_empty(
        "choose two different checkpoints (before, after) of this results table for the "
        "difference view"
    )


def metric_views(
    catalog: Catalog,
    results_rel: str | None,
    *,
    metric: str | None,
    layer: int,
    choices: dict[str, str] | None,
    mode: str,
    heat_checkpoint: str | None,
    before: str | None,
    after: str | None,
    langs: list[str] | None = None,
) -> dict[str, Any]:
    """Metric-by-layer curves, the language × language heatmap, and the difference view."""
    empty: dict[str, Any] = {"curves": None, "heatmap": None, "difference": None, "message": None}
    if not results_rel:
        return {**empty, "message": "no results table selected"}
    df = catalog.results(results_rel)
    metric = metric or (df["metric"].iloc[0] if len(df) else None)
    if metric is None or metric not in set(df["metric"]):
        return {**empty, "message": f"metric {metric!r} is not in {results_rel}"}
    d = filter_protocol(df, metric, choices)
    direction = metric_direction(metric)
    out: dict[str, Any] = dict(empty)
    out["protocol"] = describe_protocol(d.attrs.get("protocol", {}))
    out["curves"] = F.fig_metric_by_layer(
        d,
        metric=metric,
        mode=mode,  # type: ignore[arg-type]
        langs=langs,
        direction=direction,
    )
    ckpts = list(dict.fromkeys(d["checkpoint"]))
    hc = heat_checkpoint if heat_checkpoint in ckpts else (ckpts[0] if ckpts else None)
    if d["lang2"].notna().any() and hc is not None:
        out["heatmap"] = F.fig_language_heatmap(
            d[d["checkpoint"] == hc],
            metric=metric,
            layer=layer,
            title=f"{metric} at layer {layer} · {hc}",
            direction=direction,
        )
    else:
        out["heatmap"] = F.fig_empty(f"{metric} has no language-pair values (no heatmap)")
    out["difference"] = _difference(d, metric, before, after, langs, direction)
    return out


# ---------------------------------------------------------------- neurons

#: Per-language neuron metrics the Neurons tab offers (``python -m xalign.metrics --metrics
#: neurons``), the first present being the default.
NEURON_METRICS = ("neuron_specific_count", "neuron_specific_share", "neuron_activation_prob")
NEURON_OVERLAP = "neuron_specific_jaccard"


def neuron_views(
    catalog: Catalog,
    results_rel: str | None,
    *,
    metric: str | None,
    checkpoint: str | None,
    layer: int | None,
    before: str | None,
    after: str | None,
    langs: list[str] | None = None,
) -> dict[str, Any]:
    """Language-specific neurons from a results table: a language × layer heatmap of one
    checkpoint, the overlap (Jaccard) of the languages' sets at one layer, and after − before.

    ``metric`` is one of :data:`NEURON_METRICS`; ``layer`` a block (1..L) for the overlap
    matrix (default: the block with the most language-specific neurons).
    """
    empty: dict[str, Any] = {
        "counts": None, "overlap": None, "difference": None, "message": None,
        "metrics": [], "layers": [], "checkpoints": [], "layer": None,
    }  # fmt: skip
    if not results_rel:
        return {**empty, "message": "no results table selected"}
    df = catalog.results(results_rel)
    have = [m for m in NEURON_METRICS if m in set(df["metric"])]
    if not have:
        return {
            **empty,
            "message": f"{results_rel} has no neuron statistics. Extract with --neurons, then "
            "run: python -m xalign.metrics STORE --metrics neurons",
        }
    metric = metric if metric in have else have[0]
    d = filter_protocol(df, metric)
    ckpts = list(dict.fromkeys(d["checkpoint"]))
    ck = checkpoint if checkpoint in ckpts else ckpts[0]
    direction = metric_direction(metric)
    out: dict[str, Any] = {**empty, "metrics": have, "checkpoints": ckpts}
    out["protocol"] = describe_protocol(d.attrs.get("protocol", {}))
    out["counts"] = F.fig_layer_language(
        d[d["checkpoint"] == ck],
        metric=metric,
        langs=langs,
        title=f"{metric} · {ck}",
        direction=direction,
    )
    ov = filter_protocol(df, NEURON_OVERLAP) if NEURON_OVERLAP in set(df["metric"]) else None
    if ov is not None and not ov[ov["checkpoint"] == ck].empty:
        ov = ov[ov["checkpoint"] == ck]
        if langs:
            ov = ov[ov["lang"].isin(langs) & ov["lang2"].isin(langs)]
        layers = sorted({int(x) for x in ov["layer"]})
        out["layers"] = layers
        if layer not in layers:
            per = d[(d["checkpoint"] == ck) & d["lang"].notna()].groupby("layer")["value"].sum()
            per = per[per.index.isin(layers)]
            layer = int(per.idxmax()) if len(per) else layers[-1]
        out["layer"] = layer
        out["overlap"] = F.fig_language_heatmap(
            ov,
            metric=NEURON_OVERLAP,
            layer=layer,
            title=f"overlap of language-specific sets (Jaccard) · block {layer} · {ck}",
            zmin=0.0,
            zmax=1.0,
        )
    else:
        out["overlap"] = F.fig_empty(f"no {NEURON_OVERLAP} rows for {ck}")
    out["difference"] = _difference(d, metric, before, after, langs, direction)
    return out


# ---------------------------------------------------------------- retrieval


def neighbours(
    catalog: Catalog,
    rel: str,
    *,
    row: int,
    layer: int,
    pooling: str,
    k: int = 5,
    scoring: str = "cosine",
    centering: bool = False,
    langs: list[str] | None = None,
) -> pd.DataFrame:
    """Top-``k`` neighbours of one store row in every other language, with scores.

    ``scoring``: ``"cosine"``; ``"margin"`` (ratio margin, k = 4, Artetxe & Schwenk 2019); or
    ``"csls"`` (k = 10), the formulas of :func:`xalign.metrics.margin_scores` and
    :func:`xalign.metrics.csls` between the query's language and each target language;
    ``centering`` subtracts each language's mean first. The neighbourhood means both scores
    need (each sentence's mean cosine to its nearest neighbours in the other language: the
    slow part on a large store) come from :meth:`Catalog.neighbourhood`, computed once per
    store × layer × pooling × language pair and cached, so later queries only score one row.
    Columns: ``lang, rank, row, id, text, score, gold`` (gold = same translation group);
    ``attrs["neighbourhood"]`` says how many language pairs were computed / cached and how
    long they took.
    """
    from xalign.metrics import margin_scores

    if scoring not in SCORING_K:
        raise ConfigError(f"scoring={scoring!r}: allowed values are cosine, margin, csls")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_K:
        raise ConfigError(f"k={k!r}: expected a whole number of neighbours from 1 to {MAX_K}")
    store_rows = catalog.rows(rel)
    if isinstance(row, bool) or not isinstance(row, int | np.integer):
        raise ConfigError(f"row {row!r}: expected a row number")
    if not 0 <= int(row) < len(store_rows):
        raise ConfigError(f"row {row} is out of range 0..{len(store_rows) - 1} in {rel}")
    row = int(row)
    X = catalog.vectors(rel, pooling=pooling, layer=layer)
    lang_col = store_rows["lang"].astype(str).to_numpy()
    qlang = lang_col[row]
    src = np.flatnonzero(lang_col == qlang)
    qi = int(np.searchsorted(src, row))
    group = store_rows["group"].iloc[row] if "group" in store_rows else None
    targets = [x for x in dict.fromkeys(lang_col) if x != qlang and (not langs or x in langs)]
    recs = []
    info = {"computed": 0, "cached": 0, "seconds": 0.0}
    t0 = time.perf_counter()
    for i, lang in enumerate(targets):
        tgt = np.flatnonzero(lang_col == lang)
        pairs = np.stack([np.full(len(tgt), qi), np.arange(len(tgt))], axis=1)
        # the cosine term exactly as margin_scores computes it (same normalisation, float64)
        cos = margin_scores(
            X[src], X[tgt], margin="none", pairs=pairs, center=centering, backend="numpy"
        )
        if scoring == "cosine":
            s = cos
        else:
            catalog.set_progress(
                what=f"{scoring} neighbourhoods of {rel}, layer {layer}",
                pair=f"{qlang}–{lang}",
                done=i,
                total=len(targets),
                rows=int(len(src) + len(tgt)),
                started=t0,
            )
            try:
                fwd, bwd, hit = catalog.neighbourhood(
                    rel,
                    pooling=pooling,
                    layer=layer,
                    src_lang=qlang,
                    tgt_lang=lang,
                    k=SCORING_K[scoring],
                    center=bool(centering),
                )
            finally:
                catalog.set_progress()
            info["cached" if hit else "computed"] += 1
            # margin_scores / csls with pairs (qi, j): b = (fwd[qi] + bwd[j]) / 2
            b = (fwd[qi] + bwd) / 2
            s = cos / b if scoring == "margin" else 2.0 * (cos - b)
        order = np.lexsort((np.arange(len(s)), -s))[:k]
        for rank, j in enumerate(order, start=1):
            r = int(tgt[j])
            g = store_rows["group"].iloc[r] if "group" in store_rows else None
            recs.append(
                {
                    "lang": lang,
                    "rank": rank,
                    "row": r,
                    "id": str(store_rows["id"].iloc[r]),
                    "text": str(store_rows["text"].iloc[r]),
                    "score": float(s[j]),
                    "gold": bool(group is not None and not pd.isna(group) and g == group),
                }
            )
    out = pd.DataFrame(recs, columns=["lang", "rank", "row", "id", "text", "score", "gold"])
    info["seconds"] = time.perf_counter() - t0
    out.attrs["neighbourhood"] = info
    return out


# ---------------------------------------------------------------- attention / alignment


def _word_labels(tokens: pd.DataFrame, text: str) -> list[str]:
    words = tokens[tokens["word"] >= 0]
    out = []
    for _, g in words.groupby("word", sort=True):
        a, b = int(g["char_start"].min()), int(g["char_end"].max())
        out.append(text[a:b] if 0 <= a < b <= len(text) else str(g["token"].iloc[0]))
    return out


def _gold_links(catalog: Catalog, store_path: Path, id_a: str, id_b: str) -> tuple[set, set] | None:
    """Gold links of a pair from ``gold_alignments.tsv`` in the store (if there is one).

    Columns ``id_a, id_b, links``; links as in the awesome-align gold files: ``i-j`` sure,
    ``ipj`` possible, 1-based word indices (whitespace words of each text).
    """
    p = store_path / "gold_alignments.tsv"
    if not p.is_file():
        return None
    try:
        df = pd.read_csv(catalog.check_file(p), sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise XAlignError(f"{p.name} in the store cannot be read ({e})") from e
    if not {"id_a", "id_b", "links"} <= set(df.columns):
        raise XAlignError(f"{p.name} in the store: expected the columns id_a, id_b, links")
    for swap, (a, b) in ((False, (id_a, id_b)), (True, (id_b, id_a))):
        hit = df[(df["id_a"] == a) & (df["id_b"] == b)]
        if len(hit):
            sure, possible = set(), set()
            for tok in str(hit["links"].iloc[0]).split():
                sep = "-" if "-" in tok else "p"
                try:
                    i, j = (int(v) - 1 for v in tok.split(sep))
                except ValueError:
                    raise XAlignError(
                        f"{p.name} in the store: link {tok[:40]!r} is not i-j or ipj"
                    ) from None
                link = (j, i) if swap else (i, j)
                possible.add(link)
                if sep == "-":
                    sure.add(link)
            return sure, possible
    return None


def cross_attention(
    store: Any, row_a: int, row_b: int, *, layer: int, catalog: Catalog | None = None
) -> np.ndarray | None:
    """Pair-mode cross attention A→B ``[T_a, T_b]`` (word tokens only) when stored, else None.

    Pair mode (``python -m xalign.extract ... --pairs A,B``) encodes each translation pair
    jointly and keeps the cross blocks; they are read with :class:`xalign.store.PairAttention`.
    """
    from xalign.store import PairAttention, pair_attention_exists

    rows = store.rows
    la, lb = str(rows["lang"].iloc[row_a]), str(rows["lang"].iloc[row_b])
    if not all(_SAFE_NAME.fullmatch(x) for x in (la, lb)):
        return None  # a language code is part of the pair files' names: never a path
    for a, b, swap in ((la, lb, False), (lb, la, True)):
        if not pair_attention_exists(store.path, a, b):
            continue
        if catalog is not None:
            for f in store.path.glob("pairs-*"):
                catalog.check_file(f)
        pa = PairAttention(store.path, a, b)
        if int(layer) not in pa.layers:
            return None
        t = pa.table
        ra, rb = (row_b, row_a) if swap else (row_a, row_b)
        hit = np.flatnonzero((t["row_a"].to_numpy() == ra) & (t["row_b"].to_numpy() == rb))
        if not len(hit):
            return None
        ab, ba = pa.blocks(int(hit[0]), layer=int(layer))
        return ba if swap else ab
    return None


def alignment_view(
    catalog: Catalog,
    rel: str,
    *,
    row_a: int,
    row_b: int,
    layer: int,
    head: str = "mean",
    granularity: str = "words",
    method: str = "itermax",
) -> dict[str, Any]:
    """Attention maps of both sentences, the similarity matrix with its predicted alignment,
    gold links and cross attention when present; ``messages`` say what is missing and why."""
    from xalign.metrics import argmax_align, itermax_align, merge_subwords, word_similarity

    s = catalog.store(rel)
    rows = catalog.rows(rel)
    out: dict[str, Any] = {
        "attn_a": None,
        "attn_b": None,
        "alignment": None,
        "cross": None,
        "messages": [],
    }
    for r in (row_a, row_b):
        if isinstance(r, bool) or not isinstance(r, int | np.integer) or not 0 <= r < len(rows):
            out["messages"].append(f"row {r!r} is out of range 0..{len(rows) - 1} in {rel}")
            return out
    if granularity not in ("words", "tokens"):
        raise ConfigError(f"units={granularity!r}: allowed values are words, tokens")
    if method not in ("itermax", "argmax"):
        raise ConfigError(f"alignment={method!r}: allowed values are argmax, itermax")
    if head != "mean":
        n_heads = int(s.encoder.get("num_heads", 0)) if s.attention_mode == "full" else 0
        if not (isinstance(head, str) and head.isdigit() and int(head) < n_heads):
            raise ConfigError(
                f"head={head!r}: allowed values are mean"
                + (f" and 0..{n_heads - 1}" if n_heads else " (head-mean attentions only)")
            )
    toks = {}
    if (s.path / "tokens.parquet").is_file():
        catalog.check_file(s.path / "tokens.parquet")
        toks = {r: s.row_tokens(int(r)) for r in (row_a, row_b)}
    else:
        out["messages"].append(
            f"{rel} has no token table: re-extract with {EXTRACT_TOKENS} and {EXTRACT_ATTN}"
        )
        return out
    labels = {r: [str(t) for t in toks[r]["token"]] for r in (row_a, row_b)}
    # attention maps
    if s.attention_mode == "none":
        out["messages"].append(
            f"{rel} has no attention maps: re-extract with {EXTRACT_ATTN} (or --attentions full)"
        )
    elif int(layer) not in s.attention_layers:
        out["messages"].append(
            f"layer {layer} has no attention (attention layers are {s.attention_layers}; "
            "layer 0 is the embedding output)"
        )
    else:
        for key, r in (("attn_a", row_a), ("attn_b", row_b)):
            A = s.attention(int(r), layer=int(layer))
            if A.ndim == 3:
                A = A.mean(axis=0) if head == "mean" else A[int(head)]
            lang = rows["lang"].iloc[int(r)]
            what = "head mean" if head == "mean" else f"head {head}"
            out[key] = F.fig_attention(A, labels[r], title=f"{lang} · layer {layer} · {what}")
        X = cross_attention(s, int(row_a), int(row_b), layer=int(layer), catalog=catalog)
        if X is not None:
            # pair-mode blocks hold word tokens only: label them with the non-special tokens
            content = {
                r: [lab for lab, sp in zip(labels[r], toks[r]["special"], strict=True) if not sp]
                for r in (row_a, row_b)
            }
            if X.shape != (len(content[row_a]), len(content[row_b])):
                content = {
                    r: [str(i) for i in range(n)]
                    for r, n in zip((row_a, row_b), X.shape, strict=True)
                }
            out["cross"] = F.fig_attention(
                X, content[row_a], content[row_b], title=f"cross attention A→B · layer {layer}"
            )
    # embedding similarity + alignment
    if not s.has_tokens:
        out["messages"].append(
            f"{rel} has no token embeddings (needed for the similarity matrix): re-extract "
            f"with {EXTRACT_TOKENS}"
        )
        return out
    if int(layer) not in s.layers:
        out["messages"].append(f"layer {layer} is not stored in {rel}")
        return out
    vec, lab = {}, {}
    for r in (row_a, row_b):
        H = s.token_hidden(int(r), layer=int(layer))
        t = toks[r]
        if granularity == "words":
            ids = [None if w < 0 else int(w) for w in t["word"]]
            vec[r] = merge_subwords(H, ids)
            lab[r] = _word_labels(t, str(rows["text"].iloc[int(r)]))
        else:
            keep = ~t["special"].astype(bool).to_numpy()
            vec[r] = H[keep]
            lab[r] = [str(x) for x in t["token"][keep]]
    S = word_similarity(vec[row_a], vec[row_b])
    pred = itermax_align((S + 1.0) / 2.0) if method == "itermax" else argmax_align(S)
    sure: set = set()
    possible: set = set()
    if granularity == "words":
        gold = _gold_links(
            catalog, s.path, str(rows["id"].iloc[int(row_a)]), str(rows["id"].iloc[int(row_b)])
        )
        if gold is not None:
            sure, possible = gold
    out["alignment"] = F.fig_alignment(
        S,
        lab[row_a],
        lab[row_b],
        predicted=pred,
        gold_sure=sure,
        gold_possible=possible - sure,
        title=f"{granularity} · layer {layer} · {method}",
    )
    out["links"] = sorted(pred)
    return out
