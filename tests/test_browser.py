"""End to end in a real headless browser: `streamlit run app.py` on localhost, Debian's chromium driven by
Playwright. The first-run path of a new user (data found in ./data with no configuration, a control changed
in every tab, a training job started, cancelled and retried), no metric cut short, and the README's screenshot
made from the shipped checkpoints.

Screenshots go to $CI_ARTIFACTS_DIR/browser when it is set (`.ci/run` sets it to runs/ci-artifacts), else to
the test's temporary folder. `pytest tests/test_browser.py --update-screenshot` rewrites docs/app.png, the
README's picture; tests/test_readme_screenshot.py fails when the page's code has changed since it was made."""
import os
import re
import time
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, ROOT, WAIT, chromium_page, serve, settle
from tests.fixtures import build_store
from tests.screenshot import SCREENSHOT, save_screenshot
from tests.test_data import make_tree

ARTIFACTS = os.environ.get("CI_ARTIFACTS_DIR")  # read at import: the session fixture clears only DSE_* variables
# every metric's label and value shown whole: nothing wider than its box (CSS would cut it with an ellipsis)
CUT_SHORT = """() => Array.from(document.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricLabel"]'))
    .flatMap(e => [e, ...e.querySelectorAll('*')]).filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => e.textContent)"""


def browser_test(fn):
    for mark in (pytest.mark.browser, pytest.mark.slow,
                 pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")):
        fn = mark(fn)
    return fn


def shots_dir(tmp_path: Path) -> Path:
    folder = Path(ARTIFACTS) / "browser" if ARTIFACTS else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture()
def server(tmp_path):
    """The app on a small store (tests/fixtures.py) in `tmp_path`, no data: its URL."""
    build_store(tmp_path)
    with serve(tmp_path, DSE_STORE=str(tmp_path / "results.sqlite"), DSE_CHECKPOINTS=str(tmp_path / "checkpoints"),
               DSE_RUNS=str(tmp_path / "runs"), DSE_DATA="") as url:
        yield url


@pytest.fixture()
def first_run(tmp_path):
    """A working folder as a new user has it: results in the store, CIFAR-10 (a tiny tree) in ./data, nothing set."""
    build_store(tmp_path)
    make_tree(tmp_path / "data" / "cifar", per_class=26)  # 260 training images: one batch of the recipe's 256
    try:
        with serve(tmp_path, DSE_STORE=str(tmp_path / "results.sqlite"), DSE_CHECKPOINTS=str(tmp_path / "checkpoints"),
                   DSE_RUNS=str(tmp_path / "runs"), DSE_DATA="", DSE_ALLOWED_DIRS="") as url:
            yield url
    finally:  # a test that failed mid-job leaves no worker behind (a 500-epoch training would slow every later test)
        stop_workers(tmp_path / "results.sqlite")


def stop_workers(path: Path) -> None:
    """Cancel every job of the store at `path` still queued or running, and wait (10 s at most) for its worker."""
    from dse.results.store import Store
    from dse.run import jobs

    if not path.exists():
        return
    store = Store(path)
    active = [r for r in store.jobs().itertuples() if r.state in ("queued", "running")]
    for r in active:
        jobs.cancel(store, r.job_id)
    pids = [int(r.pid) for r in active if r.pid]
    t0 = time.time()
    while any(_alive(p) for p in pids) and time.time() - t0 < 10:
        time.sleep(0.2)


@browser_test
def test_first_run_every_tab_and_a_job_started_cancelled_and_retried(first_run, tmp_path):
    from playwright.sync_api import expect

    from dse.results.store import Store

    shots = shots_dir(tmp_path)
    with chromium_page() as page:
        page.goto(first_run, timeout=WAIT)
        page.get_by_text("Accuracy under faults").wait_for(timeout=WAIT)
        page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT)
        assert page.locator(".js-plotly-plot .scatterlayer .point").count() > 0  # the Pareto charts, with data
        assert page.evaluate(CUT_SHORT) == []
        page.screenshot(path=str(shots / "01-first-page.png"), full_page=True)

        page.get_by_text("Training and data").click()  # ./data is found with no variable set and no restart
        expect(page.get_by_label("CIFAR-10 data path", exact=True)).to_have_value("data")

        def radio(label):  # an option of the sidebar's BatchNorm statistics choice
            return lambda: page.get_by_role("radiogroup", name="BatchNorm statistics").get_by_text(label, exact=True).click()

        def rate(percent):
            def act():
                page.get_by_label("SA1 fault rate f (%)", exact=True).fill(percent)
                page.keyboard.press("Enter")
            return act

        steps = {  # one control per tab (the tab's own, else the sidebar's), and what the tab shows afterwards
            "Pareto & recommendation": (lambda: page.get_by_role("radiogroup", name="Front and cheapest by")
                                        .get_by_text("energy per image", exact=True).click(), "recommend"),
            "Fault tolerance": (radio("paper"), "BN: paper (Algorithm 1) · "),
            "1x1 mapping (Fig. 7)": (radio("per chip"), "processor vs on the crossbar"),
            "Calibration images": (rate("30"), "at 30%"),
            "Teaching": (None, "SA1 fault map of conv1"),  # drawn on opening, no toggle first
            "Results table": (rate("10"), "Download design points (CSV)"),
            "Yield": (lambda: page.get_by_label("Minimum yield (%)", exact=True).fill("50") or page.keyboard.press("Enter"),
                      "Chip yield"),
            "Spatial defects": (None, "one tile of conv1"),
        }
        for i, (tab, (act, shows)) in enumerate(steps.items(), start=2):
            # while a rerun replaces the page, its old tabs can linger beside the new ones for a moment
            expect(page.get_by_role("tab", name=tab)).to_have_count(1, timeout=WAIT)
            page.get_by_role("tab", name=tab).click()
            settle(page)  # only the open tab is drawn: its rerun
            if act:
                act()
                settle(page)
            if shows:
                page.get_by_text(shows).first.wait_for(state="attached", timeout=WAIT)  # chart titles are SVG
            page.screenshot(path=str(shots / f"{i:02d}-{tab.split()[0].lower()}.png"), full_page=True)

        if not page.get_by_label("Training epochs", exact=True).is_visible():  # the sidebar changed: reopen
            page.get_by_text("Training and data").click()
        page.get_by_label("Training epochs", exact=True).fill("500")  # long enough to be caught running
        page.keyboard.press("Enter")
        settle(page)
        network = page.get_by_role("combobox", name="Network")  # a point not trained yet: VGG13
        network.click()
        page.keyboard.type("VGG13")
        page.keyboard.press("Enter")
        settle(page)
        expect(page.locator("h3").first).to_contain_text("vgg13", timeout=WAIT)
        page.get_by_role("button", name="Train this design point (500 epochs)").click()
        settle(page)
        expect(page.get_by_text(re.compile(r"training \((queued|running)")).first).to_be_visible(timeout=WAIT)
        store = Store(tmp_path / "results.sqlite")
        (jid,) = store.jobs().job_id

        page.get_by_role("tab", name="Jobs").click()
        settle(page)
        page.get_by_role("button", name="Cancel").first.click()
        expect(page.get_by_role("button", name="Retry").first).to_be_visible(timeout=WAIT)
        assert store.job(jid)["state"] == "cancelled"
        page.screenshot(path=str(shots / "10-job-cancelled.png"), full_page=True)
        page.get_by_role("button", name="Retry").first.click()
        expect(page.get_by_role("button", name="Cancel").first).to_be_visible(timeout=WAIT)
        assert store.job(jid)["state"] in ("queued", "running")
        page.screenshot(path=str(shots / "11-job-retried.png"), full_page=True)
        page.get_by_role("button", name="Cancel").first.click()  # leave no worker behind
        expect(page.get_by_role("button", name="Retry").first).to_be_visible(timeout=WAIT)
    t0 = time.time()
    while store.job(jid)["pid"] and _alive(int(store.job(jid)["pid"])) and time.time() - t0 < 30:
        time.sleep(0.2)
    print(f"screenshots in {shots}")


