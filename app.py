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
from dse.view import charts, explore, teaching
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
def design_table(_store, version: str, fault_rate: float, cost_model: str, bn: str = "chip",
                 calib_images: int = explore.DEFAULT_CALIB_IMAGES) -> pd.DataFrame:
    return explore.design_table(_store, fault_rate, cost_model, bn, calib_images)


# Building plotly figures is most of a page's server time, and they are only read afterwards: each is built
# once per store version and selection and shared by every session (cache_resource: no copy per session).
@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def pareto_figure(_store, version: str, fault_rate: float, cost_model: str, objective: str, selected: str,
                  recommended: str | None, bn: str, calib_images: int):
    table = design_table(_store, version, fault_rate, cost_model, bn, calib_images)
    fig = charts.pareto(table, explore.fronts(table)[objective], objective, selected, recommended, fault_rate)
    return charts.subtitle(fig, f"BN: {explore.bn_label(bn, calib_images)}")


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def curve_figures(_store, version: str, point: DesignPoint, arch: str, bn: str, calib_images: int) -> tuple:
    cv = explore.curves(_store, point, bn, calib_images)
    how = f" (BN: {explore.bn_label(bn, calib_images)})"
    return (charts.accuracy_vs_fault_rate(cv, f"{arch}: accuracy vs fault rate{how}"),
            charts.dropconnect_heatmap(cv, f"{arch}: best drop-connect rate per fault rate{how}"))


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def mapping_figure(_store, version: str, point: DesignPoint, title: str, bn: str, calib_images: int):
    return charts.mapping_comparison(explore.mapping_comparison(_store, point, bn, calib_images),
                                     f"{title} (BN: {explore.bn_label(bn, calib_images)})")


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def calibration_figure(_store, version: str, point: DesignPoint, fault_rate: float, title: str):
    curve = explore.calibration_curve(_store, point, fault_rate)
    return curve, charts.calibration_curve(curve, title)


@st.cache_data(ttl=600, show_spinner=False)
def evaluations_csv(_store, version: str) -> bytes:
    return _store.evaluations().to_csv(index=False).encode()


@st.cache_data(show_spinner=False)
def point_cost(_store, point: DesignPoint, cost_model: str) -> dict:
    """Totals from the store when known (no torch import), else computed once and stored."""
    return explore.point_cost(_store, point, cost_model)


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
    fault_rate = sb.select_slider("SA1 fault rate f", explore.FAULT_RATES, value=0.1,
                                  format_func=lambda f: f"{f:.0%}", key="fault_rate")
    cost_model = sb.radio("Cost model", ["paper", "isaac"], horizontal=True, key="cost_model",
                          help="paper: the paper's Table II method; isaac: our crossbar-mapping model")
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
        data = st.text_input("CIFAR-10 data path", os.environ.get("DSE_DATA", ""), key="data",
                             help="batches folder, image tree, or .tar.gz; needed to train or evaluate")
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
    return {"point": point, "fault_rate": float(fault_rate), "cost_model": cost_model, "bn": bn,
            "calib_images": calib_images, "instances": int(instances),
            "adaptive": float(target) if adaptive else None, "data": data, "data_error": data_error,
            "epochs": int(epochs), "device": device}


# ----------------------------------------------------------------------------------- sections
def fmt_cost(value: float, unit: str) -> str:
    return f"{value:,.2f} {unit}" if value < 1e5 else f"{value / 1e6:,.3f} m{unit[1:] if unit == 'ns' else unit}"


def selected_point(store, ui: dict, table: pd.DataFrame) -> explore.PointStatus:
    p, f = ui["point"], ui["fault_rate"]
    s = explore.status(table, p)
    title = explore.label(asdict(p))
    st.subheader(f"{title} on a chip with {f:.0%} SA1 faults")
    cost = point_cost(store, p, ui["cost_model"])
    isaac = point_cost(store, p, "isaac")
    if s.error:
        st.error(f"This design point's checkpoint cannot be used: {s.error}")
    r = s.row or {}
    if s.evaluated and explore.at_chance(r["accuracy"]):  # a result worth saying plainly, not an error
        st.warning(f"At {f:.0%} faults this design point is at chance level ({r['accuracy']:.2f}%; guessing "
                   f"scores {explore.CHANCE_ACCURACY:g}%): the network has collapsed under these faults.")
    c = st.columns(6)
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
    c[4].metric(f"Latency ({ui['cost_model']})", fmt_cost(cost["latency_ns"], "ns"))
    c[5].metric(f"Energy ({ui['cost_model']})", f"{cost['energy_uj']:,.2f} uJ")
    st.caption(f"Status: **{s.label}** · {isaac['crossbars']} crossbars of 128x128 on {isaac['chips']} chip(s), "
               f"{isaac['tiles']} tiles · per 32x32 image")
    if ui["bn"] == "chip":
        cal = calibration_cost(cost, ui["calib_images"])
        st.caption(f"Per-chip BN calibration ({ui['cost_model']} cost model): {ui['calib_images']} forward passes once "
                   f"per chip at deployment, {fmt_cost(cal['calib_latency_ns'], 'ns')} and "
                   f"{cal['calib_energy_uj']:,.2f} uJ")
    return s


