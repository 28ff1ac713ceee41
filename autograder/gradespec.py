"""What the hidden tests of an assignment check, read from the instructor's notebook.

Each graded test cell's hidden section calls checks such as
``check_conv2d(conv2d, part="basic", suite="hidden", seed=5923, quiet=True)``.
The grader reads those calls (with ``ast``, never executing the cell) to know,
per graded part, which learner symbol to probe with which cases. The hidden
source itself never leaves the grader.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from .registry import ENTRIES

#: checks that are not case-based: module checks. Each chapter module named here provides
#: ``grading_probe(symbol, options, data)`` (runs in the sandbox, returns plain data) and
#: ``grading_verdict(record, options, secret)`` (runs in the grader); and, where the sandbox must be given
#: inputs it cannot predict, ``grading_secret(options)`` and ``grading_data(options, secret)``.
MODULE_CHECKS = {"check_conv_transpose2d_module": ("ch06", "ConvTranspose2d"),
                 "check_segnet": ("ch08", "SegNet"),
                 "check_conv_transpose2d_speed": ("ch09", "conv_transpose2d")}


def module_for(check: str):
    import importlib

    return importlib.import_module(f"autograder.{MODULE_CHECKS[check][0]}")


def module_inputs(check: str, options: dict):
    """``(secret, data)`` for one module-check probe: the secret stays with the grader, the data goes to the
    sandbox. ``(None, None)`` for checks whose inputs are fixed."""
    module = module_for(check)
    if not hasattr(module, "grading_secret"):
        return None, None
    secret = module.grading_secret(options)
    return secret, module.grading_data(options, secret)


@dataclass(frozen=True)
class Probe:
    check: str                  # e.g. "check_conv2d"
    symbol: str                 # the learner's name, e.g. "conv2d"
    kwargs: tuple = ()          # (("part", "basic"), ("seed", 5923), ...) — hashable

    @property
    def options(self) -> dict:
        return dict(self.kwargs)


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
    from . import notebooks as nbs  # nbformat takes ~1 s to import: only the grader needs it

    nb = nbs.read(solution_notebook)
    parts = []
    for g in nbs.graded_cells(nb):
        probes = parse_probes(g.source)
        if not probes:
            raise ValueError(f"{solution_notebook}: graded cell {g.grade_id} has no hidden check call to grade by")
        for p in probes:
            if p.check not in MODULE_CHECKS and not any(e.check == p.check for e in ENTRIES):
                raise ValueError(f"{g.grade_id}: unknown check {p.check}")
        parts.append(GradedPart(g.grade_id, g.points, probes))
    return parts


def entry_for(check: str):
    return next(e for e in ENTRIES if e.check == check)
