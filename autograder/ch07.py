"""Chapter 7 — checkerboard artifacts and the learned alternatives.

    check_overlap_count(fn, part="1d" | "2d" | "all")
    check_pixel_shuffle(fn), check_pixel_unshuffle(fn)
    check_resize_conv2d(fn)
    check_bilinear_kernel(fn)

(The chapter's assignment notebook builds on these checks.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._arith import convT_out, diagnose_convT_axis, pair
from .contract import BenchShape, CaseCheck, bench_inputs
from ._core import Case, Exercise, Mistake, T, case_generator
from ._rules import CONVOLUTION_OPS, Rule, warm_up

warm_up()

# --------------------------------------------------------------------------
# overlap_count


def reference_overlap_count(size, kernel_size, stride=1, padding=0):
    """How many (input pixel, kernel tap) pairs land on each output pixel: a transposed convolution of ones."""
    if isinstance(size, int):
        x = torch.ones(1, 1, size, dtype=torch.float64)
        k = torch.ones(1, 1, int(kernel_size), dtype=torch.float64)
        return F.conv_transpose1d(x, k, stride=stride, padding=padding)[0, 0].round().long()
    x = torch.ones(1, 1, *pair(size), dtype=torch.float64)
    k = torch.ones(1, 1, *pair(kernel_size), dtype=torch.float64)
    return F.conv_transpose2d(x, k, stride=stride, padding=padding)[0, 0].round().long()


def _overlap_hint(args, kwargs, want, got):
    i, k = pair(args[0]), pair(args[1])
    s, p = pair(kwargs.get("stride", 1)), pair(kwargs.get("padding", 0))
    if len(got) != len(want):
        return f"the result should have {len(want)} dims (one per axis of `size`); yours has {len(got)}."
    lines = [diagnose_convT_axis(name, got[a], i[a], k[a], s[a], p[a], 0, 1)
             for a, name in enumerate(("length", "width")[: len(want)] if len(want) == 1 else ("height", "width"))
             if got[a] != want[a]]
    return "\n".join(lines) or None


def _overlap_mistakes():
    def padding_ignored(size, kernel_size, stride=1, padding=0):
        if max(pair(padding)) == 0:
            raise ValueError
        return reference_overlap_count(size, kernel_size, stride, 0)

    def per_input(size, kernel_size, stride=1, padding=0):
        # counts how many output pixels each *input* pixel touches (always k): the wrong direction
        full = reference_overlap_count(size, kernel_size, stride, padding)
        return torch.full_like(full, int(torch.tensor(pair(kernel_size)[: full.dim()]).prod()))

    return (
        Mistake("the padding is not cropped: padding p removes p pixels from each end of the count map",
                padding_ignored, id="padding-not-cropped"),
        Mistake("every pixel gets the kernel's size: count, for each *output* pixel, how many input pixels' stamps "
                "cover it — that depends on the position when the stride does not divide the kernel size",
                per_input, id="count-per-input-pixel"),
    )


OVERLAP_EXERCISE = Exercise(
    name="overlap_count",
    reference=reference_overlap_count,
    rules=(Rule(CONVOLUTION_OPS, "count the stamps with indexing and sums; no (transposed) convolution"),),
    rule_text="no convolution operator was called",
    mistakes=_overlap_mistakes(),
    shape_hint=_overlap_hint,
)

OVERLAP_PARTS = ("1d", "2d")


@case_generator(OVERLAP_PARTS, salt="overlap-")
def overlap_cases(part, suite, base, rng):
    """overlap_count cases of a part: '1d' sizes (with a hand-worked case) or '2d' ones; no output is empty."""
    names = ("size", "kernel_size")
    out = []
    if part == "1d":
        out.append(Case(names, (4, 3), {"stride": 2}, label="hand-worked: 4 pixels, kernel 3, stride 2 -> 1 1 2 1 2 1 2 1 1",
                        dtypes=(torch.int64,)))
    count = {"visible": 8, "hidden": 30}[suite]
    while len(out) < count:
        k, s = rng.randint(1, 5), rng.randint(1, 4)
        p = rng.randint(0, (k - 1) // 2) if rng.random() < 0.4 else 0
        if part == "1d":
            size, kernel, stride, padding = rng.randint(1, 8), k, s, p
        else:
            size = (rng.randint(1, 6), rng.randint(1, 6))
            kernel, stride, padding = (k, rng.randint(1, 5)), (s, rng.randint(1, 4)), p
        if min(convT_out(i, kk, ss, pp) for i, kk, ss, pp in zip(pair(size), pair(kernel), pair(stride), pair(padding))) < 1:
            continue
        out.append(Case(names, (size, kernel), {"stride": stride, "padding": padding}, dtypes=(torch.int64,)))
    return out


OVERLAP_COUNT = CaseCheck("check_overlap_count", "overlap_count", OVERLAP_EXERCISE, overlap_cases, OVERLAP_PARTS,
                          "size, kernel_size, stride=1, padding=0", "Compare ``fn`` with torch's overlap_count.")
check_overlap_count = OVERLAP_COUNT.visible()


# --------------------------------------------------------------------------
# pixel_shuffle / pixel_unshuffle

SHUFFLE_RULE = Rule(r"pixel_shuffle|pixel_unshuffle|channel_shuffle",
                    "rearrange with reshape/view and permute yourself; no pixel_shuffle/pixel_unshuffle operators")


def reference_pixel_shuffle(input, upscale_factor):
    """torch's ``F.pixel_shuffle``, for 4-D input only."""
    if input.dim() != 4:
        raise ValueError("expected a 4-D input (N, C·r², H, W)")
    return F.pixel_shuffle(input, upscale_factor)


