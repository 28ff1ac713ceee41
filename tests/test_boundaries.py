"""Every argument-range check of the course is tested on both sides of each end.

A learner's range check that is off by one (``<=`` for ``<``, one axis of two, a bound never checked) either
accepts arguments torch rejects or rejects arguments torch accepts; the cases labelled ``edge:`` (valid, at an
end of a range) and ``invalid:`` (just past it) make either slip fail. Two kinds of test:

* each such case is on the side it says (``Case.invalid``), by the exercise's own reference (which follows
  torch), and every invalid case is labelled ``invalid:``;
* a kernel with each slip, written the way learners write it (``tests/wrong_kernels.py``), fails the suite
  the slip's cases are in.
"""

from __future__ import annotations

import pytest

from autograder import _resize, ch01, ch02, ch03, ch04, ch05, ch06, ch07
from autograder._core import CheckFailure
from wrong_kernels import bed_of_nails_with_bug, max_pool_with_bug, max_unpool_with_bug, size_with_bug

#: (name, case generator, the exercise's reference)
GENERATORS = [
    ("conv2d_output_size", lambda suite: ch01.size_cases("all", suite), ch01.SIZE_EXERCISE.reference),
    ("conv2d", lambda suite: ch01.conv2d_cases("all", suite), ch01.CONV2D_EXERCISE.reference),
    ("resize (nearest)", lambda suite: _resize.invalid_cases(0 if suite == "visible" else 1), ch02.EXERCISE.reference),
    ("resize (bilinear)", lambda suite: _resize.invalid_cases(0, True), ch04.EXERCISE.reference),
    ("bed_of_nails", lambda suite: ch03.cases("all", suite), ch03.EXERCISE.reference),
    ("max_pool2d_with_indices", lambda suite: ch05.pool_cases("all", suite), ch05.POOL_EXERCISE.reference),
    ("max_unpool2d", lambda suite: ch05.unpool_cases("all", suite), ch05.UNPOOL_EXERCISE.reference),
    ("conv_transpose2d_output_size", lambda suite: ch06.size_cases("all", suite), ch06.SIZE_EXERCISE.reference),
    ("pixel_shuffle", lambda suite: ch07.shuffle_cases("all", suite), ch07.PIXEL_SHUFFLE_EXERCISE.reference),
    ("pixel_unshuffle", lambda suite: ch07.unshuffle_cases("all", suite), ch07.PIXEL_UNSHUFFLE_EXERCISE.reference),
    ("bilinear_kernel", lambda suite: ch07.kernel_cases("all", suite), ch07.BILINEAR_KERNEL_EXERCISE.reference),
    ("resize_conv2d", lambda suite: ch07.resize_conv_cases("all", suite), ch07.RESIZE_CONV_EXERCISE.reference),
]


def _labelled(gen, suite):
    return [c for c in gen(suite) if c.invalid or (c.label or "").startswith("edge:")]


@pytest.mark.parametrize("suite", ["visible", "hidden"])
@pytest.mark.parametrize("name, gen, reference", GENERATORS, ids=[g[0] for g in GENERATORS])
def test_each_boundary_case_is_on_the_side_it_says(name, gen, reference, suite):
    wrong = []
    for case in _labelled(gen, suite):
        if case.invalid != case.label.startswith("invalid:"):
            wrong.append(f"{case.label}: invalid={case.invalid}")
        args, kwargs = case.materialise("cpu", case.dtypes[0])
        try:
            reference(*args, **kwargs)
            raised = None
        except Exception as e:  # noqa: BLE001 - the reference's own refusal
            raised = e
        if (raised is None) == case.invalid:
            wrong.append(f"{case.label}: {'raised ' + repr(raised) if raised else 'accepted'}")
    assert not wrong, wrong


def test_every_range_has_both_sides_in_the_hidden_suite():
    """At least one valid edge and one invalid case per exercise that has a range check."""
    for name, gen, _ in GENERATORS:
        cases = _labelled(gen, "hidden")
        assert any(not c.invalid for c in cases) and any(c.invalid for c in cases), name


SLIPS = [
    ("conv2d_output_size: an exact fit rejected (<= for <)", ch01.check_conv2d_output_size,
     size_with_bug("range_fit_rejected"), {}),
    ("conv2d_output_size: kernel_size never checked", ch01.check_conv2d_output_size,
     size_with_bug("range_kernel_unchecked"), {}),
    ("max_pool2d_with_indices: padding of half the kernel rejected", ch05.check_max_pool2d_with_indices,
     max_pool_with_bug("range_half_rejected"), {"part": "general"}),
    ("bed_of_nails: the stride checked on one axis", ch03.check_bed_of_nails, bed_of_nails_with_bug("range_height_only"),
     {"part": "pair"}),
    ("max_unpool2d: output_size range inclusive", ch05.check_max_unpool2d, max_unpool_with_bug("range_inclusive"),
     {"part": "general"}),
]


@pytest.mark.parametrize("label, check, fn, kwargs", SLIPS, ids=[s[0] for s in SLIPS])
def test_a_range_check_off_by_one_fails_the_hidden_suite(label, check, fn, kwargs):
    with pytest.raises(CheckFailure):
        check(fn, suite="hidden", quiet=True, **kwargs)


@pytest.mark.parametrize("check, fn, kwargs", [(s[1], s[2], s[3]) for s in SLIPS], ids=[s[0] for s in SLIPS])
def test_the_same_kernels_without_the_slip_pass(check, fn, kwargs):
    """The control: each wrong kernel is right but for its range check."""
    import inspect

    maker = {"conv2d_output_size": size_with_bug, "max_pool2d_with_indices": max_pool_with_bug,
             "bed_of_nails": bed_of_nails_with_bug, "max_unpool2d": max_unpool_with_bug}[fn.__name__]
    assert inspect.signature(maker(None)) == inspect.signature(fn)
    check(maker(None), suite="hidden", quiet=True, **kwargs)
