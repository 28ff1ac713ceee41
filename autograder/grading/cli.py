"""``make grade``: grade a whole class, sandboxed, in parallel, with feedback and a grades CSV.

    python -m autograder.grading ASSIGNMENT SUBMISSIONS OUT [--jobs N] [--force] [--continue]
        [--roster FILE] [--due DATETIME] [--canvas EXPORT.csv [--canvas-column TITLE]] [--unsafe-no-sandbox]

SUBMISSIONS is a folder or a zip: an LMS export (Canvas, Moodle, Blackboard), nbgrader's own layout, or
plain folders (:mod:`autograder.grading.intake`). Results go to OUT (keep it private: it is student data):

    OUT/intake.txt, intake.csv           every input file: graded for whom, or why not
    OUT/grades.csv                       one row per student: ids and name as the LMS gave them, late, score,
                                         one column per part and one with its failure reason, notes, and the
                                         course version it was graded with
    OUT/feedback/<student>/<aid>.html    what passed, what failed and why (no hidden test, no seed)
    OUT/canvas-import.csv                with --canvas: the Canvas export, this assignment's column filled in
    OUT/feedback-upload/<lms>.zip        the feedback pages named for the LMS's bulk feedback upload (Moodle, Canvas)
    OUT/course/                          the nbgrader course: gradebook.db (formgrader), submitted/, autograded/
                                         (no hidden test source: its tests are the visible ones)
    OUT/state/                           the grader's own state: this offering's secret, one stamp per student
    OUT/work/<student>/                  the student's scratch folder, only where its worker is a sandbox of its
                                         own (a worker forked by the zygote writes to a private tmpfs)

The pipeline, in order (each step needs the one before):

1. check the inputs before anything slow: the assignment, the paths, OUT not inside the repository
   (unless git ignores it), the sandbox;
2. intake: account for every file; report it; stop if anything was skipped (``--continue`` goes on);
3. set up the nbgrader course (once per offering; hidden tests stripped) and nbgrader autograde, *without
   executing anything*, for the submissions that changed: it restores locked and test cells;
4. review each notebook's source statically (the policy): parts whose code could undo the sandbox's own
   rule-keeping score 0 and are marked for a manual grade;
5. grade each changed submission (parallel): its cells run in a sandboxed worker (forked by the run's zygote,
   which loads torch once: :mod:`autograder.grading.zygote`), then the grader sends each
   part's inputs over a pipe and judges the outputs itself (:mod:`autograder.grading.grader`); the result
   is stamped in OUT/state at once;
6. merge: the gradebook, grades.csv and the feedback pages are rebuilt from every stamp of the offering, so
   a run over some students changes those students only; manual grades given in formgrader are kept.

Nothing the grader reads afterwards comes from a place the submission could write.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import functools
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

# torch (through grader, policy and spec) is imported inside the functions that need it: main() starts
# nbgrader's set-up first, so that it runs while torch loads.
from ..notebooks import cell_source
from . import intake, sandbox

if TYPE_CHECKING:
    from .spec import GradedPart

from .. import paths
from ..paths import REPO, course_version, solution_notebook
from ..registry import assignments


@dataclass
class Student:
    """One student's grading record: who they are, their notebook, and each part's points and message."""

    id: str                              # safe id: nbgrader's student id and the folders' names
    name: str = ""                       # as the LMS gave it
    lms_id: str = ""                     # the LMS's numeric id, where it has one
    late: bool = False
    source: Path | None = None
    problem: str | None = None           # why it could not be graded at all (scores 0)
    notes: list[str] = field(default_factory=list)
    parts: dict = field(default_factory=dict)   # grade_id -> (points, message or None)
    manual: list = field(default_factory=list)  # parts the policy flagged: they need a manual grade
    seconds: dict = field(default_factory=dict)  # where its grading time went: sandbox, verify (for the bench)
    submitted_as: str = ""               # the graded file, as the export named it (for the LMS's feedback upload)
    layout: str = ""                     # the export's layout: Canvas, Moodle, Blackboard, nbgrader, ...
    graded_with: str = ""                # the course version its grades were computed with
    observed: dict = field(default_factory=dict)  # grade_id -> named mistake id/text, speed ratio, sandbox flag
    code: dict = field(default_factory=dict)  # solution cell's grade_id -> the learner's code (for similarity)

    @property
    def score(self) -> float:
        """The student's total: every part's points, summed."""
        return sum(p for p, _ in self.parts.values())


def atomic_write(path: Path, text: str) -> None:
    """Write a file so that a crash leaves the old one or the new one, never half of either."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# 1. The inputs, checked before anything slow


def out_problem(out: Path) -> str | None:
    """Why OUT may not be used: inside this repository where git would commit it."""
    try:
        out.relative_to(REPO)
    except ValueError:
        return None
    probe = out / "grades.csv"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=REPO, capture_output=True)
    if ignored.returncode == 0 or not (REPO / ".git").exists():
        return None
    return (f"OUT={out} is inside the repository and git does not ignore it: grades and student code would be "
            "committed. Choose a folder outside the repository (or one listed in .gitignore, such as .grading/).")


def parse_due(text: str) -> datetime:
    """The ``--due`` date and time, in one of the accepted formats (else exit with an error)."""
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    raise SystemExit(f"error: --due {text!r} is not a date and time such as 2026-11-20T23:59")


# --------------------------------------------------------------------------
# 2. Intake


def _zip_name(member: zipfile.ZipInfo) -> str:
    """A member's name as its author wrote it: zips without the UTF-8 flag store names in an old code page."""
    if member.flag_bits & 0x800:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return member.filename


