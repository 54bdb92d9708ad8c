"""`python -m dse evaluate CKPT --fault-rate F ...`: Monte-Carlo accuracy under crossbar faults. Each fault rate
is one EvalSpec run as a job (dse/run/jobs.py, as the app's and a sweep's are): recorded in the results store,
journaled crossbar by crossbar, so a killed run goes on where it stopped when run again."""
from __future__ import annotations

from dse.commands import _args
from dse.domain.evalspec import MIN_INSTANCES
from dse.domain.stats import CHANCE_ACCURACY


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
    p.add_argument("--min-instances", type=_args.positive_int, default=MIN_INSTANCES,
                   help=f"adaptive: never stop before this many crossbars (default {MIN_INSTANCES})")
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
    _args.add_store(p)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    import warnings
    from pathlib import Path

    from dse.core.io.checkpoint import read_meta
    from dse.core.cost.per_image import spare_columns_cost
    from dse.domain.point import DesignPoint
    from dse.results.store import open_store
    from dse.run import jobs
    from dse.run.tasks import EvaluateTask

    meta = read_meta(args.checkpoint)
    spec = _args.eval_spec(args, DesignPoint.of(meta))  # at each rate below: the one thing that varies
    data, checkpoint = _args.data_path(args.data), str(Path(args.checkpoint).absolute())
    store = open_store(args.store)
    outs, caught = [], []
    for rate in args.fault_rate:
        task = EvaluateTask(checkpoint, spec.at(rate), data, args.device, batch_size=args.batch_size,
                            instances_per_pass=args.instances_per_pass)
        with warnings.catch_warnings(record=True) as got, _args.job_bar(f"f={rate:g}", args.json) as bar:
            warnings.simplefilter("always")
            outs.append(jobs.run_here(store, task, progress=bar))
        caught += got
    first = outs[0]["results"][0]
    result = {"checkpoint": args.checkpoint, **{k: meta[k] for k in ("network", "width", "shortcut_kernel", "mapping",
                                                                     "dropconnect")},
              "fault_free_accuracy": meta.get("test_accuracy"),
              "fault_free_quantized_accuracy": first["fault_free_quantized_accuracy"], "bn": spec.bn.label,
              "precision": first["precision"], "precision_reason": outs[0].get("precision_reason"),
              **({"int8": outs[0]["int8"]} if "int8" in outs[0] else {}), "store": str(store.path),
              "results": [r for o in outs for r in o["results"]], "warnings": sorted({str(w.message) for w in caught})}
    spares = spec.fault.spares
    if spares:  # what the remapping's spare columns cost in hardware
        result["spare_columns"] = spare_columns_cost(result["network"], result["width"], result["shortcut_kernel"],
                                                     result["mapping"], spares)
    if not args.json:
        _print(result, spec, store.path)
    return result


def _print(result: dict, spec, store_path) -> None:
    """The evaluation as a person reads it: what was evaluated, then one line per fault rate."""
    for w in result["warnings"]:
        print(f"warning: {w}")
    print(f"{result['checkpoint']}: {result['network']} w={result['width']:g} p={result['dropconnect']:g} "
          f"({result['mapping']}); {result['results'][0]['test_images']} test images; "
          f"BN: {spec.bn.label}; faults: {spec.fault.name}; "
          f"precision {result['precision']} ({result['precision_reason']})")
    if "int8" in result:
        print(f"  {result['int8']}")
    n_test = result["results"][0]["test_images"]
    print(f"  fault-free 8-bit on these {n_test:,} test images: {result['fault_free_quantized_accuracy']:.2f}%"
          + (f"  (float {result['fault_free_accuracy']}%)" if spec.test_images is None else
             f"  (the float {result['fault_free_accuracy']}% in the checkpoint is over the whole test set, "
             "not comparable)"))
    print(f"  {'fault':>6} {'n':>4} {'mean':>7} {'95% CI':>15} {'std':>6} {'p5':>7} {'worst':>7} {'time':>7}")
    for r in result["results"]:
        ci = f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if r["n"] > 1 else "-"
        print(f"  {r['fault_rate']:>6.3g} {r['n']:>4} {r['mean']:>7.2f} {ci:>15} {r['std']:>6.2f} "
              f"{r['p5']:>7.2f} {r['worst']:>7.2f} {r['time_s']:>6.1f}s")
    if "spare_columns" in result:
        sc = result["spare_columns"]
        print(f"  {spec.fault.spares} spare columns on each of {sc['crossbars']} crossbars (isaac): "
              f"+{sc['extra_area_mm2']:.3g} mm^2 ({sc['area_share']:.2%} of the area), "
              f"+{sc['extra_energy_uj']:.3g} uJ per image ({sc['energy_share']:.2%} of the energy)")
    for r in result["results"]:
        if r["at_chance"]:
            print(f"  at fault rate {r['fault_rate']:g} the accuracy ({r['mean']:.2f}%) is at chance level "
                  f"({CHANCE_ACCURACY:g}% for 10 classes): the network has collapsed under these faults")
    print(f"  recorded in {store_path}")

