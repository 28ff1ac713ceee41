"""The grader side of one submission: start its sandboxed worker, send each part's inputs, judge the outputs.

This process never runs student code. It believes only what it computes itself:

* **values**: the worker's outputs are compared with torch here (``GradedCheck.verdict``);
* **time limits**: every answer has a deadline; a worker that misses one is killed (its whole process group
  and sandbox), the part scores 0, and a fresh worker (the cells run again) answers the remaining parts;
* **speed**: a timed part is clocked here, around ``go``/``done`` frames, on fresh inputs per run with
  every output verified, alternating with torch's own function in a worker of the grader's (same sandbox,
  thread count and protocol); timed parts run one at a time, with no other worker busy (:data:`GATE`);
* **rules**: the static source policy (:mod:`autograder._policy`) zeroes the parts whose code
  could switch the in-sandbox operator guard off, whatever the worker reports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import sandbox
from .sandbox import ZygoteUnavailable, start_zygote, stop_zygote  # noqa: F401 - start/stop re-exported
from .. import _policy as policy
from .protocol import ChannelClosed, ChannelTimeout, FrameReader, ProtocolError, write_frame
from ..contract import CaseCheck
from ..timing import median_ratio
from .spec import GradedPart, check_module, graded_checks

#: Largest frame a worker may send (header, then tensor bytes): more is a protocol error, not an allocation.
REPLY_HEADER_LIMIT = 1 << 20
REPLY_PAYLOAD_LIMIT = 64 << 20


class Gate:
    """Shared for ordinary work, exclusive for timed parts: a timed part waits until no worker is busy, and
    no worker starts work while one is measured (a waiting timed part goes first)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._busy = self._waiting = 0
        self._timing = False

    @contextlib.contextmanager
    def shared(self):
        """Hold the gate for ordinary work: waits while a timed part is measured or waiting."""
        with self._cond:
            self._cond.wait_for(lambda: not self._timing and not self._waiting)
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the gate alone for a timed part: waits until no worker is busy."""
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._timing and self._busy == 0)
            self._waiting -= 1
            self._timing = True
        try:
            yield
        finally:
            with self._cond:
                self._timing = False
                self._cond.notify_all()


GATE = Gate()


class WorkerProcess:
    """One sandboxed worker and the grader's end of its channel: forked by the run's zygote when there is one,
    else a sandbox (or, with --unsafe-no-sandbox, a process) of its own."""

    def __init__(self, scratch: Path, uid: int, limits: sandbox.Limits, unsafe: bool = False, preload=(),
                 zygote: sandbox.Zygote | None = None):
        self._stderr = tempfile.TemporaryFile()
        self.proc = self.pid = None
        self.zygote = zygote if zygote is not None and not unsafe and zygote.ready() else None
        if self.zygote is not None:
            to_worker, self._in = os.pipe()
            self._out, from_worker = os.pipe()
            try:
                self.pid = self.zygote.spawn([to_worker, from_worker, self._stderr.fileno()])
            except ZygoteUnavailable:
                os.close(self._in)
                os.close(self._out)
                raise
            finally:
                os.close(to_worker)
                os.close(from_worker)
        else:
            sandbox.prepare_scratch(scratch, uid)
            argv = [sys.executable, "-I", "-m", "autograder.grading.worker", *preload]
            if unsafe:
                cmd, env, cwd = sandbox.unsafe_command(argv, limits, uid), sandbox.environment(str(scratch)), scratch
            else:
                cmd, env, cwd = sandbox.bwrap_command(argv, str(scratch), limits, uid), {"PATH": "/usr/bin:/bin"}, None
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         env=env, cwd=cwd, start_new_session=True)
            self._in, self._out = os.dup(self.proc.stdin.fileno()), os.dup(self.proc.stdout.fileno())
            self.proc.stdin.close()
            self.proc.stdout.close()
        os.set_blocking(self._in, False)
        self.reader = FrameReader(self._out, REPLY_HEADER_LIMIT, REPLY_PAYLOAD_LIMIT)
        self._closed = False

    def ask(self, msg: dict, deadline: float, expect: str):
        """Send one frame and read the answer by the deadline; a ProtocolError unless its ``op`` is ``expect``."""
        write_frame(self._in, msg, deadline)
        reply = self.reader.read(deadline)
        if type(reply) is not dict or reply.get("op") != expect:
            raise ProtocolError(f"expected a {expect!r} frame")
        return reply

    def send(self, msg: dict, deadline: float) -> None:
        """Send one frame by the deadline, without waiting for an answer."""
        write_frame(self._in, msg, deadline)

    def running(self) -> bool:
        """Is the worker still running (and, for one from the zygote, its channel still open)?"""
        if self.zygote is not None:
            try:
                return not self._closed and self.zygote.status(self.pid, 0) is None
            except ZygoteUnavailable:
                return False
        return self.proc.poll() is None

    def _wait(self, seconds: float) -> int | None:
        if self.zygote is not None:
            try:
                return self.zygote.status(self.pid, seconds)
            except ZygoteUnavailable:
                return None
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Kill the worker (through the zygote, or its process group) and close the grader's end of its channel."""
        try:
            if self.zygote is not None:
                self.zygote.kill(self.pid)  # its namespaces die with it
            else:
                os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ZygoteUnavailable):
            pass
        self._wait(10)
        if not self._closed:
            self._closed = True
            for fd in (self._in, self._out):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def close(self) -> None:
        """Say ``bye`` and give the worker a moment to end, then kill it all the same."""
        try:
            self.send({"op": "bye"}, time.monotonic() + 2)
            self._wait(5)
        except (ChannelClosed, ChannelTimeout, OSError, ValueError):
            pass
        self.kill()

    def ended(self) -> str:
        """Why the worker's channel closed: its exit status, and the sandbox's own message if any."""
        status = self._wait(5)
        if status is None:
            self.kill()
            status = self._wait(1)
        self._stderr.seek(0)
        tail = self._stderr.read(2000).decode(errors="replace").strip()
        note = f"the process ended with status {status}"
        if status is not None and status < 0:
            note += f" ({signal.Signals(-status).name})"
        return note + (f" — {tail.splitlines()[-1][:200]}" if tail else "")


