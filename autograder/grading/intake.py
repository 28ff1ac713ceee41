"""Intake: every input file of a class's submissions, accounted for.

Recognises the download layouts of the learning platforms instructors use, and plain folders:

    Canvas       <lastfirst>[_LATE]_<user id>_<submission id>_<file>[-N].ipynb    (N: resubmission number)
    Moodle       <Full Name>_<participant id>_assignsubmission_file_/<file>.ipynb
    Blackboard   <assignment>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>[_<file>].ipynb   (+ a .txt of metadata)
    nbgrader     [submitted/]<student>/<assignment>/<assignment>.ipynb
    plain        <student>/<any>.ipynb, <student>_<anything>.ipynb, <assignment>_<student>.ipynb, <student>.ipynb

with any Unicode name, spaces, upper-case extensions, and one wrapping folder (a zip of a folder). Every file
ends up either graded for exactly one student or listed with the reason it was not (:class:`Item`); when a
student has several notebooks, the newest by the platform's own timestamp or numbering is graded (else by the
file's time: a zip member's own date, not the extraction time), and the report says which and why.
"""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

CANVAS = re.compile(r"^(?P<name>[^_]+?)(?P<late>_LATE)?_(?P<uid>\d+)_(?P<sub>\d+)_(?P<file>.+?)(?:-(?P<n>\d+))?$")
MOODLE = re.compile(r"^(?P<name>.+)_(?P<uid>\d+)_assign(?:submission|feedback)_\w+?_?$")
BLACKBOARD = re.compile(r"^(?P<assignment>.+)_(?P<user>[^_]+)_attempt_(?P<ts>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})"
                        r"(?:_(?P<file>.+))?$")
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", ".ipynb_checkpoints", "desktop.ini"}


@dataclass
class Candidate:
    """One notebook, attributed to one student."""

    path: Path                   # where it is (inside the expanded submissions)
    rel: str                     # as the report names it
    key: str                     # who, as the platform identifies them (its id, else the name)
    name: str                    # the display name as the platform gave it
    lms_id: str = ""             # the platform's numeric id, where it has one
    layout: str = "plain"
    when: datetime | None = None  # the platform's own timestamp, where it has one
    order: int = 0               # the platform's own resubmission number, where it has one
    mtime: float = 0.0           # the file's time (a zip member's date)
    late: bool | None = None     # the platform's own late mark, where it has one

    def newness(self):
        """How new the notebook is, as a sort key: the platform's time, its resubmission number, the file's time."""
        return (self.when or datetime.min, self.order, self.mtime, self.rel)


@dataclass
class Student:
    """One student found in the submissions, with the notebook chosen to grade (and why, if there were several)."""

    id: str                      # a safe id for nbgrader and folders (ASCII); display names are kept apart
    name: str
    lms_id: str
    chosen: Candidate
    why_chosen: str = ""
    late: bool = False


@dataclass
class Item:
    """One input file and what became of it."""

    rel: str
    status: str                  # "graded", "superseded", "metadata", "skipped"
    student: str = ""
    reason: str = ""


#: Letters that Unicode does not decompose into a Latin letter and an accent.
LATIN = str.maketrans({"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "ß": "ss", "Đ": "D", "đ": "d", "Ł": "L", "ł": "l",
                       "Œ": "OE", "œ": "oe", "Þ": "Th", "þ": "th", "ı": "i"})


