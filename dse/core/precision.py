"""Which arithmetic a phase (train / evaluate / calibrate) runs in: fp32, or bf16 autocast where the machine
has native bf16 units and bf16 is measurably faster there.

- Capability: AVX512-BF16 or AMX on a CPU (torch.cpu's own probes; `get_cpu_capability()` never names
  them), bf16 support on a CUDA GPU.
- Speed: measured once per (machine, network, phase) on first use, fp32 and bf16 interleaved, and cached
  per machine (in the data cache folder, DSE_CACHE, default ~/.cache/dse) so later runs decide at once.
- Answers: an evaluation or calibration runs in bf16 only once this machine has shown, for that network,
  the same mean accuracy as fp32 on the same fault maps (`python -m dse bench` runs that check and records
  it here); training has no such gate, since fp32 and bf16 runs are different runs anyway.
`choose` is the decision itself, a pure function of capability, measurement and check; `resolve` feeds it.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dse.core.errors import DSEError
from dse.core.io import atomic_write
from dse.core.protocol import PRECISIONS, check_precision  # noqa: F401  (the names live torch-free)

PHASES = ("train", "evaluate", "calibrate")
MIN_SPEEDUP = 1.05  # below this, bf16's rounding is not worth the time it saves
EQUIVALENCE_POINTS = 0.1  # largest mean-accuracy difference from fp32 that counts as the same answer
CACHE_VERSION = 1


def default_precision() -> str:
    """What commands use when --precision is not given: $DSE_PRECISION, else auto."""
    return check_precision(os.environ.get("DSE_PRECISION") or "auto")


@dataclass(frozen=True)
class Capability:
    device: str  # "cpu" or "cuda"
    native_bf16: bool
    name: str  # what the hardware offers, in words: "AMX", "AVX512-BF16", "AVX2", "cuda: NVIDIA H200"


def capability(device: torch.device | str = "cpu") -> Capability:
    device = torch.device(device)
    if device.type == "cuda":
        return Capability("cuda", torch.cuda.is_bf16_supported(), f"cuda: {torch.cuda.get_device_name(device)}")
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    avx512_bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    isa = torch.backends.cpu.get_cpu_capability()
    name = "AMX" if amx else "AVX512-BF16" if avx512_bf16 else isa
    return Capability("cpu", amx or avx512_bf16, name)


@dataclass(frozen=True)
class Choice:
    precision: str  # "fp32" or "bf16"
    reason: str  # one line, shown beside results

    def __str__(self) -> str:
        return f"{self.precision} ({self.reason})"


def choose(requested: str, phase: str, cap: Capability, speedup: float | None = None,
           equivalence: dict | None = None) -> Choice:
    """The precision to run `phase` in. speedup: measured bf16 time over fp32 time's inverse (None: not
    measured); equivalence: this machine's recorded fp32-vs-bf16 check for the network (None: none)."""
    check_precision(requested)
    if phase not in PHASES:
        raise DSEError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
    if requested != "auto":
        native = "" if requested == "fp32" or cap.native_bf16 else f"; {cap.name} has no native bf16, so it is emulated"
        return Choice(requested, f"asked for{native}")
    if not cap.native_bf16:
        return Choice("fp32", f"{cap.name}: no native bf16")
    if phase != "train":
        if equivalence is None:
            return Choice("fp32", "bf16 not yet shown to give fp32's answers on this machine "
                                  "(python -m dse bench checks it)")
        if not equivalence.get("ok"):
            return Choice("fp32", f"bf16 moved the mean accuracy by {equivalence['diff']:.2f} points "
                                  f"(> {EQUIVALENCE_POINTS:g}) on this machine")
    if speedup is None:
        return Choice("fp32", "bf16 speed not measured")
    if speedup < MIN_SPEEDUP:
        return Choice("fp32", f"bf16 measured {speedup:.2f}x fp32 here, too little to use")
    return Choice("bf16", f"{cap.name}, measured {speedup:.2f}x fp32")


# ----------------------------------------------------------------------------------- the per-machine cache

def cache_path() -> Path:
    from dse.core.data import cache_dir

    return cache_dir() / "precision.json"


def machine_key(device: torch.device | str = "cpu") -> str:
    """What makes a measurement hold: the processor, its ISA, torch, and the threads used."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda|{torch.cuda.get_device_name(device)}|torch {torch.__version__}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"cpu|{model}|{capability('cpu').name}|torch {torch.__version__}|{torch.get_num_threads()} threads"


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
        return data if data.get("version") == CACHE_VERSION else {"version": CACHE_VERSION}
    except (OSError, ValueError, AttributeError):
        return {"version": CACHE_VERSION}  # no cache yet, or an unreadable one: measure again


def machine_record(device: torch.device | str = "cpu") -> dict:
    """This machine's cached measurements: {"speed": {"net/phase": {...}}, "equivalence": {net: {...}}}."""
    return _read_cache().get(machine_key(device), {})


def record(device: torch.device | str, section: str, key: str, value: dict) -> None:
    """Store one measurement in the machine's cache (atomically; the last writer wins)."""
    data = _read_cache()
    entry = data.setdefault(machine_key(device), {}).setdefault(section, {})
    entry[key] = {**value, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode())


# ----------------------------------------------------------------------------------- measuring

def autocast(device: torch.device | str, precision: str):
    """The autocast context for a resolved precision (fp32: none)."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_speed(network: str, phase: str, device: torch.device | str = "cpu", reps: int = 2) -> dict:
    """Seconds per batch of the width-1 model in fp32 and in bf16, interleaved (warm-up first, best of
    `reps`): a forward in eval mode (evaluate), in train mode (calibrate), or a full SGD step (train)."""
    from dse.core.models import build_model

    device = torch.device(device)
    torch.manual_seed(0)
    model = build_model(network, 1.0, 1).to(device, memory_format=torch.channels_last)
    batch = 256 if phase == "train" else 500
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train(phase != "evaluate")

    def step(precision: str) -> float:
        _sync(device)
        t0 = time.perf_counter()
        if phase == "train":
            with autocast(device, precision):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad(), autocast(device, precision):
                model(x)
        _sync(device)
        return time.perf_counter() - t0

    times = {"fp32": [], "bf16": []}
    for i in range(reps + 1):
        for p in (("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")):  # alternate who goes first
            t = step(p)
            if i:  # the first round is warm-up
                times[p].append(t)
    fp32, bf16 = min(times["fp32"]), min(times["bf16"])
    return {"fp32_s": round(fp32, 4), "bf16_s": round(bf16, 4), "speedup": round(fp32 / bf16, 3), "batch": batch}


def resolve(requested: str, network: str, phase: str, device: torch.device | str = "cpu", log=None) -> Choice:
    """`choose`, fed from this machine's cache, measuring bf16's speed first if that is what is missing."""
    check_precision(requested)
    device = torch.device(device)
    cap = capability(device)
    rec = machine_record(device)
    equivalence = rec.get("equivalence", {}).get(network)
    speed = rec.get("speed", {}).get(f"{network}/{phase}")
    first = choose(requested, phase, cap, speed["speedup"] if speed else None, equivalence)
    if requested == "auto" and speed is None and first.reason == "bf16 speed not measured":
        if log:
            log(f"measuring fp32 against bf16 for {network} ({phase}), once on this machine")
        speed = measure_speed(network, phase, device)
        record(device, "speed", f"{network}/{phase}", speed)
        return choose(requested, phase, cap, speed["speedup"], equivalence)
    return first
