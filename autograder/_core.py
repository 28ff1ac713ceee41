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
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from ._rules import ForbiddenOpError, LibraryGuard, OpGuard, Rule, error_record, learner_frame

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
        raise NotAttempted(f"{ex.name} is not implemented yet (it raises NotImplementedError).") from None
    except ForbiddenOpError as e:
        out.error = e
    except Exception as e:  # noqa: BLE001 - every learner error becomes a sentence
        out.error = e
    out.seconds = time.perf_counter() - start
    out.violations = list(library.violations) + list(guard.violations)
    return out


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
    problem = _type_problem(fn_name if label == "the output" else f"{fn_name}'s {label}", got)
    if problem:
        return fail(problem)
    if got.dtype != expected.dtype:
        why = (", the input's dtype (create new tensors with dtype=input.dtype)"
               if expected.is_floating_point() else "")
        return fail(f"{label} has dtype {got.dtype}; expected {expected.dtype}{why}.")
    if got.device != expected.device:
        return fail(f"{label} is on {got.device}; expected {expected.device}, the input's device "
                    "(create new tensors with device=input.device).")
    if mistake is False:
        mistake = _match_mistake(ex, args, kwargs, got)
    if tuple(got.shape) != tuple(expected.shape):
        text = f"{label} has shape {tuple(got.shape)}; expected {tuple(expected.shape)}."
        hint = (ex.shape_hint(args, kwargs, tuple(expected.shape), tuple(got.shape))
                if ex.shape_hint and shape_hint else None)
        if hint:
            text += "\n  " + hint.replace("\n", "\n  ")
        return fail(text, mistake)
    problem = _value_problem(got, expected, dtype if expected.is_floating_point() else expected.dtype)
    if problem:
        return fail(problem if label == "the output" else f"{label}: {problem}", mistake)
    return None


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

    @property
    def ok(self) -> bool:
        """True when no case failed."""
        return not self.failures

    def pattern(self) -> str | None:
        """Features shared by every failing case and by no passing one."""
        # Cases torch rejects say nothing about how a valid result is computed.
        passed = [p for p in self.passed_features if not p.get("invalid arguments")]
        if not self.failures or not passed:
            return None
        keys = set().union(*self.failed_features, *passed)
        shared = [k for k in sorted(keys)
                  if all(f.get(k) for f in self.failed_features) and not any(p.get(k) for p in passed)]
        if not shared:
            return None
        return (f"every failing case has {' and '.join(shared)}; "
                f"the {len(passed)} valid cases without it pass.")

    def summary(self) -> str:
        """The one-line success message: how many cases pass, in which dtypes, on which devices."""
        where = ", ".join(self.devices)
        dts = ", ".join(DTYPE_NAMES[d] for d in self.dtypes)
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
        lines = [f"{fn_name} failed {failed} of {self.cases} cases; {which}:",
                 f"  case: {first.case.describe()} — {DTYPE_NAMES.get(first.dtype, first.dtype)} on {first.device}",
                 f"  problem: {first.problem}"]
        if named is not None and first.mistake == named.mistake:
            lines.append(f"  likely mistake: {first.mistake}.")
        elif named is not None:
            lines.append(f"  likely mistake (what {count} of the {len(self.failures)} failing outputs "
                         f"match): {named.mistake}.")
        pattern = self.pattern()
        if pattern:
            lines.append(f"  pattern: {pattern}")
        if reproduce:
            lines.append(f"  reproduce: {first.case.repro(fn_name, first.dtype, first.device)}")
        return "\n".join(lines)


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
    report.dtypes = tuple(dtypes_seen)
    report.seconds = time.perf_counter() - start
    return report


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


def check(ex: Exercise, fn: Callable, cases: Iterable[Case], *, quiet: bool = False, devices=None) -> Report:
    """Run a check; print a one-line pass summary, or raise CheckFailure."""
    __tracebackhide__ = True  # noqa: F841 - pytest and IPython hide this frame
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
    return report
