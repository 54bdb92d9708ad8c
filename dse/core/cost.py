"""Latency and energy of one 32x32 image on the ISAAC RRAM accelerator, two ways.

paper: the paper's Table II method. The whole model's operation count (as ptflops counts it) divided
    by the 64-chip ISAAC computational efficiency gives latency, divided by 363.7 GOPs/J gives energy.
    Reproduces every Table II cell in shared/paper-notes.md to within 0.03%. Units are ns and uJ per
    image; the paper's header says "latency (s), energy (kW)", which is mislabelled (at best the
    numbers are s and kJ per 1e9 images).
isaac: our own mapping model. Each crossbar layer's weight matrix is tiled onto 128x128 crossbars
    (one 8-bit weight per cell, as in the paper), inputs are streamed one bit per 100 ns cycle, and
    energy is ISAAC's per-component power times the time each component is busy. Layers kept off
    the crossbar by the mapping policy run on a conventional processor (PROCESSOR below).

Why they differ: paper mode assumes the work of one image is spread over all 64 chips at ISAAC's
peak rate; isaac mode gives each layer only the crossbars its weights need, so a layer computes its
output positions one after another, 8 cycles each.
"""
from __future__ import annotations

import contextlib
import functools
import io
import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from dse.core.errors import DSEError
from dse.core.mapping import MappingPolicy
from dse.core.models import build_model, check_network, check_width
from dse.core.paper import WIDTHS as TABLE_WIDTHS

INPUT_SHAPE = (3, 32, 32)  # one CIFAR-10 image
COST_MODELS = ("paper", "isaac")
TABLE_NETWORKS = ("resnet20", "vgg13", "mobilenetv2")

# =============================================================================================
# Paper mode: Table II
# =============================================================================================

# the figures the paper divides by (shared/paper-notes.md, "Table II"), from Shafiee et al., ISCA 2016
PAPER = {
    "gops_per_s_per_mm2": 478.95,  # ISAAC computational efficiency, GOPs/s/mm^2
    "chip_area_mm2": 85.4,  # one ISAAC chip
    "chips": 64,  # "the 64-chip ISAAC RRAM accelerator"
    "gops_per_j": 363.7,  # ISAAC power efficiency as the paper uses it (ISAAC also quotes 644.23)
}
# ptflops counts one multiply-accumulate as one op, while ISAAC counts a MAC as 2 ops; the paper mixes
# the two, so its figures are half what ISAAC's own convention would give. We keep the paper's way.
PAPER_UNITS_NOTE = (
    "ns and uJ per image; the paper's Table II header says 'latency (s), energy (kW)', which is "
    "mislabelled (the same numbers are s and kJ per 1e9 images)"
)


@functools.lru_cache(maxsize=128)
def _ptflops_macs(network: str, width: float, shortcut_kernel: int) -> int:
    from ptflops import get_model_complexity_info  # lazy: only paper mode needs it

    model = _build(network, width, shortcut_kernel)
    # ptflops prints to stdout; count_functional=False is the paper's convention (functional relu and
    # pooling count 0), and gives 41,214,602 for ResNet20 and 229,917,706 for VGG13 at 1.0x
    with contextlib.redirect_stdout(io.StringIO()):
        macs, _ = get_model_complexity_info(
            model,
            INPUT_SHAPE,
            as_strings=False,
            print_per_layer_stat=False,
            backend="pytorch",
            backend_specific_config={"count_functional": False},
        )
    return int(macs)


def paper_cost(network: str, width: float = 1.0, shortcut_kernel: int = 1) -> dict:
    """Table II figures for any registry network: whole-model ptflops count over ISAAC's efficiencies."""
    network, width = check_network(network), check_width(width)
    macs = _ptflops_macs(network, width, shortcut_kernel)
    ops_per_s = PAPER["gops_per_s_per_mm2"] * 1e9 * PAPER["chip_area_mm2"] * PAPER["chips"]
    return {
        "macs": macs,
        "latency_ns": macs / ops_per_s * 1e9,
        "energy_uj": macs / (PAPER["gops_per_j"] * 1e9) * 1e6,
        "units": PAPER_UNITS_NOTE,
    }


# =============================================================================================
# Operation counting (forward hooks)
# =============================================================================================


