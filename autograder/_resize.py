"""What nearest-neighbour and bilinear upsampling share: arguments, output size, cases.

Both mirror ``F.interpolate`` for 4-D NCHW input: exactly one of ``size`` and
``scale_factor`` (each an int, a float or a pair); the output size is ``size``
or ``floor(H * scale_factor)``; the *source coordinate* of output pixel ``dst``
uses the scale ``1 / scale_factor`` when a factor is given and ``in / out``
when a size is given.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from ._arith import as_pair
from ._core import Case, Exercise, T

NAMES = ("input",)


def require_4d(input) -> None:
    """Raise ValueError unless ``input`` is a 4-D (N, C, H, W) tensor."""
    if not isinstance(input, torch.Tensor) or input.dim() != 4:
        shape = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
        raise ValueError(f"expected a 4-D input (N, C, H, W), got {shape}")


def reference_nearest(input, size=None, scale_factor=None):
    """torch's ``mode="nearest"`` interpolation, for 4-D input only: Chapter 2's reference."""
    require_4d(input)
    return F.interpolate(input, size=size, scale_factor=scale_factor, mode="nearest")


def reference_bilinear(input, size=None, scale_factor=None, align_corners=False):
    """torch's ``mode="bilinear"`` interpolation, for 4-D input only: Chapter 4's reference."""
    require_4d(input)
    return F.interpolate(input, size=size, scale_factor=scale_factor, mode="bilinear", align_corners=align_corners)


_pair = as_pair


def out_sizes(H, W, size, scale_factor) -> tuple[int, int]:
    """The output (H, W): ``size`` when given, else each input size times its scale factor, rounded down."""
    if size is not None:
        return tuple(int(v) for v in _pair(size))
    sh, sw = _pair(scale_factor)
    return math.floor(H * sh), math.floor(W * sw)


def shape_hint(args, kwargs, want, got):
    """Why a resize output has the wrong shape, as sentences for the failure message (None if no reason is found)."""
    x = args[0]
    H, W = x.shape[-2:]
    size, sf = kwargs.get("size"), kwargs.get("scale_factor")
    if len(got) != 4:
        return f"the output should be 4-D (N, C, H_out, W_out); yours has {len(got)} dims."
    if got[:2] != want[:2]:
        return "batch and channel dims pass through unchanged: (N, C) of the output must equal the input's."
    lines = []
    if size is not None:
        lines.append(f"with size={size!r} the output's (H, W) is exactly that size.")
    else:
        for axis, i, s, g, w in (("height", H, _pair(sf)[0], got[2], want[2]), ("width", W, _pair(sf)[1], got[3], want[3])):
            if g == w:
                continue
            line = f"{axis}: yours is {g}, expected floor({i} · {s}) = {w}"
            if g == round(i * s):
                line += "; yours is rounded, torch rounds down (floor)."
            elif g == math.ceil(i * s):
                line += "; yours is rounded up, torch rounds down (floor)."
            elif g == i * int(s):
                line += f"; yours is {i} · int({s}): fractional factors must work too (1.5 maps 4 pixels to 6)."
            lines.append(line)
    return "\n".join(lines) or None


def features(case: Case) -> dict[str, bool]:
    """What a resize case has (a size, a fractional or downscaling factor, ...), to find what failing cases share."""
    kw = case.kwargs
    size, sf = kw.get("size"), kw.get("scale_factor")
    factors = [v for v in _pair(sf) if v is not None]
    shape = case.args[0].shape if isinstance(case.args[0], T) else ()
    return {
        "size given (not scale_factor)": size is not None,
        "a fractional scale factor": any(float(v) != int(v) for v in factors),
        "a scale factor below 1 (downscaling)": any(v < 1 for v in factors),
        "different height and width factors": len(set(factors)) > 1 or (
            size is not None and isinstance(size, tuple) and len(shape) == 4
            and size[0] * shape[3] != size[1] * shape[2]),
        "align_corners=True": bool(kw.get("align_corners")),
        "a size-1 input or output axis": (len(shape) == 4 and 1 in shape[-2:]) or (
            size is not None and 1 in _pair(size)),
        "invalid arguments": case.invalid,
    }


def _factor(rng: random.Random):
    return rng.choice([2, 3, 2.0, 1.5, 2.7, 0.5, 0.75, 1.25, 3.3, 0.6, 4])


def random_cases(rng: random.Random, count: int, seed_base: int, align_corners: bool = False) -> list[Case]:
    """``count`` random valid cases, each with a size or an int, fractional or per-axis scale factor."""
    cases = []
    k = 0
    while len(cases) < count:
        k += 1
        n, c = rng.randint(1, 2), rng.randint(1, 3)
        h, w = rng.randint(1, 7), rng.randint(1, 7)
        kw: dict = {}
        if rng.random() < 0.3:
            kw["size"] = rng.randint(1, 12) if rng.random() < 0.4 else (rng.randint(1, 12), rng.randint(1, 12))
        else:
            a = _factor(rng)
            kw["scale_factor"] = a if rng.random() < 0.6 else (a, _factor(rng))
        if align_corners:
            kw["align_corners"] = rng.random() < 0.5
        oh, ow = out_sizes(h, w, kw.get("size"), kw.get("scale_factor"))
        if oh < 1 or ow < 1:
            continue
        dtypes = (torch.float64, torch.float32) if k % 3 == 0 else (torch.float64,)
        cases.append(Case(NAMES, (T((n, c, h, w)),), kw, seed=seed_base * 1000 + k, dtypes=dtypes))
    return cases


def invalid_cases(seed: int, align_corners: bool = False) -> list[Case]:
    """Arguments torch rejects, each next to the valid edge on its other side: the 'invalid' part."""
    x = T((1, 2, 4, 5))
    extra = {"align_corners": False} if align_corners else {}
    return [
        Case(NAMES, (x,), {"size": 8, "scale_factor": 2, **extra}, seed=seed, label="invalid: both size and scale_factor", invalid=True),
        Case(NAMES, (x,), {**extra}, seed=seed, label="invalid: neither size nor scale_factor", invalid=True),
        Case(NAMES, (T((2, 4, 5)),), {"scale_factor": 2, **extra}, seed=seed, label="invalid: a 3-D input", invalid=True),
        Case(NAMES, (x,), {"scale_factor": 0, **extra}, seed=seed, label="invalid: scale_factor 0", invalid=True),
        Case(NAMES, (x,), {"scale_factor": -1.5, **extra}, seed=seed, label="invalid: a negative scale_factor", invalid=True),
        Case(NAMES, (x,), {"size": 0, **extra}, seed=seed, label="invalid: size 0", invalid=True),
        # each end of the valid range on both sides: an output of one pixel is fine, of none is not
        Case(NAMES, (x,), {"size": 1, **extra}, seed=seed, label="edge: size 1, the smallest output"),
        Case(NAMES, (x,), {"scale_factor": 0.25, **extra}, seed=seed, label="edge: scale_factor 0.25 gives 1x1"),
        Case(NAMES, (x,), {"scale_factor": 0.2, **extra}, seed=seed,
             label="invalid: scale_factor 0.2 gives a height of 0", invalid=True),
    ]


# --------------------------------------------------------------------------
# Mistake models (the library's own; learners' solutions may not call them)


def source_scale(in_size: int, out_size: int, factor, use_factor: bool = True) -> float:
    """torch's scale: 1/scale_factor when a factor is given, else in/out."""
    if factor is not None and use_factor:
        return 1.0 / float(factor)
    return in_size / out_size


