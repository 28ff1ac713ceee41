"""``make bench``: what costs a user time, as ratios against a baseline run side by side.

Each figure is the median of several runs measured in this one process, next
to its baseline measured in the same loop (alternating), so a ratio holds when
the machine's speed drifts. Results are printed as a table and written to
``_build/bench.json``. Benchmarks never gate the tests.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ..notebooks import load_functions
from ..timing import paired

from ..paths import REPO, release_notebook, solution_notebook


@functools.lru_cache(maxsize=None)
def solution(aid: str) -> dict:
    """The instructor's functions of an assignment (its solution notebook's cells, run once per process), read
    as plain JSON: the kernel rows run where only torch is installed (``make test-cuda``)."""
    return load_functions(solution_notebook(aid))


def bench_checks(runs):
    """Latency of every visible check a learner runs (each part), against torch computing the same cases bare:
    every case check of the registry, on the solution of each assignment that uses it."""
    from ..contract import CaseCheck
    from ..registry import kernels

    rows = []
    for aid, symbol, check in kernels():
        if not isinstance(check, CaseCheck):
            continue
        fn, visible, reference = solution(aid)[symbol], check.visible(), check.exercise.reference
        for part in check.parts:
            cases = check.cases(part, "visible", None)

            def baseline(cases=cases):
                for case in cases:
                    args, kwargs = case.materialise()
                    try:
                        reference(*args, **kwargs)
                    except Exception:  # noqa: BLE001 - invalid-argument cases
                        pass

            kwargs = {} if part == "all" else {"part": part}
            a, b, r = paired(lambda kw=kwargs: visible(fn, quiet=True, **kw), baseline, runs)
            label = f"{symbol} [{aid[:4]}]" + ("" if part == "all" else f" part={part}")
            rows.append((f"visible check: {label} ({len(cases)} cases)", a, "torch on the same cases", b, r))
    return rows


COLD_SCRIPT = """
import time, json, sys
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from autograder import ch01
t2 = time.perf_counter()
from autograder.notebooks import load_functions
sol = load_functions(sys.argv[1])
t3 = time.perf_counter()
ch01.check_conv2d(sol["conv2d"], part="hyper", quiet=True)
t4 = time.perf_counter()
print(json.dumps({"torch": t1 - t0, "setup": t2 - t1, "first": t4 - t3}))
"""


def bench_cold_start(runs):
    """A learner's first minute: the notebook's setup cell, then the first check call (fresh process)."""
    import subprocess

    samples = []
    for _ in range(max(3, runs // 2)):
        out = subprocess.run([sys.executable, "-c", COLD_SCRIPT,
                              str(REPO / "solutions" / "ch01_cnn_size" / "ch01_cnn_size.ipynb")],
                             capture_output=True, text=True, check=True).stdout
        samples.append(json.loads(out))
    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    return [("setup cell: import autograder.ch01 (fresh process)", med["setup"], "import torch", med["torch"],
             med["setup"] / med["torch"]),
            ("first visible check call (conv2d hyper)", med["first"], "import torch", med["torch"],
             med["first"] / med["torch"])]


def _kernel_cases(device):
    """(label, the solution's call, torch's label, torch's call) for each kernel of the course that its check
    gives a benchmark shape (:class:`~autograder.contract.BenchShape`), on each assignment's solution."""
    from ..contract import CaseCheck
    from ..registry import kernels

    found = []
    for aid, symbol, check in kernels():
        shape = check.bench if isinstance(check, CaseCheck) else None
        if shape is None:
            continue
        args, kwargs = shape.inputs(device)
        mine = solution(aid)[symbol]
        found.append((f"{symbol} [{aid[:4]}] {shape.label}", lambda m=mine, a=args, k=kwargs: m(*a, **k),
                      shape.baseline, lambda t=shape.torch_call, a=args, k=kwargs: t(*a, **k)))
    return found


def bench_kernels(runs, device="cpu"):
    """The reference solution kernels against their torch counterparts at stated shapes."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    with torch.no_grad():
        for label, mine, base, ref in _kernel_cases(device):
            a, bb, r = paired(lambda m=mine: (m(), sync()), lambda f=ref: (f(), sync()), runs)
            rows.append((f"solution {label} [{device}]", a, base, bb, r))
    return rows


def bench_fastest_route(runs, device="cpu", routes=None):
    """Chapter 9's fastest route (``ch09.FASTEST``; with ``routes``, those of ``ch09.ROUTES``) against
    F.conv_transpose2d at the chapter's shapes (``ch09.SHAPES``), on one thread and on the default threads (both
    sides alike), timed side by side by ``ch09.time_routes`` (the measure of the book's table)."""
    from .. import ch09

    default = torch.get_num_threads()
    rows = []
    try:
        for threads in sorted({1, default}):
            torch.set_num_threads(threads)
            for label, shape in ch09.SHAPES.items():
                for name, (a, b, r) in ch09.time_routes(shape, routes or [ch09.FASTEST], runs, device).items():
                    what = f"fastest route ({name})" if name == ch09.FASTEST else f"route ({name})"
                    rows.append((f"ch09 {what} at {label} [{device}, {threads} thread"
                                 f"{'s' if threads > 1 else ''}]", a, "F.conv_transpose2d", b, r))
    finally:
        torch.set_num_threads(default)
    return rows


def bench_book():
    """The book (make book, make book-student): a clean build of the instructor edition, the
    student edition from the same execution cache, a rebuild with nothing changed, and one that
    reads every page again (cache hits)."""
    import re
    import shutil
    import tempfile

    from autograder import book

    root = Path(tempfile.mkdtemp(prefix="bench-book-"))
    cache = root / "jupyter_cache"

    def build(edition="instructor"):
        t0 = time.perf_counter()
        proc = book.build(edition, root / edition, cache=cache, quiet=True)
        if proc.returncode:
            raise RuntimeError(f"the {edition} edition failed to build:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        return time.perf_counter() - t0, proc.stdout + proc.stderr

    clean, _ = build()
    student, _ = build("student")
    again, _ = build()
    # Forget what Sphinx read (not the execution cache): every page is read and rendered again, and
    # each chapter's outputs come from the cache unless its code changed. The sources stay untouched.
    shutil.rmtree(root / "instructor" / "_build" / ".doctrees")
    reread, log = build()
    shutil.rmtree(root, ignore_errors=True)
    pages = len(re.findall(r"Using cached notebook", log)) + len(re.findall(r"Executing notebook", log))
    hit = len(re.findall(r"Using cached notebook", log)) / max(1, pages)
    return [("book: clean build, instructor edition (executes every chapter)", clean, "-", float("nan"), float("nan")),
            ("book: student edition after it (shared execution cache)", student, "clean build", clean, student / clean),
            ("book: rebuild, nothing changed", again, "clean build", clean, again / clean),
            (f"book: every page read again, {pages} executed pages (cache hit rate {hit:.0%})", reread, "clean build",
             clean, reread / clean)]


def grading_classes() -> dict[str, int]:
    """The classes the grading benchmark grades: each assignment one of whose checks asks for one
    (``GradedCheck.bench_class``), of the largest size asked."""
    from ..registry import checks, uses

    sizes: dict[str, int] = {}
    for u in uses():
        size = checks()[u.check].bench_class
        if size:
            sizes[u.aid] = max(size, sizes.get(u.aid, 0))
    return sizes


def bench_grading(n: int = 20, aid: str = "ch06_transposed_conv"):
    """Grading throughput: this project's pipeline (sandboxed, parallel) vs plain serial `nbgrader autograde`,
    on a class of ``n`` submissions (correct, honestly wrong where the chapter has a known slip, and empty)."""
    import json
    import os
    import shutil
    import subprocess
    import tempfile

    import nbformat

    from .. import notebooks as nbs
    from ..grading.cli import course_config, nbgrader, setup_course

    tmp = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    release = nbs.read(release_notebook(aid))
    answers = {g: src for _, g, src in nbs.solution_cells(nbs.read(solution_notebook(aid)))}
    fills = [answers, {}]
    if "conv_transpose2d" in answers and "out = out + bias.reshape(1, C_out, 1, 1)" in answers["conv_transpose2d"]:
        fills.insert(1, {**answers, "conv_transpose2d": answers["conv_transpose2d"].replace(
            "out = out + bias.reshape(1, C_out, 1, 1)", "out = out")})
    subs = tmp / "submissions"
    for k in range(n):
        fill = fills[k % len(fills)]
        nb = nbformat.from_dict(json.loads(json.dumps(release)))
        for cell in nb.cells:
            gid = nbs.nbgrader_meta(cell).get("grade_id")
            if gid in fill:
                cell.source = fill[gid]
        (subs / f"s{k:02d}").mkdir(parents=True)
        nbformat.write(nb, str(subs / f"s{k:02d}" / f"{aid}.ipynb"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder.grading", aid, str(subs), str(tmp / "ours")], check=True,
                   capture_output=True, cwd=REPO)
    ours = time.perf_counter() - t0
    # a fast run counts only if it graded right: the solution's submissions have full marks
    import csv

    with open(tmp / "ours" / "grades.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    wrong = [r["student_id"] for k, r in enumerate(sorted(rows, key=lambda r: r["student_id"]))
             if fills[k % len(fills)] is answers and r["score"] != r["max_score"]]
    if wrong:
        raise RuntimeError(f"make grade did not give the solution full marks ({wrong}): no figure for {aid}")
    # where each submission's time went (stamped by the grader), and an unchanged re-run
    stamps = [json.loads(p.read_text()) for p in (tmp / "ours" / "state" / "stamps").glob("*.json")]
    sandbox_s = sum(st.get("seconds", {}).get("sandbox", 0) for st in stamps) / max(1, len(stamps))
    verify_s = sum(st.get("seconds", {}).get("verify", 0) for st in stamps) / max(1, len(stamps))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder.grading", aid, str(subs), str(tmp / "ours")], check=True,
                   capture_output=True, cwd=REPO)
    rerun = time.perf_counter() - t0
    # Plain nbgrader: the same course, its default autograde (executes every notebook), one at a time.
    plain = tmp / "plain"
    course = setup_course(aid, plain)
    (course / "nbgrader_config.py").write_text(course_config(course, execute=True))
    for k in range(n):
        dst = course / "submitted" / f"s{k:02d}" / aid
        dst.mkdir(parents=True)
        shutil.copy(subs / f"s{k:02d}" / f"{aid}.ipynb", dst / f"{aid}.ipynb")
    t0 = time.perf_counter()
    nbgrader(["autograde", aid, "--force", "--log-level=ERROR"], course, check=False)
    theirs = time.perf_counter() - t0
    shutil.rmtree(tmp, ignore_errors=True)
    nan = float("nan")
    return [(f"grading {n} {aid} submissions: make grade (sandboxed, {os.cpu_count()} jobs)", ours,
             "serial nbgrader autograde", theirs, ours / theirs),
            (f"  {aid}: seconds per submission (wall)", ours / n, "per submission", theirs / n, ours / theirs),
            (f"  {aid}: per submission, in the sandboxed worker", sandbox_s, "-", nan, nan),
            (f"  {aid}: per submission, verifying in the grader", verify_s, "-", nan, nan),
            (f"  {aid}: unchanged re-run, per submission", rerun / n, "first run, per submission", ours / n,
             rerun / ours)]


def bench_speed_agreement(routes=("scatter", "fold")):
    """Chapter 9's routes timed two ways: within one process (``timing.paired``, one thread, the workers'
    allocator settings) and by the grader (a sandboxed worker against a sandboxed torch worker, clocked around
    the channel's go/done). The two ratios should agree: the grader measures the kernel, not the channel.
    (The phases route calls F.conv2d, which the exercise's rule forbids: the grader's guarded call refuses it.)"""
    import inspect
    import os
    import subprocess

    from .. import _arith, ch09
    from ..grading import grader, sandbox

    if not sandbox.available():
        print("bubblewrap does not work here: the grader-side speed figures are skipped.")
        return []
    rows = []
    for name in routes:
        # the grader's protocol without the channel or a second process: the same fresh inputs, the same
        # batches, route and torch alternating
        code = ("import statistics, time, torch, torch.nn.functional as F\nfrom autograder import ch09\n"
                "torch.set_num_threads(1)\ncheck = ch09.GRADED_SPEED\nratios = []\n"
                "for k in range(check.warmup + check.runs):\n"
                "    calls = [check.timed_inputs({'seed': 0}, k * check.calls_per_run + j) "
                "for j in range(check.calls_per_run)]\n"
                "    spans = {}\n"
                f"    for who, fn in ((('route', ch09.route_{name}), ('torch', F.conv_transpose2d)) if k % 2 == 0 else "
                f"(('torch', F.conv_transpose2d), ('route', ch09.route_{name}))):\n"
                "        t0 = time.perf_counter()\n"
                "        for args, kw in calls:\n            fn(*args, **kw)\n"
                "        spans[who] = time.perf_counter() - t0\n"
                "    if k >= check.warmup:\n        ratios.append(spans['route'] / spans['torch'])\n"
                "print(statistics.median(ratios))\n")
        env = dict(os.environ, OMP_NUM_THREADS="1", **sandbox.ALLOCATOR)
        local = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                     check=True).stdout.split()[-1])
        # the route's own source, as a submission would hold it (a call into the library would be refused)
        source = "import torch\nimport torch.nn.functional as F\n\n" + "\n\n".join(
            inspect.getsource(f) for f in (_arith.pair, ch09._sizes, ch09._finish, getattr(ch09, f"route_{name}")))
        source += f"\n\nconv_transpose2d = route_{name}\n"
        remote = grader.speed_ratio(source, "conv_transpose2d")["ratio"]
        rows.append((f"ch09 route {name}: ratio to torch timed by the grader (agreement {remote / local:.2f})",
                     remote, "ratio timed in one process", local, remote / local))
    return rows


