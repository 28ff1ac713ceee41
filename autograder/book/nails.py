"""Helpers that Chapter 3's pages share: the bed of nails as the transposed convolution the chapter
derives (the exercise's reference, ``autograder.ch03.reference_bed_of_nails``), and a map of which input
pixel each output pixel holds, read off torch.

Introduced in: book/03_bed_of_nails.md (``nails``, ``source_labels``); also used by the deep dives in
book/03_bed_of_nails/ and by book/05_max_unpooling/relations_and_cost.md. Each page is a notebook of its
own, so what they share lives in a module.
"""

from __future__ import annotations

import torch

from ..ch03 import reference_bed_of_nails as nails


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
