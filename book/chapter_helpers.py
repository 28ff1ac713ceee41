"""Helpers that the pages of Chapters 7 and 8 share (book/07_*.md, book/08_*.md), defined once here.

A chapter split into sections runs each section as a notebook of its own, so what two sections both
need lives in this file, which the pages import (the book executes a page in its own folder, book/).
The layers a reader should read (``upsampler``, ``generator``, ``grid_statistics``) are shown on the
page that introduces them with a ``literalinclude`` of this file.

Introduced in: book/07_checkerboard.md (``numbers_panel``, ``fmt_list``, ``bounding_box``),
book/07_1_spectra.md (``generator``, ``grid_statistics``), book/07_2_remedies.md (``upsampler``),
book/08_encoder_decoder.md (``make_upsampler``, ``DECODER_KINDS``, ``match_size``, also used by the pages
under book/08_encoder_decoder/).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.colors import LinearSegmentedColormap

#: Counts: white -> light blue -> dark blue (one hue, readable with any colour vision; numbers print on top).
COUNT_CMAP = LinearSegmentedColormap.from_list("counts", ["white", "#A9C2E6", "#2F5597"])
#: Differences: white -> orange.
DIFF_CMAP = LinearSegmentedColormap.from_list("diff", ["white", "#DD8452"])


def numbers_panel(ax, grid, title, fmt="{:g}", cmap=COUNT_CMAP, vmin=None, vmax=None, fontsize=10,
                  title_size=11):
    """A 2-D tensor drawn as coloured cells with its values printed in them."""
    arr = grid.detach().cpu().double().numpy()
    lo = float(arr.min()) if vmin is None else vmin
    hi = float(arr.max()) if vmax is None else vmax
    hi = hi if hi > lo else lo + 1
    cmap = plt.get_cmap(cmap)
    ax.imshow(arr, cmap=cmap, vmin=lo, vmax=hi)
    for (r, c), v in np.ndenumerate(arr):
        red, green, blue, _ = cmap(min(max((v - lo) / (hi - lo), 0), 1))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5      # white text on dark cells
        ax.text(c, r, fmt.format(v + 0.0), ha="center", va="center", fontsize=fontsize,
                color="white" if dark else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=title_size)


def bounding_box(t):
    """The smallest block of a 1-D or 2-D tensor that holds all its non-zero entries, and its first index."""
    where = t.nonzero()
    first, last = where.min(0).values, where.max(0).values
    return t[tuple(slice(int(a), int(b) + 1) for a, b in zip(first, last))], int(first[0])


def fmt_list(values):
    """'1, 2 and 4' from [1, 2, 4]."""
    items = [f"{v:g}" for v in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def upsampler(kind, c_in, c_out):
    """One x2 layer of each learned family of Chapter 7 (PyTorch's default random init): Chapter 8's layers
    (:func:`make_upsampler`) under Chapter 7's names, and pixel shuffle with ICNR's initialisation."""
    layer = make_upsampler(_CH7_KINDS[kind.replace(" + ICNR", "")], c_in, c_out)
    if "ICNR" in kind:      # every group of r² = 4 output channels starts as copies of one: no grid at init
        conv = layer[0]
        with torch.no_grad():
            conv.weight.copy_(conv.weight[::4].repeat_interleave(4, dim=0))
            conv.bias.copy_(conv.bias[::4].repeat_interleave(4))
    return layer


#: Chapter 7's names of Chapter 8's upsamplers.
_CH7_KINDS = {"transposed k=3": "transposed k3", "transposed k=4": "transposed k4",
              "resize-conv (nearest)": "nearest", "resize-conv (bilinear)": "bilinear", "pixel shuffle": "pixel shuffle"}


LEARNED = ["transposed k=3", "transposed k=4", "resize-conv (nearest)",
           "resize-conv (bilinear)", "pixel shuffle", "pixel shuffle + ICNR"]


def generator(kernel_size, channels=32, seed=0):
    """Three x2 transposed convolutions, 8x8 -> 64x64, random init."""
    torch.manual_seed(seed)
    pad, out_pad = (1, 1) if kernel_size == 3 else (1, 0)

    def up(c_out):
        return nn.ConvTranspose2d(channels, c_out, kernel_size, stride=2,
                                  padding=pad, output_padding=out_pad)

    return nn.Sequential(up(channels), nn.ReLU(), up(channels), nn.ReLU(),
                         up(1))


def grid_statistics(y, period=8, margin=8):
    """Spread ratio across the output phases, share of power at the stride frequencies, spectrum."""
    inner = y[:, margin:-margin, margin:-margin]                         # (batch, n, n), n a multiple of period
    n = inner.shape[-1]
    spread = inner.std(0).reshape(n // period, period, n // period, period).mean((0, 2))   # per phase
    centred = inner - inner.mean((-2, -1), keepdim=True)
    power = (torch.fft.fft2(centred).abs() ** 2).mean(0)
    peaks = torch.zeros(n, n, dtype=torch.bool)
    peaks[::n // period, ::n // period] = True                           # multiples of 1/period cycle per pixel
    peaks[0, 0] = False                                                  # (the mean is already removed)
    return (float(spread.max() / spread.min()), float(power[peaks].sum() / power.sum()),
            torch.fft.fftshift(power), float(peaks.double().mean()), n, int(peaks.sum()))


#: Chapter 8's five decoder upsamplers, in the order its tables list them.
DECODER_KINDS = ["nearest", "bilinear", "transposed k4", "transposed k3", "pixel shuffle"]


def make_upsampler(kind, c_in, c_out):
    """A layer that doubles height and width and maps c_in to c_out channels."""
    if kind in ("nearest", "bilinear"):   # fixed resize, then a learnable 3x3 convolution
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=kind), nn.Conv2d(c_in, c_out, 3, padding=1))
    if kind == "transposed k4":           # kernel divisible by the stride: even overlap
        return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
    if kind == "transposed k3":           # kernel not divisible by the stride: uneven overlap
        return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
    if kind == "pixel shuffle":           # 4x the channels at low resolution, then rearrange
        return nn.Sequential(nn.Conv2d(c_in, 4 * c_out, 3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"unknown upsampler {kind!r}")


def match_size(x, reference):
    """Crop or zero-pad the bottom/right of x to reference's height and width (F.pad crops with negative amounts)."""
    dh, dw = reference.shape[-2] - x.shape[-2], reference.shape[-1] - x.shape[-1]
    return F.pad(x, (0, dw, 0, dh))
