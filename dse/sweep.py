"""Sweeps: a spec file names the axes of a design-space grid; `expand` turns it into train and evaluate
jobs with their dependencies, and `run_sweep` runs them on a backend (dse/backends.py) with every job's
state in the results store (source "sweep"), so the app's Jobs view shows them too.

A spec (TOML; YAML with PyYAML installed) holds one or more grids, each a cross product of axes; the
grids are unioned and deduplicated, because the grids worth running are rarely one full product:

    name = "tiny"
    data = "data/cifar10-jpeg.tar.gz"                # in a configured folder (dse/paths.py), or --data
    checkpoint_dir = "runs/checkpoints"              # every node must see this folder
    fault_rates = [0.0, 0.1, 0.2, 0.3]
    recipe = { epochs = 30, batch_size = 256 }       # also lr, calib_images, max_train_images
    protocol = { instances = 100 }                   # also adaptive, test_images, seed
    resources = { cpus = 1, train_gpus = "auto" }    # Ray only; also evaluate_gpus, max_retries
    [[grid]]                                         # or a single [axes] table
    network = ["resnet20"]
    width = [1.0, 1.6]
    shortcut_kernel = [1, 3]                         # 3 applies to ResNet20 only
    mapping = ["default"]
    dropconnect = [0.0, 0.3]
    fault_rates = [0.05]                             # optional: this block's rates instead of the spec's

Jobs. One train job per design point; it includes BN calibration (`dse.train.train` re-estimates the
statistics for every target fault rate before it writes the checkpoint), so there is no separate
calibrate job. One evaluate job per (design point, fault rate), depending on the point's train job:
small jobs spread well over a cluster, and adding a fault rate later reuses everything done. A job's id
is a hash of its config (dse.store.job_id), so a rerun, the app and another sweep asking for the same
work share one job, and jobs already done are skipped.
"""
from __future__ import annotations

import math
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable

from dse.errors import DSEError
from dse.store import DesignPoint, Store, file_stamp

DEFAULT_FAULT_RATES = (0.0, 0.1, 0.2, 0.3)  # the paper's inference fault rates
AXES = ("network", "width", "shortcut_kernel", "mapping", "dropconnect", "fault_rates")
GRID_KEYS = AXES + ("recipe", "protocol", "finetune_from", "finetune_recipe")
FINETUNE_KEYS = ("mapping", "dropconnect", "shortcut_kernel")  # what a fine-tuned point's base may differ in
AXIS_DEFAULTS = {"width": [1.0], "shortcut_kernel": [1], "mapping": ["default"], "dropconnect": [0.0]}
TOP_KEYS = ("name", "description", "data", "checkpoint_dir", "device", "seed", "fault_rates", "recipe",
            "protocol", "resources", "manifest", "axes", "grid")
RECIPE_DEFAULTS = {"epochs": 30, "batch_size": 256, "lr": 0.2, "calib_images": None, "max_train_images": None,
                   "half": False}
PROTOCOL_DEFAULTS = {"instances": 100, "adaptive": None, "test_images": None, "seed": 0}
RESOURCE_DEFAULTS = {"cpus": 1, "train_gpus": "auto", "evaluate_gpus": 0, "max_retries": 2}
GRIDS_DIR = Path(__file__).with_name("grids")  # the packaged specs: default.toml, paper.toml


# =============================================================================================
# The spec
# =============================================================================================


@dataclass(frozen=True)
class Grid:
    """One cross product of axis values (already validated)."""

    network: tuple[str, ...]
    width: tuple[float, ...]
    shortcut_kernel: tuple[int, ...]
    mapping: tuple[str, ...]
    dropconnect: tuple[float, ...]
    fault_rates: tuple[float, ...] | None = None  # None: the spec's
    recipe: tuple = ()  # (key, value) overrides of the spec's recipe for this block
    protocol: tuple = ()  # (key, value) overrides of the spec's protocol
    finetune_from: tuple = ()  # (key, value): a point starts from the weights of this variant of itself
    finetune_recipe: tuple = ()  # (key, value) overrides for the fine-tuned points only

    def base_of(self, point: DesignPoint) -> DesignPoint | None:
        """The design point whose weights `point` is fine-tuned from, or None (trained from scratch)."""
        from dataclasses import replace

        base = replace(point, **dict(self.finetune_from)) if self.finetune_from else point
        return None if base == point else base


