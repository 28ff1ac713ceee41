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


def helper_stub(input, factor=2):
    raise NotImplementedError()


def uses_helper(input, factor=2):
    if factor < 1:
        raise ValueError("no")
    return helper_stub(input, factor)


def test_a_stub_helper_is_named_and_is_a_failure_not_a_missing_exercise():
    """Does a written function that calls a learner's stub say which function still raises?"""
    with pytest.raises(_core.HelperNotImplemented) as info:
        _core.check(EX, uses_helper, cases("small"), quiet=True, devices=("cpu",))
    assert str(info.value).startswith("uses_helper calls helper_stub, which still raises NotImplementedError")
    assert info.value.mistake == "helper-not-implemented" and not isinstance(info.value, NotImplementedError)


def test_a_visible_check_returns_none(capsys):
    assert _core.check(EX, good, cases("small"), devices=("cpu",)) is None
    assert "✔ double: all 4 cases pass" in capsys.readouterr().out


def test_a_float64_result_good_only_to_float32_is_named_a_float32_computation():
    def in_float32(input, factor=2):
        if factor < 1:
            raise ValueError("no")
        return ((input * factor).float() + 100.0 - 100.0).to(input.dtype)  # a float32 buffer's rounding

    report = _core.run(EX, in_float32, cases("all"), devices=("cpu",))
    assert report.named_mistake() == "float32-accumulation"
    assert "agrees with torch only to float32 precision" in report.message("double")


def test_an_output_made_on_the_default_device_fails_the_meta_device_check():
    def on_default_device(input, factor=2):
        if factor < 1:
            raise ValueError("no")
        out = torch.zeros(input.shape, dtype=input.dtype)
        return out + input * factor if input.device.type != "meta" else out

    with pytest.raises(CheckFailure) as info:
        _core.check(EX, on_default_device, cases("all"), quiet=True, devices=("cpu",))
    assert info.value.mistake == "output-on-wrong-device"
    assert ("the output is on cpu but the inputs are on meta: create new tensors with device=input.device "
            "(or torch.zeros_like / input.new_zeros)") in str(info.value)
    assert "failed" not in str(info.value).splitlines()[0]


def test_a_kernel_that_cannot_run_on_meta_gets_a_note_not_a_failure(capsys):
    def with_item(input, factor=2):
        if factor < 1:
            raise ValueError("no")
        return input * float(torch.tensor(factor, device=input.device).item())

    report = _core.check_report(EX, with_item, cases("all"), devices=("cpu",))
    assert report.ok and not report.device_checked
    assert "cannot run on inputs on the `meta` device" in capsys.readouterr().out


def test_the_grader_path_runs_the_device_check_too():
    """The worker gets the meta case as CPU tensors plus "device": "meta" (meta tensors cannot cross the pipe)."""
    from autograder.contract import CaseCheck

    def on_default_device(input, factor=2):
        if factor < 1:
            raise ValueError("no")
        return torch.zeros(input.shape, dtype=input.dtype) + (input * factor if input.device.type != "meta" else 0)

    check = CaseCheck("check_double", "double", EX, cases, ("small", "large"), "input, factor=2", "")
    options = {"part": "all", "suite": "hidden", "seed": 3}
    request = check.request(options, None)
    assert any(c.get("device") == "meta" for c in request["calls"])
    check.verdict(check.probe(good, request), options, None)
    with pytest.raises(CheckFailure) as info:
        check.verdict(check.probe(on_default_device, request), options, None)
    assert info.value.mistake == "output-on-wrong-device"


def test_pattern_lines_drop_implied_features_and_count_in_the_singular():
    r = _core.Report("f", cases=2)
    case = cases("small")[0]
    r.failures = [_core.Failure(case, "cpu", torch.float64, "p")]
    r.failed_features = [{"padding > 0": True, "output_padding > 0": True, "padding > 0 with output_padding > 0": True}]
    r.passed_features = [{}]
    assert r.pattern() == ("every failing case has padding > 0 with output_padding > 0; "
                           "the 1 valid case without it passes.")
    assert r.message("f").splitlines()[0] == "f failed 1 of 2 cases:"


def test_a_rule_violation_is_reported_as_one():
    r = _core.Report("f", cases=1)
    r.failures = [_core.Failure(cases("small")[0], "cpu", torch.float64, "f called torch's `conv2d`", rule=True)]
    r.failed_features = [{}]
    assert r.message("f").splitlines()[0] == "f broke the exercise's rule (in the case below):"