@browser_test
def test_a_new_design_point_trained_and_evaluated_from_the_page(first_run, tmp_path):
    """The done-when of a first user: a point nobody trained, trained and then evaluated from the page, with no
    restart; the results appear by themselves when each job ends."""
    from playwright.sync_api import expect

    shots = shots_dir(tmp_path)
    with chromium_page() as page:
        page.goto(first_run, timeout=WAIT)
        page.get_by_text("Accuracy under faults").wait_for(timeout=WAIT)
        page.get_by_text("Training and data").click()
        page.get_by_label("Training epochs", exact=True).fill("1")
        page.keyboard.press("Enter")
        settle(page)
        page.get_by_text("Evaluation protocol").click()
        page.get_by_label("Crossbar instances", exact=True).fill("2")
        page.keyboard.press("Enter")
        settle(page)
        page.get_by_role("slider", name="Width multiplier").focus()  # 1.0x -> 1.2x: not trained yet
        page.keyboard.press("ArrowRight")
        settle(page)
        expect(page.locator("h3").first).to_contain_text("resnet20 1.2x", timeout=WAIT)
        page.get_by_role("button", name="Train this design point (1 epochs)").click()
        evaluate = page.get_by_role("button", name=re.compile(r"Evaluate at 10% SA1 faults \(2 crossbars"))
        expect(evaluate).to_be_visible(timeout=300_000)  # trained: the page offers the next step by itself
        evaluate.click()
        accuracy = page.locator('[data-testid="stMetricValue"]').first  # "Accuracy under faults"
        expect(accuracy).to_have_text(re.compile(r"^\d+\.\d\d%$"), timeout=300_000)
        expect(page.get_by_text(re.compile(r"^Status: evaluated")).first).to_be_visible()
        assert page.evaluate(CUT_SHORT) == []
        page.screenshot(path=str(shots / "20-new-point-evaluated.png"), full_page=True)


