"""Chapter 6 checks: conv_transpose2d and ConvTranspose2d — the solution passes, mistakes are named."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from autograder import NotAttempted, RuleViolation, ch06
from conftest import load_solution, message_of
from autograder import CheckFailure
from wrong_kernels import conv_transpose2d_scatter_with_bug, conv_transpose2d_with_bug

def _report(check, fn, **kwargs):
    """A passing visible check returns None; its CaseCheck's ``report`` gives the Report (cases, dtypes, devices)."""
    from autograder import registry

    return next(c for c in registry.case_checks() if c.check == check.__name__).report(fn, **kwargs)



@pytest.fixture(scope="module")
def sol6():
    return load_solution("ch06_transposed_conv")


@pytest.mark.parametrize("suite", ["visible", "hidden"])
def test_solution_passes_every_part(sol6, suite):
    assert _report(ch06.check_conv_transpose2d_output_size, sol6["conv_transpose2d_output_size"], suite=suite, quiet=True).ok
    for part in ch06.PARTS:
        assert _report(ch06.check_conv_transpose2d, sol6["conv_transpose2d"], part=part, suite=suite, quiet=True).ok
    assert ch06.check_conv_transpose2d_module(sol6["ConvTranspose2d"], suite=suite, quiet=True) is None


def test_the_zero_insertion_route_written_independently_passes_too():
    """Is the check fair to a correct kernel built the other way (zero insertion + flipped correlation)?"""
    assert _report(ch06.check_conv_transpose2d, conv_transpose2d_with_bug(None), quiet=True).ok


WRONG = [
    ("not_flipped", "the kernel is not flipped"),
    ("conv2d_layout", "(C_in, C_out/groups, kH, kW)"),
    ("padding_added", "instead of cropped"),
    ("output_padding_zeros", "filled with zeros"),
    ("dilation_ignored", "dilation ignored"),
    ("group_offset", "the groups are mixed up"),
    ("bias_per_input_channel", "once per input channel"),
    ("one_stride", "for both axes"),
]


@pytest.mark.parametrize("bug, words", WRONG, ids=[w[0] for w in WRONG])
def test_each_known_wrong_conv_transpose2d_is_caught_and_named(bug, words):
    message = message_of(ch06.check_conv_transpose2d, conv_transpose2d_with_bug(bug))
    assert words in message, message


def test_the_scatter_add_route_written_independently_passes_too():
    """Is the check fair to a correct loop-and-stamp kernel (the route the chapter's spec takes)?"""
    for suite in ("visible", "hidden"):
        assert _report(ch06.check_conv_transpose2d, conv_transpose2d_scatter_with_bug(None), suite=suite, quiet=True).ok


def _mistake_of(fn, **kwargs):
    with pytest.raises(CheckFailure) as info:
        ch06.check_conv_transpose2d(fn, quiet=True, **kwargs)
    return info.value.mistake, str(info.value)


@pytest.mark.parametrize("suite", ["visible", "hidden"])
@pytest.mark.parametrize("part", ["general", "groups"])
@pytest.mark.parametrize("kernel, mistake", [(conv_transpose2d_with_bug("dilation_ignored"), "dilation-ignored"),
                                             (conv_transpose2d_scatter_with_bug("dilation_in_stamp_ignored"),
                                              "dilation-ignored-in-stamp")], ids=["everywhere", "in-the-stamp"])
def test_dilation_ignored_is_named_in_every_part_that_has_dilation(kernel, mistake, part, suite):
    assert any(ch06._features(c)["dilation > 1"] for c in ch06.cases(part, suite))
    named, message = _mistake_of(kernel, part=part, suite=suite)
    assert named == mistake and "likely mistake" in message and "dilation ignored" in message, message


SCATTER_WRONG = [
    ("groups_interleaved", ("groups",), "groups-channels-interleaved"),
    ("groups_swapped", ("groups",), "groups-blocks-swapped"),
    ("output_padding_top_left", ("general", "groups"), "output-padding-top-left"),
]


