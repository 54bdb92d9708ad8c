"""`python -m dse bench`: training and fault-campaign throughput beside plain PyTorch references, written as
a Markdown table (BENCHMARKS.md) with the machine described."""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from dse.commands import _args
from dse.core.errors import DSEError
from dse.core.io.atomic import atomic_write


def network_list(text: str) -> tuple[str, ...]:
    names = tuple(_args.network(t.strip()) for t in text.split(",") if t.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated networks, got {text!r}")
    return names


def width_list(text: str) -> tuple[float, ...]:
    widths = tuple(_args.width(t.strip()) for t in text.split(",") if t.strip())
    if not widths:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths, got {text!r}")
    return widths


def steps_spec(text: str) -> dict[str, int] | int:
    """N for every network, or per network: resnet20=10,vgg13=4."""
    if "=" not in text:
        return _args.positive_int(text)
    out = {}
    for part in filter(None, (t.strip() for t in text.split(","))):
        name, _, n = part.partition("=")
        out[_args.network(name.strip())] = _args.positive_int(n.strip())
    return out


SECTIONS = ("precision", "training", "campaign", "int8", "calibration", "scaling", "page", "profile")


def section_list(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in SECTIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(bad) or repr(text)}; "
                                         f"choose from {', '.join(SECTIONS)}")
    return tuple(dict.fromkeys(("precision",) + names))


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="training and fault-campaign throughput against plain PyTorch references",
                       description="Measure, in one run, the project's trainer and fault campaign against plain "
                       "PyTorch references, and write the Markdown table (BENCHMARKS.md).")
    p.add_argument("--quick", action="store_true", help="a few steps and instances on small subsets (a smoke test)")
    p.add_argument("--data", default=None,
                   help="CIFAR-10 source (or $DSE_DATA); without one, synthetic images give throughput only")
    p.add_argument("--write", action="store_true",
                   help="write the project's record, BENCHMARKS.md (without it: runs/benchmarks.md, never the record)")
    p.add_argument("--out", type=Path, default=None, help="where to write the table instead")
    p.add_argument("--no-write", action="store_true", help="print the table but write no file")
    p.add_argument("--networks", type=network_list, default=None, help="comma-separated (default resnet20,vgg13)")
    p.add_argument("--width", type=_args.width, default=None, help="width of the compared models (default 1.0)")
    p.add_argument("--scaling-widths", type=width_list, default=None, help="widths for the scaling table")
    p.add_argument("--batch-size", type=_args.positive_int, default=None, help="training batch (default 256)")
    p.add_argument("--train-steps", type=steps_spec, default=None,
                   help="timed training steps: N, or per network as resnet20=10,vgg13=4")
    p.add_argument("--warmup-steps", type=_args.nonneg_int, default=None, help="untimed training steps first")
    p.add_argument("--instances", type=_args.positive_int, default=None, help="crossbar instances of the campaign")
    p.add_argument("--test-images", type=_args.positive_int, default=None, help="test images per instance")
    p.add_argument("--scaling-test-images", type=_args.positive_int, default=None,
                   help="test images per instance in the scaling tables")
    p.add_argument("--calib-images", type=_args.positive_int, default=None, help="images per calibration pass")
    p.add_argument("--fault-rate", type=_args.rate, default=None, help="fault rate of the campaign (default 0.1)")
    p.add_argument("--ref-workers", type=_args.nonneg_int, default=None,
                   help="DataLoader workers of the references (default 2)")
    p.add_argument("--checkpoint", action="append", default=[],
                   help="a trained checkpoint to run the campaign on (one per network; default: the short run's)")
    p.add_argument("--batched-instances", type=_args.nonneg_int, default=None,
                   help="instances per batched (vmap) call; default 8 on CUDA, 0 (off) on CPU")
    p.add_argument("--equivalence-instances", type=_args.positive_int, default=None,
                   help="crossbar instances of the fp32-vs-bf16 check on each --checkpoint (default 10)")
    p.add_argument("--equivalence-images", type=_args.positive_int, default=None,
                   help="test images of that check (default 10000)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 engine's rows (measured where the CPU has "
                   "int8 kernels)")
    p.add_argument("--int8-networks", type=network_list, default=None,
                   help="networks of the int8-vs-fp32 check, under paper and chip BN at 10%% and 30%% (default: every "
                        "--checkpoint's)")
    p.add_argument("--only", type=section_list, default=None,
                   help=f"run only these sections, comma-separated: {', '.join(SECTIONS)} (precision is needed by "
                        "the others' choices and always runs)")
    p.add_argument("--no-profile", action="store_true", help="skip the torch.profiler breakdown")
    p.add_argument("--page", default=None, metavar="CHECKPOINT_DIR",
                   help="also time the explorer's page rendered on this checkpoint folder (e.g. checkpoints)")
    p.add_argument("--in-process", action="store_true",
                   help="run every measurement in this process (faster start; peak RSS is then cumulative)")
    p.add_argument("--synthetic-images", type=_args.positive_int, default=None,
                   help="training images of the synthetic data (default: what the run needs)")
    _args.add_device(p)
    _args.add_precision(p, "the project's side of each comparison (auto also measures bf16 and checks its answers "
                           "on each --checkpoint, for later runs to use)")
    _args.add_json(p)
    p.set_defaults(func=run)


