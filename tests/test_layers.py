"""The package's shape, read from the source (ARCHITECTURE.md): domain < core < results < run < view, the app on top
of domain, view and run; each layer's third-party imports; the torch-free modules (the whole domain among them) and
the page's modules free of torch at import;
no import cycle between modules; no function over 60 lines or with over 6 positional parameters.

Every import counts wherever it sits (inside a function too), relative ones resolved, `importlib.import_module`
strings read. Each rule is shown to fail on a violation planted in a copy of the package."""
from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what each layer may import from the package (besides itself and `dse` / `dse.__init__`)
ALLOWED = {"domain": set(), "core": {"domain"}, "results": {"domain", "core"}, "run": {"domain", "core", "results"},
           "view": {"domain", "core", "results", "run"}, "bench": {"domain", "core"},
           "commands": {"domain", "core", "results", "run", "view", "bench", "commands"}}
APP_ALLOWED = {"domain", "view", "run"}
# core's rooms, in order: each imports only those before it, and the torch-free modules of core itself
CORE_ROOMS = ("models", "crossbar", "faults", "io", "runtime", "evaluation", "training", "cost")
# third-party packages a layer may not import (app.py counts as the view)
BANNED = {"domain": {"streamlit", "plotly", "pandas"}, "core": {"streamlit", "plotly", "pandas"}, "results": {"streamlit"}, "run": {"streamlit"},
          "bench": {"streamlit"}, "commands": {"streamlit"}, "": {"streamlit"}}
SQLITE_LAYERS = {"results"}  # every line of SQL is in the store
EXEMPT = {("bench", "streamlit.testing")}  # the bench times the page as Streamlit's AppTest runs it, drawing nothing
TORCH = {"torch", "torchvision", "safetensors", "ptflops"}  # each imports torch
# modules that never import torch, at any depth: the page, the CLI's parser and the cost cards use them (every
# module of the domain, then core's own torch-free ones)
TORCH_FREE = (*sorted(f"dse.domain.{p.stem}" for p in (ROOT / "dse" / "domain").glob("*.py") if p.stem != "__init__"),
              "dse.core.cost.isaac")
PAGES = "dse.view.pages"  # the only view modules that import streamlit: the sidebar, the cached queries, one per tab
PAGE_LAYERS = ("view", "run", "results")  # the page imports these: no torch until a figure or a job needs it
LONG, POSITIONAL = 60, 6
# functions allowed over those limits (at most three), "path::qualified name" -> why
ALLOW: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    target: str  # the dotted module name: `dse.core.faults.draws`, `torch.nn`
    line: int
    in_function: bool
    at_import: bool  # runs when the module is imported (not in a function, not under TYPE_CHECKING)

    @property
    def top(self) -> str:
        return self.target.split(".")[0]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "dse").rglob("*.py") if "__pycache__" not in p.parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in package_files(root)}


def _resolve(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    """The absolute module a `from ... import` names (relative levels resolved against `here`)."""
    if not node.level:
        return node.module or ""
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _string_import(node: ast.Call) -> str | None:
    """`importlib.import_module("dse.x")` / `__import__("dse.x")`: the module, or an f-string's fixed prefix."""
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    if name not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rstrip(".") or None
    return None


def imports(path: Path, root: Path, known: set[str]) -> list[Import]:
    """Every import of one file by full module name (a name imported from a package counts as the submodule
    when it is one of `known`)."""
    here = module_name(path, root) if path.is_relative_to(root / "dse") else path.stem
    out: list[Import] = []

    def visit(node: ast.AST, in_function: bool, at_import: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function, at_import = True, False
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            at_import = False
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, here, path.name == "__init__.py")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Call):
            targets = [t] if (t := _string_import(node)) else []
        out.extend(Import(t, node.lineno, in_function, at_import) for t in targets)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function, at_import)

    visit(ast.parse(path.read_text()), False, True)
    return out


def layer_of(module: str) -> str:
    """`core` for dse.core.x; "" for the package's top (dse, dse.cli, dse.__main__) and for app.py."""
    parts = module.split(".")
    return parts[1] if parts[0] == "dse" and len(parts) > 1 and parts[1] in ALLOWED else ""


