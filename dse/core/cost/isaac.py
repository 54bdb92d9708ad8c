"""ISAAC's published hardware and the crossbar organisation the cost model maps a network onto.

Per-component power and area from Shafiee et al., "ISAAC: A Convolutional Neural Network Accelerator with
In-Situ Analog Arithmetic in Crossbars", ISCA 2016, Table 6 (32 nm); `IsaacConfig`, the knobs (validated,
one line naming a bad value and what is allowed); and what the crossbars, IMAs, tiles and chips a design
occupies draw and take up. Torch-free, so the page validates knobs and the store checks COST_VERSION
without importing torch; dse/core/cost/per_image.py does the mapping and the timing.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from dse.core.errors import DSEError

# Bump whenever a cost model's totals change (what they contain or how they are computed): the results store
# keeps totals per design point, and catalog.ensure_costs recomputes every row of another version.
COST_VERSION = 3  # 3: ADC bits from ISAAC's rule, per-conversion ADC energy, replication at a budget, breakdowns
# (2: paper mode mapping-aware; area, power, TOPS/W; ADC bits, chips and the ADC-bound cycle)

# Table 6 lists each component's power and area for all its units in an IMA (8 crossbars; 12 IMAs per tile)
# or a tile (168 per chip); we keep those figures and divide them out. They add up to the paper's totals:
# IMA 24.09 mW (12 IMAs 289 mW, 0.157 mm^2), tile 330 mW and 0.372 mm^2, 168 tiles 55.4 W and 62.5 mm^2,
# chip 65.8 W and 85.4 mm^2 (tests/test_cost.py). The areas of the eDRAM, ADC, DAC, bus, router and
# shift-and-add units agree with Accelergy's ISAAC component models (hwcomponents-library, isaac.py).
ISAAC_POWER_MW = {
    # per IMA (8 crossbars)
    "adc": 16.0,  # 8 ADCs, 8-bit, 1.28 GS/s (one per crossbar): 2 mW each
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
    "links": 10.4e3,  # 4 HyperTransport links, 1.6 GHz, 6.4 GB/s each
}
ISAAC_AREA_MM2 = {
    "adc": 0.0096,
    "dac": 0.00017,
    "sample_hold": 0.00004,
    "crossbar": 0.0002,
    "ima_shift_add": 0.00024,
    "input_register": 0.0021,
    "output_register": 0.00077,
    "edram": 0.083,
    "bus": 0.090,
    "router": 0.151 / 4,  # shared by 4 tiles
    "tile_digital": 0.0006 + 0.00006 + 0.00024 + 0.0032,
    "links": 22.88,
}
ISAAC_CHIP = {"area_mm2": 85.4, "power_w": 65.8, "tiles": 168}  # Table 6's chip totals
XBAR_PARTS = ("adc", "dac", "sample_hold", "crossbar")  # one set per crossbar
IMA_PARTS = ("ima_shift_add", "input_register", "output_register")  # one set per IMA
TILE_PARTS = ("edram", "bus", "router", "tile_digital")  # one set per tile
OPS_PER_MAC = 2  # every TOPS figure counts a multiply-accumulate as 2 ops, as ISAAC's rates do
ADC_REF_BITS = 8  # Table 6's ADC: 8 bits, 1.28 GS/s, 2 mW (one per crossbar)
ISAAC_BUDGET_MM2 = ISAAC_CHIP["area_mm2"]  # what `budget_mm2` is measured against in the docs: one ISAAC chip


@dataclass(frozen=True)
class IsaacConfig:
    """The crossbar organisation and the knobs. Defaults: ISAAC's, with one 8-bit weight per cell as in the paper.

    Cycle: one crossbar read takes read_ns (100 ns, ISAAC), and each crossbar's one ADC converts its columns
    one after another at 1.28 GS/s (0.78125 ns a sample), which is what sets ISAAC's 100 ns for 128 columns;
    a larger crossbar is ADC-bound (256 columns: 200 ns), a smaller one still waits for the read. Inputs go in
    dac_bits at a time, so a position takes ceil(input_bits / dac_bits) cycles.
    ADC resolution (adc_bits 0: as the column needs, `adc_bits_needed`): a column of `rows` cells of b bits
    driven v bits a cycle sums to at most rows*(2^b-1)*(2^v-1), one bit fewer with ISAAC's flip encoding.
    ADC cost: energy per conversion and area scale as 2^bits from Table 6's 8-bit ADC (`adc_scale`).
    Budget: `chips` chips of this organisation (tiles_per_chip tiles each), or, when budget_mm2 > 0, that much
    silicon instead; layers are replicated onto what the design leaves free (dse/core/cost/per_image.py). A design whose
    single copy does not fit is reported as not fitting (`fits` False), never time-multiplexed: rewriting RRAM
    weights between layers would cost far more than it saves.
    """

    xbar_size: int = 128  # rows = columns of one crossbar (ISAAC)
    bits_per_cell: int = 8  # the paper stores one 8-bit weight per cell (ISAAC: 2 bits per cell)
    weight_bits: int = 8
    input_bits: int = 8  # the paper's 8-bit activations (ISAAC: 16-bit inputs over 16 cycles)
    dac_bits: int = 1  # input bits per cycle (ISAAC: 1-bit DACs)
    read_ns: float = 100.0  # one crossbar read (ISAAC)
    xbars_per_ima: int = 8  # ISAAC
    imas_per_tile: int = 12  # ISAAC
    tiles_per_chip: int = 168  # ISAAC
    adc_bits: int = 0  # 0: what the column needs (adc_bits_needed); else a fixed resolution (ISAAC: 8)
    chips: int = 64  # the budget: the paper's "64-chip ISAAC RRAM accelerator"
    budget_mm2: float = 0.0  # > 0: an area budget in mm^2 instead of `chips`
    adc_ns_per_sample: float = 0.78125  # 1.28 GS/s (ISAAC)

    @property
    def cells_per_weight(self) -> int:
        return math.ceil(self.weight_bits / self.bits_per_cell)

    @property
    def input_cycles(self) -> int:
        """Crossbar cycles per input vector: its bits, dac_bits at a time."""
        return math.ceil(self.input_bits / self.dac_bits)

    @property
    def cycle_ns(self) -> float:
        """One crossbar cycle: the read, or the ADC's pass over the columns if that is longer."""
        return max(self.read_ns, self.xbar_size * self.adc_ns_per_sample)

    @property
    def adc_bits_needed(self) -> int:
        return adc_bits_needed(self.xbar_size, self.bits_per_cell, self.dac_bits)

    @property
    def adc_resolution(self) -> int:
        """The ADC's bits: adc_bits when set, else what the column needs."""
        return self.adc_bits or self.adc_bits_needed

    def check(self) -> IsaacConfig:
        for f in fields(self):
            v = getattr(self, f.name)
            what, lo, hi = LIMITS[f.name]
            number = float if f.name in REAL else int
            ok = not isinstance(v, bool) and isinstance(v, (int, float) if number is float else int)
            if not ok or not (math.isfinite(v) and lo <= v <= hi):
                kind = "a number" if number is float else "an integer"
                raise DSEError(f"{f.name} ({what}) must be {kind} from {lo:g} to {hi:g}, got {v!r}")
        if not self.adc_bits and self.adc_bits_needed > LIMITS["adc_bits"][2]:
            raise DSEError(f"xbar_size {self.xbar_size} with bits_per_cell {self.bits_per_cell} and dac_bits "
                           f"{self.dac_bits} needs a {self.adc_bits_needed}-bit ADC; at most "
                           f"{LIMITS['adc_bits'][2]} bits allowed (fewer rows, bits per cell or DAC bits, or set adc_bits)")
        return self


