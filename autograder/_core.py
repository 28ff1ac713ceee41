"""The check engine shared by every exercise.

A check runs a learner's function and torch's reference on the same inputs,
case by case, on every available device and on the dtypes each case asks for,
and turns the first difference into a sentence a learner can act on.

    Exercise  what is checked: reference, rules, tolerances, known mistakes (:mod:`autograder._cases`)
    Case      one call: tensor shapes (or explicit values), hyper-parameters, seed (:mod:`autograder._cases`)
    run()     the loop; returns a Report
    check()   run() + print a summary, or raise CheckFailure with the report

Learner-facing text never contains hidden test code: a hidden suite is just a
different seed and more cases drawn by the same generators.
"""

from __future__ import annotations

import numbers
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from ._rules import (ForbiddenOpError, LibraryGuard, OpGuard, Rule, error_record, learner_frame,
                     not_implemented_message, stub_chain)

# --------------------------------------------------------------------------
# Errors a check raises (learner-facing)


class _LearnerFacing:
    """IPython renders these without a stack of library frames: the message is the feedback."""

    def _render_traceback_(self):
        lines = str(self).splitlines() or [""]
        red, reset = "\x1b[0;31m", "\x1b[0m"
        return [f"{red}{type(self).__name__}{reset}: {lines[0]}", *lines[1:]]


class CheckFailure(_LearnerFacing, AssertionError):
    """A check found a difference; the message explains it to the learner.

    ``mistake`` is the id of the known mistake the message names on its "likely mistake" line
    (:attr:`autograder._cases.Mistake.id`), or None: what a class report counts.
    """

    def __init__(self, *args, mistake: str | None = None):
        super().__init__(*args)
        self.mistake = mistake


class RuleViolation(CheckFailure):
    """The learner's function called an operator the exercise forbids."""


class NotAttempted(_LearnerFacing, NotImplementedError):
    """The learner's function still raises NotImplementedError."""


class HelperNotImplemented(CheckFailure):
    """The learner's function is written, but a helper of theirs that it calls still raises NotImplementedError:
    a failure that names the helper (``make check`` lists it as failed, not as not attempted)."""

    MISTAKE_ID = "helper-not-implemented"

    def __init__(self, *args):
        super().__init__(*args, mistake=self.MISTAKE_ID)


# What a check is made of lives in _cases; chapters import it from here, with the engine.
from ._cases import (CPU_ONLY_NOTICE, CUDA_TOLERANCES, DTYPE_NAMES, TOLERANCES, Case, Derived,  # noqa: E402,F401
                     Exercise, Mistake, T, available_devices, case_generator, tolerance, tolerance_text)


# --------------------------------------------------------------------------
# Running a learner's function


@dataclass
class Outcome:
    """What one call gave: its value or error, the rules it broke, its time, and whether it changed an input."""
    value: Any = None
    error: Any = None  # the exception, or an ErrorRecord when the call ran in another process
    violations: list = field(default_factory=list)
    seconds: float = 0.0
    modified: bool = False  # the learner's function changed an input tensor in place


@dataclass
class ErrorRecord:
    """An exception raised in the grading sandbox, as plain data (no code crosses back)."""

    type_name: str
    mro_names: tuple
    message: str
    frame: str = ""
    stub: tuple = ()  # the learner's stub that raised it (:func:`autograder._rules.stub_chain`), else empty

    def __str__(self) -> str:
        return self.message


def error_data(exc: BaseException) -> dict:
    """A learner's exception as plain data for the grader: :func:`autograder._rules.error_record`, whole message."""
    return error_record(exc, whole=True)


def _error_name(err) -> str:
    return err.type_name if isinstance(err, ErrorRecord) else type(err).__name__


def _is_error(err, types) -> bool:
    if isinstance(err, ErrorRecord):
        return bool(set(err.mro_names) & {t.__name__ for t in types})
    return isinstance(err, tuple(types))


def _learner_frame(exc) -> str:
    """The learner's frame an exception came from, as a phrase (recorded by the worker for an ErrorRecord)."""
    return exc.frame if isinstance(exc, ErrorRecord) else learner_frame(exc)


