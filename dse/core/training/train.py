"""CIFAR-10 training with drop-connect on the crossbar layers.

Recipes are named (`RECIPES`; `recipe(name, **overrides)`), every field recorded in the checkpoint:
- `legacy`: SGD with Nesterov momentum 0.9, batch 256, peak lr 0.2 (He et al.'s 0.1 per 128 images), one
  epoch of linear warm-up then cosine decay to zero, weight decay 5e-4, label smoothing 0.1, random crop
  (pad 4) + horizontal flip done on whole batches as tensor ops.
- `converged` (the default of `dse train`, sweeps and the page): `legacy` with a triangular (one-cycle)
  schedule decaying linearly to zero, what the recipe study (docs/training.md) measured to help. Options
  beside it: an EMA of the weights (what is then saved and evaluated, with BN statistics recomputed for
  it), cutout, and a scaled learning rate for the BN parameters.

Resumable: after every epoch, and every `save_every_s` seconds within one (an epoch of VGG13 takes 20 min
on two CPU cores), the full state (weights, optimizer, epoch, step, random-generator states) is written
atomically to `<out>.partial`. All randomness of epoch e (shuffle, crops, flips, drop-connect masks) is
seeded from (seed, e) and resumed mid-epoch from the saved generator states, so a resumed run equals an
uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from dse.core.crossbar.mapping import MappingPolicy, crossbar_layers
from dse.core.crossbar.quantize import quantize
from dse.core.errors import DSEError
from dse.core.evaluation.calibrate import DEFAULT_RATES, calibrate_bn
from dse.core.faults.dropconnect import add_dropconnect, check_rate, plain_state_dict, remove_dropconnect
from dse.core.io.checkpoint import bn_buffers, library_versions, load_bn_buffers, load_checkpoint, save_checkpoint
from dse.core.io.data import Cifar10, cutout, head, normalize, random_crop_flip
from dse.core.models import build_model
from dse.core.recipes import Recipe
from dse.core.runtime.precision import autocast, default_precision, resolve
from dse.core.training.widen import widened_state


@dataclass
class TrainConfig:
    network: str = "resnet20"
    width: float = 1.0
    shortcut_kernel: int = 1
    mapping: str = "default"
    dropconnect: float = 0.0
    seed: int = 0
    recipe: Recipe = field(default_factory=Recipe)
    calib_rates: tuple[float, ...] = DEFAULT_RATES
    calib_images: int | None = None  # None: the whole training set, as the paper
    max_train_images: int | None = None  # a subset for quick runs and tests
    init: str | None = None  # fine-tune from this checkpoint (same network; width and shortcut may be smaller)
    half: bool = False  # round the final weights to fp16 and store them so (half the file size)
    int8: bool = False  # store the crossbar layers as their 8-bit levels and scales (what evaluation uses)

    def identity(self) -> dict:
        """What must match for a .partial file to be resumed by this config."""
        d = asdict(self)
        d["recipe"] = self.recipe.identity()
        d.pop("calib_rates"), d.pop("calib_images")
        for key in ("init", "half", "int8"):  # absent when unset, so older checkpoints keep their identity
            if not d[key]:
                d.pop(key)
        if d.get("init"):  # the file name, not the folder, so a moved checkout still resumes
            d["init"] = Path(d["init"]).name
        return d


def _seed_for(*parts) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


def lr_at(step: int, total: int, warmup: int, peak: float, schedule: str = "cosine") -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    if schedule == "triangular":  # linear to zero: airbench's and the one-cycle's shape
        return peak * (1 - t)
    return peak * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def accuracy(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, device, batch_size: int = 1000) -> float:
    """Top-1 accuracy in percent, model in eval mode."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x_uint8), batch_size):
        logits = model(normalize(x_uint8[i : i + batch_size].to(device)))
        correct += (logits.argmax(1) == y[i : i + batch_size].to(device)).sum().item()
    model.train(was)
    return 100.0 * correct / len(x_uint8)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, x_uint8: Tensor,
               y: Tensor, *, generator: torch.Generator, recipe: Recipe, device: torch.device,
               precision: str = "fp32") -> tuple[Tensor, Tensor]:
    """One step of the recipe on a uint8 batch (crop+flip, normalise, forward, backward, update); returns
    (loss, logits). The trainer's loop body, shared with the benchmark so that it times this very code."""
    x = random_crop_flip(x_uint8, generator, recipe.crop_pad)
    if recipe.cutout:
        x = cutout(x, generator, recipe.cutout)
    x = normalize(x)
    with autocast(device, precision):
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss, logits