def expand(submissions: Path, out: Path) -> tuple[Path, list[intake.Item]]:
    """A folder to scan: the folder itself, or a zip extracted (members keep their own dates; links and paths
    out of the folder are listed, not extracted)."""
    if submissions.is_dir():
        return submissions, []
    if not zipfile.is_zipfile(submissions):
        raise SystemExit(f"error: {submissions} is neither a folder nor a zip file")
    import stat

    dest = out / "incoming"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    items = []
    with zipfile.ZipFile(submissions) as z:
        for member in z.infolist():
            name = _zip_name(member)
            rel = Path(name)
            if member.is_dir():
                continue
            if rel.is_absolute() or ".." in rel.parts:
                items.append(intake.Item(name, "skipped", reason="a path out of the folder (not extracted)"))
                continue
            if stat.S_ISLNK(member.external_attr >> 16):
                items.append(intake.Item(name, "skipped", reason="a symbolic link (not extracted)"))
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(member))
            when = time.mktime(member.date_time + (0, 0, -1))
            os.utime(target, (when, when))
    return dest, items


def graded_ids(nb_bytes: bytes) -> set[str]:
    """The nbgrader grade ids of a notebook's cells (none if the bytes are not a notebook)."""
    try:
        nb = json.loads(nb_bytes.decode("utf-8"))
        return {((c.get("metadata") or {}).get("nbgrader") or {}).get("grade_id") for c in nb.get("cells", [])} - {None}
    except (ValueError, AttributeError, TypeError):
        return set()


@functools.cache
def own_ids(aid: str) -> frozenset[str]:
    """The nbgrader cell ids of an assignment that no other assignment has (setup cells are shared)."""
    ids = {a: graded_ids((solution_notebook(a)).read_bytes()) for a in assignments()}
    return frozenset(ids[aid] - set().union(*(v for a, v in ids.items() if a != aid)))


def reason_line(message: str | None) -> str:
    """A failure in one line: its first line, and the line that says what is wrong where there is one."""
    if not message:
        return ""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    problem = next((line for line in lines[1:] if line.startswith(("problem:", "likely mistake:"))), None)
    return f"{lines[0]} {problem}" if problem else lines[0]


def guess_assignment(ids: set[str]) -> str | None:
    """The assignment whose graded cells a notebook holds most of (to say which one it looks like)."""
    best, count = None, 0
    for aid in assignments():
        mine = own_ids(aid)
        if len(mine & ids) > count:
            best, count = aid, len(mine & ids)
    return best


def intake_report(items, students, missing) -> str:
    """The intake report, with the students on the roster who submitted nothing."""
    text = intake.report_text(items, students)
    if missing:
        text += f"\n  on the roster, no submission ({len(missing)}):\n" + "\n".join(
            f"    {m['id']} {m['name']}".rstrip() for m in missing)
    return text


def write_intake(out: Path, items) -> None:
    """Write OUT/intake.csv: one row per input file, with its status, student and reason."""
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "status", "student_id", "reason"])
    for i in items:
        w.writerow([i.rel, i.status, i.student, i.reason])
    atomic_write(out / "intake.csv", buf.getvalue())


def match_roster(roster: list[dict], students: list[Student], keys: dict[str, set[str]]) -> list[dict]:
    """Roster entries that match no student (by the LMS id, the id or the name)."""
    missing = []
    for entry in roster:
        rid, rname = entry["id"].casefold(), entry["name"].casefold()
        if not any(rid and rid in keys[s.id] or rname and rname in keys[s.id] for s in students):
            missing.append(entry)
    return missing


# --------------------------------------------------------------------------
# 3. The nbgrader course


def _nbgrader_cmd(args, course: Path) -> tuple[list[str], dict]:
    """The real nbgrader CLI for this course: the venv's bin/ on PATH (for alembic), the course's config."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               JUPYTER_CONFIG_PATH=str(course))
    return [str(Path(sys.executable).parent / "nbgrader"), *args], env


def nbgrader(args, course: Path, check=True):
    """Run the nbgrader CLI in the course folder; with ``check``, a failure is a RuntimeError."""
    cmd, env = _nbgrader_cmd(args, course)
    proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


HIDDEN_BLOCK = re.compile(r"[ \t]*### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n?", flags=re.S)


def without_hidden_tests(notebook: Path) -> bytes:
    """The instructor's notebook with every hidden-test block removed: what the course folder keeps (so that
    nbgrader's own feedback there cannot show them). The grader reads the hidden checks from solutions/."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["source"] = HIDDEN_BLOCK.sub("", cell_source(cell))
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()


def course_config(course: Path, execute: bool = True) -> str:
    """A private nbgrader course's configuration: the course's own (autograder/nbgrader_config.py) with its
    folders moved into ``course``. ``execute=False`` (what `make grade` uses): autograde executes nothing,
    it only restores locked and test cells and records the cells (the grader's verdicts replace the scores)."""
    config = ("c = get_config()\n"
              f"load_subconfig({str(REPO / 'autograder' / 'nbgrader_config.py')!r})\n"
              f"c.CourseDirectory.root = {str(course)!r}\n"
              "c.CourseDirectory.source_directory = 'source'\n"
              "c.CourseDirectory.release_directory = 'release'\n"
              "c.CourseDirectory.submitted_directory = 'submitted'\n"
              "c.CourseDirectory.autograded_directory = 'autograded'\n"
              "c.CourseDirectory.feedback_directory = 'nbgrader_feedback'\n"
              f"c.CourseDirectory.db_url = {'sqlite:///' + str(course / 'gradebook.db')!r}\n")
    if not execute:
        config += ("# Nothing is executed by nbgrader here: student code runs only in the sandbox.\n"
                   "c.Autograde.autograde_preprocessors = ['nbgrader.preprocessors.SaveAutoGrades',\n"
                   "    'nbgrader.preprocessors.CheckCellMetadata']\n")
    return config


