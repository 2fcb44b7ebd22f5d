"""The Dash app over HTTP (Flask test client): offline assets, path traversal, the CLI."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from dashboards.__main__ import main

CLUSTER_OUTPUTS = [
    ("clusters-a", "figure"),
    ("clusters-b", "figure"),
    ("clusters-msg", "children"),
    ("clusters-state", "data"),
]


def cluster_request(store_a, store_b=None, layer=1):
    inputs = {
        "store-a.value": store_a,
        "store-b.value": store_b,
        "layer.value": layer,
        "pooling.value": "mean",
        "method.value": "pca",
        "lang-filter.value": None,
        "selection.data": None,
        "lasso.data": None,
    }
    return {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in CLUSTER_OUTPUTS) + "..",
        "outputs": [{"id": i, "property": p} for i, p in CLUSTER_OUTPUTS],
        "inputs": [
            {"id": k.split(".")[0], "property": k.split(".")[1], "value": v}
            for k, v in inputs.items()
        ],
        "state": [{"id": "clusters-state", "property": "data", "value": None}],
        "changedPropIds": ["store-a.value"],
    }


@pytest.fixture
def served(dash_root, tmp_path):
    """``tmp/served`` (the root) and ``tmp/secret`` beside it, with a recognisable text."""
    root = tmp_path / "served"
    shutil.copytree(dash_root / "before", root / "before")
    shutil.copytree(dash_root / "before", tmp_path / "secret")
    rows = pd.read_parquet(tmp_path / "secret" / "rows.parquet")
    rows["text"] = "TOP-SECRET-SENTENCE"
    rows.to_parquet(tmp_path / "secret" / "rows.parquet", index=False)
    shutil.copytree(
        dash_root / "before" / "projections",
        tmp_path / "secret" / "projections",
        dirs_exist_ok=True,
    )
    from dashboards.app import create_app

    return create_app(str(root)).server.test_client(), root


def test_page_and_assets_are_served_locally(served):
    client, _ = served
    html = client.get("/").get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts and all(s.startswith("/_dash-component-suites/") for s in scripts)
    assert "cdn" not in html.lower() and "unpkg" not in html and "https://" not in html
    for s in scripts:
        assert client.get(s).status_code == 200
    # plotly.js is loaded on demand by the graphs, from this server too
    js = client.get("/_dash-component-suites/plotly/package_data/plotly.min.js")
    assert js.status_code == 200 and b"plotly.js" in js.data[:300]
    layout = client.get("/_dash-layout").get_json()
    assert "before" in str(layout)


def test_path_traversal_through_the_store_selector(served):
    client, _ = served
    ok = client.post("/_dash-update-component", json=cluster_request("before"))
    assert ok.status_code == 200 and "layer 1" in ok.get_data(as_text=True)
    for bad in ("../secret", "before/../../secret", "/etc", "%2e%2e/secret", "before/../.."):
        r = client.post("/_dash-update-component", json=cluster_request(bad))
        body = r.get_data(as_text=True)
        assert r.status_code == 200
        assert "TOP-SECRET-SENTENCE" not in body
        assert "error:" in body and ("below the dashboard root" in body or "no such store" in body)
    r = client.post("/_dash-update-component", json=cluster_request("before", store_b="../secret"))
    assert "TOP-SECRET-SENTENCE" not in r.get_data(as_text=True)


def test_symlinked_store_out_of_the_root_is_refused(served, tmp_path):
    client, root = served
    (root / "link").symlink_to(tmp_path / "secret")
    r = client.post("/_dash-update-component", json=cluster_request("link"))
    body = r.get_data(as_text=True)
    assert "TOP-SECRET-SENTENCE" not in body and "outside the dashboard root" in body


def test_static_routes_do_not_leave_the_package(served):
    client, _ = served
    for url in (
        "/_dash-component-suites/../../../../etc/passwd",
        "/_dash-component-suites/dash/../../../../../etc/passwd",
        "/assets/../../etc/passwd",
    ):
        r = client.get(url)
        assert r.status_code >= 400 and b"root:" not in r.data  # Dash answers 404 or 500


def test_cli_refuses_missing_root_and_warns_on_public_host(
    dash_root, tmp_path, capsys, monkeypatch
):
    assert main(["--root", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    calls = []
    import dash

    monkeypatch.setattr(dash.Dash, "run", lambda self, **kw: calls.append(kw))
    assert main(["--root", str(dash_root), "--port", "8123"]) == 0
    out, err = capsys.readouterr()
    assert calls[-1] == {"host": "127.0.0.1", "port": 8123, "debug": False}
    assert err == "" and "serving   http://127.0.0.1:8123/" in out
    assert "before  (before, 105 rows, 3 projections)" in out and "results.parquet" in out
    assert main(["--root", str(dash_root), "--host", "0.0.0.0"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("warning: --host 0.0.0.0") and "without authentication" in err
    assert calls[-1]["host"] == "0.0.0.0"
