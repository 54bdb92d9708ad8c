"""`python -m dse calibrate CKPT`: (re)compute BN statistics for target fault rates, in place; run as a job
(dse/run/jobs.py), so the store follows the checkpoint's new weights digest."""
from __future__ import annotations

from dse.commands import _args
from dse.domain.paper import FAULT_RATES


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="re-estimate BatchNorm statistics per target fault rate")
    p.add_argument("checkpoint", help="checkpoint (.safetensors)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (or $DSE_DATA)")
    p.add_argument("--fault-rates", type=_args.rate_list, default=list(FAULT_RATES))
    p.add_argument("--calib-images", type=_args.positive_int, default=None,
                   help="training images per pass (default: all)")
    p.add_argument("--seed", type=_args.nonneg_int, default=0)
    _args.add_device(p)
    _args.add_precision(p, "the calibration passes")
    _args.add_store(p)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from pathlib import Path

    from dse.core.io.checkpoint import read_meta
    from dse.results.store import open_store
    from dse.run import jobs
    from dse.run.tasks import CalibrateTask

    read_meta(args.checkpoint)  # a missing or foreign file is named before anything else
    task = CalibrateTask(str(Path(args.checkpoint).absolute()), tuple(args.fault_rates), _args.data_path(args.data),
                         calib_images=args.calib_images, seed=args.seed, device=args.device, precision=args.precision)
    store = open_store(args.store)
    with _args.job_bar("calibrate", args.json) as bar:
        out = jobs.run_here(store, task, progress=bar)
    cal = out["calibration"]
    if not args.json:
        print(f"calibrated {args.checkpoint} for fault rates {', '.join(f'{r:g}' for r in args.fault_rates)} "
              f"in {cal['time_s']}s ({out['choice']}); fault-free test accuracy {cal.get('test_accuracy')}%; "
              f"recorded in {store.path}")
    return cal
