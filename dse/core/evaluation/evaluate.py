"""Monte-Carlo fault evaluation: accuracy of one trained model over many simulated crossbars.

For fault rate f each crossbar instance is one SA1 (or SA0) map over the crossbar weights, or a spatial
one (lines, clusters) on the physical tiles, optionally remapped to the chip's known map (dse/core/faults/);
the model runs with those faulty 8-bit weights through torch.func.functional_call, so nothing is copied per
instance. BN statistics by one of three protocols (dse/core/evaluation/calibrate.py):
`paper`, those calibrated for p' = f (nearest calibrated rate otherwise, with a warning) with the 1/(1-f)
scale on (both can be switched off for ablations); `chip`, re-estimated through each faulty chip from N
unlabeled training images; `batch`, each test batch's own (transductive, an ablation).
Protocols: a fixed number of instances (the paper: 100 on the full test set), or adaptive: stop once
the 95% CI half-width is below a target, after a minimum number of instances.
The fast path (dse/core/evaluation/folded.py) folds BN, whichever protocol gave it, into the faulty convs.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call
from tqdm.auto import tqdm

from dse.core.errors import DSEError
from dse.core.evaluation.calibrate import (DEFAULT_CALIB_IMAGES, batch_statistics, bn_label, calibrate_bn, calibration_batches,
                           check_bn_protocol, chips_bn_stats, nearest_rate)
from dse.core.evaluation.folded import FoldedForward, _Unsupported, _mkldnn_conv_ok
from dse.core.evaluation.int8 import Int8State
from dse.core.faults.dropconnect import check_rate
from dse.core.faults.injector import FaultInjector
from dse.core.io.checkpoint import Checkpoint, load_bn_buffers
from dse.core.io.data import head, normalize
from dse.core.protocol import check_fault_model
from dse.core.runtime import precision as P
from dse.core.runtime.precision import Choice, autocast, default_precision, resolve
from dse.core.stats import at_chance, summarize  # noqa: F401  summarize: part of this module's API


@dataclass
class Protocol:
    instances: int = 100  # the paper's count; the maximum in adaptive mode
    adaptive: float | None = None  # target 95% CI half-width in accuracy points
    min_instances: int = 20
    seed: int = 0  # base seed of the fault maps
    fault_model: str = "sa1"  # dse/core/protocol.py: sa1, sa0, rows, cols, clustered[:SIDE], mixed[:SHARE], +remap[:S]
    recalibrate: bool = True  # use BN statistics calibrated for p' = f
    rescale: bool = True  # keep the 1/(1-f) drop-connect scale at inference
    test_images: int | None = None  # None: the full test set
    bn: str = "paper"  # BN statistics: paper (Algorithm 1 for p' = f), chip (re-estimated per chip), batch
    calib_images: int = DEFAULT_CALIB_IMAGES  # training images a chip calibrates on (bn="chip")
    calib_seed: int = 0  # which training images (and crops) every chip calibrates on

    @property
    def name(self) -> str:
        return f"adaptive({self.adaptive})" if self.adaptive else f"fixed({self.instances})"

    @property
    def calib_n(self) -> int:
        """Calibration images as the store keys them: 0 unless the chip protocol uses them."""
        return self.calib_images if self.bn == "chip" else 0

    @property
    def bn_label(self) -> str:
        return bn_label(self.bn, self.calib_images)

    def check(self) -> "Protocol":
        if self.instances < 1:
            raise DSEError(f"instances must be a positive integer, got {self.instances!r}")
        if self.adaptive is not None and not (math.isfinite(self.adaptive) and self.adaptive > 0):
            raise DSEError(f"adaptive CI target must be a positive number of points, got {self.adaptive!r}")
        if self.bn != "paper" and not self.recalibrate:
            raise DSEError(f"--no-recalibrate applies to the paper BN protocol only, not to {self.bn!r}")
        if self.min_instances < 2:
            raise DSEError(f"min instances must be at least 2, got {self.min_instances!r}")
        self.fault_model = check_fault_model(self.fault_model)  # canonical: one name per evaluation
        check_bn_protocol(self.bn)
        if isinstance(self.calib_images, bool) or not isinstance(self.calib_images, int) or self.calib_images < 1:
            raise DSEError(f"calibration images must be a positive integer, got {self.calib_images!r}")
        return self


class Evaluator:
    """One checkpoint's model on a device, with its test set normalised once and its weights quantised once."""

    def __init__(self, ckpt: Checkpoint, test_x: Tensor, test_y: Tensor, device="cpu", *, batch_size: int = 500,
                 precision: str | None = None, instances_per_pass: int | None = None,
                 calib_x: Tensor | None = None):
        """calib_x: training images (uint8); the int8 engine calibrates its activation scales on a fixed set
        of them (set_calibration's; without any, int8 is not used)."""
        self.ckpt = ckpt
        self.bn_stats = dict(ckpt.bn_stats)  # Algorithm 1's statistics per fault rate: the checkpoint's, and any computed here
        self.batch_size = batch_size
        self.calib: list[Tensor] | None = None  # the chip protocol's calibration batches, once set
        self.device = torch.device(device)
        # one precision for the whole evaluation (a chip's calibration pass included): bf16 only where proven equal
        self.choice: Choice = resolve(precision or default_precision(), ckpt.meta["network"], "evaluate", self.device)
        self.float_precision = self.choice.float_precision  # of every float pass (int8's BN and range passes too)
        self.model = ckpt.build_model().to(self.device, memory_format=torch.channels_last).eval()
        self.injector = FaultInjector(self.model, ckpt.meta["mapping"])
        self.trained_bn = {k: v.clone() for k, v in self.model.state_dict().items() if "running" in k or "num_batches" in k}
        self.x = [normalize(test_x[i : i + batch_size].to(self.device)) for i in range(0, len(test_x), batch_size)]
        self.y = [test_y[i : i + batch_size].to(self.device) for i in range(0, len(test_y), batch_size)]
        self.n_images = len(test_x)
        self.fast, self.fast_reason = self._folded_forward()
        self._batched: FoldedForward | None = None  # the vmappable twin of `fast`, made on first use
        # crossbar instances per forward: given, $DSE_INSTANCES_PER_PASS, or measured on first use (None)
        self.per_pass = instances_per_pass or _env_per_pass()
        self.int8 = Int8State(self) if self.choice.precision == "int8" else None
        if self.int8 is not None and (self.fast is None or calib_x is None):
            why = f"no BN-folded forward ({self.fast_reason})" if self.fast is None else \
                "no training images to calibrate its activation scales on"
            self.int8 = None
            self.choice = Choice(self.float_precision, f"int8 not used: {why}")
        if self.int8 is not None:
            self.set_calibration(calib_x, DEFAULT_CALIB_IMAGES)
            self.per_pass = 1  # the int8 engine has no batched (vmap) form
            self.fast_reason = f"int8 ({self.int8.engine.engine} engine), {self.fast_reason}"
        self.precision = self.choice.precision

    def _folded_forward(self) -> tuple[FoldedForward | None, str]:
        """The BN-folded forward when it traces and matches the plain one on a few test images."""
        mkldnn = self.device.type == "cpu" and self.float_precision == "fp32" and _mkldnn_conv_ok()
        try:
            fast = FoldedForward(self.model, mkldnn)
            x = self.x[0][:32] if self.x else None
            if x is not None:
                with torch.no_grad(), autocast(self.device, self.float_precision):
                    want, got = self.model(x).float(), fast(x, self._params(None)).float()
                tol = 1e-3 if self.float_precision == "fp32" else 5e-2  # bf16 rounds the folded weights differently
                if not torch.allclose(got, want, rtol=tol, atol=tol * (1 + float(want.abs().max()))):
                    return None, f"folded forward differs from the plain one by {float((got - want).abs().max()):.3g}"
        except _Unsupported as e:
            return None, str(e)
        except Exception as e:  # any failure of the fast path falls back to the plain, always-correct one
            return None, f"{type(e).__name__}: {e}"
        return fast, "bn-folded" + (" + oneDNN fused conv/ReLU/add" if mkldnn else "")

    def calibrate_missing(self, rates, train_x: Tensor) -> list[float]:
        """Algorithm 1's statistics for the fault rates the checkpoint was not calibrated for, computed as its
        own were (the same image count and seed), so any rate is evaluated as the paper protocol requires."""
        missing = [float(r) for r in rates if not any(math.isclose(r, c) for c in self.bn_stats)]
        if missing and self.bn_stats:
            cal = self.ckpt.meta.get("calibration", {})
            # a model in the checkpoint's own memory format: drop-connect masks drawn as `dse calibrate` draws them
            model = self.ckpt.build_model().to(self.device)
            self.bn_stats.update(calibrate_bn(model, train_x, missing, self.ckpt.meta["mapping"],
                                              max_images=cal.get("images"), seed=cal.get("seed", 0),
                                              device=self.device, progress=False, precision=self.float_precision))
            warnings.warn(f"BN statistics for fault rate(s) {', '.join(f'{r:g}' for r in missing)} were not in the "
                          f"checkpoint: computed now (Algorithm 1, {cal.get('images') or len(train_x)} training images)",
                          stacklevel=2)
        return missing

    def set_calibration(self, train_x: Tensor, n: int, seed: int = 0) -> None:
        """Choose the N training images every chip of the `chip` protocol calibrates its BN statistics on."""
        self.calib = calibration_batches(train_x, n, seed, self.batch_size, self.device)
        if self.int8 is not None:
            self.int8.reset()

    def chip_weights(self, weights: dict[str, Tensor] | None) -> dict[str, Tensor]:
        """`weights` plus BN statistics re-estimated through the chip they describe (set_calibration first)."""
        return self.chips_weights([weights])[0]

    def chips_weights(self, weight_sets: list[dict[str, Tensor] | None]) -> list[dict[str, Tensor]]:
        """chip_weights for several chips, sharing each calibration forward (dse/core/evaluation/calibrate.py)."""
        if self.calib is None:
            raise DSEError("the chip BN protocol needs calibration images: call set_calibration first")
        sets = [w or {} for w in weight_sets]
        stats = chips_bn_stats(self.model, sets, self.calib, self.device, self.float_precision)
        return [{**w, **s} for w, s in zip(sets, stats)]

    def _params(self, weights: dict[str, Tensor] | None) -> dict[str, Tensor]:
        """The model's parameters and buffers by name, with `weights` substituted."""
        p = dict(self.model.named_parameters())
        p.update(self.model.named_buffers())
        p.update(weights or {})
        return p

    def use_bn_for(self, rate: float, recalibrate: bool = True) -> float | None:
        """Load the BN statistics for fault rate `rate`; returns the calibrated rate used (None: trained)."""
        if self.int8 is not None:
            self.int8.rate = rate  # the paper protocol's activation scales are calibrated per rate
        chosen = nearest_rate(self.bn_stats, rate) if recalibrate else None
        if recalibrate and chosen is None:
            warnings.warn(f"{self.ckpt.path} has no calibrated BN statistics; using the trained ones", stacklevel=2)
        elif chosen is not None and not math.isclose(chosen, rate):
            warnings.warn(f"no BN statistics calibrated for fault rate {rate:g}; using those for {chosen:g}",
                          stacklevel=2)
        load_bn_buffers(self.model, self.bn_stats[chosen] if chosen is not None else self.trained_bn)
        return chosen

    @torch.no_grad()
    def accuracy(self, weights: dict[str, Tensor] | None = None, bn: str = "paper") -> float:
        """Test accuracy (percent) with the given crossbar weights substituted (None: the float weights).
        bn: "paper" uses the BN statistics loaded (use_bn_for), "chip" re-estimates them through this chip
        first, "batch" normalises each test batch with its own statistics."""
        if bn == "chip":  # the re-estimated statistics then fold into the fast path like any others
            weights = self.chip_weights(weights)
        if bn == "batch":  # batch statistics exist only in the plain forward
            with batch_statistics(self.model):
                return self._plain_accuracy(weights)
        if self.int8 is not None and all(k in self.fast.names for k in weights or ()):
            return self.int8.accuracy(self._params(weights), chip=bn == "chip")
        if self.fast is not None and all(k in self.fast.names for k in weights or ()):
            correct = 0
            p = self._params(weights)
            with autocast(self.device, self.float_precision):
                p = self.fast.fold(p)  # once per call, not per batch
                for x, y in zip(self.x, self.y):
                    correct += (self.fast.module(x, p).argmax(1) == y).sum()
            return 100.0 * int(correct) / self.n_images
        return self._plain_accuracy(weights)

    def accuracies(self, weight_sets: list[dict[str, Tensor]], bn: str = "paper") -> list[float]:
        """accuracy() of several crossbar instances, in one batched forward when there are several and the
        fast path runs: torch.func.vmap over the BN-folded graph, every conv becoming a grouped conv."""
        if bn == "chip":
            weight_sets = self.chips_weights(weight_sets)
            bn = "paper"  # the statistics are in the weights now
        if self.int8 is not None:
            return [self.accuracy(w, bn) for w in weight_sets]  # one at a time: chip statistics per chip
        if len(weight_sets) == 1 or self.fast is None or bn == "batch" or not all(
                k in self.fast.names for w in weight_sets for k in w):
            return [self.accuracy(w, bn) for w in weight_sets]
        if self._batched is None:
            self._batched = FoldedForward(self.model, mkldnn=False)  # oneDNN's fused op has no vmap rule
        with autocast(self.device, self.float_precision):
            folded = [self._batched.fold(self._params(w)) for w in weight_sets]
        first = folded[0]
        varying = [k for k in first if any(f[k] is not first[k] for f in folded[1:])]
        common = {k: v for k, v in first.items() if k not in varying}
        stacked = {k: torch.stack([f[k] for f in folded]) for k in varying}
        forward = torch.func.vmap(lambda s, x: self._batched.module(x, {**common, **s}), in_dims=(0, None))
        correct = torch.zeros(len(folded), dtype=torch.long, device=self.device)
        with warnings.catch_warnings(), autocast(self.device, self.float_precision):
            warnings.filterwarnings("ignore", message=".*batching rule.*")  # pooling loops over the K: tiny
            for x, y in zip(self.x, self.y):
                correct += (forward(stacked, x).argmax(-1) == y).sum(1)
        return [100.0 * int(c) / self.n_images for c in correct]

    def instances_per_pass(self) -> int:
        """K, the crossbar instances one forward evaluates: as given, else measured once per machine, network
        and precision (cached with the precision measurements)."""
        if self.per_pass is None:
            key = f"{self.ckpt.meta['network']}/{self.precision}/{self.device.type}"
            rec = P.machine_record(self.device).get("instances_per_pass", {}).get(key)
            if rec is None:
                rec = self._measure_per_pass()
                P.record(self.device, "instances_per_pass", key, rec)
            self.per_pass = int(rec["k"])
        return self.per_pass

    @torch.no_grad()
    def _measure_per_pass(self, candidates=(1, 2, 4, 8)) -> dict:
        """Seconds per instance for each K on 128 test images (a few seconds on a CPU); K > 1 only where it
        wins by 10% or more."""
        x, y, n = self.x, self.y, self.n_images
        self.x, self.y = [x[0][:128]], [y[0][:128]]
        self.n_images = len(self.y[0])
        try:
            w = [self.injector.weights(i, 0.1) for i in range(max(candidates))]
            per = {}
            for k in candidates:
                self.accuracies(w[:k])  # warm-up: first calls build kernels
                t0 = time.perf_counter()
                self.accuracies(w[:k])
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                per[k] = (time.perf_counter() - t0) / k
        finally:
            self.x, self.y, self.n_images = x, y, n
        best = min(per, key=per.get)
        k = best if per[best] <= 0.9 * per[1] else 1
        return {"k": k, "seconds_per_instance": {str(c): round(s, 4) for c, s in per.items()}}

    def _plain_accuracy(self, weights: dict[str, Tensor] | None) -> float:
        correct = 0
        for x, y in zip(self.x, self.y):
            with autocast(self.device, self.float_precision):
                logits = functional_call(self.model, weights, (x,)) if weights else self.model(x)
            correct += (logits.argmax(1) == y).sum()
        return 100.0 * int(correct) / self.n_images

    def run(self, rate: float, protocol: Protocol, progress: bool = True,
            on_instance: Callable[[int, float], None] | None = None, done: list[float] | None = None) -> dict:
        """Monte-Carlo accuracy at one fault rate. `done`: accuracies of instances 0..k-1 from an interrupted
        run with the same checkpoint and protocol; only the instances after them are run."""
        rate = check_rate(rate, "fault rate")
        p = protocol
        t0 = time.perf_counter()
        bn_rate = self.use_bn_for(rate, p.recalibrate) if p.bn == "paper" else None
        if self.int8 is not None:  # the paper protocol's activation ranges: through maps of this fault model
            self.int8.maps = (p.fault_model, p.rescale)
        accs: list[float] = list(done or [])[: p.instances]
        if rate == 0:  # no faults: every instance is the same quantised network
            accs = accs[:1] or [self.accuracy(self.injector.weights(None, 0.0), p.bn)]
        elif not (p.adaptive and len(accs) >= max(2, p.min_instances) and summarize(accs)["ci95"] <= p.adaptive):
            bar = tqdm(desc=f"f={rate:g}", unit="crossbar", disable=not progress, leave=False, initial=len(accs),
                       total=p.instances)
            k = self.instances_per_pass() if p.bn != "batch" else 1
            stop = False
            while not stop and len(accs) < p.instances:
                chunk = range(len(accs), min(p.instances, len(accs) + k))
                got = self.accuracies([self.injector.weights(i, rate, p.seed, p.fault_model, p.rescale)
                                       for i in chunk], p.bn)
                for i, acc in zip(chunk, got):  # one by one, so a batch stops where one at a time would
                    accs.append(acc)
                    bar.update(1)
                    if on_instance:
                        on_instance(i + 1, acc)
                    if len(accs) >= 2:
                        s = summarize(accs)
                        bar.set_postfix(mean=f"{s['mean']:.2f}", ci=f"{s['ci95']:.2f}")
                        if p.adaptive and len(accs) >= p.min_instances and s["ci95"] <= p.adaptive:
                            stop = True
                            break
            bar.close()
        s = summarize(accs)
        return {"fault_rate": rate, "fault_model": p.fault_model, "protocol": p.name, "seed": p.seed,
                "bn": p.bn, "calib_images": p.calib_n, "bn_rate": bn_rate, "precision": self.precision,
                "rescale": p.rescale, "test_images": self.n_images,
                "accuracies": [round(a, 4) for a in accs], **s, "at_chance": at_chance(s["mean"]),
                "time_s": round(time.perf_counter() - t0, 3)}