class Package:
    """The import graph of a checkout's `dse` package and app.py."""

    def __init__(self, root: Path):
        self.root = root
        self.files = modules(root)
        known = set(self.files)
        self.imports = {m: imports(p, root, known) for m, p in self.files.items()}
        self.app = imports(root / "app.py", root, known) if (root / "app.py").exists() else []

    def rel(self, module: str) -> str:
        return str(self.files[module].relative_to(self.root))

    def dse_deps(self, module: str, at_import: bool = False) -> set[str]:
        """The dse modules `module` imports (only those that run on import, if asked), parents included when
        at_import (importing dse.a.b runs dse/a/__init__.py first)."""
        out = set()
        for imp in self.imports[module]:
            if imp.top == "dse" and imp.target in self.files and (imp.at_import or not at_import):
                out.add(imp.target)
                if at_import:
                    parts = imp.target.split(".")
                    out |= {".".join(parts[:i]) for i in range(1, len(parts))} & set(self.files)
        out.discard(module)
        return out

    def torch_at_import(self) -> dict[str, str]:
        """Each module that imports torch when imported -> how (its own import, or the first dse module it
        imports that does)."""
        why: dict[str, str] = {}
        for m, imps in self.imports.items():
            hit = next((i for i in imps if i.at_import and i.top in TORCH), None)
            if hit:
                why[m] = f"imports {hit.target} (line {hit.line})"
        changed = True
        while changed:
            changed = False
            for m in self.files:
                if m in why:
                    continue
                dep = next((d for d in sorted(self.dse_deps(m, at_import=True)) if d in why), None)
                if dep:
                    why[m], changed = f"imports {dep}, which {why[dep]}", True
        return why


# ----------------------------------------------------------------------------------- the rules


def layer_violations(pkg: Package) -> list[str]:
    bad = []
    for m, imps in pkg.imports.items():
        layer = layer_of(m)
        if not layer:  # dse/cli.py, dse/__main__.py, dse/__init__.py: the top, anything goes
            continue
        for imp in imps:
            to = layer_of(imp.target)
            if imp.top == "dse" and to and to != layer and to not in ALLOWED[layer]:
                where = "in a function, " if imp.in_function else ""
                bad.append(f"{pkg.rel(m)}:{imp.line} ({layer}) imports {imp.target} ({where}layer {to})")
    for imp in pkg.app:
        if imp.top == "dse" and layer_of(imp.target) not in APP_ALLOWED:
            bad.append(f"app.py:{imp.line} imports {imp.target} (only domain, view and run)")
    return bad


def room_of(module: str) -> int:
    """A core module's room, as its place in CORE_ROOMS; -1 for a module at core's top."""
    parts = module.split(".")
    return CORE_ROOMS.index(parts[2]) if len(parts) > 2 and parts[2] in CORE_ROOMS else -1


def room_violations(pkg: Package) -> list[str]:
    bad = []
    for m in pkg.files:
        if layer_of(m) != "core":
            continue
        for d in sorted(pkg.dse_deps(m)):
            if layer_of(d) == "core" and room_of(d) > room_of(m):
                here = CORE_ROOMS[room_of(m)] if room_of(m) >= 0 else "core's own modules"
                bad.append(f"{pkg.rel(m)} ({here}) imports {d} (room {CORE_ROOMS[room_of(d)]}, later)")
    return bad


def third_party_violations(pkg: Package) -> list[str]:
    bad = []
    for m, imps in [*pkg.imports.items(), ("app.py", pkg.app)]:
        layer = "view" if m == "app.py" else layer_of(m)
        where = "app.py" if m == "app.py" else pkg.rel(m)
        for imp in imps:
            exempt = any(imp.target.startswith(name) for lay, name in EXEMPT if lay == layer)
            if imp.top in BANNED.get(layer, set()) and not exempt:
                bad.append(f"{where}:{imp.line} ({layer or 'top'}) imports {imp.top}")
            if imp.top == "sqlite3" and layer not in SQLITE_LAYERS:
                bad.append(f"{where}:{imp.line} imports sqlite3 outside {', '.join(SQLITE_LAYERS)}")
    return bad


