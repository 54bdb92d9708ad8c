"""`python -m dse COMMAND ...`: registers one module per command (dse/commands/*.py) and turns every
DSEError into one line on stderr and exit code 2, never a traceback."""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from dse.core.errors import DSEError
from dse.core.runtime import allocator

# command modules, each with add_parser(subparsers) that sets func=handler(args) -> dict | None
COMMANDS = ["train", "calibrate", "evaluate", "info", "cost", "store", "worker", "sweep", "reproduce", "bench",
            "sensitivity", "calibcurve", "chipyield", "lifetime",
            "spatialreport", "recipestudy"]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is a single line (no usage dump) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m dse", description="RRAM fault-tolerance design-space explorer")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        importlib.import_module(f"dse.commands.{name}").add_parser(sub)
    return parser


def emit(result, as_json: bool) -> None:
    """Machine-readable output on stdout when asked; commands print their own human text otherwise."""
    if as_json and result is not None:
        print(json.dumps(result, indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    allocator.keep_freed_memory()  # a command's process computes, then exits: keep its freed blocks
    try:
        result = args.func(args)
    except DSEError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    emit(result, getattr(args, "json", False))
    return 0


def main_entry() -> None:
    """Console-script entry point (`dse ...`)."""
    raise SystemExit(main())
