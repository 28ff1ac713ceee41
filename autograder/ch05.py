"""Chapter 5 — max pooling with indices, and max-unpooling.

    check_max_pool2d_with_indices(fn, part="basic" | "general" | "all", suite="visible")
    check_max_unpool2d(fn, part="basic" | "general" | "all", suite="visible")

Indices follow torch: for each (n, c) plane, the flat position ``h · W + w`` of
the maximum in the *unpadded* input; among equal values the first in
row-major window order wins.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from ._arith import as_pair
from ._core import Case, Derived, Exercise, Mistake, T, case_generator
from ._resize import require_4d
from ._rules import Rule, warm_up
from .contract import BenchShape, CaseCheck, bench_inputs

warm_up()

POOL_SIGNATURE = "input, kernel_size, stride=None, padding=0"
UNPOOL_SIGNATURE = "input, indices, kernel_size, stride=None, padding=0, output_size=None"
PARTS = ("basic", "general")

POOL_OPS = r"max_pool|max_unpool|adaptive_max|fractional_max"
POOL_RULE = Rule(POOL_OPS, "find each window's maximum and its position yourself; no max_pool/max_unpool operators")
UNPOOL_RULE = Rule(POOL_OPS, "scatter the values to their positions yourself; no max_unpool operator "
                             "(nor max_pool's backward, which is the same scatter)")


_pair = as_pair


def reference_max_pool2d_with_indices(input, kernel_size, stride=None, padding=0):
    """torch's ``F.max_pool2d`` with ``return_indices=True``, for 4-D input only."""
    require_4d(input)
    return F.max_pool2d(input, kernel_size, stride, padding, return_indices=True)


def reference_max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch's ``F.max_unpool2d``, for 4-D input only."""
    require_4d(input)
    return F.max_unpool2d(input, indices, kernel_size, stride, padding, output_size)


# --------------------------------------------------------------------------
# Models of the classic mistakes (library code: solutions may not call them)


def pool_model(x, kernel_size, stride=None, padding=0, *, tie="first", pad_value=-math.inf, index="plane"):
    """Max pooling via unfold, with switches for tie-breaking, padding value and index convention."""
    require_4d(x)
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    N, C, H, W = x.shape
    xp = F.pad(x, (pw, pw, ph, ph), value=pad_value).reshape(N * C, 1, H + 2 * ph, W + 2 * pw)
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    cols = F.unfold(xp, (kh, kw), stride=(sh, sw))  # (N·C, kh·kw, Ho·Wo)
    if tie == "last":
        pos = kh * kw - 1 - cols.flip(1).argmax(1)
    else:
        pos = cols.argmax(1)  # argmax keeps the first of equal maxima
    values = cols.gather(1, pos[:, None])[:, 0].reshape(N, C, Ho, Wo)
    r = torch.arange(Ho, device=x.device).repeat_interleave(Wo) * sh
    c = torch.arange(Wo, device=x.device).repeat(Ho) * sw
    pr, pc = r + pos // kw, c + pos % kw  # position in the padded input
    if index == "window":
        idx = pos
    elif index == "padded":
        idx = pr * (W + 2 * pw) + pc
    else:
        idx = (pr - ph) * W + (pc - pw)
        if index == "tensor":
            idx = idx + torch.arange(N * C, device=x.device)[:, None] * (H * W)
    return values, idx.reshape(N, C, Ho, Wo)