def setup_course(aid: str, out: Path) -> Path:
    """The offering's private nbgrader course (hidden tests stripped): set up once, again only on a change."""
    course = out / "course"
    src = solution_notebook(aid)
    if not src.exists():
        raise SystemExit(f"error: no assignment {aid!r} (expected {src})")
    (course / "source" / aid).mkdir(parents=True, exist_ok=True)
    source = course / "source" / aid / f"{aid}.ipynb"
    stripped = without_hidden_tests(src)
    config = course_config(course, execute=False)
    release = course / "release" / aid / f"{aid}.ipynb"
    if (source.exists() and source.read_bytes() == stripped and release.exists()
            and (course / "gradebook.db").exists() and (course / "nbgrader_config.py").read_text() == config):
        return course  # this offering's course is set up already: nothing to regenerate
    source.write_bytes(stripped)
    atomic_write(course / "nbgrader_config.py", config)
    nbgrader(["generate_assignment", aid, "--force", "--log-level=WARN"], course)
    return course


def read_regular(path: Path) -> bytes:
    """A file's bytes, refusing a symbolic link (O_NOFOLLOW) or anything that is not a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            return f.read()
    finally:
        if fd >= 0:
            os.close(fd)


def validate(student: Student, raw_bytes: bytes) -> None:
    """Can this be graded at all (JSON, nbformat 4)? The full schema check is :func:`schema_note`, in the pool."""
    try:
        raw = json.loads(raw_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        student.problem = f"the notebook is not valid JSON ({type(e).__name__}: {str(e)[:120]})"
        return
    if not isinstance(raw, dict) or raw.get("nbformat") != 4:
        student.problem = f"the notebook is not in nbformat version 4 (found {raw.get('nbformat') if isinstance(raw, dict) else type(raw).__name__})"
        return


def schema_note(raw_bytes: bytes) -> str | None:
    """A note when the notebook does not fully validate against nbformat's schema (it is graded anyway)."""
    import nbformat

    try:
        nbformat.validate(nbformat.from_dict(json.loads(raw_bytes.decode("utf-8"))))
    except Exception as e:  # noqa: BLE001
        return f"the notebook does not fully validate ({str(e).splitlines()[0][:120]}); graded anyway"
    return None


class NbgraderRun:
    """nbgrader's part of a run, in the background while the grading goes on, one step after another: set up
    the course (once per offering; started first of all), keep the manual grades given in formgrader, and
    autograde (no execution) the submissions that changed — one call for a whole class, one per student
    otherwise, so the others' rows are not touched."""

    def __init__(self, aid: str, out: Path):
        self.aid, self.out, self.course, self.manual = aid, out, out / "course", {}
        self._steps = cf.ThreadPoolExecutor(max_workers=1)
        self._done = [self._steps.submit(setup_course, aid, out)]

    def autograde(self, ids: list[str], everyone: bool) -> None:
        """Queue nbgrader's autograde after reading the manual grades: one call for the class, else one per student."""
        def run():
            if not ids:
                return  # nothing to autograde: the gradebook's manual grades stay where they are
            self.manual = manual_grades(self.course, self.aid)  # before autograde can touch them
            calls = [[]] if everyone else [[f"--student={sid}"] for sid in ids]
            for extra in calls:
                nbgrader(["autograde", self.aid, "--force", "--log-level=ERROR", *extra], self.course, check=False)
        self._done.append(self._steps.submit(run))

    def wait(self):
        """Wait for every queued nbgrader step (re-raising what went wrong there), then stop the thread."""
        for step in self._done:
            step.result()  # re-raises what went wrong there
        self._steps.shutdown()


# --------------------------------------------------------------------------
# 4-5. Policy, sandboxed run, verdicts (one student)


def read_release(aid: str) -> dict:
    """The student notebook as released (``notebooks/``; a test keeps it equal to what nbgrader generates)."""
    return json.loads(paths.release_notebook(aid).read_text(encoding="utf-8"))


def runnable_cells(raw: bytes, release: dict) -> list[list]:
    """The cells a worker runs, normalised against the release as nbgrader's autograde does: the course's own
    cells (setup, install) restored from the release, missing ones put back first; a learner's answer cell run
    as code even if its type was changed; test cells left out (the grader decides, not the notebook); any other
    code cell of the learner's kept in order. (nbgrader's own autograde runs alongside, for the gradebook.)"""
    course = {}
    for cell in release.get("cells", []):
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        if meta.get("grade_id"):
            course[meta["grade_id"]] = (cell, meta)
    nb = json.loads(raw.decode("utf-8"))
    cells, seen = [], set()
    for i, cell in enumerate(nb.get("cells", []) if isinstance(nb, dict) else []):
        if not isinstance(cell, dict):
            continue
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if gid in course:
            if gid in seen:
                continue  # a copy of a course cell
            seen.add(gid)
            rcell, rmeta = course[gid]
            if rcell.get("cell_type") != "code" or rmeta.get("grade"):
                continue
            cells.append([i, cell_source(cell) if rmeta.get("solution") else cell_source(rcell)])
        elif cell.get("cell_type") == "code" and not (isinstance(meta, dict) and meta.get("grade")):
            cells.append([i, cell_source(cell)])
    missing = [[-1 - k, cell_source(rcell)] for k, (gid, (rcell, rmeta)) in enumerate(course.items())
               if gid not in seen and rcell.get("cell_type") == "code" and not rmeta.get("solution")
               and not rmeta.get("grade")]
    return missing + cells


def solution_code(raw: bytes, release: dict) -> dict[str, str]:
    """The learner's code in each of the release's solution cells (grade_id -> source), for the report's
    similarity: a pair is compared cell by cell, the release's own stub subtracted."""
    wanted = {((c.get("metadata") or {}).get("nbgrader") or {}).get("grade_id") for c in release.get("cells", [])
              if ((c.get("metadata") or {}).get("nbgrader") or {}).get("solution")} - {None}
    code: dict[str, str] = {}
    nb = json.loads(raw.decode("utf-8"))
    for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
        meta = ((cell.get("metadata") or {}).get("nbgrader") or {}) if isinstance(cell, dict) else {}
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if gid in wanted and gid not in code:
            code[gid] = cell_source(cell)[:100_000]
    return code


