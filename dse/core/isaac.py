"""ISAAC's published hardware and the crossbar organisation the cost model maps a network onto.

Per-component power and area from Shafiee et al., "ISAAC: A Convolutional Neural Network Accelerator with
In-Situ Analog Arithmetic in Crossbars", ISCA 2016, Table 6 (32 nm); `IsaacConfig`, the knobs (validated,
one line naming a bad value and what is allowed); and what the crossbars, IMAs, tiles and chips a design
occupies draw and take up. Torch-free, so the page validates knobs and the store checks COST_VERSION
without importing torch; dse/core/cost.py does the mapping and the timing.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from dse.core.errors import DSEError

# Bump whenever a cost model's totals change (what they contain or how they are computed): the results store
# keeps totals per design point, and catalog.ensure_costs recomputes every row of another version.
COST_VERSION = 2  # 2: paper mode mapping-aware; area, power, TOPS/W; ADC bits, chips and the ADC-bound cycle

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
OPS_PER_MAC = 2  # TOPS/W counts a multiply-accumulate as 2 ops, as ISAAC does (the paper's Table II counts 1)


@dataclass(frozen=True)
class IsaacConfig:
    """The crossbar organisation and the knobs. Defaults: ISAAC's, with one 8-bit weight per cell as in the paper.

    Cycle: one crossbar read takes read_ns (100 ns, ISAAC), and each crossbar's one ADC converts its columns
    one after another at 1.28 GS/s (0.78125 ns a sample), which is what sets ISAAC's 100 ns for 128 columns;
    a larger crossbar is ADC-bound (256 columns: 200 ns), a smaller one still waits for the read.
    ADC resolution: a SAR ADC at a fixed sample rate draws about twice the power per extra bit (Walden's
    figure of merit, P = FoM * 2^ENOB * f_s: R. Walden, IEEE JSAC 17(4), 1999; Accelergy's ISAAC ADC model
    scales energy and area by 2^bits the same way). We scale ISAAC's 8-bit ADC power and area by
    2^(adc_bits - 8); this is pessimistic near 8 bits, where measured SAR designs grow ~1.2-1.5x per bit.
    The ADC resolution is not checked against what the cells need (ours, like ISAAC's 8 bits for 8-bit
    cells, is optimistic); it prices the converters only.
    Chips: how many exist. A design that needs more is reported as not fitting (`fits` False), never
    time-multiplexed: rewriting RRAM weights between layers would cost far more than it saves.
    """

    xbar_size: int = 128  # rows = columns of one crossbar (ISAAC)
    bits_per_cell: int = 8  # the paper stores one 8-bit weight per cell (ISAAC: 2 bits per cell)
    weight_bits: int = 8
    input_bits: int = 8  # inputs streamed one bit per cycle (ISAAC: 16-bit inputs, 16 cycles)
    read_ns: float = 100.0  # one crossbar read (ISAAC)
    xbars_per_ima: int = 8  # ISAAC
    imas_per_tile: int = 12  # ISAAC
    tiles_per_chip: int = 168  # ISAAC
    adc_bits: int = 8  # ISAAC
    chips: int = 64  # the paper's "64-chip ISAAC RRAM accelerator"
    adc_ns_per_sample: float = 0.78125  # 1.28 GS/s (ISAAC)

    @property
    def cells_per_weight(self) -> int:
        return math.ceil(self.weight_bits / self.bits_per_cell)

    @property
    def cycle_ns(self) -> float:
        """One crossbar cycle: the read, or the ADC's pass over the columns if that is longer."""
        return max(self.read_ns, self.xbar_size * self.adc_ns_per_sample)

    def check(self) -> IsaacConfig:
        for f in fields(self):
            v = getattr(self, f.name)
            what, lo, hi = LIMITS[f.name]
            number = float if f.name in REAL else int
            ok = not isinstance(v, bool) and isinstance(v, (int, float) if number is float else int)
            if not ok or not (math.isfinite(v) and lo <= v <= hi):
                kind = "a number" if number is float else "an integer"
                raise DSEError(f"{f.name} ({what}) must be {kind} from {lo:g} to {hi:g}, got {v!r}")
        return self


REAL = {"read_ns", "adc_ns_per_sample"}
LIMITS = {  # name: (what it is, smallest, largest allowed)
    "xbar_size": ("crossbar rows = columns", 8, 1024),
    "bits_per_cell": ("bits stored per cell", 1, 8),
    "weight_bits": ("bits per weight", 1, 16),
    "input_bits": ("bits per input, one per cycle", 1, 16),
    "read_ns": ("one crossbar read, ns", 1e-3, 1e6),
    "xbars_per_ima": ("crossbars per IMA", 1, 1024),
    "imas_per_tile": ("IMAs per tile", 1, 1024),
    "tiles_per_chip": ("tiles per chip", 1, 100_000),
    "adc_bits": ("ADC resolution, bits", 1, 16),
    "chips": ("chips available", 1, 100_000),
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
    """Power of one crossbar's, one IMA's and one tile's share of each component, and one chip's links.
    A crossbar other than 128x128 scales DAC and sample-and-hold with its rows and the array with its cells
    (ours); the ADC (one per crossbar, fixed rate) with its resolution only (IsaacConfig)."""
    return _per_unit(ISAAC_POWER_MW, config)


def unit_area_mm2(config: IsaacConfig = DEFAULT) -> dict[str, float]:
    """Area of the same units, scaled the same way."""
    return _per_unit(ISAAC_AREA_MM2, config)


def _per_unit(table: dict[str, float], config: IsaacConfig) -> dict[str, float]:
    n, r = 8, config.xbar_size / 128  # Table 6 lists 8 crossbars' worth per IMA
    return {
        "adc": table["adc"] / n * 2.0 ** (config.adc_bits - 8),
        "dac": table["dac"] / n * r,
        "sample_hold": table["sample_hold"] / n * r,
        "crossbar": table["crossbar"] / n * r * r,
        **{k: table[k] for k in IMA_PARTS + TILE_PARTS + ("links",)},
    }


def occupied(crossbars: int, imas: int, tiles: int, chips: int, config: IsaacConfig = DEFAULT,
             links: bool | None = None) -> dict[str, float]:
    """Area (mm^2) and power (W, everything computing at once) of the crossbars (with their ADC, DACs and
    sample-and-holds), IMAs and tiles a design occupies, and each chip's HyperTransport links when it spans
    more than one chip (`links` forces them on or off). A full ISAAC chip is Table 6's 85.4 mm^2, 65.8 W."""
    links = chips > 1 if links is None else links
    counts = {**{k: crossbars for k in XBAR_PARTS}, **{k: imas for k in IMA_PARTS},
              **{k: tiles for k in TILE_PARTS}, "links": chips if links else 0}
    power, area = unit_power_mw(config), unit_area_mm2(config)
    return {"area_mm2": sum(area[k] * c for k, c in counts.items()),
            "power_w": sum(power[k] * c for k, c in counts.items()) / 1e3}


def tops_per_w(macs: float, energy_uj: float) -> float:
    """Ops per image over energy per image, a MAC counted as OPS_PER_MAC ops: TOPS/W = TOPs per J."""
    return OPS_PER_MAC * macs / (energy_uj * 1e-6) / 1e12 if energy_uj > 0 else float("nan")


def config_dict(config: IsaacConfig) -> dict:
    return {**asdict(config), "cycle_ns": config.cycle_ns}
