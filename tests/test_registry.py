"""The one registry of checks (autograder/registry.py) and what is derived from it.

Every graded cell resolves to a registered check; every registered check is used by an assignment, benched,
tested and reachable from a page of the book; the visible checks are importable where notebooks import them.
And adding a chapter, done for real on a copy of the repository with a throwaway Chapter 10, touches the
five files CONTRIBUTING.md names: everything else follows from `make release`.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from autograder import bench, book, paths, registry
from autograder.contract import CaseCheck
from autograder.grading.spec import graded_parts

REPO = paths.REPO


def test_every_graded_cell_of_every_assignment_resolves_to_a_registered_check():
    assert registry.assignments(), "no assignment found in solutions/"
    for aid in registry.assignments():
        parts = graded_parts(paths.solution_notebook(aid))  # raises on a check the registry lacks
        assert parts, aid
        for part in parts:
            for call in part.calls:
                assert call.check in registry.checks(), (aid, part.grade_id, call.check)


def test_every_registered_check_is_used_benched_tested_and_reachable_from_the_book():
    used = {u.check: u.aid for u in registry.uses()}
    pages = set(book.pages("student"))
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "tests").glob("test_*.py"))
    kernel_bench = {label.split(" [")[0] for label, *_ in bench._kernel_cases("cpu")}
    classes = bench.grading_classes()
    for name, check in registry.checks().items():
        assert name in used, f"{name} is registered but no assignment's hidden tests call it"
        aid = used[name]
        assert f"notebooks/{aid}/{aid}" in pages, f"{name}: {aid}'s notebook is not a page of the book"
        assert name in tests, f"{name} is named by no test file"
        if isinstance(check, CaseCheck):
            assert check.parts and callable(check.cases), name
            if check.bench is not None:
                assert check.function in kernel_bench, name
        else:  # a module check is benched by grading a class of its assignment
            assert classes.get(aid, 0) > 0, f"{name}: make bench grades no class of {aid}"


def test_the_visible_checks_are_where_the_notebooks_import_them():
    for aid in registry.assignments():
        nb = json.loads(paths.release_notebook(aid).read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            try:
                tree = ast.parse("".join(cell["source"]))
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("autograder.ch"):
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        fn = getattr(module, alias.name)
                        if alias.name.startswith("check_"):
                            assert alias.name in registry.checks() or callable(fn), alias.name
                            assert fn.__name__ == alias.name and fn.__doc__, alias.name


def test_case_checks_make_their_visible_check_with_its_name_signature_and_parts():
    import inspect

    for check in registry.case_checks():
        fn = check.visible()
        params = list(inspect.signature(fn).parameters)
        assert fn.__name__ == check.check and fn.__module__ == check.module
        assert params == (["fn", "suite", "seed", "quiet"] if check.parts == ("all",)
                          else ["fn", "part", "suite", "seed", "quiet"]), (check.check, params)


# --------------------------------------------------------------------------
# Adding a chapter, for real, on a copy

CH10_MODULE = '''"""Chapter 10 (a throwaway of the registry test): ``double``."""

from __future__ import annotations

import torch

from ._core import Case, Exercise, T, case_generator
from .contract import BenchShape, CaseCheck, bench_inputs


def reference_double(input):
    if not torch.is_tensor(input):
        raise TypeError("input must be a tensor")
    return input * 2


EXERCISE = Exercise(name="double", reference=reference_double)


@case_generator(("all",), salt="double-")
def cases(part, suite, base, rng):
    return [Case(("input",), (T((1, 2, rng.randint(1, 4), 3)),), seed=base * 100 + k) for k in range(4)]


DOUBLE = CaseCheck("check_double", "double", EXERCISE, cases, ("all",), "input", "Compare ``fn`` with ``2 * input``.",
                   bench=BenchShape("(8,16,32,32)", lambda dev: bench_inputs(dev, (8, 16, 32, 32)), "2 * input",
                                    lambda x: 2 * x))
check_double = DOUBLE.visible()
'''

CH10_TEST = '''from autograder.ch10 import check_double
from conftest import load_solution


def test_the_solution_passes_check_double():
    check_double(load_solution("ch10_demo")["double"], suite="hidden", quiet=True)
'''


def _ch10_notebook() -> dict:
    def cell(kind, gid, source, **meta):
        nbg = {"grade": False, "grade_id": gid, "locked": True, "schema_version": 3, "solution": False,
               "task": False, **meta}
        c = {"cell_type": kind, "id": gid, "metadata": {"nbgrader": nbg}, "source": source}
        if kind == "code":
            c.update(execution_count=None, outputs=[])
        return c

    cells = [cell("markdown", "intro", "# Chapter 10 exercises — double\n"),
             cell("code", "setup", "import torch\nfrom autograder.ch10 import check_double"),
             cell("code", "double", "def double(input):\n    ### BEGIN SOLUTION\n    return input * 2\n"
                  "    ### END SOLUTION", locked=False, solution=True),
             cell("code", "test_double", "check_double(double)\n### BEGIN HIDDEN TESTS\n"
                  "check_double(double, suite=\"hidden\", seed=7, quiet=True)\n### END HIDDEN TESTS",
                  grade=True, points=2)]
    src = json.loads(paths.solution_notebook("ch02_nearest").read_text(encoding="utf-8"))
    return {"cells": cells, "metadata": src["metadata"], "nbformat": 4, "nbformat_minor": 5}


def _git(cwd: Path, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_adding_a_chapter_touches_five_files_and_make_release_derives_the_rest(tmp_path):
    copy = tmp_path / "course"
    files = _git(REPO, "ls-files", "-co", "--exclude-standard").splitlines()
    for rel in files:
        if (REPO / rel).is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, copy / rel)
    _git(copy, "init", "-q")
    _git(copy, "add", "-A")
    _git(copy, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    # what a contributor writes (CONTRIBUTING.md, "Adding a chapter")
    (copy / "autograder" / "ch10.py").write_text(CH10_MODULE)
    (copy / "solutions" / "ch10_demo").mkdir()
    (copy / "solutions" / "ch10_demo" / "ch10_demo.ipynb").write_text(json.dumps(_ch10_notebook(), indent=1))
    (copy / "book" / "10_demo.md").write_text("# 10. Doubling\n\nA throwaway chapter.\n")
    (copy / "tests" / "test_ch10_checks.py").write_text(CH10_TEST)
    toc = (copy / "_toc.yml").read_text()
    anchor = "  - caption: Back matter"
    (copy / "_toc.yml").write_text(toc.replace(anchor, "      - file: book/10_demo\n        sections:\n"
                                               "          - file: notebooks/ch10_demo/ch10_demo\n"
                                               "            title: \"Exercises: doubling\"\n" + anchor))
    written = {line[3:] for line in _git(copy, "status", "--porcelain", "-uall").splitlines()}
    assert written == {"autograder/ch10.py", "solutions/ch10_demo/ch10_demo.ipynb", "book/10_demo.md",
                       "tests/test_ch10_checks.py", "_toc.yml"}, written
    # the one command that derives the rest, run with this checkout's environment
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_CONFIG_PATH", "PYTHONPATH")}
    # (-o: this environment is installed already; never reinstall it from the copy)
    release = subprocess.run(["make", "-o", str(venv / ".installed-stamp"), "release", f"VENV={venv}"], cwd=copy, capture_output=True, text=True, env=env,
                             timeout=600)
    assert release.returncode == 0, release.stdout + release.stderr
    derived = {line[3:] for line in _git(copy, "status", "--porcelain", "-uall").splitlines()} - written
    assert derived == {"notebooks/ch10_demo/ch10_demo.ipynb", "README.md"}, derived
    assert "notebooks/ch10_demo/ch10_demo.ipynb" in (copy / "README.md").read_text()
    # the copy's registry, bench, book and tests see Chapter 10 with nothing else edited
    probe = ("from autograder import registry, bench, book\n"
             "assert 'check_double' in registry.checks()\n"
             "assert ('ch10_demo', 'double') in [(a, s) for a, s, _ in registry.kernels()]\n"
             "assert any(label.startswith('double [ch10]') for label, *_ in bench._kernel_cases('cpu'))\n"
             "assert 'book/10_demo' in book.chapter_pages()\n"
             "import autograder.registry as r; assert r.__file__.startswith(%r)\n" % str(copy))
    seen = subprocess.run([sys.executable, "-c", probe], cwd=copy, capture_output=True, text=True, env=env)
    assert seen.returncode == 0, seen.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/test_ch10_checks.py", "tests/test_registry.py", "-k", "not adding_a_chapter"],
                           cwd=copy, capture_output=True, text=True, env=env, timeout=900)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
