"""Which arithmetic a phase (train / evaluate / calibrate) runs in: fp32, or bf16 autocast where the machine
has native bf16 units and bf16 is measurably faster there.

- Capability: AVX512-BF16 or AMX on a CPU (torch.cpu's own probes; `get_cpu_capability()` never names
  them), bf16 support on a CUDA GPU.
- Speed: measured once per (machine, network, phase) on first use, fp32 and bf16 interleaved, and cached
  per machine (in the data cache folder, DSE_CACHE, default ~/.cache/dse) so later runs decide at once.
- Answers: an evaluation or calibration runs in bf16 only once this machine has shown, for that network,
  the same mean accuracy as fp32 on the same fault maps (`python -m dse bench` runs that check and records
  it here); training has no such gate, since fp32 and bf16 runs are different runs anyway.
- int8 (evaluation only; dse/core/evaluation/int8.py): where the CPU has int8 kernels (x86 with VNNI or AMX-INT8), `auto`
  evaluates in int8 only once `python -m dse bench` has shown on this machine, for that network, the same mean
  accuracy as fp32 on the same maps (within 0.2 points under both BN protocols, `paper` and `chip`, at 10% and
  30%) and a faster campaign than the float precision auto would otherwise use. Its float parts (a chip's BN
  pass, the activation-range pass) run in that float precision.
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
from dse.core.io.atomic import atomic_write
from dse.core.io.data import cache_dir
from dse.core.models import build_model
from dse.core.protocol import PRECISIONS, check_precision  # noqa: F401  (the names live torch-free)
from dse.core.runtime.int8_kernels import int8_capability

PHASES = ("train", "evaluate", "calibrate")
MIN_SPEEDUP = 1.05  # below this, bf16's rounding is not worth the time it saves
EQUIVALENCE_POINTS = 0.1  # largest mean-accuracy difference from fp32 that counts as the same answer
INT8_POINTS = 0.2  # the same for int8 (issue 39), on each of INT8_CHECKS
INT8_CHECKS = ("paper/0.1", "paper/0.3", "chip/0.1", "chip/0.3")  # BN protocol / fault rate, each shown equal
INT8_MIN_SAMPLE = 10 * 10_000  # image-instances per check (10 instances x the 10,000 test images) that decide
CACHE_VERSION = 1


def default_precision() -> str:
    """What commands use when --precision is not given: $DSE_PRECISION, else auto."""
    return check_precision(os.environ.get("DSE_PRECISION") or "auto")


@dataclass(frozen=True)
class Capability:
    device: str  # "cpu" or "cuda"
    native_bf16: bool
    name: str  # what the hardware offers, in words: "AMX", "AVX512-BF16", "AVX2", "cuda: NVIDIA H200"
    int8: bool = False  # int8 kernels (x86 VNNI or AMX-INT8 with an x86 quantized engine)
    int8_name: str = "no int8 kernels"  # in words: "VNNI", "AMX-INT8", or why not


def capability(device: torch.device | str = "cpu") -> Capability:
    device = torch.device(device)
    if device.type == "cuda":
        return Capability("cuda", torch.cuda.is_bf16_supported(), f"cuda: {torch.cuda.get_device_name(device)}",
                          False, "cuda: the int8 engine runs on x86 CPUs only")
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    avx512_bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    isa = torch.backends.cpu.get_cpu_capability()
    name = "AMX" if amx else "AVX512-BF16" if avx512_bf16 else isa
    return Capability("cpu", amx or avx512_bf16, name, *int8_capability())


@dataclass(frozen=True)
class Choice:
    precision: str  # "fp32", "bf16" or "int8"
    reason: str  # one line, shown beside results
    float_precision: str | None = None  # int8: what its float parts (BN and range passes) run in

    def __post_init__(self):
        if self.float_precision is None:
            object.__setattr__(self, "float_precision", "fp32" if self.precision == "int8" else self.precision)

    def __str__(self) -> str:
        return f"{self.precision} ({self.reason})"


def choose(requested: str, phase: str, cap: Capability, speedup: float | None = None,
           equivalence: dict | None = None, *, int8_speed: dict | None = None,
           int8_equivalence: dict | None = None) -> Choice:
    """The precision to run `phase` in. speedup: measured bf16 time over fp32 time's inverse (None: not
    measured); equivalence: this machine's recorded fp32-vs-bf16 check for the network (None: none);
    int8_speed: {"vs_fp32": x, "vs_bf16": y} of the int8 campaign; int8_equivalence: {"paper/0.1": {"ok",
    "diff"}, ...}, the recorded int8-vs-fp32 checks for the network (INT8_CHECKS)."""
    check_precision(requested)
    if phase not in PHASES:
        raise DSEError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
    if requested == "int8":
        if phase != "evaluate":
            raise DSEError(f"--precision int8 is for evaluation only; {phase} runs in float (auto, fp32 or bf16)")
        if not cap.int8:
            raise DSEError(f"--precision int8 needs int8 kernels, which this machine lacks ({cap.int8_name}); "
                           "use auto, fp32 or bf16")
        base = _float_choice("auto", phase, cap, speedup, equivalence)
        return Choice("int8", f"asked for; {cap.int8_name}, float parts in {base.precision}", base.precision)
    base = _float_choice(requested, phase, cap, speedup, equivalence)
    if requested != "auto" or phase != "evaluate":
        return base
    blocker = _int8_blocker(cap, base.precision, int8_speed, int8_equivalence)
    if blocker:
        return Choice(base.precision, f"{base.reason}; int8 not used: {blocker}")
    ratio = int8_speed[f"vs_{base.precision}"]
    return Choice("int8", f"{cap.int8_name}, measured {ratio:.2f}x {base.precision} with fp32's mean accuracy "
                          f"(within {INT8_POINTS:g} points, paper and chip BN, 10% and 30%); float parts in "
                          f"{base.precision}", base.precision)


def _int8_blocker(cap: Capability, base: str, speed: dict | None, equivalence: dict | None) -> str | None:
    """Why `auto` does not evaluate in int8 here (None: nothing stops it)."""
    if not cap.int8:
        return cap.int8_name
    missing = [k for k in INT8_CHECKS if k not in (equivalence or {})]
    if missing:
        return (f"not yet shown to give fp32's answers on this machine ({', '.join(missing)} unchecked; "
                "python -m dse bench --checkpoint ... checks it)")
    small = [k for k in INT8_CHECKS
             if equivalence[k].get("instances", 0) * equivalence[k].get("images", 0) < INT8_MIN_SAMPLE]
    if small:
        return (f"checked on too few images ({', '.join(small)}: fewer than 10 instances x 10,000 images; "
                "python -m dse bench with its default --equivalence-* decides)")
    moved = [(k, equivalence[k]["diff"]) for k in INT8_CHECKS if not equivalence[k].get("ok")]
    if moved:
        return "moved the mean accuracy by " + ", ".join(f"{d:.2f} points under {k.replace('/', ' at ')}"
                                                         for k, d in moved) + f" (> {INT8_POINTS:g})"
    ratio = (speed or {}).get(f"vs_{base}")
    if ratio is None:
        return f"its speed against {base} not measured"
    if ratio < MIN_SPEEDUP:
        return f"measured {ratio:.2f}x {base}, not faster"
    return None


def _float_choice(requested: str, phase: str, cap: Capability, speedup: float | None,
                  equivalence: dict | None) -> Choice:
    """fp32 or bf16, as before int8 existed."""
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
    int8 = {"int8_speed": rec.get("speed", {}).get(f"{network}/evaluate-int8"),
            "int8_equivalence": rec.get("int8_equivalence", {}).get(network)}
    first = choose(requested, phase, cap, speed["speedup"] if speed else None, equivalence, **int8)
    if requested in ("auto", "int8") and speed is None and first.reason.startswith("bf16 speed not measured"):
        if log:
            log(f"measuring fp32 against bf16 for {network} ({phase}), once on this machine")
        speed = measure_speed(network, phase, device)
        record(device, "speed", f"{network}/{phase}", speed)
        return choose(requested, phase, cap, speed["speedup"], equivalence, **int8)
    return first
