"""`python -m dse evaluate CKPT --fault-rate F ...`: Monte-Carlo accuracy under crossbar faults."""
from __future__ import annotations

from dse.commands import _args
from dse.core.protocol import parse_fault_model


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy under crossbar faults (SA1, SA0, lines, clusters; optionally "
                                        "remapped) over many simulated crossbars")
    p.add_argument("checkpoint", help="checkpoint (.safetensors)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (or $DSE_DATA)")
    p.add_argument("--fault-rate", type=_args.rate, action="append", required=True,
                   help="fault rate f in [0, 1); repeat for several")
    p.add_argument("--instances", type=_args.positive_int, default=100, help="crossbar instances (max if adaptive)")
    p.add_argument("--adaptive", type=_args.positive_float, default=None, metavar="HALF_WIDTH",
                   help="stop once the 95%% CI half-width (accuracy points) is below this")
    p.add_argument("--min-instances", type=_args.positive_int, default=20)
    p.add_argument("--seed", type=_args.nonneg_int, default=0, help="base seed of the fault maps")
    _args.add_fault_model(p)
    _args.add_bn(p)
    p.add_argument("--no-recalibrate", action="store_true", help="use the trained BN statistics at every rate")
    p.add_argument("--no-rescale", action="store_true", help="drop the 1/(1-f) scale at inference")
    p.add_argument("--test-images", type=_args.positive_int, default=None, help="evaluate on the first N only")
    p.add_argument("--batch-size", type=_args.positive_int, default=500)
    p.add_argument("--instances-per-pass", type=_args.positive_int, default=None, metavar="K",
                   help="crossbar instances per batched forward (default: $DSE_INSTANCES_PER_PASS, else measured "
                        "once per machine; a GPU gains from K > 1, a CPU seldom)")
    _args.add_device(p)
    _args.add_precision(p, "the evaluation (and each chip's BN pass)", evaluation=True)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    import warnings

    from dse.core.cost.per_image import spare_columns_cost
    from dse.core.evaluation.evaluate import Protocol, evaluate
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.io.data import load_cifar10
    from dse.core.runtime.device import pick_device
    from dse.view.explore import CHANCE_ACCURACY

    protocol = Protocol(instances=args.instances, adaptive=args.adaptive, min_instances=args.min_instances,
                        seed=args.seed, fault_model=_args.fault_model_of(args), recalibrate=not args.no_recalibrate,
                        rescale=not args.no_rescale, test_images=args.test_images, bn=args.bn,
                        calib_images=args.calib_images).check()
    ckpt = load_checkpoint(args.checkpoint)
    device = pick_device(args.device)
    data = load_cifar10(args.data)
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        result = evaluate(ckpt, data.test_x, data.test_y, args.fault_rate, protocol=protocol, device=device,
                          progress=not args.json,
                          batch_size=args.batch_size, calib_x=data.train_x, precision=args.precision,
                          instances_per_pass=args.instances_per_pass)
    result["warnings"] = sorted({str(w.message) for w in caught})
    spares = parse_fault_model(protocol.fault_model).spares
    if spares:  # what the remapping's spare columns cost in hardware
        result["spare_columns"] = spare_columns_cost(result["network"], result["width"], result["shortcut_kernel"],
                                                     result["mapping"], spares)
    if not args.json:
        for w in result["warnings"]:
            print(f"warning: {w}")
        print(f"{ckpt.path}: {result['network']} w={result['width']:g} p={result['dropconnect']:g} "
              f"({result['mapping']}); {result['results'][0]['test_images']} test images; "
              f"BN: {protocol.bn_label}; faults: {protocol.fault_model}; "
              f"precision {result['precision']} ({result['precision_reason']})")
        if "int8" in result:
            print(f"  {result['int8']}")
        n_test = result["results"][0]["test_images"]
        print(f"  fault-free 8-bit on these {n_test:,} test images: {result['fault_free_quantized_accuracy']:.2f}%"
              + (f"  (float {result['fault_free_accuracy']}%)" if n_test == len(data.test_y) else
                 f"  (the float {result['fault_free_accuracy']}% in the checkpoint is over all "
                 f"{len(data.test_y):,} test images, not comparable)"))
        print(f"  {'fault':>6} {'n':>4} {'mean':>7} {'95% CI':>15} {'std':>6} {'p5':>7} {'worst':>7} {'time':>7}")
        for r in result["results"]:
            ci = f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if r["n"] > 1 else "-"
            print(f"  {r['fault_rate']:>6.3g} {r['n']:>4} {r['mean']:>7.2f} {ci:>15} {r['std']:>6.2f} "
                  f"{r['p5']:>7.2f} {r['worst']:>7.2f} {r['time_s']:>6.1f}s")
        if spares:
            sc = result["spare_columns"]
            print(f"  {spares} spare columns on each of {sc['crossbars']} crossbars (isaac): "
                  f"+{sc['extra_area_mm2']:.3g} mm^2 ({sc['area_share']:.2%} of the area), "
                  f"+{sc['extra_energy_uj']:.3g} uJ per image ({sc['energy_share']:.2%} of the energy)")
        for r in result["results"]:
            if r["at_chance"]:
                print(f"  at fault rate {r['fault_rate']:g} the accuracy ({r['mean']:.2f}%) is at chance level "
                      f"({CHANCE_ACCURACY:g}% for 10 classes): the network has collapsed under these faults")
    return result