def gather2d(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``x`` with its rows, then its columns, picked by index: the gather behind the resize models."""
    return x[..., rows, :][..., :, cols]


def nearest_model(x, size=None, scale_factor=None, *, index="floor32", use_factor=True, special=("same", "double")):
    """Nearest neighbour with a chosen index rule: 'floor32' (torch), 'floor64', 'round', 'half' (exact).

    ``special`` lists torch's two shortcuts: an axis that keeps its size is copied
    ("same"), and an axis exactly twice as long takes src = dst // 2 ("double"),
    whatever the scale factor says.
    """
    require_4d(x)
    H, W = x.shape[-2:]
    (oh, ow), (fh, fw) = out_sizes(H, W, size, scale_factor), _pair(scale_factor)

    def idx(i, o, f):
        if o == i and "same" in special:
            return torch.arange(o, device=x.device)
        if o == 2 * i and "double" in special:
            return torch.arange(o, device=x.device) // 2
        s = source_scale(i, o, f, use_factor)
        d64 = torch.arange(o, dtype=torch.float64)
        if index == "floor32":
            src = torch.floor(torch.arange(o, dtype=torch.float32) * torch.tensor(s, dtype=torch.float32))
        elif index == "floor64":
            src = torch.floor(d64 * s)
        elif index == "round":
            src = torch.round(d64 * s)
        else:  # 'half': pixel centres, i.e. mode="nearest-exact"
            src = torch.floor((d64 + 0.5) * s)
        return src.long().clamp(0, i - 1).to(x.device)

    return gather2d(x, idx(H, oh, fh), idx(W, ow, fw))


def bilinear_model(x, size=None, scale_factor=None, align_corners=False, *, half_pixel=True, clamp=True,
                   use_factor=True):
    """Separable bilinear interpolation with switches for the classic mistakes."""
    require_4d(x)
    H, W = x.shape[-2:]
    (oh, ow), (fh, fw) = out_sizes(H, W, size, scale_factor), _pair(scale_factor)

    def weights(i, o, f):
        d = torch.arange(o, dtype=torch.float64)
        if o == i:  # an axis that keeps its size is copied unchanged
            idx = torch.arange(o, device=x.device)
            return idx, idx, torch.zeros(o, dtype=x.dtype, device=x.device)
        if align_corners:
            src = d * ((i - 1) / (o - 1) if o > 1 else 0.0)
        else:
            s = source_scale(i, o, f, use_factor)
            src = (d + 0.5) * s - 0.5 if half_pixel else d * s
            if clamp:
                src = src.clamp(min=0)
        i0 = src.long() if not clamp else torch.floor(src).long()  # unclamped: int() truncates toward 0
        i0 = i0.clamp(0, i - 1)
        i1 = (i0 + 1).clamp(max=i - 1)
        lam = (src - i0).to(x.dtype).to(x.device)
        return i0.to(x.device), i1.to(x.device), lam

    r0, r1, lr = weights(H, oh, fh)
    c0, c1, lc = weights(W, ow, fw)
    top = gather2d(x, r0, c0) * (1 - lc) + gather2d(x, r0, c1) * lc
    bottom = gather2d(x, r1, c0) * (1 - lc) + gather2d(x, r1, c1) * lc
    return top * (1 - lr)[:, None] + bottom * lr[:, None]


def resize_exercise(name: str, reference, rule, mistakes) -> Exercise:
    """The exercise of a resizing chapter (2 and 4): its reference, rule and mistake models, this module's
    shape hint and failure features."""
    return Exercise(name=name, reference=reference, rules=(rule,),
                    rule_text="no interpolation, upsampling or convolution operator was called",
                    mistakes=mistakes, shape_hint=shape_hint, features=features)


RESIZE_PARTS = ("integer", "any", "invalid")


def resize_cases(hand_worked: list[Case], part: str, suite: str, seed: int | None,
                 align_corners: bool = False) -> list[Case]:
    """Cases for one graded part: 'integer' factors, 'any' size or factor, or 'invalid' arguments."""
    if part == "all":
        return [c for p in RESIZE_PARTS for c in resize_cases(hand_worked, p, suite, seed, align_corners)]
    if part not in RESIZE_PARTS:
        raise ValueError(f"part must be one of {RESIZE_PARTS + ('all',)}, got {part!r}")
    base = seed if seed is not None else (0 if suite == "visible" else 1)
    if part == "invalid":
        return invalid_cases(base, align_corners)
    rng = random.Random(f"{part}-{base}")
    count = {"visible": 10, "hidden": 30}[suite]
    if part == "integer":
        cases = list(hand_worked[:1])
        k = 0
        while len(cases) < count:
            k += 1
            n, c, h, w = rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 6), rng.randint(1, 6)
            a = rng.randint(1, 4)
            kw = {"scale_factor": a if rng.random() < 0.6 else (a, rng.randint(1, 4))}
            if align_corners:
                kw["align_corners"] = rng.random() < 0.5
            dtypes = (torch.float64, torch.float32) if k % 3 == 0 else (torch.float64,)
            cases.append(Case(NAMES, (T((n, c, h, w)),), kw, seed=base * 1000 + k, dtypes=dtypes))
        return cases
    cases = list(hand_worked[1:]) + random_cases(rng, count, base, align_corners)
    if suite == "hidden":  # the corners of the input space
        edge = [({"size": 1}, (1, 1, 4, 5)), ({"size": (1, 7)}, (1, 2, 3, 3)), ({"scale_factor": 5}, (1, 1, 1, 1)),
                ({"scale_factor": 1.25}, (1, 1, 3, 3)), ({"scale_factor": (1.25, 2)}, (1, 1, 3, 2)),
                ({"size": (9, 2)}, (2, 1, 1, 4))]
        for i, (kw, shape) in enumerate(edge):
            for ac in ((False, True) if align_corners else (None,)):
                extra = {} if ac is None else {"align_corners": ac}
                cases.append(Case(NAMES, (T(shape),), {**kw, **extra}, seed=base * 7 + i, label="edge case"))
    return cases