def evaluate(ckpt: Checkpoint, test_x: Tensor, test_y: Tensor, fault_rates, *, protocol: Protocol | None = None,
             device="cpu", progress: bool = True, batch_size: int = 500,
             on_result: Callable[[dict], None] | None = None,
             on_instance: Callable[[float, int, float], None] | None = None,
             done: dict[float, list[float]] | None = None, calib_x: Tensor | None = None,
             precision: str | None = None, instances_per_pass: int | None = None) -> dict:
    """Accuracy under faults at each rate, plus the fault-free float and 8-bit accuracies.
    on_result(result) is called as each rate completes; on_instance(rate, i, accuracy) per crossbar.
    done[rate]: per-instance accuracies already measured (an interrupted run's), not run again.
    calib_x: the training images (uint8) the chip protocol calibrates on; never test images.
    precision: auto | fp32 | bf16 (None: $DSE_PRECISION or auto); the result says which ran, and why.
    instances_per_pass: crossbar instances per batched forward (None: $DSE_INSTANCES_PER_PASS, else measured)."""
    protocol = (protocol or Protocol()).check()
    if protocol.test_images:
        test_x, test_y = head(test_x, test_y, protocol.test_images)
    ev = Evaluator(ckpt, test_x, test_y, device, batch_size=batch_size, precision=precision,
                   instances_per_pass=instances_per_pass, calib_x=calib_x)
    if protocol.bn == "chip" and calib_x is None:
        raise DSEError("the chip BN protocol needs training images to calibrate on (calib_x)")
    if protocol.bn == "chip" or ev.int8 is not None:  # int8: its activation scales' images under `paper` too
        ev.set_calibration(calib_x, protocol.calib_images, protocol.calib_seed)
    if protocol.bn == "paper" and protocol.recalibrate and calib_x is not None:
        ev.calibrate_missing([f for f in fault_rates if f > 0], calib_x)
    ev.use_bn_for(0.0, protocol.recalibrate)
    quantized = ev.accuracy(ev.injector.weights(None, 0.0))
    results = []
    for f in fault_rates:
        cb = (lambda i, acc, f=f: on_instance(f, i, acc)) if on_instance else None
        results.append(ev.run(f, protocol, progress, on_instance=cb, done=(done or {}).get(f)))
        if on_result:
            on_result({**results[-1], "fault_free_quantized_accuracy": quantized})
    m = ckpt.meta
    return {"checkpoint": ckpt.path, "network": m["network"], "width": m["width"],
            "shortcut_kernel": m["shortcut_kernel"], "mapping": m["mapping"], "dropconnect": m["dropconnect"],
            "fault_free_accuracy": m.get("test_accuracy"), "fault_free_quantized_accuracy": quantized,
            "protocol": asdict(protocol), "precision": ev.precision, "precision_reason": ev.choice.reason,
            **({"int8": ev.int8.describe(protocol.bn, protocol.calib_images)} if ev.int8 is not None else {}),
            "results": results}


