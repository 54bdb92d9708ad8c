"""Benchmarks (`python -m dse bench`): `measure` times the project's trainer and fault campaign,
`references` holds the plain PyTorch code they are compared with, `report` checks targets and writes
BENCHMARKS.md; `run_bench` runs them all in one go."""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from dse.bench.measure import (TRAIN_IMAGES, bench_data, load_avg, machine_info, measure, synthetic_data,  # noqa: F401
                               untrained_checkpoint)
from dse.bench.report import TARGETS, _ratio, targets, to_markdown  # noqa: F401
from dse.core.io.checkpoint import load_checkpoint
from dse.core.paper import FAULT_RATES
from dse.core.runtime import precision as P
from dse.core.runtime.int8_kernels import int8_capability


@dataclass
class BenchConfig:
    networks: tuple[str, ...] = ("resnet20", "vgg13")  # training and fault campaign
    width: float = 1.0
    batch_size: int = 256  # the trainer's recipe batch, for both trainers
    warmup_steps: int = 1  # untimed rounds first (oneDNN primitive creation, DataLoader worker start)
    train_steps: dict[str, int] = field(default_factory=lambda: {"resnet20": 8, "vgg13": 3})
    ref_workers: int = 2  # reference DataLoader workers: the PyTorch CIFAR-10 tutorial's choice
    dropconnect: float = 0.3
    fault_rate: float = 0.1
    instances: int = 6
    test_images: int = 2000
    eval_batch: int = 500
    calib_rates: tuple[float, ...] = FAULT_RATES
    calib_images: int = 2000
    scaling_instances: tuple[int, ...] = (1, 2, 4, 8)
    scaling_widths: tuple[float, ...] = (1.0, 1.2, 1.4, 1.6)
    scaling_test_images: int = 1000
    width_train_steps: int = 3
    batched_instances: int | None = None  # instances per vmapped batch; None: 8 on CUDA, off on CPU
    profile: bool = True
    page_checkpoints: str | None = None  # a checkpoint folder to render the app's page on (None: not measured)
    page_renders: int = 3
    isolate: bool = True  # each measurement in a fresh process (own peak RSS, no shared allocator state)
    precision: str = "auto"  # of the project's side of every comparison; the references stay fp32
    equivalence_instances: int = 10  # bf16 against fp32 on the same maps, per --checkpoint
    equivalence_images: int = 10_000
    int8: bool = True  # int8 rows where the CPU has int8 kernels: campaign, and equivalence on each --checkpoint
    int8_networks: tuple[str, ...] | None = None  # the int8 equivalence's networks (None: every one with a checkpoint)
    int8_rates: tuple[float, ...] = (0.1, 0.3)
    int8_protocols: tuple[str, ...] = ("paper", "chip")
    only: tuple[str, ...] | None = None  # sections to run (precision, training, campaign, int8, calibration,
    # scaling); None: all
    quick: bool = False

    @classmethod
    def quick_config(cls) -> "BenchConfig":
        """A smoke run of every measurement in a few minutes; its ratios are noisy, not results."""
        return cls(batch_size=64, train_steps={"resnet20": 2, "vgg13": 1}, instances=2, test_images=250,
                   equivalence_instances=2, equivalence_images=250,
                   calib_rates=(0.0, 0.1), calib_images=256, scaling_instances=(1, 2), scaling_widths=(1.0, 1.4),
                   scaling_test_images=250, width_train_steps=1, quick=True)

    def steps_for(self, network: str) -> int:
        return self.train_steps.get(network, min(self.train_steps.values(), default=3))


def _describe(path: str) -> str:
    """`name` (network, width, p, epochs, float test accuracy) of a given checkpoint."""
    m = load_checkpoint(path).meta
    acc = f", {m['test_accuracy']:g}% float test accuracy" if m.get("test_accuracy") is not None else ""
    return (f"`{Path(path).name}`: {m['network']} width {m['width']:g}, p={m['dropconnect']:g}, "
            f"{m.get('epochs', '?')} epochs{acc}")


