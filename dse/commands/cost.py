"""`python -m dse cost`: latency, energy, area, power and TOPS/W of one design point on ISAAC, paper mode
beside isaac mode. Without --network (or with --table) it prints both models for every network at the
paper's widths. --xbar-size, --bits-per-cell, --adc-bits and --chips set isaac mode's hardware."""
from __future__ import annotations

import argparse

from dse.commands import _args
from dse.core.mapping import POLICIES
from dse.core.protocol import DEFAULT_CALIB_IMAGES


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "cost",
        help="latency/energy per image on ISAAC (paper's Table II method and our crossbar mapping)",
        description="Latency (ns) and energy (uJ) for one 32x32 image on the ISAAC RRAM accelerator. "
        "paper: the paper's Table II method; isaac: our crossbar-mapping model. "
        "Without --network, prints the side-by-side table for all networks at widths 1.0-1.6.",
    )
    p.add_argument("--network", type=_args.network, help="resnet20, vgg13 or mobilenetv2")
    p.add_argument("--width", type=_args.width, default=1.0, help="channel widening factor (default 1.0)")
    p.add_argument("--shortcut-kernel", type=_args.positive_int, default=1,
                   help="ResNet20 projection shortcut kernel, 1 or 3 (default 1)")
    p.add_argument("--mapping", choices=list(POLICIES), default="default",
                   help="which layers live on the crossbar (default: the paper's, 1x1 convs and linears off)")
    p.add_argument("--cost-model", choices=["paper", "isaac", "both"], default="both")
    p.add_argument("--calib-images", type=_args.nonneg_int, default=DEFAULT_CALIB_IMAGES,
                   help=f"images of the per-chip BN calibration pass to price (default {DEFAULT_CALIB_IMAGES}; 0: none)")
    p.add_argument("--table", action="store_true", help="paper vs isaac for all networks at widths 1.0-1.6")
    hw = p.add_argument_group("isaac hardware (isaac cost model only; defaults: ISAAC's, 8-bit cells, 64 chips)")
    hw.add_argument("--xbar-size", type=_args.positive_int, help="crossbar rows = columns (8-1024; default 128)")
    hw.add_argument("--bits-per-cell", type=_args.positive_int, help="bits stored per cell (1-8; default 8)")
    hw.add_argument("--adc-bits", type=_args.positive_int, help="ADC resolution (1-16; default 8)")
    hw.add_argument("--chips", type=_args.positive_int,
                    help="chips available; a design needing more does not fit (default 64)")
    _args.add_json(p)
    p.set_defaults(func=run)
    return p


def run(args) -> dict:
    from dse.core import cost  # torch import deferred until the command runs

    if args.table or args.network is None:
        rows = cost.compare(policy=args.mapping)
        if not args.json:
            print_table(rows, args.mapping)
        return {"policy": args.mapping, "table": rows}
    models = ["paper", "isaac"] if args.cost_model == "both" else [args.cost_model]
    knobs = {k: getattr(args, k) for k in ("xbar_size", "bits_per_cell", "adc_bits", "chips")
             if getattr(args, k) is not None}
    result = {m: cost.estimate(args.network, args.width, args.shortcut_kernel, args.mapping, m,
                               **(knobs if m == "isaac" else {}))
              for m in models}
    from dse.core.deployment import calibration_cost

    for m in models:  # once per chip at deployment, beside the per-image figures
        result[m]["calibration"] = calibration_cost(result[m]["totals"], args.calib_images)
    if not args.json:
        print(f"{args.network}  width {args.width:g}  shortcut kernel {args.shortcut_kernel}  "
              f"mapping {args.mapping}  (per 32x32 image)")
        if "isaac" in result:
            _print_layers(result["isaac"]["layers"])
        else:
            _print_counts(result["paper"]["layers"])
        for m in models:
            _print_totals(m, result[m])
        if args.calib_images:
            for m in models:
                c = result[m]["calibration"]
                print(f"{m}: per-chip BN calibration ({c['calib_images']} images, once per chip at deployment): "
                      f"{_time(c['calib_latency_ns'])}, {c['calib_energy_uj'] / 1e3:,.3f} mJ")
    return result


def _print_layers(layers: list[dict]) -> None:
    print(f"{'layer':<26} {'k':>2} {'in':>5} {'out':>5} {'pos':>5} {'MACs':>11} {'device':<9} "
          f"{'xbars':>5} {'util':>5} {'latency ns':>12} {'energy uJ':>10}")
    for r in layers:
        xbar = r["device"] == "crossbar"
        print(f"{r['name']:<26} {r['kernel']:>2} {r['in_channels']:>5} {r['out_channels']:>5} "
              f"{r['positions']:>5} {r['macs']:>11,} {r['device']:<9} "
              f"{r['crossbars'] if xbar else '-':>5} {format(r['utilisation'], '.0%') if xbar else '-':>5} "
              f"{r['latency_ns']:>12,.0f} {r['energy_uj']:>10.3f}")


