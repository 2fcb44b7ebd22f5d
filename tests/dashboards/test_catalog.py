"""Store discovery and the path checks that keep the dashboard inside its root."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from dashboards._catalog import Catalog, UnsafePathError
from xalign.errors import StoreError


@pytest.fixture
def roots(dash_root, tmp_path):
    """A served root with a copy of one store, plus a store outside the root."""
    root = tmp_path / "served"
    outside = tmp_path / "secret"
    shutil.copytree(dash_root / "before", root / "runs" / "before")
    shutil.copytree(dash_root / "after", outside / "after")
    shutil.copy(dash_root / "results.parquet", root / "results.parquet")
    return root, outside


def test_scan_lists_stores_and_results_only(dash_root):
    listing = Catalog(dash_root).scan()
    assert [s.rel for s in listing.stores] == ["after", "bare", "before"]
    before = next(s for s in listing.stores if s.rel == "before")
    assert before.label == "before" and before.rows == 105 and before.layers == [0, 1, 2]
    assert before.has_tokens and before.attentions == "head-mean" and before.projections == 3
    bare = next(s for s in listing.stores if s.rel == "bare")
    assert not bare.has_tokens and bare.projections == 0
    # rows.parquet / tokens.parquet / projections/*.parquet are not results tables
    assert listing.results == ["results.parquet"]


def test_scan_skips_partial_stores_and_foreign_tables(roots):
    root, _ = roots
    (root / "notes.parquet").write_bytes(b"not parquet")
    import pandas as pd

    pd.DataFrame({"a": [1]}).to_parquet(root / "other.parquet")
    pd.DataFrame(
        {
            c: []
            for c in (
                "store",
                "checkpoint",
                "metric",
                "layer",
                "lang",
                "lang2",
                "value",
                "protocol",
            )
        }
    ).to_csv(root / "r.csv", index=False)
    broken = root / "runs" / "broken"
    broken.mkdir()
    m = json.loads((root / "runs" / "before" / "manifest.json").read_text())
    m["status"] = "partial"
    (broken / "manifest.json").write_text(json.dumps(m))
    listing = Catalog(root).scan()
    assert [s.rel for s in listing.stores] == ["runs/before"]
    assert listing.results == ["r.csv", "results.parquet"]
    assert len(listing.skipped) == 1 and "runs/broken" in listing.skipped[0]


@pytest.mark.parametrize(
    "bad",
    [
        "..",
        "../secret/after",
        "runs/../../secret/after",
        "/etc",
        "//etc/passwd",
        "~/x",
        "runs\\..\\..\\secret",
        "runs/before/\x00",
        "",
        "runs/missing",
        "runs",  # a folder under the root, but not a store
        "runs/before/rows.parquet",
        None,
        7,
        {"a": 1},
        ["runs/before"],
    ],
)
def test_resolve_rejects_paths_outside_or_not_stores(roots, bad):
    root, _ = roots
    cat = Catalog(root)
    with pytest.raises(UnsafePathError):
        cat.resolve(bad)
    with pytest.raises(UnsafePathError):
        cat.store(bad)


def test_symlinks_out_of_the_root_are_refused(roots):
    root, outside = roots
    os.symlink(outside / "after", root / "runs" / "linked-out")
    os.symlink(outside, root / "escape")
    os.symlink(root / "runs" / "before", root / "runs" / "linked-in")
    cat = Catalog(root)
    for bad in ("runs/linked-out", "escape/after"):
        with pytest.raises(UnsafePathError, match="outside the dashboard root"):
            cat.resolve(bad)
    # a link that stays inside the root is fine, and scanning never follows links
    assert cat.resolve("runs/linked-in") == (root / "runs" / "before").resolve()
    assert [s.rel for s in cat.scan().stores] == ["runs/before"]
    os.symlink(outside / "after" / "rows.parquet", root / "leak.parquet")
    assert "leak.parquet" not in cat.scan().results
    with pytest.raises(UnsafePathError):
        cat.resolve("leak.parquet", kind="results")


def test_results_paths_are_checked_too(roots):
    root, _ = roots
    cat = Catalog(root)
    assert cat.resolve("results.parquet", kind="results") == (root / "results.parquet").resolve()
    for bad in ("../secret/after/rows.parquet", "/etc/passwd", "runs/before"):
        with pytest.raises(UnsafePathError):
            cat.resolve(bad, kind="results")
    df = cat.results("results.parquet")
    assert {"p:scoring", "p:centered"} <= set(df.columns)


def test_damaged_results_tables_are_refused_like_the_report_refuses_them(roots):
    """The dashboard checks a results table with the results room's own validator: a value
    of the wrong kind is named, never cast (layer 1.5 would otherwise plot as layer 1)."""
    import pandas as pd

    root, _ = roots
    good = pd.read_parquet(root / "results.parquet")
    cases = {
        "half-layer.parquet": good.assign(layer=good["layer"].astype(float) + 0.5),
        "text-value.parquet": good.assign(
            value=good["value"].astype(str).where(good.index != 2, "n/a")
        ),
        "bad-protocol.parquet": good.assign(protocol="{not json"),
    }
    for name, df in cases.items():
        df.to_parquet(root / name)
    # written without uncertainty columns: still a results table, shown without intervals
    good.drop(columns=["n", "ci_low", "ci_high"]).to_parquet(root / "no-ci.parquet")
    cat = Catalog(root)
    for name, msg in (
        ("half-layer.parquet", "column 'layer'"),
        ("text-value.parquet", "column 'value' holds 'n/a'"),
        ("bad-protocol.parquet", "protocol"),
    ):
        with pytest.raises(StoreError, match=msg) as err:
            cat.results(name)
        assert name in str(err.value)
    df = cat.results("no-ci.parquet")
    assert len(df) == len(good) and df["ci_low"].isna().all()


def test_root_must_exist(tmp_path):
    with pytest.raises(StoreError, match="no such folder"):
        Catalog(tmp_path / "nope")
