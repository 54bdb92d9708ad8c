"""The benchmark report: targets checked against the measured ratios, and the Markdown of BENCHMARKS.md."""
from __future__ import annotations

import math
from pathlib import Path



from dse.bench.measure import FULL_TEST_SET, TRAIN_IMAGES

TARGETS = {  # what the project aims for on a 2-core CPU
    "train_speedup": 1.5,  # project trainer (p=0.3) / plain fp32 reference, ResNet20, where bf16 is native
    "train_vs_model_step": 0.95,  # the trainer against the model's own step on in-memory batches, everywhere
    "dropconnect_overhead": 0.10,  # p=0.3 vs p=0 time
    "campaign_vs_naive": 3.0,  # where bf16 is native
    "campaign_vs_naive_fp32": 2.5,  # fp32-only machines
    "campaign_vs_plain": 0.95,  # within 5% of plain inference at the same precision
    "equivalence_points": 0.1,
    "chip_overhead": 0.15,  # per-chip BN calibration (N=500) on top of a paper-protocol instance (10,000 images)
    "int8_vs_bf16": 2.0,  # int8 campaign / the bf16 (float) campaign, ResNet20, on a VNNI/AMX CPU (issue 39)
    "int8_vs_naive": 6.0,  # int8 campaign / the naive fp32 loop
    "int8_points": 0.2,  # |mean int8 - mean fp32| per network, BN protocol and rate
}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _target(name: str, value: float | None, target: float | None, higher_is_better: bool, unit: str,
            note: str = "") -> dict:
    met = None if value is None or target is None else (value >= target if higher_is_better else value <= target)
    return {"name": name, "value": value, "target": target, "higher_is_better": higher_is_better, "unit": unit,
            "met": met, "note": note}


def _native(result: dict) -> bool:
    """bf16 native here (a GPU counts): the targets that assume it apply."""
    return bool(result.get("precision", {}).get("native_bf16", result["machine"].get("native_bf16")))


def targets(result: dict) -> list[dict]:
    cfg = result["config"]
    p = f"p={cfg['dropconnect']:g}"
    native = _native(result)
    out = []
    for r in result["training"]:
        ips, net = r["images_per_s"], r["network"]
        note = "" if net == "resnet20" else "target set for ResNet20"
        if not native:
            note = "no target on fp32-only machines"
        out.append(_target(f"training {net}: project ({p}, {r.get('precision', 'fp32')}) / plain fp32 reference",
                           _ratio(ips["project"], ips["reference"]), TARGETS["train_speedup"] if native else None,
                           True, "x", note))
        if "model_step" in ips:
            out.append(_target(f"training {net}: project / the model's own step on in-memory batches",
                               _ratio(ips["project"], ips["model_step"]), TARGETS["train_vs_model_step"], True, "x"))
        out.append(_target(f"training {net}: drop-connect overhead ({p} vs p=0)",
                           _ratio(ips["project_p0"], ips["project"]) - 1, TARGETS["dropconnect_overhead"], False, "%"))
    for c in result["campaign"]:
        ips, net = c["image_instances_per_s"], c["network"]
        vs_naive, vs_plain = _ratio(ips["project"], ips["naive"]), _ratio(ips["project"], ips["plain"])
        goal = TARGETS["campaign_vs_naive" if native else "campaign_vs_naive_fp32"]
        notes = [] if net == "resnet20" else ["target set for ResNet20"]
        if None not in (vs_naive, vs_plain) and vs_naive < goal and vs_plain >= TARGETS["campaign_vs_plain"]:
            notes.append("the campaign runs at plain inference speed, so the time left is the model's own forward")
        out.append(_target(f"fault campaign {net}: project ({c.get('precision', 'fp32')}) / naive fp32 reference",
                           vs_naive, goal, True, "x", "; ".join(notes)))
        out.append(_target(f"fault campaign {net}: project / plain inference at the same precision",
                           vs_plain, TARGETS["campaign_vs_plain"], True, "x"))
        if "chip_overhead_full_test_set" in c:
            out.append(_target(f"fault campaign {net}: chip BN protocol (N={c['calib_images']}) over the paper's, "
                               f"per {FULL_TEST_SET:,}-image instance", c["chip_overhead_full_test_set"],
                               TARGETS["chip_overhead"], False, "%"))
    for row in result["equivalence"]:
        out.append(_target(f"equivalence {row['network']}: mean accuracy, fast path vs fp32 reference",
                           row["mean_diff"], TARGETS["equivalence_points"], False, "points"))
    out += _int8_targets(result)
    for eq in result.get("precision", {}).get("equivalence", []):
        out.append(_target(f"equivalence {eq['network']}: mean accuracy, bf16 vs fp32 on the same maps "
                           f"({eq['instances']} x {eq['images']:,})", eq["diff"], TARGETS["equivalence_points"],
                           False, "points", "" if eq["diff"] <= TARGETS["equivalence_points"]
                           else "bf16 is not used to evaluate on this machine"))
    return out


