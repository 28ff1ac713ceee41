"""The static source policy: honest notebooks pass, bypasses of the dispatch guard are flagged."""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path

import pytest
import torch

from autograder._policy import (Finding, affected, definitions, review_cells, review_function,
                                       review_source)
from conftest import ASSIGNMENTS, REPO, release_path


def code_cells(path: Path) -> list[tuple[int, str, dict]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(i, "".join(c["source"]), c.get("metadata", {}).get("nbgrader", {}))
            for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def course_cells(aid: str) -> dict[str, str]:
    """The released notebook's own code cells (setup, Colab install, visible tests): grade_id -> source."""
    cells = code_cells(release_path(aid))
    return {meta.get("grade_id", str(i)): src for i, src, meta in cells if not meta.get("solution")}


def exempt(aid: str) -> set[str]:
    return set(course_cells(aid).values())


SETUP = "import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\nimport numpy as np\n"
COLAB = course_cells(ASSIGNMENTS[0])["colab_install"]


def review(code: str) -> list[Finding]:
    """Review one learner cell in a notebook that has the course's setup and Colab cells."""
    return review_cells([(0, COLAB), (1, SETUP), (2, code)], exempt={COLAB, SETUP})


# --------------------------------------------------------------------------------------------
# Honest code passes


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_every_solution_notebook_passes(aid):
    cells = [(i, src) for i, src, _ in code_cells(REPO / "solutions" / aid / f"{aid}.ipynb")]
    assert len(cells) > 3
    findings = review_cells(cells, exempt=exempt(aid))
    assert findings == [], "\n".join(f.describe() for f in findings)


def test_the_course_cells_themselves_would_be_flagged():
    # what makes the exemption necessary: the Colab cell imports os, sys, subprocess and importlib
    cells = [(i, src) for i, src, _ in code_cells(REPO / "solutions" / ASSIGNMENTS[0] / f"{ASSIGNMENTS[0]}.ipynb")]
    flagged = {f.construct for f in review_cells(cells)}
    assert {"import sys", "import os", "import subprocess", "import importlib"} <= flagged


def wrong_kernel_source() -> str:
    """tests/wrong_kernels.py without imports of the tests' own helpers (it has none today)."""
    source = (REPO / "tests" / "wrong_kernels.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in ("tests",
                                                                                                    "conftest")):
            for n in range(node.lineno - 1, node.end_lineno):
                lines[n] = ""
    return "\n".join(lines)


def test_the_honest_wrong_kernels_pass():
    source = wrong_kernel_source()
    assert review_source(source) == []
    tree = ast.parse(source)
    defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert len(defs) > 10
    for node in defs:
        segment = textwrap.dedent(ast.get_source_segment(source, node, padded=True))
        assert review_source(segment) == [], node.name


