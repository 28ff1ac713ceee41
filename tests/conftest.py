"""Shared fixtures: the repository, the course's notebooks, and the solutions as functions."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import notebooks as nbs

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())

# nbgrader runs `alembic` and reads autograder/nbgrader_config.py: set both for
# every subprocess, not only for an activated shell.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def solution_path(aid: str) -> Path:
    return REPO / "solutions" / aid / f"{aid}.ipynb"


def release_path(aid: str) -> Path:
    return REPO / "notebooks" / aid / f"{aid}.ipynb"


@functools.lru_cache(maxsize=None)
def _load_solution(aid: str) -> dict:
    return nbs.load_functions(solution_path(aid))


def load_solution(aid: str) -> dict:
    """The instructor's reference functions of an assignment (its solution cells, run once)."""
    return _load_solution(aid)


@pytest.fixture(scope="session")
def sol1():
    """The Chapter 1 solution notebook's functions (conv2d_output_size, conv2d)."""
    return load_solution("ch01_cnn_size")


def nbgrader(*args, cwd, config_dir=REPO / "autograder", check=True, timeout=900):
    """Run the real nbgrader CLI."""
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(config_dir))
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_course(tmp: Path, aids=ASSIGNMENTS) -> Path:
    """A private nbgrader course folder: source/ copied from solutions/, its own gradebook."""
    root = tmp / "course"
    for aid in aids:
        dst = root / "source" / aid
        dst.mkdir(parents=True)
        shutil.copy(solution_path(aid), dst / f"{aid}.ipynb")
    # The course's own configuration, with the folders moved into this private course.
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"load_subconfig({str(REPO / 'autograder' / 'nbgrader_config.py')!r})\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.CourseDirectory.source_directory = 'source'\n"
        "c.CourseDirectory.release_directory = 'release'\n"
        "c.CourseDirectory.submitted_directory = 'submitted'\n"
        "c.CourseDirectory.autograded_directory = 'autograded'\n"
        "c.CourseDirectory.feedback_directory = 'feedback'\n"
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(root / 'gradebook.db')!r}\n"
    )
    return root
