"""The class report `make grade` writes (OUT/report.html, report.json): exact counts on a class with known mistakes.

A Chapter 1 class: one correct student; three who flip the kernel, written three ways (one of them a renamed
copy of another's im2col code); one who ignores the bias; one who submits the stubs; one whose code the source
policy flags; one whose kernel never returns. The counts the report gives are the ones this class was built
with, counted by each mistake's stable id; the renamed copy is paired with its original, and two independent
honest solutions are not. The page is opened in the real Chromium (no console error; its image loads).
"""

from __future__ import annotations

import inspect
import json
import re

import pytest

import wrong_kernels
from autograder.grading import sandbox
from conftest import REPO, answers, grade_class

pytestmark = pytest.mark.skipif(not sandbox.available(), reason="bubblewrap does not work here (apt-get install "
                                "bubblewrap): `make grade` refuses to run without it")

AID = "ch01_cnn_size"
A = answers(AID)
IM2COL = ("import math\nimport torch\nimport torch.nn.functional as F\n\n"
          + inspect.getsource(wrong_kernels._pair) + "\n\n" + inspect.getsource(wrong_kernels.conv2d_with_bug)
          + "\n\nconv2d = conv2d_with_bug('flipped')\n")
RENAMES = {"cols": "patches", "wg": "kernel_groups", "out": "result", "H_out": "height_out", "W_out": "width_out",
           "per": "chunk", "w": "kern", "bug": "variant", "conv2d_with_bug": "make_conv", "_pair": "two"}
COPIED = re.sub(r"#[^\n]*", "# mine", IM2COL)
for old, new in RENAMES.items():
    COPIED = re.sub(rf"\b{old}\b", new, COPIED)
COPIED = COPIED.replace("conv2d = make_conv('flipped')", "conv2d = make_conv('flipped')  # done")

CLASS = {
    "ana_correct": A,
    "ben_flipped_im2col": {**A, "conv2d": IM2COL},
    "cai_flipped_loop": {**A, "conv2d": A["conv2d"].replace("w = weight.reshape(", "w = weight.flip(-2, -1).reshape(")},
    "eve_copied_ben": {**A, "conv2d": COPIED},
    "dan_no_bias": {**A, "conv2d": A["conv2d"].replace("out = out + bias.reshape(1, C_out, 1, 1)", "out = out")},
    "fay_stubs": {},
    "gus_flagged": {**A, "conv2d": A["conv2d"] + "\nimport autograder._core as core\n"},
    "hal_never_returns": {**A, "conv2d": "def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, "
                                         "groups=1):\n    while True:\n        pass\n"},
}
assert CLASS["cai_flipped_loop"]["conv2d"] != A["conv2d"] and CLASS["dan_no_bias"]["conv2d"] != A["conv2d"]
assert "cols" not in COPIED and "make_conv" in COPIED


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    out, rows = grade_class(AID, CLASS, tmp_path_factory.mktemp("report"), "--jobs", "2", "--timeout", "60",
                            "--part-timeout", "8", "--cell-timeout", "8")
    return out, rows, json.loads((out / "report.json").read_text())


def part(data, gid):
    return next(p for p in data["parts"] if p["grade_id"] == gid)


def test_named_mistakes_are_counted_by_id_with_the_students_who_made_them(reported):
    _, rows, data = reported
    basic = part(data, "test_conv2d_basic")
    named = {m["id"]: m["students"] for m in basic["mistakes"]}
    assert named == {"kernel-flipped": ["ben_flipped_im2col", "cai_flipped_loop", "eve_copied_ben"],
                     "bias-ignored": ["dan_no_bias"]}, basic
    flipped = next(m for m in basic["mistakes"] if m["id"] == "kernel-flipped")
    assert "cross-correlation" in flipped["text"]  # the mistake's current wording, looked up by its id
    # the pass rate and the means agree with grades.csv
    passed = [s for s, r in rows.items() if float(r["test_conv2d_basic"]) == 3]
    assert basic["passed"] == len(passed) and basic["pass_rate"] == round(len(passed) / len(CLASS), 4)
    assert data["score"]["mean"] == round(sum(float(r["score"]) for r in rows.values()) / len(rows), 3)
    assert sum(b["count"] for b in data["score"]["histogram"]) == len(CLASS)


def test_failures_without_a_named_mistake_are_grouped_and_flags_listed(reported):
    _, _, data = reported
    sizes = part(data, "test_conv2d_basic")["other_failures"]
    assert any("fay_stubs" in f["students"] and "NotImplementedError" in f["line"] for f in sizes), sizes
    flagged = {f["student"]: f["flags"] for f in data["flagged"]}
    assert flagged["gus_flagged"] == ["policy"] and "timeout" in flagged["hal_never_returns"], flagged
    assert set(flagged) == {"gus_flagged", "hal_never_returns"}
    assert len(data["slowest"]) == 5 and data["feedback"]["ana_correct"] == f"feedback/ana_correct/{AID}.html"


def test_a_renamed_copy_is_paired_with_its_original_and_honest_solutions_are_not(reported):
    _, _, data = reported
    pairs = {(m["a"], m["b"]): m for m in data["similar_pairs"] if m["cell"] == "conv2d"}
    assert ("ben_flipped_im2col", "eve_copied_ben") in pairs, data["similar_pairs"]
    pair = pairs[("ben_flipped_im2col", "eve_copied_ben")]
    assert any("unfold" in a and "unfold" in b for _, _, a, b in pair["lines"])
    assert ("ana_correct", "ben_flipped_im2col") not in pairs
    assert ("ana_correct", "dan_no_bias") in pairs  # one line apart: a near-duplicate too
    assert not any("fay_stubs" in (m["a"], m["b"]) for m in data["similar_pairs"])  # stubs alone match nothing


def test_the_report_opens_in_chromium_with_its_image_and_links(reported):
    from test_browser import CHROMIUM_ARGS, chromium_path, unavailable

    out, _, _ = reported
    html = (out / "report.html").read_text()
    assert "kernel-flipped" in html and 'src="report-files/scores.svg"' in html
    path = chromium_path()
    if path is None:
        unavailable("no Chromium found: install Debian's `chromium` package to open the class report")
    from playwright.sync_api import sync_playwright

    shots = REPO / "_build" / "test-artifacts" / "report"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        links = page.eval_on_selector_all("a[href^='feedback/']", "as => as.map(a => a.getAttribute('href'))")
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        browser.close()
    assert errors == [] and widths and all(w > 0 for w in widths), (errors, widths)
    assert all((out / link).is_file() for link in links) and len(set(links)) == len(CLASS)
