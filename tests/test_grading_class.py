"""`make grade` on a real class export: every file accounted for, no grade ever lost or leaked.

Chapter 5 exports in the layouts Canvas, Moodle and Blackboard download (Unicode names, spaces, upper-case
extensions, a wrapping folder, resubmissions, late marks, a roster), then a Chapter 1 class re-graded in every
way an instructor does: a partial run, a manual grade in the gradebook, --force, an interrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from autograder import notebooks as nbs
from autograder.grading import sandbox
from conftest import REPO, answers, release_path, submission

pytestmark = pytest.mark.skipif(not sandbox.available(), reason="bubblewrap does not work here (apt-get install "
                                "bubblewrap): `make grade` refuses to run without it")

CH05, CH01 = "ch05_max_unpooling", "ch01_cnn_size"
A5 = answers(CH05)
RANGE_CHECK = "if not default - s < size < default + s:"
assert RANGE_CHECK in A5["max_unpool2d"]
OFF_BY_ONE = {**A5, "max_unpool2d": A5["max_unpool2d"].replace(RANGE_CHECK, "if not default - s < size <= default + s:")}


def notebook_bytes(aid: str, sources: dict) -> bytes:
    import nbformat

    return nbformat.writes(submission(nbs.read(release_path(aid)), sources), version=4).encode()


def grade(aid, submissions, out, *args, cwd=REPO, check=True):
    proc = subprocess.run([sys.executable, "-m", "autograder.grading", aid, str(submissions), str(out), "--jobs", "2",
                           *args], capture_output=True, text=True, timeout=900, cwd=cwd)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def rows_of(out: Path) -> dict:
    with open(out / "grades.csv", encoding="utf-8") as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


# --------------------------------------------------------------------------
# Three LMS exports of a Chapter 5 class


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exports")
    correct, empty, wrong = notebook_bytes(CH05, A5), notebook_bytes(CH05, {}), notebook_bytes(CH05, OFF_BY_ONE)
    ch01 = notebook_bytes(CH01, answers(CH01))
    old = (2026, 11, 18, 9, 0, 0)
    # Canvas: flat files; a resubmission (-1) marked LATE; a Chapter 1 notebook sent by mistake
    canvas = tmp / "canvas.zip"
    with zipfile.ZipFile(canvas, "w") as z:
        z.writestr(zipfile.ZipInfo(f"doejane_123456_7001_{CH05}.ipynb", old), empty)
        z.writestr(f"doejane_LATE_123456_7002_{CH05}-1.ipynb", correct)
        z.writestr(f"núñezjosé_222_7003_{CH05}.IPYNB", wrong)
        z.writestr(f"smithjohn_333_7004_{CH01}.ipynb", ch01)
    # Moodle: one wrapping folder, a folder per student, spaces and accents, two files from one student
    moodle = tmp / "moodle.zip"
    with zipfile.ZipFile(moodle, "w") as z:
        z.writestr(zipfile.ZipInfo("CH05 download/Mary Ann Lee_123401_assignsubmission_file_/draft.ipynb", old), empty)
        z.writestr(zipfile.ZipInfo("CH05 download/Mary Ann Lee_123401_assignsubmission_file_/final.ipynb",
                                   (2026, 11, 19, 10, 0, 0)), correct)
        z.writestr(zipfile.ZipInfo(f"CH05 download/Zoë Ørsted_123402_assignsubmission_file_/{CH05}.ipynb",
                                   (2026, 11, 21, 10, 0, 0)), wrong)
        z.writestr("CH05 download/Zoë Ørsted_123402_assignsubmission_file_/notes.txt", "my notes")
    # Blackboard: attempts with their metadata files, in a plain folder
    bb = tmp / "blackboard"
    bb.mkdir()
    (bb / f"{CH05}_bwayne_attempt_2026-11-19-08-00-00_{CH05}.ipynb").write_bytes(correct)
    (bb / f"{CH05}_bwayne_attempt_2026-11-19-08-00-00.txt").write_text("Name: Bruce Wayne (bwayne)\n")
    (bb / f"{CH05}_gina_attempt_2026-11-19-09-00-00_{CH05}.ipynb").write_bytes(wrong)
    (bb / f"{CH05}_gina_attempt_2026-11-19-09-00-00.txt").write_text("Name: Gina Ortiz (gina)\n")
    roster = tmp / "roster.csv"
    roster.write_text("Student,ID\nBruce Wayne,bwayne\nGina Ortiz,gina\nHal Jordan,hjordan\n", encoding="utf-8")
    results = {}
    for name, src, extra in (("canvas", canvas, ()), ("moodle", moodle, ("--due", "2026-11-20T12:00")),
                             ("blackboard", bb, ("--roster", str(roster)))):
        out = tmp / f"out-{name}"
        first = grade(CH05, src, out, *extra, check=False)
        results[name] = (out, first)
    return results


def test_a_canvas_export_grades_the_newest_resubmission_and_keeps_ids_names_and_late_marks(exports):
    out, first = exports["canvas"]
    # the Chapter 1 notebook is not taken for Chapter 5: the run stops before grading and says why
    assert first.returncode == 3 and "does not look like ch05_max_unpooling" in first.stdout
    assert "it looks like ch01_cnn_size" in first.stdout and not (out / "grades.csv").exists()
    grade(CH05, out.parent / "canvas.zip", out, "--continue")
    rows = rows_of(out)
    jane = next(r for r in rows.values() if r["lms_id"] == "123456")
    jose = next(r for r in rows.values() if r["lms_id"] == "222")
    assert jane["name"] == "doejane" and jane["late"] == "late" and float(jane["score"]) == 10
    assert jose["name"] == "núñezjosé" and float(jose["score"]) == 7  # the off-by-one range check loses 5.2b
    assert "torch rejects these arguments" in jose["test_max_unpool2d_general reason"]
    report = (out / "intake.txt").read_text()
    assert f"doejane_123456_7001_{CH05}.ipynb" in report and "superseded" in report
    assert len(rows) == 2


CANVAS_GRADEBOOK = (
    "Student,ID,SIS User ID,SIS Login ID,Section,Chapter 5 (ch05_max_unpooling) (4411),Quiz 1 (4412),Current Score\n"
    "    Points Possible,,,,,10.00,5.00,(read only)\n"
    '"Doe, Jane",123456,S1,jdoe,Sec A,,4,80\n'
    '"Núñez, José",222,S2,jnunez,Sec A,,3,60\n'
    '"Smith, John",333,S3,jsmith,Sec A,,5,100\n'
    '"Lee, Kim",444,S4,klee,Sec A,,5,100\n'
    '"Student, Test",999,,,Sec A,,,\n')


def test_a_canvas_gradebook_export_comes_back_with_this_assignment_s_column_filled_in(exports, tmp_path):
    out, _ = exports["canvas"]
    export = tmp_path / "gradebook.csv"
    export.write_text(CANVAS_GRADEBOOK, encoding="utf-8")
    grade(CH05, out.parent / "canvas.zip", out, "--continue")
    proc = grade(CH05, out.parent / "canvas.zip", out, "--continue", "--canvas", str(export))
    ours = {r["lms_id"]: r["score"] for r in rows_of(out).values()}
    with open(out / "canvas-import.csv", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, points, *students = rows
    col = header.index("Chapter 5 (ch05_max_unpooling) (4411)")
    assert header == next(csv.reader(io.StringIO(CANVAS_GRADEBOOK)))  # every column kept, none added
    assert points[col] == "10" and points[header.index("Quiz 1 (4412)")] == "5.00"
    filled = {r[1]: r[col] for r in students}
    assert filled == {"123456": ours["123456"], "222": ours["222"], "333": "", "444": "", "999": ""}
    assert [r[header.index("Quiz 1 (4412)")] for r in students] == ["4", "3", "5", "5", ""]  # untouched
    unmatched = (out / "canvas-unmatched.txt").read_text()
    assert "Smith, John (ID 333)" in unmatched and "Lee, Kim (ID 444)" in unmatched and "Test" not in unmatched
    assert "canvas-import.csv" in proc.stdout
    # a file that is not a Canvas export is refused before anything is graded
    bad = tmp_path / "roster.csv"
    bad.write_text("name,email\n", encoding="utf-8")
    refused = grade(CH05, out.parent / "canvas.zip", out, "--continue", "--canvas", str(bad), check=False)
    assert refused.returncode == 2 and "not a Canvas gradebook export" in refused.stderr


def test_a_canvas_export_without_the_assignment_gets_a_new_column_and_an_ambiguous_one_is_refused(tmp_path):
    from autograder.grading.lms import canvas_import

    export = tmp_path / "gradebook.csv"
    export.write_text(CANVAS_GRADEBOOK.replace("Chapter 5 (ch05_max_unpooling) (4411)", "Homework (4411)"),
                      encoding="utf-8")
    grades = [{"student_id": "jdoe", "lms_id": "", "name": "Jane", "score": "9", "notes": ""},
              {"student_id": "zed", "lms_id": "", "name": "Zed", "score": "3", "notes": ""},
              {"student_id": "hjordan", "lms_id": "", "name": "Hal", "score": "0", "notes": "no submission"}]
    result = canvas_import(export, CH05, grades, 10)
    rows = list(csv.reader(io.StringIO(result.text)))
    assert rows[0][-1] == CH05 and rows[1][-1] == "10"  # a new assignment column, with its points
    assert [r[-1] for r in rows[2:]] == ["9", "", "", "", ""]  # matched by SIS Login ID
    assert result.only_here == ["zed (Zed)"] and len(result.only_in_canvas) == 3
    export.write_text(CANVAS_GRADEBOOK.replace("Quiz 1 (4412)", "ch05_max_unpooling retake (4412)"), encoding="utf-8")
    with pytest.raises(ValueError, match="several columns"):
        canvas_import(export, CH05, grades, 10)


def test_feedback_pages_are_bundled_as_moodle_and_canvas_take_them_back(exports):
    moodle, _ = exports["moodle"]
    grade(CH05, moodle.parent / "moodle.zip", moodle, "--due", "2026-11-20T12:00", "--continue")
    with zipfile.ZipFile(moodle / "feedback-upload" / "moodle.zip") as z:
        names = sorted(z.namelist())
        # Moodle reads the participant id from the folder its own download made
        assert names == [f"Mary Ann Lee_123401_assignsubmission_file_/feedback-{CH05}.html",
                         f"Zoë Ørsted_123402_assignsubmission_file_/feedback-{CH05}.html"], names
        page = z.read(names[1]).decode()
    assert page == (moodle / "feedback" / "Zoe_Orsted_123402" / f"{CH05}.html").read_text(encoding="utf-8")
    canvas, _ = exports["canvas"]
    grade(CH05, canvas.parent / "canvas.zip", canvas, "--continue")
    with zipfile.ZipFile(canvas / "feedback-upload" / "canvas.zip") as z:
        # Canvas reads the student from its download's prefix: name[_LATE]_userid_submissionid_
        assert sorted(z.namelist()) == [f"doejane_LATE_123456_7002_feedback-{CH05}.html",
                                        f"núñezjosé_222_7003_feedback-{CH05}.html"]
    bb, _ = exports["blackboard"]
    assert not (bb / "feedback-upload").exists()  # no such convention there: nothing made up


def test_a_moodle_export_in_a_wrapping_folder_is_a_class_not_one_student(exports):
    out, proc = exports["moodle"]
    assert proc.returncode == 3  # notes.txt is not a notebook: listed, and the run asks for --continue
    grade(CH05, out.parent / "moodle.zip", out, "--due", "2026-11-20T12:00", "--continue")
    rows = rows_of(out)
    assert {r["name"] for r in rows.values()} == {"Mary Ann Lee", "Zoë Ørsted"}
    mary = next(r for r in rows.values() if r["lms_id"] == "123401")
    zoe = next(r for r in rows.values() if r["lms_id"] == "123402")
    assert float(mary["score"]) == 10 and mary["late"] == ""     # final.ipynb (the newer member) was graded
    assert zoe["late"] == "late" and float(zoe["score"]) == 7    # after --due, by the zip member's own date
    items = list(csv.DictReader(open(out / "intake.csv", encoding="utf-8")))
    assert len(items) == 4 and {i["status"] for i in items} == {"graded", "superseded", "skipped"}


def test_a_blackboard_export_reads_names_from_its_metadata_and_the_roster_lists_who_sent_nothing(exports):
    out, proc = exports["blackboard"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = rows_of(out)
    assert rows["bwayne"]["name"] == "Bruce Wayne" and float(rows["bwayne"]["score"]) == 10
    assert rows["gina"]["name"] == "Gina Ortiz" and float(rows["gina"]["score"]) == 7
    assert rows["hjordan"]["notes"] == "no submission" and rows["hjordan"]["score"] == "0"
    assert "on the roster, no submission (1)" in proc.stdout


def test_nothing_hidden_leaves_the_grader(exports):
    out, _ = exports["blackboard"]
    for page in (out / "feedback").rglob("*.html"):
        text = page.read_text()
        assert "seed" not in text and "reproduce" not in text and "HIDDEN" not in text, page
    # the course folder holds no hidden test source, so nbgrader's own feedback there cannot show one
    for path in (out / "course").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"BEGIN HIDDEN TESTS" not in data and b'suite=\\"hidden\\"' not in data, path
            assert b'suite="hidden"' not in data, path
    from conftest import nbgrader

    nbgrader("generate_feedback", CH05, "--force", cwd=out / "course", config_dir=out / "course")
    pages = list((out / "course" / "nbgrader_feedback").rglob("*.html"))
    assert pages and not any("HIDDEN TESTS" in p.read_text() or "suite=\"hidden\"" in p.read_text() for p in pages)
    assert not (out / "course" / "source" / "offering.key").exists() and (out / "state" / "offering.key").exists()


# --------------------------------------------------------------------------
# Inputs checked before the slow part


def test_wrong_inputs_are_refused_at_once_with_what_to_do(tmp_path):
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "a.ipynb").write_bytes(notebook_bytes(CH01, {}))
    start = time.perf_counter()
    wrong = grade("ch5", subs, tmp_path / "o1", check=False)
    assert wrong.returncode == 2 and "ch05_max_unpooling" in wrong.stderr and "ch01_cnn_size" in wrong.stderr
    missing = grade(CH01, tmp_path / "nowhere", tmp_path / "o2", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    inside = grade(CH01, subs, REPO / "results-of-a-test", check=False)
    assert inside.returncode == 2 and "inside the repository" in inside.stderr
    assert not (REPO / "results-of-a-test").exists()
    assert time.perf_counter() - start < 60  # no course set-up, no nbgrader
    # a relative OUT is taken relative to where the command runs
    proc = grade(CH01, subs, "relative-out", cwd=tmp_path)
    assert (tmp_path / "relative-out" / "grades.csv").exists(), proc.stdout


# --------------------------------------------------------------------------
# Re-runs: a merge, never a loss


A1 = answers(CH01)
BOB = {**A1, "conv2d": A1["conv2d"].replace("out = out + bias.reshape(1, C_out, 1, 1)", "out = out")}
CLASS = {"alice": A1, "bob": BOB, "carol": {}, "dan": A1, "erin": BOB, "fay": A1}


def write_class(root: Path, students) -> Path:
    for sid in students:
        (root / sid).mkdir(parents=True, exist_ok=True)
        (root / sid / f"{CH01}.ipynb").write_bytes(notebook_bytes(CH01, CLASS[sid]))
    return root


def scores(out: Path) -> dict:
    return {sid: r["score"] for sid, r in rows_of(out).items()}


def gradebook_scores(out: Path) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook("sqlite:///" + str(out / "course" / "gradebook.db")) as gb:
        return {s.student_id: s.score for s in gb.assignment_submissions(CH01)}


@pytest.fixture(scope="module")
def reruns(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reruns")
    everyone = write_class(tmp / "all", CLASS)
    out = tmp / "out"
    grade(CH01, everyone, out)
    return tmp, everyone, out, scores(out), gradebook_scores(out)


def test_a_partial_rerun_changes_those_students_only(reruns):
    tmp, _, out, full, book = reruns
    assert full == {"alice": "10", "bob": "2", "carol": "0", "dan": "10", "erin": "2", "fay": "10"}
    two = write_class(tmp / "two", ["bob", "carol"])
    proc = grade(CH01, two, out)
    assert scores(out) == full and gradebook_scores(out) == book
    assert "2 graded in this run" not in proc.stdout and "kept from earlier runs" in proc.stdout


def test_every_grade_and_feedback_page_records_the_course_version_it_was_graded_with(reruns):
    from autograder.paths import course_version

    _, _, out, _, _ = reruns
    version = course_version()
    assert version.startswith("0.") and "+" in version  # the package's version and, in a checkout, the commit
    for sid, row in rows_of(out).items():
        assert row["course_version"] == version, row
        page = (out / "feedback" / sid / f"{CH01}.html").read_text(encoding="utf-8")
        assert f"Graded with version {version} of the course" in page


def test_an_unchanged_rerun_loads_neither_torch_nor_nbgrader_and_writes_the_same_grades(reruns):
    _, everyone, out, full, _ = reruns
    before = (out / "grades.csv").read_bytes()
    grade(CH01, everyone, out)  # the first unchanged run after another run rewrites the grader's cache
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "autograder.grading", CH01, str(everyone),
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in loaded and "nbgrader.api" not in loaded, sorted(m for m in loaded if "torch" in m)[:5]
    assert "0 graded in this run" in proc.stdout and (out / "grades.csv").read_bytes() == before


def test_a_manual_grade_survives_every_rerun_and_shows_in_the_csv(reruns):
    from nbgrader.api import Gradebook

    tmp, everyone, out, full, _ = reruns
    with Gradebook("sqlite:///" + str(out / "course" / "gradebook.db")) as gb:
        g = gb.find_grade("test_conv2d_basic", CH01, CH01, "bob")
        g.manual_score = 3  # the instructor looked at bob's code in formgrader and gave the bias part back
        gb.db.commit()
    for extra in ((), ("--force",)):
        grade(CH01, everyone, out, *extra)
        row = rows_of(out)["bob"]
        assert row["test_conv2d_basic"] == "3" and row["score"] == "5", row
        assert "manual grade 3" in row["test_conv2d_basic reason"]
        assert gradebook_scores(out)["bob"] == 5
    assert {k: v for k, v in scores(out).items() if k != "bob"} == {k: v for k, v in full.items() if k != "bob"}


def test_an_interrupted_run_ends_like_an_uninterrupted_one(reruns):
    tmp, everyone, _, full, _ = reruns
    out = tmp / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "autograder.grading", CH01, str(everyone), str(out), "--jobs", "1"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stamps = out / "state" / "stamps"
    deadline = time.time() + 300
    while time.time() < deadline and (not stamps.exists() or len(list(stamps.glob("*.json"))) < 2):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(list(stamps.glob("*.json"))) < len(CLASS)  # killed half-way
    grade(CH01, everyone, out)
    assert scores(out) == full
    stamp = json.loads(next(stamps.glob("*.json")).read_text())
    assert "source_sha" in stamp and not list(stamps.glob(".*.tmp"))
