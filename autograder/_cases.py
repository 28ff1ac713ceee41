"""What a check is made of: the exercise, its cases, the tensors they draw, the tolerances and devices.

    Exercise  what is checked: reference, rules, tolerances, known mistakes
    Case      one call: tensor shapes (or explicit values), hyper-parameters, seed; ``invalid`` when torch rejects it
    T         a tensor argument, drawn from the case's seed when the case runs

The engine that runs and judges them is :mod:`autograder._core`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ._rules import Rule

# --------------------------------------------------------------------------
# Tolerances: stated once, quoted in every message.

TOLERANCES = {
    torch.float64: (1e-7, 1e-9),  # (rtol, atol): only summation order may differ
    torch.float32: (1e-4, 1e-4),
    torch.int64: (0, 0),  # indices are exact
}

DTYPE_NAMES = {torch.float64: "float64", torch.float32: "float32", torch.int64: "int64"}


#: On CUDA, float32 matrix and convolution kernels may use TF32 (10-bit mantissa): torch's own
#: reference is then only good to about 1e-3, so the float32 tolerance is wider there.
CUDA_TOLERANCES = {torch.float32: (2e-3, 2e-3)}


def tolerance(dtype, device="cpu") -> tuple[float, float]:
    """(rtol, atol) for comparing ``dtype`` results on ``device`` (float32 is wider on CUDA)."""
    if str(device).startswith("cuda") and dtype in CUDA_TOLERANCES:
        return CUDA_TOLERANCES[dtype]
    return TOLERANCES.get(dtype, TOLERANCES[torch.float32])


def tolerance_text(dtype, device="cpu") -> str:
    """The tolerance of ``dtype`` on ``device`` as messages quote it."""
    rtol, atol = tolerance(dtype, device)
    where = " on CUDA, TF32 allowed" if str(device).startswith("cuda") and dtype in CUDA_TOLERANCES else ""
    return f"{DTYPE_NAMES.get(dtype, dtype)}{where}: rtol={rtol:g}, atol={atol:g}"


def available_devices() -> list[str]:
    """CPU always; CUDA when torch sees a device (``COURSE_DEVICES`` can narrow it)."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    wanted = os.environ.get("COURSE_DEVICES")
    if wanted:
        devices = [d for d in devices if d in wanted.split(",")]
    return devices


CPU_ONLY_NOTICE = "CUDA not available — checked on CPU only."


# --------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class T:
    """A tensor argument: random values of ``shape``, or explicit ``values``.

    ``kind="randn"`` draws normal values (asymmetric, so flips and transposes
    show); ``kind="ties"`` draws small integers, so that equal values are common
    (max pooling must break ties the way torch does).
    """

    shape: tuple[int, ...]
    values: Any = None
    kind: str = "randn"

    def make(self, gen: torch.Generator) -> torch.Tensor:
        """This tensor's values in float64: the explicit ones, or drawn from ``gen``."""
        if self.values is not None:
            return torch.tensor(self.values, dtype=torch.float64).reshape(self.shape)
        if self.kind == "ties":
            return torch.randint(0, 3, self.shape, generator=gen).to(torch.float64)
        return torch.randn(self.shape, generator=gen, dtype=torch.float64)

    def repro(self) -> str:
        """The Python expression that rebuilds this tensor, for a case's repro line."""
        dims = ", ".join(map(str, self.shape))
        if self.values is not None:
            return f"torch.tensor({self.values!r}, dtype=DTYPE).reshape({dims})"
        if self.kind == "ties":
            return f"torch.randint(0, 3, ({dims},), generator=g).to(DTYPE)"
        return f"torch.randn({dims}, generator=g, dtype=DTYPE)"


class Derived:
    """A placeholder argument that ``Case.prepare`` fills in; shown by name in messages."""

    def __init__(self, name: str, note: str = ""):
        self.name, self.note = name, note

    def __repr__(self) -> str:
        return self.name