@pytest.mark.parametrize("bug, parts, mistake", SCATTER_WRONG, ids=[w[0] for w in SCATTER_WRONG])
def test_each_scatter_add_mistake_is_named_by_id_in_every_part_it_shows_in(bug, parts, mistake):
    for suite in ("visible", "hidden"):
        for part in parts:
            named, message = _mistake_of(conv_transpose2d_scatter_with_bug(bug), part=part, suite=suite)
            assert named == mistake, message


def test_a_correct_output_is_never_named_as_a_mistake_even_where_a_model_coincides_with_torch():
    """A mistake that changes nothing on a case (dilation with a 1x1 kernel, groups with one channel per group)
    computes torch's own output there: it may only ever name a failing output, never a correct one."""
    from autograder import _core

    ex, coinciding = ch06.EXERCISE, 0
    for part in ch06.PARTS:
        for case in ch06.cases(part, "hidden"):
            if case.invalid:
                continue
            args, kwargs = case.materialise()
            ref = ch06.reference_conv_transpose2d(*args, **kwargs)
            coinciding += _core._match_mistake(ex, args, kwargs, ref) is not None
            # torch's output, judged as a learner's result computed elsewhere (the rule guard is not the point here)
            assert _core.judge(ex, "conv_transpose2d", case, "cpu", torch.float64,
                               outcome=_core.Outcome(value=ref.clone())) is None, case.describe()
    assert coinciding > 0  # the situation this test is about does occur in the sweep


def test_output_padding_zeros_is_only_visible_with_padding_and_is_in_the_sweep():
    """Do the general cases include padding > 0 together with output_padding > 0?"""
    feats = [ch06._features(c) for c in ch06.cases("general")]
    assert sum(f["padding > 0 with output_padding > 0"] for f in feats) >= 3
    message = message_of(ch06.check_conv_transpose2d, conv_transpose2d_with_bug("output_padding_zeros"), part="general")
    assert "pattern: every failing case has output_padding > 0" in message or "filled with zeros" in message


@pytest.mark.parametrize("route", ["conv2d", "conv_transpose2d", "grad of conv2d", "nn.grad.conv2d_input"])
def test_every_convolution_route_is_a_rule_violation(route):
    def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        if route == "conv_transpose2d":
            return F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
        if route == "conv2d":  # zero insertion by torch's own transposed conv is also forbidden
            return F.conv2d(input, weight.transpose(0, 1).flip(-1, -2), bias, 1, weight.shape[-1] - 1)
        if route == "grad of conv2d":
            x = torch.zeros(1, weight.shape[0], 8, 8, dtype=input.dtype, requires_grad=True)
            y = F.conv2d(x, weight.transpose(0, 1), stride=stride)
            return torch.autograd.grad((y * 0).sum(), x)[0]
        return torch.nn.grad.conv2d_input((input.shape[0], weight.shape[0], 8, 8), weight, input, stride=stride)

    with pytest.raises(RuleViolation):
        ch06.check_conv_transpose2d(conv_transpose2d, quiet=True)


def test_size_mistakes_are_named():
    def padding_added(size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
        return (size - 1) * stride + 2 * padding + dilation * (kernel_size - 1) + output_padding + 1 \
            if isinstance(size, int) and isinstance(kernel_size, int) else (0, 0)

    assert "padding added instead of cropped" in message_of(ch06.check_conv_transpose2d_output_size, padding_added)

    def conv_formula(size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
        return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1

    assert "runs it backwards" in message_of(ch06.check_conv_transpose2d_output_size, conv_formula)


# --------------------------------------------------------------------------
# The module


def module_with(sol6, **changes):
    """A subclass of the solution's module with one thing changed."""
    base = sol6["ConvTranspose2d"]
    return type("ConvTranspose2d", (base,), changes)


def conv2d_layout_module(sol6):
    """The solution's module with its weight in Conv2d's layout, (out, in/groups, kH, kW), initialised alike."""
    base = sol6["ConvTranspose2d"]

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode='zeros', device=None, dtype=None):
        base.__init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                      dilation, padding_mode, device, dtype)
        k = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    return module_with(sol6, __init__=__init__)


def test_a_module_with_the_conv2d_weight_layout_is_told_the_layout(sol6):
    message = message_of(ch06.check_conv_transpose2d_module, conv2d_layout_module(sol6), part="structure")
    assert "(in_channels, out_channels/groups, kH, kW)" in message


