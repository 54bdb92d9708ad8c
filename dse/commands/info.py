"""`python -m dse info CKPT`: what a checkpoint holds, after verifying it."""
from __future__ import annotations

from dse.commands import _args


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="show a checkpoint's metadata (verifies the file)")
    p.add_argument("checkpoint", help="checkpoint (.safetensors)")
    _args.add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from dse.core.io.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model()  # proves the weights fit the declared network
    meta = {k: v for k, v in ckpt.meta.items() if k not in ("history", "optimizer_groups", "config")}
    meta["parameters"] = sum(p.numel() for p in model.parameters())
    if not args.json:
        m = meta
        print(f"{ckpt.path}")
        print(f"  network {m['network']}  width {m['width']:g}  shortcut {m['shortcut_kernel']}x{m['shortcut_kernel']}"
              f"  mapping {m['mapping']}  drop-connect {m['dropconnect']:g}  seed {m['seed']}")
        print(f"  parameters {m['parameters']:,}  stored as {m.get('dtype')}  complete {m.get('complete', True)}")
        steps = f" + {m['epoch_steps_done']} steps" if m.get("epoch_steps_done") else ""  # a mid-epoch resume file
        acc = "not measured yet" if m.get("test_accuracy") is None else f"{m['test_accuracy']}%"
        print(f"  epochs {m.get('epochs_done')}/{m.get('epochs')}{steps}  train time {m.get('train_time_s') or 0:.0f}s"
              f"  fault-free test accuracy {acc}")
        r = m.get("recipe") or {}
        if r:
            extras = [f"{k} {r[k]}" for k in ("schedule", "ema", "cutout", "bn_lr_scale") if k in r]
            print(f"  recipe {r.get('name', 'legacy')}: lr {r.get('lr')}  batch {r.get('batch_size')}  "
                  + "  ".join(extras))
        print(f"  BN calibrated for fault rates {', '.join(f'{r:g}' for r in m.get('calibrated_rates', [])) or 'none'}")
        ds = m.get("dataset", {})
        print(f"  data {ds.get('source')} (fingerprint {ds.get('fingerprint')})  versions {m.get('versions')}")
    return meta
