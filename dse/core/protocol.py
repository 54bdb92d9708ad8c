"""How BatchNorm statistics are obtained under faults: the three protocols an evaluation can use, and how
tables and charts name them; and the names of the fault models and of the precisions. Torch-free (the page names protocols without importing torch); the work
itself is in dse/core/evaluation/calibrate.py."""
from __future__ import annotations

from dataclasses import dataclass

from dse.core.errors import DSEError

BN_PROTOCOLS = ("paper", "chip", "batch")
# The one BN default of every command, job, sweep spec and the page: each chip re-estimates its statistics on
# DEFAULT_CALIB_IMAGES unlabeled training images. `--bn paper` (the page: "paper") is the paper's Algorithm 1.
DEFAULT_BN = "chip"
DEFAULT_CALIB_IMAGES = 500
BN_CHOICES = (DEFAULT_BN, *(b for b in BN_PROTOCOLS if b != DEFAULT_BN))  # how selectors list them: default first
LEGACY_BN = "paper"  # what a record written before protocols were recorded (no `bn`) was evaluated under


FAULT_MODEL_NAMES = ("sa1", "sa0", "rows", "cols", "clustered", "mixed")  # dse.core.faults.stuck_at.FAULT_MODELS implements them
# the second parameter of a fault model: (what it is, default, smallest, largest); written "clustered:8"
FAULT_PARAMS = {"clustered": ("mean cluster side in cells", 4.0, 1.0, 64.0),
                "mixed": ("share of the cell fault rate from random SA1 cells", 0.5, 0.0, 1.0)}
MAX_SPARES = 64  # spare columns per 128-column tile a remapped evaluation may add
WEIGHT_BITS = 8  # every crossbar weight is quantised to 8 bits (dse/core/crossbar/quantize.py)
CELL_BITS = (1, 2, 4, 8)  # bits per cell a weight's 8 bits split into evenly (8: one cell per weight, the paper's)


@dataclass(frozen=True)
class FaultSpec:
    """A fault model with its parameter, and whether the chip's known map is remapped (with spare columns).
    Its `name` is the one string an evaluation's identity carries wherever fault_model is (store, journals,
    jobs): "sa1", "clustered:8", "rows+remap", "mixed:0.3+remap:4"; parameters at their defaults are left out,
    so every existing SA1/SA0 key stands."""

    model: str
    param: float | None = None  # FAULT_PARAMS' value; None: the default
    remap: bool = False
    spares: int = 0  # spare columns per tile (remap only)
    bits_per_cell: int = WEIGHT_BITS  # a weight spans 8/b cells, each stuck on its own; "+bpc:B", left out at 8

    @property
    def name(self) -> str:
        out = self.model + (f":{self.param:g}" if self.param is not None else "")
        out += ("+remap" + (f":{self.spares}" if self.spares else "")) if self.remap else ""
        return out + (f"+bpc:{self.bits_per_cell}" if self.bits_per_cell != WEIGHT_BITS else "")

    @property
    def value(self) -> float | None:
        """The parameter, its default filled in (None for models without one)."""
        return self.param if self.param is not None else FAULT_PARAMS.get(self.model, (None, None))[1]


def parse_fault_model(text: str) -> FaultSpec:
    """`model[:param][+remap[:spares]]` -> FaultSpec; a bad part raises one line naming it and what is allowed."""
    allowed = (f"choose one of {', '.join(FAULT_MODEL_NAMES)}, optionally with a parameter "
               "(clustered:SIDE, mixed:SHARE) and +remap or +remap:SPARES")
    if not isinstance(text, str):
        raise DSEError(f"unknown fault model {text!r}; {allowed}")
    head, _, tail = text.strip().partition("+")
    model, colon, param_text = head.partition(":")
    if model not in FAULT_MODEL_NAMES:
        raise DSEError(f"unknown fault model {text!r}; {allowed}")
    param = None
    if colon:
        if model not in FAULT_PARAMS:
            raise DSEError(f"fault model {model!r} takes no parameter, got {text!r}; "
                           f"only {', '.join(FAULT_PARAMS)} do")
        param = _in(text, _param, model, param_text)
    remap, spares, bpc = False, 0, WEIGHT_BITS
    options = tail.split("+") if tail or text.strip().endswith("+") else []
    for option in options:
        word, colon, value = option.partition(":")
        if word == "remap" and not remap:
            remap, spares = True, _in(text, _spares, value) if colon else 0
        elif word == "bpc" and colon and bpc == WEIGHT_BITS:
            bpc = _in(text, check_bits_per_cell, value)
        else:
            raise DSEError(f"unknown fault model option {'+' + option!r} in {text!r}; "
                           "the options are +remap[:SPARES] and +bpc:BITS, once each")
    if bpc != WEIGHT_BITS and (remap or model not in ("sa1", "sa0")):
        raise DSEError(f"bits per cell {bpc} (in {text!r}) applies to sa1 and sa0 without +remap only")
    return FaultSpec(model, param, remap, spares, bpc)


