"""Chapter 2 — nearest-neighbour upsampling: ``upsample_nearest``.

    check_upsample_nearest(fn, part="integer" | "any" | "invalid" | "all", suite="visible")
"""

from __future__ import annotations

import torch.nn.functional as F

from . import _resize as R
from .contract import BenchShape, CaseCheck, bench_inputs
from ._core import Case, Mistake, T
from ._rules import RESIZE_OPS, Rule, warm_up

warm_up()

SIGNATURE = "input, size=None, scale_factor=None"
PARTS = R.RESIZE_PARTS

RULE = Rule(RESIZE_OPS, "compute the source index of every output pixel yourself, then gather; "
                        "no interpolate/upsample/grid_sample and no convolutions")


def _mistakes():
    def factor_only(fn):
        def model(x, size=None, scale_factor=None):
            if scale_factor is None:
                raise ValueError  # the mistake needs a factor to show
            return fn(x, size, scale_factor)
        return model

    return (
        Mistake("the source index is rounded; mode='nearest' rounds down: src = floor(dst · scale)",
                lambda x, size=None, scale_factor=None: R.nearest_model(x, size, scale_factor, index="round"),
                id="source-index-rounded"),
        Mistake("pixel centres are used, src = floor((dst + 0.5) · scale) — that is mode='nearest-exact'; "
                "mode='nearest' uses src = floor(dst · scale)",
                lambda x, size=None, scale_factor=None: R.nearest_model(x, size, scale_factor, index="half"),
                id="source-index-pixel-centres"),
        Mistake("the scale is in/out; when scale_factor is given torch uses 1/scale_factor",
                factor_only(lambda x, size, sf: R.nearest_model(x, size, sf, use_factor=False)), id="scale-inverted"),
        Mistake("the source index is computed in float64; torch computes floor(dst · scale) in float32",
                lambda x, size=None, scale_factor=None: R.nearest_model(x, size, scale_factor, index="floor64"),
                id="source-index-float64"),
        Mistake("an output exactly twice as long as the input takes src = dst // 2 in torch, whatever the "
                "scale factor (2.2 on 2 pixels gives 4 outputs: sources 0, 0, 1, 1)",
                lambda x, size=None, scale_factor=None: R.nearest_model(x, size, scale_factor, special=("same",)),
                id="double-size-shortcut-missed"),
        Mistake("an axis whose size does not change is copied unchanged in torch, whatever the scale factor",
                lambda x, size=None, scale_factor=None: R.nearest_model(x, size, scale_factor, special=("double",)),
                id="same-size-shortcut-missed"),
    )


EXERCISE = R.resize_exercise("upsample_nearest", R.reference_nearest, RULE, _mistakes())

HAND_WORKED = [
    Case(R.NAMES, (T((1, 1, 2, 2), [1., 2., 3., 4.]),), {"scale_factor": 2},
         label="hand-worked: [[1, 2], [3, 4]] doubled"),
    Case(R.NAMES, (T((1, 1, 1, 4), [10., 20., 30., 40.]),), {"scale_factor": 1.5},
         label="hand-worked: a row of 4 scaled by 1.5 (sources 0, 0, 1, 2, 2, 3)"),
    Case(R.NAMES, (T((1, 1, 11, 3)),), {"scale_factor": (3.7, 1)}, seed=37,
         label="torch's arithmetic: 11 rows x 3.7, src = floor(dst · (1/3.7)) in float32 (the scale in/out = 11/40, "
               "or float64 arithmetic, picks other sources)"),
    Case(R.NAMES, (T((1, 1, 3, 2)),), {"scale_factor": (1, 2.2)}, seed=22,
         label="torch's shortcut: 2 columns x 2.2 gives exactly 4, so src = dst // 2"),
]


def cases(part: str = "all", suite: str = "visible", seed: int | None = None) -> list[Case]:
    """upsample_nearest cases of a part ('integer', 'any', 'invalid' or 'all'), the hand-worked ones included."""
    return R.resize_cases(HAND_WORKED, part, suite, seed)


UPSAMPLE_NEAREST = CaseCheck("check_upsample_nearest", "upsample_nearest", EXERCISE, cases,
                             PARTS, SIGNATURE,
                             'Compare ``fn`` with ``F.interpolate(mode="nearest")``.',
                             bench=BenchShape("(8,16,32,32) x2", lambda dev: bench_inputs(dev, (8, 16, 32, 32), scale_factor=2), "F.interpolate nearest", lambda x, **kw: F.interpolate(x, mode="nearest", **kw)))
check_upsample_nearest = UPSAMPLE_NEAREST.visible()


