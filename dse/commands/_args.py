"""Argument types shared by the commands: each rejects a bad value with one line naming it."""
from __future__ import annotations

import argparse
import math

from dse.core.errors import DSEError
from dse.core.protocol import CELL_BITS, DEFAULT_BN, DEFAULT_CALIB_IMAGES, FAULT_PARAMS, MAX_SPARES, fault_model_name, parse_fault_model


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


def unit_interval(text: str) -> float:
    """A number in [0, 1), e.g. an EMA decay."""
    return _number(text, float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def choice(allowed, what: str):
    """A parser accepting one of `allowed` (names), rejecting others with the list."""
    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"unknown {what} {text!r}; use one of {', '.join(allowed)}")
        return text

    parse.__name__ = what
    return parse


def percent(text: str) -> float:
    """A percentage in [0, 100], e.g. an accuracy target."""
    return _number(text, float, lambda v: 0 <= v <= 100, "a percentage in [0, 100]")


def rate(text: str) -> float:
    """A probability in [0, 1)."""
    from dse.core.faults.dropconnect import check_rate

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
    from dse.core.evaluation.calibrate import check_bn_protocol

    return _wrap(check_bn_protocol)(text)


def add_bn(parser: argparse.ArgumentParser, what: str = "the evaluation") -> None:
    """--bn and --calib-images, their defaults the one BN default (dse/core/protocol.py: DEFAULT_BN)."""
    parser.add_argument("--bn", default=DEFAULT_BN, type=bn_protocol,
                        help=f"BN statistics of {what} under faults (default {DEFAULT_BN}): chip (re-estimated "
                             "through each faulty chip from unlabeled training images), paper (the paper's "
                             "Algorithm 1, for p' = f: --bn paper reproduces the paper) or batch (each test "
                             "batch's own; transductive, an ablation)")
    parser.add_argument("--calib-images", type=positive_int, default=DEFAULT_CALIB_IMAGES,
                        help=f"training images each chip calibrates its BN statistics on (--bn chip; "
                             f"default {DEFAULT_CALIB_IMAGES})")


def width(text: str) -> float:
    from dse.core.models import check_width

    return _wrap(check_width)(text)


def network(text: str) -> str:
    from dse.core.models import check_network

    return _wrap(check_network)(text.lower())


def add_device(parser: argparse.ArgumentParser) -> None:
    from dse.core.runtime.device import check_device_name

    parser.add_argument("--device", default="auto", type=_wrap(check_device_name),
                        help="auto (CUDA when present), cpu, cuda or cuda:N")


def precision(text: str) -> str:
    from dse.core.runtime.precision import check_precision

    return _wrap(check_precision)(text)


def float_precision(text: str) -> str:
    """A precision for a command that trains or calibrates: int8 is refused in one line."""
    if text == "int8":
        raise argparse.ArgumentTypeError("int8 is for evaluation only (evaluate, calib-curve, lifetime, sensitivity, "
                                         "spatial-report); training and calibration run in auto, fp32 or bf16")
    return precision(text)


def add_precision(parser: argparse.ArgumentParser, what: str = "the computation", *, evaluation: bool = False) -> None:
    """--precision; `evaluation`: the command only evaluates, so int8 is offered (dse/core/evaluation/int8.py)."""
    int8 = (" or int8 (the crossbar's 8-bit levels and 8-bit inputs on int8 kernels; auto picks it only where "
            "dse bench showed it equal to fp32 and faster here)") if evaluation else ""
    parser.add_argument("--precision", default=None, type=precision if evaluation else float_precision,
                        help=f"arithmetic of {what}: auto (bf16 where this machine has it natively, it is faster "
                             f"and gives fp32's answers; measured once and cached), fp32, bf16{int8} "
                             "(default: $DSE_PRECISION or auto)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def add_fault_model(parser: argparse.ArgumentParser) -> None:
    """--fault-model and its options; fault_model_of(args) turns them into the canonical name."""
    parser.add_argument("--fault-model", default="sa1",
                        help="sa1 (weight reads 0), sa0 (reads max magnitude), or on the physical tiles: rows, cols "
                             "(whole lines stuck), clustered (clusters of stuck cells), mixed (random SA1 plus lines)")
    parser.add_argument("--cluster-size", type=positive_float, default=None,
                        help=f"clustered: mean cluster side in cells (default {FAULT_PARAMS['clustered'][1]:g})")
    parser.add_argument("--mixed-share", type=nonneg_float, default=None,
                        help=f"mixed: share of the cell rate from random SA1 cells, the rest lines "
                             f"(default {FAULT_PARAMS['mixed'][1]:g})")
    parser.add_argument("--remap", action="store_true",
                        help="permute each tile's rows and columns to the chip's known fault map first")
    parser.add_argument("--spares", type=nonneg_int, default=0,
                        help=f"spare columns per tile for --remap (0 to {MAX_SPARES})")
    parser.add_argument("--bits-per-cell", type=positive_int, default=None, choices=list(CELL_BITS),
                        help="bits per RRAM cell for sa1/sa0: an 8-bit weight spans 8/B cells, each stuck on its own "
                             "(default 8: one cell per weight, the paper's); the fault model's name carries it (+bpc:B)")


def fault_model_of(args) -> str:
    """The canonical fault model name from --fault-model and its options (DSEError naming a bad one)."""
    spec = parse_fault_model(args.fault_model)
    param = None
    for option, model, value in (("--cluster-size", "clustered", args.cluster_size),
                                 ("--mixed-share", "mixed", args.mixed_share)):
        if value is not None:
            if spec.model != model:
                raise DSEError(f"{option} {value:g} applies to --fault-model {model} only, not {args.fault_model!r}")
            param = value
    name = fault_model_name(spec.model, param if param is not None else spec.param,
                            spec.remap or args.remap, args.spares or spec.spares,
                            getattr(args, "bits_per_cell", None) or spec.bits_per_cell)
    return name
