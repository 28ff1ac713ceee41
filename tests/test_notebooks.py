"""The assignments: solutions pass everything, released notebooks leak nothing and fail cleanly."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest

from autograder import notebooks as nbs
from conftest import ASSIGNMENTS, REPO, make_course, nbgrader, release_path, solution_path

MARKERS = re.compile(r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS|END HIDDEN TESTS")


def solution_lines(aid) -> set[str]:
    """The distinctive lines between the solution markers of a source notebook."""
    lines, inside = set(), False
    for cell in nbs.read(solution_path(aid)).cells:
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END SOLUTION" in line or "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 12:
                lines.add(line.strip())
    return lines


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def executed_solution(request, tmp_path_factory):
    aid = request.param
    tmp = tmp_path_factory.mktemp(aid)
    shutil.copy(solution_path(aid), tmp / f"{aid}.ipynb")
    return aid, nbs.execute(nbs.read(tmp / f"{aid}.ipynb"), tmp)


def test_solution_notebook_passes_every_graded_cell_visible_and_hidden(executed_solution):
    """Does every test cell of the instructor's notebook (hidden tests included) pass?"""
    aid, nb = executed_solution
    graded = nbs.graded_cells(nb)
    assert graded, f"{aid} has no graded cells"
    assert any("BEGIN HIDDEN TESTS" in g.source for g in graded), "the hidden tests are part of what runs"
    for g in graded:
        assert nbs.outcome(nb.cells[g.index]).status == "passed", (g.grade_id, nb.cells[g.index].outputs)
    errors = [c for c in nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert not errors, "no cell of a solution notebook may raise"


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def executed_release(request, tmp_path_factory):
    aid = request.param
    tmp = tmp_path_factory.mktemp(aid + "_release")
    shutil.copy(release_path(aid), tmp / f"{aid}.ipynb")
    return aid, nbs.execute(nbs.read(tmp / f"{aid}.ipynb"), tmp)


def test_released_notebook_fails_every_graded_cell_with_not_implemented(executed_release):
    aid, nb = executed_release
    for g in nbs.graded_cells(nb):
        errors = [o for o in nb.cells[g.index].outputs if o.get("output_type") == "error"]
        assert errors and errors[0]["ename"] in ("NotImplementedError", "NotAttempted"), (aid, g.grade_id, errors)


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_released_notebook_has_no_solution_code_and_no_hidden_test(aid):
    text = release_path(aid).read_text()
    assert not MARKERS.search(text)
    released = "\n".join(c.source for c in nbs.read(release_path(aid)).cells)
    leaked = [line for line in solution_lines(aid) if line in released]
    assert not leaked, f"solution or hidden-test lines in the released notebook: {leaked[:5]}"
    assert "suite=\"hidden\"" not in released and "seed=" not in released


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_every_solution_cell_becomes_the_one_stub(aid):
    released = nbs.read(release_path(aid))
    for _, grade_id, source in nbs.solution_cells(released):
        assert "# YOUR CODE HERE\n" in source and "raise NotImplementedError()" in source, grade_id


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_released_notebooks_equal_what_nbgrader_generates_from_solutions(aid, tmp_path):
    """Is notebooks/ up to date? (Fix: make release.)"""
    root = make_course(tmp_path, [aid])
    nbgrader("generate_assignment", aid, "--force", cwd=root, config_dir=root)
    fresh = json.loads((root / "release" / aid / f"{aid}.ipynb").read_text())
    committed = json.loads(release_path(aid).read_text())
    assert fresh == committed, "notebooks/ drifted from solutions/: run `make release` and commit"


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_source_notebooks_are_committed_without_outputs(aid):
    for path in (solution_path(aid), release_path(aid)):
        for cell in nbs.read(path).cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_points_stated_in_the_text_match_the_gradebook_points(aid):
    """Does the notebook tell learners the same points nbgrader awards?"""
    nb = nbs.read(solution_path(aid))
    graded = nbs.graded_cells(nb)
    total = sum(g.points for g in graded)
    intro = nb.cells[0].source
    assert f"**{total:g}**" in intro, f"the intro's points table should total {total:g}"
    for g in graded:
        unit = "point" if g.points == 1 else "points"
        assert f"({g.points:g} {unit})" in g.source, f"{g.grade_id}: state its points in the cell"


def _short(x: float) -> str:
    """A tolerance as the notebooks write it: 1e-07 -> 1e-7, 0.002 -> 2e-3, 1.5e-05 -> 1.5e-5."""
    exponent = math.floor(math.log10(x))
    return f"{round(x / 10 ** exponent, 6):g}e{exponent}"


def _prose(nb) -> str:
    """A notebook's markdown as one line of words (the text wraps anywhere)."""
    return " ".join(" ".join(c.source.split()) for c in nb.cells if c.cell_type == "markdown")


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_the_limits_stated_in_the_text_are_the_ones_the_checks_use(aid):
    """Does each notebook write its tolerances and thresholds as the checks apply them (computed from the checks'
    own constants), so a learner reads the limit before meeting it?"""
    import torch

    from autograder import ch08, ch09
    from autograder._cases import tolerance

    text = _prose(nbs.read(solution_path(aid)))
    (r64, a64), (r32, a32), (rc, ac) = (tolerance(torch.float64), tolerance(torch.float32),
                                        tolerance(torch.float32, "cuda"))
    tolerances = (f"float64 within rtol {_short(r64)}, atol {_short(a64)}; float32 within rtol {_short(r32)}, "
                  f"atol {_short(a32)} on the CPU and rtol {_short(rc)}, atol {_short(ac)} on CUDA")
    if aid.startswith("ch08"):   # graded by training, not by comparing values
        wanted = [f"a mean IoU of at least {ch08.IOU_THRESHOLD:.2f}", f"({ch08.RECIPE['steps']} steps)"]
    elif aid.startswith("ch09"):
        wanted = [tolerances, f"at most {ch09.MAX_RATIO:g}× torch's time", f"at most {ch09.CHALLENGE_RATIO:g}× torch's time"]
    else:
        wanted = [tolerances]
    for phrase in wanted:
        assert phrase in text, f"{aid}: the text should state {phrase!r}, as the checks apply it"


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_graded_ids_are_unique_and_test_cells_are_locked(aid):
    nb = nbs.read(solution_path(aid))
    ids = [nbs.nbgrader_meta(c)["grade_id"] for c in nb.cells if nbs.nbgrader_meta(c)]
    assert len(ids) == len(set(ids))
    for g in nbs.graded_cells(nb):
        assert nbs.nbgrader_meta(nb.cells[g.index])["locked"]


def test_toc_lists_every_chapter_and_exercise_notebook_that_exists():
    toc = (REPO / "_toc.yml").read_text()
    files = re.findall(r"file:\s*(\S+)", toc)
    for f in files:
        assert (REPO / f"{f}.md").exists() or (REPO / f"{f}.ipynb").exists(), f"_toc.yml lists a missing page {f}"
    for aid in ASSIGNMENTS:
        assert f"notebooks/{aid}/{aid}" in files, f"{aid}'s notebook is not in the book"


def learner_symbols(nb) -> set[str]:
    """The functions and classes learners write: every name a solution cell defines at its top level."""
    import ast

    names = set()
    for _, _, source in nbs.solution_cells(nb):
        for node in ast.parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
    return names


def last_statement(source: str):
    """The last top-level statement of a cell's code and the source line it ends on (None when empty)."""
    import ast

    body = ast.parse(source).body
    return (body[-1], source.splitlines()[body[-1].end_lineno - 1]) if body else (None, "")


def is_check_call(node) -> bool:
    import ast

    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id.startswith("check_"))


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_every_test_cell_goes_through_the_check_and_stays_quiet_when_it_passes(aid):
    """No bare ``assert`` on learner code in a test cell (a stub would give a traceback, not NotAttempted), and no
    visible check call ends a cell as an expression without ``;`` (a passing cell would echo its return value)."""
    import ast

    nb = nbs.read(solution_path(aid))
    learner = learner_symbols(nb)
    assert learner, f"{aid}: no learner function found in the solution cells"
    for g in nbs.graded_cells(nb):
        for node in ast.walk(ast.parse(g.source)):
            if isinstance(node, ast.Assert):
                called = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
                assert not called & learner, f"{aid} {g.grade_id}: a bare assert calls {sorted(called & learner)}"
        visible = g.source.split("### BEGIN HIDDEN TESTS")[0]
        node, line = last_statement(visible)
        assert not is_check_call(node) or line.rstrip().endswith(";"), \
            f"{aid} {g.grade_id}: end the visible check with ';' so a passing cell prints only its lines: {line!r}"
    for g in nbs.graded_cells(nbs.read(release_path(aid))):
        node, line = last_statement(g.source)
        assert not is_check_call(node) or line.rstrip().endswith(";"), f"{aid} {g.grade_id} (released): {line!r}"
