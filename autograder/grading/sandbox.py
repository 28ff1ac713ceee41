"""Where untrusted submission code runs: bubblewrap over an allowlist, an unprivileged user, resource limits.

    bwrap --clearenv --setenv ...        only the variables the worker needs
          --ro-bind /usr /usr ...        the system's programs and libraries, read-only
          --ro-bind <python> <python>    the Python environment and the checking package, read-only
          --bind <scratch> /scratch      the student's own scratch folder: the one writable place
          --tmpfs /tmp --dev /dev --proc /proc
          --unshare-net --unshare-pid --unshare-ipc --die-with-parent --new-session
      prlimit --as --cpu --nproc --fsize
      setpriv --reuid <uid of its own>   not root: process limits count per submission
      python -I -m autograder.grading.worker

Nothing else of this machine is in the sandbox's filesystem: not the instructor's checkout (its git
history, ``solutions/``, the built books, ``book/_hidden``, the tests), not the grading output (the
gradebook, the grader's state, other students), not the home folder. The package folder is bound on
its own, so the checkout around it stays invisible.

"Bubblewrap is available" means a trial run of this very command succeeded, not that the binary exists.
Without it the grader refuses to run unless the instructor names the risk (``--unsafe-no-sandbox``);
then the same command runs with the limits, the user and the cleared environment only.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import autograder

PACKAGE = Path(autograder.__file__).resolve().parent
SCRATCH = "/scratch"
NOBODY = 65534
FIRST_UID = 200000  # one unused uid per sandbox: process limits then count per submission
ZYGOTE_UID = FIRST_UID - 1  # the zygote's; its workers each have a user namespace of their own

#: The system, read-only: programs and shared libraries. (Symbolic links such as a merged /usr's /bin -> usr/bin
#: are recreated as links.)
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: The few files of /etc that the dynamic loader, the C library and Python use.
ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/passwd", "/etc/group",
       "/etc/nsswitch.conf", "/etc/localtime", "/etc/alternatives", "/etc/fonts")


def uid_for(name: str) -> int:
    """The unused uid a sandbox for ``name`` runs as (one per submission: process limits count apart)."""
    import zlib

    return FIRST_UID + zlib.crc32(name.encode()) % 100000


@dataclass
class Limits:
    """The resource and time limits of one submission's sandbox."""

    memory_mb: int = 3000      # address space; torch needs about 1.5 GB of it to import
    cpu_seconds: int = 600
    processes: int = 256       # for the sandbox's own user
    file_mb: int = 64
    wall_seconds: int = 300    # one submission, all parts together
    cell_seconds: int = 60     # one notebook cell
    part_seconds: int = 0      # one graded part (0: the wall limit shared among the parts)


def python_paths() -> list[str]:
    """The Python environment the worker needs, read-only: the interpreter's installation, the virtual
    environment (its site-packages), and the checking package's own folder."""
    paths = {sys.prefix, sys.base_prefix, str(Path(os.path.realpath(sys.executable)).parent.parent), str(PACKAGE)}
    return sorted(p for p in paths if os.path.isdir(p))


#: The C library's allocator keeps freed memory instead of returning it to the system after every call:
#: measured here, a 4 MB output mapped and unmapped per call tripled F.conv_transpose2d's time at Chapter 9's
#: reference shape, so timings depended on how a process had used memory before. Worker and baseline alike.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def environment(home: str = SCRATCH) -> dict[str, str]:
    """The worker's whole environment (nothing of the grader's is inherited), its home at ``home``."""
    return {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg", "MPLCONFIGDIR": home, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", **ALLOCATOR}


def _limits(limits: Limits) -> list[str]:
    return ["prlimit", f"--as={limits.memory_mb * 2**20}", f"--cpu={limits.cpu_seconds}",
            f"--nproc={limits.processes}", f"--fsize={limits.file_mb * 2**20}", "--"]


def _drop(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] if os.geteuid() == 0 else []