def _int8_targets(result: dict) -> list[dict]:
    out = []
    for c in result["campaign"]:
        ips, net = c["image_instances_per_s"], c["network"]
        if "int8" not in ips:
            continue
        note = "" if net == "resnet20" else "target set for ResNet20"
        vs = "bf16" if "bf16" in ips else "project"
        out.append(_target(f"int8 campaign {net}: int8 / {'bf16' if vs == 'bf16' else 'project (' + c.get('precision', 'fp32') + ')'}",
                           _ratio(ips["int8"], ips[vs]), TARGETS["int8_vs_bf16"], True, "x", note))
        out.append(_target(f"int8 campaign {net}: int8 / naive fp32 reference", _ratio(ips["int8"], ips["naive"]),
                           TARGETS["int8_vs_naive"], True, "x", note))
    for eq in result.get("int8", {}).get("equivalence", []):
        out.append(_target(f"equivalence {eq['network']}: mean accuracy, int8 vs fp32 on the same maps, {eq['bn']} BN, "
                           f"f={eq['fault_rate']:g} ({eq['instances']} x {eq['images']:,})", eq["diff"],
                           TARGETS["int8_points"], False, "points"))
    return out


def _f(x, digits: int = 1, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:,.{digits}f}{unit}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _met(t: dict) -> str:
    return "-" if t["met"] is None else ("met" if t["met"] else "**missed**")


def _show(t: dict, x: float | None) -> str:
    if t["unit"] == "%":
        return _f(None if x is None else 100 * x, 1, "%")
    return _f(x, 3, " points") if t["unit"] == "points" else _f(x, 2, "x")


def _spread(values: list[float]) -> str:
    """min-max of per-step (per-instance) seconds: how steady the machine was."""
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def _machine_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    L: list[str] = []
    gpu = f"; GPU {mc['gpu']} ({mc['gpu_memory_gb']} GB)" if "gpu" in mc else ""
    bf16 = ("with native bf16" if mc["native_bf16"]
            else "without native bf16 (it would be emulated, hence slower): the fp32-only targets apply")
    L += ["## Machine", "",
          f"- CPU: {mc['cpu']}, {mc['cores']} cores, {mc['torch_threads']} torch threads; "
          f"{mc['cpu_capability']} {bf16}{gpu}",
          f"- torch {mc['torch']}, torchvision {mc['torchvision']}, Python {mc['python']}, {mc['os']}",
          f"- device: `{mc['device']}`"]
    for net, ch in result.get("precision", {}).get("choices", {}).items():
        L.append(f"- precision, {net}: " + "; ".join(f"{phase} in {c['precision']} ({c['reason']})"
                                                    for phase, c in ch.items()))
    lb, la = result.get("load_before"), result.get("load_after")
    if lb:
        shared = lb[0] > 0.5 or (la and la[0] > 1.5 * (mc["cores"] or 1))
        L.append(f"- load average (1, 5, 15 min): {lb} before, {la} after, on {mc['cores']} cores"
                 + (". **The machine was shared with other jobs during this run**: absolute figures are slowed by "
                    "them; compared implementations ran interleaved, so the ratios are fairer than the absolute "
                    "numbers, but still carry noise (see the per-step spread)" if shared else ""))
    ds = result["data"]
    if ds["synthetic"]:
        L.append(f"- data: **synthetic** random uint8 images of CIFAR shape ({ds['train_images']:,} train, "
                 f"{ds['test_images']:,} test; no `--data` or `$DSE_DATA`): throughput only, accuracies are chance")
    else:
        L.append(f"- data: CIFAR-10 from `{Path(ds['source']).name}` ({ds['train_images']:,} train, "
                 f"{ds['test_images']:,} test), shuffled once with a fixed seed so that subsets mix the classes")
    L += ["- method: implementations that are compared run interleaved in one process (step or instance i of each "
          "in turn), so that other work on the machine slows them alike; the orders form a balanced (Williams) "
          "design, each implementation running right after each other one equally often, so that what one leaves "
          "running (a reference DataLoader's workers prefetching its next batches) slows the others alike and "
          "flatters only that reference; steps and instances are rounded up to whole designs. Every "
          "measurement runs in a fresh process.", ""]
    return L


