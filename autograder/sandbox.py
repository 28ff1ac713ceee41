"""Running untrusted submission code: bubblewrap + an unprivileged user + resource limits.

    bwrap --ro-bind / /            the system, read-only
          --tmpfs /tmp             a private /tmp
          --tmpfs <hidden>...      the grading area, the solutions, other students: not visible
          --bind <work> <work>     the student's own copy, the one writable place
          --unshare-net --unshare-pid --die-with-parent --new-session
      setpriv --reuid nobody       not root: process limits apply
      prlimit --as --cpu --nproc --fsize

Where bubblewrap is missing the same command runs with the limits only, and
the grader prints a loud warning on every run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NOBODY = 65534
FIRST_UID = 200000  # one unused uid per sandbox: process limits then count per submission


def uid_for(name: str) -> int:
    import zlib

    return FIRST_UID + zlib.crc32(name.encode()) % 100000


@dataclass
class Limits:
    memory_mb: int = 3000      # address space; torch needs about 1.5 GB of it to import
    cpu_seconds: int = 600
    processes: int = 256       # for the unprivileged user, across the sandboxes running at once
    file_mb: int = 64
    wall_seconds: int = 300
    cell_seconds: int = 60     # one notebook cell
    part_seconds: int = 0      # one graded part (0: the wall limit shared among the parts)


def available() -> bool:
    return shutil.which("bwrap") is not None


def command(argv: list[str], work: str, hidden: list[str], limits: Limits, uid: int = NOBODY) -> list[str]:
    prlimit = ["prlimit", f"--as={limits.memory_mb * 2**20}", f"--cpu={limits.cpu_seconds}",
               f"--nproc={limits.processes}", f"--fsize={limits.file_mb * 2**20}", "--"]
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] if os.geteuid() == 0 else []
    if not available():
        return prlimit + drop + argv
    box = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
    covered = ["/tmp"]

    def expose(path, flag):
        """Bind ``path`` back inside a covered area, creating traversable folders down to it."""
        parents, p = [], os.path.dirname(path)
        while p not in ("/", "") and p not in covered:
            if any(p.startswith(c + os.sep) for c in covered):
                parents.append(p)
            p = os.path.dirname(p)
        for d in reversed(parents):
            box.extend(["--perms", "0755", "--dir", d])
        box.extend([flag, path, path])

    # What the runner needs from a checkout that happens to live under /tmp: the code and the
    # interpreter, read-only (the hidden folders inside it are covered again just below).
    exposed: list[str] = []
    for path in sorted({str(REPO), sys.prefix, sys.base_prefix}):
        if path.startswith("/tmp" + os.sep) and not any(path.startswith(e + os.sep) for e in exposed):
            expose(path, "--ro-bind")
            exposed.append(path)
    for path in hidden:
        if os.path.isdir(path):
            box += ["--perms", "0755", "--tmpfs", path]
            covered.append(path)
    expose(work, "--bind")
    box += ["--chdir", work, "--setenv", "HOME", work, "--setenv", "TMPDIR", work,
            "--setenv", "MPLBACKEND", "Agg", "--setenv", "OMP_NUM_THREADS", "1",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--"]
    return box + prlimit + drop + argv


def run(argv: list[str], work: str, hidden: list[str], limits: Limits, uid: int = NOBODY) -> tuple[int | None, str]:
    """Run ``argv`` sandboxed as ``uid``; return (exit status or None on timeout, a note)."""
    if os.geteuid() == 0:
        os.chown(work, uid, uid)
        for name in os.listdir(work):
            os.chown(os.path.join(work, name), uid, uid)
    cmd = command(argv, work, hidden, limits, uid)
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=limits.wall_seconds, start_new_session=True)
    except subprocess.TimeoutExpired:
        return None, f"the submission ran past the {limits.wall_seconds} s limit and was stopped"
    return proc.returncode, proc.stderr.decode(errors="replace")[-500:]

