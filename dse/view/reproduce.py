"""The reproduction report of a grid (`python -m dse reproduce` runs the grid first): the paper's figures
from the results store and a Markdown summary that sets our numbers, under each BN protocol, beside the
paper's claims (dse/view/claims.py) and its Table II.

Figures (HTML always; PNG too where plotly's image export works, which needs kaleido and a browser):
accuracy vs fault rate per network (one line per drop-connect rate, Figs. 3-5), the best drop-connect
rate per fault rate (Fig. 6), widths, shortcut kernels, the 1x1 mapping (Fig. 7) where the grid has
them, and accuracy against the images each chip calibrates BN on.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from dse.domain.bn import bn_label, parse_bn
from dse.domain.point import label
from dse.domain.errors import DSEError
from dse.core.io.atomic import atomic_write
from dse.domain.bn import BN_PROTOCOLS, DEFAULT_BN
from dse.domain.recipes import recipe
from dse.domain.stats import summarize
from dse.results.catalog import MANIFEST, sync
from dse.results.store import Store
from dse.run.spec import SweepSpec
from dse.view import charts
from dse.view.claims import (PAPER_CLAIMS, TOLERANCE, _arch, base_width, best_over_p, best_p_table,  # noqa: F401
                             check_claims, fault_free, same_rates)
from dse.view.explore import best_evaluations, calibration_curve

# Table II cells the paper gives (ns and uJ per image; its header's "s" and "kW" are mislabelled, see dse/core/cost/per_image.py)
PAPER_TABLE_II = {
    ("resnet20", 1.0): (15.74, 113.32), ("resnet20", 1.2): (22.13, 159.28), ("resnet20", 1.4): (29.80, 214.53),
    ("resnet20", 1.6): (39.11, 281.56), ("vgg13", 1.0): (87.83, 632.16),
}
ARCH = ["network", "width", "shortcut_kernel", "mapping"]


# =============================================================================================
# Results of one grid, from the store
# =============================================================================================


def spec_protocols(spec: SweepSpec) -> list[str]:
    """The BN protocols a grid evaluates, in its order (the paper's first when it has it)."""
    bns = [spec.protocol["bn"]]  # the spec's, its defaults filled in (dse/run/spec.py)
    for _, _, grid in spec.blocks():
        bns.append(dict(grid.protocol).get("bn", spec.protocol["bn"]))
    flat = [b for x in bns for b in (x if isinstance(x, list) else [x])]
    return sorted(set(flat), key=BN_PROTOCOLS.index)


def grid_results(store: Store, spec: SweepSpec, bn: str = DEFAULT_BN) -> pd.DataFrame:
    """One row per (design point of the grid, fault rate) under BN protocol `bn` (SA1, rescaled; the chip
    protocol at the spec's calibration images), the evaluation with most instances on most images, with the
    point's fault-free accuracy."""
    wanted = {(p.point_id, f) for p, rates in spec.points() for f in rates}
    ev = store.evaluations()
    ev = ev[ev.seed == spec.protocol["seed"]] if not ev.empty else ev
    ev = best_evaluations(ev, bn=parse_bn(bn, spec.protocol["calib_images"]))
    cols = ARCH + ["dropconnect", "fault_rate", "mean", "ci95", "n", "worst", "test_images", "fault_free_accuracy",
                   "point_id", "time_s"]
    if ev.empty:
        return pd.DataFrame(columns=cols)
    keep = [(pid, round(f, 6)) in {(a, round(b, 6)) for a, b in wanted} for pid, f in zip(ev.point_id, ev.fault_rate)]
    return ev[keep][cols].reset_index(drop=True)


def points_table(store: Store, spec: SweepSpec, df: pd.DataFrame) -> pd.DataFrame:
    """One row per trained design point of the grid: fault-free accuracy, mean accuracy with its 95% CI and
    crossbar count at each fault rate, the loss both ways (against the point's own fault-free accuracy, and
    against its architecture's p=0 model with the default mapping), how it was trained, and the compute it
    took; a last row totals the compute. docs/results.md's table of shipped results."""
    pts = store.points()
    rows, train_s, eval_s = [], [], []
    for point, rates, grid in spec.blocks():
        row = pts[pts.point_id == point.point_id]
        if row.empty:
            continue
        r = row.iloc[0]
        base_pt = pts[(pts.network == point.network) & np.isclose(pts.width, point.width)
                      & (pts.shortcut_kernel == point.shortcut_kernel) & (pts.mapping == "default")
                      & np.isclose(pts.dropconnect, 0)]
        baseline = float(base_pt.fault_free_accuracy.iloc[0]) if not base_pt.empty else float("nan")
        base = grid.base_of(point)
        out = {"design point": label(r), "fault-free (%)": _num(r.fault_free_accuracy, 2)}
        for f in [f for f in rates if f > 0]:
            e = df[(df.point_id == point.point_id) & np.isclose(df.fault_rate, f)]
            loss = f"loss at {f:g}: own / p=0"
            if e.empty:
                out[f"f={f:g}: mean ± CI (n)"], out[loss] = "not evaluated", "-"
            else:
                e = e.iloc[0]
                out[f"f={f:g}: mean ± CI (n)"] = f"{e['mean']:.2f} ± {e.ci95:.2f} ({int(e.n)})"
                out[loss] = f"{r.fault_free_accuracy - e['mean']:.2f} / {_num(baseline - e['mean'], 2)}"
        out["training"] = (f"{int(r.epochs)} epochs from "
                           + ("" if base.shortcut_kernel == point.shortcut_kernel else f"k{base.shortcut_kernel} ")
                           + f"p={base.dropconnect:g}"
                           + ("" if base.mapping == point.mapping else f" ({base.mapping})")
                           if base is not None else f"{int(r.epochs)} epochs")
        out["train time (min)"] = _num(r.train_time_s / 60 if r.train_time_s == r.train_time_s else None, 0)
        spent = df[df.point_id == point.point_id].time_s.dropna()
        out["evaluation time (min)"] = _num(spent.sum() / 60 if len(spent) else None, 0)
        rows.append(out)
        train_s.append(r.train_time_s)
        eval_s.append(spent.sum())
    if rows:
        total = {k: "" for k in rows[0]}
        hours = (np.nansum(train_s) + np.nansum(eval_s)) / 3600
        total["design point"] = f"all {len(rows)} points: {hours:.1f} h"
        total["train time (min)"] = _num(np.nansum(train_s) / 60, 0)
        total["evaluation time (min)"] = _num(np.nansum(eval_s) / 60, 0)
        rows.append(total)
    return pd.DataFrame(rows)


def _num(v, digits: int) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def table_ii(spec: SweepSpec) -> pd.DataFrame:
    """Paper-mode latency and energy of the paper's Table II cells and of every architecture in the grid."""
    from dse.core.cost.per_image import paper_cost

    archs = {(n, w, 1) for n, w in PAPER_TABLE_II}
    archs |= {(p.network, p.width, p.shortcut_kernel) for p, _ in spec.points()}
    rows = []
    for net, w, k in sorted(archs):
        c = paper_cost(net, w, k)
        paper = PAPER_TABLE_II.get((net, w)) if k == 1 else None
        rows.append({"network": net, "width": w, "shortcut_kernel": k, "macs": c["macs"],
                     "latency_ns": c["latency_ns"], "energy_uj": c["energy_uj"],
                     "paper_latency": paper[0] if paper else None, "paper_energy": paper[1] if paper else None})
    t = pd.DataFrame(rows)
    t["latency_diff_pct"] = 100 * (t.latency_ns / t.paper_latency - 1)
    t["energy_diff_pct"] = 100 * (t.energy_uj / t.paper_energy - 1)
    return t


# =============================================================================================
# Figures
# =============================================================================================


def figures(df: pd.DataFrame) -> dict:
    """name -> plotly figure, for whatever the grid's results support."""
    import plotly.express as px

    figs = {}
    for net in sorted(df.network.unique()):
        w = base_width(df, net)
        a = _arch(df, net, w)
        if a.empty:
            continue
        figs[f"accuracy-{net}"] = charts.accuracy_vs_fault_rate(
            a, f"{net} {w:g}x: accuracy vs fault rate, one line per drop-connect rate")
        if a.dropconnect.nunique() > 1:
            figs[f"best-dropconnect-{net}"] = charts.dropconnect_heatmap(
                a, f"{net} {w:g}x: accuracy over drop-connect rate and fault rate (star: best p)")

    def best_lines(rows: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
        """One best-over-p line per (name, architecture), all at the drop-connect rates they share."""
        names, frames = zip(*rows)
        parts = [best_over_p(d).rename("mean").reset_index().assign(variant=name)
                 for name, d in zip(names, same_rates(*frames)) if not d.empty]
        return pd.concat(parts) if parts else pd.DataFrame()

    wide = [(net, f"{w:g}x", _arch(df, net, w)) for net in sorted(df.network.unique())
            for w in sorted(_arch(df, net).width.unique())]
    wide = [r for r in wide if sum(r[0] == x[0] for x in wide) > 1]
    parts = [best_lines([(v, a) for n, v, a in wide if n == net]).assign(network=net)
             for net in sorted({n for n, _, _ in wide})]
    d = pd.concat(parts) if parts else pd.DataFrame()
    if not d.empty:
        figs["widths"] = px.line(d, x="fault_rate", y="mean", color="variant", facet_col="network", markers=True,
                                 labels={"fault_rate": "SA1 fault rate", "mean": "accuracy (%)", "variant": "width"},
                                 title="Widening: best accuracy over the drop-connect rates every width has")
    k3 = _arch(df, "resnet20", 1.0, kernel=3)
    if not k3.empty:
        rows = [("1.0x, 1x1 shortcuts", _arch(df, "resnet20", 1.0)), ("1.0x, 3x3 shortcuts", k3)]
        rows += [(f"{w:g}x, 1x1 shortcuts", _arch(df, "resnet20", w))
                 for w in sorted(_arch(df, "resnet20").width.unique()) if w > 1]
        lines = best_lines(rows)
        if not lines.empty:
            figs["shortcuts"] = px.line(lines, x="fault_rate", y="mean", color="variant", markers=True,
                                        labels={"fault_rate": "SA1 fault rate", "mean": "accuracy (%)"},
                                        title="ResNet20: 3x3 shortcuts on the crossbar vs widening "
                                              "(best over the drop-connect rates all have)")
    on = _arch(df, "resnet20", 1.0, mapping="1x1-on-crossbar")
    if not on.empty:
        both = pd.concat([on, _arch(df, "resnet20", 1.0)])
        both = both[both.dropconnect.isin(on.dropconnect.unique())]
        figs["mapping"] = charts.mapping_comparison(both, "ResNet20 1.0x: 1x1 layers off vs on the crossbar (Fig. 7)")
    return figs


def write_figures(figs: dict, out: Path) -> tuple[list[str], str | None]:
    """HTML for every figure (plotly.js written once beside them); PNG while plotly's image export works.
    Returns (files written, why PNG is missing or None)."""
    out.mkdir(parents=True, exist_ok=True)
    files, png_problem = [], None
    for name, fig in figs.items():
        fig.write_html(out / f"{name}.html", include_plotlyjs="directory")
        files.append(f"{name}.html")
        if png_problem is None:
            try:
                fig.write_image(out / f"{name}.png", width=900, height=500)
                files.append(f"{name}.png")
            except Exception as e:  # kaleido (and the browser it drives) missing: HTML only
                png_problem = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return files, png_problem


# =============================================================================================
# The summary
# =============================================================================================


def _md_table(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in df.itertuples(index=False))


BN_TITLES = {"paper": "BN statistics by the paper's Algorithm 1 (for p' = f)",
             "chip": "BN statistics re-estimated through each chip",
             "batch": "BN statistics of each test batch (transductive)"}


def claims_table(per: dict[str, list[dict]]) -> pd.DataFrame:
    """The paper's claims with our finding and verdict under each BN protocol, side by side."""
    rows = []
    for i, claim in enumerate(next(iter(per.values()))):
        row = {"paper": claim["paper"]}
        for bn, claims in per.items():
            row[f"ours ({bn} BN)"] = claims[i]["ours"]
            row[f"verdict ({bn} BN)"] = claims[i]["verdict"]
        rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(spec: SweepSpec, per: dict[str, dict], claims: pd.DataFrame, table: pd.DataFrame,
                     *, files: list[str], png_problem: str | None, sweep: dict | None) -> str:
    """The report: per BN protocol (`per[bn]` holds its results `df` and `points` table) the design points,
    accuracy under faults and best drop-connect rates; then the claims under every protocol, Table II and
    the figures."""
    r, p = spec.recipe, spec.protocol
    r = recipe(r["name"], epochs=r["epochs"], batch_size=r["batch_size"], lr=r["lr"])
    lines = [f"# Reproduction: grid `{spec.name}`", "",
             f"Written {_dt.datetime.now().isoformat(timespec='seconds')} from {spec.source or 'a spec'}. "
             f"Recipe: {r.name}, {r.epochs} epochs, batch {r.batch_size}, peak lr {r.lr:g}. Protocol: "
             f"{p['instances']} crossbars per fault rate" + (f" (adaptive, CI half-width {p['adaptive']:g})"
                                                           if p['adaptive'] else "")
             + f", {p['test_images'] or 'all'} test images, fault-map seed {p['seed']}; BN protocols: "
             + ", ".join(bn_label(bn, p.get("calib_images", 500)) for bn in per) + ".", ""]
    if sweep:
        lines += [f"Jobs: {sweep['jobs']} in the grid, {sweep['skipped']} already done, {sweep['done']} run now, "
                  f"{sweep['failed']} failed, {sweep['cancelled']} cancelled ({sweep['backend']} backend, "
                  f"{sweep['time_s']:.0f} s).", ""]
        for f in sweep["failures"][:10]:
            lines.append(f"- {f['state']}: {f['job']}: {f['error']}")
        lines.append("")
    for bn, res in per.items():
        df, points = res["df"], res["points"]
        lines += [f"## {BN_TITLES[bn]}: {bn_label(bn, p.get('calib_images', 500))}", ""]
        if points is not None and not points.empty:
            lines += ["Accuracy (%) under SA1 faults: mean over the crossbar instances with its 95% CI and their "
                      "count; loss in points against the point's own fault-free accuracy and against its "
                      "architecture's fault-free p=0 model; training time of this point alone.", "",
                      _md_table(points), ""]
        if df.empty:
            lines += ["No evaluations of this grid under this protocol in the store yet.", ""]
            continue
        wide = df.assign(point=[label(row) for _, row in df.iterrows()]).pivot_table(
            index="point", columns="fault_rate", values="mean", sort=False)
        wide.columns = [f"f={c:g}" for c in wide.columns]
        ff = df.groupby(df.apply(label, axis=1), sort=False).fault_free_accuracy.first()
        wide.insert(0, "fault-free float", ff.reindex(wide.index))
        lines += ["Mean accuracy (%) over the crossbar instances:", "", _md_table(wide.reset_index()), ""]
        lines += ["Best drop-connect rate per fault rate:", "", _md_table(best_p_table(df)), ""]
    lines += ["## The paper's claims against ours", "",
              f"Verdicts: *agrees* when ours is as good as the paper's figure or within {TOLERANCE:g} points; "
              "*not measured* when the grid lacks the design points. Losses read as the paper's degradation: "
              "the best design point against its own fault-free accuracy.", ""]
    lines += [_md_table(claims), ""]
    lines += ["## Table II: latency and energy on ISAAC (paper mode)", "",
              "ns and µJ per image (the paper's header says s and kW; see docs/cost-model.md). Ours by dse.core.cost.per_image.paper_cost.", ""]
    t = table.assign(width=table.width.map(lambda w: f"{w:g}x"), macs=table.macs.map(lambda m: f"{m:,}"))
    lines += [_md_table(t, ".2f"), ""]
    lines += ["## Figures", ""]
    lines += [f"- [{f}](figures/{f})" for f in files if f.endswith(".html")] or ["- none: no evaluations yet"]
    if png_problem:
        lines += ["", f"PNG export was not available ({png_problem}); the figures are HTML only. "
                      "`pip install kaleido` (with Chrome or Chromium present) adds PNGs."]
    return "\n".join(lines) + "\n"


def calibration_table(store: Store, spec: SweepSpec, fault_rate: float = 0.3) -> pd.DataFrame:
    """For each grid point with a calibration-image sweep at `fault_rate` (dse calib-curve: two or more chip
    image counts): accuracy, chip
    spread and worst chip against N, N = 0 being the paper's protocol. docs/results.md's calibration table."""
    parts = []
    for point, _ in spec.points():
        c = calibration_curve(store, point, fault_rate)
        if (c.calib_images > 0).sum() >= 2 if len(c) else False:  # a sweep over N, not one chip evaluation
            parts.append(c.assign(design_point=label(vars(point))))
    if not parts:
        return pd.DataFrame()
    t = pd.concat(parts)
    return pd.DataFrame({"design point": t.design_point, "N": t.calib_images, "BN": t.bn_protocol,
                         "crossbars": t.n, "mean (%)": t["mean"], "95% CI": t.ci95, "std across chips": t["std"],
                         "worst chip (%)": t.worst})


def calibration_figure(table: pd.DataFrame, fault_rate: float = 0.3):
    """Accuracy against calibration images per chip, one line per design point, chip spread as a band."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, t in table.groupby("design point", sort=False):
        x = t.N.map(lambda n: "0 (paper)" if n == 0 else str(n))
        fig.add_trace(go.Scatter(x=x, y=t["mean (%)"], mode="lines+markers", name=f"{name}: mean",
                                 error_y=dict(type="data", array=t["95% CI"])))
        fig.add_trace(go.Scatter(x=x, y=t["worst chip (%)"], mode="lines", line=dict(dash="dot"),
                                 name=f"{name}: worst chip"))
    fig.update_xaxes(type="category", title="unlabeled training images per chip (N)")
    fig.update_yaxes(title="accuracy (%)")
    fig.update_layout(title=f"Per-chip BN calibration at {fault_rate:.0%} SA1 faults: accuracy vs images per chip",
                      height=450, legend=dict(orientation="h", y=-0.25))
    return fig


def protocol_results(store: Store, spec: SweepSpec) -> dict[str, dict]:
    """Per BN protocol of the grid: its results (`df`), points table and claims."""
    per = {}
    for bn in spec_protocols(spec):
        df = grid_results(store, spec, bn)
        per[bn] = {"df": df, "points": points_table(store, spec, df), "claims": check_claims(df)}
    return per


def doc_tables(per: dict[str, dict], calib: pd.DataFrame, compare: pd.DataFrame | None = None
               ) -> dict[str, pd.DataFrame]:
    """The tables a results document's markers hold (docs/results.md): points and best p per protocol
    (`points`, `points-chip`, ...), the claims under every protocol, the calibration-image sweep, and the
    same points trained another way (`compare`, see compare_table)."""
    tables = {}
    for bn, d in per.items():
        suffix = "" if bn == "paper" else f"-{bn}"
        tables[f"points{suffix}"], tables[f"best-p{suffix}"] = d["points"], best_p_table(d["df"])
    if len(per) > 1:
        tables["claims"] = claims_table({bn: d["claims"] for bn, d in per.items()})
    if not calib.empty:
        tables["calibration"] = calib
    if compare is not None and not compare.empty:
        tables["compare"] = compare
    return tables


def _trained(entry: dict) -> str:
    """How a manifest entry's weights were trained: its epochs, after its base's when fine-tuned."""
    p = f"p={entry['dropconnect']:g}"
    init = entry.get("init")
    if not init:
        return f"{entry['epochs']} epochs at {p}"
    return f"{init['epochs']} epochs at p={init['dropconnect']:g}, then {entry['epochs']} at {p}"


def _first_crossbars(entry: dict, bn: str, fault_rate: float, calib_images: int, n: int) -> dict | None:
    """Mean and CI of the first n crossbars (the same fault maps in every run with the same seed) of the
    entry's largest SA1 evaluation at that rate on the whole test set, or None when it has fewer."""
    evs = [ev for ev in entry["evaluations"]
           if ev["bn"] == bn and math.isclose(ev["fault_rate"], fault_rate) and ev["fault_model"] == "sa1"
           and ev["test_images"] == 10000 and (bn != "chip" or ev["calib_images"] == calib_images)]
    best = max(evs, key=lambda ev: ev["n"], default=None)
    return summarize(best["accuracies"][:n]) if best is not None and best["n"] >= n else None


def compare_table(spec: SweepSpec, other: SweepSpec) -> pd.DataFrame:
    """The design points `other`'s checkpoint folder shares with `spec`'s, trained both ways, side by side on
    the same first crossbars (`other`'s instance count, seed and BN protocols), from the two manifests: one row
    per checkpoint and protocol, mean ± 95% CI half-width at each fault rate."""
    def entries(s: SweepSpec) -> dict[str, dict]:
        path = Path(s.checkpoint_dir).expanduser() / MANIFEST
        if not path.is_file():
            raise DSEError(f"{path} is missing: the grid {s.name!r} has no manifest to compare")
        return {e["file"]: e for e in json.loads(path.read_text())["checkpoints"]}

    ours, theirs = entries(spec), entries(other)
    n, calib = other.protocol["instances"], other.protocol["calib_images"]
    rates = sorted({f for _, fs in other.points() for f in fs if f > 0})
    rows = []
    for file in sorted(set(ours) & set(theirs)):
        for grid, entry in ((spec.name, ours[file]), (other.name, theirs[file])):
            for bn in spec_protocols(other):
                row = {"design point": label(entry), "grid": grid, "training": _trained(entry),
                       "fault-free (%)": f"{entry['test_accuracy']:.2f}", "BN": bn,
                       "crossbars": n}
                for f in rates:
                    s = _first_crossbars(entry, bn, f, calib, n)
                    row[f"f={f:g}"] = "-" if s is None else f"{s['mean']:.2f} ± {s['ci95']:.2f}"
                rows.append(row)
    return pd.DataFrame(rows)


def report(store: Store, spec: SweepSpec, out: str | os.PathLike, sweep: dict | None = None,
           doc: str | os.PathLike | None = None, *, compare: SweepSpec | None = None, check: bool = False) -> dict:
    """Figures, results.csv and summary.md in `out` for the grid under each of its BN protocols, from whatever
    the store holds now (and the grid's checkpoint folder). With `doc`, its marked tables are rewritten (see
    paste_tables; `compare`: another grid of some of the same points, trained another way, see compare_table)
    and the calibration figure is written beside it where PNG export works. With `check`, nothing is written
    anywhere: `stale` names the doc's tables that differ from the results."""
    ckdir = Path(spec.checkpoint_dir).expanduser()
    if ckdir.is_dir():  # checkpoints there (a clone's shipped ones) and their manifest's evaluations
        sync(store, [ckdir])
    per, calib = protocol_results(store, spec), calibration_table(store, spec)
    files, png_problem = ([], None) if check else _write_report(Path(out), spec, per, calib, sweep)
    stale = []
    if doc is not None:
        tables = doc_tables(per, calib, compare_table(spec, compare) if compare is not None else None)
        stale = paste_tables(doc, tables, optional=set(tables) - {"points", "best-p"}, check=check)
        if "calibration-images.png" in files:
            (Path(doc).parent / "calibration-images.png").write_bytes(
                (Path(out) / "figures" / "calibration-images.png").read_bytes())
    first = next(iter(per.values()))
    return {"out": str(out), "summary": str(Path(out) / "summary.md"),
            "figures": [str(Path(out) / "figures" / f) for f in files],
            "png": png_problem is None, "png_problem": png_problem, "evaluations": len(first["df"]),
            "claims": {c["claim"]: c["verdict"] for c in first["claims"]},
            "claims_by_protocol": {bn: {c["claim"]: c["verdict"] for c in d["claims"]} for bn, d in per.items()},
            "sweep": sweep, "spec": asdict(spec)["name"], "doc": None if doc is None else str(doc), "stale": stale}


def _write_report(out: Path, spec: SweepSpec, per: dict[str, dict], calib: pd.DataFrame,
                  sweep: dict | None) -> tuple[list[str], str | None]:
    """The report folder: every protocol's results as CSV, the figures, and summary.md."""
    out.mkdir(parents=True, exist_ok=True)
    figs = {}
    for bn, d in per.items():
        figs.update({name + ("" if bn == "paper" else f"-{bn}-bn"): fig for name, fig in figures(d["df"]).items()})
    pd.concat([d["df"].assign(bn=bn) for bn, d in per.items()]).to_csv(out / "results.csv", index=False)
    if not calib.empty:
        figs["calibration-images"] = calibration_figure(calib)
    files, png_problem = write_figures(figs, out / "figures")
    claims = claims_table({bn: d["claims"] for bn, d in per.items()})
    (out / "summary.md").write_text(summary_markdown(spec, per, claims, table_ii(spec), files=files,
                                                     png_problem=png_problem, sweep=sweep))
    return files, png_problem


def paste_tables(path: str | os.PathLike, tables: dict[str, pd.DataFrame], optional: set = frozenset(),
                 check: bool = False) -> list[str]:
    """Replace what lies between `<!-- dse:NAME -->` and `<!-- /dse:NAME -->` in a Markdown file by the
    table NAME (written atomically, and only when something changed): how docs/results.md and docs/spatial.md
    follow the results. A table in `optional` is skipped where the file has no markers for it. Returns the
    names of the tables that differed; with `check`, the file is left as it is."""
    path = Path(path)
    if not path.is_file():
        raise DSEError(f"{path} does not exist: give a Markdown file with <!-- dse:NAME --> markers")
    text = original = path.read_text()
    stale = []
    for name, table in tables.items():
        start, end = f"<!-- dse:{name} -->", f"<!-- /dse:{name} -->"
        if name in optional and start not in text and end not in text:
            continue
        if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
            raise DSEError(f"{path} needs one {start} ... {end} pair to paste the {name} table into")
        head, rest = text.split(start)
        new = head + start + "\n\n" + _md_table(table) + "\n" + end + rest.split(end, 1)[1]
        if new != text:
            stale.append(name)
        text = new
    if text != original and not check:
        atomic_write(path, text.encode())
    return stale