def _targets_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    L: list[str] = []
    L += ["## Targets", ""]
    L += _table(["check", "measured", "target", ""],
                [[t["name"], _show(t, t["value"]),
                  "-" if t["target"] is None else (">= " if t["higher_is_better"] else "<= ") + _show(t, t["target"]),
                  _met(t) + (f" ({t['note']})" if t["note"] else "")] for t in result["targets"]])
    return L


def _precision_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    pr = result.get("precision") or {}
    if not pr:
        return []
    L = ["## Precision", ""]
    if not pr["native_bf16"]:
        return L + [f"{pr['capability']} has no native bf16: every phase runs in fp32 and bf16 is not measured.", ""]
    L += [f"{pr['capability']}: native bf16. Speed: the width-1 model's SGD step (train, batch 256) or forward "
          "(evaluate, batch 500), fp32 and bf16 interleaved, best of 2 after a warm-up; for a network with a "
          "checkpoint, evaluate's is the campaign's own (seconds per instance below, the BN-folded path in each "
          "precision). Cached per machine for `--precision auto`. Equivalence: the same crossbar instances (same fault maps) evaluated in fp32 and in "
          "bf16 on each given checkpoint; bf16 evaluates on this machine only if the mean accuracies agree within "
          f"{TARGETS['equivalence_points']:g} points (recorded for later runs).", ""]
    L += _table(["network / phase", "fp32 s per batch (instance)", "bf16 s per batch (instance)", "bf16 speed-up"],
                [[k.replace("/", " / "), _f(v["fp32_s"], 3), _f(v["bf16_s"], 3), _f(v["speedup"], 2, "x")]
                 for k, v in pr["speed"].items()])
    if pr["equivalence"]:
        L += _table(["network", "checkpoint", "f", "instances x images", "fp32 mean (%)", "bf16 mean (%)",
                     "difference (points)", "largest per-instance difference", "bf16 campaign speed-up", ""],
                    [[e["network"], f"`{e['checkpoint']}`", f"{e['fault_rate']:g}",
                      f"{e['instances']} x {e['images']:,}",
                      _f(e["fp32_mean"], 3), _f(e["bf16_mean"], 3), _f(e["diff"], 3), _f(e["max_instance_diff"], 2),
                      _f(e["speedup"], 2, "x"), "bf16 may evaluate" if e["ok"] else "**stays fp32**"]
                     for e in pr["equivalence"]])
    return L


