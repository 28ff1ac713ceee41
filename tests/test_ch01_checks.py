"""Chapter 1 checks: the solution passes, known-wrong kernels are caught and named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder import NotAttempted, RuleViolation, ch01
from conftest import message_of
from wrong_kernels import conv2d_with_bug, size_with_bug


# --------------------------------------------------------------------------
# The reference solution

def _report(check, fn, **kwargs):
    """A passing visible check returns None; its CaseCheck's ``report`` gives the Report (cases, dtypes, devices)."""
    from autograder import registry

    return next(c for c in registry.case_checks() if c.check == check.__name__).report(fn, **kwargs)



@pytest.mark.parametrize("suite", ["visible", "hidden"])
def test_solution_conv2d_output_size_passes_every_suite(sol1, suite):
    report = ch01_check_size(sol1, suite)
    assert report.ok and report.cases >= 10


def ch01_check_size(ns, suite):
    return _report(ch01.check_conv2d_output_size, ns["conv2d_output_size"], suite=suite, quiet=True)


@pytest.mark.parametrize("part", ch01.PARTS)
@pytest.mark.parametrize("suite", ["visible", "hidden"])
def test_solution_conv2d_passes_every_part_and_suite(sol1, part, suite):
    report = _report(ch01.check_conv2d, sol1["conv2d"], part=part, suite=suite, quiet=True)
    assert report.ok
    assert torch.float32 in report.dtypes and torch.float64 in report.dtypes


def test_an_independent_correct_kernel_passes_too():
    """Does the check accept a correct kernel written differently from the solution?"""
    assert _report(ch01.check_conv2d, conv2d_with_bug(None), quiet=True).ok


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), groups=st.integers(1, 3), cin_g=st.integers(1, 2), cout_g=st.integers(1, 2),
       h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)), bias=st.booleans())
def test_solution_conv2d_matches_torch_for_any_valid_arguments(sol1, n, groups, cin_g, cout_g, h, w, kh, kw,
                                                                stride, padding, dilation, bias):
    x = torch.randn(n, groups * cin_g, h, w, dtype=torch.float64)
    wt = torch.randn(groups * cout_g, cin_g, kh, kw, dtype=torch.float64)
    b = torch.randn(groups * cout_g, dtype=torch.float64) if bias else None
    try:
        expected = F.conv2d(x, wt, b, stride, padding, dilation, groups)
    except RuntimeError:
        with pytest.raises((ValueError, RuntimeError)):
            sol1["conv2d"](x, wt, b, stride, padding, dilation, groups)
        return
    torch.testing.assert_close(sol1["conv2d"](x, wt, b, stride, padding, dilation, groups), expected)


# --------------------------------------------------------------------------
# Known-wrong conv2d kernels: caught, and the mistake named

WRONG_CONV2D = [
    ("flipped", "the kernel is flipped"),
    ("kernel_transposed", "height and width swapped"),
    ("weight_layout", "(C_out, C_in/groups, kH, kW)"),
    ("pad_one_side", "padding added on one side only"),
    ("dilation_ignored", "dilation ignored"),
    ("groups_ignored", "every failing case has groups > 1"),
    ("group_offset_missing", "every group reads the first group's input channels"),
    ("bias_ignored", "the bias is ignored"),
    ("stride_one_axis", "stride ignored"),
]


@pytest.mark.parametrize("bug, diagnosis", WRONG_CONV2D, ids=[b for b, _ in WRONG_CONV2D])
def test_each_known_wrong_conv2d_is_caught_and_diagnosed(bug, diagnosis):
    message = message_of(ch01.check_conv2d, conv2d_with_bug(bug))
    assert diagnosis in message, message
    assert "reproduce:" in message


