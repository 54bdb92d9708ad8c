"""Monte-Carlo fault evaluation: accuracy of one trained model over many simulated crossbars.

What is evaluated is an EvalSpec (dse/domain/evalspec.py), passed whole: for its fault rate f each crossbar
instance is one SA1 (or SA0) map over the crossbar weights, or a spatial one (lines, clusters) on the physical
tiles, optionally remapped to the chip's known map (dse/core/faults/); the model runs with those faulty
8-bit weights through torch.func.functional_call, so nothing is copied per instance. BN statistics by one of
three protocols (dse/domain/bn.py, computed in dse/core/evaluation/calibrate.py): `Paper()`, those calibrated for p' = f
(nearest calibrated rate otherwise, with a warning) with the 1/(1-f) scale on (both can be switched off for
ablations); `Chip(images=N)`, re-estimated through each faulty chip from N unlabeled training images;
`Batch()`, each test batch's own (transductive, an ablation). The spec's budget: a fixed number of instances
(the paper: 100 on the full test set), or adaptive: stop once the 95% CI half-width is below a target, after
a minimum number of instances.
The fast path (dse/core/evaluation/folded.py) folds BN, whichever protocol gave it, into the faulty convs.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call
from tqdm.auto import tqdm

from dse.core.evaluation.calibrate import batch_statistics, calibrate_bn, calibration_batches, chips_bn_stats, nearest_rate
from dse.core.evaluation.folded import FoldedForward, _Unsupported, _mkldnn_conv_ok
from dse.core.evaluation.int8 import Int8State
from dse.core.faults.injector import FaultInjector
from dse.core.io.checkpoint import Checkpoint, load_bn_buffers
from dse.core.io.data import head, normalize
from dse.core.runtime import precision as P
from dse.core.runtime.precision import Choice, autocast, default_precision, resolve
from dse.domain.bn import BN, DEFAULT_CALIB_IMAGES, Batch, Chip, Paper
from dse.domain.errors import DSEError
from dse.domain.evalspec import EvalSpec
from dse.domain.point import DesignPoint, label
from dse.domain.stats import at_chance, check_rate, summarize  # noqa: F401  summarize: part of this module's API

PAPER = Paper()  # the protocol a bare accuracy() or accuracies() call reads the loaded statistics under


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
    def accuracy(self, weights: dict[str, Tensor] | None = None, bn: BN = PAPER) -> float:
        """Test accuracy (percent) with the given crossbar weights substituted (None: the float weights).
        bn: Paper() uses the BN statistics loaded (use_bn_for), Chip() re-estimates them through this chip
        first (on set_calibration's images), Batch() normalises each test batch with its own statistics."""
        match bn:
            case Chip():  # the re-estimated statistics then fold into the fast path like any others
                weights = self.chip_weights(weights)
            case Batch():  # batch statistics exist only in the plain forward
                with batch_statistics(self.model):
                    return self._plain_accuracy(weights)
        if self.int8 is not None and all(k in self.fast.names for k in weights or ()):
            return self.int8.accuracy(self._params(weights), chip=isinstance(bn, Chip))
        if self.fast is not None and all(k in self.fast.names for k in weights or ()):
            correct = 0
            p = self._params(weights)
            with autocast(self.device, self.float_precision):
                p = self.fast.fold(p)  # once per call, not per batch
                for x, y in zip(self.x, self.y):
                    correct += (self.fast.module(x, p).argmax(1) == y).sum()
            return 100.0 * int(correct) / self.n_images
        return self._plain_accuracy(weights)

    def accuracies(self, weight_sets: list[dict[str, Tensor]], bn: BN = PAPER) -> list[float]:
        """accuracy() of several crossbar instances, in one batched forward when there are several and the
        fast path runs: torch.func.vmap over the BN-folded graph, every conv becoming a grouped conv."""
        if self.int8 is not None:
            return [self.accuracy(w, bn) for w in weight_sets]  # one at a time: chip statistics per chip
        if isinstance(bn, Chip):
            weight_sets = self.chips_weights(weight_sets)
            bn = PAPER  # the statistics are in the weights now
        if len(weight_sets) == 1 or self.fast is None or isinstance(bn, Batch) or not all(
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

    def run(self, spec: EvalSpec, progress: bool = True, on_instance: Callable[[int, float], None] | None = None,
            done: list[float] | None = None) -> dict:
        """Monte-Carlo accuracy of one EvalSpec (its faults at their rate, its BN protocol, seed and budget). `done`:
        accuracies of instances 0..k-1 from an interrupted run of the same spec; only the instances after them
        are run. The result's columns are those the store keeps, the spec's fields among them."""
        rate, fault, bn, budget = spec.rate, spec.fault, spec.bn, spec.budget
        t0 = time.perf_counter()
        bn_rate = self.use_bn_for(rate, bn.recalibrate) if isinstance(bn, Paper) else None
        if self.int8 is not None:  # the paper protocol's activation ranges: through maps of these faults
            self.int8.maps = (fault, spec.rescale)
        accs: list[float] = list(done or [])[: budget.instances]
        if rate == 0:  # no faults: every instance is the same quantised network
            accs = accs[:1] or [self.accuracy(self.injector.chip(None, fault), bn)]
        elif not (budget.adaptive and len(accs) >= max(2, budget.min_instances)
                  and budget.met(len(accs), summarize(accs)["ci95"])):
            bar = tqdm(desc=f"f={rate:g}", unit="crossbar", disable=not progress, leave=False, initial=len(accs),
                       total=budget.instances)
            k = self.instances_per_pass() if not isinstance(bn, Batch) else 1
            stop = False
            while not stop and len(accs) < budget.instances:
                chunk = range(len(accs), min(budget.instances, len(accs) + k))
                got = self.accuracies([self.injector.chip(i, fault, spec.seed, spec.rescale) for i in chunk], bn)
                for i, acc in zip(chunk, got):  # one by one, so a batch stops where one at a time would
                    accs.append(acc)
                    bar.update(1)
                    if on_instance:
                        on_instance(i + 1, acc)
                    if len(accs) >= 2:
                        s = summarize(accs)
                        bar.set_postfix(mean=f"{s['mean']:.2f}", ci=f"{s['ci95']:.2f}")
                        if budget.adaptive and budget.met(len(accs), s["ci95"]):
                            stop = True
                            break
            bar.close()
        s = summarize(accs)
        return {"fault_rate": rate, "fault_model": fault.name, "protocol": budget.name, "seed": spec.seed,
                "bn": bn.name, "calib_images": bn.images, "recalibrate": getattr(bn, "recalibrate", True),
                "bn_rate": bn_rate, "precision": self.precision, "rescale": spec.rescale, "test_images": self.n_images,
                "accuracies": [round(a, 4) for a in accs], **s, "at_chance": at_chance(s["mean"]),
                "time_s": round(time.perf_counter() - t0, 3)}


def evaluate(ckpt: Checkpoint, test_x: Tensor, test_y: Tensor, specs: list[EvalSpec], *, device="cpu",
             progress: bool = True, batch_size: int = 500,
             on_result: Callable[[EvalSpec, dict], None] | None = None,
             on_instance: Callable[[EvalSpec, int, float], None] | None = None,
             done: dict[EvalSpec, list[float]] | None = None, calib_x: Tensor | None = None,
             instances_per_pass: int | None = None) -> dict:
    """Accuracy under faults of each EvalSpec, plus the fault-free float and 8-bit accuracies. The specs are of
    the checkpoint's design point and share their BN protocol, test images and precision (one Evaluator serves
    them); their faults, rates, seeds and budgets may differ.
    on_result(spec, result) is called as each spec completes; on_instance(spec, i, accuracy) per crossbar.
    done[spec]: per-instance accuracies already measured (an interrupted run's), not run again.
    calib_x: the training images (uint8) the chip protocol calibrates on; never test images.
    instances_per_pass: crossbar instances per batched forward (None: $DSE_INSTANCES_PER_PASS, else measured).
    The result says which precision ran, and why."""
    first = check_specs(ckpt, specs)
    if first.test_images:
        test_x, test_y = head(test_x, test_y, first.test_images)
    ev = Evaluator(ckpt, test_x, test_y, device, batch_size=batch_size, precision=first.precision,
                   instances_per_pass=instances_per_pass, calib_x=calib_x)
    bn = first.bn
    if isinstance(bn, Chip) and calib_x is None:
        raise DSEError("the chip BN protocol needs training images to calibrate on (calib_x)")
    if isinstance(bn, Chip) or ev.int8 is not None:  # int8: its activation scales' images under `paper` too
        ev.set_calibration(calib_x, bn.images or DEFAULT_CALIB_IMAGES)
    recalibrate = getattr(bn, "recalibrate", True)
    if isinstance(bn, Paper) and recalibrate and calib_x is not None:
        ev.calibrate_missing(sorted({s.rate for s in specs if s.rate > 0}), calib_x)
    ev.use_bn_for(0.0, recalibrate)
    quantized = ev.accuracy(ev.injector.chip(None, first.fault.at(0.0)))  # the fault-free 8-bit network
    results = []
    for spec in specs:
        cb = (lambda i, acc, spec=spec: on_instance(spec, i, acc)) if on_instance else None
        results.append(ev.run(spec, progress, on_instance=cb, done=(done or {}).get(spec)))
        if on_result:
            on_result(spec, {**results[-1], "fault_free_quantized_accuracy": quantized})
    m = ckpt.meta
    return {"checkpoint": ckpt.path, "network": m["network"], "width": m["width"],
            "shortcut_kernel": m["shortcut_kernel"], "mapping": m["mapping"], "dropconnect": m["dropconnect"],
            "fault_free_accuracy": m.get("test_accuracy"), "fault_free_quantized_accuracy": quantized,
            "bn": bn.label, "precision": ev.precision, "precision_reason": ev.choice.reason,
            **({"int8": ev.int8.describe(bn, bn.images or DEFAULT_CALIB_IMAGES)} if ev.int8 is not None else {}),
            "results": results}


def check_specs(ckpt: Checkpoint, specs: list[EvalSpec]) -> EvalSpec:
    """The first of `specs`, once they are shown to be of the checkpoint's design point and to share the
    Evaluator's settings (BN protocol, test images, precision)."""
    if not specs:
        raise DSEError("nothing to evaluate: no EvalSpec given")
    point = DesignPoint.of(ckpt.meta)
    first = specs[0]
    for spec in specs:
        if spec.point != point:
            raise DSEError(f"an evaluation of {label(asdict(spec.point))} cannot run on {ckpt.path}, a checkpoint "
                           f"of {label(asdict(point))}")
        if (spec.bn, spec.test_images, spec.precision) != (first.bn, first.test_images, first.precision):
            raise DSEError("one evaluate() call serves one BN protocol, test-image count and precision; "
                           f"got {first.bn} and {spec.bn}, {first.test_images} and {spec.test_images} test images")
    return first


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