def _int8_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    rows = [c for c in result["campaign"] if "int8" in c["image_instances_per_s"]]
    eqs = result.get("int8", {}).get("equivalence", [])
    if not rows and not eqs:
        return []
    L = ["## int8 evaluation", "",
         "The int8 engine (`--precision int8`, docs/int8.md): each crossbar conv's weights are the instance's faulty "
         "8-bit levels themselves with BN folded into per-channel scales, off-crossbar 1x1 convs 8-bit too, the "
         "classifier in float; activations 8-bit per tensor, their ranges calibrated on training images (per rate "
         "under `paper`, per chip under `chip`). Campaign: paper protocol, interleaved with the rows of section 2 on "
         "the same maps; rebuild = packing the faulty weights per instance, ranges = the per-rate calibration pass "
         "(once per rate, so its share falls with more instances), both over the instance's total.", ""]
    if rows:
        L += _table(["network", "int8 image-instances/s", "project (float)", "vs project", "bf16", "vs bf16",
                     "naive fp32", "vs naive",
                     "s per instance (min-max)", "rebuild share", "range calibration (once per rate)", "engine"],
                    [[c["network"], _f(c["image_instances_per_s"]["int8"]),
                      f"{_f(c['image_instances_per_s']['project'])} ({c['precision']})",
                      _f(_ratio(c["image_instances_per_s"]["int8"], c["image_instances_per_s"]["project"]), 2, "x"),
                      _f(_bf16(c)), _f(_ratio(c["image_instances_per_s"]["int8"], _bf16(c)), 2, "x"),
                      _f(c["image_instances_per_s"]["naive"]),
                      _f(_ratio(c["image_instances_per_s"]["int8"], c["image_instances_per_s"]["naive"]), 2, "x"),
                      _spread(c["instance_s"]["int8"]), _share(c, "pack_s"), _share(c, "ranges_s"),
                      c.get("int8_engine", "-")]
                     for c in rows])
    if eqs:
        L += _table(["network", "BN", "f", "instances x images", "fp32 mean (%)", "int8 mean (%)",
                     "difference (points)", "largest per-instance difference", "int8 speed-up over fp32", ""],
                    [[e["network"], e["bn"] + (f" (N={e['calib_images']})" if e["bn"] == "chip" else ""),
                      f"{e['fault_rate']:g}", f"{e['instances']} x {e['images']:,}", _f(e["fp32_mean"], 3),
                      _f(e["int8_mean"], 3), _f(e["diff"], 3), _f(e["max_instance_diff"], 2), _f(e["speedup"], 2, "x"),
                      "met" if e["ok"] else "**missed**"] for e in eqs])
    return L


def _bf16(c: dict) -> float | None:
    ips = c["image_instances_per_s"]
    return ips.get("bf16") or (ips["project"] if c.get("precision") == "bf16" else None)


def _share(c: dict, part: str) -> str:
    """A part's share of an instance's int8 time; the per-rate range pass as its share of 100 instances."""
    parts = c.get("int8_parts_s") or {}
    total = sum(v for k, v in parts.items() if k != "ranges_once_s")
    if part == "ranges_s":
        once = parts.get("ranges_once_s")
        return "-" if once is None or not total else f"{once:.2f} s ({100 * once / (100 * total):.1f}% of 100 instances)"
    return _f(100 * parts[part] / total, 1, "%") if total and part in parts else "-"


def _training_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    L: list[str] = []
    steps = ", ".join(f"{r['network']}: {r['steps']}" for r in result["training"])
    L += ["## 1. Training throughput", "",
          f"Images/s over {steps} timed steps of batch {cfg['batch_size']} after {cfg['warmup_steps']} warm-up "
          f"step(s) each, width {cfg['width']:g}, the four interleaved step by step (steps rounded up to whole balanced orders, see Machine). Project: the trainer's loop "
          "body `dse.core.training.train.train_step` (uint8 data in memory, batch crop+flip as tensor ops, channels_last, "
          "in the precision chosen for training (see Machine)). Model step: the same model and optimizer on "
          "batches already normalised and channels_last in memory (no augmentation), forward + loss + backward + "
          "update only: the trainer's limit at that precision. Plain reference: eager fp32 NCHW "
          "model, SGD with the same recipe, no drop-connect, torchvision RandomCrop(32, padding=4) + "
          "RandomHorizontalFlip + ToTensor + Normalize on PIL images in a DataLoader with "
          f"{cfg['ref_workers']} workers (the PyTorch CIFAR-10 tutorial's setting). End-to-end: one separate run "
          "of `dse.core.training.train.train` itself (same steps), with its peak memory.", ""]
    rows = []
    for r, e in zip(result["training"], result["train_end_to_end"]):
        ips = r["images_per_s"]
        rows.append([r["network"], r.get("precision", "fp32"), _f(ips["project"]), _f(ips["project_p0"]),
                     _f(ips.get("model_step")), _f(_ratio(ips["project"], ips.get("model_step")), 2, "x"),
                     _f(ips["reference"]), _f(_ratio(ips["project"], ips["reference"]), 2, "x"),
                     _f(100 * (_ratio(ips["project_p0"], ips["project"]) - 1), 1, "%"),
                     " / ".join(_spread(r["step_s"][k]) for k in ("project", "project_p0", "reference")),
                     _f(e["images_per_s"]), _f(e["peak_rss_mb"], 0)]
                    + ([_f(e.get("gpu_peak_mb"), 0)] if gpu_run else []))
    L += _table(["network", "precision", f"project p={cfg['dropconnect']:g}", "project p=0", "model step",
                 "project / model step", "plain reference", "speed-up",
                 "drop-connect overhead", "s per step (min-max: p / p=0 / ref)", "end-to-end `train`",
                 "peak RSS of `train` (MB)"] + (["GPU peak (MB)"] if gpu_run else []), rows)
    return L


