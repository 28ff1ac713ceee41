"""Chapter 4 — bilinear interpolation: ``upsample_bilinear``.

    check_upsample_bilinear(fn, part="integer" | "any" | "invalid" | "all", suite="visible")
"""

from __future__ import annotations

import torch.nn.functional as F

from . import _resize as R
from .contract import BenchShape, CaseCheck, bench_inputs
from ._core import Case, Mistake, T
from ._rules import RESIZE_OPS, Rule, warm_up

warm_up()

SIGNATURE = "input, size=None, scale_factor=None, align_corners=False"
PARTS = R.RESIZE_PARTS

RULE = Rule(RESIZE_OPS, "compute each output pixel's two source rows, two source columns and their "
                        "weights yourself; no interpolate/upsample/grid_sample and no convolutions")


def _mistakes():
    def when(flag, model):
        def variant(x, size=None, scale_factor=None, align_corners=False):
            if bool(align_corners) != flag:
                raise ValueError  # this mistake only exists for one align_corners value
            return model(x, size, scale_factor, align_corners)
        return variant

    return (
        Mistake("align_corners is swapped: True maps the corner pixels onto each other, src = dst · (in−1)/(out−1); "
                "False maps pixel centres, src = (dst + 0.5) · scale − 0.5",
                lambda x, size=None, scale_factor=None, align_corners=False:
                R.reference_bilinear(x, size, scale_factor, not align_corners), id="align-corners-swapped"),
        Mistake("the half-pixel offset is missing: with align_corners=False, src = (dst + 0.5) · scale − 0.5",
                when(False, lambda x, size, sf, ac: R.bilinear_model(x, size, sf, ac, half_pixel=False)),
                id="half-pixel-offset-missing"),
        Mistake("the source coordinate is not clamped at the border: src below 0 must become 0 "
                "(torch clamps, it does not extrapolate)",
                when(False, lambda x, size, sf, ac: R.bilinear_model(x, size, sf, ac, clamp=False)),
                id="source-not-clamped"),
        Mistake("the scale is in/out; when scale_factor is given torch uses 1/scale_factor",
                when(False, lambda x, size, sf, ac: R.bilinear_model(x, size, sf, ac, use_factor=False)
                     if sf is not None else None), id="scale-inverted"),
    )


EXERCISE = R.resize_exercise("upsample_bilinear", R.reference_bilinear, RULE, _mistakes())

HAND_WORKED = [
    Case(R.NAMES, (T((1, 1, 2, 2), [1., 2., 3., 4.]),), {"scale_factor": 2, "align_corners": False},
         label="hand-worked: [[1, 2], [3, 4]] doubled, align_corners=False"),
    Case(R.NAMES, (T((1, 1, 2, 2), [1., 2., 3., 4.]),), {"size": 3, "align_corners": True},
         label="hand-worked: [[1, 2], [3, 4]] to 3x3, align_corners=True (corners kept)"),
]


def cases(part: str = "all", suite: str = "visible", seed: int | None = None) -> list[Case]:
    """upsample_bilinear cases of a part ('integer', 'any', 'invalid' or 'all'), with align_corners drawn too."""
    return R.resize_cases(HAND_WORKED, part, suite, seed, align_corners=True)


UPSAMPLE_BILINEAR = CaseCheck("check_upsample_bilinear", "upsample_bilinear", EXERCISE, cases,
                              PARTS, SIGNATURE,
                              'Compare ``fn`` with ``F.interpolate(mode="bilinear", align_corners=...)``.',
                              bench=BenchShape("(8,16,32,32) x2", lambda dev: bench_inputs(dev, (8, 16, 32, 32), scale_factor=2), "F.interpolate bilinear", lambda x, **kw: F.interpolate(x, mode="bilinear", **kw)))
check_upsample_bilinear = UPSAMPLE_BILINEAR.visible()


