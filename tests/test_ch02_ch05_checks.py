"""Chapters 2-5 checks: solutions pass, each known-wrong variant is caught and named."""

from __future__ import annotations

import pytest
import torch

from autograder import ch02, ch03, ch04, ch05
from conftest import load_solution, message_of
from wrong_kernels import (bed_of_nails_with_bug, max_pool_with_bug, max_unpool_with_bug,
                           resize_with_bug)

SOLUTIONS = {
    "upsample_nearest": ("ch02_nearest", ch02.check_upsample_nearest, ch02.PARTS),
    "bed_of_nails": ("ch03_bed_of_nails", ch03.check_bed_of_nails, ch03.PARTS),
    "upsample_bilinear": ("ch04_bilinear", ch04.check_upsample_bilinear, ch04.PARTS),
    "max_pool2d_with_indices": ("ch05_max_unpooling", ch05.check_max_pool2d_with_indices, ch05.PARTS),
    "max_unpool2d": ("ch05_max_unpooling", ch05.check_max_unpool2d, ch05.PARTS),
}

def _report(check, fn, **kwargs):
    """A passing visible check returns None; its CaseCheck's ``report`` gives the Report (cases, dtypes, devices)."""
    from autograder import registry

    return next(c for c in registry.case_checks() if c.check == check.__name__).report(fn, **kwargs)



@pytest.mark.parametrize("name", list(SOLUTIONS))
@pytest.mark.parametrize("suite", ["visible", "hidden"])
def test_solution_passes_every_part(name, suite):
    aid, check, parts = SOLUTIONS[name]
    fn = load_solution(aid)[name]
    for part in parts:
        assert _report(check, fn, part=part, suite=suite, quiet=True).ok


@pytest.mark.parametrize("name, make", [
    ("upsample_nearest", lambda: resize_with_bug("nearest", None)),
    ("upsample_bilinear", lambda: resize_with_bug("bilinear", None)),
    ("bed_of_nails", lambda: bed_of_nails_with_bug(None)),
    ("max_pool2d_with_indices", lambda: max_pool_with_bug(None)),
    ("max_unpool2d", lambda: max_unpool_with_bug(None)),
])
def test_an_independent_correct_implementation_passes(name, make):
    """Are the checks fair to a correct kernel written differently from the solution?"""
    assert _report(SOLUTIONS[name][1], make(), quiet=True).ok


WRONG = [
    # (check, wrong function, part, words the diagnosis must contain)
    ("nearest: round instead of floor", ch02.check_upsample_nearest, resize_with_bug("nearest", "round"), "any",
     "rounded; mode='nearest' rounds down"),
    ("nearest: integer factors only", ch02.check_upsample_nearest, resize_with_bug("nearest", "integer_only"), "any",
     "fractional factors must work too"),
    ("nearest: in/out scale", ch02.check_upsample_nearest, resize_with_bug("nearest", "in_over_out"), "any",
     "the scale is in/out"),
    ("nearest: float64 index", ch02.check_upsample_nearest, resize_with_bug("nearest", "float64"), "any",
     "computed in float64"),
    ("nearest: pixel centres", ch02.check_upsample_nearest, resize_with_bug("nearest", "half"), "any",
     "nearest-exact"),
    ("bed of nails: wrong offset", ch03.check_bed_of_nails, bed_of_nails_with_bug("offset"), "all",
     "bottom-right of each block"),
    ("bed of nails: no trailing zeros", ch03.check_bed_of_nails, bed_of_nails_with_bug("no_trailing_zeros"), "all",
     "followed by"),
    ("bed of nails: strides swapped", ch03.check_bed_of_nails, bed_of_nails_with_bug("stride_swapped"), "pair",
     "strides swapped"),
    ("bilinear: align_corners swapped", ch04.check_upsample_bilinear, resize_with_bug("bilinear", "align_swapped"),
     "integer", "align_corners is swapped"),
    ("bilinear: no half-pixel offset", ch04.check_upsample_bilinear, resize_with_bug("bilinear", "no_half_pixel"),
     "integer", "half-pixel offset is missing"),
    ("bilinear: no clamping", ch04.check_upsample_bilinear, resize_with_bug("bilinear", "no_clamp"), "integer",
     "not clamped at the border"),
    ("bilinear: in/out scale", ch04.check_upsample_bilinear, resize_with_bug("bilinear", "in_over_out"), "any",
     "the scale is in/out"),
    ("max pool: per-window indices", ch05.check_max_pool2d_with_indices, max_pool_with_bug("window_indices"), "basic",
     "inside each window"),
    ("max pool: padded indices", ch05.check_max_pool2d_with_indices, max_pool_with_bug("padded_indices"), "general",
     "positions in the padded input"),
    ("max pool: last tie", ch05.check_max_pool2d_with_indices, max_pool_with_bug("last_tie"), "basic",
     "ties go to the last maximum"),
    ("max pool: zero padding", ch05.check_max_pool2d_with_indices, max_pool_with_bug("zero_pad"), "general",
     "padded with zeros"),
    ("max pool: stride None means 1", ch05.check_max_pool2d_with_indices, max_pool_with_bug("stride_one"), "basic",
     "the stride equals kernel_size"),
    ("unpool: per-window indices", ch05.check_max_unpool2d, max_unpool_with_bug("window_indices"), "basic",
     "not positions inside a window"),
    ("unpool: output_size ignored", ch05.check_max_unpool2d, max_unpool_with_bug("ignore_output_size"), "general",
     "output_size"),
    # an off-by-one range check (<= where torch has <) accepts the size just past torch's range
    ("unpool: output_size range off by one", ch05.check_max_unpool2d, max_unpool_with_bug("range_inclusive"),
     "general", "torch rejects these arguments"),
]


