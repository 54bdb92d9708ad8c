"""`python -m dse lifetime CKPT --trajectory T --target A`: accuracy against time as a chip's fault rate grows
along a trajectory f(t), with intervals, and the months until the mean accuracy (or the chip yield) falls below
the target (dse/core/evaluation/lifetime.py). Each distinct f(t) is one EvalSpec run as a job (dse/run/jobs.py): its
chips are recorded in the results store like any evaluation's and resume from their journal."""
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
    _args.add_store(p)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from pathlib import Path

    from dse.core.io.checkpoint import read_meta
    from dse.core.evaluation.lifetime import check_months, lifetime_table
    from dse.domain.point import DesignPoint
    from dse.results.store import open_store
    from dse.run import jobs
    from dse.run.tasks import EvaluateTask

    meta = read_meta(args.checkpoint)
    spec = _args.eval_spec(args, DesignPoint.of(meta))  # at each month's f(t) below: the one thing that varies
    data, checkpoint = _args.data_path(args.data), str(Path(args.checkpoint).absolute())
    months = check_months(args.months or list(args.trajectory.default_months()))
    rates = [round(args.trajectory.rate(m), 12) for m in months]
    store = open_store(args.store)
    by_rate = {}
    for rate in sorted(set(rates)):  # a month whose rate repeats another's reuses its result (the same chips)
        task = EvaluateTask(checkpoint, spec.at(rate), data, args.device, batch_size=args.batch_size)
        with _args.job_bar(f"f={rate:g}", args.json) as bar:
            by_rate[rate] = jobs.run_here(store, task, progress=bar)["results"][0]
    min_yield = None if args.min_yield is None else args.min_yield / 100
    first = by_rate[min(by_rate)]
    out = {"checkpoint": args.checkpoint, **{k: meta[k] for k in ("network", "width", "shortcut_kernel", "mapping",
                                                                  "dropconnect")},
           "fault_free_accuracy": meta.get("test_accuracy"),
           "fault_free_quantized_accuracy": first["fault_free_quantized_accuracy"], "bn": spec.bn.label,
           "precision": first["precision"], "store": str(store.path), "trajectory": args.trajectory.text,
           **lifetime_table(months, rates, by_rate, args.target, min_yield)}
    if not args.json:
        print(f"{args.checkpoint}: {out['network']} w={out['width']:g} p={out['dropconnect']:g}; trajectory "
              f"{args.trajectory.text}; faults: {spec.fault.name}; BN: {spec.bn.label}; "
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
