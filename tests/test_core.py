"""The check engine (autograder/_core.py, autograder/_cases.py) on an exercise of its own, apart from any chapter.

One engine for both paths: a visible check calls the learner's function here; the grader judges outcomes a
sandboxed worker recorded (``run(..., outcomes=...)``). Both must reach the same verdict, in the same words.
"""

from __future__ import annotations

import pytest
import torch

from autograder import _core
from autograder._cases import Case, Exercise, Mistake, T, case_generator
from autograder._core import CheckFailure, NotAttempted


def reference_double(input, factor=2):
    if factor < 1:
        raise ValueError("factor must be positive")
    return input * factor


EX = Exercise(name="double", reference=reference_double,
              mistakes=(Mistake("the factor is ignored (always 2)", lambda input, factor=2: input * 2,
                                id="factor-ignored"),))


@case_generator(("small", "large"), salt="core-test-")
def cases(part, suite, base, rng):
    size = 3 if part == "small" else 9
    out = [Case(("input",), (T((1, 2, size, size)),), {"factor": rng.randint(1, 4)}, seed=base * 10 + k)
           for k in range(3 if suite == "visible" else 6)]
    out.append(Case(("input",), (T((1, 1, 2, 2)),), {"factor": 0}, seed=base, label="invalid: factor 0",
                    invalid=True))
    return out


def good(input, factor=2):
    if factor < 1:
        raise ValueError("no")
    return input * factor


def ignores_factor(input, factor=2):
    if factor < 1:
        raise ValueError("no")
    return input * 2


def accepts_anything(input, factor=2):
    return input * factor


def test_the_generator_expands_all_checks_its_part_and_suite_and_draws_by_seed():
    assert len(cases("all")) == len(cases("small")) + len(cases("large"))
    with pytest.raises(ValueError, match="part must be one of"):
        cases("medium")
    with pytest.raises(ValueError, match="suite must be"):
        cases("small", "secret")
    a, b = cases("small", "hidden", 5), cases("small", "hidden", 6)
    assert [c.kwargs for c in a] == [c.kwargs for c in cases("small", "hidden", 5)]
    x1, _ = a[0].materialise()
    x2, _ = cases("small", "hidden", 5)[0].materialise()
    assert torch.equal(x1[0], x2[0]), "the same seed draws the same tensors"
    assert [c.seed for c in a] != [c.seed for c in b]


def test_a_right_function_passes_and_the_report_says_how_many_cases():
    report = _core.run(EX, good, cases("all"), devices=("cpu",))
    assert report.ok and str(len(cases("all"))) in report.summary()


def test_a_known_mistake_is_named():
    report = _core.run(EX, ignores_factor, cases("all"), devices=("cpu",))
    assert not report.ok and "the factor is ignored" in report.message("double")
    assert report.named_mistake() == "factor-ignored"
    named = {(f.mistake, f.mistake_id) for f in report.failures}
    assert named == {("the factor is ignored (always 2)", "factor-ignored")}


def test_an_invalid_case_needs_a_raise_and_says_so():
    report = _core.run(EX, accepts_anything, cases("small"), devices=("cpu",))
    message = report.message("double")
    assert not report.ok and "torch rejects these arguments" in message and "invalid" in message


def test_not_implemented_is_not_attempted_rather_than_a_failure():
    def unwritten(input, factor=2):
        raise NotImplementedError()

    with pytest.raises(NotAttempted):
        _core.check(EX, unwritten, cases("small"), quiet=True, devices=("cpu",))


@pytest.mark.parametrize("fn", [good, ignores_factor, accepts_anything], ids=lambda f: f.__name__)
def test_the_grader_path_reaches_the_visible_path_s_verdict_in_the_same_words(fn):
    """Outcomes recorded as a worker records them, judged on prepared references, as the grader does."""
    from autograder.grading.protocol import plain

    cs = cases("all", "hidden", 11)
    visible = _core.run(EX, fn, cs, devices=("cpu",), fn_name="double")
    prepared, outcomes = {}, {}
    for i, case in enumerate(cs):
        for dt in case.dtypes:
            key = (i, "cpu", _core.DTYPE_NAMES[dt])
            prepared[key] = _core.prepare(EX, case, "cpu", dt)
            args, kwargs, _ = prepared[key]
            out = _core.probe_call(EX, fn, tuple(args), dict(kwargs))
            err = _core.error_data(out.error) if isinstance(out.error, BaseException) else None
            outcomes[key] = _core.Outcome(value=plain(out.value), violations=list(out.violations),
                                          error=_core.ErrorRecord(err["type"], tuple(err["mro"]), err["message"],
                                                                  err["frame"]) if err else None)
    graded = _core.run(EX, None, cs, devices=("cpu",), fn_name="double", outcomes=outcomes, prepared=prepared)
    assert graded.ok == visible.ok
    assert graded.named_mistake() == visible.named_mistake()
    if not visible.ok:
        assert graded.message("double", reproduce=False) == visible.message("double", reproduce=False)


def test_a_grading_message_has_no_reproduce_line_and_a_visible_one_has():
    report = _core.run(EX, ignores_factor, cases("all"), devices=("cpu",))
    assert "reproduce:" in report.message("double") and "reproduce:" not in report.message("double", reproduce=False)


def test_check_raises_check_failure_with_the_report():
    with pytest.raises(CheckFailure, match="ignores_factor failed 3 of 8 cases") as info:
        _core.check(EX, ignores_factor, cases("all"), quiet=True, devices=("cpu",))
    assert info.value.mistake == "factor-ignored"


def test_a_failure_no_known_mistake_explains_names_no_mistake_id():
    with pytest.raises(CheckFailure) as info:
        _core.check(EX, accepts_anything, cases("all"), quiet=True, devices=("cpu",))
    assert info.value.mistake is None and "likely mistake" not in str(info.value)
