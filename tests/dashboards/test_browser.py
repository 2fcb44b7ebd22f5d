"""The dashboard in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``).

The app runs in-process on a free localhost port; Selenium drives the system browser. Each
view is loaded on a small real root, the layer slider is moved and a sentence is clicked,
and the plotted data is read back from plotly's graph divs. Screenshots are written to
``tests/artifacts/`` (git-ignored); the browser console must stay free of errors.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--enable-unsafe-swiftshader",
    "--window-size=1600,1300",
)


def _skip_without_browser() -> None:
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip(
            "browser tests need Chromium and chromedriver on PATH "
            "(Debian: apt-get install chromium chromium-driver)"
        )


@pytest.fixture(scope="module")
def driver():
    _skip_without_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield d
    d.quit()


class Server:
    """The dashboard over ``root``, served by werkzeug in a thread on a free port."""

    def __init__(self, root: Path) -> None:
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        from dashboards.app import create_app

        self.app = create_app(str(root))
        self.httpd = make_server("127.0.0.1", 0, self.app.server, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(dash_root):
    _skip_without_browser()
    s = Server(dash_root)
    yield s
    s.close()


def wait_for(driver, script: str, *args, timeout: float = 30.0):
    """Poll a JS expression until it returns something truthy; return it."""
    end = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > end:
            driver.save_screenshot(str(ARTIFACTS / "dashboard-timeout.png"))
            logs = [e["message"][:300] for e in driver.get_log("browser")]
            raise AssertionError(f"timed out waiting for: {script[:160]}; console: {logs}")
        time.sleep(0.2)


GD = "var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');"
READY = GD + "return gd && gd._fullData && gd._fullData.length > 0 && gd.layout;"
TITLE = GD + "return gd && gd.layout && gd.layout.title && gd.layout.title.text;"
TRACE = (
    GD
    + """var t = gd._fullData[arguments[1]];
return {name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || []),
        customdata: Array.from(t.customdata || [])};"""
)


INFO = "var e = document.querySelector('#selection-info b');return e && e.textContent;"
#: screen position of a trace's first point that nothing covers: the element there must be
#: plotly's drag layer over the plot area, which turns clicks into clickData (a point under
#: the legend or the mode bar would never be clicked)
POINT = (
    GD
    + """var t = gd._fullData[arguments[1]], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
var r = gd.getBoundingClientRect();
for (var i = 0; i < t.x.length; i++) {
  var x = r.left + xa._offset + xa.l2p(t.x[i]), y = r.top + ya._offset + ya.l2p(t.y[i]);
  var e = document.elementFromPoint(x, y);
  if (e && gd.contains(e) && e.classList.contains('nsewdrag')) return [x, y, true];
}
return [0, 0, false];"""
)


def click_point(driver, gid: str, trace: int, tries: int = 4) -> str:
    """Click one of a trace's points as a user would; return the selection line it produces.

    The position is read until two reads 0.3 s apart agree (plotly may still be laying
    the graph out after the first render), and the click is repeated, up to ``tries``
    times, if no selection shows within 8 s: on a loaded machine a click can land while
    the graph repaints, and a user would simply click again. What is asserted afterwards
    is the selection itself, so a retry cannot hide a wrong highlight.
    """
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    for _ in range(tries):
        pos, end = None, time.monotonic() + 10
        while time.monotonic() < end:
            now = driver.execute_script(POINT, gid, trace)
            if now[2] and pos is not None and max(abs(now[0] - pos[0]), abs(now[1] - pos[1])) < 1:
                break
            pos = now
            time.sleep(0.3)
        if not now[2]:
            continue
        ab = ActionBuilder(driver)  # viewport coordinates, like getBoundingClientRect
        ab.pointer_action.move_to_location(int(pos[0]), int(pos[1]))
        ab.pointer_action.pause(0.3)
        ab.pointer_action.click()
        ab.perform()
        end = time.monotonic() + 8
        while time.monotonic() < end:
            info = driver.execute_script(INFO)
            if info:
                return info
            time.sleep(0.2)
    driver.save_screenshot(str(ARTIFACTS / "dashboard-click-timeout.png"))
    raise AssertionError(f"{tries} clicks on {gid} trace {trace} selected nothing")


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"dashboard-{name}.png"))


def cached_xy(root: Path, store: str, layer: int, lang: str):
    from xalign.project import load_projection
    from xalign.store import Store

    df = load_projection(root / store, layer=layer)
    df = df.merge(Store.open(root / store).rows[["row", "lang"]], on="row")
    d = df[df["lang"] == lang]
    return d["x"].to_numpy(np.float64), d["y"].to_numpy(np.float64)


def press_left_on_slider(driver) -> None:
    """Focus the layer slider's thumb and press the left arrow key (one layer down)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    thumb = driver.find_element(By.CSS_SELECTOR, "#layer [role='slider']")
    driver.execute_script("arguments[0].focus();", thumb)
    ActionChains(driver).send_keys(Keys.ARROW_LEFT).perform()


