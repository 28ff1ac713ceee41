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
               "group_offset_missing", "bias_ignored", "stride_one_axis", "kernel_transposed", "padding_ignored",
               "stride_ignored")


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
        if bug == "stride_ignored":
            sH = sW = 1
        if bug == "padding_ignored":
            pH = pW = 0
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
            # range slips: an exact fit rejected (<= for <), a kernel size never checked
            fits = i + 2 * p <= d * (k - 1) + 1 if bug == "range_fit_rejected" else i + 2 * p < d * (k - 1) + 1
            if s < 1 or p < 0 or d < 1 or fits or (k < 1 and bug != "range_kernel_unchecked"):
                raise ValueError("invalid")
            if bug is None or bug.startswith("range_"):
                o = (i + 2 * p - d * (k - 1) - 1) // s + 1
            else:
                o = SIZE_BUGS[bug](i, k, s, p, d)
            out.append(float(o) if returns == "float" else o)
        if all(isinstance(v, int) for v in (size, kernel_size, stride, padding, dilation)):
            return out[0]
        return list(out) if returns == "list" else tuple(out)

    return conv2d_output_size


# --------------------------------------------------------------------------
# Chapters 2 and 4: resizing. One independent implementation with switches:
# per-axis index/weight lists built in plain Python, then gathered.


def _out_size(i, size, factor):
    return int(size) if size is not None else math.floor(i * factor)


