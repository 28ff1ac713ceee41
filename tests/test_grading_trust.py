"""Grading that trusts nothing the submission could touch (DESIGN §6.1), one attack family at a time.

Three levels, each real:

* the sandbox's view: a search of every file the sandbox can read finds none of the markers planted in
  every instructor-only place, and does find the positive controls planted where it may read;
* the grader alone (``grader.grade_submission``, policy off): what the runtime design holds by itself —
  crashes, forged and oversized frames on the channel, links and planted result files in the scratch
  folder, hidden cases predicted from the published seeds, speed memoised, faked or garbage after the first
  call. The in-sandbox guard switched off is shown to beat the runtime alone (which is why the policy exists);
* ``make grade`` end to end (real nbgrader, gradebook, CSV), with the static policy: the guard switched off
  through string-built names scores no more than an honest wrong answer and is marked for a manual grade.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import notebooks as nbs
from autograder.grading import grader, sandbox
from autograder.grading.protocol import (MAGIC, ChannelClosed, FrameReader, ProtocolError, decode, encode,
                                         write_frame)
from autograder.grading.spec import graded_checks, graded_parts
from conftest import REPO, answers, grade_class, release_path, solution_path, submission

needs_sandbox = pytest.mark.skipif(not sandbox.available(), reason="bubblewrap does not work here (apt-get install "
                                   "bubblewrap); `make grade` refuses to run without it")

CH01 = "ch01_cnn_size"
CH09 = "ch09_making_it_fast"
A1 = answers(CH01)
HEAD = "def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):\n"
BOB = {**A1, "conv2d": A1["conv2d"].replace("out = out + bias.reshape(1, C_out, 1, 1)", "out = out")}
HONEST_WRONG_CH01 = 2      # conv2d_output_size right, conv2d ignoring the bias

#: Three lines that switch the in-sandbox dispatch guard off, the private module named through a built string.
GUARD_OFF = (HEAD + "    import torch.nn.functional as F\n    import torch.utils\n"
             "    mode = getattr(torch.utils, '_python' + '_dispatch')\n"
             "    with mode._disable_current_modes():\n"
             "        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)\n")


# --------------------------------------------------------------------------
# The channel: plain data only, every frame checked


def test_frames_round_trip_every_case_checks_hidden_request():
    """Every case check's hidden request (tensors, tuples, ints, None) crosses the channel unchanged."""
    import torch

    for name, check in graded_checks().items():
        if not hasattr(check, "entry"):
            continue
        request = check.request({"part": "all", "suite": "hidden", "seed": 7}, None)
        frame = encode(request)
        _, hlen, plen = struct.unpack(">4sIQ", frame[:16])
        back = decode(frame[16:16 + hlen], frame[16 + hlen:])
        assert len(back["calls"]) == len(request["calls"]) > 0, name
        for a, b in zip(request["calls"], back["calls"]):
            for x, y in zip(a["args"], b["args"]):
                assert type(x) is type(y) and (torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y), name


def _frame(header: bytes, payload: bytes = b"", magic: bytes = MAGIC, hlen=None, plen=None) -> bytes:
    return struct.pack(">4sIQ", magic, len(header) if hlen is None else hlen,
                       len(payload) if plen is None else plen) + header + payload


FORGED = {
    "pickle instead of a frame": b"\x80\x04\x95" + b"\x00" * 40,
    "oversized header": _frame(b"{}", hlen=1 << 30),
    "oversized payload": _frame(b"{}", plen=1 << 40),
    "header not JSON": _frame(b"\x80\x04not json"),
    "not a frame header": _frame(b'{"body": 1}'),
    "tensor bigger than its bytes": _frame(json.dumps({"body": {"__tensor__": 0},
                                                       "tensors": [["float64", [1000, 1000], 0, 8]]}).encode(), b"\0" * 8),
    "dtype that is not allowed": _frame(json.dumps({"body": {"__tensor__": 0},
                                                    "tensors": [["complex128", [1], 0, 16]]}).encode(), b"\0" * 16),
    "reference to no tensor": _frame(json.dumps({"body": {"__tensor__": 3}, "tensors": []}).encode()),
    "negative shape": _frame(json.dumps({"body": 0, "tensors": [["float32", [-1], 0, 0]]}).encode()),
    "nested too deeply": _frame(json.dumps({"body": json.loads("[" * 500 + "]" * 500), "tensors": []}).encode()),
}


