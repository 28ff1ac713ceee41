"""The static source policy: what a submitted notebook's code may contain.

It runs in the grader, before any student code, and reads each code cell's
*source* with :mod:`ast`. Anything that runs in the student's process can be
undone by the student's code — a three-line ``getattr`` trick switches the
course's dispatch guard off — so the grader does not trust the guard alone: a
part whose code breaks this policy scores 0 and is marked for a manual grade.

The policy is an allowlist:

1. imports: every dotted component must be an allowed module (the maths and
   plotting stack, ``from autograder.chNN import <public names>``);
2. attribute chains rooted at a module name are resolved against the real,
   trusted modules, step by step: a module reached on the way must be allowed,
   a private step or a gateway object (``torch.ops``, ``torch.utils``, ...) is
   a finding, and so is assigning to or deleting a library's attribute;
3. private attributes only on ``self``/``cls``/``super()`` or the notebook's
   own classes; reflective dunders and frame attributes never;
4. no reflection builtins (``eval``, ``exec``, ``vars``, ...); ``getattr`` and
   friends only as direct calls with a public string literal;
5. no processes, threads or signals (the import allowlist, and module chains
   such as ``torch.os``), no IPython magics but ``%timeit``, ``%time`` and
   ``%matplotlib`` (whose code is reviewed too);
6. a module object may only be named in a chain or bound by a plain
   assignment: passed, stored, returned or displayed, the policy could not
   follow it. On objects it cannot resolve (a call's result, a parameter, an
   exception's ``.obj``), attribute names such as ``.os`` or ``.ops`` are
   findings; so are definitions that hand control to the dispatcher or to raw
   memory (``__torch_function__``, ``__array_interface__``).

A cell the policy cannot parse cannot run either (the parser is IPython's:
top-level ``await`` included); a ``from __future__`` import that changes
parsing is itself a finding. Values (outputs, timings) are not this module's
business: the grader recomputes them outside the student's process.

Everything ordinary stays allowed: classes, ``super().__init__()``, ``self._x``,
dunder methods of the learner's own classes, comprehensions, lambdas, timing,
plotting.
"""

from __future__ import annotations

import abc
import ast
import enum
import functools
import importlib
import importlib.util
import inspect
import re
import sys
import textwrap
import types
from dataclasses import dataclass

__all__ = ["Finding", "review_source", "review_cells", "review_function", "definitions", "affected",
           "ALLOWED_MODULES", "GATEWAYS"]


@dataclass(frozen=True)
class Finding:
    """One construct the policy does not allow."""

    cell: int            # index of the cell in the notebook
    line: int            # 1-based line within the cell's (IPython-transformed) source
    construct: str       # short text of the offending code
    why: str             # a learner-readable reason
    scope: str | None    # the top-level def/class whose body it sits in; None: runs at a cell's top level

    def describe(self) -> str:
        """The finding in one line: cell, line, the construct and why it is not allowed."""
        return f"cell {self.cell}, line {self.line}: `{self.construct}` — {self.why}"


# ---------------------------------------------------------------------------
# Tables

ALLOWED_MODULES = frozenset({
    "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.nn.parameter", "torch.autograd",
    "torch.linalg", "torch.fft", "torch.special",
    # honest code the book itself uses: device checks / synchronisation, and an optimiser for training
    "torch.cuda", "torch.optim",
    "numpy", "numpy.linalg", "numpy.random", "numpy.fft",
    "math", "cmath", "itertools", "functools", "collections", "collections.abc", "typing", "dataclasses",
    "time", "timeit", "random", "statistics", "fractions", "decimal", "numbers", "copy", "string", "enum",
    "abc", "tqdm", "tqdm.auto",
}) | frozenset("matplotlib" + ("." + name if name else "") for name in (
    # the plotting modules; not matplotlib's backends, testing helpers (which start subprocesses),
    # sphinx extensions (which run code from strings), TeX/dvi machinery or cbook
    "", "pyplot", "animation", "artist", "axes", "axis", "bezier", "category", "cm", "collections", "colorbar",
    "colorizer", "colors", "container", "contour", "dates", "figure", "font_manager", "gridspec", "hatch",
    "image", "inset", "layout_engine", "legend", "legend_handler", "lines", "markers", "mlab", "offsetbox",
    "patches", "path", "patheffects", "projections", "quiver", "scale", "spines", "stackplot", "streamplot",
    "style", "table", "text", "textpath", "ticker", "transforms", "tri", "units", "widgets"))

# Objects that open a way past the course's rules or into code the grader cannot review.
GATEWAYS = {
    "torch.ops": "is the raw operator registry (it calls aten operators past the course's rules)",
    "torch.library": "defines and overrides operators",
    "torch.utils": "holds torch internals (dispatch modes, C++ extensions)",
    "torch.jit": "is a compiler (TorchScript)",
    "torch.fx": "traces and rewrites code",
    "torch.overrides": "is the __torch_function__ machinery",
    "torch.hub": "downloads and runs code",
    "torch.classes": "holds C++ classes",
    "torch.compile": "is a compiler",
    "torch.compiler": "is a compiler",
    "torch.load": "unpickles, which can run code",
    "torch.get_device_module": "hands back modules by name",
    "torch.nn.Module.compile": "is a compiler",
    "numpy.load": "unpickles, which can run code",
    "string.Formatter": "looks up attributes by names computed at run time",
    "typing.get_type_hints": "evaluates strings as code",
    "timeit.main": "runs code given as strings",
    "dataclasses.make_dataclass": "builds a class from a namespace computed at run time",
    "matplotlib.use": "imports a backend module by name",
    "matplotlib.rc_file": "reads settings that can name programs and modules",
    "matplotlib.pyplot.switch_backend": "imports a backend module by name",
}

_AUTOGRADER_IMPORT = re.compile(r"autograder\.ch\d\d")

# Builtins that run code or reach into namespaces (rule 4).
_REFLECTIVE_BUILTINS = {
    "eval": "runs a string as code", "exec": "runs a string as code", "compile": "builds code from a string",
    "globals": "reaches the notebook's namespace", "locals": "reaches a namespace",
    "vars": "reaches an object's namespace", "breakpoint": "starts a debugger",
    "memoryview": "views raw memory", "help": "imports modules by name",
    "exit": "stops the kernel", "quit": "stops the kernel",
}
_ATTR_BUILTINS = {"getattr": (2, 3), "hasattr": (2, 2), "setattr": (3, 3), "delattr": (2, 2)}

