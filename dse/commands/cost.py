"""`python -m dse cost`: latency, interval, throughput, energy, area, power, TOPS/W and TOPS/mm^2 of one design
point on ISAAC, paper mode beside isaac mode, with energy and area by component. Without --network (or with
--table) it prints both models for every network at the paper's widths. --xbar-size, --bits-per-cell,
--adc-bits, --dac-bits, --chips and --budget-mm2 set isaac mode's hardware and budget; --cpu-gmacs and
--cpu-pj-per-mac the off-crossbar processor (both models). docs/cost-model.md describes the model."""
from __future__ import annotations

import argparse

from dse.commands import _args
from dse.core.cost.deployment import calibration_cost
from dse.core.cost.isaac import BREAKDOWN_LABELS
from dse.core.crossbar.mapping import POLICIES
from dse.core.errors import DSEError
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
    hw.add_argument("--adc-bits", type=_args.nonneg_int,
                    help="ADC resolution (1-16; default 0: what a column needs, ISAAC's rule with its flip encoding)")
    hw.add_argument("--dac-bits", type=_args.positive_int, help="input bits per cycle (1-8; default 1, ISAAC's)")
    hw.add_argument("--chips", type=_args.positive_int,
                    help="the budget in chips of this organisation; layers are replicated onto it (default 64)")
    hw.add_argument("--budget-mm2", type=_args.nonneg_float,
                    help="the budget as silicon area in mm^2 instead of chips (default 0: use --chips)")
    cpu = p.add_argument_group("off-crossbar processor (both models; defaults: a mobile CPU cluster, see docs)")
    cpu.add_argument("--cpu-gmacs", type=_args.positive_float, default=100.0,
                     help="sustained GMAC/s on the 1x1 and linear layers (default 100)")
    cpu.add_argument("--cpu-pj-per-mac", type=_args.positive_float, default=20.0,
                     help="energy per MAC in pJ, memory traffic included (default 20, i.e. 2 W at 100 GMAC/s)")
    _args.add_json(p)
    p.set_defaults(func=run)
    return p


HW_KNOBS = ("xbar_size", "bits_per_cell", "adc_bits", "dac_bits", "chips", "budget_mm2")


def run(args) -> dict:
    from dse.core.cost import per_image as cost  # torch import deferred until the command runs
    processor = cost.Processor(args.cpu_gmacs * 1e9, args.cpu_pj_per_mac).check()
    knobs = {k: getattr(args, k) for k in HW_KNOBS if getattr(args, k) is not None}
    if args.table or args.network is None:
        rows = cost.compare(policy=args.mapping, processor=processor, **knobs)
        if not args.json:
            print_table(rows, args.mapping)
        return {"policy": args.mapping, "table": rows}
    models = ["paper", "isaac"] if args.cost_model == "both" else [args.cost_model]
    result = {m: cost.estimate(args.network, args.width, args.shortcut_kernel, args.mapping, m, processor=processor,
                               **(knobs if m == "isaac" else {}))
              for m in models}
    if "isaac" in result and not result["isaac"]["totals"]["fits"]:
        raise DSEError(unfit_message(result["isaac"]))
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
        print_breakdowns({m: result[m]["totals"] for m in models})
        if args.calib_images:
            for m in models:
                c = result[m]["calibration"]
                print(f"{m}: per-chip BN calibration ({c['calib_images']} images, once per chip at deployment, "
                      f"layer by layer): {_time(c['calib_latency_ns'])}, {c['calib_energy_uj'] / 1e3:,.3f} mJ")
    return result


def unfit_message(estimate: dict) -> str:
    """One line: what the budget holds, what one copy of the design needs, and the budget that would do."""
    t, c = estimate["totals"], estimate["config"]
    per_chip = c["tiles_per_chip"] * c["imas_per_tile"]
    need = t["imas"]
    budget = f"budget_mm2 {c['budget_mm2']:g}" if c["budget_mm2"] else f"chips {c['chips']}"
    allowed = (f"budget_mm2 >= {t['min_area_mm2']:,.1f}" if c["budget_mm2"] else f"chips >= {-(-need // per_chip)}")
    return (f"{estimate['network']} {estimate['width']:g}x needs {need} IMAs ({t['min_area_mm2']:,.1f} mm^2) for one "
            f"copy of its weights; {budget} holds {t['budget_imas']} IMAs; allowed: {allowed}")


def _print_layers(layers: list[dict]) -> None:
    print(f"{'layer':<26} {'k':>2} {'in':>5} {'out':>5} {'pos':>5} {'MACs':>11} {'device':<9} "
          f"{'xbars':>5} {'copies':>6} {'util':>5} {'conversions':>11} {'stage ns':>10} {'energy uJ':>10}")
    for r in layers:
        xbar = r["device"] == "crossbar"
        print(f"{r['name']:<26} {r['kernel']:>2} {r['in_channels']:>5} {r['out_channels']:>5} "
              f"{r['positions']:>5} {r['macs']:>11,} {r['device']:<9} "
              f"{r['crossbars'] if xbar else '-':>5} {r['replicas'] if xbar else '-':>6} "
              f"{format(r['utilisation'], '.0%') if xbar else '-':>5} {format(r['conversions'], ',') if xbar else '-':>11} "
              f"{r['latency_ns']:>10,.0f} {r['energy_uj']:>10.3f}")


