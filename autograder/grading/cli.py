"""``make grade``: grade a whole class, sandboxed, in parallel, with feedback and a grades CSV.

    python -m autograder.grading ASSIGNMENT SUBMISSIONS OUT [--jobs N] [--force] [--unsafe-no-sandbox]

SUBMISSIONS is a folder ``<student_id>/<any name>.ipynb``, a folder of LMS downloads named
``<student_id>_<anything>.ipynb``, or a zip of either. Results go to OUT:

    OUT/grades.csv                       student_id, assignment, score, max_score, one column per part, notes
    OUT/feedback/<student_id>/<aid>.html what passed, what failed and why (no hidden test source)
    OUT/course/                          the nbgrader course: gradebook.db, submitted/, autograded/
    OUT/state/                           the grader's own state: this offering's secret, result stamps
    OUT/work/<student_id>/               the student's scratch folder (the one place its sandbox may write)

The pipeline, in order (each step needs the one before):

1. set up the nbgrader course from solutions/<aid> (generate_assignment: the gradebook knows the parts);
2. collect: validate each notebook (JSON, nbformat 4); a broken one scores 0 with the reason;
3. nbgrader autograde, *without executing anything*: it restores locked and test cells from the gradebook
   and records the submission;
4. review each notebook's source statically (the policy): parts whose code could undo the sandbox's own
   rule-keeping score 0 and are marked for a manual grade;
5. grade each submission (parallel): its cells run in a sandboxed worker, then the grader sends each part's
   inputs over a pipe and judges the outputs itself (:mod:`autograder.grading.grader`);
6. write the scores into the gradebook, grades.csv and the feedback pages; print a summary.

Nothing the grader reads afterwards comes from a place the submission could write. Re-running is safe:
a student whose submission did not change keeps its results; ``--force`` regrades.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import grader, policy, sandbox
from .spec import GradedPart, check_module, graded_parts

REPO = Path(__file__).resolve().parents[2]
STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


@dataclass
class Student:
    id: str
    source: Path | None = None
    problem: str | None = None           # why it could not be graded at all (scores 0)
    notes: list[str] = field(default_factory=list)
    parts: dict = field(default_factory=dict)   # grade_id -> (points, message or None)
    manual: list = field(default_factory=list)  # parts the policy flagged: they need a manual grade

    @property
    def score(self) -> float:
        return sum(p for p, _ in self.parts.values())


# --------------------------------------------------------------------------
# 1-2. The course and the submissions


def _nbgrader_cmd(args, course: Path) -> tuple[list[str], dict]:
    """The real nbgrader CLI for this course: the venv's bin/ on PATH (for alembic), the course's config."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               JUPYTER_CONFIG_PATH=str(course))
    return [str(Path(sys.executable).parent / "nbgrader"), *args], env


def nbgrader(args, course: Path, check=True):
    cmd, env = _nbgrader_cmd(args, course)
    proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def setup_course(aid: str, out: Path) -> Path:
    course = out / "course"
    src = REPO / "solutions" / aid / f"{aid}.ipynb"
    if not src.exists():
        raise SystemExit(f"error: no assignment {aid!r} (expected {src})")
    (course / "source" / aid).mkdir(parents=True, exist_ok=True)
    shutil.copy(src, course / "source" / aid / f"{aid}.ipynb")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"load_subconfig({str(REPO / 'autograder' / 'nbgrader_config.py')!r})\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.source_directory = 'source'\n"
        "c.CourseDirectory.release_directory = 'release'\n"
        "c.CourseDirectory.submitted_directory = 'submitted'\n"
        "c.CourseDirectory.autograded_directory = 'autograded'\n"
        "c.CourseDirectory.feedback_directory = 'nbgrader_feedback'\n"
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(course / 'gradebook.db')!r}\n"
        "# Nothing is executed by nbgrader here: student code runs only in the sandbox.\n"
        "# (sanitize_preprocessors still restore locked and test cells; the scores saved here are replaced\n"
        "# by the grader's verdicts.)\n"
        "c.Autograde.autograde_preprocessors = ['nbgrader.preprocessors.SaveAutoGrades',\n"
        "    'nbgrader.preprocessors.CheckCellMetadata']\n"
    )
    nbgrader(["generate_assignment", aid, "--force", "--log-level=WARN"], course)
    return course


