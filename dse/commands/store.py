"""`python -m dse store sync|rebuild|show|manifest`: fill the results store from checkpoint folders, or write
a folder's manifest.json from the store (what `checkpoints/` ships)."""
from __future__ import annotations

from dse.commands import _args


def add_parser(sub) -> None:
    p = sub.add_parser("store", help="fill, rebuild or show the results store")
    p.add_argument("action", choices=["sync", "rebuild", "show", "manifest"],
                   help="sync: add new checkpoints; rebuild: start the store afresh from the checkpoints; show: list; "
                        "manifest: write each checkpoint folder's manifest.json from the store")
    p.add_argument("--store", default=None, help="store file (default: $DSE_STORE or runs/results.sqlite)")
    p.add_argument("--checkpoints", action="append", default=None,
                   help="checkpoint folder, repeatable (default: checkpoints/ and runs/checkpoints/)")
    p.add_argument("--data", default=None, help="manifest: CIFAR-10, to record each checkpoint's spot check")
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from pathlib import Path

    from dse.results.catalog import default_checkpoint_dirs, sync, write_manifest
    from dse.results.store import Store, default_store_path, rebuild

    dirs = [Path(d) for d in args.checkpoints] if args.checkpoints else None
    path = Path(args.store) if args.store else default_store_path()
    if args.action == "manifest":
        reports = [write_manifest(Store(path), d, args.data) for d in (dirs or default_checkpoint_dirs()) if Path(d).is_dir()]
        if not args.json:
            for r in reports:
                print(f"wrote {r['path']}: {r['checkpoints']} checkpoints, {r['evaluations']} evaluations")
        return {"manifests": reports}
    if args.action == "rebuild":
        store = rebuild(path)
    else:
        store = Store(path)
    report = sync(store, dirs) if args.action != "show" else {}
    points = store.points()
    report["store"] = str(store.path)
    report["design_points"] = len(points)
    report["evaluations_total"] = len(store.evaluations())
    if not args.json:
        for line in report.get("problems", []):
            print(f"problem: {line}")
        print(f"{store.path}: {len(points)} design points, {report['evaluations_total']} evaluations")
        if len(points):
            print(points[["network", "width", "shortcut_kernel", "mapping", "dropconnect",
                          "fault_free_accuracy", "checkpoint"]].to_string(index=False))
    return report
