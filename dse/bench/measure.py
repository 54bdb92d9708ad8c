"""Benchmarks: the project's trainer and fault campaign against what a researcher would write by hand,
measured in one run on one machine (`python -m dse bench`), written as a Markdown table (BENCHMARKS.md).

What is compared (each measurement a plain function returning a dict):
- training images/s: the project's training step (`dse.core.training.train.train_step`, the trainer's own loop body:
  uint8 data on the device, batch crop+flip, channels_last, drop-connect p=0.3 and p=0) against a plain
  reference: eager fp32 NCHW model, SGD with the same recipe, no drop-connect, torchvision transforms
  (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) on PIL images in a DataLoader with
  2 workers, as the PyTorch CIFAR-10 tutorial writes it; plus one end-to-end `dse.core.training.train.train` run;
- fault campaign image-instances/s: the evaluator's per-instance work (`Evaluator.accuracy` of
  `FaultInjector.weights`, what `evaluate` does per instance) against the same model's plain inference
  (same precision and layout) and a naive reference (`copy.deepcopy` per instance, quantise and mask each
  weight with `torch.rand`, fp32 NCHW, a DataLoader); plus one end-to-end `dse.core.evaluation.evaluate.evaluate` run;
- accuracy equivalence of the fast path and the naive fp32 reference on the same fault maps;
- BN calibration time per fault rate, peak memory, and scaling with instances and width.

Method. The machine this runs on is often shared, so implementations that are compared run interleaved in
one process: step i of each in turn, in the orders of a balanced design (`balanced_orders`), so that a burst of
other work slows all of them alike; the ratios come from the summed times of the rounds after warm-up. Timings are
wall-clock (`time.perf_counter`, after `torch.cuda.synchronize()` on a GPU). Every measurement runs in a
fresh Python process (`python -m dse.bench SPEC`) unless asked otherwise, so its peak RSS is its own:
`resource.getrusage(RUSAGE_SELF).ru_maxrss` at its end, beside the RSS after importing torch and loading
the data (the baseline). Nothing here asserts a timing.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from dse.bench.references import _PILDataset, _naive_instance, _reference_trainer, _transforms
from dse.core.cost.per_image import count_layers
from dse.core.errors import DSEError
from dse.core.evaluation.calibrate import calibrate_bn, nearest_rate
from dse.core.evaluation.evaluate import Evaluator, FoldedForward, Protocol, evaluate
from dse.core.faults.dropconnect import add_dropconnect
from dse.core.io.checkpoint import Checkpoint, bn_buffers, load_bn_buffers, load_checkpoint, save_checkpoint
from dse.core.io.data import Cifar10, fingerprint, head, normalize
from dse.core.models import build_model
from dse.core.runtime.allocator import keep_freed_memory
from dse.core.runtime.precision import autocast, capability
from dse.core.training.train import Recipe, TrainConfig, train, train_step

TRAIN_IMAGES = 50_000  # CIFAR-10's training set: one epoch, for per-epoch figures


FULL_TEST_SET = 10_000  # the chip overhead target is for an instance over the whole CIFAR-10 test set



def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    import torchvision

    cap = capability("cpu")
    info = {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_capability": cap.name, "native_bf16": cap.native_bf16,
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "os": platform.platform(), "device": str(device)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info["gpu"] = p.name
        info["gpu_memory_gb"] = round(p.total_memory / 2**30, 1)
    return info


def load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def synthetic_data(n_train: int, n_test: int, seed: int = 0):
    """Random uint8 images of CIFAR shape with random labels: throughput only, accuracies are chance."""
    g = torch.Generator().manual_seed(seed)
    tx = torch.randint(0, 256, (n_train, 3, 32, 32), generator=g, dtype=torch.uint8)
    vx = torch.randint(0, 256, (n_test, 3, 32, 32), generator=g, dtype=torch.uint8)
    ty = torch.randint(0, 10, (n_train,), generator=g)
    vy = torch.randint(0, 10, (n_test,), generator=g)
    return Cifar10(tx, ty, vx, vy, source="synthetic", fingerprint=fingerprint(tx, ty, vx, vy))


_DATA: dict[str, object] = {}


def bench_data(spec: dict):
    """{"path": P} -> CIFAR-10 from P (decoded once, then cached); {"synthetic": [n_train, n_test]}.
    Shuffled once with a fixed seed: an image tree is stored class by class, and the runs here take the
    first N images, which must mix the classes (the short run learns something, the equivalence check
    sees varied predictions). Every measurement sees the same order."""
    key = json.dumps(spec, sort_keys=True)
    if key not in _DATA:
        if "path" in spec:
            from dse.core.io.data import load_cifar10

            d = load_cifar10(spec["path"])
        else:
            d = synthetic_data(*spec["synthetic"])
        g = torch.Generator().manual_seed(0)
        tr, te = torch.randperm(len(d.train_x), generator=g), torch.randperm(len(d.test_x), generator=g)
        _DATA[key] = Cifar10(d.train_x[tr], d.train_y[tr], d.test_x[te], d.test_y[te], d.source, d.fingerprint)
    return _DATA[key]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_now_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    peak = resource.getrusage(who).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 1024, 1)  # bytes on macOS, KiB else


def untrained_checkpoint(network: str, width: float, rate: float, seed: int = 0):
    """A freshly initialised model as a Checkpoint (its BN statistics stand in for those of `rate`):
    enough for timing, where the weights' values do not matter."""
    torch.manual_seed(seed)
    model = build_model(network, width)
    meta = {"network": network, "width": width, "shortcut_kernel": 1, "mapping": "default", "dropconnect": 0.0,
            "seed": seed}
    stats = bn_buffers(model)
    return Checkpoint(meta=meta, state=model.state_dict(), bn_stats={0.0: stats, float(rate): stats})