def actions(store, ui: dict, s: explore.PointStatus) -> None:
    """Train / Evaluate buttons for what is missing; the work runs in a worker process."""
    p, f = ui["point"], ui["fault_rate"]
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
    else:
        label = f"Evaluate at {f:.0%} faults ({ui['instances']} crossbars, BN {ui['bn']})"
        if st.button(label, type="primary", key="evaluate"):
            cfg = jobs.evaluate_config(s.checkpoint, [f], data=ui["data"], instances=ui["instances"],
                                       adaptive=ui["adaptive"], device=ui["device"], bn=ui["bn"],
                                       calib_images=ui["calib_images"])
            jid, new = jobs.submit(store, "evaluate", p, cfg)
            st.toast("Evaluation started" if new else "Already evaluating: showing the running job")


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
        cfg = json.loads(r.config)
        what = cfg.get("point") or {}
        name = (explore.label(what) if what else Path(cfg.get("checkpoint", "?")).stem)
        cols = st.columns([3, 4, 1])
        cols[0].markdown(f"**{r.kind}** · {name}  \n`{r.state}` · {r.source}")
        if r.state in ("queued", "running"):
            eta = f" · ETA {int(r.eta_s // 60)} min {int(r.eta_s % 60)} s" if pd.notna(r.eta_s) and r.eta_s else ""
            cols[1].progress(float(r.progress or 0), text=f"{r.message or ''}{eta}")
            if cols[2].button("Cancel", key=f"cancel-{r.job_id}"):
                jobs.cancel(store, r.job_id)
                st.rerun(scope="fragment")
        elif r.state == "failed":
            cols[1].error(r.error or "failed")
            if cols[2].button("Retry", key=f"retry-{r.job_id}"):
                jobs.retry(store, r.job_id)
                st.rerun(scope="fragment")
        else:
            cols[1].caption(r.message or r.state)


def pareto_section(store, ui: dict, table: pd.DataFrame, version: str) -> None:
    f = ui["fault_rate"]
    c1, c2 = st.columns([1, 3])
    context = (f, ui["bn"], ui["calib_images"])  # a target set for other numbers starts over from their median
    if st.session_state.get("target_context") != context:
        st.session_state.target_context = context
        st.session_state.target = explore.default_target(table)
    target = c1.number_input(f"Accuracy target at {f:.0%} faults (%)", 0.0, 100.0, step=0.5, key="target")
    objective = c1.radio("Cheapest by", ["latency_ns", "energy_uj"], key="objective",
                         format_func=lambda o: charts.AXIS[o].split(" per")[0])
    rec = explore.recommend(table, target, objective)
    with c1:
        if rec:
            st.success(f"**{rec['label']}**: {rec['accuracy']:.2f}% at {f:.0%} faults, "
                       f"{rec[objective]:,.4g} {'ns' if objective == 'latency_ns' else 'uJ'}")
        else:
            st.warning(f"No evaluated design reaches {target:.1f}% at {f:.0%} faults.")
    with c2:
        for obj in ("latency_ns", "energy_uj"):
            fig = pareto_figure(store, version, f, ui["cost_model"], obj, ui["point"].point_id,
                                rec["point_id"] if rec else None, ui["bn"], ui["calib_images"])
            st.plotly_chart(fig, key=f"pareto-{obj}")
            st.download_button("Download this chart (HTML)", data=lambda fig=fig: fig.to_html(include_plotlyjs=True),
                               file_name=f"pareto-{obj}-f{f:g}.html", mime="text/html", on_click="ignore",
                               key=f"dl-{obj}")


def teaching_section(store, ui: dict, s: explore.PointStatus) -> None:
    p, f = ui["point"], ui["fault_rate"]
    if not st.toggle("Show one chip's fault map and the per-layer sensitivity", key="teach"):
        st.caption("A picture of SA1 defects on one crossbar tile, and which layers they hurt most.")
        return
    shapes = layer_shapes(p.network, p.width, p.shortcut_kernel, p.mapping)
    c1, c2 = st.columns([1, 2])
    layer = c1.selectbox("Crossbar layer", list(shapes), key="teach_layer")
    instance = c1.number_input("Chip (crossbar instance)", 0, 999, 0, key="teach_instance")
    rate = max(f, 0.01)
    fmap = teaching.fault_map(shapes, layer, int(instance), rate)
    c1.markdown(f"Layer `{layer}`: weights {shapes[layer]}; this tile holds {fmap.shape[0]}x{fmap.shape[1]} "
                f"cells, **{fmap.sum()}** stuck ({fmap.mean():.1%}). Each stuck cell reads its weight as 0. "
                "Every chip draws a new map; drop-connect training makes the network indifferent to which.")
    c2.plotly_chart(charts.fault_map(fmap, f"SA1 fault map of one 128x128 tile at {rate:.0%}"), key="faultmap")

    st.markdown("**Per-layer fault sensitivity**: accuracy drop when only one layer has faults.")
    if not s.trained:
        st.caption("Train this design point first.")
        return
    if not ui["data"]:
        st.caption("Give a CIFAR-10 data path under *Training and data* to run it.")
        return
    cfg = jobs.sensitivity_config(s.checkpoint, rate, data=ui["data"], device=ui["device"])
    job = store.job(store_job_id("sensitivity", cfg))
    if job and job["state"] == "done" and job["result"]:
        st.plotly_chart(charts.sensitivity(pd.DataFrame(json.loads(job["result"])),
                                           f"fault rate {rate:.0%}, 3 crossbars, 2,000 test images"), key="sens")
    elif st.button("Run sensitivity analysis (background job)", key="sens_run"):
        jobs.submit(store, "sensitivity", p, cfg)
        st.toast("Sensitivity analysis started; see Jobs")


