"""``make test-cuda``: the course's checks proven on a GPU, in one command.

Every check is written to run on CUDA where there is one; this script is how the first machine with a GPU proves
it. It needs only a Python with torch (a CUDA build), numpy, pytest and hypothesis: no virtual environment, no
install step, no Jupyter, no nbgrader (the solutions are read from ``solutions/`` as plain JSON). Run it from
anywhere in a checkout:

    python3 tests/cuda_check.py                 # on CUDA; where there is none it says so and exits 0
    python3 tests/cuda_check.py --device cpu    # every step on the CPU: what `make test` runs, so it cannot rot

The steps, in order (a failure is reported and the next steps still run, so one run shows everything):

1. the solutions pass every kernel's check on the device: each part of the visible suite and each hidden call
   of the solution notebooks (values, dtypes, the output's device; gradients in the ``ConvTranspose2d`` check;
   Chapter 9's speed check timed on the device). Chapter 8's training part is left out: it trains on the CPU
   whatever the device (``make test`` runs it);
2. the known-wrong kernels of ``tests/wrong_kernels.py`` are still caught on the device, and where the CPU names
   the learner's mistake, the device names the same one;
3. the kernel benchmark's rows on the device (``autograder.bench.bench_kernels``);
4. nothing imported needs more than torch, numpy, pytest and hypothesis.

The last line is the summary; the exit status is 0 only when nothing failed (or there is no CUDA to check).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Run as a plain script from a copy of the repository (no install): the checking library and the wrong kernels
# are imported from the checkout itself.
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

#: checks' parts that run on the CPU whatever the device (so they prove nothing here), by check
CPU_ONLY_PARTS = {"check_segnet": ("training",)}

#: what a machine with torch, numpy, pytest and hypothesis lacks: none of it may be imported
NOT_THERE = ("nbformat", "nbgrader", "nbclient", "nbconvert", "jupyter_client", "jupyter_core", "jupytext",
             "IPython", "ipykernel", "traitlets", "yaml", "matplotlib", "sphinx", "myst_nb", "jupyter_book")


def wrong_kernels() -> list[tuple[str, str, object, str | None]]:
    """(label, check, wrong kernel, the mistake id the check names on the CPU or None where it names none):
    every kernel of ``tests/wrong_kernels.py``, the way the chapter tests use them."""
    import wrong_kernels as wk

    return wk.every_wrong_kernel()


class Run:
    """What one run found: counts per step, and every failure (label, message)."""

    def __init__(self, device: str, verbose: bool):
        self.device, self.verbose = device, verbose
        self.checks = self.caught = self.bench_rows = 0
        self.dtypes: set[str] = set()
        self.failures: list[tuple[str, str]] = []

    def fail(self, label: str, message: str) -> None:
        self.failures.append((label, message))
        print(f"  ✘ {label}\n" + "\n".join("      " + ln for ln in message.strip().splitlines()[-25:]), flush=True)

    def say(self, line: str) -> None:
        if self.verbose:
            print("  " + line, flush=True)


@contextlib.contextmanager
def captured():
    """Collect what a visible check prints (its ✔ lines name the devices it ran on)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


