"""A real e5-small store, damaged in many ways: every reader must stop with a clear error.

One store is extracted once (3 languages, tokens and head-mean attentions, 3 row chunks). Each
case copies it, damages the copy, and checks the Store API, ``python -m xalign.metrics``,
``python -m xalign.project``, ``python -m xalign.report`` and the dashboard's data loading:
each names the store and what is damaged, and none returns numbers. Rerunning the extraction
command then recomputes the damage (or says to use --overwrite), and the result is
byte-identical to the intact store.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from xalign.errors import StoreError
from xalign.extract import ExtractConfig, extract
from xalign.store import Store, verify_store

LANGS = ("eng", "deu", "fra")
CHUNK = "arrays.zarr/sentence/mean/c/1/2/0"


def _cfg(out: Path) -> ExtractConfig:
    return ExtractConfig(
        out=str(out),
        langs=list(LANGS),
        limit_per_lang=6,
        tokens=True,
        attentions="head-mean",
        chunk_rows=8,
        progress=False,
        device="cpu",
    )


@pytest.fixture(scope="module")
def intact(tmp_path_factory, e5_small) -> Path:
    out = tmp_path_factory.mktemp("rel") / "e5"
    extract(_cfg(out), encoder=e5_small)
    return out


@pytest.fixture(scope="module")
def results(intact, tmp_path_factory) -> Path:
    from xalign.metrics.__main__ import main

    out = tmp_path_factory.mktemp("res") / "results.parquet"
    assert main([str(intact), "--metrics", "isotropy", "--out", str(out), "--no-progress"]) == 0
    return out


# ----------------------------------------------------------------------------- corruptions


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def _garbage(p: Path) -> None:
    n = p.stat().st_size
    p.write_bytes(np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes())


def _shorter_rows(s: Path) -> None:
    import pandas as pd

    df = pd.read_parquet(s / "rows.parquet")
    df.iloc[:-1].to_parquet(s / "rows.parquet", index=False)


def _swapped_rows(s: Path) -> None:
    import pandas as pd

    df = pd.read_parquet(s / "rows.parquet")
    df[["text", "id"]] = df[["text", "id"]].iloc[::-1].to_numpy()  # same length, other content
    df.to_parquet(s / "rows.parquet", index=False)


CORRUPTIONS = {
    "missing chunk": (lambda s: (s / CHUNK).unlink(), "sentence/mean chunk c/1/2/0"),
    "truncated chunk": (
        lambda s: (s / CHUNK).write_bytes((s / CHUNK).read_bytes()[:1000]),
        "sentence/mean chunk c/1/2/0",
    ),
    "same-size garbage chunk": (lambda s: _garbage(s / CHUNK), "sentence/mean chunk c/1/2/0"),
    "chunk replaced by another": (
        lambda s: shutil.copyfile(s / "arrays.zarr/sentence/mean/c/0/2/0", s / CHUNK),
        "sentence/mean chunk c/1/2/0",
    ),
    "token chunk garbage": (
        lambda s: _garbage(s / "arrays.zarr/token/hidden/c/0/5/0"),
        "token/hidden chunk c/0/5/0",
    ),
    "attention offsets damaged": (
        lambda s: _garbage(s / "arrays.zarr/attention/offsets/c/0"),
        "attention/offsets",
    ),
    "rows table one row short": (_shorter_rows, "rows.parquet"),
    "rows table same length, other content": (_swapped_rows, "rows.parquet"),
    "tokens table truncated": (
        lambda s: (s / "tokens.parquet").write_bytes((s / "tokens.parquet").read_bytes()[:500]),
        "tokens.parquet",
    ),
    "manifest counts edited": (
        lambda s: _edit_json(
            s / "manifest.json", lambda m: m["counts"].update(rows=m["counts"]["rows"] - 1)
        ),
        "manifest.json",
    ),
    "manifest layers edited": (
        lambda s: _edit_json(
            s / "manifest.json",
            lambda m: m["extraction"].update(layers=m["extraction"]["layers"][1:]),
        ),
        "manifest.json",
    ),
    "array metadata edited": (
        lambda s: _edit_json(
            s / "arrays.zarr/sentence/mean/zarr.json", lambda m: m.update(fill_value=1.0)
        ),
        "sentence/mean/zarr.json",
    ),
    "root zarr.json edited": (
        lambda s: _edit_json(s / "arrays.zarr/zarr.json", lambda m: m.update(node_type="array")),
        "arrays.zarr/zarr.json",
    ),
    "integrity record deleted": (lambda s: (s / "integrity.json").unlink(), "integrity.json"),
}


@pytest.fixture(params=sorted(CORRUPTIONS))
def damaged(request, intact, tmp_path) -> tuple[Path, str]:
    root = tmp_path / "root"
    root.mkdir()
    s = root / "e5"
    shutil.copytree(intact, s)
    corrupt, names = CORRUPTIONS[request.param]
    corrupt(s)
    return s, names


# ----------------------------------------------------------------------------- readers


def test_intact_store_reads_and_verifies(intact):
    st = Store.open(intact)
    X = st.sentences(layer=12)
    assert X.shape == (18, 384) and np.isfinite(X).all() and np.abs(X).sum(1).min() > 0
    rep = verify_store(intact)
    assert rep.ok and rep.checksums and rep.chunks > 40, rep.format()


def test_store_api_refuses(damaged):
    s, names = damaged
    with pytest.raises(StoreError) as err:
        st = Store.open(s)
        for layer in st.layers:
            st.sentences(layer=layer)
        st.tokens  # noqa: B018
        st.attention(0, layer=1)
    msg = str(err.value)
    assert str(s) in msg and names in msg and "\n" not in msg


def test_verify_lists_the_problem(damaged, capsys):
    from xalign.extract.__main__ import main

    s, names = damaged
    assert main(["--verify", str(s)]) == 1
    out = capsys.readouterr()
    assert "DAMAGED" in out.out and names in out.out and "error: store" in out.err


def test_metrics_cli_refuses(damaged, tmp_path, capsys):
    from xalign.metrics.__main__ import main

    s, names = damaged
    out = tmp_path / "r.parquet"
    argv = [str(s), "--metrics", "clusters,isotropy,cka", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and names in err and "Traceback" not in err
    assert not out.exists()


def test_project_cli_refuses(damaged, capsys):
    from xalign.project.__main__ import main

    s, names = damaged
    assert main([str(s), "--methods", "pca", "--layers", "0,12", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and names in err


REPORT_CASES = [
    "missing chunk",
    "same-size garbage chunk",
    "rows table one row short",
    "manifest layers edited",
    "root zarr.json edited",
]


@pytest.mark.parametrize("case", REPORT_CASES)
def test_report_names_the_damage(case, intact, results, tmp_path, capsys):
    """The report stops on a damaged store (tried on a few kinds of damage: it is slow)."""
    import pandas as pd

    from xalign.report.__main__ import main

    s = tmp_path / "root" / "e5"
    shutil.copytree(intact, s)
    corrupt, names = CORRUPTIONS[case]
    corrupt(s)
    res = pd.read_parquet(results).assign(store=str(s))  # results of the damaged copy
    res.to_parquet(tmp_path / "results.parquet", index=False)
    out = tmp_path / "report"
    argv = [str(tmp_path / "results.parquet"), "--out", str(out), "--figure-formats", "svg"]
    assert main(argv) == 2  # a damaged store stops the report
    err = capsys.readouterr().err
    assert err.startswith("error: ") and names in err and str(s) in err, err[-2000:]
    assert not (out / "report.md").exists()


def test_dashboard_loading_refuses(damaged):
    from dashboards._catalog import Catalog

    s, names = damaged
    cat = Catalog(s.parent)
    listing = cat.scan()
    assert not listing.stores
    assert any(names in x for x in listing.skipped), listing.skipped
    with pytest.raises(StoreError, match="e5"):
        cat.store("e5")


# ----------------------------------------------------------------------------- reads check


def test_reads_check_chunks_on_large_store_path(intact, tmp_path):
    """Above the full-check size only sizes are checked at open: the read still catches it."""
    s = tmp_path / "e5"
    shutil.copytree(intact, s)
    st = Store.open(s, full_check=False)
    _garbage(s / CHUNK)
    st.sentences(layer=1)  # other chunks are fine
    with pytest.raises(StoreError, match=r"sentence/mean chunk c/1/2/0 \(rows 8\.\.15.*CRC-32"):
        st.sentences(layer=2)
    with pytest.raises(StoreError, match="CRC-32"):
        st.sentences(layer=2, rows=[9])


# ----------------------------------------------------------------------------- repair


#: damage that a rerun repairs → rows it recomputes (a sentence chunk holds 8 rows; the
#: one token chunk holds every row's tokens; tables, offsets and manifest need no forward)
REPAIRABLE = {
    "missing chunk": 8,
    "same-size garbage chunk": 8,
    "chunk replaced by another": 8,
    "token chunk garbage": 18,
    "attention offsets damaged": 0,
    "rows table one row short": 0,
    "tokens table truncated": 0,
    "manifest counts edited": 0,
}


@pytest.mark.parametrize("case", sorted(REPAIRABLE))
def test_rerun_recomputes_the_damage(case, intact, e5_small, tmp_path):
    s = tmp_path / "e5"
    shutil.copytree(intact, s)
    CORRUPTIONS[case][0](s)
    _, summary = extract(_cfg(s), encoder=e5_small)
    assert summary.repairs and not summary.already_complete
    assert summary.rows_computed == REPAIRABLE[case]  # only what was damaged
    assert verify_store(s).ok
    for f in sorted((intact / "arrays.zarr").rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (s / f.relative_to(intact)).read_bytes(), f
    _, again = extract(_cfg(s), encoder=e5_small)
    assert again.already_complete


def test_rerun_says_what_to_do_when_it_cannot_repair(intact, e5_small, tmp_path):
    s = tmp_path / "e5"
    shutil.copytree(intact, s)
    (s / "integrity.json").unlink()
    with pytest.raises(StoreError, match="--overwrite"):
        extract(_cfg(s), encoder=e5_small)


def test_format_1_store_warns_and_upgrades(intact, e5_small, tmp_path):
    """A store of the previous format opens with one warning; a rerun records checksums."""
    s = tmp_path / "e5"
    shutil.copytree(intact, s)
    (s / "integrity.json").unlink()
    _edit_json(s / "manifest.json", lambda m: (m.pop("integrity"), m.update(format_version=1)))
    with pytest.warns(UserWarning, match="without checksums"):
        Store.open(s).sentences(layer=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Store.open(s)  # once per store
    (s / CHUNK).unlink()
    with pytest.raises(StoreError, match=r"c/1/2/0 \(rows 8\.\.15, layer index 2\) is missing"):
        Store.open(s)
    _, summary = extract(_cfg(s), encoder=e5_small)
    assert any("format version 1" in x for x in summary.repairs)
    assert Store.open(s).manifest["format_version"] == 2 and verify_store(s).ok
