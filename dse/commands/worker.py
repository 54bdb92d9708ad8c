"""`python -m dse worker JOB_ID`: run one queued job of the results store (started by the app or a sweep)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("worker", help="run one queued background job (used by the app)")
    p.add_argument("job_id")
    p.add_argument("--store", default=None, help="results store (default: $DSE_STORE or runs/results.sqlite)")
    p.set_defaults(func=run)


def run(args) -> None:
    from dse.results.store import Store
    from dse.run.jobs import run_job

    run_job(Store(args.store), args.job_id)
