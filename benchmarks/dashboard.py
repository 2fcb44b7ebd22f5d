"""Dashboard server latency: a layer-slider update with 50,000 projected points per panel.

Builds two synthetic stores (before/after) over the same 50,050-row parallel corpus
(13 languages × 3,850 groups, 13 layers, 32-dim vectors with language offsets that shrink
with depth), caches their PCA projections with ``xalign.project`` (one shared fit), then
times the cluster view's callback — called directly, and through Dash's HTTP endpoint
with Flask's test client (request parsing, callback, JSON serialisation; no network):

- full render of both panels (first view, cold caches: parquet reads; then warm);
- a layer-slider move (the callback answers with a ``dash.Patch`` of coordinates), for every
  layer transition, cold (first visit of the layer) and warm;
- a click on a sentence (overlay patch) and a lasso selection (``selectedpoints`` patch).

    python benchmarks/dashboard.py [--n-groups 3850] [--repeats 3] [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LANGS = [
    "eng",
    "deu",
    "fra",
    "spa",
    "rus",
    "ell",
    "arb",
    "hin",
    "cmn_Hans",
    "jpn",
    "kor",
    "swh",
    "tur",
]
LABELS = ["food", "health", "science", "sports", "travel"]


def synthetic_store(
    path: Path,
    *,
    n_groups: int,
    langs: list[str] = LANGS,
    n_layers: int = 12,
    dim: int = 32,
    label: str = "before",
    seed: int = 0,
    shift: float = 0.0,
) -> Any:
    """A complete store of random sentence vectors: group meaning + language offset + noise.

    The language offset shrinks with depth (and with ``shift``), so layers differ visibly.
    """
    from xalign.store import Store, StoreWriter

    rng = np.random.default_rng(seed)
    n = n_groups * len(langs)
    groups = np.repeat(np.arange(n_groups), len(langs))
    lang_idx = np.tile(np.arange(len(langs)), n_groups)
    rows = pd.DataFrame(
        {
            "row": np.arange(n, dtype=np.int64),
            "id": [f"{langs[li]}:{g}" for g, li in zip(groups, lang_idx, strict=True)],
            "lang": [langs[li] for li in lang_idx],
            "lang_raw": [langs[li] for li in lang_idx],
            "text": [
                f"synthetic sentence {g} in {langs[li]} with a few words"
                for g, li in zip(groups, lang_idx, strict=True)
            ],
            "group": [f"g{g:06d}" for g in groups],
            "label": [LABELS[g % len(LABELS)] for g in groups],
            "split": "test",
            "n_tokens": np.full(n, 12, dtype=np.int64),
            "n_tokens_full": np.full(n, 12, dtype=np.int64),
            "truncated": np.zeros(n, dtype=bool),
        }
    )
    meaning = rng.normal(size=(n_groups, dim)).astype(np.float32)
    offsets = rng.normal(size=(len(langs), dim)).astype(np.float32) * 3
    layers = list(range(n_layers + 1))
    extraction = {
        "layers": layers,
        "attention_layers": [],
        "poolings": ["mean"],
        "max_length": 128,
        "prefix": "",
        "tokens": False,
        "attentions": "none",
        "dtype_disk": "float16",
        "compute_dtype": "float32",
        "autocast": False,
        "token_budget": 8192,
        "chunk_rows": 1024,
    }
    encoder = {
        "name": f"synthetic-{label}",
        "hidden_size": dim,
        "num_layers": n_layers,
        "num_heads": 4,
        "family": "encoder",
        "model_type": "synthetic",
        "revision": None,
        "weights_hash": f"synthetic-{label}-{seed}",
        "max_length": 128,
        "default_prefix": "",
    }
    corpus = {
        "name": "synthetic",
        "source": "synthetic",
        "n_rows": n,
        "languages": langs,
        "parallel": True,
        "fingerprint": f"synthetic-{n_groups}-{len(langs)}",
    }
    w = StoreWriter(
        path,
        encoder=encoder,
        encoder_identity=encoder,
        corpus=corpus,
        extraction=extraction,
        label=label,
        overwrite=True,
    )
    w.write_tables(rows, None)
    arr = w.ensure_array(
        "sentence/mean", shape=(n, len(layers), dim), chunks=(1024, 1, dim), dtype="float16"
    )
    for layer in layers:
        scale = max(0.0, 1.0 - layer / (n_layers + 1) - shift)
        X = meaning[groups] + scale * offsets[lang_idx] + 0.3 * rng.normal(size=(n, dim))
        arr[:, layer, :] = X.astype(np.float16)
    w.finish(
        {
            "rows": n,
            "tokens": int(rows["n_tokens"].sum()),
            "truncated": 0,
            "languages": {x: n_groups for x in langs},
        },
        {"seconds": 0.0},
    )
    return Store.open(path)


def _ms(values: list[float]) -> dict[str, float]:
    v = [x * 1000 for x in values]
    return {
        "median_ms": round(statistics.median(v), 1),
        "max_ms": round(max(v), 1),
        "min_ms": round(min(v), 1),
        "n": len(v),
    }


def _payload(inputs: dict[str, Any], state: Any, changed: list[str]) -> dict[str, Any]:
    outs = [
        ("clusters-a", "figure"),
        ("clusters-b", "figure"),
        ("clusters-msg", "children"),
        ("clusters-state", "data"),
    ]
    return {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in outs) + "..",
        "outputs": [{"id": i, "property": p} for i, p in outs],
        "inputs": [
            {"id": k.split(".")[0], "property": k.split(".")[1], "value": v}
            for k, v in inputs.items()
        ],
        "state": [{"id": "clusters-state", "property": "data", "value": state}],
        "changedPropIds": changed,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n-groups", type=int, default=3850, help="groups (× 13 languages = rows)")
    p.add_argument("--repeats", type=int, default=3, help="warm repeats per layer transition")
    p.add_argument("--out", default=None, help="folder for the synthetic stores (default: temp)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = p.parse_args(argv)

    from dashboards.app import create_app, update_clusters
    from xalign.project import ProjectConfig, project_stores

    tmp = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="xalign-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    synthetic_store(tmp / "before", n_groups=args.n_groups, label="before", seed=0)
    synthetic_store(tmp / "after", n_groups=args.n_groups, label="after", seed=0, shift=0.4)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    project_stores(
        ProjectConfig(
            stores=[str(tmp / "before"), str(tmp / "after")], methods=["pca"], progress=False
        )
    )
    t_project = time.perf_counter() - t
    app = create_app(str(tmp))
    cat = app._xalign_catalog
    n = len(cat.rows("before"))
    layers = cat.store("before").layers
    common = {
        "store_a": "before",
        "store_b": "after",
        "pooling": "mean",
        "method": "pca",
        "langs": None,
        "selection": None,
        "lasso": None,
    }

    def call(layer: int, state: Any, trig: set[str], **kw: Any) -> tuple[Any, float]:
        t0 = time.perf_counter()
        out = update_clusters(cat, **{**common, **kw}, layer=layer, state=state, triggered=trig)
        return out, time.perf_counter() - t0

    res: dict[str, Any] = {
        "rows_per_panel": n,
        "panels": 2,
        "layers": len(layers),
        "build_stores_s": round(t_build, 1),
        "project_pca_s": round(t_project, 1),
    }
    out, dt = call(layers[0], None, {"store-a.value", "layer.value"})
    res["full_render_cold"] = _ms([dt])
    state = out[3]
    res["full_render_warm"] = _ms(
        [call(layers[0], None, {"store-a.value"})[1] for _ in range(args.repeats)]
    )
    cold, warm = [], []
    for layer in layers[1:]:
        out, dt = call(layer, state, {"layer.value"})
        assert type(out[0]).__name__ == "Patch", "a layer move must answer with a Patch"
        cold.append(dt)
        state = out[3]
    for _ in range(args.repeats):
        for layer in layers:
            out, dt = call(layer, state, {"layer.value"})
            warm.append(dt)
            state = out[3]
    res["slider_patch_cold"] = _ms(cold)
    res["slider_patch_warm"] = _ms(warm)
    sel = {
        "store": "before",
        "row": 0,
        "id": "eng:0",
        "group": "g000000",
        "lang": "eng",
        "text": "synthetic",
    }
    res["click_patch"] = _ms(
        [call(layers[-1], state, {"selection.data"}, selection=sel)[1] for _ in range(args.repeats)]
    )
    lasso = list(range(0, n, 7))
    res["lasso_patch"] = _ms(
        [call(layers[-1], state, {"lasso.data"}, lasso=lasso)[1] for _ in range(args.repeats)]
    )

    # Through Dash's endpoint: request parsing, callback, serialisation (no network).
    client = app.server.test_client()
    client.get("/")
    client.get("/_dash-layout")
    client.get("/_dash-dependencies")
    inputs = {
        "store-a.value": "before",
        "store-b.value": "after",
        "layer.value": layers[0],
        "pooling.value": "mean",
        "method.value": "pca",
        "lang-filter.value": None,
        "selection.data": None,
        "lasso.data": None,
    }
    r = client.post("/_dash-update-component", json=_payload(inputs, None, ["store-a.value"]))
    assert r.status_code == 200, r.data[:300]
    state = r.get_json()["response"]["clusters-state"]["data"]
    http_full, http_patch, sizes = [], [], []
    for _ in range(args.repeats):
        for layer in layers:
            inputs["layer.value"] = layer
            t0 = time.perf_counter()
            r = client.post(
                "/_dash-update-component", json=_payload(inputs, state, ["layer.value"])
            )
            http_patch.append(time.perf_counter() - t0)
            assert r.status_code == 200
            body = r.get_json()
            state = body["response"]["clusters-state"]["data"]
            sizes.append(len(r.data))
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        r = client.post("/_dash-update-component", json=_payload(inputs, None, ["store-a.value"]))
        http_full.append(time.perf_counter() - t0)
        full_size = len(r.data)
    res["http_slider_patch"] = {
        **_ms(http_patch),
        "response_MB": round(statistics.median(sizes) / 2**20, 2),
    }
    res["http_full_render"] = {**_ms(http_full), "response_MB": round(full_size / 2**20, 2)}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