# Dunder names a learner's code may read (and module-level names it may use).
_ALLOWED_DUNDERS = frozenset("""
__init__ __new__ __del__ __name__ __qualname__ __doc__ __module__ __class__ __call__ __repr__ __str__
__format__ __hash__ __bool__ __len__ __length_hint__ __iter__ __next__ __reversed__ __contains__ __getitem__
__setitem__ __delitem__ __missing__ __enter__ __exit__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __add__
__radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__ __rmul__ __imul__ __matmul__ __rmatmul__ __imatmul__
__truediv__ __rtruediv__ __itruediv__ __floordiv__ __rfloordiv__ __ifloordiv__ __mod__ __rmod__ __imod__
__divmod__ __rdivmod__ __pow__ __rpow__ __ipow__ __lshift__ __rlshift__ __ilshift__ __rshift__ __rrshift__
__irshift__ __and__ __rand__ __iand__ __or__ __ror__ __ior__ __xor__ __rxor__ __ixor__ __neg__ __pos__
__abs__ __invert__ __complex__ __int__ __float__ __index__ __round__ __trunc__ __floor__ __ceil__ __copy__
__deepcopy__ __array__ __version__ __all__ __slots__ __annotations__ __post_init__ __sizeof__ __dir__
""".split())
_ALLOWED_DUNDER_NAMES = frozenset({"__name__", "__doc__", "__class__", "__debug__"})

# Names whose *definition* (a method, a class attribute, a dict key) hands control to machinery that
# runs outside the reviewed code: the dispatcher, or raw memory.
_DEFINE_DENY = {
    "__torch_dispatch__": "dispatcher internals: a __torch_dispatch__ override sees and replaces operators",
    "__torch_function__": "dispatcher internals: a __torch_function__ override sees and replaces operators",
    "__array_interface__": "raw memory: __array_interface__ makes arrays from any address",
    "__array_struct__": "raw memory: __array_struct__ makes arrays from any address",
    "__cuda_array_interface__": "raw memory: __cuda_array_interface__ makes tensors from any address",
    "__dlpack__": "raw memory: __dlpack__ makes tensors from any address",
    "__buffer__": "raw memory: __buffer__ exposes memory directly",
    "__prepare__": "reflection: __prepare__ builds class namespaces at run time",
}
# Attribute names that, on an object the policy cannot resolve (a call's result, a parameter, an
# exception's ``.obj``), would reach a forbidden module or a gateway.
_SUSPECT_ATTRS = frozenset({"os", "sys", "subprocess", "importlib", "ctypes", "builtins", "inspect", "gc",
                            "threading", "multiprocessing", "signal", "pickle", "marshal", "socket", "shutil",
                            "ops", "library", "utils", "jit", "fx", "hub", "overrides", "compile", "compiler",
                            "load", "get_device_module", "obj"})
_FRAME_ATTRS = frozenset({"f_globals", "f_locals", "f_back", "f_code", "f_builtins", "f_trace", "gi_frame",
                          "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next"})

_MAGICS_LINE = {"timeit", "time", "matplotlib"}
_MAGICS_CELL = {"timeit", "time"}
_RC_DENY = ("backend", "path", "usetex", "texsystem", "preamble")

_MISSING = object()
# __future__ features that do not change how Python parses code (the rest could hide code from review)
_HARMLESS_FUTURES = frozenset({"annotations", "division", "absolute_import", "print_function",
                               "unicode_literals", "generators", "nested_scopes", "with_statement",
                               "generator_stop"})


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not _is_dunder(name)


def _module_allowed(name: str) -> bool:
    return name in ALLOWED_MODULES


def _render(node: ast.AST, limit: int = 80) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # pragma: no cover - ast.unparse handles every parsed node
        text = type(node).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------
# Trusted module access (allowed modules and the course's own checking modules only)

def _import(name: str):
    """The module ``name`` if it is allowed (or one of the course's chNN modules); else None."""
    if not (_module_allowed(name) or _AUTOGRADER_IMPORT.fullmatch(name)):
        return None
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def _is_module_name(name: str) -> bool:
    """Whether ``name`` names an importable module, without running it (its parents are trusted)."""
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:
        return False


_gateway_cache: dict = {"n": -1, "table": {}}


def _gateways() -> dict[int, tuple[str, str]]:
    """id(object) -> (dotted name, reason) for the gateways whose modules are loaded."""
    if _gateway_cache["n"] == len(sys.modules):
        return _gateway_cache["table"]
    table = {}
    for dotted, reason in GATEWAYS.items():
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            module = sys.modules.get(".".join(parts[:cut]))
            if module is not None:
                break
        else:
            continue
        obj = module
        for attr in parts[cut:]:
            obj = getattr(obj, attr, _MISSING)
            if obj is _MISSING:
                break
        if obj is not _MISSING:
            table[id(obj)] = (dotted, reason)
    _gateway_cache.update(n=len(sys.modules), table=table)
    return table


def _gateway(obj) -> tuple[str, str] | None:
    return _gateways().get(id(obj))


def _rc_params_type():
    mpl = sys.modules.get("matplotlib")
    return getattr(mpl, "RcParams", None) if mpl is not None else None


# ---------------------------------------------------------------------------
# IPython

@functools.lru_cache(maxsize=1)
def _transformer():
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager()


def _transform(source: str) -> str:
    try:
        return _transformer().transform_cell(source)
    except Exception:
        return source


def transform(source: str) -> str:
    """A cell's source as IPython would run it (magics become calls): what the policy reviews is exactly what
    the grading worker runs."""
    return _transform(source)


@functools.lru_cache(maxsize=1)
def _magics():
    from IPython.core.magics.execution import ExecutionMagics
    return ExecutionMagics(shell=None)