def check_solutions(run: Run) -> None:
    """Step 1: the solutions pass every check of the registry on the device."""
    import importlib

    from autograder import registry
    from autograder.bench import solution
    from autograder.contract import CaseCheck

    device = run.device
    for aid, symbol, check in registry.kernels():
        try:
            with captured():  # a solution notebook's cells print their demos
                fn = solution(aid)[symbol]
        except Exception:  # noqa: BLE001
            run.fail(f"the solution {symbol} of {aid}", traceback.format_exc())
            continue
        hidden = [dict(u.options) for u in registry.uses() if (u.aid, u.symbol, u.check) == (aid, symbol, check.check)]
        visible = ([{"part": p, "suite": "visible"} for p in check.parts] if isinstance(check, CaseCheck)
                   else [{"suite": "visible"}])  # the other checks' own parts, where they have any, all at once
        calls = visible + hidden
        skip = CPU_ONLY_PARTS.get(check.check, ())
        if skip:  # run the other parts one by one
            others = [p for p in getattr(importlib.import_module(f"autograder.{registry.module_of(check.check)}"),
                                         "PARTS", ()) if p not in skip]
            calls = [c for c in calls if c.get("part") not in skip]
            calls = [dict(c, part=p) for c in calls for p in (others if c.get("part", "all") == "all" else
                                                              (c["part"],))]
        for options in calls:
            label = f"{check.check}({symbol} [{aid[:4]}], {', '.join(f'{k}={v}' for k, v in options.items())})"
            try:
                if isinstance(check, CaseCheck):
                    report = check.report(fn, options.get("part", "all"), options.get("suite", "visible"),
                                          options.get("seed"), devices=(device,))
                    if report.devices != (device,) or not report.cases:
                        raise AssertionError(f"it ran {report.cases} cases on {report.devices}, not on ({device!r},)")
                    run.dtypes.update(str(d).removeprefix("torch.") for d in report.dtypes)
                    run.say(f"✔ {label}: {report.summary()}")
                else:
                    learner_check = getattr(importlib.import_module(f"autograder.{registry.module_of(check.check)}"),
                                            check.check)  # what a notebook calls: it picks the devices itself
                    with captured() as out:
                        learner_check(fn, **options, quiet=False)
                    ticks = [ln for ln in out.getvalue().splitlines() if ln.startswith("✔")]
                    other = "cpu" if device == "cuda" else "cuda"
                    if not any(f"on {device}" in ln for ln in ticks) or any(f"on {other}" in ln for ln in ticks):
                        raise AssertionError(f"its report does not say it ran on {device} alone:\n{out.getvalue()}")
                    run.say(f"✔ {label}: " + " / ".join(ln[2:] for ln in ticks))
                run.checks += 1
            except Exception as e:  # noqa: BLE001 - a failure is reported; the run goes on
                run.fail(label, f"{type(e).__name__}: {e}" if isinstance(e, AssertionError) else traceback.format_exc())


def check_wrong_kernels(run: Run) -> None:
    """Step 2: each known-wrong kernel fails its check on the device (hidden suite, every part), naming the
    mistake the CPU names."""
    from autograder import CheckFailure, registry

    case_checks = {c.check: c for c in registry.case_checks()}
    for label, name, fn, mistake in wrong_kernels():
        check, named, crashed = case_checks[name], [], None
        for part in check.parts:
            try:
                check.report(fn, part, "hidden", None, devices=(run.device,))
            except CheckFailure as e:
                named.append(e.mistake)
            except Exception:  # noqa: BLE001 - the check itself broke: a failure of the course, not of the kernel
                crashed = traceback.format_exc()
                break
        if crashed:
            run.fail(f"wrong kernel {label}", crashed)
        elif not named:
            run.fail(f"wrong kernel {label}", f"passed every part of {name} on {run.device}: not caught")
        elif mistake is not None and mistake not in named:
            run.fail(f"wrong kernel {label}", f"caught on {run.device}, but named {named}, not {mistake!r}")
        else:
            run.caught += 1
            run.say(f"✔ wrong kernel {label}: caught on {run.device}" + (f", named {mistake}" if mistake else ""))


def check_bench(run: Run, runs: int) -> None:
    """Step 3: the kernel benchmark's rows on the device, each a real timing of the solution and of torch."""
    from autograder.bench import bench_kernels

    try:   # one row per kernel with a benchmark shape, or it raises
        rows = bench_kernels(runs, run.device)
    except Exception:  # noqa: BLE001
        run.fail("bench_kernels", traceback.format_exc())
        return
    if not rows:
        run.fail("bench_kernels", "no rows: no kernel has a benchmark shape")
    for label, mine, baseline, theirs, ratio in rows:
        if not label.endswith(f"[{run.device}]"):
            run.fail(f"bench {label}", f"the row is not on {run.device}")
        elif not all(math.isfinite(v) and v > 0 for v in (mine, theirs, ratio)):
            run.fail(f"bench {label}", f"not a timing: {mine!r} s, {baseline} {theirs!r} s, ratio {ratio!r}")
        else:
            run.bench_rows += 1
            print(f"  {label:<68} {mine * 1e3:9.3f} ms  {baseline:<28} {theirs * 1e3:9.3f} ms  {ratio:6.2f}x")