def _expand(submissions: Path, out: Path) -> Path:
    if submissions.is_file() and zipfile.is_zipfile(submissions):
        dest = out / "incoming"
        shutil.rmtree(dest, ignore_errors=True)
        with zipfile.ZipFile(submissions) as z:
            for member in z.infolist():
                name = Path(member.filename)
                if member.is_dir() or name.is_absolute() or ".." in name.parts or name.name.startswith("."):
                    continue  # no path tricks out of the folder
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(member))
        return dest
    if not submissions.is_dir():
        raise SystemExit(f"error: {submissions} is neither a folder nor a zip file")
    return submissions


def collect(submissions: Path, out: Path) -> list[Student]:
    """Students and their notebooks: ``<id>/<any>.ipynb`` folders or ``<id>_<anything>.ipynb`` files.
    Symbolic links are never followed (a link is not a submission)."""
    root = _expand(submissions, out)
    found: dict[str, Student] = {}
    paths = []
    for folder, dirs, files in os.walk(root):  # followlinks=False: linked folders are not entered
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints" and not os.path.islink(os.path.join(folder, d)))
        paths += [Path(folder) / f for f in files if f.endswith(".ipynb")]
    for path in sorted(paths):
        rel = path.relative_to(root)
        sid = rel.parts[0] if len(rel.parts) > 1 else path.name.split("_")[0].removesuffix(".ipynb")
        if not STUDENT_RE.match(sid):
            continue
        if path.is_symlink():
            found.setdefault(sid, Student(sid, None, problem="the notebook is a symbolic link, not a file"))
            continue
        if sid in found:
            if found[sid].source is not None:
                found[sid].notes.append(f"several notebooks found; graded {found[sid].source.name}, ignored {path.name}")
            continue
        found[sid] = Student(sid, path)
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()) if root.is_dir() else []:
        if d.name not in found and STUDENT_RE.match(d.name):
            found[d.name] = Student(d.name, None, problem="no notebook (.ipynb) in the submission")
    return [found[k] for k in sorted(found)]


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


def validate(student: Student) -> None:
    import nbformat

    try:
        raw = json.loads(read_regular(student.source).decode("utf-8"))
    except OSError as e:
        student.problem = f"the notebook could not be read ({e})"
        return
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        student.problem = f"the notebook is not valid JSON ({type(e).__name__}: {str(e)[:120]})"
        return
    if not isinstance(raw, dict) or raw.get("nbformat") != 4:
        student.problem = f"the notebook is not in nbformat version 4 (found {raw.get('nbformat') if isinstance(raw, dict) else type(raw).__name__})"
        return
    try:
        nbformat.validate(nbformat.from_dict(raw))
    except Exception as e:  # noqa: BLE001
        student.notes.append(f"the notebook does not fully validate ({str(e).splitlines()[0][:120]}); graded anyway")


# --------------------------------------------------------------------------
# 4. The sandbox run of one student


def wait_for_autograde(path: Path, autograde: subprocess.Popen) -> bool:
    """Wait until nbgrader has written this student's normalised notebook (or has finished without it).

    nbgrader autograde works through the class one student at a time; the sandbox runs start on each
    student as soon as their notebook is ready, instead of after the whole class.
    """
    import time

    while True:
        if path.exists() and time.time() - path.stat().st_mtime > 0.3:
            try:
                json.loads(path.read_text(encoding="utf-8"))
                return True
            except (OSError, ValueError):
                pass  # still being written
        if autograde.poll() is not None:
            return path.exists()
        time.sleep(0.1)


def code_cells(notebook: Path) -> list[list]:
    """The cells a worker runs: every code cell except the test cells (the grader decides, not the notebook)."""
    nb = json.loads(read_regular(notebook).decode("utf-8"))
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if cell.get("cell_type") != "code" or meta.get("grade"):
            continue
        source = cell.get("source", "")
        cells.append([i, "".join(source) if isinstance(source, list) else str(source)])
    return cells


def course_cells(course: Path, aid: str) -> set[str]:
    """The released notebook's own code cells (setup, install): exempt from the policy by their source."""
    nb = json.loads((course / "release" / aid / f"{aid}.ipynb").read_text(encoding="utf-8"))
    return {"".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"]
            if c.get("cell_type") == "code" and not (c.get("metadata", {}).get("nbgrader", {}) or {}).get("solution")}


def policy_zeroes(cells, parts: list[GradedPart], exempt: set[str]) -> tuple[dict, list]:
    """The parts the static policy scores 0 (part -> reason), and every finding's description."""
    findings = policy.review_cells([(i, src) for i, src in cells], exempt)
    if not findings:
        return {}, []
    symbols = {f"{p.grade_id}#{k}": probe.symbol for p in parts for k, probe in enumerate(p.probes)}
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


