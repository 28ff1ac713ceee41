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

Gradescope (:mod:`autograder.grading.gradescope`) runs that second form on purpose: there each submission
has a container of its own, holding nothing of the instructor's but the autograder zip, so the container is
the sandbox; the worker runs as an unprivileged uid that can read neither the zip's files (the offering's
secret) nor write the results, and no bubblewrap is needed or asked for.
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..timing import MMAP_THRESHOLD, TRIM_THRESHOLD
from .zygote import decode as decode_exit

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
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}


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
    """Without bubblewrap (--unsafe-no-sandbox; Gradescope's container, which is the sandbox there): the limits
    and the user, and the worker first in line for the kernel's out-of-memory killer (the grader, which must
    still report, last: :mod:`autograder.grading.gradescope`)."""
    oom = ["choom", "-n", "1000", "--"] if shutil.which("choom") else []
    return oom + _limits(limits) + _drop(uid) + argv


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


# --------------------------------------------------------------------------
# The zygote's client (the grader's side; torch is not needed here)


class ZygoteUnavailable(RuntimeError):
    """The zygote did not start or stopped answering: workers start as sandboxes of their own instead."""


class Zygote:
    """The grader's end of the zygote (:mod:`autograder.grading.zygote`): one sandbox that loaded torch and the
    checks once and forks an isolated worker per request. Requests from the grading threads take turns."""

    def __init__(self, preload, limits: Limits):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-I", "-m", "autograder.grading.zygote", str(theirs.fileno()), *preload]
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(zygote_command(argv, limits), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr, env={"PATH": "/usr/bin:/bin"},
                                     pass_fds=(theirs.fileno(),), start_new_session=True)
        theirs.close()
        self.sock, self.limits = ours, limits
        self._lock = threading.Lock()
        self._ready: bool | None = None
        self.why = ""

    def _receive(self, seconds: float) -> dict:
        if not select.select([self.sock], [], [], seconds)[0]:
            raise ZygoteUnavailable(f"the zygote did not answer within {seconds:g} s")
        data = self.sock.recv(1 << 16)
        if not data:
            raise ZygoteUnavailable(f"the zygote ended: {self._tail()}")
        return json.loads(data)

    def _tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read(4000).decode(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else f"status {self.proc.poll()}"

    def ready(self, seconds: float = 120) -> bool:
        """Has it loaded torch and the checks (waits for that once)? False, with ``why``, if it never will."""
        with self._lock:
            if self._ready is None:
                try:
                    msg = self._receive(seconds)
                    self._ready = msg.get("op") == "ready"
                    self.why = "" if self._ready else str(msg.get("why"))
                except (ZygoteUnavailable, OSError, ValueError) as e:
                    self._ready, self.why = False, str(e)
            return self._ready

    def request(self, msg: dict, fds=(), seconds: float = 30) -> dict:
        """Send one request (with the descriptors to pass) and return the zygote's answer; requests take turns."""
        if not self.ready():
            raise ZygoteUnavailable(self.why)
        with self._lock:
            try:
                socket.send_fds(self.sock, [json.dumps(msg).encode()], list(fds))
                return self._receive(seconds)
            except (OSError, ValueError) as e:
                raise ZygoteUnavailable(f"the zygote's channel broke: {e}") from e

    def spawn(self, fds) -> int:
        """Have the zygote fork a worker on these descriptors (channel in, channel out, stderr); its pid."""
        reply = self.request({"op": "spawn", "limits": worker_limits(self.limits)}, fds)
        if reply.get("op") != "spawned" or type(reply.get("pid")) is not int:
            raise ZygoteUnavailable(f"the zygote did not start a worker: {reply}")
        return reply["pid"]

    def kill(self, pid: int) -> None:
        """Have the zygote kill a worker it forked."""
        self.request({"op": "kill", "pid": pid})

    def status(self, pid: int, seconds: float) -> int | None:
        """The worker's return code (negative: the signal that ended it), or None while it still runs."""
        end = time.monotonic() + seconds
        while True:
            code = self.request({"op": "status", "pid": pid}).get("code")
            if code is not None or time.monotonic() > end:
                return None if code is None else decode_exit(int(code))
            time.sleep(0.02)

    def close(self) -> None:
        """Close the control channel (the zygote then ends) and wait for it; killed if it does not end in 10 s."""
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


#: The zygote of the current grading run (:func:`start_zygote`), or None: each worker its own sandbox.
ZYGOTE: Zygote | None = None


def start_zygote(preload, limits: Limits) -> Zygote:
    """Start this run's zygote (it loads torch while the run goes on); workers come from it from now on."""
    global ZYGOTE
    ZYGOTE = Zygote(preload, limits)
    return ZYGOTE


def stop_zygote() -> None:
    """Close this run's zygote, if any: each worker is a sandbox of its own again."""
    global ZYGOTE
    if ZYGOTE is not None:
        ZYGOTE.close()
    ZYGOTE = None
