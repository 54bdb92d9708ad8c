"""End to end in a real headless browser: `streamlit run app.py` on localhost, Debian's chromium driven
by Playwright; the page loads, charts render, a control changes the page. Saves screenshots."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures import build_store

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    build_store(tmp_path)
    port = free_port()
    env = {**os.environ, "DSE_STORE": str(tmp_path / "results.sqlite"), "DSE_CHECKPOINTS": str(tmp_path / "checkpoints"),
           "DSE_RUNS": str(tmp_path / "runs"), "DSE_DATA": ""}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless=true",
                             f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while time.time() - t0 < 60:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start: {proc.stdout.read().decode()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_page_loads_charts_render_and_controls_work(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "screenshots"  # printed below; never in the checkout
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            t0 = time.time()
            page.goto(server, timeout=60_000)
            page.get_by_text("Accuracy under faults").wait_for(timeout=60_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            first_render = time.time() - t0
            assert page.locator(".js-plotly-plot").count() >= 2  # both Pareto charts
            assert page.locator(".js-plotly-plot .scatterlayer .point").count() > 0  # with data points
            page.screenshot(path=str(shots / "app.png"), full_page=True)

            page.get_by_role("tab", name="Fault tolerance").click()
            page.get_by_text("accuracy vs fault rate").first.wait_for(timeout=30_000)

            page.get_by_text("1x1 convs on the crossbar").click()  # a sidebar control
            # the old page stays up until the rerun replaces it: wait for the new heading, not for any status
            expect(page.locator("h3").first).to_contain_text("1x1-on-crossbar", timeout=60_000)
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
            page.screenshot(path=str(shots / "app-changed.png"), full_page=True)
            print(f"first render in {first_render:.1f}s; screenshots in {shots}")
        finally:
            browser.close()
