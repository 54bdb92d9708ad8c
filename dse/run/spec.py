"""Sweep specs: a TOML file (YAML with PyYAML installed) names the design points of a sweep and how
to make them. It holds one or more grids, each a cross product of axes; the grids are unioned and
deduplicated, because the grids worth running are rarely one full product:

    name = "tiny"
    data = "data/cifar10-jpeg.tar.gz"                # in a configured folder (dse/paths.py), or --data
    checkpoint_dir = "runs/checkpoints"              # every node must see this folder
    fault_rates = [0.0, 0.1, 0.2, 0.3]
    recipe = { name = "converged", epochs = 100 }   # also batch_size, lr, calib_images, max_train_images, half, int8
    protocol = { instances = 100 }                   # also adaptive, test_images, seed, bn, calib_images
    resources = { cpus = 1, train_gpus = "auto" }    # Ray only; also evaluate_gpus, max_retries
    [[grid]]                                         # or a single [axes] table
    network = ["resnet20"]
    width = [1.0, 1.6]
    shortcut_kernel = [1, 3]                         # 3 applies to ResNet20 only
    mapping = ["default"]
    dropconnect = [0.0, 0.3]
    fault_rates = [0.05]                             # optional: this block's rates instead of the spec's
    finetune_from = { dropconnect = 0.0 }            # optional: start from that variant's weights
    finetune_recipe = { epochs = 4, lr = 0.1 }       # optional: the fine-tuned points' recipe

Every value is checked when the file is read, and a bad one is a one-line error naming its key.
`dse.run.sweep` turns a spec into jobs and runs them.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from dse.core.errors import DSEError
from dse.core.io.paths import check_inside, checkpoint_roots, data_roots
from dse.core.paper import FAULT_RATES as DEFAULT_FAULT_RATES
from dse.core.protocol import BN_PROTOCOLS, DEFAULT_BN, DEFAULT_CALIB_IMAGES, check_fault_model, check_precision
from dse.core.recipes import DEFAULT_RECIPE, RECIPES
from dse.results.store import DesignPoint

AXES = ("network", "width", "shortcut_kernel", "mapping", "dropconnect", "fault_rates")
GRID_KEYS = AXES + ("recipe", "protocol", "finetune_from", "finetune_recipe")
FINETUNE_KEYS = ("mapping", "dropconnect", "shortcut_kernel", "width")  # what a fine-tuned point's base may differ in
AXIS_DEFAULTS = {"width": [1.0], "shortcut_kernel": [1], "mapping": ["default"], "dropconnect": [0.0]}
TOP_KEYS = ("name", "description", "data", "checkpoint_dir", "device", "precision", "seed", "fault_rates", "recipe",
            "protocol", "resources", "manifest", "axes", "grid")
# name: a recipe of dse.core.recipes.RECIPES; epochs, batch_size and lr None: that recipe's
RECIPE_DEFAULTS = {"name": DEFAULT_RECIPE, "epochs": None, "batch_size": None, "lr": None, "calib_images": None,
                   "max_train_images": None, "half": False, "int8": False}
# bn: one BN protocol or a list of them (each gets its own evaluations); calib_images: the chip protocol's N
PROTOCOL_DEFAULTS = {"instances": 100, "adaptive": None, "test_images": None, "seed": 0, "bn": DEFAULT_BN,
                     "calib_images": DEFAULT_CALIB_IMAGES, "fault_model": "sa1"}  # bn and fault_model: one name or a list
RESOURCE_DEFAULTS = {"cpus": 1, "train_gpus": "auto", "evaluate_gpus": 0, "max_retries": 2}
GRIDS_DIR = Path(__file__).with_name("grids")  # the packaged specs: default.toml, paper.toml



@dataclass(frozen=True)
class Grid:
    """One cross product of axis values (already validated)."""

    network: tuple[str, ...]
    width: tuple[float, ...]
    shortcut_kernel: tuple[int, ...]
    mapping: tuple[str, ...]
    dropconnect: tuple[float, ...]
    fault_rates: tuple[float, ...] | None = None  # None: the spec's
    recipe: tuple = ()  # (key, value) overrides of the spec's recipe for this block
    protocol: tuple = ()  # (key, value) overrides of the spec's protocol
    finetune_from: tuple = ()  # (key, value): a point starts from the weights of this variant of itself
    finetune_recipe: tuple = ()  # (key, value) overrides for the fine-tuned points only

    def base_of(self, point: DesignPoint) -> DesignPoint | None:
        """The design point whose weights `point` is fine-tuned from, or None (trained from scratch)."""
        from dataclasses import replace

        base = replace(point, **dict(self.finetune_from)) if self.finetune_from else point
        return None if base == point else base


@dataclass(frozen=True)
class SweepSpec:
    name: str
    grids: tuple[Grid, ...]
    fault_rates: tuple[float, ...] = DEFAULT_FAULT_RATES
    data: str | None = None  # None: $DSE_DATA
    checkpoint_dir: str = "runs/checkpoints"
    device: str = "auto"
    precision: str | None = None  # auto | fp32 | bf16 (int8: evaluation only, refused for training); None: each worker's $DSE_PRECISION or auto
    seed: int = 0
    recipe: dict = field(default_factory=lambda: dict(RECIPE_DEFAULTS))
    protocol: dict = field(default_factory=lambda: dict(PROTOCOL_DEFAULTS))
    resources: dict = field(default_factory=lambda: dict(RESOURCE_DEFAULTS))
    manifest: bool = False  # keep <checkpoint_dir>/manifest.json up to date as evaluations land
    only: tuple = ()  # (axis, values) filters: run only these points (and the bases they need)
    description: str = ""
    source: str = ""  # the file it came from

    def points(self) -> list[tuple[DesignPoint, tuple[float, ...]]]:
        """Every design point of the union of the grids, in spec order, with its fault rates. Kernels a
        network does not have are skipped for it (only ResNet20 has 3x3 shortcuts)."""
        return [(point, rates) for point, rates, _ in self.blocks()]

    def blocks(self) -> list[tuple[DesignPoint, tuple[float, ...], Grid]]:
        """`points`, each with the grid block that first names it (its recipe, protocol and base)."""
        from dse.core.models import shortcut_kernels

        rates: dict[DesignPoint, set[float]] = {}
        first: dict[DesignPoint, Grid] = {}
        for g in self.grids:
            for net, w, k, m, p in product(g.network, g.width, g.shortcut_kernel, g.mapping, g.dropconnect):
                if k in shortcut_kernels(net):
                    point = DesignPoint(net, w, k, m, p)
                    rates.setdefault(point, set()).update(g.fault_rates or self.fault_rates)
                    first.setdefault(point, g)
        return [(point, tuple(sorted(r)), first[point]) for point, r in rates.items()]


def fail(key: str, message: str):
    raise DSEError(f"sweep spec {key}: {message}" if key else f"sweep spec: {message}")


def _number(key, v, what="a number"):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        fail(key, f"expected {what}, got {v!r}")
    return v


def _checked(key, check, v):
    """Run one of the project's value checkers, naming the spec key in its error."""
    try:
        return check(v)
    except DSEError as e:
        fail(key, str(e))


