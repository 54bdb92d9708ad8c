"""rram-dse: the design-space explorer. `streamlit run app.py`

A thin page over the `dse` package: the sidebar returns the user's choices, cached functions read the
results store, `dse.view.charts` draws, and `dse.run.jobs` runs training and evaluation in worker processes.
The page never trains or evaluates in its own thread.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

from dse.run import jobs
from dse.view import cards, charts, explore, joblist, lesson, tables, teaching, units
from dse.view import yields
from dse.view import spatial
from dse.view.explore import DesignPoint, DSEError, calibration_cost

st.set_page_config(page_title="rram-dse: RRAM fault-tolerance explorer", layout="wide")

NETWORK_NAMES = {"resnet20": "ResNet20", "vgg13": "VGG13 (BN)", "mobilenetv2": "MobileNetV2"}
MAPPING_NAMES = {"default": "1x1 convs on the processor (paper)", "1x1-on-crossbar": "1x1 convs on the crossbar"}
RUNS_DIR = Path(os.environ.get("DSE_RUNS", "runs"))


# ----------------------------------------------------------------------------------- data access
@st.cache_resource(show_spinner="Opening the results store and reading the shipped checkpoints...")
def get_store():
    """One store handle per server process; filled from checkpoints/ on first start."""
    return explore.open_results(os.environ.get("DSE_STORE", RUNS_DIR / "results.sqlite"))


def store_version(store) -> str:
    """Changes whenever a result lands, so cached queries refresh without a restart (a tiny query)."""
    return store.version()


@st.cache_data(ttl=600, show_spinner=False)
def design_table(_store, version: str, fault_rate: float, cost_model: str, bn: str = explore.DEFAULT_BN,
                 calib_images: int = explore.DEFAULT_CALIB_IMAGES, hardware: tuple = (),
                 fault_model: str = "sa1") -> pd.DataFrame:
    """hardware: isaac knobs other than ISAAC's defaults, (name, value) pairs; their costs are computed, cached."""
    return explore.design_table(_store, fault_rate, cost_model, bn=bn, calib_images=calib_images,
                                hardware=dict(hardware), fault_model=fault_model)


# Building plotly figures is most of a page's server time, and they are only read afterwards: each is built
# once per store version and selection and shared by every session (cache_resource: no copy per session).
@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def pareto_figure(_store, version: str, fault_rate: float, cost_model: str, objective: str, selected: str,
                  recommended: str | None, bn: str, calib_images: int, hardware: tuple = (), fault_model: str = "sa1"):
    table = design_table(_store, version, fault_rate, cost_model, bn, calib_images, hardware, fault_model)
    fig = charts.pareto(table, explore.fronts(table)[objective], objective, selected=selected, recommended=recommended,
                        fault_rate=fault_rate, cost_model=cost_model, fault_model=fault_model)
    return charts.subtitle(fig, f"BN: {explore.bn_label(bn, calib_images)} · {explore.sample_label(table)} per point")


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def curve_figures(_store, version: str, point: DesignPoint, arch: str, bn: str, calib_images: int,
                  fault_model: str = "sa1") -> tuple:
    cv = explore.curves(_store, point, bn, calib_images, fault_model)
    how = f"BN: {explore.bn_label(bn, calib_images)} · {explore.sample_label(cv)} per point"
    model = explore.fault_model_label(fault_model)
    return (charts.subtitle(charts.accuracy_vs_fault_rate(cv, f"{arch}: accuracy vs {model} fault rate"), how),
            charts.subtitle(charts.dropconnect_heatmap(cv, f"{arch}: best drop-connect rate per {model} fault rate"),
                            how + " · best p marked where two or more were evaluated"), cv)


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def mapping_figure(_store, version: str, point: DesignPoint, title: str, bn: str, calib_images: int,
                   fault_model: str = "sa1"):
    ev = explore.mapping_comparison(_store, point, bn, calib_images, fault_model)
    return charts.subtitle(charts.mapping_comparison(ev, title),
                           f"BN: {explore.bn_label(bn, calib_images)} · {explore.sample_label(ev)} per point")


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def calibration_figure(_store, version: str, point: DesignPoint, fault_rate: float, title: str):
    curve = explore.calibration_curve(_store, point, fault_rate)
    fig = charts.calibration_curve(curve, title)
    if curve.empty:
        return curve, fig
    return curve, charts.subtitle(fig, f"BN: paper at N = 0, per chip above · the same {explore.sample_label(curve)}")


@st.cache_data(ttl=600, show_spinner=False)
def yield_table(_store, version: str, fault_rate: float, cost_model: str, target: float, bn: str,
                calib_images: int, hardware: tuple = (), fault_model: str = "sa1") -> pd.DataFrame:
    """The design table with each point's chip yield at `target` (dse.view.yields)."""
    table = design_table(_store, version, fault_rate, cost_model, bn, calib_images, hardware, fault_model)
    return yields.with_yields(table, _store.evaluations(), fault_rate, target, bn=bn, calib_images=calib_images,
                              fault_model=fault_model)


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def yield_figure(_store, version: str, point: DesignPoint, fault_rate: float, target: float, bn: str,
                 calib_images: int, title: str, fault_model: str = "sa1"):
    curve = yields.yield_curve(_store.evaluations(), point.point_id, fault_rate, bn=bn, calib_images=calib_images,
                               fault_model=fault_model)
    fig = charts.yield_curve(curve, title, target)
    row = yields.evaluation(_store.evaluations(), point.point_id, fault_rate, bn, calib_images, fault_model)
    sample = f" · {int(row['n'])} chips × {int(row['test_images']):,} images" if row else ""
    return curve, charts.subtitle(fig, f"BN: {explore.bn_label(bn, calib_images)}{sample}")


