"""Argument types shared by the commands: each rejects a bad value with one line naming it."""
from __future__ import annotations

import argparse
import math

from dse.core.errors import DSEError


def _wrap(check):
    def parse(text):
        try:
            return check(text)
        except DSEError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = check.__name__
    return parse


def _number(text: str, cast, ok, what: str):
    """Parse `text` with `cast` and check it with `ok`; a failure names the value and what is allowed."""
    try:
        v = cast(text)
    except ValueError:
        v = None
    if v is None or not ok(v):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return v


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v > 0, "a positive integer")


def nonneg_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a non-negative integer")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a positive finite number")


def nonneg_float(text: str) -> float:
    return _number(text, float, lambda v: math.isfinite(v) and v >= 0, "a non-negative finite number")


def percent(text: str) -> float:
    """A percentage in [0, 100], e.g. an accuracy target."""
    return _number(text, float, lambda v: 0 <= v <= 100, "a percentage in [0, 100]")


def rate(text: str) -> float:
    """A probability in [0, 1)."""
    from dse.core.dropconnect import check_rate

    return _wrap(lambda t: check_rate(t, "rate"))(text)


def rate_list(text: str) -> list[float]:
    """Comma-separated rates, e.g. 0,0.1,0.2,0.3."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated rates in [0, 1), got {text!r}")
    return sorted({_in_list(rate, p.strip(), text) for p in parts})


def _in_list(parse, part: str, text: str):
    """parse(part); a failure names the whole list as typed too, so the user finds the bad item in it."""
    try:
        return parse(part)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e} (in {text!r})") from None


def count_list(text: str) -> list[int]:
    """Comma-separated non-negative integers, e.g. 0,32,100,500."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return sorted({_in_list(nonneg_int, p, text) for p in parts})


def bn_protocol(text: str) -> str:
    from dse.core.calibrate import check_bn_protocol

    return _wrap(check_bn_protocol)(text)


def width(text: str) -> float:
    from dse.core.models import check_width

    return _wrap(check_width)(text)


def network(text: str) -> str:
    from dse.core.models import check_network

    return _wrap(check_network)(text.lower())


def add_device(parser: argparse.ArgumentParser) -> None:
    from dse.core.device import check_device_name

    parser.add_argument("--device", default="auto", type=_wrap(check_device_name),
                        help="auto (CUDA when present), cpu, cuda or cuda:N")


def precision(text: str) -> str:
    from dse.core.precision import check_precision

    return _wrap(check_precision)(text)


def add_precision(parser: argparse.ArgumentParser, what: str = "the computation") -> None:
    parser.add_argument("--precision", default=None, type=precision,
                        help=f"arithmetic of {what}: auto (bf16 where this machine has it natively, it is faster "
                             "and gives fp32's answers; measured once and cached), fp32 or bf16 "
                             "(default: $DSE_PRECISION or auto)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