@pytest.mark.parametrize("what", list(FORGED))
def test_a_forged_or_oversized_frame_is_rejected_before_anything_is_allocated(what):
    r, w = os.pipe()
    try:
        os.write(w, FORGED[what] + b"\0" * 64)
        os.close(w)
        w = -1
        with pytest.raises(ProtocolError):
            FrameReader(r, 1 << 20, 64 << 20).read()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_a_closed_channel_is_told_apart_and_only_plain_data_is_sent():
    r, w = os.pipe()
    os.close(w)
    with pytest.raises(ChannelClosed):
        FrameReader(r).read()
    os.close(r)
    with pytest.raises(ValueError):
        encode({"f": lambda: 0})
    r, w = os.pipe()
    write_frame(w, {"x": (1, [2.5, None], "s")})
    assert FrameReader(r).read() == {"x": (1, [2.5, None], "s")}
    os.close(r), os.close(w)


# --------------------------------------------------------------------------
# The sandbox's view: an allowlist, proven by a search of every file it can read

SEARCH = r'''
import json, os, sys
marker = sys.argv[1]
mb = marker.encode()
hits, read = [], 0
for root, dirs, files in os.walk("/", followlinks=False):
    if root in ("/proc", "/sys", "/dev"):
        dirs[:] = []
        continue
    hits += [os.path.join(root, n) for n in files + dirs if marker in n]
    for f in files:
        p = os.path.join(root, f)
        try:
            if os.path.islink(p) or os.path.getsize(p) > (4 << 20):
                continue
            with open(p, "rb") as fh:
                data = fh.read()
            read += 1
            if mb in data:
                hits.append(p)
        except OSError:
            pass
hits += ["env:" + k for k, v in os.environ.items() if marker in k or marker in v]
print(json.dumps({"hits": hits, "read": read}))
'''


def _run_in_zygote_worker(code: str, seconds: float = 600) -> dict:
    """Run ``code`` as a submission's only cell in a worker forked by the current zygote; the dict it reports
    by raising RuntimeError(json.dumps(...)) (the cell's error is the one thing a worker sends back unasked)."""
    sub = grader.Submission([[0, code]], Path("/nonexistent/never-used"), 0, sandbox.Limits(), False, [])
    session = grader.Session(sub, time.monotonic() + seconds)
    try:
        worker = session.worker_or_none()
        assert worker is not None and worker.zygote is not None, session.dead
        errors = session.cell_errors
        assert errors and errors[0]["type"] == "RuntimeError", errors
        return json.loads(errors[0]["message"])
    finally:
        session.close()


@needs_sandbox
@pytest.mark.parametrize("zygote", [False, True], ids=["own-sandbox", "zygote"])
def test_a_submission_searching_every_file_it_can_read_finds_no_instructor_material(tmp_path, zygote):
    """In a sandbox of its own, or forked by the zygote (the same allowlist; a worker adds nothing to it)."""
    marker = "instructor-only-" + hashlib.sha256(os.urandom(16)).hexdigest()[:16]
    out = tmp_path / "out"
    instructor_only = [REPO / ".git" / f"{marker}.txt", REPO / "solutions" / f".{marker}", REPO / "tests" / f".{marker}",
                       REPO / "book" / "_hidden" / f".{marker}", REPO / "_build" / f".{marker}",
                       REPO / ".grading" / f".{marker}", REPO / f".{marker}", Path.home() / f".{marker}",
                       out / "course" / "gradebook-copy.txt", out / "state" / "offering.key",
                       out / "state" / "stamps" / "other.json", out / "work" / "other_student" / "notes.txt",
                       out / "feedback" / "other_student" / "page.html"]
    control = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / \
        "zz_marker_control" / "readable.txt"
    planted = []
    try:
        for path in instructor_only + [control]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"secret: {marker}\n")
            planted.append(path)
        os.environ["COURSE_GRADER_SECRET"] = marker
        if zygote:  # the student's own file, then the search, reported as the cell's error
            search = SEARCH.replace("marker = sys.argv[1]", f"marker = {marker!r}\nopen('mine.txt', 'w').write(marker)")
            search = search.replace('print(json.dumps({"hits": hits, "read": read}))',
                                    'raise RuntimeError(json.dumps({"hits": hits, "read": read}))')
            assert grader.start_zygote([], sandbox.Limits()).ready(), sandbox.ZYGOTE.why
            found = _run_in_zygote_worker(search)
        else:
            scratch = out / "work" / "me"
            uid = sandbox.uid_for("me")
            sandbox.prepare_scratch(scratch, uid)
            (scratch / "mine.txt").write_text(marker)  # the student's own folder: readable (a second control)
            cmd = sandbox.bwrap_command([sys.executable, "-I", "-c", SEARCH, marker], str(scratch), sandbox.Limits(),
                                        uid)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=os.environ)
            found = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        grader.stop_zygote()
        os.environ.pop("COURSE_GRADER_SECRET", None)
        for path in planted:
            path.unlink(missing_ok=True)
        shutil.rmtree(control.parent, ignore_errors=True)
    hits = set(found["hits"])
    # The positive controls: the search reached deep into the Python environment and the scratch folder.
    assert str(control) in hits and "/scratch/mine.txt" in hits, found
    assert found["read"] > 10_000, found
    leaked = hits - {str(control), "/scratch/mine.txt"}
    assert not leaked, leaked