def _bench_precision(cfg: BenchConfig, result: dict, m, *, nets: list[str], checkpoints: dict, given: dict, d, dev,
        tmp, log) -> None:
    """What each phase runs in here: bf16's speed measured (and cached) where the machine has it natively, the
    fp32-vs-bf16 equivalence checked on each given checkpoint and recorded for `auto` to use, then the choice."""
    cap = P.capability(dev)
    out = result["precision"] = {"capability": cap.name, "native_bf16": cap.native_bf16, "requested": cfg.precision,
                                 "speed": {}, "equivalence": [], "choices": {}}
    for net in nets:
        if cap.native_bf16 and cfg.precision == "auto":
            # with a checkpoint, evaluate's speed-up is measured on the campaign itself below
            for phase in ("train",) if net in checkpoints and not cfg.quick else ("train", "evaluate"):
                speed = P.measure_speed(net, phase, dev)
                P.record(dev, "speed", f"{net}/{phase}", speed)
                out["speed"][f"{net}/{phase}"] = speed
                log(f"precision {net} {phase}: bf16 {speed['speedup']:.2f}x fp32")
            if net in checkpoints:
                eq = m("precision_equivalence", ckpt=checkpoints[net], rate=cfg.fault_rate,
                       instances=cfg.equivalence_instances,
                       test_images=min(cfg.equivalence_images, len(d.test_x)), batch_size=cfg.eval_batch)
                eq["ok"] = eq["diff"] <= P.EQUIVALENCE_POINTS
                if not cfg.quick:  # a smoke run's few images decide nothing
                    P.record(dev, "equivalence", net, {k: eq[k] for k in ("ok", "diff", "checkpoint", "instances",
                                                                         "images", "fault_rate", "max_instance_diff")})
                    # the evaluation path's own speed-up (BN-folded, fused where fp32), not the plain forward's
                    speed = {"fp32_s": eq["fp32_s"], "bf16_s": eq["bf16_s"], "speedup": round(eq["speedup"], 3),
                             "batch": cfg.eval_batch, "source": "campaign"}
                    P.record(dev, "speed", f"{net}/evaluate", speed)
                    out["speed"][f"{net}/evaluate"] = speed
                out["equivalence"].append(eq)
                log(f"precision {net}: bf16 mean {eq['bf16_mean']:.3f}% vs fp32 {eq['fp32_mean']:.3f}% "
                    f"({eq['diff']:.3f} points), {eq['speedup']:.2f}x")
        _log_choices(cfg, out, net, dev, log)


def _log_choices(cfg: BenchConfig, out: dict, net: str, dev, log) -> None:
    out["choices"][net] = {phase: {"precision": c.precision, "reason": c.reason, "float_precision": c.float_precision}
                           for phase in ("train", "evaluate") for c in [P.resolve(cfg.precision, net, phase, dev)]}
    log(f"precision {net}: " + ", ".join(f"{ph} {c['precision']} ({c['reason']})"
                                         for ph, c in out["choices"][net].items()))


def _bench_training(cfg: BenchConfig, result: dict, m, *, nets: list[str], checkpoints: dict, given: dict, d, dev,
        tmp, log) -> None:
    """Training throughput (interleaved) and one end-to-end run of the trainer per network."""
    for net in nets:
        steps = cfg.steps_for(net)
        common = dict(network=net, width=cfg.width, batch_size=cfg.batch_size, warmup=cfg.warmup_steps, steps=steps)
        r = m("train_compare", dropconnect=cfg.dropconnect, workers=cfg.ref_workers,
              precision=result["precision"]["choices"][net]["train"]["precision"], **common)
        result["training"].append(r)
        ips = r["images_per_s"]
        log(f"train {net}: project p={cfg.dropconnect:g} {ips['project']:.1f}, p=0 {ips['project_p0']:.1f}, "
            f"plain reference {ips['reference']:.1f} img/s")
        out = None if net in checkpoints else str(Path(tmp.name) / f"{net}.safetensors")
        keep = dict(out=out, calib_rates=(0.0, cfg.fault_rate), calib_images=cfg.calib_images) if out else {}
        e2e = m("train_project", dropconnect=cfg.dropconnect, precision=r["precision"], **keep, **common)
        result["train_end_to_end"].append(e2e)
        log(f"train {net}: end-to-end dse.core.training.train.train {e2e['images_per_s']:.1f} img/s, "
            f"peak RSS {e2e['peak_rss_mb']:.0f} MB")
        if out:
            checkpoints[net] = out


