"""Output-size arithmetic, and naming the term a wrong size got wrong.

The diagnosis evaluates a list of *plausible wrong formulas* for one axis and
reports the first whose value equals the learner's. Each variant is a
mistake we have seen learners make; the list is shared by every chapter that
asks for an output size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


def pair(value, name: str = "argument") -> tuple[int, int]:
    """Expand an int-or-pair argument the way ``torch.nn.functional`` does."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def as_pair(value) -> tuple:
    """An int-or-pair argument (or a float, or None) as a 2-tuple, values as given and unchecked: for reading
    a case's arguments, valid or not (:func:`pair` checks and converts, as torch does)."""
    if value is None:
        return (None, None)
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def conv_out(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """floor((i + 2p - d(k-1) - 1) / s) + 1 for one axis."""
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


def conv_formula_text(i: int, k: int, s: int, p: int, d: int) -> str:
    """The convolution output-size formula of one axis with its numbers filled in, and its value (for messages)."""
    return f"floor(({i} + 2·{p} − {d}·({k}−1) − 1) / {s}) + 1 = {conv_out(i, k, s, p, d)}"


@dataclass(frozen=True)
class Variant:
    """A plausible wrong size formula: the mistake it stands for, and the formula that makes it."""
    name: str
    formula: Callable[..., int]


# Each takes (i, k, s, p, d) of one axis; the first match names the mistake.
CONV_SIZE_VARIANTS = (
    Variant("padding added on one side only (i + p instead of i + 2p)",
            lambda i, k, s, p, d: (i + p - d * (k - 1) - 1) // s + 1),
    Variant("padding ignored", lambda i, k, s, p, d: (i - d * (k - 1) - 1) // s + 1),
    Variant("dilation ignored (the dilated kernel spans d·(k−1)+1 pixels, not k)",
            lambda i, k, s, p, d: (i + 2 * p - (k - 1) - 1) // s + 1),
    Variant("stride ignored", lambda i, k, s, p, d: i + 2 * p - d * (k - 1)),
    Variant("rounded up instead of down (ceil instead of floor)",
            lambda i, k, s, p, d: math.ceil((i + 2 * p - d * (k - 1) - 1) / s) + 1),
    Variant("the −1 and +1 terms are missing: (i + 2p − d(k−1)) / s",
            lambda i, k, s, p, d: (i + 2 * p - d * (k - 1)) // s),
    Variant("the +1 at the end is missing",
            lambda i, k, s, p, d: (i + 2 * p - d * (k - 1) - 1) // s),
)


def diagnose_conv_axis(axis: str, got: int, i: int, k: int, s: int, p: int, d: int,
                       other: tuple[int, int, int, int, int] | None = None) -> str:
    """One sentence on a wrong conv output size along ``axis``.

    ``other`` is the (i, k, s, p, d) of the other axis, to recognise swapped
    height/width arguments.
    """
    expected = conv_out(i, k, s, p, d)
    line = (f"{axis}: yours is {got}, expected {conv_formula_text(i, k, s, p, d)}"
            f" (input {i}, kernel {k}, stride {s}, padding {p}, dilation {d})")
    for v in CONV_SIZE_VARIANTS:
        try:
            if v.formula(i, k, s, p, d) == got != expected:
                return f"{line}; {got} is what you get with {v.name}."
        except ZeroDivisionError:
            continue
    if other is not None:
        oi, ok, os_, op, od = other
        if (ok, os_, op, od) != (k, s, p, d) and conv_out(i, ok, os_, op, od) == got:
            return f"{line}; {got} is what you get using the other axis' kernel/stride/padding/dilation (height and width swapped?)."
    return line + "."


# --------------------------------------------------------------------------
# Transposed convolution: the size formula run backwards


def convT_out(i: int, k: int, s: int = 1, p: int = 0, op: int = 0, d: int = 1) -> int:
    """(i − 1)s − 2p + d(k − 1) + output_padding + 1 for one axis."""
    return (i - 1) * s - 2 * p + d * (k - 1) + op + 1


def convT_formula_text(i, k, s, p, op, d) -> str:
    """The transposed-convolution output-size formula of one axis with its numbers and its value (for messages)."""
    return f"({i}−1)·{s} − 2·{p} + {d}·({k}−1) + {op} + 1 = {convT_out(i, k, s, p, op, d)}"


CONVT_SIZE_VARIANTS = (
    Variant("padding added instead of cropped (+2p instead of −2p)",
            lambda i, k, s, p, op, d: (i - 1) * s + 2 * p + d * (k - 1) + op + 1),
    Variant("padding cropped from one side only (−p instead of −2p)",
            lambda i, k, s, p, op, d: (i - 1) * s - p + d * (k - 1) + op + 1),
    Variant("padding ignored", lambda i, k, s, p, op, d: (i - 1) * s + d * (k - 1) + op + 1),
    Variant("output_padding ignored", lambda i, k, s, p, op, d: (i - 1) * s - 2 * p + d * (k - 1) + 1),
    Variant("dilation ignored (the dilated kernel spans d·(k−1)+1 pixels)",
            lambda i, k, s, p, op, d: (i - 1) * s - 2 * p + (k - 1) + op + 1),
    Variant("i·s instead of (i−1)·s: the last input pixel's stamp starts at (i−1)·s",
            lambda i, k, s, p, op, d: i * s - 2 * p + d * (k - 1) + op + 1),
    Variant("stride ignored", lambda i, k, s, p, op, d: (i - 1) - 2 * p + d * (k - 1) + op + 1),
    Variant("the ordinary convolution's formula — a transposed convolution runs it backwards",
            lambda i, k, s, p, op, d: (i + 2 * p - d * (k - 1) - 1) // s + 1),
)


def diagnose_convT_axis(axis: str, got: int, i, k, s, p, op, d, other=None) -> str:
    """One sentence on a wrong transposed-convolution output size along ``axis``."""
    expected = convT_out(i, k, s, p, op, d)
    line = (f"{axis}: yours is {got}, expected {convT_formula_text(i, k, s, p, op, d)} (input {i}, kernel {k}, "
            f"stride {s}, padding {p}, output_padding {op}, dilation {d})")
    for v in CONVT_SIZE_VARIANTS:
        try:
            if v.formula(i, k, s, p, op, d) == got != expected:
                return f"{line}; {got} is what you get with {v.name}."
        except ZeroDivisionError:
            continue
    if other is not None and convT_out(i, *other) == got:
        return f"{line}; {got} is what you get using the other axis' arguments (height and width swapped?)."
    return line + "."