#: The first worker leaves traces everywhere it can write and keeps a socket listening, then waits.
LEAVE_TRACES = r'''
import os, socket
for d in ("/scratch", "/tmp", "/dev/shm"):
    try:
        open(os.path.join(d, "left-by-a"), "w").write("a")
    except OSError:
        pass
LISTENER = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
LISTENER.bind("\0upck-left-by-a")
LISTENER.listen(1)
'''

#: The second worker, running at the same time, looks for them and tries to undo its isolation.
LOOK_AROUND = r'''
import ctypes, json, os, resource, socket, stat
libc = ctypes.CDLL(None, use_errno=True)
r = {"seen": [], "undone": [], "sockets": []}
for d in ("/scratch", "/tmp", "/dev/shm", "/"):
    try:
        r["seen"] += [os.path.join(d, n) for n in os.listdir(d) if "left-by-a" in n]
    except OSError:
        pass
for fd in range(3, 1024):
    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            r["sockets"].append(fd)
    except OSError:
        pass
try:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect("\0upck-left-by-a")
    r["seen"].append("abstract socket")
except OSError:
    pass
r["proc"] = os.listdir("/proc")
for target in ("/tmp", "/proc", "/scratch"):
    if libc.umount2(target.encode(), 2) == 0:
        r["undone"].append("umount " + target)
if libc.mount(b"proc", b"/proc", b"proc", 0, None) == 0:
    r["undone"].append("mount proc")
if libc.unshare(0x10000000 | 0x00020000) == 0:  # a user and mount namespace of its own: caps there, but
    for target in ("/tmp", "/proc"):             # the inherited mounts are locked
        if libc.umount2(target.encode(), 2) == 0:
            r["undone"].append("nested umount " + target)
import autograder
for folder in (os.path.dirname(autograder.__file__), os.path.dirname(os.__file__)):
    try:
        open(os.path.join(folder, "planted-by-b.py"), "w").write("x")
        r["undone"].append("wrote into " + folder)
    except OSError:
        pass
import autograder.ch03  # a module the zygote did not load: the environment is still there, even under /tmp
r["as_limit"] = resource.getrlimit(resource.RLIMIT_AS)[0]
r["pid"] = os.getpid()
raise RuntimeError(json.dumps(r))
'''


@needs_sandbox
def test_workers_of_one_zygote_see_nothing_of_each_other_and_cannot_undo_their_walls():
    limits = sandbox.Limits()
    assert grader.start_zygote([], limits).ready(), sandbox.ZYGOTE.why
    first = grader.Session(grader.Submission([[0, LEAVE_TRACES]], Path("/nonexistent"), 0, limits, False, []),
                           time.monotonic() + 120)
    try:
        assert first.worker_or_none() is not None and not first.cell_errors, (first.dead, first.cell_errors)
        found = _run_in_zygote_worker(LOOK_AROUND, 120)  # while the first still runs, listening
        assert first.worker.running()
    finally:
        first.close()
        grader.stop_zygote()
    assert found["seen"] == [] and found["undone"] == [], found
    assert found["proc"] == [] and found["sockets"] == [], found  # no /proc; not the zygote's control socket
    assert found["as_limit"] == limits.memory_mb * 2**20 and found["pid"] == 2, found


