"""Page speed as a user meets it: `streamlit run app.py` on a temporary results store filled from the shipped
checkpoints, driven by headless chromium (tests/browser.py).

    python -m tests.pagespeed [--runs 3] [--reloads 3] [--rounds 2] [--checkpoints checkpoints] [--json]

- first start: a server on an empty store, once: the first page fills the store from the checkpoints' manifest.
- first load: a fresh server process on the filled store and a fresh browser context, from navigation until
  the first chart is drawn (its SVG in the page); one per run.
- warm reload: the same page reloaded (a new session on a warm server) until the first chart is drawn.
- tab switch: a click on a tab until its section is drawn (its charts, and the run finished); the first round
  opens each section for the first time on that server (Teaching and Spatial defects import torch then), later
  rounds are warm.
Every figure is wall-clock seconds, median over its samples, beside the CPU seconds (user + system, all threads)
of the server process and of the browser's processes, which other work on the machine inflates less. Targets: first load <= 5 s, warm reload
<= 1.5 s, tab switch <= 0.3 s; the medians are compared with them. Nothing here is a test: tests/test_browser.py
runs it once on a tiny case to check that it works."""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from tests.browser import CHROMIUM, ROOT, chromium, cpu_seconds, descendants_cpu, server

TARGETS = {"first load": 5.0, "warm reload": 1.5, "tab switch (warm)": 0.3}
SECTIONS = ["Pareto & recommendation", "Fault tolerance", "1x1 mapping (Fig. 7)", "Calibration images", "Teaching",
            "Jobs", "Results table", "Yield", "Spatial defects"]
FIRST_CHART = ".js-plotly-plot .main-svg"
# a section is drawn when the open tab's panel holds its elements, its charts are drawn (where it draws any)
# and the run has finished (no status widget)
SECTION_DRAWN = """charts => {
  const panel = Array.from(document.querySelectorAll('[role=tabpanel]')).find(p => !p.hidden);
  if (!panel || !panel.querySelector('[data-testid=stElementContainer]')) return false;
  if (charts && !panel.querySelector('.js-plotly-plot .main-svg')) return false;
  return !document.querySelector('[data-testid="stStatusWidget"]');
}"""
CHARTS = {"Pareto & recommendation", "Fault tolerance", "1x1 mapping (Fig. 7)", "Teaching", "Yield",
          "Spatial defects"}  # the sections that draw a chart on the test store and the shipped one


def timed(pid: int, action) -> tuple[float, float | None, float | None]:
    """(wall seconds, the server's CPU seconds, the browser's CPU seconds) of `action()`."""
    me = os.getpid()
    server0, browser0, t0 = cpu_seconds(pid), descendants_cpu(me, pid), time.perf_counter()
    action()
    wall, server1, browser1 = time.perf_counter() - t0, cpu_seconds(pid), descendants_cpu(me, pid)
    browser = sum(v - browser0.get(p, 0.0) for p, v in browser1.items()) if browser1 else None
    return wall, (server1 - server0 if server0 is not None and server1 is not None else None), browser


def load(page, url: str, timeout_s: float) -> None:
    page.goto(url, timeout=timeout_s * 1000)
    page.locator(FIRST_CHART).first.wait_for(timeout=timeout_s * 1000)


def reload(page, timeout_s: float) -> None:
    page.reload(timeout=timeout_s * 1000)
    page.locator(FIRST_CHART).first.wait_for(timeout=timeout_s * 1000)


def switch(page, section: str, timeout_s: float) -> None:
    page.get_by_role("tab", name=section).click()
    page.wait_for_function(SECTION_DRAWN, arg=section in CHARTS, timeout=timeout_s * 1000, polling="raf")


