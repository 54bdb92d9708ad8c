"""dse.core.runtime.allocator: with freed memory kept, re-allocating a large tensor stops faulting its pages in."""
import subprocess
import sys

import pytest

from dse import cli
from dse.core.runtime import allocator

# a fresh process: an evaluation-like loop of convs over 52 MB activations; prints the page faults of 5 steps
PROBE = """
import resource, sys, torch
from dse.core.runtime.allocator import keep_freed_memory
assert keep_freed_memory(sys.argv[1] == "keep")
torch.set_num_threads(1)
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
conv, x = torch.nn.Conv2d(64, 64, 1).eval(), torch.randn(200, 64, 32, 32)
def step():
    with torch.no_grad():
        torch.relu(conv(torch.relu(conv(x)))).sum()
step(), step()
before = faults()
for _ in range(5):
    step()
print(faults() - before)
"""

glibc = pytest.mark.skipif(allocator._glibc() is None, reason="mallopt settings are glibc's")


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@glibc
def test_kept_memory_is_reused_without_page_faults():
    default, kept = _faults("default"), _faults("keep")
    assert default > 5 * 13_107  # each step's 52 MB outputs are >= 13,107 fresh 4 KB pages (fewer if huge pages)
    assert kept < default / 10


def test_every_command_runs_with_freed_memory_kept(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda keep=True: calls.append(keep) or True)
    assert cli.main(["cost", "--network", "resnet20"]) == 0
    assert calls == [True]


def test_off_glibc_it_changes_nothing(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert allocator.keep_freed_memory() is False
