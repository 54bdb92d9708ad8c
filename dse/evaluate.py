"""Monte-Carlo fault evaluation: accuracy of one trained model over many simulated crossbars.

For fault rate f each crossbar instance is one SA1 (or SA0) map over the crossbar weights
(dse/faults.py); the model runs with those faulty 8-bit weights through torch.func.functional_call,
so nothing is copied per instance. BN statistics are those calibrated for p' = f (nearest calibrated
rate otherwise, with a warning) and the 1/(1-f) scale stays on; both can be switched off for ablations.
Protocols: a fixed number of instances (the paper: 100 on the full test set), or adaptive: stop once
the 95% CI half-width is below a target, after a minimum number of instances.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from tqdm.auto import tqdm

from dse.calibrate import nearest_rate
from dse.checkpoint import Checkpoint, load_bn_buffers
from dse.data import normalize
from dse.device import autocast
from dse.dropconnect import check_rate
from dse.errors import DSEError
from dse.faults import FaultInjector, check_fault_model


@dataclass
class Protocol:
    instances: int = 100  # the paper's count; the maximum in adaptive mode
    adaptive: float | None = None  # target 95% CI half-width in accuracy points
    min_instances: int = 20
    seed: int = 0  # base seed of the fault maps
    fault_model: str = "sa1"
    recalibrate: bool = True  # use BN statistics calibrated for p' = f
    rescale: bool = True  # keep the 1/(1-f) drop-connect scale at inference
    test_images: int | None = None  # None: the full test set

    @property
    def name(self) -> str:
        return f"adaptive({self.adaptive})" if self.adaptive else f"fixed({self.instances})"

    def check(self) -> "Protocol":
        if self.instances < 1:
            raise DSEError(f"instances must be a positive integer, got {self.instances!r}")
        if self.adaptive is not None and not (math.isfinite(self.adaptive) and self.adaptive > 0):
            raise DSEError(f"adaptive CI target must be a positive number of points, got {self.adaptive!r}")
        if self.min_instances < 2:
            raise DSEError(f"min instances must be at least 2, got {self.min_instances!r}")
        check_fault_model(self.fault_model)
        return self


def summarize(accs) -> dict:
    """mean, std, 95% CI (Student t), 5th percentile, worst and best of per-instance accuracies."""
    from scipy import stats

    a = np.asarray(accs, dtype=float)
    n = len(a)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "std": std, "ci95": half, "ci_low": mean - half, "ci_high": mean + half,
            "p5": float(np.percentile(a, 5)), "worst": float(a.min()), "best": float(a.max())}


class Evaluator:
    """One checkpoint's model on a device, with its test set normalised once and its weights quantised once."""

    def __init__(self, ckpt: Checkpoint, test_x: Tensor, test_y: Tensor, device="cpu", batch_size: int = 500):
        self.ckpt = ckpt
        self.device = torch.device(device)
        self.model = ckpt.build_model().to(self.device, memory_format=torch.channels_last).eval()
        self.injector = FaultInjector(self.model, ckpt.meta["mapping"])
        self.trained_bn = {k: v.clone() for k, v in self.model.state_dict().items() if "running" in k or "num_batches" in k}
        self.x = [normalize(test_x[i : i + batch_size].to(self.device)) for i in range(0, len(test_x), batch_size)]
        self.y = [test_y[i : i + batch_size].to(self.device) for i in range(0, len(test_y), batch_size)]
        self.n_images = len(test_x)

    def use_bn_for(self, rate: float, recalibrate: bool = True) -> float | None:
        """Load the BN statistics for fault rate `rate`; returns the calibrated rate used (None: trained)."""
        chosen = nearest_rate(self.ckpt.bn_stats, rate) if recalibrate else None
        if recalibrate and chosen is None:
            warnings.warn(f"{self.ckpt.path} has no calibrated BN statistics; using the trained ones", stacklevel=2)
        elif chosen is not None and not math.isclose(chosen, rate):
            warnings.warn(f"no BN statistics calibrated for fault rate {rate:g}; using those for {chosen:g}",
                          stacklevel=2)
        load_bn_buffers(self.model, self.ckpt.bn_stats[chosen] if chosen is not None else self.trained_bn)
        return chosen

    @torch.no_grad()
    def accuracy(self, weights: dict[str, Tensor] | None = None) -> float:
        """Test accuracy (percent) with the given crossbar weights substituted (None: the float weights)."""
        correct = 0
        for x, y in zip(self.x, self.y):
            with autocast(self.device):
                logits = functional_call(self.model, weights, (x,)) if weights else self.model(x)
            correct += (logits.argmax(1) == y).sum()
        return 100.0 * int(correct) / self.n_images

    def run(self, rate: float, protocol: Protocol, progress: bool = True,
            on_instance: Callable[[int, float], None] | None = None) -> dict:
        """Monte-Carlo accuracy at one fault rate."""
        rate = check_rate(rate, "fault rate")
        p = protocol
        t0 = time.perf_counter()
        bn_rate = self.use_bn_for(rate, p.recalibrate)
        accs: list[float] = []
        if rate == 0:  # no faults: every instance is the same quantised network
            accs.append(self.accuracy(self.injector.weights(None, 0.0)))
        else:
            bar = tqdm(range(p.instances), desc=f"f={rate:g}", unit="crossbar", disable=not progress, leave=False)
            for i in bar:
                w = self.injector.weights(i, rate, p.seed, p.fault_model, p.rescale)
                accs.append(self.accuracy(w))
                if on_instance:
                    on_instance(i + 1, accs[-1])
                if len(accs) >= 2:
                    s = summarize(accs)
                    bar.set_postfix(mean=f"{s['mean']:.2f}", ci=f"{s['ci95']:.2f}")
                    if p.adaptive and len(accs) >= p.min_instances and s["ci95"] <= p.adaptive:
                        break
        return {"fault_rate": rate, "fault_model": p.fault_model, "protocol": p.name, "seed": p.seed,
                "bn_rate": bn_rate, "rescale": p.rescale, "test_images": self.n_images,
                "accuracies": [round(a, 4) for a in accs], **summarize(accs),
                "time_s": round(time.perf_counter() - t0, 3)}


