"""Where paths from outside the command line may point. A path typed into the app, or written in a sweep
spec (a file that may come from someone else), must resolve, links and `..` followed, inside a configured
folder:
- data: the working folder, the folder of $DSE_DATA, and the folders in $DSE_ALLOWED_DIRS;
- checkpoints: the working folder, the folders in $DSE_CHECKPOINTS and $DSE_RUNS, and those in $DSE_ALLOWED_DIRS.
Paths given on the command line (--data, --checkpoint-dir, --out, --store) are the user's own and not confined.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from dse.core.errors import DSEError


DEFAULT_DATA_DIR = Path("data")  # in the working folder: where `train --download` puts CIFAR-10 unless told


def default_data_path() -> Path | None:
    """$DSE_DATA, else the working folder's data/ when it exists (always inside the allowed folders)."""
    env = os.environ.get("DSE_DATA")
    if env:
        return Path(env)
    return DEFAULT_DATA_DIR if DEFAULT_DATA_DIR.is_dir() else None


def _env_dirs(name: str) -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(name, "").split(os.pathsep) if p]


def data_roots() -> list[Path]:
    roots = [Path.cwd(), *_env_dirs("DSE_ALLOWED_DIRS")]
    for data in _env_dirs("DSE_DATA"):
        data = data.resolve()
        roots.append(data if data.is_dir() else data.parent)
    return roots


def checkpoint_roots() -> list[Path]:
    return [Path.cwd(), *_env_dirs("DSE_CHECKPOINTS"), *_env_dirs("DSE_RUNS"), *_env_dirs("DSE_ALLOWED_DIRS")]


def check_inside(path: str | os.PathLike, roots: list[Path], what: str, restart: str | None = None) -> None:
    """Raise a one-line DSEError unless `path` (resolved) lies in one of `roots`. `restart`: the command
    that reads such paths (e.g. "streamlit run app.py"); the error then gives it with the path's folder allowed."""
    resolved = Path(path).expanduser().resolve()
    if any(resolved.is_relative_to(root.resolve()) for root in roots):
        return
    allowed = ", ".join(dict.fromkeys(str(r.resolve()) for r in roots))
    folder = resolved if resolved.is_dir() else resolved.parent
    extra = os.pathsep.join([*os.environ.get("DSE_ALLOWED_DIRS", "").split(os.pathsep), str(folder)]).strip(os.pathsep)
    how = (f"to allow it, restart with: DSE_ALLOWED_DIRS={shlex.quote(extra)} {restart}" if restart else
           "move it there or add its folder to DSE_ALLOWED_DIRS")
    raise DSEError(f"{what} {str(path)!r} is outside the allowed folders ({allowed}); {how}")