@pytest.mark.parametrize("code", [
    "class ConvTranspose2d(nn.Module):\n"
    "    def __init__(self, c):\n"
    "        super().__init__()\n"
    "        self._helper = c\n"
    "        self.weight = nn.Parameter(torch.empty(c, c, 3, 3))\n"
    "        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))\n"
    "    def __repr__(self):\n"
    "        return f'{self.__class__.__name__}({self._helper})'\n"
    "    def __len__(self):\n"
    "        return self._helper\n"
    "    def forward(self, x):\n"
    "        return self._scale(x)\n"
    "    def _scale(self, x):\n"
    "        return x * 2\n",
    "import time\nt0 = time.perf_counter()\nelapsed = time.perf_counter() - t0",
    "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(1, 2, figsize=(6, 3))\nax[0].imshow(np.zeros((4, 4)))\n"
    "plt.rcParams['figure.dpi'] = 100\nplt.show()",
    "%timeit f(x)",
    "%%timeit -n 3\nf(x)\n",
    "%time y = f(x)",
    "%matplotlib inline",
    "squares = [i * i for i in range(3)]\npairs = {k: v for k, v in zip('ab', (1, 2))}",
    "g = lambda v: v + 1\nh = sorted([3, 1], key=lambda v: -v)",
    "from autograder.ch06 import check_conv_transpose2d",
    "from autograder.ch08 import CLASS_NAMES, RECIPE, check_segnet, make_shapes, train_segmenter",
    "y = torch.nn.functional.pad(x, (1, 1, 1, 1))",
    "z = x.new_zeros(2, 3)",
    "torch.autograd.gradcheck(f, (x,))",
    "grad, = torch.autograd.grad(y.sum(), x)",
    "shape = getattr(x, 'shape', type(x))\nok = hasattr(x, 'dim') and hasattr(x, '__len__')",
    "from __future__ import annotations",
    "import timeit\nt = timeit.timeit(lambda: f(x), number=3)\nt2 = timeit.timeit('sum(range(9))', number=3)",
    "from tqdm.auto import tqdm\nfor i in tqdm(range(3)):\n    pass",
    "from dataclasses import dataclass, field\n@dataclass\nclass Cfg:\n    k: int = 3\n"
    "    sizes: list = field(default_factory=list)",
    "from collections import OrderedDict\nimport itertools, functools\n"
    "functools.reduce(lambda a, b: a + b, itertools.chain([1], [2]))",
    "device = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
    "sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)",
    "optimiser = torch.optim.Adam(model.parameters(), lr=0.05)",
    "print(torch.__version__, x.__class__.__name__, type(x).__name__)",
    "def output_size(i, k):\n    os = i - k + 1\n    return os",
    "def resize(x, type='nearest'):\n    return type",
    "isinstance(x, torch.Tensor) and issubclass(type(x), torch.Tensor)",
    "w = torch.fft.fft2(x).abs()\nv = torch.linalg.norm(x)\nr = np.random.default_rng(0).normal(size=3)",
    "class Base:\n    _registry = {}\n    @classmethod\n    def add(cls, k):\n        cls._registry[k] = k\n"
    "Base._registry.clear()",
    "try:\n    f(x)\nexcept ValueError as e:\n    print(e.args)",
    "with torch.no_grad():\n    y = F.unfold(x, 3)",
    "x = torch.randn(2, 3, 4, 4)\nx.data = x.data * 2\nx.requires_grad_(True)",
])
def test_ordinary_python_has_no_findings(code):
    findings = review(code)
    assert findings == [], "\n".join(f.describe() for f in findings)


# --------------------------------------------------------------------------------------------
# The course's own cells are exempt only verbatim


@pytest.mark.parametrize("grade_id", ["colab_install", "setup"])
def test_course_cells_are_exempt_only_when_unchanged(grade_id):
    aid = ASSIGNMENTS[0]
    release = course_cells(aid)
    source = release[grade_id]
    cells = [(1, release["colab_install"]), (2, release["setup"])]
    assert review_cells(cells, exempt=exempt(aid)) == []
    changed = source + "\nimport os\n" if grade_id == "setup" else source.replace(
        'print("Installing", package)', 'print("Installing:", package)')
    assert changed != source
    index = 1 if grade_id == "colab_install" else 2
    cells = [(i, changed if i == index else s) for i, s in cells]
    findings = review_cells(cells, exempt=exempt(aid))
    assert findings and {f.cell for f in findings} == {index}
    assert any("os" in f.construct for f in findings)


def test_names_bound_by_the_exempt_colab_cell_stay_off_limits():
    # the Colab cell binds `sys` in the notebook's namespace: using it is still a finding
    findings = review('sys.modules["torch.utils._python_dispatch"]._disable_current_modes()')
    assert findings and "allowlist" in findings[0].why


# --------------------------------------------------------------------------------------------
# Bypasses


