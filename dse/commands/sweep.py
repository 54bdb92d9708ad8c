"""`python -m dse sweep SPEC`: expand a grid spec into train and evaluate jobs and run those the results
store does not have done, on this machine or on a Ray cluster."""
from __future__ import annotations

from dse.commands import _args
from dse.core.errors import DSEError


def add_sweep_options(p) -> None:
    """Options shared by `sweep` and `reproduce`."""
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: this machine (default); ray: Ray tasks on a cluster")
    p.add_argument("--address", default=None,
                   help="ray backend: auto (a running cluster) or ray://HOST:10001; default: start a local Ray")
    p.add_argument("--workers", type=_args.positive_int, default=1,
                   help="local backend: worker processes (1: one job after another in this process)")
    p.add_argument("--data", default=None, help="CIFAR-10 source, overriding the spec's (or $DSE_DATA)")
    p.add_argument("--checkpoint-dir", default=None, help="where checkpoints go, overriding the spec's "
                   "(a folder every node sees)")
    p.add_argument("--store", default=None, help="results store (default: $DSE_STORE or runs/results.sqlite)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--only", action="append", default=[], metavar="AXIS=V1,V2",
                   help="run only the design points with these axis values (repeatable), e.g. --only network=resnet20 "
                        "--only dropconnect=0,0.3; the bases they are fine-tuned from are trained too")
    p.add_argument("--instances", type=_args.positive_int, default=None,
                   help="crossbar instances per fault rate, overriding the spec's protocol (a later run with more "
                        "instances reuses the ones finished)")
    _args.add_device(p)
    _args.add_precision(p, "the sweep's jobs")


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of train and evaluate jobs from a spec file")
    p.add_argument("spec", help="sweep spec (.toml, or .yaml with PyYAML), or a packaged grid: default, paper")
    add_sweep_options(p)
    p.add_argument("--dry-run", action="store_true",
                   help="list the jobs as a run would find them (done, or the crossbars it goes on from); run nothing")
    _args.add_json(p)
    p.set_defaults(func=run)


def spec_from_args(args):
    """The spec named on the command line, with the command line's overrides."""
    from dataclasses import replace

    from dse.run.spec import load_spec

    spec = load_spec(args.spec if hasattr(args, "spec") else args.grid)
    changes = {}
    if args.checkpoint_dir:
        changes["checkpoint_dir"] = args.checkpoint_dir
    if args.device != "auto":
        changes["device"] = args.device  # checked by its argument type
    if args.data:
        changes["data"] = args.data
    if getattr(args, "precision", None):
        changes["precision"] = args.precision
    if getattr(args, "instances", None):
        n = args.instances
        changes["protocol"] = {**spec.protocol, "instances": n}
        changes["grids"] = tuple(replace(g, protocol=tuple({**dict(g.protocol), "instances": n}.items()))
                                 for g in spec.grids)
    if getattr(args, "only", None):
        from dse.run.spec import parse_only

        changes["only"] = parse_only(args.only)
    return replace(spec, **changes)


def run(args) -> dict:
    import json

    from dse.results.store import Store
    from dse.run.sweep import preview, run_sweep

    spec = spec_from_args(args)
    store = Store(args.store)
    if args.dry_run:
        rows = preview(spec, store)
        if not args.json:
            for r in rows:
                more = f"  (goes on from {r['crossbars_done']} crossbars)" if r["crossbars_done"] else ""
                print(f"{r['job_id']}  {r['state']:<9}  {r['job']}{more}")
            print(f"{len(rows)} jobs, {sum(r['state'] == 'done' for r in rows)} done")
        return {"spec": spec.name, "jobs": rows}
    log = (lambda s: None) if args.json else print
    summary = run_sweep(spec, store, backend=args.backend, workers=args.workers, address=args.address,
                        progress=not (args.no_progress or args.json), log=log)
    if not args.json:
        print(f"sweep {summary['spec']}: {summary['done']} done, {summary['failed']} failed, "
              f"{summary['cancelled']} cancelled, {summary['skipped']} already done ({summary['time_s']:.0f} s); "
              f"results in {summary['store']}")
        for f in summary["failures"]:
            print(f"  {f['state']}: {f['job']}: {f['error']}")
    if summary["failed"] or summary["cancelled"]:
        if args.json:
            print(json.dumps(summary, indent=2, sort_keys=True))
        raise DSEError(f"{summary['failed'] + summary['cancelled']} of {summary['ran']} jobs did not finish; "
                       "run the same command again to retry them")
    return summary