def calibration_section(store, ui: dict, version: str, arch: str) -> None:
    """How many unlabeled images a chip needs to re-estimate its BN statistics (dse calib-curve)."""
    p, f = ui["point"], ui["fault_rate"]
    curve, fig = calibration_figure(store, version, p, f, f"{arch}, p={p.dropconnect:g} at {f:.0%} SA1 faults: "
                                                          "accuracy vs calibration images per chip")
    if curve.empty or (curve.calib_images > 0).sum() == 0:
        st.info(f"No per-chip calibration sweep for this design point at {f:.0%} yet. Run it with "
                f"`python -m dse calib-curve CKPT --fault-rate {f:g} --images 32,100,500,2000`; N = 0 is the "
                "paper's protocol.")
        return
    st.plotly_chart(fig, key="calib-curve")
    st.caption(f"The same {int(curve.n.min())} crossbars for every N; N = 0 is the paper's Algorithm 1 statistics. "
               "Each chip runs N unlabeled training images through itself once, at deployment, with its weights "
               "frozen; only BN statistics (in the digital periphery) change.")
    st.dataframe(curve, hide_index=True)


def store_job_id(kind: str, cfg: dict) -> str:
    return jobs.job_id_of(kind, cfg)


def main() -> None:
    t0 = time.perf_counter()
    store, report = get_store()
    ui = sidebar()
    version = store_version(store)
    table = design_table(store, version, ui["fault_rate"], ui["cost_model"], ui["bn"], ui["calib_images"])

    st.title("RRAM fault-tolerance design-space explorer")
    st.caption("Drop-connect training against stuck-at-1 crossbar faults (Xiang et al.): accuracy over many "
               "simulated chips against ISAAC latency and energy.")
    for problem in report["problems"]:
        st.warning(problem)
    s = selected_point(store, ui, table)
    actions(store, ui, s)

    tabs = st.tabs(["Pareto & recommendation", "Fault tolerance", "1x1 mapping (Fig. 7)", "Calibration images",
                    "Teaching", "Jobs", "Results table"])
    with tabs[0]:
        pareto_section(store, ui, table, version)
    p = ui["point"]
    arch = f"{NETWORK_NAMES[p.network]} {p.width:g}x" + (f", {p.shortcut_kernel}x{p.shortcut_kernel} shortcuts"
                                                         if p.network == "resnet20" else "")
    with tabs[1]:
        accuracy, heatmap = curve_figures(store, version, p, arch, ui["bn"], ui["calib_images"])
        c1, c2 = st.columns(2)
        c1.plotly_chart(accuracy, key="curves")
        c2.plotly_chart(heatmap, key="heatmap")
    with tabs[2]:
        st.plotly_chart(mapping_figure(store, version, p, f"{arch}, p={p.dropconnect:g}: 1x1 layers on the "
                                                          "processor vs on the crossbar", ui["bn"],
                                     ui["calib_images"]), key="fig7")
    with tabs[3]:
        calibration_section(store, ui, version, arch)
    with tabs[4]:
        teaching_section(store, ui, s)
    with tabs[5]:
        job_panel(store)
    with tabs[6]:
        shown = table.drop(columns=[c for c in ("point_id", "checkpoint_sha", "label", "updated", "calibrated_rates")
                                    if c in table])
        st.dataframe(shown, hide_index=True)
        c1, c2 = st.columns(2)
        c1.download_button("Download design points (CSV)", shown.to_csv(index=False).encode(),
                           file_name=f"design-points-f{ui['fault_rate']:g}.csv", mime="text/csv", key="dl_points")
        c2.download_button("Download all evaluations (CSV)", evaluations_csv(store, version),
                           file_name="evaluations.csv", mime="text/csv", key="dl_evals")
    st.caption(f"Rendered in {time.perf_counter() - t0:.2f} s from {store.path}")


try:
    main()
except DSEError as e:
    st.error(str(e))
