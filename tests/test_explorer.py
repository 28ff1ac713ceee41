"""The overlap explorer of Chapter 7 (book/_static/explorer-overlap.html), driven in a real headless Chromium.

The explorer is a fragment of plain HTML and JavaScript that the chapter embeds with a raw HTML block. Here it
is loaded into a bare page of its own (no book build needed), its controls are set the way a reader sets them
(typing into the number boxes, pressing arrow keys on the sliders), and every count it displays is compared
with PyTorch's transposed convolution of ones with a kernel of ones.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from test_browser import CHROMIUM_ARGS, chromium_path, unavailable

FRAGMENT = REPO / "book" / "_static" / "explorer-overlap.html"
CHAPTER = REPO / "book" / "07_checkerboard.md"

READ_JS = """root => ({
    k: +root.dataset.k, s: +root.dataset.s, n: +root.dataset.n, even: root.dataset.even,
    row: Array.from(root.querySelectorAll('.oe-row .oe-cell')).map(c => c.innerText.trim()),
    map: Array.from(root.querySelectorAll('.oe-map .oe-cell')).map(c => ({
        r: +c.dataset.row, c: +c.dataset.col, text: c.innerText.trim(),
        px: parseFloat(getComputedStyle(c).fontSize)})),
    verdict: root.querySelector('.oe-verdict').innerText,
    width: root.getBoundingClientRect().width})"""


def torch_counts(n: int, k: int, s: int) -> tuple[list[int], list[list[int]]]:
    """Stamps per output pixel as PyTorch computes them: ones through a transposed convolution with a kernel of ones."""
    row = F.conv_transpose1d(torch.ones(1, 1, n), torch.ones(1, 1, k), stride=s)[0, 0]
    plane = F.conv_transpose2d(torch.ones(1, 1, n, n), torch.ones(1, 1, k, k), stride=s)[0, 0]
    return [int(v) for v in row.tolist()], [[int(v) for v in r] for r in plane.tolist()]


@pytest.fixture(scope="module")
def explorer_page(tmp_path_factory):
    path = chromium_path()
    if path is None:
        unavailable("no Chromium found: install Debian's `chromium` package (or set CHROMIUM=/path) "
                    "to run the explorer test")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing: run `make venv`")
    harness = tmp_path_factory.mktemp("explorer") / "explorer.html"
    harness.write_text("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>explorer</title></head>"
                       f"<body style='width: 730px'>\n{FRAGMENT.read_text(encoding='utf-8')}\n</body></html>\n",
                       encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page = context.new_page()
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
        page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith("file:") else None)
        page.goto(harness.as_uri(), wait_until="load")
        yield page, problems
        browser.close()


def set_by_typing(page, name: str, value: int):
    """A reader typing a value into a number box."""
    box = page.locator(f".overlap-explorer input.oe-{name}")
    box.fill(str(value))
    box.press("Tab")


def set_by_slider(page, name: str, value: int):
    """A reader moving a slider with the arrow keys until it shows the value."""
    slider = page.locator(f".overlap-explorer input.oe-{name}-range")
    slider.focus()
    for _ in range(12):
        now = int(slider.input_value())
        if now == value:
            return
        slider.press("ArrowRight" if now < value else "ArrowLeft")
    raise AssertionError(f"the {name} slider did not reach {value}")


def shown(page) -> dict:
    return page.locator(".overlap-explorer").evaluate(READ_JS)


@pytest.mark.parametrize("k,s,n", [(3, 2, 4), (4, 2, 4), (5, 2, 3), (3, 3, 4), (4, 3, 5), (7, 4, 6), (2, 3, 4),
                                   (1, 1, 2), (6, 3, 2)])
def test_explorer_counts_agree_with_torch_conv_transpose_of_ones(explorer_page, k, s, n):
    """Set k, s and n as a reader would: is every displayed count PyTorch's, and is the verdict right?"""
    page, problems = explorer_page
    set_by_typing(page, "k", k)
    set_by_slider(page, "s", s)
    set_by_typing(page, "n", n)
    got = shown(page)
    assert (got["k"], got["s"], got["n"]) == (k, s, n)
    row, plane = torch_counts(n, k, s)
    assert [int(t) for t in got["row"]] == row, (k, s, n)
    size = len(row)
    assert len(got["map"]) == size * size
    displayed = [[0] * size for _ in range(size)]
    for c in got["map"]:
        displayed[c["r"]][c["c"]] = int(c["text"])
    assert displayed == plane, (k, s, n)
    # the verdict: even exactly when s divides k, and it says so
    assert got["even"] == ("yes" if k % s == 0 else "no")
    assert f"k mod s = {k % s}" in got["verdict"]
    if k % s == 0:
        assert "s divides k" in got["verdict"] and "no checkerboard" in got["verdict"]
    else:
        assert re.search(r"checkerboard", got["verdict"]) and "s divides k" not in got["verdict"]
    # legible and inside the book's column
    assert min(c["px"] for c in got["map"]) >= 9
    assert got["width"] <= 730
    assert not problems, problems


def test_explorer_clamps_what_a_reader_types(explorer_page):
    """Out-of-range values typed into a box are clamped to the slider's range, not drawn as typed."""
    page, problems = explorer_page
    set_by_typing(page, "k", 40)
    set_by_typing(page, "s", 0)
    got = shown(page)
    assert (got["k"], got["s"]) == (7, 1)
    assert page.locator(".overlap-explorer input.oe-k").input_value() == "7"
    assert not problems, problems


def test_chapter_7_embeds_the_explorer_file():
    """Does Chapter 7's page embed this very file (a raw HTML block), so the page shows what is tested here?"""
    text = CHAPTER.read_text(encoding="utf-8")
    assert re.search(r"```\{raw\} html\n:file: _static/explorer-overlap\.html\n```", text)
    fragment = FRAGMENT.read_text(encoding="utf-8")
    assert "<script src" not in fragment and "http" not in fragment.replace("http-equiv", "")   # offline