def course_cells(release: dict) -> set[str]:
    """The released notebook's own code cells (setup, install): exempt from the policy by their source."""
    return {cell_source(c) for c in release.get("cells", [])
            if c.get("cell_type") == "code" and not ((c.get("metadata") or {}).get("nbgrader") or {}).get("solution")}


def policy_zeroes(cells, parts: list[GradedPart], exempt: set[str]) -> tuple[dict, list]:
    """The parts the static policy scores 0 (part -> reason), and every finding's description."""
    from .. import _policy as policy

    findings = policy.review_cells([(i, src) for i, src in cells], exempt)
    if not findings:
        return {}, []
    symbols = {f"{p.grade_id}#{k}": call.symbol for p in parts for k, call in enumerate(p.calls)}
    hit = policy.affected(findings, symbols, [(i, src) for i, src in cells])
    zeroed = {}
    for key, found in hit.items():
        if found:
            gid = key.split("#")[0]
            zeroed[gid] = ("flagged for review (needs a manual grade): the code may not be checked automatically — "
                           + "; ".join(f.describe() for f in found[:3]))
    return zeroed, [f.describe() for f in findings]


def offering_secret(state: Path) -> bytes:
    """This course offering's secret (hidden cases are drawn from it): made once, kept in the grader's state."""
    key = state / "offering.key"
    if not key.exists():
        import secrets

        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return bytes.fromhex(read_regular(key).decode().strip())


def grade_notebook(raw: bytes, release: dict, parts: list[GradedPart], scratch: Path, uid: int,
                   limits: sandbox.Limits, secret: bytes, unsafe: bool) -> dict:
    """One notebook through the pipeline every front end shares (``make grade``, Gradescope): the cells normalised
    against the release, the static policy, the worker (started first: torch loads while the policy reviews the
    cells), the verdicts. Returns results, cell_errors, seconds, observed (per part), zeroed (part -> the policy's
    reason) and findings."""
    from . import grader
    from .spec import check_module

    modules = sorted({check_module(call.check) for p in parts for call in p.calls})
    sub = grader.Submission(runnable_cells(raw, release), scratch, uid, limits, unsafe, modules)
    session = grader.Session(sub, time.monotonic() + limits.wall_seconds)
    session.prespawn()
    zeroed, findings = policy_zeroes(sub.cells, parts, course_cells(release))
    part_seconds = limits.part_seconds or max(10, limits.wall_seconds // max(1, sum(len(p.calls) for p in parts)))
    observed: dict = {}
    results, cell_errors, seconds = grader.grade_submission(sub, parts, secret, zeroed, part_seconds, session,
                                                            observed)
    return {"results": results, "cell_errors": cell_errors, "seconds": seconds, "observed": observed,
            "zeroed": zeroed, "findings": findings}


def run_student(student: Student, raw: bytes, parts: list[GradedPart], out: Path, limits: sandbox.Limits,
                secret: bytes, release: dict, unsafe: bool) -> dict:
    """Grade one student (:func:`grade_notebook`). The result is stamped in the grader's state (never in the
    student's scratch folder) as soon as it is known."""
    student.code = solution_code(raw, release)
    note = schema_note(raw)
    if note:
        student.notes.append(note)
    g = grade_notebook(raw, release, parts, out / "work" / student.id, sandbox.uid_for(student.id), limits, secret,
                       unsafe)
    student.observed = g["observed"]
    student.seconds = {k: round(v, 3) for k, v in g["seconds"].items()}
    student.parts = {k: (float(v[0]), v[1]) for k, v in g["results"].items()}
    student.manual = sorted(g["zeroed"])
    if g["zeroed"]:
        student.notes.append("flagged for review: " + "; ".join(g["findings"][:3]))
    for e in g["cell_errors"][:5]:
        student.notes.append(f"cell {e.get('cell')} raised {e.get('type')}: {str(e.get('message'))[:100]}")
    return {"findings": g["findings"]}


# --------------------------------------------------------------------------
# The grader's state: one stamp per student, the source of every record


def spec_digest(parts: list[GradedPart], secret: bytes) -> str:
    """A digest of the graded parts and the offering's secret: a stamp made under others is regraded."""
    return hashlib.sha256(repr([(p.grade_id, p.points, p.calls) for p in parts]).encode() + secret).hexdigest()


def stamp_path(out: Path, sid: str) -> Path:
    """Where a student's stamp lives in the grader's state."""
    return out / "state" / "stamps" / f"{sid}.json"


def save_stamp(out: Path, s: Student, source_sha: str, spec: str) -> None:
    """Stamp a student's result in the grader's state, with the digests of its source and of the spec."""
    s.graded_with = s.graded_with or course_version()
    data = {k: v for k, v in asdict(s).items() if k != "source"}
    data.update(source_sha=source_sha, spec=spec)
    path = stamp_path(out, s.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, ensure_ascii=False))


def load_stamp(out: Path, sid: str) -> dict | None:
    """A student's stamp, or None if it is missing or unreadable."""
    try:
        return json.loads(read_regular(stamp_path(out, sid)).decode("utf-8"))
    except (OSError, ValueError):
        return None


def all_stamps(out: Path) -> list[Student]:
    """Every student stamped in this offering, rebuilt from the grader's state."""
    students = []
    for path in sorted((out / "state" / "stamps").glob("*.json")):
        data = load_stamp(out, path.stem)
        if data is None:
            continue
        s = Student(data["id"], data.get("name", ""), data.get("lms_id", ""), bool(data.get("late")), None,
                    data.get("problem"), list(data.get("notes", [])),
                    {k: (float(v[0]), v[1]) for k, v in data.get("parts", {}).items()}, list(data.get("manual", [])),
                    dict(data.get("seconds", {})), str(data.get("submitted_as", "")), str(data.get("layout", "")),
                    str(data.get("graded_with", "")), dict(data.get("observed") or {}), dict(data.get("code") or {}))
        students.append(s)
    return students