def _print_counts(layers: list[dict]) -> None:
    print(f"{'layer':<26} {'k':>2} {'in':>5} {'out':>5} {'pos':>5} {'MACs':>11} {'weights':>9} on crossbar")
    for r in layers:
        print(f"{r['name']:<26} {r['kernel']:>2} {r['in_channels']:>5} {r['out_channels']:>5} "
              f"{r['positions']:>5} {r['macs']:>11,} {r['weights']:>9,} "
              f"{'yes' if r['on_crossbar'] else 'no'}")


def _print_totals(model: str, result: dict) -> None:
    t = result["totals"]
    hardware = (f"area {t['area_mm2']:,.2f} mm^2  power {t['power_w']:,.2f} W "
                f"(processor {t['power_processor_w']:.1f} W)  {t['tops_per_w']:.3f} TOPS/W (a MAC = 2 ops)")
    if model == "paper":
        print(f"paper: {t['macs']:,} MACs (ptflops)  time per image {_time(t['latency_ns'])} "
              f"(64-chip peak rate: a throughput figure)  energy {_energy(t['energy_uj'])}")
        print(f"       crossbar {_time(t['latency_crossbar_ns'])} / {_energy(t['energy_crossbar_uj'])}, processor "
              f"{_time(t['latency_processor_ns'])} / {_energy(t['energy_processor_uj'])} (pipelined stages)")
        print(f"       Table II (mapping-blind, every layer on ISAAC): {t['table_ii_latency_ns']:.2f} ns, "
              f"{t['table_ii_energy_uj']:.2f} uJ")
        print(f"       {hardware} (64 ISAAC chips)")
        print(f"       units: {result['units']}")
        return
    print(f"isaac: latency {_time(t['latency_ns'])} (one image, layer after layer)  "
          f"interval {_time(t['interval_ns'])} (pipelined; compare with paper's time per image)  "
          f"energy {_energy(t['energy_uj'])}")
    print(f"       crossbar {_time(t['latency_crossbar_ns'])} / {_energy(t['energy_crossbar_uj'])}, "
          f"processor {_time(t['latency_processor_ns'])} / {_energy(t['energy_processor_uj'])} "
          f"({t['processor_energy_share']:.0%} of energy)")
    c = result["config"]
    print(f"       {t['crossbars']} crossbars of {c['xbar_size']}x{c['xbar_size']} ({t['cell_utilisation']:.0%} of "
          f"cells used), {t['imas']} IMAs, {t['tiles']} tiles, {t['chips']} chip(s) of {t['chips_available']}"
          + ("" if t["fits"] else "  DOES NOT FIT"))
    print(f"       {hardware}; {c['bits_per_cell']}-bit cells, {c['adc_bits']}-bit ADCs, "
          f"{c['cycle_ns']:g} ns cycle")


def _time(ns: float) -> str:
    """A duration with a unit that fits it."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:,.2f} {unit}"
    return f"{ns:,.2f} ns"


def _energy(uj: float) -> str:
    """An energy with a unit that fits it."""
    for unit, scale in (("J", 1e6), ("mJ", 1e3), ("uJ", 1.0)):
        if uj >= scale:
            return f"{uj / scale:,.2f} {unit}"
    return f"{uj * 1e3:,.2f} nJ"


def print_table(rows: list[dict], policy: str = "default") -> None:
    print(f"per 32x32 image; mapping {policy}. Table II: the paper's method, every layer on ISAAC (mapping-blind); "
          "paper: the same rates, off-crossbar layers on the processor; both are times per image at the 64-chip "
          "peak rate, so compare them with isaac's interval (pipelined), not its latency (one image). "
          "TOPS/W: a MAC = 2 ops")
    print(f"{'network':<12} {'width':>5} {'MACs (M)':>9} {'TableII ns':>10} {'TableII uJ':>10} {'paper ns':>11} "
          f"{'paper uJ':>9} {'interval ns':>11} {'latency ns':>11} {'isaac uJ':>9} {'cpu share':>9} {'xbars':>6} "
          f"{'mm^2':>6} {'W':>5} {'TOPS/W':>6}")
    for r in rows:
        print(f"{r['network']:<12} {r['width']:>5.1f} {r['macs'] / 1e6:>9.2f} {r['paper_latency_ns']:>10.2f} "
              f"{r['paper_energy_uj']:>10.2f} {r['paper_mapped_ns']:>11,.2f} {r['paper_mapped_uj']:>9.2f} "
              f"{r['isaac_interval_ns']:>11,.0f} {r['isaac_latency_ns']:>11,.0f} "
              f"{r['isaac_energy_uj']:>9.2f} {r['isaac_processor_energy_share']:>9.0%} {r['crossbars']:>6} "
              f"{r['isaac_area_mm2']:>6.2f} {r['isaac_power_w']:>5.2f} {r['isaac_tops_per_w']:>6.3f}")