# --------------------------------------------------------------------------
# The grader alone (policy off): what the runtime design holds by itself


def _cells(aid: str, sources: dict) -> list:
    nb = submission(nbs.read(release_path(aid)), sources)
    return [[i, c.source] for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and not nbs.nbgrader_meta(c).get("grade")]


def _grade(tmp_path, aid, sources, name="s", zygote=True, **limits):
    """Grade one submission with the grader alone. ``zygote``: its workers forked by a zygote, as `make grade`
    does; else each in a sandbox of its own (what `make grade` falls back to)."""
    parts = graded_parts(solution_path(aid))
    modules = sorted({grader.check_module(p.check) for part in parts for p in part.calls})
    lim = sandbox.Limits(**{"wall_seconds": 240, "cell_seconds": 20, **limits})
    sub = grader.Submission(_cells(aid, sources), tmp_path / "work" / name, sandbox.uid_for(name), lim, False, modules)
    if zygote:
        assert grader.start_zygote(modules, lim).ready(), sandbox.ZYGOTE.why
    try:
        results, errors, _ = grader.grade_submission(sub, parts, b"offering-secret", None, lim.part_seconds or 30)
    finally:
        grader.BASELINES.close()
        grader.stop_zygote()
    return sum(p for p, _ in results.values()), results


both_ways = pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "own-sandbox"])


FRAME_ATTACKS = {
    # student code writes onto the worker's channel itself (descriptors 3 and 4 are the channel's copies)
    "forged_full_marks": "import os\nfrom autograder.grading.protocol import encode\nfor fd in range(3, 8):\n"
                         "    try:\n        os.write(fd, encode({'op': 'ready', 'cell_errors': []}) + "
                         "encode({'op': 'result', 'record': {'cases': {}}}))\n    except OSError:\n        pass\n",
    "oversized_frame": "import os, struct\nfor fd in range(3, 8):\n    try:\n"
                       "        os.write(fd, struct.pack('>4sIQ', b'UPCK', 10, 1 << 40))\n    except OSError:\n        pass\n",
    "pickle_on_the_channel": "import os, pickle\nfor fd in range(3, 8):\n    try:\n"
                             "        os.write(fd, pickle.dumps({'record': 'full marks'}))\n    except OSError:\n        pass\n",
}


@needs_sandbox
@both_ways
@pytest.mark.parametrize("attack", list(FRAME_ATTACKS))
def test_frames_forged_by_the_submission_earn_nothing(tmp_path, attack, zygote):
    score, results = _grade(tmp_path, CH01, {**BOB, "conv2d": BOB["conv2d"] + "\n" + FRAME_ATTACKS[attack]},
                            zygote=zygote, part_seconds=10)
    assert score <= HONEST_WRONG_CH01, results


LINKS = ("import os\nfor name, target in [('done.json', '/etc/passwd'), ('probe0.pt', '../other/probe0.pt'),\n"
         "                     ('results.pt', '/scratch/../../state/stamps/victim.json'), ('job.json', '/tmp')]:\n"
         "    try:\n        os.symlink(target, name)\n    except OSError:\n        pass\n"
         "import torch\ntorch.save({'cases': {}, 'module': {}}, 'probe1.pt')\n"
         "open('log.json', 'w').write('{\"cell_errors\": []}')\n")


