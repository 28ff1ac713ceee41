"""``make bench``: what costs a user time, as ratios against a baseline run side by side.

Each figure is the median of several runs measured in this one process, next
to its baseline measured in the same loop (alternating), so a ratio holds when
the machine's speed drifts. Results are printed as a table and written to
``_build/bench.json``. Benchmarks never gate the tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .notebooks import load_functions

REPO = Path(__file__).resolve().parents[1]


def paired(a, b, runs: int = 7, warmup: int = 1):
    """Median seconds of ``a`` and ``b``, run alternately, and the median of per-pair ratios."""
    for _ in range(warmup):
        a(), b()
    ta, tb, ratios = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
        ratios.append((t1 - t0) / max(t2 - t1, 1e-12))
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def bench_checks(runs):
    """Latency of every visible check a learner runs (each part), against torch computing the same cases bare."""
    from .registry import ENTRIES

    rows, solutions = [], {}
    for e in ENTRIES:
        if e.aid not in solutions:
            solutions[e.aid] = load_functions(REPO / "solutions" / e.aid / f"{e.aid}.ipynb")
        fn, check, make_cases = solutions[e.aid][e.function], e.load("check"), e.load("cases")
        reference = e.load("exercise").reference
        for part in e.parts:
            cases = make_cases(part)

            def baseline(cases=cases):
                for case in cases:
                    args, kwargs = case.materialise()
                    try:
                        reference(*args, **kwargs)
                    except Exception:  # noqa: BLE001 - invalid-argument cases
                        pass

            kwargs = {} if part == "all" else {"part": part}
            a, b, r = paired(lambda kw=kwargs: check(fn, quiet=True, **kw), baseline, runs)
            label = e.function if part == "all" else f"{e.function} part={part}"
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


def bench_kernels(sol, runs, device="cpu"):
    """The reference solution kernels against torch at stated shapes."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, 32, 32, generator=g).to(device)
    w = torch.randn(32, 16, 3, 3, generator=g).to(device)
    b = torch.randn(32, generator=g).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def mine():
        sol["conv2d"](x, w, b, stride=1, padding=1)
        sync()

    def ref():
        F.conv2d(x, w, b, stride=1, padding=1)
        sync()

    a, bb, r = paired(mine, ref, runs)
    return [(f"solution conv2d (8,16,32,32)*(32,16,3,3) p1 [{device}]", a, "F.conv2d", bb, r)]


def bench_grading(n: int = 20, aid: str = "ch06_transposed_conv"):
    """Grading throughput: this project's pipeline (sandboxed, parallel) vs plain serial `nbgrader autograde`."""
    import json
    import os
    import shutil
    import subprocess
    import tempfile

    import nbformat

    from . import notebooks as nbs
    from .grade import nbgrader, setup_course

    tmp = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    release = nbs.read(REPO / "notebooks" / aid / f"{aid}.ipynb")
    answers = {g: src for _, g, src in nbs.solution_cells(nbs.read(REPO / "solutions" / aid / f"{aid}.ipynb"))}
    wrong = {**answers, "conv_transpose2d": answers["conv_transpose2d"].replace(
        "out = out + bias.reshape(1, C_out, 1, 1)", "out = out")}
    subs = tmp / "submissions"
    for k in range(n):
        fill = (answers, wrong, {})[k % 3]
        nb = nbformat.from_dict(json.loads(json.dumps(release)))
        for cell in nb.cells:
            gid = nbs.nbgrader_meta(cell).get("grade_id")
            if gid in fill:
                cell.source = fill[gid]
        (subs / f"s{k:02d}").mkdir(parents=True)
        nbformat.write(nb, str(subs / f"s{k:02d}" / f"{aid}.ipynb"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder.grade", aid, str(subs), str(tmp / "ours")], check=True,
                   capture_output=True, cwd=REPO)
    ours = time.perf_counter() - t0
    # Plain nbgrader: the same course, its default autograde (executes every notebook), one at a time.
    plain = tmp / "plain"
    course = setup_course(aid, plain)
    cfg = (course / "nbgrader_config.py").read_text().split("# Nothing is executed")[0]
    (course / "nbgrader_config.py").write_text(cfg)
    for k in range(n):
        dst = course / "submitted" / f"s{k:02d}" / aid
        dst.mkdir(parents=True)
        shutil.copy(subs / f"s{k:02d}" / f"{aid}.ipynb", dst / f"{aid}.ipynb")
    t0 = time.perf_counter()
    nbgrader(["autograde", aid, "--force", "--log-level=ERROR"], course, check=False)
    theirs = time.perf_counter() - t0
    shutil.rmtree(tmp, ignore_errors=True)
    return [(f"grading {n} {aid} submissions: make grade (sandboxed, {os.cpu_count()} jobs)", ours,
             "serial nbgrader autograde", theirs, ours / theirs),
            ("  per submission", ours / n, "per submission", theirs / n, ours / theirs)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", default=str(REPO / "_build" / "bench.json"))
    parser.add_argument("--no-grading", action="store_true", help="skip the (3-minute) grading benchmark")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sol = load_functions(REPO / "solutions" / "ch01_cnn_size" / "ch01_cnn_size.ipynb")
    rows = bench_cold_start(args.runs) + bench_checks(args.runs) + bench_kernels(sol, args.runs)
    if torch.cuda.is_available():
        rows += bench_kernels(sol, args.runs, "cuda")
    if not args.no_grading:
        rows += bench_grading()
    else:
        print("CUDA not available — CPU figures only.")
    w = max(len(r[0]) for r in rows)
    print(f"{'measured':<{w}}  {'median':>9}  {'baseline':<24} {'median':>9}  ratio")
    for name, a, base, b, r in rows:
        print(f"{name:<{w}}  {a * 1e3:>7.1f}ms  {base:<24} {b * 1e3:>7.2f}ms  {r:>6.1f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([dict(measured=n, seconds=a, baseline=base, baseline_seconds=b, ratio=r)
                               for n, a, base, b, r in rows], indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
