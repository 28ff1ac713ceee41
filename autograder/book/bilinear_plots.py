"""Helpers that Chapter 4's deep dives share (each page is a notebook of its own, so what they share lives
in a module).

Introduced in: book/04_bilinear/weights.md (``interpolation_matrix_2d``, ``style``); also used by
book/04_bilinear/tent_and_cost.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

f64 = torch.float64


def interpolation_matrix_2d(h, w, size, align_corners=False):
    """(h*w inputs) -> (H_out*W_out outputs): column k is the bilinear response to the one-hot image k."""
    impulses = torch.eye(h * w, dtype=f64).reshape(h * w, 1, h, w)
    out = F.interpolate(impulses, size=size, mode="bilinear", align_corners=align_corners)
    return out.reshape(h * w, -1).T


def style(ax, title, xlabel, ylabel="value"):
    """The chapter's line plots: a title, axis labels, small ticks, no top or right frame."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
