"""Latency, energy, area and power of one 32x32 image on the ISAAC RRAM accelerator, two ways.

paper: the paper's Table II method. Table II divides the whole model's operation count (as ptflops counts
    it) by the 64-chip ISAAC computational efficiency and by 363.7 GOPs/J; `paper_cost` is exactly that
    (mapping-blind, every layer on ISAAC) and reproduces every Table II cell in shared/paper-notes.md to
    within 0.03%. Paper mode proper (`paper_mapped`, what `estimate` and the app show) is mapping-aware:
    the MACs of layers the mapping keeps off the crossbar move from ISAAC's rate to PROCESSOR, the rest
    stay at Table II's rate, and the two run as pipeline stages, so with every layer on the crossbar it
    is Table II's figure. Its latency_ns is a throughput figure: time per image when the whole 64-chip
    system streams images at its peak rate, not the latency of one image. Units are ns and uJ per
    image; the paper's header says "latency (s), energy (kW)", which is mislabelled (at best the
    numbers are s and kJ per 1e9 images).
isaac: our own mapping model. Each crossbar layer's weight matrix is tiled onto 128x128 crossbars
    (one 8-bit weight per cell, as in the paper), inputs are streamed one bit per 100 ns cycle, and
    energy is ISAAC's per-component power times the time each component is busy. Layers kept off
    the crossbar by the mapping policy run on a conventional processor (PROCESSOR below). It gives the
    latency of one image (latency_ns) and the pipelined time between images (interval_ns).

Why they differ: paper mode assumes the work of one image is spread over all 64 chips at ISAAC's
peak rate; isaac mode gives each layer only the crossbars its weights need, so a layer computes its
output positions one after another, 8 cycles each. Like with like: paper's figure is a time per image
at full throughput, so compare it with isaac's interval_ns, not its latency_ns.

Both models also give area_mm2, power_w and tops_per_w (dse/core/isaac.py: ISAAC's Table 6 figures; a MAC
counts 2 ops). The hardware figures and knobs (crossbar size, bits per cell, ADC resolution, chips) are in
dse/core/isaac.py.
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
from dse.core.isaac import (  # ISAAC_AREA_MM2: re-exported beside ISAAC_POWER_MW
    COST_VERSION,
    IMA_PARTS,
    ISAAC_AREA_MM2,  # noqa: F401
    ISAAC_CHIP,
    ISAAC_POWER_MW,
    TILE_PARTS,
    XBAR_PARTS,
    IsaacConfig,
    config_dict,
    occupied,
    tops_per_w,
    unit_power_mw,
)
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
    "ns and uJ per image; latency_ns (= interval_ns) is the time per image when the whole 64-chip system "
    "streams images at its peak rate (a throughput figure, not one image's latency); table_ii_* are Table II's "
    "mapping-blind figures. The paper's Table II header says 'latency (s), energy (kW)', which is "
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
    """Table II figures for any registry network: whole-model ptflops count over ISAAC's efficiencies
    (mapping-blind: every layer on ISAAC, as Table II computes them)."""
    network, width = check_network(network), check_width(width)
    macs = _ptflops_macs(network, width, shortcut_kernel)
    return {
        "macs": macs,
        "latency_ns": macs / _paper_ops_per_s() * 1e9,
        "energy_uj": macs / (PAPER["gops_per_j"] * 1e9) * 1e6,
        "units": PAPER_UNITS_NOTE,
    }


def _paper_ops_per_s() -> float:
    return PAPER["gops_per_s_per_mm2"] * 1e9 * PAPER["chip_area_mm2"] * PAPER["chips"]


def paper_mapped(network: str, width: float = 1.0, shortcut_kernel: int = 1,
                 policy: MappingPolicy | str = "default", processor: Processor | None = None) -> dict:
    """Paper mode, mapping-aware: Table II's rates for what the mapping keeps on the crossbar, PROCESSOR for
    the rest. The off-crossbar layers' MACs (our hook count) leave the ptflops total; everything else ptflops
    counts (BatchNorm, biases, pooling) stays at ISAAC's rate, so with every layer on the crossbar this is
    `paper_cost` exactly. The crossbar share and the processor are two pipeline stages, so the time per image
    is the slower of the two (a throughput figure, like isaac mode's interval_ns); energy is their sum.
    Area and power are the 64-chip system's (ISAAC's 85.4 mm^2 and 65.8 W a chip; the paper's 363.7 GOPs/J
    implies more power than 65.8 W a chip, so power_w is not energy over time), plus the processor's power
    when the mapping uses it (its area is not modelled)."""
    processor = PROCESSOR if processor is None else processor
    table = paper_cost(network, width, shortcut_kernel)
    off = sum(r.macs for r in count_layers(network, width, shortcut_kernel, policy) if not r.on_crossbar)
    on = table["macs"] - off
    t_x, e_x = on / _paper_ops_per_s() * 1e9, on / (PAPER["gops_per_j"] * 1e9) * 1e6
    t_p, e_p = off / processor.macs_per_s * 1e9, off * processor.pj_per_mac * 1e-6
    chips = PAPER["chips"]
    cpu_w = processor.macs_per_s * processor.pj_per_mac * 1e-12 if off else 0.0
    return {
        "macs": table["macs"],
        "latency_ns": max(t_x, t_p),  # time per image at the system's peak rate: a throughput figure
        "interval_ns": max(t_x, t_p),
        "energy_uj": e_x + e_p,
        "latency_crossbar_ns": t_x,
        "latency_processor_ns": t_p,
        "energy_crossbar_uj": e_x,
        "energy_processor_uj": e_p,
        "processor_energy_share": e_p / (e_x + e_p) if e_x + e_p else 0.0,
        "macs_crossbar": on,
        "macs_processor": off,
        "table_ii_latency_ns": table["latency_ns"],
        "table_ii_energy_uj": table["energy_uj"],
        "chips": chips,
        "fits": True,
        "area_mm2": chips * ISAAC_CHIP["area_mm2"],
        "power_w": chips * ISAAC_CHIP["power_w"] + cpu_w,
        "power_processor_w": cpu_w,
        "tops_per_w": tops_per_w(table["macs"], e_x + e_p),
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
            "config": config_dict(self.config),
            "processor": asdict(self.processor),
            "totals": dict(self.totals),
            "energy_by_component_uj": dict(self.energy_by_component_uj),
            "layers": [asdict(r) for r in self.layers],
            "units": ISAAC_UNITS_NOTE,
        }


ISAAC_UNITS_NOTE = (
    "ns and uJ per image. latency_ns: one image, layers run one after another (each waits for the "
    "previous layer's whole output). interval_ns: time between images when layers are pipelined "
    "across images (each layer on its own crossbars; the processor is one shared stage): compare paper "
    "mode's time per image with this. area_mm2 and power_w: the crossbars, IMAs and tiles occupied (and "
    "chip links when more than one chip), power with all of them computing, plus the processor's when used. "
    "tops_per_w: 2 ops per MAC over energy per image."
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


def isaac_cost(network: str, width: float = 1.0, shortcut_kernel: int = 1,
               policy: MappingPolicy | str = "default", *, processor: Processor = PROCESSOR,
               **knobs) -> CostReport:
    """Map a network onto ISAAC crossbars and cost one 32x32 image. knobs: IsaacConfig's fields (xbar_size,
    bits_per_cell, weight_bits, input_bits, adc_bits, chips, ...), validated.

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
    config = IsaacConfig(**knobs).check()
    if processor.macs_per_s <= 0 or processor.pj_per_mac < 0:
        raise DSEError(f"processor needs macs_per_s > 0 and pj_per_mac >= 0, got {processor!r}")
    energy = {k: 0.0 for k in list(ISAAC_POWER_MW) + ["processor"]}
    rows = [_layer_cost(layer, config, processor, energy)
            for layer in count_layers(network, width, shortcut_kernel, policy)]
    totals = _isaac_totals(rows, config, processor, energy)
    return CostReport(network, width, shortcut_kernel, policy.name, config, processor, totals, energy, rows)


