"""Typed tasks: what one job does, as a frozen dataclass. A task's canonical JSON (`to_json`) is what the store
keeps as the job's config, and the hash of its identity (`task_id`: the JSON without what cannot change the
result) is the job id, so the same work asked from the app, a sweep or the CLI is one job. An evaluate task
carries one EvalSpec, written out in the flat layout evaluate configs have always had, so that stored jobs keep
their ids. `from_json` reads a stored config back (missing keys take their defaults, but a missing `bn` is the
paper's, as it was when it was stored, and a missing design point is the checkpoint's; unknown ones are
refused)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from dse.domain.bn import LEGACY_BN, parse_bn
from dse.domain.errors import DSEError
from dse.domain.evalspec import MIN_INSTANCES, Budget, EvalSpec, check_precision
from dse.domain.faultspec import parse_fault_model
from dse.domain.point import DesignPoint
from dse.domain.recipes import RECIPES
from dse.results.store import job_id


def checkpoint_name(point: DesignPoint, seed: int = 0) -> str:
    return (f"{point.network}-w{point.width:g}-k{point.shortcut_kernel}-{point.mapping}"
            f"-p{point.dropconnect:g}-s{seed}.safetensors")


@dataclass(frozen=True)
class TrainTask:
    """Train (or fine-tune from `init`) one design point and calibrate its BN statistics per fault rate."""
    kind: ClassVar[str] = "train"
    point: DesignPoint
    epochs: int
    data: str
    out: str
    seed: int = 0
    calib_images: int | None = None
    device: str = "auto"
    batch_size: int | None = None  # None: the recipe's
    lr: float | None = None
    half: bool = False
    int8: bool = field(default=False, metadata={"omit_default": True})  # crossbar layers stored as 8-bit levels
    max_train_images: int | None = None
    calib_rates: tuple[float, ...] | None = None  # None: the paper's fault rates
    init: str | None = None
    precision: str | None = field(default=None, metadata={"omit_default": True})  # None: $DSE_PRECISION or auto
    # the named recipe (dse.core.training.train.RECIPES); jobs stored before recipes had names were `legacy`
    recipe: str = field(default="legacy", metadata={"omit_default": True})

    def __post_init__(self):
        if self.precision is not None:
            check_precision(self.precision)
        if self.recipe not in RECIPES:
            raise DSEError(f"unknown recipe {self.recipe!r}; use one of {', '.join(RECIPES)}")
        if self.precision == "int8":
            raise DSEError("int8 is for evaluation only; a training task runs in auto, fp32 or bf16")
        if isinstance(self.point, dict):
            object.__setattr__(self, "point", DesignPoint(**self.point))
        if self.calib_rates is not None:
            object.__setattr__(self, "calib_rates", tuple(sorted(float(r) for r in self.calib_rates)))


@dataclass(frozen=True)
class EvaluateTask:
    """Monte-Carlo accuracy of one EvalSpec on a checkpoint of its design point."""
    kind: ClassVar[str] = "evaluate"
    checkpoint: str
    spec: EvalSpec
    data: str
    device: str = "auto"
    batch_size: int | None = field(default=None, kw_only=True)  # test images per forward; speed only
    instances_per_pass: int | None = field(default=None, kw_only=True)  # crossbar instances per forward; speed only

    def __post_init__(self):
        if isinstance(self.spec, dict):
            object.__setattr__(self, "spec", EvalSpec(**self.spec))
        if not isinstance(self.spec, EvalSpec):
            raise DSEError(f"an evaluate task carries an EvalSpec, got {self.spec!r}")


# an evaluate config's keys that cannot change its result: left out of its job id (the design point is the
# checkpoint's, which the config names; the others only change how fast it runs)
NOT_IDENTITY = {"evaluate": ("point", "batch_size", "instances_per_pass")}


def _evaluate_json(t: EvaluateTask) -> dict:
    """The flat layout of an evaluate config: the fields it always had, then those added since, each left out at
    the value every older config meant."""
    s = t.spec
    out = {"checkpoint": t.checkpoint, "fault_rates": [s.rate], "data": t.data, "instances": s.budget.instances,
           "adaptive": s.budget.adaptive, "seed": s.seed, "device": t.device, "test_images": s.test_images,
           "bn": s.bn.name, "calib_images": s.bn.images, "point": dataclasses.asdict(s.point)}
    later = {"fault_model": (s.fault.name, "sa1"), "precision": (s.precision, None),
             "min_instances": (s.budget.min_instances, MIN_INSTANCES),
             "recalibrate": (getattr(s.bn, "recalibrate", True), True), "rescale": (s.rescale, True),
             "batch_size": (t.batch_size, None), "instances_per_pass": (t.instances_per_pass, None)}
    return {**out, **{k: v for k, (v, default) in later.items() if v != default}}


EVALUATE_KEYS = ("checkpoint", "fault_rates", "data", "instances", "adaptive", "seed", "device", "test_images", "bn",
                 "calib_images", "point", "fault_model", "precision", "min_instances", "recalibrate", "rescale",
                 "batch_size", "instances_per_pass")


def _evaluate_from_json(config: dict) -> EvaluateTask:
    c = {"bn": LEGACY_BN, **config}  # a config stored before tasks named their protocol was the paper's
    rates = c.get("fault_rates") or []
    if len(rates) != 1:
        raise DSEError(f"an evaluate job evaluates one fault rate, its config has {len(rates)}: {rates!r}")
    point = c.get("point") or _point_of(c["checkpoint"])  # a config stored before tasks named their point
    spec = EvalSpec(point=point, fault=parse_fault_model(c.get("fault_model", "sa1"), rates[0]),
                    bn=parse_bn(c["bn"], c.get("calib_images") or None, recalibrate=c.get("recalibrate", True)),
                    seed=c.get("seed", 0), budget=Budget(c.get("instances", 100), c.get("adaptive"),
                                                         c.get("min_instances", MIN_INSTANCES)),
                    test_images=c.get("test_images"), precision=c.get("precision"), rescale=c.get("rescale", True))
    return EvaluateTask(c["checkpoint"], spec, c["data"], c.get("device", "auto"), batch_size=c.get("batch_size"),
                        instances_per_pass=c.get("instances_per_pass"))


def _point_of(checkpoint: str) -> DesignPoint:
    from dse.core.io.checkpoint import read_meta

    return DesignPoint.of(read_meta(checkpoint))


@dataclass(frozen=True)
class SensitivityTask:
    """Accuracy with faults in one crossbar layer at a time."""
    kind: ClassVar[str] = "sensitivity"
    checkpoint: str
    fault_rate: float
    data: str
    instances: int = 3
    test_images: int | None = 2000
    seed: int = 0
    device: str = "auto"
    precision: str | None = field(default=None, metadata={"omit_default": True})


@dataclass(frozen=True)
class CalibrateTask:
    """Re-estimate a checkpoint's BN statistics for some fault rates (Algorithm 1), written into it in place."""
    kind: ClassVar[str] = "calibrate"
    checkpoint: str
    fault_rates: tuple[float, ...]
    data: str
    calib_images: int | None = field(default=None, kw_only=True)  # training images per pass; None: all
    seed: int = field(default=0, kw_only=True)
    device: str = field(default="auto", kw_only=True)
    precision: str | None = field(default=None, kw_only=True)  # None: $DSE_PRECISION or auto

    def __post_init__(self):
        object.__setattr__(self, "fault_rates", tuple(sorted(float(r) for r in self.fault_rates)))
        if self.precision is not None:
            check_precision(self.precision)
        if self.precision == "int8":
            raise DSEError("int8 is for evaluation only; a calibration runs in auto, fp32 or bf16")