def test_a_module_with_the_wrong_initialisation_is_told_the_bound(sol6):
    def reset_parameters(self):
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    message = message_of(ch06.check_conv_transpose2d_module, module_with(sol6, reset_parameters=reset_parameters),
                         part="structure")
    assert "initialised like torch's" in message


def test_a_module_that_calls_torch_in_forward_is_a_rule_violation(sol6):
    def forward(self, input):
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)

    with pytest.raises(RuleViolation):
        ch06.check_conv_transpose2d_module(module_with(sol6, forward=forward), part="training", quiet=True)


def test_a_forward_that_breaks_gradients_is_caught(sol6):
    conv_transpose2d = sol6["conv_transpose2d"]

    def forward(self, input):
        out = conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                               self.groups, self.dilation)
        return out.detach()  # values right, no gradient

    message = message_of(ch06.check_conv_transpose2d_module, module_with(sol6, forward=forward), part="training")
    assert "gradient" in message


def test_a_forward_with_wrong_bias_gradient_is_caught(sol6):
    conv_transpose2d = sol6["conv_transpose2d"]

    def forward(self, input):
        out = conv_transpose2d(input, self.weight, None, self.stride, self.padding, self.output_padding,
                               self.groups, self.dilation)
        return out if self.bias is None else out + self.bias.detach().reshape(1, -1, 1, 1) + 0 * self.bias.sum()

    message = message_of(ch06.check_conv_transpose2d_module, module_with(sol6, forward=forward), part="training")
    assert "gradient with respect to bias" in message


def test_a_module_that_accepts_bad_groups_is_told_to_raise(sol6):
    base = sol6["ConvTranspose2d"]

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode='zeros', device=None, dtype=None):
        # right for every valid groups; for channels groups do not divide, quietly builds groups=1 instead
        fits = groups >= 1 and in_channels % groups == 0 and out_channels % groups == 0
        base.__init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding,
                      groups if fits else 1, bias, dilation, "zeros", device, dtype)
        self.groups = groups

    message = message_of(ch06.check_conv_transpose2d_module, module_with(sol6, __init__=__init__), part="structure")
    assert "should raise a ValueError" in message, message


def test_an_unwritten_module_is_not_attempted():
    class ConvTranspose2d(nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                     bias=True, dilation=1, padding_mode='zeros', device=None, dtype=None):
            super().__init__()
            raise NotImplementedError()

    with pytest.raises(NotAttempted):
        ch06.check_conv_transpose2d_module(ConvTranspose2d, quiet=True)


# --------------------------------------------------------------------------
# The four views agree with F.conv_transpose2d (what the chapter teaches)

@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 5), w=st.integers(1, 5), kh=st.integers(1, 3), kw=st.integers(1, 3),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       dh=st.integers(1, 2), dw=st.integers(1, 2), groups=st.integers(1, 2), data=st.data())
def test_the_four_views_agree_with_torch(h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, data, sol6):
    oh = data.draw(st.integers(0, max(sh, dh) - 1))
    ow = data.draw(st.integers(0, max(sw, dw) - 1))
    assume((h - 1) * sh - 2 * ph + dh * (kh - 1) + oh + 1 >= 1 and (w - 1) * sw - 2 * pw + dw * (kw - 1) + ow + 1 >= 1)
    x = torch.randn(1, 2 * groups, h, w, dtype=torch.float64)
    wt = torch.randn(2 * groups, 2, kh, kw, dtype=torch.float64)
    args = dict(stride=(sh, sw), padding=(ph, pw), output_padding=(oh, ow), groups=groups, dilation=(dh, dw))
    ref = F.conv_transpose2d(x, wt, **args)
    # (1) scatter-add: the solution
    torch.testing.assert_close(sol6["conv_transpose2d"](x, wt, **args), ref)
    # (2) zero insertion + padding + flipped-kernel correlation (independent implementation)
    torch.testing.assert_close(conv_transpose2d_with_bug(None)(x, wt, **args), ref)
    # (4) the gradient of conv2d with respect to its input, and the adjoint identity
    shape = (1, 2 * groups, *ref.shape[-2:])
    xin = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(xin, wt, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    assume(y.shape[-2:] == x.shape[-2:])
    grad = torch.autograd.grad((y * x).sum(), xin)[0]
    torch.testing.assert_close(grad, ref)
    torch.testing.assert_close((y * x).sum(), (xin * ref).sum())


def test_view_three_the_transposed_convolution_matrix():
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64)
    wt = torch.randn(1, 1, 3, 2, dtype=torch.float64)
    cols = [F.conv2d(e.reshape(1, 1, 4, 5), wt, stride=(1, 2)).flatten() for e in torch.eye(20, dtype=torch.float64)]
    C = torch.stack(cols, dim=1)  # the convolution as a matrix: y = C x
    y = torch.randn(1, 1, *F.conv2d(x, wt, stride=(1, 2)).shape[-2:], dtype=torch.float64)
    torch.testing.assert_close((C.T @ y.flatten()).reshape(1, 1, 4, 5),
                               F.conv_transpose2d(y, wt, stride=(1, 2), output_padding=(0, 1)))


