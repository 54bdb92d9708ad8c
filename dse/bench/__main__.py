"""A measurement in its own process: `python -m dse.bench '{"kind": ..., "kwargs": ...}'`."""
import sys

from dse.bench.measure import _child_main

raise SystemExit(_child_main(sys.argv[1:]))