def _layer_cost(layer: LayerCount, config: IsaacConfig, processor: Processor, energy: dict) -> LayerCost:
    """One layer on the crossbar or the processor; its energy is added to `energy` by component."""
    base = {f.name: getattr(layer, f.name) for f in fields(LayerCount) if f.name != "on_crossbar"}
    if not layer.on_crossbar:
        t_ns = layer.macs / processor.macs_per_s * 1e9
        e_uj = layer.macs * processor.pj_per_mac * 1e-6
        energy["processor"] += e_uj
        return LayerCost(**base, device="processor", latency_ns=t_ns, energy_uj=e_uj)
    xbars = crossbars_for(layer, config)
    imas = math.ceil(xbars / config.xbars_per_ima)
    cycles = layer.positions * config.input_bits
    t_ns = cycles * config.cycle_ns
    active = {**{k: xbars for k in XBAR_PARTS}, **{k: imas for k in IMA_PARTS},
              **{k: imas / config.imas_per_tile for k in TILE_PARTS}}
    power = unit_power_mw(config)
    e_uj = 0.0
    for part, units in active.items():
        e = power[part] * units * t_ns * 1e-9 * 1e3  # mW * ns -> uJ
        energy[part] += e
        e_uj += e
    cells = layer.weights * config.cells_per_weight
    return LayerCost(
        **base, device="crossbar", rows=layer.rows, cols=layer.cols * config.cells_per_weight,
        crossbars=xbars, imas=imas, cycles=cycles, utilisation=cells / (xbars * config.xbar_size ** 2),
        latency_ns=t_ns, energy_uj=e_uj,
    )