def spawn_worker(scratch: Path, uid: int, limits: sandbox.Limits, unsafe: bool = False, preload=()) -> WorkerProcess:
    """A worker from the run's zygote; a sandbox of its own if there is none, or it no longer answers."""
    if sandbox.ZYGOTE is not None and not unsafe:
        try:
            return WorkerProcess(scratch, uid, limits, unsafe, preload, zygote=sandbox.ZYGOTE)
        except ZygoteUnavailable:
            pass
    return WorkerProcess(scratch, uid, limits, unsafe, preload)


@dataclass
class Submission:
    """What the grader sends one worker: code cells (index, source), and where and how it runs."""

    cells: list
    scratch: Path
    uid: int
    limits: sandbox.Limits
    unsafe: bool = False
    preload: list = field(default_factory=list)


class Session:
    """A submission's worker, started on demand and restarted after a part that killed it."""

    def __init__(self, sub: Submission, deadline: float):
        self.sub, self.deadline = sub, deadline
        self.worker: WorkerProcess | None = None
        self.dead: str | None = None      # why no worker can run this submission any more
        self.cell_errors: list = []
        self.starts = 0
        self._spare: WorkerProcess | None = None

    def prespawn(self) -> None:
        """Start the worker now (it loads torch and the checks), before the cells are known."""
        if self.worker is None and self._spare is None:
            self._spare = self._spawn()

    def _spawn(self) -> WorkerProcess:
        return spawn_worker(self.sub.scratch, self.sub.uid, self.sub.limits, self.sub.unsafe, self.sub.preload)

    def _start(self) -> WorkerProcess | None:
        if self.dead:
            return None
        self.starts += 1
        w, self._spare = (self._spare or self._spawn()), None
        budget = min(self.deadline, time.monotonic() + self.sub.limits.cell_seconds * max(1, len(self.sub.cells)) + 60)
        try:
            with GATE.shared():
                # in Python, as the policy reviewed them (IPython's magics become calls)
                cells = [[i, policy.transform(src)] for i, src in self.sub.cells]
                w.send({"op": "cells", "cells": cells, "cell_timeout": self.sub.limits.cell_seconds}, budget)
                ready = w.reader.read(budget)
            if type(ready) is not dict or ready.get("op") != "ready":
                raise ProtocolError("expected a 'ready' frame")
        except ChannelTimeout:
            w.kill()
            self.dead = "no result came back: the notebook's cells did not finish within the time limit"
            return None
        except ChannelClosed:
            self.dead = f"no result came back: {w.ended()}, while the notebook's cells ran (a crash, the memory " \
                        "or CPU limit, or code that ends the process)"
            w.kill()
            return None
        except ProtocolError as e:
            w.kill()
            self.dead = f"no result came back: the worker broke the grading protocol ({e})"
            return None
        errors = ready.get("cell_errors")
        if self.starts == 1 and type(errors) is list:
            self.cell_errors = [e for e in errors if type(e) is dict][:20]
        self.worker = w
        return w

    def worker_or_none(self) -> WorkerProcess | None:
        """The current worker, else a fresh one with the cells run; None if the submission cannot run."""
        return self.worker or self._start()

    def lost(self, why: str) -> str:
        """The current worker is gone or untrustworthy: kill it; the next part starts a fresh one."""
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        return why

    def probe(self, check_name: str, symbol: str, request: dict, seconds: float):
        """The worker's record for one probe, or (None, why not)."""
        w = self.worker_or_none()
        if w is None:
            return None, self.dead
        deadline = min(self.deadline, time.monotonic() + seconds)
        msg = {"op": "probe", "check": check_name, "module": check_module(check_name), "symbol": symbol,
               "request": request}
        try:
            with GATE.shared():
                reply = w.ask(msg, deadline, "result")
        except ChannelTimeout:
            return None, self.lost(f"timed out after {seconds:g} s (stopped by the grader)")
        except ChannelClosed:
            return None, self.lost(f"no result came back for this part: {w.ended()}")
        except ProtocolError as e:
            return None, self.lost(f"no result came back: the answer broke the grading protocol ({e})")
        record = reply.get("record")
        if type(record) is not dict:
            return None, self.lost("no result came back: the answer was not a record")
        return record, None

    def close(self):
        """End the current worker and the spare one, if any."""
        for w in (self.worker, self._spare):
            if w is not None:
                w.close()
        self.worker = self._spare = None


