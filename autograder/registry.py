"""Every check of the course, discovered; which assignment uses which, read from ``solutions/``.

Nothing here is a list to keep up to date. The checks are the :class:`~autograder.contract.GradedCheck`
instances the chapter modules (``autograder/chNN.py``) bind at module level; the assignments are the folders
of ``solutions/``; which learner function each assignment's graded parts check, and with which check, is read
from the hidden test calls of its solution notebook (``check_conv2d(conv2d, part="basic", ...)``).
Grading, ``make bench``, ``make check`` and the tests all read it from here.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path

from .contract import CaseCheck, GradedCheck
from .paths import SOLUTIONS

CHAPTER = re.compile(r"ch\d\d")


def chapter_modules() -> list[str]:
    """The chapter modules' names (``ch01`` ...), found in the package."""
    import autograder

    return sorted(m.name for m in pkgutil.iter_modules(autograder.__path__) if CHAPTER.fullmatch(m.name))


def _declared(module) -> list[GradedCheck]:
    """The checks a chapter module declares itself (not the ones it imports from another chapter)."""
    found = []
    for obj in vars(module).values():
        if isinstance(obj, GradedCheck) and obj.check:
            home = obj.module if isinstance(obj, CaseCheck) else type(obj).__module__
            if home == module.__name__ and obj not in found:
                found.append(obj)
    return found


@functools.cache
def checks() -> dict[str, GradedCheck]:
    """Every check, by the name the hidden tests call (imports every chapter module)."""
    found: dict[str, GradedCheck] = {}
    for name in chapter_modules():
        for obj in _declared(importlib.import_module(f"autograder.{name}")):
            if obj.check in found:
                raise ValueError(f"two checks are named {obj.check!r}")
            found[obj.check] = obj
    return found


def case_checks() -> list[CaseCheck]:
    """The checks that compare a function with torch case by case, in chapter order."""
    return [c for c in checks().values() if isinstance(c, CaseCheck)]


def module_of(check: str) -> str:
    """The chapter module (``ch06``) that declares a check: all a sandboxed worker needs to import for it."""
    obj = checks()[check]
    return (obj.module if isinstance(obj, CaseCheck) else type(obj).__module__).rsplit(".", 1)[-1]


def find(check: str, module: str) -> GradedCheck:
    """The check named ``check`` in chapter module ``module``, importing only that module (the worker's way)."""
    if not CHAPTER.fullmatch(module):
        raise ValueError(f"not a chapter module: {module!r}")
    for obj in _declared(importlib.import_module(f"autograder.{module}")):
        if obj.check == check:
            return obj
    raise KeyError(f"{module} declares no check {check!r}")


def assignments(solutions: Path = SOLUTIONS) -> list[str]:
    """The assignments: one folder each in ``solutions/``, holding its notebook of the same name."""
    return sorted(p.name for p in solutions.iterdir() if (p / f"{p.name}.ipynb").is_file())


@dataclass(frozen=True)
class Use:
    """One check call of an assignment's hidden tests: graded part, learner symbol, check, its options."""

    aid: str
    grade_id: str
    symbol: str
    check: str
    options: tuple


@functools.cache
def uses() -> tuple[Use, ...]:
    """Every hidden check call of every assignment, in order."""
    from .grading.spec import graded_parts

    found = []
    for aid in assignments():
        for part in graded_parts(SOLUTIONS / aid / f"{aid}.ipynb"):
            found += [Use(aid, part.grade_id, p.symbol, p.check, p.kwargs) for p in part.calls]
    return tuple(found)


def kernels() -> list[tuple[str, str, GradedCheck]]:
    """(assignment, learner symbol, check) once each: what the learners implement, and how it is checked."""
    seen: dict = {}
    for u in uses():
        seen.setdefault((u.aid, u.symbol, u.check), checks()[u.check])
    return [(aid, symbol, check) for (aid, symbol, _), check in seen.items()]
