"""Chapter 6 — transposed convolution.

    check_conv_transpose2d_output_size(fn, suite="visible")
    check_conv_transpose2d(fn, part="basic" | "general" | "groups" | "all", suite="visible")
    check_conv_transpose2d_module(cls, part="structure" | "training" | "all", suite="visible")

``general`` cases always include padding > 0 together with output_padding > 0:
only then do the output_padding rows hold computed values rather than zeros.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from ._arith import convT_out, diagnose_convT_axis, pair
from .contract import BenchShape, CaseCheck, GradedCheck, bench_inputs, module_check_prologue
from ._core import (CPU_ONLY_NOTICE, policy_check, stub_error, case_generator, Case, CheckFailure, Exercise, Mistake, NotAttempted, RuleViolation, T,
                    available_devices)
from ._rules import CONVOLUTION_OPS, Rule, error_record, run_guarded, warm_up

warm_up()

# --------------------------------------------------------------------------
# conv_transpose2d_output_size

SIZE_SIGNATURE = "size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1"


def reference_conv_transpose2d_output_size(size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    """Ask torch: run ``F.conv_transpose2d`` on a zero image of that size and read the shape."""
    h, w = pair(size, "size")
    x = torch.zeros(1, 1, h, w)
    k = torch.zeros(1, 1, *pair(kernel_size, "kernel_size"))
    out = tuple(F.conv_transpose2d(x, k, stride=stride, padding=padding, output_padding=output_padding,
                                   dilation=dilation).shape[-2:])
    scalar = all(isinstance(v, int) for v in (size, kernel_size, stride, padding, output_padding, dilation))
    return out[0] if scalar else out


def _args6(args, kwargs):
    names = ("stride", "padding", "output_padding", "dilation")
    defaults = (1, 0, 0, 1)
    values = [kwargs.get(n, args[2 + j] if len(args) > 2 + j else dv) for j, (n, dv) in enumerate(zip(names, defaults))]
    return [pair(v) for v in values]


def _size_hint(args, kwargs, want, got):
    i, k = pair(args[0]), pair(args[1])
    s, p, op, d = _args6(args, kwargs)
    if isinstance(want, int):
        return diagnose_convT_axis("size", int(got), i[0], k[0], s[0], p[0], op[0], d[0])
    lines = []
    for ax, name in ((0, "height"), (1, "width")):
        if got[ax] != want[ax]:
            other = (k[1 - ax], s[1 - ax], p[1 - ax], op[1 - ax], d[1 - ax])
            lines.append(diagnose_convT_axis(name, got[ax], i[ax], k[ax], s[ax], p[ax], op[ax], d[ax], other))
    return "\n  ".join(lines) or None


def _size_features(case: Case) -> dict[str, bool]:
    kw = case.kwargs
    return {
        "stride > 1": max(pair(kw.get("stride", 1))) > 1,
        "padding > 0": max(pair(kw.get("padding", 0))) > 0,
        "output_padding > 0": max(pair(kw.get("output_padding", 0))) > 0,
        "dilation > 1": max(pair(kw.get("dilation", 1))) > 1,
        "pair arguments": any(isinstance(v, tuple) for v in (*case.args, *kw.values())),
        "invalid arguments": case.invalid,
    }


SIZE_EXERCISE = Exercise(
    name="conv_transpose2d_output_size",
    reference=reference_conv_transpose2d_output_size,
    returns="size",
    size_hint=_size_hint,
    features=_size_features,
)


def _maybe_pair(rng, lo, hi):
    a = rng.randint(lo, hi)
    return a if rng.random() < 0.5 else (a, rng.randint(lo, hi))


def _hyper(rng: random.Random, padding=True, output_padding=True, dilation=True):
    """Draw stride, padding, output_padding, dilation; output_padding < max(stride, dilation) per axis."""
    s = _maybe_pair(rng, 1, 3)
    d = _maybe_pair(rng, 1, 2) if dilation and rng.random() < 0.4 else 1
    p = _maybe_pair(rng, 0, 2) if padding else 0
    kw = {"stride": s, "padding": p, "dilation": d}
    if output_padding:
        limit = [max(a, b) - 1 for a, b in zip(pair(s), pair(d))]
        op = tuple(rng.randint(0, m) for m in limit)
        kw["output_padding"] = op if op[0] != op[1] else op[0]
    return kw


def size_cases(part: str = "all", suite: str = "visible", seed: int | None = None) -> list[Case]:
    """Cases for ``conv_transpose2d_output_size`` (one part: ``"all"``)."""
    if part != "all":
        raise ValueError(f"conv_transpose2d_output_size has one part, 'all'; got {part!r}")
    names = ("size", "kernel_size")
    cases = [Case(names, (7, 3), {"stride": 1, "padding": 1}, label="the chapter's 7 -> 7 (3x3 kernel, padding 1)"),
             Case(names, (4, 3), {"stride": 4, "output_padding": 1}, label="the chapter's 4 -> 16 with gaps"),
             Case(names, (4, 4), {"stride": 4}, label="the chapter's 4 -> 16 without gaps")]
    rng = random.Random(seed if seed is not None else (0 if suite == "visible" else 1))
    count = 14 if suite == "visible" else 60
    while len(cases) < count:
        kw = _hyper(rng)
        size, kernel = _maybe_pair(rng, 1, 12), _maybe_pair(rng, 1, 5)
        try:
            out = reference_conv_transpose2d_output_size(size, kernel, **kw)
        except RuntimeError:
            continue
        if 0 in pair(out):  # torch allows an empty output; not worth a random case
            continue
        cases.append(Case(names, (size, kernel), kw))
    cases += [
        Case(names, (5, 3), {"stride": 2, "output_padding": 2}, label="invalid: output_padding not below the stride", invalid=True),
        Case(names, (5, 3), {"stride": 0}, label="invalid: stride 0", invalid=True),
        Case(names, (1, 3), {"padding": 2}, label="invalid: padding crops everything", invalid=True),
    ]
    if suite == "hidden":
        cases += [Case(names, (5, 3), {"stride": 1, "output_padding": 1, "dilation": 2},
                       label="edge: output_padding below the dilation"),
                  # the valid side of each end above
                  Case(names, (5, 3), {"stride": 2, "output_padding": 1}, label="edge: output_padding one below the stride"),
                  Case(names, (5, 3), {"stride": 1}, label="edge: stride 1"),
                  Case(names, (1, 3), {"padding": 1}, label="edge: padding leaves one pixel"),
                  Case(names, (5, 3), {"padding": 0, "output_padding": 0}, label="edge: no padding at all"),
                  Case(names, (5, 3), {"padding": -1}, label="invalid: negative padding", invalid=True),
                  Case(names, (5, 3), {"stride": 2, "output_padding": -1}, label="invalid: negative output_padding", invalid=True)]
    return cases


CONV_TRANSPOSE2D_OUTPUT_SIZE = CaseCheck("check_conv_transpose2d_output_size", "conv_transpose2d_output_size",
                                         SIZE_EXERCISE, size_cases, ("all",), SIZE_SIGNATURE,
                                         "Compare ``fn`` with the output size torch's ``conv_transpose2d`` produces.")
check_conv_transpose2d_output_size = CONV_TRANSPOSE2D_OUTPUT_SIZE.visible()


# --------------------------------------------------------------------------
# conv_transpose2d

SIGNATURE = "input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1"
NAMES = ("input", "weight", "bias")

RULE = Rule(CONVOLUTION_OPS, "build the transposed convolution from indexing, sums and matrix products "
                             "(scatter-add, or zero insertion plus your own sliding products); no convolution, "
                             "transposed convolution or convolution-backward operator, and no autograd route "
                             "through conv2d (torch.nn.grad.conv2d_input is one)")


def reference_conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch's ``F.conv_transpose2d``: what the learner's conv_transpose2d is compared with."""
    return F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)


