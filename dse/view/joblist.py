"""How the page names and follows a background job: one title saying what the job does (kind, design point,
fault model and rate, BN protocol, crossbars) and one status line shared by the point's header and the Jobs
tab, so the two never disagree. Torch-free, no streamlit."""
from __future__ import annotations

import json
import math
from pathlib import Path

from dse.domain.point import label
from dse.domain.bn import bn_label
from dse.domain.faultspec import fault_model_label


DOING = {"train": "training", "evaluate": "evaluating", "sensitivity": "measuring sensitivity",
         "calibrate": "calibrating BN"}


def _config(job) -> dict:
    cfg = _get(job, "config") or {}
    return json.loads(cfg) if isinstance(cfg, str) else dict(cfg)


def _get(job, key):
    return job.get(key) if isinstance(job, dict) else getattr(job, key, None)


def point_name(cfg: dict) -> str:
    """The design point a job works on: its label when the config names it, else its checkpoint's name."""
    return label(cfg["point"]) if cfg.get("point") else Path(cfg.get("checkpoint", "?")).stem


def job_title(job) -> str:
    """'evaluate · resnet20-w1-k1-default-p0.3-s0 · SA1 at 15% · BN: chip (N=500) · 100 crossbars'; a training
    job names its epochs, a sensitivity analysis its fault rate and crossbars."""
    kind, cfg = _get(job, "kind"), _config(job)
    parts = [kind, point_name(cfg)]
    if kind == "train":
        parts.append(f"{cfg.get('epochs', '?')} epochs")
    elif kind == "evaluate":
        rates = ", ".join(f"{100 * float(r):g}%" for r in cfg.get("fault_rates", ()))
        parts += [f"{fault_model_label(cfg.get('fault_model', 'sa1'))} at {rates}",
                  f"BN: {bn_label(cfg.get('bn', 'paper'), cfg.get('calib_images'))}",
                  f"{cfg.get('instances', 100)} crossbars" + (" (adaptive)" if cfg.get("adaptive") else "")]
    elif kind == "sensitivity":
        parts += [f"SA1 at {100 * float(cfg.get('fault_rate', 0)):g}%", f"{cfg.get('instances', '?')} crossbars"]
    elif kind == "calibrate":
        parts.append("BN for " + ", ".join(f"{100 * float(r):g}%" for r in cfg.get("fault_rates", ())))
    return " · ".join(str(p) for p in parts)


def job_status(job) -> str:
    """The one status line of a job: 'evaluating (running, 7%): f = 10%: crossbar 7 of 100 · running mean
    81.23% · ETA 2 min 05 s'; the page's header and the Jobs tab both show this."""
    kind, state = _get(job, "kind"), _get(job, "state")
    progress = _get(job, "progress")
    fraction = 0.0 if progress is None or (isinstance(progress, float) and math.isnan(progress)) else float(progress)
    message = _get(job, "message") or ""
    head = f"{DOING.get(kind, kind)} ({state}, {fraction:.0%})"
    eta = _get(job, "eta_s")
    if message and "ETA" not in message and eta is not None and not (isinstance(eta, float) and math.isnan(eta)) \
            and eta > 0 and state == "running":
        message += f" · ETA {int(eta // 60)} min {int(eta % 60):02d} s"
    return f"{head}: {message}" if message and message != state else head
