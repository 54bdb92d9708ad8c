"""`python -m dse recipe-study`: fault-free accuracy against epochs for the recipe study's steps (today's
recipe, then one trick added at a time), each step a resumable training run with its test accuracy tracked
after every epoch; then a table and a figure of every run in the folder (finished or still running)."""
from __future__ import annotations

from pathlib import Path

from dse.commands import _args
from dse.core.errors import DSEError
from dse.core.recipes import STUDY_STEPS, recipe


def add_parser(sub) -> None:
    names = [n for n, _ in STUDY_STEPS]
    p = sub.add_parser("recipe-study", help="train the recipe study's steps and report accuracy against epochs")
    p.add_argument("--data", default=None, help="CIFAR-10: batches folder, image tree or .tar.gz (or $DSE_DATA)")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for the study's checkpoints (resumed)")
    p.add_argument("--network", type=_args.network, default="resnet20")
    p.add_argument("--epochs", type=_args.positive_int, default=10, help="epochs of each step's run")
    p.add_argument("--steps", default=",".join(names), help=f"comma-separated, of {', '.join(names)}")
    p.add_argument("--report-only", action="store_true", help="train nothing: tabulate the runs in --out-dir")
    p.add_argument("--report", type=Path, default=None, help="write <REPORT>.md (table) and .png/.html (figure)")
    _args.add_device(p)
    _args.add_precision(p, "the training steps (accuracies are always measured in fp32)")
    _args.add_json(p)
    p.set_defaults(func=run)


def _steps(text: str) -> list[tuple[str, dict]]:
    known = dict(STUDY_STEPS)
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    for s in chosen:
        if s not in known:
            raise DSEError(f"unknown study step {s!r}; use some of {', '.join(known)}")
    return [(s, known[s]) for s in chosen]


def run(args) -> dict:
    from dse.core.io.data import load_cifar10
    from dse.core.runtime.device import pick_device
    from dse.core.training.train import TrainConfig, train
    from dse.view.recipes import study_rows, write_report

    steps = _steps(args.steps)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    log = (lambda s: None) if args.json else print
    if not args.report_only:
        device, data = pick_device(args.device), load_cifar10(args.data)
        for name, options in steps:
            cfg = TrainConfig(network=args.network, recipe=recipe("legacy", epochs=args.epochs, **options),
                              calib_rates=(0.0,), calib_images=10000)
            out = args.out_dir / f"{args.network}-{name.strip('+')}-e{args.epochs}.safetensors"
            log(f"study step {name}: {out.name}")
            train(cfg, data, out, device=device, resume=True, log=log, precision=args.precision, track_test=True)
    rows = study_rows(args.out_dir)
    if args.report:
        write_report(rows, args.report)
    if not args.json:
        for r in rows:
            print(f"{r['run']:<40} {r['epochs_done']:>3}/{r['epochs']:<3} epochs  test {r['final']}%  "
                  f"({r['minutes']:.0f} min)")
    return {"runs": rows}
