"""Helpers that Chapter 3's pages share: the bed of nails as the transposed convolution the chapter
derives, and a map of which input pixel each output pixel holds, read off torch.

Introduced in: book/03_bed_of_nails.md (``nails``, ``source_labels``); also used by the deep dives in
book/03_bed_of_nails/. The pages import this file (the core page puts this folder on ``sys.path``; a
deep dive runs in this folder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nails(x, stride):
    """Bed of nails, computed as the transposed convolution Chapter 3 derives."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    C = x.shape[1]
    return F.conv_transpose2d(x, torch.ones(C, 1, 1, 1, dtype=x.dtype), stride=(sh, sw),
                              output_padding=(sh - 1, sw - 1), groups=C)


def source_labels(stride, H, W):
    """For each output pixel, the input pixel 'i,j' it holds ('·' for a zero), read off torch.

    A ramp 1..H*W goes through the bed of nails; a nonzero output value v came from
    input pixel number v-1 (the ramp starts at 1 so that input 0 is not mistaken for a hole).
    """
    ramp = torch.arange(1, H * W + 1, dtype=torch.float64).reshape(1, 1, H, W)
    out = nails(ramp, stride)[0, 0].long() - 1
    labels = [[f"{int(v) // W},{int(v) % W}" if v >= 0 else "·" for v in row] for row in out]
    fill = [["#C9D7EE" if v >= 0 else "white" for v in row] for row in out]
    return labels, fill
