"""The Colab install cell: first in every notebook, inert outside Colab, a real install inside it.

Colab opens notebooks/<aid>/<aid>.ipynb from the course's repository without the checking
package; the notebooks' first code cell installs it there (autograder/book/colab.py writes it).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from autograder.book import colab
from autograder import notebooks as nbs
from conftest import ASSIGNMENTS, REPO, release_path, solution_path

NOTEBOOKS = [(kind, aid) for aid in ASSIGNMENTS for kind in ("solution", "release")]
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9._-]+) @ git\+(?P<url>\S+)\.git@(?P<ref>[^\s@/]+)$")

# Runs one cell's source as a learner's kernel would, with every new process recorded.
# argv: plain | colab | colab-dry, the cell's file, the report's file. "colab" puts a fake
# google.colab in sys.modules; "colab-dry" also replaces each command with one that does nothing.
DRIVER = r'''
import json, os, subprocess, sys, types

mode, cell_file, report = sys.argv[1:4]
if mode != "plain":
    sys.modules["google.colab"] = types.ModuleType("google.colab")
calls = []

class RecordingPopen(subprocess.Popen):  # subprocess.run/call/check_output all go through Popen
    def __init__(self, args, *rest, **kwargs):
        calls.append([args] if isinstance(args, (str, bytes)) else [str(a) for a in args])
        if mode == "colab-dry":
            args = [sys.executable, "-c", "pass"]
        super().__init__(args, *rest, **kwargs)

subprocess.Popen = RecordingPopen
os.system = lambda command: calls.append(["os.system", command]) or 0
error = None
try:
    exec(compile(open(cell_file, encoding="utf-8").read(), "<colab_install>", "exec"), {"__name__": "__main__"})
except Exception as e:
    error = f"{type(e).__name__}: {e}"
with open(report, "w") as f:
    json.dump({"calls": calls, "error": error, "torch_imported": "torch" in sys.modules}, f)
'''

# In a fresh process: run a solution notebook's code cells up to its first test cell, as Colab
# would after the install (the install cell itself finds no google.colab here and does nothing).
FIRST_CHECK = r'''
import json, sys

nb = json.load(open(sys.argv[1], encoding="utf-8"))
ns = {"__name__": "__main__"}
for cell in nb["cells"]:
    if cell["cell_type"] != "code":
        continue
    exec(compile("".join(cell["source"]), cell.get("id", "cell"), "exec"), ns)
    if cell["metadata"].get("nbgrader", {}).get("grade"):
        break
import autograder, autograder.ch01
print(json.dumps({"autograder": autograder.__file__, "ch01": autograder.ch01.__file__}))
'''


def path_of(kind: str, aid: str) -> Path:
    return solution_path(aid) if kind == "solution" else release_path(aid)


def first_code_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def default_requirement(source: str) -> str:
    """The requirement the cell installs unless COURSE_PACKAGE says otherwise."""
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get" and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant) and node.args[0].value == "COURSE_PACKAGE"):
            assert isinstance(node.args[1], ast.Constant), "the default requirement is a plain string"
            return node.args[1].value
    raise AssertionError("the cell reads its requirement with os.environ.get('COURSE_PACKAGE', <default>)")


def project_name() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]


def published_repository() -> tuple[str, str]:
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))["repository"]
    return config["url"].rstrip("/").removesuffix(".git"), config["branch"]


def cell_file(tmp_path: Path) -> Path:
    path = tmp_path / "colab_install.py"
    path.write_text(first_code_cell(nbs.read(release_path(ASSIGNMENTS[0]))).source, encoding="utf-8")
    return path


def run_cell(tmp_path: Path, mode: str, env: dict, cwd: Path | None = None) -> tuple[dict, subprocess.CompletedProcess]:
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    report = tmp_path / f"report-{mode}.json"
    proc = subprocess.run([sys.executable, str(tmp_path / "driver.py"), mode, str(cell_file(tmp_path)), str(report)],
                          check=False, env=env, cwd=cwd or tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(report.read_text()), proc


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in ("COURSE_PACKAGE", "PYTHONPATH")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", **extra}


# ---- (1) the cell is there, first, and names the published package ---------------------------------

@pytest.mark.parametrize("kind,aid", NOTEBOOKS)
def test_first_code_cell_installs_the_published_package_in_colab_only(kind, aid):
    """Is the install cell the notebook's first code cell, plain Python, locked, never graded?"""
    cell = first_code_cell(nbs.read(path_of(kind, aid)))
    meta = nbs.nbgrader_meta(cell)
    assert cell.get("id") == colab.CELL_ID and meta.get("grade_id") == colab.CELL_ID, \
        "the first code cell must be the Colab install cell (python -m autograder.book.colab, then make release)"
    assert meta.get("locked") and not meta.get("grade") and not meta.get("solution"), meta
    compile(cell.source, "<colab_install>", "exec")  # plain Python: a %pip or !pip line does not compile
    assert "get_ipython" not in cell.source
    assert '"google.colab" in sys.modules' in cell.source
    assert '"--no-deps"' in cell.source, "Colab's CUDA torch must not be replaced by the pinned CPU one"
    assert "Change runtime type" in cell.source, "tell Colab users how to get a GPU"


