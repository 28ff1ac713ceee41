"""Every named mistake of every registered exercise, through the message builder (autograder/_core.py).

A mistake's sentence reaches every learner who makes it: no doubled word, no "1 ... cases", the "likely
mistake" line present, and its stable id recorded where a class report reads it.
"""

from __future__ import annotations

import re

import pytest
import torch

from autograder import _core, registry

DOUBLED = re.compile(r"\b([A-Za-z_]\w*)\s+\1\b", re.IGNORECASE)
ONE_PLURAL = re.compile(r"\b1 (?:[a-z]+ )?cases\b")


def named_mistakes():
    for check in registry.case_checks():
        for mistake in (*check.exercise.mistakes, *_core.ENGINE_MISTAKES):
            yield pytest.param(check, mistake, id=f"{check.check}-{mistake.id}")


def report_of(check, mistake, failing: int, cases: int) -> _core.Report:
    case = check.cases("all")[0]
    report = _core.Report(check.exercise.name, cases=cases)
    report.failures = [_core.Failure(case, "cpu", case.dtypes[0], "values differ", mistake.name,
                                     mistake_id=mistake.id) for _ in range(failing)]
    report.failed_features = [check.exercise.features(case) if check.exercise.features else {}] * failing
    report.passed_features = [{}] * (cases - failing)
    return report


def text_of(message: str) -> str:
    """The message less its reproduce line (Python, not prose)."""
    return "\n".join(ln for ln in message.splitlines() if not ln.lstrip().startswith("reproduce:"))


@pytest.mark.parametrize("check, mistake", list(named_mistakes()))
@pytest.mark.parametrize("failing, cases", [(1, 1), (1, 2), (3, 5)])
def test_every_named_mistake_reads_cleanly_and_records_its_id(check, mistake, failing, cases):
    report = report_of(check, mistake, failing, cases)
    message = report.message(check.function)
    text = text_of(message)
    assert not DOUBLED.search(text), f"a doubled word: {DOUBLED.search(text).group(0)!r} in\n{text}"
    assert not ONE_PLURAL.search(text), f"'1 ... cases' in\n{text}"
    assert f"  likely mistake: {mistake.name}." in text
    assert ".." not in text.replace("...", ""), "a mistake's name ends without a full stop: the line adds one"
    assert report.named_mistake() == mistake.id
    failure = _core.CheckFailure(message, mistake=report.named_mistake())
    assert failure.mistake == mistake.id


@pytest.mark.parametrize("check", registry.case_checks(), ids=lambda c: c.check)
def test_no_pattern_line_repeats_a_clause(check):
    """A pattern line names each feature once ("padding > 0 and ... with padding > 0" says it twice)."""
    for case in check.cases("all"):
        feats = check.exercise.features(case) if check.exercise.features else {}
        report = _core.Report(check.exercise.name, cases=2)
        report.failures = [_core.Failure(case, "cpu", case.dtypes[0], "values differ")]
        report.failed_features = [{k: v for k, v in feats.items() if k != "invalid arguments"}]
        report.passed_features = [{}]
        pattern = report.pattern()
        if not pattern:
            continue
        shared = pattern[len("every failing case has "):pattern.index(";")]
        clauses = re.split(r"\s+(?:and|with)\s+", shared)
        assert len(clauses) == len(set(clauses)), pattern
        assert "the 1 valid case without" in pattern and "passes." in pattern


def test_the_engine_s_own_mistakes_have_their_ids():
    assert {m.id for m in _core.ENGINE_MISTAKES} == {"float32-accumulation", "output-on-wrong-device"}
    assert torch.device("meta").type == _core.META