# --------------------------------------------------------------------------
# 6. Records, rebuilt from every stamp: gradebook, CSV, feedback


def manual_grades(course: Path, aid: str) -> dict:
    """(student, part) -> the manual score an instructor gave in formgrader."""
    from nbgrader.api import Gradebook

    found = {}
    if not (course / "gradebook.db").exists():
        return found
    with Gradebook("sqlite:///" + str(course / "gradebook.db")) as gb:
        try:
            for sub in gb.assignment_submissions(aid):
                for g in gb.find_submission_notebook(aid, aid, sub.student_id).grades:
                    if g.manual_score is not None:
                        found[(sub.student_id, g.name)] = g.manual_score
        except Exception:  # noqa: BLE001 - no such assignment yet
            pass
    return found


def _gradebook_fingerprint(course: Path) -> list:
    db = course / "gradebook.db"
    st = db.stat() if db.exists() else None
    return [st.st_mtime_ns, st.st_size] if st else []


def publish(students: list[Student], aid: str, parts: list[GradedPart], course: Path, out: Path,
            manual: dict, missing: list[dict] = (), changed: bool = True,
            similarity_threshold: float | None = None) -> dict:
    """Write every stamped student's grades into the gradebook (keeping manual grades), then grades.csv and the
    feedback pages from it. Returns (student, part) -> the score recorded (manual where given).

    When nothing was graded (``changed`` false), the gradebook is the one this function last wrote (the same
    file, untouched since: no manual grade given in between) and the names are the same, the gradebook is not
    opened again (nbgrader takes seconds to import): its scores come from the grader's state."""
    cache_path = out / "state" / "published.json"
    names = {s.id: [s.name, s.lms_id] for s in students}
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else None
    if (not changed and cache and cache.get("gradebook") == _gradebook_fingerprint(course)
            and cache.get("names") == names):
        scores = {tuple(k.split("\t")): float(v) for k, v in cache["manual"].items()}
    else:
        scores = _write_gradebook(students, aid, course, manual)
        atomic_write(cache_path, json.dumps({"gradebook": _gradebook_fingerprint(course), "names": names,
                                             "manual": {"\t".join(k): v for k, v in scores.items()}}))
    write_reports(students, aid, parts, out, scores, missing)
    write_feedback_upload(students, aid, out)
    write_class_report(students, aid, parts, out, scores, missing, similarity_threshold)
    return scores


def write_class_report(students: list[Student], aid: str, parts: list[GradedPart], out: Path, scores: dict,
                       missing=(), threshold: float | None = None) -> None:
    """OUT/report.html and report.json (:mod:`autograder.grading.report`), with the pairs of near-duplicate
    solution cells (each cell compared with the same cell of the others, the released stub subtracted)."""
    from . import report, similarity

    stubs = {((c.get("metadata") or {}).get("nbgrader") or {}).get("grade_id"): cell_source(c)
             for c in read_release(aid).get("cells", [])}
    pairs = []
    for gid in sorted({g for s in students for g in s.code}):
        sources = {s.id: s.code[gid] for s in students if s.code.get(gid)}
        for m in similarity.similar_pairs(sources, stubs.get(gid, ""),
                                          **({} if threshold is None else {"threshold": threshold})):
            pairs.append((gid, m))
    pairs.sort(key=lambda gm: (-gm[1].score, gm[0], gm[1].a, gm[1].b))
    report.write(out, report.build(students, aid, parts, scores, pairs, missing))


def write_feedback_upload(students: list[Student], aid: str, out: Path) -> None:
    """OUT/feedback-upload/<platform>.zip: every feedback page named so that the LMS attaches it to its student
    (:func:`autograder.grading.lms.feedback_upload_name`); a platform without such a convention gets none."""
    import zipfile

    from .lms import feedback_upload_name

    bundles: dict[str, list] = {}
    for s in students:
        name = feedback_upload_name(s.layout, s.submitted_as, aid)
        page = out / "feedback" / s.id / f"{aid}.html"
        if name and page.exists():
            bundles.setdefault(s.layout, []).append((name, page))
    folder = out / "feedback-upload"
    if bundles:
        folder.mkdir(exist_ok=True)
    for layout, pages in bundles.items():
        tmp = folder / f".{layout.lower()}.zip.tmp"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name, page in sorted(pages):
                z.write(page, name)
        os.replace(tmp, folder / f"{layout.lower()}.zip")


def _write_gradebook(students: list[Student], aid: str, course: Path, manual: dict) -> dict:
    """Every stamped student's automatic scores into nbgrader's gradebook, manual grades kept; the manual
    scores it holds, (student, part) -> score."""
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook("sqlite:///" + str(course / "gradebook.db")) as gb:
        for s in students:
            gb.update_or_create_student(s.id, first_name=s.name or None, lms_user_id=s.lms_id or None)
            try:
                sub = gb.find_submission_notebook(aid, aid, s.id)
            except Exception:  # noqa: BLE001 - never reached nbgrader (malformed): no gradebook row
                continue
            for g in sub.grades:
                g.auto_score = s.parts.get(g.name, (0.0, None))[0]  # a part not graded (a broken notebook) is 0
                # formgrader lists the parts the policy flagged as needing a manual grade
                g.needs_manual_grade = g.name in s.manual
                if (s.id, g.name) in manual:
                    g.manual_score = manual[(s.id, g.name)]
                if g.manual_score is not None:
                    scores[(s.id, g.name)] = float(g.manual_score)
        gb.db.commit()
    return scores


