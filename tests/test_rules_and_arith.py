"""The dispatcher-level rule guard and the size-formula diagnosis."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from autograder._arith import CONV_SIZE_VARIANTS, conv_out, diagnose_conv_axis
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


@given(i=st.integers(1, 60), k=st.integers(1, 7), s=st.integers(1, 5), p=st.integers(0, 3), d=st.integers(1, 3))
def test_conv_out_matches_torch(i, k, s, p, d):
    if i + 2 * p < d * (k - 1) + 1:
        return
    got = F.conv2d(torch.zeros(1, 1, i, 1), torch.zeros(1, 1, k, 1), stride=(s, 1), padding=(p, 0), dilation=(d, 1))
    assert got.shape[2] == conv_out(i, k, s, p, d)


@pytest.mark.parametrize("variant", CONV_SIZE_VARIANTS, ids=lambda v: v.name[:30])
def test_each_size_variant_is_named_when_it_is_the_mistake(variant):
    # Search a small grid for arguments where this variant gives a value no earlier variant gives.
    for i, k, s, p, d in [(a, b, c, e, f) for a in range(5, 20) for b in (2, 3, 5) for c in (1, 2, 3)
                          for e in (0, 1, 2) for f in (1, 2)]:
        got = variant.formula(i, k, s, p, d)
        earlier = CONV_SIZE_VARIANTS[:CONV_SIZE_VARIANTS.index(variant)]
        if got != conv_out(i, k, s, p, d) and all(v.formula(i, k, s, p, d) != got for v in earlier):
            assert variant.name in diagnose_conv_axis("height", got, i, k, s, p, d)
            return
    pytest.fail(f"no arguments single out {variant.name}")
