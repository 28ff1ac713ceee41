"""Intake: every file of a class export accounted for (Canvas, Moodle, Blackboard, nbgrader, plain folders)."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

from autograder.grading import intake

AID = "ch05_max_unpooling"


def touch(root: Path, rel: str, text: str = "{}", when: float | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if when is not None:
        os.utime(path, (when, when))
    return path


def by_file(items):
    return {i.rel: i for i in items}


def test_canvas_names_numbers_late_marks_and_resubmissions(tmp_path):
    touch(tmp_path, f"doejane_123456_7001_{AID}.ipynb")
    touch(tmp_path, f"doejane_LATE_123456_7002_{AID}-1.ipynb")
    touch(tmp_path, f"smithjohn_LATE_222_7003_{AID}.ipynb")
    touch(tmp_path, "smithjohn_222_7004_notes.pdf")
    students, items = intake.scan(tmp_path, AID)
    s = {st.lms_id: st for st in students}
    assert set(s) == {"123456", "222"}
    assert s["123456"].name == "doejane" and s["123456"].chosen.rel.endswith("-1.ipynb")
    assert "resubmission number" in s["123456"].why_chosen and s["123456"].late
    assert s["222"].late
    files = by_file(items)
    assert files[f"doejane_123456_7001_{AID}.ipynb"].status == "superseded"
    assert files["smithjohn_222_7004_notes.pdf"].status == "skipped"
    assert len(items) == 4  # every file, once


def test_moodle_folders_with_unicode_names_and_a_due_date(tmp_path):
    due = datetime(2026, 11, 20, 12, 0)
    on_time, late = due.timestamp() - 3600, due.timestamp() + 3600
    touch(tmp_path, f"Alice Smith_123401_assignsubmission_file_/{AID}.IPYNB", when=on_time)
    touch(tmp_path, "José Núñez_123402_assignsubmission_file_/my work.ipynb", when=late)
    touch(tmp_path, "José Núñez_123402_assignsubmission_file_/draft.ipynb", when=on_time)
    touch(tmp_path, "Zoë Ørsted_123403_assignsubmission_onlinetext_/onlinetext.html")
    students, items = intake.scan(tmp_path, AID, due=due)
    s = {st.lms_id: st for st in students}
    assert s["123401"].name == "Alice Smith" and not s["123401"].late
    assert s["123402"].name == "José Núñez" and s["123402"].chosen.rel.endswith("my work.ipynb") and s["123402"].late
    assert all(st.id.isascii() and " " not in st.id for st in students)
    assert by_file(items)["Zoë Ørsted_123403_assignsubmission_onlinetext_/onlinetext.html"].status == "skipped"


def test_blackboard_attempts_and_their_metadata(tmp_path):
    touch(tmp_path, f"{AID}_asmith_attempt_2026-11-19-09-00-00_{AID}.ipynb", when=time.time())
    touch(tmp_path, f"{AID}_asmith_attempt_2026-11-20-09-00-00_{AID}.ipynb", when=time.time() - 86400)
    touch(tmp_path, f"{AID}_asmith_attempt_2026-11-20-09-00-00.txt", "Name: Alice Smith (asmith)\n")
    students, items = intake.scan(tmp_path, AID)
    (st,) = students
    assert st.id == "asmith" and st.name == "Alice Smith"
    assert "2026-11-20" in st.chosen.rel and "attempt time" in st.why_chosen  # the platform's time, not the file's
    assert by_file(items)[f"{AID}_asmith_attempt_2026-11-20-09-00-00.txt"].status == "metadata"


def test_plain_folders_one_wrapping_folder_and_nbgrader_layout(tmp_path):
    wrap = tmp_path / "ch05_downloads"
    for who in ("alice", "carol", "dave"):
        touch(wrap, f"{who}_{AID}.ipynb")
    touch(wrap, f"{AID}_gina.ipynb")
    touch(wrap, f"zoë/{AID}.ipynb")
    touch(wrap, f"Mary Ann/{AID}.ipynb")
    touch(wrap, f"submitted/hank/{AID}/{AID}.ipynb")
    touch(wrap, ".DS_Store")
    students, items = intake.scan(tmp_path, AID)
    names = {st.name for st in students}
    assert names == {"alice", "carol", "dave", "gina", "zoë", "Mary Ann", "hank"}
    assert {st.id for st in students} >= {"zoe", "Mary_Ann", "gina", "hank"}
    assert all(i.status in ("graded", "skipped") for i in items) and len(items) == 8


def test_links_are_listed_never_followed(tmp_path):
    touch(tmp_path / "elsewhere", "secret.ipynb")
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / f"eve_{AID}.ipynb").symlink_to(tmp_path / "elsewhere" / "secret.ipynb")
    (tmp_path / "subs" / "mallory").symlink_to(tmp_path / "elsewhere")
    touch(tmp_path / "subs", f"bob_{AID}.ipynb")
    students, items = intake.scan(tmp_path / "subs", AID)
    assert [st.name for st in students] == ["bob"]
    skipped = {i.rel: i.reason for i in items if i.status == "skipped"}
    assert set(skipped) == {f"eve_{AID}.ipynb", "mallory"} and all("link" in r for r in skipped.values())


def test_a_roster_is_read_from_the_usual_columns(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS User ID\nAlice Smith,123401,as1\nBob Jones,123404,bj4\n", encoding="utf-8")
    assert intake.read_roster(roster) == [{"id": "123401", "name": "Alice Smith"}, {"id": "123404", "name": "Bob Jones"}]