def param_groups(model: nn.Module, r: Recipe) -> list[dict]:
    """SGD parameter groups: the BN weights and biases apart when the recipe scales their learning rate
    (airbench's scaled BN-bias rate; weight decay divided by the same factor keeps lr x decay unchanged)."""
    if r.bn_lr_scale == 1.0:  # one group, as partials written before the option expect
        return [{"params": list(model.parameters()), "weight_decay": r.weight_decay, "lr_scale": 1.0}]
    bn = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
          for p in m.parameters(recurse=False)}
    return [{"params": [p for p in model.parameters() if id(p) not in bn], "weight_decay": r.weight_decay,
             "lr_scale": 1.0},
            {"params": [p for p in model.parameters() if id(p) in bn], "weight_decay": r.weight_decay / r.bn_lr_scale,
             "lr_scale": r.bn_lr_scale}]


class Ema:
    """An exponential moving average of the weights, updated after every step. Its decay ramps up as
    (1 + t) / (10 + t) early on, so the average does not remember the random initialisation."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.names = [n for n, _ in model.named_parameters()]
        self.shadow = [p.detach().float().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach().float() for p in model.parameters()], 1.0 - d)

    def state(self) -> dict[str, Tensor]:
        return {f"ema.{n}": t for n, t in zip(self.names, self.shadow)}

    def load(self, extra: dict[str, Tensor]) -> None:
        missing = [n for n in self.names if f"ema.{n}" not in extra]
        if missing:
            raise DSEError(f"the partial checkpoint has no EMA of {missing[0]!r}; it was written without --ema")
        self.shadow = [extra[f"ema.{n}"].float().clone() for n in self.names]

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for p, t in zip(model.parameters(), self.shadow):
            p.copy_(t)


def recompute_bn(model: nn.Module, cfg: TrainConfig, images: Tensor, device, max_images: int | None) -> None:
    """The model's own BN statistics re-estimated for its weights (an EMA's were never run through it):
    the calibration pass at the training drop-connect rate, loaded as the model's statistics."""
    policy = MappingPolicy.parse(cfg.mapping)
    stats = calibrate_bn(model, images, (cfg.dropconnect,), policy, max_images=max_images, seed=cfg.seed,
                         device=device, progress=False, crop_pad=cfg.recipe.crop_pad)
    load_bn_buffers(model, stats[float(cfg.dropconnect)])


def snapshot_accuracy(model: nn.Module, ema: Ema | None, cfg: TrainConfig, data: Cifar10, train_x: Tensor,
                      device) -> float:
    """Fault-free test accuracy of the weights training would save now: the EMA's, BN re-estimated on 2,000
    training images, or the live weights with their running statistics. The global random state (the
    drop-connect masks' stream) is left as it was, so tracking changes nothing in the run."""
    live = [p.detach().clone() for p in model.parameters()]
    if ema is not None:
        ema.copy_to(model)
    state = {k: v.detach().clone() for k, v in plain_state_dict(model).items()}
    with torch.no_grad():
        for p, t in zip(model.parameters(), live):
            p.copy_(t)
    snap = build_model(cfg.network, cfg.width, cfg.shortcut_kernel).to(device, memory_format=torch.channels_last)
    snap.load_state_dict(state)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if ema is not None:
            recompute_bn(snap, cfg, train_x, device, max_images=2000)
        return accuracy(snap, data.test_x, data.test_y, device)