@st.cache_data(ttl=600, show_spinner=False)
def evaluations_csv(_store, version: str) -> bytes:
    return _store.evaluations().to_csv(index=False).encode()


@st.cache_data(show_spinner=False)
def point_cost(_store, point: DesignPoint, cost_model: str, hardware: tuple = ()) -> dict:
    """Totals from the store when known (no torch import), else computed once and stored; with isaac knobs
    other than the defaults (`hardware`), computed and cached by them."""
    return explore.point_cost(_store, point, cost_model, dict(hardware))


@st.cache_data(show_spinner=False)
def layer_shapes(network: str, width: float, shortcut_kernel: int, mapping: str) -> dict:
    return teaching.layer_shapes(network, width, shortcut_kernel, mapping)


# ----------------------------------------------------------------------------------- sidebar
def sidebar() -> dict:
    """The user's choices; only valid combinations can be picked."""
    sb = st.sidebar
    sb.header("Design point")
    network = sb.selectbox("Network", explore.NETWORKS, format_func=NETWORK_NAMES.get, key="network")
    width = sb.select_slider("Width multiplier", explore.WIDTHS, value=1.0, format_func=lambda w: f"{w:g}x",
                             key="width")
    kernels = explore.SHORTCUT_KERNELS[network]
    sk = sb.radio("Shortcut kernel", kernels, format_func=lambda k: f"{k}x{k}", horizontal=True,
                  key="shortcut_kernel") if len(kernels) > 1 else kernels[0]
    dropconnect = sb.select_slider("Drop-connect rate p", explore.DROPCONNECT_RATES, value=0.3, key="dropconnect")
    mapping = sb.radio("1x1 convolutions", explore.MAPPINGS, format_func=MAPPING_NAMES.get, key="mapping")
    sb.header("Chip")
    fault_model = sb.radio("Faults", explore.FAULT_MODELS, horizontal=True, key="fault_model",
                           format_func=explore.fault_model_label,
                           help="SA1: a stuck cell reads its weight as 0 (the paper's); SA0: as the largest level "
                                "of the weight's sign; stuck-row / stuck-column: whole word or bit lines of the "
                                "128x128 tiles stuck; clustered: stuck cells in clusters; mixed: half random SA1, "
                                "half lines (the Spatial defects tab shows each)")
    fault_pct = sb.number_input(f"{explore.fault_model_label(fault_model)} fault rate f (%)", 0.0, 50.0, 10.0, step=1.0, format="%.1f",
                                key="fault_rate", help="any rate from 0 to 50%; the paper's are 10, 20 and 30%. A "
                                                       "rate not evaluated yet can be, from the point's Evaluate button")
    fault_rate = round(fault_pct / 100, 6)  # 10.0 -> 0.1 exactly, as the store keys rates
    cost_model = sb.radio("Cost model", ["paper", "isaac"], horizontal=True, key="cost_model",
                          help="paper: the paper's Table II method; isaac: our crossbar-mapping model")
    sb.caption(WHY_THEY_DIFFER)
    hardware = hardware_knobs(sb, cost_model)
    bn = sb.radio("BatchNorm statistics", explore.BN_PROTOCOLS, key="bn", horizontal=True,
                  format_func={"chip": "per chip", "paper": "paper", "batch": "per batch"}.get,
                  help="per chip: each faulty chip re-estimates its BN statistics from unlabeled training images "
                       "at deployment (no fault map needed); paper: Algorithm 1's statistics averaged over random "
                       "masks at p' = f; per batch: each test batch's own statistics (transductive, an ablation)")
    calib_images = explore.DEFAULT_CALIB_IMAGES
    if bn == "chip":
        calib_images = int(sb.number_input("Calibration images per chip", 1, 50000, explore.DEFAULT_CALIB_IMAGES,
                                           key="calib_images"))
    with sb.expander("Evaluation protocol"):
        instances = st.number_input("Crossbar instances", 2, 1000, 100, key="instances")
        adaptive = st.checkbox("Adaptive: stop when the 95% CI is tight", key="adaptive_on")
        target = st.number_input("CI half-width target (points)", 0.05, 5.0, 0.5, 0.05, key="adaptive",
                                 disabled=not adaptive)
    with sb.expander("Training and data"):
        data = st.text_input("CIFAR-10 data path", jobs.default_data(), key="data",
                             help="batches folder, image tree, or .tar.gz (default: $DSE_DATA, else ./data); "
                                  "needed to train or evaluate")
        data, data_error = data.strip(), None
        if data:
            try:  # a path typed in the browser is read by a worker: only inside the configured folders
                jobs.check_data_path(data)
            except DSEError as e:
                data, data_error = "", str(e)
                st.error(data_error)
        epochs = st.number_input("Training epochs", 1, 500, 30, key="epochs")
        device = st.selectbox("Device", ["auto", "cpu", "cuda"], key="device")
    point = DesignPoint(network, float(width), int(sk), mapping, float(dropconnect))
    return {"point": point, "fault_rate": float(fault_rate), "fault_model": fault_model, "cost_model": cost_model,
            "bn": bn,
            "calib_images": calib_images, "instances": int(instances),
            "adaptive": float(target) if adaptive else None, "data": data, "data_error": data_error,
            "epochs": int(epochs), "device": device, "hardware": hardware}


WHY_THEY_DIFFER = ("Why they differ: paper spreads each image over all 64 chips at ISAAC's peak rate (its interval "
                   "is a throughput figure); isaac maps each layer onto crossbars, sizes the ADCs for the columns and "
                   "replicates layers onto the budget (one image's latency, and the interval between images: "
                   "compare paper's interval with that). docs/cost-model.md has both.")