def evaluate(ckpt: Checkpoint, test_x: Tensor, test_y: Tensor, fault_rates, protocol: Protocol | None = None,
             device="cpu", progress: bool = True, batch_size: int = 500,
             on_result: Callable[[dict], None] | None = None,
             on_instance: Callable[[float, int, float], None] | None = None) -> dict:
    """Accuracy under faults at each rate, plus the fault-free float and 8-bit accuracies.
    on_result(result) is called as each rate completes; on_instance(rate, i, accuracy) per crossbar."""
    protocol = (protocol or Protocol()).check()
    if protocol.test_images:
        test_x, test_y = test_x[: protocol.test_images], test_y[: protocol.test_images]
    ev = Evaluator(ckpt, test_x, test_y, device, batch_size)
    ev.use_bn_for(0.0, protocol.recalibrate)
    quantized = ev.accuracy(ev.injector.weights(None, 0.0))
    results = []
    for f in fault_rates:
        cb = (lambda i, acc, f=f: on_instance(f, i, acc)) if on_instance else None
        results.append(ev.run(f, protocol, progress, on_instance=cb))
        if on_result:
            on_result({**results[-1], "fault_free_quantized_accuracy": quantized})
    m = ckpt.meta
    return {"checkpoint": ckpt.path, "network": m["network"], "width": m["width"],
            "shortcut_kernel": m["shortcut_kernel"], "mapping": m["mapping"], "dropconnect": m["dropconnect"],
            "fault_free_accuracy": m.get("test_accuracy"), "fault_free_quantized_accuracy": quantized,
            "protocol": asdict(protocol), "results": results}


def layer_sensitivity(ev: Evaluator, rate: float, instances: int = 3, seed: int = 0,
                      on_layer: Callable[[int, int], None] | None = None) -> list[dict]:
    """Accuracy with faults at `rate` in one crossbar layer at a time (others fault-free, 8-bit): which
    layers a chip's defects hurt most. Uses the BN statistics for p' = rate, as a full evaluation does."""
    rate = check_rate(rate, "fault rate")
    ev.use_bn_for(rate)
    clean = ev.accuracy(ev.injector.weights(None, 0.0))
    rows = []
    names = list(ev.injector.layers)
    for k, name in enumerate(names):
        accs = [ev.accuracy(ev.injector.weights(i, rate, seed, only=name)) for i in range(instances)]
        acc = float(np.mean(accs))
        rows.append({"layer": name, "weights": int(np.prod(ev.injector.shape_of[name])), "accuracy": acc,
                     "drop": clean - acc})
        if on_layer:
            on_layer(k + 1, len(names))
    return rows
