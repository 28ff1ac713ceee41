"""Chapter 1 — the CNN size problem: ``conv2d_output_size`` and ``conv2d``.

Public checks (called from the notebook's test cells):

    check_conv2d_output_size(fn, suite="visible")
    check_conv2d(fn, part="basic" | "hyper" | "groups" | "all", suite="visible")

``suite="hidden"`` draws a larger set of cases from a seed the instructor
chooses; the generators are the same, so reading this file tells a learner
what is tested but not which values.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from ._arith import conv_out, diagnose_conv_axis, pair  # noqa: F401 - pair is re-exported
from .contract import BenchShape, CaseCheck, bench_inputs
from ._core import case_generator, Case, Exercise, Mistake, T
from ._rules import CONVOLUTION_OPS, Rule, warm_up

warm_up()

# --------------------------------------------------------------------------
# conv2d_output_size

SIZE_SIGNATURE = "size, kernel_size, stride=1, padding=0, dilation=1"


def reference_conv2d_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Ask torch: run ``F.conv2d`` on a zero image of that size and read the shape."""
    h, w = pair(size, "size")
    x = torch.zeros(1, 1, h, w)
    k = torch.zeros(1, 1, *pair(kernel_size, "kernel_size"))
    out = tuple(F.conv2d(x, k, stride=stride, padding=padding, dilation=dilation).shape[-2:])
    # An int answer for all-int arguments (one axis), a pair as soon as any argument is a pair.
    scalar = all(isinstance(v, int) for v in (size, kernel_size, stride, padding, dilation))
    return out[0] if scalar else out


def _size_hint(args, kwargs, want, got):
    size, kernel = args[0], args[1]
    s = pair(kwargs.get("stride", 1))
    p = pair(kwargs.get("padding", 0))
    d = pair(kwargs.get("dilation", 1))
    i, k = pair(size), pair(kernel)
    if isinstance(want, int):
        return diagnose_conv_axis("size", int(got), i[0], k[0], s[0], p[0], d[0])
    lines = []
    for ax, name in ((0, "height"), (1, "width")):
        if got[ax] != want[ax]:
            other = (i[ax], k[1 - ax], s[1 - ax], p[1 - ax], d[1 - ax])
            lines.append(diagnose_conv_axis(name, got[ax], i[ax], k[ax], s[ax], p[ax], d[ax], other))
    return "\n  ".join(lines) or None


def _size_features(case: Case) -> dict[str, bool]:
    kw = case.kwargs
    return {
        "stride > 1": any(v > 1 for v in pair(kw.get("stride", 1))),
        "padding > 0": any(v > 0 for v in pair(kw.get("padding", 0))),
        "dilation > 1": any(v > 1 for v in pair(kw.get("dilation", 1))),
        "pair arguments": any(isinstance(v, tuple) for v in (*case.args, *kw.values())),
        "invalid arguments": case.invalid,
    }


SIZE_EXERCISE = Exercise(
    name="conv2d_output_size",
    reference=reference_conv2d_output_size,
    returns="size",
    size_hint=_size_hint,
    features=_size_features,
)


def _maybe_pair(rng: random.Random, lo: int, hi: int):
    a = rng.randint(lo, hi)
    return a if rng.random() < 0.5 else (a, rng.randint(lo, hi))


def size_cases(part: str = "all", suite: str = "visible", seed: int | None = None) -> list[Case]:
    """Cases for ``conv2d_output_size`` (one part: ``"all"``)."""
    if part != "all":
        raise ValueError(f"conv2d_output_size has one part, 'all'; got {part!r}")
    names = ("size", "kernel_size")
    cases = [Case(names, (7, 3), label="the 7x7 input, 3x3 kernel of the chapter")]
    rng = random.Random(seed if seed is not None else (0 if suite == "visible" else 1))
    count = 12 if suite == "visible" else 60
    while len(cases) < count:
        size = _maybe_pair(rng, 1, 40)
        kernel = _maybe_pair(rng, 1, 7)
        kw = {}
        if rng.random() < 0.7:
            kw["stride"] = _maybe_pair(rng, 1, 4)
        if rng.random() < 0.6:
            kw["padding"] = _maybe_pair(rng, 0, 3)
        if rng.random() < 0.4:
            kw["dilation"] = _maybe_pair(rng, 1, 3)
        try:
            reference_conv2d_output_size(size, kernel, **kw)
        except RuntimeError:
            continue  # invalid draws are added deliberately below
        cases.append(Case(names, (size, kernel), kw))
    cases += [
        Case(names, (2, 3), label="invalid: kernel larger than the input", invalid=True),
        Case(names, (8, 3), {"stride": 0}, label="invalid: stride 0", invalid=True),
        Case(names, (8, 3), {"padding": -1}, label="invalid: negative padding", invalid=True),
    ]
    if suite == "hidden":
        cases += [
            Case(names, ((5, 9), (5, 3)), {"stride": (2, 3)}, label="edge: kernel equal to the input"),
            Case(names, ((3, 3), (3, 3)), {"padding": 1, "dilation": 2}),
            Case(names, (4, 3), {"dilation": 0}, label="invalid: dilation 0", invalid=True),
            # each end of every range, on both sides (an off-by-one range check shows)
            Case(names, (4, 0), label="invalid: kernel_size 0", invalid=True),
            Case(names, (4, 1), {"stride": 1, "dilation": 1}, label="edge: kernel 1, stride 1, dilation 1"),
            Case(names, (3, 7), {"padding": 2}, label="edge: the kernel exactly fills the padded input"),
            Case(names, (2, 7), {"padding": 2}, label="invalid: the padded input one pixel short of the kernel", invalid=True),
            Case(names, (5, 3), {"dilation": 2}, label="edge: the dilated kernel exactly fills the input"),
            Case(names, (4, 3), {"dilation": 2}, label="invalid: the dilated kernel one pixel wider than the input", invalid=True),
            Case(names, (6, 3), {"padding": 0}, label="edge: padding 0"),
        ]
    return cases