def check_imports(run: Run) -> None:
    """Step 4: nothing a plain torch machine lacks was imported (there, it would have failed to import)."""
    found = sorted({m.split(".")[0] for m in sys.modules} & set(NOT_THERE))
    if found:
        run.fail("imports", f"imported {', '.join(found)}, which a machine with torch, numpy, pytest and "
                            "hypothesis alone does not have")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="make test-cuda", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="where to run every step (default cuda; cpu: what `make test` runs)")
    parser.add_argument("--bench-runs", type=int, default=5, help="timed runs per benchmark row (default 5)")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line for every check that passes")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    try:
        import torch
    except ImportError as e:
        print(f"test-cuda: {sys.executable} cannot import torch ({e}). It needs a Python with torch (a CUDA build), "
              "numpy, pytest and hypothesis: make test-cuda PYTHON=/path/to/that/python3")
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        why = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no GPU seen"
        print(f"test-cuda: CUDA is not available here (torch {torch.__version__} of {sys.executable}: {why}), so "
              "nothing was checked. On a machine with a GPU: make test-cuda [PYTHON=/path/to/python3]; "
              "every step on the CPU: make test-cuda CUDA_ARGS='--device cpu'.")
        return 0
    threads = torch.get_num_threads()
    if args.device == "cpu":
        # What this run shows is whether each step works, not how fast: one thread does not stall when another
        # process takes a core (make test's machine is small and busy). The speed check and the benchmark time
        # both sides on the same thread, so their ratios still mean what they say. (Put back when done: the
        # tests call main() in their own process.)
        torch.set_num_threads(1)
    try:
        return _run(args, torch, start)
    finally:
        torch.set_num_threads(threads)


def _run(args, torch, start) -> int:
    """Every step on ``args.device``; the exit status."""
    # The checks run on the devices autograder._cases.available_devices() gives: only this one.
    os.environ["COURSE_DEVICES"] = args.device
    from autograder._cases import available_devices

    if available_devices() != [args.device]:
        print(f"test-cuda: the checks would run on {available_devices()}, not on [{args.device!r}]")
        return 1
    where = args.device if args.device == "cpu" else f"cuda ({torch.cuda.get_device_name()})"
    print(f"test-cuda: torch {torch.__version__} on {where}, Python {sys.version.split()[0]}", flush=True)

    run = Run(args.device, args.verbose)
    steps = [  # in this order: the solutions first, so that a broken device shows before anything else fails
        ("the solutions pass every check", check_solutions),
        ("the known-wrong kernels are caught", check_wrong_kernels),
        ("the kernel benchmark", lambda r: check_bench(r, args.bench_runs)),
        ("nothing beyond torch, numpy, pytest and hypothesis imported", check_imports),
    ]
    for title, step in steps:
        t0, before = time.perf_counter(), len(run.failures)
        print(f"{title} on {args.device} ...", flush=True)
        step(run)
        bad = len(run.failures) - before
        print(f"  {'ok' if not bad else f'{bad} failed'} ({time.perf_counter() - t0:.1f} s)", flush=True)

    dtypes = ", ".join(sorted(run.dtypes, key=lambda d: ("float64", "float32").index(d)
                              if d in ("float64", "float32") else 9))
    if not {"float64", "float32"} <= run.dtypes:
        run.fail("dtypes", f"the checks ran in {dtypes or 'no dtype'}: float64 and float32 are both needed")
    print(f"test-cuda: {run.checks} checks passed on {args.device} ({dtypes}), {run.caught} wrong kernels caught, "
          f"{run.bench_rows} bench rows; {len(run.failures)} failures ({time.perf_counter() - start:.0f} s)")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