def _pool_mistakes():
    return (
        Mistake("indices count positions inside each window (0 … k·k−1); torch's count positions in the whole "
                "(n, c) plane: h · W + w", lambda *a, **k: pool_model(*a, **k, index="window"),
                id="indices-within-window"),
        Mistake("indices count positions in the padded input; torch counts them in the unpadded input "
                "(h · W + w with the input's own h, w, W)", lambda *a, **k: _if_padded(a, k, "padded"),
                id="indices-in-padded-input"),
        Mistake("indices are flattened over the whole tensor; torch flattens each (n, c) plane on its own",
                lambda *a, **k: pool_model(*a, **k, index="tensor"), id="indices-flattened-whole-tensor"),
        Mistake("ties go to the last maximum; torch keeps the first one in row-major window order "
                "(replace the maximum only on a strictly greater value)", lambda *a, **k: pool_model(*a, **k, tie="last"),
                id="ties-last-maximum"),
        Mistake("the input is padded with zeros; torch pads with −inf so that padding never wins",
                lambda *a, **k: _if_padded(a, k, "zeros"), id="padding-zeros-not-neg-inf"),
        Mistake("stride=None is taken as 1; torch's default stride is kernel_size (non-overlapping windows)",
                _stride_none_as_one, id="stride-none-as-one"),
        Mistake("padding ignored — pad the input with `padding` (−inf) on every side before taking windows; "
                "indices still count positions in the unpadded input", lambda *a, **k: _if_padded(a, k, "ignored"),
                id="padding-ignored"),
    )


def _stride_none_as_one(x, kernel_size, stride=None, padding=0):
    if stride is not None or _pair(kernel_size) == (1, 1):
        raise ValueError
    return pool_model(x, kernel_size, 1, padding)


def _if_padded(args, kwargs, what):
    padding = kwargs.get("padding", args[3] if len(args) > 3 else 0)
    if max(_pair(padding)) == 0:
        raise ValueError
    if what == "zeros":
        return pool_model(*args, **kwargs, pad_value=0.0)
    if what == "ignored":
        x, kernel_size, *rest = args
        stride = kwargs.get("stride", rest[0] if rest else None)
        return pool_model(x, kernel_size, stride, 0)
    return pool_model(*args, **kwargs, index="padded")


def _pool_shape_hint(args, kwargs, want, got):
    x, k = args[0], _pair(args[1])
    stride = kwargs.get("stride")
    p = _pair(kwargs.get("padding", 0))
    lines = []
    if len(got) != 4 or got[:2] != want[:2]:
        return "the output is (N, C, H_out, W_out): batch and channels pass through."
    for a, axis in ((0, "height"), (1, "width")):
        i, g, w = x.shape[2 + a], got[2 + a], want[2 + a]
        s = _pair(stride)[a] if stride is not None else k[a]
        if g == w:
            continue
        line = f"{axis}: yours is {g}, expected floor(({i} + 2·{p[a]} − {k[a]}) / {s}) + 1 = {w}"
        if stride is None and g == i + 2 * p[a] - k[a] + 1:
            line += "; with stride=None the stride equals kernel_size, not 1."
        lines.append(line)
    return "\n".join(lines) or None


def _features(case: Case) -> dict[str, bool]:
    kw = case.kwargs
    k = _pair(case.args[2] if len(case.args) > 2 and not isinstance(case.args[1], T) else case.args[1]) \
        if len(case.args) > 1 else (1, 1)
    stride = kw.get("stride")
    s = _pair(stride) if stride is not None else k
    return {
        "stride different from kernel_size": stride is not None and s != k,
        "overlapping windows (stride < kernel)": any(a < b for a, b in zip(s, k)),
        "padding > 0": max(_pair(kw.get("padding", 0))) > 0,
        "tied values": any(isinstance(v, T) and v.kind == "ties" for v in case.args),
        "output_size given": kw.get("output_size") is not None,
        "invalid arguments": case.invalid,
    }


POOL_EXERCISE = Exercise(
    name="max_pool2d_with_indices",
    reference=reference_max_pool2d_with_indices,
    rules=(POOL_RULE,),
    rule_text="no max-pooling operator was called",
    mistakes=_pool_mistakes(),
    shape_hint=_pool_shape_hint,
    features=_features,
    output_names=("values", "indices"),
)