def run_student(student: Student, aid: str, parts: list[GradedPart], course: Path, out: Path, limits: sandbox.Limits,
                force: bool, secret: bytes, exempt: set[str], unsafe: bool,
                autograde: subprocess.Popen | None = None) -> dict:
    """Grade one student: policy, sandboxed worker, verdicts. The result is stamped in the grader's state (never
    in the student's scratch folder), so an unchanged submission is not run again."""
    autograded = course / "autograded" / student.id / aid / f"{aid}.ipynb"
    if autograde is not None:
        wait_for_autograde(autograded, autograde)
    notebook = autograded if autograded.exists() else course / "submitted" / student.id / aid / f"{aid}.ipynb"
    cells = code_cells(notebook)
    spec = repr([(p.grade_id, p.points, p.probes) for p in parts])
    digest = hashlib.sha256(json.dumps(cells).encode() + spec.encode() + secret).hexdigest()
    stamp = out / "state" / "stamps" / f"{student.id}.json"
    if not force and stamp.exists():
        try:
            saved = json.loads(read_regular(stamp))
            if saved.get("sha256") == digest:
                return saved
        except (OSError, ValueError):
            pass
    zeroed, findings = policy_zeroes(cells, parts, exempt)
    modules = sorted({m for p in parts for probe in p.probes for m in [check_module(probe.check)]})
    sub = grader.Submission(cells, out / "work" / student.id, sandbox.uid_for(student.id), limits, unsafe, modules)
    part_seconds = limits.part_seconds or max(10, limits.wall_seconds // max(1, sum(len(p.probes) for p in parts)))
    results, cell_errors = grader.grade_submission(sub, parts, secret, zeroed, part_seconds)
    result = {"sha256": digest, "parts": {k: list(v) for k, v in results.items()}, "manual": sorted(zeroed),
              "findings": findings, "cell_errors": cell_errors}
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, stamp)
    return result


# --------------------------------------------------------------------------
# 6. Gradebook, CSV, feedback


