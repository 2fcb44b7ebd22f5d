"""Integrity records of a store (tiny in-process models): written, checked, repaired."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from xalign.data import Corpus
from xalign.errors import ConfigError, StoreError
from xalign.extract import ExtractConfig, extract
from xalign.store import Store, StoreWriter, verify_store


def corpus(n: int = 12) -> Corpus:
    recs = []
    for g in range(n):
        recs.append({"id": f"e{g}", "lang": "eng", "text": f"the cat {g} sat here", "group": g})
        recs.append({"id": f"d{g}", "lang": "deu", "text": f"die Katze {g} sass", "group": g})
    return Corpus.from_records(recs)


def cfg(out: Path, **kw) -> ExtractConfig:
    kw = {"chunk_rows": 5, "tokens": True, "attentions": "head-mean", "progress": False, **kw}
    return ExtractConfig(out=str(out), **kw)


@pytest.fixture(scope="module")
def ref(tmp_path_factory, tiny_bert) -> Store:
    store, _ = extract(
        cfg(tmp_path_factory.mktemp("ref") / "s"), corpus=corpus(), encoder=tiny_bert
    )
    return store


def test_records_are_written_and_checked(ref):
    m = ref.manifest
    assert m["format_version"] == 2 and m["integrity"]["file"] == "integrity.json"
    rec = json.loads((ref.path / "integrity.json").read_text())
    n_chunks = 5 * 3  # 24 rows in chunks of 5, 3 layers
    assert len(rec["arrays"]["sentence/mean"]) == n_chunks
    assert rec["tables"]["rows.parquet"]["rows"] == 24
    assert not (ref.path / "progress.json").exists() and not (ref.path / "integrity.log").exists()
    rep = verify_store(ref.path)
    assert rep.ok and rep.chunks == sum(len(v) for v in rec["arrays"].values())


def test_label_may_be_edited_by_hand(ref, tmp_path):
    s = tmp_path / "s"
    shutil.copytree(ref.path, s)
    m = json.loads((s / "manifest.json").read_text())
    m["label"] = "before"
    (s / "manifest.json").write_text(json.dumps(m))
    assert Store.open(s).label == "before" and verify_store(s).ok


def test_pair_attention_keeps_the_store_verifiable(ref, tiny_bert, tmp_path):
    from xalign.extract import extract_pair_attention

    s = tmp_path / "s"
    shutil.copytree(ref.path, s)
    extract_pair_attention(s, tiny_bert, langs=("eng", "deu"))
    assert verify_store(s).ok
    Store.open(s).sentences(layer=1)


def test_resume_recomputes_a_chunk_damaged_while_interrupted(ref, tiny_bert, tmp_path, monkeypatch):
    real = StoreWriter.mark_done
    calls = {"n": 0}

    def dying(self, chunk):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        real(self, chunk)

    monkeypatch.setattr(StoreWriter, "mark_done", dying)
    out = tmp_path / "s"
    plain = {"tokens": False, "attentions": "none"}  # no chunk shared by two row chunks
    with pytest.raises(KeyboardInterrupt):
        extract(cfg(out, **plain), corpus=corpus(), encoder=tiny_bert)
    monkeypatch.setattr(StoreWriter, "mark_done", real)
    done = json.loads((out / "progress.json").read_text())["done_chunks"]
    assert done == [0, 1, 2]
    (out / "arrays.zarr/sentence/mean/c/1/0/0").write_bytes(bytes(5 * 32 * 2))  # zeros
    _, summary = extract(cfg(out, **plain), corpus=corpus(), encoder=tiny_bert)
    assert summary.resumed and any("c/1/0/0" in x for x in summary.repairs)
    assert summary.rows_computed == 24 - 10  # chunks 0 and 2 kept, 1, 3, 4 computed
    assert verify_store(out).ok
    plain_ref, _ = extract(cfg(tmp_path / "ref", **plain), corpus=corpus(), encoder=tiny_bert)
    for f in sorted((plain_ref.path / "arrays.zarr").rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (out / f.relative_to(plain_ref.path)).read_bytes(), f


def test_a_writer_that_writes_arrays_directly_gets_records(tmp_path):
    """StoreWriter used by hand (synthetic stores in tests and benchmarks) is verifiable."""
    w = StoreWriter(
        tmp_path / "s",
        encoder={"name": "synthetic", "num_layers": 1, "hidden_size": 4},
        encoder_identity={"name": "synthetic"},
        corpus={"fingerprint": "x", "n_rows": 3},
        extraction={"layers": [0, 1], "poolings": ["mean"], "tokens": False},
    )
    import pandas as pd

    w.write_tables(pd.DataFrame({"row": [0, 1, 2], "lang": ["a", "b", "a"]}), None)
    arr = w.ensure_array("sentence/mean", shape=(3, 2, 4), chunks=(2, 1, 4), dtype="float16")
    arr[:, 0, :] = np.ones((3, 4))  # layer 1 is never written: it reads as zeros
    w.finish({"rows": 3}, run={})
    st = Store.open(tmp_path / "s")
    np.testing.assert_array_equal(st.sentences(layer=0), np.ones((3, 4)))
    np.testing.assert_array_equal(st.sentences(layer=1), np.zeros((3, 4)))
    (tmp_path / "s/arrays.zarr/sentence/mean/c/1/0/0").write_bytes(bytes(16))
    with pytest.raises(StoreError, match=r"sentence/mean chunk c/1/0/0 \(rows 2\.\.2"):
        Store.open(tmp_path / "s")


def test_out_is_checked_before_the_model_loads(tmp_path, capsys):
    from xalign.extract.__main__ import main

    # a model name that cannot load: the --out error must come first
    assert main(["--model", "/no/such/model", "--out", "/proc/xalign-x", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out /proc/xalign-x") and "Traceback" not in err
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="a file stands where a store folder"):
        extract(cfg(tmp_path / "f"), corpus=corpus())
    with pytest.raises(ConfigError, match="lies inside the store"):
        Path(tmp_path / "st").mkdir()
        (tmp_path / "st/manifest.json").write_text('{"format": "xalign-store"}')
        extract(cfg(tmp_path / "st" / "inner"), corpus=corpus())


def test_verify_cli(ref, capsys):
    from xalign.extract.__main__ import main

    assert main(["--verify", str(ref.path)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {ref.path}")
    assert main(["--verify", str(ref.path), "--layers", "1"]) == 2
    assert "takes no other options (got --layers)" in capsys.readouterr().err
    assert main(["--verify", str(ref.path / "nope")]) == 2
    assert "not an xalign store" in capsys.readouterr().err


def test_reads_reject_bad_rows(ref):
    with pytest.raises(ConfigError, match="row index 99 out of range"):
        ref.attention(99, layer=1)
    with pytest.raises(ConfigError, match="row index -1 out of range"):
        ref.token_hidden(-1, layer=1)
