"""The Jupyter Book builds with warnings as errors and shows what the chapters compute."""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

import pytest
import torch.nn.functional as F
import torch

from conftest import ASSIGNMENTS, BIN, REPO
from test_notebooks import solution_lines


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run(
        [str(BIN / "jupyter-book"), "build", str(REPO), "--path-output", str(out), "--builder", "html",
         "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True, text=True, timeout=1200, env={**__import__("os").environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, f"the book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out / "_build" / "html"


def text_of(page: Path) -> str:
    raw = page.read_text()
    raw = re.sub(r"<(script|style)\b.*?</\1>", "", raw, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", raw))


def toc_pages() -> list[str]:
    return re.findall(r"(?:root|file):\s*(\S+)", (REPO / "_toc.yml").read_text())


def test_every_toc_page_is_built(built):
    for page in toc_pages():
        assert (built / f"{page}.html").exists(), page


def test_chapter_one_shows_its_executed_figures(built):
    page = built / "book" / "01_cnn_size_problem.html"
    images = re.findall(r'<img[^>]+src="([^"]+)"', page.read_text())
    assert len(images) >= 4
    for src in images:
        img = (page.parent / src).resolve()
        assert img.exists() and img.stat().st_size > 2000, src
    assert "<Figure size" not in page.read_text(), "a figure was rendered as text instead of an image"


def test_chapter_one_numbers_are_the_ones_torch_computes(built):
    text = " ".join(text_of(built / "book" / "01_cnn_size_problem.html").split())
    text = re.sub(r"\s*×\s*", "×", text)  # glued numbers sit in their own <span>
    five = F.conv2d(torch.zeros(1, 1, 7, 7), torch.zeros(1, 1, 3, 3)).shape[-1]
    assert f"PyTorch returns a {five}×{five} output" in text
    same = F.conv2d(torch.zeros(1, 1, 7, 7), torch.zeros(1, 1, 3, 3), padding=1).shape[-1]
    assert f"a 7×7 input gives a {same}×{same} output" in text


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_exercise_notebook_is_a_page_shown_unexecuted(built, aid):
    page = built / "notebooks" / aid / f"{aid}.html"
    text = text_of(page)
    assert "NotImplementedError" in text
    assert "Traceback" not in text, "student notebooks must not be executed by the build"


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_no_page_of_the_book_contains_a_solution(built, aid):
    lines = solution_lines(aid)
    for page in built.rglob("*.html"):
        text = page.read_text()
        leaked = [ln for ln in lines if html.escape(ln, quote=False) in text or ln in text]
        assert not leaked, f"{page.relative_to(built)} shows solution lines: {leaked[:3]}"


def test_every_chapter_page_shows_executed_figures(built):
    for page in toc_pages():
        if not page.startswith("book/") or page == "book/intro":
            continue
        html_text = (built / f"{page}.html").read_text()
        images = re.findall(r'<img[^>]+src="([^"]+)"', html_text)
        assert len(images) >= 2, f"{page} shows {len(images)} figures"
        assert "<Figure size" not in html_text, f"{page}: a figure was rendered as text"


def test_readme_links_every_exercise_notebook():
    readme = (REPO / "README.md").read_text()
    for aid in ASSIGNMENTS:
        assert f"notebooks/{aid}/{aid}.ipynb" in readme, f"README has no link for {aid}"