@dataclass(frozen=True)
class SweepSpec:
    name: str
    grids: tuple[Grid, ...]
    fault_rates: tuple[float, ...] = DEFAULT_FAULT_RATES
    data: str | None = None  # None: $DSE_DATA
    checkpoint_dir: str = "runs/checkpoints"
    device: str = "auto"
    seed: int = 0
    recipe: dict = field(default_factory=lambda: dict(RECIPE_DEFAULTS))
    protocol: dict = field(default_factory=lambda: dict(PROTOCOL_DEFAULTS))
    resources: dict = field(default_factory=lambda: dict(RESOURCE_DEFAULTS))
    manifest: bool = False  # keep <checkpoint_dir>/manifest.json up to date as evaluations land
    only: tuple = ()  # (axis, values) filters: run only these points (and the bases they need)
    description: str = ""
    source: str = ""  # the file it came from

    def points(self) -> list[tuple[DesignPoint, tuple[float, ...]]]:
        """Every design point of the union of the grids, in spec order, with its fault rates. Kernels a
        network does not have are skipped for it (only ResNet20 has 3x3 shortcuts)."""
        return [(point, rates) for point, rates, _ in self.blocks()]

    def blocks(self) -> list[tuple[DesignPoint, tuple[float, ...], Grid]]:
        """`points`, each with the grid block that first names it (its recipe, protocol and base)."""
        from dse.models import shortcut_kernels

        rates: dict[DesignPoint, set[float]] = {}
        first: dict[DesignPoint, Grid] = {}
        for g in self.grids:
            for net, w, k, m, p in product(g.network, g.width, g.shortcut_kernel, g.mapping, g.dropconnect):
                if k in shortcut_kernels(net):
                    point = DesignPoint(net, w, k, m, p)
                    rates.setdefault(point, set()).update(g.fault_rates or self.fault_rates)
                    first.setdefault(point, g)
        return [(point, tuple(sorted(r)), first[point]) for point, r in rates.items()]


def _fail(key: str, message: str):
    raise DSEError(f"sweep spec {key}: {message}" if key else f"sweep spec: {message}")


def _number(key, v, what="a number"):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        _fail(key, f"expected {what}, got {v!r}")
    return v


def _checked(key, check, v):
    """Run one of the project's value checkers, naming the spec key in its error."""
    try:
        return check(v)
    except DSEError as e:
        _fail(key, str(e))


