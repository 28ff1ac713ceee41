"""What the hidden tests of an assignment check, read from the instructor's notebook; and every graded check.

Each graded test cell's hidden section calls checks such as
``check_conv2d(conv2d, part="basic", suite="hidden", seed=5923, quiet=True)``.
The grader reads those calls (with ``ast``, never executing the cell) to know,
per graded part, which learner symbol to probe with which check. The hidden
source itself never leaves the grader.

Every check is a :class:`~autograder.contract.GradedCheck` a chapter module declares
(:mod:`autograder.contract`), found through :mod:`autograder.registry`.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import registry
from ..contract import GradedCheck

__all__ = ["GradedCheck", "GradedPart", "CheckCall", "check_module", "graded_checks", "graded_parts",
           "load_check", "parse_calls", "require_registered"]


def graded_checks() -> dict[str, GradedCheck]:
    """Every graded check by the name the hidden tests call (:func:`autograder.registry.checks`)."""
    return registry.checks()


def check_module(check: str) -> str:
    """The chapter module that declares a check (for the worker, which imports only what it needs)."""
    return registry.module_of(check)


def load_check(check: str, module: str) -> GradedCheck:
    """In the worker: the check named ``check``, importing only its chapter module."""
    return registry.find(check, module)


# --------------------------------------------------------------------------
# The hidden tests of a solution notebook


@dataclass(frozen=True)
class CheckCall:
    """One hidden check call: the check, the learner's symbol it is called on, and its options."""

    check: str                  # e.g. "check_conv2d"
    symbol: str                 # the learner's name, e.g. "conv2d"
    kwargs: tuple = ()          # (("part", "basic"), ("seed", 5923), ...) — hashable

    @property
    def options(self) -> dict:
        """The call's keyword arguments, as a dict."""
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
    """One graded cell of the instructor's notebook: its id, its points and the check calls that grade it."""

    grade_id: str
    points: float
    calls: list[CheckCall] = field(default_factory=list)


def _hidden_source(source: str) -> str:
    m = re.search(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", source, flags=re.S)
    return m.group(1) if m else ""


def parse_calls(source: str) -> list[CheckCall]:
    """The check calls in a cell's hidden tests, read with ``ast`` (never run); ``quiet`` left out."""
    calls = []
    for node in ast.walk(ast.parse(_hidden_source(source))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_")
                and node.args and isinstance(node.args[0], ast.Name)):
            kwargs = tuple(sorted((k.arg, ast.literal_eval(k.value)) for k in node.keywords
                                  if k.arg not in ("quiet",)))
            calls.append(CheckCall(node.func.id, node.args[0].id, kwargs))
    return calls


def graded_parts(solution_notebook: Path, resolve: bool = True) -> list[GradedPart]:
    """The graded parts of an instructor's notebook, in order. (Read as plain JSON: nbformat costs a second to
    import, before any grading could start.)"""
    import json

    from ..notebooks import graded_cells

    parts = []
    for g in graded_cells(json.loads(Path(solution_notebook).read_text(encoding="utf-8"))):
        calls = parse_calls(g.source)
        if not calls:
            raise ValueError(f"{solution_notebook}: graded cell {g.grade_id} has no hidden check call to grade by")
        parts.append(GradedPart(g.grade_id, g.points, calls))
    if resolve:
        require_registered(parts)
    return parts


def require_registered(parts: list[GradedPart]) -> None:
    """Raise ValueError if a part calls a check the registry lacks (this imports every chapter module, and torch)."""
    checks = graded_checks()
    for part in parts:
        for call in part.calls:
            if call.check not in checks:
                raise ValueError(f"{part.grade_id}: unknown check {call.check}")