def _hp(kw):
    return (pair(kw.get("stride", 1)), pair(kw.get("padding", 0)), pair(kw.get("output_padding", 0)),
            pair(kw.get("dilation", 1)), int(kw.get("groups", 1)))


def _shape_hint(args, kwargs, want, got):
    x, w = args[0], args[1]
    s, p, op, d, g = _hp(kwargs)
    if len(got) != 4:
        return f"the output should be 4-D (N, C_out, H_out, W_out); yours has {len(got)} dims."
    lines = []
    if got[0] != want[0]:
        lines.append(f"batch: yours is {got[0]}, expected {want[0]} — N passes through unchanged.")
    if got[1] != want[1]:
        if got[1] == w.shape[0]:
            lines.append(f"channels: yours is {got[1]} = weight.shape[0]; ConvTranspose2d weights are laid out "
                         f"(C_in, C_out/groups, kH, kW), so C_out = weight.shape[1] · groups = {want[1]} — "
                         "the Conv2d layout (C_out, C_in/groups, ...) is the other way round.")
        else:
            lines.append(f"channels: yours is {got[1]}, expected weight.shape[1] · groups = {want[1]}.")
    kH, kW = w.shape[-2:]
    if s[0] != s[1] and (got[2], got[3]) in {(convT_out(x.shape[2], kH, s[a], p[0], op[0], d[0]),
                                               convT_out(x.shape[3], kW, s[a], p[1], op[1], d[1])) for a in (0, 1)}:
        lines.append(f"height and width: yours are {got[2]}x{got[3]}, expected {want[2]}x{want[3]}; yours is what "
                     "one stride for both axes gives — stride=(s_H, s_W) has one per axis.")
        return "\n".join(lines)
    for dim, name, i, k, a in ((2, "height", x.shape[2], kH, 0), (3, "width", x.shape[3], kW, 1)):
        if got[dim] != want[dim]:
            other = ((kW if a == 0 else kH), s[1 - a], p[1 - a], op[1 - a], d[1 - a])
            lines.append(diagnose_convT_axis(name, got[dim], i, k, s[a], p[a], op[a], d[a], other))
    return "\n".join(lines) or None


def _features(case: Case) -> dict[str, bool]:
    s, p, op, d, g = _hp(case.kwargs)
    w = case.args[1]
    bias = case.args[2] if len(case.args) > 2 else case.kwargs.get("bias")
    return {
        "stride > 1": max(s) > 1,
        "padding > 0": max(p) > 0,
        "output_padding > 0": max(op) > 0,
        "padding > 0 with output_padding > 0": max(p) > 0 and max(op) > 0,
        "dilation > 1": max(d) > 1,
        "groups > 1": g > 1,
        "a bias": bias is not None,
        "a non-square kernel": isinstance(w, T) and w.shape[-1] != w.shape[-2],
        "different height and width strides": s[0] != s[1],
        "invalid arguments": case.invalid,
    }


