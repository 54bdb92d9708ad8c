"""`python -m dse lifetime CKPT --trajectory T --target A`: accuracy against time as a chip's fault rate grows
along a trajectory f(t), with intervals, and the months until the mean accuracy (or the chip yield) falls below
the target (dse/core/evaluation/lifetime.py)."""
from __future__ import annotations

import argparse
from itertools import pairwise

from dse.commands import _args


def trajectory(text: str):
    from dse.core.evaluation.lifetime import parse_trajectory

    return _args._wrap(parse_trajectory)(text)


def month_list(text: str) -> list[float]:
    """Comma-separated months >= 0, increasing, e.g. 0,6,12,24."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    months = [_args._in_list(_args.nonneg_float, p, text) for p in parts]
    if not months or any(b <= a for a, b in pairwise(months)):
        raise argparse.ArgumentTypeError(f"expected increasing comma-separated months >= 0, got {text!r}")
    return months


def add_parser(sub) -> None:
    p = sub.add_parser("lifetime", help="accuracy against time along a fault-rate trajectory; months until a target")
    p.add_argument("checkpoint", help="checkpoint (.safetensors)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (or $DSE_DATA)")
    p.add_argument("--trajectory", type=trajectory, required=True,
                   help='f(t): points "0:0.01,12:0.05,24:0.12" (month:rate), "constant:RATE" or '
                        '"weibull:fmax=F,eta=MONTHS[,beta=B][,f0=F0]"')
    p.add_argument("--months", type=month_list, default=None,
                   help="months to evaluate (default: the trajectory's points, or 0,6,...,60 for a named model)")
    p.add_argument("--target", type=_args.percent, required=True, help="accuracy target in percent")
    p.add_argument("--min-yield", type=_args.percent, default=None,
                   help="also report when the share of chips reaching the target falls below this percent")
    p.add_argument("--instances", type=_args.positive_int, default=20, help="chips (crossbar instances) per month")
    p.add_argument("--seed", type=_args.nonneg_int, default=0, help="base seed of the fault maps")
    _args.add_fault_model(p)
    _args.add_bn(p, "each month's evaluation")
    p.add_argument("--test-images", type=_args.positive_int, default=None, help="evaluate on the first N only")
    p.add_argument("--batch-size", type=_args.positive_int, default=500)
    _args.add_device(p)
    _args.add_precision(p, "the evaluations", evaluation=True)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from dse.core.evaluation.evaluate import Protocol
    from dse.core.evaluation.lifetime import evaluate_lifetime
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.io.data import load_cifar10
    from dse.core.runtime.device import pick_device

    protocol = Protocol(instances=args.instances, seed=args.seed, fault_model=_args.fault_model_of(args),
                        test_images=args.test_images, bn=args.bn, calib_images=args.calib_images).check()
    ckpt = load_checkpoint(args.checkpoint)
    data = load_cifar10(args.data)
    months = args.months or list(args.trajectory.default_months())
    min_yield = None if args.min_yield is None else args.min_yield / 100
    out = evaluate_lifetime(ckpt, data.test_x, data.test_y, args.trajectory, months=months, protocol=protocol,
                            target=args.target,
                            min_yield=min_yield, device=pick_device(args.device), progress=not args.json,
                            batch_size=args.batch_size, calib_x=data.train_x, precision=args.precision)
    if not args.json:
        print(f"{ckpt.path}: {out['network']} w={out['width']:g} p={out['dropconnect']:g}; trajectory "
              f"{args.trajectory.text}; faults: {protocol.fault_model}; BN: {protocol.bn_label}; "
              f"{args.instances} chips a month")
        print(f"  {'month':>6} {'f(t)':>7} {'mean':>7} {'95% CI':>15} {'worst':>7} {'yield':>7}")
        for r in out["rows"]:
            ci = f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if r["n"] > 1 else "-"
            print(f"  {r['month']:>6g} {r['fault_rate']:>7.4f} {r['mean']:>7.2f} {ci:>15} {r['worst']:>7.2f} "
                  f"{r['yield']:>7.1%}")
        print("  " + when(out["months_to_target"], f"mean accuracy falls below {args.target:g}%", months[-1]))
        if min_yield is not None:
            print("  " + when(out["months_to_min_yield"],
                              f"yield at {args.target:g}% falls below {args.min_yield:g}%", months[-1]))
    return out


def when(month, what: str, last: float) -> str:
    return f"{what} after {month:.1f} months" if month is not None else f"{what}: not within {last:g} months"
