"""The paper's claims, one function each: what our results of one grid say about it and a verdict
(agrees / differs / partly / not measured). `check_claims` runs the registry over a results table shaped
like dse.view.reproduce.grid_results' (one BN protocol at a time)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

# The paper's results, restated from its text (Xiang et al., "Drop-Connect as a Fault-Tolerance Approach
# for RRAM-based Deep Neural Network Accelerators"). Accuracies are CIFAR-10 top-1 in percent; "loss"
# is accuracy points below the same network without faults. Each entry's check reads our results.
PAPER_CLAIMS = {
    "small-faults": "With drop-connect, VGG13 and MobileNetV2 lose under 2 points against the fault-free "
                    "network at fault rates up to 10%; at 20% and 30% the losses grow to 4-10 and 6-20 points.",
    "mobilenet-30": "MobileNetV2 (point-wise layers off the crossbar) loses under 1 point even at a 30% fault rate.",
    "best-p-above-f": "The best drop-connect rate for a fault rate is higher than that fault rate.",
    "high-p-hurts": "Drop-connect rates above 0.3-0.4 cost accuracy even without faults.",
    "resnet20-widened": "ResNet20 is the hard case. Widened, it loses about 0.2 / 3 / 7 points at 10% / 20% / 30% "
                        "fault rates; the paper quotes about 79% for the original network without drop-connect "
                        "at 30%.",
    "widening": "Widening by 20% / 60% gives up to 4 / 12.5 more points than 1.0x, at up to 42.6% / 153.3% "
                "more latency and energy.",
    "vgg13-wide": "Widened VGG13 stays at 90% or more (under 2 points lost) for fault rates 0-30%; its gains "
                  "flatten beyond 1.4x.",
    "shortcut-3x3": "ResNet20 with 3x3 shortcuts on the crossbar reaches accuracy comparable to the widened networks.",
    "1x1-on-crossbar": "Putting the 1x1 layers on the crossbar too (drop-connect and faults there) loses accuracy "
                       "dramatically (Fig. 7).",
}
TOLERANCE = 2.0  # accuracy points: "agrees" when ours is as good as the paper's figure or within this


def _arch(df: pd.DataFrame, network: str, width: float | None = None, kernel: int = 1,
          mapping: str = "default") -> pd.DataFrame:
    sel = (df.network == network) & (df.shortcut_kernel == kernel) & (df.mapping == mapping)
    if width is not None:
        sel &= np.isclose(df.width, width)
    return df[sel]


def base_width(df: pd.DataFrame, network: str) -> float | None:
    """1.0x when the grid has it, else the narrowest width it has for the network."""
    w = sorted(_arch(df, network).width.unique())
    return 1.0 if any(np.isclose(w, 1.0)) else (w[0] if w else None)


def best_over_p(df: pd.DataFrame) -> pd.Series:
    """For one architecture: the best mean accuracy over drop-connect rates at each fault rate."""
    return df.groupby("fault_rate")["mean"].max() if not df.empty else pd.Series(dtype=float)


def same_rates(*frames: pd.DataFrame) -> list[pd.DataFrame]:
    """Each architecture's rows at the drop-connect rates all of them have, so that "best over p" compares
    like with like (1.0x's best of six rates against 1.6x's best of two would flatter 1.0x)."""
    common = set.intersection(*(set(f.dropconnect.round(6)) for f in frames)) if frames else set()
    return [f[f.dropconnect.round(6).isin(common)] for f in frames]


def fault_free(df: pd.DataFrame) -> float | None:
    """The architecture's accuracy without faults: its model trained without drop-connect (p = 0), else
    the best fault-free accuracy over its drop-connect rates."""
    if df.empty:
        return None
    plain = df[np.isclose(df.dropconnect, 0)].fault_free_accuracy.dropna()
    vals = plain if not plain.empty else df.fault_free_accuracy.dropna()
    return float(vals.max()) if not vals.empty else None


def losses(df: pd.DataFrame) -> dict[float, float]:
    """At each fault rate, the loss of the best design point over drop-connect rates against its own
    fault-free accuracy: how the paper's "degradation" reads."""
    if df.empty:
        return {}
    best = df.loc[df.groupby("fault_rate")["mean"].idxmax()]
    best = best[best.fault_free_accuracy.notna()]
    return {round(r.fault_rate, 6): float(r.fault_free_accuracy - r["mean"]) for _, r in best.iterrows()}


def _fmt(d: dict[float, float]) -> str:
    return ", ".join(f"{v:.1f} at {f:g}" for f, v in sorted(d.items())) or "-"


