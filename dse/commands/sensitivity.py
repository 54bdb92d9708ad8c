"""`python -m dse sensitivity CKPT --fault-rate F`: which crossbar layers a chip's faults hurt, one at a time,
and whether their harm adds up or compounds when every layer has its faults at once."""
from __future__ import annotations

from dse.commands import _args


def add_parser(sub) -> None:
    p = sub.add_parser("sensitivity", help="accuracy with faults in one crossbar layer at a time, and in all")
    p.add_argument("checkpoint", help="checkpoint (.safetensors)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (or $DSE_DATA)")
    p.add_argument("--fault-rate", type=_args.rate, required=True, help="fault rate f in [0, 1)")
    p.add_argument("--instances", type=_args.positive_int, default=3, help="crossbar instances per layer")
    p.add_argument("--seed", type=_args.nonneg_int, default=0, help="base seed of the fault maps")
    p.add_argument("--test-images", type=_args.positive_int, default=None, help="evaluate on the first N only")
    _args.add_device(p)
    _args.add_precision(p, "the evaluations", evaluation=True)
    _args.add_store(p)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from pathlib import Path

    from dse.core.io.checkpoint import read_meta
    from dse.results.store import open_store
    from dse.run import jobs
    from dse.run.tasks import SensitivityTask

    read_meta(args.checkpoint)  # a missing or foreign file is named before anything else
    task = SensitivityTask(str(Path(args.checkpoint).absolute()), args.fault_rate, _args.data_path(args.data),
                           instances=args.instances, test_images=args.test_images, seed=args.seed, device=args.device,
                           precision=args.precision)
    store = open_store(args.store)
    with _args.job_bar("sensitivity", args.json) as bar:
        out = jobs.run_here(store, task, progress=bar)
    rows, clean, together, n = out["rows"], out["fault_free_accuracy"], out["all_layers_accuracy"], out["test_images"]
    result = {"checkpoint": args.checkpoint, "fault_rate": args.fault_rate, "instances": args.instances,
              "seed": args.seed, "test_images": n, "fault_free_accuracy": clean, "layers": rows,
              "all_layers_accuracy": together, "all_layers_drop": clean - together,
              "sum_of_layer_drops": sum(r["drop"] for r in rows), "store": str(store.path)}
    if not args.json:
        print(f"{args.checkpoint}: faults at {args.fault_rate:g} in one crossbar layer at a time "
              f"({args.instances} crossbars, {n} test images; fault-free {clean:.2f}%)")
        print(f"  {'layer':40s} {'weights':>8} {'accuracy':>9} {'drop':>7}")
        for r in rows:
            print(f"  {r['layer']:40s} {r['weights']:>8} {r['accuracy']:>9.2f} {r['drop']:>7.2f}")
        print(f"  sum of the single-layer drops: {result['sum_of_layer_drops']:.2f} points; every layer at once: "
              f"{together:.2f}%, a drop of {result['all_layers_drop']:.2f}")
    return result