def main(argv=None) -> int:
    """``make bench``: run the benchmarks, print the table and write it to ``--out`` as JSON."""
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", default=str(REPO / "_build" / "bench.json"))
    parser.add_argument("--no-grading", action="store_true", help="skip the (3-minute) grading benchmark")
    parser.add_argument("--no-book", action="store_true", help="skip the (4-minute) book build benchmark")
    parser.add_argument("--every-route", action="store_true",
                        help="time every route of Chapter 9, not only its fastest (about 2 minutes more)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = bench_cold_start(args.runs) + bench_checks(args.runs) + bench_kernels(args.runs)
    from .. import ch09

    routes = list(ch09.ROUTES) if args.every_route else None
    rows += bench_fastest_route(args.runs, routes=routes)
    if torch.cuda.is_available():
        rows += bench_kernels(args.runs, "cuda") + bench_fastest_route(args.runs, "cuda", routes)
    else:
        print("CUDA not available — CPU figures only.")
    if not args.no_grading:
        rows += bench_speed_agreement()
        for aid, size in grading_classes().items():
            rows += bench_grading(size, aid)
    if not args.no_book:
        rows += bench_book()
    w = max(len(r[0]) for r in rows)
    print(f"{'measured':<{w}}  {'median':>9}  {'baseline':<24} {'median':>9}  ratio")
    for name, a, base, b, r in rows:
        if "ratio to torch" in name:  # both figures are ratios already
            print(f"{name:<{w}}  {a:>8.2f}x  {base:<24} {b:>8.2f}x  {r:>6.2f}")
        elif b != b:  # no baseline (nan)
            print(f"{name:<{w}}  {a:>8.1f}s  {base:<24}")
        elif max(a, b) > 10:
            print(f"{name:<{w}}  {a:>8.1f}s  {base:<24} {b:>8.1f}s  {r:>6.2f}x")
        else:
            print(f"{name:<{w}}  {a * 1e3:>7.1f}ms  {base:<24} {b * 1e3:>7.2f}ms  {r:>6.1f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([dict(measured=n, seconds=a, baseline=base, baseline_seconds=b, ratio=r)
                               for n, a, base, b, r in rows], indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
