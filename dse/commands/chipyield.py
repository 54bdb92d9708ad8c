"""`python -m dse yield CKPT --fault-rate F --target T`: the share of simulated chips (crossbar instances) of a
checkpoint's evaluation in the results store whose accuracy reaches T%, with its exact (Clopper-Pearson) 95%
interval, under one BN protocol. Reads the evaluation of exactly these weights from the store, after importing
the checkpoint's folder (and its manifest.json, as the app does), so shipped results answer at once; it runs nothing."""
from __future__ import annotations

from dse.commands import _args


def add_parser(sub) -> None:
    p = sub.add_parser("yield", help="chip yield: the share of simulated chips reaching an accuracy target")
    p.add_argument("checkpoint", help="checkpoint (.safetensors)")
    p.add_argument("--fault-rate", type=_args.rate, required=True, help="fault rate f in [0, 1)")
    p.add_argument("--target", type=_args.percent, required=True, help="accuracy target in percent, in [0, 100]")
    _args.add_bn(p, "the evaluation read")
    p.add_argument("--store", default=None, help="results store (default: $DSE_STORE or runs/results.sqlite)")
    _args.add_json(p)
    p.set_defaults(func=run)


def how_to_record(args, bn) -> str:
    """The command that records the missing evaluation under BN protocol `bn` in the store (`evaluate` runs as a
    job, into the store)."""
    from dse.domain.bn import Chip

    store = f" --store {args.store}" if args.store else ""
    how = f" --bn {bn.name}" + (f" --calib-images {bn.images}" if isinstance(bn, Chip) else "")
    return f"run `python -m dse evaluate {args.checkpoint} --data PATH --fault-rate {args.fault_rate:g}{how}{store}`"


def run(args) -> dict:
    from pathlib import Path

    from dse.core.io.checkpoint import load_checkpoint
    from dse.domain.errors import DSEError
    from dse.domain.bn import parse_bn
    from dse.domain.faultspec import parse_fault_model
    from dse.results.catalog import sync
    from dse.domain.point import DesignPoint, label
    from dse.results.store import Store, default_store_path
    from dse.view import yields

    ckpt = load_checkpoint(args.checkpoint)
    m = ckpt.meta
    point = DesignPoint.of(m)
    bn = parse_bn(args.bn, args.calib_images)  # the arguments, parsed once
    how = bn.label
    path = args.store or default_store_path()
    missing = (f"no evaluation of {args.checkpoint} at fault rate {args.fault_rate:g} under BN {how} in "
               f"{path}; {how_to_record(args, bn)}")
    store = Store(path)
    sync(store, [Path(args.checkpoint).parent])  # the folder's manifest: shipped evaluations count
    rows = store.evaluation_rows()
    rows = rows[(rows.point_id == point.point_id) & (rows.checkpoint_sha == ckpt.sha256)]
    rows = rows.assign(network=point.network, width=point.width, shortcut_kernel=point.shortcut_kernel,
                       mapping=point.mapping, dropconnect=point.dropconnect)
    y = yields.point_yield(rows, point.point_id, parse_fault_model("sa1", args.fault_rate), args.target, bn=bn)
    if y is None:
        raise DSEError(missing)
    out = {"checkpoint": args.checkpoint, "design_point": label(m), "store": str(path), "bn": bn.name,
           "calib_images": bn.images, **y}
    if not args.json:
        print(f"{args.checkpoint}: {label(m)} at fault rate {args.fault_rate:g}; BN: {how}")
        print(f"  yield at accuracy >= {args.target:g}%: {y['yield']:.1%} ({y['k']} of {y['n']} chips); "
              f"{y['level']:.0%} Clopper-Pearson interval [{y['low']:.1%}, {y['high']:.1%}] (BN: {how})")
        print(f"  chips' accuracy: mean {y['mean']:.2f}%, worst {y['worst']:.2f}% on {y['test_images']:,} "
              f"test images; from {path}")
    return out