def _magic_code(name: str, line: str, cell: str | None) -> list[str] | None:
    """The Python code an allowed magic runs (as IPython parses it); None when it runs none."""
    from IPython.core.magics.execution import ExecutionMagics
    if name == "timeit":
        try:
            _, stmt = _magics().parse_options(
                line, "n:r:tcp:qov:", posix=False, strict=False, preserve_non_opts=True)
        except Exception:
            return None  # IPython refuses the options: nothing runs
        return [stmt] if cell is None else [stmt, cell]
    if name == "time":
        from IPython.core import magic_arguments
        try:
            _, extra = magic_arguments.parse_argstring(ExecutionMagics.time, line, partial=True)
        except BaseException:  # argparse exits on bad options: nothing runs
            return None
        stmt = " ".join(extra)
        return [stmt] if cell is None else [stmt, cell]
    return []


def _ipython_call(node: ast.Call):
    """(method, get_ipython Name node) for ``get_ipython().<method>(...)``; else None."""
    func = node.func
    if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython"
            and not func.value.args and not func.value.keywords):
        return func.attr, func.value.func
    return None


def _str_args(node: ast.Call) -> list[str] | None:
    if node.keywords or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args):
        return None
    return [a.value for a in node.args]


def _magic_text(method: str, args: list[str] | None, node: ast.Call) -> str:
    if args is not None:
        if method == "run_line_magic" and len(args) == 2:
            return f"%{args[0]} {args[1]}".strip()
        if method == "run_cell_magic" and len(args) == 3:
            return f"%%{args[0]} {args[1]}".strip()
        if method in ("system", "getoutput") and len(args) == 1:
            return f"!{args[0]}"
    return _render(node)


def _allowed_magic(node: ast.Call):
    """For an allowed magic call: the list of code strings it runs. None when not allowed."""
    hit = _ipython_call(node)
    if hit is None:
        return None
    method, _ = hit
    args = _str_args(node)
    if args is None:
        return None
    if method == "run_line_magic" and len(args) == 2 and args[0] in _MAGICS_LINE:
        if args[0] == "matplotlib":
            return [] if re.fullmatch(r"[\w\s-]*", args[1]) else None
        return _magic_code(args[0], args[1], None)
    if method == "run_cell_magic" and len(args) == 3 and args[0] in _MAGICS_CELL:
        return _magic_code(args[0], args[1], args[2])
    return None