def call_learner(ex: Exercise, fn: Callable, args, kwargs) -> Outcome:
    """Call the learner's function under the exercise's rules and record the outcome (not attempted: NotAttempted)."""
    guard, library = OpGuard(ex.rules), LibraryGuard()
    out = Outcome()
    start = time.perf_counter()
    try:
        with guard, library:
            out.value = fn(*args, **kwargs)
    except NotImplementedError as e:
        if isinstance(e, NotAttempted):
            raise
        chain = stub_chain(e)
        if chain:
            raise stub_error(getattr(fn, "__name__", ex.name), chain, ex.name) from None
        out.error = e  # torch's own NotImplementedError (an operator this device lacks): an error like any other
    except ForbiddenOpError as e:
        out.error = e
    except Exception as e:  # noqa: BLE001 - every learner error becomes a sentence
        out.error = e
    out.seconds = time.perf_counter() - start
    out.violations = list(library.violations) + list(guard.violations)
    return out


def stub_error(fn_name: str, chain, exercise: str | None = None) -> CheckFailure | NotAttempted:
    """What a learner's stub raises in a check: NotAttempted when ``fn_name`` itself is the stub, else
    :class:`HelperNotImplemented` naming the helper (``chain`` from :func:`autograder._rules.stub_chain`)."""
    chain = list(chain)
    own = not chain or chain[-1] in (fn_name, exercise) or len(chain) == 1
    if own:
        return NotAttempted(not_implemented_message(exercise or fn_name, ()))
    return HelperNotImplemented(not_implemented_message(fn_name, chain))


