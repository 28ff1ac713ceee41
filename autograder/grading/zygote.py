"""One sandbox that loads torch once and forks an isolated worker for each submission.

    python -I -m autograder.grading.zygote <control fd> [chNN ...]     (inside the sandbox, never outside)

Starting a sandboxed Python and importing torch costs about 1.3 s of CPU, more than grading a typical
submission: across a class that was two thirds of all the work. So the grader starts *one* sandbox
(:func:`autograder.grading.sandbox.zygote_command`: the same allowlist as a per-submission sandbox, with no
scratch folder and a read-only ``/tmp``), and this process imports torch and the chapters' checks there,
receives no submission code and no input, and on the grader's request forks a worker. Before any
submission code runs, each worker is walled off from the zygote and from every other worker:

    fork (C1)   unshare: a user, mount, PID, network, IPC and UTS namespace of its own
      fork (C2) PID 1 of its own namespace: private mounts, a fresh tmpfs on /tmp, /scratch and /dev/shm,
                an empty read-only tmpfs over /proc; every capability dropped, no new privileges
        fork (C3) the worker: resource limits, the channel on descriptors 0 and 1, no other descriptor
                  (not the zygote's control socket), then :func:`autograder.grading.worker.main`

So a worker sees nothing another one wrote (no shared writable folder, no shared /tmp, no abstract socket
across network namespaces, no process of another worker, no /proc at all), cannot undo its mounts (no
capability; in a user namespace of its own the inherited mounts are locked), and its memory holds only what
the zygote loaded (torch and the course's public checking package): the zygote never sees a submission, a
case or the offering's secret. The grader kills a worker through the zygote (C1 dies, and with it its
namespaces), and reads its exit status from there.

The control channel is a Unix SEQPACKET socket; each message is one JSON object, a spawn request carries the
worker's three descriptors (channel in, channel out, stderr) as SCM_RIGHTS. Exit statuses travel as codes:
``0..127`` an exit code, ``128 + n`` killed by signal ``n``.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import socket
import struct
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 1 << 14, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
#: the Python environment's folders (set by main(), from the sandbox's own list): bound read-only in the zygote
PYTHON_PATHS: list[str] = []


class Refused(RuntimeError):
    """A step of a worker's isolation failed: the worker is not started (no submission code runs)."""