def test_a_state_dict_that_does_not_load_names_the_parameter_and_both_shapes(sol6):
    """Does a load_state_dict failure keep the line torch puts after "Error(s) in loading state_dict"?"""
    with pytest.raises(CheckFailure) as info:
        ch06.check_conv_transpose2d_module(conv2d_layout_module(sol6), part="training", quiet=True)
    message = str(info.value)
    assert info.value.mistake == "state-dict-mismatch"
    assert "size mismatch for `weight`: torch's has shape (2, 3, 3, 3), yours (3, 2, 3, 3)" in message, message
    assert "Error(s) in loading" not in message


@pytest.mark.parametrize("name", ["weight", "bias"])
def test_a_parameter_the_gradient_does_not_reach_is_named(sol6, name):
    conv_transpose2d = sol6["conv_transpose2d"]

    def forward(self, input):
        w = self.weight.detach() if name == "weight" else self.weight
        b = self.bias.detach() if name == "bias" and self.bias is not None else self.bias
        return conv_transpose2d(input, w, b, self.stride, self.padding, self.output_padding, self.groups,
                                self.dilation)

    with pytest.raises(CheckFailure) as info:
        ch06.check_conv_transpose2d_module(module_with(sol6, forward=forward), part="training", quiet=True)
    message = str(info.value)
    assert info.value.mistake == f"{name}-gets-no-gradient"
    assert f"the {name} gets no gradient" in message and "index" not in message, message


def test_a_frozen_weight_is_named(sol6):
    base = sol6["ConvTranspose2d"]

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode='zeros', device=None, dtype=None):
        base.__init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                      dilation, padding_mode, device, dtype)
        self.weight.requires_grad_(False)

    with pytest.raises(CheckFailure) as info:
        ch06.check_conv_transpose2d_module(module_with(sol6, __init__=__init__), part="training", quiet=True)
    assert info.value.mistake == "weight-gets-no-gradient" and "requires_grad=False" in str(info.value)


def test_a_module_whose_forward_reaches_a_stub_names_the_stub_and_counts_as_failed(sol6):
    """The issue's learner: the module's forward calls their conv_transpose2d, which calls their still-stubbed
    output-size helper. The check names that helper (a failure, not 'not attempted')."""
    from autograder._core import HelperNotImplemented

    def conv_transpose2d_output_size(*args, **kwargs):
        raise NotImplementedError()

    def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        conv_transpose2d_output_size(input.shape[-1], weight.shape[-1], stride, padding, output_padding, dilation)
        return sol6["conv_transpose2d"](input, weight, bias, stride, padding, output_padding, groups, dilation)

    def forward(self, input):
        return conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                self.groups, self.dilation)

    with pytest.raises(HelperNotImplemented) as info:
        ch06.check_conv_transpose2d_module(module_with(sol6, forward=forward), part="training", quiet=True)
    assert "calls conv_transpose2d_output_size" in str(info.value) and info.value.mistake == "helper-not-implemented"

    def stub_forward(self, input):
        raise NotImplementedError()

    with pytest.raises(NotAttempted):
        ch06.check_conv_transpose2d_module(module_with(sol6, forward=stub_forward), part="training", quiet=True)