def check_bits_per_cell(value) -> int:
    """Bits stored per cell for the fault model: one of CELL_BITS (8/b cells per 8-bit weight)."""
    try:
        b = int(value) if str(value).strip().isdigit() else -1
    except (TypeError, ValueError):
        b = -1
    if b not in CELL_BITS:
        raise DSEError(f"bits per cell must be one of {', '.join(map(str, CELL_BITS))} "
                       f"(an 8-bit weight over 8/b cells), got {value!r}")
    return b


def _in(text: str, check, *args):
    """check(*args); a failure names the whole fault model as typed too."""
    try:
        return check(*args)
    except DSEError as e:
        raise DSEError(f"{e} (in {text!r})") from None


def _param(model: str, text) -> float | None:
    what, default, lo, hi = FAULT_PARAMS[model]
    try:
        v = float(text)
    except (TypeError, ValueError):
        v = float("nan")
    if not (lo <= v <= hi):  # also rejects nan
        raise DSEError(f"{model} parameter ({what}) must be a number from {lo:g} to {hi:g}, got {text!r}")
    return None if v == default else v


def _spares(text) -> int:
    try:
        v = int(text)
    except (TypeError, ValueError):
        v = -1
    if not 0 <= v <= MAX_SPARES:
        raise DSEError(f"spare columns per tile must be an integer from 0 to {MAX_SPARES}, got {text!r}")
    return v


def fault_model_name(model: str, param: float | None = None, remap: bool = False, spares: int = 0,
                     bits_per_cell: int | None = None) -> str:
    """The canonical name of a fault model with these options (each validated as parse_fault_model does)."""
    spec = parse_fault_model(model)
    if param is not None:
        if model not in FAULT_PARAMS:
            raise DSEError(f"fault model {model!r} takes no parameter, got {param!r}; only {', '.join(FAULT_PARAMS)} do")
        spec = FaultSpec(spec.model, _param(model, param), spec.remap, spec.spares, spec.bits_per_cell)
    if spares and not remap:
        raise DSEError(f"spare columns ({spares!r}) only serve a remapped evaluation: add --remap")
    if remap:
        spec = FaultSpec(spec.model, spec.param, True, _spares(spares), spec.bits_per_cell)
    if bits_per_cell is not None:
        spec = FaultSpec(spec.model, spec.param, spec.remap, spec.spares, check_bits_per_cell(bits_per_cell))
    return parse_fault_model(spec.name).name  # re-parsed: the combination itself is checked


PRECISIONS = ("auto", "fp32", "bf16", "int8")  # dse.core.runtime.precision chooses them; int8 evaluates only (dse/core/evaluation/int8.py)


def check_precision(name) -> str:
    if name not in PRECISIONS:
        raise DSEError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    return name


FAULT_MODEL_LABELS = {"sa1": "SA1", "sa0": "SA0", "rows": "stuck-row", "cols": "stuck-column",
                      "clustered": "clustered", "mixed": "mixed"}


def fault_model_label(name: str) -> str:
    """How a page names a fault model ("clustered:8+remap" keeps its parameters after the base's label)."""
    base = name.split(":", 1)[0].split("+", 1)[0]  # the model's name, before any parameter or option
    return FAULT_MODEL_LABELS.get(base, base) + name[len(base):]


def check_fault_model(name: str) -> str:
    """The canonical form of a fault model name (DSEError naming a bad one and what is allowed)."""
    return parse_fault_model(name).name


def check_bn_protocol(name: str) -> str:
    if name not in BN_PROTOCOLS:
        raise DSEError(f"unknown BN protocol {name!r}; choose one of {', '.join(BN_PROTOCOLS)}")
    return name


def bn_label(bn: str, calib_images: int | None = None) -> str:
    """How a number's BatchNorm statistics were obtained, as tables and charts name it."""
    return {"paper": "paper (Algorithm 1)", "chip": f"chip (N={calib_images})",
            "batch": "batch (transductive)"}[check_bn_protocol(bn)]
