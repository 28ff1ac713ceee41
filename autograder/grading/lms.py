"""Grades an LMS takes back: a Canvas gradebook export with this assignment's column filled in.

    make grade ... GRADE_ARGS="--canvas gradebook-export.csv"   ->  OUT/canvas-import.csv, OUT/canvas-unmatched.txt

Canvas exports its gradebook as a CSV: identity columns (``Student`` as "Last, First", ``ID`` — Canvas' own
user id, the number in a submission download's file names —, ``SIS User ID``, ``SIS Login ID``, ``Section``),
one column per assignment named ``Title (number)``, read-only totals, and a ``Points Possible`` row under the
header. Importing such a file back updates the columns whose values changed; a column Canvas does not know
becomes a new assignment. So the copy keeps every row and column as exported and fills one column: the one
whose title names this assignment (its id, e.g. ``ch05_max_unpooling``, or the title given), else a new column
titled with the assignment's id, with its points in the ``Points Possible`` row.

Students are matched by Canvas' user id first (what the intake reads from Canvas' file names), then by SIS
login or user id against the grader's student id; whoever is on one side only is listed, never guessed.

Feedback back to the LMS (``OUT/feedback-upload/<platform>.zip``, :func:`feedback_upload_name`):

* Moodle ("Upload multiple feedback files in a zip"): Moodle reads the participant from a folder named
  ``<full name>_<participant id>_<plugin type>_<plugin name>_`` — the folder its own download made — so each
  page goes into the student's downloaded folder, as ``feedback-<aid>.html``;
* Canvas ("Re-upload submissions"): Canvas reads the student from the download's file-name prefix
  (``<name>[_LATE]_<user id>_<submission id>_``), so each page keeps that prefix. (Written from Canvas'
  naming of its downloads; not tried against a Canvas instance from here.)
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")


@dataclass
class CanvasImport:
    """The filled-in copy of a Canvas export, and who could not be matched."""

    text: str
    column: str
    filled: int = 0
    only_in_canvas: list[str] = field(default_factory=list)   # on the LMS roster, no grade here
    only_here: list[str] = field(default_factory=list)        # graded here, not in the export


def _is_student(row: dict) -> bool:
    """A student's row (not the ``Points Possible`` row, nor Canvas' test student)."""
    name = (row.get("Student") or "").strip()
    return bool(name) and name != "Points Possible" and name.casefold() != "student, test"


def canvas_import(export: Path, aid: str, grades: list[dict], points: float, title: str | None = None) -> CanvasImport:
    """The export with this assignment's column filled from ``grades`` (rows of grades.csv)."""
    with open(export, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows or "Student" not in rows[0] or "ID" not in rows[0]:
        raise ValueError(f"{export} does not look like a Canvas gradebook export (no Student and ID columns)")
    header = rows[0]
    wanted = (title or aid).casefold()
    matches = [i for i, h in enumerate(header) if h not in IDENTITY and wanted in h.casefold()]
    if len(matches) > 1:
        raise ValueError(f"{export}: several columns name {title or aid}: {[header[i] for i in matches]}; "
                         "give the assignment's full column title")
    if matches:
        col = matches[0]
    else:
        header.append(title or aid)
        col = len(header) - 1
    for row in rows[1:]:
        row.extend([""] * (len(header) - len(row)))
    by_lms = {g["lms_id"]: g for g in grades if g.get("lms_id")}
    by_id = {g["student_id"].casefold(): g for g in grades}
    result = CanvasImport("", header[col])
    used = set()
    for row in rows[1:]:
        record = dict(zip(header, row))
        if (record.get("Student") or "").strip() == "Points Possible":
            row[col] = f"{points:g}"
            continue
        if not _is_student(record):
            continue
        g = by_lms.get((record.get("ID") or "").strip())
        for key in ("SIS Login ID", "SIS User ID"):
            g = g or by_id.get((record.get(key) or "").strip().casefold())
        if g is None:
            result.only_in_canvas.append(f"{record['Student']} (ID {record.get('ID', '')})")
            continue
        row[col] = g["score"]
        used.add(g["student_id"])
        result.filled += 1
    result.only_here = [f"{g['student_id']} ({g.get('name', '')})" for g in grades
                        if g["student_id"] not in used and g.get("notes") != "no submission"]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    result.text = buf.getvalue()
    return result


def unmatched_text(result: CanvasImport) -> str:
    """The report of who is on one side only, for OUT/canvas-unmatched.txt and the console."""
    lines = [f"Canvas column {result.column!r}: {result.filled} student(s) filled in."]
    if result.only_in_canvas:
        lines.append(f"In the Canvas export, no grade here ({len(result.only_in_canvas)}; left blank):")
        lines += [f"  {s}" for s in result.only_in_canvas]
    if result.only_here:
        lines.append(f"Graded here, not in the Canvas export ({len(result.only_here)}; not imported):")
        lines += [f"  {s}" for s in result.only_here]
    return "\n".join(lines)


def feedback_upload_name(layout: str, submitted_as: str, aid: str) -> str | None:
    """The name a student's feedback page takes in the LMS's bulk feedback upload, from the graded file's name in
    the export; None where the platform has no such convention (or the name is not one of its own)."""
    from .intake import CANVAS, MOODLE

    path = Path(submitted_as)
    if layout == "Moodle":
        folder = next((part for part in path.parts[:-1] if MOODLE.match(part)), None)
        return f"{folder}/feedback-{aid}.html" if folder else None
    if layout == "Canvas":
        m = CANVAS.match(path.stem)
        if m and len(path.parts) == 1:
            return f"{m['name']}{m['late'] or ''}_{m['uid']}_{m['sub']}_feedback-{aid}.html"
    return None
