"""The Gradescope autograder, run in an emulation of Gradescope's container.

`make gradescope` builds the zip; each test unpacks it into a fresh folder laid out as Gradescope's container
is (``source/``, ``submission/``, ``results/``), bound at the real ``/autograder`` by bubblewrap, with the
package installed from the zip's wheel into a fresh environment (the checkout, its ``solutions/`` and its
editable install are not in the container at all). ``run_autograder`` runs there as root, as on Gradescope; it
runs the student's code as a numeric unprivileged uid. Every results.json is validated against the schema
written from Gradescope's specification, and the scores are those ``make grade`` gives the same notebooks
(tests/test_grading.py asserts ``EXPECTED`` for ``make grade``).

Only ``setup.sh`` cannot run here (it installs from the internet on Gradescope's image): it is checked with
``bash -n`` and its pinned requirements with pip's resolver, without installing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import notebooks as nbs
from autograder.grading import gradescope, sandbox
from autograder.grading.spec import graded_parts
from conftest import REPO, release_path, solution_path, submission
from test_gradescope_schema import validate_results
from test_grading import AID, CLASS, EXPECTED, edit

pytestmark = pytest.mark.skipif(not sandbox.available() or os.geteuid() != 0,
                                reason="emulating Gradescope's container needs bubblewrap and root (as there)")

EVIDENCE = "/tmp/container-evidence"
PINNED_SITE = "/opt/pinned-site-packages"  # this checkout's torch and numpy, where the container sees them
# Code a student could try in Gradescope's container, written so that the static source policy does not flag
# it (plain `open` only), so it really runs: read the offering's secret, forge results.json, add a file to the
# autograder's source and change the installed grader. Each attempt leaves a line in EVIDENCE.
CONTAINER_ATTACK = (
    "\ndef attempt(what, fn):\n"
    "    try:\n        fn()\n        ok = 'DONE'\n"
    "    except Exception as e:\n        ok = 'refused ' + type(e).__name__\n"
    f"    with open({EVIDENCE!r}, 'a') as f:\n        f.write(what + ': ' + ok + '\\n')\n"
    "attempt('read secret', lambda: open('/autograder/source/course.json').read())\n"
    "attempt('forge results', lambda: open('/autograder/results/results.json', 'w').write('{\"score\": 100}'))\n"
    "attempt('add to source', lambda: open('/autograder/source/run_autograder', 'a').write('echo'))\n"
    "attempt('patch package', lambda: open('/opt/course-venv/pyvenv.cfg', 'a').write('#'))\n"
    f"with open({EVIDENCE!r}, 'a') as f:\n"
    "    f.write([l for l in open('/proc/self/status') if l.startswith('Uid:')][0])\n"
)

PARTS = graded_parts(solution_path(AID), resolve=False)
SAMPLE = {  # student -> expected (score, words in a part's output), from test_grading's class
    s: EXPECTED[s] for s in ("alice_correct", "bob_honest_wrong", "carol_empty", "markdown_cell",
                             "patches_checks", "memory_bomb", "calls_forbidden_op")}


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    return emulated_container(tmp_path_factory.mktemp("gradescope"), AID)


def emulated_container(tmp: Path, aid: str) -> dict:
    """The zip of ``aid``, built by `make gradescope`; a fresh environment with the zip's wheel; a function that
    grades one submission in the emulated container and returns (results.json, what the run printed)."""
    proc = subprocess.run(["make", "-s", "gradescope", f"ASSIGNMENT={aid}", f"OUT={tmp / 'zip'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zpath = tmp / "zip" / f"{aid}-gradescope.zip"
    # A fresh environment: the zip's wheel installed by pip, no checkout. The pinned torch and numpy come
    # from this checkout's environment (setup.sh installs them on Gradescope's image).
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    with zipfile.ZipFile(zpath) as z:
        wheel_name = next(n for n in z.namelist() if n.endswith(".whl"))
        (tmp / "wheel").mkdir()
        wheel = tmp / "wheel" / Path(wheel_name).name
        wheel.write_bytes(z.read(wheel_name))
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                          "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    site = Path(sysconfig.get_paths()["purelib"])  # this environment's: torch and numpy
    fresh_site = next((venv / "lib").glob("python3*/site-packages"))
    (fresh_site / "pinned-torch.pth").write_text(PINNED_SITE + "\n")
    subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)  # as /opt is: readable by every user

    def grade(name: str, files: dict[str, bytes], extra: str = "") -> tuple[dict, str]:
        root = tmp / "runs" / name
        for sub in ("source", "submission", "results"):
            (root / sub).mkdir(parents=True)
        with zipfile.ZipFile(zpath) as z:
            for info in z.infolist():
                target = root / "source" / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(info))
                target.chmod((info.external_attr >> 16) & 0o777)
        shutil.copy(root / "source" / "run_autograder", root / "run_autograder")  # as Gradescope does
        os.chmod(root / "source", 0o700)
        for rel, data in files.items():
            (root / "submission" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "submission" / rel).write_bytes(data)
        box = ["bwrap"]
        own = ("proc", "dev", "tmp", "autograder", "sys", "run", "opt", "root", "home")
        for entry in sorted(os.listdir("/")):  # the machine, read-only, but for what a container has of its own
            if entry not in own and os.path.isdir("/" + entry):
                box += (["--symlink", os.readlink("/" + entry), "/" + entry] if os.path.islink("/" + entry)
                        else ["--ro-bind", "/" + entry, "/" + entry])
        box += ["--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/opt", "--tmpfs", str(REPO)]  # the checkout is not in the container
        base = Path(sys.base_prefix).resolve()  # this machine's Python, wherever it lives (as /usr on Gradescope)
        for parent in reversed(base.parents):
            if str(parent) != "/" and parent.parts[1] in own:
                box += ["--perms", "0755", "--dir", str(parent)]
        box += ["--ro-bind", str(base), str(base)] if base.parts[1] in own else []
        box += ["--ro-bind", str(site), PINNED_SITE, "--ro-bind", str(venv), gradescope.VENV,
                "--bind", str(root), "/autograder", "--dev", "/dev", "--proc", "/proc", "--ro-bind", "/sys", "/sys",
                "--unshare-pid", "--unshare-ipc", "--unshare-net", "--die-with-parent", "--cap-add", "ALL",
                "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--chdir", "/", "--",
                "bash", "-c", f"/autograder/run_autograder; {extra}"]
        run = subprocess.run(box, capture_output=True, text=True, timeout=600)
        assert (root / "results" / "results.json").exists(), run.stdout + run.stderr
        results = json.loads((root / "results" / "results.json").read_text())
        return results, run.stdout + run.stderr

    return {"zip": zpath, "grade": grade, "venv": venv}


def notebook(student: str) -> bytes:
    sources, how = CLASS[student]
    nb = submission(nbs.read(release_path(AID)), sources)
    return nbformat.writes(edit(nb, how) if how else nb, version=4).encode()


def test_the_zip_has_gradescope_s_layout_and_no_solution(container):
    with zipfile.ZipFile(container["zip"]) as z:
        names = set(z.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
        everything = b"".join(z.read(n) for n in names if not n.endswith(".whl"))
        wheel = zipfile.ZipFile(__import__("io").BytesIO(z.read(next(n for n in names if n.endswith(".whl")))))
    assert {"setup.sh", "run_autograder"} <= names and modes["run_autograder"] & 0o111
    wheel_names = wheel.namelist()
    assert "autograder/grading/worker.py" in wheel_names and not any("solutions" in n for n in wheel_names)
    assert not any(n.startswith("autograder/book/") for n in wheel_names)
    # no solution cell travels: none of the instructor's answers is in the zip or its wheel
    packed = everything + b"".join(wheel.read(n) for n in wheel_names)
    for gid, answer in CLASS["alice_correct"][0].items():
        assert answer.strip().encode() not in packed, gid
        assert json.dumps(answer.strip())[1:-1].encode() not in packed, gid  # nor as a notebook's JSON string
    assert b"BEGIN HIDDEN TESTS" not in everything


def test_setup_sh_is_valid_bash_and_its_pins_resolve(container, tmp_path):
    with zipfile.ZipFile(container["zip"]) as z:
        (tmp_path / "setup.sh").write_bytes(z.read("setup.sh"))
        (tmp_path / "requirements.txt").write_bytes(z.read("requirements.txt"))
    assert subprocess.run(["bash", "-n", str(tmp_path / "setup.sh")]).returncode == 0
    reqs = (tmp_path / "requirements.txt").read_text().split()
    assert any(r.startswith("torch==") for r in reqs)
    dry = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary", ":all:", "-q",
                          "--report", str(tmp_path / "report.json"), *reqs], capture_output=True, text=True,
                         timeout=300)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    picked = {i["metadata"]["name"]: i["metadata"]["version"] for i in
              json.loads((tmp_path / "report.json").read_text())["install"]}
    assert picked and all(picked[r.split("==")[0]].split("+")[0] == r.split("==")[1] for r in reqs)


@pytest.mark.parametrize("student", list(SAMPLE))
def test_run_autograder_gives_make_grade_s_scores_in_a_valid_results_json(container, student):
    results, log = container["grade"](student, {f"my {student}.ipynb": notebook(student)})
    validate_results(results)
    score, words = SAMPLE[student]
    assert results["score"] == score, (results, log[-2000:])
    assert results["stdout_visibility"] == "hidden"
    assert [t["name"] for t in results["tests"]] == [p.grade_id for p in PARTS]
    assert [t["max_score"] for t in results["tests"]] == [p.points for p in PARTS]
    assert all(t["visibility"] == "after_published" for t in results["tests"])
    text = json.dumps(results)
    assert "BEGIN HIDDEN TESTS" not in text and "suite=\"hidden\"" not in text
    if words:
        assert words in text, text[:3000]
    assert results["extra_data"]["course_version"]


@pytest.mark.parametrize("files, words", [
    ({}, "No notebook"),
    ({"notes.txt": b"my answers are in my head"}, "notes.txt"),
    ({"a.ipynb": b"{}", "sub/b.ipynb": b"{}"}, "exactly one"),
    ({"broken.ipynb": b'{"cells": ['}, "not valid JSON"),
    ({"old.ipynb": json.dumps({"nbformat": 3, "worksheets": []}).encode()}, "format version 4"),
])
def test_no_notebook_several_or_a_broken_one_each_say_what_to_do(container, files, words):
    results, _ = container["grade"]("intake-" + str(abs(hash(tuple(files)))), files)
    validate_results(results)
    assert results["score"] == 0 and words in results["output"]
    assert results["visibility"] == "visible"  # the student can fix and resubmit at once


def test_student_code_runs_as_another_user_that_can_neither_read_the_secret_nor_forge_the_results(container):
    sources = CLASS["alice_correct"][0]
    nb = submission(nbs.read(release_path(AID)), {**sources, "conv2d": sources["conv2d"] + CONTAINER_ATTACK})
    results, log = container["grade"]("attack", {"attack.ipynb": nbformat.writes(nb, version=4).encode()},
                                      extra=f"echo; cat {EVIDENCE}")
    validate_results(results)
    evidence = log[log.find("read secret"):]
    for what in ("read secret", "forge results", "add to source", "patch package"):
        assert f"{what}: refused PermissionError" in evidence, log[-3000:]
    uids = evidence[evidence.index("Uid:"):].split("\n")[0].split()[1:]
    assert uids and set(uids) == {str(gradescope.STUDENT_UID)}, evidence  # real, effective, saved, fs: not root
    assert results["score"] == 10  # the attempts change nothing, and the policy cannot see plain file access


def test_a_memory_bomb_at_the_top_level_and_a_killed_grader_still_leave_a_scored_result(container):
    bomb = {**CLASS["alice_correct"][0], "conv2d_output_size": "blocks = []\nwhile True:\n"
            "    blocks.append(bytearray(10**8))\n"}
    nb = submission(nbs.read(release_path(AID)), bomb)
    results, _ = container["grade"]("bomb", {"bomb.ipynb": nbformat.writes(nb, version=4).encode()})
    validate_results(results)
    assert 0 <= results["score"] < 10 and len(results["tests"]) == len(PARTS)
    assert "MemoryError" in results["output"], results  # the cell that ran out of memory is named
    # the grader stopped before it could report (here: its Python missing): the provisional results.json
    # stands, scored and explained
    root = Path(container["venv"]).parent / "killed"
    (root / "results").mkdir(parents=True)
    (root / "source").mkdir()
    with zipfile.ZipFile(container["zip"]) as z:
        (root / "run_autograder").write_bytes(z.read("run_autograder"))
    env = {"PATH": "/usr/bin:/bin", "AUTOGRADER_ROOT": str(root), "COURSE_PYTHON": "/bin/false"}
    assert subprocess.run(["bash", str(root / "run_autograder")], env=env, timeout=60).returncode != 0
    provisional = json.loads((root / "results" / "results.json").read_text())
    validate_results(provisional)
    assert provisional["score"] == 0 and "did not finish" in provisional["output"]


def test_a_timed_part_puts_its_speed_ratio_on_the_leaderboard():
    spec = {"version": "0.1.0+test", "timed": ["test_speed"],
            "parts": [{"grade_id": "test_speed", "points": 2.0}, {"grade_id": "test_values", "points": 8.0}]}
    data = gradescope.results_json(spec, {"test_speed": (2.0, None), "test_values": (0.0, "values differ")},
                                   None, [], {"test_speed": {"ratio": 1.234567}}, 3.0)
    validate_results(data)
    assert data["leaderboard"] == [{"name": "time / PyTorch's", "value": 1.235, "order": "asc"}]
    assert data["score"] == 2.0 and data["tests"][1]["status"] == "failed"
    assert "1.23× PyTorch's time" in data["tests"][0]["output"]
    # The optional challenge (worth no points) is named beside the ratio, reached or not, when the check sets one.
    for ratio, word in ((1.234567, "reached."), (2.5, "not reached yet.")):
        challenged = gradescope.results_json(spec, {"test_speed": (2.0, None)}, None, [],
                                             {"test_speed": {"ratio": ratio, "challenge": 1.5}}, 3.0)
        validate_results(challenged)
        assert challenged["tests"][0]["output"].endswith(f"asks for 1.5× or less: {word}")
        assert challenged["score"] == 2.0
    untimed = gradescope.results_json({**spec, "timed": []}, {}, "no notebook", [], {}, 0.1)
    validate_results(untimed)
    assert "leaderboard" not in untimed and untimed["score"] == 0