@dataclass
class Case:
    """One call of the learner's function: ``fn(*args, **kwargs)``.

    ``names`` names the positional arguments (for messages and the repro line).
    Tensor arguments are ``T`` objects, drawn in order from a generator seeded
    with ``seed``, so a failure can be reproduced with one line.
    """

    names: tuple[str, ...]
    args: tuple
    kwargs: dict = field(default_factory=dict)
    seed: int = 0
    label: str = ""
    dtypes: tuple = (torch.float64,)
    #: arguments torch rejects: the learner's function must raise too (an ``invalid arguments`` case)
    invalid: bool = False
    #: (args, kwargs) -> (args, kwargs), run after the tensors are drawn: for
    #: arguments derived from others (max_unpool2d's indices come from a pooling).
    prepare: Callable | None = None
    #: the repro's set-up line for ``prepare`` (uses the drawn tensors' names).
    prepare_repro: str = ""

    def materialise(self, device: str = "cpu", dtype=torch.float64):
        """The case's (args, kwargs) on ``device`` in ``dtype``: tensors drawn from the seed, then ``prepare`` run."""
        gen = torch.Generator().manual_seed(self.seed)

        def conv(v):
            if isinstance(v, T):
                return v.make(gen).to(device=device, dtype=dtype)
            return v

        args = tuple(conv(a) for a in self.args)
        kwargs = {k: conv(v) for k, v in self.kwargs.items()}
        if self.prepare is not None:
            args, kwargs = self.prepare(args, kwargs)
        return args, kwargs

    def describe(self) -> str:
        """The case in one line for messages: its label, hyper-parameters and tensor shapes."""
        tensors, params = [], []
        for name, v in list(zip(self.names, self.args)) + list(self.kwargs.items()):
            if isinstance(v, T):
                tensors.append(f"{name} {tuple(v.shape)}")
            elif isinstance(v, Derived):
                tensors.append(f"{name} {v.note}".strip())
            elif v is None:
                tensors.append(f"{name}=None")
            else:
                params.append(f"{name}={v!r}")
        parts = [p for p in (", ".join(params), ", ".join(tensors)) if p]
        text = " — ".join(parts)
        return f"{self.label}: {text}" if self.label else text

    def repro(self, fn_name: str, dtype=torch.float64, device: str = "cpu") -> str:
        """One line of Python that rebuilds the case's arguments from its seed and calls ``fn_name`` on them."""
        lines = [f"DTYPE = torch.{DTYPE_NAMES[dtype]}"]
        if any(isinstance(v, T) and v.values is None for v in (*self.args, *self.kwargs.values())):
            lines.append(f"g = torch.Generator().manual_seed({self.seed})")
        call = []
        for name, v in zip(self.names, self.args):
            if isinstance(v, T):
                dev = "" if device == "cpu" else f".to('{device}')"
                lines.append(f"{name} = {v.repro()}{dev}")
                call.append(name)
            else:
                call.append(repr(v))
        for name, v in self.kwargs.items():
            if isinstance(v, T):
                lines.append(f"{name} = {v.repro()}")
                call.append(f"{name}={name}")
            else:
                call.append(f"{name}={v!r}")
        if self.prepare_repro:
            lines.append(self.prepare_repro)
        lines.append(f"{fn_name}({', '.join(call)})")
        return "; ".join(lines)


def case_generator(parts: tuple[str, ...], salt: str = ""):
    """Decorate ``gen(part, suite, base, rng) -> cases`` into ``cases(part="all", suite="visible", seed=None)``.

    Handles what every chapter's generator shares: ``part="all"`` is every part in order; an unknown
    part is an error; ``seed=None`` means 0 for the visible suite and 1 for the hidden one; the random
    generator is seeded by the salt, the part and that seed.
    """
    import functools
    import random

    def decorate(gen):
        @functools.wraps(gen)
        def cases(part: str = "all", suite: str = "visible", seed: int | None = None) -> list:
            if part == "all" and "all" not in parts:  # a one-part exercise names its part "all"
                return [c for p in parts for c in cases(p, suite, seed)]
            if part not in parts:
                raise ValueError(f"part must be one of {parts + ('all',)}, got {part!r}")
            if suite not in ("visible", "hidden"):
                raise ValueError(f"suite must be 'visible' or 'hidden', got {suite!r}")
            base = seed if seed is not None else (0 if suite == "visible" else 1)
            return gen(part, suite, base, random.Random(f"{salt}{part}-{base}"))
        cases.parts = parts  # what a CaseCheck declared with it must name as its parts
        return cases
    return decorate


# --------------------------------------------------------------------------
# Exercises


#: A mistake's id: lower-case words of letters and digits joined by single hyphens ("kernel-flipped").
MISTAKE_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Mistake:
    """A known wrong variant: ``fn`` computes what that mistake would return.

    ``name``  the sentence a learner reads on the "likely mistake" line; it may be reworded at any time
    ``id``    a short kebab-case slug ("kernel-flipped"), required (pass it by keyword). It is stable:
              rewording ``name`` must never change it, because class reports count mistakes by id, not by
              message text. The same conceptual mistake in different chapters may share an id; within one
              Exercise the ids are unique.
    """

    name: str
    fn: Callable
    id: str = ""

    def __post_init__(self):
        if not self.id or not isinstance(self.id, str) or not MISTAKE_ID.fullmatch(self.id):
            raise ValueError(f"Mistake {self.name!r} needs an id: a kebab-case slug such as 'kernel-flipped' "
                             f"(lower-case letters and digits joined by single hyphens); got {self.id!r}")


@dataclass
class Exercise:
    """What a check compares a learner's function against.

    ``reference``      torch's implementation, called with the same arguments
    ``rules``          operators the learner's function may not call
    ``mistakes``       known wrong variants, to name a likely mistake (their ids unique within the exercise)
    ``shape_hint``     (args, kwargs, expected_shape, got_shape) -> sentence or None
    ``features``       case -> {feature: bool}, to find what failing cases share
    ``returns``        "tensor" or "size" (an int, or a tuple of ints)
    ``output_names``   for a function returning a tuple of tensors, their names
    ``errors``         exception types accepted where torch rejects the arguments
    ``error_hint``     (args, kwargs, exception) -> sentence or None, when the learner's code raises
    """

    name: str
    reference: Callable
    rules: tuple[Rule, ...] = ()
    rule_text: str = ""
    mistakes: tuple[Mistake, ...] = ()
    shape_hint: Callable | None = None
    size_hint: Callable | None = None
    features: Callable[[Case], dict[str, bool]] | None = None
    returns: str = "tensor"
    output_names: tuple[str, ...] = ()
    error_hint: Callable | None = None
    errors: tuple[type, ...] = (ValueError, RuntimeError)

    def __post_init__(self):
        ids = [m.id for m in self.mistakes]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"exercise {self.name!r}: two of its mistakes share the id {repeated[0]!r}; "
                             "ids must be unique within an exercise")