KNOB_LABELS = {"xbar_size": "Crossbar size (rows = columns)", "bits_per_cell": "Bits per cell",
               "adc_bits": "ADC resolution (bits; 0: as a column needs)", "chips": "Budget (chips)"}


def hardware_knobs(sb, cost_model: str) -> tuple:
    """isaac mode's hardware: the knobs that differ from ISAAC's defaults as sorted (name, value) pairs (hashable,
    so costs are cached by them). A bad value gets one line naming it and what is allowed, and the defaults."""
    with sb.expander("ISAAC hardware (isaac cost model)", expanded=cost_model == "isaac"):
        values = {k: int(st.number_input(KNOB_LABELS[k], min_value=0,  # check_knobs names a bad value, in one line
                                         value=getattr(explore.DEFAULT_HARDWARE, k),
                                         step=1, key=f"hw_{k}", disabled=cost_model != "isaac",
                                         help=f"{explore.LIMITS[k][1]} to {explore.LIMITS[k][2]}"))
                  for k in explore.KNOBS}
        try:
            return tuple(sorted(explore.check_knobs(**values).items()))
        except DSEError as e:
            st.error(f"{e}; using ISAAC's defaults")
            return ()


# ----------------------------------------------------------------------------------- sections
def fmt_cost(value: float, unit: str) -> str:
    """A cost in the unit that fits it (unit: "ns", "uJ" or a column name such as latency_ns)."""
    return units.fmt(value, unit)


def selected_point(store, ui: dict, table: pd.DataFrame) -> explore.PointStatus:
    p, f = ui["point"], ui["fault_rate"]
    s = explore.status(table, p)
    title = explore.label(asdict(p))
    st.subheader(f"{title} on a chip with {charts.pct(f)} {explore.fault_model_label(ui['fault_model'])} faults")
    isaac = point_cost(store, p, "isaac", ui["hardware"])
    cost = isaac if ui["cost_model"] == "isaac" else point_cost(store, p, ui["cost_model"])
    if s.error:
        st.error(f"This design point's checkpoint cannot be used: {s.error}")
    r = s.row or {}
    if s.evaluated and explore.at_chance(r["accuracy"]):  # a result worth saying plainly, not an error
        st.warning(f"At {charts.pct(f)} faults this design point is at chance level ({r['accuracy']:.2f}%; guessing "
                   f"scores {explore.CHANCE_ACCURACY:g}%): the network has collapsed under these faults.")
    c = st.columns(4)  # accuracy here, cost below: six to a row would cut values short
    how = explore.bn_label(ui["bn"], ui["calib_images"])
    if s.evaluated:
        c[0].metric("Accuracy under faults", f"{r['accuracy']:.2f}%", help=f"mean over crossbar instances; BN: {how}")
        c[0].caption((f"95% CI ±{r['ci95']:.2f} · n={int(r['n'])}" if r["n"] > 1 else "one network (no faults)")
                     + f" · BN: {how}")
        c[1].metric("Worst crossbar", f"{r['worst']:.2f}%", help=f"BN: {how}")
        c[3].metric("Loss vs own fault-free", f"{r['loss_own']:.2f} pts",
                    help="against this design point's own fault-free accuracy (the paper's 'degradation')")
        c[3].caption("Loss vs p=0 model: " + (f"{r['loss_p0']:.2f} pts" if pd.notna(r.get("loss_p0")) else
                                              "— (no p=0 model of this architecture)"))
    else:
        c[0].metric("Accuracy under faults", "—")
        c[0].caption(f"BN: {how}")
        c[1].metric("Worst crossbar", "—")
        c[3].metric("Loss vs own fault-free", "—")
    c[2].metric("Fault-free accuracy", f"{r['fault_free_accuracy']:.2f}%"
                if s.trained and pd.notna(r.get("fault_free_accuracy")) else "—")
    cost_details(store, ui, cost, isaac)
    busy = explore.active_jobs(store, p)
    state = "a job is working on it (live below)" if not busy.empty else s.label
    x = dict(ui["hardware"]).get("xbar_size", explore.DEFAULT_HARDWARE.xbar_size)
    st.caption(f"Status: **{state}** · {isaac['crossbars_one_copy']} crossbars of {x}x{x} hold its weights once "
               f"(on {isaac['chips']} chip(s)) · costs per 32x32 image")
    if ui["bn"] == "chip":
        cal = calibration_cost(cost, ui["calib_images"])
        st.caption(f"Per-chip BN calibration ({ui['cost_model']} cost model): {ui['calib_images']} forward passes once "
                   f"per chip at deployment, {fmt_cost(cal['calib_latency_ns'], 'ns')} and "
                   f"{fmt_cost(cal['calib_energy_uj'], 'uJ')}")
    return s


def cost_details(store, ui: dict, cost: dict, isaac: dict) -> None:
    """The cost cards in labelled groups (dse.view.cards): per image, the system the cost model counts, and the
    design's own footprint; then the figures to compare across the two models."""
    m = ui["cost_model"]
    x = dict(ui["hardware"]).get("xbar_size", explore.DEFAULT_HARDWARE.xbar_size)
    for title, group in cards.groups(cost, isaac, m, x):
        st.markdown(f"**{title}**")
        for col, (label, value, why) in zip(st.columns(5), group):
            col.metric(label, value, help=why)
    paper = cost if m == "paper" else point_cost(store, ui["point"], "paper")
    st.caption(f"Like with like: paper's interval {fmt_cost(paper['interval_ns'], 'ns')} is a time per image at the "
               f"64-chip peak rate (Table II's mapping-blind cell, a MAC = 1 op: "
               f"{fmt_cost(paper['table_ii_latency_ns'], 'ns')}); isaac's interval is "
               f"{fmt_cost(isaac['interval_ns'], 'ns')}; one image alone takes {fmt_cost(isaac['latency_ns'], 'ns')} "
               "(isaac latency).")
    if not isaac.get("fits", True):
        st.warning(f"This design does not fit the budget ({isaac['chips_available']} chip(s)): one copy of its weights "
                   f"needs {isaac['chips']}. In isaac mode it is left out of the Pareto fronts and the recommendation.")