def best_p_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per network (at its base width) and fault rate: the drop-connect rate with the best mean accuracy, and
    whether it is above the fault rate, as the paper found. docs/results.md's table of the best rates.
    A fault rate with one drop-connect rate evaluated so far has no row: a best of one is not a finding; nor
    is "not above f" where no rate above f was evaluated (VGG13 at f=0.3 with p in {0, 0.3})."""
    rows = []
    for net in sorted(df.network.unique()):
        width = base_width(df, net)
        a = _arch(df, net, width)
        baseline = fault_free(a)  # once per network, not per fault rate
        for f, g in a.groupby("fault_rate"):
            if g.dropconnect.nunique() < 2:
                continue
            best = g.loc[g["mean"].idxmax()]
            rows.append({"network": f"{net} {width:g}x", "fault rate": f"{f:g}",
                         "best p": f"{best.dropconnect:g}", "rates compared": len(g),
                         "best p above f": "-" if f == 0 else "yes" if best.dropconnect > f
                         else "no" if (g.dropconnect > f).any() else "untested (no p above f)",
                         "accuracy": float(best["mean"]),
                         "loss vs fault-free": (baseline - best["mean"]) if baseline is not None else None})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- one function a claim
def small_faults(df: pd.DataFrame) -> tuple[str, str]:
    """VGG13 and MobileNetV2 under 2 points at <= 10%. About drop-connect: a network with p = 0 alone is
    shown, but its losses count neither way."""
    parts, ok = [], []
    for net in ("vgg13", "mobilenetv2"):
        a = _arch(df, net, base_width(df, net))
        loss, rates = losses(a), sorted(a.dropconnect.unique())
        if loss:
            counted = any(p > 0 for p in rates)
            parts.append(f"{net} (best of p = {', '.join(f'{p:g}' for p in rates)}) loss {_fmt(loss)}"
                         + ("" if counted else " (no drop-connect yet: not counted)"))
            if counted:
                ok += [v < 2 for f, v in loss.items() if 0 < f <= 0.1 + 1e-9]
    return "; ".join(parts) or "no results for it", "not measured" if not ok else "agrees" if all(ok) else "differs"


def mobilenet_30(df: pd.DataFrame) -> tuple[str, str]:
    a = _arch(df, "mobilenetv2", base_width(df, "mobilenetv2"))
    at30 = losses(a).get(0.3)
    counted = at30 is not None and (a.dropconnect > 0).any()
    ours = "no results for it" if at30 is None else f"loss {at30:.1f} at 0.3" + (
        "" if counted else " without drop-connect (p = 0 alone: not counted)")
    return ours, "not measured" if not counted else "agrees" if at30 < 1 else "differs"


def best_p_above_f(df: pd.DataFrame) -> tuple[str, str]:
    best = [r for r in best_p_table(df).to_dict("records") if r["fault rate"] != "0"]  # docs/results.md's best-p table
    found = [f"{r['network'].split()[0]} f={r['fault rate']}: p={r['best p']}" for r in best]
    above = [r["best p above f"] == "yes" for r in best if r["best p above f"] in ("yes", "no")]
    return ("; ".join(found) or "needs two or more drop-connect rates",
            "not measured" if not above else "agrees" if all(above) else "partly" if any(above) else "differs")


def high_p_hurts(df: pd.DataFrame) -> tuple[str, str]:
    rows = []
    for net in sorted(df.network.unique()):
        a = _arch(df, net, base_width(df, net))
        ff = a.groupby("dropconnect").fault_free_accuracy.max()
        if 0.0 in ff.index and any(ff.index >= 0.4 - 1e-9):
            rows += [(net, p, ff[0.0] - ff[p]) for p in ff.index if p >= 0.4 - 1e-9]
    return ("; ".join(f"{n} p={p:g}: {d:+.1f} below p=0" for n, p, d in rows) or "needs p=0 and p>=0.4 in the grid",
            "not measured" if not rows else "agrees" if all(d > 0 for *_, d in rows) else "differs")


def resnet20_widened(df: pd.DataFrame) -> tuple[str, str]:
    """Widened ResNet20's losses against the paper's 0.2 / 3 / 7."""
    widths = sorted(_arch(df, "resnet20").width.unique())
    if len(widths) < 2:
        return "needs ResNet20 at two or more widths", "not measured"
    paper = {0.1: 0.2, 0.2: 3.0, 0.3: 7.0}
    loss = losses(_arch(df, "resnet20", widths[-1]))
    plain = _arch(df, "resnet20", base_width(df, "resnet20"))
    plain = plain[np.isclose(plain.dropconnect, 0) & np.isclose(plain.fault_rate, 0.3)]
    orig = f"; 1.0x without drop-connect at 0.3: {plain['mean'].iloc[0]:.1f}%" if not plain.empty else ""
    checks = [loss[f] <= paper[f] + TOLERANCE for f in paper if f in loss]
    return (f"{widths[-1]:g}x loss {_fmt(loss)}{orig}",
            "not measured" if not checks else "agrees" if all(checks) else "partly" if any(checks) else "differs")


def widening(df: pd.DataFrame) -> tuple[str, str]:
    """Accuracy gains (ours) and cost increases (paper mode, for the grid's networks)."""
    from dse.core.cost import per_image as cost_model

    cost, gains = [], []
    for net in sorted(df.network.unique()):
        base = cost_model.paper_cost(net, 1.0)
        for w in (1.2, 1.6):
            c = cost_model.paper_cost(net, w)
            cost.append(f"{net} {w:g}x +{100 * (c['latency_ns'] / base['latency_ns'] - 1):.1f}%")
            ref, other = map(best_over_p, same_rates(_arch(df, net, 1.0), _arch(df, net, w)))
            common = ref.index.intersection(other.index)
            if len(common):
                gains.append((net, w, float((other[common] - ref[common]).max())))
    ours = "; ".join(filter(None, [
        ("latency and energy " + ", ".join(cost)) if cost else "",
        ("accuracy gain up to " + ", ".join(f"{n} {w:g}x {g:+.1f}" for n, w, g in gains)) if gains else ""]))
    return ours or "no results for it", "not measured" if not gains else (
        "agrees" if all(0 < g <= {1.2: 4, 1.6: 12.5}[w] + TOLERANCE for _, w, g in gains) else "differs")


def vgg13_wide(df: pd.DataFrame) -> tuple[str, str]:
    vw = sorted(_arch(df, "vgg13").width.unique())
    if len(vw) < 2:
        return "needs VGG13 at two or more widths", "not measured"
    best = best_over_p(_arch(df, "vgg13", vw[-1]))
    return f"{vw[-1]:g}x: worst over fault rates {best.min():.1f}%", "agrees" if best.min() >= 90 else "differs"


def shortcut_3x3(df: pd.DataFrame) -> tuple[str, str]:
    k3 = _arch(df, "resnet20", 1.0, kernel=3)
    widths = sorted(_arch(df, "resnet20").width.unique())
    pairs = [tuple(map(best_over_p, same_rates(_arch(df, "resnet20", w), k3))) for w in widths if w > 1]
    gaps = [float((w_ - k_).dropna().max()) for w_, k_ in pairs if len(w_.index.intersection(k_.index))]
    if not gaps:
        return "needs ResNet20 with 3x3 shortcuts and a widened ResNet20", "not measured"
    return (f"widened ResNet20 ahead of 3x3 shortcuts by at most {max(gaps):.1f} points",
            "agrees" if max(gaps) <= TOLERANCE else "differs")


def one_by_one_on_crossbar(df: pd.DataFrame) -> tuple[str, str]:
    on = _arch(df, "resnet20", 1.0, mapping="1x1-on-crossbar")
    if on.empty:
        return "needs ResNet20 with mapping 1x1-on-crossbar", "not measured"
    off = _arch(df, "resnet20", 1.0)
    m = on.merge(off[off.dropconnect.isin(on.dropconnect.unique())], on=["dropconnect", "fault_rate"],
                 suffixes=("_on", "_off"))
    if m.empty:
        return "needs both mappings at the same drop-connect rate", "not measured"
    top = m[m.fault_rate == m.fault_rate.max()]
    drop = float((top.mean_off - top.mean_on).max())
    return (f"1x1 on the crossbar: {drop:.1f} points below the default mapping at fault rate "
            f"{top.fault_rate.max():g}", "agrees" if drop > TOLERANCE else "differs")


CLAIMS: dict[str, Callable[[pd.DataFrame], tuple[str, str]]] = {
    "small-faults": small_faults, "mobilenet-30": mobilenet_30, "best-p-above-f": best_p_above_f,
    "high-p-hurts": high_p_hurts, "resnet20-widened": resnet20_widened, "widening": widening,
    "vgg13-wide": vgg13_wide, "shortcut-3x3": shortcut_3x3, "1x1-on-crossbar": one_by_one_on_crossbar,
}


def check_claims(df: pd.DataFrame) -> list[dict]:
    """Our finding and a verdict (agrees / differs / partly / not measured) for each claim, in the paper's order."""
    return [{"claim": key, "paper": PAPER_CLAIMS[key], **dict(zip(("ours", "verdict"), check(df)))}
            for key, check in CLAIMS.items()]