def safe_id(text: str) -> str:
    """An ASCII id for a student's folders: accents dropped, spaces and others to '_'."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(LATIN)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._@-]+", "_", ascii_text).strip("._-")
    return slug[:60]


def _stem(name: str) -> tuple[str, str]:
    """(stem, extension in lower case)."""
    p = Path(name)
    return p.stem, p.suffix.lower()


def attribute(rel: Path, aid: str) -> Candidate | str:
    """Who one notebook belongs to, from its path relative to the submissions root; or why nobody."""
    parts = rel.parts
    stem, _ = _stem(parts[-1])
    # Moodle: the student's own folder names them and their participant id.
    for folder in parts[:-1]:
        m = MOODLE.match(folder)
        if m:
            return Candidate(Path(), str(rel), f"moodle:{m['uid']}", m["name"], m["uid"], "Moodle")
    # nbgrader: <student>/<aid>/<aid>.ipynb (optionally under submitted/)
    if len(parts) >= 3 and parts[-2] == aid:
        return Candidate(Path(), str(rel), parts[-3], parts[-3], "", "nbgrader")
    m = CANVAS.match(stem)
    if m and len(parts) == 1:
        return Candidate(Path(), str(rel), f"canvas:{m['uid']}", m["name"], m["uid"], "Canvas",
                         order=int(m["n"] or 0), late=bool(m["late"]))
    m = BLACKBOARD.match(stem)
    if m and len(parts) == 1:
        when = datetime.strptime(m["ts"], "%Y-%m-%d-%H-%M-%S")
        return Candidate(Path(), str(rel), m["user"], m["user"], "", "Blackboard", when=when)
    if len(parts) >= 2:  # <student>/<any>.ipynb
        return Candidate(Path(), str(rel), parts[0], parts[0], "", "folder per student")
    if stem.lower().startswith(aid.lower() + "_"):  # <aid>_<student>.ipynb
        who = stem[len(aid) + 1:]
        return Candidate(Path(), str(rel), who, who, "", "assignment_student file") if who else "no student name"
    if stem.lower() == aid.lower():
        return "the file is named after the assignment only: whose is it? (put it in a folder named after the student)"
    who = stem.split("_")[0]
    return Candidate(Path(), str(rel), who, who, "", "student_anything file") if who else "no student name"


def blackboard_names(root: Path) -> dict[str, str]:
    """username -> full name, from Blackboard's attempt .txt files ("Name: Alice Smith (asmith)")."""
    names = {}
    for txt in root.rglob("*.txt"):
        if BLACKBOARD.match(txt.stem):
            try:
                m = re.search(r"^Name:\s*(.+?)\s*\(([^)]+)\)\s*$", txt.read_text(errors="replace"), flags=re.M)
            except OSError:
                continue
            if m:
                names[m.group(2)] = m.group(1)
    return names


def unwrap(root: Path) -> Path:
    """Descend through one wrapping folder (a zip of a folder): a root holding a single folder and no file,
    when that folder holds more than one entry (else the folder is a student's own)."""
    while True:
        entries = [p for p in root.iterdir() if p.name not in IGNORED_NAMES and not p.name.startswith(".")]
        dirs = [p for p in entries if p.is_dir() and not p.is_symlink()]
        if len(entries) == 1 and len(dirs) == 1:
            inner = [p for p in dirs[0].iterdir() if p.name not in IGNORED_NAMES and not p.name.startswith(".")]
            if len(inner) > 1 and not MOODLE.match(dirs[0].name):
                root = dirs[0]
                continue
        return root


