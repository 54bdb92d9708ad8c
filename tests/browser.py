"""The page in a real headless browser: `streamlit run app.py` on localhost and Debian's chromium driven by
Playwright. Shared by tests/test_browser.py and tests/pagespeed.py; no pytest here."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WAIT = 300_000  # ms a page may take: the server, the browser and other work can share one loaded core
NO_EXCEPTION = "() => document.querySelectorAll('[data-testid=\"stException\"]').length === 0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(cwd: Path, **env):
    """`streamlit run app.py` in `cwd` with the DSE_* settings `env`; yields its URL once it answers."""
    with server(cwd, **env) as (url, _):
        yield url


@contextmanager
def server(cwd: Path, **env):
    """As `serve`, yielding (URL, the server's process)."""
    port = free_port()
    config = Path(cwd) / ".streamlit" / "config.toml"
    if not config.exists():  # the checkout's settings, as `streamlit run app.py` from the checkout reads them
        config.parent.mkdir(exist_ok=True)
        shutil.copyfile(ROOT / ".streamlit" / "config.toml", config)
    log = tempfile.TemporaryFile()  # not a pipe: a server that logs much would block on a full one
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless=true",
                             f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false"],
                            cwd=cwd, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                                str(ROOT), os.environ.get("PYTHONPATH")])), **env},  # its workers: this checkout's dse
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while time.time() - t0 < 60:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        else:
            proc.kill()
            log.seek(0)
            raise RuntimeError(f"streamlit did not start: {log.read().decode()[-2000:]}")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(60)  # a loaded machine can take its time to shut the server down
        except subprocess.TimeoutExpired:
            proc.kill()  # nothing depends on how the server ends
            proc.wait()
        log.close()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used so far; None off Linux."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def descendants_cpu(root: int, exclude: int) -> dict[int, float]:
    """CPU seconds so far of every live process under `root` (the browser's, Playwright's driver's), leaving out
    the tree of `exclude` (the server's); {} off Linux."""
    stats = {int(p.name): _stat(int(p.name)) for p in Path("/proc").glob("[0-9]*")}
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        if stat is not None:
            children.setdefault(stat[0], []).append(pid)
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid != exclude:
            out[pid] = stats[pid][1]
            todo += children.get(pid, [])
    return out


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def chromium(viewport: tuple[int, int] = (1500, 1100), extra: list[str] = ()):
    """A headless chromium; yields a function that opens a new page (a fresh context: no cache, no cookies)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", *extra])
        try:
            yield lambda: _page(browser, viewport)
        finally:
            browser.close()


def _page(browser, viewport: tuple[int, int]):
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}).new_page()
    page.set_default_timeout(WAIT)
    expect.set_options(timeout=WAIT)
    return page


@contextmanager
def chromium_page(viewport: tuple[int, int] = (1500, 1100)):
    with chromium(viewport) as new_page:
        yield new_page()


def settle(page) -> None:
    """Wait for the rerun a click started to finish, and check it raised nothing."""
    page.wait_for_timeout(300)  # the click's rerun starts
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT)
    assert page.evaluate(NO_EXCEPTION), page.locator('[data-testid="stException"]').first.inner_text()