def _bench_campaign(cfg: BenchConfig, result: dict, m, *, nets: list[str], checkpoints: dict, given: dict, d, dev,
        tmp, log) -> None:
    """Fault campaign (interleaved), end-to-end evaluate and the equivalence of the fast path."""
    ev = dict(rate=cfg.fault_rate, instances=cfg.instances, test_images=min(cfg.test_images, len(d.test_x)),
              batch_size=cfg.eval_batch)
    per = cfg.batched_instances if cfg.batched_instances is not None else (8 if dev.type == "cuda" else 0)
    for net in nets:
        ck = checkpoints.setdefault(net, {"untrained": [net, cfg.width, cfg.fault_rate]})  # training skipped (--only)
        choice = result["precision"]["choices"][net]["evaluate"]
        ev["precision"] = choice.get("float_precision") or choice["precision"]  # int8 has its own row
        int8 = _int8_here(cfg, result)  # with bf16 beside an fp32 project where bf16 is native: int8's ratio to it
        also = ["bf16"] if int8 and ev["precision"] == "fp32" and result["precision"].get("native_bf16") else []
        c = m("campaign_compare", ckpt=ck, workers=cfg.ref_workers, int8=int8, also=also, **ev)
        result["campaign"].append(c)
        ips = c["image_instances_per_s"]
        log(f"campaign {net}: project {ips['project']:.1f}, plain inference {ips['plain']:.1f}, naive "
            f"{ips['naive']:.1f} image-instances/s ({c['path']})"
            + "".join(f"; {k} {ips[k]:.1f}" for k in ("bf16", "int8") if k in ips and k != c["precision"]))
        e2e_ev = {**ev, "instances": c["instances"]}  # the instances the interleaved run measured (whole designs)
        e2e = m("campaign_project", ckpt=ck, **e2e_ev)
        if cfg.isolate:  # the same run in a process with glibc's default malloc (dse.core.runtime.allocator)
            e2e["default_malloc"] = m("campaign_project", ckpt=ck, keep_freed=False, **e2e_ev)
        result["campaign_end_to_end"].append(e2e)
        dm = e2e.get("default_malloc")
        log(f"campaign {net}: end-to-end dse.core.evaluation.evaluate.evaluate {e2e['image_instances_per_s']:.1f} image-instances/s"
            + (f" ({dm['image_instances_per_s']:.1f} with glibc's default malloc)" if dm else ""))
        fast, ref = c["accuracies"]["project"], c["accuracies"]["naive"]
        mean = lambda a: sum(a) / len(a)  # noqa: E731
        row = {"network": net, "model": given.get(net, f"short run ({cfg.warmup_steps + cfg.steps_for(net)} steps)"),
               "fault_rate": cfg.fault_rate, "instances": c["instances"], "images": c["images"],
               "fault_free_quantized_accuracy": c["fault_free_quantized_accuracy"], "fast_mean": mean(fast),
               "reference_mean": mean(ref), "mean_diff": abs(mean(fast) - mean(ref)),
               "max_instance_diff": max(abs(a - b) for a, b in zip(fast, ref)),
               "evaluate_mean": e2e["mean"], "evaluate_matches": e2e["accuracies"] == [round(a, 4) for a in fast]}
        if per:
            b = m("campaign_batched", ckpt=ck, per_batch=per, **e2e_ev)
            result["batched"].append(b)
            row["batched_mean_diff"] = abs(b["mean"] - mean(ref))
            log(f"campaign {net} batched x{per}: {b['image_instances_per_s']:.1f} image-instances/s")
        result["equivalence"].append(row)