def _ensure_loadable(path: Path) -> None:
    """dse.core.io.checkpoint sniffs for pickles by the first byte (0x80) or 'PK', which is also the low byte of a
    safetensors header length 1 time in ~128; such a file is re-saved with 8 more metadata bytes."""
    from safetensors import safe_open

    try:
        load_checkpoint(path)
        return
    except DSEError as e:
        if "looks like a pickle" not in str(e):
            raise
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["dse"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    state = {k.partition("/")[2]: v for k, v in tensors.items() if k.startswith("model/")}
    bn: dict[float, dict] = {}
    for k, v in tensors.items():
        if k.startswith("bn/"):
            rate, _, name = k[3:].partition("/")
            bn.setdefault(float(rate), {})[name] = v
    save_checkpoint(path, state, {**meta, "padding": "........"}, bn)
    load_checkpoint(path)


def balanced_orders(n: int) -> list[list[int]]:
    """A Williams design: orders of n items in which each item comes directly after every other one equally
    often (n orders for even n, 2n for odd), so what one leaves behind (a DataLoader's workers prefetching
    the next batches, a cold cache) falls on each of the others alike. A plain rotation would not do that:
    in every rotation of one order, the same item follows the reference."""
    first = [0] + [(j + 1) // 2 if j % 2 else n - j // 2 for j in range(1, n)]  # 0, 1, n-1, 2, n-2, ...
    orders = [[(k + i) % n for k in first] for i in range(n)]
    return orders + [o[::-1] for o in orders] if n % 2 and n > 1 else orders


def interleaved(steps: dict[str, Callable[[int], object]], rounds: int, warmup: int, dev: torch.device) -> dict:
    """Call steps[k](i) for every k in turn, for i in range(warmup + R), each timed round in the next order
    of `balanced_orders` and R `rounds` rounded up to whole designs; returns each k's seconds per timed round
    (the rounds after `warmup`: R of them, which callers count)."""
    keys = list(steps)
    orders = balanced_orders(len(keys))
    rounds = -(-rounds // len(orders)) * len(orders)
    times: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(warmup + rounds):
        for j in orders[(i - warmup) % len(orders)]:
            k = keys[j]
            _sync(dev)
            t0 = time.perf_counter()
            steps[k](i)
            _sync(dev)
            if i >= warmup:
                times[k].append(time.perf_counter() - t0)
    return times


def _trainer_state(network: str, width: float, dropconnect: float, batch_size: int, dev):
    """The model (drop-connect on, train mode, channels_last), SGD and recipe `dse.core.training.train.train` sets
    up."""
    r = Recipe(batch_size=batch_size)
    torch.manual_seed(0)
    model = build_model(network, width).to(dev, memory_format=torch.channels_last)
    add_dropconnect(model, dropconnect)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov,
                          weight_decay=r.weight_decay)
    return model, opt, r


def _project_trainer(d, network: str, width: float, *, dropconnect: float, batch_size: int, n: int, dev,
                     precision: str = "fp32"):
    """The state `dse.core.training.train.train` sets up, and a step function running its loop body (`train_step`)."""
    model, opt, r = _trainer_state(network, width, dropconnect, batch_size, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=False)  # as the trainer: bf16 needs no loss scaling
    x, y = d.train_x[:n].to(dev), d.train_y[:n].to(dev)
    g = torch.Generator(device=dev).manual_seed(0)
    order = torch.randperm(n, generator=g, device=dev)

    def step(i: int):
        idx = order[(i * batch_size) % n : (i * batch_size) % n + batch_size]
        train_step(model, opt, scaler, x[idx], y[idx], generator=g, recipe=r, device=dev, precision=precision)

    return step


def _model_step(d, network: str, width: float, *, dropconnect: float, batch_size: int, n: int, dev,
                precision: str = "fp32"):
    """The limit for the trainer: the same model (drop-connect included) and optimizer stepping on batches
    already normalised and channels_last in memory (no augmentation); forward, loss, backward, update."""
    import torch.nn.functional as F

    model, opt, r = _trainer_state(network, width, dropconnect, batch_size, dev)
    batches = [(normalize(d.train_x[i : i + batch_size].to(dev)).contiguous(memory_format=torch.channels_last),
                d.train_y[i : i + batch_size].to(dev)) for i in range(0, n - batch_size + 1, batch_size)]

    def step(i: int):
        x, y = batches[i % len(batches)]
        with autocast(dev, precision):
            loss = F.cross_entropy(model(x), y, label_smoothing=r.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def train_compare(data: dict, network: str, width: float, *, dropconnect: float, batch_size: int, warmup: int,
                  steps: int, workers: int = 2, device: str = "cpu", precision: str = "fp32") -> dict:
    """Images/s of the project's training step at p=`dropconnect` and at p=0 (in `precision`), of the model's
    own step on in-memory batches (the same precision: the trainer's limit) and of the plain fp32 reference,
    interleaved step by step in this process."""
    d, dev = bench_data(data), torch.device(device)
    n = min(len(d.train_x), (warmup + steps) * batch_size)
    if n < batch_size:
        raise DSEError(f"batch size {batch_size} exceeds the {len(d.train_x)} training images")
    impls = {"project": _project_trainer(d, network, width, dropconnect=dropconnect, batch_size=batch_size, n=n,
                                         dev=dev, precision=precision),
             "project_p0": _project_trainer(d, network, width, dropconnect=0.0, batch_size=batch_size, n=n, dev=dev,
                                            precision=precision),
             "model_step": _model_step(d, network, width, dropconnect=dropconnect, batch_size=batch_size, n=n, dev=dev,
                                       precision=precision),
             "reference": _reference_trainer(d, network, width, batch_size=batch_size, n=n, workers=workers, dev=dev)}
    times = interleaved(impls, steps, warmup, dev)
    steps = len(times["project"])  # rounded up to whole balanced designs
    return {"network": network, "width": width, "dropconnect": dropconnect, "batch_size": batch_size,
            "steps": steps, "warmup": warmup, "workers": workers, "precision": precision,
            "images_per_s": {k: steps * batch_size / sum(v) for k, v in times.items()},
            "step_s": {k: [round(t, 3) for t in v] for k, v in times.items()}}


def train_widths(data: dict, network: str, widths, *, dropconnect: float, batch_size: int, warmup: int, steps: int,
                 device: str = "cpu") -> dict:
    """Seconds per epoch of the project's training step at each width, interleaved step by step."""
    d, dev = bench_data(data), torch.device(device)
    n = min(len(d.train_x), (warmup + steps) * batch_size)
    impls = {str(w): _project_trainer(d, network, w, dropconnect=dropconnect, batch_size=batch_size, n=n,
                                      dev=dev) for w in widths}
    times = interleaved(impls, steps, warmup, dev)
    steps = len(times[str(widths[0])])  # rounded up to whole balanced designs
    return {"network": network, "dropconnect": dropconnect, "rows": [
        {"width": float(w), "images_per_s": steps * batch_size / sum(times[str(w)]),
         "epoch_s": TRAIN_IMAGES * sum(times[str(w)]) / (steps * batch_size)} for w in widths]}


def train_project(data: dict, network: str, width: float, *, dropconnect: float, batch_size: int, warmup: int,
                  steps: int, device: str = "cpu", out: str | None = None, calib_rates=(), calib_images=None,
                  precision: str = "fp32") -> dict:
    """One end-to-end run of `dse.core.training.train.train` (one epoch of (warmup + steps) batches): its images/s over
    the steps after `warmup` and its peak memory. With `out`, the checkpoint (BN calibrated at
    `calib_rates`) is kept for the fault campaign."""
    d = bench_data(data)
    dev = torch.device(device)
    small = Cifar10(d.train_x, d.train_y, d.test_x[:100], d.test_y[:100], d.source, d.fingerprint)
    n = (warmup + steps) * batch_size
    if n > len(d.train_x):
        raise DSEError(f"{warmup + steps} steps of {batch_size} need {n} training images; "
                       f"the data has {len(d.train_x)}")
    cfg = TrainConfig(network=network, width=width, dropconnect=dropconnect, seed=0,
                      recipe=Recipe(epochs=1, batch_size=batch_size), calib_rates=tuple(calib_rates),
                      calib_images=calib_images, max_train_images=n)
    stamps: list[float] = []

    def on_step(done, total):
        _sync(dev)
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(out) if out else Path(tmp) / "bench.safetensors"
        t0 = time.perf_counter()
        train(cfg, small, path, device=dev, overwrite=True, progress=False, on_step=on_step, log=lambda *_: None,
              precision=precision)
        total = time.perf_counter() - t0
        if out:
            _ensure_loadable(path)
    start = stamps[warmup - 1] if warmup else t0
    return {"network": network, "width": width, "dropconnect": dropconnect, "batch_size": batch_size,
            "steps": steps, "images_per_s": steps * batch_size / (stamps[-1] - start), "total_s": round(total, 2),
            "checkpoint": out}


def _load_ckpt(ckpt: str | dict):
    if isinstance(ckpt, dict):  # {"untrained": [network, width, rate]}
        return untrained_checkpoint(*ckpt["untrained"])
    return load_checkpoint(ckpt)


def campaign_compare(data: dict, ckpt: str | dict, rate: float, *, instances: int, test_images: int,
                     batch_size: int = 500, workers: int = 2, device: str = "cpu", seed: int = 0,
                     calib_images: int = 500, precision: str = "fp32", int8: bool = False,
                     also: tuple[str, ...] = ()) -> dict:
    """Image-instances/s of four ways to run `instances` crossbar instances over `test_images` images,
    interleaved instance by instance: the project's (`Evaluator.accuracy(FaultInjector.weights(i, ...))`, the
    loop body of `Evaluator.run`), the same under the chip BN protocol (each instance first re-estimates its
    BN statistics from `calib_images` training images), the same model's plain inference (no faults;
    channels_last, the evaluator's precision) and the naive reference (deepcopy, torch.rand masks, fp32 NCHW,
    a DataLoader over ToTensor + Normalize). Returns the accuracies of the project and the reference per
    instance."""
    d, ck, dev = bench_data(data), _load_ckpt(ckpt), torch.device(device)
    x, y = head(d.test_x, d.test_y, test_images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an uncalibrated short run warns about its BN statistics
        ev = Evaluator(ck, x, y, dev, batch_size=batch_size, precision=precision)
        ev.use_bn_for(0.0)
        quantized = ev.accuracy(ev.injector.weights(None, 0.0))  # as `evaluate` reports it
        ev.use_bn_for(rate)
    ev.set_calibration(d.train_x, min(calib_images, len(d.train_x)))
    accs: dict[str, list[float]] = {"project": [], "naive": []}
    calib_times: list[float] = []
    steps = {"project": _project_step(ev, rate, seed, accs), "chip": _chip_step(ev, rate, seed, calib_times),
             "plain": _plain_step(ev),
             "naive": _naive_step(ck, x, y, dev=dev, rate=rate, seed=seed, batch_size=batch_size, workers=workers,
                                  accs=accs)}
    if int8:  # the int8 engine on the same maps, its calibration images the chip protocol's (a fixed set)
        steps["int8"], parts = _int8_step(ck, x, y, train_x=d.train_x, dev=dev, batch_size=batch_size, rate=rate,
                                          seed=seed, calib_images=calib_images, accs=accs)
    for other in also:  # another float precision's campaign (bf16 beside an fp32 project), for the int8 ratios
        steps[other] = _float_step(ck, x, y, dev=dev, batch_size=batch_size, rate=rate, seed=seed, precision=other,
                                   accs=accs)
    for f in steps.values():  # warm-up (oneDNN primitives), untimed
        f(-1)
    times = interleaved(steps, instances, 0, dev)
    n, instances = len(x), len(times["project"])  # rounded up to whole balanced designs
    calib_s = sum(calib_times) / len(calib_times)  # timed directly: a difference of two sums is noisier
    full_instance_s = sum(times["project"]) / instances * FULL_TEST_SET / n
    return {"network": ck.meta["network"], "width": ck.meta["width"], "fault_rate": rate, "instances": instances,
            "calib_images": min(calib_images, len(d.train_x)), "calib_s": calib_s,
            "chip_overhead_full_test_set": calib_s / full_instance_s,
            "images": n, "workers": workers, "path": ev.fast_reason, "fault_free_quantized_accuracy": quantized,
            "precision": ev.precision,
            "image_instances_per_s": {k: instances * n / sum(v) for k, v in times.items()},
            "instance_s": {k: [round(t, 3) for t in v] for k, v in times.items()}, "accuracies": accs,
            **({"int8_parts_s": {k: sum(v) / len(v) for k, v in parts.items() if k != "engine"},
                "int8_engine": parts["engine"]} if int8 else {})}


def _project_step(ev, rate: float, seed: int, accs: dict):
    """The project's campaign step: one instance's faulty weights, then the test pass (`Evaluator.run`'s body)."""
    def step(i: int):
        w = ev.injector.weights(i, rate, seed)
        if i >= 0:
            accs["project"].append(ev.accuracy(w))

    return step


def _chip_step(ev, rate: float, seed: int, calib_times: list):
    """The chip protocol's step: the calibration pass timed on its own (into `calib_times`), then the same test
    pass as the project's."""
    def step(i: int):
        w = ev.injector.weights(max(i, 0), rate, seed)
        _sync(ev.device)
        t0 = time.perf_counter()
        w = ev.chip_weights(w)
        _sync(ev.device)
        if i >= 0:
            calib_times.append(time.perf_counter() - t0)
        ev.accuracy(w)

    return step


def _plain_step(ev):
    """Plain inference of the evaluator's model (a copy, with the same BN statistics), no faults."""
    plain = copy.deepcopy(ev.model)

    def step(i: int):
        with torch.no_grad(), autocast(ev.device, ev.precision):
            for xb in ev.x:
                plain(xb).argmax(1)

    return step


def _naive_step(ck, x, y, *, dev, rate: float, seed: int, batch_size: int, workers: int, accs: dict):
    """The naive reference's step: a deepcopy with torch.rand masks per instance, fp32 NCHW, a DataLoader over
    ToTensor + Normalize; BN statistics the checkpoint's nearest calibrated ones."""
    naive = ck.build_model().to(dev).eval()
    chosen = nearest_rate(ck.bn_stats, rate)
    if chosen is not None:
        load_bn_buffers(naive, ck.bn_stats[chosen])
    loader = torch.utils.data.DataLoader(_PILDataset(x, y, _transforms(False)), batch_size=batch_size,
                                         shuffle=False, num_workers=workers)

    def step(i: int):
        faulty = _naive_instance(naive, ck.meta["mapping"], rate, max(i, 0), seed)
        correct = total = 0
        with torch.no_grad():
            for xb, yb in loader:
                correct += (faulty(xb.to(dev)).argmax(1).cpu() == yb).sum().item()
                total += len(yb)
        if i >= 0:
            accs["naive"].append(100.0 * correct / total)

    return step


def _float_step(ck, x, y, *, dev, batch_size: int, rate: float, seed: int, precision: str, accs: dict):
    """The project's campaign step in `precision` (its own evaluator), for a ratio beside the project's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = Evaluator(ck, x, y, dev, batch_size=batch_size, precision=precision)
        ev.use_bn_for(rate)
    accs[precision] = []

    def step(i: int):
        acc = ev.accuracy(ev.injector.weights(max(i, 0), rate, seed))
        if i >= 0:
            accs[precision].append(acc)

    return step


def _int8_step(ck, x, y, *, train_x, dev, batch_size: int, rate: float, seed: int, calib_images: int, accs: dict):
    """A campaign step through the int8 engine (paper protocol, scales per rate), and the seconds of its
    parts per instance: the rebuild (packing), the activation ranges (once per rate) and the test pass."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = Evaluator(ck, x, y, dev, batch_size=batch_size, precision="int8", calib_x=train_x)
        ev.set_calibration(train_x, min(calib_images, len(train_x)))
        ev.use_bn_for(rate)
    parts: dict = {"pack_s": [], "ranges_s": [], "test_s": [], "engine": ev.int8.engine.engine}
    accs["int8"] = []

    def step(i: int):
        acc = ev.accuracy(ev.injector.weights(max(i, 0), rate, seed))
        if i < 0:  # the warm-up ran the rate's range calibration, which later instances reuse
            parts["ranges_once_s"] = [ev.int8.last["ranges_s"]]
        else:
            accs["int8"].append(acc)
            for k, v in ev.int8.last.items():
                parts[k].append(v)

    return step, parts


def int8_equivalence(data: dict, ckpt: str, rate: float, *, bn: str, instances: int, test_images: int,
                     batch_size: int = 500, device: str = "cpu", seed: int = 0, calib_images: int = 500) -> dict:
    """Accuracy of the same crossbar instances (same maps) in fp32 and through the int8 engine under BN protocol
    `bn` (both calibrating on the same `calib_images` training images), instance by instance in turn, with the
    seconds each took: whether int8 may evaluate on this machine."""
    d, ck, dev = bench_data(data), _load_ckpt(ckpt), torch.device(device)
    x, y = head(d.test_x, d.test_y, test_images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evs = {p: Evaluator(ck, x, y, dev, batch_size=batch_size, precision=p, calib_x=d.train_x) for p in ("fp32",
                                                                                                            "int8")}
        for ev in evs.values():
            ev.set_calibration(d.train_x, min(calib_images, len(d.train_x)))
            ev.use_bn_for(rate)
    if evs["int8"].precision != "int8":
        raise DSEError(f"int8 cannot evaluate {ck.meta['network']}: {evs['int8'].choice.reason}")
    accs = {p: [] for p in evs}
    secs = {p: 0.0 for p in evs}
    for i in range(instances):
        for p in (("fp32", "int8") if i % 2 == 0 else ("int8", "fp32")):
            _sync(dev)
            t0 = time.perf_counter()
            accs[p].append(evs[p].accuracy(evs[p].injector.weights(i, rate, seed), bn))
            _sync(dev)
            secs[p] += time.perf_counter() - t0
    mean = {p: sum(a) / len(a) for p, a in accs.items()}
    return {"network": ck.meta["network"], "checkpoint": Path(ck.path).name, "fault_rate": rate, "bn": bn,
            "calib_images": min(calib_images, len(d.train_x)), "instances": instances, "images": len(y),
            "fp32_mean": mean["fp32"], "int8_mean": mean["int8"], "diff": abs(mean["int8"] - mean["fp32"]),
            "max_instance_diff": max(abs(a - b) for a, b in zip(accs["fp32"], accs["int8"])),
            "speedup": secs["fp32"] / secs["int8"], "fp32_s": round(secs["fp32"] / instances, 3),
            "int8_s": round(secs["int8"] / instances, 3), "engine": evs["int8"].int8.engine.engine}


def campaign_project(data: dict, ckpt: str | dict, rate: float, *, instances: int, test_images: int,
                     batch_size: int = 500, device: str = "cpu", seed: int = 0, precision: str = "fp32") -> dict:
    """One end-to-end `dse.core.evaluation.evaluate.evaluate` at one fault rate: image-instances/s over the rate's own
    `time_s` (BN statistics, every instance's faulty weights and test pass), accuracies, peak memory."""
    from scipy import stats  # noqa: F401  imported by the first summary: a one-off second, not campaign time

    d, ck, dev = bench_data(data), _load_ckpt(ckpt), torch.device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        protocol = Protocol(instances=instances, seed=seed, test_images=test_images)
        res = evaluate(ck, d.test_x, d.test_y, [rate], protocol=protocol, device=dev, progress=False,
                       batch_size=batch_size,
                       precision=precision, instances_per_pass=1)  # K > 1 has its own measurement
    r = res["results"][0]
    return {"network": ck.meta["network"], "fault_rate": rate, "instances": r["n"], "images": r["test_images"],
            "seconds": r["time_s"], "image_instances_per_s": r["n"] * r["test_images"] / r["time_s"],
            "accuracies": r["accuracies"], "mean": r["mean"], "precision": res["precision"]}


def precision_equivalence(data: dict, ckpt: str, rate: float, *, instances: int, test_images: int,
                          batch_size: int = 500, device: str = "cpu", seed: int = 0) -> dict:
    """Accuracy of the same crossbar instances (same maps) evaluated in fp32 and in bf16, instance by instance
    in turn, and the seconds each took: whether bf16 may evaluate on this machine, and what it saves."""
    d, ck, dev = bench_data(data), _load_ckpt(ckpt), torch.device(device)
    x, y = head(d.test_x, d.test_y, test_images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evs = {p: Evaluator(ck, x, y, dev, batch_size=batch_size, precision=p) for p in ("fp32", "bf16")}
        for ev in evs.values():
            ev.use_bn_for(rate)
    accs = {p: [] for p in evs}
    secs = {p: 0.0 for p in evs}
    for i in range(instances):
        for p in (("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")):
            ev = evs[p]
            _sync(dev)
            t0 = time.perf_counter()
            accs[p].append(ev.accuracy(ev.injector.weights(i, rate, seed)))
            _sync(dev)
            secs[p] += time.perf_counter() - t0
    mean = {p: sum(a) / len(a) for p, a in accs.items()}
    return {"network": ck.meta["network"], "checkpoint": Path(ck.path).name, "fault_rate": rate,
            "instances": instances, "images": len(y), "fp32_mean": mean["fp32"], "bf16_mean": mean["bf16"],
            "diff": abs(mean["bf16"] - mean["fp32"]),
            "max_instance_diff": max(abs(a - b) for a, b in zip(accs["fp32"], accs["bf16"])),
            "speedup": secs["fp32"] / secs["bf16"], "fp32_s": round(secs["fp32"] / instances, 3),
            "bf16_s": round(secs["bf16"] / instances, 3), "paths": {p: ev.fast_reason for p, ev in evs.items()}}


def campaign_batched(data: dict, ckpt: str | dict, rate: float, *, instances: int, test_images: int,
                     per_batch: int, batch_size: int = 500, device: str = "cpu", seed: int = 0,
                     precision: str = "fp32") -> dict:
    """Image-instances/s when `per_batch` instances run as one batched call (torch.func.vmap over the
    BN-folded forward: the convs become grouped convs), the GPU's way to fill the device."""
    from torch.func import functional_call, vmap

    d, ck, dev = bench_data(data), _load_ckpt(ckpt), torch.device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = Evaluator(ck, *head(d.test_x, d.test_y, test_images), dev, batch_size=batch_size, precision=precision)
        ev.use_bn_for(rate)
    base = ev._params(None)
    try:
        fast = FoldedForward(ev.model, mkldnn=False)  # oneDNN's fused op has no vmap rule
    except Exception:  # the plain model is always there to fall back on
        fast = None

    def forward(w, x):
        return fast(x, {**base, **w}) if fast else functional_call(ev.model, w, (x,))

    accs = []
    _sync(dev)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")  # pooling loops over the k instances: tiny
        for start in range(0, instances, per_batch):
            ws = [ev.injector.weights(i, rate, seed) for i in range(start, min(instances, start + per_batch))]
            stacked = {k: torch.stack([w[k] for w in ws]) for k in ws[0]}
            correct = torch.zeros(len(ws), dtype=torch.long, device=dev)
            with torch.no_grad(), autocast(dev, ev.precision):
                for x, y in zip(ev.x, ev.y):
                    correct += (vmap(forward, in_dims=(0, None))(stacked, x).argmax(-1) == y).sum(1)
            accs += (100.0 * correct.cpu() / ev.n_images).tolist()
    _sync(dev)
    s = time.perf_counter() - t0
    return {"network": ck.meta["network"], "per_batch": per_batch, "fault_rate": rate, "instances": instances,
            "images": ev.n_images, "seconds": round(s, 3), "image_instances_per_s": instances * ev.n_images / s,
            "accuracies": accs, "mean": sum(accs) / len(accs)}


def calibration(data: dict, ckpt: str | dict, rates, images: int, batch_size: int = 500, device: str = "cpu") -> dict:
    """Seconds per fault rate of BN re-estimation (`dse.core.evaluation.calibrate.calibrate_bn`) on `images` training
    images, and what that implies for a pass over the whole training set."""
    d, ck, dev = bench_data(data), _load_ckpt(ckpt), torch.device(device)
    model = ck.build_model().to(dev, memory_format=torch.channels_last)
    x = d.train_x[:images]
    calibrate_bn(model, x[:batch_size], [0.0], ck.meta["mapping"], batch_size=batch_size, device=dev, progress=False)
    rows = []
    for rate in rates:
        _sync(dev)
        t0 = time.perf_counter()
        calibrate_bn(model, x, [rate], ck.meta["mapping"], batch_size=batch_size, device=dev, progress=False)
        _sync(dev)
        s = time.perf_counter() - t0
        rows.append({"rate": rate, "images": len(x), "seconds": round(s, 3), "images_per_s": len(x) / s,
                     "full_train_set_s": round(TRAIN_IMAGES * s / len(x), 1)})
    return {"network": ck.meta["network"], "rates": rows}


def eval_instances(data: dict, network: str, width: float, *, rate: float, instances, test_images: int,
                   batch_size: int = 500, device: str = "cpu") -> dict:
    """Seconds of `Evaluator.run` for each instance count in `instances` (one evaluator, untrained
    weights: timing only)."""
    d, dev = bench_data(data), torch.device(device)
    ev = Evaluator(untrained_checkpoint(network, width, rate), *head(d.test_x, d.test_y, test_images),
                   dev, batch_size=batch_size, instances_per_pass=1)
    ev.run(rate, Protocol(instances=2), progress=False)  # warm-up, and scipy imported by its summary
    rows = []
    for n in instances:
        r = ev.run(rate, Protocol(instances=n), progress=False)
        rows.append({"instances": n, "seconds": r["time_s"], "per_instance_s": r["time_s"] / n})
    return {"network": network, "width": width, "images": ev.n_images, "rows": rows}


def eval_widths(data: dict, network: str, widths, *, rate: float, instances: int, test_images: int,
                batch_size: int = 500, device: str = "cpu") -> dict:
    """Seconds per crossbar instance of the evaluator at each width (interleaved instance by instance;
    untrained weights: timing only), beside each width's MACs per image."""
    d, dev = bench_data(data), torch.device(device)
    evs = {}
    for w in widths:
        evs[str(w)] = Evaluator(untrained_checkpoint(network, w, rate), *head(d.test_x, d.test_y, test_images),
                                dev, batch_size=batch_size)
        evs[str(w)].use_bn_for(rate)
    steps = {k: (lambda i, ev=ev: ev.accuracy(ev.injector.weights(i, rate))) for k, ev in evs.items()}
    times = interleaved(steps, instances, 1, dev)
    instances = len(times[str(widths[0])])  # rounded up to whole balanced designs
    return {"network": network, "images": min(test_images, len(d.test_x)), "rows": [
        {"width": float(w), "per_instance_s": sum(times[str(w)]) / instances,
         "macs": sum(layer.macs for layer in count_layers(network, w))} for w in widths]}


def _top_ops(prof, k: int = 6) -> dict:
    """The k busiest ops by self CPU time, and the shares of all convolution and all BatchNorm kernels."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: -e.self_cpu_time_total)

    def share(words) -> float:
        return sum(e.self_cpu_time_total for e in events if any(w in e.key for w in words)) / total

    return {"top": [{"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count} for e in events[:k]],
            "conv_share": share(("convolution",)), "batch_norm_share": share(("batch_norm",))}


def profile_breakdown(data: dict, network: str, width: float, *, dropconnect: float, batch_size: int,
                      eval_batch: int = 500, device: str = "cpu") -> dict:
    """Self-CPU-time shares of the busiest ops (torch.profiler): one step of the trainer's loop body, one
    batch of the fast evaluation forward and one of plain inference."""
    from torch.profiler import profile

    d, dev = bench_data(data), torch.device(device)
    step = _project_trainer(d, network, width, dropconnect=dropconnect, batch_size=batch_size,
                            n=min(len(d.train_x), 2 * batch_size), dev=dev)
    step(0)
    with profile() as p_train:
        step(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = Evaluator(untrained_checkpoint(network, width, 0.1), d.test_x[:eval_batch], d.test_y[:eval_batch],
                       dev, batch_size=eval_batch)
    w = ev.injector.weights(0, 0.1)
    ev.accuracy(w)
    with profile() as p_eval:
        ev.accuracy(w)
    with torch.no_grad(), autocast(dev, ev.precision), profile() as p_plain:
        ev.model(ev.x[0])
    return {"network": network, "train_step": _top_ops(p_train), "eval_fast": _top_ops(p_eval),
            "eval_plain": _top_ops(p_plain), "eval_path": ev.fast_reason}


def page_render(data: dict, checkpoints: str, renders: int = 3, device: str = "cpu") -> dict:
    """Server-side seconds for the explorer's page (Streamlit's AppTest running app.py, as the server runs a
    session's script) on a fresh store filled from `checkpoints`: the first render (it imports the shipped
    manifest into the store) and `renders` more (cached queries and figures), median of those."""
    import statistics
    import tempfile

    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parents[2] / "app.py")
    with tempfile.TemporaryDirectory() as tmp:
        saved = {k: os.environ.get(k) for k in ("DSE_STORE", "DSE_CHECKPOINTS", "DSE_RUNS")}
        os.environ.update(DSE_STORE=str(Path(tmp) / "results.sqlite"), DSE_CHECKPOINTS=str(checkpoints),
                          DSE_RUNS=str(Path(tmp) / "runs"))
        try:
            times = []
            for _ in range(renders + 1):
                t0 = time.perf_counter()
                at = AppTest.from_file(app, default_timeout=300).run()
                times.append(time.perf_counter() - t0)
                if at.exception:
                    raise DSEError(f"the page failed: {at.exception[0].message}")
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return {"checkpoints": str(checkpoints), "first_s": times[0], "renders": renders,
            "median_s": statistics.median(times[1:]), "times_s": [round(t, 3) for t in times]}


MEASUREMENTS: dict[str, Callable[..., dict]] = {
    "train_compare": train_compare, "train_widths": train_widths, "train_project": train_project,
    "campaign_compare": campaign_compare, "campaign_project": campaign_project, "campaign_batched": campaign_batched,
    "calibration": calibration, "eval_instances": eval_instances, "eval_widths": eval_widths,
    "profile": profile_breakdown, "page_render": page_render, "precision_equivalence": precision_equivalence,
    "int8_equivalence": int8_equivalence,
}


def _measure_here(kind: str, kwargs: dict, isolated: bool) -> dict:
    """Run one measurement in this process and add its memory figures."""
    baseline = None
    if isolated:  # load the data before the baseline is read, so it counts as baseline
        bench_data(kwargs["data"])
        baseline = _rss_now_mb()
    dev = torch.device(kwargs.get("device", "cpu"))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    out = MEASUREMENTS[kind](**kwargs)
    out.update(kind=kind, rss_baseline_mb=baseline, peak_rss_mb=_peak_rss_mb(), isolated=isolated)
    if dev.type == "cuda":
        out["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return out


def measure(kind: str, isolate: bool = True, keep_freed: bool = True, **kwargs) -> dict:
    """One measurement; in a fresh `python -m dse.bench` process when `isolate` (own peak RSS), whose malloc
    keeps freed memory as the CLI's does (`dse.core.runtime.allocator`) or has glibc's defaults (`keep_freed` False).
    In this process the setting is left as it is: it is process-wide and sticks to the heap once grown."""
    if not isolate:
        return _measure_here(kind, kwargs, isolated=False)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    spec = json.dumps({"kind": kind, "kwargs": kwargs, "keep_freed": keep_freed})
    proc = subprocess.run([sys.executable, "-m", "dse.bench", spec], capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DSEError(f"benchmark step {kind} failed: {err}")
    return json.loads(lines[-1])


def _child_main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    out = {"keep_freed": spec.get("keep_freed", True) and keep_freed_memory()}  # before any tensor is made
    print(json.dumps({**_measure_here(spec["kind"], spec["kwargs"], isolated=True), **out}))
    return 0


