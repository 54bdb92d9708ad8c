"""Helpers of the hardening suite: the CLI run in-process with its output captured, subprocesses of this
checkout (never the installed copy), one torch thread where results are compared across processes."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from dse.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `python -m dse ARGV`, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse exits on a bad argument
            code = e.code
    return code, out.getvalue(), err.getvalue()


def one_line_error(argv: list[str]) -> str:
    """The single stderr line of a command that must fail: non-zero exit, no traceback."""
    code, _, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert code not in (0, None), f"{argv} succeeded"
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def env(**extra) -> dict:
    """A subprocess environment that imports this checkout's dse and uses one torch thread."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


@contextlib.contextmanager
def one_thread():
    """Float sums depend on the thread count: compare runs made with the same (one) thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def run_until_stalled(argv: list[str], stall: str, folder: Path, timeout_s: float = 180,
                      sig: int = signal.SIGKILL) -> str:
    """Run `python -m dse ARGV` under tests/hardening/stall.py until it reaches `stall` (see there), then send it
    `sig` there: SIGKILL (no handler, no cleanup, as when a terminal is closed or the machine dies) or SIGTERM
    (a cancel: the command's handler runs). Returns what it printed."""
    marker, log = folder / "stalled", folder / "stalled.log"
    marker.unlink(missing_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.hardening.stall", *argv], cwd=folder, stdout=out,
                                stderr=subprocess.STDOUT, env=env(DSE_STALL=stall, DSE_STALL_FILE=str(marker)))
    try:
        t0 = time.time()
        while not marker.exists():
            assert proc.poll() is None, f"ended before reaching {stall}: {log.read_text()[-2000:]}"
            assert time.time() - t0 < timeout_s, f"did not reach {stall} in {timeout_s} s"
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=timeout_s)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 2), log.read_text()[-2000:]
    return log.read_text()