CONV2D_OUTPUT_SIZE = CaseCheck("check_conv2d_output_size", "conv2d_output_size", SIZE_EXERCISE, size_cases, ("all",),
                               SIZE_SIGNATURE, "Compare ``fn`` with the output size torch's ``conv2d`` produces.")
check_conv2d_output_size = CONV2D_OUTPUT_SIZE.visible()


# --------------------------------------------------------------------------
# conv2d

CONV2D_SIGNATURE = "input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1"

CONV2D_RULE = Rule(CONVOLUTION_OPS, "build conv2d from indexing, slicing, sums and matrix products, "
                   "not from torch's convolution operators")


def reference_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch's ``F.conv2d``: what the learner's conv2d is compared with."""
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def _hp(kwargs):
    return (pair(kwargs.get("stride", 1)), pair(kwargs.get("padding", 0)),
            pair(kwargs.get("dilation", 1)), int(kwargs.get("groups", 1)))


def _conv2d_shape_hint(args, kwargs, want, got):
    x, w = args[0], args[1]
    (s, p, d, g) = _hp(kwargs)
    lines = []
    if len(got) != 4:
        return f"the output should be 4-D (N, C_out, H_out, W_out); yours has {len(got)} dims."
    if got[0] != want[0]:
        lines.append(f"batch: yours is {got[0]}, expected {want[0]} — the batch size N passes through unchanged.")
    if got[1] != want[1]:
        if got[1] == w.shape[1] * g or got[1] == x.shape[1]:
            lines.append(f"channels: yours is {got[1]}, expected {want[1]} = weight.shape[0]. Conv2d weights are laid "
                         "out (C_out, C_in/groups, kH, kW): the first dim is the output channels.")
        else:
            lines.append(f"channels: yours is {got[1]}, expected {want[1]} = weight.shape[0] (C_out).")
    H, W = x.shape[-2:]
    kH, kW = w.shape[-2:]
    if (got[2], got[3]) != (want[2], want[3]) and kH != kW and (got[2], got[3]) == (
            conv_out(H, kW, s[0], p[0], d[0]), conv_out(W, kH, s[1], p[1], d[1])):
        lines.append(f"height and width: yours are {got[2]}x{got[3]}, expected {want[2]}x{want[3]}; yours is what a "
                     f"{kW}x{kH} kernel gives — the kernel's height and width swapped (weight.shape[-2] is kH, "
                     "weight.shape[-1] is kW).")
        return "\n".join(lines)
    axes = ((2, "height", H, kH, 0), (3, "width", W, kW, 1))
    for dim, name, i, k, a in axes:
        if got[dim] != want[dim]:
            other_k = kW if a == 0 else kH
            other = (i, other_k, s[1 - a], p[1 - a], d[1 - a])
            lines.append(diagnose_conv_axis(name, got[dim], i, k, s[a], p[a], d[a], other))
    return "\n".join(lines) or None


def _conv2d_features(case: Case) -> dict[str, bool]:
    kw = case.kwargs
    s, p, d, g = _hp(kw)
    w = case.args[1]
    bias = case.args[2] if len(case.args) > 2 else kw.get("bias")
    x = case.args[0]
    return {
        "stride > 1": max(s) > 1,
        "padding > 0": max(p) > 0,
        "dilation > 1": max(d) > 1,
        "groups > 1": g > 1,
        "a bias": bias is not None,
        "a non-square kernel": w.shape[-1] != w.shape[-2],
        "different height and width strides": s[0] != s[1],
        "a batch of more than one": x.shape[0] > 1,
        "invalid arguments": case.invalid,
    }


def _conv2d_mistakes():
    def kernel_flipped(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(x, w.flip(-2, -1), b, stride, padding, dilation, groups)

    def kernel_transposed(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        if w.shape[-1] != w.shape[-2]:
            raise ValueError
        return F.conv2d(x, w.transpose(-2, -1), b, stride, padding, dilation, groups)

    def bias_ignored(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        if b is None:
            raise ValueError
        return F.conv2d(x, w, None, stride, padding, dilation, groups)

    def one_side(side):
        def padded_one_side(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
            ph, pw = pair(padding)
            if ph == pw == 0:
                raise ValueError
            pads = (pw, 0, ph, 0) if side == "top/left" else (0, pw, 0, ph)
            return F.conv2d(F.pad(x, pads), w, b, stride, 0, dilation, groups)
        return padded_one_side

    def dilation_ignored(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        if pair(dilation) == (1, 1):
            raise ValueError
        return F.conv2d(x, w, b, stride, padding, 1, groups)

    def stride_on(axis):
        def stride_one_axis(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
            sh, sw = pair(stride)
            if (sh, sw) == (1, 1):
                raise ValueError
            st = (sh, 1) if axis == "height" else (1, sw)
            return F.conv2d(x, w, b, st, padding, dilation, groups)
        return stride_one_axis

    def padding_ignored(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        if pair(padding) == (0, 0):
            raise ValueError
        return F.conv2d(x, w, b, stride, 0, dilation, groups)

    def stride_ignored(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        # both axes strided and both ignored (one axis ignored is stride-height-only / stride-width-only)
        if min(pair(stride)) == 1:
            raise ValueError
        return F.conv2d(x, w, b, 1, padding, dilation, groups)

    def stride_swapped(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        sh, sw = pair(stride)
        if sh == sw:
            raise ValueError
        return F.conv2d(x, w, b, (sw, sh), padding, dilation, groups)

    def group_offset_missing(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        if groups == 1:
            raise ValueError
        per = x.shape[1] // groups
        return F.conv2d(x[:, :per].repeat(1, groups, 1, 1), w, b, stride, padding, dilation, groups)

    def weight_layout_swapped(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        if groups != 1 or w.shape[0] != w.shape[1]:
            raise ValueError
        return F.conv2d(x, w.transpose(0, 1), b, stride, padding, dilation, groups)

    return (
        Mistake("the kernel is flipped — deep-learning conv2d is cross-correlation: "
                "out[i, j] = Σ x[i·s + a, j·s + b] · w[a, b], with no flip", kernel_flipped, id="kernel-flipped"),
        Mistake("the bias is ignored — add bias[c_out] to every pixel of output channel c_out", bias_ignored,
                id="bias-ignored"),
        Mistake("padding added only at the top and left — pad both sides", one_side("top/left"),
                id="padding-one-side-top-left"),
        Mistake("padding added only at the bottom and right — pad both sides", one_side("bottom/right"),
                id="padding-one-side-bottom-right"),
        Mistake("dilation ignored — kernel taps are `dilation` pixels apart", dilation_ignored,
                id="dilation-ignored"),
        Mistake("padding ignored — pad the input with `padding` zeros on every side before sliding the kernel",
                padding_ignored, id="padding-ignored"),
        Mistake("stride ignored — the kernel moves `stride` pixels between outputs: out[i, j] starts at input "
                "row i·stride_H, column j·stride_W", stride_ignored, id="stride-ignored"),
        Mistake("stride applied to the height only", stride_on("height"), id="stride-height-only"),
        Mistake("stride applied to the width only", stride_on("width"), id="stride-width-only"),
        Mistake("height and width strides swapped — stride=(sH, sW)", stride_swapped, id="stride-swapped"),
        Mistake("every group reads the first group's input channels — group g uses input channels "
                "g·C_in/groups ... (g+1)·C_in/groups − 1", group_offset_missing, id="groups-first-group-only"),
        Mistake("the weight is read as (C_in, C_out, kH, kW); Conv2d weights are (C_out, C_in/groups, kH, kW)",
                weight_layout_swapped, id="weight-conv-transpose-layout"),
        Mistake("the kernel's height and width swapped (kernel transposed)", kernel_transposed,
                id="kernel-transposed"),
    )


CONV2D_EXERCISE = Exercise(
    name="conv2d",
    reference=reference_conv2d,
    rules=(CONV2D_RULE,),
    rule_text="no convolution operator was called",
    mistakes=_conv2d_mistakes(),
    shape_hint=_conv2d_shape_hint,
    features=_conv2d_features,
)

_NAMES = ("input", "weight", "bias")
PARTS = ("basic", "hyper", "groups")


def _hand_worked() -> Case:
    # 3x3 ramp 1..9 and an asymmetric 2x2 kernel: every output is x[i,j] - x[i+1,j+1] = -4;
    # a flipped kernel gives +4, so the sign alone tells the two apart.
    return Case(_NAMES, (T((1, 1, 3, 3), [1., 2., 3., 4., 5., 6., 7., 8., 9.]),
                         T((1, 1, 2, 2), [1., 0., 0., -1.]), None),
                label="hand-worked: 3x3 ramp, kernel [[1, 0], [0, -1]]")


def _random_case(rng: random.Random, part: str, seed: int) -> Case | None:
    groups = rng.choice((2, 3)) if part == "groups" else 1
    n = rng.randint(1, 2)
    c_in = groups * rng.randint(1, 2)
    c_out = groups * rng.randint(1, 2)
    kh, kw = rng.randint(1, 3), rng.randint(1, 3)
    kwargs = {}
    if part in ("hyper", "groups"):
        kwargs["stride"] = _maybe_pair(rng, 1, 3)
        kwargs["padding"] = _maybe_pair(rng, 0, 2)
        kwargs["dilation"] = _maybe_pair(rng, 1, 2)
    if groups > 1:
        kwargs["groups"] = groups
    h, w = rng.randint(3, 9), rng.randint(3, 9)
    bias = T((c_out,)) if rng.random() < 0.6 else None
    s, p, d, g = _hp(kwargs)
    if conv_out(h, kh, s[0], p[0], d[0]) < 1 or conv_out(w, kw, s[1], p[1], d[1]) < 1:
        return None
    dtypes = (torch.float64, torch.float32) if seed % 3 == 0 else (torch.float64,)
    return Case(_NAMES, (T((n, c_in, h, w)), T((c_out, c_in // groups, kh, kw)), bias), kwargs,
                seed=seed, dtypes=dtypes)


def _invalid_cases(seed: int) -> list[Case]:
    x = T((1, 4, 5, 5))
    return [
        Case(_NAMES, (x, T((3, 4, 3, 3)), None), {"groups": 2}, seed=seed,
             label="invalid: out channels not divisible by groups", invalid=True),
        Case(_NAMES, (x, T((2, 3, 3, 3)), None), {}, seed=seed,
             label="invalid: weight expects 3 input channels, input has 4", invalid=True),
        Case(_NAMES, (T((1, 1, 2, 2)), T((1, 1, 3, 3)), None), {}, seed=seed,
             label="invalid: kernel larger than the padded input", invalid=True),
        Case(_NAMES, (x, T((2, 4, 3, 3)), T((3,))), {}, seed=seed,
             label="invalid: bias has 3 elements for 2 output channels", invalid=True),
        Case(_NAMES, (x, T((2, 4, 3, 3)), None), {"stride": 0}, seed=seed, label="invalid: stride 0", invalid=True),
        # the other side of each edge above
        Case(_NAMES, (x, T((4, 2, 3, 3)), None), {"groups": 2}, seed=seed, label="edge: channels divisible by groups"),
        Case(_NAMES, (T((1, 1, 2, 2)), T((1, 1, 3, 3)), None), {"padding": 1}, seed=seed,
             label="edge: padding 1 makes the 3x3 kernel fit a 2x2 input"),
        Case(_NAMES, (T((1, 1, 3, 3)), T((1, 1, 3, 3)), None), {}, seed=seed,
             label="edge: the kernel exactly fills the input"),
        Case(_NAMES, (x, T((2, 4, 3, 3)), None), {"stride": 1}, seed=seed, label="edge: stride 1"),
    ]


@case_generator(PARTS)
def conv2d_cases(part: str, suite: str, base: int, rng: random.Random) -> list[Case]:
    """conv2d cases of a part: 'basic' (with a hand-worked case), 'hyper' (stride, padding, dilation) or 'groups'
    (with invalid arguments and their edges)."""
    count = {"visible": 8, "hidden": 20}[suite]
    cases = [_hand_worked()] if part == "basic" else []
    k = 0
    while len(cases) < count:
        k += 1
        case = _random_case(rng, part, seed=base * 1000 + k)
        if case is not None:
            cases.append(case)
    if part == "groups":
        cases += _invalid_cases(base)
    return cases


CONV2D = CaseCheck("check_conv2d", "conv2d", CONV2D_EXERCISE, conv2d_cases, PARTS,
                   CONV2D_SIGNATURE,
                   'Compare ``fn`` with ``F.conv2d``; ``part`` picks basic / hyper / groups cases.',
                   bench=BenchShape("(8,16,32,32)*(32,16,3,3) p1", lambda dev: bench_inputs(dev, (8, 16, 32, 32), (32, 16, 3, 3), (32,), padding=1), "F.conv2d", F.conv2d))
check_conv2d = CONV2D.visible()