@needs_sandbox
def test_links_and_result_files_planted_in_the_scratch_folder_are_never_read_or_followed(tmp_path):
    """(Workers in sandboxes of their own: a zygote's workers have no scratch folder outside their sandbox.)"""
    bait = tmp_path / "state" / "stamps" / "victim.json"
    bait.parent.mkdir(parents=True)
    bait.write_text('{"victim": 10}')
    (tmp_path / "work" / "other").mkdir(parents=True)
    (tmp_path / "work" / "other" / "probe0.pt").write_text("other student's")
    before = {p: p.read_bytes() for p in (bait, tmp_path / "work" / "other" / "probe0.pt")}
    score, results = _grade(tmp_path, CH01, {**BOB, "conv2d": BOB["conv2d"] + "\n" + LINKS}, name="linker",
                            zygote=False)
    assert score == HONEST_WRONG_CH01, results
    assert {p: p.read_bytes() for p in before} == before
    # a second run (a regrade) clears the scratch folder without following a link out of it
    score, _ = _grade(tmp_path, CH01, {**BOB, "conv2d": BOB["conv2d"] + "\n" + LINKS}, name="linker", zygote=False)
    assert score == HONEST_WRONG_CH01 and {p: p.read_bytes() for p in before} == before


@needs_sandbox
@both_ways
@pytest.mark.parametrize("how", ["exit", "segfault"])
def test_a_submission_that_ends_its_process_gets_no_result_and_the_reason(tmp_path, how, zygote):
    line = "import os\nos._exit(0)\n" if how == "exit" else "import ctypes\nctypes.string_at(0)\n"
    score, results = _grade(tmp_path, CH01, {**A1, "conv2d": line + A1["conv2d"]}, zygote=zygote)
    assert score == 0
    messages = " ".join(m for _, m in results.values())
    assert "no result came back" in messages and "ended with status" in messages, messages


@needs_sandbox
@both_ways
def test_a_part_past_its_time_limit_is_stopped_by_the_grader_and_the_rest_still_graded(tmp_path, zygote):
    # loops for an int size (the part's own cases), not for the (H, W) pairs conv2d passes it
    looping = (A1["conv2d_output_size"].replace("def conv2d_output_size(", "def _size(", 1)
               + "\n\ndef conv2d_output_size(size, *args, **kwargs):\n    while isinstance(size, int):\n        pass\n"
               "    return _size(size, *args, **kwargs)\n")
    loop = {**A1, "conv2d_output_size": looping}
    score, results = _grade(tmp_path, CH01, loop, zygote=zygote, part_seconds=5)
    assert results["test_conv2d_output_size"][0] == 0 and "timed out" in results["test_conv2d_output_size"][1]
    assert score == 8  # the three conv2d parts, in a fresh worker


@needs_sandbox
def test_the_guard_switched_off_beats_the_runtime_alone(tmp_path):
    """Why the static policy exists: inside its own process, a submission can undo the dispatch guard."""
    score, _ = _grade(tmp_path, CH01, {**A1, "conv2d": GUARD_OFF})
    assert score == 10


def _predictor() -> str:
    """A conv2d that knows everything public — the generators and the published hidden seeds — and answers the
    predicted hidden cases from a table computed at the top level (no guard there); else it returns garbage."""
    import re

    seeds = sorted({int(s) for s in re.findall(r"seed=(\d+)", json.dumps(nbs.read(solution_path(CH01))))})
    return (HEAD + "    for x, y in TABLE:\n"
            "        if x.shape == input.shape and torch.equal(x, input):\n            return y.clone()\n"
            "    return input\n"
            "import torch\nimport torch.nn.functional as F\nfrom autograder.ch01 import conv2d_cases\nTABLE = []\n"
            f"for seed in {seeds + [None, 0, 1]!r}:\n"
            "    for suite in ('visible', 'hidden'):\n"
            "        for case in conv2d_cases('all', suite, seed):\n"
            "            for dtype in case.dtypes:\n"
            "                args, kwargs = case.materialise('cpu', dtype)\n"
            "                try:\n                    TABLE.append((args[0], F.conv2d(*args, **kwargs)))\n"
            "                except Exception:\n                    pass\n")


@needs_sandbox
def test_hidden_cases_cannot_be_predicted_from_what_the_sandbox_or_the_public_repository_holds(tmp_path):
    score, results = _grade(tmp_path, CH01, {**A1, "conv2d": _predictor()})
    assert score <= HONEST_WRONG_CH01, results


# ---- speed: timed by the grader