# --------------------------------------------------------------------------
# Timed parts


def measure(check, student: WorkerProcess, baseline: WorkerProcess, symbol: str, options: dict, secret,
            deadline: float) -> dict:
    """Time ``symbol`` in the student's worker against the baseline worker, alternately, on fresh inputs per
    run; verify every timed output here. Returns the measurements for ``check.verdict``."""
    clock = time.perf_counter
    mine, theirs, bad = [], [], []
    per_go = max(1, int(getattr(check, "calls_per_run", 1)))  # the channel's round trip, shared by several calls
    with GATE.exclusive():
        for k in range(check.warmup + check.runs):
            calls = [check.timed_inputs(options, k * per_go + j) for j in range(per_go)]
            staged = [{"args": args, "kwargs": kwargs} for args, kwargs in calls]
            for w in (student, baseline):
                w.ask({"op": "stage", "symbol": symbol, "calls": staged}, deadline, "staged")
            # who goes first alternates from run to run, so that neither side always finds the caches warm
            spans = {}
            for name, w in ((("student", student), ("torch", baseline)) if k % 2 == 0 else
                            (("torch", baseline), ("student", student))):
                t0 = clock()
                reply = w.ask({"op": "go"}, deadline, "done")
                spans[name] = clock() - t0
                if name == "student":
                    done = reply
            outputs = student.ask({"op": "fetch"}, deadline, "output")["value"]
            problem = done.get("error")
            if not problem and (type(outputs) is not list or len(outputs) != len(calls)):
                problem = "not every call returned an output"
            for (args, kwargs), out in zip(calls, outputs if type(outputs) is list else []):
                problem = problem or check.timed_problem(args, kwargs, out)
            t_mine, t_torch = spans["student"] / per_go, spans["torch"] / per_go
            far_too_slow = check.give_up(t_mine, t_torch)  # one such run says it all, warm-up or not
            if k >= check.warmup or far_too_slow:
                mine.append(t_mine)
                theirs.append(t_torch)
            if problem:
                bad.append((k, str(problem)))
            if bad or far_too_slow:
                break
    return {"mine": mine, "torch": theirs, "bad_runs": bad}


