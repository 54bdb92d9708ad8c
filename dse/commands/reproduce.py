"""`python -m dse reproduce`: a grid end to end (train, calibrate, evaluate), then the paper's figures
and a Markdown summary that compares our numbers with the paper's."""
from __future__ import annotations

from dse.commands import _args
from dse.commands.sweep import add_sweep_options, spec_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="run the paper's grid (or the default one), then figures and a summary")
    p.add_argument("--grid", default="default",
                   help="paper (the paper's full grid), default (the grid of checkpoints/) or a spec file")
    add_sweep_options(p)
    p.add_argument("--out", default=None, help="report folder (default: runs/reproduce/GRID)")
    p.add_argument("--report-only", action="store_true", help="skip the sweep; report what the store has")
    p.add_argument("--doc", default=None, metavar="FILE",
                   help="also rewrite the tables marked <!-- dse:NAME --> in this Markdown file (points, best-p, "
                        "their -chip forms, claims, calibration, compare); docs/results.md holds the shipped ones")
    p.add_argument("--compare", default=None, metavar="SPEC",
                   help="a grid holding some of these design points trained another way: the doc's compare table "
                        "sets them side by side on the same crossbars (from both manifests)")
    p.add_argument("--check", action="store_true",
                   help="with --doc: write nothing (no report folder either), and fail (exit 2) naming the doc's "
                        "tables that differ from the results")
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from pathlib import Path

    from dse.domain.errors import DSEError
    from dse.results.store import Store
    from dse.run.spec import load_spec
    from dse.run.sweep import run_sweep
    from dse.view.reproduce import report

    spec = spec_from_args(args)
    if args.check and not args.doc:
        raise DSEError("--check needs --doc FILE: the document to compare with the results")
    compare = load_spec(args.compare) if args.compare else None
    out = Path(args.out) if args.out else Path("runs") / "reproduce" / spec.name
    log = (lambda s: None) if args.json else print
    store = Store(args.store)
    sweep = None if args.report_only else run_sweep(
        spec, store, backend=args.backend, workers=args.workers, address=args.address,
        progress=not (args.no_progress or args.json), log=log)
    result = report(store, spec, out, sweep, args.doc, compare=compare, check=args.check)
    if result["stale"] and args.check:
        raise DSEError(f"{args.doc} differs from the results in its tables {', '.join(result['stale'])}: "
                       f"rerun without --check to rewrite them")
    if not args.json:
        sweep = result["sweep"]
        if sweep:
            print(f"sweep {sweep['spec']}: {sweep['done']} done, {sweep['failed']} failed, "
                  f"{sweep['skipped']} already done")
        if not args.check:
            print(f"wrote {result['summary']} and {len(result['figures'])} figure files"
                  + ("" if result["png"] else " (HTML only: PNG export unavailable)"))
        if args.doc:
            print(f"{args.doc}: " + ("its tables are the results" if args.check
                                     else f"rewrote {', '.join(result['stale'])}" if result["stale"] else "up to date"))
    return result
