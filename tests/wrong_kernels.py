"""Known-wrong learner kernels, written the way learners write them.

They are independent of both the solutions and the checking library's own
mistake models (an im2col formulation via ``F.unfold``, not a tap loop and
not ``F.conv2d``), so a test that the library names the mistake is a real test.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CONV2D_BUGS = ("flipped", "weight_layout", "pad_one_side", "dilation_ignored", "groups_ignored",
               "group_offset_missing", "bias_ignored", "stride_one_axis", "kernel_transposed")


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv2d_with_bug(bug: str | None):
    """An im2col conv2d; ``bug`` injects one learner mistake (None: correct)."""

    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        (sH, sW), (pH, pW), (dH, dW) = _pair(stride), _pair(padding), _pair(dilation)
        w = weight
        if bug == "flipped":
            w = w.flip(-2, -1)
        if bug == "kernel_transposed":
            w = w.transpose(-2, -1)
        if bug == "weight_layout":  # reads (C_in, C_out, kH, kW)
            w = w.transpose(0, 1)
        if bug == "dilation_ignored":
            dH = dW = 1
        if bug == "stride_one_axis":
            sW = 1
        if bug == "pad_one_side":
            input = F.pad(input, (pW, 0, pH, 0))
            pH = pW = 0
        if bug == "groups_ignored":
            groups = 1
        if bug == "group_offset_missing" and groups > 1:
            per = input.shape[1] // groups
            input = input[:, :per].repeat(1, groups, 1, 1)
        N, C, H, W = input.shape
        C_out, _, kH, kW = w.shape
        if bug != "weight_layout" and (C != w.shape[1] * groups or C_out % groups):
            raise ValueError("channels do not fit groups")
        if min(sH, sW, dH, dW) < 1 or min(pH, pW) < 0:
            raise ValueError("stride and dilation must be positive, padding non-negative")
        H_out = math.floor((H + 2 * pH - dH * (kH - 1) - 1) / sH) + 1
        W_out = math.floor((W + 2 * pW - dW * (kW - 1) - 1) / sW) + 1
        if H_out < 1 or W_out < 1:
            raise ValueError("the kernel is larger than the padded input")
        cols = F.unfold(input, (kH, kW), dilation=(dH, dW), padding=(pH, pW), stride=(sH, sW))
        cols = cols.reshape(N, groups, -1, H_out * W_out)  # (N, G, C/G·kH·kW, L)
        wg = w.reshape(groups, C_out // groups, -1)
        out = torch.einsum("gok,ngkl->ngol", wg, cols).reshape(N, C_out, H_out, W_out)
        if bias is not None and bug != "bias_ignored":
            if bias.shape != (C_out,):
                raise ValueError("bias shape")
            out = out + bias[None, :, None, None]
        return out

    return conv2d


SIZE_BUGS = {
    "pad_one_side": lambda i, k, s, p, d: (i + p - d * (k - 1) - 1) // s + 1,
    "ceil": lambda i, k, s, p, d: math.ceil((i + 2 * p - d * (k - 1) - 1) / s) + 1,
    "dilation_ignored": lambda i, k, s, p, d: (i + 2 * p - (k - 1) - 1) // s + 1,
    "no_plus_one": lambda i, k, s, p, d: (i + 2 * p - d * (k - 1) - 1) // s,
}


def size_with_bug(bug: str | None, returns: str = "int"):
    """conv2d_output_size with one formula mistake; ``returns`` may be 'float' or 'list'."""

    def conv2d_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
        axes = [_pair(v) for v in (size, kernel_size, stride, padding, dilation)]
        out = []
        for i, k, s, p, d in zip(*axes):
            if s < 1 or p < 0 or d < 1 or i + 2 * p < d * (k - 1) + 1:
                raise ValueError("invalid")
            if bug is None:
                o = (i + 2 * p - d * (k - 1) - 1) // s + 1
            else:
                o = SIZE_BUGS[bug](i, k, s, p, d)
            out.append(float(o) if returns == "float" else o)
        if all(isinstance(v, int) for v in (size, kernel_size, stride, padding, dilation)):
            return out[0]
        return list(out) if returns == "list" else tuple(out)

    return conv2d_output_size
