"""Forbid named torch operators while a learner's function runs.

The guard is a ``TorchDispatchMode``: every aten operator that reaches the
dispatcher passes through it, whichever Python spelling called it
(``F.conv2d``, ``torch.conv2d``, ``nn.Conv2d``, ``torch.ops.aten.convolution``,
``Tensor.__matmul__`` ...). A text search of the learner's source would miss
all but the first.

A violation is both raised (so the learner's function stops) and recorded (so
a learner who wraps the forbidden call in ``try/except`` is still caught).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field

from torch.utils._python_dispatch import TorchDispatchMode


@dataclass(frozen=True)
class Rule:
    """Operators an exercise may not call, with the reason shown to learners.

    ``pattern`` is a regular expression matched against the aten operator
    name (``aten.convolution.default`` -> ``convolution``).
    """

    pattern: str
    reason: str
    _compiled: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def matches(self, op_name: str) -> bool:
        """True when this rule forbids the aten operator ``op_name``."""
        return self._compiled.search(op_name) is not None


#: Every convolution-family aten operator: conv1d/2d/3d, convolution,
#: convolution_backward, cudnn/mkldnn/miopen/slow/thnn/nnpack variants,
#: transposed and depthwise convolutions.
CONVOLUTION_OPS = r"conv(olution|_?[123]d|_transpose|_depthwise|_tbc)"

#: Every aten resampling operator: upsample_* / _upsample_*, grid_sampler, and the convolutions (nearest
#: neighbour is a transposed convolution with a box kernel): what the resizing exercises may not call.
RESIZE_OPS = rf"upsample|interpolate|grid_sampler|affine_grid|{CONVOLUTION_OPS}"


#: The name a rule matches for ``aten.convolution`` called with ``transposed=True``.
TRANSPOSED_CONVOLUTION = "convolution[transposed]"


def op_name(func) -> str:
    """``aten.convolution.default`` -> ``convolution``."""
    name = getattr(func, "__name__", None) or str(func)
    overload = getattr(func, "_overloadpacket", None)
    if overload is not None:
        name = getattr(overload, "__name__", name)
    return name.split(".")[0]


class ForbiddenOpError(RuntimeError):
    """Raised inside the learner's function when it calls a forbidden operator."""


class OpGuard(TorchDispatchMode):
    """Record every aten operator; stop at the first one a rule forbids."""

    @classmethod
    def _should_skip_dynamo(cls):
        # torch would wrap __torch_dispatch__ to keep its compiler out, importing the whole compiler
        # stack (~1.2 s) on first use; this mode never runs under torch.compile, so skip that.
        return False

    def __init__(self, rules: tuple[Rule, ...]):
        super().__init__()
        self.rules = tuple(rules)
        self.violations: list[tuple[str, Rule]] = []
        self._verdicts: dict[object, Rule | None] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        try:
            verdict = self._verdicts[func]
        except KeyError:
            name = op_name(func)
            verdict = next((r for r in self.rules if r.matches(name)), None)
            self._verdicts[func] = verdict
        name = None
        if verdict is None and len(args) > 6 and args[6] is True and op_name(func) == "convolution":
            # F.conv_transpose2d and nn.ConvTranspose2d reach the dispatcher as aten.convolution with
            # transposed=True: named apart, so that a rule can forbid them and allow ordinary convolutions.
            name = TRANSPOSED_CONVOLUTION
            verdict = next((r for r in self.rules if r.matches(name)), None)
        if verdict is not None:
            name = name or op_name(func)
            self.violations.append((name, verdict))
            raise ForbiddenOpError(f"aten.{name} is not allowed here: {verdict.reason}")
        return func(*args, **(kwargs or {}))


LIBRARY_RULE = Rule(r"^autograder\.", "write the exercise yourself: the course's checking library "
                    "(its references and mistake models) is not for calling from your solution")


class LibraryGuard:
    """Record calls from the learner's function into this package.

    The checking library holds reference-like code (the models of known
    mistakes); a solution that imports and calls it would pass without being
    written. A profile hook sees every Python-level call while the learner's
    function runs; the guard's own dispatch hook is exempt.
    """

    _PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
    _EXEMPT = os.path.abspath(__file__)

    def __init__(self, allow=()):
        self.violations: list[tuple[str, Rule]] = []
        self._previous = None
        self._allow = {getattr(f, "__code__", f) for f in allow}  # our own callbacks handed to torch

    def _hook(self, frame, event, arg):
        if event == "call":
            filename = frame.f_code.co_filename
            caller = frame.f_back.f_code.co_filename if frame.f_back is not None else ""
            # Flag a call *into* this package from outside it (the learner's code, or a library the
            # learner handed our function to); the checks' own calls between our modules are fine.
            if (filename.startswith(self._PACKAGE) and filename != self._EXEMPT
                    and not caller.startswith(self._PACKAGE) and frame.f_code not in self._allow
                    and not self.violations):
                module = os.path.splitext(os.path.basename(filename))[0]
                self.violations.append((f"autograder.{module}.{frame.f_code.co_name}", LIBRARY_RULE))

    def __enter__(self):
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        return False


