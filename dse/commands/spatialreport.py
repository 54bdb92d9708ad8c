"""`python -m dse spatial-report CKPT ... --data PATH`: the spatial-defect findings (docs/spatial.md). Each checkpoint is evaluated under each
fault model at each cell fault rate, blind and remapped (with and without spare columns), on the same chips and
images (common random numbers: the layouts' differences are paired), under one BN protocol; writes the results
as JSON (read by the app's fault-model tab) and, with --doc, the tables marked <!-- dse:spatial --> and
<!-- dse:spatial-gain --> in that Markdown file. The JSON is rewritten after every cell, so an interrupted run
keeps what it finished."""
from __future__ import annotations

import argparse

from dse.commands import _args
from dse.core.errors import DSEError
from dse.core.io.atomic import atomic_write
from dse.core.protocol import check_fault_model, fault_model_name, parse_fault_model

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
    p.add_argument("--out", default="docs/spatial.json", help="results JSON (default docs/spatial.json)")
    p.add_argument("--doc", default=None, metavar="FILE", help="rewrite the tables marked <!-- dse:spatial --> "
                                                               "and <!-- dse:spatial-gain --> in FILE (docs/spatial.md)")
    p.add_argument("--check", action="store_true",
                   help="with --doc: write nothing into it, and fail (exit 2) naming the tables that differ")
    p.add_argument("--figures", default=None, metavar="DIR",
                   help="also write the figures (PNG, or HTML where PNG export is unavailable) into DIR")
    p.add_argument("--report-only", action="store_true",
                   help="evaluate nothing: print (and with --doc paste) the tables of the JSON at --out")
    _args.add_device(p)
    _args.add_precision(p, "the evaluations", evaluation=True)
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    import json
    import sys
    import time
    from pathlib import Path

    from dse.core.evaluation.evaluate import Evaluator, Protocol
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.io.data import head, load_cifar10
    from dse.core.runtime.device import pick_device
    from dse.results.store import label
    from dse.view import spatial

    out = Path(args.out)
    if args.check and not args.doc:
        raise DSEError("--check needs --doc FILE: the document to compare with the report")
    if args.report_only:
        report = spatial.load_report(out)
        if report is None:
            raise DSEError(f"no report at {out}; run python -m dse spatial-report without --report-only first")
        return _tables(report, args, out)
    device = pick_device(args.device)
    data = load_cifar10(args.data)
    test_x, test_y = head(data.test_x, data.test_y, args.test_images)
    layouts = [(False, 0), (True, 0)] + [(True, s) for s in args.spares if s > 0]
    for s in args.spares:
        fault_model_name("sa1", remap=True, spares=s)  # validates the count before hours of work
    report = {"command": "python -m dse " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py") else None,
              "bn": args.bn, "calib_images": args.calib_images, "instances": args.instances,
              "test_images": len(test_y), "seed": args.seed, "rows": []}
    out.parent.mkdir(parents=True, exist_ok=True)
    for path in args.checkpoints:
        ckpt = load_checkpoint(path)
        point = label(ckpt.meta)
        ev = Evaluator(ckpt, test_x, test_y, device, precision=args.precision, calib_x=data.train_x)
        ev.set_calibration(data.train_x, args.calib_images)
        ev.use_bn_for(0.0)
        clean = ev.accuracy(ev.injector.weights(None, 0.0), args.bn)
        for model in args.fault_models:
            for remap, spares in layouts:
                name = fault_model_name(parse_fault_model(model).model, parse_fault_model(model).param, remap, spares)
                protocol = Protocol(instances=args.instances, seed=args.seed, fault_model=name, bn=args.bn,
                                    calib_images=args.calib_images).check()
                for f in args.fault_rates:
                    t0 = time.perf_counter()
                    r = ev.run(f, protocol, progress=False)
                    report["rows"].append({"point": point, "checkpoint": path, "fault_free": clean,
                                           "fault_model": model, "layout": spatial.layout_label(remap, spares),
                                           "spec": name, "fault_rate": f, "n": r["n"], "mean": r["mean"],
                                           "ci95": r["ci95"], "worst": r["worst"], "accuracies": r["accuracies"]})
                    atomic_write(out, json.dumps(report, indent=1).encode())
                    if not args.json:
                        print(f"{point} | {name} | f={f:g}: {r['mean']:.2f} ± {r['ci95']:.2f} "
                              f"({time.perf_counter() - t0:.0f}s)", flush=True)
    return _tables(report, args, out)


def _tables(report: dict, args, out) -> dict:
    from dse.view import spatial
    from dse.view.reproduce import _md_table, paste_tables

    table, gain = spatial.doc_table(report), spatial.gain_table(report)
    stale = paste_tables(args.doc, {"spatial": table, "spatial-gain": gain}, check=args.check) if args.doc else []
    if stale and args.check:
        raise DSEError(f"{args.doc} differs from {out} in its tables {', '.join(stale)}: "
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
