"""Gradescope's front end to the one grading pipeline: the autograder zip, and what runs in its container.

    python -m autograder.grading.gradescope build <aid> <out folder>     (``make gradescope``)
    python -I -m autograder.grading.gradescope run                       (``run_autograder`` calls this)

Gradescope runs one container per submission (Ubuntu, as root): it unpacks the zip into
``/autograder/source``, runs ``setup.sh`` once when the image is built, then for each submission puts the
student's files in ``/autograder/submission`` and runs ``/autograder/run_autograder``, which must leave
``/autograder/results/results.json``.

**The container is the sandbox there.** ``make grade`` refuses to run without bubblewrap because many students'
code shares one machine with the instructor's files; in Gradescope's container there is one submission, and
nothing of the instructor's but this zip. So the worker runs as ``make grade --unsafe-no-sandbox`` runs it:
the same worker, protocol, verdicts and source policy, the same resource limits (``prlimit``), under a numeric
unprivileged uid of its own (``setpriv``) that can read neither ``/autograder/source`` (the offering's secret,
which draws the hidden cases) nor write ``/autograder/results``. What the zip holds: the graded parts (the
check calls the hidden tests make, never their source), the released notebook, the secret, the limits and the
course's checking package as a wheel; not the solutions.

``run`` writes a provisional ``results.json`` first (score 0, saying that grading did not finish) and sets its
own out-of-memory score to the lowest (the worker's to the highest), so a timeout, a crash or a memory bomb
each end in a scored, explained result. ``AUTOGRADER_ROOT`` (default ``/autograder``) moves the three folders,
for local use and tests; ``COURSE_PYTHON`` is read by ``run_autograder`` (the Python that runs this module).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from . import sandbox

#: Where setup.sh puts the course's Python environment in the container.
VENV = "/opt/course-venv"
#: The uid that student code runs as in the container (no passwd entry needed: it owns only its scratch folder).
STUDENT_UID = 61000
#: A submission notebook larger than this is not read.
MAX_NOTEBOOK_BYTES = 20 << 20
#: Visibility of the per-part tests: their scores and messages come from hidden cases, so they are shown when
#: the instructor publishes the grades; submission problems (no notebook, a broken one) are shown at once.
PART_VISIBILITY = "after_published"

_PACKAGE_SKIP = ("book", "bench", "__pycache__")


# --------------------------------------------------------------------------
# The zip (instructor's machine)


def wheel_version(version: str) -> str:
    """A course version (``0.1.0+8e36e37-dirty``) as a wheel's version: PEP 440's local part takes dots."""
    base, _, local = version.partition("+")
    local = "".join(c if c.isalnum() else "." for c in local).strip(".")
    return f"{base}+{local}" if local else base


def build_wheel(dest: Path, version: str) -> Path:
    """The checking package *with* its grading side, as a wheel (a zip with a dist-info: no build backend
    needed). The learner's distribution leaves grading out; the container needs it, and nothing else of the
    checkout (no solutions, no book)."""
    import autograder

    pkg = Path(autograder.__file__).resolve().parent
    name, ver = "upsampling_course_grader", wheel_version(version)
    dist = f"{name}-{ver}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg)
        if rel.parts[0] in _PACKAGE_SKIP or "__pycache__" in rel.parts:
            continue
        files.append((f"autograder/{rel.as_posix()}", path.read_bytes()))
    files.append(("autograder/_release.txt", version.encode()))
    deps = _pinned_requirements()
    meta = "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {ver}", "Requires-Python: >=3.11",
                      *[f"Requires-Dist: {d}" for d in deps], ""])
    files.append((f"{dist}/METADATA", meta.encode()))
    files.append((f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: autograder.grading.gradescope\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    record = io.StringIO()
    for arc, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write(f"{arc},sha256={digest},{len(data)}\n")
    record.write(f"{dist}/RECORD,,\n")
    files.append((f"{dist}/RECORD", record.getvalue().encode()))
    wheel = dest / f"{name}-{ver}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            z.writestr(zipfile.ZipInfo(arc, (2026, 1, 1, 0, 0, 0)), data)
    return wheel


def _pinned_requirements() -> list[str]:
    """The package's runtime requirements, as pyproject.toml pins them (grading needs torch and numpy only)."""
    import tomllib

    from ..paths import REPO

    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    return [d for d in deps if d.split("==")[0].strip() in ("torch", "numpy")]


SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu base image).
# It installs a Python the course supports (3.11 or newer), the pinned CPU build of torch and the course's
# checking package from the wheel in this zip, into __VENV__. Nothing is fetched when a submission is graded.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends util-linux ca-certificates
pick_python() {
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  return 1
}
PY="$(pick_python || true)"
if [ -z "$PY" ]; then
  # Ubuntu 22.04's own Python is 3.10; its archive has 3.11 (24.04's 3.12 needs nothing).
  apt-get install -y -q --no-install-recommends python3.11 python3.11-venv
  PY=python3.11
fi
"$PY" -m venv __VENV__
__VENV__/bin/python -m pip install -q --upgrade pip
# TORCH_INDEX: PyTorch's CPU-only wheel index (see the install selector on PyTorch's site). Without it pip takes
# the default build of torch, which also works on a CPU but is several GB larger.
__VENV__/bin/python -m pip install -q ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$(grep '^torch==' requirements.txt)"
__VENV__/bin/python -m pip install -q -r requirements.txt
__VENV__/bin/python -m pip install -q --no-deps wheels/*.whl
__VENV__/bin/python -I -m autograder.grading.gradescope version
# The autograder's own files are root's alone: student code runs as another user in the container.
chmod -R go-rwx /autograder/source
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this once per submission, as root. It always leaves results.json: a provisional one first
# (in case anything below is killed), which the grader replaces with the real one.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PY="${COURSE_PYTHON:-__VENV__/bin/python}"
mkdir -p "$ROOT/results"
cat > "$ROOT/results/results.json" <<'JSON'
{"score": 0, "output": "Grading did not finish: the autograder was stopped before it could report (the container's time or memory limit). Nothing was graded; resubmit, or ask your instructor.", "stdout_visibility": "hidden", "tests": []}
JSON
echo -1000 > /proc/self/oom_score_adj 2>/dev/null || true
chmod 700 "$ROOT/source" "$ROOT/results" 2>/dev/null || true
cd "$ROOT/source" && exec "$PY" -I -m autograder.grading.gradescope run --root "$ROOT"
"""


def course_spec(aid: str) -> dict:
    """What grading one submission of ``aid`` needs, without the solutions: the graded parts (their check calls),
    the limits, the course version and a fresh offering secret."""
    from ..paths import course_version, solution_notebook
    from .spec import graded_parts

    parts = graded_parts(solution_notebook(aid))
    timed = {p.grade_id for p in parts for c in p.calls if _is_timed(c.check)}
    return {"assignment": aid, "version": course_version(),
            "parts": [{"grade_id": p.grade_id, "points": p.points,
                       "calls": [{"check": c.check, "symbol": c.symbol, "kwargs": [list(kv) for kv in c.kwargs]}
                                 for c in p.calls]} for p in parts],
            "timed": sorted(timed), "secret": secrets.token_hex(32),
            "limits": vars(sandbox.Limits(wall_seconds=600 if aid.startswith("ch08") else 300))}


def _is_timed(check: str) -> bool:
    from .spec import graded_checks

    return bool(getattr(graded_checks()[check], "timed", False))


def build(aid: str, out: Path) -> Path:
    """``<out>/<aid>-gradescope.zip``: setup.sh and run_autograder at its root, the spec, the released notebook,
    the pinned requirements and the wheel."""
    from ..paths import release_notebook
    from ..registry import assignments

    if aid not in assignments():
        raise SystemExit(f"error: no assignment {aid!r}; the assignments are: {', '.join(assignments())}")
    out.mkdir(parents=True, exist_ok=True)
    spec = course_spec(aid)
    target = out / f"{aid}-gradescope.zip"
    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        wheel = build_wheel(Path(tmp), spec["version"])
        entries = {
            "setup.sh": (SETUP_SH.replace("__VENV__", VENV), 0o755),
            "run_autograder": (RUN_AUTOGRADER.replace("__VENV__", VENV), 0o755),
            "requirements.txt": ("\n".join(_pinned_requirements()) + "\n", 0o644),
            "course.json": (json.dumps(spec, indent=1), 0o600),
            "release.ipynb": (release_notebook(aid).read_text(encoding="utf-8"), 0o644),
            f"wheels/{wheel.name}": (wheel.read_bytes(), 0o644),
        }
        tmp_zip = out / f".{aid}-gradescope.zip.tmp"
        with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as z:
            for name, (data, mode) in entries.items():
                info = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
                info.external_attr = (0o100000 | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
        os.replace(tmp_zip, target)
    return target


# --------------------------------------------------------------------------
# One submission (in the container)


def find_notebook(folder: Path) -> tuple[Path | None, str | None]:
    """The one notebook submitted (any name, any depth; Jupyter's checkpoints ignored), or why there is none."""
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".ipynb" and p.is_file()
                   and not p.is_symlink() and ".ipynb_checkpoints" not in p.parts)
    if not found:
        others = sorted(p.name for p in folder.rglob("*") if p.is_file())[:5]
        return None, ("No notebook (.ipynb file) was found in your submission"
                      + (f" (it holds: {', '.join(others)})" if others else "")
                      + ". Upload the assignment's notebook file itself, saved from Jupyter or Colab.")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found[:6])
        return None, (f"Your submission holds {len(found)} notebooks ({names}); upload exactly one, the "
                      "assignment's notebook, so that it is clear which one is graded.")
    return found[0], None


def results_json(spec: dict, parts: dict, problem: str | None, notes: list[str], observed: dict,
                 seconds: float) -> dict:
    """Gradescope's results.json for one submission: one test per graded part (hidden cases' details shown when
    the grades are published), the overall output shown at once, and the leaderboard for a timed part."""
    from .cli import speed_summary

    tests = []
    for k, p in enumerate(spec["parts"], 1):
        pts, msg = parts.get(p["grade_id"], (0.0, problem or "not graded"))
        tests.append({"name": p["grade_id"], "number": str(k), "score": pts, "max_score": p["points"],
                      "status": "passed" if msg is None else "failed",
                      "output": msg if msg is not None else (
                          f"Passed. {speed_summary(observed.get(p['grade_id'], {}))}"
                          if "ratio" in observed.get(p["grade_id"], {}) else "All cases pass."),
                      "visibility": PART_VISIBILITY})
    total = sum(t["score"] for t in tests)
    out_of = sum(t["max_score"] for t in tests)
    if problem:
        output = f"This submission could not be graded: {problem}"
    else:
        output = (f"Your notebook was graded: {len(tests)} parts, each on inputs the grader chose, compared with "
                  f"PyTorch. Each part's result is shown when your instructor publishes the grades.")
    if notes:
        output += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in notes)
    output += f"\n\nGraded with version {spec['version']} of the course's checks."
    data = {"score": total, "execution_time": round(seconds, 2), "output": output,
            "stdout_visibility": "hidden", "visibility": "visible", "tests": tests,
            "extra_data": {"course_version": spec["version"], "max_score": out_of}}
    ratios = [observed[g]["ratio"] for g in spec.get("timed", []) if "ratio" in observed.get(g, {})]
    if spec.get("timed"):
        data["leaderboard"] = [{"name": "time / PyTorch's", "value": round(ratios[0], 3) if ratios else 999.0,
                                "order": "asc"}]
    return data


def write_results(path: Path, data: dict) -> None:
    """Write results.json whole (a crash mid-write leaves the previous one)."""
    tmp = path.with_name(".results.json.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def grade_one(root: Path) -> dict:
    """Grade the submission under ``root`` (source/, submission/) as ``make grade`` grades one student."""
    from .cli import grade_notebook, read_regular
    from .spec import CheckCall, GradedPart

    start = time.monotonic()
    spec = json.loads((root / "source" / "course.json").read_text(encoding="utf-8"))
    parts = [GradedPart(p["grade_id"], float(p["points"]),
                        [CheckCall(c["check"], c["symbol"], tuple(tuple(kv) for kv in c["kwargs"]))
                         for c in p["calls"]]) for p in spec["parts"]]
    observed: dict = {}
    notes: list[str] = []

    def done(results, problem=None):
        return results_json(spec, results, problem, notes, observed, time.monotonic() - start)

    path, problem = find_notebook(root / "submission")
    if problem:
        return done({}, problem)
    try:
        raw = read_regular(path)
    except OSError as e:
        return done({}, f"{path.name} could not be read ({e})")
    if len(raw) > MAX_NOTEBOOK_BYTES:
        return done({}, f"{path.name} is {len(raw) >> 20} MB; a notebook for this assignment is far smaller "
                        "(clear its outputs and resubmit)")
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return done({}, f"{path.name} is not a notebook: it is not valid JSON ({type(e).__name__}: {str(e)[:120]}). "
                        "Download it again from Jupyter or Colab (File > Download > .ipynb).")
    if not isinstance(nb, dict) or nb.get("nbformat") != 4:
        found = nb.get("nbformat") if isinstance(nb, dict) else type(nb).__name__
        return done({}, f"{path.name} is not a Jupyter notebook in format version 4 (found {found!r}).")
    release = json.loads((root / "source" / "release.ipynb").read_text(encoding="utf-8"))
    scratch = Path(tempfile.mkdtemp(prefix="submission-")) / "work"
    os.chmod(scratch.parent, 0o711)  # the worker's user may pass through to its own folder, and no further
    try:
        g = grade_notebook(raw, release, parts, scratch, STUDENT_UID, sandbox.Limits(**spec["limits"]),
                           bytes.fromhex(spec["secret"]), True)
    finally:
        shutil.rmtree(scratch.parent, ignore_errors=True)
    observed.update(g["observed"])
    if g["zeroed"]:
        notes.append("flagged for review by the course's source policy (the flagged parts score 0 until your "
                     "instructor grades them by hand): " + "; ".join(g["findings"][:3]))
    for e in g["cell_errors"][:5]:
        notes.append(f"cell {e.get('cell')} raised {e.get('type')}: {str(e.get('message'))[:160]}")
    results = g["results"]
    return done(results)


def run(root: Path) -> int:
    """``run_autograder``'s work: a provisional results.json, then the real one. Never exits without one."""
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    write_results(results, {"score": 0, "execution_time": 0, "stdout_visibility": "hidden", "tests": [],
                            "output": "Grading did not finish: the autograder stopped before it could report. "
                                      "Nothing was graded; resubmit, or ask your instructor."})
    try:
        with open("/proc/self/oom_score_adj", "w") as f:  # the grader is the last process the kernel kills
            f.write("-1000")
    except OSError:
        pass
    try:
        data = grade_one(root)
    except Exception as e:  # noqa: BLE001 - a bug of ours still ends in a scored, explained result
        data = {"score": 0, "execution_time": round(time.monotonic() - start, 2), "stdout_visibility": "hidden",
                "tests": [], "output": f"The autograder itself failed ({type(e).__name__}: {str(e)[:300]}); "
                                       "nothing was graded. Tell your instructor."}
        write_results(results, data)
        raise
    write_results(results, data)
    print(f"score {data['score']:g}; results in {results}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.grading.gradescope")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write <out>/<aid>-gradescope.zip")
    b.add_argument("assignment")
    b.add_argument("out", type=Path)
    r = sub.add_parser("run", help="grade /autograder/submission (in Gradescope's container)")
    r.add_argument("--root", type=Path, default=Path(os.environ.get("AUTOGRADER_ROOT", "/autograder")))
    sub.add_parser("version", help="the installed course version and torch's (setup.sh's last check)")
    args = parser.parse_args(argv)
    if args.cmd == "version":
        import torch

        from ..paths import course_version

        print(f"course checks {course_version()}, torch {torch.__version__}")
        return 0
    if args.cmd == "build":
        target = build(args.assignment, args.out)
        version = json.loads(zipfile.ZipFile(target).read("course.json"))["version"]
        local = version.partition("+")[2]  # git describe: v<version> at a tag, v<version>-<n>-g<commit> after one
        if not local.startswith("v") or "-" in local:
            print(f"warning: this checkout ({version}) is not a tagged release: build the zip for a class from a "
                  "checkout at a tag (CONTRIBUTING.md, Releasing a version).", file=sys.stderr)
        print(f"Wrote {target} ({target.stat().st_size / 2**20:.1f} MB). Upload it as the autograder of a "
              f"Gradescope programming assignment (see the instructors' page of the README).")
        return 0
    return run(args.root)


if __name__ == "__main__":
    sys.exit(main())
