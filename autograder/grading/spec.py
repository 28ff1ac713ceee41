"""What the hidden tests of an assignment check, read from the instructor's notebook; and every graded check.

Each graded test cell's hidden section calls checks such as
``check_conv2d(conv2d, part="basic", suite="hidden", seed=5923, quiet=True)``.
The grader reads those calls (with ``ast``, never executing the cell) to know,
per graded part, which learner symbol to probe with which check. The hidden
source itself never leaves the grader.

Every check is a :class:`~autograder.grading.protocol.GradedCheck`: the case-based
checks of the registry become a :class:`CaseCheck` here; the module checks
(classes, training, speed) are instances bound in their chapter modules and
discovered by :func:`graded_checks`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..registry import ENTRIES
from .protocol import GradedCheck


# --------------------------------------------------------------------------
# The case-based checks


class CaseCheck(GradedCheck):
    """A registry entry's check: the grader materialises every case (tensors included) and sends them; the
    worker calls the learner's function on each, under the exercise's rules, and returns the outcomes; the
    grader judges them with the same engine as the visible checks (``_core.run`` on outcomes)."""

    def __init__(self, entry):
        import threading

        self.entry, self.check = entry, entry.check
        self._prepared: dict = {}
        self._lock = threading.Lock()

    def prepared(self, options: dict) -> dict:
        """Every case's arguments and torch's outcome, computed once per options and shared by every student
        a grading run judges (the references do not depend on the submission)."""
        from .. import _core

        key = repr(sorted(options.items()))
        with self._lock:
            if key not in self._prepared:
                ex = self.entry.load("exercise")
                self._prepared[key] = {(i, "cpu", _core.DTYPE_NAMES[dt]): _core.prepare(ex, case, "cpu", dt)
                                       for i, case in enumerate(self.cases(options)) for dt in case.dtypes}
            return self._prepared[key]

    def cases(self, options: dict):
        return self.entry.load("cases")(options.get("part", "all"), options.get("suite", "hidden"),
                                        options.get("seed"))

    def request(self, options, secret):
        return {"calls": [{"key": f"{i}|{dev}|{dt}", "args": tuple(args), "kwargs": dict(kwargs)}
                          for (i, dev, dt), (args, kwargs, _) in self.prepared(options).items()]}

    def probe(self, fn, request):
        from .. import _core
        from .protocol import plain

        ex = self.entry.load("exercise")
        results = {}
        for call in request["calls"]:
            try:
                out = _core.probe_call(ex, fn, tuple(call["args"]), dict(call["kwargs"]))
            except NotImplementedError:
                return {"missing": "still raises NotImplementedError"}
            results[call["key"]] = {
                "value": plain(out.value),
                "error": _core.error_data(out.error) if isinstance(out.error, BaseException) else None,
                "violations": [[op, getattr(rule, "reason", str(rule))] for op, rule in out.violations],
                "modified": bool(out.modified),
            }
        return {"cases": results}

    def verdict(self, record, options, secret, symbol=None):
        from .. import _core

        if "missing" in record:
            raise _core.NotAttempted(f"`{symbol}` {record['missing']}")
        outcomes = {}
        for key, rec in record["cases"].items():
            i, dev, dt = key.split("|")
            err = rec.get("error")
            outcomes[(int(i), dev, dt)] = _core.Outcome(
                value=rec.get("value"),
                error=_core.ErrorRecord(err["type"], tuple(err["mro"]), err["message"], err["frame"]) if err else None,
                violations=[tuple(v) for v in rec.get("violations", [])], modified=bool(rec.get("modified")))
        report = _core.run(self.entry.load("exercise"), None, self.cases(options), devices=("cpu",),
                           fn_name=symbol or self.entry.function, outcomes=outcomes, prepared=self.prepared(options))
        if not report.ok:
            raise _core.CheckFailure(report.message(symbol or self.entry.function, reproduce=False))


def _chapter_modules():
    import autograder

    return sorted(m.name for m in pkgutil.iter_modules(autograder.__path__) if re.fullmatch(r"ch\d\d", m.name))


@functools.cache
def graded_checks() -> dict[str, GradedCheck]:
    """Every graded check by the name the hidden tests call: the registry's case checks, and every
    :class:`GradedCheck` instance a chapter module binds (discovered, not listed)."""
    found: dict[str, GradedCheck] = {}
    for entry in ENTRIES:
        found.setdefault(entry.check, CaseCheck(entry))
    for name in _chapter_modules():
        module = importlib.import_module(f"autograder.{name}")
        for obj in vars(module).values():
            if isinstance(obj, GradedCheck) and obj.check:
                found[obj.check] = obj
    return found


def check_module(check: str) -> str:
    """The module that defines a check (for the worker, which imports only what it needs)."""
    obj = graded_checks()[check]
    return obj.entry.module if isinstance(obj, CaseCheck) else type(obj).__module__.rsplit(".", 1)[-1]


def load_check(check: str, module: str) -> GradedCheck:
    """In the worker: the check named ``check``, importing only its chapter module."""
    if not re.fullmatch(r"ch\d\d", module):
        raise ValueError(f"not a chapter module: {module!r}")
    mod = importlib.import_module(f"autograder.{module}")
    for obj in vars(mod).values():
        if isinstance(obj, GradedCheck) and obj.check == check:
            return obj
    return CaseCheck(next(e for e in ENTRIES if e.check == check))


# --------------------------------------------------------------------------
# The hidden tests of a solution notebook


@dataclass(frozen=True)
class Probe:
    check: str                  # e.g. "check_conv2d"
    symbol: str                 # the learner's name, e.g. "conv2d"
    kwargs: tuple = ()          # (("part", "basic"), ("seed", 5923), ...) — hashable

    @property
    def options(self) -> dict:
        return dict(self.kwargs)

    def for_offering(self, secret: bytes) -> dict:
        """The probe's options with its seed drawn from the course offering's secret: the published
        solutions' seeds do not predict the cases a grading run uses (the same for every student)."""
        options = self.options
        digest = hashlib.sha256(secret + repr((self.check, self.symbol, self.kwargs)).encode()).digest()
        options["seed"] = int.from_bytes(digest[:4], "big") % 1_000_000 + 10_000
        return options


@dataclass
class GradedPart:
    grade_id: str
    points: float
    probes: list[Probe] = field(default_factory=list)


def _hidden_source(source: str) -> str:
    m = re.search(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", source, flags=re.S)
    return m.group(1) if m else ""


def parse_probes(source: str) -> list[Probe]:
    probes = []
    for node in ast.walk(ast.parse(_hidden_source(source))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_")
                and node.args and isinstance(node.args[0], ast.Name)):
            kwargs = tuple(sorted((k.arg, ast.literal_eval(k.value)) for k in node.keywords
                                  if k.arg not in ("quiet",)))
            probes.append(Probe(node.func.id, node.args[0].id, kwargs))
    return probes


def graded_parts(solution_notebook: Path) -> list[GradedPart]:
    """The graded parts of an instructor's notebook, in order. (Read as plain JSON: nbformat costs a second to
    import, before any grading could start.)"""
    import json

    from ..notebooks import graded_cells

    parts = []
    checks = graded_checks()
    for g in graded_cells(json.loads(Path(solution_notebook).read_text(encoding="utf-8"))):
        probes = parse_probes(g.source)
        if not probes:
            raise ValueError(f"{solution_notebook}: graded cell {g.grade_id} has no hidden check call to grade by")
        for p in probes:
            if p.check not in checks:
                raise ValueError(f"{g.grade_id}: unknown check {p.check}")
        parts.append(GradedPart(g.grade_id, g.points, probes))
    return parts
