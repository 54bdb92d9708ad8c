"""The selected point's cost cards, in groups that each say what they cover, so figures for the whole system
(the paper's 64 chips, or the crossbars a design and its replicas fill) never sit unlabelled beside the
design's own (its weights' crossbars, tiles and chips). Torch-free, no streamlit: the page draws the groups."""
from __future__ import annotations

from dse.view import units

LATENCY_HELP = {"paper": "one image: its crossbar share at the 64-chip peak rate, then its off-crossbar layers on the "
                         "processor",
                "isaac": "one image alone, layer after layer through the crossbars (and replicas) its weights fill"}
INTERVAL_HELP = "time between images in steady state, 1/throughput: the slowest pipeline stage (named) sets it"


def per_image(cost: dict, m: str) -> list[tuple[str, str, str]]:
    """(label, value, help) of the per-image figures under cost model `m`."""
    cards = [(f"Latency ({m})", units.fmt(cost["latency_ns"], "ns"), LATENCY_HELP[m]),
             (f"Interval ({m})", units.fmt(cost["interval_ns"], "ns"),
              f"{INTERVAL_HELP}; here: {cost['bottleneck']} ({cost['images_per_s']:,.0f} images/s)"),
             (f"Energy ({m})", units.fmt(cost["energy_uj"], "uJ"), "per image")]
    if m == "isaac":
        cards.append(("ADC resolution (isaac)", f"{cost['adc_bits']} bits",
                      f"a column needs {cost['adc_bits_needed']} (ISAAC's rule, flip encoding); ADCs take "
                      f"{cost['adc_energy_share']:.0%} of the energy and {cost['adc_area_share']:.0%} of the area"))
    else:
        cards.append(("Table II figure", units.fmt(cost["table_ii_latency_ns"], "ns"),
                      "the paper's own Table II cell: every layer on ISAAC, a MAC counted as 1 op"))
    return cards


def system_title(cost: dict, m: str) -> str:
    if m == "paper":
        return f"System: all {cost['chips']} ISAAC chips (the paper's cost model spreads every image over them)"
    return (f"System: the {cost['crossbars']:,} crossbars ({cost['tiles']:,} tiles) this design and its replicas "
            f"fill, within the {cost['chips_available']}-chip budget")


def system(cost: dict, m: str) -> list[tuple[str, str, str]]:
    """Area, power and efficiency of what the cost model counts as the system (system_title says what)."""
    return [(f"Area ({m})", f"{cost['area_mm2']:,.1f} mm²", "ISAAC Table 6 areas; processor not counted"),
            (f"Peak power ({m})", f"{cost['peak_power_w']:,.1f} W",
             f"all of it computing at once, plus the processor's {cost['power_processor_w']:g} W when used"),
            (f"Average power ({m})", f"{cost['average_power_w']:,.1f} W", "energy per image / interval"),
            (f"TOPS/W ({m})", f"{cost['tops_per_w']:.3f}", "ops per image / energy per image; a MAC is 2 ops"),
            (f"TOPS/mm² ({m})", f"{cost['tops_per_mm2']:.4f}", "ops per second / area; a MAC is 2 ops")]


def design_title(isaac: dict, xbar: int) -> str:
    return (f"This design's own: one copy of its weights on {xbar}x{xbar} crossbars (isaac mapping, whichever "
            "cost model ranks)")


def design(isaac: dict) -> list[tuple[str, str, str]]:
    """The design's own footprint: one copy of its weights (the isaac mapping; the same under either model)."""
    return [("Crossbars (one copy)", f"{isaac['crossbars_one_copy']:,}", "crossbars holding the weights once"),
            ("Chips it needs", f"{isaac['chips']:,}", f"of the {isaac['chips_available']}-chip budget"),
            ("Area (one copy)", f"{isaac['min_area_mm2']:,.2f} mm²", "the tiles one copy of the weights needs")]


def groups(cost: dict, isaac: dict, m: str, xbar: int) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The card groups in page order: per image, the system, the design's own."""
    return [(f"Per image ({m} cost model)", per_image(cost, m)), (system_title(cost, m), system(cost, m)),
            (design_title(isaac, xbar), design(isaac))]