@pytest.mark.parametrize("kind,aid", NOTEBOOKS)
def test_the_cell_installs_pyproject_s_package_from_config_s_repository_at_the_release_tag(kind, aid):
    """Does the requirement name the distribution of pyproject.toml at _config.yml's repository, pinned to the
    tag of pyproject's version (not a branch, which moves mid-term)?"""
    req = default_requirement(first_code_cell(nbs.read(path_of(kind, aid))).source)
    m = REQUIREMENT.match(req)
    assert m, f"not a `<name> @ git+<url>.git@<tag>` requirement: {req!r}"
    url, _ = published_repository()
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert (m["name"], m["url"], m["ref"]) == (project_name(), url, f"v{version}"), req


def test_the_release_tag_the_cell_installs_exists_and_holds_that_version():
    """`git tag v<version>` was made for the version the notebooks install, and the package there says so."""
    import autograder

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the release tags cannot be looked up here")
    tag = colab.release_tag()
    assert tag == f"v{autograder.__version__}", "pyproject.toml's version and autograder.__version__ differ"
    tags = subprocess.run(["git", "tag", "--list"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tags:
        # A clone of one branch without its tags (CI's clone of main) cannot show any release; a
        # checkout that has tags but not this one fails below: the release was not tagged.
        pytest.skip("this clone carries no tags at all: the release tag is checked in a checkout with tags")
    shown = subprocess.run(["git", "show", f"{tag}:autograder/__init__.py"], cwd=REPO, capture_output=True,
                           text=True)
    assert shown.returncode == 0, (f"no tag {tag}: after a release, `git tag -a {tag}` (CONTRIBUTING.md) "
                                   f"({shown.stderr.strip()})")
    assert f'__version__ = "{autograder.__version__}"' in shown.stdout


def test_every_notebook_has_the_same_cell_and_it_is_what_autograder_colab_writes():
    """One cell everywhere: is each copy equal to what `python -m autograder.book.colab` generates?"""
    expected = colab.cell_source()
    for kind, aid in NOTEBOOKS:
        assert first_code_cell(nbs.read(path_of(kind, aid))).source == expected, \
            f"{kind} {aid}: run `python -m autograder.book.colab`, then `make release`"


def test_putting_the_cell_in_a_notebook_places_it_after_the_intro_and_is_idempotent():
    nb = nbs.read(solution_path(ASSIGNMENTS[0]))
    nb.cells = [c for c in nb.cells if c.get("id") != colab.CELL_ID]
    nb.cells.append(nbformat.v4.new_code_cell("print('stray copy')", id=colab.CELL_ID))  # misplaced: moved
    colab.put_cell(nb, "# the cell")
    ids = [c.get("id") for c in nb.cells]
    assert ids.count(colab.CELL_ID) == 1 and nb.cells[0].cell_type == "markdown"
    assert first_code_cell(nb).id == colab.CELL_ID and first_code_cell(nb).source == "# the cell"
    once = nbformat.writes(nb)
    colab.put_cell(nb, "# the cell")
    assert nbformat.writes(nb) == once


# ---- (2) outside Colab it does nothing; inside it calls pip as documented -------------------------

def test_outside_colab_the_cell_starts_no_process_and_installs_nothing(tmp_path):
    """Run where the grader, `make check` and local kernels run it: does it stay inert and cheap?"""
    target = tmp_path / "target"
    target.mkdir()
    report, proc = run_cell(tmp_path, "plain", clean_env(PIP_TARGET=str(target),
                                                         COURSE_PACKAGE=str(tmp_path / "must-not-be-used")))
    assert report["error"] is None
    assert report["calls"] == [], "no pip (or any process) outside Colab"
    assert not report["torch_imported"], "outside Colab the cell imports nothing heavy"
    assert list(target.iterdir()) == [] and proc.stdout == ""


@pytest.mark.parametrize("override", [None, "course @ git+https://example.org/fork.git@dev"])
def test_in_colab_the_cell_runs_pip_without_dependencies_on_the_requirement(tmp_path, override):
    """With a fake google.colab: one `python -m pip install -q --no-deps <requirement>`, COURSE_PACKAGE first."""
    env = clean_env(**({"COURSE_PACKAGE": override} if override else {}))
    report, proc = run_cell(tmp_path, "colab-dry", env)
    assert report["error"] is None, report
    expected = override or default_requirement(cell_file(tmp_path).read_text())
    assert len(report["calls"]) == 1, report["calls"]
    exe, *args = report["calls"][0]
    assert Path(exe).name.startswith("python") and args == ["-m", "pip", "install", "-q", "--no-deps", expected]
    assert "GPU" in proc.stdout, "the learner is told whether a GPU is there"


def test_in_colab_a_failing_pip_stops_with_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-folder"
    report, _ = run_cell(tmp_path, "colab", clean_env(COURSE_PACKAGE=str(missing), PIP_NO_INDEX="1",
                                                      PIP_TARGET=str(tmp_path / "target")))
    assert report["error"] and report["error"].startswith("RuntimeError: pip could not install"), report
    assert str(missing) in report["error"]


# ---- (3) in Colab it really installs the package, and a notebook's check then runs from it ------------

def test_in_colab_the_cell_installs_the_package_and_a_visible_check_passes_from_the_install(tmp_path):
    """pip installs this checkout (COURSE_PACKAGE) into PIP_TARGET; does a notebook then import it from there?"""
    # A copy of the checkout, as a clone would have it: pip builds a local project in place and
    # would leave a build/ folder in the working tree.
    source = tmp_path / "checkout"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "_build", ".grading", "grading", "build", "*.egg-info", "__pycache__", ".pytest_cache",
        ".hypothesis", ".ruff_cache", ".jupyter_cache", "node_modules", ".ipynb_checkpoints"))
    target, elsewhere = tmp_path / "target", tmp_path / "elsewhere"
    target.mkdir()
    elsewhere.mkdir()
    report, _ = run_cell(tmp_path, "colab", clean_env(
        COURSE_PACKAGE=f"{project_name()} @ {source.as_uri()}", PIP_TARGET=str(target)), cwd=elsewhere)
    assert report["error"] is None, report["error"]
    assert len(report["calls"]) == 1 and "--no-deps" in report["calls"][0]
    assert (target / "autograder" / "__init__.py").exists() and (target / "autograder" / "ch01.py").exists()
    assert not (target / "torch").exists(), "--no-deps: nothing but the course's package is installed"
    # only what a learner needs: not the grading pipeline, the book's tooling or the benchmarks
    for job in ("grading", "book", "bench"):
        assert not (target / "autograder" / job).exists(), f"the learner's install carries autograder/{job}"
    chapters = sorted(p.stem for p in (target / "autograder").glob("ch[0-9][0-9].py"))
    imported = subprocess.run([sys.executable, "-c", "import importlib, sys\nfor m in sys.argv[1:]:\n"
                               "    importlib.import_module('autograder.' + m)", *chapters], env=clean_env(
                                   PYTHONPATH=str(target)), cwd=elsewhere, capture_output=True, text=True, timeout=240)
    assert len(chapters) >= 9 and imported.returncode == 0, imported.stderr[-2000:]

    (tmp_path / "first_check.py").write_text(FIRST_CHECK, encoding="utf-8")
    run = subprocess.run([sys.executable, str(tmp_path / "first_check.py"), str(solution_path("ch01_cnn_size"))],
                         check=False, env=clean_env(PYTHONPATH=str(target)), cwd=elsewhere, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "✔ conv2d_output_size: all" in run.stdout, run.stdout
    where = json.loads(run.stdout.strip().splitlines()[-1])
    for module in ("autograder", "ch01"):
        assert Path(where[module]).resolve().is_relative_to(target.resolve()), (module, where[module])
