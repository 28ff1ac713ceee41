"""Shared fixtures: the repository, the course's notebooks, and the solutions as functions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import notebooks as nbs
from autograder import paths, registry

REPO = paths.REPO
BIN = Path(sys.executable).parent
ASSIGNMENTS = registry.assignments()

# nbgrader runs `alembic` and reads autograder/nbgrader_config.py: set both for
# every subprocess, not only for an activated shell.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


solution_path = paths.solution_notebook
release_path = paths.release_notebook


def load_solution(aid: str) -> dict:
    """The instructor's reference functions of an assignment (its solution cells, run once per process: the
    same cache as make bench's, so a test session never runs a solution notebook twice)."""
    from autograder.bench import solution

    return solution(aid)


@pytest.fixture(scope="session")
def sol1():
    """The Chapter 1 solution notebook's functions (conv2d_output_size, conv2d)."""
    return load_solution("ch01_cnn_size")


def message_of(check, fn, **kwargs) -> str:
    """The learner-facing message of a check that must fail on ``fn``."""
    from autograder import CheckFailure

    with pytest.raises(CheckFailure) as info:
        check(fn, quiet=True, **kwargs)
    return str(info.value)


def answers(aid: str) -> dict[str, str]:
    """The instructor's solution cells of an assignment: grade_id -> source."""
    return {gid: src for _, gid, src in nbs.solution_cells(nbs.read(solution_path(aid)))}


def submission(release, sources: dict[str, str]):
    """A released notebook with some solution cells filled in (grade_id -> source), as a student would."""
    import json

    import nbformat

    nb = nbformat.from_dict(json.loads(json.dumps(release)))  # a deep copy: the release is never modified
    for cell in nb.cells:
        gid = nbs.nbgrader_meta(cell).get("grade_id")
        if gid in sources:
            cell.source = sources[gid]
    return nb


def grade_class(aid: str, students: dict[str, dict[str, str]], tmp: Path, *grade_args: str):
    """Write one submission per student (release + their cells) and grade them with the real `make grade`
    pipeline. Returns (out folder, grades.csv rows by student)."""
    import csv

    import nbformat

    release = nbs.read(release_path(aid))
    for student, sources in students.items():
        (tmp / "submissions" / student).mkdir(parents=True)
        nbformat.write(submission(release, sources), str(tmp / "submissions" / student / f"{aid}.ipynb"), version=4)
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "-m", "autograder.grading", aid, str(tmp / "submissions"), str(out),
                           *grade_args], capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "grades.csv") as f:
        return out, {r["student_id"]: r for r in csv.DictReader(f)}


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
    # The course's own configuration, with the folders moved into this private course (as `make grade` does,
    # but with nbgrader's own autograde, which executes the notebooks).
    from autograder.grading.cli import course_config

    (root / "nbgrader_config.py").write_text(course_config(root, execute=True))
    return root


# ---- The book, built once per test session in both editions (autograder/book.py) ----------------

@pytest.fixture(scope="session")
def books(tmp_path_factory) -> dict[str, Path]:
    """Both editions, built from scratch into a private folder with warnings as errors: the
    instructor edition executes every chapter, the student edition reuses its execution cache.
    Maps each edition to its HTML folder, and "cache" to that cache."""
    from autograder import book

    if os.environ.get("COURSE_TEST_PREBUILT_BOOKS") == "1":
        # For iterating on the book tests only: use what `make book` and `make book-student` built
        # (possibly stale). CI and `make test` never set this, so they always build afresh.
        return {**{e: book.report_dir(book.default_out(e)) for e in book.EDITIONS},
                "cache": REPO / "_build" / ".jupyter_cache"}
    root = tmp_path_factory.mktemp("books")
    out = {"cache": root / "jupyter_cache"}
    for edition in ("instructor", "student"):
        proc = book.build(edition, root / edition, cache=out["cache"], quiet=True)
        assert proc.returncode == 0, f"the {edition} edition failed to build:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        out[edition] = book.report_dir(root / edition)
    return out


@pytest.fixture(scope="session")
def student_book(books) -> Path:
    return books["student"]


@pytest.fixture(scope="session")
def instructor_book(books) -> Path:
    return books["instructor"]


def make_in_copy(tmp_path, *args, env=None, timeout=300):
    """``make`` run in a copy of the Makefile (with pyproject.toml and README.md) in ``tmp_path``."""
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    return subprocess.run(["make", "--no-print-directory", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