def _slow_correct(repeat: int = 30) -> str:
    """An honest but slow conv_transpose2d: Chapter 6's correct solution, computed ``repeat`` times."""
    ch06 = answers("ch06_transposed_conv")
    src = ch06["conv_transpose2d"].replace("def conv_transpose2d(", "def _ct(", 1)
    return (ch06["conv_transpose2d_output_size"] + "\n\n" + src + "\n\ndef conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, "
            "groups=1, dilation=1):\n"
            f"    for _ in range({repeat}):\n"
            "        out = _ct(input, weight, bias, stride, padding, output_padding, groups, dilation)\n"
            "    return out\n")


SPEED = {
    "memoised": "\n_memo = {}\n_slow = conv_transpose2d\n\n"
                "def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, "
                "dilation=1):\n    key = (tuple(input.shape), tuple(weight.shape), str(stride), str(padding))\n"
                "    if key not in _memo:\n"
                "        _memo[key] = _slow(input, weight, bias, stride, padding, output_padding, groups, dilation)\n"
                "    return _memo[key].clone()\n",
    "garbage_after_first": "\n_seen = set()\n_slow = conv_transpose2d\n\n"
                           "def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, "
                           "groups=1, dilation=1):\n    key = tuple(input.shape)\n"
                           "    out = _slow(input, weight, bias, stride, padding, output_padding, groups, dilation) "
                           "if key not in _seen else None\n"
                           "    _seen.add(key)\n"
                           "    if out is None:\n"
                           "        n, _, h, w = input.shape\n"
                           "        out = torch.zeros(n, weight.shape[1] * groups, (h - 1) * stride - 2 * padding + "
                           "weight.shape[-1] + output_padding, (w - 1) * stride - 2 * padding + weight.shape[-1] + "
                           "output_padding)\n"
                           "    return out\n",
    "faked_clock": "\nimport time\n_t = [0.0]\n\ndef _fake():\n    _t[0] += 1e-6\n    return _t[0]\n\n"
                   "time.perf_counter = _fake\ntime.monotonic = _fake\ntime.time = _fake\n",
}


@needs_sandbox
def test_speed_is_timed_by_the_grader_and_every_timed_output_verified(tmp_path):
    honest_fast, fast_results = _grade(tmp_path, CH09, answers(CH09), name="fast", part_seconds=90)
    honest_slow, slow_results = _grade(tmp_path, CH09, {"conv_transpose2d": _slow_correct()}, name="slow",
                                       part_seconds=90)
    assert honest_fast == 10, fast_results
    assert honest_slow == 4 and "too slow" in slow_results["test_conv_transpose2d_speed"][1], slow_results
    for attack, extra in SPEED.items():
        score, results = _grade(tmp_path, CH09, {"conv_transpose2d": _slow_correct() + extra}, name=attack,
                                part_seconds=90)
        assert score <= honest_slow, (attack, results)


# --------------------------------------------------------------------------
# make grade, end to end, with the static policy