def adc_bits_needed(rows: int, bits_per_cell: int, dac_bits: int = 1) -> int:
    """ISAAC's ADC rule (Shafiee et al. 2016, Sec. V): a column of `rows` cells of b bits, driven v input bits a
    cycle, sums to at most rows*(2^b-1)*(2^v-1): ceil(log2(that + 1)) bits. ISAAC's flip encoding stores a
    column's weights inverted when their sum would set the top bit, so the top bit is always 0: one bit fewer.
    128 rows: 2-bit cells -> 8 bits (ISAAC's), 8-bit cells -> 14 bits."""
    top = rows * (2 ** bits_per_cell - 1) * (2 ** dac_bits - 1)
    return max(1, math.ceil(math.log2(top + 1)) - 1)


def adc_scale(bits: int) -> float:
    """ADC energy per conversion and area against Table 6's 8-bit ADC: 2^(bits-8). Walden's figure of merit
    (P = FoM * 2^ENOB * f_s; R. Walden, IEEE JSAC 17(4) 1999; the FoM Murmann's ADC survey tracks) at a fixed
    rate; Accelergy's ISAAC ADC model scales the same way. Measured SAR ADCs grow ~1.2-1.5x per bit near 8 bits
    (pessimistic there) and ~4x per bit above ~12 (thermal noise, Schreier's FoM: optimistic at 14 bits)."""
    return 2.0 ** (bits - ADC_REF_BITS)


