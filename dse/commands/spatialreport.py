"""`python -m dse spatial-report CKPT ... --data PATH`: the spatial-defect findings (docs/spatial.md). Each checkpoint is evaluated under each
fault model at each cell fault rate, blind and remapped (with and without spare columns), on the same chips and
images (common random numbers: the layouts' differences are paired), under one BN protocol; every cell is one
EvalSpec run as a job (dse/run/jobs.py), so its result lands in the results store (which the app's fault-model
tab and the manifest read) and an interrupted run goes on from what it finished. With --doc, the tables marked
<!-- dse:spatial --> and <!-- dse:spatial-gain --> in that Markdown file are rewritten from the store."""
from __future__ import annotations

import argparse
from dataclasses import asdict, replace

from dse.commands import _args
from dse.domain.errors import DSEError
from dse.domain.evalspec import Budget
from dse.domain.faultspec import check_fault_model, fault_model_name, parse_fault_model
from dse.domain.point import DesignPoint, label

DEFAULT_CHECKPOINTS = ["checkpoints/resnet20-w1-k1-default-p0-s0.safetensors",
                       "checkpoints/resnet20-w1-k1-default-p0.3-s0.safetensors"]
DEFAULT_MODELS = "sa1,rows,cols,clustered,mixed"


def model_list(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated fault models, got {text!r}")
    return [_args._in_list(_args._wrap(check_fault_model), n, text) for n in names]


def add_parser(sub) -> None:
    p = sub.add_parser("spatial-report", help="accuracy under spatial defects, blind and remapped (docs/spatial.md)")
    p.add_argument("checkpoints", nargs="*", default=DEFAULT_CHECKPOINTS,
                   help="checkpoints (default: the shipped ResNet20 1.0x p=0 and p=0.3)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (or $DSE_DATA)")
    p.add_argument("--fault-models", type=model_list, default=model_list(DEFAULT_MODELS),
                   help=f"comma-separated fault models (default {DEFAULT_MODELS})")
    p.add_argument("--fault-rates", type=_args.rate_list, default=[0.1, 0.2, 0.3], help="cell fault rates")
    p.add_argument("--spares", type=_args.count_list, default=[8],
                   help="spare columns per tile of the remapped layouts besides none (default 8)")
    p.add_argument("--instances", type=_args.positive_int, default=5, help="chips per cell (the same in every cell)")
    p.add_argument("--test-images", type=_args.positive_int, default=1000,
                   help="the first N test images, class by class (default 1000)")
    _args.add_bn(p, "every cell's evaluation")
    p.add_argument("--seed", type=_args.nonneg_int, default=0, help="base seed of the fault maps")
    p.add_argument("--doc", default=None, metavar="FILE", help="rewrite the tables marked <!-- dse:spatial --> "
                                                               "and <!-- dse:spatial-gain --> in FILE (docs/spatial.md)")
    p.add_argument("--check", action="store_true",
                   help="with --doc: write nothing into it, and fail (exit 2) naming the tables that differ")
    p.add_argument("--figures", default=None, metavar="DIR",
                   help="also write the figures (PNG, or HTML where PNG export is unavailable) into DIR")
    p.add_argument("--report-only", action="store_true",
                   help="evaluate nothing: print (and with --doc paste or --check) the tables of the results in the "
                        "store (the checkpoints' folders' manifests imported first)")
    _args.add_device(p)
    _args.add_precision(p, "the evaluations", evaluation=True)
    _args.add_store(p)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    """Long because it walks checkpoints x fault models x layouts x rates, each cell a job, then reports."""
    from pathlib import Path

    from dse.core.io.checkpoint import read_meta
    from dse.results.catalog import sync
    from dse.results.store import open_store
    from dse.run import jobs
    from dse.run.tasks import EvaluateTask
    from dse.view import spatial

    if args.check and not args.doc:
        raise DSEError("--check needs --doc FILE: the document to compare with the report")
    layouts = [(False, 0), (True, 0)] + [(True, s) for s in args.spares if s > 0]
    for s in args.spares:
        fault_model_name("sa1", remap=True, spares=s)  # validates the count before hours of work
    store = open_store(args.store)
    sync(store, sorted({Path(c).parent for c in args.checkpoints}))  # results shipped with the checkpoints count
    points = [DesignPoint.of(read_meta(c)) for c in args.checkpoints]
    base = _args.eval_spec(args, points[0], budget=Budget(args.instances), fault=parse_fault_model("sa1"))
    models = [parse_fault_model(m) for m in args.fault_models]
    if not args.report_only:
        data = _args.data_path(args.data)
        for path, point in zip(args.checkpoints, points):
            cells = [parse_fault_model("sa1")]  # f = 0: the 8-bit network on the same images, the curves' start
            cells += [parse_fault_model(fault_model_name(m.model, m.param, remap, spares), f)
                      for m in models for remap, spares in layouts for f in args.fault_rates]
            for fault in cells:
                spec = replace(base, point=point, fault=fault)
                with _args.job_bar(f"{fault.name} f={fault.rate:g}", args.json) as bar:
                    r = jobs.run_here(store, EvaluateTask(str(Path(path).absolute()), spec, data, args.device),
                                      progress=bar)["results"][0]
                if not args.json:
                    print(f"{label(asdict(point))} | {fault.name} | f={fault.rate:g}: {r['mean']:.2f} ± "
                          f"{r['ci95']:.2f} ({r['time_s']:.0f}s)", flush=True)
    sample = {"bn": base.bn.name, "calib_images": base.bn.images, "seed": base.seed, "protocol": base.budget.name}
    report = spatial.report(store.evaluations(), point_ids=[p.point_id for p in points], sample=sample,
                            fault_models=[m.name for m in models], fault_rates=args.fault_rates)
    if not report["rows"]:
        raise DSEError(f"no spatial-defects results for these checkpoints under {base.bn.label}, seed {base.seed}, "
                       f"{args.instances} chips in {store.path}; run python -m dse spatial-report without --report-only")
    return _tables(report, args, store.path)


def _tables(report: dict, args, out) -> dict:
    from dse.view import spatial
    from dse.view.reproduce import _md_table, paste_tables

    table, gain = spatial.doc_table(report), spatial.gain_table(report)
    stale = paste_tables(args.doc, {"spatial": table, "spatial-gain": gain}, check=args.check) if args.doc else []
    if stale and args.check:
        raise DSEError(f"{args.doc} differs from the results in {out} in its tables {', '.join(stale)}: "
                       f"rerun without --check to rewrite them")
    if args.figures:
        _figures(report, args.figures)
    if not args.json:
        print(_md_table(table))
        print(_md_table(gain))
        print(f"results in {out}" + (f"; {args.doc}: " + ("its tables are the report's" if args.check else
                                                          "tables written") if args.doc else ""))
    return report


def _figures(report: dict, folder) -> list[str]:
    """Accuracy against fault rate per design point, and one tile under each fault model."""
    from pathlib import Path

    from dse.view import spatial

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = spatial.report_rows(report)
    figures = {f"spatial-{p.replace(' ', '-').replace('=', '')}": spatial.accuracy_figure(report, p)
               for p in dict.fromkeys(rows.point)}
    figures["spatial-tiles"] = spatial.tile_gallery("resnet20", 1.0, 1, "default", "layer2.1.conv1",
                                                    models=list(dict.fromkeys(rows.fault_model)), rate=0.1)
    written = []
    for name, fig in figures.items():
        try:
            fig.write_image(folder / f"{name}.png", width=fig.layout.width or 900, height=fig.layout.height or 450)
            written.append(str(folder / f"{name}.png"))
        except Exception:  # noqa: BLE001  no PNG export (kaleido, a browser) here: the interactive HTML instead
            fig.write_html(folder / f"{name}.html", include_plotlyjs="cdn")
            written.append(str(folder / f"{name}.html"))
    print("figures: " + ", ".join(written))
    return written