def breakdown_section(store, ui: dict, table: pd.DataFrame) -> None:
    """Energy and area by component for the selected point and its neighbouring widths, as stacked bars."""
    p, m = ui["point"], ui["cost_model"]
    costs, hardware = {}, ui["hardware"] if m == "isaac" else ()
    for q in explore.neighbours(table, p):
        selected = abs(q.width - p.width) < 1e-6
        # neighbours from the store only (no torch on a first render), unless knobs make costs computed anyway
        t = point_cost(store, q, m, hardware) if selected or hardware else explore.stored_cost(store, q, m)
        if t is not None:
            costs[f"{q.width:g}x" + (" (selected)" if selected else "")] = t
    cols = st.columns(2)
    for col, what in zip(cols, ("energy", "area")):
        rows = explore.breakdown_rows(costs, what)
        title = f"{explore.label(asdict(p)).split(' w=')[0]}: {what} by component ({m} cost model)"
        col.plotly_chart(charts.breakdown(rows, what, title), key=f"breakdown-{what}")


def actions(store, ui: dict, s: explore.PointStatus) -> None:
    """Train / Evaluate buttons for what is missing; the work runs in a worker process."""
    p, f = ui["point"], ui["fault_rate"]
    busy = explore.active_jobs(store, p)
    if not busy.empty:  # one job at a time per point: its progress here, Cancel in the Jobs tab
        point_job(store, busy.iloc[0].job_id)
        return
    if s.evaluated and not s.error:
        return
    if ui["data_error"]:
        st.error(ui["data_error"])
        return
    if not ui["data"]:
        st.info("To train or evaluate this point, give a CIFAR-10 data path under *Training and data*.")
        return
    if not s.trained or s.error:
        label = f"Train this design point ({ui['epochs']} epochs)"
        if st.button(label, type="primary", key="train"):
            cfg = jobs.train_config(p, epochs=ui["epochs"], data=ui["data"], out_dir=str(RUNS_DIR / "checkpoints"),
                                    device=ui["device"])
            jid, new = jobs.submit(store, "train", p, cfg)
            st.toast("Training started" if new else "Already training: showing the running job")
            st.rerun()  # the point's status and progress from now on
    else:
        label = f"Evaluate at {charts.pct(f)} {explore.fault_model_label(ui['fault_model'])} faults ({ui['instances']} crossbars, BN {ui['bn']})"
        if st.button(label, type="primary", key="evaluate"):
            cfg = jobs.evaluate_config(s.checkpoint, [f], data=ui["data"], instances=ui["instances"],
                                       adaptive=ui["adaptive"], device=ui["device"], bn=ui["bn"],
                                       calib_images=ui["calib_images"], fault_model=ui["fault_model"])
            jid, new = jobs.submit(store, "evaluate", p, cfg)
            st.toast("Evaluation started" if new else "Already evaluating: showing the running job")
            st.rerun()


@st.fragment(run_every=2)
def point_job(store, jid: str) -> None:
    """The selected point's running job, live; when it ends the page reruns to show the point's new state."""
    job = store.job(jid)
    if job is None or job["state"] not in ("queued", "running"):
        st.rerun(scope="app")
    st.progress(float(job["progress"] or 0), text=f"**{joblist.job_title(job)}** · {joblist.job_status(job)} "
                                                  "(Cancel in the Jobs tab)")


@st.fragment(run_every=2)
def job_panel(store) -> None:
    """Live view of background jobs; when one finishes, the whole page reruns to show its results."""
    df = store.jobs()
    active = df[df.state.isin(["queued", "running"])]
    seen = st.session_state.setdefault("active_jobs", set())
    finished = seen - set(active.job_id)
    st.session_state.active_jobs = set(active.job_id)
    if finished:
        st.rerun(scope="app")
    if df.empty:
        st.caption("No jobs yet. Train or evaluate a missing design point to start one.")
        return
    for r in df.head(12).itertuples():
        cols = st.columns([3, 4, 1])
        cols[0].markdown(f"**{joblist.job_title(r)}**  \n`{r.state}` · {r.source}")
        if r.state in ("queued", "running"):
            cols[1].progress(float(r.progress or 0), text=joblist.job_status(r))
            if cols[2].button("Cancel", key=f"cancel-{r.job_id}"):
                jobs.cancel(store, r.job_id)
                st.rerun()  # the whole page: the point's status changes too
        elif r.state in ("failed", "cancelled"):
            (cols[1].error if r.state == "failed" else cols[1].caption)(r.error or r.message or r.state)
            if cols[2].button("Retry", key=f"retry-{r.job_id}"):
                jobs.retry(store, r.job_id)
                st.rerun()  # the whole page: the point's status changes too
        else:
            cols[1].caption(r.message or r.state)


