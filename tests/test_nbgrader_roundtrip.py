"""The real nbgrader CLI, end to end: generate, submit, autograde, export."""

from __future__ import annotations

import csv

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import notebooks as nbs
from conftest import make_course, nbgrader, solution_path, submission

AID = "ch01_cnn_size"


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    root = make_course(tmp_path_factory.mktemp("roundtrip"), [AID])
    nbgrader("generate_assignment", AID, "--force", cwd=root, config_dir=root)
    release = nbs.read(root / "release" / AID / f"{AID}.ipynb")
    answers = {gid: src for _, gid, src in nbs.solution_cells(nbs.read(solution_path(AID)))}
    bias_line = "        out = out + bias.reshape(1, C_out, 1, 1)"
    assert bias_line in answers["conv2d"]
    students = {
        "alice": answers,  # everything right
        "bob": {**answers, "conv2d": answers["conv2d"].replace(bias_line, "        out = out")},  # bias ignored
        "carol": {},  # submitted the untouched release
        "dave": {**answers, "conv2d": answers["conv2d"].replace(  # only groups=1 works
            "    if groups < 1 or", "    if groups != 1:\n        raise ValueError('groups are not supported')\n    if groups < 1 or")},
    }
    for student, sol in students.items():
        dst = root / "submitted" / student / AID
        dst.mkdir(parents=True)
        nbformat.write(submission(release, sol), str(dst / f"{AID}.ipynb"))
    nbgrader("autograde", AID, "--force", cwd=root, config_dir=root)
    nbgrader("export", "--to", str(root / "grades.csv"), cwd=root, config_dir=root)
    return root


EXPECTED = {  # student -> (total, {grade_id: score})
    "alice": (10, {"test_conv2d_output_size": 2, "test_conv2d_basic": 3, "test_conv2d_hyper": 3, "test_conv2d_groups": 2}),
    "bob": (2, {"test_conv2d_output_size": 2, "test_conv2d_basic": 0, "test_conv2d_hyper": 0, "test_conv2d_groups": 0}),
    "carol": (0, {"test_conv2d_output_size": 0, "test_conv2d_basic": 0, "test_conv2d_hyper": 0, "test_conv2d_groups": 0}),
    "dave": (8, {"test_conv2d_output_size": 2, "test_conv2d_basic": 3, "test_conv2d_hyper": 3, "test_conv2d_groups": 0}),
}


def test_exported_grades_csv_has_the_expected_totals(graded_course):
    with open(graded_course / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(EXPECTED)
    for student, (total, _) in EXPECTED.items():
        assert float(rows[student]["score"]) == total, (student, rows[student])
        assert float(rows[student]["max_score"]) == 10


def test_each_graded_part_gets_the_expected_points(graded_course):
    with Gradebook("sqlite:///" + str(graded_course / "gradebook.db")) as gb:
        for student, (_, parts) in EXPECTED.items():
            nb = gb.find_submission_notebook(AID, AID, student)
            got = {g.name: g.score for g in nb.grades if g.cell.cell_type == "code" and g.max_score}
            assert got == parts, (student, got)


def test_autograded_notebook_of_a_wrong_submission_explains_the_failure(graded_course):
    nb = nbs.read(graded_course / "autograded" / "bob" / AID / f"{AID}.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert any("the bias is ignored" in o["evalue"] for o in errors)