def command_line(args) -> str:
    """The command that reproduces this run (options that differ from their defaults)."""
    parts = ["python", "-m", "dse", "bench"]
    for action, default in (("quick", False), ("write", False), ("no_write", False), ("no_profile", False),
                            ("in_process", False), ("no_int8", False)):
        if getattr(args, action) != default:
            parts.append("--" + action.replace("_", "-"))
    for name in ("data", "networks", "width", "scaling_widths", "batch_size", "train_steps", "warmup_steps",
                 "instances", "test_images", "scaling_test_images", "calib_images", "fault_rate", "ref_workers",
                 "batched_instances", "synthetic_images", "equivalence_instances", "equivalence_images", "precision",
                 "int8_networks", "only"):
        v = getattr(args, name)
        if v is not None:
            if isinstance(v, dict):
                v = ",".join(f"{k}={n}" for k, n in v.items())
            elif isinstance(v, tuple):
                v = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
            parts += ["--" + name.replace("_", "-"), str(v)]
    for c in args.checkpoint:
        parts += ["--checkpoint", c]
    if args.device != "auto":
        parts += ["--device", args.device]
    if args.out is not None:
        parts += ["--out", str(args.out)]
    return " ".join(shlex.quote(p) for p in parts)


def report_path(args) -> Path | None:
    """Where the table goes: --out, else BENCHMARKS.md with --write, else runs/ (a smoke run or a trial never
    replaces the committed record); None with --no-write."""
    if args.no_write:
        return None
    if args.out is not None:
        return args.out
    return Path("BENCHMARKS.md") if args.write else Path(os.environ.get("DSE_RUNS", "runs")) / "benchmarks.md"


def config_from(args):
    from dse.bench import BenchConfig

    cfg = BenchConfig.quick_config() if args.quick else BenchConfig()
    if args.networks:
        cfg.networks = args.networks
    if args.width is not None:
        cfg.width = args.width
        if args.scaling_widths is None:
            cfg.scaling_widths = tuple(round(args.width * w, 4) for w in cfg.scaling_widths)
    if args.scaling_widths:
        cfg.scaling_widths = args.scaling_widths
    for name in ("batch_size", "warmup_steps", "instances", "test_images", "scaling_test_images", "calib_images",
                 "fault_rate", "ref_workers", "batched_instances", "equivalence_instances", "equivalence_images"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.train_steps is not None:
        given = args.train_steps if isinstance(args.train_steps, dict) else {n: args.train_steps for n in cfg.networks}
        cfg.train_steps = {**cfg.train_steps, **given}
        cfg.width_train_steps = min(cfg.width_train_steps, *given.values())
    cfg.profile = not args.no_profile
    cfg.int8 = not args.no_int8
    cfg.int8_networks = args.int8_networks
    cfg.only = args.only
    if args.page is not None:
        from pathlib import Path

        if not Path(args.page).is_dir():
            raise DSEError(f"--page: {args.page!r} is not a folder of checkpoints")
        cfg.page_checkpoints = str(Path(args.page).absolute())
    cfg.isolate = not args.in_process
    from dse.core.runtime.precision import default_precision

    cfg.precision = args.precision or default_precision()
    if cfg.fault_rate == 0:
        raise DSEError("the campaign needs a fault rate above 0 (at 0 every instance is the same network)")
    return cfg


def run(args) -> dict:
    import os

    from dse.bench import bench_data, run_bench, to_markdown
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.runtime.device import pick_device

    cfg = config_from(args)
    device = pick_device(args.device)
    checkpoints = {}
    for path in args.checkpoint:
        ck = load_checkpoint(path)
        checkpoints[ck.meta["network"]] = str(Path(path).resolve())
    missing = [n for n in checkpoints if n not in cfg.networks]
    if missing:
        raise DSEError(f"--checkpoint for {', '.join(missing)}, which is not among --networks {','.join(cfg.networks)}")
    source = args.data or os.environ.get("DSE_DATA")
    if source:
        data = {"path": str(Path(source).expanduser().resolve())}
    else:  # throughput only: as many random images as the run needs
        steps = max(max(cfg.train_steps.get(n, cfg.steps_for(n)) for n in cfg.networks), cfg.width_train_steps)
        n_train = args.synthetic_images or max((cfg.warmup_steps + steps) * cfg.batch_size, cfg.calib_images)
        data = {"synthetic": [n_train, max(cfg.test_images, cfg.scaling_test_images, cfg.eval_batch)]}
    bench_data(data)  # a bad --data fails here, with one line, before anything is measured
    log = (lambda s: None) if args.json else (lambda s: print(s, flush=True))
    result = run_bench(cfg, data, str(device), checkpoints=checkpoints, log=log)
    result["command"] = command_line(args)
    result["markdown"] = to_markdown(result, result["command"])
    out = report_path(args)
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(out, result["markdown"].encode())
        except OSError as e:
            raise DSEError(f"cannot write {out}: {e.strerror or e}") from None
        result["written"] = str(out)
    if not args.json:
        print(result["markdown"])
        if out is not None:
            print(f"wrote {out}")
    return result