def _int8_here(cfg: BenchConfig, result: dict) -> bool:
    return cfg.int8 and result["config"]["device"] == "cpu" and int8_capability()[0]


def _bench_int8(cfg: BenchConfig, result: dict, m, *, nets: list[str], checkpoints: dict, given: dict, d, dev,
        tmp, log) -> None:
    """int8 against fp32 on the same maps, per network with a checkpoint, BN protocol and rate; recorded (with
    the campaign's speed-ups) for `auto`, whose choice is then shown again."""
    if not _int8_here(cfg, result):
        return
    out = result.setdefault("int8", {"equivalence": [], "speed": {}})
    for net in [n for n in (cfg.int8_networks or nets) if n in checkpoints and n in given]:
        for bn in cfg.int8_protocols:
            for rate in cfg.int8_rates:
                eq = m("int8_equivalence", ckpt=checkpoints[net], rate=rate, bn=bn, instances=cfg.equivalence_instances,
                       test_images=min(cfg.equivalence_images, len(d.test_x)), batch_size=cfg.eval_batch)
                eq["ok"] = eq["diff"] <= P.INT8_POINTS
                out["equivalence"].append(eq)
                log(f"int8 {net} {bn} f={rate:g}: int8 mean {eq['int8_mean']:.3f}% vs fp32 {eq['fp32_mean']:.3f}% "
                    f"({eq['diff']:.3f} points, {eq['instances']} x {eq['images']:,}), {eq['speedup']:.2f}x fp32")
                if not cfg.quick:
                    P.record(dev, "int8_equivalence", net, _merged(dev, net, f"{bn}/{rate:g}", eq))
        camp = next((c for c in result["campaign"] if c["network"] == net and "int8" in c["image_instances_per_s"]),
                    None)
        fp32 = [e for e in out["equivalence"] if e["network"] == net and e["bn"] == "paper"]
        if camp and fp32 and not cfg.quick:
            ips = camp["image_instances_per_s"]
            speed = {"vs_fp32": round(sum(e["speedup"] for e in fp32) / len(fp32), 3),
                     f"vs_{camp['precision']}": round(ips["int8"] / ips["project"], 3), "source": "campaign"}
            if "bf16" in ips:
                speed["vs_bf16"] = round(ips["int8"] / ips["bf16"], 3)
            P.record(dev, "speed", f"{net}/evaluate-int8", speed)
            out["speed"][net] = speed
        _log_choices(cfg, result["precision"], net, dev, log)


def _merged(dev, net: str, key: str, eq: dict) -> dict:
    """This machine's int8 checks for `net` with one more (BN protocol / rate) recorded."""
    checks = {k: v for k, v in P.machine_record(dev).get("int8_equivalence", {}).get(net, {}).items() if k != "when"}
    checks[key] = {k: eq[k] for k in ("ok", "diff", "checkpoint", "instances", "images", "max_instance_diff")}
    return checks


def _bench_calibration(cfg: BenchConfig, result: dict, m, *, nets: list[str], checkpoints: dict, given: dict, d, dev,
        tmp, log) -> None:
    """BN calibration time per fault rate."""
    for net in nets:
        r = m("calibration", ckpt=checkpoints[net], rates=list(cfg.calib_rates),
              images=min(cfg.calib_images, len(d.train_x)), batch_size=cfg.eval_batch)
        result["calibration"].append(r)
        log(f"calibration {net}: " + ", ".join(f"p'={x['rate']:g} {x['seconds']:.1f}s" for x in r["rates"]))


