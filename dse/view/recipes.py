"""The recipe study's report: one row per training run in a folder (finished, or its .partial while it
runs) with its recipe and per-epoch fault-free test accuracy; a markdown table and an accuracy-vs-epoch
figure (PNG where plotly's image export works, HTML otherwise)."""
from __future__ import annotations

from pathlib import Path

from dse.core.io.atomic import atomic_write

RECIPE_KEYS = ("schedule", "ema", "cutout", "bn_lr_scale")


def study_rows(folder: Path) -> list[dict]:
    """Every run in `folder`: finished checkpoints, and the partials of runs without one."""
    from dse.core.io.checkpoint import load_checkpoint

    rows = []
    done = sorted(Path(folder).glob("*.safetensors"))
    partial = [p for p in sorted(Path(folder).glob("*.safetensors.partial"))
               if not p.with_name(p.name.removesuffix(".partial")).exists()]
    for path in done + partial:
        m = load_checkpoint(path).meta
        r, hist = m.get("recipe", {}), m.get("history", [])
        curve = [h["test_accuracy"] for h in hist if "test_accuracy" in h]
        rows.append({"run": path.name.split(".safetensors")[0], "network": m["network"],
                     "recipe": r.get("name", "legacy"), **{k: r.get(k) for k in RECIPE_KEYS},
                     "epochs": r.get("epochs"), "epochs_done": m.get("epochs_done", len(hist)),
                     "complete": bool(m.get("complete")),
                     # a finished run's figure is its calibrated fault-free accuracy; a running one's its last epoch's
                     "final": m.get("test_accuracy") if m.get("complete") else (curve[-1] if curve else None),
                     "train_accuracy": hist[-1]["train_accuracy"] if hist else None,
                     "minutes": (m.get("train_time_s") or 0) / 60, "curve": curve})
    return rows


def table_markdown(rows: list[dict]) -> str:
    lines = ["| run | schedule | EMA | cutout | BN lr x | epochs | fault-free test accuracy | train accuracy | minutes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        state = f"{r['epochs_done']}/{r['epochs']}" + ("" if r["complete"] else " (running)")
        ema = f"{r['ema']:g}" if r["ema"] else "off"
        cut = f"{r['cutout']} px" if r["cutout"] else "off"
        lines.append(f"| {r['run']} | {r['schedule'] or 'cosine'} | {ema} | {cut} | {r['bn_lr_scale'] or 1:g} | {state} "
                     f"| {r['final']}% | {r['train_accuracy']}% | {r['minutes']:.0f} |")
    return "\n".join(lines)


def curve_figure(rows: list[dict]):
    import pandas as pd
    import plotly.express as px

    df = pd.DataFrame([{"run": r["run"], "epoch": i + 1, "test accuracy (%)": a}
                       for r in rows for i, a in enumerate(r["curve"])])
    fig = px.line(df, x="epoch", y="test accuracy (%)", color="run", markers=True,
                  title="Fault-free test accuracy after each epoch (the weights training would save)")
    fig.update_layout(width=900, height=500, legend_title_text="")
    return fig


def write_report(rows: list[dict], stem: Path) -> list[Path]:
    """<stem>.md with the table; the figure as <stem>.png, or <stem>.html where PNG export is unavailable."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(stem.with_suffix(".md"), (table_markdown(rows) + "\n").encode())
    fig, written = curve_figure(rows), [stem.with_suffix(".md")]
    try:
        fig.write_image(stem.with_suffix(".png"))
        written.append(stem.with_suffix(".png"))
    except Exception:  # noqa: BLE001  no kaleido or browser here: the interactive HTML instead
        fig.write_html(stem.with_suffix(".html"), include_plotlyjs="cdn")
        written.append(stem.with_suffix(".html"))
    return written
