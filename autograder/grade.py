"""``make grade``: grade a whole class, sandboxed, in parallel, with feedback and a grades CSV.

    python -m autograder.grade ASSIGNMENT SUBMISSIONS OUT [--jobs N] [--force]

SUBMISSIONS is a folder ``<student_id>/<any name>.ipynb``, a folder of LMS downloads named
``<student_id>_<anything>.ipynb``, or a zip of either. Results go to OUT:

    OUT/grades.csv                       student_id, assignment, score, max_score, one column per part
    OUT/feedback/<student_id>/<aid>.html what passed, what failed and why (no hidden test source)
    OUT/course/                          the nbgrader course: gradebook.db, submitted/, autograded/
    OUT/work/<student_id>/               the sandbox's scratch copy and raw results

The pipeline, in order (each step needs the one before):

1. set up the nbgrader course from solutions/<aid> (generate_assignment: the gradebook knows the parts);
2. collect: validate each notebook (JSON, nbformat 4); a broken one scores 0 with the reason;
3. nbgrader autograde, *without executing anything*: it restores locked and test cells from the gradebook
   and records the submission;
4. run each submission's code in the sandbox (parallel, one process per student) — it only produces raw
   results for grader-chosen inputs;
5. verify in this process, which never ran student code: compare the results with torch, per graded part;
6. write the scores into the gradebook, grades.csv and the feedback pages; print a summary.

Re-running is safe: a student whose submission did not change keeps its results; ``--force`` regrades.
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

from . import sandbox
from .gradespec import MODULE_CHECKS, GradedPart, entry_for, graded_parts, module_for, module_inputs

REPO = Path(__file__).resolve().parents[1]
STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


@dataclass
class Student:
    id: str
    source: Path | None = None
    problem: str | None = None           # why it could not be graded at all (scores 0)
    notes: list[str] = field(default_factory=list)
    parts: dict = field(default_factory=dict)   # grade_id -> (points, message or None)

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
    """Students and their notebooks: ``<id>/<any>.ipynb`` folders or ``<id>_<anything>.ipynb`` files."""
    root = _expand(submissions, out)
    found: dict[str, Student] = {}
    for path in sorted(root.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        rel = path.relative_to(root)
        sid = rel.parts[0] if len(rel.parts) > 1 else path.name.split("_")[0].removesuffix(".ipynb")
        if not STUDENT_RE.match(sid):
            continue
        if sid in found:
            found[sid].notes.append(f"several notebooks found; graded {found[sid].source.name}, ignored {path.name}")
            continue
        found[sid] = Student(sid, path)
    for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if d.name not in found and STUDENT_RE.match(d.name):
            found[d.name] = Student(d.name, None, problem="no notebook (.ipynb) in the submission")
    return [found[k] for k in sorted(found)]


#: Source patterns that only code tampering with the grading itself needs: flagged for a human look.
SUSPICIOUS = {
    r"_python_dispatch|_DisableTorchDispatch|_set_dispatch_mode|TorchDispatchMode|torch\.library": "touches torch's dispatcher",
    r"sys\.setprofile|sys\.settrace": "changes the profiler/tracer hooks",
    r"gc\.get_objects|gc\.get_referrers": "searches the interpreter's objects",
    r"probe\d*\.pt|job\.json|results\.pt": "names the grader's files",
    r"\bautograder\b(?!\.ch\d\d import check_)": "uses the checking library beyond the setup cell",
}


def flags(notebook: Path) -> list[str]:
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001
        return []
    found = []
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if cell.get("cell_type") != "code" or meta.get("locked"):
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        found += [why for pattern, why in SUSPICIOUS.items() if re.search(pattern, src) and why not in found]
    return found


def validate(student: Student) -> None:
    import nbformat

    try:
        raw = json.loads(student.source.read_text(encoding="utf-8"))
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


def run_student(student: Student, aid: str, parts: list[GradedPart], course: Path, out: Path,
                limits: sandbox.Limits, force: bool, autograde: subprocess.Popen | None = None) -> dict:
    work = out / "work" / student.id
    autograded = course / "autograded" / student.id / aid / f"{aid}.ipynb"
    if autograde is not None:
        wait_for_autograde(autograded, autograde)
    notebook = autograded if autograded.exists() else course / "submitted" / student.id / aid / f"{aid}.ipynb"
    digest = hashlib.sha256(notebook.read_bytes()).hexdigest()
    stamp = work / "done.json"
    probes = [p for part in parts for p in part.probes]
    if not force and stamp.exists() and json.loads(stamp.read_text()).get("sha256") == digest:
        return json.loads(stamp.read_text())
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(notebook, work / "submission.ipynb")
    job_probes, secrets = [], {}
    for k, p in enumerate(probes):
        job_probes.append({"check": p.check, "symbol": p.symbol, "kwargs": list(p.kwargs)})
        if p.check in MODULE_CHECKS:
            # A module check may need inputs the submission must not predict (held-out images drawn from a
            # fresh secret): the sandbox gets the inputs, the secret stays with the grader (done.json).
            secret, data = module_inputs(p.check, p.options)
            if secret is not None:
                secrets[str(k)] = secret
            if data is not None:
                import torch

                torch.save(data, work / f"data{k}.pt")
                job_probes[-1]["data"] = str(work / f"data{k}.pt")
    job = {"notebook": str(work / "submission.ipynb"), "out": str(work), "probes": job_probes,
           "part_timeout": limits.part_seconds or max(10, limits.wall_seconds // max(1, len(probes))),
           "cell_timeout": limits.cell_seconds}
    (work / "job.json").write_text(json.dumps(job))
    # Hidden from the submission: the instructor's solutions, every grading area (this class's
    # included: its own copy is bound back in), the project's tests, and the home folder.
    home = os.path.expanduser("~")
    hidden = [str(REPO / "solutions"), str(REPO / ".grading"), str(REPO / "tests"), str(out.resolve())]
    needed = (str(REPO), sys.prefix, sys.base_prefix, os.path.realpath(sys.executable))
    if not any(p.startswith(home + os.sep) for p in needed):
        hidden.append(home)
    status, note = sandbox.run([sys.executable, "-m", "autograder.runner", str(work / "job.json")],
                               str(work), hidden, limits, uid=sandbox.uid_for(student.id))
    result = {"sha256": digest, "status": status, "note": note, "secrets": secrets}
    stamp.write_text(json.dumps(result))
    return result


# --------------------------------------------------------------------------
# 5. Verification, in this process (it never runs student code)


def _outcome(rec):

    from ._core import ErrorRecord, Outcome

    def value(v):
        if isinstance(v, dict) and "__seq__" in v:
            items = [value(x) for x in v["items"]]
            return tuple(items) if v["__seq__"] == "tuple" else items
        return v

    err = rec.get("error")
    return Outcome(value=value(rec.get("value")),
                   error=ErrorRecord(err["type"], tuple(err["mro"]), err["message"], err["frame"]) if err else None,
                   violations=[tuple(v) for v in rec.get("violations", [])], modified=rec.get("modified", False))


def verify(student: Student, parts: list[GradedPart], out: Path, run_note: str | None) -> None:
    import torch

    from . import _core
    from ._core import CheckFailure

    work = out / "work" / student.id
    stamp = work / "done.json"
    secrets = json.loads(stamp.read_text()).get("secrets", {}) if stamp.exists() else {}
    k = -1
    for part in parts:
        message = None
        for probe in part.probes:
            k += 1  # the probe's index in the job, as the sandbox numbered its results
            path = work / f"probe{k}.pt"
            if message:
                continue
            if not path.exists():
                message = run_note or "no result came back (the submission stopped the process before this part)"
                continue
            try:
                data = torch.load(path, weights_only=True)  # plain data only: no code from the sandbox
            except Exception as e:  # noqa: BLE001
                message = f"its results could not be read safely ({type(e).__name__})"
                continue
            if "missing" in data:
                message = data["missing"]
            elif probe.check in MODULE_CHECKS:
                try:
                    module_for(probe.check).grading_verdict(data["module"], probe.options, secrets.get(str(k)))
                except (CheckFailure, NotImplementedError) as e:
                    message = str(e)
            else:
                entry = entry_for(probe.check)
                opts = probe.options
                cases = entry.load("cases")(opts.get("part", "all"), opts.get("suite", "hidden"), opts.get("seed"))
                outcomes = {}
                for key, rec in data["cases"].items():
                    i, dev, dt = key.split("|")
                    outcomes[(int(i), dev, dt)] = _outcome(rec)
                report = _core.run(entry.load("exercise"), None, cases, devices=("cpu",), fn_name=probe.symbol,
                                   outcomes=outcomes)
                if not report.ok:
                    message = report.message(probe.symbol)
        student.parts[part.grade_id] = (0.0 if message else part.points, message)


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
    args = parser.parse_args(argv)
    if not sandbox.available():
        print("WARNING: bubblewrap (bwrap) is not installed: student code runs WITHOUT a filesystem and network "
              "sandbox, with resource limits only. Install the Debian package 'bubblewrap'.", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
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
            shutil.copy(s.source, dst / f"{aid}.ipynb")
    ok = [s for s in students if s.problem is None]
    for s in ok:
        for why in flags(s.source):
            s.notes.append(f"flagged for review: the code {why}")
    # nbgrader autograde (no execution) runs in the background; each sandbox run starts when its
    # student's normalised notebook is written. Stale ones from an earlier run go first.
    for s in ok:
        shutil.rmtree(course / "autograded" / s.id, ignore_errors=True)
    cmd, env = _nbgrader_cmd(["autograde", aid, "--force", "--log-level=ERROR"], course)
    autograde = subprocess.Popen(cmd, cwd=course, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    limits = sandbox.Limits(memory_mb=args.memory, wall_seconds=args.timeout, cell_seconds=args.cell_timeout,
                            part_seconds=args.part_timeout)
    from tqdm import tqdm

    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_student, s, aid, parts, course, args.out, limits, args.force, autograde): s
                   for s in ok}
        # Verify each submission as soon as its sandbox run ends, while the others still run.
        for fut in tqdm(cf.as_completed(futures), total=len(futures), desc=f"grading {aid}", unit="submission",
                        file=sys.stderr):
            s = futures[fut]
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - one broken run never stops the class
                s.problem = f"failed to grade: {type(e).__name__}: {e}"
                continue
            note = res.get("note") if res.get("status") is None else None
            if res.get("status") not in (0, None):
                note = f"the sandbox process ended with status {res.get('status')} (crash, memory or CPU limit)"
            if note:
                s.notes.append(note)
            try:
                verify(s, parts, args.out, note)
            except Exception as e:  # noqa: BLE001
                s.problem = f"failed to grade: {type(e).__name__}: {e}"
                continue
            log = args.out / "work" / s.id / "log.json"
            if log.exists():
                for e in json.loads(log.read_text()).get("cell_errors", [])[:5]:
                    s.notes.append(f"cell {e['cell']} raised {e['type']}: {e['message'][:100]}")
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