def _campaign_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    L: list[str] = []
    instances = ", ".join(sorted({str(c["instances"]) for c in result["campaign"]})) or cfg["instances"]
    L += ["## 2. Fault-campaign throughput", "",
          f"Image-instances/s at f={cfg['fault_rate']:g}: {instances} crossbar instances x "
          f"{cfg['test_images']:,} test images (batch {cfg['eval_batch']}), the four (with the chip protocol's) "
          "interleaved instance by instance. Project: what `Evaluator.run` does per instance (`FaultInjector.weights`, then `accuracy` "
          "through the BN-folded forward). Plain inference: the same model, no faults, eval mode, channels_last, "
          "same precision. Naive reference: `copy.deepcopy` per instance, 8-bit quantisation and a `torch.rand` "
          f"mask per weight, eager fp32 NCHW, a DataLoader ({cfg['ref_workers']} workers, ToTensor + Normalize). "
          "End-to-end: one separate `dse.core.evaluation.evaluate.evaluate` run (the rate's own time), with its peak memory, "
          "then the same run in a process with glibc's default malloc, which unmaps every freed block over "
          "32 MB so that the next batch faults its pages in again (the CLI keeps them: `dse.core.runtime.allocator`). Every "
          "other measurement here keeps freed memory, as the CLI does.", ""]
    rows = []
    for c, e in zip(result["campaign"], result["campaign_end_to_end"]):
        ips = c["image_instances_per_s"]
        b = next((x for x in result["batched"] if x["network"] == c["network"]), None)
        dm = e.get("default_malloc") if e.get("keep_freed") else None  # off glibc both runs are the same
        rows.append([c["network"], _f(ips["project"]), _f(ips["plain"]), _f(ips["naive"]),
                     _f(_ratio(ips["project"], ips["naive"]), 2, "x"), _f(_ratio(ips["project"], ips["plain"]), 2, "x"),
                     " / ".join(_spread(c["instance_s"][k]) for k in ("project", "plain", "naive")),
                     _f(e["image_instances_per_s"]), _f(e["peak_rss_mb"], 0),
                     _f(dm and dm["image_instances_per_s"]),
                     _f(dm and _ratio(e["image_instances_per_s"], dm["image_instances_per_s"]), 2, "x"),
                     _f(b and b["image_instances_per_s"]) + (f" (x{b['per_batch']})" if b else "")]
                    + ([_f(e.get("gpu_peak_mb"), 0)] if gpu_run else []))
    L += _table(["network", "project", "plain inference", "naive reference", "vs naive", "vs plain",
                 "s per instance (min-max: project / plain / naive)", "end-to-end `evaluate`",
                 "peak RSS of `evaluate` (MB)", "`evaluate`, glibc's default malloc", "kept memory's speed-up",
                 "batched instances (vmap)"] + (["GPU peak (MB)"] if gpu_run else []), rows)
    paths = sorted({c["path"] for c in result["campaign"]})
    L += [f"Evaluation path in use: {', '.join(paths)}.", ""]
    chip = [c for c in result["campaign"] if "chip_overhead_full_test_set" in c]
    if chip:
        L += ["Per-chip BN calibration (`--bn chip`), interleaved with the rest: each instance first runs the "
              "calibration images through the faulty model with its BN layers in training mode, then the test "
              f"pass through the BN-folded forward with the new statistics. Its overhead is the calibration pass's "
              f"own time (timed around it) over a paper-protocol instance on the full {FULL_TEST_SET:,}-image test set (scaled from the "
              "images measured here).", ""]
        L += _table(["network", "calibration images", "calibration s per instance", "chip image-instances/s",
                     f"overhead per {FULL_TEST_SET:,}-image instance"],
                    [[c["network"], str(c["calib_images"]), _f(c["calib_s"], 3),
                      _f(c["image_instances_per_s"]["chip"]), _f(100 * c["chip_overhead_full_test_set"], 1, "%")]
                     for c in chip])
    return L