def _isaac_totals(rows: list[LayerCost], config: IsaacConfig, processor: Processor, energy: dict) -> dict:
    """The design's totals from its layers (adds the chip links' energy to `energy` when chips > 1)."""
    xbar_rows = [r for r in rows if r.device == "crossbar"]
    cpu_rows = [r for r in rows if r.device == "processor"]
    crossbars, imas = sum(r.crossbars for r in xbar_rows), sum(r.imas for r in xbar_rows)
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
    macs = sum(r.macs for r in rows)
    hardware = occupied(crossbars, imas, tiles, chips, config)
    cpu_w = processor.macs_per_s * processor.pj_per_mac * 1e-12 if cpu_rows else 0.0
    return {
        "latency_ns": latency,
        "interval_ns": interval,
        "images_per_s": 1e9 / interval if interval else float("inf"),
        "energy_uj": total_energy,
        "latency_crossbar_ns": latency_xbar,
        "latency_processor_ns": latency_cpu,
        "energy_crossbar_uj": energy_xbar,
        "energy_processor_uj": energy["processor"],
        "processor_energy_share": energy["processor"] / total_energy if total_energy else 0.0,
        "macs": macs,
        "macs_crossbar": sum(r.macs for r in xbar_rows),
        "macs_processor": sum(r.macs for r in cpu_rows),
        "weights_crossbar": sum(r.weights for r in xbar_rows),
        "weights_processor": sum(r.weights for r in cpu_rows),
        "crossbars": crossbars,
        "imas": imas,
        "tiles": tiles,
        "chips": chips,
        "chips_available": config.chips,
        "fits": chips <= config.chips,
        "cell_utilisation": (
            sum(r.weights for r in xbar_rows) * config.cells_per_weight / max(1, crossbars) / config.xbar_size ** 2
        ),
        "area_mm2": hardware["area_mm2"],
        "power_w": hardware["power_w"] + cpu_w,
        "power_processor_w": cpu_w,
        "tops_per_w": tops_per_w(macs, total_energy),
    }


# =============================================================================================
# One entry point for the app and the results store
# =============================================================================================


ISAAC_OPTIONS = {f.name for f in fields(IsaacConfig)} | {"processor"}


