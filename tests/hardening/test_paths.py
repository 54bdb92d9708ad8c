"""Path confinement: a path typed into the app or written in a sweep spec must resolve inside the configured
folders (dse/core/io/paths.py: the working folder, $DSE_DATA's folder, $DSE_CHECKPOINTS, $DSE_RUNS, $DSE_ALLOWED_DIRS);
`..`, absolute paths and links cannot lead out. Paths typed on the command line are the user's own."""
import os

import pytest

from dse.domain.errors import DSEError
from dse.core.io.paths import check_inside, checkpoint_roots, data_roots
from dse.results.store import Store
from tests.hardening.common import one_line_error, run_cli
from tests.test_app import app


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A working folder with a sibling outside it, and no extra allowed folders."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    monkeypatch.chdir(root)
    for name in ("DSE_ALLOWED_DIRS", "DSE_DATA", "DSE_CHECKPOINTS", "DSE_RUNS"):
        monkeypatch.delenv(name, raising=False)
    return root


def test_paths_inside_the_configured_folders_pass_and_others_are_named(project, monkeypatch):
    check_inside("data/cifar.tar.gz", data_roots(), "data path")
    check_inside(project / "data", data_roots(), "data path")
    (project / "data" / "link").symlink_to(project.parent / "outside")
    for bad in ("../outside", str(project.parent / "outside"), "/etc/passwd", "data/../../outside", "data/link/x",
                "~/.ssh"):
        with pytest.raises(DSEError) as e:
            check_inside(bad, data_roots(), "data path")
        assert f"data path {bad!r} is outside the allowed folders" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setenv("DSE_ALLOWED_DIRS", str(project.parent / "outside"))  # the operator allows one more
    check_inside("../outside/x", data_roots(), "data path")
    check_inside("../outside/ck", checkpoint_roots(), "checkpoint folder")
    monkeypatch.setenv("DSE_ALLOWED_DIRS", "")
    monkeypatch.setenv("DSE_DATA", str(project.parent / "outside" / "cifar.tar.gz"))  # and $DSE_DATA's folder
    check_inside(project.parent / "outside" / "other.tar.gz", data_roots(), "data path")
    with pytest.raises(DSEError):
        check_inside(project.parent / "outside" / "ck", checkpoint_roots(), "checkpoint folder")


SPEC = 'name = "{name}"\ndata = "{data}"\ncheckpoint_dir = "{ckpt}"\n[[grid]]\nnetwork = "resnet20"\n'


@pytest.mark.parametrize("key, value", [
    ("ckpt", "../outside"), ("ckpt", "/etc"), ("ckpt", "runs/../../outside"),
    ("data", "../outside/cifar.tar.gz"), ("data", "/etc/passwd"),
    ("name", "../../outside"), ("name", "a/b"), ("name", ".."),
])
def test_a_sweep_spec_cannot_point_outside(project, key, value):
    fields = {"name": "ok", "data": "data/cifar.tar.gz", "ckpt": "runs/checkpoints", key: value}
    spec = project / "spec.toml"
    spec.write_text(SPEC.format(**fields))
    line = one_line_error(["sweep", str(spec), "--dry-run", "--store", str(project / "s.sqlite")])
    spec_key = {"ckpt": "checkpoint_dir"}.get(key, key)
    assert line.startswith(f"error: sweep spec {spec_key}: ") and repr(value) in line, line
    assert sorted(os.listdir(project)) == ["data", "spec.toml"] and not os.listdir(project.parent / "outside")


def test_command_line_paths_are_the_users_own(project):
    spec = project / "spec.toml"
    spec.write_text(SPEC.format(name="ok", data="data/cifar.tar.gz", ckpt="runs/checkpoints"))
    code, out, err = run_cli(["sweep", str(spec), "--dry-run", "--store", str(project / "s.sqlite"),
                              "--checkpoint-dir", str(project.parent / "outside"), "--data", "/elsewhere/cifar"])
    assert code == 0 and "5 jobs, 0 done" in out, err


def test_the_app_refuses_a_data_path_outside_and_starts_no_job(tmp_path, monkeypatch):
    from tests.fixtures import build_store

    build_store(tmp_path)
    at = app(tmp_path, monkeypatch)
    at.sidebar.select_slider(key="width").set_value(1.4).run()  # a missing point: it offers training
    for bad in ("/etc", "../../../../../../etc/passwd"):
        at.sidebar.text_input(key="data").set_value(bad).run()
        assert not at.exception
        assert any(f"data path {bad!r} is outside the allowed folders" in e.value for e in at.error)
        # the refusal gives the exact command that allows it (the folder added to what is allowed already)
        assert any("; to allow it, restart with: DSE_ALLOWED_DIRS=" in e.value
                   and e.value.endswith(f"{os.pathsep}/etc streamlit run app.py") or
                   e.value.endswith("DSE_ALLOWED_DIRS=/etc streamlit run app.py") for e in at.error)
        assert "train" not in [b.key for b in at.button]
    assert Store(tmp_path / "results.sqlite").jobs().empty
    at.sidebar.text_input(key="data").set_value(str(tmp_path / "cifar")).run()  # inside: allowed
    assert not at.error and "train" in [b.key for b in at.button]


def test_the_app_finds_data_in_the_working_folder_without_configuration(project, tmp_path, monkeypatch):
    """The documented data location (./data: the README's first run, docs/explorer.md) works with the README's app
    command: no variable, no restart."""
    from tests.fixtures import build_store

    build_store(tmp_path)
    at = app(tmp_path, monkeypatch)  # cwd: the project, which holds data/; DSE_DATA empty
    assert at.sidebar.text_input(key="data").value == "data"
    at.sidebar.select_slider(key="width").set_value(1.4).run()  # a missing point: it offers training
    assert not at.error and "train" in [b.key for b in at.button]