def write_reports(students: list[Student], aid: str, parts: list[GradedPart], out: Path, scores: dict,
                  missing: list[dict] = ()) -> None:
    """grades.csv (one row per student, and one per roster entry that submitted nothing) and the feedback pages,
    from the stamps and the manual scores."""
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    total = sum(p.points for p in parts)
    w.writerow(["student_id", "name", "lms_id", "late", "assignment", "score", "max_score",
                *[p.grade_id for p in parts], *[f"{p.grade_id} reason" for p in parts], "notes", "course_version"])
    for s in sorted(students, key=lambda s: s.id):
        pts = {p.grade_id: scores.get((s.id, p.grade_id), s.parts.get(p.grade_id, (0.0, None))[0]) for p in parts}
        reasons = []
        for p in parts:
            msg = s.parts.get(p.grade_id, (0.0, s.problem or "not graded"))[1]
            if (s.id, p.grade_id) in scores:
                msg = f"manual grade {scores[(s.id, p.grade_id)]:g}" + (f" (automatic: {reason_line(msg)})" if msg else "")
            reasons.append(reason_line(msg))
        notes = "; ".join(([s.problem] if s.problem else []) + s.notes)
        w.writerow([s.id, s.name, s.lms_id, "late" if s.late else "", aid, f"{sum(pts.values()):g}", f"{total:g}",
                    *[f"{pts[p.grade_id]:g}" for p in parts], *reasons, notes, s.graded_with])
    for m in missing:
        w.writerow([m["id"], m["name"], "", "", aid, "0", f"{total:g}", *["0" for _ in parts], *["" for _ in parts],
                    "no submission", ""])
    atomic_write(out / "grades.csv", buf.getvalue())
    for s in students:
        d = out / "feedback" / s.id
        d.mkdir(parents=True, exist_ok=True)
        atomic_write(d / f"{aid}.html", feedback_html(s, aid, parts, scores))


def speed_summary(seen: dict) -> str | None:
    """A passed timed part's line of feedback: its speed ratio and, where its check sets an optional challenge
    (worth no points), whether the ratio reached it. None for a part that was not timed."""
    if "ratio" not in seen:
        return None
    line = f"Your kernel took {seen['ratio']:.2f}× PyTorch's time (the median over runs timed in pairs)."
    if seen.get("challenge"):
        line += (f" The optional challenge (worth no points) asks for {seen['challenge']:g}× or less: "
                 + ("reached." if seen["ratio"] <= seen["challenge"] else "not reached yet."))
    return line