class Baselines:
    """The grader's own workers that run torch's function for timed parts: one per check, started on first use
    and kept for the whole grading run (they run no student code, and timed parts take turns)."""

    def __init__(self):
        self._workers: dict = {}
        self._lock = threading.Lock()

    def get(self, check, sub: Submission, deadline: float) -> WorkerProcess:
        """The check's baseline worker, started (torch's baseline cell run) if none is running."""
        with self._lock:
            w = self._workers.get(check.check)
            if w is not None and w.running():
                return w
            scratch = sub.scratch.parent / f".baseline-{check.check}"
            w = spawn_worker(scratch, sandbox.uid_for("baseline"), sub.limits, sub.unsafe)
            with GATE.shared():
                w.send({"op": "cells", "cells": [[0, check.baseline_source]], "cell_timeout": 60}, deadline)
                if w.reader.read(deadline).get("op") != "ready":
                    w.kill()
                    raise ProtocolError("the baseline worker did not start")
            self._workers[check.check] = w
            return w

    def close(self):
        """End every baseline worker: the next timed part starts fresh ones."""
        with self._lock:
            for w in self._workers.values():
                w.close()
            self._workers.clear()


BASELINES = Baselines()


def timed_part(check, session: Session, sub: Submission, symbol: str, options: dict, secret, seconds: float):
    """A timed part: the guarded correctness probe in the student's worker, then the grader's measurement.
    Returns (record, None) or (None, why no record)."""
    record, why = session.probe(check.check, symbol, check.request(options, secret), seconds)
    if record is None or record.get("error") or record.get("violations") or "missing" in record:
        return record, why
    deadline = min(session.deadline, time.monotonic() + seconds)
    try:
        baseline = BASELINES.get(check, sub, deadline)
    except (ChannelTimeout, ChannelClosed, ProtocolError) as e:
        BASELINES.close()
        return None, f"the grader's own torch worker did not start ({type(e).__name__}): regrade this part"
    try:
        student = session.worker_or_none()
        if student is None:
            return None, session.dead
        record.update(measure(check, student, baseline, symbol, options, secret, deadline))
        return record, None
    except ChannelTimeout:
        BASELINES.close()  # it may be mid-call: a fresh one for the next student
        return None, session.lost(f"timed out after {seconds:g} s while being timed (stopped by the grader)")
    except ChannelClosed:
        BASELINES.close()
        return None, session.lost("no result came back while being timed: the process ended")
    except ProtocolError as e:
        BASELINES.close()
        return None, session.lost(f"no result came back while being timed: the grading protocol broke ({e})")


# --------------------------------------------------------------------------
# One submission, every part