# a plotly title wider than its chart, or a table that scrolls sideways, in the tab on show (#38 item 8)
CLIPPED = """() => {
  const bad = [];
  document.querySelectorAll('.js-plotly-plot').forEach(p => {
    const svg = p.querySelector('svg.main-svg'); if (!svg) return;
    const box = svg.getBoundingClientRect();
    p.querySelectorAll('.gtitle').forEach(t => { const r = t.getBoundingClientRect();
      if (r.width && (r.right > box.right + 1 || r.left < box.left - 1)) bad.push('title: ' + t.textContent); });
  });
  document.querySelectorAll('[data-testid="stDataFrame"]').forEach(d => {
    const r = d.getBoundingClientRect();
    if (r.width && r.right > window.innerWidth) bad.push('table wider than the window');
    const sc = d.querySelector('.dvn-scroller');
    if (sc && sc.clientWidth && sc.scrollWidth > sc.clientWidth + 1) bad.push('table scrolls sideways');
  });
  return bad; }"""


@browser_test
def test_lesson_mode_teaching_in_sa0_and_nothing_clipped_at_1600_px(server, tmp_path):
    """A teacher's path: no title or table cut at 1600x1000 in any tab, Teaching naming SA0 when it is chosen,
    and `?lesson=1` showing its four steps without data."""
    shots = shots_dir(tmp_path)
    with chromium_page() as page:
        page.set_viewport_size({"width": 1600, "height": 1000})
        page.goto(server, timeout=WAIT)
        page.get_by_text("Accuracy under faults").wait_for(timeout=WAIT)
        settle(page)
        for tab in ("Pareto & recommendation", "Fault tolerance", "1x1 mapping (Fig. 7)", "Results table", "Yield"):
            page.get_by_role("tab", name=tab).click()
            settle(page)
            assert page.evaluate(CLIPPED) == [], tab
        page.locator('[data-testid="stSidebar"]').get_by_text("SA0", exact=True).click()
        settle(page)
        page.get_by_role("tab", name="Teaching").click()
        settle(page)
        page.locator(".st-key-faultmap .js-plotly-plot").wait_for(timeout=WAIT)
        page.get_by_text("SA0 fault map of conv1").first.wait_for(state="attached", timeout=WAIT)
        page.get_by_text("the largest level of its sign (SA0)").first.wait_for(timeout=WAIT)
        page.screenshot(path=str(shots / "teaching-sa0.png"))
        page.goto(f"{server}/?lesson=1", timeout=WAIT)
        page.get_by_text("4. With per-chip calibration").wait_for(timeout=WAIT)
        settle(page)
        for i in (1, 2, 3, 4):
            page.locator(f".st-key-lesson-{i} .js-plotly-plot").wait_for(timeout=WAIT)
        assert page.evaluate(CLIPPED) == []
        page.screenshot(path=str(shots / "lesson.png"), full_page=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


@browser_test
def test_readme_screenshot_from_the_shipped_checkpoints(tmp_path, request):
    if not any((ROOT / "checkpoints").glob("*.safetensors")):
        pytest.skip("no shipped checkpoints")
    shots = shots_dir(tmp_path)
    with serve(tmp_path, DSE_STORE=str(tmp_path / "results.sqlite"), DSE_CHECKPOINTS=str(ROOT / "checkpoints"),
               DSE_RUNS=str(tmp_path / "runs"), DSE_DATA="") as url, chromium_page() as page:
        page.set_viewport_size({"width": 1500, "height": 1750})  # the cards in their groups and the default front
        page.goto(url, timeout=WAIT)
        page.get_by_text("Accuracy under faults").wait_for(timeout=WAIT)
        page.locator(".js-plotly-plot .scatterlayer .point").first.wait_for(timeout=WAIT)
        settle(page)
        assert page.evaluate(CUT_SHORT) == []
        page.screenshot(path=str(shots / "app.png"))
    if request.config.getoption("--update-screenshot"):
        save_screenshot(shots / "app.png", SCREENSHOT)
        print(f"wrote {SCREENSHOT}")


@browser_test
def test_the_page_speed_script_runs_on_a_tiny_case(tmp_path):
    """tests/pagespeed.py end to end, once each on the test store's checkpoints (its timings are not checked)."""
    from tests import pagespeed

    build_store(tmp_path)
    samples = pagespeed.measure(tmp_path / "checkpoints", runs=1, reloads=1, rounds=2,
                                sections=["Pareto & recommendation", "Teaching", "Jobs"])
    assert {k: len(v) for k, v in samples.items()} == {"first start": 1, "first load": 1, "warm reload": 1,
                                                       "tab switch (first open)": 2, "tab switch (warm)": 4}
    rows = pagespeed.summary(samples)
    assert all(r["median_s"] > 0 for r in rows)
    assert {r["what"]: r["met"] is not None for r in rows} == {k: k in pagespeed.TARGETS for k in samples}
    assert "| first load | 1 |" in pagespeed.markdown(rows)