def feedback_html(s: Student, aid: str, parts: list[GradedPart], manual: dict | None = None) -> str:
    """A student's feedback page: each part's points and result (manual grades where given) and the notes."""
    manual = manual or {}
    total = sum(p.points for p in parts)
    rows, score = [], 0.0
    for p in parts:
        pts, msg = s.parts.get(p.grade_id, (0.0, s.problem or "not graded"))
        if (s.id, p.grade_id) in manual:
            pts = manual[(s.id, p.grade_id)]
            msg = f"graded by hand: {pts:g} points" + (f"\n(automatic grading said: {msg})" if msg else "")
        score += pts
        status = "passed" if msg is None else "failed" if not msg.startswith("graded by hand") else "graded by hand"
        shown = msg if msg else speed_summary((s.observed or {}).get(p.grade_id, {}))
        detail = f"<pre>{html.escape(shown)}</pre>" if shown else ""
        rows.append(f"<tr class='{status.split()[0]}'><td>{html.escape(p.grade_id)}</td><td>{pts:g} / {p.points:g}</td>"
                    f"<td>{status}{detail}</td></tr>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in ([s.problem] if s.problem else []) + s.notes)
    who = f"{s.name} ({s.id})" if s.name and s.name != s.id else s.id
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(aid)}: {html.escape(who)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}} td,th{{padding:.4em;border-bottom:1px solid #ddd;
vertical-align:top}} .passed td:nth-child(3){{color:#2a7}} .failed td:nth-child(3){{color:#c33}}
pre{{white-space:pre-wrap;color:#333;background:#f6f6f6;padding:.5em}}</style></head><body>
<h1>{html.escape(aid)} — feedback for {html.escape(who)}</h1>
<p><b>Score: {score:g} / {total:g}</b>{' (late)' if s.late else ''}</p>
{f'<ul>{notes}</ul>' if notes else ''}
<table><tr><th>part</th><th>points</th><th>result</th></tr>{''.join(rows)}</table>
<p>Each part was graded by running your functions on inputs chosen by the grader and comparing the results
with PyTorch in a separate process.</p>
<p class="version">Graded with version {html.escape(s.graded_with or "unknown")} of the course's checks.</p></body></html>"""


# --------------------------------------------------------------------------


def main(argv=None) -> int:
    """``make grade``: check the inputs, then grade the class (see the module's docstring); the exit status."""
    parser = argparse.ArgumentParser(prog="make grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", help="assignment id, e.g. ch01_cnn_size")
    parser.add_argument("submissions", type=Path, help="folder or zip of submissions (an LMS export, or folders)")
    parser.add_argument("out", type=Path, help="output folder (grades.csv, feedback/, course/, state/)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once")
    parser.add_argument("--force", action="store_true", help="regrade submissions that did not change")
    parser.add_argument("--continue", dest="go_on", action="store_true",
                        help="grade even though the intake skipped files (they are listed in OUT/intake.txt)")
    parser.add_argument("--similarity", type=float, default=None, metavar="SHARE",
                        help="list pairs of students sharing at least this share (0-1) of their solution code's "
                             "fingerprints in OUT/report.html (default: the similarity module's); never changes a grade")
    parser.add_argument("--roster", type=Path, help="CSV of the class (ids and names): lists who submitted nothing")
    parser.add_argument("--canvas", type=Path, help="a Canvas gradebook export (CSV): writes OUT/canvas-import.csv with "
                        "this assignment's column filled in, ready to import")
    parser.add_argument("--canvas-column", help="the Canvas column's title, if it does not contain the assignment's id")
    parser.add_argument("--due", help="due date and time (e.g. 2026-11-20T23:59): later submissions are marked late")
    parser.add_argument("--timeout", type=int, default=300, help="seconds one submission may run (default 300)")
    parser.add_argument("--memory", type=int, default=3000, help="MB of address space per submission")
    parser.add_argument("--cell-timeout", type=int, default=60, help="seconds one notebook cell may run")
    parser.add_argument("--part-timeout", type=int, default=0, help="seconds one graded part may run "
                        "(default: the submission's limit shared among its parts)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade even though bubblewrap does not work here: student code then runs with resource "
                             "limits only and can read and write whatever this user can")
    args = parser.parse_args(argv)
    aid = args.assignment
    # 1. inputs, before anything slow
    if aid not in assignments():
        print(f"error: there is no assignment {aid!r}. The assignments are: {', '.join(assignments())}",
              file=sys.stderr)
        return 2
    submissions, out = args.submissions.expanduser().resolve(), args.out.expanduser().resolve()
    if not submissions.exists():
        print(f"error: SUBMISSIONS {args.submissions} does not exist (resolved to {submissions})", file=sys.stderr)
        return 2
    why = out_problem(out)
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    if args.roster and not args.roster.is_file():
        print(f"error: --roster {args.roster} is not a file", file=sys.stderr)
        return 2
    if args.canvas:
        problem = canvas_problem(args.canvas)
        if problem:
            print(f"error: --canvas {args.canvas}: {problem}", file=sys.stderr)
            return 2
    due = parse_due(args.due) if args.due else None
    if not sandbox.available():
        if not args.unsafe_no_sandbox:
            print(f"error: {sandbox.INSTALL_HINT}", file=sys.stderr)
            return 2
        print("WARNING: --unsafe-no-sandbox: student code runs WITHOUT the bubblewrap sandbox (resource limits "
              "only). Use this only for submissions you trust.", file=sys.stderr)
    unsafe = args.unsafe_no_sandbox and not sandbox.available()
    out.mkdir(parents=True, exist_ok=True)
    (out / "state").mkdir(exist_ok=True, mode=0o700)
    nb_run = NbgraderRun(aid, out)  # nbgrader's course set-up starts now, alongside everything below
    try:
        return _grade(args, aid, submissions, out, due, unsafe, nb_run)
    finally:
        sandbox.stop_zygote()


def take_students(found, items, aid: str) -> tuple[list[Student], dict, dict]:
    """The students the intake found, with their notebooks' bytes and the keys a roster may name them by; a
    notebook that does not look like this assignment is marked skipped in ``items`` instead."""
    wanted = own_ids(aid)  # the nbgrader cells that make a notebook this assignment's
    students, raw, keys = [], {}, {}
    for f in found:
        data = read_regular(f.chosen.path)
        s = Student(f.id, f.name, f.lms_id, f.late, f.chosen.path, submitted_as=f.chosen.rel, layout=f.chosen.layout)
        validate(s, data)
        if s.problem is None and not (graded_ids(data) & wanted):
            other = guess_assignment(graded_ids(data))
            item = next(i for i in items if i.rel == f.chosen.rel)
            item.status = "skipped"
            item.reason = (f"does not look like {aid}: none of its graded cells"
                           + (f" (it looks like {other})" if other else ""))
            continue
        if f.why_chosen:
            s.notes.append(f"graded {f.chosen.rel}: {f.why_chosen}")
        students.append(s)
        raw[s.id] = data
        keys[s.id] = {x.casefold() for x in (f.id, f.name, f.lms_id, f.chosen.key.split(":")[-1]) if x}
    return students, raw, keys


def changed_students(students, raw: dict, out: Path, spec: str, force: bool) -> list[tuple[Student, str]]:
    """(student, notebook digest) of those whose notebook or the offering's checks changed since their stamp;
    the others' stamps stand (their names and late marks refreshed)."""
    todo = []
    for s in students:
        sha = hashlib.sha256(raw[s.id]).hexdigest()
        old = load_stamp(out, s.id)
        if not force and old and old.get("source_sha") == sha and old.get("spec") == spec:
            old.update(name=s.name, lms_id=s.lms_id, late=s.late, submitted_as=s.submitted_as, layout=s.layout)
            atomic_write(stamp_path(out, s.id), json.dumps(old, ensure_ascii=False))
            continue
        todo.append((s, sha))
    return todo


def submit_to_course(todo, raw: dict, aid: str, out: Path, spec: str) -> list[tuple[Student, str]]:
    """Put each changed, readable notebook in the nbgrader course's submitted/ (a broken one is stamped 0 with
    its reason at once); returns the ones to run."""
    course, runnable = out / "course", []
    for s, sha in todo:
        if s.problem is None:
            dst = course / "submitted" / s.id / aid
            shutil.rmtree(dst, ignore_errors=True)
            dst.mkdir(parents=True)
            (dst / f"{aid}.ipynb").write_bytes(raw[s.id])
            shutil.rmtree(course / "autograded" / s.id, ignore_errors=True)
            runnable.append((s, sha))
        else:
            save_stamp(out, s, sha, spec)  # scores 0, with the reason
    return runnable


def grade_all(runnable, raw: dict, parts, out: Path, limits, secret: bytes, spec: str, aid: str, jobs: int,
              unsafe: bool) -> None:
    """Grade the runnable students, ``jobs`` at a time; each result is stamped as soon as it is known (an
    interrupted run loses nothing)."""
    from tqdm import tqdm

    release = read_release(aid)
    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_student, s, raw[s.id], parts, out, limits, secret, release, unsafe): (s, sha)
                   for s, sha in runnable}
        for fut in tqdm(cf.as_completed(futures), total=len(futures), desc=f"grading {aid}", unit="submission",
                        file=sys.stderr):
            s, sha = futures[fut]
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - one broken run never stops the class
                s.problem = f"failed to grade: {type(e).__name__}: {e}"
            save_stamp(out, s, sha, spec)


def print_summary(everyone, scores: dict, parts, graded_now: set, missing, out: Path) -> None:
    """The console's table: every student's score, and the first line of each failure reason."""
    total = sum(p.points for p in parts)
    print(f"\n{'student':<24} {'score':>8}")
    for s in sorted(everyone, key=lambda s: s.id):
        pts = sum(scores.get((s.id, p.grade_id), s.parts.get(p.grade_id, (0.0, None))[0]) for p in parts)
        mark = "" if s.id in graded_now else "  (unchanged, kept)"
        print(f"{s.id:<24} {pts:>5g}/{total:g}{'  late' if s.late else ''}{mark}")
        if s.problem:
            print(f"    {s.problem}")
        for p in parts:
            msg = s.parts.get(p.grade_id, (0.0, None))[1]
            if msg and (s.id, p.grade_id) not in scores:
                print(f"    {p.grade_id}: {reason_line(msg)}")
    zero = [s for s in everyone if s.score == 0]
    print(f"\n{len(graded_now)} graded in this run, {len(everyone) - len(graded_now)} kept from earlier runs; "
          f"{len(zero)} scored zero{f'; {len(missing)} on the roster submitted nothing' if missing else ''}. "
          f"Grades: {out / 'grades.csv'}; feedback: {out / 'feedback'}/; class report: {out / 'report.html'}; "
          f"intake: {out / 'intake.txt'}")


def _grade(args, aid: str, submissions: Path, out: Path, due, unsafe: bool, nb_run: NbgraderRun) -> int:
    """Steps 2 to 6 of the pipeline (the module's docstring), once the inputs are known to be sound."""
    from .spec import graded_parts, require_registered

    # 2. intake
    root, items = expand(submissions, out)
    found, scanned = intake.scan(root, aid, due=due)
    items += scanned
    parts = graded_parts(solution_notebook(aid), resolve=False)  # the checks are looked up only if needed
    limits = sandbox.Limits(memory_mb=args.memory, wall_seconds=args.timeout, cell_seconds=args.cell_timeout,
                            part_seconds=args.part_timeout)
    students, raw, keys = take_students(found, items, aid)
    missing = match_roster(intake.read_roster(args.roster), students, keys) if args.roster else []
    report = intake_report(items, students, missing)
    print(report)
    atomic_write(out / "intake.txt", report + "\n")
    write_intake(out, items)
    skipped = [i for i in items if i.status == "skipped"]
    if skipped and not args.go_on:
        print(f"\nerror: {len(skipped)} file(s) were not taken (listed above, and in {out / 'intake.txt'}). Fix the "
              "export, or grade the rest with --continue (GRADE_ARGS=--continue).", file=sys.stderr)
        return 3
    if not students:
        print(f"error: no submissions of {aid} found in {args.submissions}", file=sys.stderr)
        return 2
    # 3. which students changed since the last run of this offering; nbgrader's autograde runs alongside
    secret = offering_secret(out / "state")
    spec = spec_digest(parts, secret)
    todo = changed_students(students, raw, out, spec, args.force)
    if any(s.problem is None for s, _ in todo):
        # torch and the chapters load once, in the zygote's sandbox, while the grader gets ready (an unchanged
        # re-run loads neither)
        if not unsafe:
            from ..registry import chapter_modules

            sandbox.start_zygote(chapter_modules(), limits)
        require_registered(parts)  # imports the chapters
    runnable = submit_to_course(todo, raw, aid, out, spec)
    course = out / "course"
    submitted = [p.name for p in (course / "submitted").iterdir()] if (course / "submitted").exists() else []
    nb_run.autograde([s.id for s, _ in runnable], len(runnable) == len(submitted))
    # 4-5. grade what changed
    if runnable:
        from . import grader

        grade_all(runnable, raw, parts, out, limits, secret, spec, aid, args.jobs, unsafe)
        grader.BASELINES.close()
    nb_run.wait()
    for s, sha in runnable:
        if not (course / "autograded" / s.id / aid / f"{aid}.ipynb").exists():
            s.notes.append("nbgrader could not register this notebook in the gradebook (it is graded all the same)")
            save_stamp(out, s, sha, spec)
    # 6. merge: every stamp of this offering, this run's and earlier ones'
    everyone = all_stamps(out)
    scores = publish(everyone, aid, parts, course, out, nb_run.manual, missing, changed=bool(runnable),
                     similarity_threshold=args.similarity)
    print_summary(everyone, scores, parts, {s.id for s, _ in todo}, missing, out)
    if args.canvas:
        write_canvas_import(args.canvas, args.canvas_column, aid, parts, out)
    return 0


def canvas_problem(export: Path) -> str | None:
    """Why a --canvas file cannot be a Canvas gradebook export (checked before any grading), or None."""
    if not export.is_file():
        return "no such file"
    try:
        with open(export, encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError) as e:
        return f"unreadable ({e})"
    return None if "Student" in header and "ID" in header else "not a Canvas gradebook export (no Student and ID columns)"


def write_canvas_import(export: Path, column: str | None, aid: str, parts, out: Path) -> None:
    """OUT/canvas-import.csv and OUT/canvas-unmatched.txt, from grades.csv (see :mod:`autograder.grading.lms`)."""
    from .lms import canvas_import, unmatched_text

    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        grades = list(csv.DictReader(fh))
    result = canvas_import(export, aid, grades, sum(p.points for p in parts), column)
    atomic_write(out / "canvas-import.csv", result.text)
    report = unmatched_text(result)
    atomic_write(out / "canvas-unmatched.txt", report + "\n")
    print(f"\n{report}\nCanvas import: {out / 'canvas-import.csv'} (Grades → Import in Canvas)")

if __name__ == "__main__":
    sys.exit(main())