def grade_submission(sub: Submission, parts: list[GradedPart], secret: bytes, zeroed: dict | None = None,
                     part_seconds: float = 60, session: Session | None = None,
                     observed: dict | None = None) -> tuple[dict, list, dict]:
    """Every part's (points, message or None), the cells' errors, and where the time went (seconds waiting on
    the sandboxed worker, seconds verifying here). ``zeroed`` maps a part to the policy's reason to score it 0
    (it is not run). ``observed``, if given, receives per part what the class report and the leaderboard use:
    ``mistake`` (the stable id of the mistake a failure was named as), ``ratio`` (a timed part's speed ratio),
    ``flag`` (policy, timeout, crash or protocol: why no verdict could be reached)."""
    from .._core import CheckFailure

    checks = graded_checks()
    results: dict = {}
    session = session or Session(sub, time.monotonic() + sub.limits.wall_seconds)
    clock = time.perf_counter
    seconds = {"sandbox": 0.0, "verify": 0.0}
    try:
        for part in parts:
            if zeroed and part.grade_id in zeroed:
                results[part.grade_id] = (0.0, zeroed[part.grade_id])
                if observed is not None:
                    observed[part.grade_id] = {"flag": "policy"}
                continue
            message = None
            seen: dict = {}
            for call in part.calls:
                check = checks[call.check]
                options = call.for_offering(secret)
                hidden = check.secret(options)
                t0 = clock()
                if check.timed:
                    record, why = timed_part(check, session, sub, call.symbol, options, hidden, part_seconds)
                else:
                    record, why = session.probe(call.check, call.symbol, check.request(options, hidden),
                                                part_seconds)
                t1 = clock()
                seconds["sandbox"] += t1 - t0
                if record is None:
                    message = why
                    seen["flag"] = sandbox_flag(why)
                    break
                if "missing" in record and not isinstance(check, CaseCheck):
                    message = str(record["missing"])
                    break
                try:
                    if isinstance(check, CaseCheck):
                        check.verdict(record, options, hidden, symbol=call.symbol)
                    else:
                        check.verdict(record, options, hidden)
                    if check.timed and record.get("mine") and record.get("torch"):
                        seen["ratio"] = median_ratio(record["mine"], record["torch"])
                        if check.challenge_ratio:
                            seen["challenge"] = check.challenge_ratio
                except (CheckFailure, NotImplementedError) as e:
                    message = str(e)
                    if getattr(e, "mistake", None):
                        seen["mistake"] = e.mistake
                        known = getattr(getattr(check, "exercise", None), "mistakes", ())
                        seen["mistake_text"] = next((m.name for m in known if m.id == e.mistake), e.mistake)
                    break
                except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
                    message = f"the worker's record could not be judged ({type(e).__name__}: {e}): scored 0"
                    break
                finally:
                    seconds["verify"] += clock() - t1
            results[part.grade_id] = (0.0 if message else part.points, message)
            if observed is not None and seen:
                observed[part.grade_id] = seen
    finally:
        session.close()
    return results, session.cell_errors, seconds


def sandbox_flag(why: str | None) -> str:
    """What ended a part without a verdict, in one word for the class report: timeout, crash or protocol."""
    why = why or ""
    if "timed out" in why or "time limit" in why:
        return "timeout"
    if "protocol" in why or "not a record" in why:
        return "protocol"
    return "crash"


def speed_ratio(source: str, symbol: str, check_name: str = "check_conv_transpose2d_speed", options=None,
                scratch: Path | None = None, unsafe: bool = False) -> dict:
    """For ``make bench``: the grader-side measurement of a function defined by trusted ``source``."""
    check = graded_checks()[check_name]
    options = dict(options or {"seed": 0})
    own = sandbox.ZYGOTE is None and not unsafe  # workers as `make grade` starts them
    if own:
        start_zygote([check_module(check_name)], sandbox.Limits())
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        sub = Submission([[0, source]], Path(tmp) / "s", sandbox.uid_for("bench"), sandbox.Limits(), unsafe, [])
        session = Session(sub, time.monotonic() + 600)
        try:
            record, why = timed_part(check, session, sub, symbol, options, None, 600)
        finally:
            session.close()
            BASELINES.close()
            if own:
                stop_zygote()
    if record is None:
        raise RuntimeError(why)
    return {"ratio": median_ratio(record["mine"], record["torch"]),
            "mine": statistics.median(record["mine"]), "torch": statistics.median(record["torch"]),
            "bad_runs": record.get("bad_runs")}
