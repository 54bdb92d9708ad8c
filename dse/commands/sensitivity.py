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
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from dse.core.evaluation.evaluate import Evaluator, layer_sensitivity
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.io.data import head, load_cifar10
    from dse.core.runtime.device import pick_device

    ckpt = load_checkpoint(args.checkpoint)
    data = load_cifar10(args.data)
    test_x, test_y = head(data.test_x, data.test_y, args.test_images)  # every class, not the first one or two
    n = len(test_y)
    ev = Evaluator(ckpt, test_x, test_y, pick_device(args.device), precision=args.precision,
                   calib_x=data.train_x)
    clean, rows = layer_sensitivity(ev, args.fault_rate, args.instances, args.seed)
    # the same instances with every layer faulty: instance i's map restricted to one layer is that layer's map above
    together = sum(ev.accuracy(ev.injector.weights(i, args.fault_rate, args.seed))
                   for i in range(args.instances)) / args.instances
    result = {"checkpoint": str(ckpt.path), "fault_rate": args.fault_rate, "instances": args.instances,
              "seed": args.seed, "test_images": n, "fault_free_accuracy": clean, "layers": rows,
              "all_layers_accuracy": together, "all_layers_drop": clean - together,
              "sum_of_layer_drops": sum(r["drop"] for r in rows)}
    if not args.json:
        print(f"{ckpt.path}: faults at {args.fault_rate:g} in one crossbar layer at a time "
              f"({args.instances} crossbars, {n} test images; fault-free {clean:.2f}%)")
        print(f"  {'layer':40s} {'weights':>8} {'accuracy':>9} {'drop':>7}")
        for r in rows:
            print(f"  {r['layer']:40s} {r['weights']:>8} {r['accuracy']:>9.2f} {r['drop']:>7.2f}")
        print(f"  sum of the single-layer drops: {result['sum_of_layer_drops']:.2f} points; every layer at once: "
              f"{together:.2f}%, a drop of {result['all_layers_drop']:.2f}")
    return result