def _equivalence_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    L: list[str] = []
    L += ["## 3. Accuracy equivalence", "",
          "Mean accuracy over the same fault maps (seeded per instance) from the fast path and from the naive fp32 "
          "reference, which quantises, masks and runs the unfolded model independently. The model is the short "
          "training run's or a `--checkpoint`; its fault-free 8-bit accuracy shows how much the check can see "
          "(near 10% it sees little: a barely trained model predicts few classes).", ""]
    rows = []
    for r in result["equivalence"]:
        rows.append([r["network"], r["model"], f"{r['fault_rate']:g}", f"{r['instances']} x {r['images']:,}",
                     _f(r["fault_free_quantized_accuracy"], 2), _f(r["fast_mean"], 3), _f(r["reference_mean"], 3),
                     _f(r["mean_diff"], 3), _f(r["max_instance_diff"], 3),
                     "yes" if r["evaluate_matches"] else f"no ({_f(r['evaluate_mean'], 3)})",
                     "met" if r["mean_diff"] <= TARGETS["equivalence_points"] else "**missed**"])
    L += _table(["network", "model", "f", "instances x images", "fault-free 8-bit accuracy (%)", "fast mean (%)",
                 "fp32 reference mean (%)", "difference (points)", "largest per-instance difference",
                 "`evaluate` gives the same accuracies", ""], rows)
    return L


def _calibration_memory_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    L: list[str] = []
    L += ["## 4. BN calibration and memory", "",
          f"BN re-estimation (`calibrate_bn`) per fault rate p' on {cfg['calib_images']:,} training images, and the "
          f"implied time of the paper's full pass over {TRAIN_IMAGES:,} images.", ""]
    rows = [[c["network"], f"{x['rate']:g}", f"{x['images']:,}", _f(x["seconds"], 2), _f(x["images_per_s"]),
             _f(x["full_train_set_s"], 0)] for c in result["calibration"] for x in c["rates"]]
    L += _table(["network", "p'", "images", "seconds", "images/s", f"s per {TRAIN_IMAGES:,} images"], rows)
    runs = result["train_end_to_end"] + result["campaign_end_to_end"] + result["training"] + result["campaign"]
    isolated = any(r.get("isolated") for r in runs)
    L += [("Peak memory: each measurement ran in a fresh process; peak RSS is `ru_maxrss` at its end, the baseline "
           "the RSS after importing torch and loading the data (included in the peak). The interleaved comparisons "
           "hold all three implementations in one process, so their peaks are combined; DataLoader workers are "
           "separate processes, not counted."
           if isolated else
           "Peak memory: measured in-process (`--in-process`), so each peak RSS is the whole run's so far, not the "
           "measurement's own."), ""]
    what = {"train_project": "`dse.core.training.train.train`", "campaign_project": "`dse.core.evaluation.evaluate.evaluate`",
            "train_compare": "training comparison (3 in one process)",
            "campaign_compare": "campaign comparison (3 in one process)"}
    L += _table(["measurement", "network", "baseline RSS (MB)", "peak RSS (MB)"]
                + (["GPU peak (MB)"] if gpu_run else []),
                [[what[r["kind"]], r["network"], _f(r.get("rss_baseline_mb"), 0), _f(r["peak_rss_mb"], 0)]
                 + ([_f(r.get("gpu_peak_mb"), 0)] if gpu_run else []) for r in runs])
    return L