def _bench_scaling(cfg: BenchConfig, result: dict, m, *, nets: list[str], checkpoints: dict, given: dict, d, dev,
        tmp, log) -> None:
    """Scaling with instances and width (ResNet20, or the first network)."""
    base = "resnet20" if "resnet20" in nets else nets[0]
    n_scale = min(cfg.scaling_test_images, len(d.test_x))
    sc = result["scaling"]
    sc["instances"] = m("eval_instances", network=base, width=cfg.width, rate=cfg.fault_rate,
                        instances=list(cfg.scaling_instances), test_images=n_scale, batch_size=cfg.eval_batch)
    log(f"scaling {base}, instances: "
        + ", ".join(f"{x['instances']}: {x['seconds']:.1f}s" for x in sc["instances"]["rows"]))
    sc["width_eval"] = m("eval_widths", network=base, widths=list(cfg.scaling_widths), rate=cfg.fault_rate,
                         instances=2, test_images=n_scale, batch_size=cfg.eval_batch)
    sc["width_train"] = m("train_widths", network=base, widths=list(cfg.scaling_widths), dropconnect=cfg.dropconnect,
                          batch_size=cfg.batch_size, warmup=cfg.warmup_steps, steps=cfg.width_train_steps)
    log(f"scaling {base}, widths: " + ", ".join(
        f"{a['width']:g}: eval {a['per_instance_s']:.2f}s/instance, train {b['epoch_s']:.0f}s/epoch"
        for a, b in zip(sc["width_eval"]["rows"], sc["width_train"]["rows"])))


def run_bench(cfg: BenchConfig, data: dict, device: str = "cpu", *, checkpoints: dict[str, str] | None = None,
              log: Callable[[str], None] = print) -> dict:
    """Every measurement of the benchmark, in one run; returns the results (`to_markdown` renders them)."""
    dev = torch.device(device)
    d = bench_data(data)
    result = {"machine": machine_info(dev), "load_before": load_avg(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "data": {"source": d.source, "synthetic": "synthetic" in data, "train_images": len(d.train_x),
                       "test_images": len(d.test_x)},
              "config": {**asdict(cfg), "device": str(dev)}, "training": [], "train_end_to_end": [], "campaign": [],
              "campaign_end_to_end": [], "batched": [], "equivalence": [], "calibration": [], "precision": {},
              "scaling": {}, "targets": []}
    checkpoints = dict(checkpoints or {})
    given = {net: _describe(path) for net, path in checkpoints.items()}
    nets = list(cfg.networks)
    t_start = time.perf_counter()
    m = lambda kind, **kw: measure(kind, cfg.isolate, data=data, device=str(dev), **kw)  # noqa: E731
    tmp = tempfile.TemporaryDirectory()

    context = dict(nets=nets, checkpoints=checkpoints, given=given, d=d, dev=dev, tmp=tmp, log=log)
    for step in (_bench_precision, _bench_training, _bench_campaign, _bench_int8, _bench_calibration, _bench_scaling):
        if cfg.only is None or step.__name__.removeprefix("_bench_") in cfg.only:
            step(cfg, result, m, **context)

    if cfg.page_checkpoints and (cfg.only is None or "page" in cfg.only):  # the explorer's page on those results
        result["page"] = m("page_render", checkpoints=cfg.page_checkpoints, renders=cfg.page_renders)
        log(f"page render: first {result['page']['first_s']:.2f}s, then median {result['page']['median_s']:.2f}s")
    if cfg.profile and (cfg.only is None or "profile" in cfg.only):
        base = "resnet20" if "resnet20" in nets else nets[0]
        result["profile"] = m("profile", network=base, width=cfg.width, dropconnect=cfg.dropconnect,
                              batch_size=cfg.batch_size, eval_batch=min(cfg.eval_batch, len(d.test_x)))
    tmp.cleanup()
    result["load_after"] = load_avg()
    result["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    result["targets"] = targets(result)
    return result