def pareto_section(store, ui: dict, table: pd.DataFrame, version: str) -> None:
    f = ui["fault_rate"]
    c1, c2 = st.columns([1, 3])
    context = (f, ui["bn"], ui["calib_images"])  # a target set for other numbers starts over from their median
    if st.session_state.get("target_context") != context:
        st.session_state.target_context = context
        st.session_state.target = explore.default_target(table, st.session_state.get("target", 85.0))
    target = c1.number_input(f"Accuracy target at {charts.pct(f)} faults (%)", 0.0, 100.0, step=0.5, key="target")
    objective = c1.radio("Front and cheapest by", list(explore.OBJECTIVES), key="objective",
                         format_func=lambda o: charts.AXIS[o])
    rec = explore.recommend(table, target, objective)
    with c1:
        if rec:
            st.success(f"**{rec['label']}**: {rec['accuracy']:.2f}% at {charts.pct(f)} faults, "
                       f"{units.fmt_like(rec[objective], table[objective].dropna(), objective)} "
                       f"({charts.SHORT.get(objective, objective)}, in the chart's unit)")
        else:
            st.warning(f"No evaluated design reaches {target:.1f}% at {charts.pct(f)} faults.")
        unfit = int((table.fits == False).sum()) if ui["cost_model"] == "isaac" and "fits" in table else 0
        if unfit:
            st.caption(f"{unfit} design point(s) do not fit on the chips given and are left out.")
    with c2:
        for obj in dict.fromkeys((objective, "energy_uj" if objective != "energy_uj" else "interval_ns")):
            fig = pareto_figure(store, version, f, ui["cost_model"], obj, ui["point"].point_id,
                                rec["point_id"] if rec else None, ui["bn"], ui["calib_images"], ui["hardware"],
                                ui["fault_model"])
            st.plotly_chart(fig, key=f"pareto-{obj}")
            st.download_button("Download this chart (HTML)", data=lambda fig=fig: fig.to_html(include_plotlyjs=True),
                               file_name=f"pareto-{obj}-f{f:g}.html", mime="text/html", on_click="ignore",
                               key=f"dl-{obj}")


def teaching_section(store, ui: dict, s: explore.PointStatus) -> None:
    """One chip's stuck cells on one layer under the sidebar's fault model and rate, then per-layer sensitivity."""
    p, f, model = ui["point"], ui["fault_rate"], ui["fault_model"]
    st.caption(f"Fault model and rate from the sidebar: {explore.fault_model_label(model)} at {charts.pct(f)}. "
               "For a class, `?lesson=1` walks through four pictures without any controls.")
    if not st.toggle("Show one chip's fault map and the per-layer sensitivity", key="teach"):
        st.caption("A picture of stuck cells on one crossbar layer, and which layers they hurt most.")
        return
    shapes = layer_shapes(p.network, p.width, p.shortcut_kernel, p.mapping)
    c1, c2 = st.columns([1, 2])
    layer = c1.selectbox("Crossbar layer", list(shapes), key="teach_layer")
    instance = c1.number_input("Chip (crossbar instance)", 0, 999, 0, key="teach_instance")
    if teaching.base_model(model) in teaching.PER_WEIGHT:
        fmap = teaching.fault_map(shapes, layer, int(instance), f)
    else:  # lines and clusters live on the physical tiles
        fmap = spatial_tile(p.network, p.width, p.shortcut_kernel, p.mapping, layer, model, f, int(instance))["stuck"]
    c1.markdown(f"Layer `{layer}`: weights {shapes[layer]}; the map shows {fmap.shape[0]}x{fmap.shape[1]} cells, "
                f"**{fmap.sum()}** stuck ({fmap.mean():.1%}). {teaching.stuck_reads(model)} "
                "Every chip draws a new map; drop-connect training makes the network indifferent to which.")
    if f == 0:
        c1.info("No faults at f = 0%: choose a fault rate in the sidebar to see stuck cells.")
    c2.plotly_chart(charts.fault_map(fmap, teaching.map_title(model, layer, shapes[layer], fmap, f)), key="faultmap")

    st.markdown("**Per-layer fault sensitivity**: accuracy drop when only one layer has faults.")
    if not s.trained:
        st.caption("Train this design point first.")
        return
    if not ui["data"]:
        st.caption("Give a CIFAR-10 data path under *Training and data* to run it.")
        return
    rate = max(f, 0.01)
    cfg = jobs.sensitivity_config(s.checkpoint, rate, data=ui["data"], device=ui["device"])
    job = store.job(store_job_id("sensitivity", cfg))
    if job and job["state"] == "done" and job["result"]:
        st.plotly_chart(charts.sensitivity(pd.DataFrame(json.loads(job["result"])),
                                           f"fault rate {charts.pct(rate)}, 3 crossbars, 2,000 test images"), key="sens")
    elif st.button("Run sensitivity analysis (background job)", key="sens_run"):
        jobs.submit(store, "sensitivity", p, cfg)
        st.toast("Sensitivity analysis started; see Jobs")


@st.cache_data(show_spinner=False)
def spatial_tile(network: str, width: float, shortcut_kernel: int, mapping: str, layer: str, fault_model: str,
                 rate: float, instance: int) -> dict:
    return spatial.tile_maps(network, width, shortcut_kernel, mapping, layer, fault_model=fault_model, rate=rate,
                             instance=instance)


