"""One evaluation, named once: which design point, under which faults (model, parameters, rate), with which BN
protocol, seed, crossbar budget, test images and precision. Built at the edge (the page, a command, a sweep
spec) and passed whole to the task, the journal, the evaluator and the store, which all derive their keys from
`EvalSpec.key()`; nothing re-packs its fields into tuples of its own. Torch-free."""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field, replace

from dse.domain.bn import BN, LEGACY_BN, Batch, Chip, Paper, parse_bn
from dse.domain.errors import DSEError
from dse.domain.faultspec import FaultSpec, parse_fault_model
from dse.domain.point import DesignPoint

PRECISIONS = ("auto", "fp32", "bf16", "int8")  # dse.core.runtime.precision chooses them; int8 evaluates only (dse/core/evaluation/int8.py)
MIN_INSTANCES = 20  # an adaptive evaluation never stops before this many crossbars


def check_precision(name) -> str:
    if name not in PRECISIONS:
        raise DSEError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    return name


def _count(value, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise DSEError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Budget:
    """How many crossbar instances (simulated chips) an evaluation runs: `instances`, or with `adaptive` (a 95%
    CI half-width in accuracy points) as few as reach it, from `min_instances` up to `instances`."""
    instances: int = 100  # the paper's count; the maximum when adaptive
    adaptive: float | None = None
    min_instances: int = MIN_INSTANCES

    def __post_init__(self):
        object.__setattr__(self, "instances", _count(self.instances, "instances", 1))
        object.__setattr__(self, "min_instances", _count(self.min_instances, "min instances", 2))
        if self.adaptive is not None and not (isinstance(self.adaptive, numbers.Real)
                                              and math.isfinite(self.adaptive) and self.adaptive > 0):
            raise DSEError(f"adaptive CI target must be a positive number of points, got {self.adaptive!r}")

    @property
    def name(self) -> str:
        """How the store names the budget an evaluation ran under: 'fixed(100)' or 'adaptive(0.5)'."""
        return f"adaptive({self.adaptive})" if self.adaptive else f"fixed({self.instances})"

    def met(self, n: int, ci95: float) -> bool:
        """Whether an evaluation of n crossbars with this CI half-width is all the budget asks."""
        if self.adaptive:
            return n >= self.instances or (n >= self.min_instances and ci95 <= self.adaptive)
        return n >= self.instances


@dataclass(frozen=True)
class EvalSpec:
    point: DesignPoint
    fault: FaultSpec  # the fault model, its parameters and the cell fault rate
    bn: BN = field(default_factory=Chip)
    seed: int = 0  # base seed of the fault maps: crossbar i is the same chip in every evaluation with this seed
    budget: Budget = field(default_factory=Budget)
    test_images: int | None = None  # the first N test images, class by class; None: all of them
    precision: str | None = None  # auto | fp32 | bf16 | int8; None: $DSE_PRECISION or auto
    rescale: bool = True  # keep the drop-connect 1/(1-f) scale at inference (False: an ablation)

    def __post_init__(self):
        if isinstance(self.point, dict):  # read back from JSON
            object.__setattr__(self, "point", DesignPoint(**self.point))
        if isinstance(self.fault, str):
            object.__setattr__(self, "fault", parse_fault_model(self.fault))
        if not isinstance(self.fault, FaultSpec):
            raise DSEError(f"an evaluation's faults must be a FaultSpec, got {self.fault!r}")
        if not isinstance(self.bn, (Paper, Chip, Batch)):
            raise DSEError(f"an evaluation's BN protocol must be Paper(), Chip(images=N) or Batch(), got {self.bn!r}")
        object.__setattr__(self, "seed", _count(self.seed, "seed", 0))
        if self.test_images is not None:
            object.__setattr__(self, "test_images", _count(self.test_images, "test images", 1))
        if self.precision is not None:
            check_precision(self.precision)
        object.__setattr__(self, "rescale", bool(self.rescale))

    @property
    def rate(self) -> float:
        return self.fault.rate

    def at(self, rate: float) -> "EvalSpec":
        """The same evaluation at another fault rate."""
        return replace(self, fault=self.fault.at(rate))

    def identity(self) -> dict:
        """What decides every crossbar's accuracy, field by field: the design point, the faults and their rate,
        the BN protocol, the seed, the test images and the rescale. Not the budget (crossbar i is the same chip
        whatever the count) nor the precision (shown equal before it is chosen)."""
        return eval_identity(point_id=self.point.point_id, fault_model=self.fault.name, fault_rate=self.rate,
                             bn=self.bn.name, calib_images=self.bn.images,
                             recalibrate=getattr(self.bn, "recalibrate", True), rescale=self.rescale,
                             seed=self.seed, test_images=self.test_images)

    def key(self) -> str:
        """The one canonical id of the evaluation (identity() as sorted JSON): the store keys its rows by it (with
        the weights' digest and the budget), the crossbar journal names its file after it."""
        return json.dumps(self.identity(), sort_keys=True)


def parse_budget(name: str) -> Budget:
    """The budget a stored name stands for: 'fixed(100)' or 'adaptive(0.5)' (an adaptive one's maximum is not
    recorded in its name: the default stands in)."""
    head, _, rest = str(name).partition("(")
    try:
        if head == "fixed" and rest.endswith(")"):
            return Budget(int(rest[:-1]))
        if head == "adaptive" and rest.endswith(")"):
            return Budget(adaptive=float(rest[:-1]))
    except ValueError:
        pass
    raise DSEError(f"unknown crossbar budget {name!r}; expected fixed(N) or adaptive(HALF_WIDTH)")


def spec_of(point: DesignPoint, columns: dict) -> EvalSpec:
    """The EvalSpec a stored evaluation's columns (a store row, a manifest entry) describe, of `point` (the
    precision a row records is the one that ran, a result, not what was asked: left None)."""
    return EvalSpec(point=point, fault=parse_fault_model(columns["fault_model"], columns["fault_rate"]),
                    bn=parse_bn(columns.get("bn") or LEGACY_BN, columns.get("calib_images") or None,
                                recalibrate=bool(columns.get("recalibrate", True))),
                    seed=int(columns["seed"]), budget=parse_budget(columns["protocol"]),
                    test_images=None if columns.get("test_images") is None else int(columns["test_images"]),
                    rescale=bool(columns.get("rescale", True)))


def eval_identity(*, point_id: str, fault_model: str, fault_rate: float, bn: str, calib_images: int,
                  recalibrate: bool, rescale: bool, seed: int, test_images: int | None) -> dict:
    """EvalSpec.identity() from its stored columns: the store's migration computes old rows' keys with it."""
    return {"point_id": point_id, "fault_model": fault_model, "fault_rate": round(float(fault_rate), 12), "bn": bn,
            "calib_images": int(calib_images) if bn == Chip.name else 0, "recalibrate": bool(recalibrate),
            "rescale": bool(rescale), "seed": int(seed), "test_images": None if test_images is None else int(test_images)}


def eval_key(**columns) -> str:
    """EvalSpec.key() from its stored columns (eval_identity's)."""
    return json.dumps(eval_identity(**columns), sort_keys=True)