def finite_state(model: nn.Module) -> bool:
    """No inf/NaN in any weight or BN statistic (one device sync for the whole model)."""
    checks = [torch.isfinite(t).all() for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return bool(torch.stack(checks).all()) if checks else True


def _optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": v for i, s in sd["state"].items() for k, v in s.items() if torch.is_tensor(v)}
    return tensors, json.dumps(sd["param_groups"])


def _load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict, groups_json: str) -> None:
    state: dict[int, dict] = {}
    for key, t in tensors.items():
        if key.startswith(("rng.", "ema.")):  # generator states and the EMA saved beside the optimizer's
            continue
        i, _, name = key.partition(".")
        state.setdefault(int(i), {})[name] = t
    opt.load_state_dict({"state": state, "param_groups": json.loads(groups_json)})


def _init_checkpoint(cfg: TrainConfig):
    """The finished checkpoint a fine-tuning run starts from, checked to be the same network, no wider."""
    path = Path(cfg.init)
    if not path.is_file():
        raise DSEError(f"init checkpoint {str(path)!r} does not exist; train it first")
    base = load_checkpoint(path)
    m = base.meta  # the width and the shortcut kernel may grow: see dse.core.training.widen and grown_state
    if (m["network"] != cfg.network or float(m["width"]) > cfg.width or m["shortcut_kernel"] > cfg.shortcut_kernel
            or not m.get("complete", True)):
        raise DSEError(f"init checkpoint {path.name} is {m['network']} width {float(m['width']):g} kernel "
                       f"{m['shortcut_kernel']}{'' if m.get('complete', True) else ' (unfinished)'}; this run is "
                       f"{cfg.network} width {cfg.width:g} kernel {cfg.shortcut_kernel} (width and kernel may only grow)")
    return base


def init_state(init, cfg: TrainConfig, model: nn.Module) -> dict[str, Tensor]:
    """The init checkpoint's weights fitted to `model`: widened first if narrower, then shortcut kernels grown."""
    state, m = init.state, init.meta
    if float(m["width"]) < cfg.width:
        small = build_model(cfg.network, float(m["width"]), m["shortcut_kernel"])
        state = widened_state(state, small, build_model(cfg.network, cfg.width, m["shortcut_kernel"]), cfg.seed)
    return grown_state(state, model)