@pytest.mark.parametrize("label, check, fn, part, words", WRONG, ids=[w[0] for w in WRONG])
def test_each_known_wrong_variant_is_caught_and_named(label, check, fn, part, words):
    message = message_of(check, fn, part=part)
    assert words in message, message


@pytest.mark.parametrize("check, make", [
    (ch02.check_upsample_nearest, lambda: resize_with_bug("nearest", None)),
    (ch04.check_upsample_bilinear, lambda: resize_with_bug("bilinear", None)),
])
def test_a_resize_that_accepts_invalid_arguments_is_told_torch_rejects_them(check, make):
    inner = make()

    def lenient(input, size=None, scale_factor=None, *rest):
        if size is None and scale_factor is None:
            scale_factor = 1
        if size is not None and scale_factor is not None:
            scale_factor = None
        return inner(input.reshape(1, *input.shape) if input.dim() == 3 else input, size,
                     abs(scale_factor) if scale_factor else scale_factor, *rest)

    lenient.__signature__ = __import__("inspect").signature(inner)
    message = message_of(check, lenient, part="invalid")
    assert "torch rejects these arguments" in message


def test_unpool_indices_come_from_torchs_pooling_and_the_repro_says_so():
    message = message_of(ch05.check_max_unpool2d, max_unpool_with_bug("window_indices"), part="basic")
    assert "F.max_pool2d(source" in message and "torch.nn.functional.max_pool2d(input" in message


def test_tied_inputs_are_part_of_the_pooling_cases():
    assert any(any(getattr(a, "kind", "") == "ties" for a in c.args) for c in ch05.pool_cases("basic"))
    assert any("ties" in c.label for c in ch05.pool_cases("basic"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available — the CUDA path is checked only on a GPU machine")
@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_solutions_pass_on_cuda(name):
    aid, check, parts = SOLUTIONS[name]
    report = _report(check, load_solution(aid)[name], quiet=True)
    assert "cuda" in report.devices and report.ok


# --------------------------------------------------------------------------
# Property sweeps: the reference solutions equal torch for any valid arguments

import math  # noqa: E402

import torch.nn.functional as F  # noqa: E402
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

factors = st.one_of(st.integers(1, 4), st.floats(0.3, 4.0).map(lambda f: round(f, 2)))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), fh=factors, fw=factors, use_size=st.booleans(),
       sh=st.integers(1, 12), sw=st.integers(1, 12), align=st.booleans())
def test_solution_resizers_match_torch_for_any_valid_arguments(h, w, fh, fw, use_size, sh, sw, align):
    x = torch.randn(1, 2, h, w, dtype=torch.float64)
    kw = {"size": (sh, sw)} if use_size else {"scale_factor": (fh, fw)}
    assume(use_size or (math.floor(h * fh) >= 1 and math.floor(w * fw) >= 1))
    nearest = load_solution("ch02_nearest")["upsample_nearest"]
    bilinear = load_solution("ch04_bilinear")["upsample_bilinear"]
    assert torch.equal(nearest(x, **kw), F.interpolate(x, **kw, mode="nearest"))
    torch.testing.assert_close(bilinear(x, **kw, align_corners=align),
                               F.interpolate(x, **kw, mode="bilinear", align_corners=align))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 3), kw=st.integers(1, 3),
       s=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))), data=st.data(), ties=st.booleans())
def test_solution_pool_and_unpool_match_torch_for_any_valid_arguments(h, w, kh, kw, s, data, ties):
    ph, pw = data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2))
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    x = torch.randint(0, 3, (2, 2, h, w)).double() if ties else torch.randn(2, 2, h, w, dtype=torch.float64)
    sol = load_solution("ch05_max_unpooling")
    values, indices = F.max_pool2d(x, (kh, kw), s, (ph, pw), return_indices=True)
    mine_v, mine_i = sol["max_pool2d_with_indices"](x, (kh, kw), s, (ph, pw))
    assert torch.equal(mine_v, values) and torch.equal(mine_i, indices)
    expected = F.max_unpool2d(values, indices, (kh, kw), s, (ph, pw), output_size=(h, w))
    assert torch.equal(sol["max_unpool2d"](values, indices, (kh, kw), s, (ph, pw), output_size=(h, w)), expected)
