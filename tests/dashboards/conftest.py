"""A small real dashboard root, built once per session.

``root/before`` and ``root/after`` are two tiny BERTs (seeds 0 and 1) extracted over the same
105 rows of the bundled sample (21 groups × 5 languages, all five topics) with tokens and
head-mean attentions; ``root/results.parquet`` holds their metrics and both stores hold one
shared PCA projection. ``root/bare`` has no tokens, no attentions and no projections (the
empty states).
"""

from __future__ import annotations

from pathlib import Path

import pytest

LANGS = ["eng", "deu", "fra", "rus", "cmn_Hans"]


def small_corpus():
    from xalign.data import Corpus, load_sample

    rows = load_sample().rows
    groups = list(dict.fromkeys(rows["group"]))[::6]
    keep = rows[rows["group"].isin(groups) & rows["lang"].isin(LANGS)]
    return Corpus.from_records(keep.to_dict("records"), name="sample-small")


@pytest.fixture(scope="session")
def dash_root(tmp_path_factory) -> Path:
    from xalign.extract import ExtractConfig, extract
    from xalign.metrics import MetricsConfig, compute_metrics
    from xalign.models import tiny_encoder
    from xalign.project import ProjectConfig, project_stores

    root = tmp_path_factory.mktemp("dash-root")
    corpus = small_corpus()
    for name, seed in (("before", 0), ("after", 1)):
        extract(
            ExtractConfig(
                out=str(root / name),
                tokens=True,
                attentions="head-mean",
                pooling=["mean", "cls"],
                label=name,
                progress=False,
            ),
            corpus=corpus,
            encoder=tiny_encoder("bert", seed=seed),
        )
    extract(
        ExtractConfig(out=str(root / "bare"), label="bare", progress=False),
        corpus=corpus,
        encoder=tiny_encoder("bert", seed=0),
    )
    results = compute_metrics(
        MetricsConfig(
            stores=[str(root / "before"), str(root / "after")],
            metrics=["retrieval", "clusters", "cka"],
            bootstrap=20,
            progress=False,
        )
    )
    results.to_parquet(root / "results.parquet", index=False)
    project_stores(
        ProjectConfig(
            stores=[str(root / "before"), str(root / "after")], methods=["pca"], progress=False
        )
    )
    return root
