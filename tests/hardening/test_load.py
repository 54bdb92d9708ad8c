"""Load: a real `streamlit run` server (tests/test_browser.py's fixture) with five browser sessions opening the
page at once while a sweep trains and evaluates into the same results store. Every session renders, and every
session shows the same numbers, those the store holds. How fast they render is printed, not asserted: a time
bound in a test fails by the machine's load, not by the app (`python -m dse bench --page checkpoints` measures the
page's render time).

"Renders" is the app's own measure, shown at the foot of every page: the server's time from the start of the
session's script run to its last element, with the other sessions and the sweep competing for the CPU. The
time until the browser shows the page is printed too; it also counts the five headless browsers' own work
(about 1.5-2.5 CPU-seconds a page here), which on a user's machine is not the server's."""
import asyncio
import re
import subprocess
import sys
import time

import pytest

from dse.domain.point import DesignPoint
from dse.results.store import Store
from tests.fixtures import accuracy_model
from tests.hardening.common import env
from tests.hardening.test_interrupt import SPEC
from tests.test_browser import CHROMIUM, server  # noqa: F401  (the fixture)
from tests.test_data import make_tree

SESSIONS = 5
INSTANCES = 1000  # crossbars the sweep evaluates: enough to keep the CPU busy through the sessions here
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


async def open_page(context, url: str) -> tuple[float, float, list[str]]:
    """(the page's own render time, seconds until the browser showed it with a chart drawn, its metric values)."""
    page = await context.new_page()
    try:
        t0 = time.perf_counter()
        await page.goto(url, timeout=60_000)
        footer = page.get_by_text("Rendered in")  # the page's last element: everything before it was sent
        await footer.wait_for(timeout=60_000)
        rendered = float(re.search(r"Rendered in ([\d.]+) s", await footer.inner_text()).group(1))  # the first run
        await page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        shown = time.perf_counter() - t0
        return rendered, shown, await page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    finally:
        await page.close()


async def browse(url: str, between) -> tuple[tuple, list[tuple]]:
    """One page alone (the server compiles and caches; the browser caches the app's scripts), then `between()`,
    then SESSIONS pages at once, each its own Streamlit session."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            first = await open_page(context, url)
            between()
            return first, await asyncio.gather(*(open_page(context, url) for _ in range(SESSIONS)))
        finally:
            await browser.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_five_sessions_during_a_sweep_render_fast_and_agree(server, tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC.format(data=make_tree(tmp_path / "data", per_class=4), ckpt=tmp_path / "sweep-ck",
                                instances=INSTANCES).replace("epochs = 1", "epochs = 5"))
    store = Store(tmp_path / "results.sqlite")  # the server's store: the sweep writes where the pages read
    log = open(tmp_path / "sweep.log", "wb")
    procs = []

    def start_sweep():
        # it holds (running) before its last crossbar, so a fast machine cannot finish it under the sessions
        hold = env(DSE_STALL=f"atomic_write:*.crossbars-*.partial:{INSTANCES - 1}", DSE_STALL_FILE=str(tmp_path / "held"))
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.hardening.stall", "sweep", str(spec), "--store",
                                       str(store.path), "--no-progress"], cwd=tmp_path, env=hold, stdout=log,
                                      stderr=subprocess.STDOUT))
        t0 = time.time()
        while not (store.jobs().state == "running").any():
            assert procs[0].poll() is None and time.time() - t0 < 60, (tmp_path / "sweep.log").read_text()[-2000:]
            time.sleep(0.2)

    try:
        first, results = asyncio.run(browse(server, start_sweep))
        still_running = procs[0].poll() is None
    finally:
        for p in procs:
            p.kill()
            p.wait()
        log.close()
    rendered, shown = [r[0] for r in results], [round(r[1], 1) for r in results]
    print(f"first page rendered in {first[0]} s, shown after {first[1]:.1f} s; {SESSIONS} sessions during a sweep "
          f"rendered in {rendered} s, shown by the browsers after {shown} s")
    assert still_running, (tmp_path / "sweep.log").read_text()[-2000:]
    assert len(rendered) == SESSIONS and all(r > 0 for r in rendered), rendered
    values = [r[2] for r in results]
    assert all(v == values[0] for v in values), values
    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)  # the default selection, untouched by the sweep
    acc = accuracy_model(p, 0.1)  # what tests/fixtures.py stored: mean, worst crossbar, fault-free
    assert values[0][:3] == [f"{acc:.2f}%", f"{acc - 0.2:.2f}%", f"{accuracy_model(p, 0.0):.2f}%"]
