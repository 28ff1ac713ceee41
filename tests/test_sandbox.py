"""The sandbox (autograder/grading/sandbox.py) and the zygote (autograder/grading/zygote.py) on their own.

What a submission can reach from inside is tested, attack by attack, in test_grading_trust.py; here, the parts:
a trial run, the allowlist's basics, and the limits a forked worker sets for itself.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder.grading import grader, sandbox
from conftest import REPO


def test_the_sandbox_is_real_where_bubblewrap_is_installed():
    """Does a trial run of the sandbox work here? (CI installs bubblewrap; elsewhere skip, visibly.)"""
    import os

    if not sandbox.available():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap does not work in CI: .ci/run should have installed it")
        pytest.skip("bubblewrap does not work here: `make grade` refuses to run (unless --unsafe-no-sandbox)")
    # available() means a trial run worked; a real one must also keep a failure a failure (not a silent pass)
    cmd = sandbox.bwrap_command([sys.executable, "-I", "-c", "raise SystemExit(7)"], None, sandbox.Limits())
    assert subprocess.run(cmd, capture_output=True, timeout=60).returncode == 7


def test_the_sandbox_hides_solutions_and_the_network(tmp_path):
    """Inside the sandbox: no solutions/, no network, not root, a cleared environment."""
    if not sandbox.available():
        pytest.skip("bubblewrap does not work here")
    import os

    os.environ["COURSE_SECRET_PROBE"] = "visible?"
    code = ("import os, socket\n"
            f"print(os.path.exists({str(REPO / 'solutions')!r}), os.getuid(), sorted(os.environ))\n"
            "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n    print('net')\n"
            "except OSError:\n    print('no net')\n")
    uid = sandbox.uid_for("probe")
    sandbox.prepare_scratch(tmp_path / "w", uid)
    cmd = sandbox.bwrap_command([sys.executable, "-I", "-c", code], str(tmp_path / "w"), sandbox.Limits(), uid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=os.environ).stdout
    assert out.startswith("False") and "no net" in out and " 0 " not in out, out
    assert "COURSE_SECRET_PROBE" not in out and "'HOME'" in out, out


def test_a_forked_worker_sets_the_submission_s_limits_and_reports_how_it_ended():
    if not sandbox.available():
        pytest.skip("bubblewrap does not work here")
    import time
    from pathlib import Path

    limits = sandbox.Limits(memory_mb=2500, cpu_seconds=77, processes=33, file_mb=5)
    assert sandbox.worker_limits(limits) == {"as": 2500 * 2**20, "cpu": 77, "nproc": 33, "fsize": 5 * 2**20,
                                             "tmpfs_mb": 20}
    code = ("import json, resource\nraise RuntimeError(json.dumps([resource.getrlimit(r)[0] for r in "
            "(resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE)]))")
    assert grader.start_zygote([], limits).ready(), sandbox.ZYGOTE.why
    try:
        session = grader.Session(grader.Submission([[0, code]], Path("/nonexistent"), 0, limits, False, []),
                                 time.monotonic() + 120)
        worker = session.worker_or_none()
        assert worker is not None and worker.zygote is not None, session.dead
        import json

        assert json.loads(session.cell_errors[0]["message"]) == [2500 * 2**20, 77, 33, 5 * 2**20]
        worker.kill()
        assert "SIGKILL" in worker.ended()  # killed through the zygote, which reports the signal
    finally:
        grader.stop_zygote()
