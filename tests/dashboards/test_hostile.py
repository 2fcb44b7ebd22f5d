"""A hostile root and crafted requests: the app reads only inside its root and never 500s.

Stores whose own files point elsewhere (``projections/index.json`` naming an absolute or
``../`` file, a ``rows.parquet`` or chunk symlinked out of the root, a FIFO), damaged stores,
and crafted callback inputs (every callback, every input, bad types and ranges, a megabyte
search string) sent through ``/_dash-update-component``.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from dashboards._catalog import Catalog, UnsafePathError
from xalign.errors import StoreError

SECRET = "TOP-SECRET-SENTENCE"
MARKER = 987654.25  # x of every point of the secret projection


@pytest.fixture
def hostile(dash_root, tmp_path):
    """``tmp/served`` (the root, holding a copy of ``before``) and ``tmp/secret`` beside it."""
    root = tmp_path / "served"
    shutil.copytree(dash_root / "before", root / "before")
    secret = tmp_path / "secret"
    shutil.copytree(dash_root / "before", secret)
    rows = pd.read_parquet(secret / "rows.parquet")
    rows["text"] = SECRET
    rows.to_parquet(secret / "rows.parquet", index=False)
    for f in (secret / "projections").glob("*.parquet"):
        df = pd.read_parquet(f)
        df["x"] = np.float32(MARKER)
        df.to_parquet(f, index=False)
    return root, secret


def client_of(root):
    from dashboards.app import create_app

    app = create_app(str(root))
    return app, app.server.test_client()


def request_for(app, out_id, values=None, *, changed=None):
    """A ``/_dash-update-component`` body for the callback writing ``out_id``."""
    key = next(k for k in app.callback_map if k.startswith((f"..{out_id}.", f"{out_id}.")))
    return request_by_key(app, key, values, changed=changed)


def request_by_key(app, key, values=None, *, changed=None):
    """A ``/_dash-update-component`` body for the callback ``key`` of ``app.callback_map``."""
    spec = app.callback_map[key]
    values = values or {}

    def item(dep):
        cid, prop = dep["id"], dep["property"]
        if isinstance(cid, dict) and any(not isinstance(v, str) for v in cid.values()):
            return []  # a wildcard (ALL) input: no matching components
        return {"id": cid, "property": prop, "value": values.get(f"{cid}.{prop}")}

    outs = spec["output"] if isinstance(spec["output"], list) else [spec["output"]]
    return {
        "output": key,
        "outputs": [{"id": o.component_id, "property": o.component_property} for o in outs]
        if len(outs) > 1 or key.startswith("..")
        else {"id": outs[0].component_id, "property": outs[0].component_property},
        "inputs": [item(d) for d in spec["inputs"]],
        "state": [item(d) for d in spec["state"]],
        "changedPropIds": changed or [],
    }


def post(client, body):
    r = client.post("/_dash-update-component", json=body)
    text = r.get_data(as_text=True)
    assert r.status_code in (200, 204), (r.status_code, text[:2000])
    assert "Traceback" not in text
    # Dash escapes "/" as \\u002f: compare against the decoded JSON
    return json.dumps(json.loads(text), ensure_ascii=False) if text else ""


CLUSTERS = {
    "store-a.value": "before",
    "layer.value": 1,
    "pooling.value": "mean",
    "method.value": "pca",
}


# ---------------------------------------------------------------- files named by a store


@pytest.mark.parametrize("how", ["absolute", "dotdot", "subfolder"])
def test_projection_index_cannot_name_files_outside_the_store(hostile, how):
    root, secret = hostile
    index_path = root / "before" / "projections" / "index.json"
    index = json.loads(index_path.read_text())
    for e in index["entries"]:
        name = e["file"]
        e["file"] = {
            "absolute": str(secret / "projections" / name),
            "dotdot": f"../../../secret/projections/{name}",
            "subfolder": f"sub/{name}",
        }[how]
    index_path.write_text(json.dumps(index))
    with pytest.raises(StoreError, match=r"not a plain \.parquet file name"):
        Catalog(root).index("before")
    app, client = client_of(root)
    body = post(client, request_for(app, "clusters-a", CLUSTERS, changed=["store-a.value"]))
    assert str(MARKER) not in body and "987654" not in body and SECRET not in body
    assert "error:" in body and "not a plain .parquet file name" in body
    # the listing shows the store, says why its projections are not shown
    listing = Catalog(root).scan()
    assert [s.rel for s in listing.stores] == ["before"]
    assert listing.stores[0].projections == 0
    assert any("not a plain .parquet file name" in x for x in listing.skipped)


def test_projection_file_symlinked_out_of_the_root_is_refused(hostile):
    root, secret = hostile
    folder = root / "before" / "projections"
    for f in folder.glob("*.parquet"):
        f.unlink()
        f.symlink_to(secret / "projections" / f.name)
    app, client = client_of(root)
    body = post(client, request_for(app, "clusters-a", CLUSTERS, changed=["store-a.value"]))
    assert "987654" not in body and "outside the dashboard root" in body


@pytest.mark.parametrize("target", ["rows.parquet", "arrays.zarr", "chunk"])
def test_store_files_symlinked_out_of_the_root_are_refused(hostile, target):
    root, secret = hostile
    store = root / "before"
    if target == "chunk":
        chunk = next(p for p in (store / "arrays.zarr").rglob("*") if p.is_file())
        rel = chunk.relative_to(store)
        chunk.unlink()
        chunk.symlink_to(secret / rel)
    else:
        p = store / target
        shutil.rmtree(p) if p.is_dir() else p.unlink()
        p.symlink_to(secret / target)
    with pytest.raises(UnsafePathError, match="symlink leading outside the dashboard root"):
        Catalog(root).store("before")
    app, client = client_of(root)
    for out, values in (
        ("clusters-a", CLUSTERS),
        ("query", {"store-a.value": "before", "query.search_value": "SECRET"}),
        ("retrieval-out", {**CLUSTERS, "query.value": 0, "k.value": 3, "scoring.value": "cosine"}),
    ):
        body = post(client, request_for(app, out, values, changed=["store-a.value"]))
        assert SECRET not in body and "987654" not in body
        # the pickers stay empty; the views say why
        assert out == "query" or "symlink leading outside the dashboard root" in body
    assert "before" not in [s.rel for s in Catalog(root).scan().stores]


def test_symlinks_inside_the_root_still_work(hostile):
    root, _ = hostile
    shutil.copytree(root / "before", root / "twin")
    (root / "twin" / "rows.parquet").unlink()
    (root / "twin" / "rows.parquet").symlink_to(root / "before" / "rows.parquet")
    assert len(Catalog(root).rows("twin")) == 105


def test_a_fifo_in_a_store_is_refused_not_read(hostile):
    root, _ = hostile
    os.mkfifo(root / "before" / "projections" / "trap.parquet")
    os.mkfifo(root / "stuck.parquet")  # a results candidate: reading it would hang the scan
    with pytest.raises(UnsafePathError, match="not a regular file"):
        Catalog(root).store("before")
    assert Catalog(root).scan().results == []


# ---------------------------------------------------------------- damaged stores


def test_damaged_store_shows_its_error_in_the_page(hostile, monkeypatch):
    root, _ = hostile
    app, client = client_of(root)
    from xalign.store import Store

    def broken(self, **kw):
        raise StoreError(f"{self.path.name}: chunk sentence/mean/c/0/1/0 is missing (damaged)")

    monkeypatch.setattr(Store, "sentences", broken)
    values = {**CLUSTERS, "query.value": 0, "k.value": 3, "scoring.value": "margin"}
    body = post(client, request_for(app, "retrieval-out", values, changed=["query.value"]))
    assert "error: before: chunk sentence/mean/c/0/1/0 is missing (damaged)" in body
    monkeypatch.undo()
    # a table whose length does not match the manifest, then an unreadable table
    rows = pd.read_parquet(root / "before" / "rows.parquet")
    rows.iloc[:50].to_parquet(root / "before" / "rows.parquet", index=False)
    app, client = client_of(root)
    body = post(client, request_for(app, "clusters-a", CLUSTERS, changed=["store-a.value"]))
    # (the store's own integrity checks may catch it first: either way a clear error)
    assert re.search(r"50 rows but the manifest counts 105|rows.parquet has .* bytes", body)
    (root / "before" / "rows.parquet").write_bytes(b"PAR1 not really parquet")
    app, client = client_of(root)
    body = post(client, request_for(app, "clusters-a", CLUSTERS, changed=["store-a.value"]))
    assert re.search(r"rows.parquet: cannot be read|rows.parquet has .* bytes", body)


def test_malformed_manifest_and_coordinates_give_messages(hostile):
    root, _ = hostile
    folder = root / "before" / "projections"
    for f in folder.glob("*.parquet"):
        df = pd.read_parquet(f)
        df.loc[0, "row"] = 10**6
        df.to_parquet(f, index=False)
    app, client = client_of(root)
    body = post(client, request_for(app, "clusters-a", CLUSTERS, changed=["store-a.value"]))
    assert "row indices outside 0..104" in body
    m = json.loads((root / "before" / "manifest.json").read_text())
    m["extraction"]["layers"] = "all of them"
    (root / "before" / "manifest.json").write_text(json.dumps(m))
    cat = Catalog(root)
    assert re.search(r"manifest.json: (malformed|field .* wrong type)", cat.scan().skipped[0])
    app, client = client_of(root)
    assert client.get("/_dash-layout").status_code == 200
    body = post(client, request_for(app, "clusters-a", CLUSTERS, changed=["store-a.value"]))
    assert re.search(r"manifest.json: (malformed|field .* wrong type)", body)


# ---------------------------------------------------------------- crafted callback inputs

BAD = ["../../etc/passwd", -1, 10**12, 1.5, {"x": 1}, [1, {"a": 2}, None]]


def good_values():
    return {
        "store-a.value": "before",
        "store-b.value": None,
        "layer.value": 1,
        "pooling.value": "mean",
        "method.value": "pca",
        "query.value": 3,
        "attn-a.value": 3,
        "k.value": 3,
        "scoring.value": "margin",
        "head.value": "mean",
        "granularity.value": "words",
        "align-method.value": "itermax",
        "metric-mode.value": "languages",
        "download-format.value": "png",
        "results.value": None,
    }


def test_every_callback_survives_crafted_inputs(hostile):
    """Each input of each callback replaced by values of the wrong type or range: HTTP 200
    (or 204: nothing to update) and never a traceback."""
    root, _ = hostile
    app, client = client_of(root)
    base = good_values()
    n = 0
    for key, spec in app.callback_map.items():
        for dep in spec["inputs"] + spec["state"]:
            if isinstance(dep["id"], dict):
                continue
            name = f"{dep['id']}.{dep['property']}"
            for bad in BAD:
                post(client, request_by_key(app, key, {**base, name: bad}, changed=[name]))
                n += 1
    assert n > 150


def test_crafted_inputs_get_clear_messages(hostile):
    root, _ = hostile
    app, client = client_of(root)
    body = post(client, request_for(app, "clusters-a", {**CLUSTERS, "layer.value": "abc"}))
    assert "layer 'abc': expected a whole number" in body
    retrieval = {**CLUSTERS, "query.value": 3, "k.value": 3, "scoring.value": "cosine"}
    for row in (-1, 105, "x"):
        body = post(client, request_for(app, "retrieval-out", {**retrieval, "query.value": row}))
        assert "sentence of before" in body and ("out of range 0..104" in body or "whole" in body)
    body = post(client, request_for(app, "retrieval-out", {**retrieval, "layer.value": 99}))
    assert "layer 99 is not stored in before" in body
    body = post(client, request_for(app, "retrieval-out", {**retrieval, "k.value": 0}))
    assert "k 0 is out of range 1..50" in body
    body = post(client, request_for(app, "retrieval-out", {**retrieval, "scoring.value": "x"}))
    assert "scoring='x': allowed values are cosine, margin, csls" in body
    big = "x" * 1_000_000
    body = post(
        client, request_for(app, "query", {"store-a.value": "before", "query.search_value": big})
    )
    assert "type at most 200 characters" in body and len(body) < 10_000
    attn = {"store-a.value": "before", "layer.value": 1, "attn-a.value": 0, "attn-b.value": 500}
    body = post(client, request_for(app, "attention-out", attn))
    assert "translation B of before 500 is out of range 0..104" in body
    body = post(
        client, request_for(app, "attention-out", {**attn, "attn-b.value": 1, "head.value": "7"})
    )
    assert "head='7': allowed values are mean" in body


def test_missing_or_crafted_state_keys_fall_back_to_a_full_render(hostile):
    root, _ = hostile
    app, client = client_of(root)
    first = json.loads(post(client, request_for(app, "clusters-a", CLUSTERS)))
    state = first["response"]["clusters-state"]["data"]
    assert state["a"]["fit_id"]
    for crafted in (
        {"key": state["key"], "a": {"rel": "before"}},  # fit_id, n_traces missing
        {"key": state["key"], "a": {**state["a"], "n_traces": "many"}},
        {"key": state["key"], "a": {**state["a"], "fit_id": "nope"}},
        {"key": "not a list"},
        ["not", "a", "dict"],
    ):
        body = request_for(
            app, "clusters-a", {**CLUSTERS, "layer.value": 2}, changed=["layer.value"]
        )
        body["state"] = [{"id": "clusters-state", "property": "data", "value": crafted}]
        out = json.loads(post(client, body))["response"]
        assert out["clusters-a"]["figure"]["layout"]["title"]["text"] == "before · layer 2"
    # crafted click / lasso / selection payloads are ignored, not fatal
    for click in ({"points": "x"}, {"points": [5]}, {"points": [{"customdata": [{"a": 1}]}]}, 7):
        post(
            client,
            request_for(
                app,
                "selection",
                {"clusters-a.clickData": click, "store-a.value": "before"},
                changed=["clusters-a.clickData"],
            ),
        )
    body = post(client, request_for(app, "selection-info", {"selection.data": {"row": 1}}))
    assert "no sentence selected" in body


def test_unexpected_exceptions_become_messages(hostile, monkeypatch):
    root, _ = hostile
    app, client = client_of(root)
    import dashboards.tabs.clusters as A

    def boom(*a, **k):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(A, "lasso_rows", boom)
    body = post(
        client,
        request_for(
            app,
            "lasso",
            {"clusters-a.selectedData": {"points": []}},
            changed=["clusters-a.selectedData"],
        ),
    )
    assert "RuntimeError" in body and "unexpected" in body and "could not be updated" in body
    # the message lands in this callback's own slot, which the page layout holds
    assert '"cb": "on_lasso"' in client.get("/_dash-layout").get_data(as_text=True).replace(
        '"cb":"on_lasso"', '"cb": "on_lasso"'
    )


def test_malformed_requests_get_a_400_not_a_500(hostile):
    root, _ = hostile
    app, client = client_of(root)
    good = request_for(app, "clusters-a", CLUSTERS)
    for body in (
        {**good, "state": []},
        {**good, "inputs": "x"},
        {**good, "output": "..nope.children.."},
        {"output": 5},
    ):
        r = client.post("/_dash-update-component", json=body)
        text = r.get_data(as_text=True)
        assert r.status_code == 400 and "malformed callback request" in text, (r.status_code, text)
        assert "Traceback" not in text
    r = client.post("/_dash-update-component", data=b"{not json", content_type="application/json")
    assert r.status_code == 400 and "Traceback" not in r.get_data(as_text=True)
    assert client.get("/_dash-layout").status_code == 200
