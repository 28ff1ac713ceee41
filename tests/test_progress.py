"""`make check`: the learner's progress table."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat

from autograder import notebooks as nbs
from autograder import progress
from conftest import REPO, release_path, solution_path

AID = "ch01_cnn_size"


def learner_folder(tmp_path, fill: dict[str, str]):
    """A learner's notebooks/ with some exercises done (``fill``: grade_id -> source)."""
    nb = nbs.read(release_path(AID))
    for cell in nb.cells:
        gid = nbs.nbgrader_meta(cell).get("grade_id")
        if gid in fill:
            cell.source = fill[gid]
    (tmp_path / AID).mkdir()
    nbformat.write(nb, str(tmp_path / AID / f"{AID}.ipynb"))
    return tmp_path


def test_progress_table_shows_passed_failed_and_not_attempted(tmp_path):
    answers = {gid: src for _, gid, src in nbs.solution_cells(nbs.read(solution_path(AID)))}
    folder = learner_folder(tmp_path, {
        "conv2d_output_size": answers["conv2d_output_size"],
        "conv2d": answers["conv2d"].replace("    return out\n", "    return out.float()\n"),
    })
    before = (folder / AID / f"{AID}.ipynb").read_bytes()
    rows = {r.exercise: r for r in progress.collect(nbs.find_notebooks(folder), progress=False)}
    assert rows["conv2d_output_size"].status == "passed"
    assert rows["conv2d_basic"].status == "failed"
    assert "dtype torch.float32" in rows["conv2d_basic"].reason
    assert (folder / AID / f"{AID}.ipynb").read_bytes() == before, "make check must not modify notebooks"
    table = progress.render(list(rows.values()))
    assert "2 of 10 points pass" in table and "✘ failed" in table


def test_a_fresh_release_is_all_not_attempted(tmp_path):
    folder = learner_folder(tmp_path, {})
    rows = progress.collect(nbs.find_notebooks(folder), progress=False)
    assert rows and all(r.status == "not attempted" for r in rows)


def test_a_broken_notebook_is_a_row_not_a_crash(tmp_path):
    (tmp_path / AID).mkdir()
    (tmp_path / AID / f"{AID}.ipynb").write_text("{ this is not json")
    rows = progress.collect(nbs.find_notebooks(tmp_path), progress=False)
    assert rows[0].status == "failed" and "cannot read it" in rows[0].reason


def test_the_command_line_prints_the_table_and_explains_a_missing_folder(tmp_path):
    shutil.copytree(REPO / "notebooks", tmp_path / "nb")
    ok = subprocess.run([sys.executable, "-m", "autograder.progress", str(tmp_path / "nb")],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "not yet attempted" in ok.stdout
    missing = subprocess.run([sys.executable, "-m", "autograder.progress", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


def test_make_check_takes_a_chapter_folder_or_one_notebook_as_well_as_the_parent(tmp_path):
    folder = learner_folder(tmp_path, {})
    notebook = folder / AID / f"{AID}.ipynb"
    assert progress.discover(folder) == [notebook]
    assert progress.discover(folder / AID) == [notebook]
    assert progress.discover(notebook) == [notebook]
    assert progress.discover(folder / AID / "nope.txt") == []


def test_an_exercise_calling_a_stub_helper_is_failed_with_the_helper_named(tmp_path):
    """Is a written function whose helper still raises NotImplementedError failed (naming it), not "not attempted"?"""
    answers = {gid: src for _, gid, src in nbs.solution_cells(nbs.read(solution_path(AID)))}
    helper = "def _my_helper(x):\n    raise NotImplementedError()\n\n"
    folder = learner_folder(tmp_path, {
        "conv2d_output_size": answers["conv2d_output_size"],
        "conv2d": helper + answers["conv2d"].replace("    return out\n", "    return _my_helper(out)\n"),
    })
    rows = {r.exercise: r for r in progress.collect(progress.discover(folder / AID), progress=False)}
    assert rows["conv2d_basic"].status == "failed"
    assert rows["conv2d_basic"].reason.startswith("conv2d calls _my_helper, which still raises NotImplementedError")
