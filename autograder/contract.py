"""The check contract: what a chapter module declares so that everything else finds its checks.

A chapter module (``autograder/chNN.py``) binds each of its checks at module level as an instance of
:class:`GradedCheck`:

* a :class:`CaseCheck` for a function compared with torch case by case: the exercise (reference, rules,
  mistake models), the case generator, the parts and the signature. It makes the learner-facing
  ``check_<function>`` too (:meth:`CaseCheck.visible`), and its grader and worker sides;
* a subclass of :class:`GradedCheck` of the chapter's own for anything else (a module class, training,
  speed), implementing the grader/worker protocol below.

:func:`autograder.registry.checks` discovers them; grading, ``make bench``, ``make check`` and the tests read
that registry. Which assignment uses which check is read from the hidden test calls of ``solutions/``.

The protocol, as the grader drives a check (:mod:`autograder.grading`):

* grader side (never sees student code): ``secret`` (drawn once per grading run, kept by the grader),
  ``request`` (plain data sent to the worker after the cells ran: the inputs), ``verdict`` (judges the
  worker's record; raises a learner-facing ``CheckFailure`` or returns);
* worker side: ``probe`` (calls the learner's object on the request, returns plain data);
* a ``timed`` check is measured by the grader: it provides ``timed_inputs``, ``timed_problem``, ``give_up``
  and ``verdict`` over the grader's measurements.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable


class GradedCheck:
    """A graded check (see the module's docstring). ``check`` is the function name the hidden tests call;
    ``bench_class`` the size of the class ``make bench`` grades for an assignment that uses it (0: none);
    ``challenge_ratio``, for a timed check, an optional target worth no points, reported beside the ratio."""

    check: str = ""
    timed: bool = False
    bench_class: int = 0
    challenge_ratio: float | None = None

    def secret(self, options: dict) -> Any:
        """Grader side: what stays with the grader for one grading run (e.g. held-out labels)."""
        return None

    def request(self, options: dict, secret) -> dict:
        """Grader side: the inputs the worker receives, as plain data."""
        return {}

    def probe(self, obj, request: dict) -> dict:
        """Worker side: call the learner's object on the request; the outcomes as plain data."""
        raise NotImplementedError

    def verdict(self, record: dict, options: dict, secret) -> None:
        """Grader side: judge the worker's record; raise CheckFailure (or NotAttempted) or return."""
        raise NotImplementedError


def module_check_prologue(cls, name: str, signature: str, part: str, parts: tuple[str, ...]) -> tuple[str, ...]:
    """What every visible check of a learner's ``nn.Module`` class checks first: it is such a class, its
    ``__init__`` keeps torch's signature (``signature`` includes ``self``), and ``part`` is one of ``parts``
    (or "all"). Returns the parts to check."""
    import inspect

    from torch import nn

    from ._core import CheckFailure
    from ._signature import check_signature

    __tracebackhide__ = True  # noqa: F841
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise CheckFailure(f"{name} should be a class that subclasses torch.nn.Module; got {cls!r:.80}.")
    check_signature(cls.__init__, f"{name}.__init__", signature)
    chosen = parts if part == "all" else (part,)
    if any(p not in parts for p in chosen):
        raise ValueError(f"part must be one of {parts + ('all',)}, got {part!r}")
    return chosen


@dataclass(frozen=True)
class BenchShape:
    """A kernel's ``make bench`` shape: ``inputs(device)`` gives (args, kwargs) for the learner's function and
    for ``torch_call``, torch's counterpart, named ``baseline`` in the table."""

    label: str
    inputs: Callable
    baseline: str
    torch_call: Callable


def bench_inputs(device: str, *args, **kwargs) -> tuple[tuple, dict]:
    """(args, kwargs) for a :class:`BenchShape`: each tuple of ints becomes a random tensor of that shape
    (drawn from a fixed seed, on ``device``); every other value is passed as it is."""
    import torch

    g = torch.Generator().manual_seed(0)

    def value(v):
        if isinstance(v, tuple) and v and all(isinstance(i, int) for i in v):
            return torch.randn(*v, generator=g).to(device)
        return v

    return tuple(value(a) for a in args), kwargs


class CaseCheck(GradedCheck):
    """A function checked against torch case by case: the engine of :mod:`autograder._core` runs the cases
    (visible checks in the learner's process; graded checks split between the grader, which materialises the
    cases and judges the outcomes, and the sandboxed worker, which only calls the learner's function)."""

    def __init__(self, check: str, function: str, exercise, cases: Callable, parts: tuple[str, ...],
                 signature: str, doc: str, bench: BenchShape | None = None, bench_class: int = 0):
        if tuple(getattr(cases, "parts", parts)) != tuple(parts):
            raise ValueError(f"{check}: the parts {parts} are not its case generator's {cases.parts}")
        self.check, self.function, self.exercise, self.cases = check, function, exercise, cases
        self.parts, self.signature, self.doc, self.bench, self.bench_class = parts, signature, doc, bench, bench_class
        self.module = sys._getframe(1).f_globals.get("__name__", "")  # the chapter module declaring it
        self._prepared: dict = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CaseCheck({self.check!r})"

    # ---- the learner's side

    def visible(self) -> Callable:
        """The learner-facing ``check_<function>(fn, [part,] suite, seed, quiet)`` that notebooks import. It returns
        None (a passing test cell shows only its ✔ lines); :meth:`report` gives the report."""
        this = self

        def check_many(fn, part: str = "all", suite: str = "visible", seed: int | None = None, quiet: bool = False):
            __tracebackhide__ = True  # noqa: F841
            this.report(fn, part, suite, seed, quiet=quiet)

        def check_one(fn, suite: str = "visible", seed: int | None = None, quiet: bool = False):
            __tracebackhide__ = True  # noqa: F841
            this.report(fn, "all", suite, seed, quiet=quiet)

        fn = check_one if self.parts == ("all",) else check_many
        fn.__name__ = fn.__qualname__ = self.check
        fn.__module__ = self.module
        fn.__doc__ = self.doc + ("" if self.parts == ("all",) else f" Parts: {', '.join(self.parts)}.")
        return fn

    def report(self, fn, part: str = "all", suite: str = "visible", seed: int | None = None, *, quiet: bool = True,
               devices=None):
        """What the visible check does (signature, cases, policy; raises CheckFailure on a failure), returning the
        pass's :class:`autograder._core.Report` (how many cases, dtypes, devices, notes): for tests and tools."""
        from ._core import check_report
        from ._signature import check_signature

        __tracebackhide__ = True  # noqa: F841
        check_signature(fn, self.function, self.signature)
        return check_report(self.exercise, fn, self.cases(part, suite, seed), quiet=quiet, devices=devices)

    # ---- the grader's side

    def options_cases(self, options: dict):
        """The cases that grading options select (part, suite, seed)."""
        return self.cases(options.get("part", "all"), options.get("suite", "hidden"), options.get("seed"))

    def prepared(self, options: dict) -> dict:
        """Every case's arguments and torch's outcome, computed once per options and shared by every student
        a grading run judges (the references do not depend on the submission). The device check's case
        (:func:`autograder._core.device_check`) is there too, under the device ``meta``."""
        from . import _core

        key = repr(sorted(options.items()))
        with self._lock:
            if key not in self._prepared:
                cases = self.options_cases(options)
                ready = {(i, "cpu", _core.DTYPE_NAMES[dt]): _core.prepare(self.exercise, case, "cpu", dt)
                         for i, case in enumerate(cases) for dt in case.dtypes}
                found = _core.device_case(cases) if self.exercise.returns == "tensor" else None
                if found is not None:
                    i, case = found
                    dt = case.dtypes[0]
                    try:
                        meta = _core.prepare(self.exercise, case, _core.META, dt)
                    except Exception:  # noqa: BLE001 - the case's set-up needs data: no device check
                        meta = None
                    if meta is not None and meta[2].error is None:
                        ready[(i, _core.META, _core.DTYPE_NAMES[dt])] = meta
                self._prepared[key] = ready
            return self._prepared[key]

    def request(self, options, secret):
        """Grader side: every prepared call (key, args, kwargs) for the worker to make. Tensors on ``meta`` cannot
        cross the pipe: the device check's call is sent with its CPU arguments and ``"device": "meta"``, and the
        worker moves them to ``meta`` itself."""
        prepared = self.prepared(options)
        calls = []
        for (i, dev, dt), (args, kwargs, _) in prepared.items():
            if dev == "meta":
                args, kwargs, _ = prepared[(i, "cpu", dt)]
            calls.append({"key": f"{i}|{dev}|{dt}", "args": tuple(args), "kwargs": dict(kwargs),
                          **({"device": "meta"} if dev == "meta" else {})})
        return {"calls": calls}

    def verdict(self, record, options, secret, symbol=None):
        """Grader side: rebuild the outcomes from the record and judge them as a visible check does (no repro line)."""
        from . import _core

        if "missing" in record:
            raise _core.NotAttempted(f"`{symbol}` {record['missing']}")
        if "stub" in record:
            raise _core.HelperNotImplemented(str(record["stub"]))
        outcomes = {}
        for key, rec in record["cases"].items():
            i, dev, dt = key.split("|")
            err = rec.get("error")
            value = rec.get("value")
            if dev == _core.META:
                value = _core.undescribe_output(value)
            outcomes[(int(i), dev, dt)] = _core.Outcome(
                value=value,
                error=_core.ErrorRecord(err["type"], tuple(err["mro"]), err["message"], err["frame"],
                                        tuple(err.get("stub") or ())) if err else None,
                violations=[tuple(v) for v in rec.get("violations", [])], modified=bool(rec.get("modified")))
        report = _core.run(self.exercise, None, self.options_cases(options), devices=("cpu",),
                           fn_name=symbol or self.function, outcomes=outcomes, prepared=self.prepared(options))
        if not report.ok:
            raise _core.CheckFailure(report.message(symbol or self.function, reproduce=False),
                                     mistake=report.named_mistake())

    # ---- the worker's side

    def probe(self, fn, request):
        """Worker side: call the learner's function on each call of the request; the outcomes as plain data.
        A call marked ``"device": "meta"`` runs on its arguments moved to ``meta``; its result is sent as shapes,
        dtypes and devices (:func:`autograder._core.describe_output`)."""
        from . import _core
        from .grading.protocol import plain

        results = {}
        for call in request["calls"]:
            args, kwargs = tuple(call["args"]), dict(call["kwargs"])
            meta = call.get("device") == _core.META
            try:
                if meta:
                    out = _core.call_learner(self.exercise, fn, *_core.meta_inputs(args, kwargs))
                else:
                    out = _core.probe_call(self.exercise, fn, args, kwargs)
            except _core.HelperNotImplemented as e:
                return {"stub": str(e)}
            except NotImplementedError:
                return {"missing": "still raises NotImplementedError"}
            results[call["key"]] = {
                "value": _core.describe_output(out.value) if meta else plain(out.value),
                "error": _core.error_data(out.error) if isinstance(out.error, BaseException) else None,
                "violations": [[op, getattr(rule, "reason", str(rule))] for op, rule in out.violations],
                "modified": bool(out.modified),
            }
        return {"cases": results}
