"""The size arithmetic (autograder/_arith.py): formulas against torch, the diagnosis of a wrong size, and the
readers of int-or-pair arguments."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from autograder._arith import CONV_SIZE_VARIANTS, as_pair, conv_out, diagnose_conv_axis, pair


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


def test_pair_reads_an_int_or_a_pair_as_torch_does_and_refuses_anything_else():
    assert pair(3) == (3, 3) and pair((2, 5)) == (2, 5) and pair([4, 1]) == (4, 1)
    with pytest.raises(ValueError, match="stride must be an int or a pair"):
        pair((1, 2, 3), "stride")


def test_as_pair_keeps_values_as_given_for_reading_any_case():
    assert as_pair(None) == (None, None) and as_pair(1.5) == (1.5, 1.5) and as_pair((2, -1)) == (2, -1)
    assert as_pair((1, 2, 3)) == (1, 2, 3)  # unchecked: an invalid case's arguments are read as they are