def scan(root: Path, aid: str, mtimes: dict[str, float] | None = None,
         due: datetime | None = None) -> tuple[list[Student], list[Item]]:
    """Every file under ``root``: the students (with the notebook chosen for each) and the report."""
    import os

    root = unwrap(root)
    items: list[Item] = []
    cands: dict[str, list[Candidate]] = {}
    bb_names = blackboard_names(root)
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        for d in list(dirs):
            if os.path.islink(here / d):
                items.append(Item(str((here / d).relative_to(root)), "skipped", reason="a symbolic link (not followed)"))
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_NAMES and not os.path.islink(here / d))
        for f in sorted(files):
            path = here / f
            rel = path.relative_to(root)
            if f in IGNORED_NAMES or f.startswith("._"):
                items.append(Item(str(rel), "skipped", reason="operating-system clutter"))
                continue
            if path.is_symlink():
                items.append(Item(str(rel), "skipped", reason="a symbolic link (not followed)"))
                continue
            stem, ext = _stem(f)
            if ext != ".ipynb":
                if ext == ".txt" and BLACKBOARD.match(stem):
                    items.append(Item(str(rel), "metadata", reason="Blackboard's attempt details (names read)"))
                else:
                    items.append(Item(str(rel), "skipped", reason=f"not a notebook ({ext or 'no extension'})"))
                continue
            got = attribute(rel, aid)
            if isinstance(got, str):
                items.append(Item(str(rel), "skipped", reason=got))
                continue
            got.path = path
            got.mtime = (mtimes or {}).get(str(rel), path.stat().st_mtime)
            if got.layout == "Blackboard" and got.key in bb_names:
                got.name = bb_names[got.key]
            cands.setdefault(got.key, []).append(got)
    students: list[Student] = []
    used: dict[str, str] = {}
    for key in sorted(cands):
        group = sorted(cands[key], key=Candidate.newness, reverse=True)
        chosen = group[0]
        if chosen.lms_id:        # Canvas, Moodle: name and number, as the platform shows them
            base = safe_id(f"{chosen.name}_{chosen.lms_id}")
        elif chosen.layout == "Blackboard":
            base = safe_id(chosen.key)   # the username (the display name comes from its .txt)
        else:
            base = safe_id(chosen.name)
        base = base or f"student_{hashlib.sha256(key.encode()).hexdigest()[:6]}"  # a name with no Latin letter
        sid = base
        if sid in used and used[sid] != key:
            sid = f"{base}_{hashlib.sha256(key.encode()).hexdigest()[:6]}"
        used[sid] = key
        if len(group) > 1:
            if chosen.when:
                why = f"the newest of {len(group)} by {chosen.layout}'s attempt time ({chosen.when:%Y-%m-%d %H:%M:%S})"
            elif chosen.order:
                why = f"the newest of {len(group)} by {chosen.layout}'s resubmission number (-{chosen.order})"
            else:
                why = f"the newest of {len(group)} by the file's date (in a zip, the member's own date)"
        else:
            why = ""
        late = bool(chosen.late)
        if due is not None and chosen.late is None:
            moment = chosen.when or datetime.fromtimestamp(chosen.mtime)
            late = moment > due
        students.append(Student(sid, chosen.name, chosen.lms_id, chosen, why, late))
        items.append(Item(chosen.rel, "graded", sid, why or f"{chosen.layout} layout"))
        for other in group[1:]:
            items.append(Item(other.rel, "superseded", sid, f"an older notebook of the same student ({why})"))
    items.sort(key=lambda i: i.rel)
    return students, items


def read_roster(path: Path) -> list[dict]:
    """A roster CSV: a column of ids (id, student_id, sis_user_id, username or login) and, optionally, names."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        low = {k.strip().lower(): (v or "").strip() for k, v in r.items() if k}
        ident = next((low[k] for k in ("id", "student_id", "sis_user_id", "username", "login", "user id")
                      if low.get(k)), "")
        name = next((low[k] for k in ("name", "student", "full name", "display name") if low.get(k)), ident)
        if ident or name:
            out.append({"id": ident, "name": name})
    return out


def report_text(items: list[Item], students: list[Student]) -> str:
    """The intake report: the counts, then every file not graded, by status, with its reason."""
    graded = [i for i in items if i.status == "graded"]
    lines = [f"intake: {len(items)} files, {len(graded)} notebooks graded for {len(students)} students"]
    for status in ("superseded", "metadata", "skipped"):
        group = [i for i in items if i.status == status]
        if group:
            lines.append(f"  {status} ({len(group)}):")
            lines += [f"    {i.rel}" + (f" [{i.student}]" if i.student else "") + f" — {i.reason}" for i in group]
    return "\n".join(lines)