def reference_pixel_unshuffle(input, downscale_factor):
    """torch's ``F.pixel_unshuffle``, for 4-D input only."""
    if input.dim() != 4:
        raise ValueError("expected a 4-D input (N, C, H·r, W·r)")
    return F.pixel_unshuffle(input, downscale_factor)


def _shuffle_channel_order(x, r):
    N, Crr, H, W = x.shape
    C = Crr // (r * r)
    if C * r * r != Crr or C == 1:
        raise ValueError
    return x.reshape(N, r, r, C, H, W).permute(0, 3, 4, 1, 5, 2).reshape(N, C, H * r, W * r)


def _shuffle_rows_cols(x, r):
    N, Crr, H, W = x.shape
    C = Crr // (r * r)
    if C * r * r != Crr or r == 1:
        raise ValueError
    return x.reshape(N, C, r, r, H, W).permute(0, 1, 4, 3, 5, 2).reshape(N, C, H * r, W * r)


def _unshuffle_channel_order(x, r):
    N, C, Hr, Wr = x.shape
    if C == 1:
        raise ValueError
    return x.reshape(N, C, Hr // r, r, Wr // r, r).permute(0, 3, 5, 1, 2, 4).reshape(N, C * r * r, Hr // r, Wr // r)


PIXEL_SHUFFLE_EXERCISE = Exercise(
    name="pixel_shuffle",
    reference=reference_pixel_shuffle,
    rules=(SHUFFLE_RULE,),
    rule_text="no pixel-shuffle operator was called",
    mistakes=(Mistake("the channel order is mixed up: input channel c·r² + i·r + j goes to output channel c at "
                      "offset (i, j) — the r² sub-pixels of one output channel are consecutive channels",
                      _shuffle_channel_order, id="channel-order-mixed"),
              Mistake("the sub-pixel rows and columns are swapped: channel offset i·r + j is row i, column j",
                      _shuffle_rows_cols, id="subpixel-rows-cols-swapped")),
)

PIXEL_UNSHUFFLE_EXERCISE = Exercise(
    name="pixel_unshuffle",
    reference=reference_pixel_unshuffle,
    rules=(SHUFFLE_RULE,),
    rule_text="no pixel-shuffle operator was called",
    mistakes=(Mistake("the channel order is mixed up: output channel c·r² + i·r + j holds input channel c at "
                      "offset (i, j)", _unshuffle_channel_order, id="channel-order-mixed"),),
)


@case_generator(("all",), salt="shuffle-")
def shuffle_cases(part, suite, base, rng):
    """pixel_shuffle cases: a hand-worked one, random ones, and channel counts around a multiple of r²."""
    names = ("input", "upscale_factor")
    out = [Case(names, (T((1, 4, 1, 1), [1., 2., 3., 4.]), 2), label="hand-worked: 4 channels of one pixel -> 2x2")]
    count = {"visible": 8, "hidden": 24}[suite]
    k = 0
    while len(out) < count:
        k += 1
        r = rng.randint(1, 3)
        shape = (rng.randint(1, 2), rng.randint(1, 3) * r * r, rng.randint(1, 4), rng.randint(1, 4))
        out.append(Case(names, (T(shape), r), seed=base * 1000 + k))
    out.append(Case(names, (T((1, 3, 2, 2)), 2), seed=base, label="invalid: 3 channels for r = 2", invalid=True))
    out.append(Case(names, (T((1, 5, 2, 2)), 2), seed=base, label="invalid: 5 channels for r = 2", invalid=True))
    out.append(Case(names, (T((1, 4, 2, 2)), 2), seed=base, label="edge: 4 channels for r = 2"))
    return out


@case_generator(("all",), salt="unshuffle-")
def unshuffle_cases(part, suite, base, rng):
    """pixel_unshuffle cases: random ones, and heights or widths that r does or does not divide."""
    names = ("input", "downscale_factor")
    out = []
    count = {"visible": 8, "hidden": 24}[suite]
    k = 0
    while len(out) < count:
        k += 1
        r = rng.randint(1, 3)
        shape = (rng.randint(1, 2), rng.randint(1, 3), r * rng.randint(1, 3), r * rng.randint(1, 3))
        out.append(Case(names, (T(shape), r), seed=base * 1000 + k))
    out.append(Case(names, (T((1, 1, 3, 4)), 2), seed=base, label="invalid: height 3 for r = 2", invalid=True))
    out.append(Case(names, (T((1, 1, 4, 5)), 2), seed=base, label="invalid: width 5 for r = 2", invalid=True))
    out.append(Case(names, (T((1, 1, 2, 2)), 2), seed=base, label="edge: 2x2 for r = 2 (one pixel out)"))
    return out


PIXEL_SHUFFLE = CaseCheck("check_pixel_shuffle", "pixel_shuffle", PIXEL_SHUFFLE_EXERCISE, shuffle_cases, ("all",),
                          "input, upscale_factor", "Compare ``fn`` with torch's pixel_shuffle.",
                          bench=BenchShape("(8,64,32,32) r2", lambda dev: bench_inputs(dev, (8, 64, 32, 32), 2), "F.pixel_shuffle", F.pixel_shuffle))
check_pixel_shuffle = PIXEL_SHUFFLE.visible()


PIXEL_UNSHUFFLE = CaseCheck("check_pixel_unshuffle", "pixel_unshuffle", PIXEL_UNSHUFFLE_EXERCISE, unshuffle_cases,
                            ("all",), "input, downscale_factor", "Compare ``fn`` with torch's pixel_unshuffle.",
                            bench=BenchShape("(8,16,64,64) r2", lambda dev: bench_inputs(dev, (8, 16, 64, 64), 2), "F.pixel_unshuffle", F.pixel_unshuffle))
check_pixel_unshuffle = PIXEL_UNSHUFFLE.visible()


# --------------------------------------------------------------------------
# bilinear_kernel (FCN initialisation)


def reference_bilinear_kernel(channels, kernel_size):
    """(C, C, k, k): the bilinear tent on the diagonal (channel c to channel c), zeros elsewhere."""
    if channels < 1 or kernel_size < 1:
        raise ValueError("channels and kernel_size must be positive")
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]
    return weight


