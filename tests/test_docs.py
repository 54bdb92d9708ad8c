"""The user documents: the README stays a short front door whose commands are the ones CI runs, every relative
link in it and in docs/ reaches a file, every module path they name exists, no document narrates how the work
went, and docs/cost-model.md's table is the command's output."""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
USER_DOCS = [*DOCS, ROOT / "RELIABILITY.md", ROOT / "BENCHMARKS.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines; move the detail into docs/"


def test_the_readme_gives_the_commands_ci_runs():
    """.ci/run installs the extras and runs pytest as the README says a new user does."""
    ci, readme = (ROOT / ".ci" / "run").read_text(), README.read_text()
    extras = re.search(r'pip install .*-e "(\.\[[^\]]+\])"', ci).group(1)
    assert re.search(r"^python -m pytest -q\b", ci, re.M)
    assert f'    pip install -e "{extras}" && python -m pytest -q\n' in readme
    assert "    pip install -e . && streamlit run app.py\n" in readme


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_a_file(doc):
    targets = [t for t in LINK.findall(doc.read_text()) if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in targets if not (doc.parent / t.split("#")[0]).exists()]
    assert not missing, f"{doc.name} links to {missing}, which do not exist"


def _resolves(dotted: str) -> bool:
    """A module (dse.core.training.widen) or an attribute of one (dse.core.training.train.grown_state)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


@pytest.mark.parametrize("doc", [*USER_DOCS, ROOT / "ARCHITECTURE.md"], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_module_and_file_a_document_names_exists(doc):
    text = doc.read_text()
    dotted = sorted({m for m in re.findall(r"`(dse(?:\.\w+)+)`", text)})
    stale = [m for m in dotted if not _resolves(m)]
    paths = sorted({m for m in re.findall(r"\b((?:dse|tests)/[\w/]+\.py)\b", text)})
    stale += [p for p in paths if not (ROOT / p).exists()]
    assert not stale, f"{doc.name} names {stale}, which do not exist"


NARRATION = [r"\bDecision:", r"\bwe (?:then|decided|tried|aimed)\b", r"\bpaused\b", r"\(see Budget\)",
             r"\bhour budget\b", r"\bour notes\b", r"issue #\d+", r"/work/|/home/|/root/|/tmp/"]


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_user_document_narrates_the_work(doc):
    """User documents state the product and its findings, not how the work went, nor this machine's paths."""
    text = doc.read_text()
    found = [m.group(0) for pattern in NARRATION for m in re.finditer(pattern, text)]
    assert not found, f"{doc.name}: {found}"


def test_the_cost_table_is_the_commands_output(capsys):
    from dse.cli import main

    doc = (ROOT / "docs" / "cost-model.md").read_text()
    block = re.search(r"```cost-table\n(.*?)```", doc, re.S).group(1)
    assert main(["cost", "--table"]) == 0
    assert capsys.readouterr().out == block, "rerun `python -m dse cost --table` into docs/cost-model.md"


def test_the_ray_recipe_shares_the_heads_token():
    """docs/cli.md's cluster recipe: the head makes the token, every node and the driver use that same one."""
    cli = (ROOT / "docs" / "cli.md").read_text()
    recipe = cli[cli.index("### A sweep on a Ray cluster"):]
    assert "RAY_AUTH_TOKEN=$(ray get-auth-token --generate)" in recipe
    assert "RAY_AUTH_MODE=token RAY_AUTH_TOKEN=TOKEN ray start --address HEAD:6379" in recipe
    assert "RAY_AUTH_MODE=token RAY_AUTH_TOKEN=TOKEN python -m dse sweep SPEC --backend ray" in recipe


def test_every_example_command_parses():
    """Each `python -m dse ...` line in the README and docs/ names only options its command has, and one without
    placeholders ([optional parts], a|b choices) is a command line the CLI accepts: an option renamed or removed
    shows up here."""
    import argparse
    import shlex

    from dse.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    parsed, bad = 0, []
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for line in re.findall(r"^\s+(?:RAY_\S+ )*python -m dse (.+)$", text, re.M):
            line = line.split("  #")[0]
            command = commands.get(line.split()[0])
            unknown = [o for o in re.findall(r"(?<![\w-])--[a-z][\w-]*", line)
                       if command is None or o not in command._option_string_actions]
            if unknown:
                bad.append(f"{doc.name}: {line.split()[0]} {unknown}")
            elif "[" not in line and "|" not in line:
                try:
                    parser.parse_args(shlex.split(line))
                    parsed += 1
                except SystemExit:
                    bad.append(f"{doc.name}: {line}")
    assert parsed >= 10 and not bad, bad
