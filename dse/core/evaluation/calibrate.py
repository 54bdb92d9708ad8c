"""BatchNorm re-estimation ("UpdateVar" in the paper): for each target fault rate p', run the training
images through the frozen network with drop-connect at p' and record fresh BN running statistics.

Our choices where the paper is silent: statistics are an exact average over the pass (momentum=None)
rather than an exponential one; one fresh mask per batch, as in training; images get the training
crop + flip, because the weights after each BN were learnt against statistics of augmented batches
(measured on ResNet20: statistics of un-augmented images cost 4-6 points of fault-free accuracy).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from dse.core.crossbar.mapping import MappingPolicy
from dse.core.faults.dropconnect import add_dropconnect, remove_dropconnect
from dse.core.io.checkpoint import bn_buffers, load_bn_buffers
from dse.core.io.data import normalize, random_crop_flip
from dse.core.paper import FAULT_RATES as DEFAULT_RATES
from dse.core.protocol import BN_PROTOCOLS, DEFAULT_CALIB_IMAGES, bn_label, check_bn_protocol  # noqa: F401
from dse.core.runtime.precision import autocast



def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def calibrate_bn(
    model: nn.Module,
    images: Tensor,
    rates=DEFAULT_RATES,
    policy: MappingPolicy | str = "default",
    *,
    max_images: int | None = None,
    batch_size: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    crop_pad: int = 4,
    precision: str = "fp32",
) -> dict[float, dict[str, Tensor]]:
    """BN statistics per rate in `rates`, from uint8 `images` (N x 3 x 32 x 32). The model's weights and
    its own BN statistics are left exactly as they were. precision: a resolved one (fp32 | bf16)."""
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    if max_images is not None and max_images < len(images):
        images = images[torch.randperm(len(images), generator=g)[:max_images]]
    saved = bn_buffers(model)
    layers = _bn_layers(model)
    momenta = [bn.momentum for bn in layers]
    was_training = model.training
    out: dict[float, dict[str, Tensor]] = {}
    try:
        for rate in tqdm(list(rates), desc="calibrating BN", unit="rate", disable=not progress, leave=False):
            torch.manual_seed(seed)  # the drop-connect masks of the pass
            aug = torch.Generator(device=device).manual_seed(seed)  # the same crops for every rate
            add_dropconnect(model, rate, policy)
            for bn in layers:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average over the whole pass
            model.train()
            for i in range(0, len(images), batch_size):
                x = normalize(random_crop_flip(images[i : i + batch_size].to(device), aug, crop_pad))
                with autocast(device, precision):
                    model(x)
            remove_dropconnect(model)
            out[float(rate)] = bn_buffers(model)
    finally:
        remove_dropconnect(model)
        for bn, m in zip(layers, momenta):
            bn.momentum = m
        load_bn_buffers(model, saved)
        model.train(was_training)
    return out


def nearest_rate(available, rate: float) -> float | None:
    """The calibrated rate closest to `rate` (None when nothing was calibrated)."""
    available = sorted(available)
    return min(available, key=lambda r: (abs(r - rate), r)) if available else None


# ----------------------------------------------------------------------------------- per chip
# Algorithm 1 gives statistics averaged over random masks; a real chip has one fixed defect map, which
# shifts each channel's mean and variance by its own amount. BN runs in the digital periphery, so a chip
# can re-estimate its statistics at deployment from a few unlabeled images, knowing nothing of its map.
def calibration_batches(train_x: Tensor, n: int, seed: int = 0, batch_size: int = 500,
                        device: torch.device | str = "cpu", crop_pad: int = 4) -> list[Tensor]:
    """The N unlabeled training images every chip calibrates on: drawn once by `seed` (the same for every
    chip), with the training crop + flip (the weights after each BN were learnt against augmented
    batches, as in `calibrate_bn`), normalised and batched."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train_x), generator=g)[: min(n, len(train_x))]
    x = random_crop_flip(train_x[idx], g, crop_pad)
    return [normalize(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]


@torch.no_grad()
def chip_bn_stats(model: nn.Module, weights: dict[str, Tensor], batches: list[Tensor],
                  device: torch.device | str = "cpu", precision: str = "fp32") -> dict[str, Tensor]:
    """BN running statistics re-estimated through one faulty chip: the `batches` run through the model with
    the chip's `weights` substituted (functional_call, weights frozen), each BN layer's statistics an exact
    cumulative average over the pass (momentum=None). The model's own buffers are left as they were."""
    return chips_bn_stats(model, [weights], batches, device, precision)[0]


@torch.no_grad()
def chips_bn_stats(model: nn.Module, weight_sets: list[dict[str, Tensor]], batches: list[Tensor],
                   device: torch.device | str = "cpu", precision: str = "fp32") -> list[dict[str, Tensor]]:
    """chip_bn_stats for several chips; more than one share each calibration forward (torch.func.vmap over
    the chips' stacked weights and running statistics, which BN updates in place per chip)."""
    from torch.func import functional_call, vmap

    layers = _bn_layers(model)
    saved, momenta = bn_buffers(model), [bn.momentum for bn in layers]
    modes = [bn.training for bn in layers]
    try:
        for bn in layers:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()  # only the BN layers: any other train-mode behaviour stays off
        if len(weight_sets) == 1:
            for x in batches:
                with autocast(device, precision):
                    functional_call(model, weight_sets[0], (x,))
            return [bn_buffers(model)]
        fresh = {k: v for k, v in bn_buffers(model).items() if not k.endswith("num_batches_tracked")}
        # one running mean/var per chip; the batch count stays shared (BN reads it as a Python number)
        stats = {k: v.expand(len(weight_sets), *v.shape).clone() for k, v in fresh.items()}
        stacked = {k: torch.stack([w[k] for w in weight_sets]) for k in weight_sets[0]}
        forward = vmap(lambda w, s, x: functional_call(model, {**w, **s}, (x,)), in_dims=(0, 0, None))
        for x in batches:
            with autocast(device, precision):
                forward(stacked, stats, x)
        count = {k: v for k, v in bn_buffers(model).items() if k.endswith("num_batches_tracked")}
        return [{**{k: v[i] for k, v in stats.items()}, **count} for i in range(len(weight_sets))]
    finally:
        for bn, m, t in zip(layers, momenta, modes):
            bn.momentum = m
            bn.train(t)
        load_bn_buffers(model, saved)


class batch_statistics:
    """Context: every BN layer normalises with the statistics of the batch in front of it (transductive),
    its running statistics untouched (momentum 0)."""

    def __init__(self, model: nn.Module):
        self.layers = _bn_layers(model)

    def __enter__(self):
        self.saved = [(bn.training, bn.momentum, bn.num_batches_tracked.clone()) for bn in self.layers]
        for bn in self.layers:
            bn.train()
            bn.momentum = 0.0
        return self

    def __exit__(self, *exc):
        for bn, (t, m, nbt) in zip(self.layers, self.saved):
            bn.train(t)
            bn.momentum = m
            bn.num_batches_tracked.copy_(nbt)