def spatial_section(store, ui: dict, s: explore.PointStatus) -> None:
    """For a teacher: one tile's defects under the sidebar's fault model and rate, blind and remapped, and an
    evaluation of the point under it; then the shipped report's accuracy and a lifetime curve (spatial_results)."""
    p, model, rate = ui["point"], ui["fault_model"], ui["fault_rate"]
    st.caption(f"Fault model, rate and BN protocol come from the sidebar: {explore.fault_model_label(model)} at "
               f"{charts.pct(rate)}, BN: {explore.bn_label(ui['bn'], ui['calib_images'])}.")
    if not st.toggle("Show one chip's defects, remapping and lifetime", key="sp_show"):
        st.caption("Lines and clusters of stuck cells, a chip's known map remapped, and accuracy over a chip's life.")
        return  # the tile maps need torch: not on the page's first render
    shapes = layer_shapes(p.network, p.width, p.shortcut_kernel, p.mapping)
    c1, c2, c3 = st.columns([1, 1, 1])
    param = None
    if model in spatial.FAULT_PARAMS:
        what, default, lo, hi = spatial.FAULT_PARAMS[model]
        param = c1.slider(what, lo, min(hi, 16.0), default, key="sp_param")
    remap = c2.toggle("Remap to the chip's known map", key="sp_remap")
    spares = c2.number_input("Spare columns per tile", 0, spatial.MAX_SPARES, 0, key="sp_spares", disabled=not remap)
    layer = c3.selectbox("Crossbar layer", list(shapes), key="sp_layer")
    instance = c3.number_input("Chip (crossbar instance)", 0, 999, 0, key="sp_instance")
    name = spatial.fault_model_name(model, param, remap, int(spares) if remap else 0)
    maps = spatial_tile(p.network, p.width, p.shortcut_kernel, p.mapping, layer, name, rate, int(instance))
    m1, m2 = st.columns(2)
    m1.plotly_chart(charts.fault_map(maps["stuck"], f"{explore.fault_model_label(name)}: one tile of {layer}, "
                                                    f"chip {int(instance)}, at "
                                                    f"{charts.pct(rate)} (physical)"), key="sp_map")
    if remap:
        m2.plotly_chart(charts.fault_map(maps["stuck_remapped"], "as the remapped weights see them"), key="sp_remapped")
    occ = maps["occupied"]
    st.caption(f"Cells holding a weight: {occ.sum():,} of {occ.size:,}; stuck among them as placed: "
               f"{(maps['stuck'][:, :occ.shape[1]] & occ).sum():,}. {teaching.stuck_reads(model)} The remapping "
               "moves the least important weights (of a freshly initialised model here) onto stuck cells.")
    if s.trained and ui["data"] and not ui["data_error"] and st.button(
            f"Evaluate this design point under {name} at {charts.pct(rate)} ({ui['instances']} chips, BN {ui['bn']}; "
            "background job)", key="sp_eval"):
        cfg = jobs.evaluate_config(s.checkpoint, [rate], data=ui["data"], instances=ui["instances"],
                                   adaptive=ui["adaptive"], device=ui["device"], bn=ui["bn"],
                                   calib_images=ui["calib_images"], fault_model=name)
        st.toast("Evaluation started; see Jobs" if jobs.submit(store, "evaluate", p, cfg)[1] else "Already evaluated")
    stored = explore.curves(store, p, ui["bn"], ui["calib_images"], name)
    if not stored.empty:
        st.plotly_chart(charts.subtitle(charts.accuracy_vs_fault_rate(stored, f"Evaluated in the store: accuracy "
                                                                              f"under {name}"),
                                        f"BN: {explore.bn_label(ui['bn'], ui['calib_images'])} · "
                                        f"{explore.sample_label(stored)} per point"), key="sp_stored")
    spatial_results(p, model, ui)


def spatial_results(p: DesignPoint, model: str, ui: dict) -> None:
    """The spatial-defects report's accuracy for the point under `model`, and its lifetime curve."""
    report = spatial.load_report()
    point = explore.label(asdict(p))
    rows = spatial.report_rows(report)
    if rows.empty or point not in set(rows.point) or model not in set(rows[rows.point == point].fault_model):
        st.info(f"No spatial-defects results for {point} under {explore.fault_model_label(model)}; "
                "`python -m dse spatial-report CKPT --data PATH` makes them.")
        return
    st.plotly_chart(charts.subtitle(spatial.accuracy_figure(report, point, [model]), spatial.sample_label(report)),
                    key="sp_accuracy")
    note = spatial.protocol_note(report, ui["bn"], ui["calib_images"])
    if note:
        st.caption(note)
    st.markdown("**Lifetime** (accuracy interpolated between the evaluated rates; `python -m dse lifetime` "
                "evaluates each month)")
    l1, l2, l3 = st.columns([2, 1, 1])
    text = l1.text_input("Fault-rate trajectory f(t)", "weibull:fmax=0.3,eta=60,beta=2", key="sp_traj")
    target = l2.number_input("Accuracy target (%)", 0.0, 100.0, 75.0, key="sp_target")
    layout = l3.radio("Layout", sorted(set(rows[rows.point == point].layout)), key="sp_layout")
    trajectory = spatial.parse_trajectory(text)  # a bad one is a DSEError: one line on the page
    months = list(range(0, 121, 6))
    curve = spatial.lifetime_curve(report, point, model, layout, trajectory, months)
    when = spatial.months_until(list(curve.month), list(curve["mean"]), target)
    st.plotly_chart(spatial.lifetime_figure(curve, target, f"{point}, {model}, {layout}: "
                                            + (f"below {target:g}% after {when:.0f} months" if when is not None
                                               else f"above {target:g}% for {months[-1]} months")),
                    key="sp_lifetime")
    if curve.extrapolated.any():
        st.caption("Beyond the largest evaluated rate the curve holds its last value: evaluate higher rates to see "
                   "further.")


def calibration_section(store, ui: dict, version: str, arch: str) -> None:
    """How many unlabeled images a chip needs to re-estimate its BN statistics (dse calib-curve)."""
    p, f = ui["point"], ui["fault_rate"]
    curve, fig = calibration_figure(store, version, p, f, f"{arch}, p={p.dropconnect:g} at {charts.pct(f)} SA1 faults: "
                                                          "accuracy vs calibration images per chip")
    if curve.empty or (curve.calib_images > 0).sum() == 0:
        st.info(f"No per-chip calibration sweep for this design point at {charts.pct(f)} yet. Run it with "
                f"`python -m dse calib-curve CKPT --fault-rate {f:g} --images 32,100,500,2000`; N = 0 is the "
                "paper's protocol.")
        return
    st.plotly_chart(fig, key="calib-curve")
    st.caption(f"The same {int(curve.n.min())} crossbars for every N; N = 0 is the paper's Algorithm 1 statistics. "
               "Each chip runs N unlabeled training images through itself once, at deployment, with its weights "
               "frozen; only BN statistics (in the digital periphery) change.")
    st.dataframe(tables.calibration(curve), hide_index=True)


