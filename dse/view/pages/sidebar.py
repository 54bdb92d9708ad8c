"""The sidebar: the user's choices, one PageState a run. Only valid combinations can be picked; a bad typed
value gets one line naming it and what is allowed, and the default stands in for it."""
from __future__ import annotations

import streamlit as st

from dse.domain.bn import BN, BN_CHOICES, DEFAULT_CALIB_IMAGES, Chip, parse_bn
from dse.domain.errors import DSEError
from dse.domain.evalspec import PRECISIONS
from dse.domain.faultspec import (CELL_BITS, FAULT_MODEL_NAMES, WEIGHT_BITS, FaultSpec, fault_model_label,
                                  fault_model_name, parse_fault_model)
from dse.domain.networks import NETWORKS, SHORTCUT_KERNELS
from dse.domain.paper import DROPCONNECT_RATES, WIDTHS
from dse.domain.point import DesignPoint
from dse.run import jobs
from dse.view import explore
from dse.view.state import NETWORK_NAMES, CostSpec, PageState, ResultsSpec

MAPPING_NAMES = {"default": "1x1 convs on the processor (paper)", "1x1-on-crossbar": "1x1 convs on the crossbar"}
BN_NAMES = {"chip": "per chip", "paper": "paper", "batch": "per batch"}
WHY_THEY_DIFFER = ("Why they differ: paper spreads each image over all 64 chips at ISAAC's peak rate (its interval "
                   "is a throughput figure); isaac maps each layer onto crossbars, sizes the ADCs for the columns and "
                   "replicates layers onto the budget (one image's latency, and the interval between images: "
                   "compare paper's interval with that). docs/cost-model.md has both.")
ISAAC_KNOBS = tuple(k for k in explore.KNOBS if k != "bits_per_cell")  # bits per cell serve the fault model too
KNOB_LABELS = {"xbar_size": "Crossbar size (rows = columns)", "adc_bits": "ADC resolution (bits; 0: as a column needs)",
               "chips": "Budget (chips)"}
FAULT_HELP = ("SA1: a stuck cell reads its weight as 0 (the paper's); SA0: as the largest level of the weight's sign; "
              "stuck-row / stuck-column: whole word or bit lines of the 128x128 tiles stuck; clustered: stuck cells in "
              "clusters; mixed: half random SA1, half lines (the Spatial defects tab shows each)")
BN_HELP = ("per chip: each faulty chip re-estimates its BN statistics from unlabeled training images at deployment "
           "(no fault map needed); paper: Algorithm 1's statistics averaged over random masks at p' = f; per batch: "
           "each test batch's own statistics (transductive, an ablation)")


def render() -> PageState:
    """Draw the sidebar and return what it chose."""
    sb = st.sidebar
    sb.header("Design point")
    point = design_point(sb)
    sb.header("Chip")
    model = sb.radio("Faults", FAULT_MODEL_NAMES, horizontal=True, key="fault_model",
                     format_func=fault_model_label, help=FAULT_HELP)
    pct = sb.number_input(f"{fault_model_label(model)} fault rate f (%)", 0.0, 50.0, 10.0, step=1.0,
                          format="%.1f", key="fault_rate",
                          help="any rate from 0 to 50%; the paper's are 10, 20 and 30%. A rate not evaluated yet "
                               "can be, from the point's Evaluate button")
    cost_model = sb.radio("Cost model", ["paper", "isaac"], horizontal=True, key="cost_model",
                          help="paper: the paper's Table II method; isaac: our crossbar-mapping model")
    sb.caption(WHY_THEY_DIFFER)
    bits, cost = hardware(sb, cost_model)
    bn = bn_protocol(sb)
    results = ResultsSpec(fault_with_bits(sb, model, bits, round(pct / 100, 6)), bn)  # 10.0 -> 0.1
    return PageState(point, results, cost, **evaluation_and_training(sb))


def bn_protocol(sb) -> BN:
    """The BN protocol the sidebar chose, parsed once: Chip(images=N) with its own count, else Paper() or Batch()."""
    bn = parse_bn(sb.radio("BatchNorm statistics", BN_CHOICES, key="bn", horizontal=True, format_func=BN_NAMES.get,
                           help=BN_HELP))
    if isinstance(bn, Chip):  # only the chip protocol asks how many images each chip calibrates on
        bn = Chip(int(sb.number_input("Calibration images per chip", 1, 50000, DEFAULT_CALIB_IMAGES,
                                      key="calib_images")))
    return bn


