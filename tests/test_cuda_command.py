"""`make test-cuda` (tests/cuda_check.py): the CUDA path in one command, kept from rotting on machines without a GPU.

The GPU machine that runs it has a Python with torch, numpy, pytest and hypothesis and nothing else (no venv, no
install of the course, no Jupyter, no nbgrader). Here the same script runs with ``--device cpu`` in a Python made
to look like that machine: every other installed package refuses to import, and the course's editable install is
gone, so the script must find the checkout itself.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys

import pytest
import torch

import cuda_check
from autograder import registry
from autograder.contract import CaseCheck
from conftest import REPO, make_in_copy

SCRIPT = REPO / "tests" / "cuda_check.py"
SUMMARY = re.compile(r"^test-cuda: (\d+) checks passed on (\w+) \(([^)]*)\), (\d+) wrong kernels caught, "
                     r"(\d+) bench rows; (\d+) failures", re.M)

# Runs in the child before anything else: a Python that has torch, numpy, pytest and hypothesis (and what they
# depend on) and nothing more. A top-level import found in site-packages that is not one of those raises
# ImportError, as it would there; the editable install of the course is taken away.
TORCH_ONLY = r"""
import importlib.abc, importlib.machinery, json, os, site, sys, sysconfig
ALLOWED = set(json.loads(os.environ["TORCH_ONLY_MODULES"]))
SITE = tuple(os.path.realpath(p) for p in {*site.getsitepackages(), site.getusersitepackages(),
                                             sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]

class TorchOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "." in name or name in ALLOWED or name in sys.builtin_module_names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name)
        where = (spec.origin if spec and spec.origin not in (None, "namespace") else
                 next(iter(spec.submodule_search_locations or ()), None) if spec else None)
        if where and os.path.realpath(where).startswith(SITE):
            raise ImportError(f"No module named {name!r} (a machine with torch, numpy, pytest and hypothesis only)")
        return None

sys.meta_path.insert(0, TorchOnly())
"""


@functools.cache
def torch_only_modules() -> list[str]:
    """The top-level modules of torch, numpy, pytest, hypothesis and everything they require (extras left out)."""
    import importlib.metadata as md

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen, todo = set(), ["torch", "numpy", "pytest", "hypothesis"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return sorted(m for m, dists in md.packages_distributions().items()
                  if any(canonicalize_name(d) in seen for d in dists))


def run_torch_only(code: str, *args: str, cwd, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COURSE_DEVICES")}
    env["TORCH_ONLY_MODULES"] = json.dumps(torch_only_modules())
    return subprocess.run([sys.executable, "-c", TORCH_ONLY + code, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_torch_only_python_really_lacks_jupyter_nbgrader_and_the_course_install(tmp_path):
    """Is the stand-in for the GPU machine faithful: torch imports; nbformat, nbgrader, IPython, yaml and the
    course's own (editable) install do not?"""
    probe = ("import importlib, sys\nfor name in sys.argv[1:]:\n    try:\n        importlib.import_module(name)\n"
             "        print(name, 'imports')\n    except ImportError:\n        print(name, 'missing')\n")
    names = ["torch", "numpy", "pytest", "hypothesis", "nbformat", "nbgrader", "IPython", "yaml", "jupyter_client",
             "matplotlib", "autograder"]
    proc = run_torch_only(probe, *names, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    said = dict(line.split() for line in proc.stdout.splitlines())
    assert said == {**{n: "imports" for n in names[:4]}, **{n: "missing" for n in names[4:]}}, proc.stdout


def test_the_cuda_command_runs_every_step_on_the_cpu_with_torch_alone(tmp_path):
    """Does `tests/cuda_check.py --device cpu`, in a Python with torch, numpy, pytest and hypothesis only and from
    another folder, pass every kernel's check, catch every known-wrong kernel and time every benchmark row?"""
    run = (f"import runpy, sys\nsys.argv = [{str(SCRIPT)!r}, *sys.argv[1:]]\n"
           "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    proc = run_torch_only(run, "--device", "cpu", "--bench-runs", "2", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    found = SUMMARY.search(proc.stdout)
    assert found and proc.stdout.strip().splitlines()[-1].startswith("test-cuda: "), out[-3000:]
    checks, device, dtypes, caught, rows, failures = found.groups()
    assert device == "cpu" and int(failures) == 0
    assert {"float64", "float32"} <= set(dtypes.split(", "))
    # every check of the registry ran, at least once per part of the visible suite
    kernels = registry.kernels()
    assert int(checks) >= sum(len(c.parts) if isinstance(c, CaseCheck) else 1 for _, _, c in kernels)
    assert "✘" not in out
    assert int(caught) == len(cuda_check.wrong_kernels())
    assert int(rows) == sum(isinstance(c, CaseCheck) and c.bench is not None for _, _, c in kernels) > 0


def test_a_wrong_kernel_that_is_not_caught_fails_the_command(monkeypatch, capsys):
    """Can the command fail? A correct kernel passed off as a wrong one is "not caught": exit status 1."""
    from wrong_kernels import conv2d_with_bug

    monkeypatch.setenv("COURSE_DEVICES", "cpu")  # the script narrows the devices; put them back afterwards
    threads = torch.get_num_threads()
    monkeypatch.setattr(cuda_check, "check_solutions", lambda run: run.dtypes.update({"float64", "float32"}))
    monkeypatch.setattr(cuda_check, "check_bench", lambda run, runs: None)
    # (this pytest process has imported Jupyter's packages for other tests: the import step is tested apart)
    monkeypatch.setattr(cuda_check, "check_imports", lambda run: None)
    monkeypatch.setattr(cuda_check, "wrong_kernels",
                        lambda: [("conv2d: none", "check_conv2d", conv2d_with_bug(None), None),
                                 ("conv2d: flipped", "check_conv2d", conv2d_with_bug("flipped"), "bias-ignored")])
    assert cuda_check.main(["--device", "cpu"]) == 1
    assert torch.get_num_threads() == threads, "the run on one thread must give the process its threads back"
    out = capsys.readouterr().out
    assert "wrong kernel conv2d: none" in out and "not caught" in out
    assert "named ['kernel-flipped'" in out and "not 'bias-ignored'" in out
    assert SUMMARY.search(out).group(6) == "2"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: make test-cuda would run for real")
def test_a_plain_make_test_cuda_without_cuda_says_so_and_exits_0():
    # This test's own Python (no CUDA, by the skip above): the target's default, the first python3 on PATH, may
    # be one without torch on a machine set up by hand.
    proc = subprocess.run(["make", "--no-print-directory", "test-cuda", f"PYTHON={sys.executable}"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CUDA is not available here" in proc.stdout and "nothing was checked" in proc.stdout


def test_make_test_cuda_needs_no_venv_and_no_install(tmp_path):
    """Does the target only call the script with $(PYTHON), never the venv's set-up (the GPU machine is offline)?"""
    proc = make_in_copy(tmp_path, "-n", "test-cuda", "PYTHON=/opt/gpu/bin/python3", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines() == ["/opt/gpu/bin/python3 tests/cuda_check.py"], proc.stdout
    assert not (tmp_path / ".venv").exists()
