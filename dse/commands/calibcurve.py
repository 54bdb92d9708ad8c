"""`python -m dse calib-curve CKPT --fault-rate F --images 0,32,100,500,2000`: how many unlabeled images a
chip needs to re-estimate its BN statistics. Each N is an evaluation under the chip protocol (N=0: the
paper's Algorithm 1 statistics) on the same crossbars, recorded in the results store like any other, so
the app's calibration chart and the manifest have it."""
from __future__ import annotations

from dse.commands import _args
from dse.core.errors import DSEError
from dse.core.protocol import DEFAULT_CALIB_IMAGES


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
    p.add_argument("--store", default=None, help="results store (default: $DSE_STORE or runs/results.sqlite)")
    _args.add_device(p)
    _args.add_precision(p, "the evaluations", evaluation=True)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from pathlib import Path

    from tqdm.auto import tqdm

    from dse.core.io.data import default_data_path
    from dse.results.store import job_id, open_store
    from dse.run import jobs

    data = args.data or default_data_path()
    if data is None:
        raise DSEError("no data given: pass --data PATH (CIFAR-10 batches, an image tree or a .tar.gz) or set DSE_DATA")
    data = str(Path(data).expanduser().absolute())
    store = open_store(args.store)
    rows = []
    for n in tqdm(args.images, desc="calibration images", unit="count", disable=args.json):
        bn = "chip" if n else "paper"  # the curve is of the chip protocol's N; 0 is the paper's, by definition
        cfg = jobs.evaluate_config(str(Path(args.checkpoint).absolute()), [args.fault_rate], data=data,
                                   instances=args.instances, seed=args.seed, device=args.device,
                                   test_images=args.test_images, bn=bn, calib_images=n or DEFAULT_CALIB_IMAGES,
                                   precision=args.precision)
        result = jobs.execute("evaluate", cfg)
        jobs.record(store, job_id("evaluate", cfg), "evaluate", result)
        r = result["results"][0]
        rows.append({"calib_images": n, "bn": bn, "n": r["n"], "mean": r["mean"], "std": r["std"],
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
