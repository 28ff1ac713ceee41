"""The sandbox side of grading: run one submission's cells, then answer the grader's requests.

    python -I -m autograder.grading.worker [chNN ...]   (stdin/stdout: the grader's channel; nothing else)

Runs *inside* the sandbox (:mod:`autograder.grading.sandbox`). It reads no file of the grader's and
writes none: everything arrives and leaves as frames of plain data on its standard input and output
(:mod:`autograder.grading.protocol`). In order:

1. the grader sends the submission's code cells; the worker runs them (the grader sends nothing else
   until they have run: no case, seed or input is known to the student's code before then);
2. it answers ``ready`` with the cells' errors;
3. for each graded part, the grader sends the part's inputs and the worker returns the learner's outputs
   (``probe``), or, for a timed part, is told to ``stage`` inputs, ``go`` (call once) and ``fetch`` the output,
   while the grader holds the clock;
4. ``bye``, or the grader kills it (a part that runs past its time limit).

It decides nothing. Whatever the student's code patches here — torch, the checking library, the channel —
can change only the outputs this worker sends, and the grader judges those itself.
"""

from __future__ import annotations

import io
import os
import signal
import sys


class CellTimeout(BaseException):
    """Raised by the alarm in a cell that runs too long (a BaseException: `except Exception` won't catch it)."""


def run_cells(cells, cell_timeout: int) -> tuple[dict, list]:
    """Execute the code cells (already in Python: the grader turned IPython's magics into calls when it reviewed
    them) as one module, each under an alarm; note every error."""
    from .. import _core

    def alarm(signum, frame):
        raise CellTimeout(f"the cell ran longer than {cell_timeout} s")

    signal.signal(signal.SIGALRM, alarm)
    ns = {"__name__": "__main__"}
    errors = []
    for index, source in cells:
        try:
            signal.alarm(cell_timeout)
            exec(compile(source, f"<cell {index}>", "exec"), ns)
        except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
            errors.append({"cell": index, **_core.error_data(e)})
        finally:
            signal.alarm(0)
    return ns, errors


class Worker:
    """The worker's answers to the grader's requests, on the namespace the student's cells left."""

    def __init__(self, ns):
        self.ns = ns
        self.staged = None
        self.output = None

    def probe(self, msg):
        """The check's record for one learner symbol (the check's ``probe``), or why there is none (``missing``)."""
        from .protocol import plain
        from .spec import load_check

        obj = self.ns.get(msg["symbol"])
        if obj is None:
            return {"missing": f"`{msg['symbol']}` is not defined (did its cell run without errors?)"}
        check = load_check(msg["check"], msg["module"])
        try:
            record = check.probe(obj, msg["request"])
        except NotImplementedError:
            return {"missing": f"`{msg['symbol']}` still raises NotImplementedError"}
        except BaseException as e:  # noqa: BLE001
            return {"missing": f"probing failed: {type(e).__name__}: {str(e)[:200]}"}
        return record if isinstance(record, dict) else {"value": plain(record)}

    def stage(self, msg):
        """Inputs for the next ``go``: a list of calls, each its own fresh arguments."""
        self.staged = (self.ns.get(msg["symbol"]), [(tuple(c["args"]), dict(c["kwargs"])) for c in msg["calls"]])
        self.output = None
        return {"op": "staged"}

    def go(self, msg):
        """Make the staged calls, one after another, and keep the outputs (the grader holds the clock)."""
        import torch

        fn, calls = self.staged
        outputs = []
        try:
            with torch.no_grad():
                for args, kwargs in calls:
                    outputs.append(fn(*args, **kwargs))
            self.output = outputs
            return {"op": "done", "error": None}
        except BaseException as e:  # noqa: BLE001
            self.output = outputs
            return {"op": "done", "error": f"{type(e).__name__}: {str(e)[:200]}"}

    def fetch(self, msg):
        """The outputs of the last ``go``, as plain data (then forgotten)."""
        from .protocol import plain

        value = [plain(v) for v in self.output or []]
        self.output = None
        return {"op": "output", "value": value}


def main(preloaded: bool = False) -> None:
    """Serve the grader on descriptors 0 and 1. ``preloaded``: forked by the zygote, which loaded torch and the
    checks already (:mod:`autograder.grading.zygote`)."""
    from .protocol import FrameReader, write_frame

    # The channel moves to private descriptors; 0, 1 and 2 go nowhere, so printing costs nothing.
    chan_in, chan_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(), io.StringIO(), io.StringIO()
    reader = FrameReader(chan_in)
    # torch and the checks' chapter modules (named by the grader on the command line) load first, before any
    # submission code is known: the grader can start this process while nbgrader still prepares the notebook.
    if not preloaded:
        import importlib

        import torch

        torch.set_num_threads(1)  # one thread: students are graded in parallel instead, and timed alike
        for module in sys.argv[1:]:
            if module.isidentifier():
                importlib.import_module(f"autograder.{module}")

    def reply(value):
        try:
            write_frame(chan_out, value)
        except ValueError as e:  # something that is not plain data slipped through: say so instead
            write_frame(chan_out, {"op": "result", "record": {"missing": f"the result could not be sent ({e})"}})

    start = reader.read()
    ns, errors = run_cells(start["cells"], int(start.get("cell_timeout", 60)))
    worker = Worker(ns)
    reply({"op": "ready", "cell_errors": errors[:20]})
    handlers = {"probe": lambda m: {"op": "result", "record": worker.probe(m)},
                "stage": worker.stage, "go": worker.go, "fetch": worker.fetch}
    while True:
        msg = reader.read()
        if msg.get("op") == "bye":
            break
        reply(handlers[msg["op"]](msg))
    os._exit(0)  # no clean-up of the student's objects runs after the last answer


if __name__ == "__main__":
    main()