def _parse(source: str) -> ast.Module | None:
    """The AST of a cell as IPython compiles it (top-level ``await`` included); None if it cannot run."""
    try:
        return compile(source, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                       dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _code_trees(tree: ast.AST):
    """``tree`` and the parsed code of the allowed magics inside it (recursively)."""
    yield tree
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            codes = _allowed_magic(node)
            for code in codes or ():
                inner = _parse(_transform(code))
                if inner is not None:
                    yield from _code_trees(inner)


# ---------------------------------------------------------------------------
# Attribute chains: ``a.b.c`` and ``getattr(a, "b")`` alike

@dataclass
class _Step:
    name: str
    node: ast.AST
    kind: str  # "attr", "getattr" or "hasattr"


def _literal_attr_call(node: ast.AST) -> str | None:
    """'getattr' or 'hasattr' for a direct call with a string-literal name; else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
            and not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)
            and _ATTR_BUILTINS[node.func.id][0] <= len(node.args) <= _ATTR_BUILTINS[node.func.id][1]
            and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
        return node.func.id
    return None


def _flatten(node: ast.AST) -> tuple[ast.AST, list[_Step]]:
    steps = []
    while True:
        if isinstance(node, ast.Attribute):
            steps.append(_Step(node.attr, node, "attr"))
            node = node.value
            continue
        kind = _literal_attr_call(node)
        if kind:
            steps.append(_Step(node.args[1].value, node, kind))
            node = node.args[0]
            continue
        break
    steps.reverse()
    return node, steps


Binding = tuple[str, tuple[str, ...]]  # (root module, attributes after it)


class _Context:
    """What the whole notebook binds: cells share one namespace."""

    def __init__(self):
        self.bindings: dict[str, set[Binding]] = {}
        self.class_names: set[str] = set()
        self.def_names: set[str] = set()
        self.stored: set[str] = set()  # every name the notebook binds (to tell builtins from shadows)

    def bind(self, name: str, binding: Binding) -> bool:
        known = self.bindings.setdefault(name, set())
        if binding in known or len(binding[1]) > 8 or len(known) > 8:
            return False
        known.add(binding)
        return True

    def chain_bindings(self, node: ast.AST) -> set[Binding]:
        base, steps = _flatten(node)
        if not isinstance(base, ast.Name):
            return set()
        names = tuple(s.name for s in steps)
        return {(root, pre + names) for root, pre in self.bindings.get(base.id, ())}


def _star_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return [n for n in names if isinstance(n, str)]


def _gather_context(trees) -> _Context:
    ctx = _Context()
    assigns: list[tuple[list[str], ast.AST]] = []
    for top in trees:
        for tree in _code_trees(top):
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.asname:
                            ctx.bind(alias.asname, (alias.name, ()))
                        else:
                            top_name = alias.name.split(".")[0]
                            ctx.bind(top_name, (top_name, ()))
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for alias in node.names:
                        if alias.name != "*":
                            ctx.bind(alias.asname or alias.name, (node.module, (alias.name,)))
                        elif _module_allowed(node.module):
                            module = _import(node.module)
                            for name in _star_names(module) if module is not None else ():
                                if isinstance(module.__dict__.get(name), types.ModuleType):
                                    ctx.bind(name, (node.module, (name,)))
                elif isinstance(node, ast.ClassDef):
                    ctx.class_names.add(node.name)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    ctx.def_names.add(node.name)
                elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                    ctx.stored.add(node.id)
                if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef,
                                     ast.AsyncFunctionDef)):
                    names = [node.name] if hasattr(node, "name") else [
                        a.asname or a.name.split(".")[0] for a in node.names]
                    ctx.stored.update(names)
                elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
                    assigns.append(([t.id for t in node.targets], node.value))
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
                    assigns.append(([node.target.id], node.value))
                elif isinstance(node, ast.NamedExpr):
                    assigns.append(([node.target.id], node.value))
    for _ in range(10):  # aliases of aliases, in any cell order
        changed = False
        for names, value in assigns:
            for binding in ctx.chain_bindings(value):
                for name in names:
                    changed |= ctx.bind(name, binding)
        if not changed:
            break
    return ctx


# ---------------------------------------------------------------------------
# The reviewer

class _Scope:
    def __init__(self, local: set[str], module_local: set[str]):
        self.local = local
        self.module_local = module_local


def _target_names(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def _function_locals(node: ast.AST, ctx: _Context) -> _Scope:
    """Names local to a function or lambda; the ones bound to a module there are tracked."""
    args = node.args
    local = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    local |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    module_local: set[str] = set()
    declared_global: set[str] = set()
    body = node.body if isinstance(node.body, list) else [node.body]
    stack = list(body)
    while stack:
        item = stack.pop()
        if isinstance(item, (ast.Global, ast.Nonlocal)):
            declared_global.update(item.names)
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            local.add(item.name)
            stack.extend(item.decorator_list)
            continue
        if isinstance(item, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(item, ast.Name) and isinstance(item.ctx, (ast.Store, ast.Del)):
            local.add(item.id)
        elif isinstance(item, (ast.Import, ast.ImportFrom)):
            for alias in item.names:
                name = alias.asname or alias.name.split(".")[0]
                local.add(name)
                module_local.add(name)
        elif isinstance(item, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and getattr(item, "value", None):
            if ctx.chain_bindings(item.value):
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                for t in targets:
                    module_local |= _target_names(t)
        stack.extend(ast.iter_child_nodes(item))
    return _Scope(local - declared_global, module_local)


class _Reviewer(ast.NodeVisitor):
    def __init__(self, ctx: _Context, cell: int, findings: list[Finding], *, top_name=None, deferred=False,
                 at_line=None, suffix=""):
        self.ctx = ctx
        self.cell = cell
        self.findings = findings
        self.top_name = top_name      # the top-level def/class we are lexically in
        self.deferred = deferred      # inside a function body (runs when called)
        self.depth = 0                # def/class/lambda nesting
        self.class_depth = 0          # lexically inside a class
        self.in_class_body = False    # directly in a class body (assignments become attributes)
        self.scopes: list[_Scope] = []
        self.parent: dict[int, ast.AST] = {}
        self.chain_nodes: set[int] = set()   # inner nodes of a chain already reviewed
        self.chain_bases: set[int] = set()   # Name nodes reviewed as a chain's base
        self.no_escape: set[int] = set()     # module values whose use is reported otherwise
        self.reported: set[int] = set()      # nodes already given a finding
        self.at_line = at_line        # magic code: report at the magic's line
        self.suffix = suffix

    # -- helpers ------------------------------------------------------------------------------
    def run(self, tree: ast.AST):
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node
        self.visit(tree)

    def add(self, node: ast.AST, construct: str, why: str):
        line = self.at_line or getattr(node, "lineno", 1)
        scope = self.top_name if self.deferred else None
        self.findings.append(Finding(self.cell, line, construct, why + self.suffix, scope))
        self.reported.add(id(node))

    def is_local(self, name: str) -> bool:
        """Whether ``name`` is provably a function's (or comprehension's) own variable here."""
        return any(name in scope.local for scope in self.scopes)

    def binding(self, name: str) -> set[Binding]:
        for scope in reversed(self.scopes):
            if name in scope.local:
                return self.ctx.bindings.get(name, set()) if name in scope.module_local else set()
        return self.ctx.bindings.get(name, set())

    def tracked(self, node: ast.AST) -> bool:
        """A module value in a place the policy follows: a plain name assignment (not a displayed value,
        which IPython keeps in ``_`` and ``Out``)."""
        parent = self.parent.get(id(node))
        if self.in_class_body:
            return False
        if isinstance(parent, ast.Assign) and parent.value is node:
            return all(isinstance(t, ast.Name) for t in parent.targets)
        if isinstance(parent, ast.AnnAssign) and parent.value is node:
            return isinstance(parent.target, ast.Name)
        return isinstance(parent, ast.NamedExpr) and parent.value is node

    def review_code(self, code: str, at: ast.AST, label: str):
        tree = _parse(_transform(code))
        if tree is None:
            return  # IPython cannot compile it either: it does not run
        inner = _Reviewer(self.ctx, self.cell, self.findings, top_name=self.top_name, deferred=self.deferred,
                          at_line=self.at_line or getattr(at, "lineno", 1), suffix=f" (in the code of {label})")
        inner.scopes = list(self.scopes)
        inner.class_depth = self.class_depth
        inner.run(tree)

    def quiet_values(self, node: ast.AST) -> list:
        """What a name/attribute chain rooted at a module evaluates to, without findings."""
        base, steps = _flatten(node)
        if not isinstance(base, ast.Name):
            return []
        values = []
        for root, pre in self.binding(base.id):
            value = _walk_quiet(root, pre + tuple(s.name for s in steps))
            if value is not _MISSING:
                values.append(value)
        return values

    # -- scopes -------------------------------------------------------------------------------
    def visit_FunctionDef(self, node):
        if node.name in _DEFINE_DENY:
            self.add(node, f"def {node.name}", _DEFINE_DENY[node.name])
        for item in node.decorator_list:
            self.visit(item)
        self.visit_arguments(node.args)
        if node.returns:
            self.visit(node.returns)
        saved = (self.top_name, self.deferred, self.in_class_body)
        if self.depth == 0:
            self.top_name = node.name
        self.deferred, self.in_class_body = True, False
        self.depth += 1
        self.scopes.append(_function_locals(node, self.ctx))
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()
        self.depth -= 1
        self.top_name, self.deferred, self.in_class_body = saved

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_arguments(self, args: ast.arguments):
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]:
            if arg.annotation:
                self.visit(arg.annotation)

    def visit_Lambda(self, node):
        self.visit_arguments(node.args)
        saved = (self.deferred, self.in_class_body)
        self.deferred, self.in_class_body = True, False
        self.depth += 1
        self.scopes.append(_function_locals(node, self.ctx))
        self.visit(node.body)
        self.scopes.pop()
        self.depth -= 1
        self.deferred, self.in_class_body = saved

    def visit_ClassDef(self, node):
        for item in node.decorator_list + node.bases:
            self.visit(item)
        for base in node.bases:
            if any(isinstance(v, type) and issubclass(v, type) for v in self.quiet_values(base)):
                self.add(base, _render(base), "reflection: a metaclass builds classes at run time")
        for keyword in node.keywords:
            self.visit(keyword.value)
            if keyword.arg == "metaclass":
                if not any(v is abc.ABCMeta for v in self.quiet_values(keyword.value)):
                    self.add(keyword, f"metaclass={_render(keyword.value)}",
                             "reflection: a metaclass builds classes at run time")
        saved = (self.top_name, self.in_class_body)
        if self.depth == 0:
            self.top_name = node.name
        self.in_class_body = True
        self.depth += 1
        self.class_depth += 1
        for stmt in node.body:
            self.visit(stmt)
        self.class_depth -= 1
        self.depth -= 1
        self.top_name, self.in_class_body = saved

    def _comprehension(self, node, parts):
        local = set()
        for gen in node.generators:
            local |= _target_names(gen.target)
        self.visit(node.generators[0].iter)
        self.scopes.append(_Scope(local, set()))
        for i, gen in enumerate(node.generators):
            self.visit(gen.target)
            if i:
                self.visit(gen.iter)
            for cond in gen.ifs:
                self.visit(cond)
        for part in parts:
            self.visit(part)
        self.scopes.pop()

    def visit_ListComp(self, node):
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node):
        self._comprehension(node, [node.key, node.value])

    # -- imports (rule 1) -------------------------------------------------------------------------
    def module_why(self, dotted: str) -> str | None:
        if any(_is_private(part) for part in dotted.split(".")):
            return f"private module: `{dotted}` is torch/library internals, not on the course's allowlist"
        if dotted in GATEWAYS:
            return f"gateway: `{dotted}` {GATEWAYS[dotted]}; it is not on the course's import allowlist"
        if not _module_allowed(dotted):
            return f"import of `{dotted}`, which is not on the course's module allowlist"
        return None

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name == "autograder" or alias.name.startswith("autograder."):
                self.add(node, _render(node), "import of the checking library: use only "
                         "`from autograder.chNN import check_...` as the setup cell does")
                continue
            parts = alias.name.split(".")
            for i in range(1, len(parts) + 1):
                why = self.module_why(".".join(parts[:i]))
                if why:
                    self.add(node, _render(node), why)
                    break

    def visit_ImportFrom(self, node):
        construct = _render(node)
        module = node.module or ""
        if node.level:
            self.add(node, construct, "relative import: only the course's allowlisted modules may be imported")
            return
        if module == "__future__":
            for alias in node.names:
                if alias.name not in _HARMLESS_FUTURES:
                    self.add(node, construct, f"`from __future__ import {alias.name}` changes how later cells "
                             "parse, out of the grader's sight")
            return
        if module == "autograder" or module.startswith("autograder."):
            if not _AUTOGRADER_IMPORT.fullmatch(module):
                self.add(node, construct, "import of the checking library: use only "
                         "`from autograder.chNN import check_...` as the setup cell does")
                return
            source = _import(module)
            for alias in node.names:
                value = source.__dict__.get(alias.name, _MISSING) if source is not None else _MISSING
                if alias.name == "*" or _is_private(alias.name) or _is_dunder(alias.name):
                    self.add(node, construct, f"import of the checking library's private name `{alias.name}`")
                elif alias.name.startswith("reference"):
                    self.add(node, construct, f"import of the checking library's reference code `{alias.name}`")
                elif isinstance(value, types.ModuleType) and not _module_allowed(value.__name__):
                    self.add(node, construct, f"`{module}.{alias.name}` is the module `{value.__name__}`, "
                             "which is not on the course's module allowlist")
            return
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            why = self.module_why(".".join(parts[:i]))
            if why:
                self.add(node, construct, why)
                return
        for alias in node.names:
            if alias.name == "*":
                why = self.star_why(module)
            elif _is_private(alias.name) or _is_dunder(alias.name):
                why = f"private name: `{module}.{alias.name}` is library internals"
            else:
                why = self.member_why(module, alias.name)
            if why:
                self.add(node, construct, why)

    def member_why(self, module_name: str, name: str) -> str | None:
        full = f"{module_name}.{name}"
        if full in GATEWAYS:
            return f"gateway: `{full}` {GATEWAYS[full]}"
        if _module_allowed(full):
            return None
        module = _import(module_name)
        if module is None:
            return None
        value = module.__dict__.get(name, _MISSING)
        if value is _MISSING:
            if _is_module_name(full):
                return f"import of `{full}`, which is not on the course's module allowlist"
            return None  # no such name: the import fails when it runs
        return _value_why(full, value)

    def star_why(self, module_name: str) -> str | None:
        module = _import(module_name)
        if module is None:
            return None
        bad = [n for n in _star_names(module)
               if _value_why(f"{module_name}.{n}", module.__dict__.get(n, None)) is not None]
        if bad:
            shown = ", ".join(f"`{n}`" for n in bad[:4]) + (", ..." if len(bad) > 4 else "")
            return f"star import: `from {module_name} import *` brings in {shown}, which the allowlist forbids"
        return None

    # -- names (rules 3 and 4) ------------------------------------------------------------------
    def visit_Name(self, node):
        if id(node) in self.reported:
            return
        name = node.id
        if not isinstance(node.ctx, ast.Load):
            if isinstance(node.ctx, ast.Store) and name in _DEFINE_DENY:
                self.add(node, name, _DEFINE_DENY[name])
            return
        if _is_dunder(name) and name not in _ALLOWED_DUNDER_NAMES:
            self.add(node, name, f"reflection: `{name}` reaches the interpreter's internals")
            return
        if self.is_local(name):
            pass  # a function's own variable, not the builtin
        elif name in _REFLECTIVE_BUILTINS:
            self.add(node, name, f"reflection: `{name}` {_REFLECTIVE_BUILTINS[name]}, out of the grader's sight")
            return
        else:
            parent = self.parent.get(id(node))
            direct_call = isinstance(parent, ast.Call) and parent.func is node
            if name in _ATTR_BUILTINS and not direct_call:
                self.add(node, name, f"reflection: `{name}` used as a value (it can look up computed names)")
                return
            if name == "type" and not (direct_call and len(parent.args) == 1 and not parent.keywords
                                       and not isinstance(parent.args[0], ast.Starred)):
                self.add(node, _render(parent if direct_call else node), "reflection: `type` used other than "
                         "as `type(x)` builds or inspects classes at run time")
                return
            if name == "get_ipython":
                self.add(node, name, "IPython shell access: only %timeit, %time and %matplotlib are allowed")
                return
        if id(node) in self.chain_bases:
            return
        bindings = self.binding(name)
        if bindings:
            values = [self.resolve(root, pre, [], node) for root, pre in bindings]
            self.check_escape(node, values)

    def check_escape(self, node, values):
        if id(node) in self.no_escape or id(node) in self.reported:
            return
        if any(isinstance(v, types.ModuleType) for v in values) and not self.tracked(node):
            self.add(node, _render(node), "a module used as a value (passed, stored or returned): "
                     "the policy cannot follow it, so it is not allowed")

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            if node.value in _DEFINE_DENY:
                self.add(node, repr(node.value), _DEFINE_DENY[node.value])
            elif node.value.lstrip().startswith("module://"):
                self.add(node, _render(node), "imports a module by name (a matplotlib backend)")

    # -- attribute chains (rules 2 and 3) ----------------------------------------------------------
    def visit_Attribute(self, node):
        if id(node) not in self.chain_nodes:
            self.chain(node)

    def chain(self, node: ast.AST):
        base, steps = _flatten(node)
        for step in steps:
            self.chain_nodes.add(id(step.node))
        store = isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del))
        bindings: set[Binding] = set()
        is_super = (isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super"
                    and "super" not in self.ctx.stored and not self.is_local("super"))
        if isinstance(base, ast.Name):
            self.chain_bases.add(id(base))
            self.visit(base)
            if id(base) in self.reported:
                return
            bindings = self.binding(base.id)
        else:
            self.visit(base)
        for i, step in enumerate(steps):
            if step.kind != "attr":
                for extra in step.node.args[2:]:
                    self.visit(extra)
            if not self.step_ok(i, step, base, bool(bindings), is_super, store and i == len(steps) - 1):
                return
        values = [self.resolve(root, pre, steps, base) for root, pre in bindings]
        if store and bindings:
            verb = "deleting" if isinstance(node.ctx, ast.Del) else "assigning to"
            self.add(node, _render(node), f"changes a library: {verb} `{_render(node)}` "
                     "patches code that the checks rely on")
            return
        if not store and steps[-1].kind != "hasattr":
            self.check_escape(node, values)

    def step_ok(self, i, step: _Step, base, module_rooted, is_super, store) -> bool:
        name, node = step.name, step.node
        own_first = i == 0 and isinstance(base, ast.Name) and base.id in ("self", "cls") and self.class_depth
        if name in _SUSPECT_ATTRS and not module_rooted and not own_first:
            self.add(node, _render(node), f"`.{name}` on an object the policy cannot follow could reach a "
                     "forbidden module or a gateway to torch internals")
            return False
        if name in _FRAME_ATTRS:
            self.add(node, _render(node), f"reflection: `.{name}` reaches interpreter frames")
            return False
        if _is_dunder(name):
            if name in ("__torch_dispatch__", "__torch_function__"):
                self.add(node, _render(node), f"dispatcher internals: `{name}` intercepts operators")
                return False
            if name not in _ALLOWED_DUNDERS:
                self.add(node, _render(node), f"reflection: `{name}` reaches into an object's internals")
                return False
            if store:
                self.add(node, _render(node), f"reflection: assigning `{name}` changes an object's internals")
                return False
            return True
        if _is_private(name):
            if step.kind != "attr":
                self.add(node, _render(node), f"reflection: {step.kind} with a private name `{name}`")
                return False
            if module_rooted:
                return True  # resolve() reports it, naming the module
            own = i == 0 and (is_super or (isinstance(base, ast.Name) and (
                (base.id in ("self", "cls") and self.class_depth) or base.id in self.ctx.class_names)))
            if not own:
                self.add(node, _render(node), f"private attribute `{name}`: allowed only on self, cls, "
                         "super() or the notebook's own classes")
                return False
        return True

    def resolve(self, root: str, pre: tuple[str, ...], steps: list[_Step], base: ast.AST):
        """Walk a module chain on the trusted modules; report the first step the policy forbids."""
        if root == "__future__":
            return _MISSING
        if not (_module_allowed(root) or _AUTOGRADER_IMPORT.fullmatch(root)):
            if id(base) not in self.reported:
                label = base.id if isinstance(base, ast.Name) else _render(base)
                self.add(base, label, f"`{label}` is the module `{root}`, which is not on the course's "
                         "module allowlist")
            return _MISSING
        obj = _import(root)
        path = root
        for name in pre:  # reported where the alias was made
            if obj is _MISSING or obj is None:
                break
            obj, why = _step(obj, name, path)
            if why:
                return _MISSING
            path = f"{path}.{name}"
        for k, step in enumerate(steps):
            if obj is _MISSING or obj is None:
                self.unresolved(steps[k:])
                return _MISSING
            obj, why = _step(obj, step.name, path)
            if why:
                if id(step.node) not in self.reported:
                    self.add(step.node, _render(step.node), why)
                return _MISSING
            path = f"{path}.{step.name}"
        return _MISSING if obj is None else obj

    def unresolved(self, steps: list[_Step]):
        """Where resolution stops (an unknown attribute, a dunder), judge the rest by name."""
        for step in steps:
            if step.name in _SUSPECT_ATTRS and id(step.node) not in self.reported:
                self.add(step.node, _render(step.node), f"`.{step.name}` on an object the policy cannot follow "
                         "could reach a forbidden module or a gateway to torch internals")
                return

    # -- calls -----------------------------------------------------------------------------------
    def visit_Call(self, node):
        func = node.func
        hit = _ipython_call(node)
        if hit is not None:
            method, name_node = hit
            codes = _allowed_magic(node)
            self.reported.add(id(name_node))
            self.chain_nodes.add(id(func))
            if codes is None:
                args = _str_args(node)
                what = "shell command" if method in ("system", "getoutput") else "IPython magic"
                self.add(node, _magic_text(method, args, node),
                         f"{what}: only the magics %timeit, %time and %matplotlib are allowed "
                         "(shell commands and other magics run code the grader cannot review)")
                for arg in node.args:
                    self.visit(arg)
                return
            for code in codes:
                self.review_code(code, node, "%" + _str_args(node)[0])
            return
        if isinstance(func, ast.Name) and func.id in _ATTR_BUILTINS and not self.is_local(func.id):
            self.attr_builtin(node)
            return
        if id(node) not in self.chain_nodes and _literal_attr_call(node):
            self.chain(node)
            return
        self.special_calls(node)
        self.generic_visit(node)

    def attr_builtin(self, node: ast.Call):
        name = node.func.id
        low, high = _ATTR_BUILTINS[name]
        args = node.args
        self.reported.add(id(node.func))
        if node.keywords or any(isinstance(a, ast.Starred) for a in args) or not low <= len(args) <= high:
            self.add(node, _render(node), f"reflection: `{name}` called with unpacked or unusual arguments")
            self.generic_visit(node)
            return
        literal = args[1]
        if not (isinstance(literal, ast.Constant) and isinstance(literal.value, str)):
            self.add(node, f"{name}({_render(args[0], 40)}, <computed name>)",
                     f"reflection: {name} with a computed name")
            self.generic_visit(node)
            return
        text = literal.value
        if _is_private(text) or (_is_dunder(text) and (text not in _ALLOWED_DUNDERS or name in ("setattr",
                                                                                                "delattr"))):
            self.add(node, _render(node), f"reflection: {name} with a private name `{text}`")
            self.no_escape.add(id(args[0]))
            self.generic_visit(node)
            return
        if name in ("getattr", "hasattr"):
            self.chain(node)
            return
        target = args[0]
        root = _flatten(target)[0]
        if isinstance(root, ast.Name) and self.binding(root.id):
            self.add(node, _render(node), f"changes a library: {name} on `{_render(target, 40)}` patches "
                     "code that the checks rely on")
            self.no_escape.add(id(target))
        for arg in args:
            self.visit(arg)

    def special_calls(self, node: ast.Call):
        values = self.quiet_values(node.func) if isinstance(node.func, (ast.Name, ast.Attribute)) else []
        if not values:
            return
        timeit_module = sys.modules.get("timeit")
        timers = {getattr(timeit_module, n, None) for n in ("timeit", "repeat", "Timer")} - {None}
        if any(v in timers for v in values):
            self.timeit_call(node)
        if any(isinstance(v, type) and issubclass(v, enum.Enum) for v in values):
            if len(node.args) >= 2 or any(k.arg in ("names", None) for k in node.keywords):
                self.add(node, _render(node), "reflection: the functional Enum API builds a class from a "
                         "namespace computed at run time")

    def timeit_call(self, node: ast.Call):
        code_args = list(node.args[:2]) + [k.value for k in node.keywords if k.arg in ("stmt", "setup")]
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            self.add(node, _render(node), "timeit with unpacked arguments: code the grader cannot review")
            return
        for arg in code_args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self.review_code(arg.value, node, "a timeit string")
            elif isinstance(arg, ast.Lambda) or (isinstance(arg, ast.Name) and arg.id in self.ctx.def_names):
                continue
            elif isinstance(arg, ast.Call) and any(v is functools.partial for v in self.quiet_values(arg.func)):
                continue
            else:
                self.add(arg, _render(arg), "timeit given code the grader cannot see (pass a lambda, "
                         "a function, or a string literal)")

    # -- stores ---------------------------------------------------------------------------------
    def visit_Subscript(self, node):
        if isinstance(node.ctx, ast.Store):
            values = self.quiet_values(node.value)
            rc_type = _rc_params_type()
            if rc_type is not None and any(isinstance(v, rc_type) for v in values):
                key = node.slice
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    self.add(node, _render(node), "a matplotlib setting chosen at run time (settings can "
                             "name programs and modules to load)")
                elif any(word in key.value for word in _RC_DENY):
                    self.add(node, _render(node), f"the matplotlib setting `{key.value}` names a program or "
                             "module to load")
        self.generic_visit(node)


def _value_why(full: str, value) -> str | None:
    gateway = _gateway(value)
    if gateway:
        return f"gateway: `{full}` {gateway[1]}"
    if isinstance(value, types.ModuleType) and not _module_allowed(value.__name__):
        if full == value.__name__:
            return f"`{full}` is a module that is not on the course's module allowlist"
        return f"`{full}` is the module `{value.__name__}`, which is not on the course's module allowlist"
    return None


def _step(obj, name: str, path: str):
    """(value, why): one attribute step from a trusted object; why is None when it is allowed."""
    full = f"{path}.{name}"
    if _is_private(name):
        what = "a module" if isinstance(obj, types.ModuleType) else "a library object"
        return _MISSING, f"private attribute of {what}: `{full}` is internals, not the public API"
    if _is_dunder(name):
        return _MISSING, None  # rule 3 judges dunders; the chain is not followed further
    if path.startswith("autograder.") and name.startswith("reference"):
        return _MISSING, f"the checking library's reference code `{full}`"
    if isinstance(obj, types.ModuleType):
        value = obj.__dict__.get(name, _MISSING)
        if value is _MISSING:
            sub = f"{obj.__name__}.{name}"
            if _module_allowed(sub):
                value = _import(sub)
                if value is None:
                    return _MISSING, None
            elif _is_module_name(sub):
                return _MISSING, f"`{full}` is a module that is not on the course's module allowlist"
            else:
                return _MISSING, None
    else:
        try:
            value = getattr(obj, name)
        except Exception:
            return _MISSING, None
    why = _value_why(full, value)
    if why:
        return _MISSING, why
    return value, None


def _walk_quiet(root: str, attrs: tuple[str, ...]):
    obj = _import(root)
    if obj is None:
        return _MISSING
    path = root
    for name in attrs:
        obj, why = _step(obj, name, path)
        if why or obj is _MISSING:
            return _MISSING
        path = f"{path}.{name}"
    return obj


# ---------------------------------------------------------------------------
# Public API

def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in findings:
        key = (f.cell, f.line, f.construct, f.why)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _review_trees(trees: list[tuple[int, ast.Module]], context_trees: list[ast.Module],
                  ctx: _Context | None = None) -> list[Finding]:
    if ctx is None:
        ctx = _gather_context(context_trees)
    findings: list[Finding] = []
    for cell, tree in trees:
        try:
            _Reviewer(ctx, cell, findings).run(tree)
        except RecursionError:  # fail closed: Python may still run code too deep for this review
            findings.append(Finding(cell, 1, "<cell>", "code nested too deeply for the grader to review", None))
    return _dedupe(findings)


def review_source(source: str, cell: int = 0) -> list[Finding]:
    """Review one cell's Python source (already IPython-transformed). A SyntaxError yields no findings."""
    tree = _parse(source)
    if tree is None:
        return []
    return _review_trees([(cell, tree)], [tree])