STRING_BUILT = {
    "guard_switched_off": GUARD_OFF,
    "importlib_by_parts": HEAD + "    import importlib\n    m = importlib.import_module('torch.nn.' + 'functional')\n"
                                 "    return m.conv2d(input, weight, bias, stride, padding, dilation, groups)\n",
    "dunder_import": HEAD + "    F = __import__('torch.nn.functional', fromlist=['x'])\n"
                            "    ops = getattr(F.torch, 'o' + 'ps')\n"
                            "    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)\n",
    "eval_built_name": HEAD + "    return eval('F.con' + 'v2d')(input, weight, bias, stride, padding, dilation, groups)\n",
}
CLASS = {"alice_correct": A1, "bob_honest_wrong": BOB, "carol_empty": {},
         **{name: {**A1, "conv2d": src} for name, src in STRING_BUILT.items()}}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trust")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    out, rows = grade_class(CH01, CLASS, tmp, "--jobs", "2", "--part-timeout", "20")
    # a submission that is a link (to another student's notebook, to a system file) is not followed
    subs = tmp / "submissions"
    (subs / "dave_link").mkdir()
    (subs / "dave_link" / f"{CH01}.ipynb").symlink_to(subs / "alice_correct" / f"{CH01}.ipynb")
    (subs / "erin_passwd").mkdir()
    (subs / "erin_passwd" / f"{CH01}.ipynb").symlink_to("/etc/passwd")
    cmd = [sys.executable, "-m", "autograder.grading", CH01, str(subs), str(out), "--jobs", "2"]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert refused.returncode == 3 and "--continue" in refused.stderr, refused.stdout + refused.stderr
    proc = subprocess.run(cmd + ["--continue"], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    after = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    return out, rows, status, after


@needs_sandbox
def test_honest_controls_get_full_and_partial_marks(graded):
    _, rows, _, _ = graded
    assert float(rows["alice_correct"]["score"]) == 10
    assert float(rows["bob_honest_wrong"]["score"]) == HONEST_WRONG_CH01
    assert float(rows["carol_empty"]["score"]) == 0
    assert not rows["alice_correct"]["notes"] and not rows["bob_honest_wrong"]["notes"]


@needs_sandbox
@pytest.mark.parametrize("student", list(STRING_BUILT))
def test_the_policy_flags_string_built_names_for_a_manual_grade(graded, student):
    from nbgrader.api import Gradebook

    out, rows, _, _ = graded
    row = rows[student]
    assert float(row["score"]) <= HONEST_WRONG_CH01, row
    assert float(row["test_conv2d_output_size"]) == 2  # the construct is inside conv2d: its parts only
    assert "flagged for review" in row["notes"] and "line" in row["notes"], row
    page = (out / "feedback" / student / f"{CH01}.html").read_text()
    assert "flagged for review" in page
    with Gradebook("sqlite:///" + str(out / "course" / "gradebook.db")) as gb:
        grades = {g.name: g for g in gb.find_submission_notebook(CH01, CH01, student).grades}
        assert grades["test_conv2d_basic"].needs_manual_grade and grades["test_conv2d_basic"].auto_score == 0
        assert not grades["test_conv2d_output_size"].needs_manual_grade


@needs_sandbox
def test_linked_submissions_are_not_followed_and_nothing_outside_changes(graded):
    out, rows, status, after = graded
    report = (out / "intake.txt").read_text()
    for student in ("dave_link", "erin_passwd"):
        assert student not in rows and f"{student}/{CH01}.ipynb — a symbolic link (not followed)" in report
    assert float(rows["alice_correct"]["score"]) == 10
    assert after == status  # the checkout is as it was
    # the grader's state is its own: no link, and nothing of it in a scratch folder
    for p in (out / "state").rglob("*"):
        assert not p.is_symlink()
    assert not (out / "work" / "alice_correct" / "done.json").exists()


def test_grading_refuses_without_a_working_sandbox(tmp_path):
    """Fail closed: bubblewrap missing, or present but unable to run, means no grading without the flag."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    for path in (str(tmp_path / "empty"), f"{fake}:/usr/bin:/bin"):
        env = dict(os.environ, PATH=path)
        proc = subprocess.run([sys.executable, "-m", "autograder.grading", CH01, str(tmp_path), str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "bubblewrap" in proc.stderr and "--unsafe-no-sandbox" in proc.stderr
        assert not (tmp_path / "out" / "grades.csv").exists()


def test_the_visible_checks_tell_a_learner_whose_code_would_be_flagged(tmp_path):
    """The same policy, in the learner's process: a function that passes every case but would be flagged
    fails its visible check with the line and the reason; an honest one passes."""
    import importlib.util

    from autograder._core import RuleViolation
    from autograder.ch01 import check_conv2d

    path = tmp_path / "learner.py"
    path.write_text("import torch\nimport torch.nn.functional as F\n\n" + GUARD_OFF)
    spec = importlib.util.spec_from_file_location("learner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(RuleViolation, match="flagged for a manual review") as info:
        check_conv2d(module.conv2d, part="basic", quiet=True)
    assert "line 3 of conv2d" in str(info.value) and "torch.utils" in str(info.value), str(info.value)
    honest = tmp_path / "honest.py"
    honest.write_text(A1["conv2d_output_size"] + "\n\n" + A1["conv2d"].replace("def conv2d(", "import torch\n\ndef conv2d(", 1))
    spec = importlib.util.spec_from_file_location("honest", honest)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    check_conv2d(module.conv2d, part="basic", quiet=True)