_LIBRARY_PATHS = ("site-packages", "<frozen")


def _library(filename: str) -> bool:
    """True for a frame of torch, of this package or of another installed library (not the learner's code)."""
    import torch

    skip = (os.path.dirname(torch.__file__), os.path.dirname(__file__), *_LIBRARY_PATHS)
    return any(s in (filename or "") for s in skip)


def learner_frames(exc: BaseException) -> list:
    """The traceback frames of ``exc`` that are the learner's code (not torch's, not this package's), outermost
    first, as :class:`traceback.FrameSummary` objects."""
    import traceback

    return [fr for fr in traceback.extract_tb(exc.__traceback__) if not _library(fr.filename)]


def learner_frame(exc: BaseException) -> str:
    """The innermost traceback frame that is the learner's code (not torch's, not this package's), as a phrase."""
    frames = learner_frames(exc)
    if not frames:
        return ""
    fr = frames[-1]
    code = (fr.line or "").strip()
    return f" (at line {fr.lineno} of your code: `{code}`)" if code else f" (at line {fr.lineno} of your code)"


def stub_chain(exc: BaseException) -> list[str]:
    """For a ``NotImplementedError`` that a learner's stub raised (``raise NotImplementedError()`` in their own
    code, not torch lacking an operator), the names of the learner's functions from the one called to the one
    whose stub raised it (``["conv_transpose2d", "conv_transpose2d_output_size"]``); [] for any other error."""
    import traceback

    if not isinstance(exc, NotImplementedError):
        return []
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or _library(frames[-1].filename):
        return []  # raised inside torch (an operator without a kernel for this device, say): not a stub
    line, message = (frames[-1].line or "").strip(), str(exc)
    if not (line.startswith("raise NotImplementedError")
            or (not line and "aten" not in message and "meta" not in message.lower())):
        return []  # torch's C++ raised it from the learner's call (no source line says `raise`)
    names: list[str] = []
    for fr in learner_frames(exc):
        if fr.name not in names and fr.name != "<lambda>":
            names.append(fr.name)
    return names or [frames[-1].name]


def not_implemented_message(fn_name: str, chain) -> str:
    """What a check says when the learner's code still raises NotImplementedError: that ``fn_name`` itself is not
    written yet, or which of the learner's helpers it calls still is (``chain`` from :func:`stub_chain`)."""
    raiser = chain[-1] if chain else fn_name
    if raiser == fn_name or raiser == "<module>":
        return f"{fn_name} is not implemented yet (it raises NotImplementedError)."
    via = [n for n in chain[1:-1] if n != fn_name]
    through = f" (through {', '.join(via)})" if via else ""
    return (f"{fn_name} calls {raiser}{through}, which still raises NotImplementedError: "
            f"write {raiser} first, then run this check again.")


def error_record(e: BaseException, whole: bool = False) -> dict:
    """A learner's exception as plain data, the one shape every check and the grader use: its type, its classes'
    names, its message (the first line, or ``whole``: all of it), the learner's frame it came from and, for a
    learner's stub, ``stub``: the names from :func:`stub_chain` (empty otherwise)."""
    message = str(e)[:500] if whole else (str(e).splitlines() or [""])[0][:300]
    return {"type": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__], "message": message,
            "frame": learner_frame(e), "stub": stub_chain(e)}


def run_guarded(call, rules, allow=()):
    """Run learner code under ``rules`` and the library guard.

    Returns ``(result, error, violations)``: the error as :func:`error_record` (None if it returned), the
    violations as ``[operator, reason]`` pairs (a forbidden operator stops the call and is recorded).
    """
    guard, library = OpGuard(tuple(rules)), LibraryGuard(allow)
    result, error = None, None
    try:
        with guard, library:
            result = call()
    except ForbiddenOpError:
        pass
    except Exception as e:  # noqa: BLE001 - learner errors are data here
        error = error_record(e)
    violations = [[op, rule.reason] for op, rule in (library.violations or guard.violations)]
    return result, error, violations


def warm_up() -> None:
    """Pay the guard's one-time set-up cost now (torch imports its compiler stack, ~1-2 s,
    the first time a dispatch mode runs an operator), so that the learner's first check
    call is as fast as the later ones. Chapter check modules call this on import."""
    import torch

    with OpGuard(()):
        torch.zeros(1) + 1
