"""`python -m dse train`: train one design point with drop-connect, calibrate its BN, write a checkpoint."""
from __future__ import annotations

from pathlib import Path

from dse.commands import _args
from dse.core.errors import DSEError
from dse.core.paper import FAULT_RATES
from dse.core.recipes import DEFAULT_RECIPE, RECIPES, SCHEDULES, recipe


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a network with drop-connect and write a checkpoint")
    p.add_argument("--network", type=_args.network, default="resnet20", help="resnet20, vgg13 or mobilenetv2")
    p.add_argument("--width", type=_args.width, default=1.0, help="width multiplier (channels int(c*w))")
    p.add_argument("--shortcut-kernel", type=int, default=1, help="ResNet20 projection shortcut kernel: 1 or 3")
    p.add_argument("--mapping", default="default", help="crossbar mapping policy (default, 1x1-on-crossbar, ...)")
    p.add_argument("--dropconnect", type=_args.rate, default=0.0, help="drop-connect rate p in [0, 1)")
    p.add_argument("--recipe", type=_args.choice(RECIPES, "recipe"), default=DEFAULT_RECIPE,
                   help=f"named recipe: {', '.join(RECIPES)} (default {DEFAULT_RECIPE}); the options below override it")
    p.add_argument("--epochs", type=_args.positive_int, default=None, help="default: the recipe's")
    p.add_argument("--batch-size", type=_args.positive_int, default=None)
    p.add_argument("--lr", type=_args.positive_float, default=None, help="peak learning rate")
    p.add_argument("--schedule", type=_args.choice(SCHEDULES, "schedule"), default=None,
                   help="decay after warm-up: cosine or triangular (linear to zero)")
    p.add_argument("--ema", type=_args.unit_interval, default=None, metavar="DECAY",
                   help="EMA of the weights with this decay per step (0: off); the EMA is saved")
    p.add_argument("--cutout", type=_args.nonneg_int, default=None, metavar="PIXELS", help="cutout square side (0: off)")
    p.add_argument("--bn-lr-scale", type=_args.positive_float, default=None,
                   help="BN weights and biases learn this many times faster (weight decay divided by it)")
    p.add_argument("--track-test", action="store_true",
                   help="record the fault-free test accuracy after every epoch (the recipe study's curves)")
    p.add_argument("--data", default=None, help="CIFAR-10: batches folder, image tree or .tar.gz (or $DSE_DATA)")
    p.add_argument("--download", action="store_true", help="download the original CIFAR-10 into --data")
    p.add_argument("--out", required=True, type=Path, help="checkpoint path (.safetensors)")
    p.add_argument("--seed", type=_args.nonneg_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from <out>.partial after an interruption")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    p.add_argument("--save-every", type=_args.nonneg_float, default=300.0, metavar="SECONDS",
                   help="also write <out>.partial within an epoch this often (0: after every step; default 300)")
    p.add_argument("--fault-rates", type=_args.rate_list, default=list(FAULT_RATES),
                   help="fault rates p' to calibrate BN for, comma-separated (empty run: --no-calibrate)")
    p.add_argument("--no-calibrate", action="store_true", help="skip BN re-estimation")
    p.add_argument("--calib-images", type=_args.positive_int, default=None,
                   help="training images per calibration pass (default: all)")
    p.add_argument("--max-train-images", type=_args.positive_int, default=None, help="train on a subset")
    _args.add_device(p)
    _args.add_precision(p, "the training steps (accuracies are always measured in fp32)")
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from dse.core.crossbar.mapping import MappingPolicy
    from dse.core.io.data import load_cifar10
    from dse.core.models import build_model
    from dse.core.runtime.device import pick_device
    from dse.core.training.train import TrainConfig, train

    MappingPolicy.parse(args.mapping)
    build_model(args.network, args.width, args.shortcut_kernel)  # validates the combination up front
    if args.out.suffix != ".safetensors":
        raise DSEError(f"--out must end in .safetensors, got {str(args.out)!r}")
    device = pick_device(args.device)
    cfg = TrainConfig(
        network=args.network, width=args.width, shortcut_kernel=args.shortcut_kernel, mapping=args.mapping,
        dropconnect=args.dropconnect, seed=args.seed,
        recipe=recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
                      ema=args.ema, cutout=args.cutout, bn_lr_scale=args.bn_lr_scale),
        calib_rates=() if args.no_calibrate else tuple(args.fault_rates), calib_images=args.calib_images,
        max_train_images=args.max_train_images,
    )
    data = load_cifar10(args.data, download=args.download)
    log = (lambda s: None) if args.json else print
    return train(cfg, data, args.out, device=device, resume=args.resume, overwrite=args.overwrite,
                 save_every_s=args.save_every, log=log, precision=args.precision, track_test=args.track_test)
