"""Every graded kernel of the course, in one list: its assignment, check and cases.

Used by ``make bench`` (check latency per exercise) and by the project's tests.
Chapter modules are imported lazily, so importing this is cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    aid: str          # the assignment (solutions/<aid>/<aid>.ipynb)
    function: str     # the learner's function
    module: str       # autograder.<module>
    check: str        # the check's name in that module
    cases: str        # the case generator's name: (part, suite, seed) -> cases
    exercise: str     # the Exercise object's name
    parts: tuple[str, ...]

    def load(self, attr: str):
        return getattr(importlib.import_module(f"autograder.{self.module}"), getattr(self, attr))


ENTRIES = (
    Entry("ch01_cnn_size", "conv2d_output_size", "ch01", "check_conv2d_output_size", "size_cases", "SIZE_EXERCISE",
          ("all",)),
    Entry("ch01_cnn_size", "conv2d", "ch01", "check_conv2d", "conv2d_cases", "CONV2D_EXERCISE",
          ("basic", "hyper", "groups")),
    Entry("ch02_nearest", "upsample_nearest", "ch02", "check_upsample_nearest", "cases", "EXERCISE",
          ("integer", "any", "invalid")),
    Entry("ch03_bed_of_nails", "bed_of_nails", "ch03", "check_bed_of_nails", "cases", "EXERCISE", ("int", "pair")),
    Entry("ch04_bilinear", "upsample_bilinear", "ch04", "check_upsample_bilinear", "cases", "EXERCISE",
          ("integer", "any", "invalid")),
    Entry("ch05_max_unpooling", "max_pool2d_with_indices", "ch05", "check_max_pool2d_with_indices", "pool_cases",
          "POOL_EXERCISE", ("basic", "general")),
    Entry("ch05_max_unpooling", "max_unpool2d", "ch05", "check_max_unpool2d", "unpool_cases", "UNPOOL_EXERCISE",
          ("basic", "general")),
    Entry("ch06_transposed_conv", "conv_transpose2d_output_size", "ch06", "check_conv_transpose2d_output_size",
          "size_cases", "SIZE_EXERCISE", ("all",)),
    Entry("ch06_transposed_conv", "conv_transpose2d", "ch06", "check_conv_transpose2d", "cases", "EXERCISE",
          ("basic", "general", "groups")),
    Entry("ch07_checkerboard", "overlap_count", "ch07", "check_overlap_count", "overlap_cases", "OVERLAP_EXERCISE",
          ("1d", "2d")),
    Entry("ch07_checkerboard", "pixel_shuffle", "ch07", "check_pixel_shuffle", "shuffle_cases",
          "PIXEL_SHUFFLE_EXERCISE", ("all",)),
    Entry("ch07_checkerboard", "pixel_unshuffle", "ch07", "check_pixel_unshuffle", "unshuffle_cases",
          "PIXEL_UNSHUFFLE_EXERCISE", ("all",)),
    Entry("ch07_checkerboard", "resize_conv2d", "ch07", "check_resize_conv2d", "resize_conv_cases",
          "RESIZE_CONV_EXERCISE", ("all",)),
    Entry("ch07_checkerboard", "bilinear_kernel", "ch07", "check_bilinear_kernel", "kernel_cases",
          "BILINEAR_KERNEL_EXERCISE", ("all",)),
    # Chapter 9's values part reuses Chapter 6's check (its speed part is a timed GradedCheck in ch09)
    Entry("ch09_making_it_fast", "conv_transpose2d", "ch06", "check_conv_transpose2d", "cases", "EXERCISE",
          ("general",)),
)
