"""What deploying a design point costs on each chip beyond inference: the per-chip BN calibration pass of
the `chip` protocol, priced from a cost model's per-image figures (dse/cost.py). Torch-free, so the app
can show it without importing torch."""
from __future__ import annotations

from dse.core.errors import DSEError


def calibration_cost(totals: dict, images: int) -> dict:
    """The price of re-estimating BN statistics on one chip: `images` forward passes, once, at deployment.
    Each BN layer needs the statistics of all images before the next layer can use them, so the pass runs
    layer by layer, not pipelined across layers: its time is `images` x the cost model's one-image latency
    (latency_ns, never the pipelined interval), its energy `images` x the per-image energy. Accumulating the statistics (an add and a multiply-add per
    activation, in the digital periphery) is not counted."""
    if isinstance(images, bool) or not isinstance(images, int) or images < 0:
        raise DSEError(f"calibration images must be a non-negative integer, got {images!r}")
    return {"calib_images": images, "calib_latency_ns": images * float(totals["latency_ns"]),
            "calib_energy_uj": images * float(totals["energy_uj"])}