def bwrap_command(argv: list[str], scratch: str | None, limits: Limits, uid: int = NOBODY) -> list[str]:
    """The sandbox for one submission's worker, its scratch folder bound at /scratch. Without a scratch folder
    (``None``): the zygote's sandbox (:mod:`autograder.grading.zygote`), with an empty /scratch and a read-only
    /tmp, where each forked worker mounts private ones of its own."""
    box = ["bwrap", "--clearenv"]
    for key, value in environment().items():
        box += ["--setenv", key, value]
    for path in SYSTEM:
        if os.path.islink(path):
            box += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            box += ["--ro-bind", path, path]
    for path in ETC:
        if os.path.exists(path):
            box += ["--ro-bind", path, path]
    # /tmp, /dev and /proc first: a later mount covers an earlier one, and a checkout (its environment and
    # package) may well live under /tmp
    box += ["--perms", "1777", "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc"]
    made = {"/tmp", "/dev", "/proc"}
    for path in python_paths():
        # the folders above a bound path are made traversable (bwrap would create them 0700, root's)
        for parent in reversed(Path(path).parents):
            p = str(parent)
            if p != "/" and p not in made and not any(p == s or p.startswith(s + "/") for s in SYSTEM):
                box += ["--perms", "0755", "--dir", p]
                made.add(p)
        box += ["--ro-bind", path, path]
    if scratch is None:
        box += ["--remount-ro", "/tmp", "--perms", "0755", "--dir", SCRATCH, "--chdir", "/"]
    else:
        box += ["--bind", scratch, SCRATCH, "--chdir", SCRATCH]
    box += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--"]
    return box + _limits(limits) + _drop(uid) + argv


def zygote_command(argv: list[str], limits: Limits) -> list[str]:
    """The zygote's sandbox: the allowlist without a scratch folder; only the address-space limit of its own (the
    process limit stays the grader's: each worker sets the submission's limits for itself, and its processes
    count in a user namespace of its own)."""
    box = bwrap_command(argv, None, limits, ZYGOTE_UID)
    cut = box.index("prlimit")
    return box[:cut] + ["prlimit", f"--as={limits.memory_mb * 2**20}", "--"] + \
        box[box.index("--", cut + 1) + 1:]


def worker_limits(limits: Limits) -> dict:
    """What a forked worker sets for itself (:mod:`autograder.grading.zygote`): the same as ``prlimit`` here,
    and the size of its private /tmp, /scratch and /dev/shm."""
    return {"as": limits.memory_mb * 2**20, "cpu": limits.cpu_seconds, "nproc": limits.processes,
            "fsize": limits.file_mb * 2**20, "tmpfs_mb": 4 * limits.file_mb}


def unsafe_command(argv: list[str], limits: Limits, uid: int = NOBODY) -> list[str]:
    """Without bubblewrap (only with --unsafe-no-sandbox): the limits and the user, nothing more."""
    return _limits(limits) + _drop(uid) + argv


def prepare_scratch(scratch: Path, uid: int) -> None:
    """A fresh, empty scratch folder owned by the sandbox's user. Whatever an earlier run left there
    (links included) is removed without following any link."""
    if scratch.is_symlink() or scratch.is_file():
        scratch.unlink()
    elif scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    if os.geteuid() == 0:
        os.chown(scratch, uid, uid)


@functools.cache
def available() -> bool:
    """Does a trial run of the sandbox's own command succeed here (bwrap present, user namespaces allowed)?"""
    if shutil.which("bwrap") is None or shutil.which("prlimit") is None:
        return False
    with tempfile.TemporaryDirectory(prefix="sandbox-trial-") as tmp:
        uid = uid_for("trial")
        prepare_scratch(Path(tmp) / "s", uid)
        cmd = bwrap_command([sys.executable, "-I", "-c", "import os; print(os.getcwd())"], str(Path(tmp) / "s"),
                            Limits(), uid)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0 and proc.stdout.strip() == SCRATCH


INSTALL_HINT = ("bubblewrap, the grading sandbox, does not work on this machine (a trial run failed or `bwrap` "
                "is missing). Install it (Debian/Ubuntu: `sudo apt-get install bubblewrap`) and make sure "
                "unprivileged user namespaces are allowed; or, knowing that student code then runs with "
                "resource limits only and can read and write whatever this user can, pass --unsafe-no-sandbox.")