def _print_counts(layers: list[dict]) -> None:
    print(f"{'layer':<26} {'k':>2} {'in':>5} {'out':>5} {'pos':>5} {'MACs':>11} {'weights':>9} on crossbar")
    for r in layers:
        print(f"{r['name']:<26} {r['kernel']:>2} {r['in_channels']:>5} {r['out_channels']:>5} "
              f"{r['positions']:>5} {r['macs']:>11,} {r['weights']:>9,} "
              f"{'yes' if r['on_crossbar'] else 'no'}")


def _print_totals(model: str, result: dict) -> None:
    t = result["totals"]
    print(f"{model}: latency {_time(t['latency_ns'])} (one image)  interval {_time(t['interval_ns'])} "
          f"({t['images_per_s']:,.0f} images/s; bottleneck: {t['bottleneck']})  energy {_energy(t['energy_uj'])}")
    print(f"       crossbar {_time(t['latency_crossbar_ns'])} / {_energy(t['energy_crossbar_uj'])}, processor "
          f"{_time(t['latency_processor_ns'])} / {_energy(t['energy_processor_uj'])} (pipelined stages)")
    print(f"       area {t['area_mm2']:,.2f} mm^2 (one copy {t['min_area_mm2']:,.2f} mm^2)  power peak "
          f"{t['peak_power_w']:,.2f} W, average {t['average_power_w']:,.2f} W (processor {t['power_processor_w']:g} W)  "
          f"{t['tops_per_w']:.3f} TOPS/W  {t['tops_per_mm2']:.4f} TOPS/mm^2 (a MAC = 2 ops)")
    if model == "paper":
        print(f"       {t['macs_ptflops']:,} ops as ptflops counts them; Table II (mapping-blind, a MAC = 1 op): "
              f"{t['table_ii_latency_ns']:.2f} ns, {t['table_ii_energy_uj']:.2f} uJ; 64 ISAAC chips")
        print(f"       units: {result['units']}")
        return
    c = result["config"]
    print(f"       {t['crossbars_one_copy']} crossbars of {c['xbar_size']}x{c['xbar_size']} a copy "
          f"({t['cell_utilisation']:.0%} of cells used), {t['pipeline_copies']} pipeline copies: {t['crossbars']} "
          f"crossbars, {t['imas']} IMAs, {t['tiles']} tiles, {t['chips']} chip(s); budget "
          + (f"{c['budget_mm2']:g} mm^2" if c["budget_mm2"] else f"{t['chips_available']} chips"))
    print(f"       {c['bits_per_cell']}-bit cells, {c['input_cycles']} cycles of {c['cycle_ns']:g} ns a position, "
          f"{t['adc_bits']}-bit ADCs (a column needs {t['adc_bits_needed']}){'' if t['adc_lossless'] else ' LOSSY'}: "
          f"{t['conversions']:,} conversions, {t['adc_energy_share']:.0%} of energy, {t['adc_area_share']:.0%} of area")


def print_breakdowns(totals: dict[str, dict]) -> None:
    """Energy (uJ) and area (mm^2) by component, one column pair per cost model, with each share."""
    head = "".join(f" {m + ' uJ':>12} {'%':>5} {m + ' mm^2':>12} {'%':>5}" for m in totals)
    print(f"{'component':<34}{head}")
    for key, label in BREAKDOWN_LABELS.items():
        cells = ""
        for t in totals.values():
            e, a = t["energy_breakdown_uj"][key], t["area_breakdown_mm2"][key]
            cells += f" {e:>12,.3f} {e / t['energy_uj']:>5.1%} {a:>12,.3f} {a / t['area_mm2']:>5.1%}"
        print(f"{label:<34}{cells}")


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
    print(f"per 32x32 image; mapping {policy}. Table II: the paper's cells (mapping-blind, a MAC = 1 op); paper: the "
          "same rates with a MAC = 2 ops and off-crossbar layers on the processor; isaac: our crossbar model, layers "
          "replicated onto the budget. interval = 1/throughput, latency = one image. TOPS: a MAC = 2 ops")
    print(f"{'network':<12} {'width':>5} {'MACs (M)':>9} {'TableII ns':>10} {'TableII uJ':>10} {'paper int ns':>12} "
          f"{'paper uJ':>9} {'isaac int ns':>12} {'latency ns':>11} {'isaac uJ':>9} {'ADC %':>6} {'bottleneck':>16} "
          f"{'xbars':>6} {'mm^2':>8} {'avg W':>7} {'TOPS/W':>6}")
    for r in rows:
        print(f"{r['network']:<12} {r['width']:>5.1f} {r['macs'] / 1e6:>9.2f} {r['table_ii_latency_ns']:>10.2f} "
              f"{r['table_ii_energy_uj']:>10.2f} {r['paper_interval_ns']:>12,.1f} {r['paper_energy_uj']:>9.2f} "
              f"{r['isaac_interval_ns']:>12,.1f} {r['isaac_latency_ns']:>11,.0f} {r['isaac_energy_uj']:>9.2f} "
              f"{r['isaac_adc_energy_share']:>6.0%} {r['isaac_bottleneck']:>16} {r['crossbars']:>6} "
              f"{r['isaac_area_mm2']:>8.1f} {r['isaac_average_power_w']:>7.2f} {r['isaac_tops_per_w']:>6.3f}")
