"""Typed tasks: what one job does, as a frozen dataclass. A task's canonical JSON (`to_json`: every field,
sorted keys) is what the store keeps as the job's config, and its hash is the job id, so the same work asked
from the app, a sweep or the CLI is one job. `from_json` reads a stored config back (missing keys take their
defaults, but a missing `bn` is the paper's, as it was when it was stored; unknown ones are refused)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from dse.core.errors import DSEError
from dse.core.protocol import (DEFAULT_BN, DEFAULT_CALIB_IMAGES, LEGACY_BN, check_bn_protocol, check_fault_model,
                               check_precision)
from dse.core.recipes import RECIPES
from dse.results.store import DesignPoint, job_id


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
    """Monte-Carlo accuracy of one checkpoint at some fault rates under one BN protocol."""
    kind: ClassVar[str] = "evaluate"
    checkpoint: str
    fault_rates: tuple[float, ...]
    data: str
    instances: int = 100
    adaptive: float | None = None
    seed: int = 0
    device: str = "auto"
    test_images: int | None = None
    bn: str = DEFAULT_BN
    calib_images: int = DEFAULT_CALIB_IMAGES  # 0 unless bn is "chip": it changes nothing else's work
    fault_model: str = field(default="sa1", metadata={"omit_default": True})  # SA1 jobs keep their ids
    precision: str | None = field(default=None, metadata={"omit_default": True})  # None: $DSE_PRECISION or auto

    def __post_init__(self):
        check_bn_protocol(self.bn)
        object.__setattr__(self, "fault_model", check_fault_model(self.fault_model))  # canonical name
        if self.precision is not None:
            check_precision(self.precision)
        object.__setattr__(self, "fault_rates", tuple(sorted(float(f) for f in self.fault_rates)))
        object.__setattr__(self, "calib_images", int(self.calib_images) if self.bn == "chip" else 0)


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


Task = TrainTask | EvaluateTask | SensitivityTask
TASKS: dict[str, type] = {t.kind: t for t in (TrainTask, EvaluateTask, SensitivityTask)}


def to_json(task: Task) -> dict:
    """The task's canonical JSON: every field (but those marked omit_default, at their default), tuples as
    lists, the design point as a dict."""
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
    known = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(config) - known)
    if extra:
        raise DSEError(f"{kind} job config has unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(known))}")
    if kind == "evaluate":  # a config stored before tasks named their protocol was the paper's
        config = {"bn": LEGACY_BN, **config}
    return cls(**config)


def task_id(task: Task) -> str:
    return job_id(task.kind, to_json(task))


def train_task(point: DesignPoint, *, epochs: int, data: str, out_dir: str, seed: int = 0, **kw) -> TrainTask:
    """The train task of a design point, its checkpoint named after it in `out_dir`."""
    return TrainTask(point, epochs, str(data), str(Path(out_dir) / checkpoint_name(point, seed)), seed, **kw)
