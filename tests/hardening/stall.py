"""`python -m tests.hardening.stall ARGS`: `python -m dse ARGS` that stops at a chosen place and waits there to
be killed, so a test can SIGKILL it exactly mid-epoch or inside an atomic write.

DSE_STALL = "train_step:N": before the N-th training step;
DSE_STALL = "atomic_write:GLOB:N": in the N-th dse.core.io.atomic.atomic_write to a file named like GLOB, once the temp
file is written and before it is synced and renamed over the target (where a kill hurts most).
On arriving it writes its pid to DSE_STALL_FILE and sleeps."""
from __future__ import annotations

import fnmatch
import os
import sys
import time
from pathlib import Path


def _stall(*_):
    Path(os.environ["DSE_STALL_FILE"]).write_text(str(os.getpid()))
    time.sleep(600)  # the test kills this process here


def _nth(n: int, match):
    """True on the n-th call whose argument matches."""
    seen = [0]

    def hit(arg) -> bool:
        if not match(arg):
            return False
        seen[0] += 1
        return seen[0] == n

    return hit


def install(spec: str) -> None:
    where, *rest = spec.split(":")
    if where == "train_step":
        import dse.core.training.train

        real_step, hit_step = dse.core.training.train.train_step, _nth(int(rest[0]), lambda _: True)

        def train_step(*args, **kwargs):
            if hit_step(None):
                _stall()
            return real_step(*args, **kwargs)

        dse.core.training.train.train_step = train_step
    elif where == "atomic_write":
        import dse.core.io.atomic  # patched before any module binds `from dse.core.io.atomic import atomic_write`

        real_write, hit_write = dse.core.io.atomic.atomic_write, _nth(int(rest[1]), lambda p: fnmatch.fnmatch(Path(p).name, rest[0]))

        def atomic_write(path, data):
            if hit_write(path):
                os.fsync = _stall  # atomic_write calls it after writing the temp file, before the rename
            return real_write(path, data)

        dse.core.io.atomic.atomic_write = atomic_write
    else:
        raise SystemExit(f"unknown stall point {spec!r}")


if __name__ == "__main__":
    install(os.environ["DSE_STALL"])
    from dse.cli import main

    sys.exit(main(sys.argv[1:]))