def call_reference(ex: Exercise, args, kwargs) -> Outcome:
    """Call the exercise's reference on the same arguments; an error it raises is recorded, not raised."""
    out = Outcome()
    try:
        out.value = ex.reference(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - torch rejecting the arguments is a result
        out.error = e
    return out


def _clone(v):
    return v.clone() if isinstance(v, torch.Tensor) else v


def _fmt(x: float) -> str:
    return f"{x:.6g}"


# --------------------------------------------------------------------------
# Judging one result


def _type_problem(name: str, got) -> str | None:
    if got is None:
        return f"{name} returned None — is a `return` statement missing?"
    if isinstance(got, dict) and "__type__" in got:  # an object the grading sandbox would not send back
        return f"{name} returned a {got['__type__']}; return a plain torch.Tensor."
    if type(got) is torch.Tensor:
        return None
    try:
        import numpy as np
        if isinstance(got, np.ndarray):
            return (f"{name} returned a numpy array; return a torch.Tensor "
                    "(stay in torch so the result keeps the input's dtype, device and gradients).")
    except ImportError:  # pragma: no cover
        pass
    if isinstance(got, torch.Tensor):
        return (f"{name} returned an object of type {type(got).__name__}, a subclass of torch.Tensor; "
                "return a plain torch.Tensor.")
    if isinstance(got, (tuple, list)):
        return f"{name} returned a {type(got).__name__} of {len(got)} items; return a single torch.Tensor."
    return f"{name} returned a {type(got).__name__}; return a torch.Tensor."


def _small_grid(t: torch.Tensor) -> str | None:
    """The last two dims of the first plane, if small enough to print."""
    plane = t.detach().reshape(-1, *t.shape[-2:])[0] if t.dim() >= 2 else t.detach()
    if plane.numel() > 36:
        return None
    rows = plane.reshape(-1, plane.shape[-1]) if plane.dim() else plane.reshape(1, 1)
    return "\n".join("      [" + ", ".join(f"{float(v):7.3f}" for v in row) + "]" for row in rows)


def _value_problem(got: torch.Tensor, expected: torch.Tensor, dtype) -> str | None:
    device = expected.device
    rtol, atol = tolerance(dtype, device)
    g = got.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    if torch.isnan(g).any() and not torch.isnan(e).any():
        where = tuple(int(i) for i in torch.nonzero(torch.isnan(g))[0])
        return f"your output contains NaN (first at index {list(where)})."
    diff = (g - e).abs()
    bad = ~(diff <= atol + rtol * e.abs()) & ~(torch.isnan(g) & torch.isnan(e))
    if not bad.any():
        return None
    worst = int(torch.argmax(torch.where(bad, diff, torch.zeros_like(diff))))
    idx = [int(i) for i in torch.unravel_index(torch.tensor(worst), g.shape)]
    frac = float(bad.double().mean())
    text = (f"values differ at {int(bad.sum())} of {bad.numel()} elements ({frac:.0%}); "
            f"the worst is at index {idx}: yours {_fmt(float(g[tuple(idx)]))}, "
            f"expected {_fmt(float(e[tuple(idx)]))} (tolerance {tolerance_text(dtype, device)}).")
    mine, ref = _small_grid(g), _small_grid(e)
    if mine and ref:
        text += f"\n    yours (first channel):\n{mine}\n    expected:\n{ref}"
    return text


def _size_type_problem(name: str, got, want) -> str | None:
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if got is None:
        return f"{name} returned None — is a `return` statement missing?"
    if isinstance(want, tuple):
        if isinstance(got, list):
            return f"{name} returned a list; return a tuple (like torch.Size)."
        if not isinstance(got, tuple) or len(got) != len(want):
            return f"{name} returned {got!r}; expected a tuple of {len(want)} ints."
        for v in got:
            if not is_int(v):
                return f"{name} returned {got!r}, which contains a {type(v).__name__}; return whole numbers (int) — use // for floor division."
        return None
    if isinstance(got, float):
        return f"{name} returned {got!r}, a float; return an int — use // for floor division."
    if not is_int(got):
        return f"{name} returned a {type(got).__name__} ({got!r}); return an int."
    return None


@dataclass
class Failure:
    """A case that failed on one device and dtype: the problem, the mistake that explains it (its name, the text a
    learner reads, and its stable id), whether a rule broke."""
    case: Case
    device: str
    dtype: Any
    problem: str
    mistake: str | None = None
    rule: bool = False
    mistake_id: str | None = None
    #: the extra run on ``meta``-device inputs (:func:`device_check`), not one of the exercise's cases
    device_check: bool = False


def probe(ex: Exercise, fn: Callable, case: Case, device: str, dtype) -> Outcome:
    """Call the learner's function on one case, guarded; note whether it changed its inputs."""
    args, kwargs = case.materialise(device, dtype)
    return probe_call(ex, fn, args, kwargs)


def probe_call(ex: Exercise, fn: Callable, args, kwargs) -> Outcome:
    """Call the learner's function on given arguments, guarded; note whether it changed its inputs.
    (The grading worker calls this on the arguments the grader sent.)"""
    before = [a.clone() for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    mine = call_learner(ex, fn, args, kwargs)
    after = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    mine.modified = any(a.shape != b.shape or not torch.equal(a, b) for b, a in zip(before, after))
    return mine


def prepare(ex: Exercise, case: Case, device: str, dtype) -> tuple:
    """A case's arguments and torch's outcome on them: what judging any learner's result on it needs. The grader
    computes these once per grading run and shares them among the students."""
    args, kwargs = case.materialise(device, dtype)
    return args, kwargs, call_reference(ex, tuple(map(_clone, args)), {k: _clone(v) for k, v in kwargs.items()})


def judge(ex: Exercise, fn_name: str, case: Case, device: str, dtype, fn: Callable | None = None,
          outcome: Outcome | None = None, prepared: tuple | None = None) -> Failure | None:
    """Compare one learner result with torch's: call ``fn`` here, or judge an ``outcome`` computed elsewhere
    (the grading sandbox), so that the verdict never depends on the learner's process."""
    mine = outcome if outcome is not None else probe(ex, fn, case, device, dtype)
    args, kwargs, ref = prepared if prepared is not None else prepare(ex, case, device, dtype)

    def fail(problem, mistake: Mistake | None = None, rule=False):
        return Failure(case, device, dtype, problem, mistake.name if mistake else None, rule,
                       mistake.id if mistake else None)

    if mine.violations:
        op, rule = mine.violations[0]
        reason = rule.reason if isinstance(rule, Rule) else str(rule)
        if op.startswith("autograder."):
            return fail(f"{fn_name} called `{op}` from the checking library: {reason}.", rule=True)
        return fail(f"{fn_name} called torch's `{op}` operator, which this exercise forbids: {reason}", rule=True)
    if mine.modified:
        return fail(f"{fn_name} modified one of its input tensors in place; work on new tensors instead.")
    if ref.error is not None:
        if mine.error is None:
            return fail(f"torch rejects these arguments ({type(ref.error).__name__}: {_first_line(ref.error)}), "
                        f"but {fn_name} returned a result; check the arguments and raise a ValueError.")
        if _is_error(mine.error, ex.errors + (type(ref.error),)):
            return None
        return fail(f"torch rejects these arguments with {type(ref.error).__name__}; {fn_name} raised "
                    f"{_error_name(mine.error)}: {_first_line(mine.error)}{_learner_frame(mine.error)} — "
                    f"raise a ValueError (or RuntimeError) with a clear message instead.")
    if mine.error is not None:
        hint = ex.error_hint(args, kwargs, mine.error) if ex.error_hint else None
        return fail(f"{fn_name} raised {_error_name(mine.error)}: {_first_line(mine.error)}{_learner_frame(mine.error)}."
                    + (f"\n  hint: {hint}" if hint else ""))
    if ex.returns == "size":
        return _judge_size(ex, fn_name, args, kwargs, mine.value, ref.value, fail)
    if ex.output_names:
        return _judge_tuple(ex, fn_name, args, kwargs, mine.value, ref.value, device, dtype, fail)
    return _judge_tensor(ex, fn_name, args, kwargs, mine.value, ref.value, device, dtype, fail)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _judge_size(ex, fn_name, args, kwargs, got, want, fail):
    problem = _size_type_problem(fn_name, got, want)
    if problem:
        return fail(problem)
    got_t = tuple(int(v) for v in got) if isinstance(got, tuple) else int(got)
    if got_t == want:
        return None
    detail = ex.size_hint(args, kwargs, want, got_t) if ex.size_hint else None
    return fail(f"{fn_name} returned {got_t!r}; expected {want!r}." + (f"\n  {detail}" if detail else ""))


def _judge_tuple(ex, fn_name, args, kwargs, got, expected, device, dtype, fail):
    names = ex.output_names
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        what = f"a {type(got).__name__}" + (f" of {len(got)} items" if isinstance(got, (tuple, list)) else "")
        return fail(f"{fn_name} should return a tuple ({', '.join(names)}), like torch; it returned {what}.")
    mistake = _match_mistake(ex, args, kwargs, got)
    for name, g, e in zip(names, got, expected):
        failure = _judge_tensor(ex, fn_name, args, kwargs, g, e, device, dtype, fail, label=f"`{name}`",
                                mistake=mistake, shape_hint=(name == names[0]))
        if failure:
            return failure
    return None


def _judge_tensor(ex, fn_name, args, kwargs, got, expected, device, dtype, fail, label="the output",
                  mistake=False, shape_hint=True):
    # The order is fixed, in every part: the type, then the shape, then the dtype and device, then the values;
    # so a wrong dtype is always named as such, whatever else is off.
    problem = _type_problem(fn_name if label == "the output" else f"{fn_name}'s {label}", got)
    if problem:
        return fail(problem)
    if mistake is False:
        mistake = _match_mistake(ex, args, kwargs, got)
    if tuple(got.shape) != tuple(expected.shape):
        text = f"{label} has shape {tuple(got.shape)}; expected {tuple(expected.shape)}."
        hint = (ex.shape_hint(args, kwargs, tuple(expected.shape), tuple(got.shape))
                if ex.shape_hint and shape_hint else None)
        if hint:
            text += "\n  " + hint.replace("\n", "\n  ")
        return fail(text, mistake)
    if got.dtype != expected.dtype:
        why = (", the input's dtype (create new tensors with dtype=input.dtype)"
               if expected.is_floating_point() else "")
        return fail(f"{label} has dtype {got.dtype}; expected {expected.dtype}{why}.")
    if got.device != expected.device:
        return fail(device_problem(label, got.device, expected.device), WRONG_DEVICE)
    if expected.device.type == "meta":
        return None  # no data on meta: the shape, dtype and device are all there is to check
    problem = _value_problem(got, expected, dtype if expected.is_floating_point() else expected.dtype)
    if problem:
        if mistake is None and _float32_only(got, expected, dtype):
            mistake = FLOAT32_PRECISION
        return fail(problem if label == "the output" else f"{label}: {problem}", mistake)
    return None


def device_problem(label: str, got, expected) -> str:
    """The sentence for an output on the wrong device (``got``, ``expected``: devices)."""
    return (f"{label} is on {torch.device(got).type} but the inputs are on {torch.device(expected).type}: "
            "create new tensors with device=input.device (or torch.zeros_like / input.new_zeros).")


def _float32_only(got: torch.Tensor, expected: torch.Tensor, dtype) -> bool:
    """True when a float64 result misses float64's tolerance but meets float32's: computed in float32 somewhere."""
    if dtype != torch.float64 or not expected.is_floating_point():
        return False
    return _value_problem(got, expected, torch.float32) is None


#: Values that agree with torch only to float32 precision in a float64 case: named by the engine, whatever the
#: exercise (its ``fn`` models nothing: the engine recognises it by the tolerances).
FLOAT32_PRECISION = Mistake("your result agrees with torch only to float32 precision: is something computed in "
                            "float32? (a buffer made with torch.zeros(...) or torch.tensor(...) without "
                            "dtype=input.dtype, or a .float() on the way)", lambda *a, **k: None,
                            id="float32-accumulation")

#: An output on another device than the inputs: named by the engine (the ``meta`` device case finds it on a
#: machine without a GPU).
WRONG_DEVICE = Mistake("the output is created on the default device (the CPU), not on the input's device: create "
                       "new tensors with device=input.device (or torch.zeros_like / input.new_zeros)",
                       lambda *a, **k: None, id="output-on-wrong-device")

#: The mistakes the engine itself names, in every exercise.
ENGINE_MISTAKES = (FLOAT32_PRECISION, WRONG_DEVICE)


def _same(got, wrong) -> bool:
    if isinstance(got, (tuple, list)):
        return (isinstance(wrong, (tuple, list)) and len(wrong) == len(got)
                and all(_same(g, w) for g, w in zip(got, wrong)))
    if type(got) is not torch.Tensor or not isinstance(wrong, torch.Tensor) or wrong.shape != got.shape:
        return False
    if not got.is_floating_point():
        return bool(torch.equal(got.cpu(), wrong.to(got.dtype).cpu()))
    return _value_problem(got, wrong.to(got.dtype), got.dtype) is None


def _match_mistake(ex: Exercise, args, kwargs, got) -> Mistake | None:
    """The first of the exercise's known mistakes whose model returns what the learner's function returned."""
    if any(isinstance(a, torch.Tensor) and a.device.type == META for a in (*args, *kwargs.values())):
        return None  # no values on meta to compare
    for m in ex.mistakes:
        try:
            wrong = m.fn(*map(_clone, args), **{k: _clone(v) for k, v in kwargs.items()})
        except Exception:  # noqa: BLE001 - the variant does not apply to these arguments
            continue
        if _same(got, wrong):
            return m
    return None


# --------------------------------------------------------------------------
# Reports


@dataclass
class Report:
    """The result of running an exercise's cases: counts, failures, and the features of passing and failing cases."""
    name: str
    cases: int = 0
    calls: int = 0
    failures: list[Failure] = field(default_factory=list)
    passed_features: list[dict] = field(default_factory=list)
    failed_features: list[dict] = field(default_factory=list)
    devices: tuple = ("cpu",)
    dtypes: tuple = ()
    seconds: float = 0.0
    #: sentences printed under a pass, never failures (e.g. the kernel cannot run on the ``meta`` device)
    notes: list[str] = field(default_factory=list)
    #: whether the output's device was checked on ``meta``-device inputs (:func:`device_check`)
    device_checked: bool = False

    @property
    def ok(self) -> bool:
        """True when no case failed."""
        return not self.failures

    def pattern(self) -> str | None:
        """Features shared by every failing case and by no passing one (a feature another shared one names as
        a clause is left out: "padding > 0 with output_padding > 0" says "padding > 0" already)."""
        # Cases torch rejects say nothing about how a valid result is computed.
        passed = [p for p in self.passed_features if not p.get("invalid arguments")]
        failed = [f for f, fail in zip(self.failed_features, self.failures) if not fail.device_check]
        if not failed or not passed:
            return None
        keys = set().union(*failed, *passed)
        shared = [k for k in sorted(keys)
                  if all(f.get(k) for f in failed) and not any(p.get(k) for p in passed)]
        shared = without_implied(shared)
        if not shared:
            return None
        n, it = len(passed), "it" if len(shared) == 1 else "any of these"
        tail = (f"the 1 valid case without {it} passes." if n == 1
                else f"the {n} valid cases without {it} pass.")
        return f"every failing case has {' and '.join(shared)}; {tail}"

    def summary(self) -> str:
        """The one-line success message: how many cases pass, in which dtypes, on which devices."""
        where = ", ".join(self.devices)
        dts = ", ".join(DTYPE_NAMES[d] for d in self.dtypes)
        if self.device_checked:
            where += "; the output stays on the input's device, checked on meta"
        if self.cases == 1:
            return f"{self.name}: its 1 case passes ({dts} on {where})."
        return f"{self.name}: all {self.cases} cases pass ({dts} on {where})."

    def _clearest(self) -> tuple[Failure, Failure | None, int]:
        """What :meth:`message` shows: the failure it explains; a failure of the mistake its "likely mistake"
        line names (None: no such line); how many failures that mistake explains. (Needs a failure.)"""
        # Show the clearest failure: the first one explained by the mistake that explains most
        # failures, if that is at least half of them; else simply the first failure.
        counts: dict[str, int] = {}
        for f in self.failures:
            if f.mistake:
                counts[f.mistake] = counts.get(f.mistake, 0) + 1
        top = max(counts, key=counts.get) if counts else None
        first = self.failures[0]
        if top and 2 * counts[top] >= len(self.failures):
            first = next(f for f in self.failures if f.mistake == top)
        # The top mistake is named when it explains the failure shown, or at least two failures.
        if top and (first.mistake == top or counts[top] >= 2):
            return first, next(f for f in self.failures if f.mistake == top), counts[top]
        return first, None, 0

    def named_mistake(self) -> str | None:
        """The id of the mistake :meth:`message` names on its "likely mistake" line, else None."""
        if not self.failures:
            return None
        _, named, _ = self._clearest()
        return named.mistake_id if named else None

    def message(self, fn_name: str, reproduce: bool = True) -> str:
        """The clearest failure, explained. ``reproduce=False`` (grading feedback) leaves out the line that
        rebuilds the case from its seed: a hidden case's seed would let a class regenerate the hidden cases."""
        first, named, count = self._clearest()
        failed = len(self.failed_features)
        which = "the first" if first is self.failures[0] else "the clearest"
        if first.rule:
            head = f"{fn_name} broke the exercise's rule (in the case below):"
        elif first.device_check:
            head = (f"{fn_name} gives the right values, but its output does not stay on the input's device "
                    "(checked with inputs on the `meta` device, which hold no data):")
        elif failed == 1:
            head = f"{fn_name} failed 1 of {plural(self.cases, 'case')}:"
        else:
            head = f"{fn_name} failed {failed} of {self.cases} cases; {which}:"
        lines = [head,
                 f"  case: {first.case.describe()} — {DTYPE_NAMES.get(first.dtype, first.dtype)} on {first.device}",
                 f"  problem: {first.problem}"]
        if named is not None and first.mistake == named.mistake:
            lines.append(f"  likely mistake: {first.mistake}.")
        elif named is not None:
            lines.append(f"  likely mistake (what {count} of the {len(self.failures)} failing outputs "
                         f"match): {named.mistake}.")
        pattern = None if first.rule else self.pattern()
        if pattern:
            lines.append(f"  pattern: {pattern}")
        if reproduce:
            lines.append(f"  reproduce: {first.case.repro(fn_name, first.dtype, first.device)}")
        return "\n".join(lines)


def plural(n: int, noun: str) -> str:
    """``plural(1, "case")`` -> "1 case"; ``plural(3, "valid case")`` -> "3 valid cases"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


_CLAUSE = re.compile(r"\s+(?:with|and)\s+")


def without_implied(features: list[str]) -> list[str]:
    """The features, less each one that another names as one of its clauses (split at "with" / "and"):
    ["output_padding > 0", "padding > 0", "padding > 0 with output_padding > 0"] -> the last one only."""
    clauses = {f: set(_CLAUSE.split(f)) for f in features}
    return [f for f in features if not any(f != g and f in clauses[g] for g in features)]


def run(ex: Exercise, fn: Callable | None, cases: Iterable[Case], *, devices=None, fn_name=None,
        stop_after: int | None = None, outcomes: dict | None = None, prepared: dict | None = None) -> Report:
    """Check ``fn`` on every case, device and dtype; collect failures.

    With ``outcomes`` (``{(case index, device, dtype name): Outcome}`` from the grading sandbox), nothing
    is called: the learner's results are judged as they are; a missing one counts as a failure.
    """
    fn_name = fn_name or getattr(fn, "__name__", ex.name)
    if outcomes is None and not callable(fn):
        raise CheckFailure(f"{ex.name} should be a function; got a {type(fn).__name__}.")
    devices = tuple(devices or available_devices())
    cases = list(cases)
    report = Report(ex.name, devices=devices)
    dtypes_seen = []
    start = time.perf_counter()
    for index, case in enumerate(cases):
        report.cases += 1
        failure = None
        for device in devices:
            for dtype in case.dtypes:
                if dtype not in dtypes_seen:
                    dtypes_seen.append(dtype)
                report.calls += 1
                if outcomes is None:
                    failure = judge(ex, fn_name, case, device, dtype, fn)
                else:
                    got = outcomes.get((index, device, DTYPE_NAMES[dtype]))
                    ready = prepared.get((index, device, DTYPE_NAMES[dtype])) if prepared else None
                    failure = (judge(ex, fn_name, case, device, dtype, outcome=got, prepared=ready)
                               if got is not None else
                               Failure(case, device, dtype, "no result came back for this case (the submission "
                                       "stopped, timed out or crashed before it)"))
                if failure:
                    break
            if failure:
                break
        feats = ex.features(case) if ex.features else {}
        if failure:
            report.failures.append(failure)
            report.failed_features.append(feats)
            if failure.rule or (stop_after and len(report.failures) >= stop_after):
                break
        else:
            report.passed_features.append(feats)
    if report.ok:
        device_check(ex, fn, fn_name, cases, report, outcomes, prepared)
    report.dtypes = tuple(dtypes_seen)
    report.seconds = time.perf_counter() - start
    return report


# --------------------------------------------------------------------------
# The device check: one more run, on inputs on the ``meta`` device
#
# A kernel that makes its output with torch.zeros(...) and no device= passes every case on a machine without a
# GPU: its output lands on the CPU, where the inputs are. Tensors on ``meta`` have a shape, a dtype and a device
# but no data, and torch runs almost every operator on them: so one case with inputs on ``meta`` shows, on any
# machine, whether the output follows its inputs' device. Only the output's type, shape, dtype and device are
# judged (there are no values). A kernel that cannot run on ``meta`` at all (it calls .item(), goes through numpy,
# or uses an operator without a meta kernel) gets a note, never a failure.

META = "meta"


def device_case(cases) -> tuple[int, Case] | None:
    """The case the device check runs on ``meta`` inputs: the first valid case with a tensor argument."""
    for index, case in enumerate(cases):
        if not case.invalid and any(isinstance(v, T) for v in (*case.args, *case.kwargs.values())):
            return index, case
    return None


def device_check(ex: Exercise, fn, fn_name: str, cases: list, report: Report, outcomes: dict | None = None,
                 prepared: dict | None = None) -> None:
    """Run the device check (see above) on ``report``: a failure of its own kind, or a note. With ``outcomes``
    (grading), the worker's meta run is judged as it came back (none came back: nothing is checked)."""
    found = device_case(cases) if ex.returns == "tensor" else None
    if found is None:
        return
    index, case = found
    dtype = case.dtypes[0]
    key = (index, META, DTYPE_NAMES[dtype])
    try:
        ready = (prepared or {}).get(key) or prepare(ex, case, META, dtype)
    except Exception:  # noqa: BLE001 - the case's set-up needs data (e.g. indices computed from values)
        return
    args, kwargs, ref = ready
    if ref.error is not None:
        return  # torch itself cannot run this case on meta: nothing to compare with
    if outcomes is None:
        mine = call_learner(ex, fn, args, kwargs)
    else:
        mine = outcomes.get(key)
        if mine is None:
            return
    if mine.error is not None or mine.violations:
        why = f"{_error_name(mine.error)}: {_first_line(mine.error)}" if mine.error is not None else "a guarded call"
        report.notes.append(f"note: {fn_name} cannot run on inputs on the `meta` device ({why}), so whether its "
                            "output stays on the input's device was not checked here; a machine with CUDA "
                            "(or Colab) checks it on the GPU.")
        return
    report.device_checked = True
    failure = judge(ex, fn_name, case, META, dtype, outcome=mine, prepared=ready)
    if failure:
        failure.device_check = True
        report.failures.append(failure)
        report.failed_features.append({})


def meta_inputs(args, kwargs) -> tuple[tuple, dict]:
    """The same arguments with every tensor moved to the ``meta`` device (the grading worker's device case)."""
    def conv(v):
        return v.to(META) if isinstance(v, torch.Tensor) else v

    return tuple(conv(a) for a in args), {k: conv(v) for k, v in kwargs.items()}


def describe_output(value):
    """A result on ``meta`` as plain data (a meta tensor cannot be copied out): each tensor's shape, dtype and
    device type; anything else as :func:`autograder.grading.protocol.plain` would send it."""
    if type(value) is torch.Tensor:
        return {"__meta_tensor__": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."),
                "device": value.device.type}
    if type(value) in (tuple, list) and len(value) <= 8:
        items = [describe_output(v) for v in value]
        return tuple(items) if type(value) is tuple else items
    from .grading.protocol import plain

    return plain(value)


def undescribe_output(value):
    """Rebuild :func:`describe_output`'s data as tensors with no data (on ``meta``; any other device on the CPU,
    which is all the grading machine needs to tell it is not ``meta``)."""
    if isinstance(value, dict) and "__meta_tensor__" in value:
        device = META if value["device"] == META else "cpu"
        dtype = getattr(torch, str(value["dtype"]), None)
        if not isinstance(dtype, torch.dtype):
            return {"__type__": f"Tensor of {value['dtype']}"}
        return torch.empty(tuple(value["__meta_tensor__"]), dtype=dtype, device=device)
    if isinstance(value, (tuple, list)):
        items = [undescribe_output(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def policy_check(obj, name: str) -> None:
    """Tell a learner now what grading would do later: code the grader's static source policy flags (private
    torch modules, reflection, processes ...) scores 0 there and goes to a manual grade."""
    __tracebackhide__ = True  # noqa: F841
    from ._policy import review_function

    findings = review_function(obj)
    if findings:
        lines = "\n".join(f"  line {f.line} of {name}: `{f.construct}` — {f.why}" for f in findings[:3])
        raise RuleViolation(f"{name} passes these cases, but when graded it would be flagged for a manual review "
                            f"and score 0: the grader reviews the source, and this code could switch the "
                            f"course's checks off.\n{lines}\nWrite it with torch's public operations only.")


def check(ex: Exercise, fn: Callable, cases: Iterable[Case], *, quiet: bool = False, devices=None) -> None:
    """Run a check; print a one-line pass summary, or raise CheckFailure. Returns None, so that a passing test
    cell shows only its ✔ lines (:func:`check_report` gives the report, for tests and tools)."""
    __tracebackhide__ = True  # noqa: F841 - pytest and IPython hide this frame
    check_report(ex, fn, cases, quiet=quiet, devices=devices)


def check_report(ex: Exercise, fn: Callable, cases: Iterable[Case], *, quiet: bool = False, devices=None) -> Report:
    """:func:`check`, returning the report of a pass (what the project's tests and tools read)."""
    __tracebackhide__ = True  # noqa: F841
    report = run(ex, fn, cases, devices=devices)
    if not report.ok:
        first = report.failures[0]
        exc_type = RuleViolation if first.rule else CheckFailure
        raise exc_type(report.message(getattr(fn, "__name__", ex.name)), mistake=report.named_mistake()) from None
    policy_check(fn, getattr(fn, "__name__", ex.name))
    if not quiet:
        print("✔ " + report.summary())
        if "cuda" not in report.devices:
            print("  " + CPU_ONLY_NOTICE)
        if ex.rule_text:
            print("  rule respected: " + ex.rule_text)
        for note in report.notes:
            print("  " + note)
    return report