BYPASSES = [
    ("guard switch-off", 'getattr(torch.utils, "_python" + "_dispatch")._disable_current_modes()\n'
                         "y = F.conv_transpose2d(x, w)", "reflection"),
    ("private module chain", "torch.utils._python_dispatch._disable_current_modes()", "gateway"),
    ("from-import private", "from torch.utils import _python_dispatch", "gateway"),
    ("import torch._C", "import torch._C", "private"),
    ("from torch import _C", "from torch import _C", "private"),
    ("aten directly", "torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], True, [0, 0], 1)", "gateway"),
    ("aliased module", "t = torch\nt.ops.aten.convolution(x)", "gateway"),
    ("alias of alias", "a = torch\nb = a\nb.ops.aten", "gateway"),
    ("alias in another cell order", "u.ops\nu = torch", "gateway"),
    ("torch.library", 'lib = torch.library.Library("aten", "IMPL")', "gateway"),
    ("import torch.library", "import torch.library", "gateway"),
    ("import importlib", "import importlib", "allowlist"),
    ("__import__", '__import__("os")', "reflection"),
    ("eval", 'eval("1 + 1")', "reflection"),
    ("exec", 'exec("x = 1")', "reflection"),
    ("compile", 'compile("x", "<s>", "exec")', "reflection"),
    ("globals", 'globals()["F"]', "reflection"),
    ("vars of a module", 'vars(torch)["_C"]', "reflection"),
    ("module __dict__", 'torch.__dict__["_C"]', "reflection"),
    ("sys through torch", "torch.sys.modules", "allowlist"),
    ("sys._getframe through torch", "torch.sys._getframe(0).f_globals", "allowlist"),
    ("os through torch", 'torch.os.system("ls")', "allowlist"),
    ("importlib through F", 'F.importlib.import_module("os")', "allowlist"),
    ("ctypes through numpy", "np.ctypeslib.as_array", "allowlist"),
    ("computed getattr", 'name = "conv" + "2d"\ngetattr(F, name)(x, w)', "reflection"),
    ("getattr as a value", 'functools.reduce(getattr, ["utils", "_python_dispatch"], torch)', "reflection"),
    ("getattr with a private literal", 'getattr(torch, "_C")', "private"),
    ("import operator", "import operator", "allowlist"),
    ("import gc", "import gc", "allowlist"),
    ("import threading", "import threading", "allowlist"),
    ("import signal", "import signal", "allowlist"),
    ("import subprocess", "import subprocess", "allowlist"),
    ("import os.path", "import os.path", "allowlist"),
    ("lambda globals", "(lambda: 0).__globals__", "reflection"),
    ("function code", "def f():\n    pass\nf.__code__", "reflection"),
    ("frames", "def f():\n    yield 1\nf().gi_frame.f_back", "reflection"),
    ("traceback frames", "try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__.tb_frame", "reflection"),
    ("__torch_function__", "class T(torch.Tensor):\n    @classmethod\n"
                           "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                           "        return super().__torch_function__(func, types, args, kwargs or {})", "dispatcher"),
    ("__torch_dispatch__", "class T(torch.Tensor):\n    def __torch_dispatch__(self, *a):\n        pass", "dispatcher"),
    ("patch torch", "torch.allclose = lambda *a, **k: True", "changes a library"),
    ("patch F", "def my(*a):\n    return a[0]\nF.conv2d = my", "changes a library"),
    ("patch via alias", "T = torch.Tensor\nT.add = lambda *a: 0", "changes a library"),
    ("patch via setattr", 'setattr(torch, "allclose", f)', "changes a library"),
    ("delete from a library", "del F.conv2d", "changes a library"),
    ("patch the checks", "from autograder.ch06 import check_conv_transpose2d\ncheck_conv_transpose2d.__defaults__ = ()",
     "reflection"),
    ("shell escape", "!ls", "shell"),
    ("shell capture", "files = !ls", "shell"),
    ("system magic", "%system ls", "magic"),
    ("writefile magic", "%%writefile evil.py\nimport os\n", "magic"),
    ("capture magic", "%%capture\nx = 1\n", "magic"),
    ("code inside %timeit", '%timeit eval("1")', "reflection"),
    ("code inside %%time", "%%time\nimport os\n", "allowlist"),
    ("timeit string", 'import timeit\ntimeit.timeit("import os", number=1)', "allowlist"),
    ("timeit computed string", 'import timeit\ncode = "x"\ntimeit.timeit(code)', "cannot see"),
    ("relative import", "from . import x", "relative"),
    ("object.__getattribute__", 'object.__getattribute__(torch, "_C")', "reflection"),
    ("mro", "type(x).__mro__", "reflection"),
    ("subclasses", "object.__subclasses__()", "reflection"),
    ("type() builds a class", 'type("X", (torch.Tensor,), {})', "reflection"),
    ("metaclass", "class M(type):\n    pass", "reflection"),
    ("module passed around", "mods = [torch]\nmods[0].ops.aten", "module used as a value"),
    ("module as a default", "def f(m=torch):\n    return m.ops", "module used as a value"),
    ("module on self", "class A:\n    def __init__(self):\n        self.t = torch", "module used as a value"),
    ("module as class attribute", "class A:\n    t = torch", "module used as a value"),
    ("raw memory", "class A:\n    __array_interface__ = {'data': (0, False)}", "raw memory"),
    ("reflection builtin hidden by a dead import", "if False:\n    import numpy as eval\neval('1')", "reflection"),
    ("star import of torch", "from torch import *", "star import"),
    ("unpickling", 'torch.load("weights.pt", weights_only=False)', "gateway"),
    ("compiler", "torch.compile(f)", "gateway"),
    ("string.Formatter", 'import string\nstring.Formatter().get_field("0.x", [1], {})', "gateway"),
    ("matplotlib backend import", 'import matplotlib\nmatplotlib.use("module://evil")', "gateway"),
    ("checking library import", "import autograder", "checking library"),
    ("checking library internals", "from autograder.ch01 import reference_conv2d", "reference"),
    ("checking library private", "from autograder._rules import OpGuard", "checking library"),
    ("private attribute", "x._base", "private"),
    ("parse-changing future", "from __future__ import barry_as_FLUFL", "parse"),
    ("top-level await hides nothing", 'async def f():\n    pass\nawait f()\neval("1")', "reflection"),
    ("kernel exit", "exit()", "reflection"),
    ("module from an exception", "try:\n    torch.nope\nexcept AttributeError as e:\n    e.obj.ops.aten",
     "cannot follow"),
    ("module by device name", 'torch.get_device_module("cpu")', "gateway"),
    ("compile a model", "model = nn.Linear(2, 2)\nmodel.compile()", "cannot follow"),
    ("compile a model class", "nn.Module.compile(model)", "gateway"),
    ("module kept in Out and _", "torch.nn", "module used as a value"),
    ("matplotlib's test helpers", "import matplotlib.testing", "allowlist"),
    ("through an unknown attribute", "torch.__class__.sys", "cannot follow"),
    ("IPython shell object", "ip = get_ipython()\nip.system('ls')", "IPython"),
]


@pytest.mark.parametrize("code, word", [b[1:] for b in BYPASSES], ids=[b[0] for b in BYPASSES])
def test_bypass_is_flagged(code, word):
    findings = review(code)
    assert findings, f"not flagged: {code!r}"
    assert any(word in f.why for f in findings), "\n".join(f.describe() for f in findings)
    for f in findings:
        assert f.cell == 2 and f.line >= 1 and f.construct and f.why


def test_the_motivating_bypass_is_located_and_described():
    findings = review('import math\n\ngetattr(torch.utils, "_python" + "_dispatch")._disable_current_modes()')
    first = findings[0]
    assert (first.cell, first.line, first.scope) == (2, 3, None)
    assert first.construct == "getattr(torch.utils, <computed name>)"
    assert first.describe() == ("cell 2, line 3: `getattr(torch.utils, <computed name>)` — "
                                "reflection: getattr with a computed name")


def test_review_source_ignores_code_that_cannot_run():
    assert review_source("def f(:\n    eval('x')") == []


def test_scope_names_the_top_level_definition():
    source = "def conv2d(x):\n    def inner():\n        return eval('x')\n    return inner()\n"
    [finding] = review_source(source, cell=4)
    assert (finding.cell, finding.line, finding.scope) == (4, 3, "conv2d")
    # a class body runs when the class is defined: that is the cell's top level
    [body, method] = review_source("class A:\n    v = vars()\n    def f(self):\n        return vars()\n")
    assert body.scope is None and method.scope == "A"
    # so do decorators and default values
    [default] = review_source("def f(x=eval('1')):\n    return x\n")
    assert default.scope is None


# --------------------------------------------------------------------------------------------
# Which parts a finding zeroes


HELPER = "def helper(x):\n    return vars(x)\n"
CONV = "def conv2d(x):\n    return helper(x)\n"
SIZE = "def conv2d_output_size(n):\n    return n - 2\n"
CHECKS = "check_conv2d_output_size(conv2d_output_size)\ncheck_conv2d(conv2d)\n"
PARTS = {"size": "conv2d_output_size", "conv2d_basic": "conv2d", "conv2d_hyper": "conv2d"}


def test_definitions_map_each_top_level_name_to_what_it_uses():
    cells = [(0, "import torch\n"), (1, "class M:\n    def f(self):\n        return helper(torch)\n"),
             (2, "if True:\n    def g():\n        return M()\n")]
    defs = definitions(cells)
    assert defs["M"] >= {"helper", "torch"}
    assert defs["g"] == {"M"}


def test_a_flagged_helper_zeroes_only_the_parts_that_call_it():
    cells = [(0, SETUP), (1, HELPER), (2, CONV), (3, SIZE), (4, CHECKS)]
    findings = review_cells(cells, exempt={SETUP, CHECKS})
    assert [f.scope for f in findings] == ["helper"]
    hit = affected(findings, PARTS, cells)
    assert set(hit) == {"conv2d_basic", "conv2d_hyper"}
    assert hit["conv2d_basic"] == findings


def test_a_top_level_finding_zeroes_every_part():
    cells = [(0, SETUP), (1, "x = eval('1')\n"), (2, CONV.replace("helper(x)", "x")), (3, SIZE), (4, CHECKS)]
    findings = review_cells(cells, exempt={SETUP, CHECKS})
    assert [f.scope for f in findings] == [None]
    assert set(affected(findings, PARTS, cells)) == set(PARTS)


def test_calls_are_followed_transitively():
    cells = [(0, SETUP), (1, "def f(x):\n    return g(x)\n"), (2, "def g(x):\n    return h(x)\n"),
             (3, "def h(x):\n    return getattr(x, '_' + 'C')\n"), (4, SIZE)]
    findings = review_cells(cells, exempt={SETUP})
    assert [f.scope for f in findings] == ["h"]
    hit = affected(findings, {"f_part": "f", "size": "conv2d_output_size"}, cells)
    assert set(hit) == {"f_part"}


def test_a_flagged_helper_run_from_a_cell_top_level_zeroes_every_part():
    # the construct runs when the cell runs, before any part's checks
    cells = [(0, SETUP), (1, HELPER), (2, "helper(1)\n"), (3, SIZE), (4, CONV)]
    findings = review_cells(cells, exempt={SETUP})
    assert set(affected(findings, PARTS, cells)) == set(PARTS)


def test_a_flagged_helper_timed_at_a_cell_top_level_zeroes_every_part():
    cells = [(0, SETUP), (1, HELPER), (2, "%timeit -n 1 -r 1 helper(1)\n"), (3, SIZE), (4, CONV)]
    findings = review_cells(cells, exempt={SETUP})
    assert set(affected(findings, PARTS, cells)) == set(PARTS)


def test_a_flagged_helper_in_a_real_solution_notebook():
    aid = "ch01_cnn_size"
    cells = [(i, src) for i, src, _ in code_cells(REPO / "solutions" / aid / f"{aid}.ipynb")]
    conv_index = next(i for i, (_, src) in enumerate(cells) if src.startswith("def conv2d("))
    index, src = cells[conv_index]
    line = "    N, C_in, H, W = input.shape"
    assert line in src
    cells[conv_index] = (index, "def fast_path(x):\n    return getattr(torch.utils, '_python' + '_dispatch')\n\n"
                         + src.replace(line, "    fast_path(input)\n" + line))
    findings = review_cells(cells, exempt=exempt(aid))
    assert findings and {f.scope for f in findings} == {"fast_path"}
    parts = {"conv2d_output_size": "conv2d_output_size", "conv2d_basic": "conv2d", "conv2d_hyper": "conv2d",
             "conv2d_groups": "conv2d"}
    assert set(affected(findings, parts, cells)) == {"conv2d_basic", "conv2d_hyper", "conv2d_groups"}


# --------------------------------------------------------------------------------------------
# review_function, for the learner-facing checks


def sneaky(x):
    return getattr(torch, "_" + "C")


def honest(x):
    return torch.zeros_like(x) + x.new_ones(x.shape)


def through_a_global_alias(x):
    return TORCH.ops.aten.add(x, x)


TORCH = torch


def test_review_function():
    findings = review_function(sneaky)
    assert findings and "computed name" in findings[0].why
    assert review_function(honest) == []
    assert any("gateway" in f.why for f in review_function(through_a_global_alias))
    assert review_function(len) == []  # no Python source: nothing to review


def test_review_function_on_closures():
    import wrong_kernels
    for fn in (wrong_kernels.conv2d_with_bug(None), wrong_kernels.conv_transpose2d_with_bug("not_flipped"),
               wrong_kernels.max_pool_with_bug(None), wrong_kernels.resize_with_bug("bilinear", None)):
        assert review_function(fn) == [], fn.__name__