def open_tab(driver, label: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(
        By.XPATH, f"//div[contains(@class,'tab')][normalize-space()='{label}']"
    ).click()


def test_clusters_view_and_layer_slider(driver, server, dash_root):
    driver.get(server.url)
    for gid in ("clusters-a", "clusters-b"):
        wait_for(driver, READY, gid)
    # the pair projected together, in the order given to xalign.project: before | after
    assert wait_for(driver, TITLE, "clusters-a") == "before · layer 2"
    assert wait_for(driver, TITLE, "clusters-b") == "after · layer 2"
    before = {}
    for gid, store in (("clusters-a", "before"), ("clusters-b", "after")):
        t = driver.execute_script(TRACE, gid, 1)
        assert t["name"] == "deu"
        x, y = cached_xy(dash_root, store, 2, "deu")
        np.testing.assert_allclose(t["x"], x, atol=1e-6)
        np.testing.assert_allclose(t["y"], y, atol=1e-6)
        before[gid] = np.array(t["x"])
    shot(driver, "clusters")
    # move the slider one step left with the keyboard, as a user can
    press_left_on_slider(driver)
    wait_for(driver, GD + "return gd.layout.title.text === 'before · layer 1';", "clusters-a")
    wait_for(driver, GD + "return gd.layout.title.text === 'after · layer 1';", "clusters-b")
    for gid, store in (("clusters-a", "before"), ("clusters-b", "after")):
        t = driver.execute_script(TRACE, gid, 1)
        x, y = cached_xy(dash_root, store, 1, "deu")
        np.testing.assert_allclose(t["x"], x, atol=1e-6)
        np.testing.assert_allclose(t["y"], y, atol=1e-6)
        assert not np.allclose(t["x"], before[gid])  # the points moved
    shot(driver, "clusters-layer1")
    assert console_errors(driver) == []


def test_click_highlights_translations(driver, server, dash_root):
    from xalign.store import Store

    driver.get(server.url)  # a fresh page: no test relies on another's state (any order)
    wait_for(driver, READY, "clusters-a")
    info = click_point(driver, "clusters-a", 2)
    row = int(info.split("row ")[1].rstrip(": "))
    rows = Store.open(dash_root / "before").rows
    group = rows.index[rows["group"] == rows["group"].iloc[row]].tolist()
    assert len(group) == 5
    for gid in ("clusters-a", "clusters-b"):
        n = driver.execute_script(GD + "return gd._fullData.length;", gid)
        hl = wait_for(
            driver,
            GD
            + """var t = gd._fullData[arguments[1]];
            return t.customdata && t.customdata.length ? Array.from(t.customdata) : null;""",
            gid,
            n - 2,
        )
        assert sorted(hl) == sorted(group)
        links = driver.execute_script(TRACE, gid, n - 3)
        assert len(links["x"]) == 3 * (len(group) - 1)
        star = driver.execute_script(TRACE, gid, n - 1)
        assert star["customdata"] == [row]
    shot(driver, "clusters-click")
    assert console_errors(driver) == []


def test_metrics_view(driver, server):
    driver.get(server.url)
    wait_for(driver, READY, "clusters-a")
    open_tab(driver, "Metrics")
    wait_for(
        driver, GD + "return gd && gd._fullData && gd._fullData.length >= 10;", "metric-curves"
    )
    names = driver.execute_script(GD + "return gd._fullData.map(t => t.name);", "metric-curves")
    assert "deu · before" in names and "deu · after" in names
    z = wait_for(
        driver,
        GD + "return gd && gd._fullData.length && gd._fullData[0].type === "
        "'heatmap' && gd._fullData[0].z;",
        "metric-heatmap",
    )
    assert len(z) == 5 and len(z[0]) == 5
    diff = wait_for(
        driver, GD + "return gd && gd._fullData.length && gd._fullData[0].z;", "metric-diff"
    )
    assert len(diff) == 6  # mean + 5 languages
    line = wait_for(
        driver, "var e = document.querySelector('.protocol-line');return e && e.textContent;"
    )
    # keys in the results room's canonical order (PROTOCOL_KEY_ORDER)
    assert line.startswith("protocol: centered=false, scoring=cosine")
    shot(driver, "metrics")
    assert console_errors(driver) == []


def test_retrieval_view(driver, server):
    driver.get(server.url)  # a fresh page, whatever ran before
    wait_for(driver, READY, "clusters-a")
    open_tab(driver, "Retrieval")
    n = wait_for(driver, "return document.querySelectorAll('table.neighbours tbody tr').length;")
    assert n == 2 * 4 * 5  # stores A and B, 4 other languages, k = 5
    summary = wait_for(
        driver, "var e = document.querySelector('.top1-summary');return e && e.textContent;"
    )
    assert summary.startswith("top-1 is the gold translation in ") and summary.endswith(
        " of 4 languages"
    )
    wait_for(
        driver,
        GD + "return gd && gd._fullData.length && gd._fullData[0].type === 'bar';",
        "retrieval-fig-a",
    )
    shot(driver, "retrieval")
    assert console_errors(driver) == []


def test_attention_view(driver, server, dash_root):
    from xalign.store import Store

    driver.get(server.url)  # a fresh page, whatever ran before
    wait_for(driver, READY, "clusters-a")
    open_tab(driver, "Attention")
    for gid in ("attn-a-attn_a", "attn-a-attn_b", "attn-a-alignment", "attn-b-alignment"):
        wait_for(driver, READY, gid)
    z = driver.execute_script(GD + "return gd._fullData[0].z;", "attn-a-attn_a")
    n_tok = int(Store.open(dash_root / "before").rows["n_tokens"].iloc[0])
    assert len(z) == n_tok and len(z[0]) == n_tok
    ticks = driver.execute_script(GD + "return gd._fullLayout.xaxis.ticktext;", "attn-a-attn_a")
    assert ticks[0] == "[CLS]"
    shot(driver, "attention")
    assert console_errors(driver) == []


def test_empty_states(driver, dash_root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    s = Server(empty)
    try:
        driver.get(s.url)
        text = wait_for(
            driver, "var e = document.querySelector('#empty-root');return e && e.textContent;"
        )
        assert "No stores under this root yet" in text and "python -m xalign.extract" in text
        shot(driver, "empty-root")
    finally:
        s.close()
    bare = tmp_path / "bare-root"
    shutil.copytree(dash_root / "bare", bare / "bare")
    s = Server(bare)
    try:
        driver.get(s.url)
        msg = wait_for(
            driver, "var e = document.querySelector('#clusters-msg');return e && e.textContent;"
        )
        assert f"python -m xalign.project {bare}/bare --methods pca --layers all" in msg
        shot(driver, "no-projections")
        open_tab(driver, "Attention")
        msg = wait_for(
            driver, "var e = document.querySelector('#attention-out');return e && e.textContent;"
        )
        assert "re-extract with --tokens and --attentions head-mean" in msg
        shot(driver, "no-attentions")
    finally:
        s.close()
    assert console_errors(driver) == []


def test_fifty_thousand_points(driver, tmp_path):
    import importlib.util

    from xalign.project import ProjectConfig, project_stores

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "dashboard.py"
    spec = importlib.util.spec_from_file_location("bench_dashboard", bench)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root = tmp_path / "big"
    mod.synthetic_store(root / "big", n_groups=3850, n_layers=3, label="big")
    project_stores(ProjectConfig(stores=[str(root / "big")], progress=False))
    s = Server(root)
    try:
        driver.get(s.url)
        total = wait_for(
            driver,
            GD
            + """if (!gd || !gd._fullData) return 0;
            var n = 0; gd._fullData.forEach(t => { if (t.type === 'scattergl' && t.legendgroup !== 'labels') n += t.x.length; });
            return n > 1000 ? n : 0;""",
            "clusters-a",
            timeout=60,
        )
        assert total == 50_050
        x0 = driver.execute_script(TRACE, "clusters-a", 0)["x"][:50]
        t0 = time.monotonic()
        press_left_on_slider(driver)
        wait_for(driver, GD + "return gd.layout.title.text === 'big · layer 2';", "clusters-a")
        elapsed = time.monotonic() - t0
        x1 = driver.execute_script(TRACE, "clusters-a", 0)["x"][:50]
        assert not np.allclose(x0, x1)
        print(f"50,050 points: layer move shown after {elapsed:.2f} s (browser, SwiftShader)")
        shot(driver, "50k")
    finally:
        s.close()
    assert console_errors(driver) == []
