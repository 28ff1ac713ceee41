"""The signature contract: a learner's kernel is a drop-in for torch's."""

from __future__ import annotations

import inspect

from ._core import CheckFailure


def check_signature(fn, name: str, expected: str) -> None:
    """Raise CheckFailure unless ``fn``'s parameters are ``expected`` in order.

    ``expected`` is written as in a ``def``: ``"input, weight, bias=None, stride=1"``.
    """
    __tracebackhide__ = True  # noqa: F841
    if not callable(fn):
        raise CheckFailure(f"{name} should be a function; got a {type(fn).__name__} ({fn!r:.60}).")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and C functions: nothing to compare
    want = []
    for part in expected.split(","):
        pname, _, default = part.strip().partition("=")
        want.append((pname.strip(), default.strip() or None))
    have = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        have.append((p.name, default))
    if [n for n, _ in have] != [n for n, _ in want] or any(
            w is not None and h != w for (_, h), (_, w) in zip(have, want)):
        raise CheckFailure(
            f"{name} must keep the signature {name}({expected}) so it is a drop-in for torch's; "
            f"yours is {name}{sig}.")