def _ok(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise Refused(f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str, flags: int, data: str | None = None) -> None:
    _ok(_libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode() if data else None),
        f"mount {target}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _exit_code(status: int) -> int:
    """A wait status as this module's exit code (see the module's docstring)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return min(127, os.WEXITSTATUS(status)) if os.WIFEXITED(status) else 127


def decode(code: int) -> int:
    """This module's exit code as a Popen-style return code (negative: the signal that ended the worker)."""
    return -(code - 128) if code >= 128 else code


def _drop_capabilities() -> None:
    for cap in range(64):  # the bounding set first (needs CAP_SETPCAP, still held here), then every set
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    number = SYS_CAPSET.get(os.uname().machine)
    if number is None:
        raise Refused(f"no capset system call known for {os.uname().machine}")
    header = ctypes.create_string_buffer(struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0), 8)
    data = ctypes.create_string_buffer(24)  # effective, permitted, inheritable: all zero, both words
    _ok(_libc.syscall(number, header, data), "capset")
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _ok(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")


def _limit(limits: dict) -> None:
    for key, which in (("as", resource.RLIMIT_AS), ("cpu", resource.RLIMIT_CPU),
                       ("nproc", resource.RLIMIT_NPROC), ("fsize", resource.RLIMIT_FSIZE)):
        value = int(limits[key])
        resource.setrlimit(which, (value, value))


def _wait_for(pid: int) -> int:
    """Reap every child (this may be PID 1 of a namespace) until ``pid`` ends; its exit code."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 127
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        if done == pid:
            return _exit_code(status)


def _worker(fds: list[int], limits: dict) -> None:
    """C3: the worker itself, on the channel's descriptors, under the submission's limits."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, 1 << 16)
    _limit(limits)
    from . import worker

    worker.main(preloaded=True)


def _walled(fds: list[int], limits: dict) -> None:
    """C2: PID 1 of the worker's namespaces. Its own mounts, then no capability, then the worker as a child."""
    _ok(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    _mount("none", "/", "", MS_REC | MS_PRIVATE)
    size = f"size={int(limits['tmpfs_mb'])}m"
    # The Python environment may live under /tmp (a checkout there): the fresh /tmp would hide it, so each such
    # folder is bound again on top, read-only, from a descriptor opened before.
    under_tmp = sorted(p for p in PYTHON_PATHS if p == "/tmp" or p.startswith("/tmp/"))
    kept = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in under_tmp]
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=1777")
    for path, fd in kept:
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, "", MS_BIND | MS_REC)
        _mount("none", path, "", MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    _mount("tmpfs", "/scratch", "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=0755")
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=1777")
    _mount("tmpfs", "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555")
    os.chdir("/scratch")
    os.setsid()
    _drop_capabilities()
    pid = os.fork()
    if pid == 0:
        _worker(fds, limits)
        os._exit(0)
    for fd in fds:
        os.close(fd)
    os._exit(_wait_for(pid))


def _isolated(fds: list[int], limits: dict) -> None:
    """C1: new namespaces (a user namespace of its own first: no privilege needed), then C2 inside them."""
    _ok(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    uid, gid = os.getuid(), os.getgid()
    _ok(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
        "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    pid = os.fork()
    if pid == 0:
        try:
            _walled(fds, limits)
        except BaseException as e:  # noqa: BLE001 - the worker never starts; the grader sees its status
            os.write(fds[2], f"zygote: the worker's isolation failed: {e}\n".encode())
            os._exit(125)
    for fd in fds:
        os.close(fd)
    os._exit(_wait_for(pid))


def single_threaded() -> bool:
    """Forking is safe only while this process has one thread (torch's and BLAS's pools are not started)."""
    return len(os.listdir("/proc/self/task")) == 1


class Zygote:
    """The zygote's end of the control channel: forks workers on request and keeps their exit codes."""

    def __init__(self, control: socket.socket):
        self.control = control
        self.codes: dict[int, int | None] = {}  # child -> its exit code once reaped

    def send(self, msg: dict) -> None:
        """Send one message to the grader."""
        self.control.send(json.dumps(msg).encode())

    def reap(self) -> None:
        """Note the exit code of every forked worker that has ended, without waiting."""
        for pid, code in list(self.codes.items()):
            if code is None:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    self.codes[pid] = 127
                    continue
                if done == pid:
                    self.codes[pid] = _exit_code(status)

    def spawn(self, fds: list[int], limits: dict) -> None:
        """Fork an isolated worker on the three descriptors received, keep none of them, and answer its pid."""
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            self.send({"op": "error", "why": "a worker needs three descriptors"})
            return
        pid = os.fork()
        if pid == 0:
            try:
                self.control.close()
                _isolated(fds, limits)
            except BaseException as e:  # noqa: BLE001
                try:
                    os.write(fds[2], f"zygote: the worker's isolation failed: {e}\n".encode())
                finally:
                    os._exit(125)
        for fd in fds:
            os.close(fd)  # the zygote keeps no end of any worker's channel
        self.codes[pid] = None
        self.send({"op": "spawned", "pid": pid})

    def serve(self) -> None:
        """Answer the grader's requests until it closes the channel; then kill the workers left."""
        while True:
            ready, _, _ = select.select([self.control], [], [], 0.05)
            self.reap()
            if not ready:
                continue
            data, fds, _, _ = socket.recv_fds(self.control, 1 << 16, 8)
            if not data:
                break  # the grader is gone
            msg = json.loads(data)
            op, pid = msg.get("op"), msg.get("pid")
            if op == "spawn":
                self.spawn(fds, msg["limits"])
            elif op == "kill":
                if pid in self.codes and self.codes[pid] is None:
                    os.kill(pid, signal.SIGKILL)
                self.send({"op": "killed"})
            elif op == "status":
                self.reap()
                self.send({"op": "status", "code": self.codes.get(pid, 127)})  # kept: a pid is never reused
            else:
                self.send({"op": "error", "why": f"unknown request {op!r}"})
        for pid, code in self.codes.items():
            if code is None:
                os.kill(pid, signal.SIGKILL)


def main() -> None:
    """Load torch and the checks, then serve the grader on the control socket (refused if torch started threads)."""
    import importlib

    global PYTHON_PATHS
    control = socket.socket(fileno=int(sys.argv[1]))
    import torch

    from .sandbox import python_paths

    PYTHON_PATHS = python_paths()

    torch.set_num_threads(1)
    for module in ["_core", "grading.protocol", "grading.spec", "grading.worker"] + sys.argv[2:]:
        if module.replace(".", "").replace("_", "").isalnum():
            importlib.import_module(f"autograder.{module}")
    zygote = Zygote(control)
    if not single_threaded():
        zygote.send({"op": "refused", "why": "the zygote has more than one thread after loading torch"})
        return
    zygote.send({"op": "ready"})
    zygote.serve()


if __name__ == "__main__":
    main()