def _mistakes():
    ref = reference_conv_transpose2d

    def flipped(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        return ref(x, w.flip(-2, -1), b, stride, padding, output_padding, groups, dilation)

    def conv2d_layout(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        if groups != 1 or w.shape[0] != w.shape[1]:
            raise ValueError
        return ref(x, w.transpose(0, 1), b, stride, padding, output_padding, groups, dilation)

    def padding_added(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        ph, pw = pair(padding)
        if ph == pw == 0:
            raise ValueError
        return F.pad(ref(x, w, b, stride, 0, output_padding, groups, dilation), (pw, pw, ph, ph))

    def output_padding_zeros(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        oh, ow = pair(output_padding)
        if oh == ow == 0:
            raise ValueError
        y = F.pad(ref(x, w, None, stride, padding, 0, groups, dilation), (0, ow, 0, oh))
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    def finish(canvas, padding, out_hw, b, top_left=(0, 0)):
        """Rows/cols [p, p + out) of ``canvas`` (zeros beyond it, and ``top_left`` zero rows/cols in front), plus the
        bias: how the scatter-add and zero-insertion routes end."""
        (ph, pw), (oh, ow) = pair(padding), out_hw
        if oh < 1 or ow < 1:
            raise ValueError
        th, tw = top_left
        canvas = F.pad(canvas, (tw, 0, th, 0))
        canvas = F.pad(canvas, (0, max(0, pw + ow - canvas.shape[-1]), 0, max(0, ph + oh - canvas.shape[-2])))
        y = canvas[..., ph: ph + oh, pw: pw + ow]
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    def true_size(x, w, stride, padding, output_padding, dilation):
        return tuple(convT_out(x.shape[2 + a], w.shape[2 + a], pair(stride)[a], pair(padding)[a],
                               pair(output_padding)[a], pair(dilation)[a]) for a in (0, 1))

    def dilation_ignored(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        # ignored everywhere: the stamps, and so the output size, are those of dilation 1
        if pair(dilation) == (1, 1):
            raise ValueError
        canvas = ref(x, w, None, stride, 0, 0, groups, 1)
        size = true_size(x, w, stride, padding, output_padding, 1)
        return finish(canvas, padding, size, b)

    def dilation_ignored_in_stamp(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        # the output size is right (the size formula has the dilation), the kernel taps are stamped side by side
        if pair(dilation) == (1, 1) or w.shape[-2:] == (1, 1):
            raise ValueError
        canvas = ref(x, w, None, stride, 0, 0, groups, 1)
        return finish(canvas, padding, true_size(x, w, stride, padding, output_padding, dilation), b)

    def output_padding_top_left(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        op = pair(output_padding)
        if op == (0, 0):
            raise ValueError
        canvas = ref(x, w, None, stride, 0, 0, groups, dilation)
        return finish(canvas, padding, true_size(x, w, stride, padding, output_padding, dilation), b, top_left=op)

    def groups_interleaved(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        # output channel o of group g lands at o·groups + g instead of g·C_out/groups + o (the bias added after)
        c_out_g = w.shape[1]
        if groups == 1 or c_out_g == 1:
            raise ValueError
        y = ref(x, w, None, stride, padding, output_padding, groups, dilation)
        n, c, h, wd = y.shape
        y = y.reshape(n, groups, c_out_g, h, wd).transpose(1, 2).reshape(n, c, h, wd)
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    def groups_swapped(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        # group g reads the input channels of group groups-1-g
        if groups == 1:
            raise ValueError
        n, c, h, wd = x.shape
        x = x.reshape(n, groups, c // groups, h, wd).flip(1).reshape(n, c, h, wd)
        return ref(x, w, b, stride, padding, output_padding, groups, dilation)

    def group_offset(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        if groups == 1:
            raise ValueError
        per = x.shape[1] // groups
        return ref(x[:, :per].repeat(1, groups, 1, 1), w, b, stride, padding, output_padding, groups, dilation)

    def bias_per_input_channel(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        if b is None:
            raise ValueError
        return ref(x, w, None, stride, padding, output_padding, groups, dilation) + \
            (w.shape[0] // groups) * b.reshape(1, -1, 1, 1)

    def one_stride(axis):
        def model(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
            s = pair(stride)
            if s[0] == s[1]:
                raise ValueError
            both = (s[axis], s[axis])
            op = tuple(min(o, max(sv, dv) - 1) for o, sv, dv in zip(pair(output_padding), both, pair(dilation)))
            return ref(x, w, b, both, padding, op, groups, dilation)
        return model

    return (
        Mistake("the kernel is not flipped in the zero-insertion route — the ordinary convolution that follows zero "
                "insertion uses the kernel rotated by 180° (w.flip(-2, -1)); equivalently, scatter-add stamps the "
                "kernel as it is", flipped, id="kernel-not-flipped"),
        Mistake("the weight is read in Conv2d's layout (C_out, C_in/groups, ...); ConvTranspose2d weights are "
                "(C_in, C_out/groups, kH, kW)", conv2d_layout, id="weight-conv2d-layout"),
        Mistake("padding is added instead of cropped — in a transposed convolution padding p removes p rows and "
                "columns from each side of the full output", padding_added, id="padding-added-not-cropped"),
        Mistake("the output_padding rows and columns are filled with zeros; they are part of the computed output "
                "(with padding > 0 they hold real values): compute the full output and crop only the padding",
                output_padding_zeros, id="output-padding-zeros"),
        Mistake("dilation ignored — the kernel taps are `dilation` pixels apart in the stamp, and the output size "
                "has dilation·(k−1) + 1 for the kernel's span", dilation_ignored, id="dilation-ignored"),
        Mistake("dilation ignored in the stamp — the output size is right, but the kernel taps are stamped side by "
                "side; tap (a, b) of input pixel (i, j)'s stamp belongs at (i·stride + a·dilation, "
                "j·stride + b·dilation), `dilation` pixels from the next tap", dilation_ignored_in_stamp, id="dilation-ignored-in-stamp"),
        Mistake("output_padding is taken from the wrong side — the extra output_padding rows and columns belong at "
                "the bottom and right: the output is rows padding to padding + H_out of the full output (which ends with "
                "the output_padding rows), not rows padding − output_padding to padding − output_padding + H_out",
                output_padding_top_left,
                id="output-padding-top-left"),
        Mistake("the groups are mixed up: every group reads the first group's input channels — group g maps input "
                "channels g·C_in/groups … to output channels g·C_out/groups …", group_offset,
                id="groups-first-group-only"),
        Mistake("the groups are mixed up: the output channels are interleaved across groups — output channel o of "
                "group g is channel g·C_out/groups + o (the groups' blocks one after another), not o·groups + g",
                groups_interleaved, id="groups-channels-interleaved"),
        Mistake("the groups are mixed up: the group blocks are swapped — group g reads input channels "
                "g·C_in/groups … (g+1)·C_in/groups − 1, not those of group groups−1−g", groups_swapped,
                id="groups-blocks-swapped"),
        Mistake("the bias is added once per input channel (C_in/groups times); add bias[c_out] once to every "
                "pixel of output channel c_out", bias_per_input_channel, id="bias-per-input-channel"),
        Mistake("the height stride is used for both axes — stride=(s_H, s_W)", one_stride(0),
                id="stride-height-for-both"),
        Mistake("the width stride is used for both axes — stride=(s_H, s_W)", one_stride(1),
                id="stride-width-for-both"),
    )


EXERCISE = Exercise(
    name="conv_transpose2d",
    reference=reference_conv_transpose2d,
    rules=(RULE,),
    rule_text="no convolution, transposed-convolution or convolution-backward operator was called",
    mistakes=_mistakes(),
    shape_hint=_shape_hint,
    features=_features,
)

PARTS = ("basic", "general", "groups")


def _hand_worked() -> Case:
    # Stride 2 with a 2x2 kernel: the four stamps tile the output without overlapping, so each
    # block is input[i, j] times the kernel — a flipped kernel shows as mirrored blocks.
    return Case(NAMES, (T((1, 1, 2, 2), [1., 2., 3., 4.]), T((1, 1, 2, 2), [1., 10., 100., 1000.]), None),
                {"stride": 2}, label="hand-worked: [[1, 2], [3, 4]] stamping [[1, 10], [100, 1000]] at stride 2")


def _random_case(rng: random.Random, part: str, seed: int) -> Case | None:
    groups = rng.choice((2, 3)) if part == "groups" else 1
    if part == "basic":
        kw = {"stride": _maybe_pair(rng, 1, 3)}
    else:
        kw = _hyper(rng)
        if part == "general" and seed % 2 == 0:  # padding > 0 together with output_padding > 0
            kw["padding"] = _maybe_pair(rng, 1, 2)
            s = pair(kw["stride"])
            kw["stride"] = (max(s[0], 2), max(s[1], 2))
            kw["output_padding"] = 1
    if groups > 1:
        kw["groups"] = groups
    n, c_in, c_out = rng.randint(1, 2), groups * rng.randint(1, 2), groups * rng.randint(1, 2)
    kh, kw_ = rng.randint(1, 3), rng.randint(1, 3)
    h, w = rng.randint(1, 5), rng.randint(1, 5)
    s, p, op, d, g = _hp(kw)
    if convT_out(h, kh, s[0], p[0], op[0], d[0]) < 1 or convT_out(w, kw_, s[1], p[1], op[1], d[1]) < 1:
        return None
    bias = T((c_out,)) if rng.random() < 0.6 else None
    dtypes = (torch.float64, torch.float32) if seed % 3 == 0 else (torch.float64,)
    return Case(NAMES, (T((n, c_in, h, w)), T((c_in, c_out // groups, kh, kw_)), bias), kw, seed=seed, dtypes=dtypes)


def _invalid_cases(seed: int) -> list[Case]:
    x = T((1, 4, 3, 3))
    return [
        Case(NAMES, (x, T((4, 2, 3, 3)), None), {"stride": 2, "output_padding": 2}, seed=seed,
             label="invalid: output_padding not smaller than stride or dilation", invalid=True),
        Case(NAMES, (x, T((4, 2, 3, 3)), None), {"groups": 3}, seed=seed,
             label="invalid: in channels not divisible by groups", invalid=True),
        Case(NAMES, (T((1, 3, 3, 3)), T((4, 2, 3, 3)), None), {}, seed=seed,
             label="invalid: weight expects 4 input channels, input has 3", invalid=True),
        Case(NAMES, (x, T((4, 2, 3, 3)), T((3,))), {}, seed=seed, label="invalid: bias of the wrong size", invalid=True),
        Case(NAMES, (T((1, 4, 1, 1)), T((4, 2, 3, 3)), None), {"padding": 2}, seed=seed,
             label="invalid: padding crops the whole output", invalid=True),
        # the other side of each boundary: the largest argument torch still accepts
        Case(NAMES, (T((1, 4, 1, 1)), T((4, 2, 3, 3)), None), {"padding": 1}, seed=seed,
             label="at the edge: padding that leaves one pixel"),
        Case(NAMES, (x, T((4, 2, 3, 3)), None), {"stride": 2, "output_padding": 1}, seed=seed,
             label="at the edge: output_padding one less than the stride"),
        Case(NAMES, (x, T((4, 2, 3, 3)), None), {"dilation": 3, "output_padding": 2}, seed=seed,
             label="at the edge: output_padding one less than the dilation (stride 1)"),
        Case(NAMES, (x, T((4, 2, 3, 3)), None), {"dilation": 2, "output_padding": 2}, seed=seed,
             label="invalid: output_padding equal to the dilation (stride 1)", invalid=True),
    ]


@case_generator(PARTS)
def cases(part: str, suite: str, base: int, rng: random.Random) -> list[Case]:
    """conv_transpose2d cases of a part: 'basic' (with a hand-worked case), 'general' or 'groups' (with invalid
    arguments and their edges)."""
    count = {"visible": 10, "hidden": 40}[suite]
    out = [_hand_worked()] if part == "basic" else []
    k = 0
    while len(out) < count:
        k += 1
        case = _random_case(rng, part, base * 1000 + k)
        if case is not None:
            out.append(case)
    if part == "groups":
        out += _invalid_cases(base)
    return out


CONV_TRANSPOSE2D = CaseCheck("check_conv_transpose2d", "conv_transpose2d", EXERCISE, cases, PARTS, SIGNATURE,
                             'Compare ``fn`` with ``F.conv_transpose2d``.',
                             bench=BenchShape("(8,16,32,32)*(16,32,4,4) s2p1", lambda dev: bench_inputs(dev, (8, 16, 32, 32), (16, 32, 4, 4), None, 2, 1), "F.conv_transpose2d", F.conv_transpose2d))
check_conv_transpose2d = CONV_TRANSPOSE2D.visible()


# --------------------------------------------------------------------------
# class ConvTranspose2d(nn.Module)

MODULE_PARTS = ("structure", "training")
MODULE_SIGNATURE = ("in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1, "
                    "bias=True, dilation=1, padding_mode='zeros', device=None, dtype=None")

#: Constructor arguments the module checks use (visible); hidden adds more.
CONFIGS = [
    dict(in_channels=2, out_channels=3, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), output_padding=(1, 0),
         groups=2, dilation=(1, 2)),
    dict(in_channels=3, out_channels=2, kernel_size=4, stride=2, padding=1, bias=False),
]
HIDDEN_CONFIGS = CONFIGS + [
    dict(in_channels=6, out_channels=3, kernel_size=3, stride=3, padding=1, output_padding=2, groups=3),
    dict(in_channels=1, out_channels=1, kernel_size=1),
    dict(in_channels=2, out_channels=4, kernel_size=(3, 1), stride=(1, 2), padding=(1, 0), output_padding=(0, 1),
         dilation=2, bias=False),
]


def _describe(cfg) -> str:
    return "ConvTranspose2d(" + ", ".join(f"{k}={v!r}" for k, v in cfg.items()) + ")"


def _guarded(call, allow=()):
    """Run learner code under the chapter's rule. Returns (result, error dict or None, violations)."""
    return run_guarded(call, (RULE,), allow)


def _grad_copy(g):
    """A gradient as data: a plain CPU copy, or None when it did not reach the tensor (allow_unused)."""
    return None if g is None else _tensor_copy(g)


def _load_error_text(err) -> str:
    """A ``load_state_dict`` failure in the learner's words: which parameter, whose shape is which."""
    import re

    yours_first = err.get("direction") == "into torch's"
    lines = [ln.strip() for ln in err["message"].splitlines()[1:] if ln.strip()] or [err["message"]]
    out = []
    for ln in lines:
        ln = re.sub(r"torch\.Size\(\[([^\]]*)\]\)", r"(\1)", ln)
        m = re.match(r"size mismatch for (\S+): copying a param with shape (\(.*?\)) from checkpoint, the shape in "
                     r"current model is (\(.*?\))\.?$", ln)
        if m:
            theirs, yours = (m.group(3), m.group(2)) if yours_first else (m.group(2), m.group(3))
            out.append(f"size mismatch for `{m.group(1)}`: torch's has shape {theirs}, yours {yours}")
        else:
            out.append(ln.rstrip("."))
    return "; ".join(out)


def _tensor_copy(t, parameter=False):
    """A plain CPU copy of a tensor; any other object (a subclass included) only by its type name."""
    if type(t) is torch.Tensor or (parameter and type(t) is nn.Parameter):
        return t.detach().to("cpu").clone()
    return {"__type__": type(t).__name__}


INVALID_CONFIGS = (
    (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), "in_channels not divisible by groups"),
    (dict(in_channels=4, out_channels=3, kernel_size=3, groups=2), "out_channels not divisible by groups"),
    (dict(in_channels=2, out_channels=2, kernel_size=3, padding_mode="reflect"),
     "a padding_mode other than 'zeros' (torch's ConvTranspose2d supports only 'zeros')"),
)
INIT_CONFIG = dict(in_channels=16, out_channels=32, kernel_size=3)
GRADCHECK_CONFIG = dict(in_channels=2, out_channels=2, kernel_size=2, stride=2, padding=1, output_padding=1)


def _inputs(cfg, device, seed=0):
    """The input and upstream gradient of a configuration and seed: the same in the worker and in the grader."""
    g = torch.Generator().manual_seed(sum(map(ord, repr(sorted(cfg.items())))) + int(seed or 0))
    x = torch.randn(2, cfg["in_channels"], 4, 3, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    ref = nn.ConvTranspose2d(**cfg).to(dtype=torch.float64)
    up = torch.randn(ref(x).shape, generator=g, dtype=torch.float64)
    return ref.to(device), x.to(device), up.to(device)


def probe_module(cls, configs, devices=("cpu",), parts=MODULE_PARTS, seed=0) -> dict:
    """Run the learner's class on every configuration and record what it did, as plain data.

    This is the only part of the module check that runs learner code; ``verdict_module`` judges the
    record. In a notebook both run in the learner's process; when grading, this runs in the sandbox.
    """
    data = {"configs": [], "invalid": [], "init": None, "training": [], "gradcheck": None}
    for cfg in (configs if "structure" in parts else ()):
        rec = {"cfg": cfg}
        mine, rec["build_error"], _ = _guarded(lambda: cls(**cfg))
        if mine is not None and isinstance(mine, nn.Module):
            rec["state"] = {k: list(v.shape) for k, v in mine.state_dict().items()}
            rec["params"] = sorted(n for n, _ in mine.named_parameters())
            torch.manual_seed(0)
            ref = nn.ConvTranspose2d(**cfg)
            rec["load_error"] = None
            for src, dst, direction in ((ref, mine, "into yours"), (mine, ref, "into torch's")):
                try:
                    dst.load_state_dict(src.state_dict())
                except Exception as e:  # noqa: BLE001
                    rec["load_error"] = dict(error_record(e, whole=True), direction=direction)
                    break
            m64, _, _ = _guarded(lambda: cls(**cfg, dtype=torch.float64))
            rec["dtype64"] = m64 is not None and all(p.dtype == torch.float64 for p in m64.parameters())
        elif mine is not None:
            rec["build_error"] = {"type": "TypeError", "message": f"ConvTranspose2d(...) built a {type(mine).__name__}, "
                                                                  "not a torch.nn.Module"}
        data["configs"].append(rec)
    if "structure" in parts:
        torch.manual_seed(1)
        init, err, _ = _guarded(lambda: cls(**INIT_CONFIG))
        if init is not None and getattr(init, "weight", None) is not None:
            data["init"] = {"weight": _tensor_copy(init.weight, True),
                            "bias": _tensor_copy(init.bias, True) if init.bias is not None else None}
        for bad, why in INVALID_CONFIGS:
            _, err, _ = _guarded(lambda: cls(**bad))
            data["invalid"].append({"cfg": bad, "why": why, "raised": err})
    if "training" not in parts:
        return data
    for device in devices:
        for cfg in configs:
            rec = {"cfg": cfg, "device": device}
            ref, x, up = _inputs(cfg, device, seed)
            mine, rec["build_error"], _ = _guarded(lambda: cls(**cfg))
            if mine is None:
                data["training"].append(rec)
                continue
            try:
                mine = mine.to(device=device, dtype=torch.float64)
            except Exception as e:  # noqa: BLE001
                rec["build_error"] = error_record(e)
                data["training"].append(rec)
                continue
            try:
                mine.load_state_dict(ref.state_dict())
            except Exception as e:  # noqa: BLE001 - keep every line: they name the parameter and the shapes
                rec["load_error"] = dict(error_record(e, whole=True), direction="into yours")
                data["training"].append(rec)
                continue
            xm = x.clone().requires_grad_()
            y, rec["forward_error"], rec["violations"] = _guarded(lambda: mine(xm))
            rec["forward"] = _tensor_copy(y) if y is not None else None
            if type(y) is torch.Tensor and y.shape == up.shape and not rec["violations"]:
                # by name, so that the verdict can say which parameter gets no gradient (allow_unused: None)
                named = [("input", xm)] + [(n, p_) for n, p_ in mine.named_parameters()]
                wanted = [t for _, t in named if t.requires_grad]
                rec["frozen"] = [n for n, t in named if not t.requires_grad]
                grads, rec["backward_error"], rec["violations"] = _guarded(
                    lambda: torch.autograd.grad((y * up).sum(), wanted, allow_unused=True) if wanted else ())
                if grads is not None:
                    it = iter(grads)
                    rec["grads"] = {n: (None if not t.requires_grad else _grad_copy(next(it))) for n, t in named}
            data["training"].append(rec)
    mine, err, _ = _guarded(lambda: cls(**GRADCHECK_CONFIG, dtype=torch.float64))
    if mine is not None:
        x = torch.randn(1, 2, 3, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64,
                        requires_grad=True)

        def forward(inp, w, b):
            return torch.func.functional_call(mine, {"weight": w, "bias": b}, (inp,))

        ok, err, viol = _guarded(lambda: torch.autograd.gradcheck(
            forward, (x, mine.weight.detach().clone().requires_grad_(), mine.bias.detach().clone().requires_grad_()),
            raise_exception=False, fast_mode=True), allow=(forward,))
        data["gradcheck"] = {"ok": bool(ok) if ok is not None else False, "error": err, "violations": viol}
    return data


def _judge_built(rec) -> None:
    """The learner's class could be built with this configuration (or says why not)."""
    err = rec.get("build_error")
    if err and err["type"] == "NotImplementedError":
        raise NotAttempted("ConvTranspose2d is not implemented yet (it raises NotImplementedError).")
    if err:
        raise CheckFailure(f"{_describe(rec['cfg'])} raised {err['type']}: {err['message']}")


def _raise_load_error(cfg, err, where=None) -> None:
    """A state_dict that does not load: say which parameter and which shapes (torch's first message line says
    neither)."""
    text = _load_error_text(err)
    hint = (" — ConvTranspose2d weights are (in_channels, out_channels/groups, kH, kW)"
            if "`weight`" in text else "")
    raise CheckFailure(f"{where or _describe(cfg)}: loading torch's state_dict {err.get('direction', 'into yours')} "
                       f"failed: {text}{hint}.", mistake="state-dict-mismatch")


def _judge_structure(data) -> None:
    """Parameter names, shapes and dtype, and state_dict both ways, for every configuration."""
    for rec in data["configs"]:
        _judge_built(rec)
        cfg = rec["cfg"]
        want = {k: list(v.shape) for k, v in nn.ConvTranspose2d(**cfg).state_dict().items()}
        got = rec["state"]
        if set(got) != set(want):
            raise CheckFailure(f"{_describe(cfg)}: state_dict keys are {sorted(got)}; torch's are {sorted(want)} "
                               "(register nn.Parameter attributes named weight and bias; with bias=False, "
                               "register no bias parameter).")
        for k in want:
            if got[k] != want[k]:
                hint = (" — ConvTranspose2d weights are (in_channels, out_channels/groups, kH, kW)"
                        if k == "weight" else "")
                layout = k == "weight" and got[k] == [cfg["out_channels"], cfg["in_channels"] // cfg.get("groups", 1),
                                                      *want[k][2:]]
                raise CheckFailure(f"{_describe(cfg)}: parameter `{k}` has shape {tuple(got[k])}; torch's has "
                                   f"{tuple(want[k])}{hint}.",
                                   mistake="weight-conv2d-layout" if layout else "parameter-shape")
        if rec["params"] != sorted(want):
            raise CheckFailure(f"{_describe(cfg)}: the trainable parameters are {rec['params']}; "
                               f"expected {sorted(want)}.")
        if rec.get("load_error"):
            _raise_load_error(cfg, rec["load_error"])
        if not rec.get("dtype64"):
            raise CheckFailure(f"{_describe(cfg)}, dtype=torch.float64: the parameters must be created with "
                               "that dtype (pass device and dtype to torch.empty).")


def _judge_init(data) -> None:
    """The weight and bias are initialised as torch's are."""
    bound = 1 / math.sqrt(32 * 9)
    init = data.get("init")
    w = init["weight"] if init else None
    if type(w) is not torch.Tensor or w.numel() != 16 * 32 * 9:
        raise CheckFailure(f"{_describe(INIT_CONFIG)}: no weight of torch's shape to check the initialisation of.")
    w = w.double()
    if w.abs().max() > bound * (1 + 1e-6) or w.abs().max() < 0.8 * bound or abs(w.abs().mean() - bound / 2) > 0.05 * bound:
        raise CheckFailure(f"{_describe(INIT_CONFIG)}: the weight should be initialised like torch's, uniformly in "
                           f"±1/sqrt(fan_in) = ±{bound:.4f} with fan_in = (out_channels/groups)·kH·kW; yours spans "
                           f"[{float(w.min()):.4f}, {float(w.max()):.4f}] "
                           "(nn.init.kaiming_uniform_(w, a=math.sqrt(5)) does it).")
    b = init.get("bias")
    if type(b) is not torch.Tensor or b.abs().max() > bound * (1 + 1e-6) or b.abs().max() == 0:
        span = f"[{float(b.min()):.4f}, {float(b.max()):.4f}]" if type(b) is torch.Tensor else "missing"
        raise CheckFailure(f"{_describe(INIT_CONFIG)}: the bias should be initialised uniformly in ±1/sqrt(fan_in) "
                           f"= ±{bound:.4f}; yours is {span}.")


def _judge_invalid(data) -> None:
    """Configurations torch rejects are rejected too."""
    for rec in data["invalid"]:
        err = rec["raised"]
        if err is None:
            raise CheckFailure(f"{_describe(rec['cfg'])} ({rec['why']}) should raise a ValueError, as torch's does; "
                               "yours accepted it.")
        if err["type"] not in ("ValueError", "RuntimeError"):
            raise CheckFailure(f"{_describe(rec['cfg'])} ({rec['why']}) should raise a ValueError; it raised "
                               f"{err['type']}: {err['message']}")


def _judge_training(data, seed) -> None:
    """Forward and gradients (input, weight, bias) equal torch's after loading its state_dict."""
    from ._core import _value_problem

    if not data["training"]:
        raise CheckFailure("the training checks did not run.")
    for rec in data["training"]:
        _judge_built(rec)
        cfg, device = rec["cfg"], rec["device"]
        where = f"{_describe(cfg)} on {device}, float64"
        if rec.get("load_error"):
            _raise_load_error(cfg, rec["load_error"], where)
        if rec.get("violations"):
            op, reason = rec["violations"][0]
            raise RuleViolation(f"{where}: your module called `{op}`, which this exercise forbids: {reason}")
        err = rec.get("forward_error")
        if err and err["type"] == "NotImplementedError":
            # the forward itself, or a function of the learner's it calls (their conv_transpose2d, say): named
            raise stub_error("forward", err.get("stub") or (), "ConvTranspose2d.forward")
        if err:
            raise CheckFailure(f"{where}: forward raised {err['type']}: {err['message']}")
        ref, x, up = _inputs(cfg, "cpu", seed)
        xr = x.clone().requires_grad_()
        y_ref = ref(xr)
        y = rec.get("forward")
        if type(y) is not torch.Tensor or y.shape != y_ref.shape:
            got = tuple(y.shape) if type(y) is torch.Tensor else (y or {}).get("__type__", "nothing")
            raise CheckFailure(f"{where}: forward returned {got}; expected a tensor of shape {tuple(y_ref.shape)}.")
        problem = _value_problem(y.to(torch.float64), y_ref.detach(), torch.float64)
        if problem:
            raise CheckFailure(f"{where}: forward differs from torch's with the same state_dict: {problem}")
        if rec.get("backward_error") or rec.get("grads") is None:
            msg = (rec.get("backward_error") or {}).get("message", "no gradients came back")
            raise CheckFailure(f"{where}: gradients could not be computed — {msg} (build the forward from "
                               "differentiable tensor operations; no .item(), numpy, detach or in-place writes "
                               "into tensors that need gradients)")
        grads_ref = torch.autograd.grad((y_ref * up.cpu()).sum(), [xr, *ref.parameters()])
        names = ["input"] + [n for n, _ in ref.named_parameters()]
        grads = rec["grads"]
        for name, gr in zip(names, grads_ref):
            gm = grads.get(name)
            the = "the input" if name == "input" else f"the {name}"
            if name in rec.get("frozen", ()):
                raise CheckFailure(f"{where}: {the} gets no gradient — it has requires_grad=False; a parameter must "
                                   "be trainable (nn.Parameter(...) with the default requires_grad=True).",
                                   mistake=f"{name}-gets-no-gradient")
            if gm is None:
                use = ("the output must be computed from it" if name == "input" else
                       f"forward must compute the output from self.{name} itself — not from a copy, "
                       f"self.{name}.data or self.{name}.detach()")
                raise CheckFailure(f"{where}: {the} gets no gradient — the output does not depend on it through "
                                   f"autograd: {use}.", mistake=f"{name}-gets-no-gradient")
            if type(gm) is not torch.Tensor or gm.shape != gr.shape:
                raise CheckFailure(f"{where}: no gradient of the right shape with respect to {name}.")
            problem = _value_problem(gm.to(torch.float64), gr, torch.float64)
            if problem:
                raise CheckFailure(f"{where}: the gradient with respect to {name} differs from torch's: {problem}")


def _judge_gradcheck(data) -> None:
    """torch.autograd.gradcheck passes on the learner's forward in float64."""
    gc = data.get("gradcheck")
    if not gc or gc.get("violations") or gc.get("error") or not gc.get("ok"):
        why = ""
        if gc and gc.get("violations"):
            why = f" (it called `{gc['violations'][0][0]}`)"
        elif gc and gc.get("error"):
            why = f" ({gc['error']['type']}: {gc['error']['message']})"
        raise CheckFailure(f"torch.autograd.gradcheck fails for {_describe(GRADCHECK_CONFIG)} in float64{why}: the "
                           "analytical gradients of your forward do not match finite differences.")


def verdict_module(data, configs, parts=MODULE_PARTS, devices=("cpu",), seed=0) -> None:
    """Judge a record from ``probe_module`` against torch; raise a learner-facing failure or return."""
    if "structure" in parts:
        _judge_structure(data)
        _judge_init(data)
        _judge_invalid(data)
    if "training" in parts:
        _judge_training(data, seed)
        _judge_gradcheck(data)


def _random_config(rng: random.Random) -> dict:
    """A valid ConvTranspose2d configuration (groups, stride, padding, output_padding, dilation, bias)."""
    groups = rng.choice((1, 1, 2, 3))
    stride, dilation = (rng.randint(1, 3), rng.randint(1, 3)), rng.choice((1, 2))
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    return dict(in_channels=groups * rng.randint(1, 3), out_channels=groups * rng.randint(1, 3), kernel_size=kernel,
                stride=stride, padding=(rng.randint(0, kernel[0] // 2), rng.randint(0, kernel[1] // 2)),
                output_padding=(rng.randrange(max(stride[0], dilation)), rng.randrange(max(stride[1], dilation))),
                groups=groups, dilation=dilation, bias=rng.random() < 0.7)


def _configs(suite: str, seed=None) -> list[dict]:
    """The visible configurations; the hidden suite adds fixed ones and three drawn from its seed (when grading,
    a seed of the course offering's: the worker cannot know them before the grader sends them)."""
    if suite != "hidden":
        return CONFIGS
    rng = random.Random(f"module-{seed or 0}")
    return HIDDEN_CONFIGS + [_random_config(rng) for _ in range(3)]


class ModuleCheck(GradedCheck):
    """Grading of ``ConvTranspose2d``: the grader sends the configurations, the worker records what the
    learner's class does with them (``probe_module``), the grader judges the record (``verdict_module``)."""

    check = "check_conv_transpose2d_module"
    bench_class = 20  # make bench grades a class of 20 Chapter 6 submissions

    def request(self, options, secret):
        """Grader side: the configurations to build, the parts to check and the seed."""
        part = options.get("part", "all")
        return {"configs": _configs(options.get("suite", "hidden"), options.get("seed")),
                "parts": list(MODULE_PARTS if part == "all" else (part,)), "seed": int(options.get("seed") or 0)}

    def probe(self, cls, request):
        """Worker side: what the learner's class does with each configuration (``probe_module``)."""
        return probe_module(cls, [dict(c) for c in request["configs"]], ("cpu",), tuple(request["parts"]),
                              request["seed"])

    def verdict(self, record, options, secret):
        """Grader side: judge the record with ``verdict_module``, against the request it answered."""
        req = self.request(options, secret)
        verdict_module(record, req["configs"], tuple(req["parts"]), ("cpu",), req["seed"])


GRADED_MODULE = ModuleCheck()


def check_conv_transpose2d_module(cls, part: str = "all", suite: str = "visible", seed: int | None = None,
                                  quiet: bool = False):
    """Check a learner's ``ConvTranspose2d`` class against ``torch.nn.ConvTranspose2d``.

    ``structure``: constructor, parameter names and shapes, state_dict both ways, dtype, initialisation,
    invalid arguments. ``training``: forward and gradients (input, weight, bias) equal torch's after
    loading torch's state_dict, on every device; gradcheck in float64.
    """
    __tracebackhide__ = True  # noqa: F841
    parts = module_check_prologue(cls, "ConvTranspose2d", "self, " + MODULE_SIGNATURE, part, MODULE_PARTS)
    configs = _configs(suite, seed)
    devices = tuple(available_devices())
    verdict_module(probe_module(cls, configs, devices, parts, seed), configs, parts, devices, seed)
    policy_check(cls, "ConvTranspose2d")
    if not quiet:
        print(f"✔ ConvTranspose2d: {', '.join(parts)} checks pass ({len(configs)} configurations, on "
              f"{', '.join(devices)}).")
        if "cuda" not in devices:
            print("  " + CPU_ONLY_NOTICE)
