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

Both models also give area_mm2, power_w and tops_per_w (dse/core/cost/isaac.py: ISAAC's Table 6 figures; a MAC
counts 2 ops). The hardware figures and knobs (crossbar size, bits per cell, ADC resolution, chips) are in
dse/core/cost/isaac.py.
"""
from __future__ import annotations

import contextlib
import functools
import heapq
import io
import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from dse.core.cost.isaac import (  # ISAAC_AREA_MM2: re-exported beside ISAAC_POWER_MW
    COST_VERSION,
    ISAAC_AREA_MM2,  # noqa: F401
    ISAAC_CHIP,
    ISAAC_POWER_MW,
    OPS_PER_MAC,
    TILE_PARTS,
    IsaacConfig,
    breakdown,
    config_dict,
    event_energy_pj,
    occupied,
    tops_per_w,
    unit_area_mm2,
)
from dse.core.crossbar.mapping import MappingPolicy
from dse.core.errors import DSEError
from dse.core.models import build_model, check_network, check_width
from dse.core.paper import WIDTHS as TABLE_WIDTHS
from dse.core.protocol import MAX_SPARES

INPUT_SHAPE = (3, 32, 32)  # one CIFAR-10 image
REGISTERS = ("input_register", "output_register")  # the IMA parts charged per crossbar busy, not per conversion
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
# ptflops counts one multiply-accumulate as one op, while ISAAC's rates count a MAC as 2 ops: Table II divides
# MACs by ops rates, so its cells are half what ISAAC's own convention gives. paper_cost keeps Table II exactly;
# paper mode proper (paper_mapped) applies one convention, OPS_PER_MAC ops per MAC, so its figures are twice
# Table II's and its TOPS/W is ISAAC's 0.3637 (as the paper's two rates give it), never above ISAAC's peak.
PAPER_UNITS_NOTE = (
    "ns and uJ per image. Paper mode: Table II's method with ISAAC's rates read in ISAAC's units (a MAC = 2 ops), "
    "so every figure is twice Table II's; table_ii_* are Table II's own mapping-blind cells (a MAC = 1 op). "
    "interval_ns: time between images with the 64 chips streaming at ISAAC's peak rate and the processor as a "
    "pipeline stage; latency_ns: one image, its crossbar share then its processor share. The paper's Table II "
    "header says 'latency (s), energy (kW)', which is mislabelled (the same numbers are s and kJ per 1e9 images)"
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
    """Paper mode, mapping-aware: Table II's rates (a MAC = 2 ops) for what the mapping keeps on the crossbar,
    the processor for the rest. The off-crossbar layers' MACs (our hook count) leave the ptflops total;
    everything else ptflops counts (BatchNorm, biases, pooling) stays at ISAAC's rate, so with every layer on
    the crossbar this is exactly 2x `paper_cost`. The crossbar share and the processor are two pipeline
    stages: the interval is the slower, one image's latency their sum; energy is their sum. Area is the
    64-chip system's (Table 6). Peak power is the chips at ISAAC's peak rate priced at the paper's 363.7 GOPs/J
    (not Table 6's 65.8 W, i.e. 622 GOPs/W: with the paper's energy per op, Table 6's watts would put the
    average above the peak), plus the processor's power; average power is energy over interval."""
    processor = (PROCESSOR if processor is None else processor).check()
    table = paper_cost(network, width, shortcut_kernel)
    layers = count_layers(network, width, shortcut_kernel, policy)
    off = sum(r.macs for r in layers if not r.on_crossbar)
    on = table["macs"] - off  # ptflops' count less the off-crossbar MACs: Table II's work on ISAAC
    t_x = OPS_PER_MAC * on / _paper_ops_per_s() * 1e9
    e_x = OPS_PER_MAC * on / (PAPER["gops_per_j"] * 1e9) * 1e6
    t_p, e_p = off / processor.macs_per_s * 1e9, off * processor.pj_per_mac * 1e-6
    chips, cpu_w = PAPER["chips"], processor.watts if off else 0.0
    macs = sum(r.macs for r in layers)  # real MACs: what TOPS count (ptflops' BatchNorm and biases are not MACs)
    interval, energy = max(t_x, t_p), e_x + e_p
    chip = occupied(168 * 96, 168 * 12, 168, 1, IsaacConfig(adc_bits=8), links=True)  # Table 6's chip, by part
    area = {k: chips * ISAAC_CHIP["area_mm2"] * v / chip["area_mm2"] for k, v in chip["area_by_part_mm2"].items()}
    share = {k: v / chip["power_w"] for k, v in chip["power_by_part_w"].items()}
    return {
        "latency_ns": t_x + t_p, "interval_ns": interval, "images_per_s": 1e9 / interval, "energy_uj": energy,
        "bottleneck": "processor" if t_p > t_x else "crossbar",
        "latency_crossbar_ns": t_x, "latency_processor_ns": t_p, "energy_crossbar_uj": e_x,
        "energy_processor_uj": e_p, "processor_energy_share": e_p / energy if energy else 0.0,
        "macs": macs, "macs_ptflops": table["macs"], "macs_crossbar": macs - off, "macs_processor": off,
        "table_ii_latency_ns": table["latency_ns"], "table_ii_energy_uj": table["energy_uj"],
        "chips": chips, "fits": True, "area_mm2": chips * ISAAC_CHIP["area_mm2"],
        "min_area_mm2": chips * ISAAC_CHIP["area_mm2"],
        "peak_power_w": _paper_ops_per_s() / (PAPER["gops_per_j"] * 1e9) + cpu_w,
        "average_power_w": energy * 1e-6 * 1e9 / interval,
        "power_processor_w": cpu_w, "tops_per_w": tops_per_w(macs, energy),
        "tops_per_mm2": OPS_PER_MAC * macs * 1e9 / interval / (chips * ISAAC_CHIP["area_mm2"]) / 1e12,
        "energy_breakdown_uj": breakdown({**{k: e_x * v for k, v in share.items()}, "processor": e_p}),
        "area_breakdown_mm2": breakdown(area),
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
    """Where off-crossbar layers (1x1 convs, linears by default) run: a small throughput/energy model, one
    pipeline stage shared by every copy of the crossbar pipeline. Both numbers are knobs (--cpu-gmacs,
    --cpu-pj-per-mac). Defaults, ours: a mobile CPU cluster (4 Cortex-A76-class cores at ~2.4 GHz with int8
    dot-product instructions) peaks near 300 GMAC/s; 1x1 convs are small GEMMs that sustain about a third of
    that, 100 GMAC/s. Such a cluster draws about 2 W under load, 20 pJ per MAC at that rate (memory traffic
    included; the bare 8-bit multiply-add is ~0.2 pJ, Horowitz ISSCC 2014). Its area is not counted, nor are
    transfers between the accelerator and the processor.
    """

    macs_per_s: float = 100e9
    pj_per_mac: float = 20.0

    @property
    def watts(self) -> float:
        return self.macs_per_s * self.pj_per_mac * 1e-12

    def check(self) -> Processor:
        for name, lo, hi in (("macs_per_s", 1e6, 1e16), ("pj_per_mac", 1e-3, 1e6)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
                raise DSEError(f"processor {name} must be a number from {lo:g} to {hi:g}, got {v!r}")
        return self


PROCESSOR = Processor()


@dataclass(frozen=True)
class LayerCost:
    """One layer's placement and cost. For crossbar layers rows/cols are one group's matrix in cells; counts
    (cycles, conversions) are per image, whatever the replication; latency_ns is the layer's time for one
    image on its `replicas` copies (the pipeline stage), energy_uj its energy per image."""

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
    crossbars: int = 0  # one copy of the weights
    replicas: int = 0  # copies of the layer within one pipeline (ISAAC's replication)
    imas: int = 0  # IMAs of all its replicas
    cycles: int = 0  # crossbar cycles per output position: input_bits / dac_bits
    conversions: int = 0  # ADC conversions per image: used columns x positions x cycles
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
    energy_by_component_uj: dict  # Table 6 parts and "processor"
    layers: list[LayerCost]
    area_by_component_mm2: dict = None

    def to_dict(self) -> dict:
        return {
            "network": self.network,
            "width": self.width,
            "shortcut_kernel": self.shortcut_kernel,
            "policy": self.policy,
            "cost_model": "isaac",
            "config": config_dict(self.config),
            "processor": {**asdict(self.processor), "watts": self.processor.watts},
            "totals": dict(self.totals),
            "energy_by_component_uj": dict(self.energy_by_component_uj),
            "layers": [asdict(r) for r in self.layers],
            "units": ISAAC_UNITS_NOTE,
        }


ISAAC_UNITS_NOTE = (
    "per 32x32 image: ns, uJ; area mm^2, power W. latency_ns: one image alone, layer after layer, each layer on "
    "its replicas. interval_ns: time between images in steady state (1/images_per_s): the slowest pipeline stage "
    "over the pipeline copies, or the processor. Layers are replicated onto the budget's spare crossbars "
    "(ISAAC-style) to balance the pipeline. peak_power_w: everything occupied computing at once; "
    "average_power_w: energy per image / interval. TOPS figures count a MAC as 2 ops. Processor area not counted."
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


def layer_events(layer: LayerCount, config: IsaacConfig) -> dict[str, int]:
    """What one output position costs a crossbar layer in one cycle, counted on the columns and rows in use:
    conversions (each row tile's partial sums of every used column), rows driven (every column tile gets the
    input), cells read, crossbars busy."""
    s, cols = config.xbar_size, layer.cols * config.cells_per_weight
    return {"conversions": layer.groups * math.ceil(layer.rows / s) * cols,
            "rows": layer.groups * layer.rows * math.ceil(cols / s),
            "cells": layer.weights * config.cells_per_weight,
            "xbars": crossbars_for(layer, config)}


def isaac_cost(network: str, width: float = 1.0, shortcut_kernel: int = 1,
               policy: MappingPolicy | str = "default", *, processor: Processor = PROCESSOR,
               **knobs) -> CostReport:
    """Map a network onto ISAAC crossbars, replicate its layers onto the budget, and cost one 32x32 image.
    knobs: IsaacConfig's fields (xbar_size, bits_per_cell, adc_bits, dac_bits, chips, budget_mm2, ...), validated.

    Assumptions (ours, where ISAAC or the paper is silent):
    - each layer has its own IMAs (ceil(crossbars x replicas / 8)); layers share tiles (tiles = ceil(IMAs/12));
    - energy is counted per event (dse.core.cost.isaac.event_energy_pj): ADC and shift-and-add per conversion of a
      used column, DACs per row driven, sample-and-holds per column, the array per cell read, the IMA's
      registers and the tile's share per crossbar busy a cycle; idle units are power-gated. HyperTransport
      links draw their power over the interval when the design spans chips;
    - replication moves work, not energy: a layer's events per image are the same on 1 or r copies;
    - signed weights, biases, BatchNorm (folded), activations and pooling cost nothing extra.
    """
    network, width = check_network(network), check_width(width)
    policy = MappingPolicy.parse(policy)
    config = IsaacConfig(**knobs).check()
    processor = processor.check()
    layers = count_layers(network, width, shortcut_kernel, policy)
    xbar = [layer for layer in layers if layer.on_crossbar]
    t_proc = sum(r.macs for r in layers if not r.on_crossbar) / processor.macs_per_s * 1e9
    plan = replicate([(crossbars_for(r, config), r.positions) for r in xbar], config, t_proc)
    energy = {k: 0.0 for k in list(ISAAC_POWER_MW) + ["processor"]}
    replicas = dict(zip((r.name for r in xbar), plan["replicas"]))
    rows = [_layer_cost(layer, config, processor, energy, replicas.get(layer.name, 0)) for layer in layers]
    totals, area = _isaac_totals(rows, config, processor, energy, plan)
    totals["energy_breakdown_uj"], totals["area_breakdown_mm2"] = breakdown(energy), breakdown(area)
    return CostReport(network, width, shortcut_kernel, policy.name, config, processor, totals, energy, rows, area)


def _layer_cost(layer: LayerCount, config: IsaacConfig, processor: Processor, energy: dict,
                replicas: int) -> LayerCost:
    """One layer on the crossbar (on `replicas` copies) or the processor; its energy is added to `energy`."""
    base = {f.name: getattr(layer, f.name) for f in fields(LayerCount) if f.name != "on_crossbar"}
    if not layer.on_crossbar:
        t_ns = layer.macs / processor.macs_per_s * 1e9
        e_uj = layer.macs * processor.pj_per_mac * 1e-6
        energy["processor"] += e_uj
        return LayerCost(**base, device="processor", latency_ns=t_ns, energy_uj=e_uj)
    ev, pj = layer_events(layer, config), event_energy_pj(config)
    steps = layer.positions * config.input_cycles  # cycles of one copy's worth of work per image
    count = {"adc": ev["conversions"], "ima_shift_add": ev["conversions"], "dac": ev["rows"],
             "sample_hold": ev["conversions"], "crossbar": ev["cells"],
             **{k: ev["xbars"] for k in REGISTERS + TILE_PARTS}}
    e_uj = 0.0
    for part, n in count.items():
        e = pj[part] * n * steps * 1e-6
        energy[part] += e
        e_uj += e
    stage = math.ceil(layer.positions / replicas) * config.input_cycles * config.cycle_ns
    return LayerCost(
        **base, device="crossbar", rows=layer.rows, cols=layer.cols * config.cells_per_weight,
        crossbars=ev["xbars"], replicas=replicas, imas=math.ceil(replicas * ev["xbars"] / config.xbars_per_ima),
        cycles=config.input_cycles, conversions=ev["conversions"] * steps,
        utilisation=ev["cells"] / (ev["xbars"] * config.xbar_size ** 2), latency_ns=stage, energy_uj=e_uj,
    )


# =============================================================================================
# Throughput at a budget: ISAAC-style replication
# =============================================================================================


def budget_imas(config: IsaacConfig) -> int:
    """The IMAs the budget holds: chips x tiles x IMAs, or the most IMAs whose tiles (and chip links, past one
    chip) fit in budget_mm2."""
    per_chip = config.tiles_per_chip * config.imas_per_tile
    if not config.budget_mm2:
        return config.chips * per_chip

    def area(imas: int) -> float:
        tiles = math.ceil(imas / config.imas_per_tile)
        return occupied(imas * config.xbars_per_ima, imas, tiles, math.ceil(tiles / config.tiles_per_chip),
                        config)["area_mm2"]

    lo, hi = 0, 1
    while area(hi) <= config.budget_mm2:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # area grows with IMAs: bisect for the last that fits
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if area(mid) <= config.budget_mm2 else (lo, mid)
    return lo


def replicate(layers: list[tuple[int, int]], config: IsaacConfig, t_proc_ns: float = 0.0) -> dict:
    """ISAAC-style replication: `layers` are (crossbars, positions) of the crossbar layers in order. Within one
    pipeline, the slowest layer gets another copy (its positions split over its copies) while the pipeline
    fits the budget and is slower than the processor stage (t_proc_ns); spare room then holds whole copies of
    the pipeline, images in flight side by side. Of every step's (pipeline, copies) the one with the shortest
    interval is kept, ties to the shorter latency, then the fewer IMAs. Returns replicas per layer, pipeline
    copies, IMAs, the crossbar interval and `fits` (False: one plain copy exceeds the budget)."""
    budget, t = budget_imas(config), config.input_cycles * config.cycle_ns
    per_ima = config.xbars_per_ima
    r = [1] * len(layers)
    imas = [math.ceil(x / per_ima) for x, _ in layers]
    heap = [(-p, i) for i, (_, p) in enumerate(layers)]
    heapq.heapify(heap)
    positions = sum(p for _, p in layers)  # one image alone walks every layer's positions on its copies
    best = None
    while sum(imas) <= budget:
        copy, stage = sum(imas), (-heap[0][0] * t if heap else 0.0)
        copies = max(1, budget // copy) if copy else 1
        if t_proc_ns > 0 and stage:
            copies = min(copies, max(1, math.ceil(stage / t_proc_ns)))  # beyond the processor's pace: no gain
        key = (max(stage / copies, t_proc_ns), positions * t, copies * copy)
        if best is None or key < best[0]:
            best = (key, list(r), copies, copy, stage / copies)
        q, i = (-heap[0][0], heap[0][1]) if heap else (1, 0)
        if q <= 1 or stage <= t_proc_ns:
            break
        x, p = layers[i]
        r[i] = math.ceil(p / (q - 1))  # the fewest copies that take one position off the stage
        imas[i] = math.ceil(r[i] * x / per_ima)
        positions -= q - math.ceil(p / r[i])
        heapq.heapreplace(heap, (-math.ceil(p / r[i]), i))
    if best is None:  # one copy does not fit: priced as one copy, flagged
        stage = max((p for _, p in layers), default=0) * t
        return {"replicas": [1] * len(layers), "copies": 1, "imas": sum(imas), "interval_ns": stage,
                "fits": False, "budget_imas": budget}
    _, reps, copies, copy, interval = best
    return {"replicas": reps, "copies": copies, "imas": copies * copy, "interval_ns": interval, "fits": True,
            "budget_imas": budget}


def _isaac_totals(rows: list[LayerCost], config: IsaacConfig, processor: Processor, energy: dict,
                  plan: dict) -> tuple[dict, dict]:
    """The design's totals and area by component (adds the chip links' energy to `energy` past one chip)."""
    xbar_rows = [r for r in rows if r.device == "crossbar"]
    cpu_rows = [r for r in rows if r.device == "processor"]
    copies, latency_cpu = plan["copies"], sum(r.latency_ns for r in cpu_rows)
    crossbars = copies * sum(r.crossbars * r.replicas for r in xbar_rows)
    imas = plan["imas"]
    tiles = math.ceil(imas / config.imas_per_tile)
    chips = math.ceil(tiles / config.tiles_per_chip)
    interval = max(plan["interval_ns"], latency_cpu)
    latency_xbar = sum(r.latency_ns for r in xbar_rows)
    if chips > 1:  # the links are on all the time: their energy per image is their power over the interval
        energy["links"] = ISAAC_POWER_MW["links"] * chips * interval * 1e-6
    energy_xbar = sum(v for k, v in energy.items() if k != "processor")
    total = energy_xbar + energy["processor"]
    macs = sum(r.macs for r in rows)
    hw = occupied(crossbars, imas, tiles, chips, config)
    one = sum(math.ceil(r.crossbars / config.xbars_per_ima) for r in xbar_rows)  # one copy, no replication
    one_tiles = math.ceil(one / config.imas_per_tile)
    footprint = occupied(sum(r.crossbars for r in xbar_rows), one, one_tiles,
                         math.ceil(one_tiles / config.tiles_per_chip), config)["area_mm2"]
    stages = [(r.latency_ns / copies, r.name) for r in xbar_rows] + [(latency_cpu, "processor")]
    images_per_s = 1e9 / interval if interval else float("inf")
    conversions = sum(r.conversions for r in xbar_rows)
    totals = {
        "latency_ns": latency_xbar + latency_cpu, "interval_ns": interval, "images_per_s": images_per_s,
        "energy_uj": total, "bottleneck": max(stages)[1] if stages else "",
        "latency_crossbar_ns": latency_xbar, "latency_processor_ns": latency_cpu,
        "energy_crossbar_uj": energy_xbar, "energy_processor_uj": energy["processor"],
        "processor_energy_share": energy["processor"] / total if total else 0.0,
        "macs": macs, "macs_crossbar": sum(r.macs for r in xbar_rows), "macs_processor": sum(r.macs for r in cpu_rows),
        "weights_crossbar": sum(r.weights for r in xbar_rows), "weights_processor": sum(r.weights for r in cpu_rows),
        "crossbars_one_copy": sum(r.crossbars for r in xbar_rows), "crossbars": crossbars,
        "pipeline_copies": copies, "imas": imas, "tiles": tiles, "chips": chips,
        "chips_available": config.chips, "budget_mm2": config.budget_mm2, "budget_imas": plan["budget_imas"],
        "fits": plan["fits"],
        "cell_utilisation": sum(r.weights for r in xbar_rows) * config.cells_per_weight
        / max(1, sum(r.crossbars for r in xbar_rows)) / config.xbar_size ** 2,
        "adc_bits": config.adc_resolution, "adc_bits_needed": config.adc_bits_needed,
        "adc_lossless": config.adc_resolution >= config.adc_bits_needed, "conversions": conversions,
        "adc_energy_share": energy["adc"] / total if total else 0.0,
        "area_mm2": hw["area_mm2"], "min_area_mm2": footprint, "adc_area_share": hw["area_by_part_mm2"]["adc"] / hw["area_mm2"],
        "peak_power_w": hw["power_w"] + (processor.watts if cpu_rows else 0.0),
        "average_power_w": total * 1e-6 * images_per_s,
        "power_processor_w": processor.watts if cpu_rows else 0.0,
        "tops_per_w": tops_per_w(macs, total),
        "tops_per_mm2": OPS_PER_MAC * macs * images_per_s / hw["area_mm2"] / 1e12,
    }
    return totals, hw["area_by_part_mm2"]


# =============================================================================================
# One entry point for the app and the results store
# =============================================================================================


ISAAC_OPTIONS = {f.name for f in fields(IsaacConfig)} | {"processor"}


def estimate(network: str, width: float = 1.0, shortcut_kernel: int = 1,
             policy: MappingPolicy | str = "default", cost_model: str = "paper", **isaac_options) -> dict:
    """Cost of one design point as a JSON-serialisable dict: totals (latency_ns, interval_ns, images_per_s,
    energy_uj, area_mm2, min_area_mm2, peak and average power, tops_per_w, tops_per_mm2, the energy and area
    breakdowns, ...), a `layers` list and the cost-model `version`. Paper mode is `paper_mapped` (Table II's own
    figures under totals' table_ii_*). isaac_options go to isaac_cost (xbar_size, bits_per_cell, adc_bits,
    chips, budget_mm2...); `processor` (a Processor) applies to both models."""
    if cost_model not in COST_MODELS:
        raise DSEError(f"unknown cost model {cost_model!r}; choose one of {', '.join(COST_MODELS)}")
    unknown = set(isaac_options) - ISAAC_OPTIONS
    if unknown:
        raise DSEError(f"unknown option(s) {', '.join(sorted(unknown))}; "
                       f"allowed: {', '.join(sorted(ISAAC_OPTIONS))}")
    if cost_model == "isaac":
        return {**isaac_cost(network, width, shortcut_kernel, policy, **isaac_options).to_dict(),
                "version": COST_VERSION}
    processor = isaac_options.pop("processor", None)
    if isaac_options:
        raise DSEError(f"options {', '.join(sorted(isaac_options))} apply to cost_model 'isaac' only")
    layers = count_layers(network, width, shortcut_kernel, policy)
    return {
        "network": check_network(network),
        "width": check_width(width),
        "shortcut_kernel": shortcut_kernel,
        "policy": MappingPolicy.parse(policy).name,
        "cost_model": "paper",
        "processor": {**asdict(processor or PROCESSOR), "watts": (processor or PROCESSOR).watts},
        "totals": paper_mapped(network, width, shortcut_kernel, policy, processor),
        "layers": [asdict(r) for r in layers],
        "units": PAPER_UNITS_NOTE,
        "version": COST_VERSION,
    }


def compare(networks=TABLE_NETWORKS, widths=TABLE_WIDTHS,
            policy: MappingPolicy | str = "default", **knobs) -> list[dict]:
    """Paper and isaac figures side by side, one row per network and width (shortcut kernel 1): Table II's
    own (mapping-blind) figures, paper mode under `policy`, and isaac mode (knobs: isaac_cost's)."""
    table = []
    for network in networks:
        for width in widths:
            paper = paper_mapped(network, width, 1, policy, knobs.get("processor"))
            isaac = isaac_cost(network, width, 1, policy, **knobs).totals
            table.append({
                "network": network, "width": float(width), "macs": paper["macs"],
                "table_ii_latency_ns": paper["table_ii_latency_ns"], "table_ii_energy_uj": paper["table_ii_energy_uj"],
                "paper_interval_ns": paper["interval_ns"], "paper_energy_uj": paper["energy_uj"],
                "isaac_latency_ns": isaac["latency_ns"], "isaac_interval_ns": isaac["interval_ns"],
                "isaac_energy_uj": isaac["energy_uj"], "isaac_bottleneck": isaac["bottleneck"],
                "isaac_adc_energy_share": isaac["adc_energy_share"], "isaac_area_mm2": isaac["area_mm2"],
                "isaac_average_power_w": isaac["average_power_w"], "isaac_tops_per_w": isaac["tops_per_w"],
                "isaac_tops_per_mm2": isaac["tops_per_mm2"], "crossbars": isaac["crossbars_one_copy"],
                "fits": isaac["fits"],
            })
    return table


def spare_columns_cost(network: str, width: float = 1.0, shortcut_kernel: int = 1,
                       policy: MappingPolicy | str = "default", spares: int = 0, **knobs) -> dict:
    """What `spares` extra columns on every crossbar (a remapping's spare bit lines, dse/core/faults/remap.py) add to
    the isaac cost: the memristor array and the per-column sample-and-holds grow by spares/xbar_size; DACs
    (per row), the ADC (it converts the xbar_size columns in use, spares replacing stuck ones) and the timing
    are unchanged. Energy grows with the same share of the array's and sample-and-holds' energy."""
    if isinstance(spares, bool) or not isinstance(spares, int) or not 0 <= spares <= MAX_SPARES:
        raise DSEError(f"spare columns per crossbar must be an integer from 0 to {MAX_SPARES}, got {spares!r}")
    report = isaac_cost(network, width, shortcut_kernel, policy, **knobs)
    grow = spares / report.config.xbar_size
    area = unit_area_mm2(report.config)
    parts = ("crossbar", "sample_hold")
    extra_area = report.totals["crossbars"] * sum(area[k] for k in parts) * grow  # every replica has the spares
    extra_energy = sum(report.energy_by_component_uj[k] for k in parts) * grow
    return {"spares": spares, "crossbars": report.totals["crossbars"], "extra_area_mm2": extra_area,
            "extra_energy_uj": extra_energy, "area_share": extra_area / report.totals["area_mm2"],
            "energy_share": extra_energy / report.totals["energy_uj"]}