def _positive_int(key, v, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        fail(key, f"expected a positive integer, got {v!r}")
    return v


def _nonneg_number(key, v):
    _number(key, v, "a non-negative number")
    if not math.isfinite(v) or v < 0:
        fail(key, f"expected a non-negative number, got {v!r}")
    return v


def _rates(key, v):
    from dse.core.faults.dropconnect import check_rate

    values = v if isinstance(v, list) else [v]
    if not values:
        fail(key, "is empty; give at least one value")
    what = "fault rate" if "fault" in key else "drop-connect rate"
    return tuple(sorted({_checked(key, lambda x: check_rate(_number(key, x), what), x) for x in values}))


def _unknown(key, table: dict, allowed) -> None:
    extra = sorted(set(table) - set(allowed))
    if extra:
        fail(f"{key}.{extra[0]}" if key else extra[0], f"unknown key; allowed: {', '.join(allowed)}")


def _table(key, v) -> dict:
    if not isinstance(v, dict):
        fail(key, f"expected a table, got {v!r}")
    return v


def _axis(key: str, name: str, values) -> tuple:
    """One axis: a value or a list of values, each checked with the project's own checkers."""
    from dse.core.crossbar.mapping import MappingPolicy
    from dse.core.models import check_network, check_width

    full = f"{key}.{name}"
    values = values if isinstance(values, list) else [values]
    if not values:
        fail(full, "is empty; give at least one value")
    if name in ("dropconnect", "fault_rates"):
        return _rates(full, values)
    out = []
    for v in values:
        if name == "network":
            if not isinstance(v, str):
                fail(full, f"expected a network name, got {v!r}")
            v = _checked(full, check_network, v.lower())
        elif name == "width":
            v = _checked(full, check_width, _number(full, v))
        elif name == "shortcut_kernel":
            if isinstance(v, bool) or not isinstance(v, int):
                fail(full, f"expected an integer kernel size, got {v!r}")
        elif name == "mapping":
            if not isinstance(v, str):
                fail(full, f"expected a mapping policy name, got {v!r}")
            v = _checked(full, MappingPolicy.parse, v).name
        if v not in out:
            out.append(v)
    return tuple(out)


def _grid(key: str, table) -> Grid:
    from dse.core.models import build_model, shortcut_kernels

    table = _table(key, table)
    _unknown(key, table, GRID_KEYS)
    if "network" not in table:
        fail(key, "has no network axis; give network = [\"resnet20\", ...]")
    axes = {name: _axis(key, name, table.get(name, AXIS_DEFAULTS.get(name))) for name in AXES if name != "fault_rates"}
    for k in axes["shortcut_kernel"]:
        if not any(k in shortcut_kernels(n) for n in axes["network"]):
            allowed = sorted({k for n in axes["network"] for k in shortcut_kernels(n)})
            fail(f"{key}.shortcut_kernel", f"shortcut kernel {k!r} is not available for "
                  f"{', '.join(axes['network'])}; allowed: {', '.join(map(str, allowed))}")
    for net, w in product(axes["network"], axes["width"]):  # e.g. a width that leaves a layer no channels
        _checked(f"{key}.width", lambda w: build_model(net, w, shortcut_kernels(net)[0]), w)
    rates = _axis(key, "fault_rates", table["fault_rates"]) if "fault_rates" in table else None
    ft = _table(f"{key}.finetune_from", table.get("finetune_from", {}))
    _unknown(f"{key}.finetune_from", ft, FINETUNE_KEYS)
    ft = {name: _axis(f"{key}.finetune_from", name, v)[0] for name, v in ft.items()}
    if "finetune_recipe" in table and not ft:
        fail(f"{key}.finetune_recipe", "needs finetune_from (which point the fine-tuned ones start from)")
    recipe = _recipe(f"{key}.recipe", table.get("recipe", {}))
    return Grid(**axes, fault_rates=rates, recipe=tuple(recipe.items()),
                protocol=tuple(_protocol(f"{key}.protocol", table.get("protocol", {})).items()),
                finetune_from=tuple(sorted(ft.items())),
                finetune_recipe=tuple(_recipe(f"{key}.finetune_recipe", table.get("finetune_recipe", {})).items()))


def _recipe(key: str, table) -> dict:
    """Recipe keys (all optional here), checked; defaults are filled in by the caller."""
    recipe = _table(key, table)
    _unknown(key, recipe, RECIPE_DEFAULTS)
    if "name" in recipe and recipe["name"] not in RECIPES:
        fail(f"{key}.name", f"expected one of {', '.join(RECIPES)}, got {recipe['name']!r}")
    for k in ("epochs", "batch_size"):
        if k in recipe:
            _positive_int(f"{key}.{k}", recipe[k])
    for k in ("calib_images", "max_train_images"):
        if k in recipe:
            _positive_int(f"{key}.{k}", recipe[k], allow_none=True)
    if "lr" in recipe:
        _number(f"{key}.lr", recipe["lr"], "a positive number")
        if not (math.isfinite(recipe["lr"]) and recipe["lr"] > 0):
            fail(f"{key}.lr", f"expected a positive number, got {recipe['lr']!r}")
    for k in ("half", "int8"):
        if k in recipe and not isinstance(recipe[k], bool):
            fail(f"{key}.{k}", f"expected true or false, got {recipe[k]!r}")
    return recipe


def _protocol(key: str, table) -> dict:
    protocol = _table(key, table)
    _unknown(key, protocol, PROTOCOL_DEFAULTS)
    if "instances" in protocol:
        _positive_int(f"{key}.instances", protocol["instances"])
    if "test_images" in protocol:
        _positive_int(f"{key}.test_images", protocol["test_images"], allow_none=True)
    if protocol.get("adaptive") is not None:
        _number(f"{key}.adaptive", protocol["adaptive"], "a positive CI half-width")
        if not (math.isfinite(protocol["adaptive"]) and protocol["adaptive"] > 0):
            fail(f"{key}.adaptive", f"expected a positive CI half-width, got {protocol['adaptive']!r}")
    if "seed" in protocol and (isinstance(protocol["seed"], bool) or not isinstance(protocol["seed"], int)
                               or protocol["seed"] < 0):
        fail(f"{key}.seed", f"expected a non-negative integer, got {protocol['seed']!r}")
    if "calib_images" in protocol:
        _positive_int(f"{key}.calib_images", protocol["calib_images"])
    if "bn" in protocol:
        names = protocol["bn"] if isinstance(protocol["bn"], list) else [protocol["bn"]]
        if not names or any(n not in BN_PROTOCOLS for n in names):
            fail(f"{key}.bn", f"expected one of {', '.join(BN_PROTOCOLS)} or a list of them, got {protocol['bn']!r}")
    if "fault_model" in protocol:
        names = protocol["fault_model"] if isinstance(protocol["fault_model"], list) else [protocol["fault_model"]]
        if not names:
            fail(f"{key}.fault_model", "expected a fault model or a list of them, got an empty list")
        for n in names:
            try:
                check_fault_model(n)
            except DSEError as e:
                fail(f"{key}.fault_model", str(e))
    return protocol


def _paths(doc: dict) -> None:
    """A spec may come from someone else: its name becomes a folder (runs/reproduce/NAME) and its data and
    checkpoint_dir are read and written, so none may point outside the configured folders (dse/paths.py)."""
    if "name" in doc and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", doc["name"]):
        fail("name", f"expected letters, digits, '.', '_' or '-' (a folder name), got {doc['name']!r}")
    if "data" in doc:
        _checked("data", lambda v: check_inside(v, data_roots(), "data path"), doc["data"])
    if "checkpoint_dir" in doc:
        _checked("checkpoint_dir", lambda v: check_inside(v, checkpoint_roots(), "checkpoint folder"),
                 doc["checkpoint_dir"])


def _resources(table) -> dict:
    resources = {**RESOURCE_DEFAULTS, **_table("resources", table)}
    _unknown("resources", resources, RESOURCE_DEFAULTS)
    if _nonneg_number("resources.cpus", resources["cpus"]) == 0:
        fail("resources.cpus", "expected a positive number of CPUs per job, got 0")
    if resources["train_gpus"] != "auto":
        _nonneg_number("resources.train_gpus", resources["train_gpus"])
    _nonneg_number("resources.evaluate_gpus", resources["evaluate_gpus"])
    if isinstance(resources["max_retries"], bool) or not isinstance(resources["max_retries"], int) \
            or resources["max_retries"] < 0:
        fail("resources.max_retries", f"expected a non-negative integer, got {resources['max_retries']!r}")
    return resources


def parse_spec(doc: dict, name: str = "sweep", source: str = "") -> SweepSpec:
    """A spec from an already-parsed TOML/YAML document."""
    from dse.core.runtime.device import check_device_name

    if not isinstance(doc, dict):
        fail("", "the file must hold a table of keys (name = ..., [[grid]] ...)")
    _unknown("", doc, TOP_KEYS)
    if "axes" not in doc and "grid" not in doc:
        fail("grid", "no grid; give an [axes] table or one or more [[grid]] blocks")
    grids = []
    if "axes" in doc:
        grids.append(_grid("axes", doc["axes"]))
    blocks = doc.get("grid", [])
    if not isinstance(blocks, list) or ("grid" in doc and not blocks):
        fail("grid", "expected one or more [[grid]] blocks")
    grids += [_grid(f"grid[{i + 1}]", b) for i, b in enumerate(blocks)]

    recipe = {**RECIPE_DEFAULTS, **_recipe("recipe", doc.get("recipe", {}))}
    protocol = {**PROTOCOL_DEFAULTS, **_protocol("protocol", doc.get("protocol", {}))}

    resources = _resources(doc.get("resources", {}))
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        fail("seed", f"expected a non-negative integer, got {seed!r}")
    for key in ("name", "description", "data", "checkpoint_dir"):
        if key in doc and not (isinstance(doc[key], str) and doc[key]):
            fail(key, f"expected a non-empty string, got {doc[key]!r}")
    _paths(doc)
    if not isinstance(doc.get("manifest", False), bool):
        fail("manifest", f"expected true or false, got {doc['manifest']!r}")
    spec = SweepSpec(
        name=doc.get("name", name), description=doc.get("description", ""), grids=tuple(grids),
        fault_rates=_rates("fault_rates", doc["fault_rates"]) if "fault_rates" in doc else DEFAULT_FAULT_RATES,
        data=doc.get("data"), checkpoint_dir=doc.get("checkpoint_dir", "runs/checkpoints"),
        device=_checked("device", check_device_name, doc.get("device", "auto")), seed=seed, recipe=recipe,
        precision=_checked("precision", check_precision, doc["precision"]) if "precision" in doc else None,
        protocol=protocol, resources=resources, manifest=doc.get("manifest", False), source=source)
    blocks = spec.blocks()
    names = {point for point, _, _ in blocks}
    for point, _, g in blocks:
        base = g.base_of(point)
        if base is None:
            continue
        i = next(i for i, x in enumerate(spec.grids) if x is g)
        if base not in names:
            fail(f"grid[{i + 1}].finetune_from", f"the base point {base} is not in the spec; add it to a grid")
        for axis in ("shortcut_kernel", "width"):  # weights can grow, not shrink
            if getattr(base, axis) > getattr(point, axis):
                fail(f"grid[{i + 1}].finetune_from", f"{axis} {getattr(base, axis):g} is larger than the fine-tuned "
                      f"point's {getattr(point, axis):g}; a base may only have the same or a smaller one")
    return spec


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and validate a spec file (.toml, or .yaml/.yml with PyYAML); a packaged grid's name
    (`default`, `paper`) works too."""
    path = Path(path)
    if not path.exists() and (GRIDS_DIR / f"{path}.toml").exists():
        path = GRIDS_DIR / f"{path}.toml"
    if not path.is_file():
        grids = ", ".join(sorted(p.stem for p in GRIDS_DIR.glob("*.toml")))
        raise DSEError(f"sweep spec {str(path)!r} not found; give a .toml file or one of: {grids}")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise DSEError(f"{path} is YAML, which needs PyYAML: pip install pyyaml (or write the spec in TOML)") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise DSEError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise DSEError(f"{path}: not valid TOML ({e})") from None
    return parse_spec(doc, name=path.stem, source=str(path))


def parse_only(items: list[str]) -> tuple:
    """`AXIS=V1,V2` filters from the command line, values checked like the spec's axes."""
    out = {}
    for item in items:
        axis, eq, values = item.partition("=")
        axis = axis.strip().replace("-", "_")
        if not eq or axis not in AXES[:-1] or not values:
            fail("--only", f"expected AXIS=V1,V2 with AXIS one of {', '.join(AXES[:-1])}, got {item!r}")
        raw = []
        for v in values.split(","):
            v = v.strip()
            try:
                raw.append(int(v) if axis == "shortcut_kernel" else float(v) if axis in ("width", "dropconnect") else v)
            except ValueError:
                fail(f"--only {axis}", f"expected a number, got {v!r}")
        out[axis] = set(out.get(axis, set())) | set(_axis("--only", axis, raw))
    return tuple((axis, frozenset(v)) for axis, v in out.items())