Task = TrainTask | EvaluateTask | SensitivityTask | CalibrateTask
TASKS: dict[str, type] = {t.kind: t for t in (TrainTask, EvaluateTask, SensitivityTask, CalibrateTask)}


def to_json(task: Task) -> dict:
    """The task's canonical JSON: every field (but those marked omit_default, at their default), tuples as
    lists, the design point as a dict; an evaluate task's spec in the flat layout of evaluate configs."""
    if isinstance(task, EvaluateTask):
        return _evaluate_json(task)
    out = {}
    for f in dataclasses.fields(task):
        v = getattr(task, f.name)
        if f.metadata.get("omit_default") and v == f.default:  # a field added later: old tasks' ids stand
            continue
        out[f.name] = dataclasses.asdict(v) if isinstance(v, DesignPoint) else list(v) if isinstance(v, tuple) else v
    return out


def from_json(kind: str, config: dict) -> Task:
    """A stored job config back as its task."""
    if kind not in TASKS:
        raise DSEError(f"unknown job kind {kind!r}; use one of {', '.join(TASKS)}")
    cls = TASKS[kind]
    known = set(EVALUATE_KEYS) if kind == "evaluate" else {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(config) - known)
    if extra:
        raise DSEError(f"{kind} job config has unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(known))}")
    required = {"checkpoint", "fault_rates", "data"} if kind == "evaluate" else {
        f.name for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(config))
    if missing:
        raise DSEError(f"{kind} job config lacks {', '.join(missing)}")
    return _evaluate_from_json(config) if kind == "evaluate" else cls(**config)


def identity(kind: str, config: dict) -> dict:
    """The part of a job's config its id is the hash of."""
    return {k: v for k, v in config.items() if k not in NOT_IDENTITY.get(kind, ())}


def task_id(task: Task) -> str:
    return job_id(task.kind, identity(task.kind, to_json(task)))


def train_task(point: DesignPoint, *, epochs: int, data: str, out_dir: str, seed: int = 0, **kw) -> TrainTask:
    """The train task of a design point, its checkpoint named after it in `out_dir`."""
    return TrainTask(point, epochs, str(data), str(Path(out_dir) / checkpoint_name(point, seed)), seed, **kw)