def estimate(network: str, width: float = 1.0, shortcut_kernel: int = 1,
             policy: MappingPolicy | str = "default", cost_model: str = "paper", **isaac_options) -> dict:
    """Cost of one design point as a JSON-serialisable dict: totals (latency_ns, interval_ns, energy_uj,
    area_mm2, power_w, tops_per_w, ...), a `layers` list and the cost-model `version`. Paper mode is
    `paper_mapped` (Table II's own figures under totals' table_ii_*); its layers show the per-layer counts
    and placement. isaac_options go to isaac_cost (xbar_size, bits_per_cell, adc_bits, chips...)."""
    if cost_model not in COST_MODELS:
        raise DSEError(f"unknown cost model {cost_model!r}; choose one of {', '.join(COST_MODELS)}")
    unknown = set(isaac_options) - ISAAC_OPTIONS
    if unknown:
        raise DSEError(f"unknown option(s) {', '.join(sorted(unknown))}; "
                       f"allowed: {', '.join(sorted(ISAAC_OPTIONS))}")
    if cost_model == "isaac":
        return {**isaac_cost(network, width, shortcut_kernel, policy, **isaac_options).to_dict(),
                "version": COST_VERSION}
    if isaac_options:
        raise DSEError(f"options {', '.join(sorted(isaac_options))} apply to cost_model 'isaac' only")
    layers = count_layers(network, width, shortcut_kernel, policy)
    return {
        "network": check_network(network),
        "width": check_width(width),
        "shortcut_kernel": shortcut_kernel,
        "policy": MappingPolicy.parse(policy).name,
        "cost_model": "paper",
        "totals": paper_mapped(network, width, shortcut_kernel, policy),
        "layers": [asdict(r) for r in layers],
        "units": PAPER_UNITS_NOTE,
        "version": COST_VERSION,
    }


def compare(networks=TABLE_NETWORKS, widths=TABLE_WIDTHS,
            policy: MappingPolicy | str = "default") -> list[dict]:
    """Paper and isaac figures side by side, one row per network and width (shortcut kernel 1): Table II's
    own (mapping-blind) figures, paper mode under `policy`, and isaac mode."""
    table = []
    for network in networks:
        for width in widths:
            paper = paper_mapped(network, width, 1, policy)
            isaac = isaac_cost(network, width, 1, policy).totals
            table.append({
                "network": network,
                "width": float(width),
                "macs": paper["macs"],
                "paper_latency_ns": paper["table_ii_latency_ns"],
                "paper_energy_uj": paper["table_ii_energy_uj"],
                "paper_mapped_ns": paper["latency_ns"],
                "paper_mapped_uj": paper["energy_uj"],
                "isaac_latency_ns": isaac["latency_ns"],
                "isaac_interval_ns": isaac["interval_ns"],
                "isaac_energy_uj": isaac["energy_uj"],
                "isaac_processor_energy_share": isaac["processor_energy_share"],
                "isaac_area_mm2": isaac["area_mm2"],
                "isaac_power_w": isaac["power_w"],
                "isaac_tops_per_w": isaac["tops_per_w"],
                "crossbars": isaac["crossbars"],
                "chips": isaac["chips"],
            })
    return table


def spare_columns_cost(network: str, width: float = 1.0, shortcut_kernel: int = 1,
                       policy: MappingPolicy | str = "default", spares: int = 0, **knobs) -> dict:
    """What `spares` extra columns on every crossbar (a remapping's spare bit lines, dse/core/remap.py) add to
    the isaac cost: the memristor array and the per-column sample-and-holds grow by spares/xbar_size; DACs
    (per row), the ADC (it converts the xbar_size columns in use, spares replacing stuck ones) and the timing
    are unchanged. Energy grows with the same share of the array's and sample-and-holds' energy."""
    from dse.core.isaac import unit_area_mm2
    from dse.core.protocol import MAX_SPARES

    if isinstance(spares, bool) or not isinstance(spares, int) or not 0 <= spares <= MAX_SPARES:
        raise DSEError(f"spare columns per crossbar must be an integer from 0 to {MAX_SPARES}, got {spares!r}")
    report = isaac_cost(network, width, shortcut_kernel, policy, **knobs)
    grow = spares / report.config.xbar_size
    area = unit_area_mm2(report.config)
    parts = ("crossbar", "sample_hold")
    extra_area = report.totals["crossbars"] * sum(area[k] for k in parts) * grow
    extra_energy = sum(report.energy_by_component_uj[k] for k in parts) * grow
    return {"spares": spares, "crossbars": report.totals["crossbars"], "extra_area_mm2": extra_area,
            "extra_energy_uj": extra_energy, "area_share": extra_area / report.totals["area_mm2"],
            "energy_share": extra_energy / report.totals["energy_uj"]}