def _kernel_mistakes():
    def off_centre(channels, kernel_size):
        if kernel_size % 2:
            raise ValueError
        factor = (kernel_size + 1) // 2
        og = torch.arange(kernel_size, dtype=torch.float32)
        filt = (1 - (og - factor).abs() / factor).clamp(min=0)
        weight = torch.zeros(channels, channels, kernel_size, kernel_size)
        weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]
        return weight

    def every_pair(channels, kernel_size):
        if channels == 1:
            raise ValueError
        w = reference_bilinear_kernel(1, kernel_size)[0, 0]
        return w.expand(channels, channels, kernel_size, kernel_size).clone()

    return (
        Mistake("the tent is centred wrongly: for an even kernel its peak lies between the two middle taps, at "
                "(k − 1)/2, so the stride-s copies interleave evenly", off_centre, id="tent-off-centre"),
        Mistake("every input channel feeds every output channel; the FCN initialisation upsamples each channel on "
                "its own: weight[c, c] is the tent, weight[c, d] = 0 for c ≠ d", every_pair,
                id="channels-cross-connected"),
    )


BILINEAR_KERNEL_EXERCISE = Exercise(
    name="bilinear_kernel",
    reference=reference_bilinear_kernel,
    rules=(Rule(r"upsample|interpolate|grid_sampler|" + CONVOLUTION_OPS,
                "build the kernel from its formula; do not read it off an interpolation"),),
    rule_text="no interpolation or convolution operator was called",
    mistakes=_kernel_mistakes(),
)


@case_generator(("all",), salt="kernel-")
def kernel_cases(part, suite, base, rng):
    """bilinear_kernel cases: a hand-worked one, a range of kernel sizes, and zero channels or size."""
    names = ("channels", "kernel_size")
    out = [Case(names, (1, 4), label="hand-worked: 1 channel, 4x4 (stride 2): tent 0.25 0.75 0.75 0.25",
                dtypes=(torch.float32,))]
    sizes = [2, 3, 4, 5, 6, 8] + ([7, 9, 10, 12, 16] if suite == "hidden" else [])
    for k in sizes:
        out.append(Case(names, (rng.randint(1, 4), k), dtypes=(torch.float32,)))
    out.append(Case(names, (0, 4), label="invalid: zero channels", dtypes=(torch.float32,),
                    invalid=True))
    out.append(Case(names, (1, 4), label="edge: one channel", dtypes=(torch.float32,)))
    out.append(Case(names, (2, 0), label="invalid: kernel_size 0", dtypes=(torch.float32,),
                    invalid=True))
    out.append(Case(names, (2, 1), label="edge: kernel_size 1", dtypes=(torch.float32,)))
    return out


