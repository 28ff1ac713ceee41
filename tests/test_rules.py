"""The dispatcher-level rule guard (autograder/_rules.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder._rules import CONVOLUTION_OPS, ForbiddenOpError, OpGuard, Rule

CONV = (Rule(CONVOLUTION_OPS, "no convolutions"),)
x = torch.randn(1, 2, 6, 6)
w = torch.randn(3, 2, 3, 3)


@pytest.mark.parametrize("call", [
    lambda: F.conv2d(x, w),
    lambda: F.conv1d(x[:, :, 0], w[:, :, 0]),
    lambda: F.conv_transpose2d(x, w.transpose(0, 1)),
    lambda: torch.nn.grad.conv2d_weight(x, w.shape, F.conv2d(x, w)),
])
def test_every_convolution_spelling_is_stopped(call):
    guard = OpGuard(CONV)
    with pytest.raises(ForbiddenOpError), guard:
        call()
    assert guard.violations


@pytest.mark.parametrize("call", [
    lambda: torch.einsum("nchw,oc->nohw", x, w[..., 0, 0]),
    lambda: F.unfold(x, 3),
    lambda: x.unfold(2, 3, 1).sum(),
    lambda: F.pad(x, (1, 1, 1, 1)) @ torch.ones(8, 8),
])
def test_allowed_building_blocks_pass_through(call):
    guard = OpGuard(CONV)
    with guard:
        call()
    assert not guard.violations


def test_a_learner_stub_is_told_apart_from_torch_lacking_an_operator():
    from autograder._rules import error_record, not_implemented_message, stub_chain

    def helper():
        raise NotImplementedError()

    def kernel():
        return helper()

    try:
        kernel()
    except NotImplementedError as e:
        assert stub_chain(e)[-2:] == ["kernel", "helper"]  # the test itself calls kernel
        assert error_record(e)["stub"][-2:] == ["kernel", "helper"]
        assert not_implemented_message("kernel", ["kernel", "helper"]).startswith(
            "kernel calls helper, which still raises NotImplementedError")
    try:
        torch.empty(2, device="meta").item()
    except (NotImplementedError, RuntimeError) as e:
        assert stub_chain(e) == []
    assert not_implemented_message("kernel", ["kernel"]) == "kernel is not implemented yet (it raises NotImplementedError)."
