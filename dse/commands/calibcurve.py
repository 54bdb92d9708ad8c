"""`python -m dse calib-curve CKPT --fault-rate F --images 0,32,100,500,2000`: how many unlabeled images a
chip needs to re-estimate its BN statistics. Each N is an evaluation under the chip protocol (N=0: the
paper's Algorithm 1 statistics) on the same crossbars, run as a job and recorded in the results store like
any other, so the app's calibration chart and the manifest have it."""
from __future__ import annotations

from dse.commands import _args


def add_parser(sub) -> None:
    p = sub.add_parser("calib-curve", help="accuracy under faults against the images each chip calibrates BN on")
    p.add_argument("checkpoint", help="checkpoint (.safetensors)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (or $DSE_DATA)")
    p.add_argument("--fault-rate", type=_args.rate, default=0.3, help="fault rate f in [0, 1) (default 0.3)")
    p.add_argument("--images", type=_args.count_list, default=[0, 32, 100, 500, 2000],
                   help="comma-separated calibration image counts; 0 is the paper's protocol (default 0,32,100,500,2000)")
    p.add_argument("--instances", type=_args.positive_int, default=20, help="crossbar instances per count")
    p.add_argument("--seed", type=_args.nonneg_int, default=0, help="base seed of the fault maps")
    p.add_argument("--test-images", type=_args.positive_int, default=None, help="evaluate on the first N only")
    _args.add_store(p)
    _args.add_device(p)
    _args.add_precision(p, "the evaluations", evaluation=True)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from pathlib import Path

    from dse.core.io.checkpoint import read_meta
    from dse.domain.bn import Chip, Paper
    from dse.domain.faultspec import parse_fault_model
    from dse.domain.point import DesignPoint
    from dse.results.store import open_store
    from dse.run import jobs
    from dse.run.tasks import EvaluateTask

    point = DesignPoint.of(read_meta(args.checkpoint))
    data, checkpoint = _args.data_path(args.data), str(Path(args.checkpoint).absolute())
    store = open_store(args.store)
    rows = []
    for n in args.images:
        # the curve is of the chip protocol's N; 0 is the paper's, by definition
        spec = _args.eval_spec(args, point, fault=parse_fault_model("sa1", args.fault_rate),
                               bn=Chip(n) if n else Paper())
        with _args.job_bar(f"N={n}", args.json) as bar:
            result = jobs.run_here(store, EvaluateTask(checkpoint, spec, data, args.device), progress=bar)
        r = result["results"][0]
        rows.append({"calib_images": n, "bn": spec.bn.name, "n": r["n"], "mean": r["mean"], "std": r["std"],
                     "ci95": r["ci95"], "worst": r["worst"], "best": r["best"], "time_s": r["time_s"]})
    out = {"checkpoint": args.checkpoint, "fault_rate": args.fault_rate, "instances": args.instances,
           "fault_free_quantized_accuracy": result["results"][0]["fault_free_quantized_accuracy"], "rows": rows}
    if not args.json:
        print(f"{args.checkpoint}: fault rate {args.fault_rate:g}, {args.instances} crossbars per count "
              f"(8-bit fault-free {out['fault_free_quantized_accuracy']:.2f}%); recorded in {store.path}")
        print(f"  {'images':>7} {'BN':>6} {'mean':>7} {'95% CI':>7} {'std':>6} {'worst':>7} {'time':>7}")
        for r in rows:
            print(f"  {r['calib_images']:>7} {r['bn']:>6} {r['mean']:>7.2f} {r['ci95']:>7.2f} {r['std']:>6.2f} "
                  f"{r['worst']:>7.2f} {r['time_s']:>6.1f}s")
    return out
