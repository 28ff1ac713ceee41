"""Chapters 2-5 checks: solutions pass, each known-wrong variant is caught and named."""

from __future__ import annotations

import pytest
import torch

from autograder import CheckFailure, ch02, ch03, ch04, ch05
from conftest import load_solution
from wrong_kernels import (bed_of_nails_with_bug, max_pool_with_bug, max_unpool_with_bug,
                           resize_with_bug)

SOLUTIONS = {
    "upsample_nearest": ("ch02_nearest", ch02.check_upsample_nearest, ch02.PARTS),
    "bed_of_nails": ("ch03_bed_of_nails", ch03.check_bed_of_nails, ch03.PARTS),
    "upsample_bilinear": ("ch04_bilinear", ch04.check_upsample_bilinear, ch04.PARTS),
    "max_pool2d_with_indices": ("ch05_max_unpooling", ch05.check_max_pool2d_with_indices, ch05.PARTS),
    "max_unpool2d": ("ch05_max_unpooling", ch05.check_max_unpool2d, ch05.PARTS),
}


def message_of(check, fn, **kwargs) -> str:
    with pytest.raises(CheckFailure) as info:
        check(fn, quiet=True, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("name", list(SOLUTIONS))
@pytest.mark.parametrize("suite", ["visible", "hidden"])
def test_solution_passes_every_part(name, suite):
    aid, check, parts = SOLUTIONS[name]
    fn = load_solution(aid)[name]
    for part in parts:
        assert check(fn, part=part, suite=suite, quiet=True).ok


@pytest.mark.parametrize("name, make", [
    ("upsample_nearest", lambda: resize_with_bug("nearest", None)),
    ("upsample_bilinear", lambda: resize_with_bug("bilinear", None)),
    ("bed_of_nails", lambda: bed_of_nails_with_bug(None)),
    ("max_pool2d_with_indices", lambda: max_pool_with_bug(None)),
    ("max_unpool2d", lambda: max_unpool_with_bug(None)),
])
def test_an_independent_correct_implementation_passes(name, make):
    """Are the checks fair to a correct kernel written differently from the solution?"""
    assert SOLUTIONS[name][1](make(), quiet=True).ok


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
    report = check(load_solution(aid)[name], quiet=True)
    assert "cuda" in report.devices and report.ok