def yield_section(store, ui: dict, table: pd.DataFrame, version: str, arch: str,
                  s: explore.PointStatus) -> None:
    """Chip yield: the share of simulated chips (crossbar instances) whose accuracy reaches a target, with its
    exact 95% interval; and the cheapest design whose yield reaches a minimum by the interval's LOW end."""
    p, f, bn, n_cal = ui["point"], ui["fault_rate"], ui["bn"], ui["calib_images"]
    how = explore.bn_label(bn, n_cal)
    if st.session_state.get("yield_context") != (f, bn, n_cal):  # new numbers: start from their median
        st.session_state.yield_context = (f, bn, n_cal)
        st.session_state.yield_target = explore.default_target(table, st.session_state.get("yield_target", 85.0))
    c1, c2 = st.columns([1, 3])
    target = float(c1.number_input(f"Accuracy target at {charts.pct(f)} faults (%)", 0.0, 100.0, step=0.5,
                                   key="yield_target"))
    ytable = yield_table(store, version, f, ui["cost_model"], target, bn, n_cal, ui["hardware"], ui["fault_model"])
    mine = ytable[ytable.point_id == p.point_id] if "point_id" in ytable else ytable.iloc[0:0]
    if mine.empty or pd.isna(mine["yield"].iloc[0]):
        c1.metric("Chip yield", "—", help=f"BN: {how}")
        c1.caption(f"Not evaluated at {charts.pct(f)} faults under BN: {how}.")
    else:
        r = mine.iloc[0]
        c1.metric("Chip yield", f"{r['yield']:.1%}", help=f"share of chips with accuracy >= {target:g}%; BN: {how}")
        c1.caption(f"{int(r['chips_meeting'])} of {int(r['chips'])} chips >= {target:g}% · 95% Clopper-Pearson "
                   f"[{r['yield_low']:.1%}, {r['yield_high']:.1%}] · BN: {how}")
    _, fig = yield_figure(store, version, p, f, target, bn, n_cal, f"{arch}, p={p.dropconnect:g} at {charts.pct(f)} "
                          f"{explore.fault_model_label(ui['fault_model'])} faults: chip yield vs accuracy target", ui["fault_model"])
    c2.plotly_chart(fig, key="yield-curve")
    min_yield = yield_recommendation(c1, ytable, target, f, how)
    with c2:
        more_chips(store, ui, s, 0 if mine.empty or pd.isna(mine["chips"].iloc[0]) else int(mine["chips"].iloc[0]),
                   min_yield)


def yield_recommendation(col, ytable: pd.DataFrame, target: float, f: float, how: str) -> float:
    """The cheapest design whose yield at `target` is at least Y%, judged by the interval's lower bound; the
    first minimum is one the evaluated chips can prove (yields.default_min_yield), and the page says how many
    chips a claim needs."""
    context = (f, how, yields.most_chips(ytable))
    if st.session_state.get("yield_min_context") != context:
        st.session_state.yield_min_context = context
        st.session_state.yield_min = 100 * yields.default_min_yield(ytable)
    min_yield = col.number_input("Minimum yield (%)", 0.0, 100.0, step=1.0, key="yield_min")
    objective = col.radio("Cheapest by", list(explore.OBJECTIVES), key="yield_objective",
                          format_func=lambda o: charts.AXIS[o].split(" per")[0])
    col.info(yields.sample_note(ytable, min_yield / 100))
    rec = yields.recommend(ytable, min_yield / 100, objective)
    if rec:
        col.success(f"**{rec['label']}**: yield >= {rec['yield_low']:.1%} (lower 95% bound; estimate "
                    f"{rec['yield']:.1%}, {int(rec['chips_meeting'])} of {int(rec['chips'])} chips) at target "
                    f"{target:g}% at {charts.pct(f)} faults, "
                    f"{units.fmt_like(rec[objective], ytable[objective].dropna(), objective)}"
                    f" · BN: {how}")
    else:
        col.warning(f"No evaluated design's yield at {target:g}% reaches {min_yield:g}% by the lower end of its 95% "
                    f"interval at {charts.pct(f)} faults · BN: {how}")
    col.caption("A design qualifies when the LOW end of its 95% Clopper-Pearson interval reaches the minimum "
                "yield (conservative: few chips cannot prove a high yield). Each crossbar instance is one chip.")
    return min_yield / 100


def more_chips(store, ui: dict, s: explore.PointStatus, chips: int, min_yield: float) -> None:
    """One click to evaluate the selected point on as many chips as `min_yield` needs (a background job)."""
    if min_yield >= 1.0:
        return  # no number of chips proves 100% (sample_note says so)
    need = yields.chips_needed(min_yield)
    if chips >= need:
        return
    what = f"{need} chips ({need - chips} more than the {chips} evaluated)" if chips else f"{need} chips"
    if not s.trained or s.error:
        st.caption(f"Train this design point to evaluate it on {what}.")
    elif not ui["data"] or ui["data_error"]:
        st.caption(f"To evaluate it on {what}, give a CIFAR-10 data path under *Training and data*, or run "
                   f"`{yields.more_chips_command(s.checkpoint, ui, need)}`.")
    elif st.button(f"Evaluate this point on {what} (background job)", key="yield_more"):
        cfg = jobs.evaluate_config(s.checkpoint, [ui["fault_rate"]], data=ui["data"], instances=need,
                                   device=ui["device"], bn=ui["bn"], calib_images=ui["calib_images"],
                                   fault_model=ui["fault_model"])
        st.toast("Evaluation started; see Jobs" if jobs.submit(store, "evaluate", ui["point"], cfg)[1]
                 else "Already evaluated or running")


