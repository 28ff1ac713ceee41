"""`make grade` on a synthetic class of honest, broken and dishonest submissions (Chapter 1).

Every case ends with a grade and a reason, and no dishonest submission scores better than an
honest wrong answer (bob: conv2d_output_size right, conv2d ignoring the bias: 2 of 10).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile

import nbformat
import pytest

from autograder import notebooks as nbs
from conftest import REPO, release_path, solution_path, submission

AID = "ch01_cnn_size"
ANSWERS = {gid: src for _, gid, src in nbs.solution_cells(nbs.read(solution_path(AID)))}
HONEST_WRONG = 2

CONV2D_HEAD = "def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):\n"


def conv2d_body(body: str) -> dict:
    return {**ANSWERS, "conv2d": "import torch\nimport torch.nn.functional as F\n" + CONV2D_HEAD + body}


# student -> (cell sources, whole-notebook edit or None)
CLASS = {
    "alice_correct": (ANSWERS, None),
    "bob_honest_wrong": ({**ANSWERS, "conv2d": ANSWERS["conv2d"].replace(
        "out = out + bias.reshape(1, C_out, 1, 1)", "out = out")}, None),
    "carol_empty": ({}, None),
    # failures
    "loop_in_function": (conv2d_body("    while True:\n        pass\n"), None),
    "loop_at_top_level": ({**ANSWERS, "conv2d": ANSWERS["conv2d"] + "\nwhile True:\n    pass\n"}, None),
    "exit_kernel_early": ({**ANSWERS, "conv2d": "import os\nos._exit(0)\n" + ANSWERS["conv2d"]}, None),
    "segfault": ({**ANSWERS, "conv2d": "import ctypes\nctypes.string_at(0)\n" + ANSWERS["conv2d"]}, None),
    "memory_bomb": (conv2d_body("    blocks = []\n    while True:\n        blocks.append(bytearray(10**8))\n"), None),
    "fork_bomb": ({**ANSWERS, "conv2d": ANSWERS["conv2d"] + (
        "\nimport os, time\nfor _ in range(10000):\n    try:\n        if os.fork() == 0:\n"
        "            time.sleep(600)\n            os._exit(0)\n    except OSError:\n        break\n")}, None),
    "huge_output": ({**ANSWERS, "conv2d": ANSWERS["conv2d"] + "\nfor _ in range(200):\n    print('x' * 10**6)\n"}, None),
    # malformed notebooks
    "markdown_cell": (ANSWERS, "to_markdown"),
    "deleted_test_cells": (ANSWERS, "delete_tests"),
    "duplicated_cells": (ANSWERS, "duplicate"),
    "edited_tests_and_points": (ANSWERS, "edit_tests"),
    "changed_kernelspec": (ANSWERS, "kernelspec"),
    # dishonest code
    "calls_forbidden_op": (conv2d_body("    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)\n"), None),
    "patches_checks": (conv2d_body(
        "    return input\nimport autograder._core as core, torch\ncore._value_problem = lambda *a, **k: None\n"
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"), None),
    "claims_equality": (conv2d_body(
        "    class Yes(torch.Tensor):\n        def __eq__(self, other):\n            return True\n"
        "    return torch.zeros(1).as_subclass(Yes)\n"), None),
    "prints_pass": (conv2d_body("    print('✔ conv2d: all cases pass')\n    return input\n"), None),
    "hard_codes_visible": (conv2d_body(
        "    from autograder import ch01\n"
        "    for case in ch01.conv2d_cases('all'):\n"
        "        args, kwargs = case.materialise(input.device, input.dtype)\n"
        "        if args[0].shape == input.shape and torch.equal(args[0], input):\n"
        "            return ch01.reference_conv2d(*args, **kwargs)\n"
        "    return input\n"), None),
    "reads_solutions": (conv2d_body(
        f"    ns = {{}}\n    import json\n    nb = json.load(open({str(solution_path(AID))!r}))\n"
        "    exec(''.join(next(c for c in nb['cells'] if c.get('id') == 'conv2d')['source']), ns)\n"
        "    return ns['conv2d'](input, weight, bias, stride, padding, dilation, groups)\n"), None),
    "hides_tracebacks": (conv2d_body(
        "    return input\nimport sys\nsys.excepthook = lambda *a: None\nsys.stderr = open('/dev/null', 'w')\n"), None),
    "exits_before_tests": ({**ANSWERS, "conv2d": ANSWERS["conv2d"].replace(
        "out = out + bias.reshape(1, C_out, 1, 1)", "out = out") + "\nimport sys\nsys.exit(0)\n"}, None),
    "writes_gradebook": ({**ANSWERS, "conv2d_output_size": ANSWERS["conv2d_output_size"] + (
        "\nimport glob\nfor path in glob.glob('/tmp/**/gradebook.db', recursive=True):\n"
        "    open(path, 'w').write('gone')\n")}, None),
}

EXPECTED = {  # student -> (score, words the reason must contain, or None)
    "alice_correct": (10, None),
    "bob_honest_wrong": (2, "the bias is ignored"),
    "carol_empty": (0, "NotImplementedError"),
    "loop_in_function": (2, "timed out"),
    "loop_at_top_level": (10, None),  # the cell is stopped; the functions it defined still count
    # Code that reaches for processes, the interpreter or the file system (os, sys, ctypes, glob) is flagged
    # by the static policy: a construct at a cell's top level scores 0 every part, for a manual grade.
    "exit_kernel_early": (0, "flagged for review"),
    "segfault": (0, "flagged for review"),
    "memory_bomb": (2, None),
    "fork_bomb": (0, "flagged for review"),
    "huge_output": (10, None),
    "markdown_cell": (10, None),  # nbgrader restores a graded cell's type (the code in it is the student's)
    "deleted_test_cells": (10, None),
    "duplicated_cells": (10, None),
    "edited_tests_and_points": (10, None),
    "changed_kernelspec": (10, None),
    "calls_forbidden_op": (2, "forbids"),
    "patches_checks": (0, "flagged for review"),
    "claims_equality": (2, None),
    "prints_pass": (2, None),
    "hard_codes_visible": (2, "flagged for review"),   # inside conv2d: its parts only
    "reads_solutions": (2, "flagged for review"),      # exec inside conv2d
    "hides_tracebacks": (0, "flagged for review"),
    "exits_before_tests": (0, "flagged for review"),
    "writes_gradebook": (0, "flagged for review"),
}


def edit(nb, how):
    if how == "to_markdown":
        for c in nb.cells:
            if nbs.nbgrader_meta(c).get("grade_id") == "conv2d":
                c.cell_type = "markdown"
                c.pop("outputs", None)
                c.pop("execution_count", None)
    elif how == "delete_tests":
        nb.cells = [c for c in nb.cells if not nbs.nbgrader_meta(c).get("grade")]
    elif how == "duplicate":
        nb.cells = nb.cells + [nbformat.from_dict(dict(c)) for c in nb.cells if nbs.nbgrader_meta(c).get("grade")]
    elif how == "edit_tests":
        for c in nb.cells:
            meta = nbs.nbgrader_meta(c)
            if meta.get("grade"):
                c.source = "print('all tests pass')"
                meta["points"] = 100
    elif how == "kernelspec":
        nb.metadata["kernelspec"] = {"name": "evil", "display_name": "evil", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class")
    subs = tmp / "submissions"
    release = nbs.read(release_path(AID))
    for student, (sources, how) in CLASS.items():
        nb = submission(release, sources)
        if how:
            nb = edit(nb, how)
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, str(subs / student / f"my_{student}.ipynb"), version=4)
    (subs / "broken_json").mkdir()
    (subs / "broken_json" / "a.ipynb").write_text('{"cells": [')
    (subs / "old_nbformat").mkdir()
    (subs / "old_nbformat" / "a.ipynb").write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}))
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "-m", "autograder.grading", AID, str(subs), str(out), "--jobs", "2",
                           "--timeout", "60", "--cell-timeout", "8", "--part-timeout", "8"],
                          capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    return out, rows, proc.stdout


def reason(out, student) -> str:
    return (out / "feedback" / student / f"{AID}.html").read_text()


@pytest.mark.parametrize("student", list(EXPECTED))
def test_every_submission_gets_its_expected_grade_and_a_reason(graded, student):
    out, rows, _ = graded
    score, words = EXPECTED[student]
    got = float(rows[student]["score"])
    if score is not None:
        assert got == score, (student, rows[student], reason(out, student)[-1500:])
    if words:
        assert words in reason(out, student), reason(out, student)[-1500:]


@pytest.mark.parametrize("student", [s for s in EXPECTED if s not in ("alice_correct", "deleted_test_cells", "markdown_cell",
                                     "duplicated_cells", "edited_tests_and_points", "changed_kernelspec",
                                     "loop_at_top_level", "huge_output")])
def test_no_failing_or_dishonest_submission_beats_an_honest_wrong_answer(graded, student):
    _, rows, _ = graded
    assert float(rows[student]["score"]) <= HONEST_WRONG


def test_malformed_notebooks_score_zero_with_the_reason(graded):
    out, rows, _ = graded
    assert rows["broken_json"]["score"] == "0" and "not valid JSON" in rows["broken_json"]["notes"]
    assert rows["old_nbformat"]["score"] == "0" and "nbformat version 4" in rows["old_nbformat"]["notes"]


def test_the_gradebook_survives_and_holds_the_grades(graded):
    from nbgrader.api import Gradebook

    out, rows, _ = graded
    with Gradebook("sqlite:///" + str(out / "course" / "gradebook.db")) as gb:
        assert gb.find_submission(AID, "alice_correct").score == 10
        assert gb.find_submission(AID, "bob_honest_wrong").score == 2


def test_feedback_never_shows_hidden_test_source(graded):
    out, rows, _ = graded
    for page in (out / "feedback").rglob("*.html"):
        text = page.read_text()
        assert "BEGIN HIDDEN TESTS" not in text and 'suite="hidden"' not in text and "seed=" not in text


def test_the_csv_has_one_column_per_graded_part(graded):
    _, rows, _ = graded
    cols = set(next(iter(rows.values())))
    assert {"student_id", "assignment", "score", "max_score", "test_conv2d_output_size", "test_conv2d_basic",
            "test_conv2d_hyper", "test_conv2d_groups"} <= cols


def test_suspicious_code_is_flagged_for_review(graded):
    _, rows, _ = graded
    assert "flagged for review" in rows["patches_checks"]["notes"]


def test_a_rerun_keeps_the_grades_and_a_zip_of_lms_files_grades_the_same(graded, tmp_path):
    out, rows, _ = graded
    again = subprocess.run([sys.executable, "-m", "autograder.grading", AID, str(out.parent / "submissions"), str(out),
                            "--jobs", "2", "--timeout", "60", "--cell-timeout", "8", "--part-timeout", "8"],
                           capture_output=True, text=True, timeout=900, cwd=REPO)
    assert again.returncode == 0
    with open(out / "grades.csv") as f:
        assert {r["student_id"]: r["score"] for r in csv.DictReader(f)} == {k: r["score"] for k, r in rows.items()}
    # An LMS download: <student>_<anything>.ipynb files in a zip.
    z = tmp_path / "lms.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for student in ("alice_correct", "bob_honest_wrong"):
            src = next((out.parent / "submissions" / student).glob("*.ipynb"))
            zf.write(src, f"{student.replace('_', '-')}_12345_attempt_{AID}.ipynb")
    zout = tmp_path / "zout"
    proc = subprocess.run([sys.executable, "-m", "autograder.grading", AID, str(z), str(zout), "--jobs", "2"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(zout / "grades.csv") as f:
        scores = {r["student_id"]: r["score"] for r in csv.DictReader(f)}
    assert scores == {"alice-correct": "10", "bob-honest-wrong": "2"}


@pytest.mark.parametrize("aid", sorted(p.name for p in (REPO / "solutions").iterdir()))
def test_every_assignment_has_a_grading_spec_for_every_graded_part(aid):
    """Can the grader read, from the instructor's notebook, what every graded part checks?"""
    from autograder.grading.spec import graded_parts

    parts = graded_parts(solution_path(aid))
    assert parts and all(p.calls for p in parts)
    # every probe names the learner symbol its graded cell's visible check is called on (read independently,
    # from the cell's first line of code, not through the grader's own parser)
    cells = {g.grade_id: g.source for g in nbs.graded_cells(nbs.read(solution_path(aid)))}
    assert [p.grade_id for p in parts] == list(cells)
    for part in parts:
        visible = cells[part.grade_id].split("### BEGIN HIDDEN TESTS")[0]
        assert any(f"{call.check}({call.symbol}" in visible for call in part.calls), (part.grade_id, visible)