def resize_with_bug(mode: str, bug: str | None):
    """``mode`` is 'nearest' or 'bilinear'; ``bug`` injects one learner mistake."""

    def resize(input, size=None, scale_factor=None, align_corners=False):
        if input.dim() != 4 or (size is None) == (scale_factor is None):
            raise ValueError("need a 4-D input and exactly one of size and scale_factor")
        sizes, factors = _pair(size) if size is not None else (None, None), _pair(scale_factor) if scale_factor is not None else (None, None)
        ac = bool(align_corners) != (bug == "align_swapped")
        outs = [_out_size(i, s, f) for i, s, f in zip(input.shape[-2:], sizes, factors)]
        if min(outs) < 1:
            raise ValueError("empty output")
        if bug == "integer_only":  # repeat each pixel int(factor) times
            f = int(factors[0] or 1)
            return input.repeat_interleave(f, dim=2).repeat_interleave(int(factors[1] or 1), dim=3)
        mats = []
        for i, o, f in zip(input.shape[-2:], outs, factors):
            m = torch.zeros(o, i, dtype=input.dtype)
            for d in range(o):
                if o == i:
                    m[d, d] = 1
                    continue
                if mode == "nearest" and o == 2 * i:
                    m[d, d // 2] = 1
                    continue
                scale = i / o if (f is None or bug == "in_over_out") else 1 / f
                if mode == "nearest":
                    if bug == "round":
                        src = round(d * scale)
                    elif bug == "float64":
                        src = math.floor(d * scale)
                    elif bug == "half":
                        src = math.floor((d + 0.5) * scale)
                    else:
                        src = int(torch.floor(torch.tensor(d, dtype=torch.float32) * torch.tensor(scale, dtype=torch.float32)))
                    m[d, min(src, i - 1)] = 1
                    continue
                if ac:
                    src = d * (i - 1) / (o - 1) if o > 1 else 0.0
                elif bug == "no_half_pixel":
                    src = d * scale
                else:
                    src = (d + 0.5) * scale - 0.5
                    if bug != "no_clamp":
                        src = max(src, 0.0)
                i0 = int(src)  # truncates toward zero: matters only without the clamp
                i0 = min(max(i0, 0), i - 1)
                i1 = min(i0 + 1, i - 1)
                lam = src - i0
                m[d, i0] += 1 - lam
                m[d, i1] += lam
            mats.append(m.to(input.device))
        return torch.einsum("oh,nchw,pw->ncop", mats[0], input, mats[1])

    if mode == "nearest":
        def upsample_nearest(input, size=None, scale_factor=None):
            return resize(input, size, scale_factor)
        return upsample_nearest

    def upsample_bilinear(input, size=None, scale_factor=None, align_corners=False):
        return resize(input, size, scale_factor, align_corners)
    return upsample_bilinear


# --------------------------------------------------------------------------
# Chapter 3


def bed_of_nails_with_bug(bug: str | None):
    def bed_of_nails(input, stride):
        sh, sw = _pair(stride)
        if input.dim() != 4 or (sh < 1 if bug == "range_height_only" else min(sh, sw) < 1):
            raise ValueError("bad arguments")
        if bug == "stride_swapped":
            sh, sw = sw, sh
        N, C, H, W = input.shape
        if bug == "no_trailing_zeros":
            out = input.new_zeros(N, C, (H - 1) * sh + 1, (W - 1) * sw + 1)
        else:
            out = input.new_zeros(N, C, H * sh, W * sw)
        off = (sh - 1, sw - 1) if bug == "offset" else (0, 0)
        for i in range(H):
            for j in range(W):
                out[:, :, i * sh + off[0], j * sw + off[1]] = input[:, :, i, j]
        return out
    return bed_of_nails


# --------------------------------------------------------------------------
# Chapter 5: window loops, the way a first implementation looks.


def max_pool_with_bug(bug: str | None):
    def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0):
        (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
        sh, sw = _pair(stride if stride is not None else (1 if bug == "stride_one" else kernel_size))
        too_much = (ph >= kh // 2 or pw >= kw // 2) if bug == "range_half_rejected" else (ph > kh // 2 or pw > kw // 2)
        if input.dim() != 4 or too_much or min(sh, sw) < 1 or min(ph, pw) < 0:
            raise ValueError("bad arguments")
        if bug == "padding_ignored":
            ph = pw = 0
        N, C, H, W = input.shape
        Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        if Ho < 1 or Wo < 1:
            raise ValueError("window larger than input")
        fill = 0.0 if bug == "zero_pad" else float("-inf")
        xp = F.pad(input, (pw, pw, ph, ph), value=fill)
        values = input.new_zeros(N, C, Ho, Wo)
        indices = torch.zeros(N, C, Ho, Wo, dtype=torch.long, device=input.device)
        for n in range(N):
            for c in range(C):
                for i in range(Ho):
                    for j in range(Wo):
                        best, where = None, None
                        for a in range(kh):
                            for b in range(kw):
                                v = float(xp[n, c, i * sh + a, j * sw + b])
                                better = v >= best if (bug == "last_tie" and best is not None) else (best is None or v > best)
                                if better:
                                    best, where = v, (a, b)
                        a, b = where
                        values[n, c, i, j] = best
                        r, q = i * sh + a, j * sw + b  # padded coordinates
                        if bug == "window_indices":
                            indices[n, c, i, j] = a * kw + b
                        elif bug == "padded_indices":
                            indices[n, c, i, j] = r * (W + 2 * pw) + q
                        else:
                            indices[n, c, i, j] = (r - ph) * W + (q - pw)
        return values, indices
    return max_pool2d_with_indices


def max_unpool_with_bug(bug: str | None):
    def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
        (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
        sh, sw = _pair(stride if stride is not None else kernel_size)
        N, C, Hi, Wi = input.shape
        H, W = (Hi - 1) * sh - 2 * ph + kh, (Wi - 1) * sw - 2 * pw + kw
        if output_size is not None and bug != "ignore_output_size":
            for size, default, s in zip(tuple(output_size)[-2:], (H, W), (sh, sw)):
                upper_ok = size <= default + s if bug == "range_inclusive" else size < default + s
                if not (default - s < size and upper_ok):
                    raise ValueError("output_size out of range")
            H, W = tuple(output_size)[-2:]
        out = input.new_zeros(N, C, H, W)
        for n in range(N):
            for c in range(C):
                for i in range(Hi):
                    for j in range(Wi):
                        k = int(indices[n, c, i, j])
                        if bug == "window_indices":
                            r, q = i * sh - ph + k // kw, j * sw - pw + k % kw
                        else:
                            r, q = divmod(k, W)
                        if not (0 <= r < H and 0 <= q < W):
                            raise ValueError("index outside the output")
                        out[n, c, r, q] = input[n, c, i, j]
        return out
    return max_unpool2d


# --------------------------------------------------------------------------
# Chapter 6: the zero-insertion route (insert zeros, pad, correlate with the flipped
# kernel via unfold) — a different formulation from the solution's scatter-add.

CONVT_BUGS = ("not_flipped", "conv2d_layout", "padding_added", "output_padding_zeros", "dilation_ignored",
              "group_offset", "bias_per_input_channel", "one_stride")


def conv_transpose2d_with_bug(bug: str | None):
    def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        (sH, sW), (pH, pW), (oH, oW), (dH, dW) = _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation)
        if min(sH, sW, dH, dW) < 1 or min(pH, pW, oH, oW) < 0 or oH >= max(sH, dH) or oW >= max(sW, dW):
            raise ValueError("bad stride/padding/output_padding/dilation")
        if bug == "one_stride":
            sW = sH
        if bug == "dilation_ignored":
            dH = dW = 1
        if bug == "output_padding_zeros":
            zeros_h, zeros_w, oH, oW = oH, oW, 0, 0
        w = weight.transpose(0, 1) if bug == "conv2d_layout" else weight
        N, C, H, W = input.shape
        if bug != "conv2d_layout" and (C != w.shape[0] or C % groups):
            raise ValueError("channels do not fit the weight and groups")
        _, C_out_g, kH, kW = w.shape
        if bias is not None and bias.shape != (C_out_g * groups,):
            raise ValueError("bias shape")
        if bug == "group_offset" and groups > 1:
            input = input[:, : C // groups].repeat(1, groups, 1, 1)
        z = input.new_zeros(N, C, (H - 1) * sH + 1, (W - 1) * sW + 1)
        z[..., ::sH, ::sW] = input  # zero insertion
        fh, fw = dH * (kH - 1), dW * (kW - 1)
        z = F.pad(z, (fw, fw + oW, fh, fh + oH))
        k = w if bug == "not_flipped" else w.flip(-2, -1)
        k = k.reshape(groups, C // groups, C_out_g, kH, kW).transpose(1, 2).reshape(groups, C_out_g, -1)
        Hf, Wf = z.shape[2] - fh, z.shape[3] - fw
        cols = F.unfold(z, (kH, kW), dilation=(dH, dW)).reshape(N, groups, -1, Hf * Wf)
        out = torch.einsum("gok,ngkl->ngol", k, cols).reshape(N, groups * C_out_g, Hf, Wf)
        if bug == "padding_added":
            out = F.pad(out, (pW, pW, pH, pH))
        else:
            if Hf - 2 * pH < 0 or Wf - 2 * pW < 0:
                raise ValueError("padding crops everything")
            out = out[..., pH: Hf - pH, pW: Wf - pW]
        if bug == "output_padding_zeros":
            out = F.pad(out, (0, zeros_w, 0, zeros_h))
        if bias is not None:
            times = C // groups if bug == "bias_per_input_channel" else 1
            out = out + times * bias.reshape(1, -1, 1, 1)
        return out

    return conv_transpose2d


# The scatter-add route, as a learner writes it from the chapter's loop spec: the output size from the
# size formula, then one kernel stamp per input pixel, then the padding cropped. A second formulation,
# independent of the zero-insertion one above and of the library's models (which call torch and permute).

SCATTER_BUGS = ("dilation_in_stamp_ignored", "groups_interleaved", "groups_swapped", "output_padding_top_left")


def conv_transpose2d_scatter_with_bug(bug: str | None):
    def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        (sH, sW), (pH, pW), (oH, oW), (dH, dW) = _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation)
        if min(sH, sW, dH, dW) < 1 or min(pH, pW, oH, oW) < 0 or oH >= max(sH, dH) or oW >= max(sW, dW):
            raise ValueError("bad stride/padding/output_padding/dilation")
        N, C_in, H, W = input.shape
        _, C_out_g, kH, kW = weight.shape
        if C_in != weight.shape[0] or C_in % groups:
            raise ValueError("channels do not fit the weight and groups")
        if bias is not None and bias.shape != (C_out_g * groups,):
            raise ValueError("bias shape")
        C_in_g = C_in // groups
        # the full (uncropped) canvas, output_padding rows and columns included at the bottom and right
        full_h, full_w = (H - 1) * sH + dH * (kH - 1) + 1, (W - 1) * sW + dW * (kW - 1) + 1
        H_out, W_out = full_h - 2 * pH + oH, full_w - 2 * pW + oW
        if H_out < 1 or W_out < 1:
            raise ValueError("padding crops everything")
        top, left = (oH, oW) if bug == "output_padding_top_left" else (0, 0)
        canvas = input.new_zeros(N, C_out_g * groups, full_h + oH, full_w + oW)
        tap_h, tap_w = (1, 1) if bug == "dilation_in_stamp_ignored" else (dH, dW)
        for g in range(groups):
            src = groups - 1 - g if bug == "groups_swapped" else g
            for ci in range(C_in_g):
                x = input[:, src * C_in_g + ci]  # (N, H, W)
                for co in range(C_out_g):
                    dst = co * groups + g if bug == "groups_interleaved" else g * C_out_g + co
                    for a in range(kH):
                        for b in range(kW):
                            r, c = top + a * tap_h, left + b * tap_w
                            canvas[:, dst, r: r + (H - 1) * sH + 1: sH, c: c + (W - 1) * sW + 1: sW] += \
                                x * weight[g * C_in_g + ci, co, a, b]
        out = canvas[:, :, pH: pH + H_out, pW: pW + W_out]
        if bias is not None:
            out = out + bias.reshape(1, -1, 1, 1)
        return out

    return conv_transpose2d


#: The mistake id each check names for each bug (a bug missing here is named by no id): the fact
#: tests/test_mistake_ids.py asserts and `make test-cuda` expects on the device.
NAMED = {
    "check_conv2d": {"flipped": "kernel-flipped", "weight_layout": "weight-conv-transpose-layout",
                     "pad_one_side": "padding-one-side-top-left", "dilation_ignored": "dilation-ignored",
                     "group_offset_missing": "groups-first-group-only", "bias_ignored": "bias-ignored",
                     "stride_one_axis": "stride-height-only", "kernel_transposed": "kernel-transposed",
                     "padding_ignored": "padding-ignored", "stride_ignored": "stride-ignored"},
    "check_upsample_nearest": {"round": "source-index-rounded", "in_over_out": "scale-inverted",
                               "float64": "source-index-float64", "half": "source-index-pixel-centres"},
    "check_upsample_bilinear": {"align_swapped": "align-corners-swapped",
                                "no_half_pixel": "half-pixel-offset-missing", "no_clamp": "source-not-clamped",
                                "in_over_out": "scale-inverted"},
    "check_bed_of_nails": {"offset": "nails-bottom-right", "stride_swapped": "stride-swapped"},
    "check_max_pool2d_with_indices": {"window_indices": "indices-within-window",
                                      "padded_indices": "indices-in-padded-input",
                                      "last_tie": "ties-last-maximum", "zero_pad": "padding-zeros-not-neg-inf",
                                      "stride_one": "stride-none-as-one", "padding_ignored": "padding-ignored"},
    "check_max_unpool2d": {"ignore_output_size": "output-size-ignored"},
    "check_conv_transpose2d": {"not_flipped": "kernel-not-flipped", "conv2d_layout": "weight-conv2d-layout",
                               "padding_added": "padding-added-not-cropped",
                               "output_padding_zeros": "output-padding-zeros",
                               "dilation_ignored": "dilation-ignored",
                               "group_offset": "groups-first-group-only",
                               "bias_per_input_channel": "bias-per-input-channel",
                               "one_stride": "stride-height-for-both",
                               "dilation_in_stamp_ignored": "dilation-ignored-in-stamp",
                               "groups_interleaved": "groups-channels-interleaved",
                               "groups_swapped": "groups-blocks-swapped",
                               "output_padding_top_left": "output-padding-top-left"},
}

_MAKERS = [  # (check, the kernel with a bug, its bugs)
    ("check_conv2d", conv2d_with_bug, CONV2D_BUGS),
    ("check_conv2d_output_size", size_with_bug,
     (*SIZE_BUGS, "range_fit_rejected", "range_kernel_unchecked")),
    ("check_upsample_nearest", lambda b: resize_with_bug("nearest", b),
     ("round", "integer_only", "in_over_out", "float64", "half")),
    ("check_upsample_bilinear", lambda b: resize_with_bug("bilinear", b),
     ("align_swapped", "no_half_pixel", "no_clamp", "in_over_out")),
    ("check_bed_of_nails", bed_of_nails_with_bug, ("offset", "no_trailing_zeros", "stride_swapped",
                                                      "range_height_only")),
    ("check_max_pool2d_with_indices", max_pool_with_bug,
     ("window_indices", "padded_indices", "last_tie", "zero_pad", "stride_one", "padding_ignored",
      "range_half_rejected")),
    ("check_max_unpool2d", max_unpool_with_bug, ("window_indices", "ignore_output_size", "range_inclusive")),
    ("check_conv_transpose2d", conv_transpose2d_with_bug, CONVT_BUGS),
    ("check_conv_transpose2d", conv_transpose2d_scatter_with_bug, SCATTER_BUGS),
]


def every_wrong_kernel() -> list[tuple[str, str, object, str | None]]:
    """(label, check, wrong kernel, the mistake id NAMED gives or None): every bug of this module."""
    return [(f"{check.removeprefix('check_')}: {bug}", check, make(bug), NAMED.get(check, {}).get(bug))
            for check, make, bugs in _MAKERS for bug in bugs]