def fault_tolerance_section(store, ui: dict, version: str, arch: str, s: explore.PointStatus) -> None:
    """Accuracy against fault rate per drop-connect rate, and the best rate per fault rate (Figs. 3-6)."""
    p = ui["point"]
    accuracy, heatmap, cv = curve_figures(store, version, p, arch, ui["bn"], ui["calib_images"], ui["fault_model"])
    c1, c2 = st.columns(2)
    c1.plotly_chart(accuracy, key="curves")
    c2.plotly_chart(heatmap, key="heatmap")
    note = explore.fault_free_note(cv, p, (s.row or {}).get("fault_free_accuracy"), ui["bn"])
    if note:
        st.caption(note)


def results_section(store, ui: dict, table: pd.DataFrame, version: str) -> None:
    """The design table for people (dse.view.tables); the CSV keeps every column by its store name."""
    shown = explore.results_view(table)
    readable = tables.readable(table)
    st.dataframe(readable, hide_index=True, key="results",
                 column_config={c: st.column_config.Column(help=tables.help_for(c)) for c in readable})
    st.caption(f"At {charts.pct(ui['fault_rate'])} {explore.fault_model_label(ui['fault_model'])} faults; "
               f"BN: {explore.bn_label(ui['bn'], ui['calib_images'])}; costs per image ({ui['cost_model']} "
               "cost model); accuracies rounded to what their 95% CIs support; — where there is no value.")
    c1, c2 = st.columns(2)
    c1.download_button("Download design points (CSV)", shown.to_csv(index=False).encode(),
                       file_name=f"design-points-f{ui['fault_rate']:g}.csv", mime="text/csv", key="dl_points")
    c2.download_button("Download all evaluations (CSV)", evaluations_csv(store, version),
                       file_name="evaluations.csv", mime="text/csv", key="dl_evals")


def store_job_id(kind: str, cfg: dict) -> str:
    return jobs.job_id_of(kind, cfg)


LESSON_CSS = "<style>.stMarkdown p {font-size: 1.6rem; line-height: 1.4} h1 {font-size: 3rem} h2 {font-size: 2.3rem}</style>"


def lesson_page(store) -> None:
    """`?lesson=1` (and `&faults=sa0`): four steps on ResNet20 1x, each a picture and one sentence, large, from
    the shipped results only; the paper's protocol first, per-chip calibration as the last step."""
    model = lesson.lesson_fault_model(st.query_params.get("faults"))
    st.markdown(LESSON_CSS, unsafe_allow_html=True)
    st.title("Why drop-connect helps a chip with stuck cells")
    st.markdown("Four steps on one network (ResNet20), from the results shipped with the explorer. "
                "[Open the full explorer](./)")
    shapes = layer_shapes(lesson.PLAIN.network, lesson.PLAIN.width, lesson.PLAIN.shortcut_kernel, lesson.PLAIN.mapping)
    for i, step in enumerate([lesson.tile_step(shapes, model, 0.1), *lesson.curve_steps(store)]):
        st.header(step.title)
        st.plotly_chart(step.figure, key=f"lesson-{i + 1}", theme=None)  # the lesson's own large fonts
        st.markdown(step.sentence)


def main() -> None:
    t0 = time.perf_counter()
    store, report = get_store()
    if st.query_params.get("lesson") == "1":
        lesson_page(store)
        return
    ui = sidebar()
    version = store_version(store)
    table = design_table(store, version, ui["fault_rate"], ui["cost_model"], ui["bn"], ui["calib_images"],
                         ui["hardware"], ui["fault_model"])

    st.title("RRAM fault-tolerance design-space explorer")
    st.caption("Drop-connect training against stuck-at crossbar faults (Xiang et al.): accuracy over many "
               "simulated chips against ISAAC latency and energy.")
    for problem in report["problems"]:
        st.warning(problem)
    s = selected_point(store, ui, table)
    actions(store, ui, s)

    tabs = st.tabs(["Pareto & recommendation", "Fault tolerance", "1x1 mapping (Fig. 7)", "Calibration images",
                    "Teaching", "Jobs", "Results table", "Yield", "Spatial defects"])
    with tabs[0]:
        pareto_section(store, ui, table, version)
        breakdown_section(store, ui, table)
    p = ui["point"]
    arch = f"{NETWORK_NAMES[p.network]} {p.width:g}x" + (f", {p.shortcut_kernel}x{p.shortcut_kernel} shortcuts"
                                                         if p.network == "resnet20" else "")
    with tabs[1]:
        fault_tolerance_section(store, ui, version, arch, s)
    with tabs[2]:
        st.plotly_chart(mapping_figure(store, version, p, f"{arch}, p={p.dropconnect:g}: 1x1 layers on the "
                                                          "processor vs on the crossbar", ui["bn"],
                                     ui["calib_images"], ui["fault_model"]), key="fig7")
    with tabs[3]:
        calibration_section(store, ui, version, arch)
    with tabs[4]:
        teaching_section(store, ui, s)
    with tabs[5]:
        job_panel(store)
    with tabs[6]:
        results_section(store, ui, table, version)
    with tabs[7]:
        yield_section(store, ui, table, version, arch, s)
    with tabs[8]:
        spatial_section(store, ui, s)
    st.caption(f"Rendered in {time.perf_counter() - t0:.2f} s from {store.path}")


try:
    main()
except DSEError as e:
    st.error(str(e))