def _env_per_pass() -> int | None:
    v = os.environ.get("DSE_INSTANCES_PER_PASS")
    if not v or v == "auto":
        return None
    if not v.isdigit() or int(v) < 1:
        raise DSEError(f"DSE_INSTANCES_PER_PASS must be a positive integer or auto, got {v!r}")
    return int(v)


SPOT_CHECK = {"fault_rate": 0.1, "instance": 0, "seed": 0, "test_images": 500}


def spot_check(ckpt: Checkpoint, test_x: Tensor, test_y: Tensor, device="cpu", **kw) -> dict:
    """One crossbar instance on a slice of the test set: a seconds-long figure that a shipped checkpoint's
    manifest records, so a test can recompute it and catch weights, fault maps or the evaluation drifting."""
    c = {**SPOT_CHECK, **kw}
    n = c["test_images"]
    ev = Evaluator(ckpt, test_x[:n], test_y[:n], device, precision="fp32")  # a fixed figure: fixed arithmetic
    ev.use_bn_for(c["fault_rate"])
    acc = ev.accuracy(ev.injector.weights(c["instance"], c["fault_rate"], c["seed"]))
    return {**c, "accuracy": round(acc, 4)}


def layer_sensitivity(ev: Evaluator, rate: float, instances: int = 3, seed: int = 0,
                      on_layer: Callable[[int, int], None] | None = None) -> tuple[float, list[dict]]:
    """Accuracy with faults at `rate` in one crossbar layer at a time (others fault-free, 8-bit): which
    layers a chip's defects hurt most. Uses the BN statistics for p' = rate, as a full evaluation does.
    Returns the fault-free accuracy the drops are measured from, and one row per layer."""
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
    return clean, rows
