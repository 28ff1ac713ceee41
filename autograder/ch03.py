"""Chapter 3 — bed of nails: ``bed_of_nails``.

    check_bed_of_nails(fn, part="int" | "pair" | "all", suite="visible")

The reference is the identity the chapter teaches: bed of nails *is* a
transposed convolution with a one-hot 1x1 kernel, stride s, output_padding
s−1, one group per channel.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from ._arith import as_pair
from ._core import Case, Exercise, Mistake, T, case_generator
from ._resize import require_4d
from ._rules import Rule, warm_up
from .ch02 import RESIZE_OPS
from .contract import BenchShape, CaseCheck, bench_inputs

warm_up()

SIGNATURE = "input, stride"
PARTS = ("int", "pair")
NAMES = ("input", "stride")

RULE = Rule(RESIZE_OPS, "allocate zeros and write the input into them with strided slicing; "
                        "no transposed convolution (that is the identity the chapter shows) and no upsampling")


_pair = as_pair


def reference_bed_of_nails(input, stride):
    """A transposed convolution with a one-hot 1x1 kernel per channel."""
    require_4d(input)
    s = _pair(stride)
    if len(s) != 2 or any(not isinstance(v, int) or v < 1 for v in s):
        raise ValueError(f"stride must be a positive int or a pair of them, got {stride!r}")
    C = input.shape[1]
    one_hot = torch.ones(C, 1, 1, 1, dtype=input.dtype, device=input.device)
    return F.conv_transpose2d(input, one_hot, stride=s, output_padding=(s[0] - 1, s[1] - 1), groups=C)


def _offset_model(where):
    def model(x, stride):
        sh, sw = _pair(stride)
        oh, ow = {"bottom-right": (sh - 1, sw - 1), "centre": (sh // 2, sw // 2)}[where]
        if (oh, ow) == (0, 0):
            raise ValueError
        N, C, H, W = x.shape
        out = x.new_zeros(N, C, H * sh, W * sw)
        out[..., oh::sh, ow::sw] = x
        return out
    return model


def _shape_hint(args, kwargs, want, got):
    x, stride = args[0], args[1]
    sh, sw = _pair(stride)
    H, W = x.shape[-2:]
    if len(got) != 4 or got[:2] != want[:2]:
        return "the output is (N, C, H·s_H, W·s_W): batch and channels pass through."
    lines = []
    for axis, i, s, g, w in (("height", H, sh, got[2], want[2]), ("width", W, sw, got[3], want[3])):
        if g == w:
            continue
        if g == (i - 1) * s + 1:
            lines.append(f"{axis}: yours is {g} = ({i}−1)·{s}+1, expected {i}·{s} = {w}: the last input pixel is "
                         f"followed by {s}−1 zeros too, so every input pixel owns an {s}-pixel block.")
        else:
            lines.append(f"{axis}: yours is {g}, expected {i}·{s} = {w}.")
    if (got[2], got[3]) == (H * sw, W * sh) and sh != sw:
        lines.append("stride=(s_H, s_W): the first stride is for the height.")
    return "\n".join(lines) or None


def _features(case: Case) -> dict[str, bool]:
    s = _pair(case.args[1]) if len(_pair(case.args[1])) == 2 else (0, 0)
    return {
        "stride > 1": max(s) > 1,
        "different height and width strides": s[0] != s[1],
        "a pair stride": isinstance(case.args[1], tuple),
        "invalid arguments": case.invalid,
    }


EXERCISE = Exercise(
    name="bed_of_nails",
    reference=reference_bed_of_nails,
    rules=(RULE,),
    rule_text="no transposed convolution or upsampling operator was called",
    mistakes=(
        Mistake("the input values sit at the bottom-right of each block; bed of nails puts input[i, j] at "
                "output[i·s, j·s], the top-left (out[..., ::s, ::s] = input)", _offset_model("bottom-right"),
                id="nails-bottom-right"),
        Mistake("the input values sit in the centre of each block; bed of nails puts input[i, j] at "
                "output[i·s, j·s], the top-left (out[..., ::s, ::s] = input)", _offset_model("centre"),
                id="nails-centre"),
        Mistake("height and width strides swapped — stride=(s_H, s_W)",
                lambda x, stride: reference_bed_of_nails(x, tuple(reversed(_pair(stride))))
                if _pair(stride)[0] != _pair(stride)[1] else None, id="stride-swapped"),
    ),
    shape_hint=_shape_hint,
    features=_features,
)


@case_generator(PARTS)
def cases(part: str, suite: str, base: int, rng: random.Random) -> list[Case]:
    """bed_of_nails cases of a part: 'int' strides (with a hand-worked case) or 'pair' strides (with invalid ones)."""
    out = []
    if part == "int":
        out.append(Case(NAMES, (T((1, 1, 2, 2), [1., 2., 3., 4.]), 2), label="hand-worked: [[1, 2], [3, 4]], stride 2"))
    count = {"visible": 8, "hidden": 24}[suite]
    k = 0
    while len(out) < count:
        k += 1
        shape = (rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 6), rng.randint(1, 6))
        stride = rng.randint(1, 4) if part == "int" else (rng.randint(1, 4), rng.randint(1, 4))
        dtypes = (torch.float64, torch.float32) if k % 3 == 0 else (torch.float64,)
        out.append(Case(NAMES, (T(shape), stride), seed=base * 1000 + k, dtypes=dtypes))
    if part == "pair":
        out += [Case(NAMES, (T((2, 3, 3)), 2), seed=base, label="invalid: a 3-D input", invalid=True),
                Case(NAMES, (T((1, 1, 3, 3)), 0), seed=base, label="invalid: stride 0", invalid=True),
                Case(NAMES, (T((1, 1, 3, 3)), (2, -1)), seed=base, label="invalid: a negative stride", invalid=True),
                # the other side of each edge
                Case(NAMES, (T((1, 1, 3, 3)), 1), seed=base, label="edge: stride 1 (a copy)"),
                Case(NAMES, (T((1, 1, 3, 3)), (1, 0)), seed=base, label="invalid: a stride of 0 in one direction", invalid=True)]
    return out


def _one_hot_transposed(input, stride):
    """Bed of nails by torch: a transposed convolution by a one-hot 1x1 kernel (the benchmark's baseline)."""
    channels = input.shape[1]
    one_hot = torch.ones(channels, 1, 1, 1, device=input.device, dtype=input.dtype)
    return F.conv_transpose2d(input, one_hot, stride=stride, output_padding=stride - 1, groups=channels)


BED_OF_NAILS = CaseCheck("check_bed_of_nails", "bed_of_nails", EXERCISE, cases, PARTS, SIGNATURE,
                         'Compare ``fn`` with a transposed convolution by a one-hot 1x1 kernel.',
                         bench=BenchShape("(8,16,32,32) s2", lambda dev: bench_inputs(dev, (8, 16, 32, 32), 2), "1x1 one-hot conv_transpose2d", _one_hot_transposed))
check_bed_of_nails = BED_OF_NAILS.visible()


