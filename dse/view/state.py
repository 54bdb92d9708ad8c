"""What the page's sidebar chose, as one frozen object (`PageState`) that every section and cached query takes,
and the parts that key the caches: which stored evaluations the numbers are (`ResultsSpec`) and how costs are
counted (`CostSpec`). Torch-free, no streamlit: dse/view/pages/sidebar.py builds a PageState, once a run."""
from __future__ import annotations

from dataclasses import dataclass, replace

from dse.domain.bn import BN
from dse.domain.evalspec import Budget, EvalSpec
from dse.domain.faultspec import FaultSpec, fault_model_label
from dse.domain.point import DesignPoint, label
from dse.domain.recipes import DEFAULT_RECIPE
from dse.run.tasks import EvaluateTask, SensitivityTask, TrainTask, train_task
from dse.view import explore

NETWORK_NAMES = {"resnet20": "ResNet20", "vgg13": "VGG13 (BN)", "mobilenetv2": "MobileNetV2"}


@dataclass(frozen=True)
class ResultsSpec:
    """Which evaluations a number on the page comes from: the faults (model, parameters and rate) and the BN
    protocol, both typed and frozen (they key the page's caches)."""

    fault: FaultSpec = explore.SA1.at(0.1)
    bn: BN = explore.DEFAULT_PROTOCOL

    @property
    def fault_rate(self) -> float:
        return self.fault.rate

    @property
    def bn_label(self) -> str:
        return self.bn.label

    @property
    def fault_label(self) -> str:
        return fault_model_label(self.fault.name)


@dataclass(frozen=True)
class CostSpec:
    """How costs are counted: the cost model, isaac's knobs that differ from ISAAC's (sorted (name, value)
    pairs), and the off-crossbar processor (GMAC/s, pJ per MAC) of both models. At the defaults the store's
    costs serve (no torch); otherwise they are computed (explore.cost_options)."""

    model: str = "paper"
    isaac: tuple[tuple[str, int], ...] = ()
    processor: tuple[float, float] = explore.DEFAULT_PROCESSOR

    def of(self, model: str) -> CostSpec:
        """The same knobs under cost model `model`."""
        return replace(self, model=model)

    @property
    def knobs(self) -> dict:
        return dict(self.isaac)

    @property
    def computed(self) -> bool:
        """True when these costs are not the store's: isaac's knobs (isaac model) or another processor."""
        return bool(self.options)

    @property
    def options(self) -> dict:
        """explore.cost_options of these knobs: what makes the costs differ from the store's."""
        return explore.cost_options(self.model, self.knobs, self.processor)

    @property
    def xbar_size(self) -> int:
        return self.knobs.get("xbar_size", explore.DEFAULT_HARDWARE.xbar_size)


@dataclass(frozen=True)
class PageState:
    """Everything the sidebar chose. Sections and cached queries take it (or its `results` / `cost`), and
    `spec` is the one place an evaluation (an EvalSpec) is built from it."""

    point: DesignPoint
    results: ResultsSpec = ResultsSpec()
    cost: CostSpec = CostSpec()
    instances: int = 100  # crossbar instances (chips) an evaluation draws
    adaptive: float | None = None  # stop once the 95% CI half-width is this small (points)
    precision: str | None = None  # None: $DSE_PRECISION or auto
    data: str = ""  # CIFAR-10 for training and evaluation ("" when none or refused)
    data_error: str | None = None
    epochs: int = 30
    device: str = "auto"

    @property
    def fault(self) -> FaultSpec:
        return self.results.fault

    @property
    def fault_rate(self) -> float:
        return self.results.fault.rate

    @property
    def bn(self) -> BN:
        return self.results.bn

    @property
    def label(self) -> str:
        """'resnet20 1x k1 p=0.3': the point as tables name it."""
        return label(vars(self.point))

    @property
    def arch(self) -> str:
        """'ResNet20 1x, 1x1 shortcuts': the architecture as chart titles name it."""
        p = self.point
        kernel = f", {p.shortcut_kernel}x{p.shortcut_kernel} shortcuts" if p.network == "resnet20" else ""
        return f"{NETWORK_NAMES[p.network]} {p.width:g}x{kernel}"

    @property
    def can_run(self) -> bool:
        """Whether the page can start work that reads CIFAR-10."""
        return bool(self.data) and not self.data_error

    @property
    def spec(self) -> EvalSpec:
        """The evaluation the sidebar describes (the selected point at its fault model and rate, BN protocol,
        crossbars and precision): built only here, and run by the Evaluate buttons whole or with a section's
        own faults or chip count (dataclasses.replace)."""
        return EvalSpec(self.point, self.results.fault, self.results.bn,
                        budget=Budget(self.instances, self.adaptive), precision=self.precision)

    def evaluate_task(self, checkpoint: str, spec: EvalSpec | None = None) -> EvaluateTask:
        """The job that evaluates `spec` (default: the sidebar's) on `checkpoint` with the page's data and device."""
        return EvaluateTask(checkpoint, spec or self.spec, self.data, self.device)

    def train_task(self, out_dir: str) -> TrainTask:
        return train_task(self.point, epochs=self.epochs, data=self.data, out_dir=out_dir, device=self.device,
                          recipe=DEFAULT_RECIPE)

    def sensitivity_task(self, checkpoint: str, rate: float) -> SensitivityTask:
        return SensitivityTask(checkpoint, rate, self.data, device=self.device)