def design_point(sb) -> DesignPoint:
    network = sb.selectbox("Network", NETWORKS, format_func=NETWORK_NAMES.get, key="network")
    width = sb.select_slider("Width multiplier", WIDTHS, value=1.0, format_func=lambda w: f"{w:g}x",
                             key="width")
    kernels = SHORTCUT_KERNELS[network]
    sk = sb.radio("Shortcut kernel", kernels, format_func=lambda k: f"{k}x{k}", horizontal=True,
                  key="shortcut_kernel") if len(kernels) > 1 else kernels[0]
    dropconnect = sb.select_slider("Drop-connect rate p", DROPCONNECT_RATES, value=0.3, key="dropconnect")
    mapping = sb.radio("1x1 convolutions", explore.MAPPINGS, format_func=MAPPING_NAMES.get, key="mapping")
    return DesignPoint(network, float(width), int(sk), mapping, float(dropconnect))


def hardware(sb, cost_model: str) -> tuple[int, CostSpec]:
    """Bits per cell (the fault model's and isaac's), the off-crossbar processor (both cost models) and isaac's
    knobs, checked as `dse cost` checks them: (bits per cell, the CostSpec)."""
    with sb.expander("Hardware: cells, processor, ISAAC", expanded=cost_model == "isaac"):
        bits = int(st.select_slider("Bits per cell", CELL_BITS, value=WEIGHT_BITS, key="hw_bits_per_cell",
                                    help="an 8-bit weight over 8/B cells: the fault model draws each cell's fault on "
                                         "its own (SA1, SA0), and isaac counts the cells and sizes the ADCs"))
        gmacs = st.number_input("Processor GMAC/s", min_value=0.0, value=explore.DEFAULT_PROCESSOR[0], step=10.0,
                                key="hw_cpu_gmacs", help="sustained rate of the processor that runs the layers off "
                                                         "the crossbar (both cost models; `dse cost --cpu-gmacs`)")
        pj = st.number_input("Processor pJ per MAC", min_value=0.0, value=explore.DEFAULT_PROCESSOR[1], step=1.0,
                             key="hw_cpu_pj_per_mac", help="its energy per MAC, memory traffic included "
                                                           "(`dse cost --cpu-pj-per-mac`)")
        try:
            processor = explore.check_processor(gmacs, pj)
        except DSEError as e:
            st.error(f"{e}; using the default processor")
            processor = explore.DEFAULT_PROCESSOR
        values = {k: int(st.number_input(KNOB_LABELS[k], min_value=0,  # check_knobs names a bad value, in one line
                                         value=getattr(explore.DEFAULT_HARDWARE, k), step=1, key=f"hw_{k}",
                                         disabled=cost_model != "isaac",
                                         help=f"isaac only: {explore.LIMITS[k][1]} to {explore.LIMITS[k][2]}"))
                  for k in ISAAC_KNOBS}
        try:
            knobs = explore.check_knobs(bits_per_cell=bits, **values)
        except DSEError as e:
            st.error(f"{e}; using ISAAC's defaults for the others")
            knobs = explore.check_knobs(bits_per_cell=bits)
    return bits, CostSpec(cost_model, tuple(sorted(knobs.items())), processor)


def fault_with_bits(sb, model: str, bits: int, rate: float) -> FaultSpec:
    """The fault model with the bits per cell at `rate`, as `--fault-model M --bits-per-cell B` names it; a model
    that cannot take them keeps one weight per cell, and the sidebar says so."""
    try:
        name = fault_model_name(model, bits_per_cell=bits if bits != WEIGHT_BITS else None)
    except DSEError as e:
        sb.error(f"{e}; {fault_model_label(model)} keeps one 8-bit weight per cell")
        name = model
    return parse_fault_model(name, rate)


def evaluation_and_training(sb) -> dict:
    """The evaluation protocol and where training and evaluation read their data: PageState's other fields."""
    with sb.expander("Evaluation protocol"):
        instances = st.number_input("Crossbar instances", 2, 1000, 100, key="instances")
        adaptive = st.checkbox("Adaptive: stop when the 95% CI is tight", key="adaptive_on")
        target = st.number_input("CI half-width target (points)", 0.05, 5.0, 0.5, 0.05, key="adaptive",
                                 disabled=not adaptive)
        precision = st.selectbox("Precision", PRECISIONS, key="precision",
                                 help="auto: bf16 or int8 only where this machine measured them equal to fp32 "
                                      "and faster ($DSE_PRECISION overrides)")
    with sb.expander("Training and data"):
        data = st.text_input("CIFAR-10 data path", jobs.default_data(), key="data",
                             help="batches folder, image tree, or .tar.gz (default: $DSE_DATA, else ./data); "
                                  "needed to train or evaluate").strip()
        data_error = None
        if data:
            try:  # a path typed in the browser is read by a worker: only inside the configured folders
                jobs.check_data_path(data)
            except DSEError as e:
                data, data_error = "", str(e)
                st.error(data_error)
        epochs = st.number_input("Training epochs", 1, 500, 30, key="epochs")
        device = st.selectbox("Device", ["auto", "cpu", "cuda"], key="device")
    return {"instances": int(instances), "adaptive": float(target) if adaptive else None,
            "precision": None if precision == "auto" else precision, "data": data, "data_error": data_error,
            "epochs": int(epochs), "device": device}