REAL = {"read_ns", "adc_ns_per_sample", "budget_mm2"}
LIMITS = {  # name: (what it is, smallest, largest allowed)
    "xbar_size": ("crossbar rows = columns", 8, 1024),
    "bits_per_cell": ("bits stored per cell", 1, 8),
    "weight_bits": ("bits per weight", 1, 16),
    "input_bits": ("bits per input", 1, 16),
    "dac_bits": ("input bits per cycle", 1, 8),
    "read_ns": ("one crossbar read, ns", 1e-3, 1e6),
    "xbars_per_ima": ("crossbars per IMA", 1, 1024),
    "imas_per_tile": ("IMAs per tile", 1, 1024),
    "tiles_per_chip": ("tiles per chip", 1, 100_000),
    "adc_bits": ("ADC resolution in bits, 0: as the column needs", 0, 16),
    "chips": ("chips in the budget", 1, 100_000),
    "budget_mm2": ("area budget in mm^2, 0: use chips", 0.0, 1e7),
    "adc_ns_per_sample": ("ADC time per sample, ns", 1e-6, 1e6),
}
KNOBS = ("xbar_size", "bits_per_cell", "adc_bits", "chips")  # what the app's sidebar offers
DEFAULT = IsaacConfig()


def check_knobs(**knobs) -> dict:
    """The knobs that differ from ISAAC's defaults, validated (DSEError naming a bad one and what is allowed)."""
    unknown = set(knobs) - {f.name for f in fields(IsaacConfig)}
    if unknown:
        raise DSEError(f"unknown hardware option(s) {', '.join(sorted(unknown))}; "
                       f"allowed: {', '.join(f.name for f in fields(IsaacConfig))}")
    IsaacConfig(**knobs).check()
    return {k: v for k, v in knobs.items() if v != getattr(DEFAULT, k)}


def unit_power_mw(config: IsaacConfig = DEFAULT) -> dict[str, float]:
    """Power of one crossbar's, one IMA's and one tile's share of each component, and one chip's links, all
    busy. A crossbar other than 128x128 scales DAC and sample-and-hold with its rows and the array with its
    cells (ours); the ADC (one per crossbar, fixed rate) with its resolution (adc_scale)."""
    return _per_unit(ISAAC_POWER_MW, config)


def unit_area_mm2(config: IsaacConfig = DEFAULT) -> dict[str, float]:
    """Area of the same units, scaled the same way."""
    return _per_unit(ISAAC_AREA_MM2, config)


def _per_unit(table: dict[str, float], config: IsaacConfig) -> dict[str, float]:
    n, r = 8, config.xbar_size / 128  # Table 6 lists 8 crossbars' worth per IMA
    return {
        "adc": table["adc"] / n * adc_scale(config.adc_resolution),
        "dac": table["dac"] / n * r,
        "sample_hold": table["sample_hold"] / n * r,
        "crossbar": table["crossbar"] / n * r * r,
        **{k: table[k] for k in IMA_PARTS + TILE_PARTS + ("links",)},
    }


def event_energy_pj(config: IsaacConfig = DEFAULT) -> dict[str, float]:
    """Energy per event, from Table 6's powers at ISAAC's full rate (128 columns converted every 100 ns):
    adc and ima_shift_add per conversion, dac per row driven a cycle, sample_hold per column held a cycle,
    crossbar per cell read a cycle; the IMA registers and the tile's share per crossbar busy for a cycle.
    A design using every cell every cycle draws exactly Table 6's power (tests/test_cost.py)."""
    p, cyc = ISAAC_POWER_MW, ISAAC_CYCLE_NS
    per_adc_rate = 128 / cyc  # conversions per ns per ADC at ISAAC's rate
    return {
        "adc": p["adc"] / 8 / per_adc_rate * adc_scale(config.adc_resolution),
        "ima_shift_add": p["ima_shift_add"] / (8 * per_adc_rate),
        "dac": p["dac"] / (8 * 128) * config.cycle_ns * (2 ** config.dac_bits - 1),  # a v-bit DAC: 2^v-1 unit levels
        "sample_hold": p["sample_hold"] / (8 * 128) * config.cycle_ns,
        "crossbar": p["crossbar"] / (8 * 128 * 128) * config.cycle_ns,
        **{k: p[k] / config.xbars_per_ima * config.cycle_ns for k in ("input_register", "output_register")},
        **{k: p[k] / (config.xbars_per_ima * config.imas_per_tile) * config.cycle_ns for k in TILE_PARTS},
    }  # mW * ns = pJ


