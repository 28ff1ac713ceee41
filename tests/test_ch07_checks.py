"""Chapter 7 checks (the assignment notebook comes next): correct kernels pass, known mistakes are named."""

from __future__ import annotations

import math

import pytest
import torch

from autograder import CheckFailure, RuleViolation, ch07

def _report(check, fn, **kwargs):
    """A passing visible check returns None; its CaseCheck's ``report`` gives the Report (cases, dtypes, devices)."""
    from autograder import registry

    return next(c for c in registry.case_checks() if c.check == check.__name__).report(fn, **kwargs)



def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def overlap_count(size, kernel_size, stride=1, padding=0, bug=None):
    """Stamp counting with loops over input pixels and taps (a learner's first version)."""
    axes = [size] if isinstance(size, int) else list(size)
    ks, ss, ps = ([kernel_size], [stride], [padding]) if isinstance(size, int) else \
        (list(_pair(kernel_size)), list(_pair(stride)), list(_pair(padding)))
    if bug == "padding_ignored":
        ps = [0] * len(ps)
    counts = []
    for i, k, s, p in zip(axes, ks, ss, ps):
        full = [0] * ((i - 1) * s + k)
        for m in range(i):
            for a in range(k):
                full[m * s + a] += 1
        counts.append(full[p: len(full) - p])
    if len(counts) == 1:
        return torch.tensor(counts[0])
    return torch.tensor(counts[0])[:, None] * torch.tensor(counts[1])[None, :]


def pixel_shuffle(input, upscale_factor, bug=None):
    N, C, H, W = input.shape
    r = upscale_factor
    if C % (r * r):
        raise ValueError("channels not divisible by r²")
    if bug == "channel_order":
        return input.reshape(N, r, r, C // (r * r), H, W).permute(0, 3, 4, 1, 5, 2).reshape(N, -1, H * r, W * r)
    return input.reshape(N, C // (r * r), r, r, H, W).permute(0, 1, 4, 2, 5, 3).reshape(N, -1, H * r, W * r)


def pixel_unshuffle(input, downscale_factor):
    N, C, H, W = input.shape
    r = downscale_factor
    if H % r or W % r:
        raise ValueError("height and width must be divisible by r")
    return input.reshape(N, C, H // r, r, W // r, r).permute(0, 1, 3, 5, 2, 4).reshape(N, C * r * r, H // r, W // r)


def bilinear_kernel(channels, kernel_size, bug=None):
    if channels < 1 or kernel_size < 1:
        raise ValueError("channels and kernel_size must be positive")
    f = math.ceil(kernel_size / 2)  # the tent's half-width: the stride it upsamples by
    taps = [1 - abs(x - (kernel_size - 1) / 2) / f for x in range(kernel_size)]  # peak at the middle
    if bug == "off_centre":
        taps = [max(0.0, 1 - abs(x - kernel_size / 2) / f) for x in range(kernel_size)]
    t = torch.tensor(taps, dtype=torch.float32)
    w = torch.zeros(channels, channels, kernel_size, kernel_size)
    for ch in range(channels):
        w[ch, ch] = t[:, None] * t[None, :]
    if bug == "every_pair":
        w = (t[:, None] * t[None, :]).expand(channels, channels, kernel_size, kernel_size).clone()
    return w


def _with(fn, bug, sig):
    def f(*args, **kwargs):
        return fn(*args, **kwargs, bug=bug)
    f.__signature__ = sig
    f.__name__ = fn.__name__
    return f


import inspect  # noqa: E402

SIGS = {f: inspect.Signature([p for p in inspect.signature(f).parameters.values() if p.name != "bug"])
        for f in (overlap_count, pixel_shuffle, bilinear_kernel)}


@pytest.mark.parametrize("suite", ["visible", "hidden"])
def test_correct_kernels_pass(suite):
    assert _report(ch07.check_overlap_count, _with(overlap_count, None, SIGS[overlap_count]), suite=suite, quiet=True).ok
    assert _report(ch07.check_pixel_shuffle, _with(pixel_shuffle, None, SIGS[pixel_shuffle]), suite=suite, quiet=True).ok
    assert _report(ch07.check_pixel_unshuffle, pixel_unshuffle, suite=suite, quiet=True).ok
    assert _report(ch07.check_bilinear_kernel, _with(bilinear_kernel, None, SIGS[bilinear_kernel]), suite=suite, quiet=True).ok


@pytest.mark.parametrize("check, fn, bug, words", [
    (ch07.check_pixel_shuffle, pixel_shuffle, "channel_order", "channel order is mixed up"),
    (ch07.check_bilinear_kernel, bilinear_kernel, "off_centre", "centred wrongly"),
    (ch07.check_bilinear_kernel, bilinear_kernel, "every_pair", "every input channel feeds every output channel"),
    (ch07.check_overlap_count, overlap_count, "padding_ignored", "padding"),
])
def test_each_known_mistake_is_named(check, fn, bug, words):
    with pytest.raises(CheckFailure) as info:
        check(_with(fn, bug, SIGS[fn]), quiet=True)
    assert words in str(info.value), str(info.value)


def test_calling_torchs_pixel_shuffle_is_a_rule_violation():
    def pixel_shuffle(input, upscale_factor):
        return torch.nn.functional.pixel_shuffle(input, upscale_factor)

    with pytest.raises(RuleViolation):
        ch07.check_pixel_shuffle(pixel_shuffle, quiet=True)


def test_the_fcn_kernel_reproduces_bilinear_upsampling_in_the_interior():
    for s in (2, 4):
        w = ch07.reference_bilinear_kernel(3, 2 * s)
        x = torch.randn(1, 3, 5, 6)
        y = torch.nn.functional.conv_transpose2d(x, w, stride=s, padding=s // 2)
        ref = torch.nn.functional.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        torch.testing.assert_close(y[..., s:-s, s:-s], ref[..., s:-s, s:-s], atol=1e-5, rtol=1e-5)


def resize_conv2d(input, weight, bias=None, scale_factor=2, mode="nearest", swapped=False):
    """Resize-convolution written the way a learner might: nearest by repeat_interleave, bilinear by torch."""
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"unknown mode {mode!r}")
    kh, kw = weight.shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError("the kernel must be odd")

    def resize(x):
        if mode == "nearest":
            return x.repeat_interleave(scale_factor, dim=-2).repeat_interleave(scale_factor, dim=-1)
        return torch.nn.functional.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=False)

    def conv(x):
        return torch.nn.functional.conv2d(x, weight, bias, padding=(kh // 2, kw // 2))

    return resize(conv(input)) if swapped else conv(resize(input))


@pytest.mark.parametrize("suite", ["visible", "hidden"])
def test_check_resize_conv2d_passes_a_correct_kernel_and_names_the_swapped_order(suite):
    def correct(input, weight, bias=None, scale_factor=2, mode="nearest"):
        return resize_conv2d(input, weight, bias, scale_factor, mode)

    def swapped(input, weight, bias=None, scale_factor=2, mode="nearest"):
        return resize_conv2d(input, weight, bias, scale_factor, mode, swapped=True)

    assert _report(ch07.check_resize_conv2d, correct, suite=suite, quiet=True).ok
    with pytest.raises(CheckFailure) as info:
        ch07.check_resize_conv2d(swapped, suite=suite, quiet=True)
    assert "the order is swapped" in str(info.value)