def measure(checkpoints: Path, *, runs: int = 3, reloads: int = 3, rounds: int = 2,
            sections: list[str] = SECTIONS, timeout_s: float = 300.0) -> dict:
    """Every sample, by what was measured: {"first start": [(wall, cpu)], "first load": [...], ...}."""
    out: dict[str, list] = {k: [] for k in ("first start", "first load", "warm reload", "tab switch (first open)",
                                           "tab switch (warm)")}
    with tempfile.TemporaryDirectory() as tmp, chromium() as new_page:
        env = dict(DSE_STORE=str(Path(tmp) / "results.sqlite"), DSE_CHECKPOINTS=str(checkpoints),
                   DSE_RUNS=str(Path(tmp) / "runs"), DSE_DATA="")
        for run in range(runs + 1):  # run 0 fills the store: the first start
            with server(Path(tmp), **env) as (url, proc):
                page = new_page()
                out["first start" if run == 0 else "first load"].append(
                    timed(proc.pid, lambda: load(page, url, timeout_s)))
                if run == 0:
                    page.context.close()
                    continue
                out["warm reload"] += [timed(proc.pid, lambda: reload(page, timeout_s)) for _ in range(reloads)]
                for r in range(rounds):
                    for section in sections[1:] + sections[:1]:  # the page opens on the first
                        key = "tab switch (first open)" if r == 0 and section != sections[0] else "tab switch (warm)"
                        out[key].append(timed(proc.pid, lambda: switch(page, section, timeout_s)))
                page.context.close()
    return out


def summary(samples: dict) -> list[dict]:
    rows = []
    for what, triples in samples.items():
        if not triples:
            continue
        walls = [w for w, _, _ in triples]
        server, browser = ([t[i] for t in triples if t[i] is not None] for i in (1, 2))
        target = TARGETS.get(what)
        rows.append({"what": what, "n": len(triples), "median_s": statistics.median(walls), "max_s": max(walls),
                     "server_cpu_median_s": statistics.median(server) if server else None,
                     "browser_cpu_median_s": statistics.median(browser) if browser else None, "target_s": target,
                     "met": None if target is None else statistics.median(walls) <= target})
    return rows


def machine() -> dict:
    """The CPU model and the cores this process may use, and the load before the run."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores_total": os.cpu_count(), "cores_used": cores,
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
            "streamlit": version("streamlit"), "chromium": _chromium_version()}


def _chromium_version() -> str:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError, TypeError):
        return "unknown"


def markdown(rows: list[dict]) -> str:
    lines = ["| what | samples | median (s) | max (s) | server CPU, median (s) | browser CPU, median (s) | target | |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        server, browser = ("" if r[k] is None else f"{r[k]:.2f}" for k in ("server_cpu_median_s", "browser_cpu_median_s"))
        target = "" if r["target_s"] is None else f"<= {r['target_s']:g} s"
        met = "" if r["met"] is None else ("met" if r["met"] else "**missed**")
        lines.append(f"| {r['what']} | {r['n']} | {r['median_s']:.2f} | {r['max_s']:.2f} | {server} | {browser} | "
                     f"{target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.pagespeed", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints", help="checkpoint folder (default: shipped)")
    p.add_argument("--runs", type=int, default=3, help="fresh servers, each a first load (default 3)")
    p.add_argument("--reloads", type=int, default=3, help="warm reloads per run (default 3)")
    p.add_argument("--rounds", type=int, default=2, help="passes over every tab per run (default 2)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    if min(args.runs, args.reloads, args.rounds) < 1:
        p.error(f"--runs, --reloads and --rounds must be at least 1, got {args.runs}, {args.reloads}, {args.rounds}")
    if not any(args.checkpoints.glob("*.safetensors")):
        p.error(f"--checkpoints {args.checkpoints}: no *.safetensors checkpoint there")
    before = machine()
    t0 = time.time()
    rows = summary(measure(args.checkpoints.resolve(), runs=args.runs, reloads=args.reloads, rounds=args.rounds))
    result = {"machine": before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "seconds": round(time.time() - t0), "rows": rows}
    if args.json:
        print(json.dumps(result))
    else:
        m = before
        print(f"{m['cpu']}, {m['cores_used']} of {m['cores_total']} cores; load average {m['load_average']} before, "
              f"{result['load_average_after']} after; streamlit {m['streamlit']}, {m['chromium']}")
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