def _scaling_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    L: list[str] = []
    sc = result["scaling"]
    if not sc:
        return L
    L += ["## 5. Scaling", ""]
    si = sc["instances"]
    first = si["rows"][0]["per_instance_s"]
    L += [f"Evaluation time against instances (`Evaluator.run`, {si['network']} width {si['width']:g}, "
          f"{si['images']:,} images, f={cfg['fault_rate']:g}); linear means constant seconds per instance.", ""]
    L += _table(["instances", "seconds", "s per instance", "relative to the first row"],
                [[x["instances"], _f(x["seconds"], 2), _f(x["per_instance_s"], 3), _f(x["per_instance_s"] / first, 2)]
                 for x in si["rows"]])
    we, wt = sc["width_eval"]["rows"], sc["width_train"]["rows"]
    L += [f"Against width ({sc['width_eval']['network']}; widths interleaved): evaluation seconds per instance "
          f"({sc['width_eval']['images']:,} images) and training seconds per epoch (50,000 images at the measured "
          f"rate of {cfg['width_train_steps']} step(s) of batch {cfg['batch_size']}). Expected: about width squared, "
          "i.e. the MAC count.", ""]
    rows = [[f"{a['width']:g}", _f(a["per_instance_s"], 3), _f(a["per_instance_s"] / we[0]["per_instance_s"], 2),
             _f((a["width"] / we[0]["width"]) ** 2, 2), _f(a["macs"] / we[0]["macs"], 2), _f(b["epoch_s"], 0),
             _f(b["epoch_s"] / wt[0]["epoch_s"], 2)] for a, b in zip(we, wt)]
    L += _table(["width", "eval s/instance", "relative", "width^2", "MACs ratio", "train s/epoch", "relative"], rows)
    return L


def _page_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    page = result.get("page")
    if not page:
        return []
    return ["## 6. Page render", "",
            f"Server-side seconds for the explorer's page (`app.py` under Streamlit's AppTest, as the server runs a "
            f"session's script) on a fresh results store filled from `{Path(page['checkpoints']).name}/`: the "
            f"first render imports its manifest; later ones reuse cached queries and figures.", ""] + _table(
        ["first render (s)", f"median of the next {page['renders']} (s)", "all (s)"],
        [[_f(page["first_s"], 2), _f(page["median_s"], 2), ", ".join(f"{t:.2f}" for t in page["times_s"])]])


def _profile_section(result: dict, mc: dict, cfg: dict, gpu_run: bool) -> list[str]:
    L: list[str] = []
    prof = result.get("profile")
    if prof:
        L += ["## Where the time goes", "",
              f"Self-CPU-time shares (torch.profiler, {prof['network']} width {cfg['width']:g}): one trainer step "
              f"(batch {cfg['batch_size']}), one batch of the fast evaluation forward, one batch of plain inference.",
              ""]
        rows = []
        for label, key in (("trainer step", "train_step"), ("fast evaluation", "eval_fast"),
                           ("plain inference", "eval_plain")):
            q = prof[key]
            rows.append([label, f"{100 * q['conv_share']:.0f}%", f"{100 * q['batch_norm_share']:.0f}%",
                         ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in q["top"])])
        L += _table(["what", "all convolution kernels", "all BatchNorm kernels", "busiest ops"], rows)
    return L

def to_markdown(result: dict, command: str = "python -m dse bench") -> str:
    """BENCHMARKS.md from one `run_bench` result, one function per section."""
    mc, cfg = result["machine"], result["config"]
    gpu_run = mc["device"] != "cpu"
    L = ["# Benchmarks", "", f"Produced by `{command}` on {result['started']} ({result['elapsed_s']:.0f} s).", ""]
    if cfg.get("quick"):
        L += ["**Quick run** (`--quick`): a few steps and instances on small subsets, a smoke test of the command. "
              "Its ratios are noisy; they are not results.", ""]
    for section in (_machine_section, _targets_section, _precision_section, _int8_section, _training_section,
                    _campaign_section,
                    _equivalence_section,
                    _calibration_memory_section, _scaling_section, _page_section, _profile_section):
        L += section(result, mc, cfg, gpu_run)
    return "\n".join(L).rstrip() + "\n"


