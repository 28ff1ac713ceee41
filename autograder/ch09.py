"""Chapter 9 — making the transposed convolution fast.

    ROUTES                                   seven ways to compute F.conv_transpose2d, for the book's measurements
    FASTEST                                  the route the book teaches as the fastest (make bench times it)
    cost(route, shape)                       multiply-adds and bytes moved, by formula
    check_conv_transpose2d_speed(fn)         correct at the reference shape, and within MAX_RATIO of torch

The routes here are the book's instruments, not a learner's: calling them from a solution is caught
like any call into the checking library. The speed check, like the module checks, is a probe (runs
learner code, records times and the output as plain data) and a verdict (judges the record).
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from ._arith import pair
from ._core import CPU_ONLY_NOTICE, CheckFailure, policy_check, stub_error, RuleViolation, _value_problem, available_devices
from ._rules import run_guarded, warm_up
from ._signature import check_signature
from .timing import MMAP_THRESHOLD, alternate, keep_freed_memory, median_ratio, paired
from .ch06 import RULE, SIGNATURE
from .contract import GradedCheck

warm_up()


keep_freed_memory()   # as the grading workers have it: the ratio measured here is the grader's

# Bound when this module is imported: a notebook that later replaces F.conv_transpose2d does not change what the
# visible speed check measures against. (When grading, torch's side runs in a worker of the grader's own.)
_torch_conv_transpose2d = F.conv_transpose2d

# --------------------------------------------------------------------------
# Seven routes (groups=1, dilation=1; any stride, padding and output_padding)


def _sizes(x, w, stride, padding, output_padding):
    (sH, sW), (pH, pW), (oH, oW) = pair(stride), pair(padding), pair(output_padding)
    _, _, H, W = x.shape
    kH, kW = w.shape[-2:]
    full = ((H - 1) * sH + kH + oH, (W - 1) * sW + kW + oW)   # before the padding is cropped
    return (sH, sW), (pH, pW), full


def _finish(full, padding, full_size, bias):
    """Crop the padding from both sides of the uncropped output, then add the bias."""
    pH, pW = padding
    out = full[..., pH: full_size[0] - pH, pW: full_size[1] - pW]
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def route_loops(x, w, bias=None, stride=1, padding=0, output_padding=0):
    """One stamp per input pixel: H·W·k² small tensor operations (vectorised over batch and channels only)."""
    (sH, sW), pad, full_size = _sizes(x, w, stride, padding, output_padding)
    N, _, H, W = x.shape
    _, C_out, kH, kW = w.shape
    full = x.new_zeros(N, C_out, *full_size)
    for i in range(H):
        for j in range(W):
            # (N, C_in) x (C_in, C_out, kH, kW) -> (N, C_out, kH, kW), stamped at (i*s, j*s)
            full[:, :, i * sH: i * sH + kH, j * sW: j * sW + kW] += torch.einsum("nc,cokl->nokl", x[:, :, i, j], w)
    return _finish(full, pad, full_size, bias)


def route_scatter(x, w, bias=None, stride=1, padding=0, output_padding=0):
    """One scatter per kernel tap: k² channel products, each added into a strided slice of the output."""
    (sH, sW), pad, full_size = _sizes(x, w, stride, padding, output_padding)
    N, _, H, W = x.shape
    _, C_out, kH, kW = w.shape
    full = x.new_zeros(N, C_out, *full_size)
    for a in range(kH):
        for b in range(kW):
            full[:, :, a: a + (H - 1) * sH + 1: sH, b: b + (W - 1) * sW + 1: sW] += torch.einsum(
                "nchw,co->nohw", x, w[:, :, a, b])
    return _finish(full, pad, full_size, bias)


def route_fold(x, w, bias=None, stride=1, padding=0, output_padding=0):
    """One matrix multiply (every tap of every pixel at once), then col2im (F.fold) sums the overlaps."""
    (sH, sW), pad, full_size = _sizes(x, w, stride, padding, output_padding)
    N, C_in, H, W = x.shape
    _, C_out, kH, kW = w.shape
    cols = w.reshape(C_in, C_out * kH * kW).T @ x.reshape(N, C_in, H * W)   # (N, C_out·kH·kW, H·W)
    full = F.fold(cols, full_size, (kH, kW), stride=(sH, sW))
    return _finish(full, pad, full_size, bias)


def route_phases(x, w, bias=None, stride=1, padding=0, output_padding=0):
    """s² small ordinary convolutions, one per output phase, interleaved by pixel shuffle: no multiplications
    by inserted zeros. (Square stride.)"""
    (s, s2), pad, full_size = _sizes(x, w, stride, padding, output_padding)
    assert s == s2, "this sketch takes a square stride"
    N, C_in, H, W = x.shape
    _, C_out, kH, kW = w.shape
    T = -(-kH // s), -(-kW // s)                         # taps per phase, at most
    wp = F.pad(w, (0, T[1] * s - kW, 0, T[0] * s - kH))  # zero taps make every phase the same size
    phases = []
    for a0 in range(s):
        for b0 in range(s):
            sub = wp[:, :, a0::s, b0::s]                 # the taps that land on phase (a0, b0)
            # a stride-1 transposed convolution = a convolution with the flipped kernel, channels swapped
            k = sub.flip(-2, -1).transpose(0, 1)
            phases.append(F.conv2d(F.pad(x, (T[1] - 1, T[1] - 1, T[0] - 1, T[0] - 1)), k))
    # (N, C_out, s·s, H', W') -> channel c·s² + a0·s + b0, the order pixel_shuffle interleaves
    stacked = torch.stack(phases, 2).reshape(N, C_out * s * s, *phases[0].shape[-2:])
    full = F.pixel_shuffle(stacked, s)[..., : full_size[0], : full_size[1]]
    if full.shape[-2] < full_size[0] or full.shape[-1] < full_size[1]:   # output_padding past the last stamp
        full = F.pad(full, (0, full_size[1] - full.shape[-1], 0, full_size[0] - full.shape[-2]))
    return _finish(full, pad, full_size, bias)


def route_slices(x, w, bias=None, stride=1, padding=0, output_padding=0):
    """One matrix multiply (every tap of every pixel at once), then k² strided slice-adds instead of col2im."""
    (sH, sW), pad, full_size = _sizes(x, w, stride, padding, output_padding)
    N, C_in, H, W = x.shape
    _, C_out, kH, kW = w.shape
    # (kH·kW·C_out, C_in) @ (N, C_in, H·W): tap (a, b) of every pixel is the slab cols[:, a, b]
    cols = (w.permute(2, 3, 1, 0).reshape(kH * kW * C_out, C_in) @ x.reshape(N, C_in, H * W)).view(
        N, kH, kW, C_out, H, W)
    full = x.new_zeros(N, C_out, *full_size)
    for a in range(kH):
        for b in range(kW):
            full[:, :, a: a + (H - 1) * sH + 1: sH, b: b + (W - 1) * sW + 1: sW] += cols[:, a, b]
    return _finish(full, pad, full_size, bias)


def _phase_output(x, C_out, s, p, full_size, positions):
    """The cropped output, empty — zeroed where ``output_padding`` reaches past the last stamp (those pixels get no
    phase value, only the bias) — and the plan that ``_write_phases`` follows: per output phase (a, c), its rows,
    columns and first phase position. ``positions`` is (Hp, Wp), each phase's size."""
    (sH, sW), (pH, pW), (Hp, Wp) = s, p, positions
    Hout, Wout = full_size[0] - 2 * pH, full_size[1] - 2 * pW
    # output row s·i + a is uncropped row s·i + a + padding: phase (a + padding) % s, position i + m0
    plan = [(a, -(-(Hout - a) // sH), (a + pH) // sH, c, -(-(Wout - c) // sW), (c + pW) // sW)
            for a in range(min(sH, Hout)) for c in range(min(sW, Wout))]
    short = any(m0 + n > Hp or j0 + nw > Wp for _, n, m0, _, nw, j0 in plan)
    N = x.shape[0]
    out = x.new_zeros(N, C_out, Hout, Wout) if short else x.new_empty(N, C_out, Hout, Wout)
    return out, plan


def _write_phases(out, phases, s, p, plan):
    """Write the stride phases, a (N, sH, sW, C_out, Hp, Wp) view — phase (a0, b0), position (m, j) is uncropped
    pixel (s·m + a0, s·j + b0) — straight into the interleaved output ``out``: one strided copy per phase."""
    (sH, sW), (pH, pW) = s, p
    for a, n, m0, c, nw, j0 in plan:
        src = phases[:, (a + pH) % sH, (c + pW) % sW, :, m0: m0 + n, j0: j0 + nw]
        out[:, :, a::sH, c::sW][:, :, : src.shape[-2], : src.shape[-1]] = src


def _add_bias(out, bias):
    if bias is not None:                                    # one pass over the output, not a copy of the windows
        out += bias.reshape(1, -1, 1, 1)
    return out


def route_phase_gemm(x, w, bias=None, stride=1, padding=0, output_padding=0):
    """The stride phases as ONE matrix multiply, written straight into the interleaved output: every phase reads
    the same T×T windows of the input (T = ceil(k/s) taps per phase), so one unfold of the input serves all s²
    phases, and the s² sub-kernels stack into one matrix."""
    (sH, sW), pad, full_size = _sizes(x, w, stride, padding, output_padding)
    N, C_in, H, W = x.shape
    _, C_out, kH, kW = w.shape
    TH, TW = -(-kH // sH), -(-kW // sW)                     # taps per phase, at most
    Hp, Wp = H + TH - 1, W + TW - 1                         # positions per phase
    # weight: tap (a0 + s·t) of phase a0 meets the window's row T-1-t: (s·s·C_out, C_in·TH·TW)
    wp = F.pad(w, (0, TW * sW - kW, 0, TH * sH - kH)).reshape(C_in, C_out, TH, sH, TW, sW).flip(2, 4)
    wm = wp.permute(3, 5, 1, 0, 2, 4).reshape(sH * sW * C_out, C_in * TH * TW)
    # input: every T×T window of the zero-padded input, one column per phase position (N, C_in·TH·TW, Hp·Wp)
    xp = F.pad(x, (TW - 1, TW - 1, TH - 1, TH - 1))
    windows = xp.unfold(2, TH, 1).unfold(3, TW, 1).permute(0, 1, 4, 5, 2, 3).reshape(N, C_in * TH * TW, Hp * Wp)
    phases = (wm @ windows).view(N, sH, sW, C_out, Hp, Wp)
    out, plan = _phase_output(x, C_out, (sH, sW), pad, full_size, (Hp, Wp))
    _write_phases(out, phases, (sH, sW), pad, plan)
    return _add_bias(out, bias)


def uses_onednn(x, w) -> bool:
    """Does route 7 hand its matrix multiply to oneDNN here? float32 tensors on a CPU whose PyTorch has oneDNN
    enabled, outside CPU autocast (which would hand oneDNN's tensors to operators that do not take them)."""
    return (x.device.type == "cpu" and x.dtype == w.dtype == torch.float32
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled("cpu"))


#: On oneDNN, route 7 takes the batch in chunks of as many images as keep a chunk's rows under this many bytes
#: (at least one image), below the allocator's threshold (timing.MMAP_THRESHOLD): larger buffers come fresh from
#: the system on every call, zeroed page by page. The chapter measures what the chunks buy at its large shape.
ROWS_CHUNK_BYTES = MMAP_THRESHOLD // 2


def rows_per_chunk(x, w, stride, chunk_bytes=None) -> int:
    """How many images route 7 takes at a time on oneDNN: as many as keep a chunk's rows under ``chunk_bytes``
    (ROWS_CHUNK_BYTES unless given), at least one."""
    (sH, sW), (_, C_in, H, W), (kH, kW) = pair(stride), x.shape, w.shape[-2:]
    TH, TW = -(-kH // sH), -(-kW // sW)
    per_image = (H + TH - 1) * (W + TW - 1) * TH * TW * C_in * x.element_size()
    fits = (ROWS_CHUNK_BYTES if chunk_bytes is None else chunk_bytes) / max(1, per_image)   # inf: the whole batch
    return max(1, int(min(fits, x.shape[0])))


def route_phase_rows(x, w, bias=None, stride=1, padding=0, output_padding=0, *, chunk_bytes=None):
    """Route 6 with the windows laid out channels-last: one contiguous row of C_in·T·T values per phase position.
    That is the layout oneDNN's matrix multiply takes (``F.linear`` with the weights converted by
    ``Tensor.to_mkldnn``), so the one matrix multiply runs on oneDNN's kernels — the library behind PyTorch's own
    CPU convolutions — instead of the BLAS routine behind ``@``. Where oneDNN cannot take it (not float32, not a
    CPU), the same rows go to ``@``. On oneDNN a large batch goes through in chunks (``rows_per_chunk``;
    ``chunk_bytes=math.inf`` takes it in one pass)."""
    (sH, sW), pad, full_size = _sizes(x, w, stride, padding, output_padding)
    N, C_in, H, W = x.shape
    _, C_out, kH, kW = w.shape
    TH, TW = -(-kH // sH), -(-kW // sW)
    Hp, Wp = H + TH - 1, W + TW - 1
    # weight: rows (phase a0, phase b0, c_out), columns (t, u, c_in) for tap (a0 + s·t, b0 + s·u); no flip, the
    # windows below take their taps in reverse instead
    wm = F.pad(w, (0, TW * sW - kW, 0, TH * sH - kH)).reshape(C_in, C_out, TH, sH, TW, sW).permute(3, 5, 1, 2, 4, 0)
    wm = wm.reshape(sH * sW * C_out, TH * TW * C_in)
    onednn = uses_onednn(x, w)
    if onednn:
        wm = wm.to_mkldnn()
    out = None
    chunk = rows_per_chunk(x, w, (sH, sW), chunk_bytes) if onednn else max(1, N)
    for n0 in range(0, N, chunk):
        xc = x[n0: n0 + chunk]
        m = xc.shape[0]
        # channels last: (m, H + 2(T-1), W + 2(T-1), C_in), zero-padded
        nhwc = F.pad(xc, (TW - 1, TW - 1, TH - 1, TH - 1)).permute(0, 2, 3, 1).contiguous()
        # window (i, j), tap (t, u) is the padded input at (i + T-1-t, j + T-1-u): T·T slab copies, C_in contiguous
        rows = x.new_empty(m, Hp, Wp, TH, TW, C_in)
        for t in range(TH):
            for u in range(TW):
                rows[:, :, :, t, u] = nhwc[:, TH - 1 - t: TH - 1 - t + Hp, TW - 1 - u: TW - 1 - u + Wp]
        rows = rows.view(m * Hp * Wp, TH * TW * C_in)
        if onednn:
            # F.linear(a, b) = a @ bᵀ; with a on oneDNN, it runs oneDNN's matrix multiply: (s·s·C_out, m·Hp·Wp).
            # The rows go as a plain tensor: Tensor.to_mkldnn would copy them once before oneDNN's own reorder
            phases = F.linear(wm, rows).to_dense()
        else:
            phases = wm @ rows.T
        phases = phases.view(sH, sW, C_out, m, Hp, Wp).permute(3, 0, 1, 2, 4, 5)   # a view: (m, sH, sW, C_out, ...)
        if out is None:   # allocated here, not before the loop: it then reuses memory the chunk just freed (warm)
            out, plan = _phase_output(x, C_out, (sH, sW), pad, full_size, (Hp, Wp))
        _write_phases(out[n0: n0 + m], phases, (sH, sW), pad, plan)
    if out is None:                                         # an empty batch
        out, _ = _phase_output(x, C_out, (sH, sW), pad, full_size, (Hp, Wp))
    return _add_bias(out, bias)


ROUTES = {"nested loops (per input pixel)": route_loops, "one scatter per kernel tap": route_scatter,
          "matrix multiply + col2im (F.fold)": route_fold, "stride phases + pixel shuffle": route_phases,
          "matrix multiply + k² slice-adds": route_slices, "stride phases as one matrix multiply": route_phase_gemm,
          "stride phases as rows on oneDNN": route_phase_rows}
#: The route the chapter teaches as its fastest, and the one the solution's fast path follows.
FASTEST = "stride phases as rows on oneDNN"


#: Timed pairs for the nested loops, which take seconds at the large shape (the other routes take ``runs``).
LOOP_RUNS = 3


def time_routes(shape: dict, routes=None, runs=7, device="cpu") -> dict:
    """Each route of ``routes`` (all of ROUTES by default) and F.conv_transpose2d, alternately, at ``shape`` (a dict
    like REFERENCE) on ``device``: {route: autograder.timing.paired(...)}, i.e. (the route's median seconds,
    torch's median seconds in the same pairs, the median of the per-pair ratios). The measure of the book's table
    and of make bench."""
    x, w, b = shape_inputs(shape, device=device)
    kw = dict(stride=shape["stride"], padding=shape["padding"])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def theirs():
        F.conv_transpose2d(x, w, b, **kw)
        sync()

    timed = {}
    with torch.no_grad():
        for name in routes or ROUTES:
            def mine(route=ROUTES[name]):
                route(x, w, b, **kw)
                sync()
            timed[name] = paired(mine, theirs, LOOP_RUNS if name.startswith("nested") else runs)
    return timed


def cost(route: str, N, C_in, H, W, C_out, k, s, dtype_bytes=4) -> dict:
    """Multiply-adds and an estimate of the bytes each route moves through memory (reads + writes); ``route`` is a
    key of ROUTES, "zero insertion" (Chapter 6's route) or "torch" (the useful work, each tensor read or written
    once: what a fused kernel would move)."""
    useful = N * C_in * C_out * H * W * k * k              # each input value meets each tap once
    Hf, Wf = (H - 1) * s + k, (W - 1) * s + k              # the uncropped output
    x_b, w_b, y_b = N * C_in * H * W, C_in * C_out * k * k, N * C_out * Hf * Wf
    cols = N * C_out * k * k * H * W                       # every tap of every pixel: k² times an output slice
    T = -(-k // s)                                         # taps per stride phase
    Hp, Wp = H + T - 1, W + T - 1                          # positions per phase
    if route.startswith("nested"):
        moved = H * W * (N * C_in + w_b + 2 * N * C_out * k * k)       # each stamp reads w, reads+writes a patch
        macs = useful
    elif route.startswith("one scatter"):
        moved = k * k * (x_b + C_in * C_out + 3 * N * C_out * H * W)   # product written, slice read + written
        macs = useful
    elif route == "matrix multiply + col2im (F.fold)":
        moved = x_b + w_b + 2 * cols + y_b                             # cols written by the matmul, read by fold
        macs = useful
    elif route == "matrix multiply + k² slice-adds":
        moved = x_b + w_b + cols + 3 * cols + y_b                      # cols written; per tap a slab read, a slice
        macs = useful                                                  # read + written; the zeroed output
    elif route == "stride phases + pixel shuffle":
        macs = s * s * N * C_out * C_in * T * T * Hp * Wp              # includes the zero-padded borders
        moved = s * s * (x_b + C_in * C_out * T * T + N * C_out * Hp * Wp) + 2 * y_b
    elif route == "stride phases as one matrix multiply":
        windows, phases = N * C_in * T * T * Hp * Wp, N * s * s * C_out * Hp * Wp
        macs = s * s * N * C_out * C_in * T * T * Hp * Wp              # the borders again: Hp·Wp >= H·W
        moved = x_b + w_b + 2 * windows + 2 * phases + y_b             # windows and phases written, read back once
    elif route == "stride phases as rows on oneDNN":
        windows, phases = N * C_in * T * T * Hp * Wp, N * s * s * C_out * Hp * Wp
        macs = s * s * N * C_out * C_in * T * T * Hp * Wp
        # the channels-last copy of the input (written, read); the rows written, reordered into oneDNN's own
        # layout (read + written) and read by the multiply; the phases written, copied out (read + written), read
        moved = x_b + 2 * N * C_in * (H + 2 * T - 2) * (W + 2 * T - 2) + w_b + 4 * windows + 4 * phases + y_b
    elif route.startswith("zero insertion"):
        macs = N * C_out * C_in * k * k * Hf * Wf                       # every output pixel, every tap
        moved = N * C_in * Hf * Wf + w_b + y_b
    elif route == "torch":
        macs, moved = useful, x_b + w_b + y_b
    else:
        raise KeyError(f"no cost formula for the route {route!r}")
    return {"macs": macs, "bytes": moved * dtype_bytes}


# --------------------------------------------------------------------------
# The speed check

#: The chapter's reference shape: a decoder stage, 64 -> 128 pixels, 16 -> 16 channels, kernel 4, stride 2.
#: (Measured here on one thread: a loop per input pixel ~20-40x torch's time, one scatter per tap ~4-5x,
#: matrix multiply + fold ~2-3x; the limit sits between them with room for a noisy machine.)
REFERENCE = dict(N=4, C_in=16, H=64, W=64, C_out=16, k=4, stride=2, padding=1)
#: Yours may take at most this many times torch's time at the reference shape (median of the runs).
MAX_RATIO = 10.0
#: The optional challenge (worth no points): this many times torch's time at the reference shape.
CHALLENGE_RATIO = 1.5
RUNS = 7


#: The shapes the chapter and ``make bench`` time every route at (stride 2, padding 1, kernel 4 throughout).
SHAPES = {
    "decoder stage, 64 -> 32 channels, 32x32": dict(N=8, C_in=64, C_out=32, H=32, W=32, k=4, stride=2, padding=1),
    "reference, 16 -> 16 channels, 64x64": REFERENCE,
    "large, 128 -> 64 channels, 64x64": dict(N=16, C_in=128, C_out=64, H=64, W=64, k=4, stride=2, padding=1),
}


def shape_inputs(shape: dict, seed=0, device="cpu"):
    """An input, weight and bias of ``shape`` (a dict like REFERENCE), drawn from ``seed``, on ``device``."""
    g = torch.Generator().manual_seed(9000 + seed)
    x = torch.randn(shape["N"], shape["C_in"], shape["H"], shape["W"], generator=g)
    w = torch.randn(shape["C_in"], shape["C_out"], shape["k"], shape["k"], generator=g) / (shape["C_in"] * shape["k"]) ** 0.5
    b = torch.randn(shape["C_out"], generator=g)
    return x.to(device), w.to(device), b.to(device)


def reference_inputs(seed=0, device="cpu"):
    """The reference shape's input, weight and bias, drawn from ``seed``, on ``device``."""
    return shape_inputs(REFERENCE, seed, device)


def probe_speed(fn, seed=0, device="cpu", runs=RUNS) -> dict:
    """Call ``fn`` once under the rule (output kept), then time it and torch alternately, ``runs`` times."""
    x, w, b = reference_inputs(seed, device)
    kw = dict(stride=REFERENCE["stride"], padding=REFERENCE["padding"])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    data = {"error": None, "violations": [], "output": None, "mine": [], "torch": [], "device": device}
    y, data["error"], data["violations"] = run_guarded(lambda: fn(x, w, b, **kw), (RULE,))
    if data["error"] or data["violations"]:
        return data
    data["output"] = y.detach().to("cpu").clone() if type(y) is torch.Tensor else {"__type__": type(y).__name__}
    def mine():
        fn(x, w, b, **kw)
        sync()

    def theirs():
        _torch_conv_transpose2d(x, w, b, **kw)
        sync()

    def far_too_slow(t_mine, t_torch):  # one such run says it all; more would only cost the learner time
        return t_mine > 5 * MAX_RATIO * t_torch and t_mine > 0.5

    with torch.no_grad():
        data["mine"], data["torch"] = alternate(mine, theirs, runs, give_up=far_too_slow)
    return data


def verdict_speed(data, seed=0) -> dict:
    """Judge a speed record: correct at the reference shape, and within MAX_RATIO of torch; return the ratio
    and a summary."""
    where = f"at the reference shape {describe_reference()} on {data.get('device', 'cpu')}"
    err = data.get("error")
    if err and err["type"] == "NotImplementedError":
        raise stub_error("conv_transpose2d", err.get("stub") or ())
    if data.get("violations"):
        op, reason = data["violations"][0]
        raise RuleViolation(f"{where}: your function called `{op}`, which this exercise forbids: {reason}")
    if err:
        raise CheckFailure(f"{where}: your function raised {err['type']}: {err['message']}")
    device = data.get("device", "cpu") if torch.cuda.is_available() else "cpu"  # CUDA's TF32 tolerance there
    x, w, b = reference_inputs(seed, device)
    expected = F.conv_transpose2d(x, w, b, stride=REFERENCE["stride"], padding=REFERENCE["padding"])
    y = data.get("output")
    if type(y) is not torch.Tensor or y.shape != expected.shape:
        got = tuple(y.shape) if type(y) is torch.Tensor else (y or {}).get("__type__", "nothing")
        raise CheckFailure(f"{where}: the output is {got}; expected shape {tuple(expected.shape)}. The speed of a "
                           "wrong answer does not count: fix correctness first.")
    problem = _value_problem(y.to(torch.float32), expected, torch.float32)
    if problem:
        raise CheckFailure(f"{where}: the output differs from F.conv_transpose2d ({problem}). The speed of a "
                           "wrong answer does not count: fix correctness first.")
    mine, ref = data.get("mine") or [], data.get("torch") or []
    if not mine or len(mine) != len(ref):
        raise CheckFailure(f"{where}: no timing came back.")
    ratio = median_ratio(mine, ref)
    summary = (f"median of {len(mine)} runs side by side: yours {statistics.median(mine) * 1e3:.1f} ms, "
               f"torch {statistics.median(ref) * 1e3:.1f} ms, ratio {ratio:.1f}x")
    if ratio > MAX_RATIO:
        slow = CheckFailure(f"{where}: too slow — {summary}; at most {MAX_RATIO:g}x is needed. A Python loop over "
                            "pixels costs one tensor operation per pixel: loop over kernel taps at most, or do all taps "
                            "at once with one matrix multiply and F.fold (col2im).")
        slow.ratio = ratio  # what the challenge's report shows
        raise slow
    return {"ratio": ratio, "summary": summary}


def describe_reference() -> str:
    """The reference shape (input, weight, stride, padding) as text for messages."""
    r = REFERENCE
    return (f"input ({r['N']}, {r['C_in']}, {r['H']}, {r['W']}), weight ({r['C_in']}, {r['C_out']}, {r['k']}, {r['k']}), "
            f"stride {r['stride']}, padding {r['padding']}")


def check_conv_transpose2d_speed(fn, suite="visible", seed=None, quiet=False):
    """Is ``fn`` correct at the reference shape and within MAX_RATIO of F.conv_transpose2d, timed side by side?"""
    __tracebackhide__ = True  # noqa: F841
    check_signature(fn, "conv_transpose2d", SIGNATURE)
    devices = tuple(available_devices())
    policy_check(fn, "conv_transpose2d")
    for device in devices:
        result = verdict_speed(probe_speed(fn, seed or 0, device), seed or 0)
        if not quiet:
            print(f"✔ conv_transpose2d speed on {device}: {result['summary']} (at most {MAX_RATIO:g}x allowed; "
                  f"{challenge_status(result['ratio'])}).")
    if not quiet and "cuda" not in devices:
        print("  " + CPU_ONLY_NOTICE)


def challenge_status(ratio: float) -> str:
    """One line on a ratio against the challenge target."""
    if ratio <= CHALLENGE_RATIO:
        return f"challenge reached: {ratio:.2f}x is within the {CHALLENGE_RATIO:g}x target"
    return f"challenge not reached yet: {ratio:.2f}x, the target is {CHALLENGE_RATIO:g}x"


def report_conv_transpose2d_challenge(fn, seed=None, runs=15):
    """The optional challenge, worth no points: ``fn``'s time over F.conv_transpose2d's at the reference shape,
    timed side by side (median of ``runs`` paired ratios), against CHALLENGE_RATIO. Prints; never fails the
    cell for speed (the graded limit is MAX_RATIO, checked by check_conv_transpose2d_speed)."""
    __tracebackhide__ = True  # noqa: F841
    for device in available_devices():
        try:
            result = verdict_speed(probe_speed(fn, seed or 0, device, runs=runs), seed or 0)
        except NotImplementedError as e:   # a stub: nothing to time yet
            print(f"challenge on {device}: not attempted yet ({e})")
            return
        except CheckFailure as e:
            ratio = getattr(e, "ratio", None)
            print(f"challenge on {device}: no ratio for a kernel that does not pass exercise 9.2 ({e})"
                  if ratio is None else f"challenge on {device}: {challenge_status(ratio)}")
            continue
        print(f"challenge on {device}: {challenge_status(result['ratio'])} ({result['summary']}).")


# --------------------------------------------------------------------------
# Grading: timed by the grader, not by the submission (autograder.grading.grader.measure)


class SpeedCheck(GradedCheck):
    """The speed part, graded: the worker makes one guarded call on the reference inputs (the rule and the
    values); then the grader clocks ``go``/``done`` around each call itself, alternating with
    ``F.conv_transpose2d`` in a worker of its own, on fresh inputs per run, and verifies every output."""

    check = "check_conv_transpose2d_speed"
    timed = True
    #: the optional challenge's target, shown beside the ratio in the part's feedback and on the leaderboard's part
    challenge_ratio = CHALLENGE_RATIO
    bench_class = 4
    runs, warmup = 15, 3  # cheap here (a slow submission gives up after one run): more runs, a steadier median
    calls_per_run = 8     # each timed "go" makes eight calls, on eight fresh inputs: the channel's cost is shared
    #: what the grader's baseline worker runs instead of a submission's cells
    baseline_source = "import torch.nn.functional as F\nconv_transpose2d = F.conv_transpose2d\n"

    def request(self, options, secret):
        """Grader side: the reference inputs for the worker's one guarded call."""
        x, w, b = reference_inputs(options.get("seed") or 0)
        return {"args": (x, w, b), "kwargs": {"stride": REFERENCE["stride"], "padding": REFERENCE["padding"]}}

    def probe(self, fn, request):
        """Worker side: one guarded call on the reference inputs; its output, error and rule violations."""
        from .grading.protocol import plain  # the worker's side: the grading package is there

        args, kw = tuple(request["args"]), dict(request["kwargs"])
        y, error, violations = run_guarded(lambda: fn(*args, **kw), (RULE,))
        return {"error": error, "violations": violations, "output": plain(y) if y is not None else None,
                "device": "cpu"}

    def timed_inputs(self, options, k):
        """Fresh inputs for timed run ``k`` (a memoised answer is a wrong answer)."""
        x, w, b = reference_inputs(1_000 * (k + 1) + (options.get("seed") or 0))
        return (x, w, b), {"stride": REFERENCE["stride"], "padding": REFERENCE["padding"]}

    def timed_problem(self, args, kwargs, out):
        """What is wrong with a timed run's output, compared with F.conv_transpose2d (None if nothing)."""
        expected = F.conv_transpose2d(*args, **kwargs)
        if type(out) is not torch.Tensor or out.shape != expected.shape:
            got = tuple(out.shape) if type(out) is torch.Tensor else (out or {}).get("__type__", "nothing")
            return f"the output is {got}; expected shape {tuple(expected.shape)}"
        return _value_problem(out.to(torch.float32), expected, torch.float32)

    def give_up(self, t_mine, t_torch):
        """One run at twice the allowed ratio says it all (each run is already a batch of fresh calls): more
        runs would only spend the part's time limit."""
        return t_mine > 2 * MAX_RATIO * t_torch

    def verdict(self, record, options, secret):
        """Grader side: every timed output must be right, then the ratio must be within MAX_RATIO."""
        bad = record.get("bad_runs")
        if bad:
            k, problem = bad[0]
            raise CheckFailure(f"at the reference shape {describe_reference()}: on the fresh inputs of timed run "
                               f"{k + 1}, the output differs from F.conv_transpose2d ({problem}). Every timed call "
                               "is checked: the speed of a wrong answer does not count.")
        verdict_speed(record, options.get("seed") or 0)
        return True


GRADED_SPEED = SpeedCheck()
