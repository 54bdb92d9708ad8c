"""The plain PyTorch references the benchmarks measure the project against: a DataLoader trainer as the
PyTorch CIFAR-10 tutorial writes it, and a naive fault campaign (deepcopy, torch.rand masks, fp32 NCHW)."""
from __future__ import annotations

import copy

import torch

from dse.core.crossbar.mapping import crossbar_layers
from dse.core.faults.draws import instance_seed
from dse.core.io.data import MEAN, STD
from dse.core.models import build_model
from dse.core.training.train import Recipe


class _PILDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does: HWC uint8 arrays, one PIL image per item, transforms."""

    def __init__(self, x_uint8, y, transform):
        self.data = x_uint8.permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = y.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def _transforms(train: bool):
    import torchvision.transforms as T

    aug = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
    return T.Compose([*aug, T.ToTensor(), T.Normalize(MEAN, STD)])


def _reference_trainer(d, network: str, width: float, *, batch_size: int, n: int, workers: int, dev):
    """The plain loop a researcher writes: eager fp32 NCHW model, torchvision transforms in a DataLoader,
    SGD with the project's recipe (Nesterov 0.9, wd 5e-4, label smoothing 0.1), no drop-connect."""
    from torch import nn

    r = Recipe(batch_size=batch_size)
    torch.manual_seed(0)
    model = build_model(network, width).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov,
                          weight_decay=r.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=r.label_smoothing)
    loader = torch.utils.data.DataLoader(_PILDataset(d.train_x[:n], d.train_y[:n], _transforms(True)),
                                         batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)
    batches = iter(loader)
    log = {"running_loss": 0.0}

    def step(i: int):
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:  # a new epoch, as `for x, y in loader` would start
            batches = iter(loader)
            x, y = next(batches)
        x, y = x.to(dev), y.to(dev)
        opt.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        log["running_loss"] += loss.item()  # the usual running-loss log (a sync on a GPU, free on a CPU)

    return step


def _naive_instance(model, policy, rate: float, instance: int, seed: int):
    """The researcher's loop body: a deep copy, each crossbar weight quantised to 8 bits per output channel
    and zeroed where torch.rand (seeded as dse.core.faults.draws seeds the instance) falls below the rate."""
    faulty = copy.deepcopy(model)
    layers = crossbar_layers(faulty, policy)
    g = torch.Generator().manual_seed(instance_seed(seed, instance, [tuple(m.weight.shape) for m in layers.values()]))
    with torch.no_grad():
        for m in layers.values():
            w = m.weight
            shape = (-1,) + (1,) * (w.dim() - 1)
            scale = (w.abs().flatten(1).amax(1).clamp_min(1e-12) / 127).view(shape)
            q = torch.round(w / scale).clamp(-127, 127)
            q[torch.rand(w.shape, generator=g).to(w.device) < rate] = 0.0  # stuck-at-1 reads 0
            w.copy_(q * scale / (1 - rate))  # the drop-connect 1/(1-f) scale stays on
    return faulty


