"""The Ray Data engine on a local 2-CPU Ray cluster: the merged store equals a local run's.

Marked slow (Ray starts worker processes that import torch), but run by ``make test``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xalign.data import Corpus
from xalign.errors import ConfigError, StoreError
from xalign.extract import ExtractConfig, extract
from xalign.extract.__main__ import main as extract_main
from xalign.store import Store

ray = pytest.importorskip("ray", reason="ray[data] not installed (pip install 'xalign[scale]')")

pytestmark = pytest.mark.slow

TEXTS = [
    "The cat sleeps on the warm mat.",
    "Rain again today.",
    "We walked to the old harbour at dawn, long before the market opened.",
    "Die Katze schläft auf der warmen Matte.",
    "Heute regnet es wieder.",
    "Кошка спит на тёплом коврике.",
    "黎明时我们走到了老港口。",
]


def corpus(n: int = 45) -> Corpus:
    recs = [
        {"id": f"r{i}", "lang": ("eng", "deu", "rus")[i % 3], "text": f"{TEXTS[i % 7]} {i}"}
        for i in range(n)
    ]
    return Corpus.from_records(recs, name="ray-test")


@pytest.fixture(scope="module")
def cluster():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=128 * 2**20,
    )
    yield
    ray.shutdown()


def opts(model: Path, out: Path, **kw) -> dict:
    base = dict(
        model=str(model),
        out=str(out),
        device="cpu",
        pooling=["mean", "cls"],
        tokens=True,
        attentions="head-mean",
        chunk_rows=8,
        token_budget=64,
        progress=False,
    )
    base.update(kw)
    return base


def arrays(path: Path) -> dict[str, np.ndarray]:
    import zarr

    g = zarr.open_group(str(path / "arrays.zarr"), mode="r")
    out = {}

    def walk(group, prefix=""):
        for name, item in group.members():
            if isinstance(item, zarr.Group):
                walk(item, f"{prefix}{name}/")
            else:
                out[f"{prefix}{name}"] = item[...]

    walk(g)
    return out


def test_ray_store_equals_local_store(cluster, tiny_bert_dir, tmp_path):
    table = tmp_path / "corpus.tsv"
    corpus().rows[["id", "lang", "text"]].to_csv(table, sep="\t", index=False)
    argv = [
        "--model", str(tiny_bert_dir), "--data", f"tsv:{table}", "--device", "cpu",
        "--pooling", "mean,cls", "--tokens", "--attentions", "head-mean", "--chunk-rows", "8",
        "--token-budget", "64", "--no-progress",
    ]  # fmt: skip
    assert extract_main([*argv, "--out", str(tmp_path / "local")]) == 0
    assert (
        extract_main([*argv, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"])
        == 0
    )
    local = Store.open(tmp_path / "local")
    remote = Store.open(tmp_path / "ray")
    a, b = arrays(local.path), arrays(remote.path)
    assert sorted(a) == sorted(b) and len(a) >= 5  # sentence x2, token hidden+offsets, attention
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert np.array_equal(a[name], b[name]), f"{name} differs between engines"
    assert remote.manifest["identity"] == local.manifest["identity"]
    assert remote.manifest["run"]["engine"] == "ray"
    assert remote.manifest["run"]["rows_computed"] == 45
    pd.testing.assert_frame_equal(local.rows, remote.rows)
    pd.testing.assert_frame_equal(local.tokens, remote.tokens)
    assert not (remote.path / "shards").exists()
    assert json.loads((remote.path / "config.json").read_text())["engine"] == "ray"


def test_leftover_shard_is_merged_not_recomputed(cluster, tiny_bert_dir, tmp_path):
    from xalign.extract import (
        compute_chunk,
        load_extract_encoder,
        prepare_extract,
        read_shard,
        shard_path,
        write_shard,
    )

    c = corpus(24)
    cfg = ExtractConfig(**opts(tiny_bert_dir, tmp_path / "s", engine="ray", workers=1))
    encoder = load_extract_encoder(cfg, device="cpu")
    # as an interrupted run leaves it: arrays, no chunk done
    plan = prepare_extract(cfg, c, encoder)
    a, b = plan.bounds(1)
    computed = compute_chunk(plan.spec, plan.spec.runner(encoder), plan.texts[a:b])
    marked = {k: (v * 0 + 1).astype(v.dtype) for k, v in computed.items()}  # recognisable
    write_shard(shard_path(plan.writer.path, 1), 1, (a, b), marked)
    assert read_shard(shard_path(plan.writer.path, 1))[1] == (a, b)

    store, summary = extract(cfg, corpus=c)
    assert summary.resumed and summary.rows == 24
    got = store.sentences(layer=store.layers[-1])
    assert np.all(got[a:b] == 1.0)  # the shard's values, so chunk 1 was not recomputed
    assert not np.any(got[:a] == 1.0) and not np.any(got[b:] == 1.0)
    assert np.array_equal(got[a:b], np.ones_like(got[a:b]))


def test_gpus_per_worker_on_a_cpu_cluster_is_refused(cluster, tiny_bert_dir, tmp_path):
    cfg = ExtractConfig(**opts(tiny_bert_dir, tmp_path / "g", engine="ray", gpus_per_worker=1))
    with pytest.raises(ConfigError, match="no GPUs"):
        extract(cfg, corpus=corpus(8))


def test_engine_options_are_checked():
    with pytest.raises(ConfigError, match="--engine 'spark'"):
        ExtractConfig(engine="spark")
    with pytest.raises(ConfigError, match="--engine ray only"):
        ExtractConfig(workers=2)
    with pytest.raises(ConfigError, match="local engine only"):
        ExtractConfig(engine="ray", pairs=["eng", "deu"])
    with pytest.raises(ConfigError, match="--workers 0"):
        ExtractConfig(engine="ray", workers=0)


def test_damaged_shard_names_the_file(tmp_path):
    from xalign.scale import read_shard

    bad = tmp_path / "chunk-000003.safetensors"
    bad.write_bytes(b"\x00\x01 not a shard")
    with pytest.raises(StoreError, match=r"chunk-000003\.safetensors: not a readable xalign shard"):
        read_shard(bad)


def test_missing_ray_names_the_extra(monkeypatch, tiny_bert_dir, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    cfg = ExtractConfig(**opts(tiny_bert_dir, tmp_path / "m", engine="ray"))
    with pytest.raises(ImportError, match=r"pip install 'xalign\[scale\]'"):
        extract(cfg, corpus=corpus(8))