def test_a_failure_message_has_case_problem_and_a_repro_that_reproduces():
    message = message_of(ch01.check_conv2d, conv2d_with_bug("bias_ignored"))
    repro = next(ln for ln in message.splitlines() if ln.strip().startswith("reproduce:"))
    code = repro.split("reproduce:", 1)[1].strip()
    ns = {"torch": torch, "conv2d": F.conv2d}
    *setup, call = code.split("; ")
    exec("; ".join(setup), ns)
    ref = eval(call, ns)
    ns["conv2d"] = conv2d_with_bug("bias_ignored")
    assert not torch.allclose(eval(call, ns), ref), "the repro line must reproduce the failing case"


def test_the_pattern_line_names_what_failing_cases_share():
    message = message_of(ch01.check_conv2d, conv2d_with_bug("bias_ignored"))
    assert "pattern: every failing case has a bias" in message


def test_a_flipped_kernel_fails_the_hand_worked_case_with_both_grids_shown():
    message = message_of(ch01.check_conv2d, conv2d_with_bug("flipped"), part="basic")
    assert "hand-worked" in message and "yours (first channel)" in message and "-4.000" in message


# --------------------------------------------------------------------------
# The rule: no convolution operator, however it is spelled


SPELLINGS = {
    "F.conv2d": lambda x, w, b, s, p, d, g: F.conv2d(x, w, b, s, p, d, g),
    "torch.conv2d": lambda x, w, b, s, p, d, g: torch.conv2d(x, w, b, s, p, d, g),
    "aten.convolution": lambda x, w, b, s, p, d, g: torch.ops.aten.convolution(
        x, w, b, _pair(s), _pair(p), _pair(d), False, [0, 0], g),
    "nn.Conv2d": lambda x, w, b, s, p, d, g: _module(x, w, b, s, p, d, g),
    "conv2d_input (backward)": lambda x, w, b, s, p, d, g: torch.nn.grad.conv2d_input(
        (x.shape[0], w.shape[0], 1, 1), w.transpose(0, 1)[:, : x.shape[1] // g].contiguous(), x),
}


def _pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def _module(x, w, b, s, p, d, g):
    m = torch.nn.Conv2d(x.shape[1], w.shape[0], tuple(w.shape[-2:]), s, p, d, g, bias=b is not None).to(x)
    with torch.no_grad():
        m.weight.copy_(w)
    return m(x)


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_calling_a_convolution_operator_is_a_rule_violation(spelling):
    impl = SPELLINGS[spelling]

    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return impl(input, weight, bias, stride, padding, dilation, groups)

    with pytest.raises(RuleViolation) as info:
        ch01.check_conv2d(conv2d, quiet=True)
    assert "forbids" in str(info.value)


def test_a_forbidden_call_hidden_in_try_except_is_still_caught(sol1):
    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        try:
            return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
        except Exception:
            return sol1["conv2d"](input, weight, bias, stride, padding, dilation, groups)

    with pytest.raises(RuleViolation):
        ch01.check_conv2d(conv2d, quiet=True)


# --------------------------------------------------------------------------
# Bad return values and errors: one clear sentence each


def _returning(value_fn):
    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return value_fn(F.conv2d(input.detach().clone(), weight, bias, stride, padding, dilation, groups).detach())
    return conv2d


BAD_RETURNS = [
    ("none", lambda y: None, "returned None — is a `return` statement missing?"),
    ("numpy", lambda y: y.numpy(), "returned a numpy array"),
    ("float32", lambda y: y.float(), "the output has dtype torch.float32; expected torch.float64"),
    ("shape", lambda y: y[..., :-1], "the output has shape"),
    ("list", lambda y: [y], "returned a list of 1 items"),
    ("subclass", lambda y: y.as_subclass(torch.nn.Parameter), "subclass of torch.Tensor"),
]


@pytest.mark.parametrize("name, value_fn, sentence", BAD_RETURNS, ids=[b[0] for b in BAD_RETURNS])
def test_a_bad_return_value_gets_one_clear_sentence(name, value_fn, sentence):
    # The forbidden-op guard is off for this test only: the point is the return value.
    ex = ch01.CONV2D_EXERCISE
    lenient = type(ex)(**{**ex.__dict__, "rules": ()})
    from autograder._core import run
    report = run(lenient, _returning(value_fn), ch01.conv2d_cases("basic"))
    assert not report.ok
    assert sentence in report.failures[0].problem
    assert "Traceback" not in report.message("conv2d")


def test_a_learner_exception_is_reported_with_the_learners_line():
    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        kh, kw = stride  # a typical int-or-pair slip
        return input

    message = message_of(ch01.check_conv2d, conv2d)
    assert "raised TypeError" in message and "kh, kw = stride" in message


def test_not_implemented_is_reported_as_not_attempted():
    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        raise NotImplementedError()

    with pytest.raises(NotAttempted):
        ch01.check_conv2d(conv2d, quiet=True)


def test_modifying_the_input_in_place_is_reported():
    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        out = conv2d_with_bug(None)(input, weight, bias, stride, padding, dilation, groups)
        input.zero_()
        return out

    assert "modified one of its input tensors in place" in message_of(ch01.check_conv2d, conv2d)


def test_returning_a_tensor_where_torch_raises_is_reported():
    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        try:
            return conv2d_with_bug(None)(input, weight, bias, stride, padding, dilation, groups)
        except ValueError:
            return torch.zeros(1, dtype=input.dtype)

    message = message_of(ch01.check_conv2d, conv2d, part="groups")
    assert "torch rejects these arguments" in message and "invalid" in message


def test_a_changed_signature_is_reported():
    def conv2d(input, weight, bias=None, stride=1, dilation=1, padding=0, groups=1):
        return input

    assert "must keep the signature" in message_of(ch01.check_conv2d, conv2d)


def test_a_non_function_is_reported():
    assert "should be a function" in message_of(ch01.check_conv2d, np.zeros(3))


# --------------------------------------------------------------------------
# conv2d_output_size

WRONG_SIZES = [
    ("pad_one_side", "padding added on one side only"),
    ("ceil", "ceil instead of floor"),
    ("dilation_ignored", "dilation ignored"),
    ("no_plus_one", "the +1 at the end is missing"),
]


@pytest.mark.parametrize("bug, diagnosis", WRONG_SIZES, ids=[b for b, _ in WRONG_SIZES])
def test_each_wrong_size_formula_is_caught_and_the_term_named(bug, diagnosis):
    message = message_of(ch01.check_conv2d_output_size, size_with_bug(bug))
    assert diagnosis in message, message


def test_a_float_size_is_reported():
    assert "a float; return an int" in message_of(ch01.check_conv2d_output_size, size_with_bug(None, "float"))


def test_a_list_size_is_reported():
    assert "return a tuple" in message_of(ch01.check_conv2d_output_size, size_with_bug(None, "list"))


def test_the_chapter_example_is_the_first_case():
    case = ch01.size_cases()[0]
    assert case.args == (7, 3) and ch01.reference_conv2d_output_size(*case.args) == 5


# --------------------------------------------------------------------------
# Devices


def test_without_cuda_the_check_says_it_ran_on_cpu_only(sol1, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the CPU-only notice is not printed here")
    ch01.check_conv2d(sol1["conv2d"], part="basic")
    assert "CUDA not available — checked on CPU only." in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available — the CUDA path is checked only on a GPU machine")
def test_solution_passes_on_cuda_and_output_stays_on_cuda(sol1):
    report = _report(ch01.check_conv2d, sol1["conv2d"], quiet=True)
    assert "cuda" in report.devices and report.ok


def test_calling_the_checking_library_from_a_solution_is_a_rule_violation():
    """Can a learner pass by calling the library's own mistake models or references?"""
    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        from autograder.ch01 import _conv2d_mistakes
        flipped = _conv2d_mistakes()[0].fn  # a model that flips the kernel
        return flipped(input, weight.flip(-2, -1), bias, stride, padding, dilation, groups)

    with pytest.raises(RuleViolation) as info:
        ch01.check_conv2d(conv2d, quiet=True)
    assert "checking library" in str(info.value)
