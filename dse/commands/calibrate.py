"""`python -m dse calibrate CKPT`: (re)compute BN statistics for target fault rates, in place."""
from __future__ import annotations

from dse.commands import _args
from dse.core.paper import FAULT_RATES


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="re-estimate BatchNorm statistics per target fault rate")
    p.add_argument("checkpoint", help="checkpoint (.safetensors)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (or $DSE_DATA)")
    p.add_argument("--fault-rates", type=_args.rate_list, default=list(FAULT_RATES))
    p.add_argument("--calib-images", type=_args.positive_int, default=None,
                   help="training images per pass (default: all)")
    p.add_argument("--seed", type=_args.nonneg_int, default=0)
    _args.add_device(p)
    _args.add_precision(p, "the calibration passes")
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    import time

    import torch

    from dse.core.evaluation.calibrate import calibrate_bn
    from dse.core.io.checkpoint import load_bn_buffers, load_checkpoint, save_checkpoint, storage_of
    from dse.core.io.data import load_cifar10
    from dse.core.runtime.device import pick_device
    from dse.core.runtime.precision import default_precision, resolve
    from dse.core.training.train import accuracy

    ckpt = load_checkpoint(args.checkpoint)
    device = pick_device(args.device)
    data = load_cifar10(args.data)
    model = ckpt.build_model().to(device, memory_format=torch.channels_last)
    choice = resolve(args.precision or default_precision(), ckpt.meta["network"], "calibrate", device)
    t0 = time.perf_counter()
    stats = calibrate_bn(model, data.train_x, args.fault_rates, ckpt.meta["mapping"], max_images=args.calib_images,
                         seed=args.seed, device=device, progress=not args.json, precision=choice.precision)
    merged = {**ckpt.bn_stats, **stats}  # new rates replace old ones, others are kept
    meta = {**ckpt.meta, "calibration": {"rates": sorted(merged), "images": args.calib_images or len(data.train_x),
                                          "seed": args.seed, "time_s": round(time.perf_counter() - t0, 2),
                                          "dataset": data.fingerprint, "precision": choice.precision}}
    if 0.0 in stats:  # the fault-free baseline uses the p' = 0 statistics, as after training
        meta.setdefault("test_accuracy_trained_bn", ckpt.meta.get("test_accuracy"))
        load_bn_buffers(model, stats[0.0])
        meta["test_accuracy"] = round(accuracy(model, data.test_x, data.test_y, device), 3)
    save_checkpoint(args.checkpoint, ckpt.state, meta, merged, **storage_of(ckpt.meta))
    if not args.json:
        print(f"calibrated {args.checkpoint} for fault rates {', '.join(f'{r:g}' for r in args.fault_rates)} "
              f"in {meta['calibration']['time_s']}s ({choice}); fault-free test accuracy {meta.get('test_accuracy')}%")
    return {**meta["calibration"], "test_accuracy": meta.get("test_accuracy")}