def record(students: list[Student], aid: str, parts: list[GradedPart], course: Path, out: Path) -> None:
    from nbgrader.api import Gradebook

    with Gradebook("sqlite:///" + str(course / "gradebook.db")) as gb:
        for s in students:
            gb.update_or_create_student(s.id)
            try:
                sub = gb.find_submission_notebook(aid, aid, s.id)
            except Exception:  # noqa: BLE001 - never reached nbgrader (malformed): no gradebook row
                continue
            for g in sub.grades:
                if g.name in s.parts:
                    g.auto_score = s.parts[g.name][0]
                    g.manual_score = None
                    # formgrader lists the parts the policy flagged as needing a manual grade
                    g.needs_manual_grade = g.name in s.manual
            gb.db.commit()
    with open(out / "grades.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "assignment", "score", "max_score", *[p.grade_id for p in parts], "notes"])
        total = sum(p.points for p in parts)
        for s in students:
            notes = "; ".join(([s.problem] if s.problem else []) + s.notes)
            w.writerow([s.id, aid, f"{s.score:g}", f"{total:g}",
                        *[f"{s.parts.get(p.grade_id, (0.0, None))[0]:g}" for p in parts], notes])
    for s in students:
        d = out / "feedback" / s.id
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{aid}.html").write_text(feedback_html(s, aid, parts))


def feedback_html(s: Student, aid: str, parts: list[GradedPart]) -> str:
    total = sum(p.points for p in parts)
    rows = []
    for p in parts:
        pts, msg = s.parts.get(p.grade_id, (0.0, s.problem or "not graded"))
        status = "passed" if msg is None else "failed"
        detail = f"<pre>{html.escape(msg)}</pre>" if msg else ""
        rows.append(f"<tr class='{status}'><td>{html.escape(p.grade_id)}</td><td>{pts:g} / {p.points:g}</td>"
                    f"<td>{status}{detail}</td></tr>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in ([s.problem] if s.problem else []) + s.notes)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(aid)}: {html.escape(s.id)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}} td,th{{padding:.4em;border-bottom:1px solid #ddd;
vertical-align:top}} .passed td:nth-child(3){{color:#2a7}} .failed td:nth-child(3){{color:#c33}}
pre{{white-space:pre-wrap;color:#333;background:#f6f6f6;padding:.5em}}</style></head><body>
<h1>{html.escape(aid)} — feedback for {html.escape(s.id)}</h1>
<p><b>Score: {s.score:g} / {total:g}</b></p>
{f'<ul>{notes}</ul>' if notes else ''}
<table><tr><th>part</th><th>points</th><th>result</th></tr>{''.join(rows)}</table>
<p>Each part was graded by running your functions on inputs chosen by the grader and comparing the results
with PyTorch in a separate process.</p></body></html>"""


# --------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="make grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", help="assignment id, e.g. ch01_cnn_size")
    parser.add_argument("submissions", type=Path, help="folder or zip of submissions")
    parser.add_argument("out", type=Path, help="output folder (grades.csv, feedback/, course/)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once")
    parser.add_argument("--force", action="store_true", help="regrade submissions already graded")
    parser.add_argument("--timeout", type=int, default=300, help="seconds one submission may run (default 300)")
    parser.add_argument("--memory", type=int, default=3000, help="MB of address space per submission")
    parser.add_argument("--cell-timeout", type=int, default=60, help="seconds one notebook cell may run")
    parser.add_argument("--part-timeout", type=int, default=0, help="seconds one graded part may run "
                        "(default: the submission's limit shared among its parts)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade even though bubblewrap does not work here: student code then runs with resource "
                             "limits only and can read and write whatever this user can")
    args = parser.parse_args(argv)
    if not sandbox.available():
        if not args.unsafe_no_sandbox:
            print(f"error: {sandbox.INSTALL_HINT}", file=sys.stderr)
            return 2
        print("WARNING: --unsafe-no-sandbox: student code runs WITHOUT the bubblewrap sandbox (resource limits "
              "only). Use this only for submissions you trust.", file=sys.stderr)
    unsafe = args.unsafe_no_sandbox and not sandbox.available()
    args.out.mkdir(parents=True, exist_ok=True)
    state = args.out / "state"
    state.mkdir(exist_ok=True, mode=0o700)
    aid = args.assignment
    course = setup_course(aid, args.out)
    parts = graded_parts(REPO / "solutions" / aid / f"{aid}.ipynb")
    students = collect(args.submissions, args.out)
    if not students:
        print(f"error: no submissions found in {args.submissions}", file=sys.stderr)
        return 2
    for s in students:
        if s.problem is None:
            validate(s)
        if s.problem is None:
            dst = course / "submitted" / s.id / aid
            shutil.rmtree(dst, ignore_errors=True)
            dst.mkdir(parents=True)
            (dst / f"{aid}.ipynb").write_bytes(read_regular(s.source))
    ok = [s for s in students if s.problem is None]
    # nbgrader autograde (no execution) runs in the background; each student's grading starts when its
    # normalised notebook is written. Stale ones from an earlier run go first.
    for s in ok:
        shutil.rmtree(course / "autograded" / s.id, ignore_errors=True)
    cmd, env = _nbgrader_cmd(["autograde", aid, "--force", "--log-level=ERROR"], course)
    autograde = subprocess.Popen(cmd, cwd=course, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    limits = sandbox.Limits(memory_mb=args.memory, wall_seconds=args.timeout, cell_seconds=args.cell_timeout,
                            part_seconds=args.part_timeout)
    secret = offering_secret(state)
    exempt = course_cells(course, aid)
    from tqdm import tqdm

    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_student, s, aid, parts, course, args.out, limits, args.force, secret, exempt,
                               unsafe, autograde): s for s in ok}
        for fut in tqdm(cf.as_completed(futures), total=len(futures), desc=f"grading {aid}", unit="submission",
                        file=sys.stderr):
            s = futures[fut]
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - one broken run never stops the class
                s.problem = f"failed to grade: {type(e).__name__}: {e}"
                continue
            s.parts = {k: (float(v[0]), v[1]) for k, v in res["parts"].items()}
            s.manual = list(res.get("manual", []))
            if s.manual:
                s.notes.append("flagged for review: " + "; ".join(res.get("findings", [])[:3]))
            for e in res.get("cell_errors", [])[:5]:
                s.notes.append(f"cell {e.get('cell')} raised {e.get('type')}: {str(e.get('message'))[:100]}")
    autograde.wait()
    for s in ok:
        if not (course / "autograded" / s.id / aid / f"{aid}.ipynb").exists():
            s.notes.append("nbgrader could not normalise this notebook (cells were restored from the submission "
                           "as it is)")
    record(students, aid, parts, course, args.out)
    total = sum(p.points for p in parts)
    print(f"\n{'student':<16} {'score':>8}  notes")
    for s in students:
        reason = s.problem or next((m.splitlines()[0] for _, m in s.parts.values() if m), "")
        print(f"{s.id:<16} {s.score:>5g}/{total:g}  {reason[:90]}")
    zero = [s for s in students if s.score == 0]
    broken = [s for s in students if s.problem]
    print(f"\n{len(students)} graded, {len(zero)} scored zero, {len(broken)} could not be run "
          f"(reasons above). Grades: {args.out / 'grades.csv'}; feedback: {args.out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
