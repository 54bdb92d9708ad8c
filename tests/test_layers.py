"""The package's layers, read from the source: core < results < run < view, the app on top of view and run,
and no function over 60 lines without a reason in its docstring (ARCHITECTURE.md)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what each layer may import from the package (besides itself and `dse` / `dse.__init__`)
ALLOWED = {"core": set(), "results": {"core"}, "run": {"core", "results"}, "view": {"core", "results", "run"},
           "bench": {"core"}, "commands": {"core", "results", "run", "view", "bench", "commands"}}
APP_ALLOWED = {"view", "run"}
LONG = 60


def dse_imports(path: Path) -> set[str]:
    """Every `dse.X...` module a file imports, at any depth (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("dse.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "dse":
                out |= {f"dse.{a.name}" for a in node.names}
            elif node.module.startswith("dse."):
                out.add(node.module)
    return out


def layer_of(module: str) -> str:
    return module.split(".")[1]


def package_files():
    return sorted(p for p in (ROOT / "dse").rglob("*.py"))


@pytest.mark.parametrize("path", package_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_layer_imports_only_those_below_it(path):
    parts = path.relative_to(ROOT / "dse").parts
    if len(parts) == 1:  # dse/cli.py, dse/__main__.py, dse/__init__.py: the top, anything goes
        return
    layer = parts[0]
    bad = {m for m in dse_imports(path) if layer_of(m) != layer and layer_of(m) not in ALLOWED[layer]
           and m != "dse.__version__"}
    assert not bad, f"{path.relative_to(ROOT)} ({layer}) imports {sorted(bad)}"


def test_the_app_imports_only_view_and_run():
    bad = {m for m in dse_imports(ROOT / "app.py") if layer_of(m) not in APP_ALLOWED}
    assert not bad, f"app.py imports {sorted(bad)}"


def imports_streamlit(path: Path) -> bool:
    """Whether a file imports streamlit to draw (streamlit.testing, which runs a page from outside, aside)."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(n.split(".")[0] == "streamlit" and not n.startswith("streamlit.testing") for n in names):
            return True
    return False


def test_only_the_pages_import_streamlit():
    """The backend never imports streamlit: only app.py and dse/view/pages/ draw the page."""
    pages = ROOT / "dse" / "view" / "pages"
    bad = [str(p.relative_to(ROOT)) for p in package_files() if imports_streamlit(p) and pages not in p.parents]
    assert not bad, f"streamlit imported outside dse/view/pages/: {bad}"
    assert imports_streamlit(pages / "sidebar.py")  # the check sees an import


def test_every_module_lives_in_a_layer():
    loose = {p.name for p in (ROOT / "dse").glob("*.py")} - {"__init__.py", "__main__.py", "cli.py"}
    assert not loose, f"modules outside the layers: {sorted(loose)}"


def test_no_long_function_without_a_reason():
    """A function over 60 lines says why in its docstring ("Long because ...")."""
    long = []
    for path in package_files() + [ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > LONG and "Long because" not in (ast.get_docstring(node) or ""):
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


def test_the_checker_sees_a_violation(tmp_path):
    """The rule above can fail: a core module importing the store is caught."""
    f = tmp_path / "bad.py"
    f.write_text("def f():\n    from dse.results.store import Store\n")
    assert {layer_of(m) for m in dse_imports(f)} - ALLOWED["core"] == {"results"}