def _positive_int(key, v, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        _fail(key, f"expected a positive integer, got {v!r}")
    return v


def _nonneg_number(key, v):
    _number(key, v, "a non-negative number")
    if not math.isfinite(v) or v < 0:
        _fail(key, f"expected a non-negative number, got {v!r}")
    return v


def _rates(key, v):
    from dse.dropconnect import check_rate

    values = v if isinstance(v, list) else [v]
    if not values:
        _fail(key, "is empty; give at least one value")
    what = "fault rate" if "fault" in key else "drop-connect rate"
    return tuple(sorted({_checked(key, lambda x: check_rate(_number(key, x), what), x) for x in values}))


def _device(key, v):
    if not isinstance(v, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
        _fail(key, f"unknown device {v!r}; use auto, cpu, cuda or cuda:N")
    return v


def _unknown(key, table: dict, allowed) -> None:
    extra = sorted(set(table) - set(allowed))
    if extra:
        _fail(f"{key}.{extra[0]}" if key else extra[0], f"unknown key; allowed: {', '.join(allowed)}")


def _table(key, v) -> dict:
    if not isinstance(v, dict):
        _fail(key, f"expected a table, got {v!r}")
    return v


def _axis(key: str, name: str, values) -> tuple:
    """One axis: a value or a list of values, each checked with the project's own checkers."""
    from dse.mapping import MappingPolicy
    from dse.models import check_network, check_width

    full = f"{key}.{name}"
    values = values if isinstance(values, list) else [values]
    if not values:
        _fail(full, "is empty; give at least one value")
    if name in ("dropconnect", "fault_rates"):
        return _rates(full, values)
    out = []
    for v in values:
        if name == "network":
            if not isinstance(v, str):
                _fail(full, f"expected a network name, got {v!r}")
            v = _checked(full, check_network, v.lower())
        elif name == "width":
            v = _checked(full, check_width, _number(full, v))
        elif name == "shortcut_kernel":
            if isinstance(v, bool) or not isinstance(v, int):
                _fail(full, f"expected an integer kernel size, got {v!r}")
        elif name == "mapping":
            if not isinstance(v, str):
                _fail(full, f"expected a mapping policy name, got {v!r}")
            v = _checked(full, MappingPolicy.parse, v).name
        if v not in out:
            out.append(v)
    return tuple(out)


def _grid(key: str, table) -> Grid:
    from dse.models import build_model, shortcut_kernels

    table = _table(key, table)
    _unknown(key, table, GRID_KEYS)
    if "network" not in table:
        _fail(key, "has no network axis; give network = [\"resnet20\", ...]")
    axes = {name: _axis(key, name, table.get(name, AXIS_DEFAULTS.get(name))) for name in AXES if name != "fault_rates"}
    for k in axes["shortcut_kernel"]:
        if not any(k in shortcut_kernels(n) for n in axes["network"]):
            allowed = sorted({k for n in axes["network"] for k in shortcut_kernels(n)})
            _fail(f"{key}.shortcut_kernel", f"shortcut kernel {k!r} is not available for "
                  f"{', '.join(axes['network'])}; allowed: {', '.join(map(str, allowed))}")
    for net, w in product(axes["network"], axes["width"]):  # e.g. a width that leaves a layer no channels
        _checked(f"{key}.width", lambda w: build_model(net, w, shortcut_kernels(net)[0]), w)
    rates = _axis(key, "fault_rates", table["fault_rates"]) if "fault_rates" in table else None
    ft = _table(f"{key}.finetune_from", table.get("finetune_from", {}))
    _unknown(f"{key}.finetune_from", ft, FINETUNE_KEYS)
    ft = {name: _axis(f"{key}.finetune_from", name, v)[0] for name, v in ft.items()}
    if "finetune_recipe" in table and not ft:
        _fail(f"{key}.finetune_recipe", "needs finetune_from (which point the fine-tuned ones start from)")
    recipe = _recipe(f"{key}.recipe", table.get("recipe", {}))
    return Grid(**axes, fault_rates=rates, recipe=tuple(recipe.items()),
                protocol=tuple(_protocol(f"{key}.protocol", table.get("protocol", {})).items()),
                finetune_from=tuple(sorted(ft.items())),
                finetune_recipe=tuple(_recipe(f"{key}.finetune_recipe", table.get("finetune_recipe", {})).items()))


def _recipe(key: str, table) -> dict:
    """Recipe keys (all optional here), checked; defaults are filled in by the caller."""
    recipe = _table(key, table)
    _unknown(key, recipe, RECIPE_DEFAULTS)
    for k in ("epochs", "batch_size"):
        if k in recipe:
            _positive_int(f"{key}.{k}", recipe[k])
    for k in ("calib_images", "max_train_images"):
        if k in recipe:
            _positive_int(f"{key}.{k}", recipe[k], allow_none=True)
    if "lr" in recipe:
        _number(f"{key}.lr", recipe["lr"], "a positive number")
        if not (math.isfinite(recipe["lr"]) and recipe["lr"] > 0):
            _fail(f"{key}.lr", f"expected a positive number, got {recipe['lr']!r}")
    if "half" in recipe and not isinstance(recipe["half"], bool):
        _fail(f"{key}.half", f"expected true or false, got {recipe['half']!r}")
    return recipe


def _protocol(key: str, table) -> dict:
    protocol = _table(key, table)
    _unknown(key, protocol, PROTOCOL_DEFAULTS)
    if "instances" in protocol:
        _positive_int(f"{key}.instances", protocol["instances"])
    if "test_images" in protocol:
        _positive_int(f"{key}.test_images", protocol["test_images"], allow_none=True)
    if protocol.get("adaptive") is not None:
        _number(f"{key}.adaptive", protocol["adaptive"], "a positive CI half-width")
        if not (math.isfinite(protocol["adaptive"]) and protocol["adaptive"] > 0):
            _fail(f"{key}.adaptive", f"expected a positive CI half-width, got {protocol['adaptive']!r}")
    if "seed" in protocol and (isinstance(protocol["seed"], bool) or not isinstance(protocol["seed"], int)
                               or protocol["seed"] < 0):
        _fail(f"{key}.seed", f"expected a non-negative integer, got {protocol['seed']!r}")
    return protocol


def _paths(doc: dict) -> None:
    """A spec may come from someone else: its name becomes a folder (runs/reproduce/NAME) and its data and
    checkpoint_dir are read and written, so none may point outside the configured folders (dse/paths.py)."""
    from dse.paths import check_inside, checkpoint_roots, data_roots

    if "name" in doc and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", doc["name"]):
        _fail("name", f"expected letters, digits, '.', '_' or '-' (a folder name), got {doc['name']!r}")
    if "data" in doc:
        _checked("data", lambda v: check_inside(v, data_roots(), "data path"), doc["data"])
    if "checkpoint_dir" in doc:
        _checked("checkpoint_dir", lambda v: check_inside(v, checkpoint_roots(), "checkpoint folder"),
                 doc["checkpoint_dir"])


def parse_spec(doc: dict, name: str = "sweep", source: str = "") -> SweepSpec:
    """A spec from an already-parsed TOML/YAML document."""
    if not isinstance(doc, dict):
        _fail("", "the file must hold a table of keys (name = ..., [[grid]] ...)")
    _unknown("", doc, TOP_KEYS)
    if "axes" not in doc and "grid" not in doc:
        _fail("grid", "no grid; give an [axes] table or one or more [[grid]] blocks")
    grids = []
    if "axes" in doc:
        grids.append(_grid("axes", doc["axes"]))
    blocks = doc.get("grid", [])
    if not isinstance(blocks, list) or ("grid" in doc and not blocks):
        _fail("grid", "expected one or more [[grid]] blocks")
    grids += [_grid(f"grid[{i + 1}]", b) for i, b in enumerate(blocks)]

    recipe = {**RECIPE_DEFAULTS, **_recipe("recipe", doc.get("recipe", {}))}
    protocol = {**PROTOCOL_DEFAULTS, **_protocol("protocol", doc.get("protocol", {}))}

    resources = {**RESOURCE_DEFAULTS, **_table("resources", doc.get("resources", {}))}
    _unknown("resources", resources, RESOURCE_DEFAULTS)
    if _nonneg_number("resources.cpus", resources["cpus"]) == 0:
        _fail("resources.cpus", "expected a positive number of CPUs per job, got 0")
    if resources["train_gpus"] != "auto":
        _nonneg_number("resources.train_gpus", resources["train_gpus"])
    _nonneg_number("resources.evaluate_gpus", resources["evaluate_gpus"])
    if isinstance(resources["max_retries"], bool) or not isinstance(resources["max_retries"], int) \
            or resources["max_retries"] < 0:
        _fail("resources.max_retries", f"expected a non-negative integer, got {resources['max_retries']!r}")

    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        _fail("seed", f"expected a non-negative integer, got {seed!r}")
    for key in ("name", "description", "data", "checkpoint_dir"):
        if key in doc and not (isinstance(doc[key], str) and doc[key]):
            _fail(key, f"expected a non-empty string, got {doc[key]!r}")
    _paths(doc)
    if not isinstance(doc.get("manifest", False), bool):
        _fail("manifest", f"expected true or false, got {doc['manifest']!r}")
    spec = SweepSpec(
        name=doc.get("name", name), description=doc.get("description", ""), grids=tuple(grids),
        fault_rates=_rates("fault_rates", doc["fault_rates"]) if "fault_rates" in doc else DEFAULT_FAULT_RATES,
        data=doc.get("data"), checkpoint_dir=doc.get("checkpoint_dir", "runs/checkpoints"),
        device=_device("device", doc.get("device", "auto")), seed=seed, recipe=recipe, protocol=protocol,
        resources=resources, manifest=doc.get("manifest", False), source=source)
    blocks = spec.blocks()
    names = {point for point, _, _ in blocks}
    for point, _, g in blocks:
        base = g.base_of(point)
        if base is None:
            continue
        i = next(i for i, x in enumerate(spec.grids) if x is g)
        if base not in names:
            _fail(f"grid[{i + 1}].finetune_from", f"the base point {base} is not in the spec; add it to a grid")
        if base.shortcut_kernel > point.shortcut_kernel:  # weights can grow, not shrink
            _fail(f"grid[{i + 1}].finetune_from", f"shortcut_kernel {base.shortcut_kernel} is larger than the "
                  f"fine-tuned point's {point.shortcut_kernel}; a base may only have the same or a smaller one")
    return spec


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and validate a spec file (.toml, or .yaml/.yml with PyYAML); a packaged grid's name
    (`default`, `paper`) works too."""
    path = Path(path)
    if not path.exists() and (GRIDS_DIR / f"{path}.toml").exists():
        path = GRIDS_DIR / f"{path}.toml"
    if not path.is_file():
        grids = ", ".join(sorted(p.stem for p in GRIDS_DIR.glob("*.toml")))
        raise DSEError(f"sweep spec {str(path)!r} not found; give a .toml file or one of: {grids}")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise DSEError(f"{path} is YAML, which needs PyYAML: pip install pyyaml (or write the spec in TOML)") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise DSEError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise DSEError(f"{path}: not valid TOML ({e})") from None
    return parse_spec(doc, name=path.stem, source=str(path))


# =============================================================================================
# Expansion into jobs
# =============================================================================================


@dataclass(frozen=True)
class Job:
    kind: str  # train | evaluate
    point: DesignPoint
    config: dict = field(hash=False)
    deps: tuple[str, ...] = ()  # job ids that must be done first

    @property
    def job_id(self) -> str:
        from dse.store import job_id

        return job_id(self.kind, self.config)

    @property
    def label(self) -> str:
        from dataclasses import asdict

        from dse.explore import label

        what = label(asdict(self.point))
        return f"{self.kind} {what}" + (f" f={self.config['fault_rates'][0]:g}" if self.kind == "evaluate" else "")


def resolve_data(spec: SweepSpec, data: str | os.PathLike | None = None) -> str:
    """The data source: an argument, else the spec's, else $DSE_DATA; absolute, as nodes need it."""
    chosen = data or spec.data or os.environ.get("DSE_DATA")
    if not chosen:
        raise DSEError("the sweep needs CIFAR-10: set data in the spec, pass --data PATH or set DSE_DATA")
    return str(Path(chosen).expanduser().absolute())


def expand(spec: SweepSpec, data: str | os.PathLike | None = None) -> list[Job]:
    """Train and evaluate jobs for every design point of the spec, each train job before its evaluations.
    Paths are made absolute (from the current folder): nodes of a cluster must see the same paths."""
    from dse import jobs
    from dse.calibrate import DEFAULT_RATES

    data = resolve_data(spec, data)
    out_dir = str(Path(spec.checkpoint_dir).expanduser().absolute())
    plan = []
    trains: dict[DesignPoint, Job] = {}
    bases: dict[DesignPoint, DesignPoint] = {}  # fine-tuned point -> its base
    for point, rates, grid in spec.blocks():
        base = grid.base_of(point)
        r = {**spec.recipe, **dict(grid.recipe), **(dict(grid.finetune_recipe) if base else {})}
        p = {**spec.protocol, **dict(grid.protocol)}
        cfg = jobs.train_config(point, epochs=r["epochs"], data=data, out_dir=out_dir, seed=spec.seed,
                                calib_images=r["calib_images"], device=spec.device)
        # keys train_config does not have are added only when they differ from the trainer's defaults,
        # so the same work asked from the app (which leaves them out) gets the same job id
        for key in ("batch_size", "lr", "half"):
            if r[key] != RECIPE_DEFAULTS[key]:
                cfg[key] = r[key]
        if r["max_train_images"]:
            cfg["max_train_images"] = r["max_train_images"]
        if not set(rates) <= set(DEFAULT_RATES):  # calibrate BN for every rate the sweep evaluates
            cfg["calib_rates"] = sorted(set(DEFAULT_RATES) | set(rates))
        if base is not None:
            cfg["init"] = str(Path(out_dir) / jobs.checkpoint_name(base, spec.seed))
            bases[point] = base
        train = Job("train", point, cfg)
        trains[point] = train
        plan.append(train)
        for f in rates:
            ecfg = jobs.evaluate_config(cfg["out"], [f], data=data, instances=p["instances"], adaptive=p["adaptive"],
                                        seed=p["seed"], device=spec.device, test_images=p["test_images"])
            plan.append(Job("evaluate", point, ecfg, deps=(train.job_id,)))
    for i, job in enumerate(plan):  # fine-tuned points wait for their base's training (any block's)
        if job.kind == "train" and job.point in bases:
            plan[i] = Job("train", job.point, job.config, deps=(trains[bases[job.point]].job_id,))
    if spec.only:
        keep = {p for p in trains if all(getattr(p, axis) in values for axis, values in spec.only)}
        if not keep:
            _fail("--only", "selects no design point of the spec")
        needed = set(keep)
        for p in keep:  # a chain of bases, if fine-tunes are stacked
            while p in bases:
                p = bases[p]
                needed.add(p)
        plan = [j for j in plan if j.point in keep or (j.kind == "train" and j.point in needed)]
    return plan


def parse_only(items: list[str]) -> tuple:
    """`AXIS=V1,V2` filters from the command line, values checked like the spec's axes."""
    out = {}
    for item in items:
        axis, eq, values = item.partition("=")
        axis = axis.strip().replace("-", "_")
        if not eq or axis not in AXES[:-1] or not values:
            _fail("--only", f"expected AXIS=V1,V2 with AXIS one of {', '.join(AXES[:-1])}, got {item!r}")
        raw = []
        for v in values.split(","):
            v = v.strip()
            try:
                raw.append(int(v) if axis == "shortcut_kernel" else float(v) if axis in ("width", "dropconnect") else v)
            except ValueError:
                _fail(f"--only {axis}", f"expected a number, got {v!r}")
        out[axis] = set(out.get(axis, set())) | set(_axis("--only", axis, raw))
    return tuple((axis, frozenset(v)) for axis, v in out.items())


# =============================================================================================
# Running a sweep
# =============================================================================================


class SweepInterrupted(KeyboardInterrupt):
    """SIGTERM (or Ctrl-C) to the sweep's driver."""


FINAL = ("done", "failed", "cancelled")


def run_sweep(spec: SweepSpec, store: Store, *, backend: str = "local", workers: int = 1,
              address: str | None = None, data: str | os.PathLike | None = None, progress: bool = True,
              log: Callable[[str], None] = print, poll_s: float = 1.0) -> dict:
    """Run every job of the spec that the store does not have done; returns a summary.

    The driver (this process) alone writes the store: it claims each job (state running, its own pid),
    hands the work to the backend and records the result. A driver that dies leaves its jobs running
    under a dead pid; the next run reaps them to failed and redoes them (training resumes from
    `<checkpoint>.partial`). Jobs queued or run by someone else (the app, another sweep) are waited for.
    """
    from tqdm.auto import tqdm

    from dse.backends import make_backend
    from dse.catalog import sync, write_manifest

    t0 = time.time()
    plan = expand(spec, data)
    data_path = Path(plan[0].config["data"])
    if not data_path.exists():
        raise DSEError(f"sweep data {str(data_path)!r} does not exist; set data in the spec or pass --data")
    ckdir = Path(spec.checkpoint_dir).expanduser()
    ckdir.mkdir(parents=True, exist_ok=True)
    runner = make_backend(backend, spec, workers=workers, address=address, store=store)
    try:
        store.reap_dead_jobs()
        by_id = {j.job_id: j for j in plan}
        sync(store, [ckdir])  # checkpoints already there, with their manifest's evaluations, count as done
        standing = _standing(store, plan)
        state = {}
        for j in plan:
            jid, new = store.submit_job(j.kind, j.point.point_id, j.config, source="sweep")
            state[jid] = store.job(jid)["state"]
            if state[jid] == "done" and not standing[jid]:  # its checkpoint was deleted or replaced since
                store.update_job(jid, state="failed", error="its result is gone: checkpoint deleted or replaced")
                store.submit_job(j.kind, j.point.point_id, j.config, source="sweep")
                state[jid] = "queued"
            elif new and j.kind == "evaluate" and standing[jid]:  # e.g. imported from a shipped manifest
                store.update_job(jid, state="done", progress=1.0, message="result already in the store")
                state[jid] = "done"
        skipped = sum(s == "done" for s in state.values())
        todo = [jid for jid in by_id if state[jid] != "done"]
        log(f"sweep {spec.name}: {len(plan)} jobs, {skipped} already done, {len(todo)} to run "
            f"({backend} backend)")
        driver = _Driver(store, runner, by_id, state, poll_s)
        if spec.manifest:  # the folder's manifest.json follows every result, ready to commit at any time
            driver.on_recorded = lambda: write_manifest(store, ckdir, data_path)
        bar = tqdm(total=len(todo), unit="job", desc=f"sweep {spec.name}", disable=not progress)
        try:
            driver.run(todo, bar)
        finally:
            bar.close()
    finally:
        runner.close()
    counts = {s: sum(state[jid] == s for jid in todo) for s in FINAL}
    failures = [{"job_id": jid, "job": by_id[jid].label, "state": state[jid],
                 "error": (store.job(jid) or {}).get("error")} for jid in todo if state[jid] != "done"]
    return {"spec": spec.name, "store": str(store.path), "backend": backend, "jobs": len(plan), "skipped": skipped,
            "ran": len(todo), **counts, "failures": failures, "time_s": round(time.time() - t0, 1)}


def _standing(store: Store, plan: list[Job]) -> dict[str, bool]:
    """Whether each job's result is in place now: a training's checkpoint reads back; an evaluation has a
    result for the checkpoint on disk (its weights, by sha256), rate and seed, at least as large as asked."""
    from dse.checkpoint import load_checkpoint

    rows = store.read_sql("SELECT point_id, checkpoint_sha, fault_rate, seed, protocol, n, ci95, test_images "
                          "FROM evaluations")
    found: dict[tuple, list] = {}
    for r in rows.itertuples():
        found.setdefault((r.point_id, r.checkpoint_sha, round(r.fault_rate, 9), r.seed), []).append(r)
    largest = rows.groupby(["point_id", "checkpoint_sha"]).test_images.max().to_dict()  # "all test images"
    shas: dict[str, str | None] = {}  # checkpoint path -> the digest of its weights, None when unreadable
    verified = {r.checkpoint: (r.file_stamp, r.checkpoint_sha) for r in store.points().itertuples()}

    def sha(path: str) -> str | None:
        if path not in shas:
            try:
                stamp, digest = verified.get(path, (None, None))
                if stamp is None or stamp != file_stamp(path):  # not verified by the store as it is now
                    digest = load_checkpoint(path).sha256
                shas[path] = digest
            except (DSEError, OSError):
                shas[path] = None
        return shas[path]

    def enough(r, c) -> bool:
        if r.test_images != (c["test_images"] or largest[(r.point_id, r.checkpoint_sha)]):
            return False
        if r.fault_rate == 0:  # no faults: one instance is every instance
            return r.n >= 1
        if c["adaptive"]:
            return r.n >= c["instances"] or (r.n >= 20 and r.ci95 <= c["adaptive"])
        return r.protocol.startswith("fixed") and r.n >= c["instances"]

    out = {}
    for j in plan:
        c = j.config
        if j.kind == "train":
            out[j.job_id] = sha(c["out"]) is not None
        else:
            key = (j.point.point_id, sha(c["checkpoint"]), round(c["fault_rates"][0], 9), c["seed"])
            out[j.job_id] = any(enough(r, c) for r in found.get(key, []))
    return out


class _Driver:
    """The scheduling loop: start ready jobs, collect results, follow jobs owned by others."""

    def __init__(self, store: Store, runner, by_id: dict[str, Job], state: dict[str, str], poll_s: float):
        self.store, self.runner, self.by_id, self.state, self.poll_s = store, runner, by_id, state, poll_s
        self.mine: set[str] = set()  # claimed by this driver and not finished
        self.others: set[str] = set()  # queued or running elsewhere
        self.on_recorded: Callable[[], None] | None = None  # after each result this driver records

    def run(self, todo: list[str], bar) -> None:
        pending = list(todo)
        old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGTERM, self._on_term)
        try:
            while pending or self.mine or self.others:
                pending = self._start_ready(pending, bar)
                if not (self.mine or self.others):
                    for jid in pending:  # a safety net: nothing runs, so these can never start
                        self._finish(jid, "failed", "its dependencies did not finish", bar)
                    break
                timeout = self.poll_s if self.others or self.runner.polls else None
                for jid, outcome in self.runner.wait(timeout):
                    self._collect(jid, outcome, bar)
                self._follow(bar)
        except BaseException:
            self._abandon()
            raise
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)

    # ------------------------------------------------------------------ starting
    def _start_ready(self, pending: list[str], bar) -> list[str]:
        left = []
        for jid in pending:
            job = self.by_id[jid]
            deps = [self.state.get(d, "done") for d in job.deps]
            if any(s in ("failed", "cancelled") for s in deps):
                bad = next(d for d in job.deps if self.state.get(d) in ("failed", "cancelled"))
                if self.store.claim_job(jid, os.getpid()) is not None:
                    self._finish(jid, "cancelled" if self.state[bad] == "cancelled" else "failed",
                                 f"{self.by_id[bad].label} {self.state[bad]}", bar)
                else:
                    self.others.add(jid)
            elif all(s == "done" for s in deps) and self.runner.has_room():
                if self.store.claim_job(jid, os.getpid()) is None:
                    self.state[jid] = self.store.job(jid)["state"]
                    if self.state[jid] in FINAL:
                        self._finish(jid, self.state[jid], None, bar, write=False)
                    else:
                        self.others.add(jid)
                    continue
                self.mine.add(jid)
                self.state[jid] = "running"
                self.store.update_job(jid, message=self.runner.started_message)
                self.runner.submit(jid, job)
            else:
                left.append(jid)
        return left

    # ------------------------------------------------------------------ finishing
    def _collect(self, jid: str, outcome: dict, bar) -> None:
        from dse.jobs import record

        self.mine.discard(jid)
        if self.store.job(jid)["state"] == "cancelled" or outcome.get("cancelled"):
            self._finish(jid, "cancelled", None, bar, write=self.store.job(jid)["state"] != "cancelled")
            return
        if not outcome["ok"]:
            self._finish(jid, "failed", outcome["error"], bar)
            return
        try:
            record(self.store, jid, self.by_id[jid].kind, outcome["result"])
        except Exception as e:  # an unreadable checkpoint, say: this job failed, the sweep goes on
            self._finish(jid, "failed", f"recording the result failed: {e}", bar)
            return
        self._finish(jid, "done", None, bar)
        if self.on_recorded:
            self.on_recorded()

    def _finish(self, jid: str, state: str, error: str | None, bar, write: bool = True) -> None:
        self.state[jid] = state
        self.mine.discard(jid)
        self.others.discard(jid)
        if write:
            fields = {"state": state, "message": state}
            if state == "done":
                fields.update(progress=1.0, eta_s=0, error=None)
            elif error:
                fields["error"] = error
            self.store.update_job(jid, **fields)
        bar.set_postfix(failed=sum(self.state[j] == "failed" for j in self.state), refresh=False)
        bar.update(1)

    def _follow(self, bar) -> None:
        """States of the jobs others run; jobs of ours that someone cancelled (the app's Cancel)."""
        ids = list(self.others | self.mine)
        if not ids:
            return
        self.store.reap_dead_jobs()
        marks = ",".join("?" * len(ids))
        df = self.store.read_sql(f"SELECT job_id, state FROM jobs WHERE job_id IN ({marks})", ids)
        now = dict(zip(df.job_id, df.state))
        for jid in list(self.others):
            if now.get(jid) in FINAL:
                self._finish(jid, now[jid], None, bar, write=False)
        for jid in list(self.mine):
            if now.get(jid) == "cancelled":
                self.runner.cancel(jid)

    def _on_term(self, signum, frame) -> None:
        """The app's Cancel sends SIGTERM to a job's pid, which for sweep jobs is this driver: cancel that
        job only. A SIGTERM with no cancelled job behind it stops the sweep."""
        from dse.jobs import Cancelled

        ids = list(self.mine)
        df = self.store.read_sql(f"SELECT job_id FROM jobs WHERE state = 'cancelled' AND job_id IN "
                                 f"({','.join('?' * len(ids))})", ids) if ids else None
        cancelled = set(df.job_id) if df is not None else set()
        if not cancelled:
            raise SweepInterrupted()
        for jid in cancelled:
            self.runner.cancel(jid)
        if self.runner.current in cancelled:  # the in-process job: stop it where it is
            raise Cancelled()

    def _abandon(self) -> None:
        """The driver is stopping: jobs it claimed or was to run are marked cancelled (a rerun queues them
        again); jobs others run are left alone."""
        for jid in [j for j, s in self.state.items() if j in self.mine or (s == "queued" and j not in self.others)]:
            try:
                self.store.update_job(jid, state="cancelled", message="sweep interrupted")
            except Exception:  # the store may be what failed; the rerun reaps what is left
                pass