BILINEAR_KERNEL = CaseCheck("check_bilinear_kernel", "bilinear_kernel", BILINEAR_KERNEL_EXERCISE, kernel_cases,
                            ("all",), "channels, kernel_size", "Compare ``fn`` with torch's bilinear_kernel.")
check_bilinear_kernel = BILINEAR_KERNEL.visible()


# --------------------------------------------------------------------------
# resize_conv2d: resize, then convolve (the checkerboard-free upsampler)


def reference_resize_conv2d(input, weight, bias=None, scale_factor=2, mode="nearest"):
    """Resize (nearest or bilinear), then convolve with 'same' padding: the reference of resize_conv2d."""
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    if weight.shape[-1] % 2 == 0 or weight.shape[-2] % 2 == 0:
        raise ValueError("use an odd kernel, so that 'same' padding is symmetric")
    extra = {"align_corners": False} if mode == "bilinear" else {}
    up = F.interpolate(input, scale_factor=scale_factor, mode=mode, **extra)
    return F.conv2d(up, weight, bias, padding=(weight.shape[-2] // 2, weight.shape[-1] // 2))


def _conv_then_resize(input, weight, bias=None, scale_factor=2, mode="nearest"):
    extra = {"align_corners": False} if mode == "bilinear" else {}
    y = F.conv2d(input, weight, bias, padding=(weight.shape[-2] // 2, weight.shape[-1] // 2))
    return F.interpolate(y, scale_factor=scale_factor, mode=mode, **extra)


RESIZE_CONV_EXERCISE = Exercise(
    name="resize_conv2d",
    reference=reference_resize_conv2d,
    mistakes=(Mistake("the order is swapped: resize first, then convolve (convolving first and resizing "
                      "afterwards is cheaper but brings the blocks or blur of the resize back)", _conv_then_resize,
                      id="convolve-then-resize"),),
)


@case_generator(("all",), salt="resizeconv-")
def resize_conv_cases(part, suite, base, rng):
    """resize_conv2d cases: random ones, an unsupported mode, even kernels and a 1x1 kernel."""
    names = ("input", "weight", "bias")
    out = []
    count = {"visible": 8, "hidden": 24}[suite]
    k = 0
    while len(out) < count:
        k += 1
        c_in, c_out, ks = rng.randint(1, 3), rng.randint(1, 3), rng.choice((1, 3, 5))
        out.append(Case(names, (T((rng.randint(1, 2), c_in, rng.randint(2, 5), rng.randint(2, 5))),
                                T((c_out, c_in, ks, ks)), T((c_out,)) if rng.random() < 0.5 else None),
                        {"scale_factor": rng.choice((2, 3)), "mode": rng.choice(("nearest", "bilinear"))},
                        seed=base * 1000 + k))
    out.append(Case(names, (T((1, 1, 3, 3)), T((1, 1, 3, 3)), None), {"mode": "bicubic"}, seed=base,
                    label="invalid: mode 'bicubic'", invalid=True))
    out.append(Case(names, (T((1, 1, 3, 3)), T((1, 1, 2, 2)), None), seed=base, label="invalid: an even kernel", invalid=True))
    out.append(Case(names, (T((1, 1, 3, 3)), T((1, 1, 3, 2)), None), seed=base,
                    label="invalid: a kernel even in width only", invalid=True))
    out.append(Case(names, (T((1, 1, 3, 3)), T((1, 1, 1, 1)), None), seed=base, label="edge: a 1x1 kernel"))
    return out


RESIZE_CONV2D = CaseCheck("check_resize_conv2d", "resize_conv2d", RESIZE_CONV_EXERCISE, resize_conv_cases, ("all",),
                          "input, weight, bias=None, scale_factor=2, mode='nearest'",
                          "Compare ``fn`` with torch's resize_conv2d.",
                          bench=BenchShape("(8,16,32,32)*(16,16,3,3) x2", lambda dev: bench_inputs(dev, (8, 16, 32, 32), (16, 16, 3, 3), (16,)), "F.interpolate + F.conv2d", reference_resize_conv2d))
check_resize_conv2d = RESIZE_CONV2D.visible()