def streamlit_violations(pkg: Package) -> list[str]:
    """The view draws with streamlit only in dse/view/pages/ (the rest of the view is plain functions)."""
    return [f"{pkg.rel(m)}:{i.line} imports streamlit outside {PAGES}" for m, imps in pkg.imports.items()
            if layer_of(m) == "view" and not m.startswith(PAGES + ".") for i in imps
            if i.top == "streamlit" and not i.target.startswith("streamlit.testing")]


def torch_free_violations(pkg: Package) -> list[str]:
    bad = []
    at_import = pkg.torch_at_import()
    for m in TORCH_FREE:
        if m not in pkg.files:
            bad.append(f"{m}: a torch-free module that does not exist")
            continue
        bad += [f"{pkg.rel(m)}:{i.line} imports {i.top} (torch-free module)"
                for i in pkg.imports[m] if i.top in TORCH]
        if m in at_import:
            bad.append(f"{pkg.rel(m)} (torch-free module) {at_import[m]}")
    for m, why in at_import.items():
        if layer_of(m) in PAGE_LAYERS:
            bad.append(f"{pkg.rel(m)} (imported by the page) {why}")
    return bad


def cycles(pkg: Package) -> list[str]:
    """Strongly connected groups of dse modules (every import counts, in functions too), Tarjan's way."""
    graph = {m: pkg.dse_deps(m) for m in pkg.files}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[str] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(" <-> ".join(sorted(group)))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _functions(path: Path):
    """(qualified name, node) of every function in a file, methods as Class.method."""
    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)
    yield from walk(ast.parse(path.read_text()), "")


def size_violations(pkg: Package) -> dict[str, str]:
    """`path::function` -> what is too big: over LONG lines (dse/ and app.py), over POSITIONAL positional
    parameters, self and cls not counted (dse/)."""
    out = {}
    paths = [pkg.files[m] for m in sorted(pkg.files)] + [p for p in [pkg.root / "app.py"] if p.exists()]
    for path in paths:
        in_package = path.is_relative_to(pkg.root / "dse")
        for name, node in _functions(path):
            key, why = f"{path.relative_to(pkg.root)}::{name}", []
            lines = node.end_lineno - node.lineno + 1
            if lines > LONG:
                why.append(f"{lines} lines")
            args = [*node.args.posonlyargs, *node.args.args]
            positional = len(args) - (1 if args and args[0].arg in ("self", "cls") else 0)
            if in_package and positional > POSITIONAL:
                why.append(f"{positional} positional parameters (make those after the first few keyword-only)")
            if why:
                out[key] = ", ".join(why)
    return out


RULES = {
    "layers": layer_violations,
    "rooms": room_violations,
    "third-party": third_party_violations,
    "streamlit": streamlit_violations,
    "torch-free": torch_free_violations,
    "cycles": cycles,
    "size": lambda pkg: [f"{k}: {v}" for k, v in size_violations(pkg).items() if k not in ALLOW],
}


@pytest.fixture(scope="module")
def package() -> Package:
    return Package(ROOT)


@pytest.mark.parametrize("rule", RULES)
def test_the_package_keeps_each_rule(package, rule):
    bad = RULES[rule](package)
    assert not bad, "\n".join(bad)


def test_every_module_lives_in_a_layer():
    loose = {p.name for p in (ROOT / "dse").glob("*.py")} - {"__init__.py", "__main__.py", "cli.py"}
    assert not loose, f"modules outside the layers: {sorted(loose)}"


def test_the_allow_list_is_short_reasoned_and_needed(package):
    assert len(ALLOW) <= 3, "at most three functions may be over the size limits"
    assert all(reason.strip() for reason in ALLOW.values()), "each allowed function says why"
    stale = set(ALLOW) - set(size_violations(package))
    assert not stale, f"allowed but within the limits now (drop them): {sorted(stale)}"


# ----------------------------------------------------------------------------------- each rule can fail