def review_cells(cells, exempt=frozenset()) -> list[Finding]:
    """Review a notebook's code cells: ``cells`` are (cell index, raw source) pairs.

    Each source is transformed as IPython would; a cell whose stripped source equals one of ``exempt``
    (stripped) is the course's own cell: it is not reviewed, but what it binds (``sys``, ``torch``, ...)
    is known, since all cells share one namespace.
    """
    exempt_sources = {e.strip() for e in exempt}
    reviewed, context = [], []
    for cell, raw in cells:
        tree = _parse(_transform(raw))
        if tree is None:
            continue
        context.append(tree)
        if raw.strip() not in exempt_sources:
            reviewed.append((cell, tree))
    return _review_trees(reviewed, context)


def review_function(fn) -> list[Finding]:
    """Review the source of one function (or class) for the learner-facing checks; [] without source."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return []
    tree = _parse(source)
    if tree is None:
        return []
    ctx = _gather_context([tree])
    namespace = dict(getattr(fn, "__globals__", None) or getattr(sys.modules.get(getattr(fn, "__module__", "")),
                                                                  "__dict__", {}))
    code = getattr(fn, "__code__", None)
    for name, cell in zip(getattr(code, "co_freevars", ()), getattr(fn, "__closure__", None) or ()):
        try:
            namespace[name] = cell.cell_contents
        except ValueError:
            pass
    extra: list[tuple[ast.Name, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in namespace and node.id not in ctx.bindings:
            value = namespace[node.id]
            if isinstance(value, types.ModuleType):
                ctx.bind(node.id, (value.__name__, ()))
            elif isinstance(value, type) and getattr(value, "__module__", None) == "__main__":
                ctx.class_names.add(value.__name__)
            elif _gateway(value) is not None:
                extra.append((node, _gateway(value)[0]))
    findings = _review_trees([(0, tree)], [tree], ctx)
    for node, dotted in extra:
        findings.append(Finding(0, node.lineno, node.id, f"gateway: `{node.id}` is `{dotted}`, "
                                f"which {GATEWAYS[dotted]}", None))
    return _dedupe(findings)


# ---------------------------------------------------------------------------
# Which parts a finding zeroes

def _toplevel_statements(body):
    """Statements at a cell's top level, including inside if/for/while/try/with blocks."""
    for stmt in body:
        yield stmt
        if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody"):
                yield from _toplevel_statements(getattr(stmt, field, []) or [])
            for handler in getattr(stmt, "handlers", []) or []:
                yield from _toplevel_statements(handler.body)
            for case in getattr(stmt, "cases", []) or []:
                yield from _toplevel_statements(case.body)