def _window_unpool_model(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Unpooling that reads each index as a position inside its window (a classic mistake)."""
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    N, C, Hi, Wi = x.shape
    H = (Hi - 1) * sh - 2 * ph + kh
    W = (Wi - 1) * sw - 2 * pw + kw
    if output_size is not None:
        H, W = tuple(output_size)[-2:]
    r = torch.arange(Hi, device=x.device)[:, None] * sh - ph + indices // kw
    c = torch.arange(Wi, device=x.device)[None, :] * sw - pw + indices % kw
    if (r < 0).any() or (r >= H).any() or (c < 0).any() or (c >= W).any():
        raise ValueError
    out = x.new_zeros(N, C, H * W)
    out.scatter_(2, (r * W + c).reshape(N, C, -1), x.reshape(N, C, -1))
    return out.reshape(N, C, H, W)


def _unpool_shape_hint(args, kwargs, want, got):
    x = args[0]
    k = _pair(args[2])
    stride = kwargs.get("stride")
    s = _pair(stride) if stride is not None else k
    p = _pair(kwargs.get("padding", 0))
    if len(got) != 4 or got[:2] != want[:2]:
        return "the output is (N, C, H_out, W_out): batch and channels pass through."
    if kwargs.get("output_size") is not None:
        return (f"output_size={kwargs['output_size']!r} was given: the output's (H, W) must be its last two numbers "
                "(it undoes a pooling whose input size the formula cannot recover).")
    default = tuple((x.shape[2 + a] - 1) * s[a] - 2 * p[a] + k[a] for a in (0, 1))
    return (f"without output_size the output is (H_in − 1)·stride − 2·padding + kernel_size = {default} per axis.")


def _unpool_error_hint(args, kwargs, exc):
    indices, k = args[1], _pair(args[2])
    if not isinstance(indices, torch.Tensor) or indices.numel() == 0:
        return None
    top = int(indices.max())
    if top >= k[0] * k[1]:
        return (f"the indices are flat positions h · W + w in each (n, c) output plane (here up to {top}), "
                f"not positions inside a window (those would be below k·k = {k[0] * k[1]}); the index alone "
                "says where the value goes.")
    return None


UNPOOL_EXERCISE = Exercise(
    name="max_unpool2d",
    reference=reference_max_unpool2d,
    rules=(UNPOOL_RULE,),
    rule_text="no max-unpooling operator was called",
    mistakes=(
        Mistake("each index is read as a position inside its window; torch's indices are flat positions in the "
                "whole (n, c) output plane: out.view(N, C, -1)[n, c, indices[n, c, i, j]] = input[n, c, i, j]",
                _window_unpool_model, id="indices-within-window"),
        Mistake("output_size is ignored — with output_size given, the output takes that size",
                lambda x, i, k, stride=None, padding=0, output_size=None:
                reference_max_unpool2d(x, i, k, stride, padding) if output_size is not None else None,
                id="output-size-ignored"),
    ),
    shape_hint=_unpool_shape_hint,
    features=_features,
    error_hint=_unpool_error_hint,
)


# --------------------------------------------------------------------------
# Cases

POOL_NAMES = ("input", "kernel_size")
UNPOOL_NAMES = ("input", "indices", "kernel_size")


def _draw_pool(rng: random.Random, part: str):
    if part == "basic":
        k = rng.randint(1, 3)
        return k, {}, (rng.randint(1, 2), rng.randint(1, 3), k * rng.randint(1, 3), k * rng.randint(1, 3))
    k = (rng.randint(1, 3), rng.randint(1, 3)) if rng.random() < 0.5 else rng.randint(1, 3)
    kh, kw = _pair(k)
    kwargs = {}
    if rng.random() < 0.7:
        kwargs["stride"] = rng.randint(1, 3) if rng.random() < 0.5 else (rng.randint(1, 3), rng.randint(1, 3))
    if rng.random() < 0.6:
        kwargs["padding"] = (rng.randint(0, kh // 2), rng.randint(0, kw // 2)) if rng.random() < 0.5 \
            else rng.randint(0, min(kh, kw) // 2)
    shape = (rng.randint(1, 2), rng.randint(1, 3), rng.randint(kh, 8), rng.randint(kw, 8))
    return k, kwargs, shape


@case_generator(PARTS, salt="pool-")
def pool_cases(part: str, suite: str, base: int, rng: random.Random) -> list[Case]:
    """max_pool2d_with_indices cases of a part: 'basic' (with a hand-worked grid with ties) or 'general' (with
    invalid arguments and their edges)."""
    out = []
    if part == "basic":
        grid = [1., 5., 2., 2., 3., 0., 2., 1., 7., 7., 0., 4., 7., 1., 4., 4.]
        out.append(Case(POOL_NAMES, (T((1, 1, 4, 4), grid), 2),
                        label="hand-worked: a 4x4 grid with ties, 2x2 windows"))
    count = {"visible": 8, "hidden": 24}[suite]
    k = 0
    while len(out) < count:
        k += 1
        ks, kwargs, shape = _draw_pool(rng, part)
        kind = "ties" if k % 2 == 0 else "randn"
        dtypes = (torch.float64, torch.float32) if k % 3 == 0 else (torch.float64,)
        out.append(Case(POOL_NAMES, (T(shape, kind=kind), ks), kwargs, seed=base * 1000 + k, dtypes=dtypes))
    if part == "general":
        out += [
            Case(POOL_NAMES, (T((1, 1, 4, 4)), 2), {"padding": 2}, seed=base,
                 label="invalid: padding larger than half the kernel", invalid=True),
            Case(POOL_NAMES, (T((1, 1, 2, 2)), 3), seed=base, label="invalid: kernel larger than the input", invalid=True),
            Case(POOL_NAMES, (T((1, 4, 4)), 2), seed=base, label="invalid: a 3-D input", invalid=True),
            # the other side of each edge, and the 3x3 kernel's
            Case(POOL_NAMES, (T((1, 1, 4, 4)), 2), {"padding": 1}, seed=base,
                 label="edge: padding exactly half the kernel"),
            Case(POOL_NAMES, (T((1, 1, 5, 5)), 3), {"padding": 1}, seed=base, label="edge: padding 1, kernel 3"),
            Case(POOL_NAMES, (T((1, 1, 5, 5)), 3), {"padding": 2}, seed=base,
                 label="invalid: padding 2 for a 3x3 kernel", invalid=True),
            Case(POOL_NAMES, (T((1, 1, 2, 2)), 2), seed=base, label="edge: the window exactly fills the input"),
            Case(POOL_NAMES, (T((1, 1, 1, 1)), 3), {"padding": 1}, seed=base,
                 label="edge: padding makes the window fit a 1x1 input"),
            Case(POOL_NAMES, (T((1, 1, 4, 4)), 2), {"stride": 0}, seed=base, label="invalid: stride 0", invalid=True),
            Case(POOL_NAMES, (T((1, 1, 4, 4)), 2), {"padding": -1}, seed=base, label="invalid: negative padding", invalid=True),
        ]
    return out


def _unpool_prepare(k, stride, padding):
    def prepare(args, kwargs):
        source = args[0]
        pooled, indices = F.max_pool2d(source, k, stride, padding, return_indices=True)
        return (pooled, indices, *args[2:]), kwargs
    return prepare


@case_generator(PARTS, salt="unpool-")
def unpool_cases(part: str, suite: str, base: int, rng: random.Random) -> list[Case]:
    """max_unpool2d cases of a part, their indices from pooling the drawn input; 'general' adds output_size
    at each end of torch's range."""
    out = []
    count = {"visible": 8, "hidden": 24}[suite]
    k = 0
    while len(out) < count:
        k += 1
        ks, kwargs, shape = _draw_pool(rng, part)
        stride, padding = kwargs.get("stride"), kwargs.get("padding", 0)
        (kh, kw), (ph, pw) = _pair(ks), _pair(padding)
        sh, sw = _pair(stride if stride is not None else ks)
        Ho, Wo = (shape[2] + 2 * ph - kh) // sh + 1, (shape[3] + 2 * pw - kw) // sw + 1
        default = ((Ho - 1) * sh - 2 * ph + kh, (Wo - 1) * sw - 2 * pw + kw)
        if default != tuple(shape[2:]) or (part == "general" and rng.random() < 0.5):
            kwargs["output_size"] = tuple(shape[2:]) if rng.random() < 0.7 else tuple(shape)
        kind = "ties" if k % 3 == 0 else "randn"
        dtypes = (torch.float64, torch.float32) if k % 3 == 0 else (torch.float64,)
        pool_args = ", ".join([str(ks)] + [f"{n}={v!r}" for n, v in (("stride", stride), ("padding", padding)) if v])
        out.append(Case(UNPOOL_NAMES, (T(shape, kind=kind), Derived("indices", "(from the pooling)"), ks), kwargs,
                        seed=base * 1000 + k, dtypes=dtypes,
                        prepare=_unpool_prepare(ks, stride, padding),
                        label=f"input, indices = F.max_pool2d(source {shape}, {pool_args}, return_indices=True)",
                        prepare_repro=f"input, indices = torch.nn.functional.max_pool2d(input, {pool_args}, "
                                      "return_indices=True)"))
    if part == "general":
        out.append(Case(UNPOOL_NAMES, (T((1, 1, 4, 5)), Derived("indices", "(from the pooling)"), 2),
                        {"output_size": (9, 9)}, seed=base, prepare=_unpool_prepare(2, None, 0),
                        label="invalid: output_size far larger than the pooling could have come from", invalid=True,
                        prepare_repro="input, indices = torch.nn.functional.max_pool2d(input, 2, return_indices=True)"))
        # torch accepts output_size strictly between default - stride and default + stride (default 4, stride 2
        # here): each end of that range is tested on both sides, so an off-by-one range check shows.
        for size in ((5, 5), (6, 6), (3, 3), (2, 2), (5, 3), (4, 6)):
            bad = not all(4 <= v < 6 for v in size)  # below 4 the indices (from a 4x4 plane) do not fit
            out.append(Case(UNPOOL_NAMES, (T((1, 2, 4, 4)), Derived("indices", "(from the pooling)"), 2),
                            {"output_size": size}, seed=base + 7, prepare=_unpool_prepare(2, None, 0),
                            label=(f"{'invalid' if bad else 'edge'}: output_size "
                                   f"{size}, at an end of torch's range (4 ± stride 2, exclusive"
                                   + ("" if all(v >= 4 for v in size) else "; the indices need 4x4") + ")"),
                            invalid=bad,
                            prepare_repro="input, indices = torch.nn.functional.max_pool2d(input, 2, "
                                          "return_indices=True)"))
    return out


MAX_POOL2D_WITH_INDICES = CaseCheck("check_max_pool2d_with_indices", "max_pool2d_with_indices", POOL_EXERCISE,
                                    pool_cases, PARTS, POOL_SIGNATURE,
                                    'Compare ``fn`` with ``F.max_pool2d(..., return_indices=True)``: values and indices.',
                                    bench=BenchShape("(8,16,32,32) k2", lambda dev: bench_inputs(dev, (8, 16, 32, 32), 2), "F.max_pool2d", lambda x, k: F.max_pool2d(x, k, return_indices=True)))
check_max_pool2d_with_indices = MAX_POOL2D_WITH_INDICES.visible()


def _bench_unpool_inputs(device):
    """max_unpool2d's benchmark inputs: a max pooling's values and indices (k = 2) of a (8, 16, 32, 32) input."""
    (x,), _ = bench_inputs(device, (8, 16, 32, 32))
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)
    return (pooled, indices, 2), {}


MAX_UNPOOL2D = CaseCheck("check_max_unpool2d", "max_unpool2d", UNPOOL_EXERCISE, unpool_cases, PARTS,
                         UNPOOL_SIGNATURE,
                         "Compare ``fn`` with ``F.max_unpool2d`` on indices from torch's own max pooling.",
                         bench=BenchShape("(8,16,16,16) k2", _bench_unpool_inputs, "F.max_unpool2d", F.max_unpool2d),
                         bench_class=10)
check_max_unpool2d = MAX_UNPOOL2D.visible()