PLANTS = {  # rule -> [(file in the copy, code appended to it, what the report names)]
    "layers": [
        ("dse/core/planted.py", "from dse.results.store import Store\n", "dse.results.store"),
        ("dse/core/planted.py", "from ..run import jobs\n", "dse.run.jobs"),  # relative
        ("dse/core/planted.py", "import importlib\nimportlib.import_module('dse.view.charts')\n", "dse.view.charts"),
        ("dse/results/planted.py", "def f():\n    from dse.run.spec import parse_spec\n", "in a function"),
        ("app.py", "\nfrom dse.results.store import Store\n", "app.py"),
        ("dse/domain/planted.py", "from dse.core.models import build_model\n", "dse.core.models"),
    ],
    "rooms": [
        ("dse/core/crossbar/planted.py", "from dse.core.training.train import train\n", "dse.core.training.train"),
        ("dse/core/planted.py", "def f():\n    from .faults import injector\n", "dse.core.faults.injector"),
    ],
    "third-party": [
        ("dse/core/planted.py", "import pandas\n", "pandas"),
        ("dse/core/planted.py", "import plotly.express\n", "plotly"),
        ("dse/run/planted.py", "def f():\n    import streamlit\n", "streamlit"),
        ("dse/bench/planted.py", "import streamlit as st\n", "streamlit"),
        ("dse/view/planted.py", "import sqlite3\n", "sqlite3"),
    ],
    "streamlit": [
        ("dse/view/planted.py", "import streamlit as st\n", "dse/view/planted.py"),
        ("dse/view/planted.py", "def f():\n    from streamlit import cache_data\n", "imports streamlit"),
    ],
    "torch-free": [
        (TORCH_FREE[-1].replace(".", "/") + ".py", "\ndef f():\n    import torch\n", "(torch-free module)"),
        (TORCH_FREE[0].replace(".", "/") + ".py", "\nfrom dse.core.models import build_model\n", "dse.core.models"),
        ("dse/view/planted.py", "import torch\n", "(imported by the page)"),
        ("dse/run/planted.py", "from dse.core.models import build_model\n", "(imported by the page)"),
    ],
    "cycles": [
        ("dse/core/planted_a.py", "def f():\n    from dse.core.planted_b import g\n", "planted_a <-> dse.core.planted_b"),
        ("dse/core/planted_b.py", "from .planted_a import f\ndef g():\n    pass\n", "planted_a <-> dse.core.planted_b"),
    ],
    "size": [
        ("dse/core/planted.py", "def long():\n" + "    x = 1\n" * 60, "61 lines"),
        ("dse/view/planted.py", "def wide(a, b, c, d, e, f, g):\n    pass\n", "7 positional"),
    ],
}


CASES = [(rule, [plant]) for rule, plants in PLANTS.items() if rule != "cycles" for plant in plants]
CASES.append(("cycles", PLANTS["cycles"]))  # a cycle takes both halves


@pytest.mark.parametrize("rule,plants", CASES, ids=[f"{rule}-{i}" for i, (rule, _) in enumerate(CASES)])
def test_each_rule_reports_a_planted_violation(package, tmp_path, rule, plants):
    """A copy of the package with one violation planted: the rule names it (and did not before)."""
    named = plants[-1][2]
    assert named not in "\n".join(RULES[rule](package))
    shutil.copytree(ROOT / "dse", tmp_path / "dse", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "app.py", tmp_path / "app.py")
    for path, code, _ in plants:
        with open(tmp_path / path, "a") as f:
            f.write(code)
    report = "\n".join(RULES[rule](Package(tmp_path)))
    assert named in report, report


# ----------------------------------------------------------------------------------- ARCHITECTURE.md


def test_every_path_architecture_names_exists():
    """Each `dse/...` path in ARCHITECTURE.md, and each module its table names for a layer, is in the tree."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    paths = {p.rstrip(".,;:)") for p in re.findall(r"\bdse/[\w/.]*", text)}
    missing = [p for p in sorted(paths) if not (ROOT / p).exists()]
    for row in re.findall(r"^\| `(dse/[\w/]+/)` \|[^|]*\| ([^|]*) \|$", text, re.M):
        folder, names = row
        for name in re.findall(r"`([\w/]+)`", names):
            if not ((ROOT / folder / f"{name}.py").exists() or (ROOT / folder / name).is_dir()):
                missing.append(f"{folder}{name} (table)")
    assert paths and not missing, f"ARCHITECTURE.md names what is not there: {missing}"