def _loaded_names(node: ast.AST) -> set[str]:
    names = set()
    for tree in _code_trees(node):
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return names


def _cell_trees(cells) -> list[ast.Module]:
    trees = []
    for _, raw in cells:
        tree = _parse(_transform(raw))
        if tree is not None:
            trees.append(tree)
    return trees


def definitions(cells) -> dict[str, set[str]]:
    """Top-level def/class name -> the names it references (Name loads anywhere inside it)."""
    defs: dict[str, set[str]] = {}
    for tree in _cell_trees(cells):
        for stmt in _toplevel_statements(tree.body):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defs.setdefault(stmt.name, set()).update(_loaded_names(stmt))
    return defs


def _runs_at_definition(node: ast.AST) -> set[str]:
    """Names a statement uses when it runs at a cell's top level (not the deferred function bodies)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        parts = node.decorator_list + node.args.defaults + [d for d in node.args.kw_defaults if d]
        return set().union(*(_loaded_names(p) for p in parts)) if parts else set()
    if isinstance(node, ast.ClassDef):
        names = set()
        for part in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            names |= _loaded_names(part)
        for stmt in node.body:
            names |= _runs_at_definition(stmt)
        return names
    names = set()
    for child in ast.iter_child_nodes(node):
        names |= _runs_at_definition(child) if isinstance(child, ast.stmt) else _loaded_names(child)
    return names


def _closure(starts, defs, barrier=frozenset()) -> set[str]:
    seen, todo = set(), [s for s in starts if s in defs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(n for n in defs.get(name, ()) if n in defs and n not in seen and n not in barrier)
    return seen


def affected(findings, symbols_by_part: dict[str, str], cells) -> dict[str, list[Finding]]:
    """Part id -> the findings that zero it (parts without findings are left out).

    A finding at a cell's top level (scope None) affects every part. One inside def/class F affects each
    part whose symbol reaches F through the names the definitions use (the symbol itself included), and
    every part when F also runs from a cell's top level other than through a part's symbol.
    """
    defs = definitions(cells)
    symbols = set(symbols_by_part.values())
    top_names: set[str] = set()
    for tree in _cell_trees(cells):
        for stmt in tree.body:
            top_names |= _runs_at_definition(stmt)
    runs_at_top = _closure(top_names - symbols, defs, barrier=symbols)
    reach = {part: _closure([symbol], defs) | {symbol} for part, symbol in symbols_by_part.items()}
    result: dict[str, list[Finding]] = {}
    for finding in findings:
        for part in symbols_by_part:
            if finding.scope is None or finding.scope in runs_at_top or finding.scope in reach[part]:
                result.setdefault(part, []).append(finding)
    return result