def grown_state(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """`state` fitted to `model`, whose 1x1 shortcut convs may be kxk: the 1x1 weights go to the kernel's
    centre and the rest is zero, so the grown network computes exactly what the smaller one did."""
    out = {}
    for key, want in model.state_dict().items():
        t = state.get(key)
        if t is None:
            raise DSEError(f"init checkpoint has no tensor {key!r} for this network")
        if t.shape != want.shape:
            k = want.shape[-1]
            if t.dim() != 4 or t.shape[:2] != want.shape[:2] or t.shape[2:] != (1, 1) or want.shape[2:] != (k, k):
                raise DSEError(f"init checkpoint's {key!r} is {tuple(t.shape)}; this network needs {tuple(want.shape)}")
            t = F.pad(t, (k // 2,) * 4)  # padding (k // 2) keeps a kxk shortcut aligned with the 1x1 one
        out[key] = t.to(want.dtype)
    return out


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _start(cfg: TrainConfig, out: Path, resume: bool, overwrite: bool, log: Callable[[str], None]):
    """(metadata of a finished `out` to return as it is, or None; the partial checkpoint to resume, or None)."""
    part = partial_path(out)
    if out.exists() and not overwrite:
        if resume:
            done = load_checkpoint(out)
            log(f"{out} is already complete ({done.meta.get('epochs')} epochs); nothing to resume")
            return done.meta, None
        raise DSEError(f"{out} exists; pass --resume to keep it or --overwrite to replace it")
    ck = load_checkpoint(part) if resume and part.exists() else None
    if ck is not None and ck.meta.get("config") != cfg.identity():
        raise DSEError(f"{part} was written by a different configuration; delete it or pass the same arguments")
    return None, ck


def _metadata(cfg: TrainConfig, data: Cifar10, policy: MappingPolicy, init, n_train: int, device) -> dict:
    """What a checkpoint of this run records about how it was made."""
    r = cfg.recipe
    meta = {
        "network": cfg.network, "width": float(cfg.width), "shortcut_kernel": cfg.shortcut_kernel,
        "mapping": policy.name, "dropconnect": float(cfg.dropconnect), "seed": cfg.seed,
        "recipe": asdict(r), "recipe_name": r.name, "epochs": r.epochs, "config": cfg.identity(),
        "dataset": {"source": data.source, "fingerprint": data.fingerprint, "train_images": n_train},
        "device": str(device), "versions": library_versions(),
    }
    if init is not None:
        meta["init"] = {"checkpoint": Path(init.path).name, "sha256": init.sha256,
                        "dropconnect": init.meta.get("dropconnect"), "epochs": init.meta.get("epochs"),
                        "width": init.meta.get("width"), "shortcut_kernel": init.meta.get("shortcut_kernel"),
                        "test_accuracy": init.meta.get("test_accuracy")}

    return meta


@dataclass
class _Run:
    """What one training run's steps, partial saves and resume share (set up by `_prepare`)."""

    cfg: TrainConfig
    device: torch.device
    policy: MappingPolicy
    part: Path  # the partial checkpoint
    model: nn.Module
    opt: torch.optim.Optimizer
    ema: Ema | None
    scaler: torch.amp.GradScaler
    precision: str  # the training steps', resolved
    train_x: Tensor
    train_y: Tensor
    steps_per_epoch: int
    total: int  # steps in the whole run
    warmup: int  # steps
    meta: dict
    history: list = field(default_factory=list)
    elapsed: float = 0.0  # training seconds so far, resumed runs' included
    start_epoch: int = 0
    start_step: int = 0  # within start_epoch: a partial saved mid-epoch


def _build(cfg: TrainConfig, ck, init, device: torch.device, policy: MappingPolicy) -> nn.Module:
    """The model training starts from: the partial's, the init checkpoint's grown to this network, or fresh;
    on the device, channels_last, drop-connect on its crossbar layers."""
    if ck is not None:
        model = ck.build_model()
    elif init is not None:
        model = build_model(cfg.network, cfg.width, cfg.shortcut_kernel)
        model.load_state_dict(init_state(init, cfg, model))  # checks every key and shape itself
    else:
        model = build_model(cfg.network, cfg.width, cfg.shortcut_kernel)
    model = model.to(device, memory_format=torch.channels_last)
    add_dropconnect(model, cfg.dropconnect, policy)
    return model


def _prepare(cfg: TrainConfig, data: Cifar10, ck, *, device: torch.device, policy: MappingPolicy, part: Path,
             precision: str | None, log: Callable[[str], None]) -> _Run:
    """The model, optimizer, EMA, precision and training images of a run, seeded as a fresh run is."""
    r = cfg.recipe
    torch.manual_seed(cfg.seed)
    init = _init_checkpoint(cfg) if cfg.init else None
    model = _build(cfg, ck, init, device, policy)
    opt = torch.optim.SGD(param_groups(model, r), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov)
    ema = Ema(model, r.ema) if r.ema else None
    scaler = torch.amp.GradScaler(device.type, enabled=False)  # bf16 needs no loss scaling; fp16 is not used
    choice = resolve(precision or default_precision(), cfg.network, "train", device, log)
    log(f"training precision: {choice}")

    train_x, train_y = head(data.train_x, data.train_y, cfg.max_train_images)
    train_x, train_y = train_x.to(device), train_y.to(device)
    steps_per_epoch = len(train_x) // r.batch_size
    if steps_per_epoch < 1:
        raise DSEError(f"batch size {r.batch_size} exceeds the {len(train_x)} training images")
    return _Run(cfg=cfg, device=device, policy=policy, part=part, model=model, opt=opt, ema=ema, scaler=scaler,
                precision=choice.precision, train_x=train_x, train_y=train_y, steps_per_epoch=steps_per_epoch,
                total=steps_per_epoch * r.epochs, warmup=max(1, int(r.warmup_epochs * steps_per_epoch)),
                meta=_metadata(cfg, data, policy, init, len(train_x), device))


def _restore(run: _Run, ck, resume: bool, log: Callable[[str], None]) -> None:
    """The optimizer, EMA, clocks and history of the partial checkpoint `ck`, when resuming one."""
    if ck is not None:
        _load_optimizer_state(run.opt, ck.extra, ck.meta["optimizer_groups"])
        if run.ema is not None:
            run.ema.load(ck.extra)
        run.start_epoch, run.elapsed, run.history = ck.meta["epochs_done"], ck.meta["train_time_s"], ck.meta["history"]
        run.start_step = ck.meta.get("epoch_steps_done", 0)  # older partials hold whole epochs only
        if ck.meta.get("grad_scaler"):
            run.scaler.load_state_dict(ck.meta["grad_scaler"])
        log(f"resuming {run.part} at epoch {run.start_epoch}/{run.cfg.recipe.epochs}"
            + (f", step {run.start_step}/{run.steps_per_epoch}" if run.start_step else ""))
    elif resume:
        log(f"no {run.part} to resume; starting from scratch")


def _save_partial(run: _Run, epochs_done: int, steps_done: int, loss_sum: Tensor, correct: Tensor,
                  g: torch.Generator) -> None:
    """Everything a resumed run needs to continue exactly here (steps_done > 0: mid-epoch)."""
    tensors, groups = _optimizer_state(run.opt)
    if run.ema is not None:
        tensors.update(run.ema.state())
    progress_meta = {}
    if steps_done:
        tensors["rng.data"], tensors["rng.cpu"] = g.get_state(), torch.get_rng_state()
        if run.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(run.device)
        progress_meta = {"epoch_steps_done": steps_done, "epoch_loss_sum": loss_sum.item(),
                         "epoch_correct": int(correct.item())}
    save_checkpoint(run.part, plain_state_dict(run.model),
                    {**run.meta, "epochs_done": epochs_done, "train_time_s": run.elapsed, "history": run.history,
                     "optimizer_groups": groups, "complete": False, **progress_meta,
                     **({"grad_scaler": run.scaler.state_dict()} if run.scaler.is_enabled() else {})},
                    extra=tensors)


def _epoch_start(run: _Run, epoch: int, ck) -> tuple[torch.Generator, Tensor, Tensor, Tensor, int]:
    """The epoch's data order and running sums, seeded per epoch; on a mid-epoch resume, the generators and
    sums as they were at the saved step. Returns (generator, order, loss sum, correct, first step)."""
    device = run.device
    g = torch.Generator(device=device).manual_seed(_seed_for(run.cfg.seed, "data", epoch))
    torch.manual_seed(_seed_for(run.cfg.seed, "dropconnect", epoch))
    order = torch.randperm(len(run.train_x), generator=g, device=device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    first = 0
    if epoch == run.start_epoch and run.start_step:
        first = run.start_step
        g.set_state(ck.extra["rng.data"])
        torch.set_rng_state(ck.extra["rng.cpu"])
        if device.type == "cuda" and "rng.cuda" in ck.extra:
            torch.cuda.set_rng_state(ck.extra["rng.cuda"], device)
        loss_sum += ck.meta["epoch_loss_sum"]
        correct += ck.meta["epoch_correct"]
    return g, order, loss_sum, correct, first


def _run_epoch(run: _Run, epoch: int, ck, *, save_every_s: float | None, progress: bool,
               on_step: Callable[[int, int], None] | None) -> tuple[Tensor, Tensor, torch.Generator, float]:
    """The steps of one epoch (from a mid-epoch resume's step on), with partial saves every `save_every_s`.
    Returns (loss sum, correct, data generator, the clock the epoch's unsaved time counts from)."""
    r = run.cfg.recipe
    t0 = last_save = time.perf_counter()
    g, order, loss_sum, correct, first = _epoch_start(run, epoch, ck)
    bar = tqdm(range(first, run.steps_per_epoch), desc=f"epoch {epoch + 1}/{r.epochs}", unit="step",
               disable=not progress, leave=False, initial=first, total=run.steps_per_epoch)
    for i in bar:
        step = epoch * run.steps_per_epoch + i
        lr = lr_at(step, run.total, run.warmup, r.lr, r.schedule)
        for group in run.opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        idx = order[i * r.batch_size : (i + 1) * r.batch_size]
        y = run.train_y[idx]
        loss, logits = train_step(run.model, run.opt, run.scaler, run.train_x[idx], y, generator=g, recipe=r,
                                  device=run.device, precision=run.precision)
        if run.ema is not None:
            run.ema.update(run.model, step)
        loss_sum += loss.detach().float()
        correct += (logits.argmax(1) == y).sum()
        now = time.perf_counter()
        if save_every_s is not None and now - last_save >= save_every_s and i + 1 < run.steps_per_epoch:
            run.elapsed += now - t0
            t0 = last_save = now
            if finite_state(run.model):  # a diverged state is never saved over the last good one
                _save_partial(run, epoch, i + 1, loss_sum, correct, g)
        if on_step:
            on_step(step + 1, run.total)
    return loss_sum, correct, g, t0


def _check_finite(run: _Run, epoch: int, train_loss: float) -> None:
    """Stop a diverged run, keeping the last good partial checkpoint."""
    bad = None
    if not math.isfinite(train_loss):
        bad = f"loss is {train_loss}"
    elif not finite_state(run.model):  # the epoch's last step can leave inf/NaN weights behind a finite loss
        bad = "the weights are no longer finite (inf/NaN)"
    if bad:
        kept = f"last good state kept in {run.part}" if run.part.exists() else "no earlier epoch to keep"
        raise DSEError(f"training diverged at epoch {epoch + 1}: {bad}; {kept}")


def _end_epoch(run: _Run, epoch: int, sums: tuple[Tensor, Tensor, torch.Generator, float], data: Cifar10, *,
               track_test: bool, log: Callable[[str], None]) -> dict:
    """After an epoch's last step: checked finite, timed, recorded in the history and saved as the partial."""
    loss_sum, correct, g, t0 = sums
    r = run.cfg.recipe
    train_loss = loss_sum.item() / run.steps_per_epoch
    _check_finite(run, epoch, train_loss)
    run.elapsed += time.perf_counter() - t0
    record = {"epoch": epoch + 1, "train_loss": round(train_loss, 5),
              "train_accuracy": round(100.0 * correct.item() / (run.steps_per_epoch * r.batch_size), 3),
              "time_s": round(run.elapsed, 2), "precision": run.precision}
    if track_test:  # the weights that would be saved now (the EMA's with its own BN), in fp32
        acc = snapshot_accuracy(run.model, run.ema, run.cfg, data, run.train_x, run.device)
        record["test_accuracy"] = round(acc, 3)
    run.history.append(record)
    _save_partial(run, epoch + 1, 0, loss_sum, correct, g)
    log(f"epoch {epoch + 1}/{r.epochs}  loss {record['train_loss']:.4f}  "
        f"train acc {record['train_accuracy']:.2f}%  {run.elapsed:.0f}s")
    return record


def _stored_weights(run: _Run) -> tuple[str, ...]:
    """Drop-connect off and the weights rounded as they will be stored (fp16 if asked, the crossbar layers to
    their 8-bit levels if asked); returns the names stored as 8-bit levels."""
    model, cfg = run.model, run.cfg
    remove_dropconnect(model)
    model.eval()
    stored_int8 = crossbar_layers(model, run.policy) if cfg.int8 else {}
    with torch.no_grad():  # every figure below is then of the weights as stored
        if cfg.half:
            for p in model.parameters():
                p.copy_(p.half())
        for m in stored_int8.values():
            levels, scale = quantize(m.weight)
            m.weight.copy_(levels * scale)
    return tuple(f"{name}.weight" for name in stored_int8)


def _finish(run: _Run, data: Cifar10, out: Path, progress: bool, log: Callable[[str], None]) -> dict:
    """After the last epoch: drop-connect off, weights as stored (fp16 if asked), BN calibrated per fault
    rate, fault-free accuracy with the p' = 0 statistics; the checkpoint written and the partial removed."""
    model, cfg, device, r = run.model, run.cfg, run.device, run.cfg.recipe
    int8 = _stored_weights(run)
    if r.ema:  # the saved weights are the EMA's: their own BN statistics, not the live weights'
        recompute_bn(model, cfg, data.train_x, device, max_images=cfg.calib_images)
    trained_bn_acc = accuracy(model, data.test_x, data.test_y, device)
    t0 = time.perf_counter()
    bn_stats = calibrate_bn(model, data.train_x, cfg.calib_rates, run.policy, max_images=cfg.calib_images,
                            seed=cfg.seed, device=device, progress=progress, crop_pad=r.crop_pad) if cfg.calib_rates else {}
    calib_time = time.perf_counter() - t0
    test_acc = trained_bn_acc
    if 0.0 in bn_stats:  # the fault-free baseline uses the statistics re-estimated for p' = 0
        saved = bn_buffers(model)
        load_bn_buffers(model, bn_stats[0.0])
        test_acc = accuracy(model, data.test_x, data.test_y, device)
        load_bn_buffers(model, saved)
    used = sorted({h["precision"] for h in run.history if "precision" in h})  # several if resumed elsewhere
    final = {**run.meta, "epochs_done": r.epochs, "complete": True, "train_time_s": round(run.elapsed, 2),
             **({"precision": "+".join(used)} if used else {}),
             "history": run.history, "test_accuracy": round(test_acc, 3),
             "test_accuracy_trained_bn": round(trained_bn_acc, 3),
             "calibration": {"rates": sorted(bn_stats), "images": cfg.calib_images or len(data.train_x),
                             "seed": cfg.seed, "time_s": round(calib_time, 2)}}
    save_checkpoint(out, plain_state_dict(model), final, bn_stats, half=cfg.half, int8=int8)
    run.part.unlink(missing_ok=True)
    log(f"wrote {out}: fault-free test accuracy {test_acc:.2f}% after {r.epochs} epochs ({run.elapsed:.0f}s)")
    return final


def train(
    cfg: TrainConfig,
    data: Cifar10,
    out: str | Path,
    *,
    device: torch.device | str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    stop_after_epochs: int | None = None,
    save_every_s: float | None = 300.0,
    log: Callable[[str], None] = print,
    precision: str | None = None,
    track_test: bool = False,
) -> dict:
    """Train, calibrate BN, and write the checkpoint `out`; returns its metadata.
    on_epoch(record) and on_step(done, total) report progress (the app's jobs use them).
    save_every_s: also write `<out>.partial` within an epoch once this many seconds have passed since the
    last write (None: at epoch ends only). precision: of the training steps, auto | fp32 | bf16 (None:
    $DSE_PRECISION or auto). track_test: record each epoch's fault-free test accuracy (the recipe study's
    curves; it changes nothing in the training)."""
    out = Path(out)
    device = torch.device(device)
    check_rate(cfg.dropconnect)
    policy = MappingPolicy.parse(cfg.mapping)
    r = cfg.recipe
    if r.epochs < 1:
        raise DSEError(f"epochs must be a positive integer, got {r.epochs!r}")
    done, ck = _start(cfg, out, resume, overwrite, log)
    if done is not None:
        return done
    run = _prepare(cfg, data, ck, device=device, policy=policy, part=partial_path(out), precision=precision, log=log)
    _restore(run, ck, resume, log)
    run.model.train()
    for epoch in range(run.start_epoch, r.epochs):
        sums = _run_epoch(run, epoch, ck, save_every_s=save_every_s, progress=progress, on_step=on_step)
        record = _end_epoch(run, epoch, sums, data, track_test=track_test, log=log)
        if on_epoch:
            on_epoch({**record, "epochs": r.epochs})
        if stop_after_epochs is not None and epoch + 1 >= stop_after_epochs and epoch + 1 < r.epochs:
            return {**run.meta, "epochs_done": epoch + 1, "complete": False}

    if run.ema is not None:  # the EMA is what is saved, with BN statistics recomputed for it
        run.ema.copy_to(run.model)
    return _finish(run, data, out, progress, log)
