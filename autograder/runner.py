"""The grading sandbox's entry point: run one submission's code, probe its functions.

    python -m autograder.runner JOB.json

Runs *inside* the sandbox (bubblewrap, unprivileged user, resource limits).
It executes the submission's own code cells, then calls the learner's
functions on the grader-chosen cases and writes the raw results — tensors,
exception names, operator-rule violations — as plain data to ``results.pt``.
It decides nothing: the verdicts are computed by the grader, in a process
the submission never ran in, from these results. Whatever the submission
patches or prints here can only change its own results.

Each graded part is probed in a forked child with its own time limit, so a
loop that never ends costs that part only.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import traceback


def _silence_stdio():
    """Printed output goes nowhere: a submission that prints gigabytes costs nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = io.StringIO()
    sys.stderr = io.StringIO()


def _plain(value, depth=0):
    """Results as plain data: exact torch.Tensor copies, ints, floats, lists; anything else by type name."""
    import torch

    if type(value) is torch.Tensor:
        return value.detach().to("cpu").clone().contiguous()
    if value is None or type(value) in (int, float, bool, str):
        return value
    if type(value) in (tuple, list) and depth < 2:
        return {"__seq__": type(value).__name__, "items": [_plain(v, depth + 1) for v in value]}
    try:
        import numpy as np

        if isinstance(value, np.integer):
            return int(value)
    except ImportError:  # pragma: no cover
        pass
    return {"__type__": type(value).__name__}


def _error(exc):
    frame = ""
    for fr in reversed(traceback.extract_tb(exc.__traceback__)):
        if "site-packages" not in (fr.filename or "") and "autograder" not in (fr.filename or ""):
            frame = f" (at line {fr.lineno} of your code: `{(fr.line or '').strip()}`)"
            break
    return {"type": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
            "message": str(exc)[:500], "frame": frame}


class CellTimeout(BaseException):
    """Raised by the alarm in a cell that runs too long (a BaseException: `except Exception` won't catch it)."""


def run_cells(notebook_path, log, cell_timeout=60):
    """Execute the submission's code cells (not its test cells) as one module; note every error."""
    def alarm(signum, frame):
        raise CellTimeout(f"the cell ran longer than {cell_timeout} s")

    signal.signal(signal.SIGALRM, alarm)
    from IPython.core.inputtransformer2 import TransformerManager

    with open(notebook_path) as f:
        nb = json.load(f)
    ns = {"__name__": "__main__"}
    transform = TransformerManager().transform_cell
    for i, cell in enumerate(nb.get("cells", [])):
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if cell.get("cell_type") != "code" or meta.get("grade"):
            continue  # test cells: the grader decides, not the notebook
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        try:
            signal.alarm(cell_timeout)
            exec(compile(transform(source), f"<cell {i}>", "exec"), ns)
        except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
            log["cell_errors"].append({"cell": i, "grade_id": meta.get("grade_id"), **_error(e)})
        finally:
            signal.alarm(0)
    return ns


def probe_part(ns, probe, log):
    """The learner's results for one probe (a check call of the hidden tests)."""

    from . import _core
    from .gradespec import MODULE_CHECKS, entry_for, module_for

    fn = ns.get(probe["symbol"])
    if fn is None:
        return {"missing": f"`{probe['symbol']}` is not defined (did its cell run without errors?)"}
    options = dict(probe["kwargs"])
    if probe["check"] in MODULE_CHECKS:
        return {"module": module_for(probe["check"]).grading_probe(fn, options, probe.get("loaded"))}
    entry = entry_for(probe["check"])
    ex, make_cases = entry.load("exercise"), entry.load("cases")
    cases = make_cases(options.get("part", "all"), options.get("suite", "hidden"), options.get("seed"))
    results = {}
    for index, case in enumerate(cases):
        for dtype in case.dtypes:
            try:
                out = _core.probe(ex, fn, case, "cpu", dtype)
            except NotImplementedError:
                return {"missing": f"`{probe['symbol']}` still raises NotImplementedError"}
            results[f"{index}|cpu|{_core.DTYPE_NAMES[dtype]}"] = {
                "value": _plain(out.value),
                "error": _error(out.error) if isinstance(out.error, BaseException) else None,
                "violations": [[op, getattr(rule, "reason", str(rule))] for op, rule in out.violations],
                "modified": bool(out.modified),
            }
    return {"cases": results}


def main(job_path):
    with open(job_path) as f:
        job = json.load(f)
    _silence_stdio()
    import torch

    torch.set_num_threads(1)  # one thread: fork-safe, and students are graded in parallel instead
    log = {"cell_errors": [], "parts": {}, "started": time.time()}
    out_dir = job["out"]

    def save(name, data):
        tmp = os.path.join(out_dir, name + ".tmp")
        torch.save(data, tmp)
        os.replace(tmp, os.path.join(out_dir, name))

    # Import the chapters' check modules (and pay the op guard's one-time set-up) before the
    # submission's code runs and before forking, so that no child pays it again.
    from .gradespec import MODULE_CHECKS, entry_for
    for probe in job["probes"]:
        if probe["check"] in MODULE_CHECKS:
            __import__(f"autograder.{MODULE_CHECKS[probe['check']][0]}")
        else:
            entry_for(probe["check"]).load("exercise")
    # Grader-chosen inputs (e.g. held-out images) are read before any submission code runs.
    for probe in job["probes"]:
        if probe.get("data"):
            probe["loaded"] = torch.load(probe["data"], weights_only=True)
    ns = run_cells(job["notebook"], log, job.get("cell_timeout", 60))
    with open(os.path.join(out_dir, "log.json"), "w") as f:
        json.dump({"cell_errors": log["cell_errors"]}, f)
    for k, probe in enumerate(job["probes"]):
        pid = os.fork()
        if pid == 0:  # the child probes one part and exits without running any cleanup of the student's
            try:
                save(f"probe{k}.pt", probe_part(ns, probe, log))
            except BaseException as e:  # noqa: BLE001
                try:
                    save(f"probe{k}.pt", {"missing": f"probing failed: {type(e).__name__}: {str(e)[:200]}"})
                except BaseException:  # noqa: BLE001
                    pass
            os._exit(0)
        deadline = time.time() + job["part_timeout"]
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.time() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                save(f"probe{k}.pt", {"missing": f"timed out after {job['part_timeout']} s"})
                break
            time.sleep(0.02)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
