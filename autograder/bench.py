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
import torch.nn.functional as F

from .notebooks import load_functions
from .timing import paired

REPO = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=None)
def solution(aid: str) -> dict:
    """The instructor's functions of an assignment (its solution notebook's cells, run once per process)."""
    return load_functions(REPO / "solutions" / aid / f"{aid}.ipynb")


def bench_checks(runs):
    """Latency of every visible check a learner runs (each part), against torch computing the same cases bare."""
    from .registry import ENTRIES

    rows = []
    for e in ENTRIES:
        fn, check, make_cases = solution(e.aid)[e.function], e.load("check"), e.load("cases")
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


def _kernel_cases(device):
    """(label, the solution's call, torch's call) for each kernel of the course, at stated shapes."""
    sols = {aid: solution(aid) for aid in (
        "ch01_cnn_size", "ch02_nearest", "ch03_bed_of_nails", "ch04_bilinear", "ch05_max_unpooling",
        "ch06_transposed_conv", "ch07_checkerboard", "ch09_making_it_fast")}
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.randn(*shape, generator=g).to(device)

    x, w, b = t(8, 16, 32, 32), t(32, 16, 3, 3), t(32)
    sub = t(8, 64, 32, 32)
    img = t(8, 16, 32, 32)
    pooled, idx = F.max_pool2d(img, 2, return_indices=True)
    wT = t(16, 32, 4, 4)
    one_hot = torch.zeros(16, 1, 1, 1, device=device) + 1
    return [
        ("conv2d (8,16,32,32)*(32,16,3,3) p1", lambda: sols["ch01_cnn_size"]["conv2d"](x, w, b, padding=1),
         "F.conv2d", lambda: F.conv2d(x, w, b, padding=1)),
        ("upsample_nearest (8,16,32,32) x2", lambda: sols["ch02_nearest"]["upsample_nearest"](img, scale_factor=2),
         "F.interpolate nearest", lambda: F.interpolate(img, scale_factor=2, mode="nearest")),
        ("bed_of_nails (8,16,32,32) s2", lambda: sols["ch03_bed_of_nails"]["bed_of_nails"](img, 2),
         "1x1 one-hot conv_transpose2d", lambda: F.conv_transpose2d(img, one_hot, stride=2, output_padding=1,
                                                                     groups=16)),
        ("upsample_bilinear (8,16,32,32) x2", lambda: sols["ch04_bilinear"]["upsample_bilinear"](img, scale_factor=2),
         "F.interpolate bilinear", lambda: F.interpolate(img, scale_factor=2, mode="bilinear")),
        ("max_pool2d_with_indices (8,16,32,32) k2", lambda: sols["ch05_max_unpooling"]["max_pool2d_with_indices"](img, 2),
         "F.max_pool2d", lambda: F.max_pool2d(img, 2, return_indices=True)),
        ("max_unpool2d (8,16,16,16) k2", lambda: sols["ch05_max_unpooling"]["max_unpool2d"](pooled, idx, 2),
         "F.max_unpool2d", lambda: F.max_unpool2d(pooled, idx, 2)),
        ("conv_transpose2d ch6 (8,16,32,32)*(16,32,4,4) s2p1",
         lambda: sols["ch06_transposed_conv"]["conv_transpose2d"](img, wT, None, 2, 1),
         "F.conv_transpose2d", lambda: F.conv_transpose2d(img, wT, None, 2, 1)),
        ("conv_transpose2d ch9 (8,16,32,32)*(16,32,4,4) s2p1",
         lambda: sols["ch09_making_it_fast"]["conv_transpose2d"](img, wT, None, 2, 1),
         "F.conv_transpose2d", lambda: F.conv_transpose2d(img, wT, None, 2, 1)),
        ("pixel_shuffle (8,64,32,32) r2", lambda: sols["ch07_checkerboard"]["pixel_shuffle"](sub, 2),
         "F.pixel_shuffle", lambda: F.pixel_shuffle(sub, 2)),
    ]


def bench_kernels(runs, device="cpu"):
    """The reference solution kernels against their torch counterparts at stated shapes."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    with torch.no_grad():
        for label, mine, base, ref in _kernel_cases(device):
            a, bb, r = paired(lambda m=mine: (m(), sync()), lambda f=ref: (f(), sync()), runs)
            rows.append((f"solution {label} [{device}]", a, base, bb, r))
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


def bench_grading(n: int = 20, aid: str = "ch06_transposed_conv"):
    """Grading throughput: this project's pipeline (sandboxed, parallel) vs plain serial `nbgrader autograde`,
    on a class of ``n`` submissions (correct, honestly wrong where the chapter has a known slip, and empty)."""
    import json
    import os
    import shutil
    import subprocess
    import tempfile

    import nbformat

    from . import notebooks as nbs
    from .grading.cli import nbgrader, setup_course

    tmp = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    release = nbs.read(REPO / "notebooks" / aid / f"{aid}.ipynb")
    answers = {g: src for _, g, src in nbs.solution_cells(nbs.read(REPO / "solutions" / aid / f"{aid}.ipynb"))}
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

    from . import _arith, ch09
    from .grading import grader, sandbox

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
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", default=str(REPO / "_build" / "bench.json"))
    parser.add_argument("--no-grading", action="store_true", help="skip the (3-minute) grading benchmark")
    parser.add_argument("--no-book", action="store_true", help="skip the (4-minute) book build benchmark")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = bench_cold_start(args.runs) + bench_checks(args.runs) + bench_kernels(args.runs)
    if torch.cuda.is_available():
        rows += bench_kernels(args.runs, "cuda")
    else:
        print("CUDA not available — CPU figures only.")
    if not args.no_grading:
        rows += bench_speed_agreement()
        rows += bench_grading(20, "ch06_transposed_conv")
        rows += bench_grading(10, "ch05_max_unpooling")
        rows += bench_grading(4, "ch09_making_it_fast")
        rows += bench_grading(2, "ch08_encoder_decoder")
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