ISAAC_CYCLE_NS = 100.0  # Table 6's powers are at this cycle, every column converted

# the energy and area breakdowns: each component and the Table 6 parts (plus the processor) it sums
BREAKDOWN = {
    "crossbar_arrays": ("crossbar",),
    "adc": ("adc",),
    "dac": ("dac",),
    "sample_hold": ("sample_hold",),
    "shift_add": ("ima_shift_add",),
    "edram_buffers": ("edram", "input_register", "output_register"),
    "router_links": ("bus", "router", "links"),
    "tile_digital": ("tile_digital",),
    "processor": ("processor",),
}
BREAKDOWN_LABELS = {"crossbar_arrays": "crossbar arrays", "adc": "ADC", "dac": "DAC", "sample_hold": "sample-and-hold",
                    "shift_add": "shift-and-add", "edram_buffers": "eDRAM and registers", "router_links": "bus, router, links",
                    "tile_digital": "tile digital (sigmoid, max-pool)", "processor": "off-crossbar processor"}


def breakdown(by_part: dict[str, float]) -> dict[str, float]:
    """Table 6 parts (and "processor") summed into BREAKDOWN's components; parts absent count 0."""
    return {k: sum(by_part.get(p, 0.0) for p in parts) for k, parts in BREAKDOWN.items()}


def occupied(crossbars: int, imas: int, tiles: int, chips: int, config: IsaacConfig = DEFAULT,
             links: bool | None = None) -> dict[str, float]:
    """Area (mm^2) and peak power (W, everything computing at once) of the crossbars (with their ADC, DACs and
    sample-and-holds), IMAs and tiles a design occupies, and each chip's HyperTransport links when it spans
    more than one chip (`links` forces them on or off). A full ISAAC chip is Table 6's 85.4 mm^2, 65.8 W.
    `area_by_part_mm2` and `power_by_part_w`: the same by Table 6 component."""
    links = chips > 1 if links is None else links
    counts = {**{k: crossbars for k in XBAR_PARTS}, **{k: imas for k in IMA_PARTS},
              **{k: tiles for k in TILE_PARTS}, "links": chips if links else 0}
    power, area = unit_power_mw(config), unit_area_mm2(config)
    by_area = {k: area[k] * c for k, c in counts.items()}
    by_power = {k: power[k] * c / 1e3 for k, c in counts.items()}
    return {"area_mm2": sum(by_area.values()), "power_w": sum(by_power.values()),
            "area_by_part_mm2": by_area, "power_by_part_w": by_power}


def tops_per_w(macs: float, energy_uj: float) -> float:
    """Ops per image over energy per image, a MAC counted as OPS_PER_MAC ops: TOPS/W = TOPs per J."""
    return OPS_PER_MAC * macs / (energy_uj * 1e-6) / 1e12 if energy_uj > 0 else float("nan")


def peak_efficiency(config: IsaacConfig = DEFAULT) -> dict:
    """One full chip of this organisation with every cell computing every cycle: ops/s per mm^2 and per W
    (a MAC = 2 ops). ISAAC's own configuration (2-bit cells, 16-bit weights and inputs, 8-bit ADC) gives
    483.6 GOPs/s/mm^2 (ISAAC: 478.95) and 627.5 GOPs/s/W (Table 6's totals imply 621.6; ISAAC quotes 644.23)."""
    c = config.check()
    xbars = c.tiles_per_chip * c.imas_per_tile * c.xbars_per_ima
    macs_per_ns = xbars * c.xbar_size * (c.xbar_size // c.cells_per_weight) / (c.input_cycles * c.cycle_ns)
    chip = occupied(xbars, xbars // c.xbars_per_ima, c.tiles_per_chip, 1, c, links=True)
    gops = OPS_PER_MAC * macs_per_ns  # ops per ns = Gops per s
    return {"gops_per_s": gops, "area_mm2": chip["area_mm2"], "power_w": chip["power_w"],
            "gops_per_s_per_mm2": gops / chip["area_mm2"], "gops_per_w": gops / chip["power_w"],
            "adc_bits": c.adc_resolution}


def config_dict(config: IsaacConfig) -> dict:
    return {**asdict(config), "cycle_ns": config.cycle_ns, "input_cycles": config.input_cycles,
            "adc_bits_needed": config.adc_bits_needed, "adc_resolution": config.adc_resolution}
