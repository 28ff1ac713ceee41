"""Chapter 9 — making the transposed convolution fast.

    ROUTES                                   four ways to compute F.conv_transpose2d, for the book's measurements
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
from .timing import alternate, median_ratio
from .ch06 import RULE, SIGNATURE
from .contract import GradedCheck

warm_up()


def _keep_freed_memory() -> None:
    """Ask the C library's allocator to keep freed memory, as the grading workers do (their environment sets the
    same thresholds): unmapping a large output after every call otherwise adds page faults to each timed call,
    and a learner's ratio here would not be the one the grader measures. Best effort (glibc only)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


_keep_freed_memory()

# Bound when this module is imported: a notebook that later replaces F.conv_transpose2d does not change what the
# visible speed check measures against. (When grading, torch's side runs in a worker of the grader's own.)
_torch_conv_transpose2d = F.conv_transpose2d

# --------------------------------------------------------------------------
# Four routes (groups=1, dilation=1; any stride, padding and output_padding)


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


ROUTES = {"nested loops (per input pixel)": route_loops, "one scatter per kernel tap": route_scatter,
          "matrix multiply + col2im (F.fold)": route_fold, "stride phases + pixel shuffle": route_phases}


def cost(route: str, N, C_in, H, W, C_out, k, s, dtype_bytes=4) -> dict:
    """Multiply-adds and an estimate of the bytes each route moves through memory (reads + writes)."""
    useful = N * C_in * C_out * H * W * k * k              # each input value meets each tap once
    Hf, Wf = (H - 1) * s + k, (W - 1) * s + k              # the uncropped output
    x_b, w_b, y_b = N * C_in * H * W, C_in * C_out * k * k, N * C_out * Hf * Wf
    if route.startswith("nested"):
        moved = H * W * (N * C_in + w_b + 2 * N * C_out * k * k)       # each stamp reads w, reads+writes a patch
        macs = useful
    elif route.startswith("one scatter"):
        moved = k * k * (x_b + C_in * C_out + 3 * N * C_out * H * W)   # product written, slice read + written
        macs = useful
    elif route.startswith("matrix"):
        cols = N * C_out * k * k * H * W
        moved = x_b + w_b + 2 * cols + y_b                             # cols written by the matmul, read by fold
        macs = useful
    elif route.startswith("stride"):
        T = -(-k // s)
        Hp, Wp = H + T - 1, W + T - 1
        macs = s * s * N * C_out * C_in * T * T * Hp * Wp              # includes the zero-padded borders
        moved = s * s * (x_b + C_in * C_out * T * T + N * C_out * Hp * Wp) + 2 * y_b
    elif route.startswith("zero insertion"):
        macs = N * C_out * C_in * k * k * Hf * Wf                       # every output pixel, every tap
        moved = N * C_in * Hf * Wf + w_b + y_b
    else:  # torch
        macs, moved = useful, x_b + w_b + y_b
    return {"macs": macs, "bytes": moved * dtype_bytes}


# --------------------------------------------------------------------------
# The speed check

#: The chapter's reference shape: a decoder stage, 64 -> 128 pixels, 16 -> 16 channels, kernel 4, stride 2.
#: (Measured here on one thread: a loop per input pixel ~20-40x torch's time, one scatter per tap ~4-5x,
#: matrix multiply + fold ~2-3x; the limit sits between them with room for a noisy machine.)
REFERENCE = dict(N=4, C_in=16, H=64, W=64, C_out=16, k=4, stride=2, padding=1)
#: Yours may take at most this many times torch's time at the reference shape (median of the runs).
MAX_RATIO = 10.0
RUNS = 7


def reference_inputs(seed=0, device="cpu"):
    """The reference shape's input, weight and bias, drawn from ``seed``, on ``device``."""
    r = REFERENCE
    g = torch.Generator().manual_seed(9000 + seed)
    x = torch.randn(r["N"], r["C_in"], r["H"], r["W"], generator=g)
    w = torch.randn(r["C_in"], r["C_out"], r["k"], r["k"], generator=g) / (r["C_in"] * r["k"]) ** 0.5
    b = torch.randn(r["C_out"], generator=g)
    return x.to(device), w.to(device), b.to(device)


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
        raise CheckFailure(f"{where}: too slow — {summary}; at most {MAX_RATIO:g}x is needed. A Python loop over "
                           "pixels costs one tensor operation per pixel: loop over kernel taps at most, or do all taps "
                           "at once with one matrix multiply and F.fold (col2im).")
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
            print(f"✔ conv_transpose2d speed on {device}: {result['summary']} (at most {MAX_RATIO:g}x allowed).")
    if not quiet and "cuda" not in devices:
        print("  " + CPU_ONLY_NOTICE)


# --------------------------------------------------------------------------
# Grading: timed by the grader, not by the submission (autograder.grading.grader.measure)


class SpeedCheck(GradedCheck):
    """The speed part, graded: the worker makes one guarded call on the reference inputs (the rule and the
    values); then the grader clocks ``go``/``done`` around each call itself, alternating with
    ``F.conv_transpose2d`` in a worker of its own, on fresh inputs per run, and verifies every output."""

    check = "check_conv_transpose2d_speed"
    timed = True
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