@dataclass(frozen=True)
class LayerCount:
    """One conv or linear layer for one image. Biases are added digitally, so not counted here."""

    name: str
    kind: str  # "conv" or "linear"
    kernel: int  # k of a k x k conv; 1 for linear
    in_channels: int
    out_channels: int
    groups: int
    positions: int  # output positions (Hout*Wout; 1 for linear): crossbar reads per image
    macs: int  # positions * weights
    weights: int
    on_crossbar: bool

    @property
    def rows(self) -> int:
        """Rows of one group's weight matrix: the input vector length (in/groups * k*k)."""
        return self.in_channels // self.groups * self.kernel * self.kernel

    @property
    def cols(self) -> int:
        """Columns of one group's weight matrix, in weights (out/groups)."""
        return self.out_channels // self.groups


def _build(network: str, width: float, shortcut_kernel: int) -> nn.Module:
    """The model on the meta device: counting needs only shapes, so nothing is initialised or computed
    (fast, and the caller's RNG is untouched); ptflops gives the same counts there as on the CPU."""
    with torch.device("meta"):
        model = build_model(network, width, shortcut_kernel)
    return model.eval()


@functools.lru_cache(maxsize=128)
def _count(network: str, width: float, shortcut_kernel: int, policy: str) -> tuple[LayerCount, ...]:
    model = _build(network, width, shortcut_kernel)
    on_xbar = MappingPolicy.parse(policy).on_crossbar
    rows: list[LayerCount] = []

    def hook(name: str):
        def record(module: nn.Module, inputs, output: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                kind, k = "conv", module.kernel_size[0]
                cin, cout, groups = module.in_channels, module.out_channels, module.groups
                positions = output.shape[-2] * output.shape[-1]
            else:
                kind, k, cin, cout, groups = "linear", 1, module.in_features, module.out_features, 1
                positions = output.numel() // (output.shape[0] * cout)
            weights = module.weight.numel()
            rows.append(LayerCount(name, kind, k, cin, cout, groups, positions, positions * weights,
                                   weights, on_xbar(module)))

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *INPUT_SHAPE, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return tuple(rows)


def count_layers(network: str, width: float = 1.0, shortcut_kernel: int = 1,
                 policy: MappingPolicy | str = "default") -> list[LayerCount]:
    """Per-layer MACs and weights for one 32x32 image, in execution order, with crossbar placement."""
    network, width = check_network(network), check_width(width)
    return list(_count(network, width, shortcut_kernel, MappingPolicy.parse(policy).name))


# =============================================================================================
# ISAAC mapping mode
# =============================================================================================

# Component powers from Shafiee et al., "ISAAC", ISCA 2016, Table 6 (32 nm). The table lists each
# component's power for all its units in an IMA or tile; we keep those figures and divide them out:
# they add up to the paper's totals (IMA 24.09 mW, tile 330 mW, chip 65.8 W), see tests/test_cost.py.
ISAAC_POWER_MW = {
    # per IMA (8 crossbars, 12 IMAs per tile)
    "adc": 16.0,  # 8 ADCs, 8-bit, 1.2 GS/s (one per crossbar): 2 mW each
    "dac": 4.0,  # 8x128 1-bit DACs (one per crossbar row)
    "sample_hold": 0.01,  # 8x128 sample-and-hold circuits
    "crossbar": 2.4,  # 8 memristor arrays 128x128 (ISAAC: 2 bits per cell)
    "ima_shift_add": 0.2,  # 4 shift-and-add units
    "input_register": 1.24,  # 2 KB
    "output_register": 0.23,  # 256 B
    # per tile (168 per chip)
    "edram": 20.7,  # 64 KB eDRAM buffer
    "bus": 7.0,  # eDRAM-to-IMA bus, 384 wires
    "router": 10.5,  # 42 mW router shared by 4 tiles
    "tile_digital": 0.52 + 0.05 + 0.4 + 1.68,  # sigmoid units, shift-and-add, max-pool, 3 KB output register
    # per chip
    "links": 10.4e3,  # 4 HyperTransport links, 1.6 GHz (chip total 65.8 W, 85.4 mm^2)
}
_XBAR_PARTS = ("adc", "dac", "sample_hold", "crossbar")  # scale with active crossbars
_IMA_PARTS = ("ima_shift_add", "input_register", "output_register")  # scale with active IMAs
_TILE_PARTS = ("edram", "bus", "router", "tile_digital")  # scale with active tiles


@dataclass(frozen=True)
class IsaacConfig:
    """The crossbar organisation. Defaults: ISAAC's, with one 8-bit weight per cell as in the paper."""

    xbar_size: int = 128  # rows = columns of one crossbar (ISAAC)
    bits_per_cell: int = 8  # the paper stores one 8-bit weight per cell (ISAAC: 2 bits per cell)
    weight_bits: int = 8
    input_bits: int = 8  # inputs streamed one bit per cycle (ISAAC: 16-bit inputs, 16 cycles)
    cycle_ns: float = 100.0  # one crossbar read + ADC pass over 128 columns (ISAAC)
    xbars_per_ima: int = 8  # ISAAC
    imas_per_tile: int = 12  # ISAAC
    tiles_per_chip: int = 168  # ISAAC

    @property
    def cells_per_weight(self) -> int:
        return math.ceil(self.weight_bits / self.bits_per_cell)

    def check(self) -> "IsaacConfig":
        for f in fields(self):
            v = getattr(self, f.name)
            number = (int, float) if f.name == "cycle_ns" else int
            if isinstance(v, bool) or not isinstance(v, number) or not (math.isfinite(v) and v > 0):
                allowed = "a positive number" if f.name == "cycle_ns" else "a positive integer"
                raise DSEError(f"{f.name} must be {allowed}, got {v!r}")
        return self


@dataclass(frozen=True)
class Processor:
    """Where off-crossbar layers (1x1 convs, linears by default) run: a small throughput/energy model.

    A mobile CPU cluster (4 Cortex-A76-class cores at ~2.4 GHz with int8 dot-product instructions)
    peaks near 300 GMAC/s; 1x1 convs are small GEMMs that sustain about a third of that, so 100 GMAC/s.
    Such a cluster draws about 2 W under load, i.e. 20 pJ per MAC at that rate (memory traffic
    included; the bare 8-bit multiply-add is ~0.2 pJ, Horowitz ISSCC 2014). Our assumption, not ISAAC's.
    Transfers between the accelerator and the processor are not costed.
    """

    macs_per_s: float = 100e9
    pj_per_mac: float = 20.0


PROCESSOR = Processor()


@dataclass(frozen=True)
class LayerCost:
    """One layer's placement and cost. For crossbar layers rows/cols are one group's matrix in cells."""

    name: str
    kind: str
    kernel: int
    in_channels: int
    out_channels: int
    groups: int
    positions: int
    macs: int
    weights: int
    device: str  # "crossbar" or "processor"
    rows: int = 0
    cols: int = 0
    crossbars: int = 0
    imas: int = 0
    cycles: int = 0  # crossbar cycles per image: positions * input_bits
    utilisation: float = 0.0  # share of the layer's crossbar cells that hold a weight
    latency_ns: float = 0.0
    energy_uj: float = 0.0


@dataclass
class CostReport:
    network: str
    width: float
    shortcut_kernel: int
    policy: str
    config: IsaacConfig
    processor: Processor
    totals: dict
    energy_by_component_uj: dict
    layers: list[LayerCost]

    def to_dict(self) -> dict:
        return {
            "network": self.network,
            "width": self.width,
            "shortcut_kernel": self.shortcut_kernel,
            "policy": self.policy,
            "cost_model": "isaac",
            "config": asdict(self.config),
            "processor": asdict(self.processor),
            "totals": dict(self.totals),
            "energy_by_component_uj": dict(self.energy_by_component_uj),
            "layers": [asdict(r) for r in self.layers],
            "units": ISAAC_UNITS_NOTE,
        }


ISAAC_UNITS_NOTE = (
    "ns and uJ per image. latency_ns: one image, layers run one after another (each waits for the "
    "previous layer's whole output). interval_ns: time between images when layers are pipelined "
    "across images (each layer on its own crossbars; the processor is one shared stage)."
)


def crossbars_for(layer: LayerCount, config: IsaacConfig = IsaacConfig()) -> int:
    """Crossbars holding a layer's weights: each group's (in/g*k*k) x (out/g*cells) matrix is tiled onto
    xbar_size squares. Groups small enough are packed block-diagonally, several to a crossbar (as many
    as fit along both sides), which is what keeps depth-wise convs from taking one crossbar per channel."""
    s = config.xbar_size
    rows, cols = layer.rows, layer.cols * config.cells_per_weight
    if rows <= s and cols <= s:
        per_xbar = min(s // rows, s // cols)
        return math.ceil(layer.groups / per_xbar)
    return layer.groups * math.ceil(rows / s) * math.ceil(cols / s)


def _component_power_mw(config: IsaacConfig) -> dict[str, float]:
    """Power of one active crossbar, one active IMA and one active tile, per component.
    A crossbar other than 128x128 scales ADC power with its columns (conversions per cycle), DAC and
    sample-and-hold with its rows, and the array with its cells (our assumption)."""
    p, n = ISAAC_POWER_MW, 8  # Table 6 lists 8 crossbars' worth per IMA
    r = config.xbar_size / 128
    return {
        "adc": p["adc"] / n * r,
        "dac": p["dac"] / n * r,
        "sample_hold": p["sample_hold"] / n * r,
        "crossbar": p["crossbar"] / n * r * r,
        **{k: p[k] for k in _IMA_PARTS + _TILE_PARTS},
    }


def isaac_cost(network: str, width: float = 1.0, shortcut_kernel: int = 1,
               policy: MappingPolicy | str = "default", *, xbar_size: int = 128, bits_per_cell: int = 8,
               weight_bits: int = 8, input_bits: int = 8, processor: Processor = PROCESSOR) -> CostReport:
    """Map a network onto ISAAC crossbars and cost one 32x32 image. Long because the assumptions below are
    listed where they are applied, layer by layer, then summed; the docstring is half of it.

    Assumptions (ours, where ISAAC or the paper is silent):
    - every crossbar layer holds one copy of its weights (no replication to balance the pipeline), all
      its crossbars read in parallel, and each output position takes input_bits cycles of cycle_ns;
    - each layer has its own IMAs (ceil(crossbars/8)); layers share tiles, so tiles = ceil(IMAs/12);
    - a component draws its Table 6 power only while its layer computes (idle units power-gated), an
      IMA's tile share being 1/12 of the tile's shared power; HyperTransport links only when chips > 1;
    - signed weights, biases, BatchNorm (folded), activations and pooling cost nothing extra, and
      ISAAC's 8-bit ADC is assumed enough for 8-bit cells (optimistic: it was sized for 2-bit cells).
    """
    network, width = check_network(network), check_width(width)
    policy = MappingPolicy.parse(policy)
    config = IsaacConfig(xbar_size, bits_per_cell, weight_bits, input_bits).check()
    if processor.macs_per_s <= 0 or processor.pj_per_mac < 0:
        raise DSEError(f"processor needs macs_per_s > 0 and pj_per_mac >= 0, got {processor!r}")
    power = _component_power_mw(config)
    energy = {k: 0.0 for k in list(ISAAC_POWER_MW) + ["processor"]}
    rows: list[LayerCost] = []
    for layer in count_layers(network, width, shortcut_kernel, policy):
        base = {f.name: getattr(layer, f.name) for f in fields(LayerCount) if f.name != "on_crossbar"}
        if not layer.on_crossbar:
            t_ns = layer.macs / processor.macs_per_s * 1e9
            e_uj = layer.macs * processor.pj_per_mac * 1e-6
            energy["processor"] += e_uj
            rows.append(LayerCost(**base, device="processor", latency_ns=t_ns, energy_uj=e_uj))
            continue
        xbars = crossbars_for(layer, config)
        imas = math.ceil(xbars / config.xbars_per_ima)
        cycles = layer.positions * config.input_bits
        t_ns = cycles * config.cycle_ns
        active = {**{k: xbars for k in _XBAR_PARTS}, **{k: imas for k in _IMA_PARTS},
                  **{k: imas / config.imas_per_tile for k in _TILE_PARTS}}
        e_uj = 0.0
        for part, units in active.items():
            e = power[part] * units * t_ns * 1e-9 * 1e3  # mW * ns -> uJ
            energy[part] += e
            e_uj += e
        cells = layer.weights * config.cells_per_weight
        rows.append(LayerCost(
            **base, device="crossbar", rows=layer.rows, cols=layer.cols * config.cells_per_weight,
            crossbars=xbars, imas=imas, cycles=cycles, utilisation=cells / (xbars * config.xbar_size ** 2),
            latency_ns=t_ns, energy_uj=e_uj,
        ))

    xbar_rows = [r for r in rows if r.device == "crossbar"]
    cpu_rows = [r for r in rows if r.device == "processor"]
    imas = sum(r.imas for r in xbar_rows)
    tiles = math.ceil(imas / config.imas_per_tile)
    chips = math.ceil(tiles / config.tiles_per_chip)
    latency_xbar = sum(r.latency_ns for r in xbar_rows)
    latency_cpu = sum(r.latency_ns for r in cpu_rows)
    latency = latency_xbar + latency_cpu
    interval = max([r.latency_ns for r in xbar_rows] + [latency_cpu])
    if chips > 1:
        energy["links"] = ISAAC_POWER_MW["links"] * chips * latency * 1e-6
    energy_xbar = sum(v for k, v in energy.items() if k != "processor")
    total_energy = energy_xbar + energy["processor"]
    totals = {
        "latency_ns": latency,
        "interval_ns": interval,
        "images_per_s": 1e9 / interval if interval else float("inf"),
        "energy_uj": total_energy,
        "latency_crossbar_ns": latency_xbar,
        "latency_processor_ns": latency_cpu,
        "energy_crossbar_uj": energy_xbar,
        "energy_processor_uj": energy["processor"],
        "processor_energy_share": energy["processor"] / total_energy if total_energy else 0.0,
        "macs": sum(r.macs for r in rows),
        "macs_crossbar": sum(r.macs for r in xbar_rows),
        "macs_processor": sum(r.macs for r in cpu_rows),
        "weights_crossbar": sum(r.weights for r in xbar_rows),
        "weights_processor": sum(r.weights for r in cpu_rows),
        "crossbars": sum(r.crossbars for r in xbar_rows),
        "imas": imas,
        "tiles": tiles,
        "chips": chips,
        "cell_utilisation": (
            sum(r.weights for r in xbar_rows) * config.cells_per_weight
            / max(1, sum(r.crossbars for r in xbar_rows)) / config.xbar_size ** 2
        ),
    }
    return CostReport(network, width, shortcut_kernel, policy.name, config, processor, totals, energy, rows)


# =============================================================================================
# One entry point for the app and the results store
# =============================================================================================


ISAAC_OPTIONS = {"xbar_size", "bits_per_cell", "weight_bits", "input_bits", "processor"}


def estimate(network: str, width: float = 1.0, shortcut_kernel: int = 1,
             policy: MappingPolicy | str = "default", cost_model: str = "paper", **isaac_options) -> dict:
    """Cost of one design point as a JSON-serialisable dict: totals (latency_ns, energy_uj, ...) and a
    `layers` list. Paper mode counts the whole model and ignores the policy for its totals; its layers
    show the per-layer counts and placement. isaac_options go to isaac_cost (xbar_size, bits_per_cell...)."""
    if cost_model not in COST_MODELS:
        raise DSEError(f"unknown cost model {cost_model!r}; choose one of {', '.join(COST_MODELS)}")
    unknown = set(isaac_options) - ISAAC_OPTIONS
    if unknown:
        raise DSEError(f"unknown option(s) {', '.join(sorted(unknown))}; "
                       f"allowed: {', '.join(sorted(ISAAC_OPTIONS))}")
    if cost_model == "isaac":
        return isaac_cost(network, width, shortcut_kernel, policy, **isaac_options).to_dict()
    if isaac_options:
        raise DSEError(f"options {', '.join(sorted(isaac_options))} apply to cost_model 'isaac' only")
    paper = paper_cost(network, width, shortcut_kernel)
    layers = count_layers(network, width, shortcut_kernel, policy)
    return {
        "network": check_network(network),
        "width": check_width(width),
        "shortcut_kernel": shortcut_kernel,
        "policy": MappingPolicy.parse(policy).name,
        "cost_model": "paper",
        "totals": {"macs": paper["macs"], "latency_ns": paper["latency_ns"], "energy_uj": paper["energy_uj"]},
        "layers": [asdict(r) for r in layers],
        "units": PAPER_UNITS_NOTE,
    }


def compare(networks=TABLE_NETWORKS, widths=TABLE_WIDTHS,
            policy: MappingPolicy | str = "default") -> list[dict]:
    """Paper and isaac figures side by side, one row per network and width (shortcut kernel 1)."""
    table = []
    for network in networks:
        for width in widths:
            paper = paper_cost(network, width)
            isaac = isaac_cost(network, width, 1, policy).totals
            table.append({
                "network": network,
                "width": float(width),
                "macs": paper["macs"],
                "paper_latency_ns": paper["latency_ns"],
                "paper_energy_uj": paper["energy_uj"],
                "isaac_latency_ns": isaac["latency_ns"],
                "isaac_interval_ns": isaac["interval_ns"],
                "isaac_energy_uj": isaac["energy_uj"],
                "isaac_processor_energy_share": isaac["processor_energy_share"],
                "crossbars": isaac["crossbars"],
                "chips": isaac["chips"],
            })
    return table
